//! Who is on the other end of a request, as a session records it at login: the client's address
//! and its `User-Agent`. The one place that reads them off a request.

use crate::service::ClientInfo;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use std::convert::Infallible;
use std::net::SocketAddr;

/// The client of the request `parts` belong to: the peer address of its connection (IPv4 as
/// such, not mapped into IPv6), when the server noted one, and its `User-Agent` (bytes that are
/// not UTF-8 replaced; the service bounds its length).
pub fn client_info(parts: &Parts) -> ClientInfo {
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_canonical());
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
    use axum::http::Request;

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
    }

    #[test]
    fn without_either_there_is_nothing() {
        let info = client_info(&parts(Request::new(())));
        assert_eq!(info, ClientInfo::default());
    }
}
