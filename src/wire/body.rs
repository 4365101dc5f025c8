//! POST bodies: the `payload_data` envelope around stamped events.

use super::format::{Stm, BODY_PREFIX, BODY_SUFFIX};
use super::stamp::StampedEvent;

/// The POST body carrying `events`, with `stm` set to `stm_ms` in each.
///
/// # Examples
///
/// ```
/// use snowplow_actix::wire::{self, TrackerSettings};
/// use snowplow_actix::PageView;
///
/// let settings = TrackerSettings::new("web")?;
/// let events = settings.stamp(PageView::new("https://example.com/")?)?;
/// let body = wire::post_body(&events, 1_700_000_000_000);
/// assert!(body.starts_with(r#"{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv""#));
/// assert_eq!(body.len(), wire::post_body_size(events.iter().map(|e| e.post_size())));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn post_body<E: AsRef<StampedEvent>>(
    events: impl IntoIterator<Item = E>,
    stm_ms: u64,
) -> String {
    let mut out = String::new();
    push_post_body(&mut out, events, stm_ms);
    out
}

/// Appends the POST body carrying `events` to `out` (a reused buffer). Events may be given
/// as `&StampedEvent`, `Arc<StampedEvent>` or `&Arc<StampedEvent>`.
pub fn push_post_body<E: AsRef<StampedEvent>>(
    out: &mut String,
    events: impl IntoIterator<Item = E>,
    stm_ms: u64,
) {
    // What closes every event object, written once per body: `,"stm":"…"}`.
    let mut close = String::with_capacity(32);
    close.push_str(",\"stm\":\"");
    close.push_str(Stm::new(stm_ms).as_str());
    close.push_str("\"}");
    out.push_str(BODY_PREFIX);
    for (idx, event) in events.into_iter().enumerate() {
        if idx > 0 {
            out.push(',');
        }
        event.as_ref().push_post_json_closed(out, &close);
    }
    out.push_str(BODY_SUFFIX);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Structured;
    use crate::wire::TrackerSettings;

    /// What an emitter charges a request (the envelope, then each event's `post_size` and
    /// its comma) is the size of the body it builds, for 1, 10 and 100 events.
    #[test]
    fn a_body_is_the_envelope_plus_each_event_and_its_comma() {
        let settings = TrackerSettings::new("test").unwrap();
        let events: Vec<StampedEvent> = (0..100)
            .flat_map(|idx| {
                let event = Structured::new("shop", "buy")
                    .unwrap()
                    .value(f64::from(idx));
                settings.stamp(event).unwrap()
            })
            .collect();
        for count in [1, 10, 100] {
            let events = &events[..count];
            let charged: usize = events.iter().map(|event| event.post_size() + 1).sum();
            let body = post_body(events, 1_700_000_000_456);
            assert_eq!(
                body.len(),
                BODY_PREFIX.len() + BODY_SUFFIX.len() + charged - 1,
                "{count} events"
            );
        }
    }
}
