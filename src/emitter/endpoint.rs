//! The collector endpoint: parsed and validated once, at build time.

use std::fmt;

use crate::error::BuildError;
use crate::wire::{GET_PATH, POST_PATH};

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
    pub fn parse(
        endpoint: &str,
        protocol: Protocol,
        port: Option<u16>,
    ) -> Result<Self, BuildError> {
        let invalid = |reason| BuildError::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        if endpoint.is_empty() {
            return Err(BuildError::EmptyEndpoint);
        }
        if endpoint
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(BuildError::EndpointWhitespace(endpoint.to_owned()));
        }
        // Schemes are case-insensitive (RFC 3986); the URL is written in lower case.
        let (protocol, rest) = match endpoint.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (Protocol::Http, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (Protocol::Https, rest),
            Some(_) => return Err(BuildError::UnsupportedScheme(endpoint.to_owned())),
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
            assert_eq!(parse(bad), Err(BuildError::EndpointWhitespace(bad.into())));
        }
        assert_eq!(
            parse("ftp://host"),
            Err(BuildError::UnsupportedScheme("ftp://host".into()))
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
}
