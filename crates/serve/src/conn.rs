//! One connection: hyper's HTTP/1.1 server on the socket, and beside it a
//! watchdog that knows which phase the connection is in (idle, reading a
//! request head, busy with a request) and closes it when that phase has
//! lasted longer than its limit. hyper has a single header-read timer that
//! runs from the moment it waits for a request, so it cannot tell an idle
//! keep-alive connection (allowed a minute) from a slow request head
//! (allowed seconds); the phases are tracked here instead, from the bytes
//! read, the request handed to the router and the response body's end.
//! The router runs under the request-time limit and behind the body cap.
//!
//! The phases cost a request almost nothing: a phase change is two atomic
//! stores and wakes nobody. The watchdog is one timer per connection that
//! is never re-armed on a phase change: when it fires it reads the phase and
//! its start, closes the connection if that phase's deadline has passed, and
//! otherwise sleeps until that deadline or for the shortest limit, whichever
//! comes first. A phase that begins after the timer was armed has a deadline
//! at least the shortest limit away, so no deadline is ever checked late.
//! The connection task is woken from outside only to be evicted or when the
//! server begins to drain or closes.

use crate::{CLOSED, DRAINING, Inner};
use atomic_waker::AtomicWaker;
use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tower::ServiceExt;

/// Waiting for the first byte of a request.
const IDLE: u8 = 0;
/// Reading a request head.
const HEAD: u8 = 1;
/// A request is with the router, or its response is being written.
const BUSY: u8 = 2;
/// Told to close, to make room for a new connection.
const EVICTED: u8 = 3;

/// The phase of one connection, shared by its socket wrapper, its service,
/// its response bodies, its watchdog and the server's connection table.
pub(crate) struct ConnState {
    phase: AtomicU8,
    /// When the phase began, in ms since `epoch`.
    since: AtomicU64,
    epoch: Instant,
    /// The connection's task, woken when it is evicted or the server's
    /// state changes (never on a phase change).
    task: AtomicWaker,
}

impl ConnState {
    pub(crate) fn new(epoch: Instant) -> ConnState {
        ConnState {
            phase: AtomicU8::new(IDLE),
            since: AtomicU64::new(epoch.elapsed().as_millis() as u64),
            epoch,
            task: AtomicWaker::new(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn enter(&self, from: Option<u8>, to: u8) -> bool {
        let ok = match from {
            Some(f) => self
                .phase
                .compare_exchange(f, to, Ordering::AcqRel, Ordering::Acquire)
                .is_ok(),
            None => {
                // An evicted connection stays evicted.
                self.phase
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                        (p != EVICTED).then_some(to)
                    })
                    .is_ok()
            }
        };
        if ok {
            self.since.store(self.now(), Ordering::Release);
        }
        ok
    }

    /// Wakes the connection's task to read its orders (eviction, the
    /// server's state).
    pub(crate) fn wake(&self) {
        self.task.wake();
    }

    fn evicted(&self) -> bool {
        self.phase.load(Ordering::Acquire) == EVICTED
    }

    /// When it became idle, if it is idle.
    pub(crate) fn idle_since(&self) -> Option<u64> {
        (self.phase.load(Ordering::Acquire) == IDLE).then(|| self.since.load(Ordering::Acquire))
    }

    /// Tells an idle connection to close; false if it is no longer idle.
    pub(crate) fn evict(&self) -> bool {
        let done = self.enter(Some(IDLE), EVICTED);
        if done {
            self.wake();
        }
        done
    }

    /// When the current phase runs out, or `None` when the connection must
    /// close now (evicted).
    fn deadline(&self, inner: &Inner) -> Option<Instant> {
        let l = &inner.limits;
        let phase = self.phase.load(Ordering::Acquire);
        let since = self.epoch + Duration::from_millis(self.since.load(Ordering::Acquire));
        match phase {
            IDLE => Some(since + l.idle),
            HEAD => Some(since + l.header_read),
            BUSY => Some(since + l.request_time + l.header_read),
            _ => None,
        }
    }
}

/// The socket, noticing the first byte of each request.
struct Watched<Io> {
    io: Io,
    st: Arc<ConnState>,
}

impl<Io: AsyncRead + Unpin> AsyncRead for Watched<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.st.enter(Some(IDLE), HEAD);
        }
        r
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Watched<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Serves one admitted connection until it ends, times out, is evicted or
/// the server stops; then frees its slot.
pub(crate) async fn serve<Io>(inner: Arc<Inner>, id: u64, st: Arc<ConnState>, io: Io, app: Router)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let l = &inner.limits;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.header_read_timeout(None)
        .max_header_size(l.max_header_bytes)
        .max_buf_size(l.max_header_bytes.max(8 * 1024) + 8 * 1024)
        .keep_alive(true);
    let ctx = Arc::new(Ctx {
        inner: inner.clone(),
        st: st.clone(),
        app,
    });
    let svc = hyper::service::service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(ctx.handle(req).await) }
    });
    let conn = http.serve_connection(TokioIo::new(Watched { io, st: st.clone() }), svc);
    tokio::pin!(conn);
    // Every phase lasts at least this long: the watchdog's longest sleep.
    let check_every = l.idle.min(l.header_read);
    let first = st
        .deadline(&inner)
        .unwrap_or_else(Instant::now)
        .min(Instant::now() + check_every);
    let timer = tokio::time::sleep_until(first);
    tokio::pin!(timer);
    let mut draining = false;
    let end = std::future::poll_fn(|cx| {
        // Registered before the orders are read, so that an order given
        // after the read wakes this task again.
        st.task.register(cx.waker());
        if st.evicted() {
            return Poll::Ready(End::Evicted);
        }
        match inner.state.load(Ordering::Acquire) {
            CLOSED => return Poll::Ready(End::Closed),
            DRAINING if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            _ => {}
        }
        if let Poll::Ready(r) = conn.as_mut().poll(cx) {
            return Poll::Ready(End::Served(r));
        }
        while timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            match st.deadline(&inner) {
                None => return Poll::Ready(End::Evicted),
                Some(d) if d <= now => return Poll::Ready(End::TimedOut),
                Some(d) => timer.as_mut().reset(d.min(now + check_every)),
            }
        }
        Poll::Pending
    })
    .await;
    match end {
        End::Served(Ok(())) | End::Closed => {}
        End::Served(Err(e)) => tracing::debug!(error = %e, "connection ended with an error"),
        End::Evicted => tracing::debug!("closing an idle connection to make room for a new one"),
        End::TimedOut => {
            inner.timed_out.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("closing a connection that outlived its phase's time limit");
        }
    }
    inner.release(id);
}

/// Why a connection's task ended.
enum End {
    /// hyper finished with it (the client closed, or the server drained it).
    Served(Result<(), hyper::Error>),
    /// It was closed to make room for a new connection.
    Evicted,
    /// Its phase outlived its limit.
    TimedOut,
    /// The server closed.
    Closed,
}

struct Ctx {
    inner: Arc<Inner>,
    st: Arc<ConnState>,
    app: Router,
}

impl Ctx {
    async fn handle(&self, req: Request<Incoming>) -> Response<Tracked> {
        self.st.enter(None, BUSY);
        let l = &self.inner.limits;
        let resp = self.answer(req, l.max_body_bytes, l.request_time).await;
        Response::from_parts(
            resp.0,
            Tracked {
                body: resp.1,
                st: Some(self.st.clone()),
            },
        )
    }

    async fn answer(
        &self,
        req: Request<Incoming>,
        max_body: usize,
        request_time: Duration,
    ) -> (http::response::Parts, Body) {
        let declared = req.body().size_hint().lower();
        if declared > max_body as u64 {
            return refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body ({declared} bytes) exceeds {max_body} bytes"),
            );
        }
        // A request without a body (most are GETs) needs no cap and no
        // watch on its body.
        let flags = (!req.body().is_end_stream()).then(|| Arc::new(BodyFlags::default()));
        let req = match &flags {
            Some(flags) => req.map(|b| {
                Body::new(WatchedBody {
                    inner: Limited::new(b, max_body),
                    flags: flags.clone(),
                })
            }),
            None => req.map(|_| Body::empty()),
        };
        let flag = |f: fn(&BodyFlags) -> &AtomicBool| {
            flags.as_ref().is_some_and(|b| f(b).load(Ordering::Acquire))
        };
        let call = self.app.clone().oneshot(req);
        tokio::pin!(call);
        // Most answers are ready at once (a cached value): the request's
        // timer is armed only when the router has to wait.
        let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
        let outcome = match first {
            Poll::Ready(r) => Ok(r),
            Poll::Pending => tokio::time::timeout(request_time, call).await,
        };
        match outcome {
            Ok(Ok(resp)) if flag(|b| &b.over) => {
                drop(resp);
                refusal(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body exceeds {max_body} bytes"),
                )
            }
            Ok(Ok(resp)) => resp.into_parts(),
            Ok(Err(never)) => match never {},
            Err(_) => {
                self.inner.timed_out.fetch_add(1, Ordering::Relaxed);
                if flag(|b| &b.waiting) {
                    refusal(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the request body did not arrive within {} s",
                            request_time.as_secs_f64()
                        ),
                    )
                } else {
                    refusal(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "the request was not answered within {} s",
                            request_time.as_secs_f64()
                        ),
                    )
                }
            }
        }
    }
}

/// A plain-text answer from the server itself, closing the connection.
fn refusal(status: StatusCode, msg: String) -> (http::response::Parts, Body) {
    let mut r = Response::new(Body::from(format!("{msg}\n")));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CONNECTION, HeaderValue::from_static("close"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r.into_parts()
}

/// What the router did with the request body.
#[derive(Default)]
struct BodyFlags {
    /// Its last poll waited for the client.
    waiting: AtomicBool,
    /// It passed the cap.
    over: AtomicBool,
}

/// The request body behind the cap, noting when the router waits on the client.
struct WatchedBody {
    inner: Limited<Incoming>,
    flags: Arc<BodyFlags>,
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        let f = &self.flags;
        f.waiting.store(r.is_pending(), Ordering::Release);
        if let Poll::Ready(Some(Err(e))) = &r
            && e.is::<LengthLimitError>()
        {
            f.over.store(true, Ordering::Release);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that marks its connection idle again once it is
/// written (or dropped).
pub(crate) struct Tracked {
    body: Body,
    st: Option<Arc<ConnState>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(st) = self.st.take() {
            st.enter(Some(BUSY), IDLE);
        }
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
