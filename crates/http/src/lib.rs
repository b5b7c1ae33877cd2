//! keyway-http is the one path every HTTP request keyway makes as a client goes
//! through: keyway-auth's token, metadata, STS, ECS and IMDS calls,
//! keyway-secrets' Secret Manager and Secrets Manager calls, and the binary's
//! own. It exists so that what every request needs is decided once:
//!
//! * the client ([`client`]): platform TLS roots loaded on first use, bounded
//!   connects, proxies from the environment, never for metadata or loopback;
//! * a cap on every response body ([`Cap`], [`exchange`]): each call states the
//!   largest answer the real API can give, and a larger one fails at once (a
//!   `Content-Length` over the cap) or as soon as the cap is passed (a chunked
//!   or endless body), naming the URL (without its query) and the cap. Nothing
//!   past the cap is read, so memory stays bounded whatever a server sends;
//! * one retry policy ([`RetryPolicy`], [`with_retries`]): full-jitter
//!   exponential backoff inside a deadline, and one set of transient statuses
//!   ([`is_transient_status`]);
//! * one description of a transport failure ([`HttpError`], [`describe`]);
//! * one reader of AWS error bodies and query-protocol documents ([`aws`]),
//!   and one of Google's error bodies ([`google`]), each parsed into the
//!   typed codes keyway decides on;
//! * the server's clock, from its `Date` header ([`Reply::date`]).
//!
//! The local cloud does not use this crate: it must not share a client's bugs.

pub mod aws;
mod cap;
mod client;
mod error;
mod exchange;
pub mod google;
mod retry;

pub use cap::Cap;
pub use client::{client, proxies};
pub use error::{HttpError, Seen, describe, redact_url};
pub use exchange::{Call, Reply, exchange};
pub use retry::{RetryPolicy, Transient, is_transient_status, with_retries};
