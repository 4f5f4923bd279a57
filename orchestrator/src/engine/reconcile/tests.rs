//! Golden plans: the convergence rules asserted as whole plans, without root or a daemon.

use std::collections::BTreeMap;

use super::*;
use crate::compose::{LoadOptions, load};
use crate::engine::observed::{ContainerState, Observed, ObservedContainer};

const LNMP: &str = r#"
name: demo
services:
  web:
    image: nginx
    ports: ["8080:80"]
    depends_on:
      app: { condition: service_healthy }
  app:
    image: php
    environment: { A: "1" }
    depends_on:
      db: { condition: service_healthy, restart: true }
  db:
    image: mariadb
    volumes: ["data:/var/lib/mysql"]
volumes:
  data:
"#;

/// A project loaded from `yaml` alone (no environment), as the loader gives it to `up`.
pub(crate) fn project(yaml: &str) -> Project {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, yaml).expect("write");
    load(&LoadOptions {
        files: vec![file],
        environment: Some(BTreeMap::new()),
        working_dir: Some(dir.path().to_path_buf()),
        ..LoadOptions::default()
    })
    .expect("load")
}

/// What runs after a successful `up` of `p`: every replica running with the current hash.
fn converged(p: &Project) -> Observed {
    let mut obs = Observed::default();
    for (name, svc) in &p.services {
        for n in 1..=svc.replicas() {
            obs.containers.push(ObservedContainer {
                id: format!("id-{name}-{n}"),
                name: format!("{}-{name}-{n}", p.name),
                service: name.clone(),
                number: n,
                config_hash: service_hash(svc),
                image_id: Some(format!("sha256:{name}")),
                oneoff: false,
                state: ContainerState::Running,
                anonymous_volumes: BTreeMap::new(),
                network_from: None,
                attached: Some(
                    svc.networks
                        .keys()
                        .filter_map(|k| p.networks.get(k))
                        .map(|n| n.name.clone())
                        .collect(),
                ),
                defects: Vec::new(),
            });
        }
        obs.images.insert(name.clone(), format!("sha256:{name}"));
    }
    obs.networks
        .extend(p.networks.values().map(|n| n.name.clone()));
    obs.volumes
        .extend(p.volumes.values().map(|v| v.name.clone()));
    obs
}

fn up(p: &Project, obs: &Observed, opts: &UpOptions) -> String {
    plan_up(p, obs, opts).expect("plan").to_string()
}

#[test]
fn fresh_up_creates_everything_in_dependency_order() {
    let p = project(LNMP);
    let plan = up(&p, &Observed::default(), &UpOptions::default());
    assert_eq!(
        plan,
        "\
[0] CreateNetwork demo_default (default)
[1] CreateVolume demo_data (data)
[2] EnsureImage mariadb for db (pull if missing)
[3] CreateContainer demo-db-1 (no existing container) after #0 #1 #2
[4] StartContainer demo-db-1 after #3
[5] EnsureImage php for app (pull if missing)
[6] WaitDependency app on db service_healthy after #4
[7] CreateContainer demo-app-1 (no existing container) after #0 #5 #6
[8] StartContainer demo-app-1 after #7
[9] EnsureImage nginx for web (pull if missing)
[10] WaitDependency web on app service_healthy after #8
[11] CreateContainer demo-web-1 (no existing container) after #0 #9 #10
[12] StartContainer demo-web-1 after #11
"
    );
}

#[test]
fn second_up_without_edit_plans_nothing() {
    let p = project(LNMP);
    let plan = plan_up(&p, &converged(&p), &UpOptions::default()).expect("plan");
    assert!(plan.is_empty(), "{plan}");
}

#[test]
fn editing_one_service_recreates_only_it() {
    let before = project(LNMP);
    let obs = converged(&before);
    let after = project(&LNMP.replace("A: \"1\"", "A: \"2\""));
    assert_eq!(
        up(&after, &obs, &UpOptions::default()),
        "\
[0] WaitDependency app on db service_healthy
[1] RemoveContainer demo-app-1 (recreate: configuration changed) after #0
[2] CreateContainer demo-app-1 (configuration changed) after #0 #1
[3] StartContainer demo-app-1 after #2
"
    );
}

#[test]
fn recreated_dependency_restarts_dependents_that_ask_for_it() {
    let before = project(LNMP);
    let obs = converged(&before);
    let after = project(&LNMP.replace("image: mariadb", "image: mariadb:11"));
    let plan = up(&after, &obs, &UpOptions::default());
    assert!(
        plan.contains("RemoveContainer demo-db-1 (recreate: configuration changed)"),
        "{plan}"
    );
    assert!(
        plan.contains("RestartContainer demo-app-1 (dependency db was recreated)"),
        "{plan}"
    );
    assert!(
        !plan.contains("demo-web-1"),
        "web did not ask for restarts: {plan}"
    );
}

#[test]
fn image_change_recreates_and_stopped_containers_start() {
    let p = project(LNMP);
    let mut obs = converged(&p);
    obs.images.insert("web".into(), "sha256:newer".into());
    obs.containers
        .iter_mut()
        .filter(|c| c.service == "db")
        .for_each(|c| c.state = ContainerState::Exited(0));
    let plan = up(&p, &obs, &UpOptions::default());
    assert!(
        plan.contains("RemoveContainer demo-web-1 (recreate: image changed)"),
        "{plan}"
    );
    assert!(plan.contains("StartContainer demo-db-1"), "{plan}");
    assert!(!plan.contains("demo-app-1"), "{plan}");
}

#[test]
fn scale_up_and_down_by_replica_number() {
    let p = project(LNMP);
    let obs = converged(&p);
    let mut opts = UpOptions::default();
    opts.scale.insert("app".into(), 3);
    let plan = up(&p, &obs, &opts);
    assert!(
        plan.contains("CreateContainer demo-app-2 (no existing container)"),
        "{plan}"
    );
    assert!(
        plan.contains("CreateContainer demo-app-3 (no existing container)"),
        "{plan}"
    );
    assert!(!plan.contains("demo-app-1"), "{plan}");

    let mut three = obs.clone();
    for n in 2..=3 {
        let mut c = three.service_containers("app")[0].clone();
        c.number = n;
        c.name = format!("demo-app-{n}");
        c.id = format!("id-app-{n}");
        three.containers.push(c);
    }
    let plan = up(&p, &three, &UpOptions::default());
    assert_eq!(
        plan,
        "\
[0] RemoveContainer demo-app-2 (scale down to 1)
[1] RemoveContainer demo-app-3 (scale down to 1)
"
    );
}

#[test]
fn scale_errors_name_the_service() {
    let p = project(LNMP);
    let mut opts = UpOptions::default();
    opts.scale.insert("nope".into(), 2);
    let err = plan_up(&p, &Observed::default(), &opts).expect_err("unknown");
    assert!(err.to_string().contains("--scale nope=2"), "{err}");

    let fixed = project(&LNMP.replace("image: php", "image: php\n    container_name: the-app"));
    let mut opts = UpOptions::default();
    opts.scale.insert("app".into(), 2);
    let err = plan_up(&fixed, &Observed::default(), &opts).expect_err("fixed name");
    assert!(err.to_string().contains("container_name"), "{err}");
}

#[test]
fn selected_service_pulls_dependencies_unless_no_deps() {
    let p = project(LNMP);
    let opts = UpOptions {
        services: vec!["app".into()],
        ..UpOptions::default()
    };
    let plan = up(&p, &Observed::default(), &opts);
    assert!(
        plan.contains("demo-db-1") && plan.contains("demo-app-1"),
        "{plan}"
    );
    assert!(!plan.contains("demo-web-1"), "{plan}");
    let opts = UpOptions {
        services: vec!["app".into()],
        no_deps: true,
        ..UpOptions::default()
    };
    let plan = up(&p, &Observed::default(), &opts);
    assert!(
        !plan.contains("demo-db-1") && !plan.contains("WaitDependency"),
        "{plan}"
    );
}

#[test]
fn orphans_are_reported_and_removed_only_on_request() {
    let p = project(LNMP);
    let mut obs = converged(&p);
    let mut old = obs.containers[0].clone();
    old.service = "cache".into();
    old.name = "demo-cache-1".into();
    old.id = "id-cache".into();
    obs.containers.push(old);
    let plan = plan_up(&p, &obs, &UpOptions::default()).expect("plan");
    assert!(plan.nodes.is_empty());
    assert!(
        plan.warnings[0].contains("demo-cache-1") && plan.warnings[0].contains("--remove-orphans")
    );
    let opts = UpOptions {
        remove_orphans: true,
        ..UpOptions::default()
    };
    assert_eq!(
        up(&p, &obs, &opts),
        "[0] RemoveContainer demo-cache-1 (orphan)\n"
    );
}

#[test]
fn down_removes_dependents_first_then_networks_and_volumes_with_v() {
    let p = project(LNMP);
    let obs = converged(&p);
    let plan = plan_down(&p, &obs, &DownOptions::default())
        .expect("plan")
        .to_string();
    assert_eq!(
        plan,
        "\
[0] RemoveContainer demo-web-1 (down)
[1] RemoveContainer demo-app-1 (down) after #0
[2] RemoveContainer demo-db-1 (down) after #1
[3] RemoveNetwork demo_default after #0 #1 #2
"
    );
    let opts = DownOptions {
        volumes: true,
        ..DownOptions::default()
    };
    let plan = plan_down(&p, &obs, &opts).expect("plan").to_string();
    assert!(
        plan.ends_with("[4] RemoveVolume demo_data after #0 #1 #2\n"),
        "{plan}"
    );
    // Nothing exists: nothing to do.
    assert!(
        plan_down(&p, &Observed::default(), &opts)
            .expect("plan")
            .is_empty()
    );
}

/// `converged(p)` where the app container has an anonymous volume at /cache.
fn with_anonymous(p: &Project) -> Observed {
    let mut obs = converged(p);
    for c in obs.containers.iter_mut().filter(|c| c.service == "app") {
        c.anonymous_volumes
            .insert("/cache".into(), format!("anon-{}", c.number));
    }
    obs
}

#[test]
fn recreate_hands_the_anonymous_volumes_on_unless_renewed() {
    let before = project(LNMP);
    let obs = with_anonymous(&before);
    let after = project(&LNMP.replace("A: \"1\"", "A: \"2\""));
    let plan = plan_up(&after, &obs, &UpOptions::default()).expect("plan");
    let inherit = plan.nodes.iter().find_map(|n| match &n.step {
        Step::CreateContainer { inherit, .. } => Some(inherit.clone()),
        _ => None,
    });
    assert_eq!(
        inherit,
        Some(BTreeMap::from([(
            "/cache".to_string(),
            "anon-1".to_string()
        )])),
        "{plan}"
    );
    assert!(
        plan.to_string().contains(
            "CreateContainer demo-app-1 (configuration changed) keeping anonymous volumes at /cache"
        ),
        "{plan}"
    );
    // -V recreates every selected container, even unchanged ones, with fresh volumes.
    let opts = UpOptions {
        renew_anon_volumes: true,
        ..UpOptions::default()
    };
    let plan = plan_up(&before, &obs, &opts).expect("plan");
    let text = plan.to_string();
    assert!(
        text.contains("RemoveContainer demo-app-1 (recreate: --renew-anon-volumes)"),
        "{text}"
    );
    assert!(!text.contains("keeping anonymous volumes"), "{text}");
    // A new replica gets its own.
    let opts = UpOptions {
        scale: BTreeMap::from([("app".to_string(), 2)]),
        ..UpOptions::default()
    };
    let text = up(&before, &obs, &opts);
    assert!(
        text.contains("CreateContainer demo-app-2 (no existing container)\n")
            || text.contains("CreateContainer demo-app-2 (no existing container) after"),
        "{text}"
    );
    assert!(!text.contains("keeping"), "{text}");
}

#[test]
fn down_v_removes_anonymous_volumes_with_their_containers() {
    let p = project(LNMP);
    let obs = with_anonymous(&p);
    let plain = plan_down(&p, &obs, &DownOptions::default())
        .expect("plan")
        .to_string();
    assert!(!plain.contains("anonymous"), "{plain}");
    let opts = DownOptions {
        volumes: true,
        ..DownOptions::default()
    };
    let plan = plan_down(&p, &obs, &opts).expect("plan").to_string();
    assert!(
        plan.contains(
            "[1] RemoveContainer demo-app-1 (down) with its anonymous volumes after #0\n"
        ),
        "{plan}"
    );
    assert!(
        plan.contains("[0] RemoveContainer demo-web-1 (down)\n"),
        "{plan}"
    );
}

const SHARED_NET: &str = r#"
name: demo
services:
  vpn:
    image: gw
  app:
    image: php
    network_mode: service:vpn
"#;

#[test]
fn a_service_sharing_a_network_waits_for_it_and_follows_its_recreation() {
    let p = project(SHARED_NET);
    let plan = up(&p, &Observed::default(), &UpOptions::default());
    assert!(
        plan.contains("WaitDependency app on vpn service_started after #"),
        "{plan}"
    );
    // The provider's image changed: it is recreated, and the container in its namespace too.
    let mut obs = converged(&p);
    for c in obs.containers.iter_mut().filter(|c| c.service == "app") {
        c.network_from = Some("id-vpn-1".into());
    }
    assert!(
        plan_up(&p, &obs, &UpOptions::default())
            .expect("plan")
            .is_empty()
    );
    obs.images.insert("vpn".into(), "sha256:newer".into());
    let plan = up(&p, &obs, &UpOptions::default());
    assert!(
        plan.contains(
            "RemoveContainer demo-app-1 (recreate: network_mode service:vpn was recreated)"
        ),
        "{plan}"
    );
    // Replaced in an earlier run while app was left alone: recreated now.
    let mut obs = converged(&p);
    for c in obs.containers.iter_mut().filter(|c| c.service == "app") {
        c.network_from = Some("id-of-an-older-vpn".into());
    }
    let plan = up(&p, &obs, &UpOptions::default());
    assert!(
        plan.contains("(recreate: network_mode service:vpn is another container now)"),
        "{plan}"
    );
    let plan = plan_up(
        &p,
        &obs,
        &UpOptions {
            no_recreate: true,
            ..UpOptions::default()
        },
    )
    .expect("plan");
    assert!(plan.is_empty(), "{plan}");
}

#[test]
fn crash_leftovers_are_recreated_even_with_no_recreate() {
    let p = project(LNMP);
    let mut obs = converged(&p);
    for c in &mut obs.containers {
        match c.service.as_str() {
            // Created, then the daemon died before it was attached.
            "web" => {
                c.state = ContainerState::Created;
                c.attached = Some(Default::default());
            }
            "db" => c.defects = vec!["its creation never finished".into()],
            _ => {}
        }
    }
    let plan = up(&p, &obs, &UpOptions::default());
    assert_eq!(
        plan,
        "\
[0] RemoveContainer demo-db-1 (recreate: its creation never finished)
[1] CreateContainer demo-db-1 (its creation never finished) after #0
[2] StartContainer demo-db-1 after #1
[3] WaitDependency app on db service_healthy after #2
[4] RestartContainer demo-app-1 (dependency db was recreated) after #3
[5] WaitDependency web on app service_healthy after #4
[6] RemoveContainer demo-web-1 (recreate: not attached to network demo_default) after #5
[7] CreateContainer demo-web-1 (not attached to network demo_default) after #5 #6
[8] StartContainer demo-web-1 after #7
"
    );
    let opts = UpOptions {
        no_recreate: true,
        ..UpOptions::default()
    };
    let plan = up(&p, &obs, &opts);
    assert!(
        plan.contains("CreateContainer demo-web-1 (not attached to network demo_default)"),
        "{plan}"
    );
    // Once repaired, nothing more to do.
    assert!(plan_up(&p, &converged(&p), &opts).expect("plan").is_empty());
}
