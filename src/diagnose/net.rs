//! The layers below HTTP: `dns`, `proxy`, `tcp` (connect time per address, the
//! kernel's round-trip estimate) and `tls` (version, ALPN, the certificate's
//! subject, issuer, names and expiry, whether it is trusted).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::MaybeTlsStream;
use url::Url;

use super::Layer;
use crate::client::{ClientOptions, proxy};
use crate::exit::Exit;

/// The stream the upgrade is sent on.
pub type Stream = MaybeTlsStream<TcpStream>;

/// A certificate expiring sooner than this is a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// Host, port and scheme of the socket URL.
pub struct Target {
    /// Without IPv6 brackets.
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Target {
    pub fn of(url: &Url) -> Target {
        Target {
            host: url
                .host_str()
                .unwrap_or("")
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: url.port_or_known_default().unwrap_or(80),
            tls: url.scheme() == "wss",
        }
    }
}

fn timed_out(layer: &'static str, took: Duration, what: &str) -> Layer {
    Layer::fail(
        layer,
        took,
        Exit::Timeout,
        format!(
            "no answer within {} ({what})",
            humantime::format_duration(took)
        ),
        "raise --connect-timeout, or check for a firewall dropping packets on the way",
    )
}

/// `dns`: the addresses of the host (or, through a proxy, of the proxy's host).
pub async fn dns(
    target: &Target,
    route: &proxy::Route,
    deadline: Instant,
) -> (Layer, Option<Vec<SocketAddr>>) {
    let started = Instant::now();
    let (host, port, whose) = match route {
        proxy::Route::Proxy { proxy: p, .. } => {
            let (h, port) = proxy::address(p);
            (
                h,
                port,
                " (the proxy's host; the proxy resolves the backend)",
            )
        }
        proxy::Route::Direct { .. } => (target.host.clone(), target.port, ""),
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        let detail = format!("{ip} is an address: nothing to resolve{whose}");
        return (
            Layer::pass("dns", started.elapsed(), detail),
            Some(vec![SocketAddr::new(ip, port)]),
        );
    }
    let lookup = tokio::time::timeout_at(deadline, tokio::net::lookup_host((host.as_str(), port)));
    match lookup.await {
        Err(_) => (timed_out("dns", started.elapsed(), "DNS resolution"), None),
        Ok(Err(e)) => (
            Layer::fail(
                "dns",
                started.elapsed(),
                Exit::Connect,
                format!("host not found: {host}{whose} ({e})"),
                "check the host name in --url (or SYNCPROBE_URL) and this machine's DNS",
            ),
            None,
        ),
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            let v4 = addrs.iter().filter(|a| a.is_ipv4()).count();
            let shown: Vec<String> = addrs.iter().take(4).map(|a| a.ip().to_string()).collect();
            let detail = format!(
                "{host}{whose}: {} ({v4} IPv4, {} IPv6)",
                shown.join(", "),
                addrs.len() - v4
            );
            (Layer::pass("dns", started.elapsed(), detail), Some(addrs))
        }
    }
}

/// `proxy`: the variables in effect for this URL and, through a proxy, the
/// `CONNECT` tunnel (returned, ready for TLS).
pub async fn proxy(
    route: &proxy::Route,
    addrs: &[SocketAddr],
    target: &Target,
    deadline: Instant,
) -> (Layer, Option<TcpStream>) {
    let started = Instant::now();
    let (proxy, variable) = match route {
        proxy::Route::Direct { variable: None, .. } => {
            let detail = "no HTTP(S)_PROXY variable set: direct connection";
            return (Layer::pass("proxy", started.elapsed(), detail), None);
        }
        proxy::Route::Direct {
            variable: Some(v),
            excluded_by,
        } => {
            let detail = format!(
                "{v} is set, but NO_PROXY entry {:?} covers {}: direct connection",
                excluded_by.as_deref().unwrap_or(""),
                target.host
            );
            return (Layer::pass("proxy", started.elapsed(), detail), None);
        }
        proxy::Route::Proxy { proxy, variable } => (proxy, variable),
    };
    let shown = proxy::shown(proxy);
    let mut tcp = match first_connection(addrs, deadline).await {
        Ok((tcp, _)) => tcp,
        Err(layer) => {
            let layer = Layer {
                name: "proxy",
                detail: format!("the proxy {shown} ({variable}): {}", layer.detail),
                hint: Some("check the proxy variable, or add the host to NO_PROXY".into()),
                ..layer
            };
            return (layer, None);
        }
    };
    let left = deadline.saturating_duration_since(Instant::now());
    match proxy::tunnel(&mut tcp, proxy, &target.host, target.port, left).await {
        Ok(tunnel) => {
            let via = tunnel.via.map(|v| format!(", via {v}")).unwrap_or_default();
            let detail = format!(
                "{variable}={shown}: CONNECT {}:{} answered {}{via}",
                target.host, target.port, tunnel.line
            );
            (Layer::pass("proxy", started.elapsed(), detail), Some(tcp))
        }
        Err(e) => {
            let exit = crate::exit::exit_for(&e);
            let layer = Layer::fail(
                "proxy",
                started.elapsed(),
                exit,
                format!("{variable}={shown}: {e:#}"),
                "the proxy refused or failed the tunnel: check its credentials (user:password@ in the variable) and that it allows CONNECT to this port, or add the host to NO_PROXY",
            );
            (layer, None)
        }
    }
}

/// Connects to each address in turn; the stream and what each attempt took.
async fn first_connection(
    addrs: &[SocketAddr],
    deadline: Instant,
) -> Result<(TcpStream, Vec<String>), Layer> {
    let started = Instant::now();
    let mut tried = Vec::new();
    let mut refused = 0;
    for addr in addrs {
        let attempt = Instant::now();
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(timed_out("tcp", started.elapsed(), "the TCP connection")),
            Ok(Ok(tcp)) => {
                tried.push(format!("{addr} in {}", ms(attempt.elapsed())));
                return Ok((tcp, tried));
            }
            Ok(Err(e)) => {
                if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    refused += 1;
                }
                tried.push(format!("{addr}: {e}"));
            }
        }
    }
    let hint = if refused > 0 {
        "nothing listens on that port: is the backend running (`syncprobe serve` starts a local one), and is the port in --url right?"
    } else {
        "the host cannot be reached: check the network, a firewall, or the address"
    };
    Err(Layer::fail(
        "tcp",
        started.elapsed(),
        Exit::Connect,
        format!("could not connect: {}", tried.join("; ")),
        hint,
    ))
}

/// `tcp`: connect time per address tried and the TCP round trip.
pub async fn tcp(
    target: &Target,
    addrs: &[SocketAddr],
    tunnel: Option<TcpStream>,
    deadline: Instant,
) -> (Layer, Option<TcpStream>) {
    let started = Instant::now();
    if let Some(tcp) = tunnel {
        let detail = format!(
            "tunnelled to {}:{} through the proxy; {}",
            target.host,
            target.port,
            rtt_text(&tcp, "to the proxy")
        );
        return (Layer::pass("tcp", started.elapsed(), detail), Some(tcp));
    }
    match first_connection(addrs, deadline).await {
        Err(layer) => (layer, None),
        Ok((tcp, tried)) => {
            let _ = tcp.set_nodelay(true);
            let detail = format!("{}; {}", tried.join("; "), rtt_text(&tcp, ""));
            (Layer::pass("tcp", started.elapsed(), detail), Some(tcp))
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn rtt_text(tcp: &TcpStream, whose: &str) -> String {
    match round_trip(tcp) {
        Some(rtt) => format!("TCP round trip {whose} {}", ms(rtt)).replace("  ", " "),
        None => "TCP round trip not available on this system".into(),
    }
}

/// The kernel's smoothed round-trip time of `tcp` (Linux `TCP_INFO`).
#[cfg(target_os = "linux")]
pub fn round_trip(tcp: &TcpStream) -> Option<Duration> {
    use std::os::fd::AsRawFd;
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a valid, writable tcp_info of `len` bytes and the descriptor
    // belongs to a live socket for the duration of the call.
    let rc = unsafe {
        libc::getsockopt(
            tcp.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then(|| Duration::from_micros(u64::from(info.tcpi_rtt)))
}

#[cfg(not(target_os = "linux"))]
pub fn round_trip(_tcp: &TcpStream) -> Option<Duration> {
    None
}

/// `tls`: the handshake with the run's TLS settings (`--cacert`, `--insecure`),
/// and what the certificate says.
pub async fn tls(
    target: &Target,
    tcp: TcpStream,
    options: &ClientOptions,
    deadline: Instant,
    proxied: bool,
) -> (Layer, Option<Stream>) {
    let started = Instant::now();
    // A refused certificate is still described: read again without verifying.
    let peer = tcp.peer_addr().ok().filter(|_| !proxied);
    if !target.tls {
        let detail = "ws:// is not TLS (no certificate to check)";
        return (Layer::skip("tls", detail), Some(MaybeTlsStream::Plain(tcp)));
    }
    let config = match options.tls.config() {
        Ok(config) => config,
        Err(e) => {
            let layer = Layer::fail(
                "tls",
                started.elapsed(),
                Exit::Runtime,
                format!("{e:#}"),
                "check --cacert",
            );
            return (layer, None);
        }
    };
    let Ok(name) = rustls::pki_types::ServerName::try_from(target.host.clone()) else {
        let layer = Layer::fail(
            "tls",
            started.elapsed(),
            Exit::Connect,
            format!("{} is not a valid TLS server name", target.host),
            "check the host in --url",
        );
        return (layer, None);
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout_at(deadline, connector.connect(name, tcp)).await {
        Err(_) => (
            timed_out("tls", started.elapsed(), "the TLS handshake"),
            None,
        ),
        Ok(Err(e)) => {
            let mut layer = handshake_failed(started.elapsed(), &e);
            if let (Some(addr), true) = (peer, is_certificate_error(&e))
                && let Some(facts) = peek(addr, target, deadline).await
            {
                layer.detail.push_str(&format!("; it presents {facts}"));
            }
            (layer, None)
        }
        Ok(Ok(stream)) => {
            let layer = handshake_facts(target, stream.get_ref().1, options, started.elapsed());
            (layer, Some(MaybeTlsStream::Rustls(stream)))
        }
    }
}

fn is_certificate_error(e: &std::io::Error) -> bool {
    matches!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(_))
    )
}

/// The certificate at `addr`, read over a second handshake that verifies nothing.
async fn peek(addr: SocketAddr, target: &Target, deadline: Instant) -> Option<String> {
    let config = crate::client::tls::client_config(None, true).ok()?;
    let name = rustls::pki_types::ServerName::try_from(target.host.clone()).ok()?;
    let handshake = async {
        let tcp = TcpStream::connect(addr).await.ok()?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .ok()
    };
    let stream = tokio::time::timeout_at(deadline, handshake).await.ok()??;
    let cert = stream.get_ref().1.peer_certificates()?.first()?.clone();
    let facts = certificate_facts(cert.as_ref(), &target.host).ok()?;
    Some(format!(
        "subject {}, issuer {}, names [{}], expires in {} days",
        facts.subject,
        facts.issuer,
        facts.names.join(", "),
        facts.days_left
    ))
}

/// The failed handshake's layer, with the fix its error points to.
fn handshake_failed(took: Duration, e: &std::io::Error) -> Layer {
    use rustls::CertificateError as C;
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let (detail, hint) = match tls {
        Some(rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }) => (
            format!("this port is not TLS: the server answered something else ({e})"),
            "this port does not answer TLS: use ws:// (or http://) instead of wss://",
        ),
        Some(error) if crate::client::tls::is_ca_used_as_end_entity(error) => (
            format!("the certificate is a CA certificate used as the server's ({e})"),
            "pass that very certificate with --cacert FILE, or give the server a certificate issued by a CA",
        ),
        Some(rustls::Error::InvalidCertificate(C::UnknownIssuer)) => (
            format!("the certificate's chain is not trusted ({e})"),
            "the certificate is not signed by a CA this machine trusts: pass that CA with --cacert FILE (or --insecure, for testing only)",
        ),
        Some(rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. })) => (
            format!("the certificate has expired ({e})"),
            "renew the server's certificate (or check this machine's clock)",
        ),
        Some(rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        )) => (
            format!("the certificate does not name this host ({e})"),
            "use the host name the certificate was issued for",
        ),
        _ => (
            format!("the TLS handshake failed: {e}"),
            "check that this port speaks TLS (wss://) and the server's TLS settings",
        ),
    };
    Layer::fail("tls", took, Exit::Connect, detail, hint)
}

/// Version, ALPN and certificate facts of a completed handshake; a certificate
/// close to its expiry (or not checked, with `--insecure`) is a warning.
fn handshake_facts(
    target: &Target,
    connection: &rustls::ClientConnection,
    options: &ClientOptions,
    took: Duration,
) -> Layer {
    let version = connection
        .protocol_version()
        .map_or("?".to_string(), |v| format!("{v:?}").replace('_', "."));
    let alpn = connection.alpn_protocol().map_or("none".to_string(), |p| {
        String::from_utf8_lossy(p).into_owned()
    });
    let insecure = options.tls.is_insecure();
    let trust = if insecure {
        "not verified (--insecure)"
    } else {
        "chain trusted"
    };
    let Some(cert) = connection.peer_certificates().and_then(|c| c.first()) else {
        return Layer::pass("tls", took, format!("{version}, ALPN {alpn}, {trust}"));
    };
    let facts = match certificate_facts(cert.as_ref(), &target.host) {
        Ok(facts) => facts,
        Err(why) => {
            let detail = format!("{version}, ALPN {alpn}, {trust}; {why}");
            return Layer::warn("tls", took, detail, "check the server's certificate");
        }
    };
    let detail = format!(
        "{version}, ALPN {alpn}, subject {}, issuer {}, names [{}] ({}), expires in {} days, {trust}",
        facts.subject,
        facts.issuer,
        facts.names.join(", "),
        if facts.matches {
            "matches the host"
        } else {
            "does not name the host"
        },
        facts.days_left
    );
    if facts.days_left < EXPIRY_WARNING_DAYS {
        let hint = format!(
            "the certificate expires in {} days: renew it before clients start failing",
            facts.days_left
        );
        return Layer::warn("tls", took, detail, hint);
    }
    if insecure {
        let hint = "the certificate was not checked: drop --insecure (pass --cacert FILE for a private CA)";
        return Layer::warn("tls", took, detail, hint);
    }
    if !facts.matches {
        let hint = "the certificate does not name this host: use the host name it was issued for";
        return Layer::warn("tls", took, detail, hint);
    }
    Layer::pass("tls", took, detail)
}

struct CertFacts {
    subject: String,
    issuer: String,
    names: Vec<String>,
    matches: bool,
    days_left: i64,
}

fn certificate_facts(der: &[u8], host: &str) -> Result<CertFacts, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        use x509_parser::extensions::GeneralName;
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => names.push(n.to_string()),
                GeneralName::IPAddress(bytes) => names.push(ip_text(bytes)),
                _ => {}
            }
        }
    }
    let host = host.to_ascii_lowercase();
    let matches = names.iter().any(|n| {
        let n = n.to_ascii_lowercase();
        n == host
            || n.strip_prefix("*.")
                .is_some_and(|suffix| host.split_once('.').is_some_and(|(_, rest)| rest == suffix))
    });
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days_left = (cert.validity().not_after.timestamp() - now).div_euclid(86_400);
    let shown = |text: String| crate::text::shown(&text, 80);
    Ok(CertFacts {
        subject: shown(cert.subject().to_string()),
        issuer: shown(cert.issuer().to_string()),
        names: names.into_iter().take(6).map(shown).collect(),
        matches,
        days_left,
    })
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => "?".into(),
    }
}
