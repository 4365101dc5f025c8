//! The default transport: awc with a pooled client, rustls (ring) for https.

use std::time::Duration;

use awc::error::{ConnectError, SendRequestError};
use std::time::SystemTime;

use awc::http::header::{CONTENT_TYPE, RETRY_AFTER};
use futures::future::LocalBoxFuture;
use futures::FutureExt as _;

use super::{
    parse_retry_after, Request, Response, Transport, SP_ANONYMOUS_HEADER, SP_ANONYMOUS_VALUE,
};
use crate::error::TransportError;
use crate::wire::Method;
use crate::wire::POST_CONTENT_TYPE;

/// The most of a collector's answer body that is read (to keep the connection reusable);
/// a longer answer is cut off, its status still counts.
const MAX_ANSWER_BODY: usize = 64 * 1024;

/// Installs ring as rustls' process-wide crypto provider unless one is installed already.
///
/// A rustls with two providers compiled in and no default panics inside awc's client
/// builder; installing ours first avoids that, and an error means another part of the
/// program chose one, which is as good.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The client the default transport uses: a pooled awc client with `connect_timeout`, up to
/// `max_connections` connections to the collector, rustls with the webpki roots, no
/// redirects followed and no cookies kept (a shared collector cookie would give every user
/// of a server the same network user id).
pub fn default_client(connect_timeout: Duration, max_connections: usize) -> awc::Client {
    install_crypto_provider();
    let connector = awc::Connector::new()
        .timeout(connect_timeout)
        .limit(max_connections);
    awc::Client::builder()
        .connector(connector)
        .disable_redirects()
        .finish()
}

/// The default [`Transport`]: awc.
pub struct AwcTransport {
    client: awc::Client,
}

impl std::fmt::Debug for AwcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwcTransport").finish_non_exhaustive()
    }
}

impl AwcTransport {
    /// A transport sending with `client`. The request timeout is set on each request, so
    /// the client's own default does not apply.
    pub fn new(client: awc::Client) -> Self {
        Self { client }
    }
}

impl Transport for AwcTransport {
    fn send(&self, request: Request) -> LocalBoxFuture<'static, Result<Response, TransportError>> {
        let builder = match request.method {
            Method::Post => self
                .client
                .post(&request.url)
                .insert_header((CONTENT_TYPE, POST_CONTENT_TYPE)),
            Method::Get => self.client.get(&request.url),
        };
        let mut builder = builder.timeout(request.timeout);
        if request.anonymous {
            builder = builder.insert_header((SP_ANONYMOUS_HEADER, SP_ANONYMOUS_VALUE));
        }
        let sending = match request.method {
            Method::Post => builder.send_body(request.body),
            Method::Get => builder.send(),
        };
        let deadline = request.timeout;
        async move {
            let mut response = sending.await.map_err(classify)?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, SystemTime::now()));
            // Read the answer so the connection goes back to the pool; the status decides
            // and a broken body after it does not change what the collector said. The body
            // read has its own deadline since a collector may stall after the headers.
            let _ = actix_rt::time::timeout(deadline, response.body().limit(MAX_ANSWER_BODY)).await;
            Ok(Response {
                status,
                retry_after,
            })
        }
        .boxed_local()
    }
}

fn classify(error: SendRequestError) -> TransportError {
    match error {
        SendRequestError::Timeout => TransportError::Timeout,
        SendRequestError::Connect(ConnectError::Timeout) => TransportError::Timeout,
        // The request never left: a URL awc cannot carry (over 64 KiB, say) or headers it
        // cannot write. Sending it again would fail the same way.
        SendRequestError::Url(error) => TransportError::Invalid(format!("invalid URL: {error}")),
        SendRequestError::Http(error) => TransportError::Invalid(error.to_string()),
        other => TransportError::Connection(other.to_string()),
    }
}
