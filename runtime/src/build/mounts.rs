//! `RUN --mount=...`: the mount definitions BuildKit's Dockerfile frontend takes (`type=cache`,
//! `bind`, `tmpfs`, `secret`, `ssh`), parsed from their comma-separated `key=value` form and checked,
//! so that the planner can key them and the executor set them up.
//!
//! The raw fields are kept by the parser (values may hold `$VAR`); the planner expands each
//! value and calls [`RunMount::parse`] to get the typed mount.

use serde::Serialize;

/// A `--mount` value as written: its `key[=value]` fields, keys lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMount {
    /// The fields in order.
    pub fields: Vec<(String, Option<String>)>,
}

/// The keys BuildKit's `--mount` takes (with their aliases).
const KEYS: &[&str] = &[
    "type",
    "target",
    "dst",
    "destination",
    "source",
    "src",
    "from",
    "readonly",
    "ro",
    "readwrite",
    "rw",
    "id",
    "sharing",
    "mode",
    "uid",
    "gid",
    "size",
    "required",
    "env",
];

impl RawMount {
    /// Split `type=cache,target=/x,ro` into fields (a field may be double-quoted, as in a
    /// CSV line, to hold a comma). Unknown keys are refused by name.
    pub fn split(value: &str) -> Result<RawMount, String> {
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut parts = Vec::new();
        for c in value.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => parts.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        if quoted {
            return Err(format!("unterminated quote in {value:?}"));
        }
        parts.push(cur);
        for p in parts {
            if p.is_empty() {
                continue;
            }
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_string())),
                None => (p.trim().to_ascii_lowercase(), None),
            };
            if !KEYS.contains(&k.as_str()) {
                return Err(format!("unexpected key {k:?} in {value:?}"));
            }
            fields.push((k, v));
        }
        if fields.is_empty() {
            return Err("empty mount definition".into());
        }
        Ok(RawMount { fields })
    }

    /// The `from=` value as written (a stage, an image), which the stage graph resolves.
    pub fn from(&self) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == "from")
            .and_then(|(_, v)| v.as_deref())
    }
}

/// What a mount is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// Files of the context, a stage or an image, read only unless `rw` (writes discarded).
    Bind,
    /// A directory kept by the builder across builds, never part of a layer.
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A secret file (or variable) given to the build, never part of a layer or key.
    Secret,
    /// A socket forwarding to an SSH agent the build was given, never part of a layer or key.
    Ssh,
}

/// How concurrent steps share one cache mount (`sharing=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// Any number of steps use it at once.
    #[default]
    Shared,
    /// A step that finds it in use gets a fresh directory of its own.
    Private,
    /// Steps take turns: one waits until the other is done.
    Locked,
}

/// One `--mount` after substitution and checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunMount {
    /// The type.
    pub kind: MountKind,
    /// Where it appears in the container: absolute (joined with WORKDIR by the planner).
    /// None only for a secret given as `env=` alone.
    pub target: Option<String>,
    /// `source=`: a path in the context or in `from` (bind, cache).
    pub source: Option<String>,
    /// `from=` as written (bind, cache).
    pub from: Option<String>,
    /// Read only (bind: unless `rw`; cache: when `ro`).
    pub read_only: bool,
    /// The cache or secret id (cache: the target by default; secret: the target's base name).
    pub id: Option<String>,
    /// `sharing=` (cache).
    pub sharing: Sharing,
    /// `uid=` (cache, secret).
    pub uid: Option<u32>,
    /// `gid=` (cache, secret).
    pub gid: Option<u32>,
    /// `mode=` octal (cache, secret).
    pub mode: Option<u32>,
    /// `size=` in bytes (tmpfs).
    pub size: Option<u64>,
    /// `required=` (secret): fail when the build was not given it.
    pub required: bool,
    /// `env=` (secret): also expose it as this environment variable.
    pub env: Option<String>,
}

fn boolean(key: &str, v: &Option<String>) -> Result<bool, String> {
    match v.as_deref() {
        None => Ok(true),
        Some(s) if s.eq_ignore_ascii_case("true") || s == "1" => Ok(true),
        Some(s) if s.eq_ignore_ascii_case("false") || s == "0" => Ok(false),
        Some(s) => Err(format!("{key}={s}: expected true or false")),
    }
}

fn number(key: &str, v: &str, radix: u32) -> Result<u32, String> {
    u32::from_str_radix(v, radix).map_err(|_| format!("{key}={v}: not a number"))
}

/// `64m`, `1g`, `4096` into bytes (tmpfs `size=`, as Docker's units: k, m, g, binary).
fn bytes(v: &str) -> Result<u64, String> {
    let t = v.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("size={v}: expected bytes like 64m or 1g"))
}

impl RunMount {
    /// The typed mount of expanded fields; `workdir` makes a relative target absolute.
    pub fn parse(raw: &RawMount, workdir: &str) -> Result<RunMount, String> {
        let mut m = RunMount {
            kind: MountKind::Bind,
            target: None,
            source: None,
            from: None,
            read_only: true,
            id: None,
            sharing: Sharing::Shared,
            uid: None,
            gid: None,
            mode: None,
            size: None,
            required: false,
            env: None,
        };
        let mut ro: Option<bool> = None;
        let value = |k: &str, v: &Option<String>| -> Result<String, String> {
            v.clone()
                .ok_or_else(|| format!("{k} needs a value ({k}=...)"))
        };
        for (k, v) in &raw.fields {
            match k.as_str() {
                "type" => {
                    m.kind = match value(k, v)?.as_str() {
                        "bind" => MountKind::Bind,
                        "cache" => MountKind::Cache,
                        "tmpfs" => MountKind::Tmpfs,
                        "secret" => MountKind::Secret,
                        "ssh" => MountKind::Ssh,
                        other => {
                            return Err(format!(
                                "type={other}: expected bind, cache, tmpfs, secret or ssh"
                            ));
                        }
                    }
                }
                "target" | "dst" | "destination" => m.target = Some(value(k, v)?),
                "source" | "src" => m.source = Some(value(k, v)?),
                "from" => m.from = Some(value(k, v)?),
                "readonly" | "ro" => ro = Some(boolean(k, v)?),
                "readwrite" | "rw" => ro = Some(!boolean(k, v)?),
                "id" => m.id = Some(value(k, v)?),
                "sharing" => {
                    m.sharing = match value(k, v)?.as_str() {
                        "shared" => Sharing::Shared,
                        "private" => Sharing::Private,
                        "locked" => Sharing::Locked,
                        other => {
                            return Err(format!(
                                "sharing={other}: expected shared, private or locked"
                            ));
                        }
                    }
                }
                "mode" => m.mode = Some(number(k, &value(k, v)?, 8)?),
                "uid" => m.uid = Some(number(k, &value(k, v)?, 10)?),
                "gid" => m.gid = Some(number(k, &value(k, v)?, 10)?),
                "size" => m.size = Some(bytes(&value(k, v)?)?),
                "required" => m.required = boolean(k, v)?,
                "env" => m.env = Some(value(k, v)?),
                other => return Err(format!("unexpected key {other:?}")),
            }
        }
        m.read_only = match m.kind {
            MountKind::Bind => ro.unwrap_or(true),
            MountKind::Cache => ro.unwrap_or(false),
            MountKind::Tmpfs => false,
            MountKind::Secret | MountKind::Ssh => true,
        };
        if m.from.is_some() && !matches!(m.kind, MountKind::Bind | MountKind::Cache) {
            return Err("from= is only for type=bind and type=cache".into());
        }
        if m.mode.is_some_and(|x| x > 0o7777) {
            return Err("mode= takes permission bits (at most 7777)".into());
        }
        if m.kind == MountKind::Secret {
            if m.id.is_none() {
                let base = m
                    .target
                    .as_deref()
                    .map(|t| t.trim_end_matches('/').rsplit('/').next().unwrap_or(""))
                    .filter(|b| !b.is_empty());
                m.id = base.map(str::to_string);
            }
            let Some(id) = m.id.clone() else {
                return Err("type=secret needs id= (or a target to name it)".into());
            };
            if m.target.is_none() && m.env.is_none() {
                m.target = Some(format!("/run/secrets/{id}"));
            }
        } else if m.kind == MountKind::Ssh {
            // The agent's id (`--ssh ID=SOCKET`); the target is numbered by the planner.
            m.id.get_or_insert_with(|| "default".to_string());
            if m.env.is_some() || m.source.is_some() {
                return Err("type=ssh takes id, target, required, uid, gid and mode".into());
            }
        } else if m.target.is_none() {
            return Err("target= is required".into());
        }
        if let Some(t) = &m.target {
            if t.is_empty() {
                return Err("target= is empty".into());
            }
            let abs = if t.starts_with('/') {
                super::ignore::clean_path(t)
            } else {
                super::ignore::clean_path(&format!("{workdir}/{t}"))
            };
            if abs == "/" {
                return Err("target=/ would hide the whole root filesystem".into());
            }
            m.target = Some(abs);
        }
        if m.kind == MountKind::Cache && m.id.is_none() {
            m.id = m.target.clone();
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RunMount, String> {
        RunMount::parse(&RawMount::split(s)?, "/app")
    }

    #[test]
    fn defaults_per_type() {
        let c = parse("type=cache,target=/root/.cache").unwrap();
        assert_eq!(c.kind, MountKind::Cache);
        assert!(!c.read_only);
        assert_eq!(c.id.as_deref(), Some("/root/.cache"));
        assert_eq!(c.sharing, Sharing::Shared);
        let b = parse("target=.").unwrap();
        assert_eq!(b.kind, MountKind::Bind);
        assert!(b.read_only);
        assert_eq!(b.target.as_deref(), Some("/app"));
        assert!(!parse("type=bind,target=/x,rw").unwrap().read_only);
        assert!(
            !parse("type=bind,target=/x,readwrite=true")
                .unwrap()
                .read_only
        );
        let s = parse("type=secret,id=npmrc").unwrap();
        assert_eq!(s.target.as_deref(), Some("/run/secrets/npmrc"));
        let s = parse("type=secret,target=/etc/tok").unwrap();
        assert_eq!(s.id.as_deref(), Some("tok"));
        let s = parse("type=secret,id=t,env=TOKEN").unwrap();
        assert_eq!((s.target, s.env.as_deref()), (None, Some("TOKEN")));
        let t = parse("type=tmpfs,target=/tmp,size=64m").unwrap();
        assert_eq!(t.size, Some(64 << 20));
        let c =
            parse("type=cache,target=/c,id=x,sharing=locked,uid=1000,gid=50,mode=0700,ro").unwrap();
        assert_eq!(
            (c.sharing, c.uid, c.gid, c.mode, c.read_only),
            (Sharing::Locked, Some(1000), Some(50), Some(0o700), true)
        );
        assert_eq!(
            parse("type=bind,\"source=a,b\",target=/x")
                .unwrap()
                .source
                .as_deref(),
            Some("a,b")
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        let ssh = parse("type=ssh").expect("ssh");
        assert_eq!(
            (ssh.kind, ssh.id.as_deref()),
            (MountKind::Ssh, Some("default"))
        );
        assert!(parse("type=ssh,env=X").is_err());
        assert!(parse("type=cache").unwrap_err().contains("target"));
        assert!(
            parse("type=volume,target=/x")
                .unwrap_err()
                .contains("volume")
        );
        assert!(
            parse("type=cache,target=/x,sharing=no")
                .unwrap_err()
                .contains("sharing")
        );
        assert!(
            parse("type=cache,target=/x,foo=1")
                .unwrap_err()
                .contains("foo")
        );
        assert!(
            parse("type=tmpfs,target=/x,from=a")
                .unwrap_err()
                .contains("from")
        );
        assert!(parse("type=secret").unwrap_err().contains("id="));
        assert!(parse("type=bind,target=/").unwrap_err().contains("root"));
        assert!(
            parse("type=cache,target=/x,uid=x")
                .unwrap_err()
                .contains("uid")
        );
        assert!(parse("type=cache,target=/x,mode=99999").is_err());
        assert!(
            parse("type=tmpfs,target=/x,size=lots")
                .unwrap_err()
                .contains("size")
        );
    }
}
