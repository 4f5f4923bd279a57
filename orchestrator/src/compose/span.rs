//! Line and column of keys, looked up by key path.
//!
//! `yaml_serde::Value` keeps no positions, so errors found later (after merge keys, interpolation,
//! normalisation) look up their key path here. The index scans block-style YAML line by line;
//! anything it cannot follow (flow collections, values pulled in through `<<` merges) falls back
//! to the nearest enclosing key that it did record.

use std::collections::HashMap;

/// Key path (`services.web.ports[1]`) -> 1-based (line, column).
///
/// Built lazily from the kept text on the first look-up: loads without errors never pay for it.
#[derive(Debug, Default, Clone)]
pub struct SpanIndex {
    text: String,
    built: std::sync::OnceLock<Spans>,
}

#[derive(Debug, Default, Clone)]
struct Spans {
    spans: HashMap<String, (usize, usize)>,
}

#[derive(Debug)]
struct Open {
    indent: usize,
    path: String,
    item: bool,
}

impl SpanIndex {
    /// An index of one YAML document's text (scanned on first use).
    pub fn build(text: &str) -> Self {
        SpanIndex {
            text: text.to_string(),
            built: std::sync::OnceLock::new(),
        }
    }

    fn spans(&self) -> &HashMap<String, (usize, usize)> {
        &self.built.get_or_init(|| Spans::scan(&self.text)).spans
    }

    /// Position of `path`, or of its nearest recorded ancestor.
    pub fn find(&self, path: &str) -> Option<(usize, usize)> {
        self.find_prefix(path).map(|(_, pos)| pos)
    }

    /// Like [`find`](Self::find), also returning how many bytes of `path` matched (deeper is better).
    pub fn find_prefix(&self, path: &str) -> Option<(usize, (usize, usize))> {
        let spans = self.spans();
        let mut p = path;
        loop {
            if let Some(pos) = spans.get(p) {
                return Some((p.len(), *pos));
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// Position of exactly `path`, if recorded.
    pub fn exact(&self, path: &str) -> Option<(usize, usize)> {
        self.spans().get(path).copied()
    }
}

impl Spans {
    fn scan(text: &str) -> Self {
        let mut idx = Spans::default();
        let mut stack: Vec<Open> = Vec::new();
        let mut counters: HashMap<String, usize> = HashMap::new();
        let mut block_scalar: Option<usize> = None;
        for (lineno, raw) in text.lines().enumerate() {
            let line_no = lineno + 1;
            let content = raw.trim_start_matches(' ');
            let indent = raw.len() - content.len();
            if let Some(min) = block_scalar {
                if content.trim().is_empty() || indent > min {
                    continue;
                }
                block_scalar = None;
            }
            let trimmed = content.trim_end();
            if trimmed.is_empty()
                || trimmed.starts_with('#')
                || trimmed.starts_with("---")
                || trimmed.starts_with("...")
                || trimmed.starts_with('%')
            {
                continue;
            }
            idx.line(
                line_no,
                indent,
                trimmed,
                &mut stack,
                &mut counters,
                &mut block_scalar,
            );
        }
        idx
    }

    #[allow(clippy::too_many_arguments)]
    fn line(
        &mut self,
        line_no: usize,
        mut col: usize,
        mut rest: &str,
        stack: &mut Vec<Open>,
        counters: &mut HashMap<String, usize>,
        block_scalar: &mut Option<usize>,
    ) {
        // Sequence items, possibly several on one line (`- - x` is rare; handle `- key: v`).
        while rest == "-" || rest.starts_with("- ") {
            while stack
                .last()
                .is_some_and(|o| o.indent > col || (o.indent == col && o.item))
            {
                stack.pop();
            }
            let parent = stack.last().map(|o| o.path.clone()).unwrap_or_default();
            let n = counters.entry(parent.clone()).or_insert(0);
            let path = format!("{parent}[{n}]");
            *n += 1;
            let after = rest[1..].trim_start_matches(' ');
            let new_col = col + (rest.len() - after.len());
            self.spans
                .entry(path.clone())
                .or_insert((line_no, new_col + 1));
            counters.remove(&path);
            stack.push(Open {
                indent: col,
                path,
                item: true,
            });
            if after.is_empty() {
                return;
            }
            rest = after;
            col = new_col;
        }
        if rest.starts_with('[') || rest.starts_with('{') {
            let base = stack.last().map(|o| o.path.clone()).unwrap_or_default();
            self.flow(line_no, col, rest, &base);
            return;
        }
        let Some((key, value)) = split_key(rest) else {
            if rest.starts_with('|') || rest.starts_with('>') {
                *block_scalar = Some(col.saturating_sub(1));
            }
            return;
        };
        while stack.last().is_some_and(|o| o.indent >= col && !o.item)
            || stack.last().is_some_and(|o| o.item && o.indent >= col)
        {
            stack.pop();
        }
        let parent = stack.last().map(|o| o.path.as_str()).unwrap_or("");
        let path = if parent.is_empty() {
            key.clone()
        } else {
            format!("{parent}.{key}")
        };
        self.spans.entry(path.clone()).or_insert((line_no, col + 1));
        let value = strip_comment(value).trim();
        let value = strip_props(value);
        if value.is_empty() {
            counters.remove(&path);
            stack.push(Open {
                indent: col,
                path,
                item: false,
            });
        } else if value.starts_with('|') || value.starts_with('>') {
            *block_scalar = Some(col);
        } else if value.starts_with('[') || value.starts_with('{') {
            let offset = value.as_ptr() as usize - rest.as_ptr() as usize;
            self.flow(line_no, col + offset, value, &path);
        }
    }

    /// Records keys and items of a one-line flow collection (`[a, b]`, `{k: v, l: [1]}`).
    fn flow(&mut self, line_no: usize, col: usize, text: &str, base: &str) {
        struct Frame {
            seq: bool,
            path: String,
            idx: usize,
            key: Option<String>,
            want_item: bool,
        }
        let chars: Vec<char> = text.chars().collect();
        let mut stack: Vec<Frame> = Vec::new();
        let mut i = 0;
        // Path of the value starting now in the innermost collection.
        let child = |stack: &Vec<Frame>| -> String {
            match stack.last() {
                None => base.to_string(),
                Some(f) if f.seq => format!("{}[{}]", f.path, f.idx),
                Some(f) => match &f.key {
                    Some(k) => format!("{}.{k}", f.path),
                    None => f.path.clone(),
                },
            }
        };
        while i < chars.len() {
            let c = chars[i];
            let at = (line_no, col + i + 1);
            if let Some(f) = stack.last_mut()
                && f.seq
                && f.want_item
                && !matches!(c, ' ' | ',' | ']')
            {
                f.want_item = false;
                let p = format!("{}[{}]", f.path, f.idx);
                self.spans.entry(p).or_insert(at);
            }
            match c {
                '[' | '{' => {
                    let path = child(&stack);
                    stack.push(Frame {
                        seq: c == '[',
                        path,
                        idx: 0,
                        key: None,
                        want_item: true,
                    });
                    i += 1;
                }
                ']' | '}' => {
                    stack.pop();
                    if stack.is_empty() {
                        return;
                    }
                    i += 1;
                }
                ',' => {
                    if let Some(f) = stack.last_mut() {
                        if f.seq {
                            f.idx += 1;
                            f.want_item = true;
                        } else {
                            f.key = None;
                        }
                    }
                    i += 1;
                }
                ' ' => i += 1,
                '#' if i > 0 && chars[i - 1] == ' ' => return,
                _ => {
                    // A scalar token: quoted, or plain up to a flow indicator or ": ".
                    let start = i;
                    let token: String = if c == '"' || c == '\'' {
                        i += 1;
                        while i < chars.len() && chars[i] != c {
                            if chars[i] == '\\' && c == '"' {
                                i += 1;
                            }
                            i += 1;
                        }
                        i += 1;
                        chars[start + 1..(i - 1).min(chars.len()).max(start + 1)]
                            .iter()
                            .collect()
                    } else {
                        while i < chars.len()
                            && !matches!(chars[i], ',' | ']' | '}' | '[' | '{')
                            && !(chars[i] == ':'
                                && chars
                                    .get(i + 1)
                                    .is_none_or(|n| matches!(n, ' ' | ',' | '}' | ']')))
                        {
                            i += 1;
                        }
                        chars[start..i]
                            .iter()
                            .collect::<String>()
                            .trim_end()
                            .to_string()
                    };
                    let mut j = i;
                    while j < chars.len() && chars[j] == ' ' {
                        j += 1;
                    }
                    let is_key = chars.get(j) == Some(&':') && stack.last().is_some_and(|f| !f.seq);
                    if i == start && !is_key {
                        // A stray indicator (`:` in a sequence …): always make progress.
                        i += 1;
                        continue;
                    }
                    if is_key {
                        if let Some(f) = stack.last_mut() {
                            let p = format!("{}.{token}", f.path);
                            self.spans.entry(p).or_insert((line_no, col + start + 1));
                            f.key = Some(token);
                        }
                        i = j + 1;
                    }
                }
            }
        }
    }
}

/// Splits `key: value` (or `key:`), honouring quoted keys.
fn split_key(s: &str) -> Option<(String, &str)> {
    let first = s.chars().next()?;
    if first == '"' || first == '\'' {
        let end = s[1..].find(first)? + 1;
        let key = s[1..end].to_string();
        let after = s[end + 1..].trim_start();
        let value = after.strip_prefix(':')?;
        if !(value.is_empty() || value.starts_with(' ')) {
            return None;
        }
        return Some((key, value));
    }
    if matches!(first, '{' | '[' | '&' | '*' | '!' | '|' | '>' | '#') {
        return None;
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' ') {
            return Some((s[..i].trim_end().to_string(), &s[i + 1..]));
        }
        if bytes[i] == b' ' && bytes.get(i + 1) == Some(&b'#') {
            return None;
        }
        i += 1;
    }
    None
}

fn strip_comment(v: &str) -> &str {
    let v = v.trim_start();
    if v.starts_with('"') || v.starts_with('\'') {
        return v;
    }
    if v.starts_with('#') {
        return "";
    }
    match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    }
}

/// Drops a leading anchor (`&x`) or tag (`!reset`) so `key: &x` counts as an open container.
fn strip_props(mut v: &str) -> &str {
    loop {
        if v.starts_with('&') || v.starts_with('!') {
            v = match v.find(' ') {
                Some(i) => v[i..].trim_start(),
                None => "",
            };
        } else {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_collections_on_one_line() {
        let text = "\
services:
  web: {image: nginx, ports: [\"80:80\", \"99999:80\"], environment: {A: 1}}
  db:
    ports: [\"5432\", {target: 1, published: 2}]
    - x
";
        let idx = SpanIndex::build(text);
        assert_eq!(idx.exact("services.web.image"), Some((2, 9)));
        assert_eq!(idx.exact("services.web.ports"), Some((2, 23)));
        assert_eq!(idx.exact("services.web.ports[0]"), Some((2, 31)));
        assert_eq!(idx.exact("services.web.ports[1]"), Some((2, 40)));
        assert_eq!(idx.exact("services.web.environment.A"), Some((2, 67)));
        assert_eq!(idx.exact("services.db.ports[1]"), Some((4, 21)));
        assert_eq!(idx.exact("services.db.ports[1].published"), Some((4, 33)));
        // Found by the fuzzer: a stray `:` inside a flow sequence must not loop forever.
        let idx = SpanIndex::build("a: [: x, : ]\nb: {: , :}\nc: [:]\n");
        assert_eq!(idx.exact("a"), Some((1, 1)));
        assert_eq!(idx.exact("c"), Some((3, 1)));
    }

    #[test]
    fn finds_keys_and_items() {
        let text = "\
services:
  web:
    image: nginx   # comment
    ports:
      - \"80:80\"
      - target: 443
        published: 8443
    command: |
      echo hi
      foo: bar
    environment:
    - A=1
    - B=2
  db:
    image: x
";
        let idx = SpanIndex::build(text);
        assert_eq!(idx.exact("services"), Some((1, 1)));
        assert_eq!(idx.exact("services.web.image"), Some((3, 5)));
        assert_eq!(idx.exact("services.web.ports[0]"), Some((5, 9)));
        assert_eq!(idx.exact("services.web.ports[1]"), Some((6, 9)));
        assert_eq!(idx.exact("services.web.ports[1].target"), Some((6, 9)));
        assert_eq!(idx.exact("services.web.ports[1].published"), Some((7, 9)));
        assert_eq!(idx.exact("services.web.command.foo"), None);
        assert_eq!(idx.exact("services.web.environment[1]"), Some((13, 7)));
        assert_eq!(idx.exact("services.db.image"), Some((15, 5)));
        assert_eq!(idx.find("services.web.ports[0].published"), Some((5, 9)));
        assert_eq!(idx.find("services.web.nope.deeper"), Some((2, 3)));
    }
}
