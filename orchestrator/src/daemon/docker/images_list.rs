//! `GET /images/json` (with Docker's filters), `GET /images/{name}/json` and
//! `GET /images/{name}/history`: the image store's listing, records and history (the calls
//! `berth image ls/inspect/history` make) in Docker's shapes, names as Docker shows them.

use std::collections::{BTreeMap, BTreeSet};

use berth_runtime::image::{Digest, Image};
use serde_json::{Value, json};

use super::Docker;
use super::df::unix;
use super::errors::ApiError;
use super::images::{familiar, familiar_digest, flag, no_such_image, store, store_error};
use super::query;

/// One image as `GET /images/json` lists it.
struct Row {
    img: Image,
    tags: Vec<String>,
    created: i64,
}

/// `GET /images/json?all=&filters=`: one entry per image, newest first; without `all`, the
/// untagged parents of other images (build steps) are left out, as Docker does.
pub(super) fn list(docker: &Docker, q: &str) -> Result<Vec<Value>, ApiError> {
    let filters = query::filters(q, &["reference", "label", "dangling", "before", "since"])?;
    let all = flag(q, "all");
    let store = store(docker)?;
    let summaries = store
        .list()
        .map_err(|e| ApiError::internal(format!("listing images: {e}")))?;
    let users = store.containers_using().unwrap_or_default();
    let mut rows: Vec<Row> = Vec::new();
    let mut seen = BTreeSet::new();
    for s in &summaries {
        if !seen.insert(s.id.clone()) {
            continue;
        }
        let Ok(img) = store.resolve(s.id.as_str()) else {
            continue;
        };
        let mut tags: Vec<String> = img.repo_tags.iter().map(|t| familiar(t)).collect();
        tags.sort();
        rows.push(Row {
            created: unix(s.created.as_deref()),
            img,
            tags,
        });
    }
    let parents: BTreeSet<Digest> = rows
        .iter()
        .filter_map(|r| r.img.record.parent.clone())
        .collect();
    if !all {
        rows.retain(|r| !r.tags.is_empty() || !parents.contains(&r.img.id));
    }
    // `before` and `since` name an image; the others are compared with its creation time.
    let mut bounds = Vec::new();
    for key in ["before", "since"] {
        for name in filters.get(key).into_iter().flatten() {
            let img = store.resolve(name).map_err(|e| store_error(name, e))?;
            bounds.push((key, unix(img.config.created().as_deref())));
        }
    }
    let dangling = match filters.get("dangling").map(|v| v.iter().next().cloned()) {
        None => None,
        Some(Some(v)) if v == "true" || v == "1" => Some(true),
        Some(Some(v)) if v == "false" || v == "0" => Some(false),
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'dangling={}'",
                v.unwrap_or_default()
            )));
        }
    };
    let mut out = Vec::new();
    for r in rows {
        if dangling.is_some_and(|d| d != r.tags.is_empty()) {
            continue;
        }
        if !bounds.iter().all(|(k, t)| match *k {
            "before" => r.created < *t,
            _ => r.created > *t,
        }) {
            continue;
        }
        let labels = labels_of(&r.img);
        if !filters
            .get("label")
            .into_iter()
            .flatten()
            .all(|want| label_matches(&labels, want))
        {
            continue;
        }
        let mut tags = r.tags.clone();
        if let Some(refs) = filters.get("reference") {
            tags.retain(|t| refs.iter().any(|p| reference_matches(p, t)));
            if tags.is_empty() {
                continue;
            }
        }
        let size = r.img.size();
        out.push(json!({
            "Containers": users.get(&r.img.id).map_or(0, Vec::len),
            "Created": r.created,
            "Id": r.img.id.to_string(),
            "Labels": labels,
            "ParentId": r.img.record.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
            "RepoDigests": r.img.record.repo_digests.iter().map(|d| familiar_digest(d)).collect::<Vec<_>>(),
            "RepoTags": tags,
            "SharedSize": -1,
            "Size": size,
            "VirtualSize": size,
        }));
    }
    Ok(out)
}

/// The image's labels (an empty map when it has none, as Docker answers).
fn labels_of(img: &Image) -> BTreeMap<String, String> {
    img.runtime_config()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// A `label` filter value: `KEY` (present) or `KEY=VALUE`.
fn label_matches(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(want),
    }
}

/// A `reference` filter: a glob over the familiar name, matched against `NAME:TAG` and, when
/// the pattern has no tag, against `NAME` alone (so `busybox` lists every busybox tag).
fn reference_matches(pattern: &str, tag: &str) -> bool {
    let name = tag
        .rsplit_once(':')
        .map_or(tag, |(n, t)| if t.contains('/') { tag } else { n });
    glob(pattern, tag) || glob(pattern, name)
}

/// Shell-style `*` and `?` matching (`*` stops at no character, as Docker's path.Match stops
/// at `/`: a pattern `*` matches `busybox` but not `library/busybox`).
fn glob(pattern: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != b'/')
                .any(|i| go(rest, &s[i..])),
            Some((b'?', rest)) => s.first().is_some_and(|&c| c != b'/') && go(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    go(pattern.as_bytes(), s.as_bytes())
}

/// Docker's `Config` of an image: the stored runtime config with the keys clients read always
/// present, and the image's HEALTHCHECK.
fn config_of(img: &Image) -> Value {
    let mut cfg = match img.raw_config.get("config") {
        Some(Value::Object(m)) => m.clone(),
        _ => serde_json::Map::new(),
    };
    for (key, default) in [
        ("User", json!("")),
        ("Env", Value::Null),
        ("Cmd", Value::Null),
        ("Entrypoint", Value::Null),
        ("WorkingDir", json!("")),
        ("Volumes", Value::Null),
        ("Labels", Value::Null),
    ] {
        cfg.entry(key).or_insert(default);
    }
    if let Some(h) = img.healthcheck() {
        cfg.insert("Healthcheck".into(), json!(h));
    }
    Value::Object(cfg)
}

/// `GET /images/{name}/json`.
pub(super) fn inspect(docker: &Docker, name: &str) -> Result<Value, ApiError> {
    let store = store(docker)?;
    let img = store.resolve(name).map_err(|e| store_error(name, e))?;
    let mut tags: Vec<String> = img.repo_tags.iter().map(|t| familiar(t)).collect();
    tags.sort();
    let lower: Vec<String> = img
        .layer_dirs()
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let field = |k: &str| img.raw_config.get(k).cloned().unwrap_or(json!(""));
    // Docker's zero time when the image was named by id or never tagged with a time kept.
    let last_tag_time = store
        .last_tagged(name)
        .ok()
        .flatten()
        .or_else(|| {
            img.repo_tags
                .iter()
                .filter_map(|t| store.last_tagged(t).ok().flatten())
                .max()
        })
        .map_or("0001-01-01T00:00:00Z".to_string(), |t| {
            humantime::format_rfc3339_nanos(t).to_string()
        });
    Ok(json!({
        "Id": img.id.to_string(),
        "RepoTags": tags,
        "RepoDigests": img.record.repo_digests.iter().map(|d| familiar_digest(d)).collect::<Vec<_>>(),
        "Parent": img.record.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        "Comment": img.config.history().as_ref()
            .and_then(|h| h.last())
            .and_then(|h| h.comment().clone())
            .unwrap_or_default(),
        "Created": img.config.created().clone().unwrap_or_default(),
        "DockerVersion": "",
        "Author": img.config.author().clone().unwrap_or_default(),
        "Config": config_of(&img),
        "Architecture": field("architecture"),
        "Os": field("os"),
        "Size": img.size(),
        "GraphDriver": {"Name": "overlay2", "Data": {"LowerDir": lower.join(":")}},
        "RootFS": {"Type": "layers", "Layers": img.config.rootfs().diff_ids()},
        "Metadata": {"LastTagTime": last_tag_time},
    }))
}

/// `GET /images/{name}/history`: newest first; the top entry carries the image's id and tags,
/// the steps below it `<missing>` (their images are not kept apart), as Docker shows pulled
/// images.
pub(super) fn history(docker: &Docker, name: &str) -> Result<Vec<Value>, ApiError> {
    let store = store(docker)?;
    let img = store.resolve(name).map_err(|e| store_error(name, e))?;
    let rows = store.history(name).map_err(|e| store_error(name, e))?;
    let mut tags: Vec<String> = img.repo_tags.iter().map(|t| familiar(t)).collect();
    tags.sort();
    if rows.is_empty() {
        return Err(no_such_image(name));
    }
    Ok(rows
        .iter()
        .enumerate()
        .map(|(i, h)| {
            json!({
                "Id": if i == 0 { img.id.to_string() } else { "<missing>".to_string() },
                "Created": unix(h.created.as_deref()),
                "CreatedBy": h.created_by,
                "Tags": if i == 0 { json!(tags) } else { Value::Null },
                "Size": h.size,
                "Comment": h.comment,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filters_glob_over_familiar_names() {
        assert!(reference_matches("busybox", "busybox:e2e"));
        assert!(reference_matches("busybox:e2e", "busybox:e2e"));
        assert!(!reference_matches("busybox:other", "busybox:e2e"));
        assert!(reference_matches("busy*", "busybox:e2e"));
        assert!(reference_matches("*:e2e", "busybox:e2e"));
        assert!(!reference_matches("*", "ghcr.io/a/b:1"));
        assert!(reference_matches("localhost:5000/a", "localhost:5000/a:1"));
    }

    #[test]
    fn label_filters_take_keys_and_pairs() {
        let l: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
        assert!(label_matches(&l, "a"));
        assert!(label_matches(&l, "a=1"));
        assert!(!label_matches(&l, "a=2"));
        assert!(!label_matches(&l, "b"));
    }
}
