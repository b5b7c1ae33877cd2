//! keyway-serve: one way to serve an axum [`Router`] on loopback, with the
//! limits a real front end puts in front of an API, so that no client (a
//! slow one, an idle one, a flood of them) can stop the others being served.
//! The local cloud's listeners and the broker are served through it.
//!
//! What a [`Server`] guarantees, with the figures of [`Limits::default`]:
//!
//! * **A connection cap** shared by all of the server's listeners
//!   ([`Limits::max_connections`], 512, lowered to what `RLIMIT_NOFILE` leaves
//!   room for). At the cap, a new connection first takes the place of the
//!   connection that has been idle longest (one with no request in progress,
//!   including one that never sent a byte), as nginx reuses its idle
//!   connections when it runs out; if none is idle it is answered `503
//!   Service Unavailable` with `Retry-After` and `Connection: close` and closed.
//!   Nothing waits in a queue of ours: what is not served is answered at once.
//! * **Timeouts**: the whole request head must arrive within
//!   [`Limits::header_read`] (10 s) of its first byte (slowloris); a
//!   connection waits at most [`Limits::idle`] (60 s) for the first byte of
//!   its next request; a request that has not produced its response within
//!   [`Limits::request_time`] (30 s) is answered `408 Request Timeout` if the
//!   handler was still waiting for the client's body, else `503`.
//! * **Size caps**: a request head over [`Limits::max_header_bytes`] (64 KiB)
//!   is answered `431`; a body over [`Limits::max_body_bytes`] (1 MiB) `413`,
//!   before it is read when `Content-Length` says so, else as soon as it
//!   passes the cap.
//! * **Accept errors** (`EMFILE`, `ENFILE`, ...) never end a listener: the
//!   error is logged, the oldest idle connection is closed to free a file,
//!   and accepting resumes after a short back-off.
//! * **Graceful shutdown** by [`Server::shutdown`]: listeners close at once,
//!   requests in progress finish (within [`Limits::shutdown_grace`]), idle
//!   connections are closed.
//!
//! Only loopback is served: a [`Listener`] is bound from a
//! [`keyway_core::LoopbackAddr`], made from an already-bound listener whose
//! address is loopback, or is a Unix socket (mode 0600).
//!
//! ```no_run
//! # async fn f(app: axum::Router) -> std::io::Result<()> {
//! let server = keyway_serve::Server::new(keyway_serve::Limits::default());
//! let addr = server.bind(keyway_core::LoopbackAddr::ephemeral(), app).await?;
//! println!("serving on http://{addr}");
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod accept;
mod conn;

use axum::Router;
use keyway_core::LoopbackAddr;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// The limits a [`Server`] enforces. Every field has a default
/// ([`Limits::default`]); change what a server needs, e.g.
/// `Limits { request_time: Duration::from_secs(300), ..Limits::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once across all of a server's listeners.
    /// Lowered at [`Server::new`] so that the cap, the refusals in flight
    /// and a reserve of 64 descriptors for everything else fit under the
    /// process's `RLIMIT_NOFILE` soft limit. At least 1.
    pub max_connections: usize,
    /// How long a request head (request line and headers) may take to
    /// arrive, from its first byte.
    pub header_read: Duration,
    /// How long a connection may wait for the first byte of a request:
    /// after it is accepted, and between keep-alive requests.
    pub idle: Duration,
    /// The largest request head, in bytes (request line and headers).
    pub max_header_bytes: usize,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// How long a request may take from its complete head to its response.
    /// A connection still writing that response is closed after a further
    /// [`Limits::header_read`].
    pub request_time: Duration,
    /// How long [`Server::shutdown`] lets requests in progress finish.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            max_header_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            request_time: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Counters of what a [`Server`] has done, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections being served now.
    pub open: usize,
    /// Connections accepted and served, since the start.
    pub accepted: u64,
    /// Connections answered 503 (or, when even refusals were at their
    /// limit, closed at once) because the cap was reached and none was idle.
    pub refused: u64,
    /// Idle connections closed to make room for a new one.
    pub evicted: u64,
    /// Connections closed, or requests answered 408/503, by a timeout.
    pub timed_out: u64,
    /// Failed `accept` calls (e.g. `EMFILE`), each followed by a back-off.
    pub accept_errors: u64,
}

/// A socket to serve: loopback TCP or a Unix socket.
pub struct Listener(accept::Kind);

impl Listener {
    /// Binds `addr` (port 0 for an ephemeral port).
    pub async fn bind(addr: LoopbackAddr) -> std::io::Result<Listener> {
        let l = tokio::net::TcpListener::bind(addr.get()).await?;
        Ok(Listener(accept::Kind::Tcp(l)))
    }

    /// Serves an already-bound listener; its address must be loopback.
    pub fn tcp(l: std::net::TcpListener) -> std::io::Result<Listener> {
        let addr = l.local_addr()?;
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{addr} is not a loopback address; keyway only serves loopback"),
            ));
        }
        l.set_nonblocking(true)?;
        Ok(Listener(accept::Kind::Tcp(
            tokio::net::TcpListener::from_std(l)?,
        )))
    }

    /// Binds a Unix socket at `path` (which must not exist), readable and
    /// writable by its owner only.
    pub fn unix(path: &Path) -> std::io::Result<Listener> {
        use std::os::unix::fs::PermissionsExt;
        let l = tokio::net::UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Listener(accept::Kind::Unix(l)))
    }

    /// The TCP address, or `None` for a Unix socket.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.0 {
            accept::Kind::Tcp(l) => l.local_addr().ok(),
            accept::Kind::Unix(_) => None,
        }
    }
}

/// Serves routers on listeners under one set of [`Limits`]. Cloning gives
/// another handle to the same server. Serving goes on until
/// [`Server::shutdown`] or [`Server::abort`]; dropping handles does not stop it.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

const SERVING: u8 = 0;
const DRAINING: u8 = 1;
const CLOSED: u8 = 2;

pub(crate) struct Inner {
    /// The limits in force (`max_connections` already lowered).
    pub(crate) limits: Limits,
    pub(crate) epoch: Instant,
    pub(crate) conns: Mutex<HashMap<u64, Arc<conn::ConnState>>>,
    next_id: AtomicU64,
    /// Refusals being answered now (bounded by `accept::REFUSALS`).
    pub(crate) refusing: AtomicUsize,
    pub(crate) accepted: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    /// SERVING, DRAINING or CLOSED, watched by the accept loops.
    pub(crate) run: watch::Sender<u8>,
    /// The same, read by connections when they are woken (see [`Inner::set_run`]).
    pub(crate) state: AtomicU8,
    /// Accept loops running.
    pub(crate) loops: AtomicUsize,
    /// Woken whenever a connection or an accept loop ends.
    pub(crate) ended: Notify,
}

/// What happened to a new connection at the door.
pub(crate) enum Admission {
    Served(u64, Arc<conn::ConnState>),
    Full,
}

impl Inner {
    /// Takes a slot for a new connection: a free one, else the one of the
    /// connection idle longest (which is told to close).
    pub(crate) fn admit(&self) -> Admission {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.len() >= self.limits.max_connections {
            if !evict_oldest_idle(&mut conns) {
                return Admission::Full;
            }
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let st = Arc::new(conn::ConnState::new(self.epoch));
        conns.insert(id, st.clone());
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Admission::Served(id, st)
    }

    /// Closes the connection idle longest, if any (to free a descriptor).
    pub(crate) fn evict_one(&self) -> bool {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let done = evict_oldest_idle(&mut conns);
        if done {
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        done
    }

    /// Moves the server to `state` (DRAINING or CLOSED): the accept loops
    /// see it through the watch channel; every connection is woken to read
    /// it (a connection admitted later reads it at its first poll).
    fn set_run(&self, state: u8) {
        self.state.store(state, Ordering::Release);
        self.run.send_replace(state);
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for st in conns.values() {
            st.wake();
        }
    }

    pub(crate) fn release(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.ended.notify_waiters();
    }
}

/// Tells the connection idle longest to close and removes it from `conns`.
fn evict_oldest_idle(conns: &mut HashMap<u64, Arc<conn::ConnState>>) -> bool {
    loop {
        let Some((id, st)) = conns
            .iter()
            .filter_map(|(id, st)| st.idle_since().map(|t| (t, *id, st)))
            .min_by_key(|(t, _, _)| *t)
            .map(|(_, id, st)| (id, st.clone()))
        else {
            return false;
        };
        // It may have left idle since the scan: then it is no longer a
        // candidate, and the next scan looks further.
        if st.evict() {
            conns.remove(&id);
            return true;
        }
    }
}

impl Server {
    /// A server with `limits` (its connection cap lowered to what the
    /// process's file limit leaves room for). Serves nothing yet.
    pub fn new(limits: Limits) -> Server {
        let mut limits = limits;
        limits.max_connections = accept::fit_to_file_limit(limits.max_connections);
        let (run, _) = watch::channel(SERVING);
        Server {
            inner: Arc::new(Inner {
                limits,
                epoch: Instant::now(),
                conns: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                refusing: AtomicUsize::new(0),
                accepted: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                evicted: AtomicU64::new(0),
                timed_out: AtomicU64::new(0),
                accept_errors: AtomicU64::new(0),
                run,
                state: AtomicU8::new(SERVING),
                loops: AtomicUsize::new(0),
                ended: Notify::new(),
            }),
        }
    }

    /// The limits in force (`max_connections` as lowered by [`Server::new`]).
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Serves `app` on `listener` until shutdown. Must be called inside a
    /// Tokio runtime; returns at once.
    pub fn serve(&self, listener: Listener, app: Router) {
        accept::spawn(self.inner.clone(), listener.0, app);
    }

    /// Binds `addr` and serves `app` there; returns the bound address.
    pub async fn bind(&self, addr: LoopbackAddr, app: Router) -> std::io::Result<SocketAddr> {
        let l = Listener::bind(addr).await?;
        let a = l
            .local_addr()
            .ok_or_else(|| std::io::Error::other("a TCP listener has no address"))?;
        self.serve(l, app);
        Ok(a)
    }

    pub fn stats(&self) -> Stats {
        let i = &self.inner;
        Stats {
            open: i.conns.lock().unwrap_or_else(|e| e.into_inner()).len(),
            accepted: i.accepted.load(Ordering::Relaxed),
            refused: i.refused.load(Ordering::Relaxed),
            evicted: i.evicted.load(Ordering::Relaxed),
            timed_out: i.timed_out.load(Ordering::Relaxed),
            accept_errors: i.accept_errors.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting, lets requests in progress finish (at most
    /// [`Limits::shutdown_grace`]), closes idle connections, then closes
    /// whatever is left. Returns when every listener and connection is gone.
    pub async fn shutdown(&self) {
        let i = &self.inner;
        i.set_run(DRAINING);
        let _ = tokio::time::timeout(i.limits.shutdown_grace, self.quiet()).await;
        i.set_run(CLOSED);
        // Tasks see CLOSED at their next poll and drop their sockets.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.quiet()).await;
    }

    /// Stops at once: listeners and connections close without waiting.
    pub fn abort(&self) {
        self.inner.set_run(CLOSED);
    }

    /// Waits until no listener and no connection is left.
    async fn quiet(&self) {
        let i = &self.inner;
        loop {
            let ended = i.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let open = i.conns.lock().unwrap_or_else(|e| e.into_inner()).len();
            if open == 0 && i.loops.load(Ordering::Acquire) == 0 {
                return;
            }
            ended.await;
        }
    }
}
