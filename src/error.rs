//! Typed errors: one type per operation.

/// An event or one of its parts was built from invalid input.
///
/// Returned at once by the event constructors (for their required fields) and by
/// [`SelfDescribingJson::new`](crate::SelfDescribingJson::new). An optional setter never
/// fails in the middle of a chain: the first invalid value it is given is kept and
/// reported at the end, by [`Tracker::track`](crate::Tracker::track)
/// ([`TrackError::InvalidEvent`]) or [`TrackerSettings::stamp`](crate::wire::TrackerSettings::stamp),
/// and nothing is tracked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// A required text field was empty.
    #[error("{field} must not be empty")]
    EmptyField {
        /// The name of the field, as the constructor calls it.
        field: &'static str,
    },
    /// A platform code outside `pc tv mob cnsl iot web srv app`.
    #[error("invalid platform `{0}`: expected one of pc, tv, mob, cnsl, iot, web, srv, app")]
    InvalidPlatform(String),
    /// A screen resolution or viewport with a zero width or height.
    #[error("{field} width and height must be greater than 0")]
    ZeroDimension {
        /// `screen_resolution` or `viewport`.
        field: &'static str,
    },
    /// A form element node name outside `INPUT`, `TEXTAREA`, `SELECT`.
    #[error("invalid form element node name `{0}`: expected INPUT, TEXTAREA or SELECT")]
    InvalidNodeName(String),
    /// A form element type outside the HTML input types.
    #[error("invalid form element type `{0}`")]
    InvalidInputType(String),
    /// Self-describing data that is not a JSON object.
    #[error("the data of `{schema}` must be a JSON object")]
    NotAnObject {
        /// The schema URI of the offending self-describing JSON.
        schema: String,
    },
    /// A schema URI that is not `iglu:vendor/name/format/version`.
    #[error("invalid schema URI `{0}`: expected iglu:vendor/name/format/M-R-A")]
    InvalidSchemaUri(String),
    /// A field that must hold a UUID does not.
    #[error("{field} must be a UUID, got `{value}`")]
    InvalidUuid {
        /// The name of the field.
        field: &'static str,
        /// The rejected text.
        value: String,
    },
    /// A number that is NaN or infinite.
    #[error("{field} must be a finite number")]
    NonFiniteNumber {
        /// The name of the field.
        field: &'static str,
    },
    /// A text longer than the event's schema allows.
    #[error("{field} must be at most {max} characters long")]
    TooLong {
        /// The name of the field.
        field: &'static str,
        /// The most characters the schema allows.
        max: usize,
    },
    /// A count above what the event's schema allows.
    #[error("{field} must be at most {max}")]
    OutOfRange {
        /// The name of the field.
        field: &'static str,
        /// The largest value the schema allows.
        max: u64,
    },
}

impl EventError {
    /// What is wrong, without the rejected text (which may come from a client): for log
    /// lines at INFO and above.
    pub(crate) fn without_input(&self) -> String {
        match self {
            Self::InvalidPlatform(_) => "invalid platform".into(),
            Self::InvalidNodeName(_) => "invalid form element node name".into(),
            Self::InvalidInputType(_) => "invalid form element type".into(),
            Self::NotAnObject { .. } => "self-describing data that is not a JSON object".into(),
            Self::InvalidSchemaUri(_) => "invalid schema URI".into(),
            Self::InvalidUuid { field, .. } => format!("{field} must be a UUID"),
            other => other.to_string(),
        }
    }
}

/// A tracker or emitter could not be built from its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The tracker namespace was empty.
    #[error("the tracker namespace must not be empty")]
    EmptyNamespace,
    /// The tracker's subject was given an invalid value (see [`Subject::error`](crate::Subject::error)).
    #[error("invalid tracker subject: {0}")]
    InvalidSubject(EventError),
    /// The collector endpoint was empty.
    #[error("the collector endpoint must not be empty")]
    EmptyEndpoint,
    /// The endpoint contains whitespace or a control character (at this byte offset). No
    /// endpoint error repeats the endpoint: it may carry secrets, and errors end up in logs.
    #[error("the collector endpoint contains whitespace or a control character at byte {at}")]
    EndpointWhitespace {
        /// The byte offset of the first one.
        at: usize,
    },
    /// The endpoint names a scheme other than `http` or `https` (the scheme given).
    #[error("the collector endpoint's scheme `{0}` is not supported: use http or https")]
    UnsupportedScheme(String),
    /// The endpoint cannot be read as `[scheme://]host[:port][/path]`.
    #[error("the collector endpoint is invalid: {reason}")]
    InvalidEndpoint {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The endpoint's path already ends in a collector path
    /// ([`POST_PATH`](crate::wire::POST_PATH) or [`GET_PATH`](crate::wire::GET_PATH)): the emitter adds the path for its method, so the endpoint
    /// is the collector's base URL. The message does not repeat the endpoint, which may
    /// carry a secret.
    #[error(
        "the collector endpoint already ends in the collector path `{path}`: give the \
         collector's base URL; the emitter adds the path for its method"
    )]
    EndpointHasCollectorPath {
        /// The collector path found at the end of the endpoint, as the emitter writes it.
        path: &'static str,
    },
    /// A POST request byte cap (`max_request_bytes`, or `byte_limit` when lower) too small
    /// to hold the envelope of one event.
    #[error("a request byte cap of {bytes} cannot hold one event: it must be at least {min}")]
    RequestCapTooSmall {
        /// The cap given.
        bytes: usize,
        /// The smallest usable cap.
        min: usize,
    },
    /// A setting above the most it can be.
    #[error("{setting} must be at most {max}")]
    TooLarge {
        /// The setting.
        setting: &'static str,
        /// Its largest value.
        max: usize,
    },
    /// A setting that must be positive was zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// A 2xx status was listed in `custom_retry_codes`: success is never retried.
    #[error("status {0} is a success and cannot be a retry code")]
    SuccessRetryCode(u16),
    /// A status outside 100..=599 was listed in `custom_retry_codes`.
    #[error("status {0} is not an HTTP status code")]
    InvalidStatusCode(u16),
    /// A tracker was built without any emitter: its events would go nowhere.
    #[error("a tracker needs at least one emitter")]
    NoEmitter,
    /// A thread for the tracker's actors could not be started.
    #[error("cannot start a thread for the tracker's actors: {0}")]
    Spawn(String),
}

impl BuildError {
    pub(crate) fn spawn(error: std::io::Error) -> Self {
        Self::Spawn(error.to_string())
    }
}

/// An event could not be tracked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrackError {
    /// The tracker was shut down.
    #[error("the tracker is shut down")]
    ShutDown,
    /// The fan-out cannot keep up: its queue is full. The event was dropped and counted
    /// (`refused` in the tracker's stats).
    #[error("the tracker's queue is full: the event was dropped")]
    QueueFull,
    /// A setter of the event (or of its subject) was given an invalid value: nothing was
    /// tracked. Counted (`invalid` in the tracker's stats).
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] EventError),
}

/// A flush could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The tracker or emitter was shut down.
    #[error("the tracker is shut down")]
    ShutDown,
    /// The actors did not answer (their arbiter or the system stopped).
    #[error("the emitters did not answer")]
    Unavailable,
}

/// The counters could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// The actors are gone without leaving a shutdown's figures (their arbiter or the
    /// system stopped).
    #[error("the emitters did not answer")]
    Unavailable,
}

/// A shutdown could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The tracker was already shut down.
    #[error("the tracker is already shut down")]
    AlreadyShutDown,
    /// The actors did not answer (their arbiter or the system stopped).
    #[error("the emitters did not answer")]
    Unavailable,
}

/// An emitter could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddEmitterError {
    /// Its settings are invalid.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The tracker was shut down.
    #[error("the tracker is shut down")]
    ShutDown,
}

/// Why a request to the collector failed before an HTTP status was received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Connecting failed, or the connection broke (refused, reset, closed mid-answer, an
    /// answer that is not HTTP, TLS failure).
    #[error("connection error: {0}")]
    Connection(String),
    /// No answer within the request timeout.
    #[error("timeout")]
    Timeout,
    /// The transport cannot go on (its client is broken): the emitter returns the request's
    /// events to its queue, stops, and is restarted by its supervisor with a new transport.
    #[error("fatal transport error: {0}")]
    Fatal(String),
    /// The request could not be built (awc refuses a URL over 64 KiB, for one): it never
    /// reached the collector and never will, so it is not retried; its events are dropped
    /// as `oversize`.
    #[error("request could not be built: {0}")]
    Invalid(String),
}

/// An event store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store's backing storage failed (I/O, a locked or corrupt file).
    #[error("event store failure: {0}")]
    Backend(String),
}

/// The first invalid value a builder was given, kept for the end of its chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FirstError(Option<EventError>);

impl FirstError {
    /// The value of `checked`, or `None` after keeping its error (unless one is kept
    /// already: the first wins).
    pub(crate) fn keep<T>(&mut self, checked: Result<T, EventError>) -> Option<T> {
        match checked {
            Ok(value) => Some(value),
            Err(error) => {
                self.also(Some(error));
                None
            }
        }
    }

    /// Keeps `error` unless one is kept already.
    pub(crate) fn also(&mut self, error: Option<EventError>) {
        if self.0.is_none() {
            self.0 = error;
        }
    }

    /// The kept error.
    pub(crate) fn get(&self) -> Option<&EventError> {
        self.0.as_ref()
    }

    /// `Err` with the kept error, if any.
    pub(crate) fn check(&self) -> Result<(), EventError> {
        self.0.clone().map_or(Ok(()), Err)
    }
}

/// The text of a panic's payload, when it has one (for the log line of a caught panic).
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}
