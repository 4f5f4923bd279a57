//! The builder tests' instance: `bb:1` (the busybox rootfs, PATH set) in its image store and an
//! empty build context. Each test file adds the build and run helpers it needs.

use std::fs;
use std::path::PathBuf;

use berth_runtime::image::bootstrap::commit_rootfs_dir;
use berth_runtime::image::{ImageStore, NewImage};

use super::Env;

/// An instance with `bb:1` in its store and a context dir.
pub struct BuildEnv {
    /// The instance (its leak check runs when it drops).
    pub env: Env,
    /// The instance's image store, holding `bb:1`.
    pub store: ImageStore,
    /// The build context directory, empty until a test writes to it.
    pub ctx: PathBuf,
}

impl BuildEnv {
    /// A fresh instance with `bb:1` in its store and an empty context.
    #[allow(
        clippy::new_without_default,
        reason = "making one creates an instance on the machine, not a default value"
    )]
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
