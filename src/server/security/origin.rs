//! The Origin allow-list: [`OriginPattern`] (exact origins and wildcard subdomains),
//! checked on upgrades and REST calls by the middleware, and the CORS answers for
//! the origins on it ([`cors`], tower-http's `CorsLayer`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use axum::http::{Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long browsers may cache a CORS preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// CORS for a request whose origin is already known to be on the allow-list: the
/// origin mirrored and `Vary: origin`, and for preflights the methods and headers
/// the REST API takes.
pub fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(CORS_MAX_AGE)
        .vary([header::ORIGIN])
}

/// One entry of the Origin allow-list: `https://app.example.com`,
/// `http://localhost:5173`, or `https://*.example.com` (any subdomain, at any
/// depth, but not `example.com` itself). Scheme and port must match exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginPattern {
    scheme: String,
    /// Lower case; for a wildcard, the part after `*.`.
    host: String,
    wildcard: bool,
    port: Option<u16>,
    text: String,
}

impl FromStr for OriginPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim().trim_end_matches('/');
        let bad = |why: &str| {
            format!(
                "{s:?} is not an origin pattern ({why}): write it like https://app.example.com or https://*.example.com"
            )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad("an origin has no path, query or user"));
        }
        let (wildcard, concrete) = match rest.strip_prefix("*.") {
            Some(rest) => (true, format!("{scheme}://{rest}")),
            None => (false, format!("{scheme}://{rest}")),
        };
        let url = url::Url::parse(&concrete).map_err(|e| bad(&e.to_string()))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty() && !h.contains('*'))
            .ok_or_else(|| bad("no host"))?;
        Ok(OriginPattern {
            scheme: url.scheme().to_string(),
            host: host.to_ascii_lowercase(),
            wildcard,
            port: url.port_or_known_default(),
            text: text.to_string(),
        })
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl OriginPattern {
    /// Whether an `Origin` header value matches. `null` and malformed values never do.
    pub fn matches(&self, origin: &str) -> bool {
        let Ok(url) = url::Url::parse(origin.trim()) else {
            return false;
        };
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let host_ok = if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        };
        url.scheme() == self.scheme && host_ok && url.port_or_known_default() == self.port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_patterns() {
        let p: OriginPattern = "https://app.example.com".parse().unwrap();
        assert!(p.matches("https://app.example.com"));
        assert!(p.matches("https://APP.example.com:443"));
        assert!(!p.matches("http://app.example.com"));
        assert!(!p.matches("https://app.example.com:8443"));
        assert!(!p.matches("https://evil.app.example.com"));
        assert!(!p.matches("null"));
        let w: OriginPattern = "https://*.example.com".parse().unwrap();
        assert!(w.matches("https://a.example.com"));
        assert!(w.matches("https://a.b.example.com"));
        assert!(!w.matches("https://example.com"));
        assert!(!w.matches("https://badexample.com"));
        assert!(!w.matches("https://example.com.evil.test"));
        let local: OriginPattern = "http://localhost:5173/".parse().unwrap();
        assert!(local.matches("http://localhost:5173"));
        assert!(!local.matches("http://localhost:5174"));
        for bad in [
            "example.com",
            "https://",
            "https://a.com/path",
            "https://*",
            "https://a.*.com",
        ] {
            assert!(bad.parse::<OriginPattern>().is_err(), "{bad}");
        }
    }
}
