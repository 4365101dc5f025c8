//! The tracking middleware: [`SnowplowTracking`] and the service it builds.

use std::cell::OnceCell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::HeaderName;
use actix_web::http::StatusCode;
use actix_web::{Error, HttpMessage as _, HttpRequest};
use futures::channel::mpsc::UnboundedSender;
use futures::future::{ready, LocalBoxFuture, Ready};
use uuid::Uuid;

use super::decision::{default_decision, Decision};
use super::held::{HeldEntry, HeldQueue};
use super::iglu::{
    latency_ms, request_outcome_data, RequestIds, DEFAULT_REQUEST_ID_HEADER, REQUEST_OUTCOME_SCHEMA,
};
use super::outcome::RequestOutcome;
use super::privacy::{ClientIp, UrlRedaction};
use super::proxy::{IpRange, ProxyHeader, PublicOrigin};
use super::request::SubjectRules;
use crate::event::{Event, PageView};
use crate::self_describing::SelfDescribingJson;
use crate::subject::Subject;
use crate::sync::Burst;
use crate::tracker::{DiscardReason, Tracker};

type DecideFn = Arc<dyn Fn(&RequestOutcome<'_>) -> Decision + Send + Sync>;
type PolicyFn = Arc<dyn Fn(&RequestOutcome<'_>) -> bool + Send + Sync>;
type DrawFn = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The middleware's settings, shared by every worker and request.
#[derive(Clone)]
pub(super) struct Config {
    pub(super) subject: SubjectRules,
    excluded_paths: Vec<String>,
    excluded_prefixes: Vec<String>,
    excluded_statuses: Vec<StatusCode>,
    decide: Option<DecideFn>,
    held_policy: Option<PolicyFn>,
    draw: Option<DrawFn>,
    request_id_header: HeaderName,
    /// Shared by every clone: discards are logged once per burst across workers.
    discards: Arc<Discards>,
}

/// The bursts of events discarded on purpose, one per reason.
#[derive(Debug, Default)]
struct Discards {
    sampling: Burst,
    policy: Burst,
}

impl Config {
    fn is_excluded(&self, path: &str, status: StatusCode) -> bool {
        self.excluded_paths.iter().any(|excluded| excluded == path)
            || self
                .excluded_prefixes
                .iter()
                .any(|prefix| path.starts_with(prefix.as_str()))
            || self.excluded_statuses.contains(&status)
    }

    fn decide(&self, outcome: &RequestOutcome<'_>) -> Decision {
        let Some(decide) = &self.decide else {
            return default_decision(outcome);
        };
        catch_unwind(AssertUnwindSafe(|| decide(outcome))).unwrap_or_else(|_| {
            // The route pattern, never the path: it may carry ids or personal data.
            tracing::warn!(
                method = %outcome.method(),
                route = outcome.route().unwrap_or("(no route)"),
                "snowplow: the decision function panicked; nothing tracked for this request"
            );
            Decision::Skip
        })
    }

    /// Whether the middleware's held policy sends the held events of `outcome` (all of
    /// them without a policy; none when it panics).
    fn keeps_held(&self, outcome: &RequestOutcome<'_>) -> bool {
        let Some(policy) = &self.held_policy else {
            return true;
        };
        catch_unwind(AssertUnwindSafe(|| policy(outcome))).unwrap_or_else(|_| {
            held_condition_panicked(outcome);
            false
        })
    }

    /// A number in `[0, 1)` from the random source (0, keeping the event, when it panics).
    fn draw(&self) -> f64 {
        let Some(draw) = &self.draw else {
            return default_draw();
        };
        catch_unwind(AssertUnwindSafe(|| draw())).unwrap_or_else(|_| {
            tracing::warn!("snowplow: the sampling source panicked; the event is kept");
            0.0
        })
    }
}

/// A number in `[0, 1)` from the random bits of a version 4 UUID (the thread's generator).
fn default_draw() -> f64 {
    let bits = Uuid::new_v4().as_u128() & ((1 << 53) - 1);
    bits as f64 / (1u64 << 53) as f64
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("subject", &self.subject)
            .field("excluded_paths", &self.excluded_paths)
            .field("excluded_prefixes", &self.excluded_prefixes)
            .field("excluded_statuses", &self.excluded_statuses)
            .field("decide", &self.decide.as_ref().map(|_| "<fn>"))
            .field("held_policy", &self.held_policy.as_ref().map(|_| "<fn>"))
            .field("draw", &self.draw.as_ref().map(|_| "<fn>"))
            .field("request_id_header", &self.request_id_header)
            .finish()
    }
}

/// The tracking middleware: wrap an `App` (or a scope) in it to track page views (or API
/// requests) with each request's subject, and to give handlers a
/// [`RequestTracker`](super::RequestTracker).
///
/// Cheap to clone and `Send`: build it once and clone it into the `HttpServer` factory.
///
/// For each request it
/// 1. puts the tracker and these settings in the request's extensions, for the
///    [`RequestTracker`](super::RequestTracker) extractor;
/// 2. calls the service, and once the response head is ready (or the service failed)
///    makes the request's [`RequestOutcome`]: its status, response headers, latency, route
///    pattern and error;
/// 3. sends the events the handler [held](super::RequestTracker::track_held) for the
///    outcome, with its context entity, or drops them by the [held
///    policy](Self::held_policy);
/// 4. unless the path or the status is excluded, asks the decision function (default
///    [`default_decision`]) what to track, and tracks it with the request's subject.
///
/// Tracking only stamps the event and hands it over ([`Tracker::track_with_subject`]): the
/// response never waits for the collector. Tracking never changes the response: a tracking
/// error (an invalid event, a full queue, a shut-down tracker) is logged at `debug` and
/// ignored, and a panicking decision, policy, sampling, redaction or user-id function is
/// caught, logged and tracks nothing (a panicking sampling source keeps the event, a
/// panicking redaction sends the URL without its query).
///
/// # Deciding on the outcome
///
/// The decision function ([`decide`](Self::decide)) sees the [`RequestOutcome`]; ready-made
/// ones are [`default_decision`] (page views of successful `GET`s),
/// [`html_page_view`](super::html_page_view) (the same, for HTML responses only) and
/// [`api_request`](super::api_request) (one self-describing event per request, with its
/// method, route pattern, status and latency; its schema ships with the crate, see
/// [`IGLU_SCHEMAS`](super::IGLU_SCHEMAS)). Any decision can be
/// [sampled](Decision::sampled); what sampling leaves out is counted in
/// [`TrackerStats::discarded`](crate::TrackerStats::discarded). Paths, prefixes and
/// statuses can be excluded before the decision ([`exclude_path`](Self::exclude_path),
/// [`exclude_prefix`](Self::exclude_prefix), [`exclude_status`](Self::exclude_status)).
///
/// # Privacy
///
/// - **Client IP**: sent whole by default ([`DEFAULT_CLIENT_IP`](super::DEFAULT_CLIENT_IP));
///   [`client_ip`](Self::client_ip) truncates it (IPv4 /24, IPv6 /48) or leaves it out.
/// - **Page URL and referrer**: their query keeps only attribution parameters (`utm_*`,
///   `gclid`, `fbclid`, …) by default, so `?email=bob@example.com` never reaches the
///   collector; [`url_redaction`](Self::url_redaction) keeps more parameters, drops the
///   query, sends it raw, or rewrites URLs with a function ([`UrlRedaction`]).
///
/// # The request's subject
///
/// | field   | from                                                                  |
/// |---------|-----------------------------------------------------------------------|
/// | `ip`    | the peer address; from a trusted proxy, its [forwarding header](Self::proxy_header); as much of it as [`client_ip`](Self::client_ip) says |
/// | `ua`    | `User-Agent`                                                          |
/// | `lang`  | the first tag of `Accept-Language`                                    |
/// | `uid`   | the [`user_id`](Self::user_id) function, if set                       |
/// | `tnuid` | the cookie named by [`network_user_id_cookie`](Self::network_user_id_cookie), if set |
///
/// When the service fails with an `Err` (see [`RequestOutcome`]) the request is gone: the
/// decision's events carry the request's subject only if a handler's
/// [`RequestTracker`](super::RequestTracker) built it, and a [`Decision::PageView`] tracks
/// nothing (the ready-made decisions then track no page view).
///
/// # Trusted proxies
///
/// Forwarding headers are read only when the peer is a [trusted proxy](Self::trusted_proxy)
/// (anyone else can send them), and only the one header the proxies write
/// ([`proxy_header`](Self::proxy_header)): `X-Forwarded-For` with `X-Forwarded-Host` and
/// `X-Forwarded-Proto` by default, or `Forwarded` (RFC 7239). The other one is ignored
/// entirely: proxies that append `X-Forwarded-For` pass a client's own `Forwarded` through.
///
/// Client IP: when the peer is not a trusted proxy, it is the client. When it is, the
/// header's entries are read from the right (the rightmost is the one the peer appended;
/// several lines of the header make one list, the last line last), skipping trusted
/// proxies: the first address that is not one is the client. An entry that is not an
/// address (`unknown`, an obfuscated name, a `Forwarded` element without `for=`, one over
/// 512 bytes) ends the walk at the hop to its right, the peer if it is the rightmost. If
/// every entry is a trusted proxy, the leftmost; at most
/// [`MAX_PROXY_HOPS`](super::MAX_PROXY_HOPS) (16) entries are read, so past them the
/// leftmost of those read. Nothing further left is ever read, whatever the header's length.
///
/// The page view's `url` is `scheme://host/path?query`, its `refr` the `Referer` header,
/// both [redacted](Self::url_redaction). The scheme and the host each come from the first
/// of:
/// 1. from a trusted proxy, the rightmost `X-Forwarded-Proto` and `X-Forwarded-Host`
///    values (or the `proto=` and `host=` of the rightmost `Forwarded` element, with
///    [`ProxyHeader::Forwarded`]), that is the values the peer wrote, never a client's
///    further left;
/// 2. the [public origin](Self::public_origin), when set;
/// 3. the request: its URI or the server's TLS for the scheme, its `Host` header for the
///    host.
///
/// A forwarded or requested host is used only if it is a name, an IPv4 address or a
/// bracketed IPv6 address with an optional port, at most 255 bytes (no spaces, user info,
/// `/`, `?` or `#`), and a forwarded scheme only if it is `http` or `https` (any case);
/// otherwise the next source counts. Your proxy must set or clear the
/// `X-Forwarded-Host` and `X-Forwarded-Proto` it forwards: one that passes a client's
/// through (nginx without `proxy_set_header X-Forwarded-Host …`, a load balancer that does
/// not write it, such as AWS ALB for `X-Forwarded-Host`) makes the client's value the
/// rightmost one, and it then wins over the public origin too.
///
/// # Examples
///
/// ```no_run
/// use actix_web::{http::StatusCode, web, App, HttpResponse, HttpServer};
/// use snowplow_actix::web::{
///     api_request, default_decision, ClientIp, Decision, IpRange, SampleRate, SnowplowTracking,
///     UrlRedaction,
/// };
/// use snowplow_actix::{EmitterBuilder, Tracker};
///
/// # #[actix_rt::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tracker = Tracker::builder("web")
///     .emitter(EmitterBuilder::new("https://collector.example.com"))
///     .build()?;
/// let one_in_ten = SampleRate::new(0.1)?;
/// let tracking = SnowplowTracking::new(tracker.clone())
///     .trusted_proxy("10.0.0.0/8".parse::<IpRange>()?)
///     .exclude_path("/health")
///     .exclude_prefix("/static/")
///     .exclude_status(StatusCode::NOT_FOUND)
///     .client_ip(ClientIp::Truncated)
///     .url_redaction(UrlRedaction::default().keep_param("q"))
///     .user_id(|request| {
///         let user = request.headers().get("x-user-id")?;
///         user.to_str().ok().map(str::to_owned)
///     })
///     .network_user_id_cookie("sp")
///     .decide(move |outcome| {
///         if outcome.path().starts_with("/api/") {
///             // Every API call, a tenth of the successful ones.
///             let event = api_request(outcome);
///             if outcome.status().is_success() { event.sampled(one_in_ten) } else { event }
///         } else {
///             default_decision(outcome)
///         }
///     });
/// HttpServer::new(move || {
///     App::new()
///         .wrap(tracking.clone())
///         .route("/", web::get().to(HttpResponse::Ok))
/// })
/// .bind(("127.0.0.1", 8080))?
/// .run()
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SnowplowTracking {
    tracker: Tracker,
    config: Arc<Config>,
}

impl fmt::Debug for SnowplowTracking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnowplowTracking")
            .field("tracker", &self.tracker)
            .field("config", &self.config)
            .finish()
    }
}

impl SnowplowTracking {
    /// Tracks with `tracker`: page views of successful `GET`s, no excluded path or status,
    /// no trusted proxy, no user ids, the whole client IP, URLs with their attribution
    /// parameters only, and every held event sent.
    pub fn new(tracker: Tracker) -> Self {
        Self {
            tracker,
            config: Arc::new(Config {
                subject: SubjectRules::default(),
                excluded_paths: Vec::new(),
                excluded_prefixes: Vec::new(),
                excluded_statuses: Vec::new(),
                decide: None,
                held_policy: None,
                draw: None,
                request_id_header: HeaderName::from_static(DEFAULT_REQUEST_ID_HEADER),
                discards: Arc::default(),
            }),
        }
    }

    fn config(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// The tracker events go to.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Trusts the proxies in `range` (one address, or a CIDR range): their forwarding
    /// header ([`proxy_header`](Self::proxy_header)) gives the client IP and the page URL's
    /// scheme and host. No proxy is trusted by default.
    pub fn trusted_proxy(self, range: impl Into<IpRange>) -> Self {
        let range = range.into();
        self.config(|config| config.subject.proxies.trusted.push(range))
    }

    /// Trusts every proxy in `ranges`; see [`trusted_proxy`](Self::trusted_proxy).
    pub fn trusted_proxies<R: Into<IpRange>>(self, ranges: impl IntoIterator<Item = R>) -> Self {
        let ranges: Vec<IpRange> = ranges.into_iter().map(Into::into).collect();
        self.config(|config| config.subject.proxies.trusted.extend(ranges))
    }

    /// The forwarding header the trusted proxies write (default
    /// [`ProxyHeader::XForwardedFor`]); the other one is ignored entirely. See
    /// [Trusted proxies](Self#trusted-proxies).
    ///
    /// # Examples
    ///
    /// ```
    /// use snowplow_actix::web::{IpRange, ProxyHeader, PublicOrigin, SnowplowTracking};
    /// use snowplow_actix::Tracker;
    ///
    /// // Behind HAProxy with `option forwarded`.
    /// fn tracking(tracker: Tracker) -> Result<SnowplowTracking, Box<dyn std::error::Error>> {
    ///     Ok(SnowplowTracking::new(tracker)
    ///         .trusted_proxy("10.0.0.0/8".parse::<IpRange>()?)
    ///         .proxy_header(ProxyHeader::Forwarded)
    ///         .public_origin("https://shop.example".parse::<PublicOrigin>()?))
    /// }
    /// ```
    pub fn proxy_header(self, header: ProxyHeader) -> Self {
        self.config(|config| config.subject.proxies.header = header)
    }

    /// The scheme and host of page URLs when no trusted proxy forwards them: before the
    /// request's own `Host` header and connection. Parse it with
    /// [`PublicOrigin::from_str`](std::str::FromStr); see
    /// [`proxy_header`](Self::proxy_header) for an example. None by default.
    pub fn public_origin(self, origin: PublicOrigin) -> Self {
        self.config(|config| config.subject.public_origin = Some(origin))
    }

    /// How much of the client IP events carry (`ip`): all of it by default
    /// ([`DEFAULT_CLIENT_IP`](super::DEFAULT_CLIENT_IP)), its network part
    /// ([`ClientIp::Truncated`]: IPv4 /24, IPv6 /48) or none ([`ClientIp::Omitted`]). The
    /// trusted-proxy walk still uses the whole addresses. It applies to what the middleware
    /// and the request's [`RequestTracker`](super::RequestTracker) track.
    ///
    /// # Examples
    ///
    /// ```
    /// use snowplow_actix::web::{ClientIp, SnowplowTracking};
    /// use snowplow_actix::Tracker;
    ///
    /// fn tracking(tracker: Tracker) -> SnowplowTracking {
    ///     SnowplowTracking::new(tracker).client_ip(ClientIp::Truncated)
    /// }
    /// ```
    pub fn client_ip(self, client_ip: ClientIp) -> Self {
        self.config(|config| config.subject.client_ip = client_ip)
    }

    /// What the page URL and referrer keep of their query (default
    /// [`UrlRedaction::attribution`]: the `utm_*` parameters and ad click ids only);
    /// [`UrlRedaction::raw`] sends them as they came.
    ///
    /// # Examples
    ///
    /// ```
    /// use snowplow_actix::web::{SnowplowTracking, UrlRedaction};
    /// use snowplow_actix::Tracker;
    ///
    /// fn tracking(tracker: Tracker) -> SnowplowTracking {
    ///     // Attribution, and the search term and page number of /search?q=…&page=….
    ///     SnowplowTracking::new(tracker)
    ///         .url_redaction(UrlRedaction::default().keep_param("q").keep_param("page"))
    /// }
    /// ```
    pub fn url_redaction(self, redaction: UrlRedaction) -> Self {
        self.config(|config| config.subject.urls = redaction)
    }

    /// Tracks nothing automatically for requests to exactly `path` (e.g. `/health`). The
    /// [`RequestTracker`](super::RequestTracker) still works there, held events included.
    pub fn exclude_path(self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.config(|config| config.excluded_paths.push(path))
    }

    /// Tracks nothing automatically for paths starting with `prefix` (e.g. `/static/`; a
    /// plain string prefix: `/static` would exclude `/statics` too).
    pub fn exclude_prefix(self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.config(|config| config.excluded_prefixes.push(prefix))
    }

    /// Tracks nothing automatically for requests answered with `status` (a 404 of
    /// scanners, say); held events are still settled.
    pub fn exclude_status(self, status: StatusCode) -> Self {
        self.config(|config| config.excluded_statuses.push(status))
    }

    /// Sets the user id (`uid`) of each request's subject from the request (a session or a
    /// token, say); `None` or an empty string sets none.
    pub fn user_id(
        self,
        user_id: impl Fn(&HttpRequest) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.config(|config| config.subject.user_id = Some(Arc::new(user_id)))
    }

    /// Forwards the network user id (`tnuid`) from the cookie `name` (the collector's cookie
    /// when it is set on your domain, usually `sp`). Off by default.
    pub fn network_user_id_cookie(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.config(|config| config.subject.network_user_id_cookie = Some(name))
    }

    /// Decides what to track from the request's [`RequestOutcome`], instead of
    /// [`default_decision`]; see [Deciding on the outcome](Self#deciding-on-the-outcome).
    /// Not called for excluded paths and statuses. It runs on the request's worker once the
    /// response head is ready: keep it quick, never block.
    ///
    /// # Examples
    ///
    /// ```
    /// use snowplow_actix::web::{html_page_view, SnowplowTracking};
    /// use snowplow_actix::Tracker;
    ///
    /// fn tracking(tracker: Tracker) -> SnowplowTracking {
    ///     SnowplowTracking::new(tracker).decide(html_page_view)
    /// }
    /// ```
    pub fn decide(
        self,
        decide: impl Fn(&RequestOutcome<'_>) -> Decision + Send + Sync + 'static,
    ) -> Self {
        self.config(|config| config.decide = Some(Arc::new(decide)))
    }

    /// Whether the events a handler [held](super::RequestTracker::track_held) are sent once
    /// the response is known (`true`) or dropped (`false`, counted as discarded by policy:
    /// [`DiscardCounts::policy`](crate::tracker::DiscardCounts::policy)). Every held event is
    /// sent by default; an event held with
    /// [`track_held_if`](super::RequestTracker::track_held_if) follows its own condition
    /// instead. A panicking policy drops them.
    ///
    /// # Examples
    ///
    /// ```
    /// use snowplow_actix::web::SnowplowTracking;
    /// use snowplow_actix::Tracker;
    ///
    /// // Held events count only for requests that succeeded.
    /// fn tracking(tracker: Tracker) -> SnowplowTracking {
    ///     SnowplowTracking::new(tracker).held_policy(|outcome| outcome.status().is_success())
    /// }
    /// ```
    pub fn held_policy(
        self,
        keep: impl Fn(&RequestOutcome<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.config(|config| config.held_policy = Some(Arc::new(keep)))
    }

    /// The random source of [sampled](Decision::sampled) decisions: each call returns a
    /// number in `[0, 1)`, and a sampled event is kept when it is below the rate. The
    /// default draws from the random bits of a UUID v4; tests inject a fixed sequence to
    /// make sampling exact.
    pub fn sampling_source(self, draw: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.config(|config| config.draw = Some(Arc::new(draw)))
    }

    /// The header the request id of held events' context entity is read from (default
    /// [`DEFAULT_REQUEST_ID_HEADER`](super::DEFAULT_REQUEST_ID_HEADER), `X-Request-Id`).
    /// When the request has no valid one (1 to 128 visible ASCII characters, one header
    /// line), a UUID v4 is generated for it.
    pub fn request_id_header(self, name: HeaderName) -> Self {
        self.config(|config| config.request_id_header = name)
    }
}

impl<S, B> Transform<S, ServiceRequest> for SnowplowTracking
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = SnowplowTrackingMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SnowplowTrackingMiddleware {
            service,
            tracker: self.tracker.clone(),
            config: Arc::clone(&self.config),
        }))
    }
}

/// The service [`SnowplowTracking`] wraps around the app's: see there.
pub struct SnowplowTrackingMiddleware<S> {
    service: S,
    tracker: Tracker,
    config: Arc<Config>,
}

impl<S> fmt::Debug for SnowplowTrackingMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnowplowTrackingMiddleware")
            .field("tracker", &self.tracker)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for SnowplowTrackingMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse<B>, Error>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let scope = Rc::new(RequestScope {
            tracker: self.tracker.clone(),
            config: Arc::clone(&self.config),
            subject: OnceCell::new(),
            held: OnceCell::new(),
            ids: OnceCell::new(),
        });
        request.extensions_mut().insert(Rc::clone(&scope));
        // For an outcome without a request (the service failed): reference counts only.
        let method = request.method().clone();
        let uri = request.uri().clone();
        let response = self.service.call(request);
        Box::pin(async move {
            let rules = &scope.config.subject;
            match response.await {
                Ok(response) => {
                    let outcome = RequestOutcome::of_response(
                        response.request(),
                        response.response().head(),
                        response.response().error(),
                        started.elapsed(),
                        rules,
                    );
                    scope.settle(&outcome);
                    Ok(response)
                }
                Err(error) => {
                    let outcome = RequestOutcome::of_failure(
                        &method,
                        uri.path(),
                        &error,
                        started.elapsed(),
                        rules,
                    );
                    scope.settle(&outcome);
                    Err(error)
                }
            }
        })
    }
}

/// What the middleware leaves in a request's extensions: the tracker, the settings, the
/// request's subject once built (by the extractor or after the response), and the events
/// its handlers hold.
pub(super) struct RequestScope {
    pub(super) tracker: Tracker,
    config: Arc<Config>,
    subject: OnceCell<Arc<Subject>>,
    /// Made when a handler first extracts its tracker.
    held: OnceCell<HeldQueue>,
    /// Read when a handler first extracts its tracker.
    ids: OnceCell<RequestIds>,
}

impl RequestScope {
    /// The request's subject, built on first use.
    pub(super) fn subject(&self, request: &HttpRequest) -> Arc<Subject> {
        Arc::clone(
            self.subject
                .get_or_init(|| Arc::new(self.config.subject.subject(request))),
        )
    }

    /// Where a handler's tracker holds events (the request's ids are read then, so that
    /// they are known whatever the outcome).
    pub(super) fn held_sender(&self, request: &HttpRequest) -> UnboundedSender<HeldEntry> {
        self.ids
            .get_or_init(|| RequestIds::read(request.headers(), &self.config.request_id_header));
        self.held.get_or_init(HeldQueue::new).sender()
    }

    /// Settles the request: its held events, then the decision's event.
    fn settle(&self, outcome: &RequestOutcome<'_>) {
        self.settle_held(outcome);
        if !self.config.is_excluded(outcome.path(), outcome.status()) {
            let decision = self.config.decide(outcome);
            self.carry_out(decision, outcome);
        }
    }

    fn carry_out(&self, decision: Decision, outcome: &RequestOutcome<'_>) {
        match decision {
            Decision::Skip => {}
            Decision::PageView => match outcome.page_url().map(PageView::new) {
                Some(Ok(view)) => match outcome.referrer() {
                    Some(referrer) => self.track(outcome, view.referrer(referrer)),
                    None => self.track(outcome, view),
                },
                Some(Err(error)) => not_tracked(outcome, &error),
                None => tracing::debug!(
                    route = outcome.route().unwrap_or("(no route)"),
                    "snowplow: no page URL for this request (its service failed, or the URL \
                     redaction left nothing): no page view tracked"
                ),
            },
            Decision::CustomPageView(view) => self.track(outcome, *view),
            Decision::Structured(event) => self.track(outcome, *event),
            Decision::SelfDescribing(event) => self.track(outcome, *event),
            Decision::Sampled(rate, decision) => {
                if rate.keeps(|| self.config.draw()) {
                    self.kept(DiscardReason::Sampling);
                    self.carry_out(*decision, outcome);
                } else {
                    self.discard(DiscardReason::Sampling, events_of(&decision), outcome);
                }
            }
        }
    }

    /// Sends the held events by their condition or the held policy, with the outcome's
    /// entity, or drops them (counted).
    fn settle_held(&self, outcome: &RequestOutcome<'_>) {
        let Some(queue) = self.held.get() else {
            return;
        };
        let mut entity = None;
        for entry in queue.settle() {
            let keep = match entry.keep {
                Some(keep) => {
                    catch_unwind(AssertUnwindSafe(move || keep(outcome))).unwrap_or_else(|_| {
                        held_condition_panicked(outcome);
                        false
                    })
                }
                None => self.config.keeps_held(outcome),
            };
            if keep {
                self.kept(DiscardReason::Policy);
                let entity = entity
                    .get_or_insert_with(|| self.outcome_entity(outcome))
                    .clone();
                if let Err(error) = entry.event.track(&self.tracker, &entry.subject, entity) {
                    not_tracked(outcome, &error);
                }
            } else {
                let count = entry.event.discard();
                self.discard(DiscardReason::Policy, count, outcome);
            }
        }
    }

    /// The context entity of held events: status, latency, request id, trace id.
    fn outcome_entity(&self, outcome: &RequestOutcome<'_>) -> SelfDescribingJson {
        let ids = self.ids.get();
        let request_id = ids
            .and_then(|ids| ids.request_id.clone())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        let data = request_outcome_data(
            outcome.status().as_u16(),
            latency_ms(outcome.latency()),
            &request_id,
            ids.and_then(|ids| ids.trace_id.as_deref()),
        );
        SelfDescribingJson::new(REQUEST_OUTCOME_SCHEMA, data)
            .expect("the schema URI is valid and the data an object")
    }

    /// Counts `count` events discarded for `reason`; the first of a burst is logged.
    fn discard(&self, reason: DiscardReason, count: u64, outcome: &RequestOutcome<'_>) {
        if count == 0 {
            return;
        }
        self.tracker.count_discarded(reason, count);
        if self.burst(reason).add(count) {
            tracing::debug!(
                reason = reason_name(reason),
                route = outcome.route().unwrap_or("(no route)"),
                status = outcome.status().as_u16(),
                "snowplow: discarding events on purpose (counted in the tracker's stats)"
            );
        }
    }

    /// An event was kept: a burst of discards for `reason` ends, logged with its count.
    fn kept(&self, reason: DiscardReason) {
        if let Some(discarded) = self.burst(reason).end() {
            tracing::debug!(
                reason = reason_name(reason),
                discarded,
                "snowplow: events discarded on purpose until this one was kept"
            );
        }
    }

    fn burst(&self, reason: DiscardReason) -> &Burst {
        match reason {
            DiscardReason::Sampling => &self.config.discards.sampling,
            DiscardReason::Policy => &self.config.discards.policy,
        }
    }

    /// Tracks `event` with the request's subject: built from the request, or, when the
    /// service failed, the one a handler's tracker built (if any).
    fn track<E: Event>(&self, outcome: &RequestOutcome<'_>, event: E) {
        let subject = match outcome.request() {
            Some(request) => Some(self.subject(request)),
            None => self.subject.get().cloned(),
        };
        let tracked = match subject {
            Some(subject) => self.tracker.track_with_subject(event, &subject),
            None => self.tracker.track(event),
        };
        if let Err(error) = tracked {
            not_tracked(outcome, &error);
        }
    }
}

/// How many events `decision` would track.
fn events_of(decision: &Decision) -> u64 {
    match decision {
        Decision::Skip => 0,
        Decision::Sampled(_, decision) => events_of(decision),
        _ => 1,
    }
}

fn reason_name(reason: DiscardReason) -> &'static str {
    match reason {
        DiscardReason::Sampling => "sampling",
        DiscardReason::Policy => "policy",
    }
}

fn held_condition_panicked(outcome: &RequestOutcome<'_>) {
    tracing::warn!(
        method = %outcome.method(),
        route = outcome.route().unwrap_or("(no route)"),
        "snowplow: a held event's condition panicked; the event is dropped (counted as policy)"
    );
}

/// The middleware never tracks its own failures: it logs them at `debug`, with the route
/// pattern (never the request's path, which may carry ids).
fn not_tracked(outcome: &RequestOutcome<'_>, error: &dyn std::error::Error) {
    tracing::debug!(
        route = outcome.route().unwrap_or("(no route)"),
        %error,
        "snowplow: the request's event was not tracked"
    );
}

/// A request that ends without an outcome (the client went away and actix-web dropped the
/// service's future) leaves its held events unsettled: they are dropped by policy, as for a
/// response that is not a success, and counted.
impl Drop for RequestScope {
    fn drop(&mut self) {
        let Some(queue) = self.held.get() else {
            return;
        };
        let count: u64 = queue
            .settle()
            .into_iter()
            .map(|entry| entry.event.discard())
            .sum();
        if count == 0 {
            return;
        }
        self.tracker.count_discarded(DiscardReason::Policy, count);
        if self.burst(DiscardReason::Policy).add(count) {
            tracing::debug!(
                reason = reason_name(DiscardReason::Policy),
                "snowplow: discarding events on purpose (counted in the tracker's stats): \
                 held by a request that ended without a response"
            );
        }
    }
}

impl fmt::Debug for RequestScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestScope")
            .field("subject", &self.subject.get())
            .field("ids", &self.ids.get())
            .finish_non_exhaustive()
    }
}
