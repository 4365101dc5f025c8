//! How an emitter's requests reach the collector: the [`Transport`] trait and its awc
//! implementation, **the only network code of the crate**.
//!
//! A transport is built inside the emitter's arbiter (awc clients are not `Send`) by a
//! factory the emitter is given, and rebuilt when the emitter restarts. Its futures run on
//! that arbiter and need not be `Send`.

mod http;

pub use http::{default_client, AwcTransport};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::LocalBoxFuture;

pub use crate::error::TransportError;
use crate::wire::Method;

/// One request to the collector, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// GET or POST.
    pub method: Method,
    /// The full URL: with the query string for a GET.
    pub url: String,
    /// The JSON body of a POST (`payload_data` envelope); empty for a GET.
    pub body: String,
    /// The time allowed for the whole request, connection included.
    pub timeout: Duration,
    /// Events in the request.
    pub events: usize,
    /// Whether the collector is to anonymise it: the transport sends
    /// [`SP_ANONYMOUS_HEADER`]`: `[`SP_ANONYMOUS_VALUE`] with it (see
    /// [`EmitterBuilder::anonymous`](crate::EmitterBuilder::anonymous)).
    pub anonymous: bool,
}

/// The header asking a Snowplow collector to anonymise a request: it then keeps neither the
/// IP address, nor its cookie, nor a network user id.
pub const SP_ANONYMOUS_HEADER: &str = "SP-Anonymous";
/// The value [`SP_ANONYMOUS_HEADER`] is sent with.
pub const SP_ANONYMOUS_VALUE: &str = "*";

/// The collector's answer, as far as delivery is concerned.
///
/// ```
/// use std::time::Duration;
/// use snowplow_actix::transport::Response;
///
/// let busy = Response::new(503).with_retry_after(Duration::from_secs(2));
/// assert_eq!((busy.status, busy.retry_after), (503, Some(Duration::from_secs(2))));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The collector's `Retry-After`, as a delay from when the answer arrived (the
    /// emitter heeds it on 429 and 503).
    pub retry_after: Option<Duration>,
}

impl Response {
    /// An answer with `status` and no `Retry-After`.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
        }
    }

    /// The same answer with a `Retry-After` delay.
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }
}

/// Reads a `Retry-After` header value: delta-seconds, or an HTTP-date taken relative to
/// `now` (a date in the past is no delay). `None` for anything else.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use snowplow_actix::transport::parse_retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_770);
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::from_secs(7)));
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Sends requests to a collector.
///
/// # Contract
///
/// - Called from the emitter's arbiter only; the returned future runs there and need not be
///   `Send`. Up to `max_in_flight` futures may be outstanding at once.
/// - The future must finish: honour [`Request::timeout`] and answer
///   [`TransportError::Timeout`] past it.
/// - Any HTTP status is an `Ok` [`Response`]: the emitter classifies it. Errors before a
///   status are [`TransportError::Connection`] or [`TransportError::Timeout`] (retried by
///   default); [`TransportError::Fatal`] makes the emitter restart with a new transport;
///   [`TransportError::Invalid`] says the request cannot be built at all (never retried).
/// - `Retry-After` on the answer goes in [`Response::retry_after`].
/// - A request with [`Request::anonymous`] set is sent with [`SP_ANONYMOUS_HEADER`]`:
///   `[`SP_ANONYMOUS_VALUE`].
pub trait Transport {
    /// Sends `request`.
    fn send(&self, request: Request) -> LocalBoxFuture<'static, Result<Response, TransportError>>;
}

impl fmt::Debug for dyn Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Transport")
    }
}

/// Builds a transport inside the emitter's arbiter (again after each restart).
pub type TransportFactory = Arc<dyn Fn() -> Box<dyn Transport> + Send + Sync>;

/// Builds the awc client of the default transport inside the emitter's arbiter.
pub type ClientFactory = Arc<dyn Fn() -> awc::Client + Send + Sync>;
