//! The collector endpoint: parsed and validated once, at build time.

use std::fmt;

use crate::error::BuildError;
use crate::wire::{Method, GET_PATH, POST_PATH};

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS (the default).
    #[default]
    Https,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// A validated collector endpoint: `scheme://host[:port][/path]`, without trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: String,
}

impl Endpoint {
    /// Parses `endpoint` as `host`, `host:port`, `http://host[:port][/path]` or
    /// `https://…`. A scheme in the endpoint wins over `protocol`; `port`, when given,
    /// replaces the endpoint's own; trailing `/` are stripped.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] for an empty endpoint, whitespace or control characters, a scheme
    /// other than http(s), a missing host, an invalid port, or a query or fragment.
    /// [`BuildError::EndpointHasCollectorPath`] for a path that already ends in the POST or
    /// GET collector path (`…/com.snowplowanalytics.snowplow/tp2` or `…/i`, in any case):
    /// the emitter adds the path for its method, so the endpoint is the collector's base URL.
    pub fn parse(
        endpoint: &str,
        protocol: Protocol,
        port: Option<u16>,
    ) -> Result<Self, BuildError> {
        let invalid = |reason| BuildError::InvalidEndpoint { reason };
        if endpoint.is_empty() {
            return Err(BuildError::EmptyEndpoint);
        }
        if let Some((at, _)) = endpoint
            .char_indices()
            .find(|(_, c)| c.is_whitespace() || c.is_control())
        {
            return Err(BuildError::EndpointWhitespace { at });
        }
        // Schemes are case-insensitive (RFC 3986); the URL is written in lower case.
        let (protocol, rest) = match endpoint.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (Protocol::Http, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (Protocol::Https, rest),
            Some((scheme, _)) => {
                // Echoed only when it looks like a scheme (RFC 3986), never anything else.
                let looks_like_one = scheme.len() <= 16
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
                let shown = if looks_like_one {
                    scheme
                } else {
                    "(not shown)"
                };
                return Err(BuildError::UnsupportedScheme(shown.to_owned()));
            }
            None => (protocol, endpoint),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains(['?', '#']) {
            return Err(invalid("a query or fragment is not allowed"));
        }
        if rest.contains('@') {
            return Err(invalid("credentials in the endpoint are not supported"));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, own_port) = split_port(authority).ok_or_else(|| invalid("invalid port"))?;
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let host_ok = if let Some(ip6) = host.strip_prefix('[') {
            ip6.strip_suffix(']')
                .is_some_and(|ip6| ip6.parse::<std::net::Ipv6Addr>().is_ok())
        } else {
            host.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        };
        if !host_ok {
            return Err(invalid("invalid host"));
        }
        if let Some(path) = collector_path_suffix(path) {
            return Err(BuildError::EndpointHasCollectorPath { path });
        }
        let port = match port.or(own_port) {
            Some(0) => return Err(invalid("port 0")),
            Some(port) => format!(":{port}"),
            None => String::new(),
        };
        Ok(Self {
            base: format!("{}://{host}{port}{path}", protocol.as_str()),
        })
    }

    /// `scheme://host[:port][/path]`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether requests go over TLS.
    pub fn is_https(&self) -> bool {
        self.base.starts_with("https://")
    }

    /// The URL requests of `method` go to (without the query of a GET).
    pub fn url(&self, method: Method) -> String {
        match method {
            Method::Get => format!("{}{GET_PATH}", self.base),
            Method::Post => format!("{}{POST_PATH}", self.base),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

/// The collector path `path` ends in (compared without regard to case), if any: the whole
/// last segment or segments, so `/items` or `/tp2x` are not one.
fn collector_path_suffix(path: &str) -> Option<&'static str> {
    [POST_PATH, GET_PATH].into_iter().find(|collector_path| {
        path.len() >= collector_path.len()
            && path.as_bytes()[path.len() - collector_path.len()..]
                .eq_ignore_ascii_case(collector_path.as_bytes())
    })
}

/// Splits `host:port`; `None` when a port is present but invalid.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let colon = if authority.starts_with('[') {
        authority
            .find(']')
            .map(|end| end + 1)
            .filter(|&end| end < authority.len())
    } else {
        authority.rfind(':')
    };
    match colon {
        Some(at) if authority.as_bytes()[at] == b':' => {
            let port = &authority[at + 1..];
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((&authority[..at], Some(port.parse().ok()?)))
        }
        Some(_) => None,
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(endpoint: &str) -> Result<String, BuildError> {
        Endpoint::parse(endpoint, Protocol::Https, None).map(|e| e.base().to_owned())
    }

    #[test]
    fn accepted_forms() {
        let cases = [
            ("collector.example.com", "https://collector.example.com"),
            (
                "collector.example.com:8080",
                "https://collector.example.com:8080",
            ),
            ("http://127.0.0.1:9090/", "http://127.0.0.1:9090"),
            ("https://host/sub///", "https://host/sub"),
            ("http://[::1]:8080/x", "http://[::1]:8080/x"),
            // The collector paths inside the path, or as part of a longer last segment.
            ("https://c.example/i/x", "https://c.example/i/x"),
            ("https://c.example/items", "https://c.example/items"),
            ("https://c.example/xi", "https://c.example/xi"),
            (
                "https://c.example/com.snowplowanalytics.snowplow/tp2x",
                "https://c.example/com.snowplowanalytics.snowplow/tp2x",
            ),
            (
                "https://c.example/com.snowplowanalytics.snowplow/tp2/x",
                "https://c.example/com.snowplowanalytics.snowplow/tp2/x",
            ),
            ("https://c.example/tp2", "https://c.example/tp2"),
            ("HTTP://host", "http://host"),
            ("Https://host:1", "https://host:1"),
        ];
        for (endpoint, base) in cases {
            assert_eq!(parse(endpoint).as_deref(), Ok(base), "{endpoint}");
        }
        let with_port = Endpoint::parse("http://host:1", Protocol::Https, Some(2)).unwrap();
        assert_eq!(with_port.url(Method::Get), "http://host:2/i");
        let plain = Endpoint::parse("host", Protocol::Http, None).unwrap();
        assert_eq!(
            plain.url(Method::Post),
            "http://host/com.snowplowanalytics.snowplow/tp2"
        );
    }

    #[test]
    fn rejected_forms() {
        assert_eq!(parse(""), Err(BuildError::EmptyEndpoint));
        for bad in ["host name", "host\r\n", "host\t"] {
            assert!(matches!(
                parse(bad),
                Err(BuildError::EndpointWhitespace { .. })
            ));
        }
        assert_eq!(
            parse("ftp://host"),
            Err(BuildError::UnsupportedScheme("ftp".into()))
        );
        for bad in [
            "http://",
            "http://:80",
            "host:",
            "host:99999",
            "host:x",
            "h?q=1",
            "a@b",
            "h%t",
        ] {
            assert!(
                matches!(parse(bad), Err(BuildError::InvalidEndpoint { .. })),
                "{bad}: {:?}",
                parse(bad)
            );
        }
    }

    #[test]
    fn endpoints_ending_in_a_collector_path_are_refused() {
        let has = |path| Err(BuildError::EndpointHasCollectorPath { path });
        let cases = [
            (
                "https://c.example/com.snowplowanalytics.snowplow/tp2",
                POST_PATH,
            ),
            (
                "https://c.example/com.snowplowanalytics.snowplow/tp2/",
                POST_PATH,
            ),
            (
                "c.example:8080/sub/com.snowplowanalytics.snowplow/tp2//",
                POST_PATH,
            ),
            (
                "https://c.example/COM.SnowplowAnalytics.Snowplow/TP2",
                POST_PATH,
            ),
            ("https://c.example/i", GET_PATH),
            ("https://c.example/i/", GET_PATH),
            ("http://[::1]:8080/sub/I", GET_PATH),
            (
                "https://c.example/com.snowplowanalytics.snowplow/i",
                GET_PATH,
            ),
        ];
        for (endpoint, path) in cases {
            assert_eq!(parse(endpoint), has(path), "{endpoint}");
        }
    }

    #[test]
    fn the_collector_path_error_names_the_path_not_the_endpoint() {
        let error = parse("https://secret-token.c.example/i").unwrap_err();
        let message = error.to_string();
        assert_eq!(
            message,
            "the collector endpoint already ends in the collector path `/i`: give the \
             collector's base URL; the emitter adds the path for its method"
        );
        assert!(!message.contains("secret-token"), "{message}");
    }
}
