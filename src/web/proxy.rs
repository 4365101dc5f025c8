//! Trusted proxies: the client IP, and the page URL's host and scheme, from the one
//! forwarding header the proxies write, honoured only when the peer is a trusted proxy; and
//! the site's configured public origin.
//!
//! **Pure: headers in, values out.** No actix-web types beyond the header map.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use actix_web::http::header::{
    HeaderMap, HeaderName, HeaderValue, FORWARDED, X_FORWARDED_FOR, X_FORWARDED_HOST,
    X_FORWARDED_PROTO,
};

/// The most entries of the forwarding header the client-IP walk examines, from the right.
///
/// The walk reads a header as if it held only its rightmost `MAX_PROXY_HOPS` entries: when
/// every one of them is a trusted proxy, the client IP is the leftmost of them (the last
/// trusted hop examined), exactly as for a header that ends there. Nothing further left,
/// which anyone in front of the proxies may have written, is read; so a forwarding header
/// of any length costs at most this many entries of at most 512 bytes each (a longer entry
/// is not an address, and ends the walk).
pub const MAX_PROXY_HOPS: usize = 16;

/// The longest entry read (one `X-Forwarded-For` address, one `Forwarded` element); a
/// longer one is not an address and ends the walk, so an entry costs at most this many
/// bytes of scanning.
const MAX_HOP_LEN: usize = 512;

/// The longest host, with its port, taken from a forwarding header, a public origin or the
/// request (a DNS name's length).
const MAX_HOST_LEN: usize = 255;

/// The forwarding header the trusted proxies write: the client IP and the page URL's host
/// and scheme are read from it alone, and the other one is ignored entirely (a client can
/// send either, and most proxies pass headers they do not write through untouched).
///
/// # Examples
///
/// ```
/// use snowplow_actix::web::ProxyHeader;
///
/// assert_eq!(ProxyHeader::default(), ProxyHeader::XForwardedFor);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyHeader {
    /// `X-Forwarded-For` for the client IP, `X-Forwarded-Host` and `X-Forwarded-Proto` for
    /// the host and scheme: what nginx (`$proxy_add_x_forwarded_for`), AWS load balancers,
    /// HAProxy (`option forwardfor`), Envoy, Traefik and most CDNs append. The default.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), its `for=`, `host=` and `proto=`: written only by proxies
    /// configured for it (HAProxy's `option forwarded`, YARP, an nginx
    /// `proxy_set_header Forwarded …`). Choose it only if yours writes it.
    Forwarded,
}

impl ProxyHeader {
    /// The header that carries the client IP.
    fn name(self) -> HeaderName {
        match self {
            Self::XForwardedFor => X_FORWARDED_FOR,
            Self::Forwarded => FORWARDED,
        }
    }
}

/// An IP address or a CIDR range of them (`10.0.0.7`, `10.0.0.0/8`, `fd00::/8`): a trusted
/// proxy.
///
/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.7`) are compared as the IPv4 address they map.
///
/// # Examples
///
/// ```
/// use snowplow_actix::web::IpRange;
///
/// let range: IpRange = "10.0.0.0/8".parse()?;
/// assert!(range.contains("10.1.2.3".parse()?));
/// assert!(!range.contains("11.0.0.1".parse()?));
/// let exact: IpRange = "2001:db8::1".parse()?;
/// assert!(exact.contains("2001:db8::1".parse()?));
/// assert!("10.0.0.0/33".parse::<IpRange>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    /// The network address (host bits cleared).
    network: IpAddr,
    prefix_len: u8,
}

/// A trusted proxy that is neither an IP address nor a CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IP range {0:?}: expected an IP address or a CIDR range such as 10.0.0.0/8")]
pub struct InvalidIpRange(pub String);

impl IpRange {
    /// The addresses whose first `prefix_len` bits are those of `addr`.
    ///
    /// # Errors
    ///
    /// [`InvalidIpRange`] when `prefix_len` is longer than the address (32 bits for IPv4,
    /// 128 for IPv6).
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Self, InvalidIpRange> {
        let addr = addr.to_canonical();
        let network = match addr {
            IpAddr::V4(v4) if prefix_len <= 32 => {
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask_v4(prefix_len)))
            }
            IpAddr::V6(v6) if prefix_len <= 128 => {
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_v6(prefix_len)))
            }
            _ => return Err(InvalidIpRange(format!("{addr}/{prefix_len}"))),
        };
        Ok(Self {
            network,
            prefix_len,
        })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                u32::from(ip) & mask_v4(self.prefix_len) == u32::from(network)
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                u128::from(ip) & mask_v6(self.prefix_len) == u128::from(network)
            }
            _ => false,
        }
    }
}

fn mask_v4(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

fn mask_v6(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_len))
        .unwrap_or(0)
}

impl From<IpAddr> for IpRange {
    /// The single address `addr`.
    fn from(addr: IpAddr) -> Self {
        let addr = addr.to_canonical();
        let prefix_len = if addr.is_ipv4() { 32 } else { 128 };
        Self {
            network: addr,
            prefix_len,
        }
    }
}

impl FromStr for IpRange {
    type Err = InvalidIpRange;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidIpRange(text.to_owned());
        match text.trim().split_once('/') {
            None => text
                .trim()
                .parse::<IpAddr>()
                .map(Self::from)
                .map_err(|_| invalid()),
            Some((addr, prefix_len)) => {
                let addr = addr.parse::<IpAddr>().map_err(|_| invalid())?;
                let prefix_len = prefix_len.parse::<u8>().map_err(|_| invalid())?;
                Self::new(addr, prefix_len).map_err(|_| invalid())
            }
        }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Which peers are trusted proxies, and which header they write. The default trusts none.
#[derive(Debug, Clone, Default)]
pub(super) struct ProxyRule {
    pub(super) trusted: Vec<IpRange>,
    pub(super) header: ProxyHeader,
}

/// The scheme and host the nearest trusted proxy forwarded, each only when present and
/// valid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ForwardedOrigin<'a> {
    pub(super) scheme: Option<&'static str>,
    pub(super) host: Option<&'a str>,
}

impl ProxyRule {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|range| range.contains(ip))
    }

    fn trusts_peer(&self, peer: Option<SocketAddr>) -> bool {
        peer.is_some_and(|peer| self.trusts(peer.ip()))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the
    /// closest untrusted address of the chosen header, read from the right (the rightmost
    /// entry is the one the peer appended). A chain of trusted proxies gives its leftmost
    /// address, counting at most [`MAX_PROXY_HOPS`] entries; an entry that is not an
    /// address (`unknown`, an obfuscated identifier, a `Forwarded` element without `for=`)
    /// ends the walk at the hop to its right, since nothing further left can be trusted.
    pub(super) fn client_ip(
        &self,
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
    ) -> Option<IpAddr> {
        let peer = peer?.ip().to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut client = peer;
        for hop in self.hops(headers) {
            let Some(hop) = hop else { break };
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        Some(client)
    }

    /// The addresses of the chosen header, right to left, from its rightmost
    /// [`MAX_PROXY_HOPS`] entries (empty ones are skipped, but count); `None` for an entry
    /// that is not an address.
    fn hops<'a>(&self, headers: &'a HeaderMap) -> impl Iterator<Item = Option<IpAddr>> + 'a {
        let header = self.header;
        EntriesFromRight::new(headers, &header.name())
            .take(MAX_PROXY_HOPS)
            .filter_map(move |entry| {
                let Some(entry) = entry.and_then(text) else {
                    return Some(None);
                };
                if entry.trim().is_empty() {
                    return None;
                }
                Some(match header {
                    ProxyHeader::XForwardedFor => parse_node(entry),
                    ProxyHeader::Forwarded => forwarded_param(entry, "for").and_then(parse_node),
                })
            })
    }

    /// The scheme and host forwarded by the peer when it is a trusted proxy: the rightmost
    /// `X-Forwarded-Proto` and `X-Forwarded-Host` values, or the `proto=` and `host=` of the
    /// rightmost `Forwarded` element, as the chosen header says. Nothing further left is
    /// read: only the rightmost value is the one the peer wrote.
    pub(super) fn forwarded_origin<'a>(
        &self,
        peer: Option<SocketAddr>,
        headers: &'a HeaderMap,
    ) -> ForwardedOrigin<'a> {
        if !self.trusts_peer(peer) {
            return ForwardedOrigin::default();
        }
        match self.header {
            ProxyHeader::XForwardedFor => ForwardedOrigin {
                scheme: rightmost(headers, &X_FORWARDED_PROTO).and_then(scheme_value),
                host: rightmost(headers, &X_FORWARDED_HOST).and_then(host_value),
            },
            ProxyHeader::Forwarded => {
                let element = rightmost(headers, &FORWARDED);
                ForwardedOrigin {
                    scheme: element
                        .and_then(|element| forwarded_param(element, "proto"))
                        .and_then(scheme_value),
                    host: element
                        .and_then(|element| forwarded_param(element, "host"))
                        .and_then(host_value),
                }
            }
        }
    }
}

/// The comma-separated entries of every line of a header, right to left (the last line's
/// last entry first), found lazily: only the bytes of the entries taken are scanned, and
/// at most [`MAX_HOP_LEN`] of them per entry. An entry longer than that is `None`, and ends
/// the iteration.
struct EntriesFromRight<'a> {
    lines: std::iter::Rev<std::slice::Iter<'a, HeaderValue>>,
    /// The part of the current line not yet yielded; `None` between lines.
    rest: Option<&'a [u8]>,
    done: bool,
}

impl<'a> EntriesFromRight<'a> {
    fn new(headers: &'a HeaderMap, name: &HeaderName) -> Self {
        Self {
            lines: headers.get_all(name).rev(),
            rest: None,
            done: false,
        }
    }
}

impl<'a> Iterator for EntriesFromRight<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = match self.rest {
            Some(rest) => rest,
            None => self.lines.next()?.as_bytes(),
        };
        let window = rest.len().saturating_sub(MAX_HOP_LEN + 1);
        match rest[window..].iter().rposition(|&byte| byte == b',') {
            Some(comma) => {
                let comma = window + comma;
                self.rest = Some(&rest[..comma]);
                Some(Some(&rest[comma + 1..]))
            }
            None if window == 0 => {
                self.rest = None;
                Some(Some(rest))
            }
            None => {
                self.done = true;
                Some(None)
            }
        }
    }
}

/// The rightmost entry of a header (its last line's last entry), when it is text and not
/// too long.
fn rightmost<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    EntriesFromRight::new(headers, name).next()?.and_then(text)
}

fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// The value of the parameter `name` (`for`, `host`, `proto`; any case) of a `Forwarded`
/// element, its first occurrence.
fn forwarded_param<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then_some(value)
    })
}

/// `value` trimmed, and without the double quotes around it if it has a pair; `None` for
/// an unbalanced quote.
fn unquoted(value: &str) -> Option<&str> {
    let value = value.trim();
    match value.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"'),
        None => (!value.contains('"')).then_some(value),
    }
}

/// A forwarded scheme: `http` or `https`, in any case, quoted or not.
fn scheme_value(value: &str) -> Option<&'static str> {
    http_scheme(unquoted(value)?)
}

/// `http` or `https` (`scheme` in any case); `None` for any other scheme.
pub(super) fn http_scheme(scheme: &str) -> Option<&'static str> {
    if scheme.eq_ignore_ascii_case("https") {
        Some("https")
    } else if scheme.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// A forwarded host, when it is [valid](is_valid_host).
fn host_value(value: &str) -> Option<&str> {
    unquoted(value).filter(|host| is_valid_host(host))
}

/// Whether `host` is a host a URL can carry as it is, with an optional port: a name of
/// letters, digits, `-`, `.` and `_`, an IPv4 address, or a bracketed IPv6 address; at
/// most [`MAX_HOST_LEN`] bytes. No spaces, user info, path, query or fragment.
pub(super) fn is_valid_host(host: &str) -> bool {
    if host.is_empty() || host.len() > MAX_HOST_LEN {
        return false;
    }
    let (name, port) = split_port(host);
    let name_ok = match name.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .is_some_and(|v6| v6.parse::<Ipv6Addr>().is_ok()),
        None => {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"-._".contains(&byte))
        }
    };
    let port_ok = port.is_none_or(|port| {
        port.bytes().all(|byte| byte.is_ascii_digit()) && port.parse::<u16>().is_ok()
    });
    name_ok && port_ok
}

/// `host[:port]` split at its port's colon: the last `:` after any `]`.
fn split_port(host: &str) -> (&str, Option<&str>) {
    let after_bracket = host.rfind(']').map_or(0, |at| at + 1);
    match host[after_bracket..].rfind(':') {
        Some(colon) => {
            let colon = after_bracket + colon;
            (&host[..colon], Some(&host[colon + 1..]))
        }
        None => (host, None),
    }
}

/// The site's public origin, `scheme://host[:port]` (`https://shop.example`): the page
/// URL's scheme and host when no trusted proxy forwards them (see
/// [`SnowplowTracking::public_origin`](super::SnowplowTracking::public_origin)).
///
/// The scheme is `http` or `https` (any case; kept in lower case); the host a name, an IPv4
/// address or a bracketed IPv6 address, with an optional port, at most 255 bytes; nothing
/// may follow but a single `/`.
///
/// # Examples
///
/// ```
/// use snowplow_actix::web::{InvalidPublicOrigin, PublicOrigin};
///
/// let origin: PublicOrigin = "HTTPS://shop.example:8443/".parse()?;
/// assert_eq!((origin.scheme(), origin.host()), ("https", "shop.example:8443"));
/// assert_eq!(origin.to_string(), "https://shop.example:8443");
/// assert_eq!(PublicOrigin::try_from("ftp://shop.example"), Err(InvalidPublicOrigin::Scheme));
/// assert_eq!(PublicOrigin::try_from("https://user@shop.example"), Err(InvalidPublicOrigin::Host));
/// assert_eq!(PublicOrigin::try_from("https://shop.example/en"), Err(InvalidPublicOrigin::Path));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PublicOrigin {
    scheme: &'static str,
    host: String,
}

/// A public origin that is not `http(s)://host[:port]`. The message never repeats the
/// origin (it may carry user info).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPublicOrigin {
    /// The origin does not start with `http://` or `https://`.
    #[error("invalid public origin: expected http:// or https:// followed by a host")]
    Scheme,
    /// The host is missing, has user info, a bad port, or characters a host cannot have.
    #[error("invalid public origin: expected a host, optionally with a port, and no user info")]
    Host,
    /// Something other than a single `/` follows the host (a path, a query, a fragment).
    #[error("invalid public origin: nothing but a single / may follow the host")]
    Path,
}

impl PublicOrigin {
    /// The scheme: `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.scheme
    }

    /// The host, with its port if one was given.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl FromStr for PublicOrigin {
    type Err = InvalidPublicOrigin;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = text
            .trim()
            .split_once("://")
            .ok_or(InvalidPublicOrigin::Scheme)?;
        let scheme = match scheme {
            _ if scheme.eq_ignore_ascii_case("https") => "https",
            _ if scheme.eq_ignore_ascii_case("http") => "http",
            _ => return Err(InvalidPublicOrigin::Scheme),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (host, after) = rest.split_at(end);
        if !is_valid_host(host) {
            return Err(InvalidPublicOrigin::Host);
        }
        if !after.is_empty() && after != "/" {
            return Err(InvalidPublicOrigin::Path);
        }
        Ok(Self {
            scheme,
            host: host.to_owned(),
        })
    }
}

impl TryFrom<&str> for PublicOrigin {
    type Error = InvalidPublicOrigin;

    fn try_from(text: &str) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for PublicOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)
    }
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, optionally quoted.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = unquoted(node)?;
    if let Some(bracketed) = node.strip_prefix('[') {
        let (v6, _port) = bracketed.split_once(']')?;
        return v6
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    node.parse::<SocketAddr>()
        .ok()
        .map(|addr| addr.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(texts: &[&str]) -> Vec<IpRange> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn rule(header: ProxyHeader) -> ProxyRule {
        ProxyRule {
            trusted: ranges(&["10.0.0.0/8", "192.0.2.1", "fd00::/8"]),
            header,
        }
    }

    fn client(header: ProxyHeader, peer: &str, headers: &HeaderMap) -> Option<IpAddr> {
        rule(header).client_ip(Some(peer.parse().unwrap()), headers)
    }

    /// The client IP with the default header, `X-Forwarded-For`.
    fn check(peer: &str, pairs: &[(&'static str, &str)], expected: &str) {
        check_with(ProxyHeader::XForwardedFor, peer, pairs, expected);
    }

    fn check_with(header: ProxyHeader, peer: &str, pairs: &[(&'static str, &str)], expected: &str) {
        let found = client(header, peer, &headers(pairs));
        assert_eq!(
            found,
            Some(expected.parse().unwrap()),
            "{header:?} {peer} {pairs:?}"
        );
    }

    /// The forwarded (scheme, host).
    fn origin(
        header: ProxyHeader,
        peer: &str,
        pairs: &[(&'static str, &str)],
    ) -> (Option<&'static str>, Option<String>) {
        let map = headers(pairs);
        let found = rule(header).forwarded_origin(Some(peer.parse().unwrap()), &map);
        (found.scheme, found.host.map(str::to_owned))
    }

    #[test]
    fn ranges_parse_and_match_by_prefix() {
        let range: IpRange = "10.20.0.0/16".parse().unwrap();
        assert!(range.contains("10.20.255.1".parse().unwrap()));
        assert!(!range.contains("10.21.0.1".parse().unwrap()));
        assert!(range.contains("::ffff:10.20.0.9".parse().unwrap()));
        assert_eq!(range.to_string(), "10.20.0.0/16");
        assert_eq!(
            "10.20.30.40/16".parse::<IpRange>().unwrap().to_string(),
            "10.20.0.0/16"
        );
        let all: IpRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        let v6: IpRange = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        for bad in ["", "10.0.0", "10.0.0.0/33", "::/129", "10.0.0.0/x", "host"] {
            assert_eq!(
                bad.parse::<IpRange>(),
                Err(InvalidIpRange(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let spoofed = [
            ("x-forwarded-for", "1.1.1.1"),
            ("forwarded", "for=2.2.2.2;host=evil.example;proto=https"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
        ];
        for header in [ProxyHeader::XForwardedFor, ProxyHeader::Forwarded] {
            check_with(header, "203.0.113.9:5000", &spoofed, "203.0.113.9");
            assert_eq!(origin(header, "203.0.113.9:5000", &spoofed), (None, None));
        }
    }

    #[test]
    fn a_trusted_peer_forwards_the_closest_untrusted_address() {
        check(
            "10.0.0.2:5000",
            &[("x-forwarded-for", "198.51.100.7")],
            "198.51.100.7",
        );
        // A client-supplied entry on the left is ignored: the proxy appended the real peer.
        check(
            "10.0.0.2:5000",
            &[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.0.0.9")],
            "198.51.100.7",
        );
        // Several header lines form one chain, the last line last.
        check(
            "192.0.2.1:80",
            &[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-for", "198.51.100.7:4711"),
            ],
            "198.51.100.7",
        );
        check(
            "192.0.2.1:80",
            &[
                ("x-forwarded-for", "1.1.1.1, 198.51.100.7"),
                ("x-forwarded-for", "10.0.0.8,, 10.0.0.9"),
            ],
            "198.51.100.7",
        );
        // Only trusted proxies: the leftmost.
        check(
            "10.0.0.2:5000",
            &[("x-forwarded-for", "10.0.0.5, 10.0.0.6")],
            "10.0.0.5",
        );
        // No header: the proxy itself.
        check("10.0.0.2:5000", &[], "10.0.0.2");
    }

    /// The spoof of the issue: nginx, AWS ALB, HAProxy and Envoy append `X-Forwarded-For`
    /// and pass a client's own `Forwarded` through.
    #[test]
    fn the_default_ignores_forwarded_entirely() {
        let spoofed = [
            ("forwarded", "for=6.6.6.6;host=evil.example;proto=https"),
            ("x-forwarded-for", "198.51.100.7"),
        ];
        check("10.0.0.2:5000", &spoofed, "198.51.100.7");
        assert_eq!(
            origin(ProxyHeader::XForwardedFor, "10.0.0.2:5000", &spoofed),
            (None, None)
        );
        // Without `X-Forwarded-For` the proxy is the client, whatever `Forwarded` says.
        check("10.0.0.2:5000", &spoofed[..1], "10.0.0.2");
    }

    #[test]
    fn forwarded_chosen_ignores_x_forwarded_for_and_parses_quoted_nodes() {
        let forwarded = ProxyHeader::Forwarded;
        check_with(
            forwarded,
            "10.0.0.2:5000",
            &[
                (
                    "forwarded",
                    r#"for="[2001:db8::1]:4711";proto=https, for=10.0.0.3"#,
                ),
                ("x-forwarded-for", "1.1.1.1"),
            ],
            "2001:db8::1",
        );
        check_with(
            forwarded,
            "[fd00::1]:443",
            &[("forwarded", "proto=https;For=\"198.51.100.7:80\"")],
            "198.51.100.7",
        );
        // Several lines, the last line last.
        check_with(
            forwarded,
            "10.0.0.2:5000",
            &[
                ("forwarded", "for=1.1.1.1"),
                ("forwarded", "for=198.51.100.7, for=10.0.0.3"),
            ],
            "198.51.100.7",
        );
        // `X-Forwarded-For` alone counts for nothing: the proxy is the client.
        check_with(
            forwarded,
            "10.0.0.2:5000",
            &[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-host", "evil.example"),
                ("x-forwarded-proto", "https"),
            ],
            "10.0.0.2",
        );
        assert_eq!(
            origin(
                forwarded,
                "10.0.0.2:5000",
                &[
                    ("x-forwarded-host", "evil.example"),
                    ("x-forwarded-proto", "https")
                ]
            ),
            (None, None)
        );
    }

    #[test]
    fn an_unknown_hop_ends_the_walk() {
        let forwarded = ProxyHeader::Forwarded;
        check_with(
            forwarded,
            "10.0.0.2:5000",
            &[("forwarded", "for=1.1.1.1, for=unknown, for=10.0.0.3")],
            "10.0.0.3",
        );
        // An element without `for=` is the proxy's too: nothing left of it is read.
        check_with(
            forwarded,
            "10.0.0.2:5000",
            &[("forwarded", "for=6.6.6.6, proto=https")],
            "10.0.0.2",
        );
        // An unbalanced quote is not an address.
        check_with(
            forwarded,
            "10.0.0.2:5000",
            &[("forwarded", r#"for="6.6.6.6, for=9.9.9.9""#)],
            "10.0.0.2",
        );
        check(
            "10.0.0.2:5000",
            &[("x-forwarded-for", "1.1.1.1, _hidden")],
            "10.0.0.2",
        );
        check(
            "10.0.0.2:5000",
            &[("x-forwarded-for", "1.1.1.1, unknown, 10.0.0.7")],
            "10.0.0.7",
        );
    }

    #[test]
    fn the_rightmost_x_forwarded_host_and_proto_win_over_client_sent_values() {
        let xff = ProxyHeader::XForwardedFor;
        assert_eq!(
            origin(
                xff,
                "10.0.0.2:5000",
                &[
                    ("x-forwarded-host", "evil.example, shop.example"),
                    ("x-forwarded-proto", "http , HTTPS"),
                ]
            ),
            (Some("https"), Some("shop.example".to_owned()))
        );
        // Several lines: the last line's last value.
        assert_eq!(
            origin(
                xff,
                "10.0.0.2:5000",
                &[
                    ("x-forwarded-host", "shop.example"),
                    ("x-forwarded-host", "evil.example, shop.example:8443"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-proto", "http"),
                ]
            ),
            (Some("http"), Some("shop.example:8443".to_owned()))
        );
        // An empty rightmost value is no value: nothing further left is read.
        assert_eq!(
            origin(
                xff,
                "10.0.0.2:5000",
                &[
                    ("x-forwarded-host", "evil.example,"),
                    ("x-forwarded-proto", "https, ")
                ]
            ),
            (None, None)
        );
        assert_eq!(origin(xff, "10.0.0.2:5000", &[]), (None, None));
    }

    #[test]
    fn forwarded_host_and_proto_come_from_the_rightmost_element() {
        let forwarded = ProxyHeader::Forwarded;
        assert_eq!(
            origin(
                forwarded,
                "10.0.0.2:5000",
                &[(
                    "forwarded",
                    r#"for=6.6.6.6;host=evil.example;proto=http, for=198.51.100.7;Host="shop.example";PROTO=HTTPS"#
                )]
            ),
            (Some("https"), Some("shop.example".to_owned()))
        );
        // The rightmost element says nothing of the host: the client's element is not read.
        assert_eq!(
            origin(
                forwarded,
                "10.0.0.2:5000",
                &[
                    ("forwarded", "for=6.6.6.6;host=evil.example;proto=https"),
                    ("forwarded", "for=198.51.100.7"),
                ]
            ),
            (None, None)
        );
        assert_eq!(
            origin(
                forwarded,
                "[fd00::1]:443",
                &[(
                    "forwarded",
                    r#"for="[2001:db8::1]:4711";host="[2001:db8::2]:8443""#
                )]
            ),
            (None, Some("[2001:db8::2]:8443".to_owned()))
        );
    }

    #[test]
    fn invalid_forwarded_hosts_and_protos_are_not_used() {
        let long = format!("{}.example", "a".repeat(250));
        for bad in [
            "evil.example/phish",
            "user@evil.example",
            "evil.example?q",
            "evil.example#x",
            "evil example",
            "evil.example:",
            "evil.example:99999",
            "evil.example:80:80",
            "evil.example:+80",
            "::1",
            "[not-v6]",
            "[::1]x",
            "évil.example",
            "\"evil.example",
            long.as_str(),
        ] {
            assert_eq!(
                origin(
                    ProxyHeader::XForwardedFor,
                    "10.0.0.2:5000",
                    &[("x-forwarded-host", bad)]
                ),
                (None, None),
                "{bad}"
            );
        }
        for bad in ["ftp", "javascript", "https:", "\"https", ""] {
            assert_eq!(
                origin(
                    ProxyHeader::XForwardedFor,
                    "10.0.0.2:5000",
                    &[("x-forwarded-proto", bad)]
                ),
                (None, None),
                "{bad}"
            );
        }
        for good in [
            "shop.example",
            "10.1.2.3:8080",
            "[::1]",
            "[2001:db8::1]:443",
            "my_host-1",
        ] {
            assert!(is_valid_host(good), "{good}");
        }
        assert!(is_valid_host(&"a".repeat(MAX_HOST_LEN)));
        assert!(!is_valid_host(&"a".repeat(MAX_HOST_LEN + 1)));
    }

    /// `count` distinct trusted addresses, `10.1.x.y`, the first one leftmost.
    fn trusted_hops(count: usize) -> Vec<String> {
        (0..count)
            .map(|idx| format!("10.1.{}.{}", idx / 256, idx % 256))
            .collect()
    }

    #[test]
    fn the_walk_examines_at_most_max_proxy_hops_entries() {
        // The client and 15 trusted proxies: 16 entries, all examined.
        let mut hops = vec!["198.51.100.7".to_owned()];
        hops.extend(trusted_hops(MAX_PROXY_HOPS - 1));
        check(
            "10.0.0.2:5000",
            &[("x-forwarded-for", &hops.join(", "))],
            "198.51.100.7",
        );
        // One more trusted proxy: the client is past the bound; the last trusted hop
        // examined, the leftmost of the rightmost 16 (10.1.0.0), is the answer.
        let mut hops = vec!["198.51.100.7".to_owned()];
        hops.extend(trusted_hops(MAX_PROXY_HOPS));
        check(
            "10.0.0.2:5000",
            &[("x-forwarded-for", &hops.join(", "))],
            "10.1.0.0",
        );
        // The bound counts across lines, and for `Forwarded` too.
        let elements: Vec<String> = trusted_hops(40)
            .iter()
            .map(|hop| format!("for={hop}"))
            .collect();
        let (left, right) = elements.split_at(30);
        check_with(
            ProxyHeader::Forwarded,
            "10.0.0.2:5000",
            &[
                ("forwarded", &left.join(", ")),
                ("forwarded", &right.join(", ")),
            ],
            "10.1.0.24",
        );
    }

    #[test]
    fn a_huge_header_is_read_lazily_from_the_right() {
        // 120 KB: garbage far left (bytes that are not even text), then a long chain.
        let mut value = vec![0x80, b'!', 0xff, b','];
        while value.len() < 120_000 {
            value.extend_from_slice(b"6.6.6.6, ");
        }
        value.extend_from_slice(b"198.51.100.7, 10.0.0.9");
        let mut map = HeaderMap::new();
        map.append(X_FORWARDED_FOR, HeaderValue::from_bytes(&value).unwrap());
        // The walk stops at the first untrusted hop from the right; the rest is never read
        // (reading the whole line as text would have failed on its first bytes).
        assert_eq!(
            client(ProxyHeader::XForwardedFor, "10.0.0.2:5000", &map),
            Some("198.51.100.7".parse().unwrap())
        );
        let last: Vec<_> = EntriesFromRight::new(&map, &X_FORWARDED_FOR)
            .take(3)
            .collect();
        assert_eq!(
            last,
            [
                Some(&b" 10.0.0.9"[..]),
                Some(&b" 198.51.100.7"[..]),
                Some(&b" 6.6.6.6"[..])
            ]
        );
        // One entry of 120 KB is not an address: the scan stops MAX_HOP_LEN bytes in, and
        // the walk ends at the hop to its right.
        let huge = format!("{}, 10.0.0.9", "1".repeat(120_000));
        check("10.0.0.2:5000", &[("x-forwarded-for", &huge)], "10.0.0.9");
        let huge_map = headers(&[("x-forwarded-for", &huge)]);
        let mut entries = EntriesFromRight::new(&huge_map, &X_FORWARDED_FOR);
        assert_eq!(entries.next(), Some(Some(&b" 10.0.0.9"[..])));
        assert_eq!(entries.next(), Some(None));
        assert_eq!(entries.next(), None);
        // A huge forwarded host is no host.
        let host = format!("{}.example", "a".repeat(120_000));
        assert_eq!(
            origin(
                ProxyHeader::XForwardedFor,
                "10.0.0.2:5000",
                &[("x-forwarded-host", &host)]
            ),
            (None, None)
        );
    }

    #[test]
    fn entries_split_every_line_from_the_right() {
        let map = headers(&[
            ("forwarded", "a, b"),
            ("forwarded", ""),
            ("forwarded", "c,"),
        ]);
        let entries: Vec<_> = EntriesFromRight::new(&map, &FORWARDED).collect();
        let expected: [&[u8]; 5] = [b"", b"c", b"", b" b", b"a"];
        assert_eq!(entries, expected.map(Some));
        // An entry of exactly MAX_HOP_LEN bytes is read; one more byte is too long.
        for (len, readable) in [(MAX_HOP_LEN, true), (MAX_HOP_LEN + 1, false)] {
            let value = format!("x,{}", "y".repeat(len));
            let map = headers(&[("forwarded", &value)]);
            let first = EntriesFromRight::new(&map, &FORWARDED).next();
            assert_eq!(first.map(|entry| entry.is_some()), Some(readable), "{len}");
        }
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_ranges() {
        check(
            "[::ffff:10.0.0.2]:5000",
            &[("x-forwarded-for", "198.51.100.7")],
            "198.51.100.7",
        );
        let none = ProxyRule::default();
        assert_eq!(
            none.client_ip(
                Some("[::ffff:203.0.113.9]:1".parse().unwrap()),
                &HeaderMap::new()
            ),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(none.client_ip(None, &HeaderMap::new()), None);
        assert_eq!(
            rule(ProxyHeader::XForwardedFor)
                .forwarded_origin(None, &headers(&[("x-forwarded-host", "shop.example")])),
            ForwardedOrigin::default()
        );
    }

    #[test]
    fn public_origins_parse_and_refuse_paths_queries_and_user_info() {
        for (text, scheme, host) in [
            ("https://shop.example", "https", "shop.example"),
            (" HTTP://shop.example:8080/ ", "http", "shop.example:8080"),
            ("https://[2001:db8::1]:8443", "https", "[2001:db8::1]:8443"),
            ("https://10.1.2.3", "https", "10.1.2.3"),
        ] {
            let origin: PublicOrigin = text.parse().unwrap();
            assert_eq!((origin.scheme(), origin.host()), (scheme, host), "{text}");
            assert_eq!(origin.to_string(), format!("{scheme}://{host}"));
        }
        for (text, error) in [
            ("shop.example", InvalidPublicOrigin::Scheme),
            ("ftp://shop.example", InvalidPublicOrigin::Scheme),
            ("https//shop.example", InvalidPublicOrigin::Scheme),
            ("https://", InvalidPublicOrigin::Host),
            ("https:///", InvalidPublicOrigin::Host),
            (
                "https://user:secret@shop.example",
                InvalidPublicOrigin::Host,
            ),
            ("https://shop example", InvalidPublicOrigin::Host),
            ("https://shop.example:0x50", InvalidPublicOrigin::Host),
            ("https://shop.example/en", InvalidPublicOrigin::Path),
            ("https://shop.example//", InvalidPublicOrigin::Path),
            ("https://shop.example?q=1", InvalidPublicOrigin::Path),
            ("https://shop.example/#top", InvalidPublicOrigin::Path),
        ] {
            assert_eq!(PublicOrigin::try_from(text), Err(error), "{text}");
        }
        // The message never repeats the origin.
        let error = PublicOrigin::try_from("https://user:secret@shop.example").unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
