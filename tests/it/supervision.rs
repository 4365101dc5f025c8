//! Supervision: an emitter whose transport fails fatally stops, is restarted with its
//! queue, counters and backoff, and delivers everything it held.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::collector::{Faults, TestCollector};
use crate::common::support::{
    assert_settled, events, flush, labels, range_labels, stats, track_all, BuilderExt,
};
use futures::future::LocalBoxFuture;
use futures::FutureExt as _;
use snowplow_actix::transport::{default_client, AwcTransport, Request, Response, Transport};
use snowplow_actix::{transport::TransportError, EmitterBuilder};

/// The real awc transport, except that the request numbered `fail_at` (counted across
/// restarts) fails fatally.
struct FailingOnce {
    inner: AwcTransport,
    sent: Arc<AtomicUsize>,
    fail_at: usize,
}

impl Transport for FailingOnce {
    fn send(&self, request: Request) -> LocalBoxFuture<'static, Result<Response, TransportError>> {
        if self.sent.fetch_add(1, Ordering::SeqCst) == self.fail_at {
            return async { Err(TransportError::Fatal("injected".into())) }.boxed_local();
        }
        self.inner.send(request)
    }
}

#[actix_rt::test]
async fn a_fatal_transport_error_restarts_the_emitter_without_losing_events() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let sent = Arc::new(AtomicUsize::new(0));
    let built = Arc::new(AtomicUsize::new(0));
    let (sent_by_transport, transports) = (sent.clone(), built.clone());
    let emitter = EmitterBuilder::new(collector.endpoint())
        .batch_size(5)
        .max_in_flight(2)
        .retrying_fast(Duration::from_millis(50))
        .transport_factory(move || {
            transports.fetch_add(1, Ordering::SeqCst);
            Box::new(FailingOnce {
                inner: AwcTransport::new(default_client(Duration::from_secs(5), 2)),
                sent: sent_by_transport.clone(),
                fail_at: 1,
            })
        })
        .started();

    track_all(&emitter, events(20));
    let report = flush(&emitter).await;

    assert_settled(&report);
    let mut received = labels(&collector.events());
    received.sort_by_key(|label| label.parse::<usize>().unwrap());
    received.dedup();
    assert_eq!(received, range_labels(0..20));
    let stats = stats(&emitter).await;
    assert_eq!(stats.restarts, 1);
    assert_eq!(
        built.load(Ordering::SeqCst),
        2,
        "the transport is rebuilt on restart"
    );
    assert_eq!(stats.sent, 20);
    assert_eq!(stats.received, 20);
}
