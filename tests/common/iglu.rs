//! Iglu schema validation of tracker payloads, against the schemas in `tests/schemas/` and
//! those the crate ships (`src/web/schemas/`: the middleware's API request event and request
//! outcome entity).
//!
//! The schemas are JSON Schema draft 4. Their `$schema` names an Iglu meta-schema that cannot
//! be fetched offline, so it is stripped and every validator is built with draft 4 forced.
//! Draft 4 does not check `format`; the one format the schemas use, `uuid` (screen view ids),
//! is registered here and checked with [`uuid::Uuid::parse_str`], in its hyphenated form.
//!
//! Every schema under `tests/schemas/vendor/name/format/version` and
//! `src/web/schemas/vendor/name/format/version` is loaded and compiled once, on first use, into a map keyed by its Iglu URI and shared between threads: the test
//! collector calls [`validate_post_body`] on every request it receives.
//!
//! The URIs below are spelled out rather than taken from the crate, so that a wrong constant
//! in the crate is caught rather than trusted.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use base64::Engine as _;
use jsonschema::Validator;
use serde_json::{Map, Value};

/// The envelope of a POST body.
pub(crate) const PAYLOAD_DATA: &str =
    "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4";
/// The envelope of a self-describing event (`ue_px` / `ue_pr`).
pub(crate) const UNSTRUCT_EVENT: &str =
    "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0";
/// The envelope of context entities (`cx` / `co`).
pub(crate) const CONTEXTS: &str = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1";

/// The middleware's API request event, shipped with the crate.
#[cfg_attr(not(feature = "web"), allow(dead_code))] // only the actix-web tests use it
pub(crate) const API_REQUEST: &str = "iglu:io.github.snowplow-actix/api_request/jsonschema/1-0-0";
/// The context entity of the middleware's held events, shipped with the crate.
#[cfg_attr(not(feature = "web"), allow(dead_code))] // only the actix-web tests use it
pub(crate) const REQUEST_OUTCOME: &str =
    "iglu:io.github.snowplow-actix/request_outcome/jsonschema/1-0-0";

/// The tracker-protocol fields that hold a self-describing envelope.
pub(crate) const ENVELOPE_FIELDS: [&str; 4] = ["ue_px", "ue_pr", "cx", "co"];

static VALIDATORS: LazyLock<HashMap<String, Validator>> = LazyLock::new(load_all);

/// The directory the test-data schemas are loaded from.
pub(crate) fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas")
}

/// The directory of the schemas the crate ships, in its package.
pub(crate) fn shipped_schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/schemas")
}

/// Loads and compiles every `vendor/name/format/version` file under [`schema_dir`] and
/// [`shipped_schema_dir`]; a URI found in both is an error.
fn load_all() -> HashMap<String, Validator> {
    let root = schema_dir();
    let mut validators = load_dir(&root);
    for (uri, validator) in load_dir(&shipped_schema_dir()) {
        assert!(
            validators.insert(uri.clone(), validator).is_none(),
            "{uri} is both shipped and test data"
        );
    }
    assert!(
        validators.contains_key(PAYLOAD_DATA),
        "no payload_data schema under {}",
        root.display()
    );
    validators
}

/// Loads and compiles every `vendor/name/format/version` file under `root`.
fn load_dir(root: &Path) -> HashMap<String, Validator> {
    let mut validators = HashMap::new();
    for vendor in subdirs(root) {
        for name in subdirs(&vendor) {
            for format in subdirs(&name) {
                let entries = fs::read_dir(&format)
                    .unwrap_or_else(|err| panic!("reading {}: {err}", format.display()));
                for entry in entries {
                    let path = entry.expect("a directory entry").path();
                    let uri = format!(
                        "iglu:{}/{}/{}/{}",
                        file_name(&vendor),
                        file_name(&name),
                        file_name(&format),
                        file_name(&path)
                    );
                    validators.insert(uri, compile(&path));
                }
            }
        }
    }
    validators
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()));
    let mut dirs: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_else(|| panic!("non-UTF-8 schema path {}", path.display()))
}

fn compile(path: &Path) -> Validator {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("reading schema {}: {err}", path.display()));
    let mut schema: Value = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("parsing schema {}: {err}", path.display()));
    if let Some(object) = schema.as_object_mut() {
        // An Iglu meta-schema URI: unknown to jsonschema and not fetchable offline.
        object.remove("$schema");
    }
    jsonschema::draft4::options()
        .with_format("uuid", is_hyphenated_uuid)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|err| panic!("compiling schema {}: {err}", path.display()))
}

/// `format: uuid`: a UUID in its 36-character hyphenated form.
fn is_hyphenated_uuid(text: &str) -> bool {
    text.len() == 36 && uuid::Uuid::parse_str(text).is_ok()
}

/// Whether a schema for `uri` is available locally.
pub(crate) fn has_schema(uri: &str) -> bool {
    VALIDATORS.contains_key(uri)
}

/// Validates `instance` against the local schema `uri`; an unknown `uri` is an error.
pub(crate) fn validate(uri: &str, instance: &Value) -> Result<(), String> {
    let validator = VALIDATORS
        .get(uri)
        .ok_or_else(|| format!("no local schema for {uri}"))?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .take(5)
        .map(|err| {
            // The message quotes the offending value, which may be huge: keep it readable.
            let message: String = err.to_string().chars().take(300).collect();
            format!("at `{}`: {message}", err.instance_path())
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid against {uri}: {}", errors.join("; ")))
    }
}

/// Validates one event given as its name/value pairs (a stamped payload, or the decoded
/// query of a GET request): see [`validate_event_object`]. A repeated name is an error.
pub(crate) fn validate_event<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), String>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut event = Map::new();
    for (key, value) in pairs {
        let key = key.as_ref();
        let previous = event.insert(key.to_owned(), Value::String(value.as_ref().to_owned()));
        if previous.is_some() {
            return Err(format!("field `{key}` appears twice"));
        }
    }
    validate_event_object(&event)
}

/// Validates one event object: against `payload_data` 1-0-4 (as the one item of its `data`
/// array), then its self-describing event and contexts, see [`check_envelopes`].
pub(crate) fn validate_event_object(event: &Map<String, Value>) -> Result<(), String> {
    validate(
        PAYLOAD_DATA,
        &Value::Array(vec![Value::Object(event.clone())]),
    )?;
    check_envelopes(event)
}

/// Validates a whole POST body: `{"schema": payload_data 1-0-4, "data": [event, …]}`, the
/// data against `payload_data`, then each event's envelopes.
pub(crate) fn validate_post_body(body: &str) -> Result<(), String> {
    let body: Value =
        serde_json::from_str(body).map_err(|err| format!("the body is not JSON: {err}"))?;
    let data = self_describing(&body, "the POST body", PAYLOAD_DATA)?;
    validate(PAYLOAD_DATA, data)?;
    let events = data.as_array().ok_or("the body's data is not an array")?;
    for (idx, event) in events.iter().enumerate() {
        let event = event
            .as_object()
            .ok_or_else(|| format!("event {idx} is not an object"))?;
        check_envelopes(event).map_err(|err| format!("event {idx}: {err}"))?;
    }
    Ok(())
}

/// Checks the self-describing fields of an event already valid against `payload_data`:
///
/// - `ue_px` or `ue_pr` (not both) exactly when `e` is `ue`; the envelope's schema is
///   `unstruct_event` 1-0-0 and its data valid against it; the event's own data valid
///   against its schema when that schema is available locally;
/// - at most one of `cx` and `co`; the envelope's schema is `contexts` 1-0-1 and its data
///   valid against it; each entity's data valid against its schema when available locally.
pub(crate) fn check_envelopes(event: &Map<String, Value>) -> Result<(), String> {
    let field = |key: &str| event.get(key).and_then(Value::as_str);
    let is_ue = field("e") == Some("ue");
    let unstruct = match (field("ue_px"), field("ue_pr")) {
        (Some(_), Some(_)) => return Err("both ue_px and ue_pr".into()),
        (Some(value), None) => Some(("ue_px", value)),
        (None, Some(value)) => Some(("ue_pr", value)),
        (None, None) => None,
    };
    match (is_ue, unstruct) {
        (true, None) => return Err("e=ue without ue_px or ue_pr".into()),
        (false, Some((key, _))) => return Err(format!("{key} on an event that is not e=ue")),
        (true, Some((key, value))) => {
            let envelope = decode_envelope(key, value)?;
            let inner = self_describing(&envelope, key, UNSTRUCT_EVENT)?;
            validate(UNSTRUCT_EVENT, inner).map_err(|err| format!("{key}: {err}"))?;
            check_entity(inner).map_err(|err| format!("{key}: {err}"))?;
        }
        (false, None) => {}
    }
    let contexts = match (field("cx"), field("co")) {
        (Some(_), Some(_)) => return Err("both cx and co".into()),
        (Some(value), None) => Some(("cx", value)),
        (None, Some(value)) => Some(("co", value)),
        (None, None) => None,
    };
    if let Some((key, value)) = contexts {
        let envelope = decode_envelope(key, value)?;
        let entities = self_describing(&envelope, key, CONTEXTS)?;
        validate(CONTEXTS, entities).map_err(|err| format!("{key}: {err}"))?;
        for (idx, entity) in entities.as_array().into_iter().flatten().enumerate() {
            check_entity(entity).map_err(|err| format!("{key} entity {idx}: {err}"))?;
        }
    }
    Ok(())
}

/// The JSON held by an envelope field: `ue_px` and `cx` are base64 with the URL-safe
/// alphabet and `=` padding (strictly), `ue_pr` and `co` plain JSON.
pub(crate) fn decode_envelope(key: &str, value: &str) -> Result<Value, String> {
    let json = match key {
        "ue_px" | "cx" => {
            let bytes = base64::engine::general_purpose::URL_SAFE
                .decode(value)
                .map_err(|err| format!("{key} is not padded URL-safe base64: {err}"))?;
            String::from_utf8(bytes).map_err(|err| format!("{key} is not UTF-8: {err}"))?
        }
        "ue_pr" | "co" => value.to_owned(),
        other => return Err(format!("`{other}` is not an envelope field")),
    };
    serde_json::from_str(&json).map_err(|err| format!("{key} is not JSON: {err}"))
}

/// The data of a self-describing JSON `{"schema": expected, "data": …}` with no other key.
fn self_describing<'a>(value: &'a Value, what: &str, expected: &str) -> Result<&'a Value, String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("{what} is not a JSON object"))?;
    if let Some(extra) = object.keys().find(|key| *key != "schema" && *key != "data") {
        return Err(format!("{what} has an unexpected key `{extra}`"));
    }
    match object.get("schema") {
        Some(Value::String(schema)) if schema == expected => {}
        other => return Err(format!("{what} has schema {other:?}, expected {expected}")),
    }
    object
        .get("data")
        .ok_or_else(|| format!("{what} has no data"))
}

/// Validates a self-describing entity's data against its schema, if available locally.
fn check_entity(entity: &Value) -> Result<(), String> {
    let schema = entity
        .get("schema")
        .and_then(Value::as_str)
        .ok_or("an entity without a schema")?;
    let data = entity.get("data").ok_or("an entity without data")?;
    if has_schema(schema) {
        validate(schema, data)?;
    }
    Ok(())
}
