//! Benchmarks of the tracker-protocol hot path: building and stamping events and encoding
//! them as POST bodies.
//!
//! Every group reports a per-event rate (`Throughput::Elements`):
//!
//! - `stamp`: build one [`Structured`] event and stamp it with [`TrackerSettings::stamp`].
//! - `stamp_post_json`: the same, then encode it as a POST event object
//!   ([`StampedEvent::to_post_json`]).
//! - `post_body`: encode 10 and 100 already-stamped events as one POST body with
//!   [`wire::push_post_body`] into a reused buffer. A stamped event caches its encoding on
//!   first use, so `cold` gives every iteration freshly stamped events (the first send of
//!   a batch) and `warm` reuses events whose encoding is cached (a retry, or a second
//!   emitter sending the same events).
//! - `whole_path`: build, stamp and encode 10 and 100 events as one body.
//!
//! ```text
//! cargo bench --bench payload -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use snowplow_actix::wire::{self, StampedEvent, TrackerSettings};
use snowplow_actix::{Structured, Subject, Tracker};

/// A fixed `stm`, as an emitter takes one per request.
const STM_MS: u64 = 1_700_000_000_000;
/// Batch sizes of the body benchmarks.
const BATCHES: [usize; 2] = [10, 100];

/// Settings of a typical server-side tracker: namespace, app id and a subject.
fn settings() -> TrackerSettings {
    Tracker::builder("bench")
        .app_id("shop")
        .subject(
            Subject::new()
                .user_id("user-42")
                .ip_address("203.0.113.9")
                .useragent("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
                .lang("en-GB")
                .timezone("Europe/London"),
        )
        .settings()
        .expect("a non-empty namespace")
}

/// One structured event with every field set; `value` varies it between events.
fn structured(value: f64) -> Structured {
    Structured::new(black_box("shop"), black_box("add-to-basket"))
        .expect("non-empty category and action")
        .label(black_box("red shoes"))
        .property(black_box("size 42"))
        .value(black_box(value))
}

/// `count` stamped events whose encodings have not been computed yet.
fn stamped_events(settings: &TrackerSettings, count: usize) -> Vec<StampedEvent> {
    let mut events = Vec::with_capacity(count);
    for idx in 0..count {
        settings
            .stamp_each(structured(idx as f64), |event| events.push(event))
            .expect("a valid event");
    }
    events
}

fn stamp(c: &mut Criterion) {
    let settings = settings();
    let mut group = c.benchmark_group("stamp");
    group.throughput(Throughput::Elements(1));
    group.bench_function("structured", |b| {
        b.iter(|| settings.stamp(structured(2.0)).expect("a valid event"));
    });
    group.finish();
}

fn stamp_post_json(c: &mut Criterion) {
    let settings = settings();
    let mut group = c.benchmark_group("stamp_post_json");
    group.throughput(Throughput::Elements(1));
    group.bench_function("structured", |b| {
        b.iter(|| {
            let events = settings.stamp(structured(2.0)).expect("a valid event");
            events[0].to_post_json(black_box(STM_MS))
        });
    });
    group.finish();
}

fn post_body(c: &mut Criterion) {
    let settings = settings();
    let mut group = c.benchmark_group("post_body");
    let mut body = String::new();
    for count in BATCHES {
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::new("cold", count), &count, |b, &count| {
            b.iter_batched_ref(
                || stamped_events(&settings, count),
                |events| {
                    body.clear();
                    wire::push_post_body(&mut body, events.iter(), black_box(STM_MS));
                    black_box(body.len());
                },
                BatchSize::SmallInput,
            );
        });

        let events = stamped_events(&settings, count);
        group.bench_with_input(BenchmarkId::new("warm", count), &events, |b, events| {
            b.iter(|| {
                body.clear();
                wire::push_post_body(&mut body, events.iter(), black_box(STM_MS));
                black_box(body.len());
            });
        });
    }
    group.finish();
}

fn whole_path(c: &mut Criterion) {
    let settings = settings();
    let mut group = c.benchmark_group("whole_path");
    let mut events = Vec::new();
    let mut body = String::new();
    for count in BATCHES {
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::from_parameter(count), &count, |b, &count| {
            b.iter(|| {
                events.clear();
                for idx in 0..count {
                    settings
                        .stamp_each(structured(idx as f64), |event| events.push(event))
                        .expect("a valid event");
                }
                body.clear();
                wire::push_post_body(&mut body, events.iter(), black_box(STM_MS));
                black_box(body.len());
            });
        });
    }
    group.finish();
}

criterion_group!(benches, stamp, stamp_post_json, post_body, whole_path);
criterion_main!(benches);
