//! The tracking middleware: [`SnowplowTracking`] and the service it builds.

use std::cell::OnceCell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::{Method, StatusCode};
use actix_web::{Error, HttpMessage as _, HttpRequest};
use futures::future::{ready, LocalBoxFuture, Ready};

use super::proxy::{IpRange, ProxyHeader, PublicOrigin};
use super::request::{referrer, SubjectRules};
use crate::event::{Event, PageView, SelfDescribing, Structured};
use crate::subject::Subject;
use crate::tracker::Tracker;

/// What the middleware tracks for a request once its response is ready.
///
/// Returned by the decision function ([`SnowplowTracking::decide`]); every event is tracked
/// with the request's subject.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Decision {
    /// Nothing.
    Skip,
    /// A page view of the request: `url` from its scheme, host, path and query, `refr` from
    /// its `Referer` header.
    PageView,
    /// This page view instead (a title, a canonical URL, …).
    CustomPageView(Box<PageView>),
    /// A structured event (an API call, say).
    Structured(Box<Structured>),
    /// A self-describing event.
    SelfDescribing(Box<SelfDescribing>),
}

impl From<PageView> for Decision {
    fn from(event: PageView) -> Self {
        Self::CustomPageView(Box::new(event))
    }
}

impl From<Structured> for Decision {
    fn from(event: Structured) -> Self {
        Self::Structured(Box::new(event))
    }
}

impl From<SelfDescribing> for Decision {
    fn from(event: SelfDescribing) -> Self {
        Self::SelfDescribing(Box::new(event))
    }
}

/// The default decision: a page view for a `GET` answered with a success (2xx), nothing
/// otherwise. (Excluded paths never reach the decision.)
///
/// # Examples
///
/// ```
/// use actix_web::http::StatusCode;
/// use actix_web::test::TestRequest;
/// use snowplow_actix::web::{default_decision, Decision};
///
/// let get = TestRequest::get().to_http_request();
/// assert_eq!(default_decision(&get, StatusCode::OK), Decision::PageView);
/// assert_eq!(default_decision(&get, StatusCode::NOT_FOUND), Decision::Skip);
/// let post = TestRequest::post().to_http_request();
/// assert_eq!(default_decision(&post, StatusCode::OK), Decision::Skip);
/// ```
pub fn default_decision(request: &HttpRequest, status: StatusCode) -> Decision {
    if request.method() == Method::GET && status.is_success() {
        Decision::PageView
    } else {
        Decision::Skip
    }
}

type DecideFn = Arc<dyn Fn(&HttpRequest, StatusCode) -> Decision + Send + Sync>;

/// The middleware's settings, shared by every worker and request.
#[derive(Clone)]
pub(super) struct Config {
    pub(super) subject: SubjectRules,
    excluded_paths: Vec<String>,
    excluded_prefixes: Vec<String>,
    decide: Option<DecideFn>,
}

impl Config {
    fn is_excluded(&self, path: &str) -> bool {
        self.excluded_paths.iter().any(|excluded| excluded == path)
            || self
                .excluded_prefixes
                .iter()
                .any(|prefix| path.starts_with(prefix.as_str()))
    }

    fn decide(&self, request: &HttpRequest, status: StatusCode) -> Decision {
        let Some(decide) = &self.decide else {
            return default_decision(request, status);
        };
        catch_unwind(AssertUnwindSafe(|| decide(request, status))).unwrap_or_else(|_| {
            // The route pattern, never the path: it may carry ids or personal data.
            tracing::warn!(
                method = %request.method(),
                route = request.match_pattern().as_deref().unwrap_or("(no route)"),
                "snowplow: the decision function panicked; nothing tracked for this request"
            );
            Decision::Skip
        })
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("subject", &self.subject)
            .field("excluded_paths", &self.excluded_paths)
            .field("excluded_prefixes", &self.excluded_prefixes)
            .field("decide", &self.decide.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

/// The tracking middleware: wrap an `App` (or a scope) in it to track page views with each
/// request's subject, and to give handlers a [`RequestTracker`](super::RequestTracker).
///
/// Cheap to clone and `Send`: build it once and clone it into the `HttpServer` factory.
///
/// For each request it
/// 1. puts the tracker and these settings in the request's extensions, for the
///    [`RequestTracker`](super::RequestTracker) extractor;
/// 2. calls the service, and once the response head is ready, unless the path is excluded,
///    asks the decision function (default [`default_decision`]) what to track, and tracks
///    it with the request's subject.
///
/// Tracking only stamps the event and hands it over ([`Tracker::track_with_subject`]): the
/// response never waits for the collector. Tracking never changes the response: a tracking
/// error (an invalid event, a full queue, a shut-down tracker) is logged at `debug` and
/// ignored, and a panicking decision or user-id function is caught, logged and tracks
/// nothing. A service that fails with an `Err` (rather than an error response) is not
/// tracked.
///
/// # The request's subject
///
/// | field   | from                                                                  |
/// |---------|-----------------------------------------------------------------------|
/// | `ip`    | the peer address; from a trusted proxy, its [forwarding header](Self::proxy_header) |
/// | `ua`    | `User-Agent`                                                          |
/// | `lang`  | the first tag of `Accept-Language`                                    |
/// | `uid`   | the [`user_id`](Self::user_id) function, if set                       |
/// | `tnuid` | the cookie named by [`network_user_id_cookie`](Self::network_user_id_cookie), if set |
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
/// The page view's `url` is `scheme://host/path?query`, its `refr` the `Referer` header.
/// The scheme and the host each come from the first of:
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
/// use snowplow_actix::web::{default_decision, Decision, IpRange, SnowplowTracking};
/// use snowplow_actix::{EmitterBuilder, Structured, Tracker};
///
/// # #[actix_rt::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tracker = Tracker::builder("web")
///     .emitter(EmitterBuilder::new("https://collector.example.com"))
///     .build()?;
/// let tracking = SnowplowTracking::new(tracker.clone())
///     .trusted_proxy("10.0.0.0/8".parse::<IpRange>()?)
///     .exclude_path("/health")
///     .exclude_prefix("/static/")
///     .user_id(|request| {
///         let user = request.headers().get("x-user-id")?;
///         user.to_str().ok().map(str::to_owned)
///     })
///     .network_user_id_cookie("sp")
///     .decide(|request, status| {
///         if request.path().starts_with("/api/") && status == StatusCode::OK {
///             Structured::new("api", request.method().as_str())
///                 .map(|event| event.label(request.path()).into())
///                 .unwrap_or(Decision::Skip)
///         } else {
///             default_decision(request, status)
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
    /// Tracks with `tracker`: page views of successful `GET`s, no excluded path, no trusted
    /// proxy, no user ids.
    pub fn new(tracker: Tracker) -> Self {
        Self {
            tracker,
            config: Arc::new(Config {
                subject: SubjectRules::default(),
                excluded_paths: Vec::new(),
                excluded_prefixes: Vec::new(),
                decide: None,
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

    /// Tracks nothing automatically for requests to exactly `path` (e.g. `/health`). The
    /// [`RequestTracker`](super::RequestTracker) still works there.
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

    /// Decides what to track from the request and its response status, instead of
    /// [`default_decision`]. Not called for excluded paths. It runs on the request's worker
    /// once the response head is ready: keep it quick, never block.
    pub fn decide(
        self,
        decide: impl Fn(&HttpRequest, StatusCode) -> Decision + Send + Sync + 'static,
    ) -> Self {
        self.config(|config| config.decide = Some(Arc::new(decide)))
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
        let scope = Rc::new(RequestScope {
            tracker: self.tracker.clone(),
            config: Arc::clone(&self.config),
            subject: OnceCell::new(),
        });
        request.extensions_mut().insert(Rc::clone(&scope));
        let response = self.service.call(request);
        Box::pin(async move {
            let response = response.await?;
            scope.track_response(response.request(), response.status());
            Ok(response)
        })
    }
}

/// What the middleware leaves in a request's extensions: the tracker, the settings, and the
/// request's subject once built (by the extractor or after the response).
pub(super) struct RequestScope {
    pub(super) tracker: Tracker,
    config: Arc<Config>,
    subject: OnceCell<Arc<Subject>>,
}

impl RequestScope {
    /// The request's subject, built on first use.
    pub(super) fn subject(&self, request: &HttpRequest) -> Arc<Subject> {
        Arc::clone(
            self.subject
                .get_or_init(|| Arc::new(self.config.subject.subject(request))),
        )
    }

    fn track_response(&self, request: &HttpRequest, status: StatusCode) {
        if self.config.is_excluded(request.path()) {
            return;
        }
        match self.config.decide(request, status) {
            Decision::Skip => {}
            Decision::PageView => match PageView::new(self.config.subject.page_url(request)) {
                Ok(view) => match referrer(request) {
                    Some(referrer) => self.track(request, view.referrer(referrer)),
                    None => self.track(request, view),
                },
                Err(error) => not_tracked(request, &error),
            },
            Decision::CustomPageView(view) => self.track(request, *view),
            Decision::Structured(event) => self.track(request, *event),
            Decision::SelfDescribing(event) => self.track(request, *event),
        }
    }

    fn track<E: Event>(&self, request: &HttpRequest, event: E) {
        let subject = self.subject(request);
        if let Err(error) = self.tracker.track_with_subject(event, &subject) {
            not_tracked(request, &error);
        }
    }
}

/// The middleware never tracks its own failures: it logs them at `debug`, with the route
/// pattern (never the request's path, which may carry ids).
fn not_tracked(request: &HttpRequest, error: &dyn std::error::Error) {
    tracing::debug!(
        route = request.match_pattern().as_deref().unwrap_or("(no route)"),
        %error,
        "snowplow: the request's event was not tracked"
    );
}

impl fmt::Debug for RequestScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestScope")
            .field("subject", &self.subject.get())
            .finish_non_exhaustive()
    }
}
