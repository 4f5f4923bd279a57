//! Loader errors. Each names where the problem is (file:line:column and the key path) and what.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in the input a problem sits: the file and position when known, and the key path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// The Compose file (`-` for stdin), when known.
    pub file: Option<PathBuf>,
    /// 1-based line and column of the key, when known.
    pub line: Option<(usize, usize)>,
    /// Key path such as `services.web.ports[1]`.
    pub path: String,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            // Shown relative to the working directory when inside it, as users typed it.
            let shown = std::env::current_dir()
                .ok()
                .and_then(|cwd| file.strip_prefix(cwd).ok().map(Path::to_path_buf))
                .unwrap_or_else(|| file.clone());
            write!(f, "{}", shown.display())?;
            if let Some((l, c)) = self.line {
                write!(f, ":{l}:{c}")?;
            }
            if !self.path.is_empty() {
                f.write_str(": ")?;
            }
        }
        f.write_str(&self.path)
    }
}

/// One validation finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Where it is.
    pub place: Place,
    /// What is wrong, naming the culprit value.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.path.is_empty() && self.place.file.is_none() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.place, self.message)
        }
    }
}

/// Why a project could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No file given and none found in the directory or its parents.
    #[error(
        "no Compose file found in {} or its parents (looked for compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml)",
        dir.display()
    )]
    NoComposeFile {
        /// Where the search started.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is over the size limit.
    #[error("{}: file is {size} bytes, over the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// YAML syntax error.
    #[error("{}: invalid YAML", place)]
    Yaml {
        /// Where the parser stopped.
        place: Place,
        /// The parser's message.
        #[source]
        source: yaml_serde::Error,
    },
    /// Anchors/aliases expand to more nodes than allowed (a "billion laughs" file).
    #[error("{}: YAML aliases expand too much (alias bomb rejected)", path.display())]
    AliasBomb {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        #[source]
        source: yaml_serde::Error,
    },
    /// A `${VAR:?message}` variable is missing, or a template is malformed.
    #[error("{place}: {message}")]
    Interpolation {
        /// The value holding the template.
        place: Place,
        /// Which variable or template, and why.
        message: String,
    },
    /// An `.env`/`env_file` line is malformed.
    #[error("{}:{line}: {message}", path.display())]
    EnvFile {
        /// The env file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// `extends` or `include` form a loop.
    #[error("{kind} loop: {chain}")]
    Loop {
        /// `extends` or `include`.
        kind: &'static str,
        /// The loop as `a -> b -> a`.
        chain: String,
    },
    /// The project name is invalid.
    #[error(
        "invalid project name {name:?}: must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit"
    )]
    ProjectName {
        /// The name as given.
        name: String,
    },
    /// The model does not validate; every finding is listed.
    #[error("{}", issues.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// Every finding, in file order.
        issues: Vec<Issue>,
    },
}

impl LoadError {
    /// A single validation finding as an error.
    pub fn invalid(place: Place, message: impl Into<String>) -> Self {
        LoadError::Invalid {
            issues: vec![Issue {
                place,
                message: message.into(),
            }],
        }
    }
}
