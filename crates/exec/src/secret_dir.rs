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
//! If keyway is killed with SIGKILL (or the OOM killer, or crashes), nothing of
//! it runs to remove the directory. So each directory is named
//! `keyway-exec-<16 hex digits>` and holds an exclusive `flock` for as long as
//! its keyway lives (the kernel releases it when the process dies, however it
//! dies; with `Plan::die_with_keyway` off, the workload inherits the locked
//! descriptor and holds it too). Every `run` first sweeps [`sweep_stale`]: a
//! directory of that name, owned by this user, whose lock can be taken has no
//! living owner, and is removed. Until the next `keyway exec` (or the next
//! boot, tmpfs being memory) such a directory stays readable only by the same
//! user and root, and its contents never reach a disk (unless tmpfs pages are
//! swapped out).

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use keyway_core::{Env, Secret};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::statfs::{TMPFS_MAGIC, fstatfs, statfs};
use nix::unistd::UnlinkatFlags;

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
        .non_empty(keyway_core::vars::XDG_RUNTIME_DIR)
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

/// Prefix of every secret directory; the sweep looks at these names only.
const PREFIX: &str = "keyway-exec-";

/// The private directory; removes itself (and whatever is in it) when dropped.
#[derive(Debug)]
pub(crate) struct SecretDir {
    /// Empty once [`SecretDir::remove`] has run.
    path: PathBuf,
    /// The directory, opened once and exclusively `flock`ed while keyway
    /// lives; files are created relative to it.
    dir: File,
}

impl SecretDir {
    /// Creates `root/keyway-exec-<random>` with mode 0700, owned by the
    /// current user, and takes its lock. When `require_tmpfs`, also checks the
    /// new directory itself is on tmpfs (the root might have been a symlink that
    /// moved). A name another keyway's sweep removed before the lock was taken
    /// is given up for a new one.
    pub(crate) fn create_in(root: &Path, require_tmpfs: bool) -> Result<SecretDir, Error> {
        let fail = |source: io::Error| Error::CreateDir {
            root: root.to_owned(),
            source,
        };
        let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
        for attempt in 0..NAME_ATTEMPTS {
            let path = root.join(unique_name(attempt));
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(fail(e)),
            }
            let dir = match secure(&path, require_tmpfs) {
                Ok(dir) => dir,
                // Swept away before we opened it: try another name.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    last = e;
                    continue;
                }
                Err(e) => {
                    // Still empty: nothing was written into it.
                    let _ = std::fs::remove_dir(&path);
                    return Err(fail(e));
                }
            };
            // A sweep that found it unlocked holds the lock and removes it: leave
            // it to that sweep. Once locked, check the name is still this
            // directory (a sweep may have removed it between open and lock).
            if let Err(e) = lock(&dir) {
                last = e;
                continue;
            }
            match (std::fs::symlink_metadata(&path), dir.metadata()) {
                (Ok(named), Ok(held)) if named.ino() == held.ino() && named.dev() == held.dev() => {
                    tracing::debug!(path = %path.display(), "created secret-file directory");
                    return Ok(SecretDir { path, dir });
                }
                _ => {
                    last = io::Error::from(io::ErrorKind::NotFound);
                    continue;
                }
            }
        }
        Err(fail(last))
    }

    /// The open directory (its descriptor carries the lock).
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.dir.as_raw_fd()
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

    /// Writes new contents for existing secret files as temporary files in the
    /// same directory (mode 0400, `O_CREAT|O_EXCL|O_NOFOLLOW`), without touching
    /// the files yet. [`Staged::commit`] then renames each over its file: a
    /// reader sees the whole old contents or the whole new ones, never a mix,
    /// at the same path. If any write fails, nothing is replaced (the
    /// temporary files are removed). Each `(var, file_name, contents)` names a
    /// file [`SecretDir::write`] created.
    pub(crate) fn stage<'a>(
        &'a self,
        files: impl IntoIterator<Item = (&'a str, &'a str, Secret<Vec<u8>>)>,
    ) -> Result<Staged<'a>, Error> {
        let mut staged = Staged {
            dir: self,
            temps: Vec::new(),
        };
        for (var, file_name, contents) in files {
            let path = self.path.join(file_name);
            let fail = |source: io::Error| Error::ReplaceFile {
                var: var.to_owned(),
                path: path.clone(),
                source,
            };
            let flags = OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_WRONLY
                | OFlag::O_CLOEXEC;
            let mut attempt = 0;
            let (temp, fd) = loop {
                let temp = format!(".{}", unique_name(attempt));
                match nix::fcntl::openat(&self.dir, temp.as_str(), flags, Mode::S_IRUSR) {
                    Ok(fd) => break (temp, fd),
                    Err(nix::errno::Errno::EEXIST) if attempt + 1 < NAME_ATTEMPTS => attempt += 1,
                    Err(e) => return Err(fail(e.into())),
                }
            };
            // Recorded before writing, so a failed write removes it too.
            staged.temps.push((temp, file_name, var));
            let mut file = File::from(fd);
            file.set_permissions(Permissions::from_mode(0o400))
                .map_err(fail)?;
            file.write_all(contents.expose()).map_err(fail)?;
            // `contents` drops here: the Secret zeroises its buffer.
        }
        Ok(staged)
    }

    /// Removes the directory now, reporting failure (dropping does the same
    /// but can only log).
    pub(crate) fn remove(mut self) -> io::Result<()> {
        let path = std::mem::take(&mut self.path);
        std::fs::remove_dir_all(&path)
    }
}

/// New contents written beside the files they replace, not yet in place;
/// dropped uncommitted, the temporary files are removed.
pub(crate) struct Staged<'a> {
    dir: &'a SecretDir,
    /// (temporary name, file name, variable), in the order given.
    temps: Vec<(String, &'a str, &'a str)>,
}

impl Staged<'_> {
    /// Renames every temporary file over its file (`renameat`, atomic for
    /// each file). In a directory only keyway writes to, on one file system,
    /// a rename fails only if the directory itself was tampered with; then the
    /// files before it stay replaced and the error names the one that failed.
    pub(crate) fn commit(mut self) -> Result<(), Error> {
        let temps = std::mem::take(&mut self.temps);
        let mut rest = temps.iter();
        for (temp, file_name, var) in rest.by_ref() {
            if let Err(errno) =
                nix::fcntl::renameat(&self.dir.dir, temp.as_str(), &self.dir.dir, *file_name)
            {
                // Put back what is left so that drop removes it.
                self.temps = std::iter::once((temp.clone(), *file_name, *var))
                    .chain(rest.cloned())
                    .collect();
                return Err(Error::ReplaceFile {
                    var: (*var).to_owned(),
                    path: self.dir.path.join(file_name),
                    source: errno.into(),
                });
            }
        }
        Ok(())
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        for (temp, _, _) in &self.temps {
            let _ = nix::unistd::unlinkat(&self.dir.dir, temp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
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

/// `keyway-exec-<16 hex digits>`; the digits come from std's randomly keyed
/// hasher (a new key for every call). Uniqueness is enforced by `mkdir`
/// failing on an existing name, not by luck.
fn unique_name(attempt: usize) -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_usize(attempt);
    format!("{PREFIX}{:016x}", hasher.finish())
}

/// Whether `name` is one [`unique_name`] makes.
fn is_secret_dir_name(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `flock(LOCK_EX | LOCK_NB)`: fails at once if another process holds it.
fn lock(dir: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Removes, in each of `roots`, the secret directories left by a keyway that
/// died without cleaning up: named as keyway names them, owned by this user,
/// and unlocked (a living keyway, or a workload started with
/// `die_with_keyway` off, holds the lock). Best effort: what cannot be read or
/// removed is left alone and logged at debug level.
pub(crate) fn sweep_stale(roots: &[PathBuf]) {
    let me = nix::unistd::geteuid().as_raw();
    for root in roots {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_str().is_some_and(is_secret_dir_name) {
                continue;
            }
            let path = entry.path();
            let Ok(dir) = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(&path)
            else {
                continue;
            };
            if !dir.metadata().is_ok_and(|m| m.is_dir() && m.uid() == me) {
                continue;
            }
            if lock(&dir).is_err() {
                continue; // its keyway (or its workload) is alive
            }
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a secret-file directory left by a keyway that was killed")
                }
                Err(error) => {
                    tracing::debug!(path = %path.display(), %error, "could not remove a stale secret-file directory")
                }
            }
        }
    }
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
    fn only_unlocked_directories_of_ours_are_swept() {
        let root = tempfile::tempdir_in(SHM).unwrap();
        let live = SecretDir::create_in(root.path(), true).unwrap();
        live.write("V", "token", b"value").unwrap();
        assert!(is_secret_dir_name(
            live.path().file_name().unwrap().to_str().unwrap()
        ));
        // A directory whose keyway died: same name shape, files inside, no lock.
        let dead = root.path().join("keyway-exec-00000000000000ff");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("token"), b"value").unwrap();
        std::fs::set_permissions(dead.join("token"), Permissions::from_mode(0o400)).unwrap();
        // Not ours by name: left alone.
        let other = root.path().join("keyway-exec-not-hex-digits");
        std::fs::create_dir(&other).unwrap();
        sweep_stale(&[root.path().to_owned()]);
        assert!(!dead.exists(), "the abandoned directory is swept");
        assert!(live.path().exists(), "a locked directory is not");
        assert!(other.exists());
        let path = live.path().to_owned();
        drop(live);
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
