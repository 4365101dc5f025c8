//! End-to-end cost per event: tracking through a tracker and its emitter until a flush
//! reports everything sent, against a no-op transport (the framework's own overhead) and
//! against a real collector on 127.0.0.1; and the cost of `track()` on the caller's thread.
//! Built with the `metrics` feature, the figures go to a Prometheus recorder.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::future::LocalBoxFuture;
use futures::FutureExt as _;
use snowplow_actix::emitter::MAX_MAILBOX_CAPACITY;
use snowplow_actix::transport::{Request, Response, Transport, TransportError};
use snowplow_actix::{EmitterBuilder, Structured, TrackError, Tracker};

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/common/collector.rs"]
mod collector;

/// Answers 200 at once without any I/O.
struct NoopTransport;

impl Transport for NoopTransport {
    fn send(&self, _: Request) -> LocalBoxFuture<'static, Result<Response, TransportError>> {
        futures::future::ready(Ok(Response::new(200))).boxed_local()
    }
}

fn emitter(endpoint: &str, batch_size: usize, noop: bool) -> EmitterBuilder {
    let builder = EmitterBuilder::new(endpoint)
        .batch_size(batch_size)
        .max_request_events(batch_size)
        .max_in_flight(4)
        .buffer_capacity(1_000_000);
    if noop {
        builder.transport_factory(|| Box::new(NoopTransport))
    } else {
        builder
    }
}

fn event(idx: u64) -> Structured {
    Structured::new("bench", "event")
        .expect("valid event")
        .label(idx.to_string())
}

/// Tracks `iters` events and flushes; the time until the flush reports them sent. An
/// event the fan-out has no room for yet (a sample larger than its queue) is tracked again
/// once it has: the time is that of delivering them all.
async fn deliver(tracker: &Tracker, iters: u64) -> Duration {
    let started = Instant::now();
    for idx in 0..iters {
        while let Err(error) = tracker.track(event(idx)) {
            assert_eq!(error, TrackError::QueueFull, "tracked");
            std::thread::yield_now();
        }
    }
    let report = tracker
        .flush_with_timeout(Duration::from_secs(60))
        .await
        .expect("flushed");
    assert!(!report.timed_out, "{report:?}");
    started.elapsed()
}

/// With the `metrics` feature, a Prometheus recorder for the process: the figures are
/// published for real (to compare with a build without the feature).
fn install_recorder() {
    #[cfg(feature = "metrics")]
    {
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .expect("the bench's recorder");
            // Kept for the process, as an application keeps it for its `/metrics`.
            std::mem::forget(handle);
        });
    }
}

fn end_to_end(c: &mut Criterion) {
    install_recorder();
    let system = actix_rt::System::new();
    let collector = system.block_on(collector::TestCollector::start(
        collector::CollectorConfig::default(),
    ));
    let mut group = c.benchmark_group("deliver");
    group.throughput(Throughput::Elements(1));
    for batch_size in [10, 100] {
        for (name, noop) in [("noop_transport", true), ("collector", false)] {
            let tracker = system.block_on(async {
                Tracker::builder("bench")
                    .emitter(emitter(&collector.endpoint(), batch_size, noop))
                    .no_flush_timer()
                    .build()
                    .expect("tracker")
            });
            group.bench_with_input(BenchmarkId::new(name, batch_size), &batch_size, |b, _| {
                b.iter_custom(|iters| system.block_on(deliver(&tracker, iters)));
            });
        }
    }
    group.finish();
}

/// Producer threads of the concurrent `track()` benchmark.
const PRODUCERS: u64 = 4;

fn track_call(c: &mut Criterion) {
    install_recorder();
    let system = actix_rt::System::new();
    let tracker = system.block_on(async {
        Tracker::builder("bench")
            .emitter(emitter("http://127.0.0.1:9", 10, true))
            .no_flush_timer()
            // Room for every event of a sample: none is refused, which would be cheaper.
            .mailbox_capacity(MAX_MAILBOX_CAPACITY)
            .build()
            .expect("tracker")
    });
    let mut group = c.benchmark_group("track");
    group.throughput(Throughput::Elements(1));
    group.bench_function("build_and_track_noop_emitter", |b| {
        let mut idx = 0;
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                idx += 1;
                let _ = tracker.track(event(idx));
            }
            let elapsed = started.elapsed();
            // Let the actors catch up so the mailboxes never fill between samples.
            system.block_on(async {
                tracker
                    .flush_with_timeout(Duration::from_secs(60))
                    .await
                    .expect("flushed")
            });
            elapsed
        });
    });
    // The time each call takes on its own thread while PRODUCERS threads track at once:
    // the threads' times are summed, so a sample is the mean time of one call.
    group.bench_function(format!("build_and_track_{PRODUCERS}_producers"), |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(PRODUCERS);
            let threads: Vec<_> = (0..PRODUCERS)
                .map(|producer| {
                    let tracker = tracker.clone();
                    std::thread::spawn(move || {
                        let started = Instant::now();
                        for idx in 0..per_thread {
                            let _ = tracker.track(event(producer * per_thread + idx));
                        }
                        started.elapsed()
                    })
                })
                .collect();
            let busy: Duration = threads
                .into_iter()
                .map(|thread| thread.join().expect("producer"))
                .sum();
            system.block_on(async {
                tracker
                    .flush_with_timeout(Duration::from_secs(60))
                    .await
                    .expect("flushed")
            });
            busy.mul_f64(iters as f64 / (per_thread * PRODUCERS) as f64)
        });
    });
    group.finish();
}

criterion_group!(benches, end_to_end, track_call);
criterion_main!(benches);
