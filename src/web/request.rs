//! What a request tells about its subject: client IP, user agent, language, user ids; and
//! its page URL and referrer.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix_web::http::header::{HeaderName, ACCEPT_LANGUAGE, COOKIE, HOST, REFERER, USER_AGENT};
use actix_web::HttpRequest;

use super::proxy::{client_ip, is_trusted, IpRange};
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

/// How a request's subject is built. The default trusts no proxy and sets no user ids.
#[derive(Clone, Default)]
pub(super) struct SubjectRules {
    pub(super) trusted_proxies: Vec<IpRange>,
    pub(super) user_id: Option<UserIdFn>,
    pub(super) network_user_id_cookie: Option<String>,
}

impl fmt::Debug for SubjectRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectRules")
            .field("trusted_proxies", &self.trusted_proxies)
            .field("user_id", &self.user_id.as_ref().map(|_| "<fn>"))
            .field("network_user_id_cookie", &self.network_user_id_cookie)
            .finish()
    }
}

impl SubjectRules {
    /// The request's subject: `ip`, `ua`, `lang`, `uid` and `tnuid`, each when known.
    pub(super) fn subject(&self, request: &HttpRequest) -> Subject {
        let mut subject = Subject::new();
        if let Some(ip) = client_ip(
            request.peer_addr(),
            request.headers(),
            &self.trusted_proxies,
        ) {
            subject = subject.ip_address(&ip.to_string());
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

    /// Whether the request came straight from a trusted proxy (its forwarding headers count).
    pub(super) fn is_from_trusted_proxy(&self, request: &HttpRequest) -> bool {
        request
            .peer_addr()
            .is_some_and(|peer| is_trusted(&self.trusted_proxies, peer.ip()))
    }
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

/// The page URL, `scheme://host/path?query`. Scheme and host come from the request (its
/// URI, `Host` header, or the server's configuration) and, only when the peer is a trusted
/// proxy, from `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host`.
pub(super) fn page_url(request: &HttpRequest, from_trusted_proxy: bool) -> String {
    let uri = request.uri();
    let target = uri
        .path_and_query()
        .map_or_else(|| uri.path(), |target| target.as_str());
    if from_trusted_proxy {
        let info = request.connection_info();
        let url = format!("{}://{}{target}", info.scheme(), info.host());
        return truncate_owned(url, MAX_URL_LEN);
    }
    let config = request.app_config();
    let scheme = uri
        .scheme_str()
        .unwrap_or(if config.secure() { "https" } else { "http" });
    let host = header(request, &HOST)
        .or_else(|| uri.authority().map(|authority| authority.as_str()))
        .unwrap_or_else(|| config.host());
    truncate_owned(format!("{scheme}://{host}{target}"), MAX_URL_LEN)
}

/// The `Referer` header, if any.
pub(super) fn referrer(request: &HttpRequest) -> Option<&str> {
    header(request, &REFERER).map(|referrer| truncated(referrer, MAX_URL_LEN))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

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
            ..SubjectRules::default()
        };
        let subject = rules.subject(&request);
        assert_eq!(subject.get("ua").map(str::len), Some(MAX_USERAGENT_LEN));
        assert_eq!(subject.get("lang").map(str::len), Some(MAX_LANG_LEN));
        assert_eq!(
            subject.get("tnuid").map(str::len),
            Some(MAX_NETWORK_USER_ID_LEN)
        );
        assert_eq!(page_url(&request, false).len(), MAX_URL_LEN);
        assert!(page_url(&request, false).starts_with("http://localhost:8080/page?q=x"));
        assert_eq!(referrer(&request).map(str::len), Some(MAX_URL_LEN));
        // Short values are kept whole; a cut never splits a character.
        assert_eq!(truncated("abc", 10), "abc");
        assert_eq!(truncated("aé", 2), "a");
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

    #[test]
    fn the_page_url_ignores_forwarded_hosts_from_untrusted_peers() {
        let request = TestRequest::get()
            .uri("/a/b?x=1&y=2")
            .insert_header((HOST, "shop.example"))
            .insert_header(("x-forwarded-host", "evil.example"))
            .insert_header(("x-forwarded-proto", "https"))
            .to_http_request();
        assert_eq!(page_url(&request, false), "http://shop.example/a/b?x=1&y=2");
        assert_eq!(page_url(&request, true), "https://evil.example/a/b?x=1&y=2");
        let bare = TestRequest::get().uri("/").to_http_request();
        assert_eq!(page_url(&bare, false), "http://localhost:8080/");
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
