//! What the crate logs, captured per test.
//!
//! [`Logs::capture`] sets a subscriber collecting every event and span as the default of the
//! calling thread, for as long as the returned [`Logs`] lives: nothing is
//! installed for the process, so a test sees its own lines only, whatever runs beside it in
//! this binary.
//!
//! The lines a test sees are those logged on its own thread (an emitter started there, the
//! middleware under `actix_web::test::init_service`, the test itself) and on the threads of
//! the trackers it builds while capturing: a tracker's threads log to the subscriber current
//! where it was built. Threads started otherwise, such as the workers of an `HttpServer` the
//! test runs, log to the global default, which is none: a test that looks at the middleware's
//! lines drives the app with `actix_web::test::init_service`, on its own thread.
//!
//! `tracing` caches, per call site, whether any subscriber wants it, and while a single
//! subscriber is registered it asks only the subscriber of the thread that reaches the call
//! site first: a call site first reached by a test that captures nothing would then be
//! cached as unwanted, and a capturing test would miss its lines. So each capture registers
//! a second subscriber beside it, which wants nothing but answers "sometimes" for every call
//! site: with two registered, every call site asks the subscriber of the thread it runs on.
//!
//! A span is one [`Line`] too, from its creation: the values recorded on it later are added
//! to its fields, and it is marked [`closed`](Line::closed) once its last handle is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::{DefaultGuard, Interest};
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

/// One captured event or span: level, target, message (`span NAME` for a span) and fields
/// (a span's: those given at its creation, then those recorded on it, in order).
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) level: Level,
    pub(crate) target: String,
    pub(crate) message: String,
    pub(crate) fields: Vec<(&'static str, String)>,
    /// A span's id; `None` for an event.
    pub(crate) span: Option<u64>,
    /// Whether the span was closed (every handle to it dropped); `false` for an event.
    pub(crate) closed: bool,
}

impl Line {
    fn new(metadata: &Metadata<'_>) -> Self {
        Line {
            level: *metadata.level(),
            target: metadata.target().to_owned(),
            message: String::new(),
            fields: Vec::new(),
            span: None,
            closed: false,
        }
    }

    /// The value of the field `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether `text` appears anywhere in it.
    pub(crate) fn mentions(&self, text: &str) -> bool {
        self.message.contains(text)
            || self.target.contains(text)
            || self.fields.iter().any(|(_, value)| value.contains(text))
    }

    fn record(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else {
            self.fields.push((field.name(), value));
        }
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

type Lines = Arc<Mutex<Vec<Line>>>;

fn lock(lines: &Lines) -> MutexGuard<'_, Vec<Line>> {
    lines
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Collects everything from this crate, and INFO and above from every other one.
struct Capture {
    lines: Lines,
    next_span: AtomicU64,
    /// Each open span: the index of its line, and how many handles it has.
    spans: Mutex<HashMap<u64, (usize, usize)>>,
}

impl Capture {
    fn spans(&self) -> MutexGuard<'_, HashMap<u64, (usize, usize)>> {
        self.spans
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("snowplow_actix") || *metadata.level() <= Level::INFO
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next_span.fetch_add(1, Ordering::Relaxed) + 1;
        let mut line = Line::new(span.metadata());
        line.message = format!("span {}", span.metadata().name());
        line.span = Some(id);
        span.record(&mut line);
        let at = {
            let mut lines = lock(&self.lines);
            lines.push(line);
            lines.len() - 1
        };
        self.spans().insert(id, (at, 1));
        Id::from_u64(id)
    }

    fn record(&self, id: &Id, values: &Record<'_>) {
        let Some(at) = self.spans().get(&id.into_u64()).map(|&(at, _)| at) else {
            return;
        };
        if let Some(line) = lock(&self.lines).get_mut(at) {
            values.record(line);
        }
    }

    fn clone_span(&self, id: &Id) -> Id {
        if let Some((_, handles)) = self.spans().get_mut(&id.into_u64()) {
            *handles += 1;
        }
        id.clone()
    }

    fn try_close(&self, id: Id) -> bool {
        let closed = {
            let mut spans = self.spans();
            let Some((at, handles)) = spans.get_mut(&id.into_u64()) else {
                return false;
            };
            *handles -= 1;
            let at = *at;
            (*handles == 0).then(|| {
                spans.remove(&id.into_u64());
                at
            })
        };
        if let Some(at) = closed {
            if let Some(line) = lock(&self.lines).get_mut(at) {
                line.closed = true;
            }
            return true;
        }
        false
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line::new(event.metadata());
        event.record(&mut line);
        lock(&self.lines).push(line);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Registered beside each [`Capture`], never anyone's default: wants nothing, and keeps
/// `tracing` from caching a call site's interest by one thread's subscriber (module docs).
struct Undecided;

impl Subscriber for Undecided {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// The lines captured for one test (see the module docs). Build the trackers whose lines
/// the test looks at after this, and keep it until the last look.
#[derive(Debug)]
pub(crate) struct Logs {
    lines: Lines,
    _default: DefaultGuard,
    _undecided: Dispatch,
}

impl Logs {
    /// Starts capturing on this thread (and on the threads of trackers built from now on).
    pub(crate) fn capture() -> Logs {
        let lines = Lines::default();
        let undecided = Dispatch::new(Undecided);
        let capture = Dispatch::new(Capture {
            lines: lines.clone(),
            next_span: AtomicU64::new(0),
            spans: Mutex::default(),
        });
        Logs {
            lines,
            _default: tracing::dispatcher::set_default(&capture),
            _undecided: undecided,
        }
    }

    /// Every line so far, in the order logged.
    pub(crate) fn lines(&self) -> Vec<Line> {
        lock(&self.lines).clone()
    }

    /// The lines so far that `keep` keeps, in the order logged.
    pub(crate) fn matching(&self, keep: impl Fn(&Line) -> bool) -> Vec<Line> {
        lock(&self.lines)
            .iter()
            .filter(|line| keep(line))
            .cloned()
            .collect()
    }

    /// The spans named `name` so far, in the order they were created.
    pub(crate) fn spans(&self, name: &str) -> Vec<Line> {
        let message = format!("span {name}");
        lock(&self.lines)
            .iter()
            .filter(|line| line.span.is_some() && line.message == message)
            .cloned()
            .collect()
    }
}
