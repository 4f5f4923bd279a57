//! The `--format` subset of Go templates that docker users type: `{{.Field}}` (nested
//! `.A.B`), `{{json .}}`, `{{json .Field}}`, literal text with `\t`/`\n`, and the `table`
//! prefix (a header row and columns aligned as docker's tabwriter does). Anything else in
//! `{{ }}` is refused by name instead of printing something wrong.

use anyhow::bail;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    /// `.A.B` as ["A", "B"]; empty for `.`.
    Field(Vec<String>),
    Json(Vec<String>),
}

/// A parsed `--format` value.
#[derive(Debug, Clone)]
pub struct Template {
    table: bool,
    parts: Vec<Part>,
}

fn path(expr: &str, whole: &str) -> anyhow::Result<Vec<String>> {
    if expr == "." {
        return Ok(Vec::new());
    }
    let Some(rest) = expr.strip_prefix('.') else {
        bail!(
            "--format {whole:?}: {{{{{expr}}}}} is not supported (use {{{{.Field}}}} or {{{{json .}}}})"
        );
    };
    if rest.is_empty()
        || !rest
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        bail!("--format {whole:?}: {{{{{expr}}}}} is not a field path");
    }
    Ok(rest.split('.').map(str::to_string).collect())
}

impl Template {
    /// Parses a template; `table` at the start asks for a header and aligned columns.
    pub fn parse(s: &str) -> anyhow::Result<Template> {
        let (table, body) = match s.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, s),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut parts = Vec::new();
        let mut rest = body.as_str();
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find("}}") else {
                bail!("--format {s:?}: unclosed {{{{");
            };
            let expr = rest[open + 2..open + close].trim();
            let expr = expr.trim_start_matches('-').trim_end_matches('-').trim();
            match expr.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["json", arg] => parts.push(Part::Json(path(arg, s)?)),
                [one] => parts.push(Part::Field(path(one, s)?)),
                _ => bail!(
                    "--format {s:?}: {{{{{expr}}}}} is not supported (use {{{{.Field}}}} or {{{{json .}}}})"
                ),
            }
            rest = &rest[open + close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { table, parts })
    }

    fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
        path.iter().try_fold(v, |v, k| v.get(k))
    }

    /// One row.
    pub fn render(&self, v: &Value) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field(path) => match Self::lookup(v, path) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Null) | None => out.push_str("<no value>"),
                    Some(other) => out.push_str(&other.to_string()),
                },
                Part::Json(path) => {
                    out.push_str(&Self::lookup(v, path).unwrap_or(&Value::Null).to_string())
                }
            }
        }
        out
    }

    /// Every row, with a header and tab-aligned columns for `table` templates; `header`
    /// names a field's column (`ID` -> `CONTAINER ID`).
    pub fn render_all(&self, rows: &[Value], header: &dyn Fn(&str) -> String) -> String {
        let mut lines: Vec<String> = Vec::new();
        if self.table {
            let mut h = String::new();
            for p in &self.parts {
                match p {
                    Part::Text(t) => h.push_str(t),
                    Part::Field(path) | Part::Json(path) => {
                        h.push_str(&header(&path.join(".")));
                    }
                }
            }
            lines.push(h);
        }
        lines.extend(rows.iter().map(|r| self.render(r)));
        if !self.table {
            return lines.iter().map(|l| format!("{l}\n")).collect();
        }
        // docker's tabwriter: minimum width 10, padding 3, cells split at tabs.
        let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
        let cols = cells.iter().map(Vec::len).max().unwrap_or(0);
        let mut width = vec![0usize; cols];
        for row in &cells {
            for (i, c) in row.iter().enumerate() {
                if i + 1 < row.len() {
                    width[i] = width[i].max((c.chars().count() + 3).max(10));
                }
            }
        }
        let mut out = String::new();
        for row in &cells {
            for (i, c) in row.iter().enumerate() {
                out.push_str(c);
                if i + 1 < row.len() {
                    out.push_str(&" ".repeat(width[i] - c.chars().count()));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// `CreatedAt` -> `CREATED AT`: docker's headers for fields it has no special name for.
pub fn default_header(field: &str) -> String {
    let mut out = String::new();
    for (i, c) in field.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_json_and_tables_render_like_docker() {
        let v = serde_json::json!({"ID": "abc", "Names": "web", "Labels": {"a": "1"}});
        let t = Template::parse("{{.Names}} {{ .ID }}").expect("parse");
        assert_eq!(t.render(&v), "web abc");
        let t = Template::parse("{{json .}}").expect("parse");
        assert_eq!(t.render(&v), v.to_string());
        let t = Template::parse("{{.Labels.a}}|{{json .Labels}}|{{.Nope}}").expect("parse");
        assert_eq!(t.render(&v), "1|{\"a\":\"1\"}|<no value>");
        let t = Template::parse("table {{.ID}}\\t{{.Names}}").expect("parse");
        let out = t.render_all(std::slice::from_ref(&v), &|f| match f {
            "ID" => "CONTAINER ID".into(),
            f => default_header(f),
        });
        assert_eq!(out, "CONTAINER ID   NAMES\nabc            web\n");
        assert!(Template::parse("{{range .}}x{{end}}").is_err());
        assert!(Template::parse("{{.Names").is_err());
        assert_eq!(default_header("CreatedAt"), "CREATED AT");
    }
}
