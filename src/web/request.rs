//! What a request tells about its subject: client IP, user agent, language, user ids; and
//! its page URL and referrer.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix_web::http::header::{HeaderName, ACCEPT_LANGUAGE, COOKIE, HOST, REFERER, USER_AGENT};
use actix_web::HttpRequest;

use super::proxy::{client_ip, is_trusted, IpRange};
use crate::subject::Subject;

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
            subject = subject.useragent(useragent);
        }
        if let Some(lang) = header(request, &ACCEPT_LANGUAGE).and_then(first_language) {
            subject = subject.lang(lang);
        }
        if let Some(user_id) = self.user_id(request) {
            subject = subject.user_id(&user_id);
        }
        if let Some(network_user_id) = self
            .network_user_id_cookie
            .as_deref()
            .and_then(|name| cookie(request, name))
        {
            subject = subject.network_user_id(network_user_id);
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
        return format!("{}://{}{target}", info.scheme(), info.host());
    }
    let config = request.app_config();
    let scheme = uri
        .scheme_str()
        .unwrap_or(if config.secure() { "https" } else { "http" });
    let host = header(request, &HOST)
        .or_else(|| uri.authority().map(|authority| authority.as_str()))
        .unwrap_or_else(|| config.host());
    format!("{scheme}://{host}{target}")
}

/// The `Referer` header, if any.
pub(super) fn referrer(request: &HttpRequest) -> Option<&str> {
    header(request, &REFERER)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

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
