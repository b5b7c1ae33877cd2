//! File delivery: a private directory on a tmpfs holding one file per secret,
//! removed when the workload is done.
//!
//! Secrets delivered as files must never reach a disk, so the directory is
//! created on a tmpfs (`$XDG_RUNTIME_DIR` when it is one, else `/dev/shm`) and
//! keyway refuses to go on without one unless the caller names a fallback. The
//! directory is created with `mkdir` (which never follows a symlink in the last
//! component and fails if the name exists), checked to be ours, forced to mode
//! 0700, and each file is created relative to its descriptor with
//! `O_CREAT|O_EXCL|O_NOFOLLOW` and mode 0400. [`SecretDir`] removes the
//! directory when dropped, so every early-error path cleans up too.
//!
//! Limit: if keyway is killed with SIGKILL (or the machine loses power) nothing
//! runs to remove the directory. Because it is on tmpfs its contents never
//! reach a disk (unless the system swaps tmpfs pages out), and it disappears at
//! the next boot; until then it is readable only by the same user (and root).

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use keyway_core::Env;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::statfs::{TMPFS_MAGIC, fstatfs, statfs};

use crate::TmpfsPolicy;
use crate::error::Error;

/// The tmpfs every Linux system mounts for shared memory.
const SHM: &str = "/dev/shm";

/// How many random names to try before giving up on `EEXIST`.
const NAME_ATTEMPTS: usize = 16;

/// Where to look for a tmpfs, in order: `$XDG_RUNTIME_DIR` (when set to an
/// absolute path in the child's base environment), then `/dev/shm`.
pub(crate) fn candidate_roots(env: &Env) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(xdg) = env
        .non_empty("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        roots.push(xdg);
    }
    roots.push(PathBuf::from(SHM));
    roots
}

/// The first candidate on tmpfs, else the policy's fallback, else an error.
/// Returns the root and whether it is a tmpfs.
pub(crate) fn choose_root(
    candidates: &[PathBuf],
    policy: &TmpfsPolicy,
) -> Result<(PathBuf, bool), Error> {
    if let Some(root) = candidates.iter().find(|c| is_tmpfs(c)) {
        return Ok((root.clone(), true));
    }
    match policy {
        TmpfsPolicy::AllowFallback(dir) => {
            tracing::warn!(
                fallback = %dir.display(),
                tried = ?candidates,
                "no tmpfs found; secret files will be written to a directory that may be disk-backed"
            );
            Ok((dir.clone(), false))
        }
        TmpfsPolicy::Require => Err(Error::NoTmpfs {
            tried: candidates.to_vec(),
        }),
    }
}

fn is_tmpfs(path: &Path) -> bool {
    match statfs(path) {
        Ok(fs) => fs.filesystem_type() == TMPFS_MAGIC,
        Err(errno) => {
            tracing::debug!(path = %path.display(), %errno, "cannot statfs candidate secret-file root");
            false
        }
    }
}

/// Rejects file names that would escape the directory or that the OS cannot hold.
pub(crate) fn validate_file_name(var: &str, file_name: &str) -> Result<(), Error> {
    let reason = if file_name.is_empty() {
        "empty"
    } else if file_name == "." || file_name == ".." {
        "'.' and '..' are not file names"
    } else if file_name.contains('/') {
        "contains '/'"
    } else if file_name.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::InvalidFileName {
        var: var.to_owned(),
        file_name: file_name.to_owned(),
        reason,
    })
}

/// The private directory; removes itself (and whatever is in it) when dropped.
#[derive(Debug)]
pub(crate) struct SecretDir {
    /// Empty once [`SecretDir::remove`] has run.
    path: PathBuf,
    /// The directory, opened once; files are created relative to it.
    dir: File,
}

impl SecretDir {
    /// Creates `root/keyway-<random>` with mode 0700, owned by the current user.
    /// When `require_tmpfs`, also checks the new directory itself is on tmpfs
    /// (the root might have been a symlink that moved).
    pub(crate) fn create_in(root: &Path, require_tmpfs: bool) -> Result<SecretDir, Error> {
        let fail = |source: io::Error| Error::CreateDir {
            root: root.to_owned(),
            source,
        };
        let mut created = None;
        for _ in 0..NAME_ATTEMPTS {
            let path = root.join(unique_name());
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    created = Some(path);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(fail(e)),
            }
        }
        let path = created.ok_or_else(|| fail(io::Error::from(io::ErrorKind::AlreadyExists)))?;
        match secure(&path, require_tmpfs) {
            Ok(dir) => {
                tracing::debug!(path = %path.display(), "created secret-file directory");
                Ok(SecretDir { path, dir })
            }
            Err(e) => {
                // Still empty: nothing was written into it.
                let _ = std::fs::remove_dir(&path);
                Err(fail(e))
            }
        }
    }

    /// The directory's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one secret file (mode 0400) and returns its path. `file_name`
    /// must already have passed [`validate_file_name`].
    pub(crate) fn write(
        &self,
        var: &str,
        file_name: &str,
        contents: &[u8],
    ) -> Result<PathBuf, Error> {
        let path = self.path.join(file_name);
        let fail = |source: io::Error| Error::WriteFile {
            var: var.to_owned(),
            path: path.clone(),
            source,
        };
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(&self.dir, file_name, flags, Mode::S_IRUSR)
            .map_err(|e| fail(e.into()))?;
        let mut file = File::from(fd);
        // The umask could have removed the owner's read bit; set exactly 0400.
        file.set_permissions(Permissions::from_mode(0o400))
            .map_err(fail)?;
        file.write_all(contents).map_err(fail)?;
        Ok(path)
    }

    /// Removes the directory now, reporting failure (dropping does the same
    /// but can only log).
    pub(crate) fn remove(mut self) -> io::Result<()> {
        let path = std::mem::take(&mut self.path);
        std::fs::remove_dir_all(&path)
    }
}

impl Drop for SecretDir {
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return; // already removed by `remove`
        }
        match std::fs::remove_dir_all(&self.path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                tracing::warn!(path = %self.path.display(), %error, "could not remove the secret-file directory");
            }
            _ => {}
        }
    }
}

/// Opens the just-created directory without following a symlink, checks it is
/// ours, and sets its mode to exactly 0700 (mkdir's mode is filtered by the umask).
fn secure(path: &Path, require_tmpfs: bool) -> io::Result<File> {
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)?;
    let meta = dir.metadata()?;
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the new directory is not a directory owned by the current user",
        ));
    }
    dir.set_permissions(Permissions::from_mode(0o700))?;
    if require_tmpfs && fstatfs(&dir)?.filesystem_type() != TMPFS_MAGIC {
        return Err(io::Error::other("the new directory is not on tmpfs"));
    }
    Ok(dir)
}

/// `keyway-<16 hex digits>`; the digits come from std's randomly keyed hasher.
/// Uniqueness is enforced by `mkdir` failing on an existing name, not by luck.
fn unique_name() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(elapsed) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(elapsed.as_nanos());
    }
    format!("keyway-{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_validated() {
        for ok in ["token", "key.json", "..a", ".hidden"] {
            validate_file_name("V", ok).unwrap();
        }
        for (bad, why) in [
            ("", "empty"),
            (".", "'.'"),
            ("..", "'..'"),
            ("a/b", "'/'"),
            ("/abs", "'/'"),
            ("a\0", "NUL"),
        ] {
            let err = validate_file_name("V", bad).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("delivering V as a file") && msg.contains(why),
                "{bad:?}: {msg}"
            );
        }
    }

    #[test]
    fn xdg_runtime_dir_comes_first_when_absolute() {
        let env = Env::new().with("XDG_RUNTIME_DIR", "/run/user/1000");
        assert_eq!(
            candidate_roots(&env),
            [PathBuf::from("/run/user/1000"), PathBuf::from(SHM)]
        );
        let relative = Env::new().with("XDG_RUNTIME_DIR", "run");
        assert_eq!(candidate_roots(&relative), [PathBuf::from(SHM)]);
        assert_eq!(candidate_roots(&Env::new()), [PathBuf::from(SHM)]);
    }

    #[test]
    fn no_tmpfs_is_an_error_unless_a_fallback_is_allowed() {
        // The test binary lives in the target directory, which is on a disk.
        let exe = std::env::current_exe().unwrap();
        let disk = tempfile::tempdir_in(exe.parent().unwrap()).unwrap();
        assert!(
            !is_tmpfs(disk.path()),
            "test needs a non-tmpfs target directory"
        );
        let candidates = vec![
            disk.path().to_owned(),
            PathBuf::from("/proc"),
            PathBuf::from("/nonexistent/keyway"),
        ];
        let err = choose_root(&candidates, &TmpfsPolicy::Require).unwrap_err();
        assert!(matches!(&err, Error::NoTmpfs { tried } if tried == &candidates));
        assert!(
            err.to_string()
                .contains("refusing to write secrets to disk-backed storage")
        );

        let fallback = TmpfsPolicy::AllowFallback(disk.path().to_owned());
        assert_eq!(
            choose_root(&candidates, &fallback).unwrap(),
            (disk.path().to_owned(), false)
        );
        // A tmpfs directory created in the fallback is refused when tmpfs is required.
        assert!(SecretDir::create_in(disk.path(), true).is_err());
        assert_eq!(
            std::fs::read_dir(disk.path()).unwrap().count(),
            0,
            "failed create left a directory behind"
        );
    }

    #[test]
    fn shm_is_chosen_when_present() {
        let (root, tmpfs) = choose_root(&[PathBuf::from(SHM)], &TmpfsPolicy::Require).unwrap();
        assert_eq!((root.as_path(), tmpfs), (Path::new(SHM), true));
    }

    #[test]
    fn directory_and_files_are_private_and_removed_on_drop() {
        let root = tempfile::tempdir_in(SHM).unwrap();
        let dir = SecretDir::create_in(root.path(), true).unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o700);
        let file = dir.write("V", "token", b"value").unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o7777, 0o400);
        assert_eq!(std::fs::read(&file).unwrap(), b"value");
        // O_EXCL: the same name twice is an error naming the variable and path.
        let err = dir.write("W", "token", b"other").unwrap_err();
        assert!(matches!(&err, Error::WriteFile { var, .. } if var == "W"));
        assert!(!err.to_string().contains("other"));
        let path = dir.path().to_owned();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn symlinked_file_names_are_not_followed() {
        let root = tempfile::tempdir_in(SHM).unwrap();
        let dir = SecretDir::create_in(root.path(), true).unwrap();
        let target = root.path().join("target");
        std::os::unix::fs::symlink(&target, dir.path().join("link")).unwrap();
        assert!(dir.write("V", "link", b"value").is_err());
        assert!(!target.exists());
        let path = dir.path().to_owned();
        dir.remove().unwrap();
        assert!(!path.exists());
    }
}
