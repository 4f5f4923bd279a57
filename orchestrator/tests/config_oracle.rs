//! `berth config --format json` against Docker Compose v2's `docker-compose config --format
//! json` on every fixture case of the loader tests (`tests/fixtures/**`, the `# case` files
//! `fixtures.rs` runs, loaded the way their headers say).
//!
//! For each case: when Compose refuses the file, berth must refuse it too; when Compose
//! accepts it, berth must accept it (unless the case is in [`BERTH_STRICTER`], with its
//! reason) and print the same JSON after [`normalise`], which removes only the differences
//! listed there as intended. The test prints "N fixtures: same S, differing D" and the first
//! differing paths of each differing fixture; it fails unless D is 0.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// Cases not given to Compose at all, with the reason.
const NOT_FOR_COMPOSE: &[(&str, &str)] = &[
    (
        "parse/alias_bomb.yaml",
        "Compose expands YAML aliases without a limit and exhausts the machine's memory",
    ),
    (
        "include/remote.yaml",
        "Compose would fetch the oci:// include from a registry; tests stay off the network",
    ),
];

/// Cases Compose accepts and berth refuses on purpose, with the reason.
const BERTH_STRICTER: &[(&str, &str)] = &[
    (
        "interpolate/bad_template.yaml",
        "a lone `$` is kept by Compose; berth names it (write `$$`) instead of guessing",
    ),
    (
        "invalid/bad_addresses.yaml",
        "malformed IP addresses and subnets fail only at `up` in Compose; berth refuses at load",
    ),
    (
        "invalid/bad_container_name.yaml",
        "Docker refuses the name at create; berth says so at load",
    ),
    (
        "invalid/bad_dns.yaml",
        "a dns entry that is not an address fails only in the container; berth refuses it",
    ),
    (
        "invalid/bad_expose.yaml",
        "expose entries that are not ports fail only at create in Docker",
    ),
    (
        "invalid/bad_logging.yaml",
        "the json-file driver's max-size is checked by the daemon in Docker; berth at load",
    ),
    (
        "invalid/bad_name_file_values.yaml",
        "control characters in hostname/extra_hosts would inject lines into /etc/hosts",
    ),
    (
        "invalid/bad_project_name.yaml",
        "Compose lowercases a name from a directory but refuses a bad -p; berth refuses both",
    ),
    (
        "invalid/bad_restart.yaml",
        "an unknown restart policy fails only at create in Docker",
    ),
    (
        "invalid/bad_security_opt.yaml",
        "security options berth cannot apply are refused by name rather than dropped",
    ),
    (
        "invalid/bad_ulimit.yaml",
        "soft above hard fails only at create in Docker",
    ),
    (
        "invalid/bad_volume_mode.yaml",
        "an unknown mount mode fails only at create in Docker",
    ),
    (
        "invalid/duplicate_mount_target.yaml",
        "two mounts on one target fail only at create in Docker",
    ),
    (
        "invalid/file_object_not_file.yaml",
        "inline config content and secrets from the environment are not run by berth yet",
    ),
    (
        "invalid/healthy_without_healthcheck.yaml",
        "a wait for health that can never come would hang `up`; berth refuses it at load",
    ),
    (
        "invalid/mount_type_not_run.yaml",
        "image and npipe mounts are not run by berth: refused by name",
    ),
    (
        "invalid/port_clash.yaml",
        "two services publishing one host port fail only at start in Docker",
    ),
    (
        "invalid/ports_with_shared_network.yaml",
        "Docker refuses published ports with a shared network namespace at create",
    ),
    (
        "oracle/npipe.yaml",
        "Windows named pipes do not exist on Linux: refused by name",
    ),
    (
        "oracle/provider.yaml",
        "berth runs no provider plugins: refused naming `provider` rather than run without it",
    ),
    (
        "invalid/sctp_published.yaml",
        "berth's port publishing handles tcp and udp only",
    ),
];

/// Why `blkio_config`'s device lists differ (the fixture's `# expect` lines check berth's).
const THROTTLE_KEYS: &str = "Compose's JSON prints a device entry with Go's field names \
     (`Path`, `Weight`, and `Rate` as a string), not the specification's `path`, `weight` and \
     `rate`; berth prints the specification's";

/// Values of one fixture that differ on purpose: (fixture, JSON pointer, reason). The pointer
/// is removed from both outputs before comparing.
const INTENDED: &[(&str, &str, &str)] = &[
    (
        "normalize/blkio.yaml",
        "/services/a/blkio_config/weight_device",
        THROTTLE_KEYS,
    ),
    (
        "normalize/blkio.yaml",
        "/services/a/blkio_config/device_read_bps",
        THROTTLE_KEYS,
    ),
    (
        "normalize/blkio.yaml",
        "/services/a/blkio_config/device_write_bps",
        THROTTLE_KEYS,
    ),
    (
        "normalize/blkio.yaml",
        "/services/a/blkio_config/device_read_iops",
        THROTTLE_KEYS,
    ),
    (
        "normalize/blkio.yaml",
        "/services/a/blkio_config/device_write_iops",
        THROTTLE_KEYS,
    ),
    (
        "extends/build_context_default.yaml",
        "/services/theirs/build/context",
        "a service extended from another file with `build:` but no context builds in that \
         file's directory, where relative paths of that file resolve; Compose takes the \
         project directory",
    ),
    (
        "interpolate/keys_untouched.yaml",
        "/services/app/environment",
        "Compose escapes `$` in mapping keys as `$$`, yet never interpolates keys, so its \
         output loads back with a different variable name; berth prints the key as loaded",
    ),
];

/// Differences that are intended, removed from both outputs before comparing.
///
/// - The values [`INTENDED`] lists for one fixture.
/// - Numbers compare by value (`1.0` and `1`), in [`diff`].
/// - A service's `x-*` keys: Compose's JSON leaves them out (its YAML keeps them); berth
///   prints them in both formats, as the specification keeps extensions.
/// - `labels` keys starting with `x-`: Compose takes them for extensions and prints a Go map
///   under the label `#extensions`; berth keeps them as the labels the file sets.
fn normalise(rel: &str, doc: &mut Value, from_compose: bool) {
    for (_, ptr, _) in INTENDED.iter().filter(|(f, _, _)| *f == rel) {
        let (parent, key) = ptr.rsplit_once('/').unwrap();
        if let Some(Value::Object(m)) = doc.pointer_mut(parent) {
            m.remove(key);
        }
    }
    let Some(services) = doc.get_mut("services").and_then(Value::as_object_mut) else {
        return;
    };
    for svc in services.values_mut() {
        let Some(svc) = svc.as_object_mut() else {
            continue;
        };
        svc.retain(|k, _| !k.starts_with("x-"));
        if let Some(labels) = svc.get_mut("labels").and_then(Value::as_object_mut) {
            if from_compose {
                labels.remove("#extensions");
            } else {
                labels.retain(|k, _| !k.starts_with("x-"));
            }
            if labels.is_empty() {
                svc.remove("labels");
            }
        }
    }
}

#[derive(Default, Debug)]
struct Case {
    env: BTreeMap<String, String>,
    files: Vec<PathBuf>,
    discover: bool,
    profiles: Vec<String>,
    services: Vec<String>,
    interpolate: bool,
    project_dir: Option<PathBuf>,
}

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn parse_case(path: &Path) -> Option<Case> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim() != "# case" {
        return None;
    }
    let dir = path.parent()?;
    let mut c = Case {
        interpolate: true,
        files: vec![path.to_path_buf()],
        ..Default::default()
    };
    c.env.insert("HOME".into(), "/home/tester".into());
    for line in lines {
        let Some(d) = line.strip_prefix("# ") else {
            break;
        };
        let (key, val) = d
            .split_once(':')
            .map(|(k, v)| (k, v.trim()))
            .unwrap_or((d, ""));
        match key {
            "env" => {
                let (k, v) = val.split_once('=').unwrap_or((val, ""));
                c.env.insert(k.into(), v.into());
            }
            "file" => c.files.push(dir.join(val)),
            "discover" => c.discover = true,
            "profile" => c.profiles.push(val.into()),
            "service" => c.services.push(val.into()),
            "no-interpolate" => c.interpolate = false,
            "project-dir" => c.project_dir = Some(dir.join(val)),
            "expect" | "absent" | "error" | "warn" => {}
            _ => break,
        }
    }
    Some(c)
}

fn cases() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&fixtures_root(), &mut out);
    out
}

/// Runs `exe config --format json` the way the case's headers load it. Compose runs under
/// `timeout` so a file it chokes on cannot hang the test.
fn config(exe: &[&str], path: &Path, c: &Case) -> Output {
    let mut cmd = Command::new(exe[0]);
    cmd.args(&exe[1..]);
    if !c.discover {
        for f in &c.files {
            cmd.arg("-f").arg(f);
        }
    }
    if let Some(d) = &c.project_dir {
        cmd.arg("--project-directory").arg(d);
    }
    for p in &c.profiles {
        cmd.args(["--profile", p]);
    }
    cmd.args(["config", "--format", "json"]);
    if !c.interpolate {
        cmd.arg("--no-interpolate");
    }
    cmd.args(&c.services);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&c.env)
        .current_dir(path.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.output().expect("spawn config")
}

/// The printed model, or the error text. The PyPI wrapper of `docker-compose` loses the exit
/// status, so a refusal is also an empty standard output.
fn outcome(o: &Output) -> Result<Value, String> {
    let err = || String::from_utf8_lossy(&o.stderr).trim().to_string();
    if !o.status.success() || o.stdout.iter().all(u8::is_ascii_whitespace) {
        return Err(err());
    }
    serde_json::from_slice(&o.stdout).map_err(|e| format!("bad JSON: {e}; {}", err()))
}

fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    let short = |v: &Value| {
        let s = v.to_string();
        if s.chars().count() > 120 {
            format!("{}...", s.chars().take(120).collect::<String>())
        } else {
            s
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}/{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff(u, v, &p, out),
                    (Some(u), None) => out.push(format!("{p}: only berth: {}", short(u))),
                    (None, Some(v)) => out.push(format!("{p}: only compose: {}", short(v))),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff(u, v, &format!("{path}/{i}"), out);
            }
        }
        // Numbers compare by value: a CPU count is a float in berth's model (`1.0`).
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if a != b => out.push(format!("{path}: berth {} compose {}", short(a), short(b))),
        _ => {}
    }
}

#[test_with::executable("docker-compose")]
#[test]
fn berth_config_agrees_with_compose() {
    let root = fixtures_root();
    let berth = env!("CARGO_BIN_EXE_berth");
    let compose = ["timeout", "60", "docker-compose"];
    let (mut same, mut differing, mut both_refuse) = (0, 0, 0);
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for path in cases() {
        let Some(case) = parse_case(&path) else {
            continue;
        };
        let rel = path.strip_prefix(&root).unwrap().display().to_string();
        let ours = outcome(&config(&[berth], &path, &case));
        if let Some((_, why)) = NOT_FOR_COMPOSE.iter().find(|(n, _)| *n == rel) {
            if ours.is_ok() {
                failures.push(format!(
                    "{rel}: berth accepts it (not run by Compose: {why})"
                ));
            }
            continue;
        }
        let theirs = outcome(&config(&compose, &path, &case));
        let stricter = BERTH_STRICTER.iter().any(|(n, _)| *n == rel);
        match (ours, theirs) {
            (Err(_), Err(_)) => both_refuse += 1,
            (Ok(_), Err(e)) => {
                failures.push(format!("{rel}: Compose refuses it, berth accepts: {e}"))
            }
            (Err(e), Ok(_)) if !stricter => {
                failures.push(format!("{rel}: Compose accepts it, berth refuses: {e}"))
            }
            (Err(_), Ok(_)) => {}
            (Ok(_), Ok(_)) if stricter => failures.push(format!(
                "{rel}: listed as refused by berth only, but berth accepts it"
            )),
            (Ok(mut a), Ok(mut b)) => {
                normalise(&rel, &mut a, false);
                normalise(&rel, &mut b, true);
                let mut d = Vec::new();
                diff(&a, &b, "", &mut d);
                if d.is_empty() {
                    same += 1;
                } else {
                    differing += 1;
                    let more = d.len().saturating_sub(8);
                    d.truncate(8);
                    if more > 0 {
                        d.push(format!("... and {more} more"));
                    }
                    report.push(format!("{rel}:\n    {}", d.join("\n    ")));
                }
            }
        }
    }
    println!(
        "{} fixtures: same {same}, differing {differing} (both refuse {both_refuse}, \
         refused by berth only {}, not given to Compose {})",
        same + differing,
        BERTH_STRICTER.len(),
        NOT_FOR_COMPOSE.len()
    );
    for r in &report {
        println!("{r}");
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(
        failures.is_empty() && differing == 0,
        "{differing} fixtures differ, {} disagree on refusing",
        failures.len()
    );
}
