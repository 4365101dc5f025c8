//! POST and GET delivery to a real collector: the wire format as received.

use crate::common::collector::{Faults, TestCollector};
use crate::common::support::{
    events, flush, labels, range_labels, sorted_labels, stats, track_all, wait_events, BuilderExt,
};
use snowplow_actix::{EmitterBuilder, Method};

#[actix_rt::test]
async fn post_delivers_batches_in_order_with_a_valid_envelope() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    // One request at a time, of at most one batch: the baseline's requests.
    let emitter = EmitterBuilder::new(collector.endpoint())
        .max_in_flight(1)
        .max_request_events(10)
        .started();
    let ids = track_all(&emitter, events(25));

    let report = flush(&emitter).await;

    assert_eq!(report.sent, 25);
    assert!(!report.timed_out);
    let received = wait_events(&collector, 25).await;
    assert_eq!(labels(&received), range_labels(0..25));
    let received_ids: Vec<_> = received
        .iter()
        .map(|e| e.eid().unwrap().to_owned())
        .collect();
    assert_eq!(received_ids, ids);
    let requests = collector.requests();
    assert_eq!(
        requests.iter().map(|r| r.events.len()).collect::<Vec<_>>(),
        [10, 10, 5]
    );
    for request in &requests {
        assert!(request.valid, "{:?}", request.error);
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/com.snowplowanalytics.snowplow/tp2");
        assert_eq!(
            request.content_type.as_deref(),
            Some("application/json; charset=utf-8")
        );
        crate::common::iglu::validate_post_body(&request.raw).unwrap();
    }
    let stats = stats(&emitter).await;
    assert_eq!((stats.received, stats.sent, stats.queued), (25, 25, 0));
}

#[actix_rt::test]
async fn by_default_a_flush_sends_the_backlog_in_requests_as_large_as_the_caps_allow() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    // A batch size no burst reaches: the flush alone sends them.
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(100)
        .started();
    let ids = track_all(&emitter, events(25));

    let report = flush(&emitter).await;

    assert_eq!((report.sent, report.timed_out), (25, false));
    let received = wait_events(&collector, 25).await;
    let mut received_ids: Vec<_> = received
        .iter()
        .map(|e| e.eid().unwrap().to_owned())
        .collect();
    received_ids.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(received_ids, ids);
    // Not batches of `batch_size`: one request, as large as the caps allow.
    let requests = collector.requests();
    assert_eq!(
        requests.iter().map(|r| r.events.len()).collect::<Vec<_>>(),
        [25]
    );
    for request in &requests {
        crate::common::iglu::validate_post_body(&request.raw).unwrap();
    }
}

#[actix_rt::test]
async fn get_sends_one_request_per_event() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let emitter = EmitterBuilder::new(collector.endpoint())
        .method(Method::Get)
        .started();
    track_all(&emitter, events(5));

    let received = wait_events(&collector, 5).await;

    // Several requests may be in flight: every event once, in no promised order.
    assert_eq!(sorted_labels(&received), range_labels(0..5));
    let requests = collector.requests();
    assert_eq!(requests.len(), 5);
    for request in &requests {
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("GET", "/i")
        );
        assert_eq!(request.events.len(), 1);
        let stm = request.events[0].get("stm").unwrap();
        assert_eq!(stm.len(), 13, "stm in ms");
        assert_eq!(request.events[0].names().last(), Some(&"stm"));
    }
    let report = flush(&emitter).await;
    assert_eq!(report.queued, 0);
    assert_eq!(stats(&emitter).await.sent, 5);
}
