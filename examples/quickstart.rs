//! Quick start: a tracker with two emitters (POST and GET) delivering a mix of events to a
//! Snowplow collector, then a flush, a look at what the collector received, and a shutdown.
//!
//! It needs nothing else: the collector is a small actix-web server started inside the
//! example on 127.0.0.1 (a free port), and everything stops by itself.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! To send to another collector, replace `collector.endpoint()` with its endpoint, for
//! instance `http://127.0.0.1:9090` (`cargo run --example collector -- --addr
//! 127.0.0.1:9090` starts a local one).

#[path = "common/collector.rs"]
mod collector;

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use snowplow_actix::{
    EmitterBuilder, Event as _, LinkClick, Method, PageView, Platform, ScreenView, SelfDescribing,
    SelfDescribingJson, Structured, Subject, Tracker, Transaction, TransactionItem,
};

use collector::{Collector, CollectorConfig, ReceivedEvent};

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A Snowplow collector on 127.0.0.1, in this process.
    let collector = Collector::start(CollectorConfig::default())?;
    println!("collector listening on {}", collector.endpoint());

    // The tracker: namespace (`tna`), app id (`aid`), a subject stamped on every event, and
    // two emitters, each an actor on its own arbiter that batches, sends and retries:
    // one POSTs batches (10 events by default), the other sends one GET per event.
    let tracker = Tracker::builder("quickstart")
        .app_id("shop")
        .platform(Platform::Web)
        .subject(
            Subject::new()
                .user_id("user-42")
                .screen_resolution(1920, 1080)
                .lang("en-GB"),
        )
        .emitter(EmitterBuilder::new(collector.endpoint()))
        .emitter(EmitterBuilder::new(collector.endpoint()).method(Method::Get))
        .build()?;

    // `track` stamps the event (eid, timestamps, subject) and hands it to both emitters
    // without waiting on the network; it returns the event id.
    let page_view = tracker.track(
        PageView::new("https://shop.example/shoes")?
            .title("Shoes")
            .referrer("https://search.example/?q=shoes"),
    )?;

    // A structured event, with its own subject merged over the tracker's.
    tracker.track(
        Structured::new("shop", "add-to-basket")?
            .label("red shoes")
            .property("size 42")
            .value(2.0)
            .subject(Subject::new().ip_address("203.0.113.9")),
    )?;

    // A self-describing event of your own schema, with a context entity.
    tracker.track(
        SelfDescribing::new(SelfDescribingJson::new(
            "iglu:com.acme/newsletter_signup/jsonschema/1-0-0",
            json!({"list": "weekly", "source": "footer"}),
        )?)
        .context(SelfDescribingJson::new(
            "iglu:com.acme/basket/jsonschema/1-0-0",
            json!({"items": 2, "total": 89.9}),
        )?),
    )?;

    // A screen view and a link click: self-describing events of Snowplow's own schemas.
    tracker.track(ScreenView::with_random_id("basket")?.screen_type("feed"))?;
    tracker.track(
        LinkClick::new("https://shop.example/offers")?
            .element_id("banner")
            .element_content("Summer sale"),
    )?;

    // A transaction with two items: one `tr` event and one `ti` event per item.
    let order = tracker.track(
        Transaction::new("order-1001", 89.9)?
            .affiliation("web-shop")
            .tax_value(15.0)
            .shipping(4.9)
            .city("London")
            .country("GB")
            .currency("GBP")
            .item(
                TransactionItem::new("sku-red-42", 39.95, 1)?
                    .name("Red shoes")
                    .category("shoes"),
            )
            .item(TransactionItem::new("sku-socks", 5.0, 2)?.name("Socks")),
    )?;
    println!("tracked page view {page_view} … transaction {order}");

    // Send everything buffered and wait for the collector's answers: the report sums both
    // emitters (each event counts once per emitter).
    let report = tracker.flush().await?;
    println!(
        "flush: {} sent, {} dropped, {} still queued, timed out: {}",
        report.sent,
        report.dropped.total(),
        report.queued,
        report.timed_out
    );

    // Each emitter's own counters, in the order the emitters were added. (Both are named
    // after their endpoint, the same here.)
    let tracker_stats = tracker.stats().await?;
    for (method, emitter) in ["POST", "GET"].iter().zip(tracker_stats.emitters) {
        if let Some(stats) = emitter.stats {
            println!(
                "  {method:<4} emitter to {}: {} received, {} sent in {} requests",
                emitter.name, stats.received, stats.sent, stats.requests
            );
        }
    }

    // What the collector received.
    let stats = collector.stats();
    println!(
        "collector: {} requests ({} POST, {} GET), {} events ({} by POST, {} by GET), \
         {} bad requests, {} event ids seen twice (once per emitter)",
        stats.requests,
        stats.post_requests,
        stats.get_requests,
        stats.events,
        stats.post_events,
        stats.get_events,
        stats.bad_requests,
        stats.duplicates
    );
    let events = collector.events();
    for event in events.iter().filter(|event| event.method == "POST") {
        println!("  {}", describe(event));
    }

    // Stop the flush timer, send what is left (nothing here) and stop the emitters.
    let report = tracker.shutdown(Duration::from_secs(5)).await?;
    println!(
        "tracker shut down: {} sent, {} dropped",
        report.sent,
        report.dropped.total()
    );
    collector.stop().await?;

    // 8 events (the transaction counts 3), each delivered once by each emitter.
    let tracked = 8;
    if stats.post_events != tracked
        || stats.get_events != tracked
        || stats.unique_eids != tracked
        || stats.bad_requests != 0
        || report.dropped.total() != 0
    {
        return Err(format!("expected {tracked} events by POST and by GET: {stats:?}").into());
    }
    Ok(())
}

/// One line per event: its type, a few key fields, and the start of its id.
fn describe(event: &ReceivedEvent) -> String {
    let field = |name: &str| event.get(name).unwrap_or("-");
    let what = match field("e") {
        "pv" => format!("page view     {} ({:?})", field("url"), field("page")),
        "se" => format!(
            "structured    {}/{} label={:?} value={}",
            field("se_ca"),
            field("se_ac"),
            field("se_la"),
            field("se_va")
        ),
        "ue" => format!("self-desc.    {}", unstruct_schema(event)),
        "tr" => format!(
            "transaction   {} total={} {}",
            field("tr_id"),
            field("tr_tt"),
            field("tr_cu")
        ),
        "ti" => format!(
            "item          {} {} ×{} at {}",
            field("ti_id"),
            field("ti_sk"),
            field("ti_qu"),
            field("ti_pr")
        ),
        other => format!("event {other}"),
    };
    let eid = field("eid");
    format!(
        "{what:<64} uid={} eid={}…",
        field("uid"),
        &eid[..eid.len().min(8)]
    )
}

/// The schema of a self-describing event, and of its context entities if any.
fn unstruct_schema(event: &ReceivedEvent) -> String {
    let schema = |json: &Value| {
        json.get("schema")
            .and_then(Value::as_str)
            .map(|uri| uri.trim_start_matches("iglu:").replace("/jsonschema/", " "))
    };
    let unstruct = decode(event, "ue_px", "ue_pr");
    let mut out = unstruct
        .as_ref()
        .and_then(|envelope| envelope.get("data"))
        .and_then(schema)
        .unwrap_or_else(|| "?".to_owned());
    let contexts = decode(event, "cx", "co");
    if let Some(entities) = contexts.as_ref().and_then(|c| c.get("data")?.as_array()) {
        let names: Vec<String> = entities.iter().filter_map(schema).collect();
        out.push_str(&format!(" + context {}", names.join(", ")));
    }
    out
}

/// A self-describing envelope: base64 (URL-safe) under `encoded`, or plain JSON under
/// `plain` (when the tracker's `encode_base64` is off).
fn decode(event: &ReceivedEvent, encoded: &str, plain: &str) -> Option<Value> {
    match (event.get(encoded), event.get(plain)) {
        (Some(text), _) => {
            let json = base64::engine::general_purpose::URL_SAFE
                .decode(text)
                .ok()?;
            serde_json::from_slice(&json).ok()
        }
        (None, Some(json)) => serde_json::from_str(json).ok(),
        (None, None) => None,
    }
}
