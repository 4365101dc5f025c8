//! The SQLite event store: the `EventStore` contract through the trait, recovery after a
//! restart, typed errors, and emitters delivering from it end to end.
#![cfg(feature = "sqlite")]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::collector::{Faults, TestCollector};
use crate::common::support::{
    assert_balanced, assert_delivered, assert_settled, events, flush, labels, range_labels, stats,
    track_all, wait_events, SOON,
};
use actix::{Addr, Arbiter};
use snowplow_actix::store::{Added, EventStore, LeaseId, SqliteStore, StoredEvent};
use snowplow_actix::{
    emitter::{Emitter, EmitterConfig, Shutdown},
    store::StoreError,
    wire::StampedEvent,
    EmitterBuilder, EmitterStats,
};

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "snowplow-sqlite-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        Self(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("events.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stored(seq: u64, event: StampedEvent, cost: usize) -> StoredEvent {
    StoredEvent {
        seq,
        event: Arc::new(event),
        cost,
        attempts: 0,
        received_ms: 1_700_000_000_000 + seq,
    }
}

/// Events `0..n` (labelled by their seq), each of cost 1.
fn stored_events(n: usize) -> Vec<StoredEvent> {
    events(n)
        .into_iter()
        .enumerate()
        .map(|(seq, event)| stored(seq as u64, event, 1))
        .collect()
}

fn seqs(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

fn open(path: &Path, capacity: usize) -> SqliteStore {
    SqliteStore::open(path, capacity).expect("open the store")
}

fn add_all(store: &mut SqliteStore, events: Vec<StoredEvent>) {
    for event in events {
        assert_eq!(store.add(event).unwrap(), Added::Stored);
    }
}

#[test]
fn leases_are_cut_oldest_first_and_requeued_events_go_back_in_order() {
    let dir = TempDir::new("order");
    let mut store = open(&dir.db(), 100);
    assert_eq!((store.len(), store.leased(), store.next_seq()), (0, 0, 0));
    add_all(&mut store, stored_events(6));
    assert_eq!((store.len(), store.oldest_seq()), (6, Some(0)));

    let first = store.lease(2, usize::MAX).unwrap();
    let second = store.lease(2, usize::MAX).unwrap();
    assert_eq!(
        (seqs(&first.events), seqs(&second.events)),
        (vec![0, 1], vec![2, 3])
    );
    assert_eq!(
        (store.len(), store.leased(), store.oldest_seq()),
        (2, 4, Some(4))
    );

    // The newer lease fails first, then the older one keeps one of its two events.
    store.requeue(second.id, second.events).unwrap();
    let mut retry = first.events[1].clone();
    retry.attempts = 1;
    store.requeue(first.id, vec![retry]).unwrap();
    assert_eq!(
        (store.len(), store.leased(), store.oldest_seq()),
        (5, 0, Some(1))
    );

    let all = store.lease(10, usize::MAX).unwrap();
    assert_eq!(seqs(&all.events), [1, 2, 3, 4, 5]);
    assert_eq!(all.events[0].attempts, 1);
    store.acknowledge(all.id).unwrap();
    assert!(store.is_empty());
    assert_eq!((store.leased(), store.oldest_seq()), (0, None));
    assert!(store.lease(10, usize::MAX).unwrap().events.is_empty());
}

#[test]
fn leases_respect_the_cost_limit_and_send_a_lone_oversize_event() {
    let dir = TempDir::new("cost");
    let mut store = open(&dir.db(), 10);
    let mut events = events(3).into_iter();
    for (seq, cost) in [(0, 100), (1, 10), (2, 10)] {
        store
            .add(stored(seq, events.next().unwrap(), cost))
            .unwrap();
    }
    assert_eq!(seqs(&store.lease(10, 50).unwrap().events), [0]);
    assert_eq!(seqs(&store.lease(10, 50).unwrap().events), [1, 2]);
}

#[test]
fn capacity_counts_queued_and_leased_drops_newest_and_never_counts_requeued_twice() {
    let dir = TempDir::new("capacity");
    let mut store = open(&dir.db(), 3);
    let mut events = stored_events(6).into_iter();
    for _ in 0..3 {
        assert_eq!(store.add(events.next().unwrap()).unwrap(), Added::Stored);
    }
    let lease = store.lease(2, usize::MAX).unwrap();
    assert_eq!(store.add(events.next().unwrap()).unwrap(), Added::Full);

    store.requeue(lease.id, lease.events).unwrap();
    assert_eq!((store.len(), store.leased()), (3, 0));
    assert_eq!(store.add(events.next().unwrap()).unwrap(), Added::Full);

    let lease = store.lease(1, usize::MAX).unwrap();
    store.acknowledge(lease.id).unwrap();
    assert_eq!(store.add(events.next().unwrap()).unwrap(), Added::Stored);
    assert_eq!((store.len(), store.leased()), (3, 0));
    drop(store);

    // The refused events were never written.
    let reopened = open(&dir.db(), 3);
    assert_eq!(reopened.recovered(), 3);
}

#[test]
fn settling_an_unknown_or_empty_lease_changes_nothing() {
    let dir = TempDir::new("unknown");
    let mut store = open(&dir.db(), 10);
    let empty = store.lease(10, usize::MAX).unwrap();
    assert!(empty.events.is_empty());
    store.acknowledge(empty.id).unwrap();
    store.acknowledge(LeaseId(999)).unwrap();
    add_all(&mut store, stored_events(2));
    store.requeue(LeaseId(999), Vec::new()).unwrap();
    assert_eq!((store.len(), store.leased()), (2, 0));
}

#[test]
fn reopening_recovers_every_unacknowledged_event_including_unsettled_leases() {
    let dir = TempDir::new("recover");
    let originals = stored_events(7);
    let expected: Vec<(String, String)> = originals
        .iter()
        .map(|e| (e.event.id().to_string(), e.event.to_post_json(1)))
        .collect();
    let mut store = open(&dir.db(), 100);
    add_all(&mut store, originals);
    let sent = store.lease(2, usize::MAX).unwrap(); // 0, 1: acknowledged
    store.acknowledge(sent.id).unwrap();
    let failed = store.lease(2, usize::MAX).unwrap(); // 2, 3: failed once, requeued
    let retry: Vec<StoredEvent> = failed
        .events
        .iter()
        .cloned()
        .map(|mut e| {
            e.attempts = 1;
            e
        })
        .collect();
    store.requeue(failed.id, retry).unwrap();
    let in_flight = store.lease(3, usize::MAX).unwrap(); // 2, 3, 4: in flight at the "crash"
    assert_eq!(seqs(&in_flight.events), [2, 3, 4]);
    drop(store); // never settled

    let mut reopened = open(&dir.db(), 100);
    assert!(reopened.is_durable());
    assert_eq!(reopened.recovered(), 5);
    assert_eq!(reopened.in_flight_at_open(), 3);
    assert_eq!(reopened.recovered_cost(), 5);
    assert_eq!(reopened.unreadable(), 0);
    assert_eq!(reopened.next_seq(), 7);
    assert_eq!((reopened.len(), reopened.leased()), (5, 0));
    let all = reopened.lease(10, usize::MAX).unwrap();
    assert_eq!(seqs(&all.events), [2, 3, 4, 5, 6]);
    let attempts: Vec<u32> = all.events.iter().map(|e| e.attempts).collect();
    assert_eq!(attempts, [1, 1, 0, 0, 0]);
    for event in &all.events {
        let (eid, json) = &expected[event.seq as usize];
        assert_eq!(&event.event.id().to_string(), eid);
        assert_eq!(
            &event.event.to_post_json(1),
            json,
            "payload rebuilt as stored"
        );
        assert_eq!(event.received_ms, 1_700_000_000_000 + event.seq);
    }

    // New events continue the sequence; a settled store reopens empty.
    let next = events(1).remove(0);
    reopened.add(stored(reopened.next_seq(), next, 1)).unwrap();
    assert_eq!(reopened.next_seq(), 8);
    reopened.acknowledge(all.id).unwrap();
    let last = reopened.lease(10, usize::MAX).unwrap();
    assert_eq!(seqs(&last.events), [7]);
    reopened.acknowledge(last.id).unwrap();
    drop(reopened);
    let empty = open(&dir.db(), 100);
    assert_eq!(
        (empty.recovered(), empty.in_flight_at_open(), empty.len()),
        (0, 0, 0)
    );
}

#[test]
fn a_file_that_is_not_a_database_is_a_typed_error() {
    let dir = TempDir::new("corrupt");
    std::fs::write(dir.db(), vec![0x5a_u8; 8192]).unwrap();

    let error = SqliteStore::open(dir.db(), 10).unwrap_err();

    let StoreError::Backend(message) = &error else {
        panic!("unexpected error {error:?}");
    };
    assert!(
        message.contains("not an event store, or corrupt"),
        "{message}"
    );
}

#[test]
fn a_file_in_a_missing_directory_is_a_typed_error() {
    let dir = TempDir::new("missing");
    let error = SqliteStore::open(dir.0.join("no/such/dir/events.db"), 10).unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
}

#[test]
fn a_file_held_by_another_store_is_a_typed_error() {
    let dir = TempDir::new("locked");
    let mut holder = open(&dir.db(), 10);
    add_all(&mut holder, stored_events(1));

    let error = SqliteStore::open(dir.db(), 10).unwrap_err();

    let StoreError::Backend(message) = &error else {
        panic!("unexpected error {error:?}");
    };
    assert!(message.contains("another store"), "{message}");
    drop(holder);
    assert_eq!(open(&dir.db(), 10).recovered(), 1);
}

/// Hardening finding: the `cost` column was trusted and later sized an allocation, so a
/// row with `i64::MAX` panicked the emitter and one with 2^40 aborted the process, on every
/// restart. An implausible cost now sets the row aside like any unreadable one.
#[test]
fn finding_a_forged_cost_is_set_aside_and_sizes_nothing() {
    let dir = TempDir::new("forged-cost");
    let mut store = open(&dir.db(), 10);
    add_all(&mut store, stored_events(4));
    drop(store);
    {
        let conn = rusqlite::Connection::open(dir.db()).unwrap();
        conn.execute(
            "UPDATE events SET cost = 9223372036854775807 WHERE seq = 0",
            [],
        )
        .unwrap();
        conn.execute("UPDATE events SET cost = 1099511627776 WHERE seq = 1", [])
            .unwrap();
        conn.execute("UPDATE events SET cost = 0 WHERE seq = 2", [])
            .unwrap();
    }

    let mut reopened = open(&dir.db(), 10);

    assert_eq!((reopened.recovered(), reopened.unreadable()), (1, 3));
    assert_eq!(seqs(&reopened.lease(10, usize::MAX).unwrap().events), [3]);
    drop(reopened);
    let conn = rusqlite::Connection::open(dir.db()).unwrap();
    let reasons: Vec<String> = conn
        .prepare("SELECT reason FROM unreadable_events ORDER BY seq")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(reasons.len(), 3);
    assert!(
        reasons.iter().all(|reason| reason.contains("cost")),
        "{reasons:?}"
    );
}

#[test]
fn rows_that_cannot_be_read_back_are_set_aside_counted_and_not_sent() {
    let dir = TempDir::new("unreadable");
    let mut store = open(&dir.db(), 10);
    add_all(&mut store, stored_events(4));
    drop(store);
    {
        let conn = rusqlite::Connection::open(dir.db()).unwrap();
        conn.execute(
            "UPDATE events SET payload = '[[\"e\",\"se\"],[\"custom\",\"x\"]]' WHERE seq = 1",
            [],
        )
        .unwrap();
        conn.execute("UPDATE events SET eid = 'not-a-uuid' WHERE seq = 2", [])
            .unwrap();
    }

    let mut reopened = open(&dir.db(), 10);

    assert_eq!((reopened.recovered(), reopened.unreadable()), (2, 2));
    assert_eq!(reopened.next_seq(), 4);
    assert_eq!(
        seqs(&reopened.lease(10, usize::MAX).unwrap().events),
        [0, 3]
    );
    drop(reopened);
    let conn = rusqlite::Connection::open(dir.db()).unwrap();
    let reasons: Vec<(i64, String)> = conn
        .prepare("SELECT seq, reason FROM unreadable_events ORDER BY seq")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, 1);
    assert!(reasons[0].1.contains("`custom`"), "{reasons:?}");
    assert_eq!(reasons[1].0, 2);
    assert!(reasons[1].1.starts_with("eid"), "{reasons:?}");
    drop(conn);
    // Set aside once: the next open finds only the readable ones.
    let again = open(&dir.db(), 10);
    assert_eq!((again.recovered(), again.unreadable()), (2, 0));
}

// ---------------------------------------------------------------------------------------------
// End to end: emitters on the store
// ---------------------------------------------------------------------------------------------

/// An emitter on its own arbiter, to stop and join (dropping its store) at will.
struct Running {
    emitter: Addr<Emitter>,
    arbiter: Arbiter,
    config_stats: snowplow_actix::emitter::FinalStats,
}

fn start(config: EmitterConfig) -> Running {
    let config_stats = config.final_stats();
    let arbiter = Arbiter::new();
    let emitter = config.start_in(&arbiter.handle());
    Running {
        emitter,
        arbiter,
        config_stats,
    }
}

impl Running {
    /// Shuts the emitter down, then stops and joins its arbiter (the store is closed once
    /// this returns); the emitter's last stats.
    async fn shut_down(self, timeout: Duration) -> EmitterStats {
        self.emitter
            .send(Shutdown::with_timeout(timeout))
            .await
            .expect("emitter alive");
        self.arbiter.stop();
        actix_rt::task::spawn_blocking(move || self.arbiter.join())
            .await
            .unwrap()
            .unwrap();
        self.config_stats.get().expect("final stats published")
    }
}

#[actix_rt::test]
async fn an_emitter_on_a_sqlite_store_delivers_everything_and_leaves_it_empty() {
    let dir = TempDir::new("deliver");
    let collector = TestCollector::with_faults(Faults::none()).await;
    let running = start(
        EmitterBuilder::new(collector.endpoint())
            .event_store(open(&dir.db(), 1_000))
            .build()
            .unwrap(),
    );

    let ids = track_all(&running.emitter, events(95));
    let report = flush(&running.emitter).await;

    assert_delivered(&report, 95);
    assert_eq!(labels(&collector.events()), range_labels(0..95));
    assert_eq!(collector.event_ids(), ids);
    let live = stats(&running.emitter).await;
    assert_eq!((live.received, live.recovered, live.sent), (95, 0, 95));
    let last = running.shut_down(SOON).await;
    assert_balanced(&last);
    let reopened = open(&dir.db(), 1_000);
    assert_eq!((reopened.recovered(), reopened.next_seq()), (0, 0));
}

#[actix_rt::test]
async fn a_second_emitter_delivers_what_the_first_left_while_the_collector_was_down() {
    let dir = TempDir::new("handover");
    // Down: connections complete in the listen backlog, nobody answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let first = start(
        EmitterBuilder::new(format!("http://{}", silent.local_addr().unwrap()))
            .request_timeout(Duration::from_secs(600))
            .event_store(open(&dir.db(), 1_000))
            .build()
            .unwrap(),
    );
    let ids = track_all(&first.emitter, events(57));
    // The mailbox is FIFO: this answer comes after every event was stored.
    let before = stats(&first.emitter).await;
    assert_eq!(before.received, 57);
    // The first batch is in a request that will never be answered.
    assert_eq!((before.queued, before.in_flight), (47, 10), "{before:#?}");

    let last = first.shut_down(Duration::from_millis(300)).await;

    // Nothing dropped: a durable store keeps what is left for the next start, the
    // abandoned request's events back in the queue.
    assert_balanced(&last);
    assert_eq!((last.sent, last.dropped.total()), (0, 0), "{last:#?}");
    assert_eq!((last.queued, last.in_flight), (57, 0), "{last:#?}");

    let collector = TestCollector::with_faults(Faults::none()).await;
    let store = open(&dir.db(), 1_000);
    assert_eq!((store.recovered(), store.next_seq()), (57, 57));
    let second = start(
        EmitterBuilder::new(collector.endpoint())
            .event_store(store)
            .build()
            .unwrap(),
    );
    let more = track_all(&second.emitter, events(3));
    let report = flush(&second.emitter).await;

    assert_delivered(&report, 60);
    let received = collector.event_ids();
    assert_eq!(received, [ids, more].concat(), "every event once, in order");
    let now = stats(&second.emitter).await;
    // received + recovered = sent + Σ dropped + queued + in_flight
    assert_eq!(
        (now.received, now.recovered, now.sent, now.dropped.total()),
        (3, 57, 60, 0)
    );
    let last = second.shut_down(SOON).await;
    assert_balanced(&last);
    assert_eq!(open(&dir.db(), 1_000).recovered(), 0);
}

#[actix_rt::test]
async fn recovered_events_are_sent_at_start_and_unreadable_ones_counted_as_dropped() {
    let dir = TempDir::new("recovered");
    let left = events(4);
    let ids: Vec<String> = left.iter().map(|e| e.id().to_string()).collect();
    let mut store = open(&dir.db(), 100);
    for (seq, event) in left.into_iter().enumerate() {
        let cost = event.post_size() + 1;
        store.add(stored(seq as u64, event, cost)).unwrap();
    }
    drop(store);
    rusqlite::Connection::open(dir.db())
        .unwrap()
        .execute("UPDATE events SET payload = 'damaged' WHERE seq = 2", [])
        .unwrap();
    let collector = TestCollector::with_faults(Faults::none()).await;

    // Fewer than a batch and no flush: sent because they were recovered.
    let running = start(
        EmitterBuilder::new(collector.endpoint())
            .event_store(open(&dir.db(), 100))
            .build()
            .unwrap(),
    );
    wait_events(&collector, 3).await;
    // Settled once its answer is handled.
    let report = flush(&running.emitter).await;

    assert_settled(&report);
    assert_eq!(
        collector.event_ids(),
        [ids[0].clone(), ids[1].clone(), ids[3].clone()]
    );
    let now = stats(&running.emitter).await;
    assert_eq!(
        (now.recovered, now.sent, now.dropped.store, now.queued_bytes),
        (4, 3, 1, 0),
        "{now:#?}"
    );
    let last = running.shut_down(SOON).await;
    assert_balanced(&last);
}
