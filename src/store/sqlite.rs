//! A durable store: events kept in a SQLite file (feature `sqlite`).
//!
//! ```text
//!  add ──INSERT──▶ events(seq, eid, payload, cost, attempts, received_ms, leased = 0)
//!  lease ─UPDATE──▶ leased = lease id           (advisory: who was in flight at a crash)
//!  acknowledge ───▶ DELETE the lease's rows, by seq (whatever the advisory mark says)
//!  requeue ───────▶ UPDATE attempts, leased = 0 (retried) and DELETE the rest, by seq, one transaction
//!  open ──────────▶ every row is queued again, in seq order (leases never settled included)
//! ```
//!
//! The queue is mirrored in memory (the events are in memory anyway: an emitter receives
//! them behind an `Arc`), so leasing and the counters never read the file; the file is
//! only read when the store is opened.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, TransactionBehavior};
use uuid::Uuid;

use super::{Added, EventStore, InMemoryStore, Lease, LeaseId, StoredEvent};
use crate::error::StoreError;
use crate::payload::{protocol_key, push_json_string, Payload};
use crate::wire::{now_ms, StampedEvent};

/// The layout version, kept in the file's `user_version`.
const SCHEMA_VERSION: i64 = 1;

/// How long [`SqliteStore::open`] waits for a file another store holds to be let go.
const LOCK_TIMEOUT: Duration = Duration::from_secs(2);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    eid TEXT NOT NULL,
    payload TEXT NOT NULL,
    cost INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    received_ms INTEGER NOT NULL,
    leased INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS unreadable_events (
    seq INTEGER,
    eid,
    payload,
    cost,
    attempts,
    received_ms,
    reason TEXT NOT NULL,
    found_ms INTEGER NOT NULL
);
";

const INSERT: &str = "INSERT INTO events (seq, eid, payload, cost, attempts, received_ms) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const MARK_LEASED: &str =
    "UPDATE events SET leased = ?1 WHERE seq BETWEEN ?2 AND ?3 AND leased = 0";
const REQUEUE_ONE: &str = "UPDATE events SET attempts = ?1, leased = 0 WHERE seq = ?2";
const SELECT_ALL: &str =
    "SELECT seq, eid, payload, cost, attempts, received_ms, leased FROM events ORDER BY seq";
const MOVE_UNREADABLE: &str = "INSERT INTO unreadable_events \
     SELECT seq, eid, payload, cost, attempts, received_ms, ?2, ?3 FROM events WHERE seq = ?1";
const DELETE_ONE: &str = "DELETE FROM events WHERE seq = ?1";
const CLEAR_LEASES: &str = "UPDATE events SET leased = 0 WHERE leased <> 0";

/// The seq range of a lease that is not settled yet (for the advisory mark).
#[derive(Debug, Clone, Copy)]
struct Leased {
    first: u64,
    last: u64,
}

/// A lease not settled yet: its events' seqs, what settling deletes (the advisory mark may
/// have failed to be written, on a full disk, and then matches nothing).
#[derive(Debug, Clone)]
struct Unsettled {
    seqs: Vec<u64>,
}

/// A durable [`EventStore`] in a SQLite file: events survive a restart or a crash of the
/// process, and are sent by the next emitter that opens the file.
///
/// # Guarantees
///
/// - An event is written to the file when the emitter stores it (one `INSERT`, its own
///   transaction) and deleted only when its request is settled: sent, or dropped with a
///   reason. Events still in an actor's mailbox at a crash were never stored.
/// - A batch handed out for a request and never settled (the process crashed or was killed
///   while the request was in flight) is queued again when the file is opened, in `seq`
///   order, with the same `eid`: delivery is **at least once**, and a pipeline can
///   de-duplicate on `eid`. [`in_flight_at_open`](Self::in_flight_at_open) counts them.
/// - Capacity and drop policy are those of [`InMemoryStore`](super::InMemoryStore): queued
///   plus leased events at most `capacity`, the newest refused when full. Events found at
///   open are all kept, even beyond the capacity (new ones are refused until there is room).
/// - [`is_durable`](EventStore::is_durable) is true: at shutdown an emitter leaves what it
///   could not send in the file for the next start instead of dropping it.
///
/// The queue is also kept in memory, as [`InMemoryStore`](super::InMemoryStore) keeps it
/// (an emitter holds the events anyway), so leasing and the counters never read the file:
/// it is read once, when the store is opened.
///
/// # Durability trade-off
///
/// The file is in WAL mode with `synchronous = NORMAL`: a write is in the operating
/// system's hands when `add` returns, but not necessarily on the disk. A crash or kill of
/// the process loses nothing; a power loss or kernel crash may lose the last transactions
/// (events added or settled just before), and never corrupts the file. This keeps a stored
/// event at a few microseconds (an `fsync` per event would cost milliseconds).
///
/// # One store per file
///
/// The file is opened in exclusive locking mode: while a store has it open, no other
/// store, process or `sqlite3` shell can use it. [`open`](Self::open) waits about two
/// seconds for a previous holder (an emitter still stopping) before failing.
///
/// # Errors
///
/// Failures (disk full, a locked, unreadable or corrupt file) are [`StoreError::Backend`],
/// never panics. They are logged with `tracing` at `debug` level where they are returned
/// to the emitter (which logs them as errors), and at `error` level where the store handles
/// them itself (opening, rows that cannot be read back). A row that cannot be rebuilt into
/// an event at open (a damaged row, a key outside the tracker protocol) is moved to the
/// table `unreadable_events` for inspection, counted in
/// [`unreadable`](EventStore::unreadable), and not sent.
///
/// The costs stored with the events are those of the emitter that stored them; an emitter
/// that reopens the file with another method or byte limit still cuts its requests by them.
///
/// # Examples
///
/// ```
/// use snowplow_actix::store::{EventStore, SqliteStore};
/// use snowplow_actix::EmitterBuilder;
///
/// let dir = std::env::temp_dir().join(format!("snowplow-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let store = SqliteStore::open(dir.join("events.db"), 10_000)?;
/// assert!(store.is_durable());
/// assert_eq!(store.recovered(), 0);
/// let emitter = EmitterBuilder::new("collector.example.com").event_store(store);
/// # drop(emitter);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// The queue and leases, as the in-memory store keeps them: only changes touch the file.
    mirror: InMemoryStore,
    /// The seq range of each unsettled lease, to mark and remove its rows.
    ranges: HashMap<LeaseId, Unsettled>,
    next_seq: u64,
    recovered: u64,
    recovered_cost: u64,
    unreadable: u64,
    in_flight_at_open: u64,
    /// Reused for each event's payload JSON.
    buf: String,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("capacity", &self.mirror.capacity())
            .field("queued", &self.mirror.len())
            .field("leased", &self.mirror.leased())
            .field("recovered", &self.recovered)
            .field("unreadable", &self.unreadable)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the store in the file at `path`, holding at most `capacity`
    /// events queued and leased together. Events left by a previous run are queued again,
    /// oldest first, and counted as [`recovered`](EventStore::recovered).
    ///
    /// Synchronous file I/O: open the store while setting up, before the emitter starts.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when the file cannot be created or opened, is not a SQLite
    /// database or is corrupt, is held by another store (after waiting about two seconds),
    /// has a layout of another version, or the WAL mode cannot be set.
    pub fn open(path: impl AsRef<Path>, capacity: usize) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let store = Self::open_inner(path, capacity);
        match &store {
            Ok(store) => {
                if store.recovered > 0 {
                    tracing::info!(
                        path = %path.display(),
                        recovered = store.recovered,
                        in_flight_at_crash = store.in_flight_at_open,
                        "event store: events from a previous run queued again (those that were in flight may be delivered twice, with the same eid)"
                    );
                }
                if store.recovered > capacity as u64 {
                    tracing::warn!(
                        path = %path.display(),
                        recovered = store.recovered,
                        capacity,
                        "event store: more events recovered than its capacity; all are kept, new ones are refused until there is room"
                    );
                }
            }
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "event store: cannot open");
            }
        }
        store
    }

    fn open_inner(path: &Path, capacity: usize) -> Result<Self, StoreError> {
        let fail = |op: &'static str| move |error| backend(path, op, error);
        let mut conn = Connection::open(path).map_err(fail("open"))?;
        conn.busy_timeout(LOCK_TIMEOUT).map_err(fail("open"))?;
        // Exclusive before WAL: the WAL index then lives in the process (no `-shm` file)
        // and the file stays locked for as long as this store has it open.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(fail("set the locking mode"))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(fail("set WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "SQLite event store {}: WAL mode unavailable (journal mode is `{mode}`)",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(fail("set synchronous mode"))?;

        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail("lock"))?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(fail("read the layout version"))?;
        match version {
            0 => {
                tx.execute_batch(SCHEMA)
                    .map_err(fail("create the tables"))?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(fail("create the tables"))?;
            }
            SCHEMA_VERSION => {}
            other => {
                return Err(StoreError::Backend(format!(
                    "SQLite event store {}: layout version {other} is not supported (expected {SCHEMA_VERSION})",
                    path.display()
                )));
            }
        }

        let mut mirror = InMemoryStore::new(capacity);
        let mut unreadable: Vec<(i64, String)> = Vec::new();
        let mut next_seq = 0u64;
        let mut recovered_cost = 0u64;
        let mut in_flight_at_open = 0u64;
        {
            let mut select = tx.prepare(SELECT_ALL).map_err(fail("read the events"))?;
            let mut rows = select.query([]).map_err(fail("read the events"))?;
            while let Some(row) = rows.next().map_err(fail("read the events"))? {
                let seq: i64 = row.get(0).map_err(fail("read the events"))?;
                if let Ok(seq) = u64::try_from(seq) {
                    next_seq = next_seq.max(seq.saturating_add(1));
                }
                match read_row(row) {
                    Ok((event, leased)) => {
                        recovered_cost = recovered_cost.saturating_add(event.cost as u64);
                        if leased {
                            in_flight_at_open += 1;
                        }
                        mirror.recover(event);
                    }
                    Err(reason) => unreadable.push((seq, reason)),
                }
            }
        }
        if !unreadable.is_empty() {
            let found = to_i64(now_ms());
            for (seq, reason) in &unreadable {
                tx.execute(MOVE_UNREADABLE, params![seq, reason, found])
                    .map_err(fail("set aside an unreadable event"))?;
                tx.execute(DELETE_ONE, params![seq])
                    .map_err(fail("set aside an unreadable event"))?;
            }
            tracing::error!(
                path = %path.display(),
                unreadable = unreadable.len(),
                first_seq = unreadable[0].0,
                reason = %unreadable[0].1,
                "event store: events that cannot be read back were moved to the table unreadable_events and will not be sent"
            );
        }
        tx.execute(CLEAR_LEASES, [])
            .map_err(fail("requeue leases"))?;
        tx.commit().map_err(fail("commit the recovery"))?;

        Ok(Self {
            conn,
            path: path.to_path_buf(),
            recovered: mirror.len() as u64,
            mirror,
            ranges: HashMap::new(),
            next_seq,
            recovered_cost,
            unreadable: unreadable.len() as u64,
            in_flight_at_open,
            buf: String::new(),
        })
    }

    /// The capacity: queued plus leased events at most.
    pub fn capacity(&self) -> usize {
        self.mirror.capacity()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Of the [`recovered`](EventStore::recovered) events, those that were in a request
    /// awaiting an answer when the previous process stopped without settling it (a crash or
    /// kill): the collector may already have them, so they may arrive twice (same `eid`).
    pub fn in_flight_at_open(&self) -> u64 {
        self.in_flight_at_open
    }

    fn fail(&self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |error| backend(&self.path, op, error)
    }

    fn insert(&mut self, event: &StoredEvent) -> Result<(), StoreError> {
        encode_payload(event.event.payload(), &mut self.buf);
        let mut eid = Uuid::encode_buffer();
        let eid: &str = event.event.id().hyphenated().encode_lower(&mut eid);
        let mut insert = self.conn.prepare_cached(INSERT).map_err(self.fail("add"))?;
        insert
            .execute(params![
                to_i64(event.seq),
                eid,
                self.buf,
                to_i64(event.cost as u64),
                event.attempts,
                to_i64(event.received_ms),
            ])
            .map_err(self.fail("add"))?;
        Ok(())
    }

    fn mark_leased(&self, id: LeaseId, lease: Leased) -> Result<(), StoreError> {
        let mut mark = self
            .conn
            .prepare_cached(MARK_LEASED)
            .map_err(self.fail("lease"))?;
        mark.execute(params![
            to_i64(id.0),
            to_i64(lease.first),
            to_i64(lease.last)
        ])
        .map_err(self.fail("lease"))?;
        Ok(())
    }

    /// Removes the lease's rows, except those in `retry`, which are queued again with
    /// their attempts; one transaction, by seq.
    fn settle(&mut self, lease: &Unsettled, retry: &[StoredEvent]) -> Result<(), StoreError> {
        let path = self.path.as_path();
        let what = if retry.is_empty() {
            "acknowledge"
        } else {
            "requeue"
        };
        let fail = |error| backend(path, what, error);
        let tx = self.conn.transaction().map_err(fail)?;
        {
            let mut update = tx.prepare_cached(REQUEUE_ONE).map_err(fail)?;
            for event in retry {
                update
                    .execute(params![event.attempts, to_i64(event.seq)])
                    .map_err(fail)?;
            }
            let kept: std::collections::HashSet<u64> = retry.iter().map(|e| e.seq).collect();
            let mut delete = tx.prepare_cached(DELETE_ONE).map_err(fail)?;
            for seq in lease.seqs.iter().filter(|seq| !kept.contains(seq)) {
                delete.execute(params![to_i64(*seq)]).map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)
    }
}

impl EventStore for SqliteStore {
    fn capacity(&self) -> Option<usize> {
        Some(self.mirror.capacity())
    }

    fn add(&mut self, event: StoredEvent) -> Result<Added, StoreError> {
        if self.mirror.is_full() {
            return Ok(Added::Full);
        }
        self.insert(&event)?;
        self.next_seq = self.next_seq.max(event.seq.saturating_add(1));
        self.mirror.add(event)
    }

    fn lease(&mut self, max_events: usize, max_cost: usize) -> Result<Lease, StoreError> {
        let lease = self.mirror.lease(max_events, max_cost)?;
        if let (Some(first), Some(last)) = (lease.events.first(), lease.events.last()) {
            let range = Leased {
                first: first.seq,
                last: last.seq,
            };
            // The mark only tells the next open which events were in flight at a crash
            // (they are queued again either way): a failure to write it is logged, and the
            // batch is still handed out.
            if let Err(error) = self.mark_leased(lease.id, range) {
                tracing::warn!(path = %self.path.display(), %error, "event store: could not mark a batch as in flight; sending it anyway");
            }
            let seqs = lease.events.iter().map(|event| event.seq).collect();
            self.ranges.insert(lease.id, Unsettled { seqs });
        }
        Ok(lease)
    }

    fn acknowledge(&mut self, lease: LeaseId) -> Result<(), StoreError> {
        self.mirror.acknowledge(lease)?;
        match self.ranges.remove(&lease) {
            // On failure the rows stay in the file: sent again after a restart (a
            // duplicate, never a loss).
            Some(unsettled) => self.settle(&unsettled, &[]),
            None => Ok(()),
        }
    }

    fn requeue(&mut self, lease: LeaseId, retry: Vec<StoredEvent>) -> Result<(), StoreError> {
        let result = match self.ranges.remove(&lease) {
            Some(unsettled) => self.settle(&unsettled, &retry),
            None => Ok(()),
        };
        // The in-memory queue takes the events back whatever the file said: on failure the
        // file still holds them (leased), and a restart queues them again.
        self.mirror.requeue(lease, retry)?;
        result
    }

    fn len(&self) -> usize {
        self.mirror.len()
    }

    fn leased(&self) -> usize {
        self.mirror.leased()
    }

    fn oldest_seq(&self) -> Option<u64> {
        self.mirror.oldest_seq()
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn recovered(&self) -> u64 {
        self.recovered
    }

    fn recovered_cost(&self) -> u64 {
        self.recovered_cost
    }

    fn unreadable(&self) -> u64 {
        self.unreadable
    }
}

/// A typed error for `op` on the file at `path`, logged at `debug` level (the caller
/// decides how loud to be).
fn backend(path: &Path, op: &'static str, error: rusqlite::Error) -> StoreError {
    let hint = match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            " (is another store or process using this file?)"
        }
        Some(ErrorCode::DiskFull) => " (disk full)",
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            " (not an event store, or corrupt)"
        }
        _ => "",
    };
    let error = StoreError::Backend(format!(
        "SQLite event store {}: {op} failed: {error}{hint}",
        path.display()
    ));
    tracing::debug!(%error, "event store error");
    error
}

/// SQLite integers are `i64`; seqs, costs and timestamps fit (saturating otherwise).
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The payload as a JSON array of `[key, value]` pairs, in order.
fn encode_payload(payload: &Payload, out: &mut String) {
    out.clear();
    out.push('[');
    for (idx, (key, value)) in payload.iter().enumerate() {
        if idx > 0 {
            out.push(',');
        }
        out.push('[');
        push_json_string(out, key);
        out.push(',');
        push_json_string(out, value);
        out.push(']');
    }
    out.push(']');
}

/// The longest GET URL a request can have (the awc transport refuses longer ones).
const MAX_URL_BYTES: usize = 64 * 1024;

/// Rebuilds a stored event, and whether it was leased; `Err` says why it cannot be.
fn read_row(row: &rusqlite::Row<'_>) -> Result<(StoredEvent, bool), String> {
    fn column<T: rusqlite::types::FromSql>(
        row: &rusqlite::Row<'_>,
        idx: usize,
        name: &str,
    ) -> Result<T, String> {
        row.get(idx)
            .map_err(|error| format!("column {name}: {error}"))
    }
    fn unsigned<T: TryFrom<i64>>(value: i64, name: &str) -> Result<T, String> {
        T::try_from(value).map_err(|_| format!("column {name}: {value} is out of range"))
    }
    let seq = unsigned(column(row, 0, "seq")?, "seq")?;
    let eid: String = column(row, 1, "eid")?;
    let payload: String = column(row, 2, "payload")?;
    let cost = unsigned(column(row, 3, "cost")?, "cost")?;
    let attempts = unsigned(column(row, 4, "attempts")?, "attempts")?;
    let received_ms = unsigned(column(row, 5, "received_ms")?, "received_ms")?;
    let leased = !matches!(column::<i64>(row, 6, "leased"), Ok(0));
    // The most an event of this payload can cost as sent: a GET query percent-encodes each
    // byte into at most 3, behind a URL of at most 64 KiB. A cost beyond is not this event's
    // (a damaged or forged row) and would size memory from the file.
    let most = payload
        .len()
        .saturating_mul(3)
        .saturating_add(MAX_URL_BYTES);
    if cost == 0 || cost > most {
        return Err(format!(
            "column cost: {cost} is implausible for a payload of {} bytes",
            payload.len()
        ));
    }
    let event = decode_event(&eid, &payload)?;
    Ok((
        StoredEvent {
            seq,
            event: Arc::new(event),
            cost,
            attempts,
            received_ms,
        },
        leased,
    ))
}

/// Rebuilds a stamped event from its stored `eid` and payload JSON.
fn decode_event(eid: &str, payload: &str) -> Result<StampedEvent, String> {
    let id = Uuid::parse_str(eid).map_err(|error| format!("eid: {error}"))?;
    let pairs: Vec<(String, String)> =
        serde_json::from_str(payload).map_err(|error| format!("payload: {error}"))?;
    let bytes = pairs.iter().map(|(_, value)| value.len()).sum();
    let mut rebuilt = Payload::with_capacity(pairs.len(), bytes);
    for (name, value) in &pairs {
        let Some(key) = protocol_key(name) else {
            let shown: String = name.chars().take(40).collect();
            return Err(format!(
                "payload: `{shown}` is not a payload_data 1-0-4 key"
            ));
        };
        rebuilt.add(key, value);
    }
    Ok(StampedEvent::new(id, rebuilt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::PROTOCOL_KEYS;
    use crate::{wire::TrackerSettings, PageView};

    #[test]
    fn protocol_keys_are_those_of_payload_data_1_0_4() {
        let schema = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/schemas/com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
        ))
        .unwrap();
        let schema: serde_json::Value = serde_json::from_str(&schema).unwrap();
        let mut expected: Vec<&str> = schema["items"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        expected.sort_unstable();
        let mut keys = PROTOCOL_KEYS.to_vec();
        keys.sort_unstable();
        assert_eq!(keys, expected);
        for key in PROTOCOL_KEYS {
            assert_eq!(protocol_key(key), Some(key));
        }
        assert_eq!(protocol_key("custom"), None);
        assert_eq!(protocol_key(""), None);
    }

    fn stored(seq: u64) -> StoredEvent {
        let settings = TrackerSettings::new("test").unwrap();
        let event = settings
            .stamp(PageView::new("https://x/").unwrap())
            .unwrap()
            .remove(0);
        let cost = event.post_size() + 1;
        StoredEvent {
            seq,
            event: Arc::new(event),
            cost,
            attempts: 0,
            received_ms: 0,
        }
    }

    /// Hardening finding: on a full disk the advisory mark of a lease is not written, and
    /// the acknowledge `DELETE … AND leased = id` matched nothing, so sent events were
    /// delivered again after a restart. Settling deletes the lease's rows by seq.
    #[test]
    fn finding_settling_a_lease_whose_mark_was_not_written_removes_its_rows() {
        let dir = std::env::temp_dir().join(format!("snowplow-settle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.db");
        let mut store = SqliteStore::open(&path, 10).unwrap();
        for seq in 0..6 {
            store.add(stored(seq)).unwrap();
        }
        let sent = store.lease(2, usize::MAX).unwrap();
        let failed = store.lease(2, usize::MAX).unwrap();
        // The marks did not reach the file.
        store
            .conn
            .execute("UPDATE events SET leased = 0", [])
            .unwrap();

        store.acknowledge(sent.id).unwrap();
        // Of the failed lease, seq 2 is retried and seq 3 dropped.
        let mut retry = failed.events;
        retry.truncate(1);
        store.requeue(failed.id, retry).unwrap();
        drop(store);

        let reopened = SqliteStore::open(&path, 10).unwrap();
        assert_eq!(reopened.recovered(), 3, "seqs 2, 4 and 5 only");
        assert_eq!(reopened.oldest_seq(), Some(2));
        drop(reopened);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn payloads_round_trip_through_their_json() {
        let settings = TrackerSettings::new("test").unwrap();
        let stamped = settings
            .stamp(
                PageView::new("https://x/a b?\"quoted\"\\\n\u{1}")
                    .unwrap()
                    .title("ünïcode 漢字 🎉"),
            )
            .unwrap()
            .remove(0);
        let mut json = String::new();
        encode_payload(stamped.payload(), &mut json);
        let mut eid = Uuid::encode_buffer();
        let eid: &str = stamped.id().hyphenated().encode_lower(&mut eid);
        let rebuilt = decode_event(eid, &json).unwrap();
        assert_eq!(rebuilt.id(), stamped.id());
        assert_eq!(rebuilt.payload(), stamped.payload());
        assert_eq!(rebuilt.to_post_json(1), stamped.to_post_json(1));
    }

    #[test]
    fn rows_that_cannot_be_rebuilt_say_why() {
        let eid = Uuid::new_v4().to_string();
        let cases = [
            ("not-a-uuid", r#"[["e","pv"]]"#, "eid"),
            (eid.as_str(), "{", "payload"),
            (eid.as_str(), r#"[["e","pv"],["custom","x"]]"#, "`custom`"),
        ];
        for (eid, payload, why) in cases {
            let error = decode_event(eid, payload).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
    }
}
