//! The order a project's builds run in. A build whose `build.additional_contexts` names
//! another service's image (`NAME: service:OTHER`) reads that image, so OTHER's build runs
//! first; builds that need nothing of each other run side by side. Asking for a service's build
//! asks for those it reads too, and a cycle of such builds is refused naming its services.

use std::collections::{BTreeMap, BTreeSet};

use crate::compose::Project;

/// The services whose built images `service`'s build reads (`service:OTHER` contexts of a
/// service that has a `build:` section), each once, in name order.
pub fn context_services(project: &Project, service: &str) -> Vec<String> {
    let Some(b) = project.services.get(service).and_then(|s| s.build.as_ref()) else {
        return Vec::new();
    };
    let deps: BTreeSet<String> = b.service_contexts().into_iter().map(|(_, o)| o).collect();
    deps.into_iter()
        .filter(|d| project.services.get(d).is_some_and(|s| s.build.is_some()))
        .collect()
}

/// The builds `wanted` needs, in waves: the wanted services that have a `build:` section and
/// every service whose image one of them reads (and so on), each wave's builds reading only
/// images of earlier waves. Names within a wave are in name order. A cycle is refused with
/// the services on it (`a -> b -> a`).
pub fn build_waves(
    project: &Project,
    wanted: &BTreeSet<String>,
) -> Result<Vec<Vec<String>>, String> {
    // The closure: wanted services with a build, and what they read.
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut todo: Vec<String> = wanted
        .iter()
        .filter(|s| project.services.get(*s).is_some_and(|s| s.build.is_some()))
        .cloned()
        .collect();
    while let Some(s) = todo.pop() {
        if deps.contains_key(&s) {
            continue;
        }
        let d = context_services(project, &s);
        todo.extend(d.iter().cloned());
        deps.insert(s, d);
    }
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut waves = Vec::new();
    while done.len() < deps.len() {
        let wave: Vec<String> = deps
            .iter()
            .filter(|(s, d)| !done.contains(*s) && d.iter().all(|x| done.contains(x)))
            .map(|(s, _)| s.clone())
            .collect();
        if wave.is_empty() {
            return Err(cycle_error(&deps, &done));
        }
        done.extend(wave.iter().cloned());
        waves.push(wave);
    }
    Ok(waves)
}

/// The refusal naming one cycle among the builds not yet ordered (each of which reads
/// another of them, so following the first unordered dependency comes back round).
fn cycle_error(deps: &BTreeMap<String, Vec<String>>, done: &BTreeSet<String>) -> String {
    let next = |s: &str| {
        deps.get(s)
            .and_then(|d| d.iter().find(|x| !done.contains(*x)))
            .cloned()
    };
    let Some(start) = deps.keys().find(|s| !done.contains(*s)).cloned() else {
        return "build.additional_contexts: the builds read each other's images in a cycle".into();
    };
    let mut path = vec![start];
    loop {
        let last = path.last().cloned().unwrap_or_default();
        let Some(n) = next(&last) else { break };
        if let Some(i) = path.iter().position(|p| *p == n) {
            let mut cycle = path.split_off(i);
            cycle.push(n);
            path = cycle;
            break;
        }
        path.push(n);
    }
    format!(
        "build.additional_contexts: the builds of services {} read each other's images (service:NAME) in a cycle",
        path.join(" -> ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml: &str) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, yaml).expect("compose file");
        crate::compose::load(&crate::compose::LoadOptions {
            files: vec![file],
            project_name: Some("p".into()),
            environment: Some(Default::default()),
            working_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
        .expect("load")
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn builds_wait_for_the_images_they_read() {
        let p = project(
            "services:\n\
             \x20 base: {build: .}\n\
             \x20 tools: {build: {context: ., additional_contexts: ['b=service:base']}}\n\
             \x20 web: {build: {context: ., additional_contexts: {base: 'service:base', t: 'service:tools', lib: ./lib}}}\n\
             \x20 solo: {build: .}\n\
             \x20 db: {image: busybox}\n",
        );
        let all = build_waves(&p, &set(&["base", "tools", "web", "solo", "db"])).expect("order");
        assert_eq!(
            all,
            [
                vec!["base".to_string(), "solo".into()],
                vec!["tools".into()],
                vec!["web".into()]
            ]
        );
        // Asking for web alone builds what it reads, first.
        let web = build_waves(&p, &set(&["web"])).expect("order");
        assert_eq!(
            web,
            [
                vec!["base".to_string()],
                vec!["tools".into()],
                vec!["web".into()]
            ]
        );
        // A service without build: is not built.
        assert!(build_waves(&p, &set(&["db"])).expect("order").is_empty());
    }

    #[test]
    fn a_cycle_is_refused_naming_its_services() {
        let p = project(
            "services:\n\
             \x20 a: {build: {context: ., additional_contexts: {x: 'service:b'}}}\n\
             \x20 b: {build: {context: ., additional_contexts: {y: 'service:c'}}}\n\
             \x20 c: {build: {context: ., additional_contexts: {z: 'service:a'}}}\n\
             \x20 d: {build: {context: ., additional_contexts: {z: 'service:a'}}}\n",
        );
        let err = build_waves(&p, &set(&["d"])).expect_err("a cycle");
        assert!(err.contains("a -> b -> c -> a"), "{err}");
        assert!(err.contains("build.additional_contexts"), "{err}");
    }
}
