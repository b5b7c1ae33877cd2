//! The misbehaving servers misbehave as they say, and answer politely where
//! asked: read with a raw socket, so nothing here depends on a client's caps.

use keyway_testkit::servers::{Misbehaviour, closed_port, misbehaving};
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

#[test]
fn endless_bodies_are_chunked_past_any_cap() {
    let addr = misbehaving(Misbehaviour::Endless, polite);
    let mut s = ask(&addr, "/secret");
    let got = read_at_least(&mut s, 3 << 20);
    let text = String::from_utf8_lossy(&got[..200]);
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert!(got.len() >= 3 << 20, "only {} bytes", got.len());
}

#[test]
fn declared_bodies_say_four_gibibytes() {
    let addr = misbehaving(Misbehaviour::Declared4GiB, polite);
    let mut s = ask(&addr, "/secret");
    let got = read_at_least(&mut s, 1 << 20);
    let text = String::from_utf8_lossy(&got[..200]);
    assert!(text.contains("content-length: 4294967296"), "{text}");
    assert!(text.contains("metadata-flavor: Google"), "{text}");
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

/// Reads one whole polite answer.
fn answer(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    while !got.ends_with(br#"{"ok":true}"#) {
        let more = read_at_least(s, 1);
        assert!(!more.is_empty(), "the server closed after {got:?}");
        got.extend(more);
    }
    String::from_utf8(got).unwrap()
}

#[test]
fn polite_paths_get_their_answer_then_the_next_request_is_read() {
    let addr = misbehaving(Misbehaviour::Silent, polite);
    let mut s = ask(&addr, "/ok");
    let first = answer(&mut s);
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert!(first.contains("metadata-flavor: Google"), "{first}");
    write!(s, "GET /ok HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let again = answer(&mut s);
    assert!(again.starts_with("HTTP/1.1 200 OK\r\n"), "{again}");
}

#[test]
fn closed_ports_refuse() {
    let port = closed_port();
    let e = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
}
