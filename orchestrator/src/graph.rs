//! The service dependency graph: start order with maximum parallelism, stop order reversed,
//! selection of services with their dependencies, and cycles named as a path.
//!
//! Edges go from a service to what it needs (depends_on, links, volumes_from,
//! `network_mode`/`ipc`/`pid: service:x`).

use std::collections::{BTreeMap, BTreeSet};

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::compose::Project;

/// Graph errors.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    /// Services depend on each other in a loop.
    #[error("dependency cycle: {}", path.join(" -> "))]
    Cycle {
        /// The loop, first service repeated at the end (`web -> app -> web`).
        path: Vec<String>,
    },
    /// A service names a dependency that does not exist.
    #[error("service {service:?} depends on unknown service {dependency:?}")]
    Unknown {
        /// The service.
        service: String,
        /// The missing dependency.
        dependency: String,
    },
    /// A service asked for on the command line does not exist.
    #[error("no such service: {name:?}")]
    NoSuchService {
        /// The name asked for.
        name: String,
    },
}

/// Services and who needs whom.
#[derive(Debug, Clone)]
pub struct ServiceGraph {
    graph: DiGraph<String, ()>,
    index: BTreeMap<String, NodeIndex>,
}

impl ServiceGraph {
    /// Builds the graph of a project's active services. Dependencies on services that are not in
    /// the project are an error (validation reports them earlier with a location).
    /// Optional (`required: false`) dependencies that are not in the project are left out.
    pub fn from_project(p: &Project) -> Result<Self, GraphError> {
        let edges = p
            .services
            .iter()
            .map(|(name, svc)| {
                let deps = svc
                    .dependencies()
                    .into_iter()
                    .filter(|d| {
                        p.services.contains_key(d)
                            || svc.depends_on.get(d).is_none_or(|dep| dep.required)
                    })
                    .collect();
                (name.clone(), deps)
            })
            .collect::<Vec<_>>();
        Self::from_edges(edges)
    }

    /// Builds a graph from `(service, its dependencies)` pairs.
    pub fn from_edges(services: Vec<(String, Vec<String>)>) -> Result<Self, GraphError> {
        let mut graph = DiGraph::new();
        let mut index = BTreeMap::new();
        for (name, _) in &services {
            index.insert(name.clone(), graph.add_node(name.clone()));
        }
        for (name, deps) in &services {
            for d in deps {
                let Some(&to) = index.get(d) else {
                    return Err(GraphError::Unknown {
                        service: name.clone(),
                        dependency: d.clone(),
                    });
                };
                graph.update_edge(index[name], to, ());
            }
        }
        let g = ServiceGraph { graph, index };
        if let Some(path) = g.find_cycle() {
            return Err(GraphError::Cycle { path });
        }
        Ok(g)
    }

    /// The first cycle in name order, as a path that ends where it starts.
    pub fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut mark = vec![Mark::New; self.graph.node_count()];
        for &start in self.index.values() {
            if mark[start.index()] != Mark::New {
                continue;
            }
            // Iterative DFS keeping the current path.
            let mut path: Vec<NodeIndex> = vec![start];
            let mut iters = vec![self.sorted_deps(start).into_iter()];
            mark[start.index()] = Mark::Open;
            while let Some(it) = iters.last_mut() {
                match it.next() {
                    Some(next) => match mark[next.index()] {
                        Mark::Open => {
                            let from = path.iter().position(|&n| n == next).unwrap_or(0);
                            let mut names: Vec<String> = path[from..]
                                .iter()
                                .map(|&n| self.graph[n].clone())
                                .collect();
                            names.push(self.graph[next].clone());
                            return Some(names);
                        }
                        Mark::New => {
                            mark[next.index()] = Mark::Open;
                            path.push(next);
                            iters.push(self.sorted_deps(next).into_iter());
                        }
                        Mark::Done => {}
                    },
                    None => {
                        if let Some(done) = path.pop() {
                            mark[done.index()] = Mark::Done;
                        }
                        iters.pop();
                    }
                }
            }
        }
        None
    }

    fn sorted_deps(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(n, Direction::Outgoing)
            .collect();
        v.sort_by(|a, b| self.graph[*a].cmp(&self.graph[*b]));
        v
    }

    /// Direct dependencies of a service, sorted.
    pub fn dependencies(&self, name: &str) -> Vec<String> {
        self.index
            .get(name)
            .map(|&n| {
                self.sorted_deps(n)
                    .into_iter()
                    .map(|d| self.graph[d].clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Services that directly need this one, sorted.
    pub fn dependents(&self, name: &str) -> Vec<String> {
        let Some(&n) = self.index.get(name) else {
            return vec![];
        };
        let mut v: Vec<String> = self
            .graph
            .neighbors_directed(n, Direction::Incoming)
            .map(|d| self.graph[d].clone())
            .collect();
        v.sort();
        v
    }

    /// Start order as levels: every service of a level may start in parallel once the previous
    /// levels are ready. Restricted to `only` when given.
    pub fn start_levels(&self, only: Option<&BTreeSet<String>>) -> Vec<Vec<String>> {
        let mut level: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        // Graph is acyclic (checked at construction): memoised longest-path depth.
        fn depth(g: &ServiceGraph, n: NodeIndex, memo: &mut BTreeMap<NodeIndex, usize>) -> usize {
            if let Some(&d) = memo.get(&n) {
                return d;
            }
            let d = g
                .graph
                .neighbors_directed(n, Direction::Outgoing)
                .map(|m| depth(g, m, memo) + 1)
                .max()
                .unwrap_or(0);
            memo.insert(n, d);
            d
        }
        let mut out: Vec<Vec<String>> = Vec::new();
        for (name, &n) in &self.index {
            if only.is_some_and(|o| !o.contains(name)) {
                continue;
            }
            let d = depth(self, n, &mut level);
            if out.len() <= d {
                out.resize(d + 1, Vec::new());
            }
            out[d].push(name.clone());
        }
        out.retain(|l| !l.is_empty());
        out
    }

    /// Stop order: the start levels reversed (dependents stop before what they need).
    pub fn stop_levels(&self, only: Option<&BTreeSet<String>>) -> Vec<Vec<String>> {
        let mut l = self.start_levels(only);
        l.reverse();
        l
    }

    /// The services to act on: those named (all when empty) plus, unless `no_deps`, everything
    /// they need, transitively.
    pub fn select(&self, names: &[String], no_deps: bool) -> Result<BTreeSet<String>, GraphError> {
        if names.is_empty() {
            return Ok(self.index.keys().cloned().collect());
        }
        let mut out = BTreeSet::new();
        let mut todo: Vec<NodeIndex> = Vec::new();
        for n in names {
            let Some(&i) = self.index.get(n) else {
                return Err(GraphError::NoSuchService { name: n.clone() });
            };
            todo.push(i);
        }
        while let Some(i) = todo.pop() {
            if !out.insert(self.graph[i].clone()) || no_deps {
                continue;
            }
            todo.extend(self.graph.neighbors_directed(i, Direction::Outgoing));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(edges: &[(&str, &[&str])]) -> Result<ServiceGraph, GraphError> {
        ServiceGraph::from_edges(
            edges
                .iter()
                .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
                .collect(),
        )
    }

    #[test]
    fn levels_and_selection() {
        let g = g(&[
            ("web", &["app"]),
            ("app", &["db", "cache"]),
            ("db", &[]),
            ("cache", &[]),
            ("tool", &[]),
        ])
        .unwrap();
        assert_eq!(
            g.start_levels(None),
            vec![vec!["cache", "db", "tool"], vec!["app"], vec!["web"]]
        );
        assert_eq!(g.stop_levels(None)[0], vec!["web"]);
        let sel = g.select(&["web".into()], false).unwrap();
        assert_eq!(
            sel.iter().collect::<Vec<_>>(),
            ["app", "cache", "db", "web"]
        );
        let sel = g.select(&["web".into()], true).unwrap();
        assert_eq!(sel.iter().collect::<Vec<_>>(), ["web"]);
        assert_eq!(
            g.start_levels(Some(&g.select(&["app".into()], false).unwrap())),
            vec![vec!["cache", "db"], vec!["app"]]
        );
        assert_eq!(g.dependents("db"), ["app"]);
        assert!(matches!(
            g.select(&["nope".into()], false),
            Err(GraphError::NoSuchService { .. })
        ));
    }

    #[test]
    fn optional_missing_dependencies_are_skipped() {
        use crate::compose::{DependsCondition, DependsOn, Service};
        let mut p = Project::default();
        let mut app = Service::default();
        app.depends_on.insert(
            "cache".into(),
            DependsOn {
                condition: DependsCondition::ServiceStarted,
                restart: false,
                required: false,
            },
        );
        p.services.insert("app".into(), app.clone());
        let g = ServiceGraph::from_project(&p).unwrap();
        assert_eq!(g.start_levels(None), vec![vec!["app"]]);
        app.depends_on.get_mut("cache").unwrap().required = true;
        p.services.insert("app".into(), app);
        assert!(matches!(
            ServiceGraph::from_project(&p),
            Err(GraphError::Unknown { .. })
        ));
    }

    #[test]
    fn cycles_are_named_as_a_path() {
        let e = g(&[("web", &["app"]), ("app", &["web"])]).unwrap_err();
        assert_eq!(e.to_string(), "dependency cycle: app -> web -> app");
        let e = g(&[("a", &["b"]), ("b", &["c"]), ("c", &["b"]), ("z", &[])]).unwrap_err();
        assert_eq!(e.to_string(), "dependency cycle: b -> c -> b");
        let e = g(&[("self", &["self"])]).unwrap_err();
        assert_eq!(e.to_string(), "dependency cycle: self -> self");
        assert!(matches!(
            g(&[("a", &["x"])]),
            Err(GraphError::Unknown { .. })
        ));
    }
}
