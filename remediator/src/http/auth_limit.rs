//! Slows down guessing: each answer 401 (a wrong or missing token, a failed log-in) counts
//! against the peer's address; a peer with too many failures within the window gets 429
//! for every request until the window ends, without its credentials being looked at.
//! Failures are counted in `koji_remediator_auth_failures_total` by endpoint, and refusals
//! in `koji_remediator_auth_rate_limited_total`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::metrics::EndpointLabels;

/// Failures allowed per peer and window.
pub const MAX_FAILURES: u32 = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Peers tracked at most; beyond, expired entries are dropped first, then the oldest.
const MAX_PEERS: usize = 10_000;

/// Failures per peer.
#[derive(Debug)]
pub struct AuthLimiter {
    peers: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    failures: Family<EndpointLabels, Counter>,
    limited: Counter,
}

impl AuthLimiter {
    /// A limiter counting into these metrics.
    pub fn new(failures: Family<EndpointLabels, Counter>, limited: Counter) -> Arc<AuthLimiter> {
        Arc::new(AuthLimiter {
            peers: Mutex::new(HashMap::new()),
            failures,
            limited,
        })
    }

    /// Seconds until the peer may try again, if it is blocked.
    fn blocked(&self, peer: IpAddr) -> Option<u64> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let (since, count) = peers.get(&peer)?;
        let left = WINDOW.checked_sub(since.elapsed())?;
        (*count >= MAX_FAILURES).then(|| left.as_secs().max(1))
    }

    fn record_failure(&self, peer: IpAddr) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if peers.len() >= MAX_PEERS {
            peers.retain(|_, (since, _)| since.elapsed() < WINDOW);
            if peers.len() >= MAX_PEERS {
                if let Some(oldest) = peers.iter().min_by_key(|(_, (s, _))| *s).map(|(k, _)| *k) {
                    peers.remove(&oldest);
                }
            }
        }
        let entry = peers.entry(peer).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        if entry.1 == MAX_FAILURES {
            tracing::warn!(%peer, "too many authentication failures; refusing this peer for a while");
        }
    }
}

/// Which endpoint a path belongs to, for the metric (a fixed set: paths are untrusted).
fn endpoint(path: &str) -> &'static str {
    if path.starts_with("/webhook/") {
        "webhook"
    } else if path.starts_with("/api/v1/agent/") {
        "agent"
    } else if path.starts_with("/api/") {
        "api"
    } else if path.starts_with("/login") || path.starts_with("/escalations") {
        "approval_page"
    } else {
        "other"
    }
}

/// The middleware. Requests without a peer address (served in-process by tests) pass.
pub async fn guard(
    State(limiter): State<Arc<AuthLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    if let Some(retry_after) = peer.and_then(|p| limiter.blocked(p)) {
        limiter.limited.inc();
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({
                "error": "too_many_failures",
                "detail": "too many authentication failures from this address; try again later",
            })),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        return response;
    }
    let endpoint = endpoint(request.uri().path());
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        limiter
            .failures
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.into(),
            })
            .inc();
        if let Some(peer) = peer {
            limiter.record_failure(peer);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_blocked_after_the_allowed_failures_and_others_are_not() {
        let limiter = AuthLimiter::new(Family::default(), Counter::default());
        let mallory: IpAddr = "192.0.2.7".parse().unwrap();
        let alice: IpAddr = "192.0.2.8".parse().unwrap();
        for _ in 0..MAX_FAILURES - 1 {
            limiter.record_failure(mallory);
        }
        assert_eq!(limiter.blocked(mallory), None);
        limiter.record_failure(mallory);
        assert!(limiter
            .blocked(mallory)
            .is_some_and(|s| s <= WINDOW.as_secs()));
        assert_eq!(limiter.blocked(alice), None);
    }

    #[test]
    fn endpoints_are_a_fixed_set() {
        assert_eq!(endpoint("/webhook/alertmanager"), "webhook");
        assert_eq!(endpoint("/api/v1/agent/run"), "agent");
        assert_eq!(endpoint("/api/v1/journal"), "api");
        assert_eq!(endpoint("/login"), "approval_page");
        assert_eq!(endpoint("/%2e%2e/anything"), "other");
    }
}
