//! `.dockerignore` rules, with Docker's semantics (not gitignore's).
//!
//! Every pattern is anchored at the context root and matched against the whole relative path
//! with Go `filepath.Match` rules (`*` and `?` never cross `/`), plus `**` for any number of
//! directories. Patterns are cleaned as Go's `filepath.Clean` does and a leading `/` is dropped.
//! A pattern excludes a path when it matches the path or any of its parent directories; `!`
//! re-includes; the last matching pattern wins. Lines starting with `#` are comments.
//! Matching uses globset (with `{`/`}` escaped, since Go has no alternation).
//!
//! The Dockerfile and `.dockerignore` are read by the builder directly, so excluding them does
//! not break the build; like Docker, an excluded one is then not available to COPY either.
//! Known difference: Go's `a**b` (stars inside a name) means `a(.*/)?b`; globset reads it as
//! `a*b`. `**` as a whole path component behaves the same in both.

use globset::{GlobBuilder, GlobMatcher};
use thiserror::Error;

/// A `.dockerignore` line that is not a valid pattern.
#[derive(Debug, Error)]
pub enum IgnoreError {
    /// A bad glob (e.g. an unclosed `[`).
    #[error(".dockerignore:{line}: invalid pattern {pattern:?}")]
    BadPattern {
        /// 1-based line.
        line: usize,
        /// The pattern as written.
        pattern: String,
        /// globset's reason.
        #[source]
        source: globset::Error,
    },
    /// `!` alone.
    #[error(".dockerignore:{line}: illegal exclusion pattern \"!\"")]
    EmptyException {
        /// 1-based line.
        line: usize,
    },
}

#[derive(Debug, Clone)]
struct Pattern {
    matcher: GlobMatcher,
    /// True for `!pattern`.
    exception: bool,
}

/// Compiled `.dockerignore` rules.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    patterns: Vec<Pattern>,
}

/// Which patterns matched a directory or one of its parents; passed down while walking so a
/// path is never re-matched against all its ancestors.
#[derive(Debug, Clone, Default)]
pub struct ParentMatches(Vec<bool>);

/// Go's `path.Clean` on a `/`-separated path.
pub fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Escape what globset treats specially but Go's filepath.Match does not (`{`, `}`).
fn to_globset(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '{' | '}' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

impl IgnoreRules {
    /// Compile the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<IgnoreRules, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            if raw.starts_with('#') {
                continue;
            }
            let mut p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let exception = p.starts_with('!');
            if exception {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err(IgnoreError::EmptyException { line });
                }
            }
            let mut cleaned = clean_path(p);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let matcher = GlobBuilder::new(&to_globset(&cleaned))
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|source| IgnoreError::BadPattern {
                    line,
                    pattern: raw.to_string(),
                    source,
                })?
                .compile_matcher();
            patterns.push(Pattern { matcher, exception });
        }
        Ok(IgnoreRules { patterns })
    }

    /// True when no pattern is set (nothing is excluded).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some `!` pattern exists: an excluded directory must then still be walked,
    /// since something inside it may be re-included.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// The state for the context root's children.
    pub fn root(&self) -> ParentMatches {
        ParentMatches(vec![false; self.patterns.len()])
    }

    /// Decide one path (relative, `/`-separated) given its parent's matches. Returns whether it
    /// is excluded and the matches to pass to its children.
    pub fn check(&self, rel: &str, parent: &ParentMatches) -> (bool, ParentMatches) {
        let mut excluded = false;
        let mut now = Vec::with_capacity(self.patterns.len());
        for (i, p) in self.patterns.iter().enumerate() {
            let m = parent.0.get(i).copied().unwrap_or(false) || p.matcher.is_match(rel);
            now.push(m);
            if m {
                excluded = !p.exception;
            }
        }
        (excluded, ParentMatches(now))
    }

    /// Decide a path without a walk (its ancestors are checked too).
    pub fn is_excluded(&self, rel: &str) -> bool {
        let mut state = self.root();
        let mut excluded = false;
        let mut prefix = String::new();
        for comp in rel.split('/').filter(|c| !c.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
            let (e, s) = self.check(&prefix, &state);
            excluded = e;
            state = s;
        }
        excluded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(s: &str) -> IgnoreRules {
        IgnoreRules::parse(s).unwrap()
    }

    #[test]
    fn clean_like_go() {
        assert_eq!(clean_path("./a//b/"), "a/b");
        assert_eq!(clean_path("/a/../../b"), "/b");
        assert_eq!(clean_path("a/../.."), "..");
        assert_eq!(clean_path(""), ".");
    }

    #[test]
    fn anchored_and_parent_matches() {
        let r = rules("# comment\n/target\n*.log\n");
        assert!(r.is_excluded("target"));
        assert!(r.is_excluded("target/debug/x"));
        assert!(r.is_excluded("a.log"));
        // Anchored at the root: `*.log` does not match in subdirectories.
        assert!(!r.is_excluded("sub/a.log"));
        assert!(!r.is_excluded("src/target"));
    }

    #[test]
    fn double_star_and_exceptions_last_wins() {
        let r = rules("**/*.tmp\n!keep/**\nkeep/no.tmp\n");
        assert!(r.is_excluded("a/b/c.tmp"));
        assert!(r.is_excluded("c.tmp"));
        assert!(!r.is_excluded("keep/x.tmp"));
        assert!(r.is_excluded("keep/no.tmp"));
    }

    #[test]
    fn reinclude_inside_excluded_dir() {
        let r = rules("docs\n!docs/README.md\n");
        assert!(r.is_excluded("docs/a.md"));
        assert!(!r.is_excluded("docs/README.md"));
        assert!(r.has_exceptions());
    }

    #[test]
    fn go_match_details() {
        let r = rules("a?c\n[!x]y\nb{1,2}\n\\*star\n");
        assert!(r.is_excluded("abc"));
        assert!(!r.is_excluded("a/c"));
        assert!(r.is_excluded("zy"));
        assert!(!r.is_excluded("xy"));
        assert!(r.is_excluded("b{1,2}"));
        assert!(!r.is_excluded("b1"));
        assert!(r.is_excluded("*star"));
        assert!(!r.is_excluded("xstar"));
    }

    #[test]
    fn comment_only_at_line_start_and_errors() {
        let r = rules(" #notcomment\n");
        assert!(r.is_excluded("#notcomment"));
        assert!(matches!(
            IgnoreRules::parse("a\n!\n"),
            Err(IgnoreError::EmptyException { line: 2 })
        ));
        assert!(IgnoreRules::parse("[abc\n").is_err());
    }
}
