//! Word splitting and variable substitution with Docker's Dockerfile rules.
//!
//! Docker does not run a shell for `ENV`, `COPY`, `LABEL` and friends: it has its own small
//! shell-like lexer. Users write Dockerfiles against that lexer's behaviour, so we follow it:
//! `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`,
//! `${VAR:?msg}`, `${VAR?msg}`; single quotes are literal; in double quotes only `"`, `$` and the
//! escape character can be escaped; outside quotes the escape character makes the next character
//! literal. An unset variable expands to the empty string.

use thiserror::Error;

/// Why a word could not be expanded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SubstError {
    /// `'` never closed.
    #[error("unexpected end of statement while looking for matching single-quote in {0:?}")]
    UnclosedSingleQuote(String),
    /// `"` never closed.
    #[error("unexpected end of statement while looking for matching double-quote in {0:?}")]
    UnclosedDoubleQuote(String),
    /// `${` never closed.
    #[error("missing '}}' in {0:?}")]
    MissingBrace(String),
    /// `${}` or `${1abc}`.
    #[error("bad substitution: {0:?}")]
    BadSubstitution(String),
    /// `${VAR#x}`, `${VAR%x}`, `${VAR/x/y}` and other modifiers berth does not implement yet.
    #[error("unsupported modifier {modifier:?} in ${{{name}...}} (berth supports :- - :+ + :? ?)")]
    UnsupportedModifier {
        /// The variable.
        name: String,
        /// The modifier character found.
        modifier: char,
    },
    /// `${a:-${b:-${c:-...}}}` nested deeper than [`MAX_NESTING`]: refused before the stack is.
    #[error("substitutions nested more than {MAX_NESTING} deep in {0:?}")]
    TooDeep(String),
    /// `${VAR:?message}` with VAR unset: the user asked for this error.
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The word after `?` (or a default message).
        message: String,
    },
}

/// How deep `${...:-${...}}` may nest; Dockerfiles come from users, the daemon's stack is finite.
pub const MAX_NESTING: usize = 64;

/// Collects output characters into words; unquoted expansion results may be split.
struct Out {
    words: Vec<String>,
    cur: String,
    in_word: bool,
}

impl Out {
    fn new() -> Self {
        Out {
            words: Vec::new(),
            cur: String::new(),
            in_word: false,
        }
    }
    /// A literal character: whitespace separates words when unquoted (`split_ws`).
    fn ch(&mut self, c: char, split_ws: bool) {
        if split_ws && c.is_whitespace() {
            if self.in_word {
                self.words.push(std::mem::take(&mut self.cur));
                self.in_word = false;
            }
        } else {
            self.cur.push(c);
            self.in_word = true;
        }
    }
    /// Quoted text: never split, and marks a word even when empty (`""`).
    fn raw(&mut self, s: &str) {
        self.cur.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if self.in_word {
            self.words.push(self.cur);
        }
        self.words
    }
}

struct Lexer<'a, F: Fn(&str) -> Option<String>> {
    src: &'a str,
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: &'a F,
    /// False for heredoc bodies: quotes are ordinary characters there.
    quotes: bool,
    /// Current `${...}` nesting.
    depth: usize,
}

impl<F: Fn(&str) -> Option<String>> Lexer<'_, F> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Process until `stop` (unquoted) or the end. `split` enables word splitting.
    fn process(&mut self, stop: Option<char>, split: bool) -> Result<Vec<String>, SubstError> {
        let mut out = Out::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                break;
            }
            self.pos += 1;
            if c == self.escape && !self.quotes {
                // In a heredoc body only `$` and the escape itself can be escaped.
                match self.peek() {
                    Some(n) if n == '$' || n == self.escape => {
                        self.pos += 1;
                        out.raw(&n.to_string());
                    }
                    _ => out.raw(&c.to_string()),
                }
            } else if c == self.escape {
                // The escape character makes the next one literal; a trailing one is dropped.
                match self.next() {
                    Some(n) => out.raw(&n.to_string()),
                    None => break,
                }
            } else if !self.quotes {
                if c == '$' {
                    let v = self.dollar()?;
                    out.raw(&v);
                } else {
                    out.raw(&c.to_string());
                }
            } else if c == '\'' {
                let s = self.single_quoted()?;
                out.raw(&s);
            } else if c == '"' {
                let s = self.double_quoted()?;
                out.raw(&s);
            } else if c == '$' {
                let v = self.dollar()?;
                for vc in v.chars() {
                    out.ch(vc, split);
                }
            } else {
                out.ch(c, split);
            }
        }
        Ok(out.finish())
    }

    fn single_quoted(&mut self) -> Result<String, SubstError> {
        let mut s = String::new();
        loop {
            match self.next() {
                None => return Err(SubstError::UnclosedSingleQuote(self.src.to_string())),
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, SubstError> {
        let mut s = String::new();
        loop {
            match self.next() {
                None => return Err(SubstError::UnclosedDoubleQuote(self.src.to_string())),
                Some('"') => return Ok(s),
                Some('$') => s.push_str(&self.dollar()?),
                Some(c) if c == self.escape => match self.peek() {
                    None => {}
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.pos += 1;
                        s.push(n);
                    }
                    Some(_) => s.push(c),
                },
                Some(c) => s.push(c),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        // `$1`-style positional names are all digits; otherwise letters, digits, `_`.
        if self.peek().is_some_and(|c| c.is_ascii_digit()) {
            while let Some(c) = self.peek().filter(|c| c.is_ascii_digit()) {
                name.push(c);
                self.pos += 1;
            }
            return name;
        }
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            name.push(c);
            self.pos += 1;
        }
        name
    }

    /// After a `$`: the expansion's value.
    fn dollar(&mut self) -> Result<String, SubstError> {
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok((self.lookup)(&name).unwrap_or_default());
        }
        self.pos += 1;
        let name = self.name();
        if name.is_empty() {
            return Err(SubstError::BadSubstitution(self.src.to_string()));
        }
        let value = (self.lookup)(&name);
        match self.next() {
            None => Err(SubstError::MissingBrace(self.src.to_string())),
            Some('}') => Ok(value.unwrap_or_default()),
            Some(c) => {
                let colon = c == ':';
                let op = if colon { self.next() } else { Some(c) };
                let op = match op {
                    Some(o @ ('-' | '+' | '?')) => o,
                    None => return Err(SubstError::MissingBrace(self.src.to_string())),
                    Some(m) => {
                        return Err(SubstError::UnsupportedModifier { name, modifier: m });
                    }
                };
                if self.depth >= MAX_NESTING {
                    return Err(SubstError::TooDeep(self.src.chars().take(80).collect()));
                }
                self.depth += 1;
                let word = self.process(Some('}'), false)?.concat();
                self.depth -= 1;
                if self.next() != Some('}') {
                    return Err(SubstError::MissingBrace(self.src.to_string()));
                }
                // With a colon, an empty value counts as unset.
                let set = match &value {
                    Some(v) => !(colon && v.is_empty()),
                    None => false,
                };
                Ok(match op {
                    '-' => {
                        if set {
                            value.unwrap_or_default()
                        } else {
                            word
                        }
                    }
                    '+' => {
                        if set {
                            word
                        } else {
                            String::new()
                        }
                    }
                    _ => {
                        if set {
                            value.unwrap_or_default()
                        } else {
                            let message = if word.is_empty() {
                                "is not allowed to be unset".to_string()
                            } else {
                                word
                            };
                            return Err(SubstError::Required { name, message });
                        }
                    }
                })
            }
        }
    }
}

/// Expand one word (quotes removed, whitespace kept), as Docker does for ENV values, COPY paths,
/// WORKDIR, USER, LABEL, STOPSIGNAL and FROM.
pub fn expand_word<F: Fn(&str) -> Option<String>>(
    word: &str,
    escape: char,
    lookup: &F,
) -> Result<String, SubstError> {
    let mut lx = Lexer {
        src: word,
        chars: word.chars().collect(),
        pos: 0,
        escape,
        lookup,
        quotes: true,
        depth: 0,
    };
    Ok(lx.process(None, false)?.concat())
}

/// Expand `$VAR` forms in a heredoc body whose delimiter was not quoted (`COPY <<EOF`): quotes
/// stay as they are, only `$` and the escape character can be escaped.
pub fn expand_heredoc<F: Fn(&str) -> Option<String>>(
    text: &str,
    escape: char,
    lookup: &F,
) -> Result<String, SubstError> {
    let mut lx = Lexer {
        src: text,
        chars: text.chars().collect(),
        pos: 0,
        escape,
        lookup,
        quotes: false,
        depth: 0,
    };
    Ok(lx.process(None, false)?.concat())
}

/// Expand and split on unquoted whitespace, including whitespace that came out of an unquoted
/// expansion (`EXPOSE $PORTS` with PORTS="80 443" gives two words), as Docker does.
pub fn expand_words<F: Fn(&str) -> Option<String>>(
    text: &str,
    escape: char,
    lookup: &F,
) -> Result<Vec<String>, SubstError> {
    let mut lx = Lexer {
        src: text,
        chars: text.chars().collect(),
        pos: 0,
        escape,
        lookup,
        quotes: true,
        depth: 0,
    };
    lx.process(None, true)
}

/// Split on whitespace outside quotes, keeping quotes and escapes in the words (they are removed
/// later by [`expand_word`]). Used for `ENV a=1 b="x y"`, `LABEL` and `ARG`.
pub fn split_keep_quotes(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == escape && quote != Some('\'') {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            continue;
        }
        match quote {
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.push(c);
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "E" => Some(String::new()),
            "SP" => Some("80 443".into()),
            _ => None,
        }
    }

    fn w(s: &str) -> Result<String, SubstError> {
        expand_word(s, '\\', &env)
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(w("$A/${A}x").unwrap(), "alpha/alphax");
        assert_eq!(w("$U-").unwrap(), "-");
        assert_eq!(w("a$").unwrap(), "a$");
        assert_eq!(w("$-x").unwrap(), "$-x");
    }

    #[test]
    fn modifiers() {
        assert_eq!(w("${U:-def}").unwrap(), "def");
        assert_eq!(w("${E:-def}").unwrap(), "def");
        assert_eq!(w("${E-def}").unwrap(), "");
        assert_eq!(w("${A:-def}").unwrap(), "alpha");
        assert_eq!(w("${A:+set}").unwrap(), "set");
        assert_eq!(w("${E:+set}").unwrap(), "");
        assert_eq!(w("${E+set}").unwrap(), "set");
        assert_eq!(w("${U:+set}").unwrap(), "");
        assert_eq!(w("${U:-$A}").unwrap(), "alpha");
        assert_eq!(w("${U:-\"a b\"}").unwrap(), "a b");
        assert!(matches!(
            w("${U:?need it}"),
            Err(SubstError::Required { .. })
        ));
        assert!(matches!(
            w("${A#x}"),
            Err(SubstError::UnsupportedModifier { .. })
        ));
        assert!(matches!(w("${A"), Err(SubstError::MissingBrace(_))));
        assert!(matches!(w("${}"), Err(SubstError::BadSubstitution(_))));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}x{}", "${U:-".repeat(10_000), "}".repeat(10_000));
        assert!(matches!(w(&deep), Err(SubstError::TooDeep(_))));
        let ok = format!("{}x{}", "${U:-".repeat(10), "}".repeat(10));
        assert_eq!(w(&ok).unwrap(), "x");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w("'$A'").unwrap(), "$A");
        assert_eq!(w("\"$A b\"").unwrap(), "alpha b");
        assert_eq!(w("\\$A").unwrap(), "$A");
        assert_eq!(w("\"\\$A \\x\"").unwrap(), "$A \\x");
        assert_eq!(w("a\\ b").unwrap(), "a b");
        assert_eq!(expand_word("`$A", '`', &env).unwrap(), "$A");
        assert_eq!(expand_word("c:\\x", '`', &env).unwrap(), "c:\\x");
        assert!(w("'abc").is_err());
        assert!(w("\"abc").is_err());
    }

    #[test]
    fn heredoc_expansion_keeps_quotes() {
        assert_eq!(
            expand_heredoc("a='$A' \"x\" \\$A \\n\n", '\\', &env).unwrap(),
            "a='alpha' \"x\" $A \\n\n"
        );
    }

    #[test]
    fn words_split_expansions() {
        assert_eq!(
            expand_words("$SP 8080/udp \"a b\" ''", '\\', &env).unwrap(),
            vec!["80", "443", "8080/udp", "a b", ""]
        );
    }

    #[test]
    fn split_keeping_quotes() {
        assert_eq!(
            split_keep_quotes("a=1 b=\"x y\" c=x\\ y d='p q'", '\\'),
            vec!["a=1", "b=\"x y\"", "c=x\\ y", "d='p q'"]
        );
    }
}
