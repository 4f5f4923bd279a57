//! Reading the store for display: `image ls`, `image history`, `image tree`, which images
//! containers use, and the size and age formats they print.

use super::*;

/// A row of `image ls`.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    /// Familiar repository name, or `<none>`.
    pub repository: String,
    /// Tag, or `<none>`.
    pub tag: String,
    /// Image id.
    pub id: Digest,
    /// Creation time from the config.
    pub created: Option<String>,
    /// Unpacked size.
    pub size: u64,
}

/// A row of `image history`, newest first as Docker prints it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    /// Creation time.
    pub created: Option<String>,
    /// The instruction or tool that made the layer.
    pub created_by: String,
    /// Layer size (0 for metadata-only steps).
    pub size: u64,
    /// Comment.
    pub comment: String,
    /// Whether the step produced no layer.
    pub empty_layer: bool,
}

impl ImageStore {
    /// Every image with its tags (one row per tag; untagged images once with `<none>`).
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let tags = self.read_tags()?;
        let mut out = Vec::new();
        for rec in self.records()? {
            let img = self.load_image(rec)?;
            let created = img.config.created().clone();
            let size = img.size();
            let mine: Vec<&String> = tags
                .tags
                .iter()
                .filter(|(_, id)| **id == img.id)
                .map(|(t, _)| t)
                .collect();
            if mine.is_empty() {
                out.push(ImageSummary {
                    repository: "<none>".into(),
                    tag: "<none>".into(),
                    id: img.id.clone(),
                    created: created.clone(),
                    size,
                });
            }
            for t in mine {
                let (repo, tag) = split_tag(t);
                out.push(ImageSummary {
                    repository: repo,
                    tag,
                    id: img.id.clone(),
                    created: created.clone(),
                    size,
                });
            }
        }
        out.sort_by(|a, b| {
            b.created
                .cmp(&a.created)
                .then(a.repository.cmp(&b.repository))
                .then(a.tag.cmp(&b.tag))
        });
        Ok(out)
    }

    /// Containers using each image: `<root>/containers/*/image-id` (see the module doc).
    pub fn containers_using(&self) -> Result<BTreeMap<Digest, Vec<String>>> {
        let d = self.root.join("containers");
        let mut out: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        let Ok(rd) = fs::read_dir(&d) else {
            return Ok(out);
        };
        for e in rd.flatten() {
            let p = e.path().join(CONTAINER_IMAGE_ID_FILE);
            let Ok(s) = fs::read_to_string(&p) else {
                continue;
            };
            match s.trim().parse::<Digest>() {
                Ok(id) => out
                    .entry(id)
                    .or_default()
                    .push(e.file_name().to_string_lossy().into_owned()),
                Err(err) => {
                    tracing::warn!(path = %p.display(), %err, "ignoring unreadable container image id")
                }
            }
        }
        Ok(out)
    }

    /// `image history`: one row per history entry, newest first, with layer sizes.
    pub fn history(&self, reference: &str) -> Result<Vec<HistoryRow>> {
        let img = self.resolve(reference)?;
        let mut sizes = img.layer_sizes.iter();
        let mut rows = Vec::new();
        let hist = img.config.history().clone().unwrap_or_default();
        for h in &hist {
            let empty = h.empty_layer().unwrap_or(false);
            let size = if empty {
                0
            } else {
                sizes.next().copied().unwrap_or(0)
            };
            rows.push(HistoryRow {
                created: h.created().clone(),
                created_by: h.created_by().clone().unwrap_or_default(),
                size,
                comment: h.comment().clone().unwrap_or_default(),
                empty_layer: empty,
            });
        }
        if hist.is_empty() {
            for s in sizes {
                rows.push(HistoryRow {
                    created: None,
                    created_by: String::new(),
                    size: *s,
                    comment: String::new(),
                    empty_layer: false,
                });
            }
        }
        rows.reverse();
        Ok(rows)
    }

    /// `image tree`: the layer lineage of every image as an indented tree, one node per layer
    /// (chain id), images named where their top layer is.
    pub fn tree(&self) -> Result<String> {
        #[derive(Default)]
        struct Node {
            children: BTreeMap<Digest, Node>,
            images: Vec<String>,
            size: u64,
        }
        let tags = self.read_tags()?;
        let mut root = Node::default();
        for rec in self.records()? {
            let mut node = &mut root;
            for l in &rec.layers {
                let size = self.layer(&l.chain_id)?.map(|r| r.size).unwrap_or(0);
                node = node.children.entry(l.chain_id.clone()).or_default();
                node.size = size;
            }
            let mut names: Vec<String> = tags
                .tags
                .iter()
                .filter(|(_, v)| **v == rec.id)
                .map(|(k, _)| {
                    let (r, t) = split_tag(k);
                    format!("{r}:{t}")
                })
                .collect();
            if names.is_empty() {
                names.push("<none>".into());
            }
            node.images
                .push(format!("{} [{}]", names.join(", "), rec.id.short()));
        }
        fn render(n: &Node, prefix: &str, out: &mut String) {
            let count = n.children.len();
            for (i, (chain, child)) in n.children.iter().enumerate() {
                let last = i + 1 == count;
                let (branch, cont) = if last {
                    ("└── ", "    ")
                } else {
                    ("├── ", "│   ")
                };
                out.push_str(&format!(
                    "{prefix}{branch}{} {}",
                    chain.short(),
                    human_size(child.size)
                ));
                if !child.images.is_empty() {
                    out.push_str(&format!("  <- {}", child.images.join("; ")));
                }
                out.push('\n');
                render(child, &format!("{prefix}{cont}"), out);
            }
        }
        let mut out = String::new();
        render(&root, "", &mut out);
        Ok(out)
    }
}

/// Sizes as `docker image ls` prints them (decimal units).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
            + UNITS[i]
    }
}

/// "3 hours ago" from an RFC 3339 time, as `image ls` shows CREATED.
pub fn ago(created: Option<&str>) -> String {
    let Some(t) = created.and_then(|c| {
        humantime::parse_rfc3339_weak(c.trim_end_matches('Z').split('.').next()?).ok()
    }) else {
        return "N/A".into();
    };
    let secs = SystemTime::now()
        .duration_since(t)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (n, unit) = match secs {
        s if s < 60 => return "Less than a minute ago".into(),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86400 => (s / 3600, "hour"),
        s if s < 86400 * 14 => (s / 86400, "day"),
        s if s < 86400 * 60 => (s / (86400 * 7), "week"),
        s if s < 86400 * 365 => (s / (86400 * 30), "month"),
        s => (s / (86400 * 365), "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}
