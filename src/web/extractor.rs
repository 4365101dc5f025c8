//! The request-scoped tracker handlers extract: [`RequestTracker`].

use std::future::{ready, Ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{web, FromRequest, HttpMessage as _, HttpRequest, HttpResponse, ResponseError};
use futures::channel::mpsc::UnboundedSender;
use uuid::Uuid;

use super::held::{hold, HeldEntry, HoldError};
use super::middleware::RequestScope;
use super::outcome::RequestOutcome;
use super::request::SubjectRules;
use crate::error::{EventError, TrackError};
use crate::event::Event;
use crate::messages::Track;
use crate::subject::Subject;
use crate::tracker::Tracker;

/// A tracker bound to one request: what it tracks carries the request's subject (`ip`,
/// `ua`, `lang`, and `uid` / `tnuid` when the middleware sets them), merged over the
/// tracker's subject and under the event's own.
///
/// Extract it in a handler. It finds its tracker
/// 1. in the request's extensions, where [`SnowplowTracking`](super::SnowplowTracking)
///    puts it: the subject then follows the middleware's settings (trusted proxies, user
///    ids);
/// 2. otherwise in the app data, as `web::Data<Tracker>` (`.app_data(web::Data::new(tracker))`)
///    or a plain `Tracker` (`.app_data(tracker)`): the subject then has the peer's address
///    (no proxy is trusted), the user agent and the language, and no user ids.
///
/// With neither, extraction fails with [`RequestTrackerError`] (a plain 500 response, the
/// explanation logged); extract `Option<RequestTracker>` where tracking is optional.
///
/// Tracking never waits on the network: the event is stamped and handed over, or
/// [held](Self::track_held) until the request's response is known. It is `Send`: it may go
/// to another thread with the handler's work.
///
/// # Examples
///
/// ```
/// use actix_web::HttpResponse;
/// use snowplow_actix::web::RequestTracker;
/// use snowplow_actix::Structured;
///
/// async fn add_to_basket(tracking: RequestTracker) -> HttpResponse {
///     match Structured::new("shop", "add-to-basket") {
///         Ok(event) => {
///             // A tracking error never fails the request.
///             let _ = tracking.track(event.label("red shoes"));
///         }
///         Err(error) => tracing::warn!(%error, "invalid event"),
///     }
///     HttpResponse::Ok().finish()
/// }
/// # let _ = actix_web::web::post().to(add_to_basket);
/// ```
///
/// Without the extractor, a handler holding the [`Tracker`] (e.g. as `web::Data<Tracker>`)
/// can send [`Track`] messages itself, to the tracker's fan-out or to any actor that handles
/// them; [`stamp`](Self::stamp) does the same with the request's subject:
///
/// ```
/// use actix_web::{web, HttpResponse};
/// use snowplow_actix::{PageView, Tracker};
///
/// async fn handler(tracker: web::Data<Tracker>) -> HttpResponse {
///     if let Ok(view) = PageView::new("https://shop.example/basket") {
///         let fanout = tracker.recipient();
///         for track in tracker.stamp(view).unwrap_or_default() {
///             fanout.do_send(track);
///         }
///     }
///     HttpResponse::Ok().finish()
/// }
/// # let _ = actix_web::web::get().to(handler);
/// ```
#[derive(Debug, Clone)]
pub struct RequestTracker {
    tracker: Tracker,
    subject: Arc<Subject>,
    /// Where held events go, when the middleware serves the request.
    held: Option<UnboundedSender<HeldEntry>>,
}

/// No tracker for the request: neither the middleware nor app data provides one.
///
/// Its message is for the app's developers. As a response it is a plain
/// `500 Internal Server Error` with an empty body, and the message is logged at ERROR with
/// the request's method and route pattern (never its path or query, which may hold personal
/// data) when the response is made: once per failed request, and not at all when the
/// handler extracts `Option<RequestTracker>` or handles the error itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no snowplow tracker for this request: wrap the app in SnowplowTracking or add a \
     web::Data<Tracker> to its app data"
)]
pub struct RequestTrackerError {
    method: Method,
    route: Option<String>,
}

impl RequestTrackerError {
    fn for_request(request: &HttpRequest) -> Self {
        Self {
            method: request.method().clone(),
            route: request.match_pattern(),
        }
    }
}

/// A configuration mistake of the app: the explanation goes to the log, not to the client.
impl ResponseError for RequestTrackerError {
    fn error_response(&self) -> HttpResponse {
        tracing::error!(
            method = %self.method,
            route = self.route.as_deref(),
            "{self}"
        );
        HttpResponse::InternalServerError().finish()
    }
}

/// An event a handler could not build is a bug of the app (`?` on a constructor in a
/// handler): `500 Internal Server Error` with an empty body, and the reason in the log
/// (ERROR, without the rejected text; the whole message at DEBUG).
///
/// ```
/// use actix_web::HttpResponse;
/// use snowplow_actix::web::RequestTracker;
/// use snowplow_actix::{EventError, Structured};
///
/// async fn buy(tracking: RequestTracker) -> Result<HttpResponse, EventError> {
///     let _ = tracking.track(Structured::new("shop", "buy")?.value(19.99));
///     Ok(HttpResponse::Ok().finish())
/// }
/// ```
impl ResponseError for EventError {
    fn error_response(&self) -> HttpResponse {
        tracing::error!(error = %self.without_input(), "a handler could not build an event: answering 500");
        tracing::debug!(error = %self, "the event error in full");
        HttpResponse::InternalServerError().finish()
    }
}

impl RequestTracker {
    /// A tracker that tracks with `subject` (the extractor builds it from the request).
    pub fn new(tracker: Tracker, subject: Subject) -> Self {
        Self {
            tracker,
            subject: Arc::new(subject),
            held: None,
        }
    }

    /// The request's tracker and subject, from the middleware's extensions or the app data.
    ///
    /// # Errors
    ///
    /// [`RequestTrackerError`] when there is no tracker.
    pub fn for_request(request: &HttpRequest) -> Result<Self, RequestTrackerError> {
        let scope = request.extensions().get::<Rc<RequestScope>>().cloned();
        if let Some(scope) = scope {
            return Ok(Self {
                tracker: scope.tracker.clone(),
                subject: scope.subject(request),
                held: Some(scope.held_sender(request)),
            });
        }
        let tracker = request
            .app_data::<web::Data<Tracker>>()
            .map(|data| Tracker::clone(data))
            .or_else(|| request.app_data::<Tracker>().cloned())
            .ok_or_else(|| RequestTrackerError::for_request(request))?;
        Ok(Self::new(tracker, SubjectRules::default().subject(request)))
    }

    /// Tracks `event` with the request's subject and returns its id; see
    /// [`Tracker::track_with_subject`].
    ///
    /// # Errors
    ///
    /// As [`Tracker::track`].
    pub fn track<E: Event>(&self, event: E) -> Result<Uuid, TrackError> {
        self.tracker.track_with_subject(event, &self.subject)
    }

    /// Holds `event` until the request's response is known, then tracks it with the
    /// request's subject and a context entity of the outcome
    /// ([`REQUEST_OUTCOME_SCHEMA`](super::REQUEST_OUTCOME_SCHEMA): the response's `status`,
    /// the `latencyMs`, the `requestId` from the request's
    /// [request-id header](super::SnowplowTracking::request_id_header) or generated, and
    /// the `traceId` of its W3C `traceparent` header when it has a valid one) — unless the
    /// middleware's [held policy](super::SnowplowTracking::held_policy) drops it, counted as
    /// discarded by policy
    /// ([`DiscardCounts::policy`](crate::tracker::DiscardCounts::policy)).
    ///
    /// For events whose meaning depends on the response: a checkout that counts only if the
    /// order was stored. The held events of a request are tracked in the order they were
    /// held, before the middleware's own event, and stamped then (their `dtm` is the
    /// response's time). A request that ends without a response (the client went away
    /// before it was ready) drops its held events, counted as discarded by policy. Host the
    /// entity's schema in your Iglu registry first ([`IGLU_SCHEMAS`](super::IGLU_SCHEMAS)).
    ///
    /// # Errors
    ///
    /// [`HoldError::NoMiddleware`] when the request is not served through
    /// [`SnowplowTracking`](super::SnowplowTracking), [`HoldError::Settled`] once its
    /// response is known (the tracker was kept past the handler), and
    /// [`HoldError::InvalidEvent`] for an event with an invalid value; the event is then
    /// not tracked.
    ///
    /// # Examples
    ///
    /// ```
    /// use actix_web::HttpResponse;
    /// use snowplow_actix::web::RequestTracker;
    /// use snowplow_actix::Structured;
    ///
    /// async fn checkout(tracking: RequestTracker) -> HttpResponse {
    ///     if let Ok(event) = Structured::new("shop", "checkout") {
    ///         // Sent once the response is known: with its status, if the policy keeps it.
    ///         let _ = tracking.track_held(event.value(59.90));
    ///     }
    ///     HttpResponse::Ok().finish()
    /// }
    /// # let _ = actix_web::web::post().to(checkout);
    /// ```
    pub fn track_held<E: Event + Send + 'static>(&self, event: E) -> Result<(), HoldError> {
        hold(self.held.as_ref(), &self.subject, event, None)
    }

    /// [`track_held`](Self::track_held) with the event's own condition instead of the
    /// middleware's held policy: it is sent when `keep` returns `true` for the outcome, and
    /// dropped otherwise, counted as discarded by policy (a panicking `keep` drops it too).
    ///
    /// # Errors
    ///
    /// As [`track_held`](Self::track_held).
    ///
    /// # Examples
    ///
    /// ```
    /// use actix_web::HttpResponse;
    /// use snowplow_actix::web::RequestTracker;
    /// use snowplow_actix::Structured;
    ///
    /// async fn checkout(tracking: RequestTracker) -> HttpResponse {
    ///     if let Ok(event) = Structured::new("shop", "checkout") {
    ///         // Counts only if the order was stored: a 2xx response.
    ///         let _ = tracking.track_held_if(event, |outcome| outcome.status().is_success());
    ///     }
    ///     HttpResponse::Created().finish()
    /// }
    /// # let _ = actix_web::web::post().to(checkout);
    /// ```
    pub fn track_held_if<E, F>(&self, event: E, keep: F) -> Result<(), HoldError>
    where
        E: Event + Send + 'static,
        F: FnOnce(&RequestOutcome<'_>) -> bool + Send + 'static,
    {
        hold(
            self.held.as_ref(),
            &self.subject,
            event,
            Some(Box::new(keep)),
        )
    }

    /// Stamps `event` with the request's subject into [`Track`] messages, for code that
    /// sends them itself (to [`Tracker::recipient`] or an emitter); they are not counted as
    /// `tracked`.
    ///
    /// # Errors
    ///
    /// As [`Tracker::stamp`].
    pub fn stamp<E: Event>(&self, event: E) -> Result<Vec<Track>, EventError> {
        self.tracker.stamp_with(event, Some(&self.subject))
    }

    /// The request's subject.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The tracker behind it.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }
}

impl FromRequest for RequestTracker {
    type Error = RequestTrackerError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::for_request(request))
    }
}
