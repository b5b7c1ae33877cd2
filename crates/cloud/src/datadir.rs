//! The data directory: one running cloud per directory, and nothing in it
//! readable by anyone but its owner.
//!
//! Two clouds on one store would each keep their own in-memory state and
//! acknowledge writes the other never sees (one was lost across a restart),
//! and the second to stop would delete the first's `endpoints.json`. So
//! `keyway cloud up` holds an exclusive `flock` on `DATA/cloud.lock` for its
//! whole life, taken before the store is opened or reset; the kernel drops
//! it however the process ends, so a `kill -9` leaves no stale lock. The
//! lock file holds the owner's pid, for the refusal message.
//!
//! The directory and every directory keyway makes in it are 0700, every
//! file 0600: the store, its WAL, key files and credential files.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "cloud.lock";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "the local cloud in {data} is already running ({holder}); stop it first, or use another --data directory"
    )]
    Busy { data: String, holder: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl DataDirError {
    /// Whether trying again later may succeed: a busy directory frees when
    /// its cloud stops, but nobody should wait for that.
    pub fn is_transient(&self) -> bool {
        false
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Held for as long as a cloud serves from the directory; dropping it (or
/// the process ending) releases the directory.
#[derive(Debug)]
pub struct DataLock {
    _file: File,
    path: PathBuf,
}

impl DataLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates `dir` (and missing parents) as 0700, and makes an existing
/// `dir` 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Makes an existing file 0600 (a store written by an older keyway).
pub fn private_file(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o777 != 0o600 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes everything under `data` private: directories 0700, regular files
/// 0600 (a data directory written by an older keyway, or files gcloud left
/// in a CLOUDSDK_CONFIG there). Symbolic links are not followed; what this
/// user cannot change is left as it is.
pub fn make_private(data: &Path) -> std::io::Result<()> {
    private_dir(data)?;
    let mut stack = vec![data.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let ty = entry.file_type()?;
            let path = entry.path();
            let want = if ty.is_dir() {
                stack.push(path.clone());
                0o700
            } else if ty.is_file() {
                0o600
            } else {
                continue;
            };
            if let Ok(m) = entry.metadata()
                && m.permissions().mode() & 0o777 != want
            {
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want));
            }
        }
    }
    Ok(())
}

/// Takes the directory for this process (creating it, 0700), or says who
/// has it.
pub fn lock(data: &Path) -> Result<DataLock, DataDirError> {
    private_dir(data).map_err(io(data))?;
    let path = data.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(DataDirError::Busy {
                data: data.display().to_string(),
                holder: holder(data, &path),
            });
        }
        return Err(io(&path)(e));
    }
    file.set_len(0).map_err(io(&path))?;
    writeln!(file, "{}", std::process::id()).map_err(io(&path))?;
    Ok(DataLock { _file: file, path })
}

/// "pid N, Google APIs at URL" from the lock file and `endpoints.json`.
fn holder(data: &Path, lock: &Path) -> String {
    let pid: Option<u32> = std::fs::read_to_string(lock)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let ep = crate::server::Endpoints::read(data)
        .ok()
        .filter(|ep| pid.is_none_or(|p| p == ep.pid));
    match (pid.or(ep.as_ref().map(|e| e.pid)), ep) {
        (Some(p), Some(ep)) => format!("pid {p}, Google APIs at {}", ep.google),
        (Some(p), None) => format!("pid {p}, still starting"),
        (None, _) => format!("its lock {} is held", lock.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        let first = lock(&data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(first.path()), 0o600);
        // flock locks belong to the open file description: a second open in
        // this process conflicts exactly as another process would.
        let e = lock(&data).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())) && msg.contains("already running"),
            "{msg}"
        );
        drop(first);
        lock(&data).unwrap();
    }

    #[test]
    fn an_old_directory_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        std::fs::create_dir_all(data.join("users/a/gcloud")).unwrap();
        std::fs::write(data.join("cloud.db"), b"x").unwrap();
        std::fs::write(data.join("users/a/gcloud/adc.json"), b"x").unwrap();
        for (p, m) in [(&data, 0o755), (&data.join("users"), 0o755)] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        std::fs::set_permissions(
            data.join("cloud.db"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        make_private(&data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for d in ["", "users", "users/a", "users/a/gcloud"] {
            assert_eq!(mode(&data.join(d)), 0o700, "{d}");
        }
        for f in ["cloud.db", "users/a/gcloud/adc.json"] {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
    }
}
