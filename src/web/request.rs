//! What a request tells about its subject: client IP, user agent, language, user ids; and
//! its page URL and referrer.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix_web::http::header::{HeaderName, ACCEPT_LANGUAGE, COOKIE, HOST, REFERER, USER_AGENT};
use actix_web::HttpRequest;

use super::privacy::{ClientIp, UrlRedaction};
use super::proxy::{http_scheme, is_valid_host, ProxyRule, PublicOrigin};
use crate::subject::Subject;

/// The longest user agent kept from a request (`ua`): the Snowplow atomic `useragent`
/// field's length. Header-derived fields are cut to the lengths the pipeline keeps, so a
/// client cannot make each buffered event large (headers may be up to ~128 KB each).
pub const MAX_USERAGENT_LEN: usize = 1000;
/// The longest page URL (`url`) or referrer (`refr`) kept from a request: the atomic
/// `page_url` and `page_referrer` length.
pub const MAX_URL_LEN: usize = 4096;
/// The longest language tag (`lang`) kept from `Accept-Language`: the atomic `br_lang`.
pub const MAX_LANG_LEN: usize = 255;
/// The longest network user id (`tnuid`) kept from a cookie: the atomic `network_userid`.
pub const MAX_NETWORK_USER_ID_LEN: usize = 128;

/// `value` cut to at most `max` bytes, at a character boundary.
fn truncated(value: &str, max: usize) -> &str {
    if value.len() <= max {
        return value;
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// `value` cut to at most `max` bytes, at a character boundary.
fn truncate_owned(mut value: String, max: usize) -> String {
    let keep = truncated(&value, max).len();
    value.truncate(keep);
    value
}

/// A function of the request giving its user id (`uid`).
pub(super) type UserIdFn = Arc<dyn Fn(&HttpRequest) -> Option<String> + Send + Sync>;

/// How a request's subject and page URL are built. The default trusts no proxy, has no
/// public origin, sets no user ids, sends the whole client IP and redacts URLs with the
/// default [`UrlRedaction`].
#[derive(Clone, Default)]
pub(super) struct SubjectRules {
    pub(super) proxies: ProxyRule,
    pub(super) public_origin: Option<PublicOrigin>,
    pub(super) user_id: Option<UserIdFn>,
    pub(super) network_user_id_cookie: Option<String>,
    pub(super) client_ip: ClientIp,
    pub(super) urls: UrlRedaction,
}

impl fmt::Debug for SubjectRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectRules")
            .field("proxies", &self.proxies)
            .field("public_origin", &self.public_origin)
            .field("user_id", &self.user_id.as_ref().map(|_| "<fn>"))
            .field("network_user_id_cookie", &self.network_user_id_cookie)
            .field("client_ip", &self.client_ip)
            .field("urls", &self.urls)
            .finish()
    }
}

impl SubjectRules {
    /// The request's subject: `ip` (as much of it as [`ClientIp`] says), `ua`, `lang`,
    /// `uid` and `tnuid`, each when known.
    pub(super) fn subject(&self, request: &HttpRequest) -> Subject {
        let mut subject = Subject::new();
        if let Some(ip) = self
            .proxies
            .client_ip(request.peer_addr(), request.headers())
            .and_then(|ip| self.client_ip.apply(ip))
        {
            subject = subject.ip_address(ip.to_string());
        }
        if let Some(useragent) = header(request, &USER_AGENT) {
            subject = subject.useragent(truncated(useragent, MAX_USERAGENT_LEN));
        }
        if let Some(lang) = header(request, &ACCEPT_LANGUAGE).and_then(first_language) {
            subject = subject.lang(truncated(lang, MAX_LANG_LEN));
        }
        if let Some(user_id) = self.user_id(request) {
            subject = subject.user_id(&user_id);
        }
        if let Some(network_user_id) = self
            .network_user_id_cookie
            .as_deref()
            .and_then(|name| cookie(request, name))
        {
            subject = subject.network_user_id(truncated(network_user_id, MAX_NETWORK_USER_ID_LEN));
        }
        subject
    }

    fn user_id(&self, request: &HttpRequest) -> Option<String> {
        let user_id = self.user_id.as_ref()?;
        match catch_unwind(AssertUnwindSafe(|| user_id(request))) {
            Ok(user_id) => user_id.filter(|user_id| !user_id.is_empty()),
            Err(_) => {
                tracing::warn!("snowplow: the user id function panicked; no uid for this request");
                None
            }
        }
    }

    /// The page URL, `scheme://host/path?query`, redacted, at most [`MAX_URL_LEN`] bytes.
    /// The scheme and the host each come from the first of: what the peer forwards, when it
    /// is a trusted proxy (the rightmost value of the chosen header, when valid); the public
    /// origin, when one is configured; the request itself (its URI and `Host` header, the
    /// server's configuration).
    pub(super) fn page_url(&self, request: &HttpRequest) -> String {
        let forwarded = self
            .proxies
            .forwarded_origin(request.peer_addr(), request.headers());
        let public = self.public_origin.as_ref();
        let scheme = forwarded
            .scheme
            .or_else(|| public.map(PublicOrigin::scheme))
            .unwrap_or_else(|| request_scheme(request));
        let host = forwarded
            .host
            .or_else(|| public.map(PublicOrigin::host))
            .unwrap_or_else(|| request_host(request));
        let uri = request.uri();
        let target = uri
            .path_and_query()
            .map_or_else(|| uri.path(), |target| target.as_str());
        let url = format!("{scheme}://{host}{target}");
        truncate_owned(self.urls.apply(truncated(&url, MAX_URL_LEN)), MAX_URL_LEN)
    }

    /// The `Referer` header, redacted as the page URL, if any (and not empty once redacted).
    pub(super) fn referrer(&self, request: &HttpRequest) -> Option<String> {
        let referrer = self
            .urls
            .apply(truncated(header(request, &REFERER)?, MAX_URL_LEN));
        (!referrer.is_empty()).then(|| truncate_owned(referrer, MAX_URL_LEN))
    }
}

/// The request's own scheme: its URI's (an absolute request target, HTTP/2), else that of
/// the server's connection.
fn request_scheme(request: &HttpRequest) -> &'static str {
    match request.uri().scheme_str().and_then(http_scheme) {
        Some(scheme) => scheme,
        None if request.app_config().secure() => "https",
        None => "http",
    }
}

/// The request's own host: its `Host` header, else its URI's authority (HTTP/2), each when
/// valid, else the server's configured host.
fn request_host(request: &HttpRequest) -> &str {
    header(request, &HOST)
        .filter(|host| is_valid_host(host))
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
                .filter(|host| is_valid_host(host))
        })
        .unwrap_or_else(|| request.app_config().host())
}

/// A header's value, when it is present, visible ASCII and not blank.
fn header<'a>(request: &'a HttpRequest, name: &HeaderName) -> Option<&'a str> {
    request
        .headers()
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// The first language tag of an `Accept-Language` value (`en-GB,en;q=0.8` gives `en-GB`);
/// the wildcard `*` is not a language.
fn first_language(accept_language: &str) -> Option<&str> {
    accept_language
        .split(',')
        .map(|range| range.split(';').next().unwrap_or_default().trim())
        .find(|tag| !tag.is_empty() && *tag != "*")
}

/// The value of the cookie `name`, unquoted, when present and not empty.
fn cookie<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request
        .headers()
        .get_all(&COOKIE)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"'))
        })
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;
    use crate::web::ProxyHeader;

    /// Hardening finding: the middleware copied User-Agent, Referer and URL (up to ~128 KB
    /// each) into every event.
    #[test]
    fn finding_header_derived_fields_are_cut_to_the_pipelines_lengths() {
        let long = "x".repeat(100_000);
        let request = TestRequest::get()
            .uri(&format!("/page?q={}", &long[..10_000]))
            .insert_header((USER_AGENT, long.as_str()))
            .insert_header((REFERER, format!("https://elsewhere.example/{long}")))
            .insert_header((ACCEPT_LANGUAGE, long.as_str()))
            .insert_header((COOKIE, format!("sp={long}")))
            .to_http_request();
        let rules = SubjectRules {
            network_user_id_cookie: Some("sp".into()),
            urls: UrlRedaction::raw(),
            ..SubjectRules::default()
        };
        let subject = rules.subject(&request);
        assert_eq!(subject.get("ua").map(str::len), Some(MAX_USERAGENT_LEN));
        assert_eq!(subject.get("lang").map(str::len), Some(MAX_LANG_LEN));
        assert_eq!(
            subject.get("tnuid").map(str::len),
            Some(MAX_NETWORK_USER_ID_LEN)
        );
        assert_eq!(rules.page_url(&request).len(), MAX_URL_LEN);
        assert!(rules
            .page_url(&request)
            .starts_with("http://localhost:8080/page?q=x"));
        assert_eq!(rules.referrer(&request).map(|r| r.len()), Some(MAX_URL_LEN));
        // Short values are kept whole; a cut never splits a character.
        assert_eq!(truncated("abc", 10), "abc");
        assert_eq!(truncated("aé", 2), "a");
    }

    #[test]
    fn by_default_the_page_url_and_referrer_keep_only_attribution_parameters() {
        let request = TestRequest::get()
            .uri("/reset?email=bob@example.com&token=s3cret&utm_campaign=spring")
            .insert_header((HOST, "shop.example"))
            .insert_header((
                REFERER,
                "https://shop.example/account?email=bob@example.com#pane",
            ))
            .to_http_request();
        let rules = SubjectRules::default();
        assert_eq!(
            rules.page_url(&request),
            "http://shop.example/reset?utm_campaign=spring"
        );
        assert_eq!(
            rules.referrer(&request).as_deref(),
            Some("https://shop.example/account")
        );
        let emptied = SubjectRules {
            urls: UrlRedaction::custom(|_| String::new()),
            ..SubjectRules::default()
        };
        assert_eq!(emptied.referrer(&request), None);
    }

    #[test]
    fn the_client_ip_setting_truncates_or_omits_the_ip() {
        let request = TestRequest::get()
            .peer_addr("203.0.113.9:5000".parse().unwrap())
            .to_http_request();
        let ip = |client_ip| {
            let rules = SubjectRules {
                client_ip,
                ..SubjectRules::default()
            };
            rules.subject(&request).get("ip").map(str::to_owned)
        };
        assert_eq!(ip(ClientIp::Full).as_deref(), Some("203.0.113.9"));
        assert_eq!(ip(ClientIp::Truncated).as_deref(), Some("203.0.113.0"));
        assert_eq!(ip(ClientIp::Omitted), None);
    }

    #[test]
    fn the_first_language_tag_is_the_language() {
        assert_eq!(first_language("en-GB,en;q=0.8,fr;q=0.9"), Some("en-GB"));
        assert_eq!(first_language(" de ; q=1"), Some("de"));
        assert_eq!(first_language("*, fr"), Some("fr"));
        assert_eq!(first_language(",;q=0.1"), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name_among_several_headers() {
        let request = TestRequest::get()
            .append_header((COOKIE, "a=1; sp_x=2"))
            .append_header((COOKIE, "sp=\"d3b07384\"; empty="))
            .to_http_request();
        assert_eq!(cookie(&request, "sp"), Some("d3b07384"));
        assert_eq!(cookie(&request, "a"), Some("1"));
        assert_eq!(cookie(&request, "empty"), None);
        assert_eq!(cookie(&request, "missing"), None);
    }

    fn trusting(header: ProxyHeader, origin: Option<&str>) -> SubjectRules {
        SubjectRules {
            proxies: ProxyRule {
                trusted: vec!["10.0.0.0/8".parse().unwrap()],
                header,
            },
            public_origin: origin.map(|origin| origin.parse().unwrap()),
            // The queries tell the requests apart.
            urls: UrlRedaction::raw(),
            ..SubjectRules::default()
        }
    }

    fn spoofed(peer: &str) -> TestRequest {
        TestRequest::get()
            .uri("/a/b?x=1&y=2")
            .peer_addr(peer.parse().unwrap())
            .insert_header((HOST, "shop.example"))
            .insert_header(("x-forwarded-host", "evil.example"))
            .insert_header(("x-forwarded-proto", "https"))
            .insert_header(("forwarded", "host=evil.example;proto=https"))
    }

    #[test]
    fn the_page_url_ignores_forwarded_hosts_from_untrusted_peers() {
        let rules = trusting(ProxyHeader::XForwardedFor, None);
        let direct = spoofed("203.0.113.9:5000").to_http_request();
        assert_eq!(rules.page_url(&direct), "http://shop.example/a/b?x=1&y=2");
        let proxied = spoofed("10.0.0.2:5000").to_http_request();
        assert_eq!(rules.page_url(&proxied), "https://evil.example/a/b?x=1&y=2");
        let bare = TestRequest::get().uri("/").to_http_request();
        assert_eq!(rules.page_url(&bare), "http://localhost:8080/");
    }

    #[test]
    fn the_page_url_takes_each_part_from_the_proxy_then_the_public_origin_then_the_request() {
        let origin = Some("https://www.shop.example");
        let rules = trusting(ProxyHeader::XForwardedFor, origin);
        // Untrusted: the public origin, never the forwarded values nor the client's `Host`.
        let direct = spoofed("203.0.113.9:5000").to_http_request();
        assert_eq!(
            rules.page_url(&direct),
            "https://www.shop.example/a/b?x=1&y=2"
        );
        // Trusted, forwarding only a scheme (as AWS load balancers do): the host is the
        // public origin's.
        let proto_only = TestRequest::get()
            .uri("/a")
            .peer_addr("10.0.0.2:5000".parse().unwrap())
            .insert_header((HOST, "internal:8080"))
            .insert_header(("x-forwarded-proto", "http"))
            .to_http_request();
        assert_eq!(rules.page_url(&proto_only), "http://www.shop.example/a");
        // An invalid forwarded host is the next source's.
        let invalid = TestRequest::get()
            .uri("/a")
            .peer_addr("10.0.0.2:5000".parse().unwrap())
            .insert_header(("x-forwarded-host", "evil.example/phish?"))
            .to_http_request();
        assert_eq!(rules.page_url(&invalid), "https://www.shop.example/a");
        assert_eq!(
            trusting(ProxyHeader::XForwardedFor, None).page_url(&invalid),
            "http://localhost:8080/a"
        );
        // `Forwarded` chosen: the forwarded `X-` values are nothing.
        let rules = trusting(ProxyHeader::Forwarded, None);
        let proxied = spoofed("10.0.0.2:5000").to_http_request();
        assert_eq!(rules.page_url(&proxied), "https://evil.example/a/b?x=1&y=2");
        let x_only = TestRequest::get()
            .uri("/a")
            .peer_addr("10.0.0.2:5000".parse().unwrap())
            .insert_header((HOST, "shop.example"))
            .insert_header(("x-forwarded-host", "evil.example"))
            .insert_header(("x-forwarded-proto", "https"))
            .to_http_request();
        assert_eq!(rules.page_url(&x_only), "http://shop.example/a");
    }

    #[test]
    fn an_invalid_host_header_is_the_servers_host() {
        let rules = SubjectRules::default();
        for host in ["evil.example/phish?", "user@shop.example", "shop example"] {
            let request = TestRequest::get()
                .uri("/a")
                .insert_header((HOST, host))
                .to_http_request();
            assert_eq!(
                rules.page_url(&request),
                "http://localhost:8080/a",
                "{host}"
            );
        }
    }

    #[test]
    fn a_panicking_user_id_function_gives_no_uid() {
        let rules = SubjectRules {
            user_id: Some(Arc::new(|_: &HttpRequest| -> Option<String> {
                panic!("user id lookup failed")
            })),
            ..SubjectRules::default()
        };
        let request = TestRequest::get()
            .insert_header((USER_AGENT, "curl/8"))
            .to_http_request();
        let subject = rules.subject(&request);
        assert_eq!(subject.iter().collect::<Vec<_>>(), [("ua", "curl/8")]);
    }
}
