//! What the middleware knows of a request once its response is ready: [`RequestOutcome`].

use std::cell::OnceCell;
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use actix_web::dev::ResponseHead;
use actix_web::http::header::{HeaderMap, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::{Error, HttpRequest, HttpResponse};

use super::request::SubjectRules;

/// The rules of a middleware with its defaults: those of an outcome made outside one.
static DEFAULT_RULES: LazyLock<SubjectRules> = LazyLock::new(SubjectRules::default);

/// The headers of a response that does not exist (the service failed).
static NO_HEADERS: LazyLock<HeaderMap> = LazyLock::new(HeaderMap::new);

/// A request and how it was answered, as the decision function
/// ([`SnowplowTracking::decide`](super::SnowplowTracking::decide)) and the policies of held
/// events see it once the response head is ready: the status, the response headers, the
/// latency, the route pattern it matched, and the error it carries.
///
/// Two kinds of outcome:
///
/// - **A response** (the usual case, error responses included: a handler or an extractor
///   that fails makes a response that carries its error, [`error`](Self::error)). The
///   request is there ([`request`](Self::request)).
/// - **A failed service**: a middleware inside [`SnowplowTracking`](super::SnowplowTracking)
///   returned an `Err` (an authentication middleware refusing the request, say), which
///   actix-web turns into a response after this one. [`service_failed`](Self::service_failed)
///   is `true`, the status is the error's, there are no response headers, and the request
///   itself is gone: [`request`](Self::request), [`route`](Self::route),
///   [`page_url`](Self::page_url) and [`referrer`](Self::referrer) are `None`, while
///   [`method`](Self::method) and [`path`](Self::path) still answer.
///
/// # Examples
///
/// Outcomes are made by the middleware; [`new`](Self::new) makes one to try a decision
/// function:
///
/// ```
/// use std::time::Duration;
/// use actix_web::{http::StatusCode, test::TestRequest, HttpResponse};
/// use snowplow_actix::web::RequestOutcome;
///
/// let request = TestRequest::get().uri("/orders/42?email=bob@example.com").to_http_request();
/// let response = HttpResponse::NotFound().content_type("application/json").finish();
/// let outcome = RequestOutcome::new(&request, &response, Duration::from_millis(12));
///
/// assert_eq!(outcome.status(), StatusCode::NOT_FOUND);
/// assert!(outcome.is_json() && !outcome.is_html());
/// assert_eq!(outcome.latency(), Duration::from_millis(12));
/// assert_eq!(outcome.path(), "/orders/42");
/// // The page URL as the middleware sends it: the query's personal data dropped.
/// assert_eq!(outcome.page_url().as_deref(), Some("http://localhost:8080/orders/42"));
/// assert!(outcome.error().is_none() && !outcome.service_failed());
/// ```
pub struct RequestOutcome<'a> {
    request: Option<&'a HttpRequest>,
    method: &'a Method,
    path: &'a str,
    status: StatusCode,
    headers: &'a HeaderMap,
    error: Option<&'a Error>,
    latency: Duration,
    rules: &'a SubjectRules,
    route: OnceCell<Option<String>>,
}

impl<'a> RequestOutcome<'a> {
    /// The outcome of `request` answered with `response` after `latency`, seen by a
    /// middleware with the default settings (no trusted proxy, the default
    /// [`UrlRedaction`](super::UrlRedaction)).
    pub fn new<B>(
        request: &'a HttpRequest,
        response: &'a HttpResponse<B>,
        latency: Duration,
    ) -> Self {
        Self::of_response(
            request,
            response.head(),
            response.error(),
            latency,
            &DEFAULT_RULES,
        )
    }

    /// The outcome of a response, seen with `rules`.
    pub(super) fn of_response(
        request: &'a HttpRequest,
        head: &'a ResponseHead,
        error: Option<&'a Error>,
        latency: Duration,
        rules: &'a SubjectRules,
    ) -> Self {
        Self {
            request: Some(request),
            method: request.method(),
            path: request.path(),
            status: head.status,
            headers: &head.headers,
            error,
            latency,
            rules,
            route: OnceCell::new(),
        }
    }

    /// The outcome of a service that failed with `error` (no response, no request).
    pub(super) fn of_failure(
        method: &'a Method,
        path: &'a str,
        error: &'a Error,
        latency: Duration,
        rules: &'a SubjectRules,
    ) -> Self {
        Self {
            request: None,
            method,
            path,
            status: error.as_response_error().status_code(),
            headers: &NO_HEADERS,
            error: Some(error),
            latency,
            rules,
            route: OnceCell::from(None),
        }
    }

    /// The request; `None` when the service failed (see [the type](Self)).
    pub fn request(&self) -> Option<&'a HttpRequest> {
        self.request
    }

    /// The request's method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The request's path, without its query. It may carry ids or personal data
    /// (`/users/bob@example.com`): decide with it, but put the [`route`](Self::route) in
    /// events.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The route pattern the request matched (`/orders/{id}`), without the values of its
    /// segments; `None` when no route matched (a 404 of the default service) or the service
    /// failed.
    pub fn route(&self) -> Option<&str> {
        self.route
            .get_or_init(|| self.request.and_then(HttpRequest::match_pattern))
            .as_deref()
    }

    /// The response's status; when the service failed, the status of its error.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response's headers (none when the service failed).
    pub fn response_headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The response's media type, without its parameters (`text/html` for
    /// `text/html; charset=utf-8`); `None` without a `Content-Type`.
    pub fn content_type(&self) -> Option<&'a str> {
        let value = self.headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let media_type = value.split(';').next().unwrap_or_default().trim();
        (!media_type.is_empty()).then_some(media_type)
    }

    /// Whether the response is HTML (`text/html`, `application/xhtml+xml`; any case).
    pub fn is_html(&self) -> bool {
        self.content_type().is_some_and(|media_type| {
            media_type.eq_ignore_ascii_case("text/html")
                || media_type.eq_ignore_ascii_case("application/xhtml+xml")
        })
    }

    /// Whether the response is JSON (`application/json`, or any `…/…+json` such as
    /// `application/problem+json`; any case).
    pub fn is_json(&self) -> bool {
        self.content_type().is_some_and(|media_type| {
            media_type.eq_ignore_ascii_case("application/json")
                || media_type
                    .get(media_type.len().saturating_sub(5)..)
                    .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json"))
        })
    }

    /// From the request reaching the middleware to its response head being ready (the
    /// body's streaming is not counted).
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// The error the response carries (a handler or an extractor failed, or the response
    /// was made from an error), or the one the service failed with.
    pub fn error(&self) -> Option<&'a Error> {
        self.error
    }

    /// Whether the service failed with an `Err` instead of a response (see
    /// [the type](Self)).
    pub fn service_failed(&self) -> bool {
        self.request.is_none()
    }

    /// The page URL as the middleware's page views carry it: `scheme://host/path?query`
    /// from the request (and trusted proxies), its query redacted by the middleware's
    /// [`UrlRedaction`](super::UrlRedaction). `None` when the service failed, or when a
    /// custom redaction returns an empty URL. To build a custom page view on it.
    pub fn page_url(&self) -> Option<String> {
        Some(self.rules.page_url(self.request?)).filter(|url| !url.is_empty())
    }

    /// The `Referer` header as the middleware's page views carry it (redacted as the page
    /// URL); `None` without one, or when the service failed.
    pub fn referrer(&self) -> Option<String> {
        self.rules.referrer(self.request?)
    }
}

impl fmt::Debug for RequestOutcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the path nor the headers: they may carry personal data.
        f.debug_struct("RequestOutcome")
            .field("method", self.method)
            .field("route", &self.route())
            .field("status", &self.status)
            .field("content_type", &self.content_type())
            .field("latency", &self.latency)
            .field("error", &self.error.is_some())
            .field("service_failed", &self.service_failed())
            .finish_non_exhaustive()
    }
}
