//! The Hadoop example (examples/hadoop) as far as it can be checked without its image: it runs
//! on the official `apache/hadoop` image, which is pulled from Docker Hub, and berth's CI has no
//! registry. So this checks what berth makes of the file (`berth config`: the x- anchor
//! merged into every service, config.env read into each environment, replicas, ports,
//! healthcheck) and the dependency graph `up` would follow. Needs neither root nor network.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth::api::project::UpOptions;
use berth::compose::{LoadOptions, Project, load};
use berth::engine::observed::Observed;
use berth::engine::plan::{Plan, Step};
use berth::engine::reconcile::plan_up;
use berth::graph::ServiceGraph;

const IMAGE: &str = "apache/hadoop:3.4.1";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hadoop")
}

/// `berth config --format json` of the example, from a scratch instance.
fn config() -> serde_json::Value {
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = Command::new(berth_tests::berth_bin())
        .arg("--root")
        .arg(scratch.path().join("root"))
        .arg("--run")
        .arg(scratch.path().join("run"))
        .arg("-f")
        .arg(example().join("compose.yaml"))
        .args(["config", "--format", "json"])
        .output()
        .expect("run berth config");
    assert!(
        out.status.success(),
        "berth config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("config JSON")
}

fn project() -> Project {
    load(&LoadOptions {
        files: vec![example().join("compose.yaml")],
        environment: Some(BTreeMap::new()),
        working_dir: Some(example()),
        ..Default::default()
    })
    .expect("load examples/hadoop")
}

#[test]
fn hadoop_config_merges_the_anchor_and_reads_config_env() {
    let cfg = config();
    assert_eq!(cfg["name"], "hadoop");
    let services = cfg["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["datanode", "namenode", "nodemanager", "resourcemanager"])
    );
    for (name, svc) in services {
        assert_eq!(svc["image"], IMAGE, "{name}");
        assert_eq!(svc["restart"], "unless-stopped", "{name}");
        let env = &svc["environment"];
        // config.env, through env_file: services find each other by name.
        assert_eq!(
            env["CORE-SITE.XML_fs.defaultFS"], "hdfs://namenode",
            "{name}"
        );
        assert_eq!(
            env["YARN-SITE.XML_yarn.resourcemanager.hostname"], "resourcemanager",
            "{name}"
        );
        // Single quotes in an env file keep `$HADOOP_HOME` for the container to expand;
        // `config` prints a literal `$` as `$$`, as Compose does, so its output loads again.
        assert_eq!(
            env["MAPRED-SITE.XML_mapreduce.map.env"], "HADOOP_MAPRED_HOME=$$HADOOP_HOME",
            "{name}"
        );
    }
    assert_eq!(
        services["namenode"]["environment"]["ENSURE_NAMENODE_DIR"],
        "/tmp/hadoop-root/dfs/name"
    );
    assert_eq!(services["namenode"]["command"][1], "namenode");
    assert_eq!(services["nodemanager"]["command"][0], "yarn");
    assert_eq!(services["datanode"]["deploy"]["replicas"], 2);
    assert_eq!(services["nodemanager"]["deploy"]["replicas"], 2);
    assert!(
        services["namenode"]["healthcheck"]["test"]
            .to_string()
            .contains("safemode"),
        "{}",
        services["namenode"]["healthcheck"]
    );
    let ports = |svc: &str| services[svc]["ports"].to_string();
    assert!(ports("namenode").contains("9870"), "{}", ports("namenode"));
    assert!(
        ports("resourcemanager").contains("8088"),
        "{}",
        ports("resourcemanager")
    );
}

#[test]
fn hadoop_dependency_graph_starts_hdfs_before_yarn() {
    let p = project();
    let env = &p.services["nodemanager"].environment;
    assert_eq!(
        env.get("MAPRED-SITE.XML_mapreduce.map.env"),
        Some(&Some("HADOOP_MAPRED_HOME=$HADOOP_HOME".to_string())),
        "the container gets the literal $HADOOP_HOME"
    );
    let graph = ServiceGraph::from_project(&p).expect("acyclic");
    assert_eq!(
        graph.start_levels(None),
        vec![
            vec!["namenode".to_string()],
            vec!["datanode".to_string(), "resourcemanager".to_string()],
            vec!["nodemanager".to_string()],
        ]
    );
    let mut stop = graph.start_levels(None);
    stop.reverse();
    assert_eq!(graph.stop_levels(None), stop);
    assert_eq!(graph.dependencies("nodemanager"), vec!["resourcemanager"]);

    // What a fresh `up` would do: pull the image (never build), two datanodes and two
    // nodemanagers, each created only after what it depends on has started.
    let plan = plan_up(&p, &Observed::default(), &UpOptions::default()).expect("plan");
    let text = plan.to_string();
    let created: Vec<&str> = plan
        .nodes
        .iter()
        .filter_map(|n| match &n.step {
            Step::CreateContainer { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 6, "{text}");
    for name in [
        "hadoop-namenode-1",
        "hadoop-datanode-1",
        "hadoop-datanode-2",
        "hadoop-resourcemanager-1",
        "hadoop-nodemanager-1",
        "hadoop-nodemanager-2",
    ] {
        assert!(created.contains(&name), "{name} missing:\n{text}");
    }
    for node in &plan.nodes {
        if let Step::EnsureImage { image, build, .. } = &node.step {
            assert_eq!(image, IMAGE, "{text}");
            assert!(!build, "nothing is built:\n{text}");
        }
    }
    let namenode = start_of(&plan, "hadoop-namenode-1");
    let resourcemanager = start_of(&plan, "hadoop-resourcemanager-1");
    for (name, needs) in [
        ("hadoop-datanode-1", namenode),
        ("hadoop-datanode-2", namenode),
        ("hadoop-resourcemanager-1", namenode),
        ("hadoop-nodemanager-1", resourcemanager),
        ("hadoop-nodemanager-2", resourcemanager),
    ] {
        let create = index_of(
            &plan,
            |s| matches!(s, Step::CreateContainer { name: n, .. } if n == name),
        );
        assert!(
            comes_after(&plan, create, needs),
            "{name} is not created after #{needs} starts:\n{text}"
        );
    }
}

fn index_of(plan: &Plan, pick: impl Fn(&Step) -> bool) -> usize {
    plan.nodes
        .iter()
        .position(|n| pick(&n.step))
        .unwrap_or_else(|| panic!("step missing:\n{plan}"))
}

fn start_of(plan: &Plan, name: &str) -> usize {
    index_of(
        plan,
        |s| matches!(s, Step::StartContainer { name: n, .. } if n == name),
    )
}

/// True when node `later` waits (directly or through others) for node `earlier`.
fn comes_after(plan: &Plan, later: usize, earlier: usize) -> bool {
    let mut todo = plan.nodes[later].after.clone();
    let mut seen = BTreeSet::new();
    while let Some(i) = todo.pop() {
        if i == earlier {
            return true;
        }
        if seen.insert(i) {
            todo.extend(plan.nodes[i].after.iter().copied());
        }
    }
    false
}
