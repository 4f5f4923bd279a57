//! `.env` and `env_file:` parsing, with Compose's rules.
//!
//! dotenvy has its own `${}` expansion that is not Compose's grammar, so values are read here and
//! expanded with [`super::interpolate`]: `KEY=VALUE`, `export KEY=…`, `# comments`, single quotes
//! literal, double quotes with escapes and multi-line values, `KEY` alone meaning "take it from the
//! environment". `format: raw` keeps every value byte for byte.

use std::path::Path;

use super::error::LoadError;
use super::interpolate::{Unset, interpolate_str};

/// One parsed entry: `None` = bare `KEY` (inherit from the environment).
pub type Entry = (String, Option<String>);

/// Parses env-file text. `lookup` resolves `${VAR}` in values (earlier entries of the same file
/// are visible to later ones); `raw` disables quotes and interpolation.
pub fn parse(
    text: &str,
    path: &Path,
    raw: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Entry>, LoadError> {
    let mut out: Vec<Entry> = Vec::new();
    // `lines()` keeps a trailing '\r' of CRLF files: values must not carry it.
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let line = lines[i].trim_start_matches('\u{feff}').trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let (key, value) = match line.find('=') {
            Some(eq) => (line[..eq].trim(), Some(&line[eq + 1..])),
            None => (line, None),
        };
        if key.is_empty() || key.chars().any(|c| c.is_whitespace()) {
            return Err(LoadError::EnvFile {
                path: path.to_path_buf(),
                line: line_no,
                message: format!("invalid variable name {key:?}"),
            });
        }
        let Some(value) = value else {
            out.push((key.to_string(), None));
            continue;
        };
        let value = if raw {
            value.to_string()
        } else {
            let v = value.trim_start();
            if let Some(body) = v.strip_prefix('\'') {
                match body.find('\'') {
                    Some(end) => body[..end].to_string(),
                    None => {
                        return Err(LoadError::EnvFile {
                            path: path.to_path_buf(),
                            line: line_no,
                            message: format!("unterminated single quote in value of {key}"),
                        });
                    }
                }
            } else if let Some(body) = v.strip_prefix('"') {
                let mut acc = body.to_string();
                let closed = loop {
                    if let Some(end) = closing_double_quote(&acc) {
                        acc.truncate(end);
                        break true;
                    }
                    if i >= lines.len() {
                        break false;
                    }
                    acc.push('\n');
                    acc.push_str(lines[i]);
                    i += 1;
                };
                if !closed {
                    return Err(LoadError::EnvFile {
                        path: path.to_path_buf(),
                        line: line_no,
                        message: format!("unterminated double quote in value of {key}"),
                    });
                }
                let unescaped = unescape(&acc);
                expand(&unescaped, &out, lookup).map_err(|message| LoadError::EnvFile {
                    path: path.to_path_buf(),
                    line: line_no,
                    message,
                })?
            } else {
                let v = match v.find(" #") {
                    Some(c) => &v[..c],
                    None => v,
                };
                expand(v.trim(), &out, lookup).map_err(|message| LoadError::EnvFile {
                    path: path.to_path_buf(),
                    line: line_no,
                    message,
                })?
            }
        };
        out.push((key.to_string(), Some(value)));
    }
    Ok(out)
}

fn closing_double_quote(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn expand(
    v: &str,
    earlier: &[Entry],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let local = |k: &str| -> Option<String> {
        earlier
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.clone())
            .or_else(|| lookup(k))
    };
    // Unset names inside env files expand to "" without a warning, as compose's dotenv does.
    let mut unset = Unset::default();
    interpolate_str(v, &local, &mut unset)
}

/// Reads and parses an env file, with the compose files' size limit (an `env_file` naming
/// `/dev/zero` or a huge file is an error, not the loader's memory filling up).
pub fn read(
    path: &Path,
    raw: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Entry>, LoadError> {
    let text = super::source::read_text(path, super::loader::DEFAULT_MAX_FILE_SIZE)?;
    parse(&text, path, raw, lookup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Vec<Entry> {
        let lookup = |k: &str| (k == "HOSTVAR").then(|| "host".to_string());
        parse(text, Path::new("t.env"), false, &lookup).unwrap()
    }

    #[test]
    fn an_endless_env_file_is_refused_by_size() {
        let e = read(Path::new("/dev/zero"), false, &|_| None).unwrap_err();
        assert!(matches!(e, LoadError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn forms() {
        let got = p(r#"
# comment
A=1
export B = two
C='lit $A'
D="x\ny $A"
E=plain # trailing
F
G=${HOSTVAR}-${A}
H="multi
line"
I=
"#);
        let get = |k: &str| got.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("A").as_deref(), Some("1"));
        assert_eq!(get("B").as_deref(), Some("two"));
        assert_eq!(get("C").as_deref(), Some("lit $A"));
        assert_eq!(get("D").as_deref(), Some("x\ny 1"));
        assert_eq!(get("E").as_deref(), Some("plain"));
        assert_eq!(get("F"), None);
        assert_eq!(get("G").as_deref(), Some("host-1"));
        assert_eq!(get("H").as_deref(), Some("multi\nline"));
        assert_eq!(get("I").as_deref(), Some(""));
    }

    #[test]
    fn crlf_files() {
        let got = p("A=1\r\nB=\"two\"\r\n");
        assert_eq!(got[0].1.as_deref(), Some("1"));
        assert_eq!(got[1].1.as_deref(), Some("two"));
    }

    #[test]
    fn raw_keeps_bytes() {
        let lookup = |_: &str| None;
        let got = parse("A=\"$X\" # c\n", Path::new("r.env"), true, &lookup).unwrap();
        assert_eq!(got[0].1.as_deref(), Some("\"$X\" # c"));
    }

    #[test]
    fn errors_name_file_and_line() {
        let lookup = |_: &str| None;
        let err = parse("A=1\nB='open\n", Path::new("bad.env"), false, &lookup).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad.env:2: unterminated single quote in value of B"
        );
        let err = parse("BAD KEY=1\n", Path::new("bad.env"), false, &lookup).unwrap_err();
        assert!(err.to_string().contains("invalid variable name"));
    }
}
