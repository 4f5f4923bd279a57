//! A service's mounts: `volumes` (short `SRC:DST[:MODE]` to long, bind sources made
//! absolute) and `devices`; and host paths (`~`, relative) made absolute.
use std::path::{Component, Path, PathBuf};

use yaml_serde::{Mapping, Value};

use super::Canon;
use super::values::{kind, scalar_string};

impl Canon<'_> {
    pub(super) fn volumes(&mut self, p: &str, v: &mut Value) {
        let Value::Sequence(seq) = v else {
            if v.is_null() {
                *v = Value::Sequence(vec![]);
            } else {
                self.err(p, format!("must be a list, got {}", kind(v)));
            }
            return;
        };
        let mut out = Vec::new();
        for (i, item) in seq.iter_mut().enumerate() {
            let ip = format!("{p}[{i}]");
            match item {
                Value::String(s) => match self.short_volume(s) {
                    Ok(m) => out.push(Value::Mapping(m)),
                    Err(e) => self.err(&ip, format!("{s:?}: {e}")),
                },
                Value::Mapping(m) => {
                    if let Some(src) = m.get("source").and_then(scalar_string) {
                        let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
                        if ty == "bind" {
                            let abs = self.host_path(&src);
                            m.insert("source".into(), Value::String(abs));
                        } else {
                            m.insert("source".into(), Value::String(src));
                        }
                    }
                    if m.get("type").is_none() {
                        self.err(&ip, "long syntax needs `type` (bind, volume, tmpfs)");
                        continue;
                    }
                    // An npipe's target is a Windows pipe path: validate refuses the type by name.
                    let npipe = m.get("type").and_then(Value::as_str) == Some("npipe");
                    match m.get("target") {
                        Some(t)
                            if npipe || scalar_string(t).is_some_and(|t| t.starts_with('/')) => {}
                        _ => {
                            self.err(
                                &format!("{ip}.target"),
                                "must be an absolute path in the container",
                            );
                            continue;
                        }
                    }
                    if let Some(ro) = m.get_mut("read_only") {
                        self.boolean(&format!("{ip}.read_only"), ro);
                    }
                    if let Some(Value::Mapping(t)) = m.get_mut("tmpfs")
                        && let Some(sz) = t.get_mut("size")
                    {
                        self.size(&format!("{ip}.tmpfs.size"), sz);
                    }
                    if let Some(Value::Mapping(b)) = m.get_mut("bind")
                        && let Some(c) = b.get_mut("create_host_path")
                    {
                        self.boolean(&format!("{ip}.bind.create_host_path"), c);
                    }
                    out.push(Value::Mapping(m.clone()));
                }
                other => self.err(
                    &ip,
                    format!("must be a string or a mapping, got {}", kind(other)),
                ),
            }
        }
        *v = Value::Sequence(out);
    }

    /// `SRC:DST[:OPTS]` or `DST`.
    fn short_volume(&self, s: &str) -> Result<Mapping, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [dst] => (None, *dst, None),
            [src, dst] => (Some(*src), *dst, None),
            [src, dst, opts] => (Some(*src), *dst, Some(*opts)),
            _ => return Err("expected SOURCE:TARGET[:MODE]".into()),
        };
        if !dst.starts_with('/') {
            return Err(format!("target {dst:?} must be an absolute path"));
        }
        let mut m = Mapping::new();
        let is_bind = src.is_some_and(|s| s.starts_with(['/', '.', '~']) || s.is_empty());
        if src == Some("") {
            return Err("empty source".into());
        }
        m.insert(
            "type".into(),
            (if is_bind { "bind" } else { "volume" }).into(),
        );
        if let Some(src) = src {
            let src = if is_bind {
                self.host_path(src)
            } else {
                src.to_string()
            };
            m.insert("source".into(), Value::String(src));
        }
        m.insert("target".into(), Value::String(dst.to_string()));
        let mut bind = Mapping::new();
        let mut volume = Mapping::new();
        for opt in opts.into_iter().flat_map(|o| o.split(',')) {
            match opt {
                "ro" => {
                    m.insert("read_only".into(), Value::Bool(true));
                }
                "rw" | "" => {}
                "z" | "Z" => {
                    bind.insert("selinux".into(), opt.into());
                }
                "nocopy" => {
                    volume.insert("nocopy".into(), Value::Bool(true));
                }
                "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                    bind.insert("propagation".into(), opt.into());
                }
                "cached" | "delegated" | "consistent" => {
                    m.insert("consistency".into(), opt.into());
                }
                other => {
                    return Err(format!(
                        "unknown mode {other:?} (use ro, rw, z, Z, nocopy, or a propagation like rshared)"
                    ));
                }
            }
        }
        if is_bind {
            bind.insert("create_host_path".into(), Value::Bool(true));
            m.insert("bind".into(), Value::Mapping(bind));
        } else if !volume.is_empty() {
            m.insert("volume".into(), Value::Mapping(volume));
        }
        Ok(m)
    }

    /// A host path made absolute: `~` from $HOME, relative against the base directory.
    pub fn host_path(&self, s: &str) -> String {
        let p = if let Some(rest) = s.strip_prefix('~') {
            match &self.home {
                Some(h) => h.join(rest.trim_start_matches('/')),
                None => PathBuf::from(s),
            }
        } else {
            PathBuf::from(s)
        };
        let abs = if p.is_absolute() {
            p
        } else {
            self.base_dir.join(p)
        };
        clean(&abs).to_string_lossy().into_owned()
    }

    pub(super) fn devices(&mut self, p: &str, v: &mut Value) {
        let Value::Sequence(seq) = v else {
            self.err(p, format!("must be a list, got {}", kind(v)));
            return;
        };
        let mut out = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            match item {
                Value::Mapping(m) => out.push(Value::Mapping(m.clone())),
                other => {
                    let s = scalar_string(other).unwrap_or_default();
                    let parts: Vec<&str> = s.split(':').collect();
                    let (src, dst, perm) = match parts.as_slice() {
                        [a] => (*a, *a, None),
                        [a, b] if b.chars().all(|c| "rwm".contains(c)) && !b.starts_with('/') => {
                            (*a, *a, Some(*b))
                        }
                        [a, b] => (*a, *b, None),
                        [a, b, c] => (*a, *b, Some(*c)),
                        _ => {
                            self.err(
                                &format!("{p}[{i}]"),
                                format!("{s:?}: expected HOST[:CONTAINER[:PERMISSIONS]]"),
                            );
                            continue;
                        }
                    };
                    let mut m = Mapping::new();
                    m.insert("source".into(), src.into());
                    m.insert("target".into(), dst.into());
                    if let Some(perm) = perm {
                        m.insert("permissions".into(), perm.into());
                    }
                    out.push(Value::Mapping(m));
                }
            }
        }
        *v = Value::Sequence(out);
    }
}

/// Lexically normalises a path (`a/./b/../c` -> `a/c`) without touching the file system.
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::canon::testing::run;
    use yaml_serde::Value;

    #[test]
    fn clean_paths() {
        assert_eq!(clean(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(clean(Path::new("/a/b/")), PathBuf::from("/a/b"));
    }

    #[test]
    fn npipe_target_is_left_to_validate() {
        let (_, issues) = run(
            "[{type: npipe, source: '\\\\.\\pipe\\x', target: '\\\\.\\pipe\\x'}]",
            |cx, v| cx.volumes("volumes", v),
        );
        assert!(issues.is_empty(), "{issues:?}");
    }

    #[test]
    fn short_volumes_to_long_form() {
        let (v, issues) = run(
            "[./data:/data:ro, 'cache:/c:nocopy', /anon, '~/x:/x', 'a:/b:bad']",
            |cx, v| cx.volumes("volumes", v),
        );
        let v: Vec<&Value> = v.as_sequence().unwrap().iter().collect();
        assert_eq!(v[0]["type"], Value::from("bind"));
        assert_eq!(v[0]["source"], Value::from("/proj/data"));
        assert_eq!(v[0]["read_only"], Value::Bool(true));
        assert_eq!(v[0]["bind"]["create_host_path"], Value::Bool(true));
        assert_eq!(v[1]["type"], Value::from("volume"));
        assert_eq!(v[1]["source"], Value::from("cache"));
        assert_eq!(v[1]["volume"]["nocopy"], Value::Bool(true));
        assert!(v[2].get("source").is_none());
        assert_eq!(v[3]["source"], Value::from("/home/u/x"));
        assert_eq!(v.len(), 4);
        assert_eq!(issues.len(), 1);
        assert!(
            issues[0].starts_with("volumes[4]: \"a:/b:bad\": unknown mode"),
            "{issues:?}"
        );
    }

    #[test]
    fn devices_short_syntax() {
        let (v, _) = run(
            "[/dev/a, '/dev/b:rw', '/dev/c:/dev/d', '/dev/e:/dev/f:r']",
            |cx, v| cx.devices("devices", v),
        );
        let got: Vec<String> = v
            .as_sequence()
            .unwrap()
            .iter()
            .map(|d| {
                format!(
                    "{}>{}{}",
                    d["source"].as_str().unwrap(),
                    d["target"].as_str().unwrap(),
                    d.get("permissions").and_then(Value::as_str).unwrap_or("")
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "/dev/a>/dev/a",
                "/dev/b>/dev/brw",
                "/dev/c>/dev/d",
                "/dev/e>/dev/fr"
            ]
        );
    }
}
