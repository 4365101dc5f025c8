//! Anonymous emitters: every request of an emitter built with `anonymous(true)` carries
//! `SP-Anonymous: *`, by POST and by GET, so that the collector keeps neither the IP, nor
//! its cookie, nor a network user id; an ordinary emitter's requests do not.

use crate::common::collector::{Faults, TestCollector};
use crate::common::support::{assert_delivered, events, flush, track_all, BuilderExt};
use snowplow_actix::transport::{SP_ANONYMOUS_HEADER, SP_ANONYMOUS_VALUE};
use snowplow_actix::{EmitterBuilder, Method};

/// The `SP-Anonymous` header of each request `collector` recorded.
fn anonymous_headers(collector: &TestCollector) -> Vec<Option<String>> {
    collector
        .requests()
        .iter()
        .map(|request| request.header(SP_ANONYMOUS_HEADER).map(str::to_owned))
        .collect()
}

#[actix_rt::test]
async fn an_anonymous_emitter_sends_sp_anonymous_on_every_request_and_others_do_not() {
    for method in [Method::Post, Method::Get] {
        for anonymous in [true, false] {
            let collector = TestCollector::with_faults(Faults::none()).await;
            let mut builder = EmitterBuilder::new(collector.endpoint())
                .method(method)
                .batch_size(2)
                .max_request_events(2);
            // The default (`DEFAULT_ANONYMOUS`) is off.
            if anonymous {
                builder = builder.anonymous(true);
            }
            let emitter = builder.started();
            track_all(&emitter, events(4));
            assert_delivered(&flush(&emitter).await, 4);

            let headers = anonymous_headers(&collector);
            let expected = anonymous.then(|| SP_ANONYMOUS_VALUE.to_owned());
            // POST: requests of two events at most; GET: one per event.
            let at_least = if method == Method::Post { 2 } else { 4 };
            assert_eq!(
                headers,
                vec![expected; headers.len().max(at_least)],
                "{method:?}, anonymous: {anonymous}"
            );
        }
    }
}

/// A later `anonymous(false)` wins over an earlier `anonymous(true)`.
#[actix_rt::test]
async fn anonymous_false_sends_no_header() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .anonymous(true)
        .anonymous(false)
        .started();
    track_all(&emitter, events(1));
    assert_delivered(&flush(&emitter).await, 1);

    assert_eq!(anonymous_headers(&collector), [None]);
}
