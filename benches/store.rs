//! Cost per event of an emitter's store cycle: add 10 events, lease them as one batch,
//! acknowledge the batch (a request that succeeded), for the default [`InMemoryStore`] and
//! the durable [`SqliteStore`] (WAL, `synchronous = NORMAL`, a file in the temp dir).
//!
//! Every group reports a per-event rate (`Throughput::Elements`). The events are stamped
//! once beforehand (as the tracker does) and shared behind an `Arc`, as an emitter receives
//! them; what is measured is the store alone.
//!
//! ```text
//! cargo bench --features sqlite --bench store -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use snowplow_actix::store::{EventStore, InMemoryStore, SqliteStore, StoredEvent};
use snowplow_actix::wire::StampedEvent;
use snowplow_actix::{Structured, Subject, Tracker};

/// Events per lease (the default POST batch size).
const BATCH: usize = 10;
/// Large enough never to refuse an event.
const CAPACITY: usize = 100_000;

/// Ten structured events of a typical server-side tracker (namespace, app id, subject),
/// about 400 bytes each as sent.
fn stamped() -> Vec<Arc<StampedEvent>> {
    let settings = Tracker::builder("bench")
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
        .expect("a non-empty namespace");
    (0..BATCH)
        .flat_map(|idx| {
            settings
                .stamp(
                    Structured::new("shop", "add-to-basket")
                        .expect("non-empty category and action")
                        .label("red shoes")
                        .property("size 42")
                        .value(idx as f64),
                )
                .expect("a valid event")
        })
        .map(Arc::new)
        .collect()
}

/// One cycle: add the batch with fresh seqs, lease it, acknowledge it.
fn cycle(store: &mut dyn EventStore, events: &[Arc<StampedEvent>], next_seq: &mut u64) {
    for event in events {
        let stored = StoredEvent {
            seq: *next_seq,
            event: event.clone(),
            cost: 400,
            attempts: 0,
            received_ms: 1_700_000_000_000,
        };
        *next_seq += 1;
        store.add(stored).expect("add");
    }
    let lease = store.lease(BATCH, usize::MAX).expect("lease");
    debug_assert_eq!(lease.events.len(), BATCH);
    black_box(&lease.events);
    store.acknowledge(lease.id).expect("acknowledge");
}

/// A fresh directory for the SQLite file, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("snowplow-bench-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn store_cycle(c: &mut Criterion) {
    let events = stamped();
    let mut group = c.benchmark_group("add_lease_acknowledge");
    group.throughput(Throughput::Elements(BATCH as u64));

    let mut memory = InMemoryStore::new(CAPACITY);
    let mut seq = 0;
    group.bench_function("in_memory", |b| {
        b.iter(|| cycle(&mut memory, &events, &mut seq))
    });

    let dir = TempDir::new();
    let mut sqlite = SqliteStore::open(dir.0.join("events.db"), CAPACITY).expect("open");
    let mut seq = 0;
    group.bench_function("sqlite", |b| {
        b.iter(|| cycle(&mut sqlite, &events, &mut seq))
    });
    group.finish();
    drop(sqlite);
}

criterion_group!(benches, store_cycle);
criterion_main!(benches);
