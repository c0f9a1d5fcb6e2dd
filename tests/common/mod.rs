//! Helpers shared by the integration tests (`mod common;` in each that uses them).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A unique path in the temporary directory (process id, a counter and `name`),
/// removed when dropped.
pub struct TempPath(PathBuf);

impl TempPath {
    /// `ferrograd-{pid}-{n}-{name}` in the temporary directory.
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        TempPath(std::env::temp_dir().join(format!("ferrograd-{}-{n}-{name}", std::process::id())))
    }
}

impl AsRef<Path> for TempPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
