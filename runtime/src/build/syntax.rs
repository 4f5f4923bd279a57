//! Dockerfile lexing: parser directives, comments, line continuations and heredocs.
//!
//! This turns the file's physical lines into logical instruction lines, so the instruction
//! parser (`dockerfile/`) never has to think about continuations, comments or heredoc bodies.
//! The rules follow Docker's parser: directives only at the very top, a comment is a line whose
//! first non-blank character is `#` (also inside a continuation, where it is dropped), empty
//! continuation lines are skipped, continued lines are joined without adding a separator.

use thiserror::Error;

/// Why a Dockerfile could not be split into instructions; the parser wraps it with file:line.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SyntaxError {
    /// `# escape=` accepts only a backslash or a backtick, as in Docker.
    #[error("invalid escape token {0:?} in the escape parser directive: it must be ` or \\")]
    InvalidEscape(String),
    /// Docker refuses a directive given twice; so do we, rather than guess which wins.
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    /// A heredoc whose terminator never came would swallow the rest of the file silently.
    #[error("heredoc <<{0} is not terminated: no line {0:?} before the end of the file")]
    UnterminatedHeredoc(String),
}

/// A syntax error with the physical line it was found on.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("line {line}: {kind}")]
pub struct LineSyntaxError {
    /// 1-based line number in the Dockerfile.
    pub line: usize,
    /// What was wrong.
    #[source]
    pub kind: SyntaxError,
}

/// Parser directives found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// The escape character for continuations and substitution (`\` or `` ` ``).
    pub escape: char,
    /// `# syntax=` names a BuildKit frontend image; berth parses the file itself and only notes it.
    pub syntax: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            escape: '\\',
            syntax: None,
        }
    }
}

/// The body of one heredoc (`<<EOF ... EOF`) attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, without quotes.
    pub name: String,
    /// The lines between the instruction and the terminator, each ending in `\n`
    /// (leading tabs already removed for `<<-`).
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): no variable expansion.
    pub expand: bool,
    /// True for `<<-`: leading tabs were stripped from the body and the terminator.
    pub strip_tabs: bool,
    /// An explicit file descriptor before `<<` (`3<<EOF`), as the shell allows.
    pub fd: Option<u32>,
}

/// One instruction after continuations were joined, with any heredoc bodies it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalLine {
    /// 1-based line of the instruction's first physical line.
    pub line: usize,
    /// 1-based line of its last physical line (the heredoc terminator if any).
    pub end_line: usize,
    /// The joined text, leading blanks removed.
    pub text: String,
    /// Heredoc bodies, in the order their markers appear in `text`.
    pub heredocs: Vec<Heredoc>,
}

/// The instructions whose arguments may contain heredocs (Docker: RUN, COPY, ADD).
fn can_have_heredoc(text: &str) -> bool {
    let kw = text.split_whitespace().next().unwrap_or("");
    ["RUN", "COPY", "ADD"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(kw))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Parse `# name=value`; Docker's directive grammar.
fn parse_directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let eq = rest.find('=')?;
    let name = rest[..eq].trim_end();
    let mut chars = name.chars();
    let first = chars.next()?;
    if !first.is_ascii_alphabetic() || !chars.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((name.to_ascii_lowercase(), rest[eq + 1..].trim().to_string()))
}

/// Remove a trailing continuation (escape char + optional blanks). Returns the text and
/// whether the instruction ends on this line.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(body) => (body, false),
        None => (line, true),
    }
}

/// Find the heredoc markers (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`) among a line's words.
/// Words are split as the shell would (quotes kept), so `echo "<<EOF"` has no heredoc.
fn heredoc_markers(text: &str, escape: char) -> Vec<(String, bool, bool, Option<u32>)> {
    let mut out = Vec::new();
    for word in super::words::split_keep_quotes(text, escape) {
        let word = word.as_str();
        let Some(pos) = word.find("<<") else { continue };
        let (fd, rest) = (&word[..pos], &word[pos + 2..]);
        if !fd.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let (strip, rest) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        // `<<<` is a here-string, `<<` alone is not a heredoc either.
        if rest.is_empty() || rest.starts_with('<') {
            continue;
        }
        let (name, expand) = if let Some(inner) = rest
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .or_else(|| rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
        {
            (inner.to_string(), false)
        } else {
            // Stop at shell punctuation that may follow without a space (`<<EOF>file`).
            let end = rest
                .find(['>', '<', '|', ';', '&', ')'])
                .unwrap_or(rest.len());
            (rest[..end].to_string(), true)
        };
        if name.is_empty() {
            continue;
        }
        let fd = if fd.is_empty() { None } else { fd.parse().ok() };
        out.push((name, expand, strip, fd));
    }
    out
}

/// Split a Dockerfile into its directives and logical instruction lines.
pub fn split(src: &str) -> Result<(Directives, Vec<LogicalLine>), LineSyntaxError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines: Vec<&str> = src
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut directives = Directives::default();
    let mut seen: Vec<String> = Vec::new();
    let mut i = 0;
    // Directives: only a leading run of `# name=value` lines.
    while i < lines.len() {
        let Some((name, value)) = parse_directive(lines[i]) else {
            break;
        };
        let err = |kind| LineSyntaxError { line: i + 1, kind };
        if seen.contains(&name) && (name == "escape" || name == "syntax") {
            return Err(err(SyntaxError::DuplicateDirective(name)));
        }
        match name.as_str() {
            "escape" => match value.as_str() {
                "\\" => directives.escape = '\\',
                "`" => directives.escape = '`',
                _ => return Err(err(SyntaxError::InvalidEscape(value))),
            },
            "syntax" => directives.syntax = Some(value),
            // Unknown directives are comments for Docker too (`check=` is a lint setting).
            _ => {}
        }
        seen.push(name);
        i += 1;
    }
    let escape = directives.escape;
    let mut out = Vec::new();
    while i < lines.len() {
        let first = lines[i];
        i += 1;
        if is_comment(first) || is_blank(first) {
            continue;
        }
        let start = i;
        let (body, mut done) = trim_continuation(first.trim_start(), escape);
        let mut text = body.to_string();
        while !done && i < lines.len() {
            let next = lines[i];
            i += 1;
            if is_comment(next) || is_blank(next) {
                continue;
            }
            let (body, end) = trim_continuation(next, escape);
            text.push_str(body);
            done = end;
        }
        if text.trim().is_empty() {
            continue;
        }
        let mut heredocs = Vec::new();
        if can_have_heredoc(&text) && text.contains("<<") {
            for (name, expand, strip_tabs, fd) in heredoc_markers(&text, escape) {
                let mut content = String::new();
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    let l = if strip_tabs {
                        raw.trim_start_matches('\t')
                    } else {
                        raw
                    };
                    if l == name {
                        terminated = true;
                        break;
                    }
                    content.push_str(l);
                    content.push('\n');
                }
                if !terminated {
                    return Err(LineSyntaxError {
                        line: start,
                        kind: SyntaxError::UnterminatedHeredoc(name),
                    });
                }
                heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                    strip_tabs,
                    fd,
                });
            }
        }
        out.push(LogicalLine {
            line: start,
            end_line: i,
            text,
            heredocs,
        });
    }
    Ok((directives, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str) -> Vec<(usize, String)> {
        split(src)
            .unwrap()
            .1
            .into_iter()
            .map(|l| (l.line, l.text))
            .collect()
    }

    #[test]
    fn continuation_joins_without_separator_and_skips_comments_and_blanks() {
        let src = "FROM x\nRUN a \\\n# comment\n\n  && b \\\n  c\nCMD d\n";
        assert_eq!(
            texts(src),
            vec![
                (1, "FROM x".into()),
                (2, "RUN a   && b   c".into()),
                (7, "CMD d".into())
            ]
        );
    }

    #[test]
    fn backtick_escape_directive() {
        let src = "# escape=`\nFROM x\nRUN a `\n b \\\n";
        let (d, l) = split(src).unwrap();
        assert_eq!(d.escape, '`');
        assert_eq!(l[1].text, "RUN a  b \\");
    }

    #[test]
    fn directives_only_at_top() {
        let src = "FROM x\n# escape=`\nRUN a `\nRUN b\n";
        let (d, l) = split(src).unwrap();
        assert_eq!(d.escape, '\\');
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn syntax_directive_noted() {
        let (d, _) = split("# syntax=docker/dockerfile:1\nFROM x\n").unwrap();
        assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
    }

    #[test]
    fn bad_and_duplicate_directives() {
        assert_eq!(
            split("# escape=x\nFROM a").unwrap_err().kind,
            SyntaxError::InvalidEscape("x".into())
        );
        assert_eq!(split("# escape=`\n# escape=`\nFROM a").unwrap_err().line, 2);
    }

    #[test]
    fn heredocs_are_collected() {
        let src =
            "FROM x\nRUN <<EOF\necho hi\nEOF\nCOPY <<-\"A\" <<B /d/\n\tx $y\n\tA\nb\nB\nRUN echo\n";
        let (_, l) = split(src).unwrap();
        assert_eq!(l[1].heredocs[0].content, "echo hi\n");
        assert_eq!(l[1].end_line, 4);
        assert_eq!(l[2].heredocs.len(), 2);
        assert_eq!(l[2].heredocs[0].content, "x $y\n");
        assert!(!l[2].heredocs[0].expand && l[2].heredocs[0].strip_tabs);
        assert_eq!(l[2].heredocs[1].content, "b\n");
        assert_eq!(l[3].text, "RUN echo");
    }

    #[test]
    fn quoted_markers_are_not_heredocs() {
        let (_, l) = split("FROM x\nRUN echo \"<<EOF\" 'a <<B' $((1<<2))\nRUN y\n").unwrap();
        assert_eq!(l.len(), 3);
        assert!(l[1].heredocs.is_empty());
    }

    #[test]
    fn unterminated_heredoc() {
        let e = split("FROM x\nRUN <<EOF\necho\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(matches!(e.kind, SyntaxError::UnterminatedHeredoc(_)));
    }

    #[test]
    fn heredoc_markers_only_for_run_copy_add() {
        let (_, l) = split("FROM x\nLABEL a=<<EOF\nRUN x\n").unwrap();
        assert_eq!(l.len(), 3);
        assert!(l[1].heredocs.is_empty());
    }
}
