//! The wire format, without a runtime: stamping events as the Snowplow tracker protocol
//! says, collector paths, the `payload_data` envelope of a POST body, sizes.
//!
//! **No I/O, no actix.** `stm` is written when a request is built, in milliseconds, and
//! never stored in the event: a retried request carries a new `stm`.
//!
//! ```text
//! TrackerSettings::stamp(event) ─▶ StampedEvent (tv, p, eid, dtm, aid, subject, …)
//! POST {endpoint}/com.snowplowanalytics.snowplow/tp2
//!      {"schema":"iglu:…/payload_data/jsonschema/1-0-4","data":[{…,"stm":"…"},…]}
//! GET  {endpoint}/i?e=pv&url=…&stm=…
//! ```
//!
//! The layers go one way: `format` (constants, sizes) ← `stamp` (stamped events and their
//! encodings) ← `body` (POST bodies).

mod body;
mod format;
mod stamp;

pub use crate::payload::Payload;
pub use body::{post_body, push_post_body};
pub use format::{
    post_body_size, Method, GET_PATH, PAYLOAD_DATA_SCHEMA, POST_CONTENT_TYPE, POST_PATH,
};
pub(crate) use format::{Stm, BODY_PREFIX, BODY_SUFFIX};
pub use stamp::{
    now_ms, StampedEvent, TrackerSettings, DEFAULT_ENCODE_BASE64, DEFAULT_PLATFORM, TRACKER_VERSION,
};
