//! Self-describing JSON and the `unstruct_event` / `contexts` envelopes.
//!
//! **No I/O, no actix.** Envelopes are serialised as compact JSON and, by default,
//! base64-encoded with the URL-safe alphabet and `=` padding (`ue_px` / `cx`); with base64
//! off they are sent as plain JSON (`ue_pr` / `co`).

use base64::Engine as _;
use serde_json::Value;

use crate::error::EventError;
use crate::payload::{push_json_string, Payload};

/// Schema of the envelope around a self-describing event.
pub const UNSTRUCT_EVENT_SCHEMA: &str =
    "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0";
/// Schema of the envelope around context entities.
pub const CONTEXTS_SCHEMA: &str = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1";

/// A JSON object tagged with the Iglu schema that describes it.
///
/// Used as the body of a [`SelfDescribing`](crate::SelfDescribing) event and as a context
/// entity attached to any event.
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// use snowplow_actix::SelfDescribingJson;
///
/// let entity = SelfDescribingJson::new(
///     "iglu:com.acme/user/jsonschema/1-0-0",
///     json!({"plan": "pro"}),
/// )?;
/// assert_eq!(entity.schema(), "iglu:com.acme/user/jsonschema/1-0-0");
///
/// // Data must be an object, and the schema an Iglu URI.
/// assert!(SelfDescribingJson::new("iglu:com.acme/user/jsonschema/1-0-0", json!(3)).is_err());
/// assert!(SelfDescribingJson::new("user", json!({})).is_err());
/// # Ok::<(), snowplow_actix::EventError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SelfDescribingJson {
    schema: String,
    data: Value,
}

impl SelfDescribingJson {
    /// Pairs `data` with `schema`.
    ///
    /// # Errors
    ///
    /// [`EventError::InvalidSchemaUri`] unless `schema` is `iglu:vendor/name/format/M-R-A`
    /// (the pattern the `unstruct_event` and `contexts` schemas enforce), and
    /// [`EventError::NotAnObject`] unless `data` is a JSON object.
    pub fn new(schema: impl Into<String>, data: Value) -> Result<Self, EventError> {
        let schema = schema.into();
        if !is_iglu_uri(&schema) {
            return Err(EventError::InvalidSchemaUri(schema));
        }
        if !data.is_object() {
            return Err(EventError::NotAnObject { schema });
        }
        Ok(Self { schema, data })
    }

    /// The schema URI.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The data object.
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// Compact JSON: `{"schema":"…","data":{…}}`.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.push_json(&mut out);
        out
    }

    fn push_json(&self, out: &mut String) {
        out.push_str("{\"schema\":");
        push_json_string(out, &self.schema);
        out.push_str(",\"data\":");
        // Serialising a `Value` into a String cannot fail.
        out.push_str(&self.data.to_string());
        out.push('}');
    }
}

/// `iglu:` then vendor `[a-zA-Z0-9-_.]+`, name and format `[a-zA-Z0-9-_]+`, version
/// `[0-9]+-[0-9]+-[0-9]+`, separated by `/`.
fn is_iglu_uri(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("iglu:") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [vendor, name, format, version] = parts.as_slice() else {
        return false;
    };
    let word = |s: &str, extra: &[u8]| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || extra.contains(&b))
    };
    let numbers: Vec<&str> = version.split('-').collect();
    word(vendor, b".")
        && word(name, b"")
        && word(format, b"")
        && numbers.len() == 3
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Adds the `unstruct_event` envelope around `event` as `ue_px` (base64) or `ue_pr`.
pub(crate) fn add_unstruct(payload: &mut Payload, event: &SelfDescribingJson, base64: bool) {
    let mut json = String::with_capacity(128);
    json.push_str("{\"schema\":\"");
    json.push_str(UNSTRUCT_EVENT_SCHEMA);
    json.push_str("\",\"data\":");
    event.push_json(&mut json);
    json.push('}');
    add_encoded(payload, ("ue_px", "ue_pr"), &json, base64);
}

/// Adds the `contexts` envelope around `entities` as `cx` (base64) or `co`; nothing when
/// there is no entity.
pub(crate) fn add_contexts(payload: &mut Payload, entities: &[SelfDescribingJson], base64: bool) {
    if entities.is_empty() {
        return;
    }
    let mut json = String::with_capacity(128);
    json.push_str("{\"schema\":\"");
    json.push_str(CONTEXTS_SCHEMA);
    json.push_str("\",\"data\":[");
    for (idx, entity) in entities.iter().enumerate() {
        if idx > 0 {
            json.push(',');
        }
        entity.push_json(&mut json);
    }
    json.push_str("]}");
    add_encoded(payload, ("cx", "co"), &json, base64);
}

fn add_encoded(
    payload: &mut Payload,
    (encoded_key, plain_key): (&'static str, &'static str),
    json: &str,
    base64: bool,
) {
    if base64 {
        let encoded = base64::engine::general_purpose::URL_SAFE.encode(json.as_bytes());
        payload.add(encoded_key, &encoded);
    } else {
        payload.add(plain_key, json);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn iglu_uris_follow_the_envelope_pattern() {
        for good in [
            "iglu:com.acme/event/jsonschema/1-0-0",
            "iglu:com.acme-x_y/e_v-t/jsonschema/10-20-30",
        ] {
            assert!(is_iglu_uri(good), "{good}");
        }
        for bad in [
            "",
            "test.sde.schema",
            "iglu:com.acme/event/jsonschema/1-0",
            "iglu:com.acme/event/jsonschema/1-0-x",
            "iglu:com.acme/ev.ent/jsonschema/1-0-0",
            "iglu:com.acme/event/jsonschema/1-0-0/extra",
            "iglu:/event/jsonschema/1-0-0",
            "iglu:com acme/event/jsonschema/1-0-0",
        ] {
            assert!(!is_iglu_uri(bad), "{bad}");
        }
    }

    #[test]
    fn base64_is_url_safe_with_padding() {
        let mut payload = Payload::new();
        add_encoded(&mut payload, ("cx", "co"), "{\"a\": 1}", true);
        assert_eq!(payload.get("cx"), Some("eyJhIjogMX0="));
        // `?>` encodes to `Pz4` + `/` or `_` depending on the alphabet.
        let mut payload = Payload::new();
        add_encoded(&mut payload, ("cx", "co"), "??>", true);
        assert_eq!(payload.get("cx"), Some("Pz8-"));
    }

    #[test]
    fn envelopes_are_compact_json() {
        let entity =
            SelfDescribingJson::new("iglu:com.acme/ctx/jsonschema/1-0-0", json!({"k": "ć v"}))
                .unwrap();
        let mut payload = Payload::new();
        add_contexts(&mut payload, std::slice::from_ref(&entity), false);
        add_unstruct(&mut payload, &entity, false);
        assert_eq!(
            payload.get("co"),
            Some(concat!(
                r#"{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","#,
                r#""data":[{"schema":"iglu:com.acme/ctx/jsonschema/1-0-0","data":{"k":"ć v"}}]}"#
            ))
        );
        assert_eq!(
            payload.get("ue_pr"),
            Some(concat!(
                r#"{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","#,
                r#""data":{"schema":"iglu:com.acme/ctx/jsonschema/1-0-0","data":{"k":"ć v"}}}"#
            ))
        );
    }
}
