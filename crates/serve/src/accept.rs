//! The accept loop of each listener: admits a connection to a slot (taking
//! an idle one's if need be) or answers it 503 at once; survives accept
//! errors; and sizes the connection cap to the process's file limit, since a
//! cap the file table cannot hold would turn into `EMFILE` at the door.

use crate::conn;
use crate::{Admission, Inner, SERVING};
use axum::Router;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};

pub(crate) enum Kind {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Refusals (503 answers) in flight at once; past it, a connection beyond
/// the cap is closed without an answer.
pub(crate) const REFUSALS: usize = 32;
/// Descriptors left for everything but served connections (listeners, the
/// store, files, outgoing connections).
const FD_RESERVE: usize = 64;
/// How long a refusal waits for the client to finish sending, so that
/// closing does not reset the connection before the 503 is read.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;
/// The longest pause after a failed accept.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// `want`, lowered so that the cap, the refusals and the reserve fit under
/// the `RLIMIT_NOFILE` soft limit; at least 1.
pub(crate) fn fit_to_file_limit(want: usize) -> usize {
    let want = want.max(1);
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0
        || r.rlim_cur == libc::RLIM_INFINITY
    {
        return want;
    }
    let room = usize::try_from(r.rlim_cur)
        .unwrap_or(usize::MAX)
        .saturating_sub(FD_RESERVE + REFUSALS)
        .max(1);
    if room < want {
        tracing::debug!(
            wanted = want,
            cap = room,
            file_limit = r.rlim_cur,
            "connection cap lowered to fit the file limit"
        );
    }
    want.min(room)
}

trait Accept: Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&self) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Accept for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<Self::Io> {
        let (s, _) = TcpListener::accept(self).await?;
        // Small request/response exchanges: do not wait to fill a segment.
        let _ = s.set_nodelay(true);
        Ok(s)
    }
}

impl Accept for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<Self::Io> {
        Ok(UnixListener::accept(self).await?.0)
    }
}

pub(crate) fn spawn(inner: Arc<Inner>, kind: Kind, app: Router) {
    inner.loops.fetch_add(1, Ordering::AcqRel);
    tokio::spawn(async move {
        match kind {
            Kind::Tcp(l) => run(&inner, l, app).await,
            Kind::Unix(l) => run(&inner, l, app).await,
        }
        inner.loops.fetch_sub(1, Ordering::AcqRel);
        inner.ended.notify_waiters();
    });
}

/// Errors about one pending connection (it went away before it was
/// accepted): accept the next one at once. Linux's accept(2) lists them.
fn per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted)
        || matches!(
            e.raw_os_error(),
            Some(
                libc::EPROTO
                    | libc::ENOPROTOOPT
                    | libc::EHOSTDOWN
                    | libc::ENONET
                    | libc::EHOSTUNREACH
                    | libc::EOPNOTSUPP
                    | libc::ENETUNREACH
            )
        )
}

fn out_of_files(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

async fn run<L: Accept>(inner: &Arc<Inner>, l: L, app: Router) {
    let mut run = inner.run.subscribe();
    let mut failures: u32 = 0;
    loop {
        if *run.borrow_and_update() != SERVING {
            return;
        }
        let accepted = tokio::select! {
            r = l.accept() => r,
            changed = run.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        match accepted {
            Ok(io) => {
                if failures > 0 {
                    tracing::info!(failures, "accepting connections again");
                    failures = 0;
                }
                admit(inner, io, &app);
            }
            Err(e) if per_connection(&e) => {}
            Err(e) => {
                inner.accept_errors.fetch_add(1, Ordering::Relaxed);
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!(error = %e, "accepting a connection failed; backing off and retrying");
                }
                if out_of_files(&e) {
                    // The pending connection needs a descriptor: free one.
                    inner.evict_one();
                }
                let pause = Duration::from_millis(5u64 << failures.min(8)).min(MAX_BACKOFF);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    changed = run.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

fn admit<Io>(inner: &Arc<Inner>, io: Io, app: &Router)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match inner.admit() {
        Admission::Served(id, st) => {
            tokio::spawn(conn::serve(inner.clone(), id, st, io, app.clone()));
        }
        Admission::Full => refuse(inner, io),
    }
}

/// Answers a connection beyond the cap with a 503 and closes it; when too
/// many refusals are already in flight, closes it at once.
fn refuse<Io>(inner: &Arc<Inner>, mut io: Io)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    inner.refused.fetch_add(1, Ordering::Relaxed);
    if inner.refusing.fetch_add(1, Ordering::AcqRel) >= REFUSALS {
        inner.refusing.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let cap = inner.limits.max_connections;
    let inner = inner.clone();
    tokio::spawn(async move {
        let msg = format!("the server is at its limit of {cap} connections; retry shortly\n");
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{msg}",
            msg.len()
        );
        let _ = tokio::time::timeout(LINGER, async {
            io.write_all(answer.as_bytes()).await?;
            io.shutdown().await?;
            // Read what the client sends meanwhile: closing a socket with
            // unread data resets the connection, which can destroy the
            // answer before the client reads it.
            let mut buf = [0u8; 4096];
            let mut read = 0;
            while read < LINGER_BYTES {
                match io.read(&mut buf).await? {
                    0 => break,
                    n => read += n,
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        inner.refusing.fetch_sub(1, Ordering::AcqRel);
    });
}
