//! Emitter settings: the builder, its named defaults and its validation.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::backoff::{default_jitter, Jitter};
use super::endpoint::{Endpoint, Protocol};
use crate::error::{BuildError, TransportError};
use crate::report::{DropReason, FailureReason, FinalStats};
use crate::store::{EventStore, InMemoryStore, DEFAULT_BUFFER_CAPACITY};
use crate::transport::{default_client, AwcTransport, ClientFactory, Transport, TransportFactory};
use crate::wire::Method;
use crate::wire::StampedEvent;

/// The queue length that triggers a flush of a POST emitter (the Python tracker's 10). It is not a
/// request size: a request takes as many queued events as fit
/// [`DEFAULT_MAX_REQUEST_EVENTS`] and [`DEFAULT_MAX_REQUEST_BYTES`].
pub const DEFAULT_POST_BATCH_SIZE: usize = 10;
/// The most events one POST carries. Large enough that a backlog drains in few round trips
/// (2,000 events of a collector 100 ms away at 20,000 events/s go in four requests), small
/// enough that a failed request puts little back and the body cap, not this, binds for
/// events of a few hundred bytes.
pub const DEFAULT_MAX_REQUEST_EVENTS: usize = 500;
/// The most bytes one POST body carries as sent. The other Snowplow trackers send 40,000
/// bytes; the collector turns a body over 1 MiB into a size-violation bad row (answered 200:
/// silent loss) and answers 413 over 2 MiB, and nginx refuses bodies over 1 MiB by
/// default. 200,000 bytes is five times the others' batches, so a distant collector is
/// kept busy with few requests, and a fifth of the 1 MiB ceiling, so nothing comes near it;
/// a proxy with a lower limit answers 413, and the emitter splits and lowers its cap.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 200_000;
/// Whether an emitter asks the collector to anonymise its requests (`SP-Anonymous`): off.
pub const DEFAULT_ANONYMOUS: bool = false;
/// GET sends each event as soon as it arrives (the Python tracker's 1).
pub const DEFAULT_GET_BATCH_SIZE: usize = 1;
/// The whole request: finite, unlike the Python tracker's wait-forever default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Cap of the exponential backoff between retries (the Python tracker's 60 s).
pub const DEFAULT_MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// The upper bound of the adaptive concurrency: requests one emitter may have outstanding
/// (and connections it may open). The limit starts at 1 and grows only while it is in use
/// and round trips stay steady. 32 lets a GET emitter (one event per request) carry 200
/// events/s to a collector 100 ms away, and POST requests of up to
/// [`DEFAULT_MAX_REQUEST_BYTES`] carry 20,000 events/s there with a handful, while staying
/// far below the connection counts that strain a load balancer or a file-descriptor
/// limit. `max_in_flight(1)` keeps one request at a time and FIFO delivery.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;
/// Messages a mailbox (an emitter's, the fan-out's) holds at least before a `try_send` of
/// `Track` fails. An emitter's mailbox holds as many messages as its buffer holds events
/// when that is more: a burst that the buffer has room for is never refused at the
/// mailbox, while an emitter that cannot keep up at all refuses (and counts) events instead
/// of growing memory without bound (at most the buffer plus the mailbox).
pub const DEFAULT_MAILBOX_CAPACITY: usize = 10_000;
/// The default byte capacity of an emitter's buffer: the summed size (as sent) of the
/// events it holds, queued and in flight. With the event capacity, it bounds memory
/// whatever the events' size (10,000 events of 100 KB would otherwise hold 1 GB).
pub const DEFAULT_BUFFER_BYTES: usize = 32 * 1024 * 1024;
/// The largest mailbox: an emitter's or a tracker's. A larger buffer does not grow its
/// mailbox beyond it (a message carries many events), and a larger `mailbox_capacity` is a
/// [`BuildError::TooLarge`].
pub const MAX_MAILBOX_CAPACITY: usize = 1 << 20;
/// The smallest request byte cap: the POST envelope around one empty event object.
pub const MIN_REQUEST_BYTES: usize =
    crate::wire::BODY_PREFIX.len() + crate::wire::BODY_SUFFIX.len() + 2;
/// Statuses that are not retried unless `custom_retry_codes` says otherwise (the Python tracker's).
pub const DEFAULT_NON_RETRYABLE_CODES: [u16; 5] = [400, 401, 403, 410, 422];
/// 431 (request headers too large) is not retried either, unless `custom_retry_codes` says
/// otherwise: the same request would be refused again. 413 and 414 have their own rule: a
/// batch is split, a single event is dropped as `oversize`.
pub(crate) const HEADERS_TOO_LARGE: u16 = 431;

/// How long a request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestTimeout {
    /// One limit for the whole request, connection included.
    Total(Duration),
    /// Separate limits: connecting, and the request once sent.
    ///
    /// With the default awc transport, `connect` caps establishing a connection (TCP and
    /// TLS) and `response` caps each request from the moment it is sent to its answer;
    /// a new connection made for a request counts inside `response` too, so keep it the
    /// larger of the two.
    Split {
        /// Establishing a connection (TCP and TLS).
        connect: Duration,
        /// A request, from sending to its answer.
        response: Duration,
    },
}

impl RequestTimeout {
    pub(crate) fn connect(self) -> Duration {
        match self {
            Self::Total(total) => total,
            Self::Split { connect, .. } => connect,
        }
    }

    /// The limit set on each request. awc counts waiting for a pooled connection and
    /// connecting inside it, so with [`Split`](Self::Split) the response limit also bounds
    /// a connection made for that request; the connect limit caps connecting on its own.
    pub(crate) fn request(self) -> Duration {
        match self {
            Self::Total(total) => total,
            Self::Split { response, .. } => response,
        }
    }
}

/// The events of a successful request.
pub type SuccessCallback = Arc<dyn Fn(&[Arc<StampedEvent>]) + Send + Sync>;
/// A failed request: see [`Failure`].
pub type FailureCallback = Arc<dyn Fn(&Failure<'_>) + Send + Sync>;

/// What `on_failure` receives for each failed request.
#[derive(Debug)]
pub struct Failure<'a> {
    /// The events that failed.
    pub events: &'a [Arc<StampedEvent>],
    /// Why: a status, a connection error or a timeout.
    pub reason: &'a FailureReason,
    /// Whether these events go back to the queue for another attempt.
    pub will_retry: bool,
    /// When not retried, the reason they are dropped with.
    pub dropped: Option<DropReason>,
}

/// Which failures are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    pub(crate) custom_codes: BTreeMap<u16, bool>,
    pub(crate) connection_errors: bool,
    pub(crate) timeouts: bool,
}

impl RetryPolicy {
    pub(crate) fn retries(&self, reason: &FailureReason) -> bool {
        match reason {
            FailureReason::Status(status) => self.retries_status(*status),
            FailureReason::Transport(error) => match error {
                TransportError::Connection(_) | TransportError::Fatal(_) => self.connection_errors,
                TransportError::Timeout => self.timeouts,
                TransportError::Invalid(_) => false,
            },
        }
    }

    fn retries_status(&self, status: u16) -> bool {
        if (200..300).contains(&status) {
            return false;
        }
        self.custom_codes.get(&status).copied().unwrap_or(
            !DEFAULT_NON_RETRYABLE_CODES.contains(&status) && status != HEADERS_TOO_LARGE,
        )
    }

    /// Whether `custom_retry_codes` decides `status` (which then wins over a special rule).
    pub(crate) fn overrides(&self, status: u16) -> bool {
        self.custom_codes.contains_key(&status)
    }
}

/// Validated, immutable emitter settings shared by the actor and its restarts.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) name: String,
    pub(crate) endpoint: Endpoint,
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) batch_size: usize,
    pub(crate) byte_limit: Option<usize>,
    pub(crate) max_request_events: usize,
    /// The POST body cap: `max_request_bytes`, and `byte_limit` when lower.
    pub(crate) request_bytes: usize,
    pub(crate) request_timeout: RequestTimeout,
    pub(crate) max_retry_delay: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_in_flight: usize,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) max_event_age: Option<Duration>,
    pub(crate) mailbox_capacity: usize,
    /// Every request carries `SP-Anonymous: *`.
    pub(crate) anonymous: bool,
    /// Bytes of events buffered at most (queued and in flight).
    pub(crate) buffer_bytes: u64,
    pub(crate) on_success: Option<SuccessCallback>,
    pub(crate) on_failure: Option<FailureCallback>,
    pub(crate) transport: TransportFactory,
    pub(crate) jitter: Jitter,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("method", &self.method)
            .field("batch_size", &self.batch_size)
            .field("byte_limit", &self.byte_limit)
            .field("max_request_events", &self.max_request_events)
            .field("request_bytes", &self.request_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("max_retry_delay", &self.max_retry_delay)
            .field("retry", &self.retry)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_attempts", &self.max_attempts)
            .field("max_event_age", &self.max_event_age)
            .field("anonymous", &self.anonymous)
            .finish_non_exhaustive()
    }
}

/// Builds an emitter: every setting of the Snowplow Python tracker's `Emitter` and
/// `AsyncEmitter`, with named defaults, validated by [`build`](Self::build).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use snowplow_actix::{EmitterBuilder, Method};
///
/// let config = EmitterBuilder::new("collector.example.com")
///     .method(Method::Post)
///     .batch_size(50)
///     .byte_limit(50_000)
///     .max_retry_delay(Duration::from_secs(30))
///     .custom_retry_code(500, false)
///     .build()?;
/// assert_eq!(config.url(), "https://collector.example.com/com.snowplowanalytics.snowplow/tp2");
///
/// assert!(EmitterBuilder::new("ftp://x").build().is_err());
/// # Ok::<(), snowplow_actix::BuildError>(())
/// ```
pub struct EmitterBuilder {
    name: Option<String>,
    endpoint: String,
    protocol: Protocol,
    port: Option<u16>,
    method: Method,
    batch_size: Option<usize>,
    byte_limit: Option<usize>,
    max_request_events: usize,
    max_request_bytes: usize,
    request_timeout: RequestTimeout,
    max_retry_delay: Duration,
    buffer_capacity: usize,
    buffer_bytes: usize,
    custom_retry_codes: BTreeMap<u16, bool>,
    retry_connection_errors: bool,
    retry_timeouts: bool,
    max_in_flight: usize,
    max_attempts: Option<u32>,
    max_event_age: Option<Duration>,
    mailbox_capacity: Option<usize>,
    anonymous: bool,
    on_success: Option<SuccessCallback>,
    on_failure: Option<FailureCallback>,
    store: Option<Box<dyn EventStore>>,
    client: Option<ClientFactory>,
    transport: Option<TransportFactory>,
    jitter: Option<Jitter>,
}

impl fmt::Debug for EmitterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmitterBuilder")
            .field("endpoint", &self.endpoint)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl EmitterBuilder {
    /// An emitter for the collector at `endpoint` (`host`, `host:port`,
    /// `http[s]://host[:port][/path]`), with every default.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            name: None,
            endpoint: endpoint.into(),
            protocol: Protocol::Https,
            port: None,
            method: Method::Post,
            batch_size: None,
            byte_limit: None,
            max_request_events: DEFAULT_MAX_REQUEST_EVENTS,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            request_timeout: RequestTimeout::Total(DEFAULT_REQUEST_TIMEOUT),
            max_retry_delay: DEFAULT_MAX_RETRY_DELAY,
            buffer_capacity: DEFAULT_BUFFER_CAPACITY,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            custom_retry_codes: BTreeMap::new(),
            retry_connection_errors: true,
            retry_timeouts: true,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_attempts: None,
            max_event_age: None,
            mailbox_capacity: None,
            anonymous: DEFAULT_ANONYMOUS,
            on_success: None,
            on_failure: None,
            store: None,
            client: None,
            transport: None,
            jitter: None,
        }
    }

    /// A name for the emitter in stats and reports (default: its endpoint, with ` (GET)`
    /// appended for a GET emitter).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The protocol when the endpoint names none (default https).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// The port, replacing the endpoint's own.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// GET or POST (default POST).
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// The queue length that triggers a flush, as the Python tracker's `batch_size`
    /// (default [`DEFAULT_POST_BATCH_SIZE`], GET [`DEFAULT_GET_BATCH_SIZE`]); clamped to
    /// the buffer capacity. A flush sends the whole queue, each POST as large as
    /// [`max_request_events`](Self::max_request_events) and
    /// [`max_request_bytes`](Self::max_request_bytes) allow; set `max_request_events` to
    /// the same number for requests of exactly one batch.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = Some(batch_size);
        self
    }

    /// The queued bytes that trigger a flush, and a cap on the bytes of each request as
    /// sent (POST: the whole body, envelope and `stm` included) together with
    /// [`max_request_bytes`](Self::max_request_bytes). An event larger than the cap goes
    /// alone and is retried like any other.
    pub fn byte_limit(mut self, bytes: usize) -> Self {
        self.byte_limit = Some(bytes);
        self
    }

    /// The most events one POST carries (default [`DEFAULT_MAX_REQUEST_EVENTS`]).
    pub fn max_request_events(mut self, events: usize) -> Self {
        self.max_request_events = events;
        self
    }

    /// The most bytes one POST body carries as sent, envelope and `stm` included (default
    /// [`DEFAULT_MAX_REQUEST_BYTES`]). An event larger than this goes alone; a collector
    /// answering 413 lowers the cap for the rest of the emitter's life.
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// The time allowed for a whole request (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = RequestTimeout::Total(timeout);
        self
    }

    /// Separate connect and response timeouts.
    pub fn request_timeouts(mut self, connect: Duration, response: Duration) -> Self {
        self.request_timeout = RequestTimeout::Split { connect, response };
        self
    }

    /// Cap of the exponential backoff (default [`DEFAULT_MAX_RETRY_DELAY`]): of each
    /// request's own retries, of the brake's spacing while the collector is unavailable
    /// (so also the longest wait before the emitter notices it is back), and of a
    /// `Retry-After`.
    pub fn max_retry_delay(mut self, delay: Duration) -> Self {
        self.max_retry_delay = delay;
        self
    }

    /// Events buffered at most, queued and in flight (default
    /// [`DEFAULT_BUFFER_CAPACITY`]); ignored when a store is supplied, which has its own.
    pub fn buffer_capacity(mut self, capacity: usize) -> Self {
        self.buffer_capacity = capacity;
        self
    }

    /// Bytes buffered at most: the summed size, as sent, of the events queued and in flight
    /// (default [`DEFAULT_BUFFER_BYTES`]). An event that does not fit is dropped and counted
    /// as `capacity`, as one beyond the event capacity is. Applies with any store.
    pub fn buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes;
        self
    }

    /// Whether `status` is retried, overriding the default (every non-2xx status except
    /// those of [`DEFAULT_NON_RETRYABLE_CODES`] is retried).
    pub fn custom_retry_code(mut self, status: u16, retry: bool) -> Self {
        self.custom_retry_codes.insert(status, retry);
        self
    }

    /// Whether connection errors are retried (default yes).
    pub fn retry_connection_errors(mut self, retry: bool) -> Self {
        self.retry_connection_errors = retry;
        self
    }

    /// Whether timeouts are retried (default yes).
    pub fn retry_timeouts(mut self, retry: bool) -> Self {
        self.retry_timeouts = retry;
        self
    }

    /// The most requests outstanding at once (default [`DEFAULT_MAX_IN_FLIGHT`]): the upper
    /// bound of the adaptive concurrency, which starts at 1. With more than one, delivery
    /// order is not kept; `max_in_flight(1)` sends one request at a time, in order.
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests;
        self
    }

    /// Attempts after which a failing event is dropped as `attempts_exhausted` (default:
    /// unlimited).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Age after which a failing event is dropped as `expired` when its request fails
    /// (default: unlimited).
    pub fn max_event_age(mut self, age: Duration) -> Self {
        self.max_event_age = Some(age);
        self
    }

    /// Messages the emitter's mailbox holds (default the larger of
    /// [`DEFAULT_MAILBOX_CAPACITY`] and the buffer capacity).
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.mailbox_capacity = Some(capacity);
        self
    }

    /// Whether every request of this emitter, POST and GET, carries the `SP-Anonymous: *`
    /// header (default [`DEFAULT_ANONYMOUS`], off): the collector then keeps neither the
    /// request's IP address, nor its cookie, nor a network user id for its events.
    ///
    /// What the events carry themselves is sent as it is: a subject's `ip_address`,
    /// `network_user_id` or `user_id` (the `web` middleware sets the client's IP on every
    /// event, and its network user id when a cookie is named), which an application that
    /// must track anonymously leaves out. The transport sends the header (see
    /// [`Request::anonymous`](crate::transport::Request::anonymous)).
    pub fn anonymous(mut self, anonymous: bool) -> Self {
        self.anonymous = anonymous;
        self
    }

    /// Called with the events of each successful request. Runs on the emitter's arbiter; a
    /// panic is caught, logged and counted, and loses nothing.
    pub fn on_success(
        mut self,
        callback: impl Fn(&[Arc<StampedEvent>]) + Send + Sync + 'static,
    ) -> Self {
        self.on_success = Some(Arc::new(callback));
        self
    }

    /// Called for each failed request, retried or not. Runs on the emitter's arbiter; a
    /// panic is caught, logged and counted, and loses nothing.
    pub fn on_failure(mut self, callback: impl Fn(&Failure<'_>) + Send + Sync + 'static) -> Self {
        self.on_failure = Some(Arc::new(callback));
        self
    }

    /// The event store (default an [`InMemoryStore`] of `buffer_capacity`).
    pub fn event_store(mut self, store: impl EventStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Builds the awc client of the default transport, inside the emitter's arbiter. The
    /// request timeout is still set on every request.
    pub fn client_factory(
        mut self,
        factory: impl Fn() -> awc::Client + Send + Sync + 'static,
    ) -> Self {
        self.client = Some(Arc::new(factory));
        self
    }

    /// Replaces the whole transport (custom protocols, tests that inject failures).
    pub fn transport_factory(
        mut self,
        factory: impl Fn() -> Box<dyn Transport> + Send + Sync + 'static,
    ) -> Self {
        self.transport = Some(Arc::new(factory));
        self
    }

    /// The jitter source of the backoff: each call returns a number in `[0, 1)` seconds.
    pub fn jitter(mut self, jitter: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.jitter = Some(Arc::new(jitter));
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] for an invalid endpoint, a zero batch size, byte limit, request
    /// cap, buffer capacity, in-flight count, mailbox capacity, attempt count, timeout or
    /// retry delay, a POST byte cap smaller than one envelope ([`MIN_REQUEST_BYTES`]), or
    /// a 2xx or non-HTTP status in the custom retry codes.
    pub fn build(self) -> Result<EmitterConfig, BuildError> {
        let endpoint = Endpoint::parse(&self.endpoint, self.protocol, self.port)?;
        let nonzero = |value: usize, name| {
            if value == 0 {
                Err(BuildError::Zero(name))
            } else {
                Ok(value)
            }
        };
        let batch_size = nonzero(
            self.batch_size.unwrap_or(match self.method {
                Method::Post => DEFAULT_POST_BATCH_SIZE,
                Method::Get => DEFAULT_GET_BATCH_SIZE,
            }),
            "batch_size",
        )?;
        let byte_limit = self
            .byte_limit
            .map(|limit| nonzero(limit, "byte_limit"))
            .transpose()?;
        let max_in_flight = nonzero(self.max_in_flight, "max_in_flight")?;
        let max_request_events = nonzero(self.max_request_events, "max_request_events")?;
        let max_request_bytes = nonzero(self.max_request_bytes, "max_request_bytes")?;
        let request_bytes =
            byte_limit.map_or(max_request_bytes, |limit| limit.min(max_request_bytes));
        if self.method == Method::Post && request_bytes < MIN_REQUEST_BYTES {
            return Err(BuildError::RequestCapTooSmall {
                bytes: request_bytes,
                min: MIN_REQUEST_BYTES,
            });
        }
        let buffer_capacity = nonzero(self.buffer_capacity, "buffer_capacity")?;
        let buffer_bytes = nonzero(self.buffer_bytes, "buffer_bytes")? as u64;
        let mailbox_capacity = nonzero(
            self.mailbox_capacity.unwrap_or(
                DEFAULT_MAILBOX_CAPACITY
                    .max(buffer_capacity)
                    .min(MAX_MAILBOX_CAPACITY),
            ),
            "mailbox_capacity",
        )?;
        if mailbox_capacity > MAX_MAILBOX_CAPACITY {
            return Err(BuildError::TooLarge {
                setting: "mailbox_capacity",
                max: MAX_MAILBOX_CAPACITY,
            });
        }
        if self.max_attempts == Some(0) {
            return Err(BuildError::Zero("max_attempts"));
        }
        for (name, duration) in [
            ("request_timeout", self.request_timeout.connect()),
            ("request_timeout", self.request_timeout.request()),
            ("max_retry_delay", self.max_retry_delay),
        ]
        .into_iter()
        .chain(self.max_event_age.map(|age| ("max_event_age", age)))
        {
            if duration.is_zero() {
                return Err(BuildError::Zero(name));
            }
        }
        if let RequestTimeout::Split { response, .. } = self.request_timeout {
            if response.is_zero() {
                return Err(BuildError::Zero("request_timeout"));
            }
        }
        for &status in self.custom_retry_codes.keys() {
            if (200..300).contains(&status) {
                return Err(BuildError::SuccessRetryCode(status));
            }
            if !(100..=599).contains(&status) {
                return Err(BuildError::InvalidStatusCode(status));
            }
        }
        let store = self
            .store
            .unwrap_or_else(|| Box::new(InMemoryStore::new(buffer_capacity)));
        let transport = self.transport.unwrap_or_else(|| {
            let timeout = self.request_timeout;
            let client = self.client.unwrap_or_else(|| {
                Arc::new(move || default_client(timeout.connect(), max_in_flight))
            });
            Arc::new(move || Box::new(AwcTransport::new(client())) as Box<dyn Transport>)
        });
        let url = endpoint.url(self.method);
        // What awc will parse for every request: refuse at build what it would refuse
        // later on every attempt (a non-ASCII path, for one).
        if awc::http::Uri::try_from(url.as_str()).is_err() {
            return Err(BuildError::InvalidEndpoint {
                reason: "not a valid URI (percent-encode characters outside ASCII)",
            });
        }
        let name = self.name.unwrap_or_else(|| match self.method {
            Method::Post => endpoint.base().to_owned(),
            Method::Get => format!("{} (GET)", endpoint.base()),
        });
        Ok(EmitterConfig {
            settings: Arc::new(Settings {
                name,
                endpoint,
                method: self.method,
                url,
                batch_size: batch_size.min(buffer_capacity),
                buffer_bytes,
                byte_limit,
                max_request_events,
                request_bytes,
                request_timeout: self.request_timeout,
                max_retry_delay: self.max_retry_delay,
                retry: RetryPolicy {
                    custom_codes: self.custom_retry_codes,
                    connection_errors: self.retry_connection_errors,
                    timeouts: self.retry_timeouts,
                },
                max_in_flight,
                max_attempts: self.max_attempts,
                max_event_age: self.max_event_age,
                mailbox_capacity,
                anonymous: self.anonymous,
                on_success: self.on_success,
                on_failure: self.on_failure,
                transport,
                jitter: self.jitter.unwrap_or_else(default_jitter),
            }),
            store,
            final_stats: FinalStats::default(),
            owner: None,
        })
    }
}

/// A validated emitter configuration, ready to [`start`](EmitterConfig::start).
pub struct EmitterConfig {
    pub(crate) settings: Arc<Settings>,
    pub(crate) store: Box<dyn EventStore>,
    pub(crate) final_stats: FinalStats,
    /// What the tracker owning the emitter shares with it.
    pub(crate) owner: Option<Owner>,
}

/// What a tracker shares with an emitter it owns.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    /// Where the events of settled requests are freed, off the emitter's thread.
    pub(crate) reclaimer: actix::Recipient<crate::reclaim::Release>,
    /// Events the fan-out could not hand to the emitter (its mailbox full or closed),
    /// counted there once: the emitter reports them as received and dropped (`capacity`).
    pub(crate) refused: Arc<std::sync::atomic::AtomicU64>,
    /// Events the emitter holds (queued and in flight), for the tracker's drop warning.
    pub(crate) held: Arc<std::sync::atomic::AtomicU64>,
    /// Set once the tracker has warned about what its emitters lose: they stop quietly.
    pub(crate) loss_reported: Arc<std::sync::atomic::AtomicBool>,
    /// The tracker's namespace (the emitter's `tracker` label in [`crate::metrics`]).
    pub(crate) namespace: String,
}

impl fmt::Debug for EmitterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmitterConfig")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl EmitterConfig {
    /// Names the emitter `name` (a tracker keeps its emitters' names unique).
    pub(crate) fn rename(&mut self, name: &str) {
        if self.settings.name != name {
            Arc::make_mut(&mut self.settings).name = name.to_owned();
        }
    }

    /// Makes the emitter one of a tracker's (see [`Owner`]).
    pub(crate) fn owned_by(mut self, owner: Owner) -> Self {
        self.owner = Some(owner);
        self
    }

    /// The URL requests go to (without the query of a GET).
    pub fn url(&self) -> &str {
        &self.settings.url
    }

    /// The emitter's name in stats and reports.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The endpoint, `scheme://host[:port][/path]`.
    pub fn endpoint(&self) -> &str {
        self.settings.endpoint.base()
    }

    /// GET or POST.
    pub fn method(&self) -> Method {
        self.settings.method
    }

    /// Where the emitter's last stats appear once it has shut down or stopped (also after a
    /// bare stop of its arbiter or of the system).
    pub fn final_stats(&self) -> FinalStats {
        self.final_stats.clone()
    }

    /// Messages the emitter's mailbox holds.
    pub fn mailbox_capacity(&self) -> usize {
        self.settings.mailbox_capacity
    }

    /// The batch size after defaults and clamping.
    pub fn batch_size(&self) -> usize {
        self.settings.batch_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(custom: &[(u16, bool)]) -> RetryPolicy {
        RetryPolicy {
            custom_codes: custom.iter().copied().collect(),
            connection_errors: true,
            timeouts: false,
        }
    }

    #[test]
    fn default_retry_codes() {
        let policy = policy(&[]);
        for status in [400, 401, 403, 410, 422, 200, 204] {
            assert!(!policy.retries(&FailureReason::Status(status)), "{status}");
        }
        for status in [301, 404, 408, 429, 500, 503] {
            assert!(policy.retries(&FailureReason::Status(status)), "{status}");
        }
        assert!(
            policy.retries(&FailureReason::Transport(TransportError::Connection(
                "refused".into()
            )))
        );
        assert!(!policy.retries(&FailureReason::Transport(TransportError::Timeout)));
    }

    #[test]
    fn custom_retry_codes_override_both_ways() {
        let policy = policy(&[(500, false), (401, true)]);
        assert!(!policy.retries(&FailureReason::Status(500)));
        assert!(policy.retries(&FailureReason::Status(401)));
    }

    #[test]
    fn invalid_settings_are_typed_errors() {
        let build = |builder: EmitterBuilder| builder.build().map(|_| ()).unwrap_err();
        let new = || EmitterBuilder::new("http://127.0.0.1:1");
        assert_eq!(build(new().batch_size(0)), BuildError::Zero("batch_size"));
        assert_eq!(build(new().byte_limit(0)), BuildError::Zero("byte_limit"));
        assert_eq!(
            build(new().buffer_capacity(0)),
            BuildError::Zero("buffer_capacity")
        );
        assert_eq!(
            build(new().buffer_bytes(0)),
            BuildError::Zero("buffer_bytes")
        );
        assert_eq!(
            build(new().max_in_flight(0)),
            BuildError::Zero("max_in_flight")
        );
        assert_eq!(
            build(new().max_attempts(0)),
            BuildError::Zero("max_attempts")
        );
        assert_eq!(
            build(new().request_timeout(Duration::ZERO)),
            BuildError::Zero("request_timeout")
        );
        assert_eq!(
            build(new().request_timeouts(Duration::from_secs(1), Duration::ZERO)),
            BuildError::Zero("request_timeout")
        );
        assert_eq!(
            build(new().max_retry_delay(Duration::ZERO)),
            BuildError::Zero("max_retry_delay")
        );
        assert_eq!(
            build(new().custom_retry_code(204, true)),
            BuildError::SuccessRetryCode(204)
        );
        assert_eq!(
            build(new().custom_retry_code(700, true)),
            BuildError::InvalidStatusCode(700)
        );
    }

    #[test]
    fn batch_size_defaults_by_method_and_is_clamped() {
        let post = EmitterBuilder::new("h").build().unwrap();
        assert_eq!(post.batch_size(), DEFAULT_POST_BATCH_SIZE);
        let get = EmitterBuilder::new("h")
            .method(Method::Get)
            .build()
            .unwrap();
        assert_eq!(get.batch_size(), DEFAULT_GET_BATCH_SIZE);
        let clamped = EmitterBuilder::new("h")
            .batch_size(50)
            .buffer_capacity(20)
            .build()
            .unwrap();
        assert_eq!(clamped.batch_size(), 20);
    }
}
