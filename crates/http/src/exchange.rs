//! One request and its whole answer, read under a cap and a timeout.
//!
//! The body is read chunk by chunk into a [`Secret`] (a token endpoint's answer
//! is a credential, a secret's payload is a secret) and reading stops as soon
//! as the cap would be passed; a `Content-Length` above the cap is refused
//! before any of the body is read. Dropping the response then closes the
//! connection, so an endless or huge body costs at most the cap plus one chunk
//! of memory and never more time than the attempt's timeout.

use crate::cap::Cap;
use crate::error::{HttpError, Seen, describe, redact_url};
use keyway_core::Secret;
use std::fmt;
use std::time::Duration;

/// What one call is, for its errors and logs: what keyway was doing, where,
/// and how much of an answer it reads.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// "getting an access token from the metadata server", ….
    pub doing: &'static str,
    /// The URL (shown without its query).
    pub url: &'a str,
    pub cap: Cap,
}

/// A complete HTTP response.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Secret<Vec<u8>>,
}

impl Reply {
    /// Whether the response carried `Metadata-Flavor: Google` (only a metadata server does).
    pub fn metadata_flavor(&self) -> bool {
        self.headers
            .get("metadata-flavor")
            .is_some_and(|v| v.as_bytes() == b"Google")
    }

    /// The `Content-Type`, if it is text.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    /// A header's value, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The server's clock when it answered (its `Date` header, RFC 9110), in
    /// unix seconds: compared with the local clock it tells a skewed clock
    /// apart from other signature failures.
    pub fn date(&self) -> Option<i64> {
        let t = httpdate::parse_http_date(self.header("date")?).ok()?;
        let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        i64::try_from(secs).ok()
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Sends the request and reads the whole answer within `timeout`, at most
/// `call.cap` of it. Any status is a reply; only the transport can fail.
pub async fn exchange(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    call: &Call<'_>,
) -> Result<Reply, HttpError> {
    let url = || redact_url(call.url);
    let attempt = async {
        let mut resp = request.send().await?;
        let status = resp.status().as_u16();
        let cap = call.cap.bytes();
        if let Some(declared) = resp.content_length()
            && declared > cap as u64
        {
            return Ok(Err(Seen::Declared(declared)));
        }
        let headers = std::mem::take(resp.headers_mut());
        let mut body = Secret::new(Vec::new());
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > cap {
                return Ok(Err(Seen::AtLeast(body.len() + chunk.len())));
            }
            body.expose_mut().extend_from_slice(&chunk);
        }
        Ok(Ok(Reply {
            status,
            headers,
            body,
        }))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Err(HttpError::Timeout {
            doing: call.doing,
            url: url(),
            after: round_ms(timeout),
        }),
        Ok(Err(e)) => {
            let e: reqwest::Error = e;
            // Builder and redirect errors are mistakes no retry fixes.
            let transient = e.is_connect() || e.is_timeout() || e.is_request() || e.is_body();
            let reason = describe(&e);
            Err(if transient {
                HttpError::Unreachable {
                    doing: call.doing,
                    url: url(),
                    reason,
                }
            } else {
                HttpError::Request {
                    doing: call.doing,
                    url: url(),
                    reason,
                }
            })
        }
        Ok(Ok(Err(seen))) => Err(HttpError::TooLarge {
            doing: call.doing,
            url: url(),
            cap: call.cap,
            seen,
        }),
        Ok(Ok(Ok(reply))) => Ok(reply),
    }
}

/// To the nearest millisecond: a timeout cut short by the deadline by a few
/// microseconds reads "1s", not "999.999839ms".
fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(((d.as_micros() + 500) / 1000) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A loopback server that answers every connection with `head` and then
    /// `body_chunks` chunks of 64 KiB (chunked encoding), or forever when `None`.
    fn server(head: &'static str, body_chunks: Option<usize>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf);
                    if s.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                    let chunk = vec![b'a'; 64 << 10];
                    let mut sent = 0;
                    while body_chunks.is_none_or(|n| sent < n) {
                        let framed = format!("{:x}\r\n", chunk.len());
                        if s.write_all(framed.as_bytes()).is_err()
                            || s.write_all(&chunk).is_err()
                            || s.write_all(b"\r\n").is_err()
                        {
                            return;
                        }
                        sent += 1;
                    }
                    let _ = s.write_all(b"0\r\n\r\n");
                });
            }
        });
        format!("http://{addr}/x?token=secret")
    }

    fn get(url: &str, cap: Cap) -> Result<Reply, HttpError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let c = reqwest::Client::builder().no_proxy().build().unwrap();
        rt.block_on(exchange(
            c.get(url),
            Duration::from_secs(20),
            &Call {
                doing: "testing",
                url,
                cap,
            },
        ))
    }

    const CHUNKED: &str = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";

    #[test]
    fn an_endless_body_stops_at_the_cap() {
        let url = server(CHUNKED, None);
        let e = get(&url, Cap::kib(192)).unwrap_err();
        let HttpError::TooLarge {
            seen, url: shown, ..
        } = &e
        else {
            panic!("{e}")
        };
        assert!(
            matches!(seen, Seen::AtLeast(n) if *n > 192 << 10 && *n <= 256 << 10),
            "{e}"
        );
        assert!(!shown.contains("secret"), "{e}");
        assert!(e.to_string().contains("192 KiB"), "{e}");
    }

    #[test]
    fn a_huge_content_length_is_refused_before_reading() {
        let url = server(
            "HTTP/1.1 200 OK\r\ncontent-length: 4294967296\r\n\r\n",
            Some(0),
        );
        let e = get(&url, Cap::mib(1)).unwrap_err();
        assert!(
            matches!(
                e,
                HttpError::TooLarge {
                    seen: Seen::Declared(4294967296),
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_body_within_the_cap_is_read_whole() {
        let url = server(CHUNKED, Some(2));
        let r = get(&url, Cap::kib(128)).unwrap();
        assert_eq!((r.status, r.body.len()), (200, 128 << 10));
    }
}
