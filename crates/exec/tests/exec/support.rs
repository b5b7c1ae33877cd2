//! Shared helpers: plans that run `/bin/sh -c`, scratch directories (one on
//! disk for markers, one on tmpfs standing in for `$XDG_RUNTIME_DIR`), and the
//! harness, a separate keyway-like process for tests that must signal keyway
//! or make it a reaper (both affect the whole process, so they cannot run
//! inside this test binary's shared process).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use keyway_core::{Env, Secret};
use keyway_exec::{Plan, TmpfsPolicy, run};
use tempfile::TempDir;

/// A distinctive value that must never show up in errors or logs.
pub const SECRET: &str = "s3cr3t-VALUE-123";

/// Set in the harness process's environment; see [`harness_main`].
pub const HARNESS: &str = "KEYWAY_EXEC_TEST_HARNESS";

/// How long any one wait in a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Per-test directories: `out` on disk for the child's reports, `runtime` on
/// tmpfs, passed as `$XDG_RUNTIME_DIR` so secret dirs land where a test can see them.
pub struct Scratch {
    pub out: TempDir,
    pub runtime: TempDir,
}

impl Scratch {
    /// Also starts the log capture, so every in-process test's logs are checked.
    pub fn new() -> Scratch {
        captured_logs();
        Scratch {
            out: tempfile::tempdir().unwrap(),
            runtime: tempfile::tempdir_in("/dev/shm").unwrap(),
        }
    }

    pub fn out(&self, name: &str) -> PathBuf {
        self.out.path().join(name)
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.out(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
    }

    /// A minimal base environment: PATH, the tmpfs runtime dir, and OUT.
    pub fn env(&self) -> Env {
        Env::new()
            .with("PATH", "/usr/local/bin:/usr/bin:/bin")
            .with("XDG_RUNTIME_DIR", self.runtime.path().to_str().unwrap())
            .with("OUT", self.out.path().to_str().unwrap())
    }

    /// `/bin/sh -c script` in [`Scratch::env`].
    pub fn sh(&self, script: &str) -> Plan {
        Plan::new("/bin/sh", self.env()).args(["-c", script, "sh"])
    }

    /// What keyway left in the runtime dir (should be nothing once `run` returned).
    pub fn runtime_leftovers(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.runtime.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }
}

/// Everything logged so far, at every level, by every test of this process.
///
/// A process-wide subscriber rather than a scoped one: tracing caches each
/// log site's interest globally, and with a single scoped subscriber a site
/// first reached on another test's thread is cached as disabled.
pub fn captured_logs() -> String {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Captured(logs.clone());
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .init();
        logs
    });
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn secret(value: &str) -> Secret<Vec<u8>> {
    Secret::new(value.as_bytes().to_vec())
}

/// Polls until `path` exists and is non-empty.
pub fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match std::fs::read_to_string(path) {
            Ok(s) if !s.is_empty() => return s,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A keyway-like process running one plan, driven from a test.
pub struct Harness {
    child: Child,
    pub scratch: Scratch,
}

/// Options for [`Harness::start`].
#[derive(Default)]
pub struct HarnessOpts {
    pub subreaper: bool,
    /// Run the harness as PID 1 of a new PID namespace (`unshare`).
    pub pid1: bool,
    /// Hide every tmpfs from the harness: a mount namespace where `/dev/shm`
    /// is a disk directory, and `$XDG_RUNTIME_DIR` on disk too.
    pub no_tmpfs: bool,
    /// Allow the fallback directory `fallback` (in the working directory).
    pub fallback: bool,
    /// Run the harness on a pseudo-terminal (`script`), in its foreground
    /// process group; [`Harness::type_keys`] types into that terminal.
    pub pty: bool,
    /// Let the workload run on if the harness dies (`die_with_keyway` off).
    pub keep_running: bool,
}

impl Harness {
    /// Starts this test binary as the harness: it runs `sh -c script` with the
    /// secret [`SECRET`] delivered as a file in `$SECRET_FILE`, working
    /// directory = `scratch.out`.
    pub fn start(script: &str, opts: HarnessOpts) -> Harness {
        let scratch = Scratch::new();
        let exe = std::env::current_exe().unwrap();
        let harness_args = [
            "--exact",
            "harness_process",
            "--nocapture",
            "--test-threads=1",
        ];
        let runtime = if opts.no_tmpfs {
            scratch.out("runtime")
        } else {
            scratch.runtime.path().to_owned()
        };
        let mut cmd = if opts.pid1 {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
                .arg(&exe);
            c
        } else if opts.no_tmpfs {
            let fake_shm = scratch.out("fake-shm");
            for dir in [&fake_shm, &runtime] {
                std::fs::create_dir(dir).unwrap();
            }
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
                .arg(r#"mount --bind "$0" /dev/shm && exec "$@""#)
                .arg(&fake_shm)
                .arg(&exe);
            c
        } else if opts.pty {
            let mut c = Command::new("script");
            let command = format!("exec '{}' {}", exe.display(), harness_args.join(" "));
            c.args([
                "--quiet",
                "--flush",
                "--return",
                "--command",
                &command,
                "/dev/null",
            ]);
            c
        } else {
            Command::new(&exe)
        };
        if !opts.pty {
            cmd.args(harness_args);
        }
        if opts.fallback {
            std::fs::create_dir(scratch.out("fallback")).unwrap();
        }
        cmd.env(HARNESS, "1")
            .env("KWH_SCRIPT", script)
            .env("KWH_SECRET", SECRET)
            .env("KWH_SUBREAPER", if opts.subreaper { "1" } else { "0" })
            .env("KWH_CHILDREN_REPORT", scratch.out("harness-children"))
            .env("KWH_FALLBACK", if opts.fallback { "1" } else { "0" })
            .env(
                "KWH_KEEP_RUNNING",
                if opts.keep_running { "1" } else { "0" },
            )
            .env("XDG_RUNTIME_DIR", runtime)
            .current_dir(scratch.out.path())
            .stdin(if opts.pty {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().expect("starting the harness");
        Harness { child, scratch }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    /// Types `keys` into the harness's terminal (only with `pty`).
    pub fn type_keys(&mut self, keys: &[u8]) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("started with pty");
        stdin.write_all(keys).unwrap();
        stdin.flush().unwrap();
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions.
        let r = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(r, 0, "kill({}, {sig})", self.pid());
    }

    /// Kills the harness with SIGKILL (nothing of it runs after that) and reaps it.
    pub fn kill9(mut self) -> Scratch {
        use std::os::unix::process::ExitStatusExt;
        self.signal(libc::SIGKILL);
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        self.scratch
    }

    /// Waits for the harness to exit; returns its exit code and stderr.
    pub fn wait(mut self) -> (i32, String, Scratch) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("harness did not exit in time");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            !stderr.contains(SECRET),
            "the secret value reached keyway's stderr"
        );
        let code = status
            .code()
            .unwrap_or_else(|| panic!("harness killed by a signal: {status:?}\n{stderr}"));
        (code, stderr, self.scratch)
    }
}

/// The body of the harness process (see `harness_process` in main.rs): runs
/// the plan described by its environment, reports the children it still has
/// once `run` returned, and exits with the code keyway would use.
pub fn harness_main() -> ! {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let mut plan = Plan::new("/bin/sh", Env::from_process())
        .args(["-c", &var("KWH_SCRIPT"), "sh"])
        .file("SECRET_FILE", "token", secret(&var("KWH_SECRET")));
    plan.remove = [
        HARNESS,
        "KWH_SCRIPT",
        "KWH_SECRET",
        "KWH_SUBREAPER",
        "KWH_CHILDREN_REPORT",
        "KWH_FALLBACK",
        "KWH_KEEP_RUNNING",
    ]
    .map(String::from)
    .to_vec();
    plan.subreaper = var("KWH_SUBREAPER") == "1";
    plan.die_with_keyway = var("KWH_KEEP_RUNNING") != "1";
    if var("KWH_FALLBACK") == "1" {
        plan.tmp = TmpfsPolicy::AllowFallback(std::env::current_dir().unwrap().join("fallback"));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = match rt.block_on(run(plan)) {
        Ok(exit) => i32::from(exit.code()),
        Err(e) => {
            eprintln!("harness: {e}");
            i32::from(e.exit_code())
        }
    };
    let children = children_of_self();
    std::fs::write(var("KWH_CHILDREN_REPORT"), format!("{children:?}")).unwrap();
    std::process::exit(code)
}

/// Whether `pid` is a process that still runs (a zombie waiting to be reaped
/// does not).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Waits (up to [`PATIENCE`]) for `pid` to be gone; false if it never was.
pub fn wait_gone(pid: i32) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Pids whose parent is this process, as /proc sees them (zombies included).
fn children_of_self() -> Vec<i32> {
    let me = stat_field(Path::new("/proc/self/stat"), 0).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            (stat_field(&e.path().join("stat"), 3)? == me).then_some(pid)
        })
        .collect()
}

/// Field `n` (0-based) of a /proc stat file, skipping over the `(comm)` field.
fn stat_field(path: &Path, n: usize) -> Option<i32> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (pid, rest) = stat.split_once(" (")?;
    if n == 0 {
        return pid.parse().ok();
    }
    let after = &rest[rest.rfind(") ")? + 2..];
    after.split(' ').nth(n - 2)?.parse().ok()
}
