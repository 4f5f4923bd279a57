//! The `name` filter of `GET /containers/json` as Docker reads it: a regular expression
//! searched in the container's name, with or without its leading `/` (`web` matches
//! `/my-web-1`, `^/web$` and `^web$` only `web`). The subset Docker's clients use: literal
//! characters, `.`, the `*`, `+` and `?` quantifiers, `^` and `$` anchors and `\` escapes.

/// One element of a pattern: what it matches and how often.
#[derive(Debug, Clone, Copy)]
struct Atom {
    /// `None`: any character (`.`).
    ch: Option<char>,
    min: usize,
    max: usize,
}

/// Whether `pattern` matches somewhere in the name (or the name with a leading `/`).
pub(super) fn matches(pattern: &str, name: &str) -> bool {
    let bare = name.strip_prefix('/').unwrap_or(name);
    search(pattern, bare) || search(pattern, &format!("/{bare}"))
}

fn search(pattern: &str, text: &str) -> bool {
    let (anchored, rest) = match pattern.strip_prefix('^') {
        Some(r) => (true, r),
        None => (false, pattern),
    };
    let (rest, to_end) = match rest.strip_suffix('$') {
        Some(r) if !r.ends_with('\\') => (r, true),
        _ => (rest, false),
    };
    let atoms = compile(rest);
    let text: Vec<char> = text.chars().collect();
    let starts = if anchored { 0..=0 } else { 0..=text.len() };
    starts.into_iter().any(|i| here(&atoms, &text[i..], to_end))
}

fn compile(p: &str) -> Vec<Atom> {
    let mut atoms: Vec<Atom> = Vec::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        let quantifier = match c {
            '*' => Some((0, usize::MAX)),
            '+' => Some((1, usize::MAX)),
            '?' => Some((0, 1)),
            _ => None,
        };
        match (quantifier, atoms.last_mut()) {
            (Some((min, max)), Some(last)) if last.min == 1 && last.max == 1 => {
                last.min = min;
                last.max = max;
                continue;
            }
            _ => {}
        }
        let ch = match c {
            '.' => None,
            '\\' => Some(chars.next().unwrap_or('\\')),
            c => Some(c),
        };
        atoms.push(Atom { ch, min: 1, max: 1 });
    }
    atoms
}

/// Whether `atoms` match at the start of `text` (to its end when `to_end`).
fn here(atoms: &[Atom], text: &[char], to_end: bool) -> bool {
    let Some((a, rest)) = atoms.split_first() else {
        return !to_end || text.is_empty();
    };
    let fits = |c: &char| a.ch.is_none_or(|x| x == *c);
    let mut n = 0;
    while n < a.max && n < text.len() && fits(&text[n]) {
        n += 1;
    }
    // Greedy, then back off.
    (a.min..=n).rev().any(|k| here(rest, &text[k..], to_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_as_docker_regexps() {
        assert!(matches("web", "/my-web-1"));
        assert!(matches("^/web$", "web"));
        assert!(matches("^web$", "/web"));
        assert!(!matches("^/web$", "web2"));
        assert!(!matches("^web", "myweb"));
        assert!(matches("w.b", "wxb"));
        assert!(matches("^a.*z$", "abcz"));
        assert!(matches("^ab+c$", "abbbc"));
        assert!(!matches("^ab+c$", "ac"));
        assert!(matches("^colou?r$", "color"));
        assert!(matches("a\\.b", "a.b"));
        assert!(!matches("a\\.b", "axb"));
        assert!(matches("", "anything"));
    }
}
