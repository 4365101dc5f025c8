//! Tracker settings and the stamped event every emitter shares.
//!
//! **No I/O, no actix.** [`TrackerSettings::stamp`] turns an [`Event`] into
//! [`StampedEvent`]s: the event's fields, the subject merged over the tracker's, then
//! `eid`, `dtm`, `tv`, `tna` and `aid`. A stamped event is immutable; its POST and GET
//! encodings are computed once, on first use, and shared by every emitter that sends it.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::format::{Stm, POST_STM_OVERHEAD, QUERY_STM_OVERHEAD};
use crate::error::{BuildError, EventError};
use crate::event::Event;
use crate::payload::Payload;
use crate::subject::{Platform, Subject};

/// The tracker version sent as `tv`: `rust-actix-<crate version>`.
pub const TRACKER_VERSION: &str = concat!("rust-actix-", env!("CARGO_PKG_VERSION"));
/// Self-describing events and contexts are base64-encoded unless told otherwise.
pub const DEFAULT_ENCODE_BASE64: bool = true;
/// A server-side tracker's platform: `srv`.
pub const DEFAULT_PLATFORM: Platform = Platform::Server;

/// What a tracker stamps on every event: namespace, app id, platform, subject, encoding.
///
/// Set with a [`TrackerBuilder`](crate::TrackerBuilder), which gives them without starting
/// a tracker ([`settings`](crate::TrackerBuilder::settings)) to stamp events with no
/// runtime; read with the accessors.
///
/// # Examples
///
/// ```
/// use snowplow_actix::{PageView, Subject, Tracker};
///
/// let settings = Tracker::builder("web")
///     .app_id("shop")
///     .subject(Subject::new().user_id("user-42"))
///     .settings()?;
/// assert_eq!(settings.app_id(), Some("shop"));
/// let events = settings.stamp(PageView::new("https://shop.example/")?)?;
/// let payload = events[0].payload();
/// assert_eq!(payload.get("e"), Some("pv"));
/// assert_eq!(payload.get("p"), Some("srv"));
/// assert_eq!(payload.get("tna"), Some("web"));
/// assert_eq!(payload.get("eid"), Some(events[0].id().to_string().as_str()));
/// assert!(Tracker::builder("").settings().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TrackerSettings {
    namespace: String,
    app_id: Option<String>,
    platform: Platform,
    encode_base64: bool,
    /// The subject given (without the platform).
    given_subject: Subject,
    /// `given_subject` merged over the platform: what every event starts from.
    base_subject: Subject,
}

impl TrackerSettings {
    /// Settings for the tracker `namespace` (`tna`), with no app id, platform `srv`,
    /// base64 on and an empty subject.
    ///
    /// # Errors
    ///
    /// [`BuildError::EmptyNamespace`] when `namespace` is empty.
    pub fn new(namespace: impl Into<String>) -> Result<Self, BuildError> {
        let namespace = namespace.into();
        if namespace.is_empty() {
            return Err(BuildError::EmptyNamespace);
        }
        let mut settings = Self {
            namespace,
            app_id: None,
            platform: DEFAULT_PLATFORM,
            encode_base64: DEFAULT_ENCODE_BASE64,
            given_subject: Subject::new(),
            base_subject: Subject::new(),
        };
        settings.merge_subject();
        Ok(settings)
    }

    /// The application id (`aid`); an empty one is not sent.
    pub(crate) fn with_app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into()).filter(|id: &String| !id.is_empty());
        self
    }

    /// The platform (`p`), unless the subject sets one.
    pub(crate) fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self.merge_subject();
        self
    }

    /// Whether self-describing JSON is base64-encoded.
    pub(crate) fn with_encode_base64(mut self, encode: bool) -> Self {
        self.encode_base64 = encode;
        self
    }

    /// The subject applied to every event (an event's own subject is merged over it).
    pub(crate) fn with_subject(mut self, subject: Subject) -> Self {
        self.given_subject = subject;
        self.merge_subject();
        self
    }

    fn merge_subject(&mut self) {
        self.base_subject = self
            .given_subject
            .merged_over(&Subject::new().platform(self.platform));
    }

    /// The namespace (`tna`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The app id (`aid`), if any.
    pub fn app_id(&self) -> Option<&str> {
        self.app_id.as_deref()
    }

    /// The platform (`p`) events get unless their subject sets one.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The tracker-wide subject, platform included.
    pub fn subject(&self) -> &Subject {
        &self.base_subject
    }

    /// Whether self-describing events and contexts are base64-encoded (`ue_px`, `cx`) or
    /// sent as plain JSON (`ue_pr`, `co`).
    pub fn encode_base64(&self) -> bool {
        self.encode_base64
    }

    /// Stamps `event`: one stamped event, or for a [`Transaction`](crate::Transaction)
    /// the transaction then one per item.
    ///
    /// # Errors
    ///
    /// The [`EventError`] kept by a setter of the event or of its subject that was given an
    /// invalid value; nothing is stamped.
    pub fn stamp<E: Event>(&self, event: E) -> Result<Vec<StampedEvent>, EventError> {
        let mut stamped = Vec::with_capacity(1);
        self.stamp_each(event, |one| stamped.push(one))?;
        Ok(stamped)
    }

    /// Stamps `event` and hands each stamped event to `sink`, in order, without collecting
    /// them.
    ///
    /// # Errors
    ///
    /// As [`stamp`](Self::stamp).
    pub fn stamp_each<E: Event>(
        &self,
        event: E,
        mut sink: impl FnMut(StampedEvent),
    ) -> Result<(), EventError> {
        self.stamp_each_with_extra(event, None, &mut sink)
    }

    /// Stamps `event` with an extra subject merged over the tracker's and under the event's
    /// own (a request's subject, for instance); what is checked before is the same as for
    /// [`stamp`](Self::stamp), the extra subject included.
    pub(crate) fn stamp_each_with_extra<E: Event>(
        &self,
        event: E,
        extra: Option<&Subject>,
        sink: &mut dyn FnMut(StampedEvent),
    ) -> Result<(), EventError> {
        event.options().check()?;
        if let Some(error) = extra.and_then(Subject::error) {
            return Err(error.clone());
        }
        let now = now_ms();
        event.build(
            self.encode_base64,
            now,
            &mut |mut payload, event_subject| {
                self.base_subject.add_to(&mut payload);
                if let Some(extra) = extra {
                    extra.add_to(&mut payload);
                }
                if let Some(event_subject) = event_subject {
                    event_subject.add_to(&mut payload);
                }
                let id = Uuid::new_v4();
                payload.add(
                    "eid",
                    id.hyphenated().encode_lower(&mut Uuid::encode_buffer()),
                );
                payload.add_display("dtm", now);
                payload.add("tv", TRACKER_VERSION);
                payload.add("tna", &self.namespace);
                payload.add_opt("aid", self.app_id.as_deref());
                // Queued events are kept for a while: only the bytes they use.
                sink(StampedEvent::new(id, payload.compact()));
            },
        );
        Ok(())
    }
}

/// The current time in ms since the Unix epoch (0 for a clock before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// A tracked event, stamped and immutable: what every emitter receives (behind an `Arc`).
///
/// Its POST object and GET query (without `stm`) are encoded on first use and kept, so an
/// event sent by several emitters, or retried, is encoded once.
#[derive(Debug)]
pub struct StampedEvent {
    id: Uuid,
    payload: Payload,
    post_json: OnceLock<Box<str>>,
    query: OnceLock<Box<str>>,
}

thread_local! {
    /// Where encodings are written before they are copied into an exact-size allocation.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `write` on an empty reused buffer and returns what it wrote, in an allocation of
/// exactly its size: no guessed capacity stays reserved for as long as the event is queued.
fn encode_exact(write: impl FnOnce(&mut String)) -> Box<str> {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            write(&mut scratch);
            Box::from(scratch.as_str())
        }
        // Only if `write` itself encoded another event: a fresh buffer then.
        Err(_) => {
            let mut out = String::new();
            write(&mut out);
            out.into_boxed_str()
        }
    })
}

impl AsRef<StampedEvent> for StampedEvent {
    fn as_ref(&self) -> &StampedEvent {
        self
    }
}

impl StampedEvent {
    pub(crate) fn new(id: Uuid, payload: Payload) -> Self {
        Self {
            id,
            payload,
            post_json: OnceLock::new(),
            query: OnceLock::new(),
        }
    }

    /// The event id (`eid`).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The name/value pairs, without `stm`.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// Computes the POST (`post`) and GET (`get`) encodings of `event` not computed yet:
    /// directly when nobody else holds it (a fresh event), through the shared, synchronised
    /// path otherwise.
    pub(crate) fn encode(event: &mut Arc<Self>, post: bool, get: bool) {
        match Arc::get_mut(event) {
            Some(fresh) => {
                if post && fresh.post_json.get().is_none() {
                    fresh.post_json = OnceLock::from(fresh.encode_post_json());
                }
                if get && fresh.query.get().is_none() {
                    fresh.query = OnceLock::from(fresh.encode_query());
                }
            }
            None => {
                if post {
                    event.post_json_open();
                }
                if get {
                    event.query_without_stm();
                }
            }
        }
    }

    fn encode_post_json(&self) -> Box<str> {
        encode_exact(|out| {
            out.push('{');
            self.payload.push_json_fields(out);
        })
    }

    fn encode_query(&self) -> Box<str> {
        encode_exact(|out| self.payload.push_query(out))
    }

    /// The event object without its closing brace and `stm`: `{"e":"pv",…`.
    fn post_json_open(&self) -> &str {
        self.post_json.get_or_init(|| self.encode_post_json())
    }

    fn query_without_stm(&self) -> &str {
        self.query.get_or_init(|| self.encode_query())
    }

    /// Bytes this event takes in a POST body, `stm` included (not the comma between events).
    pub fn post_size(&self) -> usize {
        self.post_json_open().len() + POST_STM_OVERHEAD
    }

    /// Bytes of this event's GET query string, `stm` included (not the `?`).
    pub fn query_size(&self) -> usize {
        self.query_without_stm().len() + QUERY_STM_OVERHEAD
    }

    /// Appends the event as a POST event object with `stm`.
    pub(crate) fn push_post_json(&self, out: &mut String, stm: &Stm) {
        out.push_str(self.post_json_open());
        out.push_str(",\"stm\":\"");
        out.push_str(stm.as_str());
        out.push_str("\"}");
    }

    /// Appends the event as a POST event object closed by `close` (`,"stm":"…"}`, built
    /// once per body).
    pub(crate) fn push_post_json_closed(&self, out: &mut String, close: &str) {
        out.push_str(self.post_json_open());
        out.push_str(close);
    }

    /// The event as a POST event object with `stm`.
    pub fn to_post_json(&self, stm_ms: u64) -> String {
        let mut out = String::with_capacity(self.post_size());
        self.push_post_json(&mut out, &Stm::new(stm_ms));
        out
    }

    /// Appends the event's GET query string with `stm` (without the `?`).
    pub(crate) fn push_query(&self, out: &mut String, stm: &Stm) {
        out.push_str(self.query_without_stm());
        out.push_str("&stm=");
        out.push_str(stm.as_str());
    }

    /// The event's GET query string with `stm` (without the `?`).
    pub fn to_query(&self, stm_ms: u64) -> String {
        let mut out = String::with_capacity(self.query_size());
        self.push_query(&mut out, &Stm::new(stm_ms));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{FormElement, FormSubmit, Structured};

    fn settings() -> TrackerSettings {
        TrackerSettings::new("test").unwrap()
    }

    /// Optional setters never fail in the middle of a chain: the first invalid value is kept,
    /// later setters still apply, and stamping reports it and stamps nothing.
    #[test]
    fn the_first_invalid_value_of_a_chain_is_reported_when_stamping() {
        let event = Structured::new("shop", "buy")
            .unwrap()
            .value(f64::NAN)
            .label("kept")
            .value(f64::INFINITY);
        assert_eq!(
            event.options().error(),
            Some(&EventError::NonFiniteNumber { field: "value" })
        );
        assert_eq!(
            settings().stamp(event).err(),
            Some(EventError::NonFiniteNumber { field: "value" })
        );
        let mut stamped = 0;
        let valid = Structured::new("shop", "buy").unwrap().value(2.0);
        settings().stamp_each(valid, |_| stamped += 1).unwrap();
        assert_eq!(stamped, 1);
    }

    /// A subject's invalid value is the event's once the event carries it, and a request
    /// subject's is checked too.
    #[test]
    fn an_invalid_subject_value_fails_the_event_that_carries_it() {
        let bad = Subject::new().viewport(0, 600);
        let event = Structured::new("shop", "buy").unwrap().subject(bad.clone());
        assert_eq!(
            settings().stamp(event).err(),
            Some(EventError::ZeroDimension { field: "viewport" })
        );
        let plain = Structured::new("shop", "buy").unwrap();
        let mut stamped = 0;
        let result = settings().stamp_each_with_extra(plain, Some(&bad), &mut |_| stamped += 1);
        assert_eq!(result, Err(EventError::ZeroDimension { field: "viewport" }));
        assert_eq!(stamped, 0);
        // Merged over a valid one, the error stays.
        assert!(Subject::new()
            .user_id("u")
            .merged_over(&bad)
            .error()
            .is_some());
    }

    /// A form element's invalid type is the submission's.
    #[test]
    fn an_invalid_form_element_fails_its_submission() {
        let element = FormElement::new("email", Some("a@b.c"), "INPUT")
            .unwrap()
            .input_type("e-mail");
        let submit = FormSubmit::new("signup").unwrap().element(element);
        assert_eq!(
            settings().stamp(submit).err(),
            Some(EventError::InvalidInputType("e-mail".into()))
        );
    }
}
