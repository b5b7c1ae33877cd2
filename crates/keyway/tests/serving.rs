//! The local cloud's listeners under abuse, through the real binary: idle
//! connections beyond a 256-file limit do not block a legitimate request,
//! and a flood leaves the cloud holding a bounded number of sockets and
//! bounded memory.

mod support;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// A hang guard, never a speed assertion.
const GUARD: Duration = Duration::from_secs(30);

struct Up {
    _dir: tempfile::TempDir,
    child: Child,
    google: String,
}

impl Drop for Up {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// `keyway cloud up` on seed 000 with at most `nofile` open files.
fn up(nofile: Option<u64>) -> Up {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = Command::new(KEYWAY);
    cmd.args(["cloud", "up", "--world"])
        .arg(world_path("examples/seed-000.toml"))
        .arg("--data")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(n) = nofile {
        // SAFETY: setrlimit is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                let r = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().unwrap();
    let google = wait_google(&data, &mut child);
    Up {
        _dir: dir,
        child,
        google,
    }
}

fn wait_google(data: &Path, child: &mut Child) -> String {
    let deadline = Instant::now() + GUARD;
    loop {
        if let Ok(b) = std::fs::read(data.join("endpoints.json"))
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b)
        {
            return v["google"]
                .as_str()
                .unwrap()
                .trim_start_matches("http://")
                .to_owned();
        }
        if Instant::now() >= deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the local cloud did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An unauthenticated Secret Manager call: the status line, or None if the
/// cloud never answered within the guard.
fn legitimate_request(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(GUARD)).unwrap();
    s.write_all(
        b"GET /v1/projects/kaggle-gpu-lab/secrets HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.lines().next().map(str::to_owned)
}

fn proc_status(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy().starts_with("socket:"))
        .count()
}

#[test]
fn idle_connections_beyond_a_256_file_limit_do_not_block_a_request() {
    let cloud = up(Some(256));
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&cloud.google).unwrap())
        .collect();
    let status = legitimate_request(&cloud.google);
    assert_eq!(
        status.as_deref(),
        Some("HTTP/1.1 401 Unauthorized"),
        "a request behind 300 idle connections was not served"
    );
    drop(idle);
}

#[test]
fn a_flood_leaves_the_cloud_bounded() {
    let cloud = up(None);
    let pid = cloud.child.id();
    let rss_before = proc_status(pid, "VmRSS:");
    // 3,000 clients each start a request head and stall.
    let mut flood = Vec::new();
    let mut most_sockets = 0;
    for i in 0..3000 {
        if let Ok(mut s) = TcpStream::connect(&cloud.google) {
            let _ = s.write_all(b"GET /v1/projects/kaggle-gpu-lab/secrets HTTP/1.1\r\n");
            flood.push(s);
        }
        if i % 250 == 0 {
            most_sockets = most_sockets.max(sockets(pid));
        }
    }
    most_sockets = most_sockets.max(sockets(pid));
    let status = legitimate_request(&cloud.google);
    let hwm = proc_status(pid, "VmHWM:");
    eprintln!(
        "flood of 3000 stalled heads: the cloud held at most {most_sockets} sockets; \
         RSS {rss_before} kB before, peak {hwm} kB"
    );
    // The default cap (512) plus refusals in flight (32) plus the cloud's
    // own listeners and sockets being closed: never one socket per client.
    assert!(most_sockets <= 512 + 32 + 32, "{most_sockets} sockets");
    assert!(hwm < 256 * 1024, "peak RSS {hwm} kB");
    // Every flood connection is answered or closed, none is left hanging.
    for s in flood.iter_mut().step_by(100) {
        s.set_read_timeout(Some(GUARD)).unwrap();
        let mut buf = Vec::new();
        let r = s.read_to_end(&mut buf);
        assert!(
            r.is_ok()
                || r.as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "a flood connection hung: {r:?}"
        );
    }
    drop(flood);
    // A request is served (now, or once the stalled heads timed out).
    let status = status
        .filter(|s| s.starts_with("HTTP/1.1 401"))
        .or_else(|| legitimate_request(&cloud.google));
    assert_eq!(status.as_deref(), Some("HTTP/1.1 401 Unauthorized"));
}
