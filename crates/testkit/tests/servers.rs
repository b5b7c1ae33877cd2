//! The misbehaving servers misbehave as they say, and answer politely where
//! asked: read with a raw socket, so nothing here depends on a client's caps.

use keyway_testkit::servers::{Answer, Misbehaviour, closed_port, misbehaving, scripted};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn ask(addr: &str, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path}?q=1 HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    s
}

/// Reads until `n` bytes came (or the server stopped).
fn read_at_least(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while got.len() < n {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) => panic!("after {} bytes: {e}", got.len()),
        }
    }
    got
}

fn polite(h: &keyway_testkit::servers::Head) -> Option<String> {
    (h.path == "/ok").then(|| r#"{"ok":true}"#.to_owned())
}

/// What a server misbehaving so sends for a request it does not answer
/// politely, read until `n` bytes came: its head (as text) and how much came.
fn misbehaviour(how: Misbehaviour, n: usize) -> (String, usize) {
    let addr = misbehaving(how, polite);
    let got = read_at_least(&mut ask(&addr, "/secret"), n);
    (String::from_utf8_lossy(&got[..200]).into_owned(), got.len())
}

#[test]
fn endless_bodies_are_chunked_past_any_cap() {
    let (head, len) = misbehaviour(Misbehaviour::Endless, 3 << 20);
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(len >= 3 << 20, "only {len} bytes");
}

#[test]
fn declared_bodies_say_four_gibibytes() {
    let (head, _) = misbehaviour(Misbehaviour::Declared4GiB, 1 << 20);
    assert!(head.contains("content-length: 4294967296"), "{head}");
    assert!(head.contains("metadata-flavor: Google"), "{head}");
}

#[test]
fn silent_servers_keep_the_connection_and_say_nothing() {
    let addr = misbehaving(Misbehaviour::Silent, polite);
    let mut s = ask(&addr, "/secret");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    let e = s.read(&mut buf).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e}"
    );
}

/// Reads one whole answer, which ends with `body`.
fn answer_ending(s: &mut TcpStream, body: &str) -> String {
    let mut got = Vec::new();
    while !got.ends_with(body.as_bytes()) {
        let more = read_at_least(s, 1);
        assert!(!more.is_empty(), "the server closed after {got:?}");
        got.extend(more);
    }
    String::from_utf8(got).unwrap()
}

/// Asks for `/ok` again on the same connection: a polite answer must come.
fn ask_again_politely(s: &mut TcpStream) {
    write!(s, "GET /ok HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let again = answer_ending(s, r#"{"ok":true}"#);
    assert!(again.starts_with("HTTP/1.1 200 OK\r\n"), "{again}");
}

#[test]
fn polite_paths_get_their_answer_then_the_next_request_is_read() {
    let addr = misbehaving(Misbehaviour::Silent, polite);
    let mut s = ask(&addr, "/ok");
    let first = answer_ending(&mut s, r#"{"ok":true}"#);
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert!(first.contains("metadata-flavor: Google"), "{first}");
    ask_again_politely(&mut s);
}

#[test]
fn scripted_servers_answer_each_request_with_its_status_and_body() {
    let addr = scripted(|h| match h.path.as_str() {
        "/ok" => Answer::Json(200, r#"{"ok":true}"#.into()),
        _ => Answer::Json(503, "{}".into()),
    });
    let mut s = ask(&addr, "/busy");
    let busy = answer_ending(&mut s, "\r\n\r\n{}");
    assert!(busy.starts_with("HTTP/1.1 503 "), "{busy}");
    // The connection stays open for the next request.
    ask_again_politely(&mut s);
}

#[test]
fn closed_ports_refuse() {
    let port = closed_port();
    let e = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
}
