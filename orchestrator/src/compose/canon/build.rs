//! A service's `build`: a context string to the long form, the context and the named
//! contexts' directories made absolute (remote contexts kept), and its keys checked.
use yaml_serde::{Mapping, Value};

use super::Canon;
use super::values::scalar_string;

impl Canon<'_> {
    pub(super) fn build(&mut self, p: &str, v: &mut Value) {
        if let Some(s) = scalar_string(v) {
            let mut m = Mapping::new();
            m.insert("context".into(), Value::String(self.context_path(&s)));
            *v = Value::Mapping(m);
            return;
        }
        let Some(m) = self.mapping(p, v) else { return };
        // No context: left for the defaults pass (the project directory), so an override file's
        // `build: {dockerfile: …}` does not reset the base file's context.
        let ctx = m
            .get("context")
            .and_then(scalar_string)
            .or_else(|| self.fill_build_context.then(|| ".".to_string()));
        if let Some(ctx) = ctx {
            let ctx = self.context_path(&ctx);
            m.insert("context".into(), Value::String(ctx));
        }
        for (key, nulls) in [("args", true), ("labels", false)] {
            if let Some(a) = m.get_mut(key) {
                self.dict(&format!("{p}.{key}"), a, nulls);
            }
        }
        for key in ["cache_from", "cache_to", "tags"] {
            if let Some(a) = m.get_mut(key) {
                self.str_list(&format!("{p}.{key}"), a);
            }
        }
        if let Some(a) = m.get_mut("additional_contexts") {
            self.additional_contexts(&format!("{p}.additional_contexts"), a);
        }
        if let Some(a) = m.get_mut("shm_size") {
            self.size(&format!("{p}.shm_size"), a);
        }
        if let Some(a) = m.get_mut("extra_hosts") {
            self.extra_hosts(&format!("{p}.extra_hosts"), a);
        }
        for key in ["no_cache", "pull", "privileged"] {
            if let Some(a) = m.get_mut(key) {
                self.boolean(&format!("{p}.{key}"), a);
            }
        }
        for key in [
            "dockerfile",
            "dockerfile_inline",
            "target",
            "network",
            "isolation",
        ] {
            if let Some(a) = m.get_mut(key) {
                self.string(&format!("{p}.{key}"), a);
            }
        }
    }

    /// `additional_contexts` as Compose prints it: a map of NAME to a source, a list's
    /// `NAME=SOURCE` entries made into one (an entry without `=` refused), and directories
    /// made absolute (`service:OTHER` and `scheme://` sources kept as written).
    fn additional_contexts(&mut self, p: &str, v: &mut Value) {
        if let Value::Sequence(seq) = v {
            for (i, item) in seq.iter().enumerate() {
                if scalar_string(item).is_some_and(|s| !s.contains('=')) {
                    self.err(
                        &format!("{p}[{i}]"),
                        format!("{item:?}: expected NAME=SOURCE"),
                    );
                }
            }
        }
        self.dict(p, v, false);
        if let Value::Mapping(m) = v {
            for (_, source) in m.iter_mut() {
                if let Value::String(s) = source
                    && !s.is_empty()
                    && !s.starts_with("service:")
                    && !s.contains("://")
                {
                    *s = self.host_path(s);
                }
            }
        }
    }

    fn context_path(&self, s: &str) -> String {
        if s.contains("://") || s.starts_with("git@") {
            s.to_string()
        } else {
            self.host_path(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::canon::testing::run;

    #[test]
    fn build_context_made_absolute_remote_kept() {
        let (v, _) = run("./app", |cx, v| cx.build("build", v));
        assert_eq!(v["context"], Value::from("/proj/app"));
        let (v, _) = run("https://example.invalid/r.git", |cx, v| {
            cx.build("build", v)
        });
        assert_eq!(v["context"], Value::from("https://example.invalid/r.git"));
        let (v, _) = run("{dockerfile: D, args: [X=1], no_cache: 'true'}", |cx, v| {
            cx.build("build", v)
        });
        assert!(v.get("context").is_none(), "left for the defaults pass");
        assert_eq!(v["args"]["X"], Value::from("1"));
        assert_eq!(v["no_cache"], Value::Bool(true));
    }

    #[test]
    fn additional_contexts_become_a_map_with_absolute_directories() {
        let (v, _) = run(
            "{additional_contexts: [lib=./lib, 'b=service:base', 'i=docker-image://x:1']}",
            |cx, v| cx.build("build", v),
        );
        let c = &v["additional_contexts"];
        assert_eq!(c["lib"], Value::from("/proj/lib"));
        assert_eq!(c["b"], Value::from("service:base"));
        assert_eq!(c["i"], Value::from("docker-image://x:1"));
        let (_, errs) = run("{additional_contexts: [nameonly]}", |cx, v| {
            cx.build("build", v)
        });
        assert!(!errs.is_empty(), "an entry without = is refused");
    }
}
