//! The filesystem as a parameter, for the few files credential code reads
//! (ADC files, key files, token files). Tests hand in a map of paths to bytes.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub trait Fs: Send + Sync + 'static {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    fn exists(&self, path: &Path) -> bool {
        self.read(path).is_ok()
    }
}

/// The real filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl Fs for RealFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// Files held in memory.
#[derive(Debug, Clone, Default)]
pub struct MemFs(Arc<BTreeMap<PathBuf, Vec<u8>>>);

impl MemFs {
    pub fn new() -> Self {
        MemFs::default()
    }

    pub fn with(mut self, path: impl Into<PathBuf>, content: impl Into<Vec<u8>>) -> Self {
        Arc::make_mut(&mut self.0).insert(path.into(), content.into());
        self
    }
}

impl Fs for MemFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.0.get(path).cloned().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} not found", path.display()),
            )
        })
    }
}
