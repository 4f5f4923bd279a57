//! A service's lifecycle hooks (`post_start`, `pre_stop`): commands run in the container
//! right after it starts and right before it is stopped, as Compose 2.30+ runs them. They are
//! kept on the container as labels (JSON), so every path that starts or stops it (up,
//! restart, stop, down, a restarted daemon) finds them on the record.

use berth_runtime::container::{ExecConfig, Record, Runtime};
use serde_json::Value;

/// Label holding the `post_start` hooks as a JSON list of exec configs.
pub const POST_START: &str = "berth.hooks.post-start";
/// Label holding the `pre_stop` hooks.
pub const PRE_STOP: &str = "berth.hooks.pre-stop";

/// The hooks of one key (`post_start` or `pre_stop`) as exec configs; the error names the
/// entry and what is wrong with it.
pub fn parse(key: &str, hooks: &Value) -> Result<Vec<ExecConfig>, String> {
    let Value::Array(list) = hooks else {
        return Err(format!("{key}: expected a list of hooks"));
    };
    let mut out = Vec::new();
    for (i, h) in list.iter().enumerate() {
        let at = format!("{key}[{i}]");
        let Value::Object(h) = h else {
            return Err(format!("{at}: expected a mapping with a command"));
        };
        for k in h.keys() {
            if ![
                "command",
                "user",
                "privileged",
                "working_dir",
                "environment",
            ]
            .contains(&k.as_str())
            {
                return Err(format!("{at}.{k}: not a hook key"));
            }
        }
        let args = match h.get("command") {
            Some(Value::String(s)) => {
                shell_words::split(s).map_err(|e| format!("{at}.command {s:?}: {e}"))?
            }
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(format!("{at}.command: {other} is not a string")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(format!("{at}.command: required (a string or a list)")),
        };
        if args.is_empty() {
            return Err(format!("{at}.command is empty"));
        }
        if h.get("privileged").and_then(Value::as_bool) == Some(true) {
            return Err(format!(
                "{at}.privileged: berth runs hooks with the container's own privileges only"
            ));
        }
        let text = |k: &str| h.get(k).and_then(Value::as_str).map(str::to_string);
        let env = match h.get("environment") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    Value::Null => k.clone(),
                    other => format!("{k}={other}"),
                })
                .collect(),
            Some(_) => return Err(format!("{at}.environment: a list or a mapping")),
        };
        out.push(ExecConfig {
            args,
            env,
            user: text("user"),
            working_dir: text("working_dir").map(Into::into),
            ..Default::default()
        });
    }
    Ok(out)
}

/// Runs the hooks under `label` of a running container in order; the first that fails (or
/// cannot run) is the error, naming the container, the hook and its exit code and stderr.
pub fn run(runtime: &Runtime, rec: &Record, label: &str) -> Result<(), String> {
    let Some(json) = rec.config.labels.get(label) else {
        return Ok(());
    };
    let hooks: Vec<ExecConfig> =
        serde_json::from_str(json).map_err(|e| format!("label {label}: {e}"))?;
    let key = if label == POST_START {
        "post_start"
    } else {
        "pre_stop"
    };
    for (i, h) in hooks.iter().enumerate() {
        let (code, err) = super::watch::sync::run_in(runtime, rec, h)?;
        if code != 0 {
            let service = rec
                .config
                .labels
                .get(super::labels::SERVICE)
                .map(|s| format!("service {s}: "))
                .unwrap_or_default();
            return Err(format!(
                "{service}container {}: {key}[{i}] {:?} exited with code {code}{}",
                rec.config.name,
                h.args.join(" "),
                if err.is_empty() {
                    String::new()
                } else {
                    format!(": {err}")
                }
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_parse_every_form_and_name_what_is_wrong() {
        let v: Value = serde_json::json!([
            {"command": "echo 'a b'", "user": "1", "working_dir": "/w", "environment": {"K": "v"}},
            {"command": ["true"], "environment": ["A=1"]}
        ]);
        let h = parse("post_start", &v).expect("hooks");
        assert_eq!(h[0].args, ["echo", "a b"]);
        assert_eq!(h[0].user.as_deref(), Some("1"));
        assert_eq!(h[0].env, ["K=v"]);
        assert_eq!(h[1].env, ["A=1"]);
        let e = parse("pre_stop", &serde_json::json!([{"user": "x"}])).unwrap_err();
        assert!(e.contains("pre_stop[0].command"), "{e}");
        let e = parse(
            "post_start",
            &serde_json::json!([{"command": "true", "privileged": true}]),
        )
        .unwrap_err();
        assert!(e.contains("post_start[0].privileged"), "{e}");
    }
}
