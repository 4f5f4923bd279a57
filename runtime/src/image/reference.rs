//! Image references as users type them (`nginx`, `nginx:1.25`, `library/nginx@sha256:…`,
//! `localhost:5000/x/y:t`), normalised the way Docker does so that `nginx` and
//! `docker.io/library/nginx:latest` name the same tag.

use std::fmt;
use std::str::FromStr;

use super::digest::Digest;

/// The registry a name without a domain belongs to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag a reference without tag or digest means.
pub const DEFAULT_TAG: &str = "latest";

/// Why a reference does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The reference is empty or has an invalid repository, tag or digest part.
    #[error("invalid image reference {value:?}: {reason}")]
    Invalid {
        /// The reference as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A normalised reference: registry, repository path, and a tag and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (and port), `docker.io` by default.
    pub registry: String,
    /// Repository path, with `library/` for single-component Docker Hub names.
    pub repository: String,
    /// The tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// A manifest digest pinned with `@sha256:…`.
    pub digest: Option<Digest>,
}

fn invalid(value: &str, reason: &'static str) -> ReferenceError {
    ReferenceError::Invalid {
        value: value.to_owned(),
        reason,
    }
}

fn valid_component(c: &str) -> bool {
    // lowercase alphanumerics separated by '.', '_', '__' or one or more '-'
    !c.is_empty()
        && c.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && c.as_bytes()[0].is_ascii_alphanumeric()
        && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 4096 {
            return Err(invalid(s, "empty or too long"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    d.parse::<Digest>()
                        .map_err(|_| invalid(s, "bad digest after '@'"))?,
                ),
            ),
            None => (s, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_owned())),
            _ => (rest, None),
        };
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(invalid(s, "bad tag"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !valid_domain(first) {
                    return Err(invalid(s, "bad registry host"));
                }
                (first.to_owned(), path.to_owned())
            }
            _ => (DEFAULT_REGISTRY.to_owned(), name.to_owned()),
        };
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY.to_owned()
        } else {
            registry
        };
        if path.is_empty() || !path.split('/').all(valid_component) {
            return Err(invalid(
                s,
                "repository must be lowercase letters, digits and . _ - separated by /",
            ));
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = if tag.is_none() && digest.is_none() {
            Some(DEFAULT_TAG.to_owned())
        } else {
            tag
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl Reference {
    /// `registry/repository`, the key for credentials and for the repository column.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short name Docker users read: `nginx` for `docker.io/library/nginx`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_owned()
        } else {
            self.name()
        }
    }

    /// `name:tag`, the key of the tag index (None for a digest-only reference).
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// What a manifest request asks for: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn docker_hub_defaults() {
        let x = r("nginx");
        assert_eq!(x.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(x.familiar_name(), "nginx");
        assert_eq!(r("nginx:1.25").tag.as_deref(), Some("1.25"));
        assert_eq!(r("bitnami/redis").name(), "docker.io/bitnami/redis");
        assert_eq!(
            r("index.docker.io/library/nginx").name(),
            "docker.io/library/nginx"
        );
    }

    #[test]
    fn hosts_ports_digests() {
        let x = r("localhost:5000/x/y:t");
        assert_eq!(
            (x.registry.as_str(), x.repository.as_str(), x.tag.as_deref()),
            ("localhost:5000", "x/y", Some("t"))
        );
        assert_eq!(x.familiar_name(), "localhost:5000/x/y");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let x = r(&format!("library/nginx@{d}"));
        assert_eq!(x.tag, None);
        assert_eq!(x.manifest_ref(), d);
        assert_eq!(r("127.0.0.1:5000/a").registry, "127.0.0.1:5000");
        assert_eq!(r("localhost/a").registry, "localhost");
    }

    #[test]
    fn rejects_bad() {
        for bad in [
            "",
            "UPPER",
            "a//b",
            "a:b:c/d e",
            "x@sha256:zz",
            "a:",
            "-a",
            "a/../b",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
    }
}
