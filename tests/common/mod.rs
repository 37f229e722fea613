// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

//! A gateway started in-process on its default scenario, for tests that
//! talk to it over real sockets.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use taxiway::config::Config;
use taxiway::gateway::Gateway;

/// A fresh, empty directory under the target directory.
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// The seed's Source on an unused port, with its data in a fresh directory.
pub async fn start_default(name: &str) -> Gateway {
    let mut config = Config::default_scenario();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = temp_dir(name);
    Gateway::start(config).await.expect("the gateway starts")
}

pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// The Python interpreter of the peers' virtualenv made by scripts/setup.
pub fn peers_bin(tool: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".peers/bin")
        .join(tool);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup to install the Python peers",
        path.display()
    );
    path
}
