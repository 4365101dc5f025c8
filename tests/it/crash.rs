//! A crash loses nothing stored: a child process (this test binary, re-run) tracks events
//! into a SQLite store while the collector is down and is killed with SIGKILL once its
//! stats show them all stored; a new emitter on the same file delivers every one of them.
//!
//! The child's "collector" accepts connections and never answers, so the child has a
//! request in flight when it is killed: its batch (leased, never settled) is delivered
//! again by the new emitter, as the rest.
#![cfg(feature = "sqlite")]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::common::collector::{Faults, TestCollector};
use crate::common::support::{
    assert_balanced, assert_delivered, events, flush, stats, track_all, SOON,
};
use snowplow_actix::store::{EventStore, SqliteStore};
use snowplow_actix::{
    emitter::{GetStats, Shutdown},
    EmitterBuilder,
};

/// Set (to the store's path) in the child process only.
const CHILD_ENV: &str = "SNOWPLOW_CRASH_TEST_STORE";
/// The child test, run by its name in the test binary.
const CHILD_TEST: &str = "child_tracks_into_the_store_until_killed";
/// Events the child tracks.
const EVENTS: usize = 500;
/// What the child prints before each event id, and once all are stored.
const EID_LINE: &str = "crash-child eid ";
const STORED_LINE: &str = "crash-child stored ";

/// The child: does nothing unless run by [`a_killed_process_loses_nothing_it_stored`].
/// Tracks [`EVENTS`] events towards a collector that never answers, prints their ids,
/// waits until its stats show them all stored (queued or in flight), says so, and waits to
/// be killed.
#[actix_rt::test]
async fn child_tracks_into_the_store_until_killed() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = SqliteStore::open(PathBuf::from(path), 10_000).expect("child: open the store");
    // Connections complete in the listen backlog; nobody reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("child: bind");
    let emitter = EmitterBuilder::new(format!("http://{}", silent.local_addr().unwrap()))
        .request_timeout(Duration::from_secs(600))
        .event_store(store)
        .build()
        .expect("child: emitter settings")
        .start();
    let ids = track_all(&emitter, events(EVENTS));
    {
        let mut out = std::io::stdout().lock();
        for id in &ids {
            writeln!(out, "{EID_LINE}{id}").unwrap();
        }
        out.flush().unwrap();
    }
    // The mailbox is FIFO, so the first answer already counts every event; the loop only
    // guards against a future change of that, and is bounded.
    let mut now = emitter.send(GetStats).await.expect("child: emitter alive");
    for _ in 0..1_000 {
        if now.queued + now.in_flight == EVENTS as u64 {
            break;
        }
        now = emitter.send(GetStats).await.expect("child: emitter alive");
    }
    assert_balanced(&now);
    assert_eq!(now.dropped.total(), 0, "{now:#?}");
    assert_eq!(
        now.queued + now.in_flight,
        EVENTS as u64,
        "child: not all stored"
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "{STORED_LINE}{} {}", now.queued, now.in_flight).unwrap();
    out.flush().unwrap();
    drop(out);
    // Keep sending (and failing) until killed.
    std::future::pending::<()>().await;
}

/// What the child printed: its event ids, and its queued and in-flight events once all
/// were stored.
#[derive(Debug, Default)]
struct ChildOutput {
    ids: Vec<String>,
    stored: Option<(u64, u64)>,
}

fn read_child(stdout: impl std::io::Read) -> ChildOutput {
    let mut output = ChildOutput::default();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        // The test harness may print the test's name on the same line, before it.
        if let Some((_, id)) = line.split_once(EID_LINE) {
            output.ids.push(id.to_owned());
        } else if let Some((_, count)) = line.split_once(STORED_LINE) {
            output.stored = count.split_once(' ').and_then(|(queued, in_flight)| {
                Some((queued.parse().ok()?, in_flight.parse().ok()?))
            });
            break;
        }
    }
    output
}

#[actix_rt::test]
async fn a_killed_process_loses_nothing_it_stored() {
    let dir = std::env::temp_dir().join(format!("snowplow-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.db");

    let mut child = crate::common::support::child_test(module_path!(), CHILD_TEST)
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().unwrap();
    let reading = actix_rt::task::spawn_blocking(move || read_child(stdout));
    let output = tokio::time::timeout(Duration::from_secs(60), reading).await;
    // Killed once it said all were stored (or on any failure): SIGKILL on unix.
    child.kill().expect("kill the child");
    let status = child.wait().unwrap();
    let output = output
        .expect("the child reports within 60 s")
        .expect("reading the child's output");
    assert!(!status.success(), "the child was killed: {status:?}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
    let (queued, in_flight) = output.stored.expect("the child said all were stored");
    assert_eq!(queued + in_flight, EVENTS as u64);
    // One batch (the default 10 events) was in a request awaiting an answer.
    assert_eq!(in_flight, 10, "{output:?}");
    assert_eq!(output.ids.len(), EVENTS);

    let collector = TestCollector::with_faults(Faults::none()).await;
    let store = SqliteStore::open(&path, 10_000).expect("reopen after the kill");
    assert_eq!(store.recovered(), EVENTS as u64);
    assert_eq!(store.unreadable(), 0);
    assert_eq!(store.next_seq(), EVENTS as u64);
    // Requests the child had in flight at the kill: the only possible duplicates.
    let in_flight_at_kill = store.in_flight_at_open();
    assert_eq!(in_flight_at_kill, in_flight);
    let config = EmitterBuilder::new(collector.endpoint())
        .event_store(store)
        .build()
        .unwrap();
    let final_stats = config.final_stats();
    let emitter = config.start();
    let report = flush(&emitter).await;

    assert_delivered(&report, EVENTS as u64);
    let received = collector.event_ids();
    let unique: HashSet<&str> = received.iter().map(String::as_str).collect();
    let expected: HashSet<&str> = output.ids.iter().map(String::as_str).collect();
    assert_eq!(
        unique, expected,
        "every event the child stored, and only those"
    );
    let duplicates = received.len() - unique.len();
    assert!(duplicates as u64 <= in_flight_at_kill);
    // This collector was down while the child ran: nothing was accepted twice.
    assert_eq!(duplicates, 0, "in flight at the kill: {in_flight_at_kill}");
    assert_eq!(received, output.ids, "delivered in the order tracked");
    let now = stats(&emitter).await;
    assert_eq!(
        (now.received, now.recovered, now.sent),
        (0, EVENTS as u64, EVENTS as u64)
    );

    emitter.send(Shutdown::with_timeout(SOON)).await.unwrap();
    let last = final_stats.get().expect("final stats");
    assert_balanced(&last);
    drop(emitter);
    let _ = std::fs::remove_dir_all(&dir);
}
