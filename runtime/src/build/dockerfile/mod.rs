//! The typed Dockerfile: instructions parsed from logical lines, grouped into stages.
//!
//! Values are kept as written (before variable substitution): what `$VAR` means depends on the
//! build args and on the stage's environment, which only the planner knows. What can be checked
//! without them (instruction names, flags, argument counts, JSON forms, healthcheck durations,
//! stage names) is checked here, so a bad file fails before anything runs, with `file:line`.
//!
//! This file holds the types and the walk over logical lines; `instruction` parses one
//! instruction.

mod instruction;

use std::time::Duration;

use thiserror::Error;

use super::mounts::RawMount;
use super::syntax::{self, Heredoc, LogicalLine, SyntaxError};
use super::words::split_keep_quotes;
pub use instruction::parse_go_duration;
use instruction::{parse_from, parse_instruction};

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
    /// `--parents` (COPY): keep each source's path relative to the context (or `./`) under
    /// the destination.
    pub parents: bool,
    /// `--exclude=PATTERN`, repeatable: paths under the sources left out (as written).
    pub exclude: Vec<String>,
    /// `--checksum=sha256:...` (ADD): the digest the source must have, as written.
    pub checksum: Option<String>,
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
        /// `--mount=...`, repeatable, as written.
        mounts: Vec<RawMount>,
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
    /// `ONBUILD INSTRUCTION ...`: the trigger as written, kept in the image config and run
    /// when another build starts FROM the image.
    Onbuild(String),
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
            InstructionKind::Onbuild(_) => "ONBUILD",
        }
    }
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
                mounts: vec![],
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
        match one("COPY --parents --exclude=*.md --exclude=tmp a b /d/") {
            InstructionKind::Copy(c) => {
                assert!(c.parents);
                assert_eq!(c.exclude, ["*.md", "tmp"]);
            }
            k => panic!("{k:?}"),
        }
        match one("ADD --checksum=sha256:ab --exclude=x a /d/") {
            InstructionKind::Add(c) => {
                assert_eq!(c.checksum.as_deref(), Some("sha256:ab"));
                assert_eq!(c.exclude, ["x"]);
            }
            k => panic!("{k:?}"),
        }
        assert!(err("FROM a\nADD --parents a b").contains("ADD: unknown flag: --parents"));
        assert!(err("FROM a\nCOPY --checksum=sha256:ab a b").contains("unknown flag: --checksum"));
        assert!(err("FROM a\nCOPY --exclude a b").contains("missing a pattern"));
        assert!(err("FROM a\nADD --keep-git-dir=true a b").contains("--keep-git-dir"));
        assert!(err("FROM a\nADD --from=x a b").contains("ADD: unknown flag: --from"));
        assert!(err("FROM a\nCOPY --from a b").contains("missing a value"));
        assert!(err("FROM a\nCOPY a").contains("at least two"));
        assert!(err("FROM a\nCOPY --chown=1 --chown=2 a b").contains("more than once"));
    }

    #[test]
    fn run_unsupported_flags() {
        match one("RUN --mount=type=cache,target=/x --mount=type=bind,target=/src make") {
            InstructionKind::Run { mounts, .. } => assert_eq!(mounts.len(), 2),
            k => panic!("{k:?}"),
        }
        assert!(err("FROM a\nRUN --mount=type=cache,tgt=/x make").contains("tgt"));
        assert!(err("FROM a\nRUN --mount make").contains("--mount: missing a value"));
        assert!(err("FROM a\nRUN --security=insecure make").contains("--security"));
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
            one("onbuild  copy . /app"),
            InstructionKind::Onbuild("COPY . /app".into())
        );
        assert!(err("FROM a\nONBUILD ONBUILD RUN x").contains("chaining"));
        assert!(err("FROM a\nONBUILD FROM b").contains("FROM isn't allowed"));
        assert!(
            err("FROM a\nONBUILD COPY a").contains("Dockerfile:2: COPY: requires at least two")
        );
        assert!(err("FROM a\nONBUILD").contains("requires an instruction"));
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
