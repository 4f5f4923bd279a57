//! Parsing one instruction: its `--flags`, its arguments in exec (JSON) or shell form, and
//! the checks that need no build args (counts, names, durations); and a stage's `FROM`.

use super::*;

#[derive(Clone, Copy, PartialEq, Eq)]
enum FlagType {
    Str,
    Bool,
}

struct Flags {
    instruction: String,
    values: Vec<(String, Option<String>)>,
}

impl Flags {
    /// Check every flag against the instruction's allowed set; refuse duplicates.
    fn check(&self, allowed: &[(&str, FlagType)]) -> Result<(), ParseErrorKind> {
        for (i, (name, value)) in self.values.iter().enumerate() {
            let Some((_, ty)) = allowed.iter().find(|(n, _)| n == name) else {
                return Err(ParseErrorKind::UnknownFlag {
                    instruction: self.instruction.clone(),
                    flag: name.clone(),
                });
            };
            if self.values[..i].iter().any(|(n, _)| n == name) {
                return Err(self.bad(name, "specified more than once"));
            }
            match (ty, value) {
                (FlagType::Str, None) => return Err(self.bad(name, "missing a value")),
                (FlagType::Bool, Some(v)) if v != "true" && v != "false" => {
                    return Err(self.bad(name, &format!("expects true or false, not {v:?}")));
                }
                _ => {}
            }
        }
        Ok(())
    }
    fn bad(&self, flag: &str, message: &str) -> ParseErrorKind {
        ParseErrorKind::BadFlag {
            instruction: self.instruction.clone(),
            flag: flag.to_string(),
            message: message.to_string(),
        }
    }
    fn get(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    }
    /// Takes every `--name` out (flags that may repeat: `--mount`, `--exclude`).
    fn take_all(&mut self, name: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        self.values.retain(|(n, v)| {
            if n == name {
                out.push(v.clone());
                false
            } else {
                true
            }
        });
        out
    }
    fn has(&self, name: &str) -> bool {
        self.values.iter().any(|(n, _)| n == name)
    }
    fn bool(&self, name: &str) -> bool {
        self.values
            .iter()
            .any(|(n, v)| n == name && v.as_deref() != Some("false"))
    }
}

/// Take the leading `--name[=value]` words off an instruction's arguments.
fn take_flags<'a>(instruction: &str, rest: &'a str) -> (Flags, &'a str) {
    let mut values = Vec::new();
    let mut s = rest.trim_start();
    while let Some(after) = s.strip_prefix("--") {
        // A word ends at unquoted whitespace.
        let mut end = after.len();
        let mut quote = None;
        for (i, c) in after.char_indices() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c.is_whitespace() => {
                    end = i;
                    break;
                }
                None => {}
            }
        }
        let word = &after[..end];
        s = after[end..].trim_start();
        if word.is_empty() {
            // A bare `--` ends the flags.
            break;
        }
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => {
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                (n.to_ascii_lowercase(), Some(v.to_string()))
            }
            None => (word.to_ascii_lowercase(), None),
        };
        values.push((name, value));
    }
    (
        Flags {
            instruction: instruction.to_string(),
            values,
        },
        s,
    )
}

fn bad_args(instruction: &str, message: impl Into<String>) -> ParseErrorKind {
    ParseErrorKind::BadArguments {
        instruction: instruction.to_string(),
        message: message.into(),
    }
}

/// `[...]` that is a JSON array of strings, else None.
fn json_array(rest: &str) -> Option<Vec<String>> {
    let t = rest.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

fn parse_command(kw: &str, rest: &str, allow_empty: bool) -> Result<Command, ParseErrorKind> {
    if let Some(v) = json_array(rest) {
        if v.is_empty() && !allow_empty {
            return Err(bad_args(kw, "requires at least one argument"));
        }
        return Ok(Command::Exec(v));
    }
    let s = rest.trim();
    if s.is_empty() {
        return Err(bad_args(kw, "requires at least one argument"));
    }
    Ok(Command::Shell(s.to_string()))
}

/// `ENV`/`LABEL`: `k=v k2="v 2"` or the legacy `k value with spaces`.
fn parse_name_values(
    kw: &str,
    rest: &str,
    escape: char,
) -> Result<Vec<(String, String)>, ParseErrorKind> {
    let words = split_keep_quotes(rest, escape);
    let Some(first) = words.first() else {
        return Err(bad_args(kw, "requires at least one argument"));
    };
    if !first.contains('=') {
        let rest = rest.trim();
        let value = rest
            .split_once(char::is_whitespace)
            .map(|(_, v)| v.trim_start().to_string());
        return match value {
            Some(v) if !v.is_empty() => Ok(vec![(first.clone(), v)]),
            _ => Err(bad_args(
                kw,
                format!("{first:?} has no value: use {kw} {first}=value"),
            )),
        };
    }
    let mut pairs = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(bad_args(
                kw,
                format!("can't find = in {w:?}: it must be of the form name=value"),
            ));
        };
        if k.is_empty() {
            return Err(bad_args(kw, format!("names can not be blank in {w:?}")));
        }
        pairs.push((k.to_string(), v.to_string()));
    }
    Ok(pairs)
}

fn parse_healthcheck(
    kw: &str,
    flags: &Flags,
    rest: &str,
) -> Result<Option<(HealthOptions, Command)>, ParseErrorKind> {
    let (word, after) = match rest.trim().split_once(char::is_whitespace) {
        Some((w, a)) => (w, a),
        None => (rest.trim(), ""),
    };
    if word.eq_ignore_ascii_case("NONE") {
        if !flags.values.is_empty() || !after.trim().is_empty() {
            return Err(bad_args(
                kw,
                "HEALTHCHECK NONE takes no options or arguments",
            ));
        }
        return Ok(None);
    }
    if !word.eq_ignore_ascii_case("CMD") {
        return Err(bad_args(
            kw,
            format!("unknown type {word:?} (use HEALTHCHECK CMD ... or HEALTHCHECK NONE)"),
        ));
    }
    let command = parse_command(kw, after, false)
        .map_err(|_| bad_args(kw, "missing command after HEALTHCHECK CMD"))?;
    let dur = |name: &str| -> Result<Option<Duration>, ParseErrorKind> {
        match flags.get(name) {
            None => Ok(None),
            Some(v) => match parse_go_duration(&v) {
                Some(d) if d.is_zero() || d >= Duration::from_millis(1) => Ok(Some(d)),
                Some(_) => Err(flags.bad(name, "must be at least 1ms")),
                None => Err(flags.bad(name, &format!("{v:?} is not a duration (e.g. 30s, 1m30s)"))),
            },
        }
    };
    let retries =
        match flags.get("retries") {
            None => None,
            Some(v) => Some(v.parse::<u32>().map_err(|_| {
                flags.bad("retries", &format!("{v:?} is not a non-negative integer"))
            })?),
        };
    Ok(Some((
        HealthOptions {
            interval: dur("interval")?,
            timeout: dur("timeout")?,
            start_period: dur("start-period")?,
            start_interval: dur("start-interval")?,
            retries,
        },
        command,
    )))
}

fn parse_copy(
    kw: &str,
    flags: &Flags,
    rest: &str,
    heredocs: &[Heredoc],
) -> Result<CopyArgs, ParseErrorKind> {
    let words = match json_array(rest) {
        Some(v) => v,
        None => rest.split_whitespace().map(str::to_string).collect(),
    };
    if words.len() < 2 {
        return Err(bad_args(
            kw,
            "requires at least two arguments (sources and a destination)",
        ));
    }
    let (dest, srcs) = words
        .split_last()
        .ok_or_else(|| bad_args(kw, "no destination"))?;
    let mut docs = heredocs.iter();
    let mut sources = Vec::new();
    for s in srcs {
        let is_heredoc = s.starts_with("<<") && s.len() > 2;
        match (is_heredoc, docs.clone().next()) {
            (true, Some(_)) => {
                if let Some(h) = docs.next() {
                    sources.push(Source::Heredoc(h.clone()));
                }
            }
            _ => sources.push(Source::Path(s.clone())),
        }
    }
    Ok(CopyArgs {
        from: flags.get("from"),
        chown: flags.get("chown"),
        chmod: flags.get("chmod"),
        link: flags.bool("link"),
        parents: flags.bool("parents"),
        exclude: Vec::new(),
        checksum: flags.get("checksum"),
        sources,
        dest: dest.clone(),
    })
}

/// A Go `time.ParseDuration` string (`30s`, `1m30s`, `1.5h`, `500ms`), as Docker reads
/// HEALTHCHECK options; humantime's grammar differs, so this is its own small parser.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

pub(super) fn parse_instruction(
    kw: &str,
    rest: &str,
    heredocs: &[Heredoc],
    escape: char,
    notes: &mut Vec<String>,
    line: usize,
) -> Result<InstructionKind, ParseErrorKind> {
    use FlagType::{Bool, Str};
    let (mut flags, rest) = take_flags(kw, rest);
    let none: &[(&str, FlagType)] = &[];
    let need = |what: &str| -> Result<(), ParseErrorKind> {
        if rest.trim().is_empty() {
            Err(bad_args(kw, format!("requires {what}")))
        } else {
            Ok(())
        }
    };
    Ok(match kw {
        "RUN" => {
            if flags.has("security") {
                return Err(ParseErrorKind::Unsupported {
                    instruction: kw.into(),
                    what: "--security".into(),
                });
            }
            let mut mounts = Vec::new();
            for m in flags.take_all("mount") {
                let Some(m) = m else {
                    return Err(flags.bad("mount", "missing a value"));
                };
                mounts.push(RawMount::split(&m).map_err(|e| flags.bad("mount", &e))?);
            }
            flags.check(&[("network", Str)])?;
            let network = match flags.get("network").as_deref() {
                None | Some("default") => RunNetworkMode::Default,
                Some("none") => RunNetworkMode::None,
                Some("host") => RunNetworkMode::Host,
                Some(other) => {
                    return Err(bad_args(
                        kw,
                        format!("--network={other}: expected default, none or host"),
                    ));
                }
            };
            InstructionKind::Run {
                command: parse_command(kw, rest, false)?,
                heredocs: heredocs.to_vec(),
                network,
                mounts,
            }
        }
        "COPY" | "ADD" => {
            if flags.has("keep-git-dir") {
                return Err(ParseErrorKind::Unsupported {
                    instruction: kw.into(),
                    what: "--keep-git-dir (ADD of a git repository)".into(),
                });
            }
            let mut exclude = Vec::new();
            for e in flags.take_all("exclude") {
                match e {
                    Some(e) if !e.is_empty() => exclude.push(e),
                    _ => return Err(flags.bad("exclude", "missing a pattern")),
                }
            }
            let mut c = if kw == "COPY" {
                flags.check(&[
                    ("from", Str),
                    ("chown", Str),
                    ("chmod", Str),
                    ("link", Bool),
                    ("parents", Bool),
                ])?;
                parse_copy(kw, &flags, rest, heredocs)?
            } else {
                flags.check(&[
                    ("chown", Str),
                    ("chmod", Str),
                    ("link", Bool),
                    ("checksum", Str),
                ])?;
                parse_copy(kw, &flags, rest, heredocs)?
            };
            c.exclude = exclude;
            if kw == "COPY" {
                InstructionKind::Copy(c)
            } else {
                InstructionKind::Add(c)
            }
        }
        "ENV" | "LABEL" => {
            flags.check(none)?;
            let pairs = parse_name_values(kw, rest, escape)?;
            if kw == "ENV" {
                InstructionKind::Env(pairs)
            } else {
                InstructionKind::Label(pairs)
            }
        }
        "ARG" => {
            flags.check(none)?;
            let words = split_keep_quotes(rest, escape);
            if words.is_empty() {
                return Err(bad_args(kw, "requires at least one argument"));
            }
            let mut decls = Vec::new();
            for w in words {
                let (name, default) = match w.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (w, None),
                };
                if name.is_empty() {
                    return Err(bad_args(kw, "names can not be blank"));
                }
                decls.push(ArgDecl { name, default });
            }
            InstructionKind::Arg(decls)
        }
        "MAINTAINER" => {
            flags.check(none)?;
            need("a name")?;
            notes.push(format!(
                "line {line}: MAINTAINER is deprecated; it sets the image author (prefer LABEL org.opencontainers.image.authors=...)"
            ));
            InstructionKind::Maintainer(rest.trim().to_string())
        }
        "WORKDIR" => {
            flags.check(none)?;
            need("a path")?;
            InstructionKind::Workdir(rest.trim().to_string())
        }
        "USER" => {
            flags.check(none)?;
            need("a user")?;
            InstructionKind::User(rest.trim().to_string())
        }
        "EXPOSE" => {
            flags.check(none)?;
            need("at least one port")?;
            InstructionKind::Expose(rest.split_whitespace().map(str::to_string).collect())
        }
        "VOLUME" => {
            flags.check(none)?;
            need("at least one path")?;
            let v = json_array(rest)
                .unwrap_or_else(|| rest.split_whitespace().map(str::to_string).collect());
            if v.iter().any(|p| p.trim().is_empty()) {
                return Err(bad_args(kw, "a volume path can not be an empty string"));
            }
            if v.is_empty() {
                return Err(bad_args(kw, "requires at least one path"));
            }
            InstructionKind::Volume(v)
        }
        "STOPSIGNAL" => {
            flags.check(none)?;
            let words: Vec<&str> = rest.split_whitespace().collect();
            if words.len() != 1 {
                return Err(bad_args(kw, "requires exactly one argument (a signal)"));
            }
            InstructionKind::StopSignal(words[0].to_string())
        }
        "CMD" => {
            flags.check(none)?;
            InstructionKind::Cmd(parse_command(kw, rest, true)?)
        }
        "ENTRYPOINT" => {
            flags.check(none)?;
            InstructionKind::Entrypoint(parse_command(kw, rest, true)?)
        }
        "SHELL" => {
            flags.check(none)?;
            match json_array(rest) {
                Some(v) if !v.is_empty() => InstructionKind::Shell(v),
                _ => {
                    return Err(bad_args(
                        kw,
                        "requires the arguments in JSON form, e.g. SHELL [\"/bin/bash\", \"-c\"]",
                    ));
                }
            }
        }
        "HEALTHCHECK" => {
            flags.check(&[
                ("interval", Str),
                ("timeout", Str),
                ("start-period", Str),
                ("start-interval", Str),
                ("retries", Str),
            ])?;
            InstructionKind::Healthcheck(parse_healthcheck(kw, &flags, rest)?)
        }
        "ONBUILD" => {
            flags.check(none)?;
            let trigger = rest.trim();
            let (inner, inner_rest) = match trigger.split_once(char::is_whitespace) {
                Some((k, r)) => (k.to_ascii_uppercase(), r),
                None => (trigger.to_ascii_uppercase(), ""),
            };
            match inner.as_str() {
                "" => return Err(bad_args(kw, "requires an instruction to run later")),
                "ONBUILD" => {
                    return Err(bad_args(
                        kw,
                        "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                    ));
                }
                "FROM" | "MAINTAINER" => {
                    return Err(bad_args(
                        kw,
                        format!("{inner} isn't allowed as an ONBUILD trigger"),
                    ));
                }
                _ => {}
            }
            if !heredocs.is_empty() {
                return Err(ParseErrorKind::Unsupported {
                    instruction: kw.into(),
                    what: "a heredoc in an ONBUILD trigger".into(),
                });
            }
            // Checked now, so a bad trigger fails where it is written, not in a child build.
            parse_instruction(&inner, inner_rest, &[], escape, &mut Vec::new(), line)?;
            InstructionKind::Onbuild(format!("{inner} {}", inner_rest.trim()).trim().to_string())
        }
        other => return Err(ParseErrorKind::UnknownInstruction(other.to_string())),
    })
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

pub(super) fn parse_from(
    rest: &str,
    line: usize,
    text: &str,
    index: usize,
) -> Result<Stage, ParseErrorKind> {
    let (flags, rest) = take_flags("FROM", rest);
    flags.check(&[("platform", FlagType::Str)])?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let name = match words.as_slice() {
        [_] => None,
        [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
            let lower = name.to_ascii_lowercase();
            if !valid_stage_name(&lower) {
                return Err(ParseErrorKind::InvalidStageName(name.to_string()));
            }
            Some(lower)
        }
        _ => {
            return Err(bad_args(
                "FROM",
                "requires either one argument (the image) or three (image AS name)",
            ));
        }
    };
    Ok(Stage {
        index,
        name,
        base: words[0].to_string(),
        platform: flags.get("platform"),
        line,
        text: text.to_string(),
        instructions: Vec::new(),
    })
}
