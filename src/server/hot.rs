//! The routes every token check comes through, answered before the router by exact method and
//! path, like nginx's `location =`. The same handlers and extractors serve them as in the
//! router; what is skipped is the router's own machinery (matching, the route's boxed service and
//! its layers, the matched-path extension), which cost more than the token check itself
//! (callgrind, `GET /api/auth/check`: 51.7k -> 45.7k instructions a request). Any other method
//! or path, `HEAD` and `OPTIONS` included, goes through the router as before.
//!
//! Files under a static directory's prefix and requests under an upstream's are answered here
//! too, by prefix, with the router's handler, for the same reason (callgrind, a 1 KiB file:
//! 30.6k -> 23.4k instructions a request; a proxied GET: 51.7k -> 45.7k); `server::app` hands
//! over only the prefixes under which the router has no other route, so that the answer is the
//! router's.

use crate::api::{self, Answer};
use crate::gateway::{FORWARD_AUTH, Prefixed, forward_auth, forward_auth_user};
use crate::request_id::Route;
use crate::service::AuthService;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::response::Response;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type HotFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

#[derive(Clone, Copy)]
enum Endpoint {
    ForwardAuth,
    Api(Answer),
    /// The static directory or upstream of this index in `prefixed`.
    Prefixed(usize),
}

/// A request for one of the hot routes.
#[derive(Clone, Copy)]
pub struct HotRoute {
    path: &'static str,
    endpoint: Endpoint,
}

#[derive(Clone)]
pub struct HotRoutes {
    service: Arc<AuthService>,
    /// The `check_user` setting, which picks forward-auth's handler as the router does.
    check_user: bool,
    /// Method, path (also the metrics label, as the router names the route) and endpoint:
    /// forward-auth and the API's hot routes ([`api::ROUTES`]), each with and without the slash.
    routes: Arc<[(Method, &'static str, Endpoint)]>,
    /// Static directories and upstreams, none inside another's prefix.
    prefixed: Arc<[Prefixed]>,
}

impl HotRoutes {
    pub fn new(service: Arc<AuthService>, check_user: bool) -> Self {
        let forward_auth = (Method::GET, FORWARD_AUTH, Endpoint::ForwardAuth);
        let api = api::ROUTES.iter().flat_map(|route| {
            let hot = route.hot.as_ref().filter(|_| route.served_by(&service))?;
            let endpoint = Endpoint::Api(hot.answer);
            Some([route.path, route.bare()].map(|path| (hot.method.clone(), path, endpoint)))
        });
        let routes = std::iter::once(forward_auth).chain(api.flatten()).collect();
        HotRoutes {
            service,
            check_user,
            routes,
            prefixed: Arc::new([]),
        }
    }

    /// Also answers what is under the prefixes of `prefixed` (files, upstreams), under which
    /// the router must have no other route (and none of which is under another's).
    pub fn with_prefixed(mut self, prefixed: Vec<Prefixed>) -> Self {
        self.prefixed = prefixed.into();
        self
    }

    /// The hot route `req` is for, if any.
    pub fn route(&self, req: &Request) -> Option<HotRoute> {
        let path = req.uri().path();
        let exact = self
            .routes
            .iter()
            .find(|(method, route, _)| method == req.method() && *route == path)
            .map(|&(_, path, endpoint)| HotRoute { path, endpoint });
        exact.or_else(|| {
            let index = self.prefixed.iter().position(|p| p.serves(path))?;
            Some(HotRoute {
                path: "",
                endpoint: Endpoint::Prefixed(index),
            })
        })
    }

    /// How the metrics name `route`, for a request for `path`: as the router would.
    pub fn label(&self, route: HotRoute, path: &str) -> Route {
        match route.endpoint {
            Endpoint::Prefixed(index) => Route::Prefix(self.prefixed[index].route(path)),
            _ => Route::Exact(route.path),
        }
    }

    /// Whether the answer to `route` reads the connection's extensions, as routes behind the
    /// router do (see `Front`'s `Peer`).
    pub fn reads_peer(&self, route: HotRoute) -> bool {
        match route.endpoint {
            Endpoint::Prefixed(index) => self.prefixed[index].reads_peer(),
            _ => false,
        }
    }

    /// The answer to `req`, a request for `route`.
    pub fn answer(&self, route: HotRoute, req: Request) -> HotFuture {
        let state = self.service.clone();
        match route.endpoint {
            Endpoint::ForwardAuth if self.check_user => {
                Handler::call(forward_auth_user, req, state)
            }
            Endpoint::ForwardAuth => Handler::call(forward_auth, req, state),
            Endpoint::Api(answer) => answer(req, state),
            Endpoint::Prefixed(index) => self.prefixed[index].answer(state, req),
        }
    }
}
