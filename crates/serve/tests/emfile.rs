//! Running out of file descriptors (`EMFILE` from accept) does not end a
//! listener: it backs off and serves again once descriptors are free. This
//! test lowers its own process's file limit, so it is alone in its binary.

use axum::Router;
use axum::routing::get;
use keyway_core::LoopbackAddr;
use keyway_serve::{Limits, Server};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GUARD: Duration = Duration::from_secs(30);

fn set_soft_nofile(n: u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        r.rlim_cur = n.min(r.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0);
    }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_survives_emfile() {
    let server = Server::new(Limits {
        max_connections: 1000,
        ..Limits::default()
    });
    let app = Router::new().route("/ok", get(|| async { "ok" }));
    let addr = server.bind(LoopbackAddr::ephemeral(), app).await.unwrap();
    let before = open_fds();
    set_soft_nofile(before + 40);
    // Fill the file table with connections (each costs this process two
    // descriptors: the client's and, once accepted, the server's).
    let mut clients = Vec::new();
    while clients.len() < 200 {
        match TcpStream::connect(addr).await {
            Ok(s) => clients.push(s),
            Err(_) => break,
        }
    }
    assert!(clients.len() < 200, "the file limit was never reached");
    tokio::time::timeout(GUARD, async {
        while server.stats().accept_errors == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("accept never failed");
    // Free the table and ask: the listener is still there.
    clients.clear();
    set_soft_nofile(before + 4096);
    let resp = tokio::time::timeout(GUARD, async {
        loop {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out).await;
            // Connections left from the flood may still be closing.
            if out.starts_with(b"HTTP/1.1 200") {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the listener stopped serving after EMFILE");
    assert!(String::from_utf8_lossy(&resp).ends_with("ok"));
    let st = server.stats();
    eprintln!("{st:?}");
    assert!(st.accept_errors >= 1, "{st:?}");
}
