//! The event types of the Snowplow tracker protocol.
//!
//! **No I/O, no actix.** Each event is a plain value, validated by its constructor (a typed
//! [`EventError`](crate::EventError), never a panic). The tracker turns it into one or more
//! [`Payload`]s in the protocol's key order:
//!
//! ```text
//! e, <event fields>, ue_px|ue_pr, cx|co, ttm, <subject>, eid, dtm, tv, tna, aid
//! ```
//!
//! The part up to `ttm` is built here; the subject and the stamps are added by
//! [`TrackerSettings`](crate::TrackerSettings).

mod basic;
mod ecommerce;
mod web;

pub use basic::{PagePing, PageView, ScreenView, SelfDescribing, Structured, SCREEN_VIEW_SCHEMA};
pub use ecommerce::{
    AddToCart, RemoveFromCart, Transaction, TransactionItem, ADD_TO_CART_SCHEMA,
    REMOVE_FROM_CART_SCHEMA,
};
pub use web::{
    FormChange, FormElement, FormSubmit, LinkClick, SiteSearch, CHANGE_FORM_SCHEMA,
    LINK_CLICK_SCHEMA, SITE_SEARCH_SCHEMA, SUBMIT_FORM_SCHEMA,
};

use crate::error::{EventError, FirstError};
use crate::payload::Payload;
use crate::self_describing::{add_contexts, SelfDescribingJson};
use crate::subject::Subject;

/// What every event can carry besides its own fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventOptions {
    subject: Option<Subject>,
    contexts: Vec<SelfDescribingJson>,
    true_timestamp: Option<u64>,
    /// The first invalid value a setter (of the event or of its subject) was given.
    error: FirstError,
}

impl EventOptions {
    /// The event's own subject, merged over the tracker's.
    pub fn subject(&self) -> Option<&Subject> {
        self.subject.as_ref()
    }

    /// The context entities.
    pub fn contexts(&self) -> &[SelfDescribingJson] {
        &self.contexts
    }

    /// The true timestamp (`ttm`), in ms since the Unix epoch.
    pub fn true_timestamp(&self) -> Option<u64> {
        self.true_timestamp
    }

    /// The first invalid value a setter was given, if any: such an event is not tracked
    /// ([`TrackError::InvalidEvent`](crate::TrackError::InvalidEvent)).
    pub fn error(&self) -> Option<&EventError> {
        self.error.get()
    }

    /// `Err` when a setter was given an invalid value.
    pub(crate) fn check(&self) -> Result<(), EventError> {
        self.error.check()
    }

    /// The value of `checked`; an error is kept for the end of the chain.
    pub(crate) fn keep<T>(&mut self, checked: Result<T, EventError>) -> Option<T> {
        self.error.keep(checked)
    }

    /// Adds `cx`/`co` and `ttm` (`true_timestamp` wins over `default_ttm`).
    fn complete(&self, payload: &mut Payload, base64: bool, default_ttm: Option<u64>) {
        add_contexts(payload, &self.contexts, base64);
        if let Some(ttm) = self.true_timestamp.or(default_ttm) {
            payload.add_display("ttm", ttm);
        }
    }
}

/// An event the tracker can track.
///
/// Implemented by every event type of this crate; the trait is sealed. Its provided
/// methods set the options every event shares.
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// use snowplow_actix::{Event, SelfDescribingJson, Structured, Subject};
///
/// let event = Structured::new("shop", "add-to-basket")?
///     .label("red shoes")
///     .subject(Subject::new().user_id("user-42"))
///     .context(SelfDescribingJson::new(
///         "iglu:com.acme/basket/jsonschema/1-0-0",
///         json!({"items": 3}),
///     )?)
///     .true_timestamp(1_700_000_000_123);
/// assert_eq!(event.options().true_timestamp(), Some(1_700_000_000_123));
/// # Ok::<(), snowplow_actix::EventError>(())
/// ```
pub trait Event: sealed::Build + Sized {
    /// The options set so far.
    fn options(&self) -> &EventOptions;

    /// Sets the event's own subject, merged over the tracker's (the event's fields win).
    fn subject(mut self, subject: Subject) -> Self {
        let options = self.options_mut();
        options.error.also(subject.error().cloned());
        options.subject = Some(subject);
        self
    }

    /// Attaches one context entity.
    fn context(mut self, entity: SelfDescribingJson) -> Self {
        self.options_mut().contexts.push(entity);
        self
    }

    /// Attaches several context entities.
    fn contexts(mut self, entities: impl IntoIterator<Item = SelfDescribingJson>) -> Self {
        self.options_mut().contexts.extend(entities);
        self
    }

    /// Sets the true timestamp (`ttm`), in ms since the Unix epoch.
    fn true_timestamp(mut self, ms: u64) -> Self {
        self.options_mut().true_timestamp = Some(ms);
        self
    }
}

pub(crate) mod sealed {
    use super::{EventOptions, Payload, Subject};

    /// Turns an event into its payloads; only this crate implements it.
    pub trait Build {
        #[doc(hidden)]
        fn options_mut(&mut self) -> &mut EventOptions;

        /// Calls `emit` with each payload (up to `ttm`) and the event's subject, in order.
        #[doc(hidden)]
        fn build(self, base64: bool, now_ms: u64, emit: &mut dyn FnMut(Payload, Option<&Subject>));
    }
}

/// Implements [`Event`] for a type with an `options: EventOptions` field and a
/// `fn fields(&self, base64: bool) -> Payload` that builds its own part.
macro_rules! single_payload_event {
    ($($ty:ty),* $(,)?) => {$(
        impl $crate::event::Event for $ty {
            fn options(&self) -> &$crate::event::EventOptions {
                &self.options
            }
        }

        impl $crate::event::sealed::Build for $ty {
            fn options_mut(&mut self) -> &mut $crate::event::EventOptions {
                &mut self.options
            }

            fn build(
                self,
                base64: bool,
                _now_ms: u64,
                emit: &mut dyn FnMut($crate::payload::Payload, Option<&$crate::subject::Subject>),
            ) {
                let mut payload = self.fields(base64);
                self.options.complete(&mut payload, base64, None);
                emit(payload, self.options.subject.as_ref());
            }
        }
    )*};
}
pub(crate) use single_payload_event;

/// Checks that a required text field is not empty.
fn non_empty(field: &'static str, value: String) -> Result<String, EventError> {
    if value.is_empty() {
        Err(EventError::EmptyField { field })
    } else {
        Ok(value)
    }
}

/// Checks that a number is finite (NaN and infinities have no tracker-protocol form).
fn finite(field: &'static str, value: f64) -> Result<f64, EventError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(EventError::NonFiniteNumber { field })
    }
}
