//! What the middleware tracks for a request: [`Decision`], the ready-made decision
//! functions, and sampling ([`SampleRate`]).

use actix_web::http::Method;

use super::iglu::{api_request_data, latency_ms, API_REQUEST_SCHEMA};
use super::outcome::RequestOutcome;
use crate::event::{PageView, SelfDescribing, Structured};
use crate::self_describing::SelfDescribingJson;

/// What the middleware tracks for a request once its response is ready.
///
/// Returned by the decision function ([`SnowplowTracking::decide`](super::SnowplowTracking::decide));
/// every event is tracked with the request's subject. Ready-made decision functions:
/// [`default_decision`], [`html_page_view`], [`api_request`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Decision {
    /// Nothing.
    Skip,
    /// A page view of the request: `url` from its scheme, host, path and query, `refr` from
    /// its `Referer` header, both redacted by the middleware's
    /// [`UrlRedaction`](super::UrlRedaction) ([`RequestOutcome::page_url`]).
    PageView,
    /// This page view instead (a title, a canonical URL, …), as it is: build it on
    /// [`RequestOutcome::page_url`] to keep the redaction.
    CustomPageView(Box<PageView>),
    /// A structured event.
    Structured(Box<Structured>),
    /// A self-describing event (the API request event of [`api_request`], say).
    SelfDescribing(Box<SelfDescribing>),
    /// The decision inside, kept for a share of the requests only: made with
    /// [`Decision::sampled`].
    Sampled(SampleRate, Box<Decision>),
}

impl Decision {
    /// This decision for a share `rate` of the requests; for the others nothing is tracked
    /// and the event is counted as discarded by sampling
    /// ([`DiscardCounts::sampling`](crate::tracker::DiscardCounts::sampling) in
    /// [`Tracker::stats`](crate::Tracker::stats)). Each request draws a number in `[0, 1)`
    /// from the middleware's random source
    /// ([`SnowplowTracking::sampling_source`](super::SnowplowTracking::sampling_source)) and
    /// keeps the event when it is below `rate`. Skipping is not sampled.
    ///
    /// # Examples
    ///
    /// ```
    /// use snowplow_actix::web::{Decision, SampleRate};
    ///
    /// let one_in_ten = SampleRate::new(0.1)?;
    /// assert_eq!(
    ///     Decision::PageView.sampled(one_in_ten),
    ///     Decision::Sampled(one_in_ten, Box::new(Decision::PageView))
    /// );
    /// assert_eq!(Decision::Skip.sampled(one_in_ten), Decision::Skip);
    /// # Ok::<(), snowplow_actix::web::InvalidSampleRate>(())
    /// ```
    pub fn sampled(self, rate: SampleRate) -> Decision {
        match self {
            Self::Skip => Self::Skip,
            decision => Self::Sampled(rate, Box::new(decision)),
        }
    }
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

/// The share of requests a [sampled](Decision::sampled) decision tracks: from 0 (none) to 1
/// (all).
///
/// # Examples
///
/// ```
/// use snowplow_actix::web::SampleRate;
///
/// assert_eq!(SampleRate::new(0.25)?.get(), 0.25);
/// assert_eq!(SampleRate::ALL.get(), 1.0);
/// assert!(SampleRate::new(1.5).is_err());
/// assert!(SampleRate::new(f64::NAN).is_err());
/// # Ok::<(), snowplow_actix::web::InvalidSampleRate>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct SampleRate(f64);

/// A sample rate that is not a number from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("invalid sample rate {0}: expected a number from 0 to 1")]
pub struct InvalidSampleRate(pub f64);

impl SampleRate {
    /// Every request.
    pub const ALL: SampleRate = SampleRate(1.0);
    /// No request.
    pub const NONE: SampleRate = SampleRate(0.0);

    /// The share `rate` of the requests.
    ///
    /// # Errors
    ///
    /// [`InvalidSampleRate`] unless `rate` is from 0 to 1 (NaN is not).
    pub fn new(rate: f64) -> Result<Self, InvalidSampleRate> {
        if (0.0..=1.0).contains(&rate) {
            Ok(Self(rate))
        } else {
            Err(InvalidSampleRate(rate))
        }
    }

    /// The rate, from 0 to 1.
    pub fn get(self) -> f64 {
        self.0
    }

    /// Whether a request that drew `draw` (from `[0, 1)`) is kept; 1 keeps all and 0 none
    /// whatever the draw.
    pub(super) fn keeps(self, draw: impl FnOnce() -> f64) -> bool {
        if self.0 >= 1.0 {
            true
        } else if self.0 <= 0.0 {
            false
        } else {
            draw() < self.0
        }
    }
}

impl TryFrom<f64> for SampleRate {
    type Error = InvalidSampleRate;

    fn try_from(rate: f64) -> Result<Self, Self::Error> {
        Self::new(rate)
    }
}

/// The default decision: a page view for a `GET` answered with a success (2xx), nothing
/// otherwise. (Excluded paths and statuses never reach the decision.)
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use actix_web::{test::TestRequest, HttpResponse};
/// use snowplow_actix::web::{default_decision, Decision, RequestOutcome};
///
/// let get = TestRequest::get().to_http_request();
/// let post = TestRequest::post().to_http_request();
/// let (ok, missing) = (HttpResponse::Ok().finish(), HttpResponse::NotFound().finish());
/// let decide = |request, response| {
///     default_decision(&RequestOutcome::new(request, response, Duration::ZERO))
/// };
/// assert_eq!(decide(&get, &ok), Decision::PageView);
/// assert_eq!(decide(&get, &missing), Decision::Skip);
/// assert_eq!(decide(&post, &ok), Decision::Skip);
/// ```
pub fn default_decision(outcome: &RequestOutcome<'_>) -> Decision {
    if outcome.request().is_some()
        && outcome.method() == Method::GET
        && outcome.status().is_success()
    {
        Decision::PageView
    } else {
        Decision::Skip
    }
}

/// A page view for a `GET` answered with a success (2xx) in HTML
/// ([`RequestOutcome::is_html`]), nothing otherwise: for an app that serves pages and
/// assets or JSON from the same routes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use actix_web::{test::TestRequest, HttpResponse};
/// use snowplow_actix::web::{html_page_view, Decision, RequestOutcome};
///
/// let get = TestRequest::get().to_http_request();
/// let page = HttpResponse::Ok().content_type("text/html; charset=utf-8").finish();
/// let json = HttpResponse::Ok().content_type("application/json").finish();
/// let decide = |response| html_page_view(&RequestOutcome::new(&get, response, Duration::ZERO));
/// assert_eq!(decide(&page), Decision::PageView);
/// assert_eq!(decide(&json), Decision::Skip);
/// ```
pub fn html_page_view(outcome: &RequestOutcome<'_>) -> Decision {
    match default_decision(outcome) {
        Decision::PageView if outcome.is_html() => Decision::PageView,
        _ => Decision::Skip,
    }
}

/// One API request event ([`api_request_event`]) for every request, whatever its method
/// and status: for a JSON API. Wrap the API's scope alone in a middleware with this
/// decision (`web::scope("/api").wrap(tracking.decide(api_request))`), or choose it by path
/// in a decision function of your own.
///
/// Its schema, [`API_REQUEST_SCHEMA`](super::API_REQUEST_SCHEMA), ships with the crate:
/// host it in your Iglu registry first ([`IGLU_SCHEMAS`](super::IGLU_SCHEMAS)), or the
/// pipeline turns every such event into a failed event.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use actix_web::{test::TestRequest, HttpResponse};
/// use snowplow_actix::web::{api_request, Decision, RequestOutcome};
///
/// let request = TestRequest::delete().uri("/orders/42").to_http_request();
/// let response = HttpResponse::NoContent().finish();
/// let outcome = RequestOutcome::new(&request, &response, Duration::from_millis(8));
/// let Decision::SelfDescribing(event) = api_request(&outcome) else { unreachable!() };
/// assert_eq!(
///     event.json().data(),
///     &serde_json::json!({"method": "DELETE", "status": 204, "latencyMs": 8})
/// );
/// ```
pub fn api_request(outcome: &RequestOutcome<'_>) -> Decision {
    api_request_event(outcome).into()
}

/// The API request event of `outcome` (schema [`API_REQUEST_SCHEMA`](super::API_REQUEST_SCHEMA)):
/// its `method`, `route` (the [route pattern](RequestOutcome::route), such as
/// `/orders/{id}`, never the path with its ids; absent when no route matched), `status`
/// and `latencyMs` ([`RequestOutcome::latency`]). To add context entities before tracking
/// it from a decision function of your own.
pub fn api_request_event(outcome: &RequestOutcome<'_>) -> SelfDescribing {
    let data = api_request_data(
        outcome.method().as_str(),
        outcome.route(),
        outcome.status().as_u16(),
        latency_ms(outcome.latency()),
    );
    SelfDescribing::new(
        SelfDescribingJson::new(API_REQUEST_SCHEMA, data)
            .expect("the schema URI is valid and the data an object"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_of_one_and_zero_never_draw() {
        assert!(SampleRate::ALL.keeps(|| unreachable!()));
        assert!(!SampleRate::NONE.keeps(|| unreachable!()));
        let half = SampleRate::new(0.5).unwrap();
        assert!(half.keeps(|| 0.499));
        assert!(!half.keeps(|| 0.5));
        assert!(!half.keeps(|| f64::NAN));
        assert_eq!(SampleRate::try_from(-0.1), Err(InvalidSampleRate(-0.1)));
    }
}
