//! keyway-exec runs the workload. Given a resolved [`Plan`] (a program, its
//! arguments, the parent's environment as a value, and secret values to deliver
//! as environment variables or as files), [`run`] starts the program, supervises
//! it, cleans up, and reports how it ended. It knows nothing about clouds.
//!
//! # API
//!
//! ```no_run
//! # async fn demo() -> Result<(), keyway_exec::Error> {
//! use keyway_core::{Env, Secret};
//! use keyway_exec::{Plan, run};
//!
//! let plan = Plan::new("./app", Env::from_process())
//!     .args(["--port", "8080"])
//!     .var("DB_PASSWORD", Secret::new(b"hunter2".to_vec()))
//!     .file("GOOGLE_APPLICATION_CREDENTIALS", "sa.json", Secret::new(b"{}".to_vec()));
//! let exit = run(plan).await?; // inside a tokio runtime with IO enabled
//! std::process::exit(exit.code().into());
//! # }
//! ```
//!
//! * [`Plan`]: what to run. Fields are public; [`Plan::new`] and the builder
//!   methods are shortcuts. [`FileSecret`] is one file to deliver, and
//!   [`TmpfsPolicy`] says whether a disk-backed directory is acceptable.
//! * [`run_with_updates`] is [`run`] for a workload whose secrets may change
//!   while it runs: [`updates`] makes an [`Updater`]/[`Updates`] pair, and each
//!   [`Update`] sent replaces secret files atomically, then signals or restarts
//!   the workload ([`Action`]); see the `watch` module.
//! * [`run`] → `Result<`[`ChildExit`]`, `[`Error`]`>`. [`ChildExit::code`] is
//!   the code keyway should exit with: `exit(N)` → N, death by signal N → 128+N.
//!   [`Error::exit_code`] gives 127 for a missing program, 126 for one that
//!   cannot be executed, 125 otherwise.
//!
//! # What `run` does
//!
//! 1. **Environment.** The child gets `base_env` minus the names in `remove`,
//!    plus the plan's `vars` and one variable per file (its path). A plan
//!    variable wins over a base one. Values may be any bytes except NUL. Nothing
//!    is read from keyway's own process environment.
//! 2. **Files.** When the plan has files, a private directory (mode 0700) is
//!    created on a tmpfs, `$XDG_RUNTIME_DIR` if it is one, else `/dev/shm`, and
//!    each secret is written to its own file (mode 0400, `O_CREAT|O_EXCL|O_NOFOLLOW`).
//!    Without a tmpfs, `run` fails unless the plan says
//!    [`TmpfsPolicy::AllowFallback`].
//! 3. **Spawn.** The program is looked up on the *child's* `PATH` (as `env(1)`
//!    would), then started with fork and exec, no shell, argv exactly as given,
//!    with `SIGPIPE` at its default action and an empty signal mask. Unless
//!    the plan turns [`Plan::die_with_keyway`] off, the child asks the kernel
//!    to SIGKILL it when keyway dies (`PR_SET_PDEATHSIG`), and does not start
//!    at all if keyway died before it could ask.
//! 4. **Supervise.** `SIGTERM`, `SIGINT`, `SIGHUP`, `SIGQUIT`, `SIGUSR1`,
//!    `SIGUSR2` and `SIGWINCH` are forwarded to the child (keyboard signals are
//!    not sent twice when the terminal already delivered them; see the
//!    `supervise` module). When keyway is PID 1, or the plan sets
//!    [`Plan::subreaper`], every orphan re-parented to keyway is reaped too.
//! 5. **Cleanup.** Once the child has exited (normally, by a crash, or after a
//!    forwarded signal), the directory and its files are removed and `run`
//!    returns. An error after the directory exists removes it as well.
//! 6. **Sweep.** Before anything else, `run` removes the secret directories
//!    that a keyway killed earlier left behind (see "If keyway itself dies").
//!
//! # Where secret values live
//!
//! Each plan value is copied once, into the `NAME=value` buffer handed to the
//! kernel, and its [`Secret`] is dropped (zeroised) at that moment; file
//! contents are written and their `Secret` dropped one file at a time. The
//! environment buffers are zeroised as soon as the spawn returns (the child
//! has exec'd by then; its copy-on-write view of them went with the exec). Copies that remain, by design: the child's own memory
//! and `/proc/<child>/environ` (readable by the same user and root), the files
//! on tmpfs until cleanup, and the caller's `base_env` strings, which are not
//! secret by contract and are freed without zeroising. Secret values never
//! appear in an [`Error`], in a `Debug` output, or in a `tracing` event.
//!
//! # If keyway itself dies
//!
//! A `SIGTERM`, `SIGINT` or `SIGHUP` to keyway is forwarded and keyway cleans
//! up after the child. What keyway cannot catch (`SIGKILL`, the OOM killer, a
//! crash) ends it at once; then, exactly:
//!
//! * **The workload is killed** (`SIGKILL`, by the kernel, `PR_SET_PDEATHSIG`),
//!   unless the plan turned [`Plan::die_with_keyway`] off. Only the workload
//!   process itself: processes it started are not signalled by the kernel
//!   (they go on unless they watch their parent, as a shell's children of a
//!   killed shell do). The request is tied to the thread that called `run`; it
//!   does not survive the exec of a set-user-ID or set-group-ID program or one
//!   with file capabilities (the kernel clears it), so such a workload runs on.
//! * **The secret directory stays until the next `run`** (the next
//!   `keyway exec` of the same user), which removes it: each directory holds a
//!   `flock` while its keyway lives, and a directory whose lock is free has no
//!   owner left. With `die_with_keyway` off the workload holds the lock too
//!   (it inherits the directory's descriptor), so the files stay for as long as
//!   it (or anything it passed that descriptor to) runs. Until removed, the
//!   directory is on tmpfs (its contents never reach a disk unless tmpfs pages
//!   are swapped out), readable only by the same user and root, and gone at
//!   the next boot.
//!
//! # Limits
//!
//! * The signal handlers installed by `run` stay installed for the life of the
//!   process: after `run`, those signals no longer terminate keyway by default.
//!   `run` is meant to be the last thing the binary does.
//! * In PID 1 or subreaper mode `run` reaps *any* child of the process, so it
//!   must not run alongside other code of the same process that waits for its
//!   own children (for example `tokio::process`). The subreaper flag, once
//!   set, stays set. Orphans still running when the workload exits are left
//!   alone (as PID 1, they die with the PID namespace when keyway exits).
//! * `run` is not meant to be cancelled: dropping its future while the child
//!   runs removes the secret files but neither kills nor reaps the child.
//! * `run` needs a tokio runtime with IO enabled (tokio's signal handling).

mod envblock;
mod error;
mod secret_dir;
mod spawn;
mod supervise;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;

use keyway_core::{Env, Secret};

use crate::envblock::EnvBlock;
pub use crate::error::Error;
use crate::secret_dir::SecretDir;
pub use crate::watch::{Action, Update, UpdateError, Updater, Updates, updates};

/// Everything [`run`] needs: what to start and what to give it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Plan {
    /// The program: a path (containing `/`) or a name looked up on the child's `PATH`.
    pub program: OsString,
    /// The arguments after the program (argv\[1..\]), passed exactly as given.
    pub args: Vec<OsString>,
    /// The parent's environment, captured by the binary.
    pub base_env: Env,
    /// Names to drop from `base_env` (a plan variable of the same name is still set).
    pub remove: Vec<String>,
    /// Variables to set to secret values.
    pub vars: Vec<(String, Secret<Vec<u8>>)>,
    /// Secrets to deliver as files on tmpfs.
    pub files: Vec<FileSecret>,
    /// What to do when no tmpfs is available.
    pub tmp: TmpfsPolicy,
    /// Become a child subreaper (`PR_SET_CHILD_SUBREAPER`) and reap every orphan,
    /// as PID 1 does. Implied when keyway is PID 1.
    pub subreaper: bool,
    /// Have the kernel kill the workload if keyway dies without cleaning up
    /// (`SIGKILL`, the OOM killer): on by default. Off, the workload runs on
    /// orphaned and keeps its secret files until it exits (see the crate
    /// documentation).
    pub die_with_keyway: bool,
}

/// One secret delivered as a file: the file `file_name` in the private
/// directory, and the variable `var` set to its path.
#[derive(Debug)]
pub struct FileSecret {
    pub var: String,
    /// A plain name: not empty, not `.` or `..`, without `/` or NUL.
    pub file_name: String,
    pub contents: Secret<Vec<u8>>,
}

/// Where secret files may be written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TmpfsPolicy {
    /// Only on a tmpfs (`$XDG_RUNTIME_DIR`, else `/dev/shm`); fail otherwise.
    #[default]
    Require,
    /// Prefer a tmpfs, but use this directory (which may be disk-backed) when
    /// there is none. A warning is logged when the fallback is used.
    AllowFallback(PathBuf),
}

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// It called `exit(code)`.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
}

impl ChildExit {
    /// The exit code a wrapper should pass on, as shells do: N for `exit(N)`,
    /// 128+N for death by signal N.
    pub fn code(self) -> u8 {
        let code = match self {
            ChildExit::Exited(code) => code,
            ChildExit::Signaled(signal) => 128 + signal,
        };
        // Exit statuses are 0..=255 and signal numbers at most 64, so this
        // never saturates; clamp rather than wrap if a kernel ever disagrees.
        u8::try_from(code).unwrap_or(u8::MAX)
    }
}

impl From<ChildExit> for std::process::ExitCode {
    fn from(exit: ChildExit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

impl Plan {
    /// A plan that runs `program` with no arguments in `base_env`, with no
    /// secrets yet, requiring tmpfs, not a subreaper, dying with keyway.
    pub fn new(program: impl Into<OsString>, base_env: Env) -> Plan {
        Plan {
            program: program.into(),
            args: Vec::new(),
            base_env,
            remove: Vec::new(),
            vars: Vec::new(),
            files: Vec::new(),
            tmp: TmpfsPolicy::default(),
            subreaper: false,
            die_with_keyway: true,
        }
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Plan {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets `name` to a secret value in the child's environment.
    pub fn var(mut self, name: impl Into<String>, value: Secret<Vec<u8>>) -> Plan {
        self.vars.push((name.into(), value));
        self
    }

    /// Delivers a secret as the file `file_name` and sets `var` to its path.
    pub fn file(
        mut self,
        var: impl Into<String>,
        file_name: impl Into<String>,
        contents: Secret<Vec<u8>>,
    ) -> Plan {
        self.files.push(FileSecret {
            var: var.into(),
            file_name: file_name.into(),
            contents,
        });
        self
    }
}

/// Turns a `Secret<String>` into the `Secret<Vec<u8>>` a [`Plan`] holds,
/// moving the buffer (no copy is made).
pub fn secret_bytes(mut secret: Secret<String>) -> Secret<Vec<u8>> {
    Secret::new(std::mem::take(secret.expose_mut()).into_bytes())
}

/// Runs the plan to completion: builds the environment, writes the secret
/// files, spawns the program, forwards signals until it exits, removes the
/// files, and returns how it ended. See the crate documentation.
pub async fn run(plan: Plan) -> Result<ChildExit, Error> {
    run_inner(plan, None).await
}

/// [`run`], and while the workload runs, carry out the [`Update`]s sent
/// through the [`Updater`] paired with `updates`: replace secret files
/// atomically, then signal the workload or restart it (see [`Action`]). The
/// exit returned is that of the last process started. Updates stop being
/// read when every `Updater` is dropped; the workload runs on.
pub async fn run_with_updates(plan: Plan, mut updates: Updates) -> Result<ChildExit, Error> {
    run_inner(plan, Some(&mut updates)).await
}

async fn run_inner(plan: Plan, updates: Option<&mut Updates>) -> Result<ChildExit, Error> {
    let Plan {
        program,
        args,
        base_env,
        remove,
        vars,
        files,
        tmp,
        subreaper,
        die_with_keyway,
    } = plan;

    // Directories a killed keyway left behind go first.
    let mut roots = secret_dir::candidate_roots(&base_env);
    if let TmpfsPolicy::AllowFallback(dir) = &tmp {
        roots.push(dir.clone());
    }
    secret_dir::sweep_stale(&roots);

    // Everything that can be checked without side effects comes first.
    let plan_vars: Vec<String> = vars.iter().map(|(name, _)| name.clone()).collect();
    let mut env = EnvBlock::build(&base_env, &remove, vars)?;
    check_files(&env, &files)?;
    let command = spawn::Command::prepare(&program, &args, env.get(keyway_core::vars::PATH))?;

    let reap_all = subreaper || nix::unistd::getpid().as_raw() == 1;
    if subreaper {
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| Error::Subreaper { source: e.into() })?;
    }
    let mut signals = supervise::Signals::install()?;

    let (dir, file_paths) = write_files(&base_env, &tmp, files, &mut env)?;
    tracing::debug!(
        program = %command.path().display(),
        args = args.len(),
        vars = ?plan_vars,
        env = ?env.names().collect::<Vec<_>>(),
        secret_dir = ?dir.as_ref().map(SecretDir::path),
        reap_all,
        "starting workload"
    );
    let tie = spawn::Tie {
        die_with_keyway,
        // An orphan keeps its files: it holds the directory's lock with keyway's.
        keep_fd: dir.as_ref().filter(|_| !die_with_keyway).map(SecretDir::fd),
    };
    let pid = command.spawn(&env, tie)?;
    drop(env); // zeroises every NAME=value buffer
    tracing::debug!(pid = pid.as_raw(), program = %command.path().display(), "workload started");

    let watch = updates.map(|updates| {
        let workload = watch::Workload {
            command: &command,
            tie,
            base_env: &base_env,
            remove: &remove,
            dir: dir.as_ref(),
            files: file_paths,
            vars: plan_vars.iter().cloned().collect(),
        };
        (updates, workload)
    });
    let exit = supervise::supervise(pid, &mut signals, reap_all, watch).await;
    if let Some(dir) = dir {
        let path = dir.path().to_owned();
        match dir.remove() {
            Ok(()) => tracing::debug!(path = %path.display(), "removed secret-file directory"),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "could not remove the secret-file directory")
            }
        }
    }
    exit
}

/// Checks every file's variable and name before anything touches the disk.
fn check_files(env: &EnvBlock, files: &[FileSecret]) -> Result<(), Error> {
    let mut vars = BTreeSet::new();
    let mut names = BTreeSet::new();
    for f in files {
        env.check_plan_name(&f.var)?;
        if !vars.insert(f.var.as_str()) {
            return Err(Error::DuplicateVar { var: f.var.clone() });
        }
        secret_dir::validate_file_name(&f.var, &f.file_name)?;
        if !names.insert(f.file_name.as_str()) {
            return Err(Error::DuplicateFileName {
                var: f.var.clone(),
                file_name: f.file_name.clone(),
            });
        }
    }
    Ok(())
}

/// Each file's variable, and its file name and path.
type FilePaths = BTreeMap<String, (String, PathBuf)>;

/// Creates the private directory and writes the files, dropping (zeroising)
/// each secret once written. `None` when there are no files.
fn write_files(
    base_env: &Env,
    tmp: &TmpfsPolicy,
    files: Vec<FileSecret>,
    env: &mut EnvBlock,
) -> Result<(Option<SecretDir>, FilePaths), Error> {
    let mut paths = FilePaths::new();
    if files.is_empty() {
        return Ok((None, paths));
    }
    let (root, on_tmpfs) = secret_dir::choose_root(&secret_dir::candidate_roots(base_env), tmp)?;
    let dir = SecretDir::create_in(&root, on_tmpfs)?;
    for file in files {
        let path = dir.write(&file.var, &file.file_name, file.contents.expose())?;
        env.set_path(&file.var, &path)?;
        paths.insert(file.var, (file.file_name, path));
    }
    Ok((Some(dir), paths))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(ChildExit::Exited(0).code(), 0);
        assert_eq!(ChildExit::Exited(255).code(), 255);
        assert_eq!(ChildExit::Signaled(libc::SIGTERM).code(), 143);
        assert_eq!(ChildExit::Signaled(libc::SIGKILL).code(), 137);
    }

    #[test]
    fn secret_bytes_moves_the_buffer() {
        let s = Secret::new(String::from("value"));
        let ptr = s.expose().as_ptr();
        let b = secret_bytes(s);
        assert_eq!(b.expose(), b"value");
        assert_eq!(b.expose().as_ptr(), ptr);
    }

    #[test]
    fn run_can_be_spawned_on_a_multi_threaded_runtime() {
        fn assert_send<T: Send>(_: &T) {}
        assert_send(&run(Plan::new("true", Env::new())));
    }

    #[test]
    fn plan_debug_shows_names_not_values() {
        let plan = Plan::new("app", Env::new().with("BASE", "base-value"))
            .var("TOKEN", Secret::new(b"s3cr3t-VALUE-123".to_vec()))
            .file("KEY", "key.json", Secret::new(b"s3cr3t-VALUE-123".to_vec()));
        let debug = format!("{plan:?}");
        assert!(debug.contains("TOKEN") && debug.contains("key.json") && debug.contains("BASE"));
        assert!(
            !debug.contains("s3cr3t-VALUE-123") && !debug.contains("base-value"),
            "{debug}"
        );
    }
}
