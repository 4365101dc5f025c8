//! The Snowplow requests a collector receives, parsed: a POST `payload_data` body and a GET
//! `/i` query string, each into events of name/value pairs in wire order, with what breaks
//! the tracker protocol in them.
//!
//! One parser for the two collectors of this repository: the example collector
//! (`collector.rs` beside this file) and the test collector (`tests/common/collector.rs`).
//! Each includes this file as a module of its own (`#[path]`); it is not part of the crate's
//! API. What a collector does with a request it finds invalid, or checks beyond these rules,
//! is its own business.
//!
//! The rules:
//!
//! * POST: the body is JSON of exactly `{"schema": PAYLOAD_DATA_SCHEMA, "data": [...]}`,
//!   `data` a non-empty array of objects whose values are all strings. A body that is not
//!   such an envelope gives no events; an envelope with the wrong schema or a value that is
//!   not a string still gives its events (such a value as its JSON text), with the problem.
//! * GET: the query is form-decoded strictly ([`form_decode`]): one event.
//! * Every event has non-empty `e`, `p` and `tv`; its `stm`, if any, is 13 digits (ms).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The schema of a POST body.
pub(crate) const PAYLOAD_DATA_SCHEMA: &str =
    "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4";
/// The path of POST requests.
pub(crate) const POST_PATH: &str = "/com.snowplowanalytics.snowplow/tp2";
/// The path of GET requests.
pub(crate) const GET_PATH: &str = "/i";
/// A transparent 1x1 GIF: what a collector answers to a successful GET.
pub(crate) const PIXEL_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x01, 0x44, 0x00, 0x3b,
];
/// Fields every event must have, not empty.
const REQUIRED: [&str; 3] = ["e", "p", "tv"];

/// One event: its name/value pairs in wire order, borrowed from the request where they can
/// be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Event<'a> {
    /// The pairs, in the order they were sent.
    pub(crate) pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl Event<'_> {
    /// The value of the first pair named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_ref())
    }

    /// The pairs, owned.
    pub(crate) fn into_owned(self) -> Vec<(String, String)> {
        self.pairs
            .into_iter()
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect()
    }

    /// What breaks the rules in it (module docs), each as a sentence.
    fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = REQUIRED
            .iter()
            .filter(|name| self.get(name).is_none_or(str::is_empty))
            .map(|name| format!("missing `{name}`"))
            .collect();
        if let Some(stm) = self.get("stm") {
            if !(stm.len() == 13 && stm.bytes().all(|b| b.is_ascii_digit())) {
                problems.push(format!("`stm` is not 13 digits: {stm:?}"));
            }
        }
        problems
    }
}

/// What a request carried: its events, and what breaks the rules in it (none when valid).
#[derive(Debug, Default)]
pub(crate) struct Parsed<'a> {
    /// The events, as far as they could be read.
    pub(crate) events: Vec<Event<'a>>,
    /// Each problem, as a sentence.
    pub(crate) problems: Vec<String>,
}

impl Parsed<'_> {
    /// `Ok` for a valid request, else every problem in one line.
    pub(crate) fn verdict(&self) -> Result<(), String> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self.problems.join("; "))
        }
    }
}

/// Parses a POST body (module docs).
pub(crate) fn parse_post(body: &[u8]) -> Parsed<'_> {
    let envelope: Envelope<'_> = match serde_json::from_slice(body) {
        Ok(envelope) => envelope,
        Err(error) => {
            return Parsed {
                events: Vec::new(),
                problems: vec![format!("body is not a payload_data envelope: {error}")],
            }
        }
    };
    let mut problems = Vec::new();
    if envelope.schema != PAYLOAD_DATA_SCHEMA {
        problems.push(format!("schema is {:?}", envelope.schema));
    }
    if envelope.data.is_empty() {
        problems.push("data is empty".to_owned());
    }
    let mut events = Vec::with_capacity(envelope.data.len());
    for (index, Object(fields)) in envelope.data.into_iter().enumerate() {
        let mut event = Event {
            pairs: Vec::with_capacity(fields.len()),
        };
        for (key, Text(value)) in fields {
            let value = value.unwrap_or_else(|json| {
                problems.push(format!(
                    "event {index}: value of `{key}` is not a string: {json}"
                ));
                Cow::Owned(json)
            });
            event.pairs.push((key, value));
        }
        problems.extend(
            event
                .problems()
                .into_iter()
                .map(|problem| format!("event {index}: {problem}")),
        );
        events.push(event);
    }
    Parsed { events, problems }
}

/// Parses a GET query (module docs).
pub(crate) fn parse_get(query: &str) -> Parsed<'static> {
    let pairs = match form_decode(query) {
        Ok(pairs) => pairs,
        Err(error) => {
            return Parsed {
                events: Vec::new(),
                problems: vec![error],
            }
        }
    };
    let event = Event {
        pairs: pairs
            .into_iter()
            .map(|(key, value)| (Cow::Owned(key), Cow::Owned(value)))
            .collect(),
    };
    let mut problems = Vec::new();
    if query.is_empty() {
        problems.push("empty query".to_owned());
    }
    problems.extend(event.problems());
    Parsed {
        events: vec![event],
        problems,
    }
}

/// Decodes an `application/x-www-form-urlencoded` query strictly: `+` is a space, `%XX` a
/// byte, a `%` without two hex digits or bytes that are not UTF-8 are errors; a name without
/// `=` has an empty value, and empty parts are skipped.
pub(crate) fn form_decode(query: &str) -> Result<Vec<(String, String)>, String> {
    fn decode(part: &str) -> Result<String, String> {
        let bytes = part.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = bytes
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| format!("bad percent escape in {part:?}"))?;
                    out.push(hex);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).map_err(|_| format!("{part:?} does not decode to UTF-8"))
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// The POST body: exactly a schema and the events.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    schema: Cow<'a, str>,
    #[serde(borrow)]
    data: Vec<Object<'a>>,
}

/// An event object: its members in order.
struct Object<'a>(Vec<(Cow<'a, str>, Text<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Object<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(24));
                while let Some((Text(key), value)) = map.next_entry::<Text<'de>, Text<'de>>()? {
                    members.push((key.unwrap_or_else(Cow::Owned), value));
                }
                Ok(Object(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// A JSON value: a string (borrowed from the body unless it has escapes), or any other
/// value as its JSON text.
struct Text<'a>(Result<Cow<'a, str>, String>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Ok(Cow::Borrowed(value))))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Text<'de>, E> {
                Ok(Text(Ok(Cow::Owned(value.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, value: String) -> Result<Text<'de>, E> {
                Ok(Text(Ok(Cow::Owned(value))))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Text<'de>, E> {
                Ok(Text(Err(value.to_string())))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Text<'de>, E> {
                Ok(Text(Err(value.to_string())))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Text<'de>, E> {
                Ok(Text(Err(value.to_string())))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Text<'de>, E> {
                Ok(Text(Err(serde_json::Value::from(value).to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Text<'de>, E> {
                Ok(Text(Err("null".to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Text<'de>, A::Error> {
                let value =
                    serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Text(Err(value.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Text<'de>, A::Error> {
                let value =
                    serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Text(Err(value.to_string())))
            }
        }
        deserializer.deserialize_any(Any)
    }
}
