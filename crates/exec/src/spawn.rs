//! Starting the program: find it on the child's `PATH`, then `posix_spawn` it
//! with argv exactly as given and the [`EnvBlock`] as its whole environment.
//!
//! No shell is involved. `posix_spawn` (rather than `std::process::Command`)
//! is used so the environment handed to the kernel is the block keyway owns
//! and wipes, not a copy inside `Command` that is freed unwiped; glibc's
//! implementation reports exec failures (`ENOENT`, `EACCES`, ...) as its
//! return value, which is how a missing program becomes exit code 127 and an
//! unexecutable one 126. The child starts with an empty signal mask and with
//! `SIGPIPE` at its default action (the Rust runtime ignores it in keyway, and
//! ignored signals survive exec); other ignored signals are inherited as they
//! are, so `nohup keyway exec ...` still works.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{AccessFlags, Pid, access};

use crate::envblock::EnvBlock;
use crate::error::Error;

/// The search path used when the child's environment has no `PATH`.
pub(crate) const DEFAULT_PATH: &[u8] = b"/usr/local/bin:/usr/bin:/bin";

/// A resolved program and its argv, ready to spawn.
#[derive(Debug)]
pub(crate) struct Command {
    /// The program as the caller named it, for messages.
    program: PathBuf,
    /// The file to execute.
    path: PathBuf,
    argv: Vec<CString>,
}

impl Command {
    /// Checks argv and finds the program. `path_var` is the child's `PATH`.
    pub(crate) fn prepare(
        program: &OsStr,
        args: &[OsString],
        path_var: Option<&[u8]>,
    ) -> Result<Command, Error> {
        let argv = std::iter::once(program)
            .chain(args.iter().map(OsString::as_os_str))
            .enumerate()
            .map(|(index, arg)| {
                CString::new(arg.as_bytes()).map_err(|_| Error::NulInArgument { index })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let path = resolve(program, path_var)?;
        Ok(Command {
            program: PathBuf::from(program),
            path,
            argv,
        })
    }

    /// The file that will be executed.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Starts the child. On return the child has already exec'd (glibc's
    /// `posix_spawn` waits for that), so `env` may be wiped right away.
    pub(crate) fn spawn(&self, env: &EnvBlock) -> Result<Pid, Error> {
        let setup = |source: Errno| Error::Spawn {
            program: self.program.clone(),
            source: source.into(),
        };
        let mut attr = PosixSpawnAttr::init().map_err(setup)?;
        let mut defaults = SigSet::empty();
        defaults.add(Signal::SIGPIPE);
        attr.set_sigdefault(&defaults).map_err(setup)?;
        attr.set_sigmask(&SigSet::empty()).map_err(setup)?;
        attr.set_flags(
            PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK,
        )
        .map_err(setup)?;
        let actions = PosixSpawnFileActions::init().map_err(setup)?;
        posix_spawn(
            self.path.as_path(),
            &actions,
            &attr,
            &self.argv,
            &env.strings(),
        )
        .map_err(|errno| spawn_error(&self.program, errno))
    }
}

/// Shell conventions: only "no such file" is "not found" (127); any other
/// reason exec refused the file is "cannot execute" (126).
fn spawn_error(program: &Path, errno: Errno) -> Error {
    let program = program.to_owned();
    match errno {
        Errno::ENOENT => Error::ProgramNotFound { program },
        Errno::EACCES
        | Errno::ENOEXEC
        | Errno::EISDIR
        | Errno::ENOTDIR
        | Errno::ELOOP
        | Errno::ETXTBSY
        | Errno::EPERM => Error::NotExecutable {
            program,
            source: errno.into(),
        },
        _ => Error::Spawn {
            program,
            source: errno.into(),
        },
    }
}

/// `execvp`'s search, on the child's `PATH` rather than keyway's: a name with a
/// `/` is used as is; otherwise the first regular, executable file named
/// `program` in a `PATH` directory wins. Empty `PATH` entries are skipped
/// rather than meaning the current directory, so a secret-carrying command
/// never runs something from `.` by accident.
fn resolve(program: &OsStr, path_var: Option<&[u8]>) -> Result<PathBuf, Error> {
    let name = program.as_bytes();
    if name.is_empty() {
        return Err(Error::ProgramNotFound {
            program: PathBuf::new(),
        });
    }
    if name.contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let mut denied = false;
    for dir in path_var.unwrap_or(DEFAULT_PATH).split(|b| *b == b':') {
        if dir.is_empty() {
            continue;
        }
        let candidate = Path::new(OsStr::from_bytes(dir)).join(program);
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() => {
                if access(&candidate, AccessFlags::X_OK).is_ok() {
                    return Ok(candidate);
                }
                denied = true;
            }
            _ => {}
        }
    }
    if denied {
        return Err(Error::NotExecutable {
            program: PathBuf::from(program),
            source: Errno::EACCES.into(),
        });
    }
    Err(Error::ProgramNotFound {
        program: PathBuf::from(program),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn names_with_a_slash_are_used_as_given() {
        assert_eq!(
            resolve(OsStr::new("./app"), Some(b"/bin")).unwrap(),
            Path::new("./app")
        );
    }

    #[test]
    fn search_uses_the_given_path_in_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for dir in [a.path(), b.path()] {
            let f = dir.join("tool");
            std::fs::write(&f, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = format!("::{}:{}", a.path().display(), b.path().display());
        assert_eq!(
            resolve(OsStr::new("tool"), Some(path.as_bytes())).unwrap(),
            a.path().join("tool")
        );
        // Not found when the directory holding it is not on PATH.
        assert!(matches!(
            resolve(OsStr::new("tool"), Some(b"/nonexistent")),
            Err(Error::ProgramNotFound { .. })
        ));
        // A default PATH applies when the child has none.
        assert_eq!(
            resolve(OsStr::new("sh"), None).unwrap().file_name(),
            Some(OsStr::new("sh"))
        );
    }

    #[test]
    fn a_non_executable_match_is_126_unless_a_later_one_is_executable() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("tool"), "data").unwrap();
        std::fs::set_permissions(
            a.path().join("tool"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let only_a = a.path().as_os_str().as_bytes().to_vec();
        let err = resolve(OsStr::new("tool"), Some(&only_a)).unwrap_err();
        // Root may execute anything with any x bit; 0644 has none.
        assert_eq!(err.exit_code(), 126, "{err}");
        let exe = b.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o700)).unwrap();
        let both = format!("{}:{}", a.path().display(), b.path().display());
        assert_eq!(
            resolve(OsStr::new("tool"), Some(both.as_bytes())).unwrap(),
            exe
        );
    }

    #[test]
    fn nul_in_argv_is_rejected_by_position() {
        let args = [OsString::from("ok"), OsString::from("bad\0arg")];
        let err = Command::prepare(OsStr::new("/bin/sh"), &args, None).unwrap_err();
        assert!(matches!(err, Error::NulInArgument { index: 2 }));
    }

    #[test]
    fn errno_maps_to_shell_exit_codes() {
        let p = Path::new("x");
        assert_eq!(spawn_error(p, Errno::ENOENT).exit_code(), 127);
        assert_eq!(spawn_error(p, Errno::EACCES).exit_code(), 126);
        assert_eq!(spawn_error(p, Errno::ENOEXEC).exit_code(), 126);
        assert_eq!(spawn_error(p, Errno::E2BIG).exit_code(), 125);
    }
}
