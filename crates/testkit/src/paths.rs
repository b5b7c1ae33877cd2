//! Where the repository and the shared data beside it are.
//!
//! The shared data (`shared/vectors`, …) stands beside the repository: at
//! `../shared` from the workspace root of a checkout, or further up for a
//! worktree kept in a subfolder. It is looked for upwards from the workspace
//! root, never at a fixed machine path; `KEYWAY_VECTORS` names the vectors
//! folder instead when it is elsewhere.

use std::path::{Path, PathBuf};

/// The workspace root: the nearest folder above this crate whose
/// `Cargo.toml` declares `[workspace]`.
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in here.ancestors() {
        if std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|t| t.lines().any(|l| l.trim() == "[workspace]"))
        {
            return dir.to_path_buf();
        }
    }
    panic!(
        "no Cargo.toml with [workspace] above {} (is keyway-testkit outside its workspace?)",
        here.display()
    )
}

/// A file of the repository, by its path from the workspace root.
pub fn in_repo(relative: &str) -> PathBuf {
    workspace_root().join(relative)
}

/// The folders where the shared vectors are looked for, in order.
pub fn vector_candidates() -> Vec<PathBuf> {
    if let Some(v) = std::env::var_os("KEYWAY_VECTORS") {
        return vec![PathBuf::from(v)];
    }
    // Through the real path: a checkout reached by a symbolic link has its
    // neighbours where the link points, not where the link is.
    let root = workspace_root();
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    root.ancestors()
        .skip(1)
        .map(|a| a.join("shared").join("vectors"))
        .collect()
}

/// A folder of the shared vectors (`aws-sigv4-suite/v4`, …). Panics, naming
/// every place it looked, when it is not there: a test that needs vectors
/// never passes without them.
pub fn vectors(sub: &str) -> PathBuf {
    let tried = vector_candidates();
    for base in &tried {
        let p = base.join(sub);
        if p.is_dir() {
            return p;
        }
    }
    let list: Vec<String> = tried
        .iter()
        .map(|b| b.join(sub).display().to_string())
        .collect();
    panic!(
        "the shared test vectors `{sub}` are missing: looked in {} (set KEYWAY_VECTORS to the vectors folder)",
        list.join(", ")
    )
}
