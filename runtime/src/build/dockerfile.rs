//! The typed Dockerfile: instructions parsed from logical lines, grouped into stages.
//!
//! Values are kept as written (before variable substitution): what `$VAR` means depends on the
//! build args and on the stage's environment, which only the planner knows. What can be checked
//! without them (instruction names, flags, argument counts, JSON forms, healthcheck durations,
//! stage names) is checked here, so a bad file fails before anything runs, with `file:line`.

use std::time::Duration;

use thiserror::Error;

use super::syntax::{self, Heredoc, LogicalLine, SyntaxError};
use super::words::split_keep_quotes;

/// A Dockerfile that failed to parse, with its location; the message names the instruction.
#[derive(Debug, Error)]
#[error("{file}:{line}: {kind}")]
pub struct ParseError {
    /// The Dockerfile's name as the user gave it (e.g. `Dockerfile`, `docker/app.Dockerfile`).
    pub file: String,
    /// 1-based line of the offending instruction.
    pub line: usize,
    /// What was wrong.
    #[source]
    pub kind: ParseErrorKind,
}

/// What was wrong with a Dockerfile instruction.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// Lexing failed (directive, heredoc).
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// Not a Dockerfile instruction at all.
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    /// A real Dockerfile feature berth refuses rather than silently ignores.
    #[error("{instruction}: {what} is not supported by berth")]
    Unsupported {
        /// The instruction keyword.
        instruction: String,
        /// The feature (e.g. `--mount`).
        what: String,
    },
    /// A `--flag` the instruction does not take.
    #[error("{instruction}: unknown flag: --{flag}")]
    UnknownFlag {
        /// The instruction keyword.
        instruction: String,
        /// The flag name without dashes.
        flag: String,
    },
    /// A flag given a bad value, a flag given twice, or a value missing.
    #[error("{instruction}: flag --{flag}: {message}")]
    BadFlag {
        /// The instruction keyword.
        instruction: String,
        /// The flag name without dashes.
        flag: String,
        /// What was wrong with it.
        message: String,
    },
    /// Wrong number or shape of arguments.
    #[error("{instruction}: {message}")]
    BadArguments {
        /// The instruction keyword.
        instruction: String,
        /// What was expected.
        message: String,
    },
    /// An instruction other than ARG before the first FROM.
    #[error(
        "{0}: no build stage in current context (every instruction but ARG must follow a FROM)"
    )]
    BeforeFrom(String),
    /// The file has no FROM at all.
    #[error("the Dockerfile has no FROM instruction")]
    NoFrom,
    /// Two stages with the same `AS name`.
    #[error("FROM: duplicate stage name {0:?}")]
    DuplicateStage(String),
    /// A stage name Docker would refuse (`^[a-z][a-z0-9-_.]*$` after lowercasing).
    #[error(
        "FROM: invalid stage name {0:?}: it must start with a letter and contain only letters, digits, '-', '_' and '.'"
    )]
    InvalidStageName(String),
}

/// A whole Dockerfile, ready for the planner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// Name used in error messages.
    pub file: String,
    /// The escape character (`# escape=`), needed again for substitution.
    pub escape: char,
    /// ARG instructions before the first FROM: usable in FROM lines, and inside a stage once
    /// redeclared there.
    pub global_args: Vec<Instruction>,
    /// The stages in file order.
    pub stages: Vec<Stage>,
    /// Things worth telling the user that are not errors (`# syntax=` ignored, MAINTAINER).
    pub notes: Vec<String>,
}

/// One `FROM ... [AS name]` and the instructions that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Position among the stages (what `COPY --from=0` refers to).
    pub index: usize,
    /// The `AS` name, lowercased as Docker does.
    pub name: Option<String>,
    /// The base as written: an image reference, `scratch` or an earlier stage (may contain `$ARG`).
    pub base: String,
    /// `FROM --platform=...` as written.
    pub platform: Option<String>,
    /// The FROM line.
    pub line: usize,
    /// The FROM instruction text as written.
    pub text: String,
    /// The instructions after FROM, in order.
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// How the stage is shown in step prefixes (`[build 2/5]`), as BuildKit does.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", self.index))
    }
}

/// One instruction with its line, so every later error can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based first line.
    pub line: usize,
    /// The instruction as written (continuations joined), shown in progress and history.
    pub text: String,
    /// The parsed instruction.
    pub kind: InstructionKind,
}

/// A command in exec form (JSON array, run without a shell) or shell form (run by SHELL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `["prog", "arg"]`.
    Exec(Vec<String>),
    /// `prog arg && more`, passed to the shell as one string.
    Shell(String),
}

/// A COPY/ADD source: a path or glob in the context (or in `--from`), or a heredoc body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// As written, before substitution.
    Path(String),
    /// `COPY <<EOF /dest`: the file content comes from the Dockerfile.
    Heredoc(Heredoc),
}

/// COPY and ADD share their shape; ADD adds archive extraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyArgs {
    /// `--from=stage|index|image` (COPY only), as written.
    pub from: Option<String>,
    /// `--chown=user[:group]`, as written.
    pub chown: Option<String>,
    /// `--chmod=` as written (octal after substitution).
    pub chmod: Option<String>,
    /// `--link`: accepted; berth's layers are always independent of the parent's content.
    pub link: bool,
    /// Sources in order.
    pub sources: Vec<Source>,
    /// Destination as written.
    pub dest: String,
}

/// One `name[=default]` of an ARG instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The argument name.
    pub name: String,
    /// The default as written (quotes kept, expanded by the planner).
    pub default: Option<String>,
}

/// HEALTHCHECK options, already validated (Docker parses them at build time too).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthOptions {
    /// `--interval`.
    pub interval: Option<Duration>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--start-period`.
    pub start_period: Option<Duration>,
    /// `--start-interval`.
    pub start_interval: Option<Duration>,
    /// `--retries`.
    pub retries: Option<u32>,
}

/// The network a RUN step gets (`RUN --network=...`, Dockerfile syntax 1.3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunNetworkMode {
    /// The build network: its own namespace with NAT egress (Docker's default bridge).
    #[default]
    Default,
    /// Loopback only: for steps that must prove they need no network.
    None,
    /// The host's namespace, as `docker build --network=host`.
    Host,
}

/// Every instruction berth builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    /// `RUN`; heredoc bodies the command refers to are kept with it.
    Run {
        /// The command.
        command: Command,
        /// Heredocs named in the command.
        heredocs: Vec<Heredoc>,
        /// `--network=default|none|host`.
        network: RunNetworkMode,
    },
    /// `COPY`.
    Copy(CopyArgs),
    /// `ADD`: local files and local tar archives (extracted).
    Add(CopyArgs),
    /// `ENV k=v ...` or `ENV k v`; pairs as written.
    Env(Vec<(String, String)>),
    /// `ARG name[=default] ...`.
    Arg(Vec<ArgDecl>),
    /// `LABEL k=v ...`.
    Label(Vec<(String, String)>),
    /// `MAINTAINER name`: deprecated; Docker stores it as the image author.
    Maintainer(String),
    /// `WORKDIR path` as written.
    Workdir(String),
    /// `USER user[:group]` as written.
    User(String),
    /// `EXPOSE` words as written.
    Expose(Vec<String>),
    /// `VOLUME` paths as written (JSON or words).
    Volume(Vec<String>),
    /// `STOPSIGNAL` as written.
    StopSignal(String),
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `SHELL [...]`.
    Shell(Vec<String>),
    /// `HEALTHCHECK NONE` (None) or `HEALTHCHECK [opts] CMD ...`.
    Healthcheck(Option<(HealthOptions, Command)>),
}

impl InstructionKind {
    /// The keyword, for messages.
    pub fn keyword(&self) -> &'static str {
        match self {
            InstructionKind::Run { .. } => "RUN",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Maintainer(_) => "MAINTAINER",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::User(_) => "USER",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::StopSignal(_) => "STOPSIGNAL",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Shell(_) => "SHELL",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
        }
    }
}

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
        sources,
        dest: dest.clone(),
    })
}

fn parse_instruction(
    kw: &str,
    rest: &str,
    heredocs: &[Heredoc],
    escape: char,
    notes: &mut Vec<String>,
    line: usize,
) -> Result<InstructionKind, ParseErrorKind> {
    use FlagType::{Bool, Str};
    let (flags, rest) = take_flags(kw, rest);
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
            for unsupported in ["mount", "security"] {
                if flags.has(unsupported) {
                    return Err(ParseErrorKind::Unsupported {
                        instruction: kw.into(),
                        what: format!("--{unsupported}"),
                    });
                }
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
            }
        }
        "COPY" | "ADD" => {
            for unsupported in ["parents", "exclude", "checksum", "keep-git-dir"] {
                if flags.has(unsupported) {
                    return Err(ParseErrorKind::Unsupported {
                        instruction: kw.into(),
                        what: format!("--{unsupported}"),
                    });
                }
            }
            if kw == "COPY" {
                flags.check(&[
                    ("from", Str),
                    ("chown", Str),
                    ("chmod", Str),
                    ("link", Bool),
                ])?;
                InstructionKind::Copy(parse_copy(kw, &flags, rest, heredocs)?)
            } else {
                flags.check(&[("chown", Str), ("chmod", Str), ("link", Bool)])?;
                InstructionKind::Add(parse_copy(kw, &flags, rest, heredocs)?)
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
            return Err(ParseErrorKind::Unsupported {
                instruction: kw.into(),
                what: "this instruction (build triggers for child images)".into(),
            });
        }
        other => return Err(ParseErrorKind::UnknownInstruction(other.to_string())),
    })
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn parse_from(rest: &str, line: usize, text: &str, index: usize) -> Result<Stage, ParseErrorKind> {
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

impl Dockerfile {
    /// Parse a Dockerfile's text; `file` names it in errors (`Dockerfile:12: ...`).
    pub fn parse(src: &str, file: &str) -> Result<Dockerfile, ParseError> {
        let err = |line: usize, kind: ParseErrorKind| ParseError {
            file: file.to_string(),
            line,
            kind,
        };
        let (directives, lines) =
            syntax::split(src).map_err(|e| err(e.line, ParseErrorKind::Syntax(e.kind)))?;
        let mut notes = Vec::new();
        if let Some(s) = &directives.syntax {
            notes.push(format!(
                "the syntax={s} directive is ignored: berth parses Dockerfiles itself"
            ));
        }
        let mut df = Dockerfile {
            file: file.to_string(),
            escape: directives.escape,
            global_args: Vec::new(),
            stages: Vec::new(),
            notes: Vec::new(),
        };
        for LogicalLine {
            line,
            text,
            heredocs,
            ..
        } in lines
        {
            let (kw, rest) = match text.split_once(char::is_whitespace) {
                Some((k, r)) => (k.to_ascii_uppercase(), r),
                None => (text.to_ascii_uppercase(), ""),
            };
            if kw == "FROM" {
                let index = df.stages.len();
                let stage = parse_from(rest, line, &text, index).map_err(|k| err(line, k))?;
                if let Some(n) = &stage.name
                    && df.stages.iter().any(|s| s.name.as_ref() == Some(n))
                {
                    return Err(err(line, ParseErrorKind::DuplicateStage(n.clone())));
                }
                df.stages.push(stage);
                continue;
            }
            let kind = parse_instruction(&kw, rest, &heredocs, df.escape, &mut notes, line)
                .map_err(|k| err(line, k))?;
            let instr = Instruction {
                line,
                text: text.clone(),
                kind,
            };
            match df.stages.last_mut() {
                Some(stage) => stage.instructions.push(instr),
                None if matches!(instr.kind, InstructionKind::Arg(_)) => df.global_args.push(instr),
                None => return Err(err(line, ParseErrorKind::BeforeFrom(kw))),
            }
        }
        if df.stages.is_empty() {
            return Err(err(1, ParseErrorKind::NoFrom));
        }
        df.notes = notes;
        Ok(df)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Dockerfile, ParseError> {
        Dockerfile::parse(src, "Dockerfile")
    }
    fn kinds(src: &str) -> Vec<InstructionKind> {
        parse(src)
            .unwrap()
            .stages
            .remove(0)
            .instructions
            .into_iter()
            .map(|i| i.kind)
            .collect()
    }
    fn one(src: &str) -> InstructionKind {
        kinds(&format!("FROM scratch\n{src}\n")).remove(0)
    }
    fn err(src: &str) -> String {
        parse(src).unwrap_err().to_string()
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("30"), None);
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn exec_and_shell_forms() {
        assert_eq!(
            one("RUN [\"a\", \"b c\"]"),
            InstructionKind::Run {
                command: Command::Exec(vec!["a".into(), "b c".into()]),
                heredocs: vec![],
                network: RunNetworkMode::Default,
            }
        );
        // Not valid JSON: shell form, as Docker does.
        assert_eq!(
            one("CMD ['a']"),
            InstructionKind::Cmd(Command::Shell("['a']".into()))
        );
        assert_eq!(one("CMD []"), InstructionKind::Cmd(Command::Exec(vec![])));
    }

    #[test]
    fn env_forms() {
        assert_eq!(
            one("ENV A 1 2  3"),
            InstructionKind::Env(vec![("A".into(), "1 2  3".into())])
        );
        assert_eq!(
            one("ENV A=1 B=\"x y\""),
            InstructionKind::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"x y\"".into())
            ])
        );
        assert!(err("FROM a\nENV A=1 B").contains("Dockerfile:2: ENV: can't find ="));
        assert!(err("FROM a\nENV A").contains("has no value"));
    }

    #[test]
    fn copy_flags_and_heredoc() {
        match one("COPY --from=build --chown=1:2 --chmod=644 --link a b /d/") {
            InstructionKind::Copy(c) => {
                assert_eq!(c.from.as_deref(), Some("build"));
                assert_eq!(c.chown.as_deref(), Some("1:2"));
                assert_eq!(c.chmod.as_deref(), Some("644"));
                assert!(c.link);
                assert_eq!(c.sources.len(), 2);
                assert_eq!(c.dest, "/d/");
            }
            k => panic!("{k:?}"),
        }
        match one("COPY <<EOF /f\nhello\nEOF") {
            InstructionKind::Copy(c) => {
                assert!(matches!(&c.sources[0], Source::Heredoc(h) if h.content == "hello\n"))
            }
            k => panic!("{k:?}"),
        }
        assert!(err("FROM a\nADD --from=x a b").contains("ADD: unknown flag: --from"));
        assert!(err("FROM a\nCOPY --from a b").contains("missing a value"));
        assert!(err("FROM a\nCOPY a").contains("at least two"));
        assert!(err("FROM a\nCOPY --chown=1 --chown=2 a b").contains("more than once"));
    }

    #[test]
    fn run_unsupported_flags() {
        let e = err("FROM a\nRUN --mount=type=cache,target=/x make");
        assert_eq!(e, "Dockerfile:2: RUN: --mount is not supported by berth");
        assert!(err("FROM a\nRUN --network=bridge make").contains("--network=bridge"));
        assert!(matches!(
            one("RUN --network=none make"),
            InstructionKind::Run {
                network: RunNetworkMode::None,
                ..
            }
        ));
        assert!(err("FROM a\nRUN --foo make").contains("unknown flag: --foo"));
    }

    #[test]
    fn from_forms_and_errors() {
        let df =
            parse("ARG V=1\nFROM --platform=linux/amd64 img:$V AS Build\nFROM build\n").unwrap();
        assert_eq!(df.global_args.len(), 1);
        assert_eq!(df.stages[0].name.as_deref(), Some("build"));
        assert_eq!(df.stages[0].platform.as_deref(), Some("linux/amd64"));
        assert_eq!(df.stages[1].base, "build");
        assert!(err("FROM a b").contains("one argument"));
        assert!(err("FROM a AS 1x").contains("invalid stage name"));
        assert!(err("FROM a AS x\nFROM b AS X").contains("duplicate stage name"));
        assert!(err("RUN x\nFROM a").contains("Dockerfile:1: RUN: no build stage"));
        assert!(err("ARG x\n").contains("no FROM"));
    }

    #[test]
    fn healthcheck() {
        match one("HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/") {
            InstructionKind::Healthcheck(Some((o, Command::Shell(c)))) => {
                assert_eq!(o.interval, Some(Duration::from_secs(5)));
                assert_eq!(o.retries, Some(3));
                assert_eq!(c, "curl -f http://x/");
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(one("HEALTHCHECK NONE"), InstructionKind::Healthcheck(None));
        assert!(err("FROM a\nHEALTHCHECK --interval=5 CMD x").contains("not a duration"));
        assert!(err("FROM a\nHEALTHCHECK --retries=-1 CMD x").contains("retries"));
        assert!(err("FROM a\nHEALTHCHECK foo").contains("unknown type"));
        assert!(err("FROM a\nHEALTHCHECK CMD").contains("missing command"));
        assert!(err("FROM a\nHEALTHCHECK --interval=1s NONE").contains("NONE takes no"));
    }

    #[test]
    fn refused_instructions() {
        assert_eq!(
            err("FROM a\nONBUILD RUN x"),
            "Dockerfile:2: ONBUILD: this instruction (build triggers for child images) is not supported by berth"
        );
        assert_eq!(
            err("FROM a\n\nFOO bar"),
            "Dockerfile:3: unknown instruction: FOO"
        );
        assert!(err("FROM a\nSHELL /bin/sh -c").contains("JSON form"));
        assert!(err("FROM a\nSTOPSIGNAL").contains("exactly one"));
        assert!(err("FROM a\nVOLUME [\"\"]").contains("empty"));
    }

    #[test]
    fn other_instructions() {
        assert_eq!(
            one("ARG A B=2"),
            InstructionKind::Arg(vec![
                ArgDecl {
                    name: "A".into(),
                    default: None
                },
                ArgDecl {
                    name: "B".into(),
                    default: Some("2".into())
                }
            ])
        );
        assert_eq!(
            one("VOLUME /a /b"),
            InstructionKind::Volume(vec!["/a".into(), "/b".into()])
        );
        assert_eq!(
            one("VOLUME [\"/a b\"]"),
            InstructionKind::Volume(vec!["/a b".into()])
        );
        assert_eq!(
            one("expose 80/tcp 90-92"),
            InstructionKind::Expose(vec!["80/tcp".into(), "90-92".into()])
        );
        assert_eq!(
            one("SHELL [\"bash\", \"-c\"]"),
            InstructionKind::Shell(vec!["bash".into(), "-c".into()])
        );
        assert_eq!(
            one("MAINTAINER Jo <jo@x>"),
            InstructionKind::Maintainer("Jo <jo@x>".into())
        );
        assert_eq!(
            one("WORKDIR /my dir"),
            InstructionKind::Workdir("/my dir".into())
        );
    }
}
