//! Each limit of keyway-serve, as a client meets it over a real socket:
//! slowloris heads are cut off, idle connections give way, refusals are
//! answered, sizes get their status, a flood never holds more than the cap,
//! and shutdown lets a request in progress finish. Timeouts in these tests
//! are short limits under test, or guards against a hang; nothing asserts
//! how fast something happened.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use keyway_core::LoopbackAddr;
use keyway_serve::{Limits, Listener, Server};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Longest any step may take before the test calls it a hang.
const GUARD: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Hold {
    gate: Arc<Semaphore>,
    entered: Arc<AtomicUsize>,
}

impl Default for Hold {
    fn default() -> Self {
        Hold {
            gate: Arc::new(Semaphore::new(0)),
            entered: Arc::default(),
        }
    }
}

fn app(hold: Hold) -> Router {
    Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/hold",
            get(|State(h): State<Hold>| async move {
                h.entered.fetch_add(1, Ordering::SeqCst);
                let _ = h.gate.acquire().await.map(|p| p.forget());
                "held"
            }),
        )
        .route(
            "/sleep",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "late"
            }),
        )
        .route(
            "/echo",
            post(|b: Bytes| async move { format!("{} bytes", b.len()) }),
        )
        .with_state(hold)
}

fn limits() -> Limits {
    Limits {
        max_connections: 8,
        ..Limits::default()
    }
}

async fn start(l: Limits) -> (Server, SocketAddr, Hold) {
    let hold = Hold::default();
    let server = Server::new(l);
    let addr = server
        .bind(LoopbackAddr::ephemeral(), app(hold.clone()))
        .await
        .unwrap();
    (server, addr, hold)
}

/// [`start`] with [`limits`] changed as `set` says.
async fn start_with(set: impl FnOnce(&mut Limits)) -> (Server, SocketAddr, Hold) {
    let mut l = limits();
    set(&mut l);
    start(l).await
}

/// Reads until the peer closes (or resets) the connection.
async fn read_all<S: AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(GUARD, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the server neither answered nor closed: {}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

fn status(resp: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(resp);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"))
}

/// One request on its own connection; the whole answer.
async fn request<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, raw: &[u8]) -> Vec<u8> {
    s.write_all(raw).await.unwrap();
    read_all(&mut s).await
}

async fn get_on(addr: SocketAddr, path: &str) -> Vec<u8> {
    let s = TcpStream::connect(addr).await.unwrap();
    let raw = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    request(s, raw.as_bytes()).await
}

/// Waits until the server has accepted `n` connections in all.
async fn accepted(server: &Server, n: u64) {
    tokio::time::timeout(GUARD, async {
        while server.stats().accepted + server.stats().refused < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the server did not accept the connections");
}

/// Whether the server has closed `s` (EOF or reset), waiting up to `GUARD`.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(GUARD, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn a_slowloris_head_is_cut_off() {
    let (server, addr, _) = start_with(|l| l.header_read = Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // One header byte at a time, for far longer than the limit: the head
    // never completes, and the server must close the connection on it.
    let mut cut = false;
    for _ in 0..600 {
        if s.write_all(b"x").await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut = true;
                break;
            }
            Ok(Ok(n)) => panic!(
                "answered an incomplete head: {}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => {}
        }
    }
    assert!(cut, "a head dribbled for 30 s was never cut off");
    assert!(server.stats().timed_out >= 1);
    // And the server serves the next client.
    assert_eq!(status(&get_on(addr, "/ok").await), 200);
}

#[tokio::test]
async fn a_head_begun_after_a_keep_alive_wait_gets_its_own_full_limit_and_no_more() {
    // The watchdog's timer is not re-armed when a phase changes: a head that
    // begins long after the connection went idle must still be cut off one
    // head limit after its first byte, neither earlier (from the idle
    // phase's start) nor at the idle limit a minute later.
    let head = Duration::from_millis(400);
    let (server, addr, _) = start_with(|l| {
        l.header_read = head;
        l.idle = Duration::from_secs(60);
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(GUARD, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status(&buf[..n]), 200);
    // Idle on the kept-alive connection for several head limits.
    tokio::time::sleep(head * 3 + Duration::from_millis(150)).await;
    s.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let began = std::time::Instant::now();
    assert!(closed_by_server(&mut s).await, "a partial head was kept");
    let took = began.elapsed();
    assert!(
        took >= head - Duration::from_millis(20),
        "cut off {took:?} after its first byte, before the head limit {head:?}"
    );
    assert!(
        took < head + Duration::from_secs(5),
        "cut off only {took:?} after its first byte (head limit {head:?})"
    );
    assert!(server.stats().timed_out >= 1);
}

#[tokio::test]
async fn an_idle_connection_waits_for_its_request_then_times_out() {
    // Idle time is not head time: a keep-alive connection that is quiet for
    // longer than the head limit is still served.
    let (_server, addr, _) = start_with(|l| {
        l.header_read = Duration::from_millis(200);
        l.idle = Duration::from_secs(60);
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resp = request(
        &mut s,
        b"GET /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&resp), 200);

    // Past the idle limit, the server closes a quiet connection.
    let (server, addr, _) = start_with(|l| l.idle = Duration::from_millis(200)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_by_server(&mut s).await,
        "an idle connection was kept"
    );
    assert!(server.stats().timed_out >= 1);
    assert_eq!(server.stats().open, 0);
}

#[tokio::test]
async fn idle_connections_beyond_the_cap_give_way_to_a_request() {
    let (server, addr, _) = start_with(|l| l.max_connections = 4).await;
    let mut idle = Vec::new();
    for n in 1..=12 {
        idle.push(TcpStream::connect(addr).await.unwrap());
        accepted(&server, n).await;
        assert!(server.stats().open <= 4, "{:?}", server.stats());
    }
    // A client with a request is served although 12 idle connections came first.
    assert_eq!(status(&get_on(addr, "/ok").await), 200);
    let st = server.stats();
    assert!(st.open <= 4, "{st:?}");
    assert!(st.evicted >= 9, "{st:?}");
    assert_eq!(st.refused, 0, "{st:?}");
    // The connections that gave way were closed, not left hanging: the
    // oldest ones first.
    for s in idle.iter_mut().take(8) {
        assert!(closed_by_server(s).await);
    }
}

#[tokio::test]
async fn past_the_cap_busy_connections_are_answered_503_then_served_below_it() {
    let (server, addr, hold) = start_with(|l| l.max_connections = 2).await;
    // Two requests in progress fill the cap; nothing there is idle.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(tokio::spawn(get_on(addr, "/hold")));
    }
    tokio::time::timeout(GUARD, async {
        while hold.entered.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    // A slowloris head is not idle either: it does not give way.
    let refused = get_on(addr, "/ok").await;
    assert_eq!(
        status(&refused),
        503,
        "{}",
        String::from_utf8_lossy(&refused)
    );
    let text = String::from_utf8_lossy(&refused).to_lowercase();
    assert!(text.contains("retry-after: 1"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(text.contains("limit of 2 connections"), "{text}");
    assert!(server.stats().refused >= 1);
    // Below the cap again, requests are served.
    hold.gate.add_permits(2);
    for h in held {
        assert_eq!(status(&h.await.unwrap()), 200);
    }
    assert_eq!(status(&get_on(addr, "/ok").await), 200);
}

#[tokio::test]
async fn partial_heads_at_the_cap_are_not_evicted_and_newcomers_are_refused() {
    let (server, addr, _) = start_with(|l| l.max_connections = 3).await;
    let mut partial = Vec::new();
    for n in 1..=3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /ok HTTP/1.1\r\n").await.unwrap();
        partial.push(s);
        accepted(&server, n).await;
    }
    // The server must have seen the bytes before the next one arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(status(&get_on(addr, "/ok").await), 503);
    assert_eq!(server.stats().evicted, 0);
    // Finishing a head gets it served.
    let mut s = partial.pop().unwrap();
    let resp = request(&mut s, b"host: x\r\nconnection: close\r\n\r\n").await;
    assert_eq!(status(&resp), 200);
}

#[tokio::test]
async fn an_oversized_head_gets_431() {
    let (_server, addr, _) = start_with(|l| l.max_header_bytes = 4096).await;
    let s = TcpStream::connect(addr).await.unwrap();
    let raw = format!(
        "GET /ok HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(8192)
    );
    assert_eq!(status(&request(s, raw.as_bytes()).await), 431);
    // Just under the cap is fine.
    let s = TcpStream::connect(addr).await.unwrap();
    let raw = format!(
        "GET /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-big: {}\r\n\r\n",
        "a".repeat(3000)
    );
    assert_eq!(status(&request(s, raw.as_bytes()).await), 200);
}

#[tokio::test]
async fn an_oversized_body_gets_413() {
    let (_server, addr, _) = start_with(|l| l.max_body_bytes = 1024).await;
    // Declared too large: answered before the body is sent.
    let s = TcpStream::connect(addr).await.unwrap();
    let resp = request(
        s,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5000000000\r\n\r\n",
    )
    .await;
    assert_eq!(status(&resp), 413, "{}", String::from_utf8_lossy(&resp));
    assert!(String::from_utf8_lossy(&resp).contains("exceeds 1024 bytes"));
    // Chunked, with no length given: refused once it passes the cap.
    let s = TcpStream::connect(addr).await.unwrap();
    let chunk = "b".repeat(1000);
    let raw = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3e8\r\n{chunk}\r\n3e8\r\n{chunk}\r\n0\r\n\r\n"
    );
    let resp = request(s, raw.as_bytes()).await;
    assert_eq!(status(&resp), 413, "{}", String::from_utf8_lossy(&resp));
    // Within the cap, the handler gets it.
    let s = TcpStream::connect(addr).await.unwrap();
    let raw = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 1000\r\n\r\n{chunk}"
    );
    let resp = request(s, raw.as_bytes()).await;
    assert_eq!(status(&resp), 200);
    assert!(String::from_utf8_lossy(&resp).ends_with("1000 bytes"));
}

#[tokio::test]
async fn a_request_past_its_time_gets_503_or_408() {
    let (server, addr, _) = start_with(|l| l.request_time = Duration::from_millis(300)).await;
    // The handler is too slow: the server's fault.
    let resp = get_on(addr, "/sleep").await;
    assert_eq!(status(&resp), 503, "{}", String::from_utf8_lossy(&resp));
    // The client promised 100 bytes and sent 10: the client's fault.
    let s = TcpStream::connect(addr).await.unwrap();
    let resp = request(
        s,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789",
    )
    .await;
    assert_eq!(status(&resp), 408, "{}", String::from_utf8_lossy(&resp));
    assert!(server.stats().timed_out >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_never_holds_more_than_the_cap() {
    const CAP: usize = 32;
    const FLOOD: usize = 2000;
    let (server, addr, _) = start_with(|l| {
        l.max_connections = CAP;
        l.header_read = Duration::from_millis(500);
    })
    .await;
    let watcher = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut most = 0;
            loop {
                most = most.max(server.stats().open);
                if most > CAP {
                    return most;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    // Every client starts a head and never finishes it, then reads until
    // the server closes: each must end (answered 503, or cut off).
    let clients: Vec<_> = (0..FLOOD)
        .map(|_| {
            tokio::spawn(async move {
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    return None;
                };
                let _ = s.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\n").await;
                let resp = read_all(&mut s).await;
                Some(resp.starts_with(b"HTTP/1.1 503"))
            })
        })
        .collect();
    let mut answered_503 = 0;
    let mut connected = 0;
    for c in clients {
        if let Some(was_503) = c.await.unwrap() {
            connected += 1;
            answered_503 += usize::from(was_503);
        }
    }
    assert!(
        !watcher.is_finished(),
        "more than {CAP} connections were open at once"
    );
    watcher.abort();
    let st = server.stats();
    eprintln!("flood of {FLOOD}: {connected} connected, {answered_503} answered 503, {st:?}");
    assert!(st.open <= CAP, "{st:?}");
    assert!(st.refused > 0, "{st:?}");
    assert!(answered_503 > 0);
    // Afterwards a client is served as usual.
    assert_eq!(status(&get_on(addr, "/ok").await), 200);
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_progress_and_stops_listening() {
    let (server, addr, hold) = start(limits()).await;
    let idle = TcpStream::connect(addr).await.unwrap();
    let busy = tokio::spawn(get_on(addr, "/hold"));
    tokio::time::timeout(GUARD, async {
        while hold.entered.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let stopping = {
        let server = server.clone();
        tokio::spawn(async move { server.shutdown().await })
    };
    // The listener closes at once.
    tokio::time::timeout(GUARD, async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the listener stayed open after shutdown");
    // The idle connection is closed; the request in progress completes.
    let mut idle = idle;
    assert!(closed_by_server(&mut idle).await);
    hold.gate.add_permits(1);
    let resp = busy.await.unwrap();
    assert_eq!(status(&resp), 200);
    assert!(String::from_utf8_lossy(&resp).ends_with("held"));
    tokio::time::timeout(GUARD, stopping)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.stats().open, 0);
}

#[tokio::test]
async fn a_unix_socket_is_private_and_served() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serve.sock");
    let server = Server::new(limits());
    server.serve(Listener::unix(&path).unwrap(), app(Hold::default()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let s = tokio::net::UnixStream::connect(&path).await.unwrap();
    let resp = request(
        s,
        b"GET /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&resp), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn only_loopback_listeners_are_served() {
    let any = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let e = Listener::tcp(any).err().expect("0.0.0.0 was accepted");
    assert!(e.to_string().contains("not a loopback address"), "{e}");
    let lo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = lo.local_addr().unwrap();
    let server = Server::new(limits());
    server.serve(Listener::tcp(lo).unwrap(), app(Hold::default()));
    assert_eq!(status(&get_on(addr, "/ok").await), 200);
}
