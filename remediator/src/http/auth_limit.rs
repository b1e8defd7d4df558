//! Limits failed authentication, never the good: each answer 401 (a wrong or missing token,
//! a failed log-in) counts against the peer's address and the kind of credential it tried
//! (webhook, API, agent, approval page). Once a peer has failed [`MAX_FAILURES`] times for
//! one kind within [`WINDOW`], its further failures of that kind are answered 429 with
//! `Retry-After` instead of 401. A request with a valid credential is always served, whatever
//! its address failed before, and clears that address's failures of its kind; `/metrics`
//! and `/healthz` ask for no credential and are never limited. Behind a reverse proxy every
//! client shares the proxy's address: one misconfigured client then turns only failed
//! attempts of its credential kind into 429, never anyone's valid requests (forwarded-for
//! headers are not trusted: any client could set them).
//!
//! Failures are counted in `koji_remediator_auth_failures_total` by endpoint, and those
//! answered 429 in `koji_remediator_auth_rate_limited_total`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::metrics::EndpointLabels;

/// Failures allowed per address, credential kind and window.
pub const MAX_FAILURES: u32 = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Entries tracked at most; beyond, expired entries are dropped first, then the oldest.
const MAX_PEERS: usize = 10_000;

/// Who failed: an address and the kind of credential it tried.
type Key = (IpAddr, &'static str);

/// Failures per address and credential kind.
#[derive(Debug)]
pub struct AuthLimiter {
    peers: Mutex<HashMap<Key, (Instant, u32)>>,
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

    /// Records a failure; returns the seconds until the key may fail unlimited again, when
    /// it is over the limit.
    fn record_failure(&self, key: Key) -> Option<u64> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if peers.len() >= MAX_PEERS {
            peers.retain(|_, (since, _)| since.elapsed() < WINDOW);
            if peers.len() >= MAX_PEERS {
                if let Some(oldest) = peers.iter().min_by_key(|(_, (s, _))| *s).map(|(k, _)| *k) {
                    peers.remove(&oldest);
                }
            }
        }
        let entry = peers.entry(key).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        if entry.1 == MAX_FAILURES {
            tracing::warn!(peer = %key.0, credential = key.1, "too many authentication failures; further failures get 429 for a while");
        }
        let left = WINDOW.checked_sub(entry.0.elapsed())?;
        (entry.1 > MAX_FAILURES).then(|| left.as_secs().max(1))
    }

    /// A valid credential of this kind from this address: its failures are forgiven.
    fn record_success(&self, key: Key) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.remove(&key);
    }
}

/// Which endpoint (and credential kind) a path belongs to, for the metric (a fixed set:
/// paths are untrusted).
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

/// The middleware. Requests without a peer address (served in-process by tests) are
/// counted but never limited.
pub async fn guard(
    State(limiter): State<Arc<AuthLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let endpoint = endpoint(request.uri().path());
    // A credential was presented: a token, or a log-in form.
    let presented = request.headers().contains_key(header::AUTHORIZATION)
        || (request.method() == Method::POST && request.uri().path() == "/login");
    let response = next.run(request).await;
    if response.status() != StatusCode::UNAUTHORIZED {
        if let (Some(peer), true) = (peer, presented) {
            limiter.record_success((peer, endpoint));
        }
        return response;
    }
    limiter
        .failures
        .get_or_create(&EndpointLabels {
            endpoint: endpoint.into(),
        })
        .inc();
    let Some(retry_after) = peer.and_then(|peer| limiter.record_failure((peer, endpoint))) else {
        return response;
    };
    limiter.limited.inc();
    let mut limited = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(serde_json::json!({
            "error": "too_many_failures",
            "detail": "too many failed authentications of this kind from this address; try again later",
        })),
    )
        .into_response();
    limited
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    limited
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_limit_are_limited_per_address_and_kind_until_a_success() {
        let limiter = AuthLimiter::new(Family::default(), Counter::default());
        let mallory: IpAddr = "192.0.2.7".parse().unwrap();
        let alice: IpAddr = "192.0.2.8".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert_eq!(limiter.record_failure((mallory, "webhook")), None);
        }
        assert!(limiter
            .record_failure((mallory, "webhook"))
            .is_some_and(|s| s <= WINDOW.as_secs()));
        // Another kind from the same address, and the same kind elsewhere, are not limited.
        assert_eq!(limiter.record_failure((mallory, "api")), None);
        assert_eq!(limiter.record_failure((alice, "webhook")), None);
        // A success forgives.
        limiter.record_success((mallory, "webhook"));
        assert_eq!(limiter.record_failure((mallory, "webhook")), None);
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
