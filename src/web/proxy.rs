//! Trusted proxies and the client IP: `Forwarded` / `X-Forwarded-For` are honoured only when
//! the peer is a trusted proxy.
//!
//! **Pure: headers in, an address out.** No actix-web types beyond the header map.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use actix_web::http::header::{HeaderMap, HeaderName, FORWARDED};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

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

/// Whether `ip` is one of the `trusted` proxies.
pub(super) fn is_trusted(trusted: &[IpRange], ip: IpAddr) -> bool {
    trusted.iter().any(|range| range.contains(ip))
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the closest
/// untrusted address of the forwarding chain (`Forwarded: for=`, else `X-Forwarded-For`),
/// read from the right. A chain of trusted proxies only gives its leftmost address; an entry
/// that is not an address (`unknown`, an obfuscated identifier) ends the walk at the hop
/// after it, since nothing further left can be trusted.
pub(super) fn client_ip(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &[IpRange],
) -> Option<IpAddr> {
    let peer = peer?.ip().to_canonical();
    if !is_trusted(trusted, peer) {
        return Some(peer);
    }
    let mut chain = forwarded_for(headers);
    if chain.is_empty() {
        chain = x_forwarded_for(headers);
    }
    let mut client = peer;
    for hop in chain.into_iter().rev() {
        let Some(hop) = hop else { break };
        client = hop;
        if !is_trusted(trusted, hop) {
            break;
        }
    }
    Some(client)
}

/// The `for=` values of every `Forwarded` header, in order (the client first); `None` for a
/// value that is not an address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(&FORWARDED)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_node(value))
            })
        })
        .collect()
}

/// The addresses of every `X-Forwarded-For` header, in order (the client first).
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(&X_FORWARDED_FOR)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter(|node| !node.trim().is_empty())
        .map(parse_node)
        .collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, optionally quoted.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"').trim();
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
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn ranges(texts: &[&str]) -> Vec<IpRange> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    fn check(peer: &str, pairs: &[(&'static str, &'static str)], expected: &str) {
        let trusted = ranges(&["10.0.0.0/8", "192.0.2.1", "fd00::/8"]);
        let peer: SocketAddr = peer.parse().unwrap();
        let client = client_ip(Some(peer), &headers(pairs), &trusted);
        assert_eq!(client, Some(expected.parse().unwrap()), "{peer} {pairs:?}");
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
        check(
            "203.0.113.9:5000",
            &[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")],
            "203.0.113.9",
        );
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
        // Several header lines form one chain.
        check(
            "192.0.2.1:80",
            &[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-for", "198.51.100.7:4711"),
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

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_parses_quoted_nodes() {
        check(
            "10.0.0.2:5000",
            &[
                (
                    "forwarded",
                    r#"for="[2001:db8::7]:4711";proto=https, for=10.0.0.3"#,
                ),
                ("x-forwarded-for", "1.1.1.1"),
            ],
            "2001:db8::7",
        );
        check(
            "[fd00::1]:443",
            &[("forwarded", "proto=https;For=\"198.51.100.7:80\"")],
            "198.51.100.7",
        );
        // Forwarded without `for=`: X-Forwarded-For is read.
        check(
            "10.0.0.2:5000",
            &[("forwarded", "proto=https"), ("x-forwarded-for", "1.1.1.1")],
            "1.1.1.1",
        );
    }

    #[test]
    fn an_unknown_hop_ends_the_walk() {
        check(
            "10.0.0.2:5000",
            &[("forwarded", "for=1.1.1.1, for=unknown, for=10.0.0.3")],
            "10.0.0.3",
        );
        check(
            "10.0.0.2:5000",
            &[("x-forwarded-for", "1.1.1.1, _hidden")],
            "10.0.0.2",
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_ranges() {
        check(
            "[::ffff:10.0.0.2]:5000",
            &[("x-forwarded-for", "198.51.100.7")],
            "198.51.100.7",
        );
        assert_eq!(
            client_ip(
                Some("[::ffff:203.0.113.9]:1".parse().unwrap()),
                &HeaderMap::new(),
                &[]
            ),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(client_ip(None, &HeaderMap::new(), &[]), None);
    }
}
