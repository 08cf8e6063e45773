//! Who is on the other end of a request: its address (the peer's, or, behind proxies the
//! operator trusts, the one they say they saw: nginx's `set_real_ip_from` with
//! `real_ip_recursive on`) and its `User-Agent`. The one place that reads them off a request.

use crate::service::ClientInfo;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::{HeaderName, USER_AGENT};
use axum::http::request::Parts;
use ipnet::IpNet;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address, as the server worked it out for this request (a request extension),
/// when it is not the peer's: a trusted proxy named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Marks a request whose peer is one of the `trusted_proxies` (a request extension): its
/// `X-Forwarded-Proto` is believed (the CSRF check's own origin, `http::csrf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proxied;

/// The `trusted_proxies` setting (shared: each connection's service holds it).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        TrustedProxies(networks.into())
    }

    /// Whether `addr` is one of them (none trusted: no).
    pub fn trusts(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.0.iter().any(|net| net.contains(&addr))
    }

    /// The peer, unless it is a trusted proxy: then `X-Forwarded-For` read from the right (what
    /// the nearest proxy appended first), skipping trusted proxies, and the first address that is
    /// not one is the client. Everything left of it is the client's own word and never read.
    /// A value that is no address ends the walk at the last address believed.
    pub fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            let Ok(line) = line.to_str() else {
                return client;
            };
            for item in line.rsplit(',') {
                match parse_addr(item.trim()) {
                    Some(addr) => client = addr,
                    None => return client,
                }
                if !self.trusts(client) {
                    return client;
                }
            }
        }
        client
    }
}

/// The longest address text: an IPv6 address with an IPv4 tail (`INET6_ADDRSTRLEN`, less the NUL).
pub const MAX_ADDRESS: usize = 45;

/// `ip` written into `text`: IPv4 (IPv6-mapped too) by hand, since `Display` for an address costs
/// more than the rest of an access line or of a proxied request's headers (callgrind: about 1,300
/// instructions); IPv6 by `Display`.
pub fn address_text(ip: IpAddr, text: &mut [u8; MAX_ADDRESS]) -> &[u8] {
    let len = match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let mut len = 0;
            for octet in v4.octets() {
                // Up to three digits, without leading zeros, and a dot.
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                text[len + 1] = b'.';
                len += 2;
            }
            len - 1
        }
        IpAddr::V6(v6) => {
            let mut rest = &mut text[..];
            let _ = std::io::Write::write_fmt(&mut rest, format_args!("{v6}"));
            MAX_ADDRESS - rest.len()
        }
    };
    &text[..len]
}

/// `192.0.2.1`, `2001:db8::1`, or either with a port (`[2001:db8::1]:443`), as proxies write them.
fn parse_addr(item: &str) -> Option<IpAddr> {
    item.parse::<IpAddr>()
        .or_else(|_| item.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|addr| addr.to_canonical())
}

/// The client of the request `parts` belong to: its address as `Front` worked it out
/// ([`ClientAddr`]), or the peer's when only that is known (IPv4 as such, not mapped into
/// IPv6), and its `User-Agent` (bytes that are not UTF-8 replaced; the service bounds its
/// length).
pub fn client_info(parts: &Parts) -> ClientInfo {
    let ip = match parts.extensions.get::<ClientAddr>() {
        Some(ClientAddr(ip)) => Some(ip.to_canonical()),
        None => parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip().to_canonical()),
    };
    let user_agent = parts
        .headers
        .get(USER_AGENT)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    ClientInfo { ip, user_agent }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(client_info(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, Request};

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(X_FORWARDED_FOR, HeaderValue::from_str(line).unwrap());
        }
        map
    }

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let h = headers(&["203.0.113.9"]);
        assert_eq!(
            TrustedProxies::default().client_addr(ip("198.51.100.1"), &h),
            ip("198.51.100.1")
        );
        let proxies = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            proxies.client_addr(ip("198.51.100.1"), &h),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let proxies = trusted(&["10.0.0.0/8", "::1/128"]);
        // The client claims to be 1.1.1.1; the proxy appended what it saw.
        let h = headers(&["1.1.1.1, 203.0.113.9, 10.0.0.2"]);
        assert_eq!(proxies.client_addr(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        // Over several header lines, the last line nearest.
        let h = headers(&["1.1.1.1", "203.0.113.9:5000", "10.0.0.2"]);
        assert_eq!(proxies.client_addr(ip("::1"), &h), ip("203.0.113.9"));
        // IPv4 peers seen as IPv6-mapped addresses are trusted as IPv4.
        let h = headers(&["[2001:db8::7]:443"]);
        assert_eq!(
            proxies.client_addr(ip("::ffff:10.1.2.3"), &h),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn garbage_or_nothing_stops_at_the_last_address_believed() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let h = headers(&["203.0.113.9, not-an-address, 10.0.0.2"]);
        assert_eq!(proxies.client_addr(ip("10.0.0.1"), &h), ip("10.0.0.2"));
        assert_eq!(
            proxies.client_addr(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    fn parts(request: Request<()>) -> Parts {
        request.into_parts().0
    }

    #[test]
    fn the_peer_and_user_agent_are_read() {
        let mut request = Request::builder()
            .header(USER_AGENT, "curl/8.5.0")
            .body(())
            .unwrap();
        let peer: SocketAddr = "[::ffff:192.0.2.7]:51000".parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        let info = client_info(&parts(request));
        assert_eq!(info.ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(info.user_agent.as_deref(), Some("curl/8.5.0"));
        // The address Front worked out (trusted proxies) wins over the peer's.
        let mut request = Request::new(());
        request.extensions_mut().insert(ConnectInfo(peer));
        request
            .extensions_mut()
            .insert(ClientAddr("203.0.113.9".parse().unwrap()));
        let info = client_info(&parts(request));
        assert_eq!(info.ip, Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn addresses_are_written_as_display_writes_them_ipv4_unmapped() {
        let mut text = [0; MAX_ADDRESS];
        for (ip, expected) in [
            ("0.0.0.0", "0.0.0.0"),
            ("192.0.2.7", "192.0.2.7"),
            ("10.100.9.190", "10.100.9.190"),
            ("255.255.255.255", "255.255.255.255"),
            ("::ffff:10.20.30.40", "10.20.30.40"),
            ("::1", "::1"),
            ("2001:db8::7", "2001:db8::7"),
            (
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
            ),
        ] {
            let written = address_text(ip.parse().unwrap(), &mut text);
            assert_eq!(std::str::from_utf8(written).unwrap(), expected);
        }
    }

    #[test]
    fn without_either_there_is_nothing() {
        let info = client_info(&parts(Request::new(())));
        assert_eq!(info, ClientInfo::default());
    }
}
