//! Loopback servers for the tests of what a client does with an endpoint:
//! scripted ones (each request answered as the test says) and ones that
//! misbehave (bodies without end, answers that never come), and a port
//! nothing listens on.
//!
//! Each server runs on plain threads (no runtime), so synchronous tests and
//! tokio tests use it alike; it lives as long as the test process.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// What a misbehaving answer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// `200`, `Transfer-Encoding: chunked`, 64 KiB chunks until the client
    /// leaves (at most 4 GiB).
    Endless,
    /// `200`, `Content-Length: 4294967296`, then bytes until the client leaves.
    Declared4GiB,
    /// Reads the request and never answers; the connection stays open until
    /// the client closes it.
    Silent,
}

/// The first line of a request, as the server read it.
#[derive(Clone, Debug)]
pub struct Head {
    pub method: String,
    /// The path, without the query.
    pub path: String,
}

/// How a scripted server answers one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// This status and JSON body; then the next request on the connection is read.
    Json(u16, String),
    /// Misbehaves so, and reads nothing more on the connection.
    Misbehave(Misbehaviour),
}

type Script = dyn Fn(&Head) -> Answer + Send + Sync;

/// Starts a server on `127.0.0.1:0` that answers each request as `script`
/// says; returns its `host:port`. Every answer says `Metadata-Flavor:
/// Google`, so the server passes for a metadata server.
pub fn scripted(script: impl Fn(&Head) -> Answer + Send + Sync + 'static) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    let addr = l.local_addr().expect("the bound address").to_string();
    let script: Arc<Script> = Arc::new(script);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let script = script.clone();
            std::thread::spawn(move || serve(s, &*script));
        }
    });
    addr
}

/// A [`scripted`] server: a request for which `polite` gives a body is
/// answered `200` with it (JSON, and on the same connection the next request
/// is read); any other gets `how`.
pub fn misbehaving(
    how: Misbehaviour,
    polite: impl Fn(&Head) -> Option<String> + Send + Sync + 'static,
) -> String {
    scripted(move |head| match polite(head) {
        Some(body) => Answer::Json(200, body),
        None => Answer::Misbehave(how),
    })
}

fn serve(mut s: TcpStream, script: &Script) {
    while let Some(head) = read_request(&mut s) {
        let (status, body) = match script(&head) {
            Answer::Json(status, body) => (status, body),
            Answer::Misbehave(how) => {
                misbehave(&mut s, how);
                return;
            }
        };
        let reason = match status {
            200 => "OK",
            _ => "Scripted",
        };
        let answer = format!(
            "HTTP/1.1 {status} {reason}\r\nmetadata-flavor: Google\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Reads one request (head and a Content-Length body).
fn read_request(s: &mut TcpStream) -> Option<Head> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    let mut first = head.lines().next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?;
    Some(Head {
        method,
        path: target.split('?').next().unwrap_or_default().to_owned(),
    })
}

fn misbehave(s: &mut TcpStream, how: Misbehaviour) {
    let head = match how {
        Misbehaviour::Endless => {
            "HTTP/1.1 200 OK\r\nmetadata-flavor: Google\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        }
        Misbehaviour::Declared4GiB => {
            "HTTP/1.1 200 OK\r\nmetadata-flavor: Google\r\ncontent-type: application/json\r\ncontent-length: 4294967296\r\n\r\n"
        }
        Misbehaviour::Silent => {
            // Hold the connection until the client leaves.
            let mut sink = [0u8; 4096];
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
            return;
        }
    };
    if s.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = vec![b'7'; 64 << 10];
    // At most 4 GiB, at about 128 MB/s: enough to exhaust any reader that does
    // not stop, without flooding the machine when one does not.
    for _ in 0..65_536 {
        let sent = match how {
            Misbehaviour::Endless => s
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|()| s.write_all(&chunk))
                .and_then(|()| s.write_all(b"\r\n")),
            _ => s.write_all(&chunk),
        };
        if sent.is_err() {
            return;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    l.local_addr().expect("the bound address").port()
}
