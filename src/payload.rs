//! Tracker-protocol payloads: ordered name/value pairs and their two wire encodings.
//!
//! ```text
//!   Payload ── push_json_fields ──▶ "e":"se","se_ca":"cat",…      (POST, one event object)
//!           └─ push_query       ──▶ e=se&se_ca=cat&…              (GET, form encoding)
//! ```
//!
//! **This module does no I/O and knows nothing of actix.** A payload keeps every key and
//! value in one string buffer and eight bytes of index per pair. Events are built in a
//! per-thread buffer that is reused, then copied into two allocations of exactly their size
//! ([`Payload::compact`]), so a queued event holds only the bytes it uses.

use std::fmt::{self, Write as _};

/// Room a payload is built in: enough for any event but the largest self-describing ones.
const BUILD_FIELDS: usize = 32;
const BUILD_BYTES: usize = 1024;
/// A building room grown beyond this (a huge event) is freed rather than kept.
const MAX_SPARE_BYTES: usize = 64 * 1024;
const MAX_SPARE_FIELDS: usize = 256;

thread_local! {
    /// The room of the last payload compacted on this thread, for the next one built.
    static SPARE: std::cell::RefCell<Option<Payload>> = const { std::cell::RefCell::new(None) };
}

/// Ordered tracker-protocol name/value pairs, as the Snowplow trackers build them.
///
/// Values are text, as every value of a `payload_data` event is a JSON string. Adding an
/// empty value does nothing (the Python tracker drops `None` and `""`), and adding a key that is
/// already present replaces its value in place: the key keeps its first position, as a
/// Python dict does.
///
/// # Examples
///
/// ```
/// use snowplow_actix::wire::Payload;
///
/// let mut payload = Payload::new();
/// payload.add("e", "se");
/// payload.add("se_la", ""); // dropped: empty
/// payload.add("se_ca", "shop");
/// assert_eq!(payload.to_json_object(), r#"{"e":"se","se_ca":"shop"}"#);
/// assert_eq!(payload.to_query(), "e=se&se_ca=shop");
/// ```
#[derive(Clone, Default)]
pub struct Payload {
    /// Each pair's key then value, pair after pair: `ese` `se_cashop` …
    buf: String,
    fields: Vec<Field>,
    /// Two bits per key present ([`key_bit`]): most keys added are new, and a clear bit
    /// says so without a search.
    keys: u128,
}

/// A key's two bits in [`Payload::keys`]; different keys may share them.
#[inline]
fn key_bit(key: &str) -> u128 {
    let hash = key
        .bytes()
        .fold(key.len() as u32, |hash, byte| {
            hash.wrapping_mul(33) ^ u32::from(byte)
        })
        .wrapping_mul(0x9E37_79B9);
    (1 << (hash >> 25)) | (1 << ((hash >> 18) & 127))
}

/// One pair: its bytes run from the previous pair's `end` (0 for the first) to `end`, the
/// first `key_len` of them being the key. Eight bytes a pair.
#[derive(Clone, Copy)]
struct Field {
    end: u32,
    key_len: u16,
}

impl Payload {
    /// An empty payload.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty payload with room for `fields` pairs and `bytes` bytes of keys and values.
    pub fn with_capacity(fields: usize, bytes: usize) -> Self {
        Self {
            buf: String::with_capacity(bytes),
            fields: Vec::with_capacity(fields),
            keys: 0,
        }
    }

    /// Adds `key` with `value`; an empty value is ignored, an existing key is replaced.
    /// Keys are tracker-protocol names; a key longer than 65 535 bytes is ignored.
    pub fn add(&mut self, key: &'static str, value: &str) {
        self.put(key, value);
    }

    /// [`add`](Self::add) for a key taken from another payload.
    pub(crate) fn put(&mut self, key: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        let bits = key_bit(key);
        if let Some(idx) = self.position_with(key, bits) {
            self.replace(idx, value);
            return;
        }
        let Ok(key_len) = u16::try_from(key.len()) else {
            return;
        };
        self.buf.reserve(key.len() + value.len());
        self.buf.push_str(key);
        self.buf.push_str(value);
        self.push_field(key_len, bits);
    }

    /// Adds `key` with the `Display` form of `value` (numbers), with the rules of [`add`](Self::add).
    pub fn add_display(&mut self, key: &'static str, value: impl fmt::Display) {
        let Ok(key_len) = u16::try_from(key.len()) else {
            return;
        };
        let start = self.buf.len();
        self.buf.push_str(key);
        let value_start = self.buf.len();
        // Writing into a String cannot fail.
        let _ = write!(self.buf, "{value}");
        if self.buf.len() == value_start {
            self.buf.truncate(start);
            return;
        }
        let bits = key_bit(key);
        match self.position_with(key, bits) {
            Some(idx) => {
                let value = self.buf.split_off(value_start);
                self.buf.truncate(start);
                self.replace(idx, &value);
            }
            None => self.push_field(key_len, bits),
        }
    }

    /// Adds `key` with `value` if it is `Some`.
    pub fn add_opt(&mut self, key: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.add(key, value);
        }
    }

    /// Records the pair whose key of `key_len` bytes (its bits `bits`) and value were just
    /// written at the end of the buffer.
    fn push_field(&mut self, key_len: u16, bits: u128) {
        self.fields.push(Field {
            end: offset(self.buf.len()),
            key_len,
        });
        self.keys |= bits;
    }

    /// Replaces the value of pair `idx` in place; later pairs move by the difference.
    fn replace(&mut self, idx: usize, value: &str) {
        let old = self.value_range(idx);
        let (old_len, new_len) = (old.len() as i64, value.len() as i64);
        self.buf.replace_range(old, value);
        for field in &mut self.fields[idx..] {
            field.end = offset((i64::from(field.end) + new_len - old_len) as usize);
        }
    }

    /// Where the value of pair `idx` lies in the buffer.
    fn value_range(&self, idx: usize) -> std::ops::Range<usize> {
        let start = idx
            .checked_sub(1)
            .map_or(0, |prev| self.fields[prev].end as usize);
        let field = self.fields[idx];
        start + usize::from(field.key_len)..field.end as usize
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.position_with(key, key_bit(key))
    }

    /// The index of `key`, whose bits are `bits`.
    fn position_with(&self, key: &str, bits: u128) -> Option<usize> {
        if self.keys & bits != bits {
            return None;
        }
        let (buf, key) = (self.buf.as_bytes(), key.as_bytes());
        let mut start = 0;
        for (idx, field) in self.fields.iter().enumerate() {
            if usize::from(field.key_len) == key.len() && buf[start..].starts_with(key) {
                return Some(idx);
            }
            start = field.end as usize;
        }
        None
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        let idx = self.position(key)?;
        self.iter().nth(idx).map(|(_, value)| value)
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        let mut start = 0;
        self.fields.iter().map(move |field| {
            let key_start = start;
            let value_start = key_start + usize::from(field.key_len);
            start = field.end as usize;
            (
                &self.buf[key_start..value_start],
                &self.buf[value_start..start],
            )
        })
    }

    /// An empty payload to build an event in, with the room of the last payload
    /// [`compact`](Self::compact)ed on this thread: building allocates nothing.
    pub(crate) fn for_building() -> Self {
        SPARE
            .with(|spare| {
                spare
                    .try_borrow_mut()
                    .ok()
                    .and_then(|mut spare| spare.take())
            })
            .unwrap_or_else(|| Self::with_capacity(BUILD_FIELDS, BUILD_BYTES))
    }

    /// The same pairs in allocations of exactly their size (a stamped payload is never added
    /// to and may stay queued a while); the room it was built in is kept for the next
    /// [`for_building`](Self::for_building) on this thread.
    pub(crate) fn compact(mut self) -> Self {
        let compact = Self {
            buf: String::from(self.buf.as_str()),
            fields: self.fields.as_slice().to_vec(),
            keys: self.keys,
        };
        if self.buf.capacity() <= MAX_SPARE_BYTES && self.fields.capacity() <= MAX_SPARE_FIELDS {
            self.buf.clear();
            self.fields.clear();
            self.keys = 0;
            SPARE.with(|spare| {
                if let Ok(mut spare) = spare.try_borrow_mut() {
                    *spare = Some(self);
                }
            });
        }
        compact
    }

    /// Bytes it holds on the heap: its pairs and their index.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.buf.len() + self.fields.len() * std::mem::size_of::<Field>()
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the payload has no pair.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The payload as one compact JSON object, every value a string: `{"e":"pv",…}`.
    pub fn to_json_object(&self) -> String {
        let mut out = String::with_capacity(self.buf.len() + 8 * self.len() + 2);
        out.push('{');
        self.push_json_fields(&mut out);
        out.push('}');
        out
    }

    /// Appends the pairs as JSON object members, without braces: `"e":"pv","url":"…"`.
    pub fn push_json_fields(&self, out: &mut String) {
        for (idx, (key, value)) in self.iter().enumerate() {
            if idx > 0 {
                out.push(',');
            }
            // Keys are tracker-protocol names: plain ASCII, nothing to escape.
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
            push_json_string(out, value);
        }
    }

    /// The payload as a form-encoded query string, without the leading `?`.
    pub fn to_query(&self) -> String {
        let mut out = String::with_capacity(self.buf.len() * 3 / 2 + 4 * self.len());
        self.push_query(&mut out);
        out
    }

    /// Appends the pairs form-encoded: `e=pv&url=http%3A%2F%2F…`.
    pub fn push_query(&self, out: &mut String) {
        for (idx, (key, value)) in self.iter().enumerate() {
            if idx > 0 {
                out.push('&');
            }
            push_form_encoded(out, key);
            out.push('=');
            push_form_encoded(out, value);
        }
    }
}

/// Payloads are equal when their pairs are, in order (however they were built).
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Payload {}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Payload {
    type Item = (&'a str, &'a str);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a str)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

fn offset(len: usize) -> u32 {
    // A single event above 4 GiB cannot be sent to any collector; saturating keeps the
    // arithmetic total, and such a payload is rejected long before by the byte limits.
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Which bytes a JSON string must escape: `"`, `\\` and the control characters.
const fn json_escapes() -> [bool; 256] {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
}

static JSON_ESCAPES: [bool; 256] = json_escapes();

/// Appends `value` as a JSON string literal: quotes, `\"`, `\\` and control characters
/// escaped; other characters, non-ASCII included, written as UTF-8. Runs of bytes that need
/// no escape (nearly all of them) are copied at once.
pub(crate) fn push_json_string(out: &mut String, value: &str) {
    out.reserve(value.len() + 2);
    out.push('"');
    let bytes = value.as_bytes();
    let mut clean_from = 0;
    while let Some(found) = first_escape(&bytes[clean_from..]) {
        let idx = clean_from + found;
        out.push_str(&value[clean_from..idx]);
        match bytes[idx] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            byte => {
                let _ = write!(out, "\\u{byte:04x}");
            }
        }
        clean_from = idx + 1;
    }
    out.push_str(&value[clean_from..]);
    out.push('"');
}

/// The index of the first byte JSON must escape, looking at eight bytes at a time: values
/// are mostly plain text, and most never need an escape.
#[inline]
fn first_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Nonzero when a byte of `word` is below `n` (n ≤ 128) or equal to `b`.
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    let equal = |word: u64, b: u8| below(word ^ (ONES * u64::from(b)), 1);
    let mut start = 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut eight = [0; 8];
        eight.copy_from_slice(chunk);
        let word = u64::from_le_bytes(eight);
        if below(word, 0x20) | equal(word, b'"') | equal(word, b'\\') != 0 {
            break;
        }
        start += 8;
    }
    bytes[start..]
        .iter()
        .position(|&byte| JSON_ESCAPES[usize::from(byte)])
        .map(|at| start + at)
}

/// Appends `value` form-encoded as Python's `quote_plus`: `A–Z a–z 0–9 _ . - ~` kept, space
/// as `+`, every other UTF-8 byte as upper-case `%XX`.
pub(crate) fn push_form_encoded(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in value.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[(byte >> 4) as usize] as char);
                out.push(HEX[(byte & 0x0f) as usize] as char);
            }
        }
    }
}

/// The properties of `payload_data` 1-0-4: the only keys a tracker-protocol event may carry.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) const PROTOCOL_KEYS: [&str; 80] = [
    "tna", "aid", "p", "dtm", "tz", "e", "tid", "eid", "tv", "duid", "nuid", "uid", "vid", "ip",
    "res", "url", "page", "refr", "fp", "ctype", "cookie", "lang", "f_pdf", "f_qt", "f_realp",
    "f_wma", "f_dir", "f_fla", "f_java", "f_gears", "f_ag", "cd", "ds", "cs", "vp", "mac",
    "pp_mix", "pp_max", "pp_miy", "pp_may", "ad_ba", "ad_ca", "ad_ad", "ad_uid", "tr_id", "tr_af",
    "tr_tt", "tr_tx", "tr_sh", "tr_ci", "tr_st", "tr_co", "tr_cu", "ti_id", "ti_sk", "ti_nm",
    "ti_na", "ti_ca", "ti_pr", "ti_qu", "ti_cu", "sa", "sn", "st", "sp", "se_ca", "se_ac", "se_la",
    "se_pr", "se_va", "ue_na", "ue_pr", "ue_px", "co", "cx", "ua", "tnuid", "stm", "sid", "ttm",
];

/// The static key of the `payload_data` 1-0-4 property `name`, or `None` for a name the
/// schema does not allow: how a durable store rebuilds a [`Payload`] (whose keys are
/// `&'static str`) from stored text.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn protocol_key(name: &str) -> Option<&'static str> {
    PROTOCOL_KEYS.iter().copied().find(|key| *key == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: &str) -> String {
        let mut out = String::new();
        push_json_string(&mut out, value);
        out
    }

    fn form(value: &str) -> String {
        let mut out = String::new();
        push_form_encoded(&mut out, value);
        out
    }

    #[test]
    fn json_strings_match_serde_json() {
        for value in [
            "plain",
            "quote \" backslash \\ slash /",
            "controls \n\r\t\u{8}\u{c}\u{1}\u{1f}",
            "unicode ć 漢字 🎉",
            "",
        ] {
            assert_eq!(
                json(value),
                serde_json::to_string(value).unwrap(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn json_escapes_are_found_at_every_offset_of_the_eight_byte_scan() {
        for escape in ["\"", "\\", "\n", "\u{1}", "\u{1f}"] {
            for offset in 0..20 {
                for tail in ["", "x", "é漢🎉 tail, then more text"] {
                    let value = format!(
                        "{}{escape}{tail}",
                        "ab~é"
                            .repeat(offset)
                            .chars()
                            .take(offset)
                            .collect::<String>()
                    );
                    assert_eq!(
                        json(&value),
                        serde_json::to_string(&value).unwrap(),
                        "{value:?}"
                    );
                }
            }
        }
        // Bytes at and above 0x20 but near the escapes, and UTF-8 above 0x80, pass as is.
        let plain: String = (0x20u8..0x7f)
            .map(char::from)
            .filter(|c| *c != '"' && *c != '\\')
            .collect();
        assert_eq!(json(&plain), format!("\"{plain}\""));
    }

    #[test]
    fn form_encoding_matches_the_python_tracker() {
        let cases = [
            ("Save The Arctic", "Save+The+Arctic"),
            ("http://savethearctic.org", "http%3A%2F%2Fsavethearctic.org"),
            ("Europe London", "Europe+London"),
            (
                "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.0; Trident/5.0)",
                "Mozilla%2F5.0+%28compatible%3B+MSIE+9.0%3B+Windows+NT+6.0%3B+Trident%2F5.0%29",
            ),
            (
                "http://x.com/a b?c=d~e*f",
                "http%3A%2F%2Fx.com%2Fa+b%3Fc%3Dd~e%2Af",
            ),
            ("Tïtle (x)", "T%C3%AFtle+%28x%29"),
            ("u 1", "u+1"),
            ("a&b=c+d", "a%26b%3Dc%2Bd"),
            ("AZaz09_.-~", "AZaz09_.-~"),
        ];
        for (raw, encoded) in cases {
            assert_eq!(form(raw), encoded, "{raw:?}");
        }
    }

    #[test]
    fn add_drops_empty_and_replaces_in_place() {
        let mut payload = Payload::new();
        payload.add("e", "pv");
        payload.add("url", "a");
        payload.add("page", "");
        payload.add("e", "pp");
        payload.add_display("vid", 3);
        let pairs: Vec<_> = payload.iter().collect();
        assert_eq!(pairs, [("e", "pp"), ("url", "a"), ("vid", "3")]);
        assert_eq!(payload.get("e"), Some("pp"));
        assert_eq!(payload.get("page"), None);
    }

    #[test]
    fn replacing_a_value_keeps_every_other_pair_intact() {
        let mut payload = Payload::new();
        for (key, value) in [("e", "pv"), ("url", "u"), ("page", "title"), ("uid", "x")] {
            payload.add(key, value);
        }
        payload.add("url", "https://longer.example/");
        payload.add("page", "t");
        payload.add_display("uid", 12_345);
        payload.add_display("e", "");
        payload.add("tv", "1");

        let pairs: Vec<_> = payload.iter().collect();
        assert_eq!(
            pairs,
            [
                ("e", "pv"),
                ("url", "https://longer.example/"),
                ("page", "t"),
                ("uid", "12345"),
                ("tv", "1"),
            ]
        );
        assert_eq!(payload.get("uid"), Some("12345"));
        assert_eq!(
            payload.to_json_object(),
            r#"{"e":"pv","url":"https://longer.example/","page":"t","uid":"12345","tv":"1"}"#
        );
        assert_eq!(payload.clone().compact(), payload);
    }

    #[test]
    fn every_protocol_key_is_found_and_replaced_whatever_bits_keys_share() {
        let mut payload = Payload::new();
        for (idx, key) in PROTOCOL_KEYS.iter().enumerate() {
            payload.add(key, &idx.to_string());
        }
        for (idx, key) in PROTOCOL_KEYS.iter().enumerate() {
            assert_eq!(payload.get(key), Some(idx.to_string().as_str()), "{key}");
            payload.add(key, &format!("again {idx}"));
        }
        assert_eq!(payload.len(), PROTOCOL_KEYS.len());
        for (idx, (key, value)) in payload.iter().enumerate() {
            assert_eq!(
                (key, value),
                (PROTOCOL_KEYS[idx], format!("again {idx}").as_str())
            );
        }
        assert_eq!(payload.get("not_a_key"), None);
    }

    #[test]
    fn long_values_and_numbers_are_kept_and_replaced_exactly() {
        let long = "x".repeat(70_000);
        let mut payload = Payload::new();
        payload.add("e", "ue");
        payload.add("ue_pr", &long);
        payload.add_display("dtm", 1_700_000_000_000_u64);
        payload.add_display("cd", "");
        payload.add_display("vid", "y".repeat(300));
        payload.add("tv", "1");
        assert_eq!(payload.get("ue_pr").map(str::len), Some(70_000));
        assert_eq!(payload.get("dtm"), Some("1700000000000"));
        assert_eq!(payload.get("vid").map(str::len), Some(300));
        assert_eq!(payload.get("cd"), None);

        payload.add("ue_pr", "short");
        payload.add_display("dtm", 7);
        payload.add_display("vid", 8);
        payload.add("e", &long);

        let pairs: Vec<(&str, usize)> = payload.iter().map(|(k, v)| (k, v.len())).collect();
        assert_eq!(
            pairs,
            [
                ("e", 70_000),
                ("ue_pr", 5),
                ("dtm", 1),
                ("vid", 1),
                ("tv", 1)
            ]
        );
        assert_eq!(payload.get("dtm"), Some("7"));
        assert_eq!(payload.clone().compact(), payload);
    }

    #[test]
    fn equality_ignores_replaced_values() {
        let mut replaced = Payload::new();
        replaced.add("uid", "a");
        replaced.add("uid", "b");
        let mut direct = Payload::new();
        direct.add("uid", "b");
        assert_eq!(replaced, direct);
        direct.add("p", "srv");
        assert_ne!(replaced, direct);
    }
}
