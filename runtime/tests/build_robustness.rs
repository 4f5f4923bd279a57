//! Dockerfiles come from users: no input may panic the parser or the planner. A small
//! deterministic generator throws tricky fragments at both (no extra crates, runs in < 1 s).

use std::collections::HashMap;

use berth_runtime::build::ImageConfig;
use berth_runtime::build::context::Context;
use berth_runtime::build::dockerfile::Dockerfile;
use berth_runtime::build::plan::{self, BaseImage, PlanOptions};

const PIECES: &[&str] = &[
    "FROM ",
    "RUN ",
    "COPY ",
    "ADD ",
    "ENV ",
    "ARG ",
    "LABEL ",
    "WORKDIR ",
    "USER ",
    "EXPOSE ",
    "VOLUME ",
    "STOPSIGNAL ",
    "CMD ",
    "ENTRYPOINT ",
    "SHELL ",
    "HEALTHCHECK ",
    "ONBUILD ",
    "MAINTAINER ",
    "scratch",
    "debian",
    " AS ",
    "x",
    "a=b",
    "=",
    "$",
    "${",
    "}",
    ":-",
    ":+",
    ":?",
    "\\",
    "`",
    "\"",
    "'",
    "<<",
    "<<-",
    "EOF",
    "\n",
    "\n",
    "\n",
    " ",
    "\t",
    "#",
    "# escape=`\n",
    "# syntax=x\n",
    "[",
    "]",
    "[\"a\"]",
    ",",
    "--from=",
    "--chown=",
    "--chmod=",
    "--link",
    "--mount=",
    "--platform=",
    "--interval=",
    "1s",
    "NONE",
    "CMD",
    "/",
    ".",
    "..",
    "*",
    "?",
    "80-90/udp",
    "é",
    "\u{feff}",
    "\r\n",
    "0",
    "-1",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn random_dockerfiles_never_panic() {
    let ctx_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(ctx_dir.path().join("x"), "x").expect("write");
    let ctx = Context::scan(ctx_dir.path()).expect("scan");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0;
    let mut planned = 0;
    for _ in 0..4000 {
        let n = 1 + (rng.next() % 40) as usize;
        let mut src = String::from(if rng.next().is_multiple_of(2) {
            "FROM debian\n"
        } else {
            ""
        });
        for _ in 0..n {
            src.push_str(PIECES[(rng.next() % PIECES.len() as u64) as usize]);
        }
        let Ok(df) = Dockerfile::parse(&src, "Dockerfile") else {
            continue;
        };
        parsed += 1;
        let opts = PlanOptions::default();
        let Ok(images) = plan::external_images(&df, &opts) else {
            continue;
        };
        let store: HashMap<String, BaseImage> = images
            .iter()
            .map(|r| {
                (
                    r.reference.clone(),
                    BaseImage {
                        digest: "sha256:0".into(),
                        config: ImageConfig::default(),
                    },
                )
            })
            .collect();
        if plan::plan(&df, &opts, &ctx, &store).is_ok() {
            planned += 1;
        }
    }
    // The generator must reach the planner, not only fail parsing.
    assert!(parsed > 100, "only {parsed} parsed");
    assert!(planned > 50, "only {planned} planned");
}
