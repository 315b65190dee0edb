//! HTTP(S) proxies for sockets: which proxy the environment names for a URL
//! (`HTTPS_PROXY` for `wss://`, `HTTP_PROXY` for `ws://`, lower case too, minus
//! `NO_PROXY`), and a tunnel through it with `CONNECT host:port` (the only way a
//! WebSocket crosses a forward proxy). REST calls get the same from reqwest.

use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

use super::error::{body_preview, failed};
use crate::exit::Failure;

/// Largest answer head read from a proxy before the tunnel is given up.
const MAX_PROXY_HEAD: usize = 16 * 1024;

/// The proxy in effect for one URL, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// No proxy: `variable` is `None` when none is set, else the variable that was
    /// set and the `NO_PROXY` entry that excluded this host.
    Direct {
        variable: Option<&'static str>,
        excluded_by: Option<String>,
    },
    /// Through `proxy`, named by `variable`.
    Proxy { proxy: Url, variable: &'static str },
}

/// The variables read for `scheme` (`ws`/`http` or `wss`/`https`), in order.
fn variables(scheme: &str) -> &'static [&'static str] {
    match scheme {
        "wss" | "https" => &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"],
        _ => &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"],
    }
}

/// The route for `url` as the process environment says.
pub fn route(url: &Url) -> Route {
    route_with(url, |name| std::env::var(name).ok())
}

/// The route for `url` with `env` standing in for the environment.
pub fn route_with(url: &Url, env: impl Fn(&str) -> Option<String>) -> Route {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let Some((variable, value)) = variables(url.scheme())
        .iter()
        .find_map(|name| set(name).map(|v| (*name, v)))
    else {
        return Route::Direct {
            variable: None,
            excluded_by: None,
        };
    };
    let host = url
        .host_str()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let no_proxy = set("NO_PROXY")
        .or_else(|| set("no_proxy"))
        .unwrap_or_default();
    if let Some(entry) = no_proxy
        .split(',')
        .map(str::trim)
        .find(|e| excludes(e, &host, url.port_or_known_default()))
    {
        return Route::Direct {
            variable: Some(variable),
            excluded_by: Some(entry.to_string()),
        };
    }
    let value = value.trim();
    let with_scheme = if value.contains("://") {
        value.to_string()
    } else {
        format!("http://{value}")
    };
    match Url::parse(&with_scheme) {
        Ok(proxy) if proxy.host_str().is_some() => Route::Proxy { proxy, variable },
        _ => Route::Direct {
            variable: Some(variable),
            excluded_by: Some(format!("{variable} is not a URL")),
        },
    }
}

/// Whether one `NO_PROXY` entry covers `host` (`*`, an exact name or address, a
/// domain suffix with or without its leading dot, optionally `:port`).
fn excludes(entry: &str, host: &str, port: Option<u16>) -> bool {
    let entry = entry.to_ascii_lowercase();
    if entry.is_empty() {
        return false;
    }
    if entry == "*" {
        return true;
    }
    let (name, entry_port) = match entry.rsplit_once(':') {
        Some((n, p)) if !n.contains(':') && p.parse::<u16>().is_ok() => (n, p.parse().ok()),
        _ => (entry.as_str(), None),
    };
    if entry_port.is_some() && entry_port != port {
        return false;
    }
    let name = name.trim_start_matches("*.").trim_start_matches('.');
    let name = name.trim_start_matches('[').trim_end_matches(']');
    host == name || host.ends_with(&format!(".{name}"))
}

/// `proxy` as shown to people: its password masked.
pub fn shown(proxy: &Url) -> String {
    super::redact(proxy)
}

/// The proxy's host and port (default 80 for `http://`, 443 for `https://`).
pub fn address(proxy: &Url) -> (String, u16) {
    let host = proxy
        .host_str()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    (host, proxy.port_or_known_default().unwrap_or(3128))
}

/// What a proxy answered to `CONNECT`: its status line and headers.
#[derive(Clone, Debug)]
pub struct Tunnel {
    pub status: u16,
    pub line: String,
    /// `Via` or `Server`, when the proxy names itself.
    pub via: Option<String>,
}

/// The proxy refused the tunnel.
#[derive(Debug, thiserror::Error)]
#[error("the proxy answered CONNECT with {line}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
pub struct TunnelRefused {
    pub status: u16,
    pub line: String,
    pub body: String,
}

/// Sends `CONNECT host:port` on `tcp` (already connected to `proxy`) and reads the
/// answer within `limit`; on a 2xx the stream is a tunnel to the target.
pub async fn tunnel(
    tcp: &mut TcpStream,
    proxy: &Url,
    host: &str,
    port: u16,
    limit: Duration,
) -> anyhow::Result<Tunnel> {
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if !proxy.username().is_empty() {
        let user = percent_encoding::percent_decode_str(proxy.username()).decode_utf8_lossy();
        let password = percent_encoding::percent_decode_str(proxy.password().unwrap_or(""))
            .decode_utf8_lossy();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Proxy-Authorization: Basic {basic}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        tcp.write_all(request.as_bytes()).await?;
        read_head(tcp).await
    };
    let head = tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| {
            Failure::Timeout(format!(
                "the proxy {} did not answer CONNECT within {}",
                shown(proxy),
                humantime::format_duration(limit)
            ))
        })?
        .with_context(|| format!("CONNECT through the proxy {} failed", shown(proxy)))
        .map_err(|e| e.context(Failure::Connect("the proxy tunnel failed".into())))?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let parsed = response.parse(&head);
    let (Ok(httparse::Status::Complete(_)), Some(status)) = (parsed, response.code) else {
        return Err(Failure::Connect(format!(
            "the proxy {} answered CONNECT with something that is not HTTP",
            shown(proxy)
        ))
        .into());
    };
    let line_end = head.iter().position(|b| *b == b'\r').unwrap_or(head.len());
    let line = crate::text::shown(&String::from_utf8_lossy(&head[..line_end]), 120);
    let via = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("via") || h.name.eq_ignore_ascii_case("server"))
        .map(|h| crate::text::shown(&String::from_utf8_lossy(h.value), 120));
    if !(200..300).contains(&status) {
        let mut body = vec![0; 512];
        let n = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut body))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        let refused = TunnelRefused {
            status,
            line: line.clone(),
            body: body_preview(&String::from_utf8_lossy(&body[..n])),
        };
        return Err(failed(
            Failure::Connect(format!("the proxy {} refused the tunnel", shown(proxy))),
            refused,
        ));
    }
    Ok(Tunnel { status, line, via })
}

/// The answer head, up to and including the blank line, read byte by byte so the
/// tunnel's first bytes stay in the stream.
async fn read_head(tcp: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_PROXY_HEAD || tcp.read(&mut byte).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the proxy ended the connection before answering CONNECT",
            ));
        }
        head.push(byte[0]);
    }
    Ok(head)
}

/// Connects to `proxy` and opens a tunnel to `host:port`, within `limit`.
pub async fn connect(
    proxy: &Url,
    host: &str,
    port: u16,
    limit: Duration,
) -> anyhow::Result<TcpStream> {
    let started = tokio::time::Instant::now();
    let (proxy_host, proxy_port) = address(proxy);
    let mut tcp =
        tokio::time::timeout(limit, TcpStream::connect((proxy_host.as_str(), proxy_port)))
            .await
            .map_err(|_| {
                Failure::Timeout(format!(
                    "timed out after {} connecting to the proxy {}",
                    humantime::format_duration(limit),
                    shown(proxy)
                ))
            })?
            .map_err(|e| {
                failed(
                    Failure::Connect(format!("failed to connect to the proxy {}", shown(proxy))),
                    e,
                )
            })?;
    let left = limit.saturating_sub(started.elapsed());
    tunnel(&mut tcp, proxy, host, port, left).await?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_scheme_picks_the_variable_and_no_proxy_excludes_hosts() {
        let ws = Url::parse("ws://api.example.com:3000/x").unwrap();
        let wss = Url::parse("wss://api.example.com/x").unwrap();
        let vars = [
            ("http_proxy", "proxy:3128"),
            ("HTTPS_PROXY", "http://p2:8080"),
        ];
        assert!(matches!(
            route_with(&ws, env(&vars)),
            Route::Proxy { variable: "http_proxy", ref proxy } if proxy.as_str() == "http://proxy:3128/"
        ));
        assert!(matches!(
            route_with(&wss, env(&vars)),
            Route::Proxy {
                variable: "HTTPS_PROXY",
                ..
            }
        ));
        for no in [
            ".example.com",
            "example.com",
            "*",
            "api.example.com:3000",
            "a, *.example.com",
        ] {
            let mut all = vars.to_vec();
            all.push(("NO_PROXY", no));
            assert!(
                matches!(route_with(&ws, env(&all)), Route::Direct { .. }),
                "{no}"
            );
        }
        let other = [
            ("http_proxy", "proxy:3128"),
            ("no_proxy", "example.org,api.example.com:80"),
        ];
        assert!(matches!(route_with(&ws, env(&other)), Route::Proxy { .. }));
        assert_eq!(
            route_with(&ws, env(&[])),
            Route::Direct {
                variable: None,
                excluded_by: None
            }
        );
    }
}
