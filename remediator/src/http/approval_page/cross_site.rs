//! Refuses state-changing requests that a browser sends on behalf of another site. Three
//! layers, each sufficient on its own in current browsers: the session cookie is
//! `SameSite=Strict` (not sent cross-site at all), the form token must match the session,
//! and the request's `Origin` / `Sec-Fetch-Site` headers, where the browser sends them,
//! must name this server.

use axum::http::{header, HeaderMap};

/// Why a request looks cross-site.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrossSite {
    /// `Sec-Fetch-Site` says another site or a sibling origin sent it.
    #[error("the browser reports this request came from another site ({0})")]
    FetchSite(String),
    /// `Origin` names another origin.
    #[error("the request's origin {origin} is not this server ({host})")]
    Origin {
        /// What the browser sent.
        origin: String,
        /// The `Host` the request was sent to.
        host: String,
    },
}

/// `Ok` unless the browser's own headers say the request comes from elsewhere. Clients that
/// send neither header (curl, the CLI) pass here and still need the form token.
pub fn check(headers: &HeaderMap) -> Result<(), CrossSite> {
    if let Some(site) = header_str(headers, "sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return Err(CrossSite::FetchSite(site.to_owned()));
        }
    }
    if let Some(origin) = header_str(headers, header::ORIGIN.as_str()) {
        let host = header_str(headers, header::HOST.as_str()).unwrap_or("");
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        if host.is_empty() || authority != Some(host) {
            return Err(CrossSite::Origin {
                origin: origin.to_owned(),
                host: host.to_owned(),
            });
        }
    }
    Ok(())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
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
    fn same_origin_and_header_less_requests_pass() {
        assert_eq!(check(&headers(&[])), Ok(()));
        assert_eq!(
            check(&headers(&[
                ("host", "127.0.0.1:9867"),
                ("origin", "http://127.0.0.1:9867"),
                ("sec-fetch-site", "same-origin"),
            ])),
            Ok(())
        );
        assert_eq!(check(&headers(&[("sec-fetch-site", "none")])), Ok(()));
    }

    #[test]
    fn other_origins_are_refused() {
        assert!(matches!(
            check(&headers(&[
                ("host", "127.0.0.1:9867"),
                ("origin", "http://localhost:8000"),
            ])),
            Err(CrossSite::Origin { .. })
        ));
        assert!(check(&headers(&[("host", "a:1"), ("origin", "null")])).is_err());
        assert!(check(&headers(&[("origin", "http://a:1")])).is_err());
        assert_eq!(
            check(&headers(&[("sec-fetch-site", "cross-site")])),
            Err(CrossSite::FetchSite("cross-site".into()))
        );
        assert!(check(&headers(&[("sec-fetch-site", "same-site")])).is_err());
    }
}
