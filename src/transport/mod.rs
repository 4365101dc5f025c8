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

use crate::emitter::Method;
use crate::error::TransportError;

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
}

/// The collector's answer, as far as delivery is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
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
///   default); [`TransportError::Fatal`] makes the emitter restart with a new transport.
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
