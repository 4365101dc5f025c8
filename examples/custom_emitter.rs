//! A custom emitter: an actix actor of your own that receives every tracked event next to
//! the built-in HTTP emitters. This one writes each event as one JSON line to stdout.
//!
//! Any actor that handles [`Track`] can be an emitter; handling [`Flush`] too lets it take
//! part in the tracker's flushes (`tracker.flush()`, the flush timers and the shutdown) and
//! report what it wrote. Here it sits next to an HTTP emitter that POSTs to a collector
//! running inside the example on 127.0.0.1.
//!
//! The JSON lines go to stdout and the commentary to stderr, so the events can be piped:
//!
//! ```text
//! cargo run --example custom_emitter
//! cargo run --example custom_emitter 2>/dev/null | jq -c '{e, eid}'
//! ```

#[path = "common/collector.rs"]
mod collector;

use std::io::Write as _;
use std::time::Duration;

use actix::prelude::*;
use serde::{Serialize, Serializer};
use serde_json::json;
use snowplow_actix::{
    emitter::{Flush, Track, DEFAULT_MAILBOX_CAPACITY},
    tracker::CustomEmitter,
    wire::Payload,
    EmitterBuilder, FlushReport, PageView, SelfDescribing, SelfDescribingJson, Structured, Tracker,
};

use collector::{Collector, CollectorConfig};

/// Writes each event it receives to stdout as one JSON object per line.
#[derive(Debug, Default)]
struct StdoutEmitter {
    /// Lines written since the last flush.
    written: u64,
    /// Events that could not be written since the last flush.
    failed: u64,
}

impl Actor for StdoutEmitter {
    type Context = Context<Self>;
}

impl Handler<Track> for StdoutEmitter {
    type Result = ();

    fn handle(&mut self, track: Track, _: &mut Self::Context) {
        let mut stdout = std::io::stdout().lock();
        let written = serde_json::to_writer(&mut stdout, &JsonObject(track.event().payload()))
            .map_err(std::io::Error::from)
            .and_then(|()| stdout.write_all(b"\n"));
        match written {
            Ok(()) => self.written += 1,
            Err(_) => self.failed += 1,
        }
    }
}

/// An event's name/value pairs (`e`, its fields, the subject, `eid`, `dtm`, `tv`, `tna`,
/// `aid`) as one JSON object, in the order they are sent. (`stm` is only added to requests.)
struct JsonObject<'a>(&'a Payload);

impl Serialize for JsonObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter())
    }
}

impl Handler<Flush> for StdoutEmitter {
    type Result = MessageResult<Flush>;

    /// Every event is written as it arrives, so a flush only flushes stdout and reports
    /// what was written since the previous one.
    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        // Nothing to do if this fails: the lines were handed to stdout already.
        let _ = std::io::stdout().flush();
        let mut report = FlushReport {
            sent: std::mem::take(&mut self.written),
            ..FlushReport::default()
        };
        // Lines that could not be written are gone: report them as dropped.
        report.dropped.store = std::mem::take(&mut self.failed);
        MessageResult(report)
    }
}

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let collector = Collector::start(CollectorConfig::default())?;
    eprintln!("collector listening on {}", collector.endpoint());

    // The custom emitter runs on this thread's arbiter. Its mailbox must hold a burst of
    // events: the tracker hands them over with `try_send` and counts those a full mailbox
    // refuses as dropped (an actor starts with room for 16 messages).
    let stdout = StdoutEmitter::create(|ctx| {
        ctx.set_mailbox_capacity(DEFAULT_MAILBOX_CAPACITY);
        StdoutEmitter::default()
    });

    let tracker = Tracker::builder("custom")
        .app_id("shop")
        .encode_base64(false)
        .emitter(EmitterBuilder::new(collector.endpoint()))
        .custom_emitter(
            CustomEmitter::new("stdout", stdout.clone().recipient()).flush(stdout.recipient()),
        )
        .build()?;

    tracker.track(PageView::new("https://shop.example/")?.title("Home"))?;
    tracker.track(Structured::new("shop", "add-to-basket")?.label("red shoes"))?;
    tracker.track(SelfDescribing::new(SelfDescribingJson::new(
        "iglu:com.acme/newsletter_signup/jsonschema/1-0-0",
        json!({"list": "weekly"}),
    )?))?;
    let tracked = 3;

    // Both emitters answer the flush: the report sums the HTTP emitter's deliveries and
    // the lines the custom one wrote.
    let report = tracker.flush().await?;
    eprintln!(
        "flush: {} sent ({} to the collector, {} lines on stdout), {} dropped",
        report.sent,
        collector.stats().events,
        report.sent.saturating_sub(collector.stats().events),
        report.dropped.total()
    );

    // The custom emitter answers no stats request: `stats` is `None` for it.
    for emitter in tracker.stats().await?.emitters {
        let sent = emitter
            .stats
            .map_or_else(|| "no stats".to_owned(), |s| format!("{} sent", s.sent));
        eprintln!("  emitter {}: {sent}", emitter.name);
    }

    tracker.shutdown(Duration::from_secs(5)).await?;
    let received = collector.stats();
    collector.stop().await?;

    if received.events != tracked || report.sent != 2 * tracked || report.dropped.total() != 0 {
        return Err(format!("expected {tracked} events per emitter: {report:?}").into());
    }
    Ok(())
}
