//! Several emitters on one tracker: every event goes to each of them (fan-out), an emitter
//! can be added while the tracker runs, and an emitter can have its own flush timer.
//!
//! Three Snowplow collectors run inside the example, on 127.0.0.1: a "primary", a "mirror"
//! and an "archive". The tracker starts with a POST emitter to the primary; a GET emitter
//! to the mirror is added at run time; a second POST emitter, to the archive, is added
//! after a first wave of events and so receives only the later ones. The
//! primary emitter batches 50 events, more than are tracked, so its own 200 ms flush timer
//! is what delivers them. Everything stops by itself.
//!
//! ```text
//! cargo run --example multiple_emitters
//! ```

#[path = "common/collector.rs"]
mod collector;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use snowplow_actix::{EmitterBuilder, Method, PageView, Structured, Tracker};

use collector::{Collector, CollectorConfig, ReceivedEvent};

type Error = Box<dyn std::error::Error>;

#[actix_rt::main]
async fn main() -> Result<(), Error> {
    let primary = Collector::start(CollectorConfig::default())?;
    let mirror = Collector::start(CollectorConfig::default())?;
    let archive = Collector::start(CollectorConfig::default())?;
    println!("primary collector on {}", primary.endpoint());
    println!("mirror collector on  {}", mirror.endpoint());
    println!("archive collector on {}", archive.endpoint());

    // One emitter at first, batching 50 events; no tracker-wide flush timer, so events
    // below a batch wait for a flush.
    let tracker = Tracker::builder("multi")
        .app_id("shop")
        .emitter(EmitterBuilder::new(primary.endpoint()).batch_size(50))
        .no_flush_timer()
        .build()?;

    // This emitter's own timer: every 200 ms it sends what it holds (the Python tracker's
    // `e1.set_flush_timer(..)`).
    tracker.emitters()[0].set_flush_timer(Duration::from_millis(200));

    // Added at run time: a GET emitter to the mirror. It receives the events tracked from
    // now on; GET sends each event at once.
    let mirror_get =
        tracker.add_emitter(EmitterBuilder::new(mirror.endpoint()).method(Method::Get))?;
    println!("added emitter {} (GET)", mirror_get.name());

    // First wave: 12 events, to both emitters.
    let mut first_wave = BTreeSet::new();
    let started = Instant::now();
    for page in 0..6 {
        let view = PageView::new(format!("https://shop.example/products/{page}"))?;
        first_wave.insert(tracker.track(view.title("Product"))?.to_string());
        let basket = Structured::new("shop", "add-to-basket")?.label(format!("product {page}"));
        first_wave.insert(tracker.track(basket)?.to_string());
    }
    println!("tracked {} events", first_wave.len());

    // No flush here: the primary emitter's timer delivers the 12 events (fewer than its
    // batch of 50). Wait for them with a deadline, as a test would.
    let received = primary
        .wait_for_events(first_wave.len() as u64, Duration::from_secs(5))
        .await;
    println!(
        "primary collector: {} events after {} ms, sent by the emitter's flush timer",
        received.events,
        started.elapsed().as_millis()
    );
    if received.events != first_wave.len() as u64 {
        return Err("the flush timer did not deliver the first wave".into());
    }

    // A third emitter, added now: a POST emitter to the archive. It only gets the events
    // tracked after this.
    let archive_post = tracker.add_emitter(EmitterBuilder::new(archive.endpoint()))?;
    println!("added emitter {} (POST)", archive_post.name());

    let mut second_wave = BTreeSet::new();
    for search in ["red shoes", "blue socks", "green hat"] {
        let event = Structured::new("shop", "search")?.label(search);
        second_wave.insert(tracker.track(event)?.to_string());
    }
    println!("tracked {} more events", second_wave.len());

    // A sync flush of every emitter: it returns once they have all answered.
    let report = tracker.flush().await?;
    println!(
        "flush: {} sent, {} dropped, {} still queued",
        report.sent,
        report.dropped.total(),
        report.queued
    );

    println!("per emitter:");
    for emitter in tracker.stats().await?.emitters {
        if let Some(stats) = emitter.stats {
            println!(
                "  {:<40} {:>2} received, {:>2} sent in {:>2} requests",
                emitter.name, stats.received, stats.sent, stats.requests
            );
        }
    }

    // Each collector got every event its emitters were given, exactly once per emitter.
    let all: BTreeSet<String> = first_wave.union(&second_wave).cloned().collect();
    let primary_ids = ids(&primary.events(), |_| true);
    let mirror_get_ids = ids(&mirror.events(), |event| event.method == "GET");
    let archive_ids = ids(&archive.events(), |_| true);
    println!("collectors:");
    println!(
        "  primary            {:>2} events, every event: {}",
        primary_ids.len(),
        primary_ids == all
    );
    println!(
        "  mirror (GET)       {:>2} events, every event: {}",
        mirror_get_ids.len(),
        mirror_get_ids == all
    );
    println!(
        "  archive            {:>2} events, every event since it was added: {}",
        archive_ids.len(),
        archive_ids == second_wave
    );
    let duplicates = primary.stats().duplicates;

    tracker.shutdown(Duration::from_secs(5)).await?;
    primary.stop().await?;
    mirror.stop().await?;
    archive.stop().await?;

    let expected = (all.len(), all.len(), second_wave.len());
    let got = (primary_ids.len(), mirror_get_ids.len(), archive_ids.len());
    if primary_ids != all || mirror_get_ids != all || archive_ids != second_wave || duplicates != 0
    {
        return Err(format!("expected {expected:?} events, got {got:?}").into());
    }
    Ok(())
}

/// The event ids of the events that `keep` selects.
fn ids(events: &[ReceivedEvent], keep: impl Fn(&ReceivedEvent) -> bool) -> BTreeSet<String> {
    events
        .iter()
        .filter(|event| keep(event))
        .filter_map(|event| event.get("eid").map(str::to_owned))
        .collect()
}
