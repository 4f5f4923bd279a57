//! Benchmark of the pure build planning (what a fully cached rebuild costs before any cache
//! lookup): parse a 20-instruction Dockerfile, list a context of a few thousand files with a
//! `.dockerignore`, hash what COPY selects, compute every cache key.
//!
//! Run: `cargo run --release -p berth-runtime --example build_plan_bench [FILES] [BYTES] [RUNS]`
//! (defaults 3000 files of ~4 KiB, 20 runs). Goal: the whole plan well under 100 ms.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::time::{Duration, Instant};

use berth_runtime::build::ImageConfig;
use berth_runtime::build::context::{Context, DigestCache};
use berth_runtime::build::dockerfile::Dockerfile;
use berth_runtime::build::plan::{self, BaseImage, PlanOptions};

const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=debian:12
FROM ${BASE}
ARG VERSION=1.0
ENV APP_HOME=/srv/app LANG=C.UTF-8
WORKDIR $APP_HOME
LABEL org.opencontainers.image.version=$VERSION
RUN apt-get update && \
    apt-get install -y --no-install-recommends ca-certificates curl && \
    rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci
COPY src ./src
COPY static ./static
COPY config/*.toml ./config/
RUN npm run build
COPY . .
USER app:app
EXPOSE 8080/tcp 9090
VOLUME /srv/app/data
HEALTHCHECK --interval=10s CMD curl -fs http://localhost:8080/health || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/srv/app/bin/server"]
CMD ["--port", "8080"]
"#;

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:.2} ms, min {:.2} ms, max {:.2} ms (n={})",
        ms(v[v.len() / 2]),
        ms(v[0]),
        ms(v[v.len() - 1]),
        v.len()
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let files: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3000);
    let bytes: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4096);
    let runs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);

    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let mut total = 0usize;
    // 80% of the files under src/ and static/ (copied), 10% under node_modules (ignored),
    // the rest scattered (copied by `COPY . .`).
    for i in 0..files {
        let sub = match i % 10 {
            0..=5 => format!("src/mod{}", i % 40),
            6 | 7 => format!("static/assets{}", i % 8),
            8 => format!("node_modules/pkg{}", i % 30),
            _ => format!("misc/d{}", i % 5),
        };
        fs::create_dir_all(root.join(&sub))?;
        let size = bytes / 2 + (i * 7919) % bytes.max(1);
        let content: Vec<u8> = (0..size).map(|j| ((i + j) % 251) as u8).collect();
        total += size;
        fs::write(root.join(format!("{sub}/f{i}.js")), content)?;
    }
    fs::create_dir_all(root.join("config"))?;
    fs::write(root.join("config/app.toml"), "port = 8080\n")?;
    fs::write(root.join("package.json"), "{}\n")?;
    fs::write(root.join("package-lock.json"), "{}\n")?;
    fs::write(root.join(".dockerignore"), "node_modules\n**/*.log\n.git\n")?;
    fs::write(root.join("Dockerfile"), DOCKERFILE)?;

    let opts = PlanOptions {
        build_args: BTreeMap::from([("VERSION".to_string(), "2.0".to_string())]),
        target: None,
        labels: BTreeMap::new(),
        contexts: BTreeMap::new(),
    };
    let store: HashMap<String, BaseImage> = HashMap::from([(
        "debian:12".to_string(),
        BaseImage {
            digest: "sha256:1111111111111111111111111111111111111111111111111111111111111111"
                .to_string(),
            config: ImageConfig {
                env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".to_string()],
                ..Default::default()
            },
        },
    )]);

    // The digest cache does not remember files changed in the last 2 s (racy timestamps).
    std::thread::sleep(Duration::from_millis(2100));
    let mut first_keys = None;
    for use_cache in [false, true] {
        let mut parse_t = Vec::new();
        let mut scan_t = Vec::new();
        let mut plan_t = Vec::new();
        let mut whole_t = Vec::new();
        let mut cache = DigestCache::default();
        for _ in 0..runs {
            let t0 = Instant::now();
            let text = fs::read_to_string(root.join("Dockerfile"))?;
            let df = Dockerfile::parse(&text, "Dockerfile")?;
            let t1 = Instant::now();
            let ctx = Context::scan(root)?.with_digest_cache(if use_cache {
                cache.clone()
            } else {
                DigestCache::default()
            });
            let t2 = Instant::now();
            let _images = plan::external_images(&df, &opts)?;
            let p = plan::plan(&df, &opts, &ctx, &store)?;
            let t3 = Instant::now();
            parse_t.push(t1 - t0);
            scan_t.push(t2 - t1);
            plan_t.push(t3 - t2);
            whole_t.push(t3 - t0);
            let keys: Vec<String> = p.steps.iter().map(|s| s.cache_key.0.clone()).collect();
            match &first_keys {
                None => {
                    println!(
                        "context: {files} files ({:.1} MiB) written, {} entries listed after .dockerignore; {} steps planned",
                        total as f64 / 1048576.0,
                        ctx.entries().len(),
                        p.steps.len()
                    );
                    first_keys = Some(keys);
                }
                Some(k) if *k != keys => {
                    return Err("cache keys changed between identical runs".into());
                }
                Some(_) => {}
            }
            cache = ctx.digest_cache();
        }
        println!(
            "-- {}",
            if use_cache {
                "with the digest cache of the previous build (cached rebuild: files are only stat'ed)"
            } else {
                "without a digest cache (every selected file read and hashed)"
            }
        );
        println!("parse Dockerfile:              {}", stats(parse_t));
        println!("scan context + .dockerignore:  {}", stats(scan_t));
        println!("plan (hash COPY sources, keys): {}", stats(plan_t));
        println!("whole plan (read+parse+scan+plan): {}", stats(whole_t));
    }
    Ok(())
}
