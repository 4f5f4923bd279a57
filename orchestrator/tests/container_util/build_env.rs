//! The builder tests' instance: `bb:1` (the busybox rootfs, PATH set) in its image store and an
//! empty build context. Each test file adds the build and run helpers it needs.

use std::fs;
use std::path::PathBuf;

use berth_runtime::image::bootstrap::commit_rootfs_dir;
use berth_runtime::image::{ImageStore, NewImage};

use super::Env;

/// An instance with `bb:1` in its store and a context dir.
pub struct BuildEnv {
    pub env: Env,
    pub store: ImageStore,
    pub ctx: PathBuf,
}

impl BuildEnv {
    pub fn new() -> BuildEnv {
        let env = Env::new();
        let store = ImageStore::open(&env.root).expect("store");
        let mut config = oci_spec::image::Config::default();
        config.set_env(Some(vec!["PATH=/bin".into()]));
        let img = commit_rootfs_dir(
            &store,
            &env.rootfs,
            None,
            NewImage {
                config,
                created_by: "busybox rootfs".into(),
                ..Default::default()
            },
        )
        .expect("import busybox");
        store.tag(&img.id, "bb:1").expect("tag");
        let ctx = env.tmp.path().join("ctx");
        fs::create_dir_all(&ctx).expect("ctx");
        BuildEnv { env, store, ctx }
    }

    /// Writes a context file, making its directories.
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.ctx.join(rel);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).expect("dir");
        }
        fs::write(p, text).expect("write");
    }
}
