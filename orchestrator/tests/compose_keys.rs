//! Every key of the Compose Specification is applied, warned about by name, or refused: none is
//! parsed and silently dropped.
//!
//! `fixtures/keys/compose.yaml` sets every key of the specification's service, build, deploy,
//! network, volume, config, secret and top-level objects once. [`KEYS`] says what berth does with
//! each. The test walks both the fixture and what `berth config --format json` prints: a key in
//! either that [`KEYS`] does not list fails the test (it would be a key nobody decided on), and
//! so does a listed key missing from the fixture. Then each key is checked for its class:
//!
//! - applied by the engine: the field is read outside the loader (`src/` minus `compose/`);
//! - applied by the loader: it is consumed while loading (merged, read, interpolated);
//! - warned: `berth config` prints a warning naming its path;
//! - refused: a small file using it fails to load with an error naming it.
//!
//! Runs without root: only the loader and `berth config` are involved.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// What berth does with one key.
#[derive(Debug, Clone, Copy)]
enum Class {
    /// The engine reads the model field named by this token (`.cap_add`).
    Engine(&'static str),
    /// Consumed or applied while loading (merged, read into other keys, profiles...).
    Loader,
    /// `berth config` warns with this text (the key's path in the fixture).
    Warned(&'static str),
    /// Refused at load: a file setting it fails with this error text. The file is
    /// [`refusal_case`] of the key.
    Refused(&'static str),
}

use Class::*;

/// Each key path (`*` a name, `[]` a list item) and what berth does with it.
const KEYS: &[(&str, Class)] = &[
    // Top level.
    ("version", Loader),
    ("name", Loader),
    ("include", Loader),
    ("include[].path", Loader),
    ("include[].project_directory", Loader),
    ("include[].env_file", Loader),
    ("services", Loader),
    ("networks", Loader),
    ("volumes", Loader),
    ("configs", Loader),
    ("secrets", Loader),
    ("models", Warned("top-level `models`")),
    ("models.*.model", Warned("top-level `models`")),
    ("models.*.context_size", Warned("top-level `models`")),
    ("models.*.runtime_flags", Warned("top-level `models`")),
    // Services.
    ("services.*.annotations", Engine("svc.annotations")),
    ("services.*.attach", Engine(".attach")),
    ("services.*.blkio_config", Engine("svc.blkio_config")),
    ("services.*.build", Engine(".build")),
    ("services.*.build.context", Engine(".context")),
    ("services.*.build.dockerfile", Engine(".dockerfile")),
    (
        "services.*.build.dockerfile_inline",
        Engine(".dockerfile_inline"),
    ),
    ("services.*.build.args", Engine(".args")),
    ("services.*.build.ssh", Engine(".ssh")),
    ("services.*.build.cache_from", Engine("b.cache_from")),
    ("services.*.build.cache_to", Engine(".cache_to")),
    (
        "services.*.build.additional_contexts",
        Engine(".additional_contexts"),
    ),
    (
        "services.*.build.entitlements",
        Warned("services.all.build.entitlements"),
    ),
    ("services.*.build.extra_hosts", Engine("b.extra_hosts")),
    (
        "services.*.build.isolation",
        Warned("services.all.build.isolation"),
    ),
    ("services.*.build.privileged", Engine("b.privileged")),
    ("services.*.build.labels", Engine("b.labels")),
    ("services.*.build.no_cache", Engine(".no_cache")),
    ("services.*.build.network", Engine("b.network")),
    ("services.*.build.pull", Engine("b.pull")),
    ("services.*.build.platforms", Engine("b.platforms")),
    ("services.*.build.secrets", Engine("b.secrets")),
    ("services.*.build.shm_size", Engine("b.shm_size")),
    ("services.*.build.tags", Engine("b.tags")),
    ("services.*.build.target", Engine("b.target")),
    ("services.*.build.ulimits", Engine("b.ulimits")),
    (
        "services.*.build.provenance",
        Warned("services.all.build.provenance"),
    ),
    ("services.*.build.sbom", Warned("services.all.build.sbom")),
    ("services.*.cap_add", Engine(".cap_add")),
    ("services.*.cap_drop", Engine(".cap_drop")),
    ("services.*.cgroup", Engine("cgroupns_mode: svc.cgroup")),
    ("services.*.cgroup_parent", Engine("svc.cgroup_parent")),
    ("services.*.command", Engine(".command")),
    ("services.*.configs", Engine(".configs")),
    ("services.*.configs[].source", Engine(".source")),
    ("services.*.configs[].target", Engine("r.target")),
    ("services.*.configs[].uid", Engine("r.uid")),
    ("services.*.configs[].gid", Engine("r.gid")),
    ("services.*.configs[].mode", Engine("r.mode")),
    ("services.*.container_name", Engine(".container_name")),
    ("services.*.cpu_count", Warned("services.all.cpu_count")),
    ("services.*.cpu_percent", Warned("services.all.cpu_percent")),
    ("services.*.cpu_period", Engine(".cpu_period")),
    ("services.*.cpu_quota", Engine(".cpu_quota")),
    ("services.*.cpu_rt_period", Engine("svc.cpu_rt_period")),
    ("services.*.cpu_rt_runtime", Engine("svc.cpu_rt_runtime")),
    ("services.*.cpu_shares", Engine(".cpu_shares")),
    ("services.*.cpus", Engine(".cpus")),
    ("services.*.cpuset", Engine(".cpuset")),
    (
        "services.*.credential_spec",
        Warned("services.all.credential_spec"),
    ),
    ("services.*.depends_on", Engine(".depends_on")),
    ("services.*.depends_on.*.condition", Engine(".condition")),
    ("services.*.depends_on.*.restart", Engine("d.restart")),
    ("services.*.depends_on.*.required", Engine(".required")),
    ("services.*.deploy", Engine(".deploy")),
    ("services.*.deploy.mode", Loader),
    ("services.*.deploy.replicas", Engine(".replicas()")),
    (
        "services.*.deploy.labels",
        Warned("services.all.deploy.labels"),
    ),
    (
        "services.*.deploy.endpoint_mode",
        Warned("services.all.deploy.endpoint_mode"),
    ),
    ("services.*.deploy.resources", Engine(".resources")),
    ("services.*.deploy.resources.limits", Engine(".limits")),
    ("services.*.deploy.resources.limits.cpus", Engine("l.cpus")),
    (
        "services.*.deploy.resources.limits.memory",
        Engine("l.memory"),
    ),
    ("services.*.deploy.resources.limits.pids", Engine("l.pids")),
    (
        "services.*.deploy.resources.reservations",
        Engine("reservations"),
    ),
    // A CPU share or a process count cannot be reserved outside Swarm (Compose drops both).
    (
        "services.*.deploy.resources.reservations.cpus",
        Warned("services.all.deploy.resources.reservations.cpus/pids"),
    ),
    (
        "services.*.deploy.resources.reservations.memory",
        Engine("r.memory"),
    ),
    (
        "services.*.deploy.resources.reservations.pids",
        Warned("services.all.deploy.resources.reservations.cpus/pids"),
    ),
    (
        "services.*.deploy.resources.reservations.devices",
        Warned("services.all.deploy.resources.devices"),
    ),
    (
        "services.*.deploy.resources.reservations.generic_resources",
        Warned("services.all.deploy.resources.devices"),
    ),
    (
        "services.*.deploy.restart_policy",
        Engine(".restart_policy"),
    ),
    (
        "services.*.deploy.placement",
        Warned("services.all.deploy.placement"),
    ),
    (
        "services.*.deploy.update_config",
        Warned("services.all.deploy.update_config"),
    ),
    (
        "services.*.deploy.rollback_config",
        Warned("services.all.deploy.rollback_config"),
    ),
    ("services.*.develop", Engine(".develop")),
    (
        "services.*.device_cgroup_rules",
        Engine(".device_cgroup_rules"),
    ),
    ("services.*.devices", Engine("path_on_host: d.source")),
    ("services.*.dns", Engine(".dns")),
    ("services.*.dns_opt", Engine(".dns_opt")),
    ("services.*.dns_search", Engine(".dns_search")),
    ("services.*.domainname", Engine("svc.domainname")),
    ("services.*.entrypoint", Engine(".entrypoint")),
    // Read into `environment` by the loader; kept for reference.
    ("services.*.env_file", Loader),
    ("services.*.env_file[].path", Loader),
    ("services.*.env_file[].required", Loader),
    ("services.*.env_file[].format", Loader),
    ("services.*.environment", Engine(".environment")),
    // Metadata only, in Docker as in berth: containers on a network reach every port.
    ("services.*.expose", Loader),
    ("services.*.extends", Loader),
    ("services.*.extends.file", Loader),
    ("services.*.extends.service", Loader),
    ("services.*.external_links", Engine("svc.external_links")),
    ("services.*.extra_hosts", Engine(".extra_hosts")),
    ("services.*.gpus", Warned("services.all.gpus")),
    ("services.*.group_add", Engine("svc.group_add")),
    ("services.*.healthcheck", Engine(".healthcheck")),
    ("services.*.healthcheck.test", Engine(".test")),
    ("services.*.healthcheck.interval", Engine(".interval")),
    ("services.*.healthcheck.timeout", Engine(".timeout")),
    ("services.*.healthcheck.retries", Engine(".retries")),
    (
        "services.*.healthcheck.start_period",
        Engine(".start_period"),
    ),
    (
        "services.*.healthcheck.start_interval",
        Engine(".start_interval"),
    ),
    ("services.*.healthcheck.disable", Engine(".disable")),
    ("services.*.hostname", Engine(".hostname")),
    ("services.*.image", Engine(".image")),
    ("services.*.init", Engine(".init")),
    // Every mode runs: private, shareable, none, host, service:/container: (joined).
    ("services.*.ipc", Engine("ipc_mode: svc.ipc")),
    ("services.*.isolation", Warned("services.all.isolation")),
    ("services.*.label_file", Loader),
    ("services.*.labels", Engine("svc.labels")),
    ("services.*.links", Engine(".links")),
    ("services.*.logging", Engine(".logging")),
    ("services.*.logging.driver", Engine(".driver")),
    ("services.*.logging.options", Engine(".options")),
    ("services.*.mac_address", Engine("svc.mac_address")),
    ("services.*.mem_limit", Engine(".mem_limit")),
    ("services.*.mem_reservation", Engine("svc.mem_reservation")),
    ("services.*.mem_swappiness", Engine("svc.mem_swappiness")),
    ("services.*.memswap_limit", Engine("svc.memswap_limit")),
    ("services.*.models", Warned("services.all.models")),
    ("services.*.network_mode", Engine(".network_mode")),
    ("services.*.networks", Engine(".networks")),
    ("services.*.networks.*.aliases", Engine(".aliases")),
    (
        "services.*.networks.*.ipv4_address",
        Engine(".ipv4_address"),
    ),
    (
        "services.*.networks.*.ipv6_address",
        Engine(".ipv6_address"),
    ),
    (
        "services.*.networks.*.link_local_ips",
        Engine("o.link_local_ips"),
    ),
    ("services.*.networks.*.mac_address", Engine("o.mac_address")),
    ("services.*.networks.*.priority", Engine(".priority")),
    ("services.*.networks.*.gw_priority", Engine("o.gw_priority")),
    (
        "services.*.networks.*.interface_name",
        Engine(".interface_name"),
    ),
    (
        "services.*.networks.*.driver_opts",
        Engine("o.driver_opts.get(SYSCTLS_OPT)"),
    ),
    (
        "services.*.oom_kill_disable",
        Engine("svc.oom_kill_disable"),
    ),
    ("services.*.oom_score_adj", Engine("svc.oom_score_adj")),
    ("services.*.pid", Engine("pid_mode: svc.pid")),
    ("services.*.pids_limit", Engine(".pids_limit")),
    // The host's own platform runs; another is warned.
    ("services.*.platform", Loader),
    ("services.*.ports", Engine(".ports")),
    ("services.*.ports[].name", Loader),
    ("services.*.ports[].target", Engine(".target")),
    ("services.*.ports[].published", Engine(".published")),
    ("services.*.ports[].host_ip", Engine(".host_ip")),
    ("services.*.ports[].protocol", Engine(".protocol")),
    (
        "services.*.ports[].app_protocol",
        Warned("services.all.ports[0].app_protocol"),
    ),
    // `host` and `ingress` both publish on the host.
    ("services.*.ports[].mode", Loader),
    ("services.*.post_start", Engine("svc.post_start")),
    ("services.*.pre_stop", Engine("svc.pre_stop")),
    ("services.*.privileged", Engine(".privileged")),
    ("services.*.profiles", Loader),
    (
        "services.*.provider",
        Refused("provider services are not supported by berth"),
    ),
    ("services.*.pull_policy", Engine(".pull_policy")),
    ("services.*.read_only", Engine(".read_only")),
    ("services.*.restart", Engine(".restart")),
    ("services.*.runtime", Engine(".runtime")),
    ("services.*.scale", Engine(".replicas()")),
    ("services.*.secrets", Engine(".secrets")),
    ("services.*.secrets[].source", Engine(".source")),
    ("services.*.secrets[].target", Engine("r.target")),
    ("services.*.secrets[].uid", Engine("r.uid")),
    ("services.*.secrets[].gid", Engine("r.gid")),
    ("services.*.secrets[].mode", Engine("r.mode")),
    ("services.*.security_opt", Engine(".security_opt")),
    ("services.*.shm_size", Engine(".shm_size")),
    ("services.*.stdin_open", Engine(".stdin_open")),
    ("services.*.stop_grace_period", Engine(".stop_grace_period")),
    ("services.*.stop_signal", Engine(".stop_signal")),
    ("services.*.storage_opt", Warned("services.all.storage_opt")),
    ("services.*.sysctls", Engine(".sysctls")),
    ("services.*.tmpfs", Engine("tmpfs: svc")),
    ("services.*.tty", Engine(".tty")),
    ("services.*.ulimits", Engine(".ulimits")),
    ("services.*.use_api_socket", Engine("svc.use_api_socket")),
    ("services.*.user", Engine(".user")),
    ("services.*.userns_mode", Engine("svc.userns_mode")),
    ("services.*.uts", Engine("host_mode(&svc.uts)")),
    ("services.*.volumes", Engine(".volumes")),
    ("services.*.volumes[].type", Engine(".kind")),
    ("services.*.volumes[].source", Engine(".source")),
    ("services.*.volumes[].target", Engine(".target")),
    ("services.*.volumes[].read_only", Engine(".read_only")),
    // A macOS hint: no effect on Linux, with Docker as with berth.
    ("services.*.volumes[].consistency", Loader),
    (
        "services.*.volumes[].bind.propagation",
        Engine("b.propagation"),
    ),
    (
        "services.*.volumes[].bind.create_host_path",
        Engine("create_host_path"),
    ),
    (
        "services.*.volumes[].bind.selinux",
        Warned("services.all.volumes[0].bind.selinux"),
    ),
    ("services.*.volumes[].bind.recursive", Engine("b.recursive")),
    ("services.*.volumes[].bind", Loader),
    ("services.*.volumes[].volume", Loader),
    ("services.*.volumes[].volume.nocopy", Engine("o.nocopy")),
    ("services.*.volumes[].volume.subpath", Engine("o.subpath")),
    ("services.*.volumes[].tmpfs", Engine(".tmpfs")),
    ("services.*.volumes[].tmpfs.size", Engine(".size")),
    ("services.*.volumes[].tmpfs.mode", Engine("mode: t.mode")),
    (
        "services.*.volumes[].image",
        Refused("image mounts are not supported"),
    ),
    ("services.*.volumes_from", Engine("svc.volumes_from")),
    ("services.*.working_dir", Engine(".working_dir")),
    // Networks.
    ("networks.*.name", Engine("name")),
    ("networks.*.driver", Loader),
    (
        "networks.*.driver_opts",
        Engine("bridge_options::parse(&applied)"),
    ),
    ("networks.*.attachable", Warned("networks.front.attachable")),
    ("networks.*.enable_ipv4", Loader),
    ("networks.*.enable_ipv6", Engine("net.enable_ipv6")),
    ("networks.*.external", Engine("net.external")),
    ("networks.*.internal", Engine("net.internal")),
    ("networks.*.labels", Engine("net.labels")),
    ("networks.*.ipam", Engine(".ipam")),
    ("networks.*.ipam.driver", Loader),
    (
        "networks.*.ipam.options",
        Warned("networks.front.ipam.options.o"),
    ),
    ("networks.*.ipam.config", Engine(".config")),
    ("networks.*.ipam.config[].subnet", Engine("p.subnet")),
    ("networks.*.ipam.config[].ip_range", Engine("p.ip_range")),
    ("networks.*.ipam.config[].gateway", Engine("p.gateway")),
    (
        "networks.*.ipam.config[].aux_addresses",
        Engine("p.aux_addresses"),
    ),
    // Volumes.
    ("volumes.*.name", Engine("vol.name")),
    ("volumes.*.driver", Loader),
    ("volumes.*.driver_opts", Engine("v.driver_opts")),
    ("volumes.*.external", Engine("vol.external")),
    ("volumes.*.labels", Engine("v.labels.clone()")),
    // Configs and secrets.
    ("configs.*.name", Loader),
    ("configs.*.file", Engine(".file")),
    (
        "configs.*.environment",
        Refused("configs.env_config.environment is not supported"),
    ),
    (
        "configs.*.content",
        Refused("configs.content_config.content is not supported"),
    ),
    ("configs.*.external", Warned("configs.ext_config (external")),
    ("configs.*.labels", Warned("configs.file_config.labels")),
    (
        "configs.*.template_driver",
        Warned("configs.tpl_config (external"),
    ),
    ("secrets.*.name", Loader),
    ("secrets.*.file", Engine(".file")),
    (
        "secrets.*.environment",
        Refused("secrets.env_secret.environment is not supported"),
    ),
    ("secrets.*.external", Warned("secrets.ext_secret (external")),
    ("secrets.*.labels", Warned("secrets.file_secret.labels")),
    ("secrets.*.driver", Warned("secrets.drv_secret (external")),
    (
        "secrets.*.driver_opts",
        Warned("secrets.drv_secret.driver_opts"),
    ),
];

/// The file that must fail to load for a refused key: the fixture's own object, mounted.
fn refusal_case(key: &str) -> &'static str {
    match key {
        "services.*.volumes[].image" => {
            "services:\n  a:\n    image: x\n    volumes:\n      - type: image\n        source: alpine\n        target: /img\n        image: {subpath: etc}\n"
        }
        "configs.*.environment" => {
            "services:\n  a:\n    image: x\n    configs: [env_config]\nconfigs:\n  env_config:\n    environment: E\n"
        }
        "configs.*.content" => {
            "services:\n  a:\n    image: x\n    configs: [content_config]\nconfigs:\n  content_config:\n    content: hello\n"
        }
        "services.*.provider" => {
            "services:\n  prov:\n    provider: {type: model, options: {model: x}}\n"
        }
        "secrets.*.environment" => {
            "services:\n  a:\n    image: x\n    secrets: [env_secret]\nsecrets:\n  env_secret:\n    environment: E\n"
        }
        other => panic!("no refusal case for {other}"),
    }
}

fn berth(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(dir)
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_PROFILES")
        .env_remove("COMPOSE_FILE")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .env("E", "1")
        .output()
        .expect("run berth")
}

/// Every proper prefix of the listed paths (where the walk goes deeper).
fn prefixes() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (k, _) in KEYS {
        for (i, c) in k.char_indices() {
            if c == '.' || k[i..].starts_with("[]") {
                out.insert(k[..i].to_string());
            }
        }
    }
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Walks a document, naming each key it meets by its generalised path: a listed key goes to
/// `seen`, an unlisted one to `unknown`. Below a listed leaf (labels, environment...) the keys
/// are the user's, not the specification's.
fn walk(
    v: &Value,
    path: &str,
    known: &BTreeSet<&str>,
    deeper: &BTreeSet<String>,
    seen: &mut BTreeSet<String>,
    unknown: &mut BTreeSet<String>,
) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k.starts_with("x-") {
                    continue;
                }
                let named = join(path, k);
                let star = join(path, "*");
                let p = if known.contains(named.as_str()) || deeper.contains(&named) {
                    named
                } else if known.contains(star.as_str()) || deeper.contains(&star) {
                    star
                } else {
                    unknown.insert(named);
                    continue;
                };
                if known.contains(p.as_str()) {
                    seen.insert(p.clone());
                }
                if deeper.contains(&p) {
                    walk(child, &p, known, deeper, seen, unknown);
                }
            }
        }
        Value::Array(items) => {
            let p = format!("{path}[]");
            if deeper.contains(&p) {
                for item in items {
                    walk(item, &p, known, deeper, seen, unknown);
                }
            }
        }
        _ => {}
    }
}

/// The Rust sources outside the loader, where the engine and the CLI read the model.
fn engine_sources() -> String {
    fn collect(dir: &Path, out: &mut String) {
        for e in std::fs::read_dir(dir).expect("read src").flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "compose") {
                    continue;
                }
                collect(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    let mut out = String::new();
    collect(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

#[test]
fn every_compose_key_is_applied_warned_or_refused() {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
    let known: BTreeSet<&str> = KEYS.iter().map(|(k, _)| *k).collect();
    assert_eq!(known.len(), KEYS.len(), "a key is listed twice");
    let deeper = prefixes();

    // The fixture sets every listed key but those that fail to load (their own small file sets
    // them), and nothing the list does not name.
    let text = std::fs::read_to_string(dir.join("compose.yaml")).expect("fixture");
    let input: Value = yaml_serde::from_str(&text).expect("fixture is YAML");
    let (mut in_fixture, mut unknown) = (BTreeSet::new(), BTreeSet::new());
    walk(&input, "", &known, &deeper, &mut in_fixture, &mut unknown);
    assert!(unknown.is_empty(), "fixture keys not in KEYS: {unknown:?}");
    let missing: Vec<&str> = KEYS
        .iter()
        .filter(|(k, c)| !in_fixture.contains(*k) && !matches!(c, Refused(_)))
        .map(|(k, _)| *k)
        .collect();
    assert!(
        missing.is_empty(),
        "KEYS the fixture does not set: {missing:?}"
    );

    let out = berth(&dir, &["--profile", "full", "config", "--format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "berth config failed: {stderr}");
    let printed: Value = serde_json::from_slice(&out.stdout).expect("config prints JSON");
    let (mut in_output, mut unknown) = (BTreeSet::new(), BTreeSet::new());
    walk(&printed, "", &known, &deeper, &mut in_output, &mut unknown);
    assert!(
        unknown.is_empty(),
        "berth config prints keys not in KEYS: {unknown:?}"
    );

    let sources = engine_sources();
    let (mut applied, mut warned, mut refused) = (0, 0, 0);
    let mut ignored = Vec::new();
    for (key, class) in KEYS {
        match class {
            Engine(token) => {
                if sources.contains(token) {
                    applied += 1;
                } else {
                    ignored.push(format!("{key}: the engine never reads {token}"));
                }
            }
            Loader => applied += 1,
            Warned(text) => {
                if stderr.contains(text) {
                    warned += 1;
                } else {
                    ignored.push(format!("{key}: no warning naming {text:?}"));
                }
            }
            Refused(text) => {
                let tmp = tempfile::Builder::new()
                    .prefix("berth-keys-")
                    .tempdir()
                    .expect("tempdir");
                std::fs::write(tmp.path().join("compose.yaml"), refusal_case(key))
                    .expect("write case");
                let o = berth(tmp.path(), &["config"]);
                let err = String::from_utf8_lossy(&o.stderr);
                if !o.status.success() && err.contains(text) {
                    refused += 1;
                } else {
                    ignored.push(format!("{key}: not refused with {text:?}: {err}"));
                }
            }
        }
    }
    println!(
        "{} keys: applied {applied}, warned {warned}, refused {refused}, silently ignored {}",
        KEYS.len(),
        ignored.len()
    );
    assert!(ignored.is_empty(), "keys silently ignored:\n{ignored:#?}");
}
