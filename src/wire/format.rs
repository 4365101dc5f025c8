//! Constants and sizes of the format: collector paths, methods, the `payload_data` envelope,
//! `stm`.

use std::fmt;

/// Path of POST requests, after the endpoint.
pub const POST_PATH: &str = "/com.snowplowanalytics.snowplow/tp2";
/// Path of GET requests, after the endpoint.
pub const GET_PATH: &str = "/i";
/// `Content-Type` of POST requests.
pub const POST_CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// Schema of the envelope of a POST body.
pub const PAYLOAD_DATA_SCHEMA: &str =
    "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4";

/// Digits of an `stm` in milliseconds: 13 from September 2001 to the year 2286. Sizes are
/// computed with this width; a clock outside that range makes them off by a few bytes.
pub(crate) const STM_DIGITS: usize = 13;

pub(crate) const BODY_PREFIX: &str = concat!(
    "{\"schema\":\"",
    "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
    "\",\"data\":["
);
pub(crate) const BODY_SUFFIX: &str = "]}";
/// What `stm` adds to an event object in a POST body: `,"stm":"` digits `"` and the
/// closing brace.
pub(crate) const POST_STM_OVERHEAD: usize = ",\"stm\":\"".len() + STM_DIGITS + "\"}".len();
/// What `stm` adds to a GET query: `&stm=` and the digits.
pub(crate) const QUERY_STM_OVERHEAD: usize = "&stm=".len() + STM_DIGITS;

/// The size in bytes of a POST body carrying events of the given
/// [`post_size`](super::StampedEvent::post_size)s.
pub fn post_body_size(event_sizes: impl IntoIterator<Item = usize>) -> usize {
    let (count, sum) = event_sizes
        .into_iter()
        .fold((0usize, 0usize), |(count, sum), size| {
            (count + 1, sum + size)
        });
    BODY_PREFIX.len() + sum + count.saturating_sub(1) + BODY_SUFFIX.len()
}

/// GET (one event per request, in the query string) or POST (batches in a JSON body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Method {
    /// `GET {endpoint}/i?…`, one event per request.
    Get,
    /// `POST {endpoint}/com.snowplowanalytics.snowplow/tp2`, batches (the default).
    #[default]
    Post,
}

/// `GET` or `POST`, as logs name it.
impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Get => "GET",
            Self::Post => "POST",
        })
    }
}

/// An `stm` value formatted once per request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stm {
    digits: [u8; 20],
    len: u8,
}

impl Stm {
    /// `stm_ms` in decimal.
    pub(crate) fn new(stm_ms: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut len = 0;
        let mut rest = stm_ms;
        loop {
            digits[len] = b'0' + (rest % 10) as u8;
            len += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        digits[..len].reverse();
        Self {
            digits,
            len: len as u8,
        }
    }

    /// The decimal digits.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).expect("stm digits are ASCII")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stm_formats_like_display() {
        for value in [0, 7, 10, 1_618_358_402_000, u64::MAX] {
            assert_eq!(Stm::new(value).as_str(), value.to_string());
        }
    }

    #[test]
    fn body_constants_agree() {
        assert_eq!(
            BODY_PREFIX,
            format!("{{\"schema\":\"{PAYLOAD_DATA_SCHEMA}\",\"data\":[")
        );
        assert_eq!(post_body_size([]), BODY_PREFIX.len() + BODY_SUFFIX.len());
        assert_eq!(
            post_body_size([10, 20]),
            BODY_PREFIX.len() + 10 + 1 + 20 + BODY_SUFFIX.len()
        );
    }
}
