//! Starting the program: find it on the child's `PATH`, then fork and exec it
//! with argv exactly as given and the [`EnvBlock`] as its whole environment.
//!
//! No shell is involved, and no `std::process::Command`: the environment handed
//! to the kernel is the block keyway owns and wipes, not a copy inside
//! `Command` that is freed unwiped. keyway forks and execs itself (rather than
//! using `posix_spawn`) because the child must ask the kernel, between fork and
//! exec, to die with keyway (`PR_SET_PDEATHSIG`), which `posix_spawn` cannot.
//!
//! Between fork and exec the child does only async-signal-safe system calls on
//! memory prepared before the fork (no allocation, no lock):
//!
//! 1. signals: every signal keyway handles goes back to its default action (so
//!    no handler of keyway's can run in the child), `SIGPIPE` to its default
//!    (the Rust runtime ignores it in keyway, and ignored signals survive
//!    exec), other ignored signals stay ignored (so `nohup keyway exec …`
//!    works), and the signal mask is emptied. keyway blocks every signal
//!    around the fork so none is handled in the child before this;
//! 2. unless the plan says otherwise, `PR_SET_PDEATHSIG(SIGKILL)`, then
//!    `getppid()` is compared with keyway's pid: if keyway died before the
//!    request took effect, the child exits instead of running on orphaned;
//! 3. with `keep_fd` (the secret directory, when the child may outlive
//!    keyway), that descriptor is kept open across exec, so the directory's
//!    lock is held for as long as the child runs;
//! 4. `execve`. A failure is written (as its errno) to a close-on-exec pipe,
//!    whose end-of-file tells keyway that the exec happened; this is how a
//!    missing program becomes exit code 127 and an unexecutable one 126.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
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

/// How the child is tied to keyway.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tie {
    /// Ask the kernel to SIGKILL the child when keyway dies.
    pub die_with_keyway: bool,
    /// A descriptor the child keeps across exec (the secret directory's lock).
    pub keep_fd: Option<RawFd>,
}

/// What the child reports through the pipe when it cannot exec.
const STAGE_EXEC: i32 = 0;
const STAGE_PDEATHSIG: i32 = 1;

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

    /// Starts the child. On return the child has already exec'd (its end of
    /// the error pipe closed on exec), so `env` may be wiped right away.
    pub(crate) fn spawn(&self, env: &EnvBlock, tie: Tie) -> Result<Pid, Error> {
        let setup = |errno: Errno| Error::Spawn {
            program: self.program.clone(),
            source: errno.into(),
        };
        // Everything the child touches is prepared here, before the fork.
        let path = CString::new(self.path.as_os_str().as_bytes())
            .map_err(|_| Error::NulInArgument { index: 0 })?;
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let strings = env.strings();
        let mut envp: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        envp.push(std::ptr::null());
        let (read_end, write_end) = pipe().map_err(setup)?;
        let parent = nix::unistd::getpid().as_raw();
        let keep_fd = tie.keep_fd.unwrap_or(-1);

        // Block every signal around the fork: none may be handled in the child
        // by keyway's handlers before it resets them (those that arrive in
        // keyway meanwhile are delivered when the mask is restored).
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: sigfillset and pthread_sigmask only write the sets we own.
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        }
        // SAFETY: after fork the child calls only async-signal-safe functions on
        // memory prepared above, then execs or _exits (see `child`).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: we are the child; `child` never returns.
            unsafe {
                child(
                    path.as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                    parent,
                    tie.die_with_keyway,
                    keep_fd,
                    write_end.as_raw_fd(),
                )
            }
        }
        let fork_errno = Errno::last();
        // SAFETY: restores the mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        drop(write_end);
        if pid < 0 {
            return Err(setup(fork_errno));
        }
        let pid = Pid::from_raw(pid);
        match read_report(&read_end) {
            None => Ok(pid),
            Some((stage, errno)) => {
                // The child _exited without running anything: collect it.
                let _ = nix::sys::wait::waitpid(pid, None);
                Err(match stage {
                    STAGE_PDEATHSIG => setup(errno),
                    _ => spawn_error(&self.program, errno),
                })
            }
        }
    }
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two new descriptors into the array, which we own from here.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Errno::last());
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads the child's report: `None` at end-of-file (it exec'd), else what
/// failed and its errno.
fn read_report(fd: &OwnedFd) -> Option<(i32, Errno)> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reads into the part of our buffer not yet filled.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
            )
        };
        match n {
            0 => break,
            n if n > 0 => got += n as usize,
            _ if Errno::last() == Errno::EINTR => continue,
            _ => break,
        }
    }
    if got < buf.len() {
        return None;
    }
    let stage = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Some((stage, Errno::from_raw(errno)))
}

/// The child between fork and exec. Only async-signal-safe calls, no
/// allocation, no panics; ends in `execve` or `_exit`.
///
/// # Safety
///
/// Must be called only in the child of a `fork`, with every pointer valid and
/// null-terminated as `execve` requires.
unsafe fn child(
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    parent: libc::pid_t,
    die_with_keyway: bool,
    keep_fd: RawFd,
    report_fd: RawFd,
) -> ! {
    unsafe {
        // 1. Signals: handlers back to default, SIGPIPE to default, the rest as
        //    inherited (ignored stays ignored), then an empty mask.
        let mut act: libc::sigaction = std::mem::zeroed();
        // Linux numbers signals 1 to 64; sigaction refuses the others.
        for sig in 1..=64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            if libc::sigaction(sig, std::ptr::null(), &mut act) != 0 {
                continue;
            }
            let handled = act.sa_sigaction != libc::SIG_DFL && act.sa_sigaction != libc::SIG_IGN;
            if handled || sig == libc::SIGPIPE {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());

        // 2. Die with keyway; if keyway is already gone, do not start at all.
        if die_with_keyway {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                report(report_fd, STAGE_PDEATHSIG);
                libc::_exit(125);
            }
            if libc::getppid() != parent {
                libc::_exit(125);
            }
        }

        // 3. The descriptor that must outlive keyway stays open across exec.
        if keep_fd >= 0 {
            libc::fcntl(keep_fd, libc::F_SETFD, 0);
        }

        // 4. Exec; on failure, say why.
        libc::execve(path, argv, envp);
        report(report_fd, STAGE_EXEC);
        libc::_exit(127)
    }
}

/// Writes (stage, errno) to the report pipe. Async-signal-safe.
unsafe fn report(fd: RawFd, stage: i32) {
    let errno = Errno::last_raw();
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&stage.to_ne_bytes());
    buf[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: writes our own 8-byte buffer; a short write leaves the parent
    // seeing end-of-file, which is the best that can be done here.
    unsafe {
        libc::write(fd, buf.as_ptr().cast(), buf.len());
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
