//! Privacy controls of the middleware: how much of the client IP an event carries
//! ([`ClientIp`]), and what the page URL and referrer keep of their query
//! ([`UrlRedaction`]).
//!
//! **Pure: values in, values out.** No actix-web types.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// How much of the client IP the request's subject carries (`ip`).
///
/// # Examples
///
/// ```
/// use snowplow_actix::web::{ClientIp, DEFAULT_CLIENT_IP};
///
/// assert_eq!(DEFAULT_CLIENT_IP, ClientIp::Full);
/// let truncated = ClientIp::Truncated;
/// assert_eq!(truncated.apply("203.0.113.9".parse()?), Some("203.0.113.0".parse()?));
/// assert_eq!(truncated.apply("2001:db8:85a3:8d3:1319:8a2e:370:7348".parse()?), Some("2001:db8:85a3::".parse()?));
/// assert_eq!(ClientIp::Omitted.apply("203.0.113.9".parse()?), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientIp {
    /// The whole address (the default, [`DEFAULT_CLIENT_IP`]).
    #[default]
    Full,
    /// The network part only: an IPv4 address cut to its /24 (`203.0.113.9` is sent as
    /// `203.0.113.0`), an IPv6 address to its /48 (`2001:db8:85a3::`). Enough for a
    /// country or a city, not for a household.
    Truncated,
    /// No `ip` at all. The pipeline then takes the address the collector saw, which is
    /// the server's, not the client's.
    Omitted,
}

/// The default of [`SnowplowTracking::client_ip`](super::SnowplowTracking::client_ip): the
/// whole client IP, as before the setting existed.
pub const DEFAULT_CLIENT_IP: ClientIp = ClientIp::Full;

impl ClientIp {
    /// What the subject carries of `ip`: all of it, its network part, or nothing.
    pub fn apply(self, ip: IpAddr) -> Option<IpAddr> {
        match self {
            Self::Full => Some(ip),
            Self::Truncated => Some(match ip.to_canonical() {
                IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
                IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 48))),
            }),
            Self::Omitted => None,
        }
    }
}

/// The query parameters kept by the default [`UrlRedaction`], besides every `utm_*`
/// parameter: the click ids of ad networks, which attribution needs.
pub const ATTRIBUTION_PARAMS: &[&str] = &[
    "gclid",
    "gbraid",
    "wbraid",
    "dclid",
    "fbclid",
    "msclkid",
    "ttclid",
    "twclid",
    "li_fat_id",
    "epik",
    "rdt_cid",
    "sccid",
    "mc_cid",
];

/// The prefix of the campaign parameters the default [`UrlRedaction`] keeps
/// (`utm_source`, `utm_medium`, `utm_campaign`, `utm_term`, `utm_content`, `utm_id`, …).
pub const ATTRIBUTION_PREFIX: &str = "utm_";

/// A function rewriting a URL before it is sent.
type RedactFn = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// What the page URL (`url`) and referrer (`refr`) the middleware builds keep of their
/// query string (and fragment).
///
/// The default, [`attribution`](Self::attribution), keeps only the campaign parameters
/// (`utm_*`) and ad click ids ([`ATTRIBUTION_PARAMS`]), with their values, and drops every
/// other parameter, name and value, and any fragment: `?email=bob@example.com&utm_source=mail`
/// is sent as `?utm_source=mail`. Parameter names are compared without regard to ASCII
/// case. Add the parameters your analysis needs with [`keep_param`](Self::keep_param)
/// (a search term, a page number); [`raw`](Self::raw) sends the query as it came, as the
/// middleware did before this setting existed.
///
/// The path is never changed, except by a [`custom`](Self::custom) function: one that
/// carries ids or personal data (`/users/bob@example.com`) needs one, or a custom page view
/// from the decision function.
///
/// # Examples
///
/// ```
/// use snowplow_actix::web::UrlRedaction;
///
/// let url = "https://shop.example/search?q=shoes&email=bob@example.com&utm_source=mail&gclid=Cj0";
/// assert_eq!(
///     UrlRedaction::default().apply(url),
///     "https://shop.example/search?utm_source=mail&gclid=Cj0"
/// );
/// assert_eq!(
///     UrlRedaction::default().keep_param("q").apply(url),
///     "https://shop.example/search?q=shoes&utm_source=mail&gclid=Cj0"
/// );
/// assert_eq!(UrlRedaction::no_query().apply(url), "https://shop.example/search");
/// assert_eq!(UrlRedaction::raw().apply(url), url);
/// let custom = UrlRedaction::custom(|url| url.replace("shop.example", "example.com"));
/// assert_eq!(custom.apply("https://shop.example/a?b=1"), "https://example.com/a?b=1");
/// ```
#[derive(Clone)]
pub struct UrlRedaction {
    rule: Rule,
}

#[derive(Clone)]
enum Rule {
    /// Keep the named parameters, and the attribution ones when `attribution` is set.
    Keep {
        attribution: bool,
        names: Vec<String>,
    },
    Raw,
    Custom(RedactFn),
}

impl Default for UrlRedaction {
    /// [`UrlRedaction::attribution`].
    fn default() -> Self {
        Self::attribution()
    }
}

impl fmt::Debug for UrlRedaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Rule::Keep { attribution, names } => f
                .debug_struct("UrlRedaction")
                .field("attribution", attribution)
                .field("keep", names)
                .finish(),
            Rule::Raw => f.write_str("UrlRedaction::Raw"),
            Rule::Custom(_) => f.write_str("UrlRedaction::Custom(<fn>)"),
        }
    }
}

impl UrlRedaction {
    /// Keeps the attribution parameters (`utm_*` and [`ATTRIBUTION_PARAMS`]) and drops the
    /// rest of the query and any fragment: the default.
    pub fn attribution() -> Self {
        Self {
            rule: Rule::Keep {
                attribution: true,
                names: Vec::new(),
            },
        }
    }

    /// Drops the whole query and any fragment (add parameters back with
    /// [`keep_param`](Self::keep_param)).
    pub fn no_query() -> Self {
        Self {
            rule: Rule::Keep {
                attribution: false,
                names: Vec::new(),
            },
        }
    }

    /// Sends the URL as the request had it, query and all: what the middleware did before
    /// this setting existed. A query may carry personal data (`?email=…`, reset tokens).
    pub fn raw() -> Self {
        Self { rule: Rule::Raw }
    }

    /// Rewrites each URL with `redact`: it gets the whole URL
    /// (`scheme://host/path?query`, or the `Referer` header as sent) and returns what to
    /// send. An empty result tracks no page view (and no referrer); a panic sends the URL
    /// without its query. It runs on the request's worker: keep it quick.
    pub fn custom(redact: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        Self {
            rule: Rule::Custom(Arc::new(redact)),
        }
    }

    /// Also keeps the query parameter `name` (with its value), for the rules that keep
    /// some parameters ([`attribution`](Self::attribution), [`no_query`](Self::no_query));
    /// [`raw`](Self::raw) and [`custom`](Self::custom) are left as they are.
    pub fn keep_param(mut self, name: impl Into<String>) -> Self {
        if let Rule::Keep { names, .. } = &mut self.rule {
            names.push(name.into());
        }
        self
    }

    /// `url` as this rule sends it.
    pub fn apply(&self, url: &str) -> String {
        match &self.rule {
            Rule::Raw => url.to_owned(),
            Rule::Keep { attribution, names } => keep_params(url, |name| {
                (*attribution && is_attribution(name))
                    || names.iter().any(|kept| kept.eq_ignore_ascii_case(name))
            }),
            Rule::Custom(redact) => catch_unwind(AssertUnwindSafe(|| redact(url)))
                .unwrap_or_else(|_| {
                    tracing::warn!(
                        "snowplow: the URL redaction function panicked; the URL is sent without its query"
                    );
                    keep_params(url, |_| false)
                }),
        }
    }
}

/// Whether `name` is an attribution parameter: `utm_*` or one of [`ATTRIBUTION_PARAMS`].
fn is_attribution(name: &str) -> bool {
    name.get(..ATTRIBUTION_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(ATTRIBUTION_PREFIX))
        || ATTRIBUTION_PARAMS
            .iter()
            .any(|param| param.eq_ignore_ascii_case(name))
}

/// `url` without its fragment, and with only the query parameters whose name `keep`
/// accepts, in their order; without the `?` when none is left.
fn keep_params(url: &str, keep: impl Fn(&str) -> bool) -> String {
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(base);
    let mut first = true;
    for param in query.split('&').filter(|param| !param.is_empty()) {
        let name = param.split_once('=').map_or(param, |(name, _)| name);
        if keep(name) {
            out.push(if first { '?' } else { '&' });
            out.push_str(param);
            first = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn truncation_keeps_the_ipv4_slash_24_and_the_ipv6_slash_48() {
        let truncated = ClientIp::Truncated;
        assert_eq!(
            truncated.apply(ip("198.51.100.255")),
            Some(ip("198.51.100.0"))
        );
        assert_eq!(
            truncated.apply(ip("::ffff:198.51.100.7")),
            Some(ip("198.51.100.0"))
        );
        assert_eq!(
            truncated.apply(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")),
            Some(ip("2001:db8:ffff::"))
        );
        assert_eq!(truncated.apply(ip("::1")), Some(ip("::")));
        assert_eq!(
            ClientIp::Full.apply(ip("198.51.100.7")),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(ClientIp::Omitted.apply(ip("2001:db8::1")), None);
    }

    #[test]
    fn the_default_keeps_only_attribution_parameters() {
        let redaction = UrlRedaction::default();
        for (url, expected) in [
            ("https://a.example/p", "https://a.example/p"),
            ("https://a.example/p?", "https://a.example/p"),
            (
                "https://a.example/p?email=bob@example.com",
                "https://a.example/p",
            ),
            (
                "https://a.example/p?UTM_Source=x&token=s3cret&&fbclid=1&utm_=2&utm=3",
                "https://a.example/p?UTM_Source=x&fbclid=1&utm_=2",
            ),
            // A bare name may be the data itself; a fragment may carry a token.
            ("https://a.example/p?bob@example.com", "https://a.example/p"),
            (
                "https://a.example/p?gclid=Cj0#access_token=abc",
                "https://a.example/p?gclid=Cj0",
            ),
            ("https://a.example/p#top", "https://a.example/p"),
            // A percent-encoded name is not the attribution name it spells.
            ("https://a.example/p?utm%5Fsource=x", "https://a.example/p"),
            (
                "https://a.example/p?é=1&gbraid=2",
                "https://a.example/p?gbraid=2",
            ),
        ] {
            assert_eq!(redaction.apply(url), expected, "{url}");
        }
    }

    #[test]
    fn kept_names_add_to_the_rule_and_raw_and_custom_ignore_them() {
        let url = "https://a.example/s?q=red&page=2&user=bob";
        assert_eq!(
            UrlRedaction::no_query()
                .keep_param("q")
                .keep_param("PAGE")
                .apply(url),
            "https://a.example/s?q=red&page=2"
        );
        assert_eq!(UrlRedaction::raw().keep_param("q").apply(url), url);
        let custom = UrlRedaction::custom(|url| url.to_uppercase()).keep_param("q");
        assert_eq!(custom.apply("a?b"), "A?B");
    }

    #[test]
    fn a_panicking_custom_function_sends_the_url_without_its_query() {
        let redaction = UrlRedaction::custom(|_| panic!("a buggy redaction"));
        assert_eq!(
            redaction.apply("https://a.example/p?email=bob@example.com#x"),
            "https://a.example/p"
        );
    }
}
