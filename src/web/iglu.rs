//! The Iglu schemas of the events and entities the middleware builds, shipped with the
//! crate (`src/web/schemas/`), and the values that fill them: the request id and the W3C
//! trace id.

use actix_web::http::header::{HeaderMap, HeaderName};
use serde_json::{Map, Value};

/// The schema of the event [`api_request`](super::api_request) tracks: a request's method,
/// route pattern, status and latency.
///
/// Shipped with the crate ([`IGLU_SCHEMAS`]); host it in your Iglu registry, or the
/// pipeline turns every such event into a failed event (see [`IGLU_SCHEMAS`]).
pub const API_REQUEST_SCHEMA: &str = "iglu:io.github.snowplow-actix/api_request/jsonschema/1-0-0";

/// The schema of the context entity a held event is sent with
/// ([`RequestTracker::track_held`](super::RequestTracker::track_held)): the status and
/// latency of the request's response, its request id and its W3C trace id.
///
/// Shipped with the crate ([`IGLU_SCHEMAS`]); host it in your Iglu registry, or the
/// pipeline turns every event carrying it into a failed event.
pub const REQUEST_OUTCOME_SCHEMA: &str =
    "iglu:io.github.snowplow-actix/request_outcome/jsonschema/1-0-0";

/// The Iglu schemas of what the middleware tracks, as `(URI, JSON schema)` pairs:
/// [`API_REQUEST_SCHEMA`] and [`REQUEST_OUTCOME_SCHEMA`].
///
/// A Snowplow pipeline validates every self-describing event and entity against its
/// schema, fetched from the Iglu registries of its resolver configuration; one it cannot
/// find becomes a failed event (a "bad row"), never reaching the warehouse. These schemas
/// are not on Iglu Central: host them in your own registry before you track
/// [`api_request`](super::api_request) events or held events.
///
/// The files are in the crate's package too, under `src/web/schemas/`, laid out as a
/// static registry wants them (`vendor/name/format/version`). To host them:
///
/// - **A static registry** (a bucket or any web server): copy them to
///   `schemas/io.github.snowplow-actix/…/jsonschema/1-0-0` under its root, and list the
///   registry in the resolver configuration of the enrichment (`iglu_resolver.json`).
/// - **An Iglu Server**: `igluctl static push <folder> <server> <api key>`, with the folder
///   holding `schemas/io.github.snowplow-actix/…`.
/// - **Snowplow BDP**: upload them as custom data structures.
///
/// Then check them in a test pipeline (Snowplow Micro, Mini) before production.
///
/// # Examples
///
/// Writing them out as a static registry's `schemas/` folder:
///
/// ```no_run
/// use std::path::Path;
///
/// let root = Path::new("iglu/schemas");
/// for (uri, schema) in snowplow_actix::web::IGLU_SCHEMAS {
///     let path = root.join(uri.trim_start_matches("iglu:"));
///     std::fs::create_dir_all(path.parent().unwrap())?;
///     std::fs::write(path, schema)?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub const IGLU_SCHEMAS: [(&str, &str); 2] = [
    (
        API_REQUEST_SCHEMA,
        include_str!("schemas/io.github.snowplow-actix/api_request/jsonschema/1-0-0"),
    ),
    (
        REQUEST_OUTCOME_SCHEMA,
        include_str!("schemas/io.github.snowplow-actix/request_outcome/jsonschema/1-0-0"),
    ),
];

/// The default header a request id is read from (`X-Request-Id`).
pub const DEFAULT_REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id taken from a header (the schema's `maxLength`).
pub(super) const MAX_REQUEST_ID_LEN: usize = 128;
/// The longest method the API request event carries.
const MAX_METHOD_LEN: usize = 32;
/// The longest route pattern the API request event carries.
const MAX_ROUTE_LEN: usize = 1024;
/// The largest latency in ms the schemas take.
const MAX_LATENCY_MS: u64 = i32::MAX as u64;

/// The request id and W3C trace id of a request, read from its headers (once, when a
/// handler extracts its tracker, so they are known whatever the response).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RequestIds {
    /// From the request-id header, when valid.
    pub(super) request_id: Option<String>,
    /// From `traceparent`, when valid.
    pub(super) trace_id: Option<String>,
}

impl RequestIds {
    pub(super) fn read(headers: &HeaderMap, request_id_header: &HeaderName) -> Self {
        Self {
            request_id: single(headers, request_id_header).and_then(request_id),
            trace_id: single(headers, &HeaderName::from_static("traceparent")).and_then(trace_id),
        }
    }
}

/// The value of a header present exactly once, as text.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let mut values = headers.get_all(name);
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

/// A request id as a header gives it: 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters
/// (no spaces), after trimming; `None` otherwise.
fn request_id(value: &str) -> Option<String> {
    let value = value.trim();
    let valid = (1..=MAX_REQUEST_ID_LEN).contains(&value.len())
        && value.bytes().all(|byte| byte.is_ascii_graphic());
    valid.then(|| value.to_owned())
}

/// The trace id of a W3C `traceparent` value
/// (`00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`): 32 lowercase hex digits,
/// not all zero, with a valid version (not `ff`), parent id (16 hex digits, not all zero)
/// and flags; version `00` has nothing after the flags, a later one may.
fn trace_id(value: &str) -> Option<String> {
    let mut parts = value.trim().splitn(5, '-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let rest = parts.next();
    let valid = is_hex(version, 2)
        && version != "ff"
        && is_hex(trace, 32)
        && !is_zero(trace)
        && is_hex(parent, 16)
        && !is_zero(parent)
        && is_hex(flags, 2)
        && (version != "00" || rest.is_none());
    valid.then(|| trace.to_owned())
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_zero(text: &str) -> bool {
    text.bytes().all(|byte| byte == b'0')
}

/// Milliseconds, within what the schemas take.
pub(super) fn latency_ms(latency: std::time::Duration) -> u64 {
    u64::try_from(latency.as_millis()).map_or(MAX_LATENCY_MS, |ms| ms.min(MAX_LATENCY_MS))
}

/// The data of an [`API_REQUEST_SCHEMA`] event.
pub(super) fn api_request_data(
    method: &str,
    route: Option<&str>,
    status: u16,
    latency_ms: u64,
) -> Value {
    let mut data = Map::new();
    data.insert("method".into(), cut(method, MAX_METHOD_LEN).into());
    if let Some(route) = route {
        data.insert("route".into(), cut(route, MAX_ROUTE_LEN).into());
    }
    data.insert("status".into(), status.into());
    data.insert("latencyMs".into(), latency_ms.into());
    Value::Object(data)
}

/// The data of a [`REQUEST_OUTCOME_SCHEMA`] entity.
pub(super) fn request_outcome_data(
    status: u16,
    latency_ms: u64,
    request_id: &str,
    trace_id: Option<&str>,
) -> Value {
    let mut data = Map::new();
    data.insert("status".into(), status.into());
    data.insert("latencyMs".into(), latency_ms.into());
    data.insert("requestId".into(), request_id.into());
    if let Some(trace_id) = trace_id {
        data.insert("traceId".into(), trace_id.into());
    }
    Value::Object(data)
}

/// `text` cut to at most `max` characters (the schemas count characters).
fn cut(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    #[test]
    fn the_shipped_schemas_describe_themselves_under_their_uri() {
        for (uri, text) in IGLU_SCHEMAS {
            let schema: Value = serde_json::from_str(text).unwrap();
            let own = &schema["self"];
            let expected = format!(
                "iglu:{}/{}/{}/{}",
                own["vendor"].as_str().unwrap(),
                own["name"].as_str().unwrap(),
                own["format"].as_str().unwrap(),
                own["version"].as_str().unwrap()
            );
            assert_eq!(uri, expected);
            assert!(schema["description"].is_string(), "{uri}");
        }
    }

    #[test]
    fn trace_ids_come_from_valid_traceparents_only() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            trace_id(&format!(" 00-{id}-00f067aa0ba902b7-01 ")).as_deref(),
            Some(id)
        );
        // A later version may carry more after the flags; version 00 may not.
        assert_eq!(
            trace_id(&format!("01-{id}-00f067aa0ba902b7-01-more")).as_deref(),
            Some(id)
        );
        for bad in [
            format!("00-{id}-00f067aa0ba902b7-01-more"),
            format!("ff-{id}-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{id}-0000000000000000-01"),
            format!("00-{}-00f067aa0ba902b7-01", id.to_uppercase()),
            format!("00-{id}-00f067aa0ba902b7"),
            format!("00-{id}x-00f067aa0ba902b7-01"),
            "garbage".to_owned(),
            String::new(),
        ] {
            assert_eq!(trace_id(&bad), None, "{bad}");
        }
    }

    #[test]
    fn request_ids_are_short_visible_ascii_from_one_header_line() {
        let name = HeaderName::from_static(DEFAULT_REQUEST_ID_HEADER);
        let read = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(name.clone(), HeaderValue::from_str(value).unwrap());
            }
            RequestIds::read(&headers, &name).request_id
        };
        assert_eq!(read(&[" req-42 "]).as_deref(), Some("req-42"));
        assert_eq!(read(&[]), None);
        assert_eq!(read(&["a", "b"]), None);
        assert_eq!(read(&["has space"]), None);
        assert_eq!(
            read(&[&"x".repeat(MAX_REQUEST_ID_LEN)]).map(|id| id.len()),
            Some(128)
        );
        assert_eq!(read(&[&"x".repeat(MAX_REQUEST_ID_LEN + 1)]), None);
    }

    #[test]
    fn long_values_are_cut_to_what_the_schemas_take() {
        let data = api_request_data(&"M".repeat(40), Some(&"/é".repeat(600)), 200, 7);
        assert_eq!(
            data["method"].as_str().unwrap().chars().count(),
            MAX_METHOD_LEN
        );
        assert_eq!(
            data["route"].as_str().unwrap().chars().count(),
            MAX_ROUTE_LEN
        );
        assert_eq!(
            latency_ms(std::time::Duration::from_secs(u64::MAX)),
            MAX_LATENCY_MS
        );
        assert_eq!(latency_ms(std::time::Duration::from_micros(2_999)), 2);
    }
}
