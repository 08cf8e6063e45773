//! A pool of backends: who is alive, who is busy, and who is next.

use super::connections::{Connections, KeepAlive};
use crate::config::Balance;
use axum::http::{HeaderValue, Uri};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Debug)]
pub struct Backend {
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    /// The `Host` header of requests to it.
    pub host: HeaderValue,
    pub connections: Arc<Connections>,
    alive: AtomicBool,
    in_flight: AtomicUsize,
}

impl Backend {
    pub fn new(base: &str, keep_alive: KeepAlive) -> Self {
        let uri: Uri = base.parse().expect("validated in config");
        let authority = uri.authority().expect("validated in config");
        let address = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        Backend {
            base: base.to_owned(),
            host: HeaderValue::from_str(authority.as_str())
                .expect("an authority is a header value"),
            connections: Connections::new(address, keep_alive),
            alive: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    /// Records a probe's or a request's verdict; true when this changes the backend's state.
    pub fn set_alive(&self, alive: bool) -> bool {
        self.alive.swap(alive, Ordering::Relaxed) != alive
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Counts a request against its backend until dropped (when the response body ends).
#[derive(Debug)]
pub struct InFlight(Arc<Backend>);

impl InFlight {
    pub fn new(backend: Arc<Backend>) -> Self {
        backend.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(backend)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct Pool {
    pub backends: Vec<Arc<Backend>>,
    balance: Balance,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(bases: &[String], balance: Balance, keep_alive: KeepAlive) -> Self {
        Pool {
            backends: bases
                .iter()
                .map(|b| Arc::new(Backend::new(b, keep_alive)))
                .collect(),
            balance,
            next: AtomicUsize::new(0),
        }
    }

    /// The next backend not in `tried`, by the pool's policy: a live one, or when none of them
    /// is marked live, any of them (Envoy's panic mode, nginx's "all servers down"). A backend
    /// marked down may be back before the next probe (one that starts after handstamp is marked
    /// down by the first), and refusing every request would not find out.
    pub fn pick(&self, tried: &[Arc<Backend>]) -> Option<Arc<Backend>> {
        // One turn of round robin per pick, whichever of the two passes finds the backend.
        let start = match self.balance {
            Balance::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed),
            Balance::LeastConnections => 0,
        };
        self.pick_where(tried, start, Backend::is_alive)
            .or_else(|| self.pick_where(tried, start, |_| true))
    }

    /// The backend not in `tried` that `ok` accepts, by the pool's policy (round robin from
    /// `start`).
    fn pick_where(
        &self,
        tried: &[Arc<Backend>],
        start: usize,
        ok: impl Fn(&Backend) -> bool,
    ) -> Option<Arc<Backend>> {
        let candidate = |b: &&Arc<Backend>| ok(b) && !tried.iter().any(|t| Arc::ptr_eq(t, b));
        match self.balance {
            Balance::RoundRobin => {
                let n = self.backends.len();
                (0..n)
                    .map(|i| &self.backends[(start + i) % n])
                    .find(candidate)
                    .cloned()
            }
            Balance::LeastConnections => self
                .backends
                .iter()
                .filter(candidate)
                .min_by_key(|b| b.in_flight())
                .cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamSettings;

    fn keep_alive() -> KeepAlive {
        KeepAlive::from(&UpstreamSettings::default())
    }

    fn pool(balance: Balance) -> Pool {
        let bases = [
            "http://127.0.0.1:1",
            "http://127.0.0.1:2",
            "http://127.0.0.1:3",
        ];
        Pool::new(&bases.map(String::from), balance, keep_alive())
    }

    #[test]
    fn round_robin_takes_turns_and_skips_the_dead() {
        let p = pool(Balance::RoundRobin);
        let order: Vec<_> = (0..6).map(|_| p.pick(&[]).unwrap().base.clone()).collect();
        assert_eq!(order[..3], order[3..]);
        assert_eq!(
            order.iter().collect::<std::collections::HashSet<_>>().len(),
            3
        );
        p.backends[1].set_alive(false);
        assert!((0..6).all(|_| !Arc::ptr_eq(&p.pick(&[]).unwrap(), &p.backends[1])));
        // The live ones tried, the dead one is the last resort; then none is left.
        let mut tried = vec![p.backends[0].clone(), p.backends[2].clone()];
        tried.push(p.pick(&tried).unwrap());
        assert!(Arc::ptr_eq(&tried[2], &p.backends[1]));
        assert!(p.pick(&tried).is_none());
    }

    #[test]
    fn with_none_alive_every_backend_is_tried_once() {
        for balance in [Balance::RoundRobin, Balance::LeastConnections] {
            let p = pool(balance);
            for b in &p.backends {
                b.set_alive(false);
            }
            let mut tried = Vec::new();
            while let Some(b) = p.pick(&tried) {
                assert!(tried.len() < 3, "{balance:?}: {} tried twice", b.base);
                tried.push(b);
            }
            assert_eq!(tried.len(), 3, "{balance:?}");
        }
        // Round robin still takes turns among them, two backends as three.
        for bases in [
            &["http://127.0.0.1:1", "http://127.0.0.1:2"][..],
            &[
                "http://127.0.0.1:1",
                "http://127.0.0.1:2",
                "http://127.0.0.1:3",
            ],
        ] {
            let p = Pool::new(
                &bases.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
                Balance::RoundRobin,
                keep_alive(),
            );
            for b in &p.backends {
                b.set_alive(false);
            }
            let firsts: std::collections::HashSet<_> = (0..bases.len())
                .map(|_| p.pick(&[]).unwrap().base.clone())
                .collect();
            assert_eq!(firsts.len(), bases.len());
        }
    }

    #[test]
    fn least_connections_prefers_the_idle() {
        let p = pool(Balance::LeastConnections);
        let _busy0 = InFlight::new(p.backends[0].clone());
        let _busy2 = InFlight::new(p.backends[2].clone());
        assert!(Arc::ptr_eq(&p.pick(&[]).unwrap(), &p.backends[1]));
        let busy1 = InFlight::new(p.backends[1].clone());
        let _busy1b = InFlight::new(p.backends[1].clone());
        assert!(!Arc::ptr_eq(&p.pick(&[]).unwrap(), &p.backends[1]));
        drop(busy1);
        assert_eq!(p.backends[1].in_flight(), 1);
    }
}
