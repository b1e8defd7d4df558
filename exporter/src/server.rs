//! The HTTP surface: `/metrics`, `/healthz` and a landing page.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::scrape::{Format, Scraper};

/// Prometheus tells the exporter how long it will wait; answering a little earlier leaves
/// time for the response to travel.
const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";
const SCRAPE_TIMEOUT_MARGIN: Duration = Duration::from_millis(500);

/// The router, for tests to drive with `tower::ServiceExt::oneshot` or a real listener.
pub fn app(scraper: Arc<Scraper>) -> Router {
    Router::new()
        .route("/", get(landing_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(scraper)
}

/// Serves `app` on `listener` (plain or TLS) within `limits` until `shutdown` completes,
/// then drains open requests (at most `limits.drain`).
pub async fn run(
    listener: TcpListener,
    scraper: Arc<Scraper>,
    transport: koji_tls::Transport,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: koji_tls::Limits,
) -> std::io::Result<()> {
    koji_tls::serve_with(listener, app(scraper), transport, shutdown, limits).await
}

/// Prometheus sends `Accept-Encoding: gzip` on every scrape: at a large site's scale the
/// exposition shrinks about fourteenfold. Clients that do not ask get it as it is.
async fn metrics(State(scraper): State<Arc<Scraper>>, headers: HeaderMap) -> Response {
    let format = negotiate(&headers);
    let timeout = scrape_timeout(&headers, scraper.timeout());
    let content_type = (header::CONTENT_TYPE, format.content_type());
    // The answer depends on the request's Accept-Encoding: caches must know.
    let vary = (header::VARY, "accept-encoding");
    if accepts_gzip(&headers) {
        let body = scraper.scrape_gzip(timeout, format).await;
        (
            [content_type, vary, (header::CONTENT_ENCODING, "gzip")],
            body,
        )
            .into_response()
    } else {
        let body = scraper.scrape(timeout, format).await;
        ([content_type, vary], body).into_response()
    }
}

/// Whether `Accept-Encoding` allows gzip (RFC 9110, section 12.5.3): `gzip` (or `x-gzip`)
/// listed with a non-zero weight, or not listed and `*` with a non-zero weight.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    let items = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for item in items {
        let mut parameters = item.split(';');
        let coding = parameters.next().unwrap_or_default().trim();
        // An unreadable weight counts as refusal rather than as the default 1.
        let weight = parameters
            .find_map(|parameter| {
                let (name, value) = parameter.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| value.trim().parse::<f32>().unwrap_or(0.0))
            })
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(weight);
        } else if coding == "*" {
            any = Some(weight);
        }
    }
    gzip.or(any).is_some_and(|weight| weight > 0.0)
}

/// OpenMetrics when the scraper accepts it (Prometheus does), classic text otherwise.
fn negotiate(headers: &HeaderMap) -> Format {
    let accepts_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/openmetrics-text"));
    if accepts_openmetrics {
        Format::OpenMetrics
    } else {
        Format::PrometheusText
    }
}

/// The configured timeout, shortened to what Prometheus says it will wait, if it says.
fn scrape_timeout(headers: &HeaderMap, configured: Duration) -> Duration {
    headers
        .get(SCRAPE_TIMEOUT_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map(|seconds| {
            Duration::from_secs_f64(seconds)
                .saturating_sub(SCRAPE_TIMEOUT_MARGIN)
                .max(Duration::from_millis(100))
                .min(configured)
        })
        .unwrap_or(configured)
}

async fn landing_page() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html><head><title>koji-exporter</title></head><body>",
        "<h1>koji-exporter</h1><p>Koji build system metrics.</p>",
        "<ul><li><a href=\"/metrics\">metrics</a></li>",
        "<li><a href=\"/healthz\">health</a></li></ul></body></html>\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn prometheus_timeout_header_shortens_the_scrape() {
        let configured = Duration::from_secs(10);
        let h = headers(&[(SCRAPE_TIMEOUT_HEADER, "3")]);
        assert_eq!(scrape_timeout(&h, configured), Duration::from_millis(2500));
        let h = headers(&[(SCRAPE_TIMEOUT_HEADER, "60")]);
        assert_eq!(scrape_timeout(&h, configured), configured);
        let h = headers(&[(SCRAPE_TIMEOUT_HEADER, "garbage")]);
        assert_eq!(scrape_timeout(&h, configured), configured);
        let h = headers(&[(SCRAPE_TIMEOUT_HEADER, "0.2")]);
        assert_eq!(scrape_timeout(&h, configured), Duration::from_millis(100));
    }

    #[test]
    fn gzip_only_when_accepted() {
        let accepts = |value: &'static str| accepts_gzip(&headers(&[("accept-encoding", value)]));
        for yes in [
            "gzip",
            "GZip",
            "x-gzip",
            "deflate, gzip, br, zstd",
            "br;q=1.0, gzip;q=0.8, *;q=0.1",
            "*",
            "identity, *;q=0.5",
            "gzip;q=0.001",
        ] {
            assert!(accepts(yes), "{yes}");
        }
        for no in [
            "identity",
            "br, deflate",
            "gzip;q=0",
            "gzip; q=0.0",
            "*;q=0",
            "gzip;q=0, *",
            "gzip;q=nonsense",
            "",
        ] {
            assert!(!accepts(no), "{no}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn openmetrics_only_when_asked() {
        let prom = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(
            negotiate(&headers(&[("accept", prom)])),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(&headers(&[("accept", "*/*")])),
            Format::PrometheusText
        );
        assert_eq!(negotiate(&HeaderMap::new()), Format::PrometheusText);
    }
}
