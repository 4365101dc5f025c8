//! Property tests of the pure core: cutting a queue into requests and the payload encodings
//! (those of the backoff delays are unit tests of `src/emitter/backoff.rs`). Case counts are
//! bounded so the whole file runs in a few seconds.

use std::sync::Arc;

use crate::common::collector::envelope::{self, form_decode};
use proptest::prelude::*;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use snowplow_actix::store::{batch_len, EventStore, InMemoryStore, StoredEvent};
use snowplow_actix::{
    wire::{self, StampedEvent, TrackerSettings},
    PageView, Structured,
};

/// Cases per property: enough to explore, few enough to stay fast in a debug build.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Cutting a queue into requests
// ---------------------------------------------------------------------------------------------

/// Checks one request cut from `queue` (costs by index) at `start`, `len` events long.
fn check_request(costs: &[usize], start: usize, len: usize, max_events: usize, max_cost: usize) {
    let remaining = costs.len() - start;
    assert!(len >= 1, "a non-empty queue gives at least one event");
    assert!(len <= remaining);
    assert!(
        len <= max_events,
        "{len} events above the batch size {max_events}"
    );
    let total: usize = costs[start..start + len].iter().sum();
    if len > 1 {
        assert!(
            total <= max_cost,
            "{total} bytes above the limit {max_cost}"
        );
    }
    // Greedy: a request stops early only because the next event would not fit.
    if len < max_events && len < remaining {
        assert!(
            total + costs[start + len] > max_cost,
            "the request of {len} events ({total} bytes) could take the next ({})",
            costs[start + len]
        );
    }
}

proptest! {
    #![proptest_config(config(1_000))]

    #[test]
    fn batch_len_cuts_every_event_exactly_once_in_order_within_the_limits(
        costs in prop::collection::vec(1usize..300, 0..120),
        max_events in 1usize..25,
        max_cost in 1usize..1_000,
    ) {
        let mut start = 0;
        let mut requests: Vec<Vec<usize>> = Vec::new();
        while start < costs.len() {
            let len = batch_len(costs[start..].iter().copied(), max_events, max_cost);
            check_request(&costs, start, len, max_events, max_cost);
            requests.push((start..start + len).collect());
            start += len;
        }
        let flat: Vec<usize> = requests.concat();
        prop_assert_eq!(flat, (0..costs.len()).collect::<Vec<_>>());
        prop_assert_eq!(batch_len(std::iter::empty(), max_events, max_cost), 0);
    }
}

/// One stamped event shared by every stored event (the store never looks inside).
fn shared_event() -> Arc<StampedEvent> {
    let settings = TrackerSettings::new("props").unwrap();
    Arc::new(
        settings
            .stamp(PageView::new("https://example.com/").unwrap())
            .expect("a valid event")
            .remove(0),
    )
}

fn stored(event: &Arc<StampedEvent>, seq: u64, cost: usize) -> StoredEvent {
    StoredEvent {
        seq,
        event: event.clone(),
        cost,
        attempts: 0,
        received_ms: 0,
    }
}

/// What happens to a leased batch.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// Sent: acknowledged.
    Sent,
    /// Retryable failure: every event back to the front.
    RetryAll,
    /// Some events retried (those with `keep` set in the mask), the others dropped.
    RetrySome(u32),
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        3 => Just(Outcome::Sent),
        1 => Just(Outcome::RetryAll),
        1 => any::<u32>().prop_map(Outcome::RetrySome),
    ]
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn leasing_from_the_in_memory_store_delivers_every_event_exactly_once_in_order(
        costs in prop::collection::vec(1usize..300, 0..80),
        max_events in 1usize..12,
        max_cost in 1usize..800,
        outcomes in prop::collection::vec(outcome(), 1..40),
    ) {
        let event = shared_event();
        let mut store = InMemoryStore::new(costs.len().max(1));
        for (seq, &cost) in costs.iter().enumerate() {
            store.add(stored(&event, seq as u64, cost)).unwrap();
        }
        let mut sent: Vec<u64> = Vec::new();
        let mut dropped: Vec<u64> = Vec::new();
        // Then everything succeeds, so the loop ends.
        let mut outcomes = outcomes.into_iter().chain(std::iter::repeat(Outcome::Sent));
        let mut leases = 0;
        while !store.is_empty() {
            leases += 1;
            prop_assert!(leases < 10_000, "leasing does not terminate");
            let lease = store.lease(max_events, max_cost).unwrap();
            let seqs: Vec<u64> = lease.events.iter().map(|e| e.seq).collect();
            let lease_costs: Vec<usize> = lease.events.iter().map(|e| e.cost).collect();
            prop_assert!(!seqs.is_empty());
            prop_assert!(seqs.len() <= max_events);
            prop_assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{:?}", seqs);
            if seqs.len() > 1 {
                prop_assert!(lease_costs.iter().sum::<usize>() <= max_cost);
            }
            prop_assert_eq!(store.leased(), seqs.len());
            // Nothing sent or dropped is ever handed out again, and the oldest goes first.
            prop_assert!(sent.iter().chain(&dropped).all(|done| !seqs.contains(done)));
            prop_assert!(sent.last().is_none_or(|&last| seqs[0] > last), "{:?} after {:?}", seqs, sent.last());
            match outcomes.next().unwrap() {
                Outcome::Sent => {
                    store.acknowledge(lease.id).unwrap();
                    sent.extend(seqs);
                }
                Outcome::RetryAll => store.requeue(lease.id, lease.events).unwrap(),
                Outcome::RetrySome(mask) => {
                    let (keep, drop): (Vec<_>, Vec<_>) = lease
                        .events
                        .into_iter()
                        .enumerate()
                        .partition(|(idx, _)| mask & (1 << (idx % 32)) != 0);
                    dropped.extend(drop.iter().map(|(_, e)| e.seq));
                    store
                        .requeue(lease.id, keep.into_iter().map(|(_, e)| e).collect())
                        .unwrap();
                }
            }
            prop_assert_eq!(store.leased(), 0);
        }
        prop_assert!(sent.windows(2).all(|pair| pair[0] < pair[1]), "in order: {:?}", sent);
        let mut settled: Vec<u64> = sent.iter().chain(&dropped).copied().collect();
        settled.sort_unstable();
        prop_assert_eq!(settled, (0..costs.len() as u64).collect::<Vec<_>>());
        prop_assert!(store.lease(max_events, max_cost).unwrap().events.is_empty());
    }

    #[test]
    fn several_outstanding_leases_settled_in_any_order_lose_and_repeat_nothing(
        count in 0u64..60,
        max_events in 1usize..8,
        plan in prop::collection::vec((0usize..4, any::<bool>()), 1..30),
    ) {
        let event = shared_event();
        let mut store = InMemoryStore::new(count.max(1) as usize);
        for seq in 0..count {
            store.add(stored(&event, seq, 1)).unwrap();
        }
        let mut outstanding = Vec::new();
        let mut sent: Vec<u64> = Vec::new();
        let mut plan = plan.into_iter().chain(std::iter::repeat((0, true)));
        let mut steps = 0;
        while !store.is_empty() || !outstanding.is_empty() {
            steps += 1;
            prop_assert!(steps < 10_000, "does not terminate");
            let (open, succeed) = plan.next().unwrap();
            // Keep up to `open + 1` leases outstanding, then settle the oldest or the newest.
            while outstanding.len() <= open && !store.is_empty() {
                let lease = store.lease(max_events, usize::MAX).unwrap();
                prop_assert!(lease.events.windows(2).all(|pair| pair[0].seq < pair[1].seq));
                outstanding.push(lease);
            }
            let in_leases: usize = outstanding.iter().map(|l| l.events.len()).sum();
            prop_assert_eq!(store.leased(), in_leases);
            prop_assert_eq!(store.len() + in_leases + sent.len(), count as usize);
            let lease = if succeed { outstanding.remove(0) } else { outstanding.pop().unwrap() };
            if succeed {
                sent.extend(lease.events.iter().map(|e| e.seq));
                store.acknowledge(lease.id).unwrap();
            } else {
                store.requeue(lease.id, lease.events).unwrap();
            }
        }
        sent.sort_unstable();
        prop_assert_eq!(sent, (0..count).collect::<Vec<_>>());
    }
}

// ---------------------------------------------------------------------------------------------
// Payload encodings
// ---------------------------------------------------------------------------------------------

/// A JSON object read with its members in order, every value a string.
struct Pairs(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// Text of every kind: ASCII with the characters JSON and forms escape, control characters,
/// and any Unicode scalar value.
fn text(min: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(
            prop_oneof![
                prop::char::range(' ', '~'),
                prop::sample::select(vec![
                    '"', '\\', '&', '=', '+', '%', ' ', '\n', '\r', '\t', '\u{0}', '\u{1f}',
                    '\u{7f}'
                ]),
            ],
            min..24
        )
        .prop_map(|chars| chars.into_iter().collect()),
        prop::collection::vec(any::<char>(), min..24).prop_map(|chars| chars.into_iter().collect()),
    ]
}

/// 13-digit `stm` values, as sizes assume.
fn stm() -> impl Strategy<Value = u64> {
    1_000_000_000_000u64..10_000_000_000_000
}

fn owned_pairs(event: &StampedEvent) -> Vec<(String, String)> {
    event
        .payload()
        .iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

fn with_stm(mut pairs: Vec<(String, String)>, stm: u64) -> Vec<(String, String)> {
    pairs.push(("stm".to_owned(), stm.to_string()));
    pairs
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn a_structured_event_round_trips_through_post_json_and_the_get_query(
        category in text(1),
        action in text(1),
        label in text(0),
        property in text(0),
        value in prop::option::of(-1e12f64..1e12),
        stm in stm(),
    ) {
        let mut event = Structured::new(category.clone(), action.clone())
            .unwrap()
            .label(label.clone())
            .property(property.clone());
        if let Some(value) = value {
            event = event.value(value);
        }
        let stamped = TrackerSettings::new("props").unwrap().stamp(event).unwrap().remove(0);
        let pairs = owned_pairs(&stamped);
        let payload = stamped.payload();
        // The event's own fields are its input, unchanged (an empty value is left out).
        prop_assert_eq!(payload.get("e"), Some("se"));
        prop_assert_eq!(payload.get("se_ca"), Some(category.as_str()));
        prop_assert_eq!(payload.get("se_ac"), Some(action.as_str()));
        prop_assert_eq!(payload.get("se_la"), Some(label.as_str()).filter(|l| !l.is_empty()));
        prop_assert_eq!(payload.get("se_pr"), Some(property.as_str()).filter(|p| !p.is_empty()));
        prop_assert_eq!(payload.get("se_va").map(|v| v.parse::<f64>().unwrap()), value);

        let json = stamped.to_post_json(stm);
        let Pairs(decoded) = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&decoded, &with_stm(pairs.clone(), stm));
        prop_assert_eq!(json.len(), stamped.post_size());

        let query = stamped.to_query(stm);
        let decoded = form_decode(&query).unwrap();
        prop_assert_eq!(&decoded, &with_stm(pairs, stm));
        prop_assert_eq!(query.len(), stamped.query_size());
        // Nothing that would split the query or the request line survives encoding.
        prop_assert!(query.bytes().all(|b| b.is_ascii_graphic()), "{}", query);
        prop_assert_eq!(query.matches('&').count(), payload.len());
    }

    #[test]
    fn a_post_body_of_several_events_decodes_to_each_events_pairs(
        labels in prop::collection::vec(text(0), 1..8),
        stm in stm(),
    ) {
        let settings = TrackerSettings::new("props").unwrap();
        let events: Vec<StampedEvent> = labels
            .iter()
            .flat_map(|label| settings.stamp(Structured::new("c", "a").unwrap().label(label.clone())).expect("a valid event"))
            .collect();
        let body = wire::post_body(&events, stm);
        // The collectors' parser: exactly an envelope of the crate's schema, string values.
        prop_assert_eq!(envelope::PAYLOAD_DATA_SCHEMA, wire::PAYLOAD_DATA_SCHEMA);
        let parsed = envelope::parse_post(body.as_bytes());
        prop_assert_eq!(parsed.verdict(), Ok(()));
        let decoded: Vec<Vec<(String, String)>> =
            parsed.events.into_iter().map(envelope::Event::into_owned).collect();
        let expected: Vec<Vec<(String, String)>> =
            events.iter().map(|e| with_stm(owned_pairs(e), stm)).collect();
        prop_assert_eq!(decoded, expected);
        prop_assert_eq!(body.len(), wire::post_body_size(events.iter().map(|e| e.post_size())));
    }
}
