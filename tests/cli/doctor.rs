//! `doctor ORG` layer by layer, against the servers that break each layer: a closed
//! port, a port that never answers, a web server, TLS (expiring, wrong scheme both
//! ways), a secured `serve` with bad tokens, a Part 1 backend, a proxy that cuts
//! idle sockets, a CONNECT proxy; and the report's redaction.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::fake::{FakeServer, HttpServer, SilentServer, part1_connected, part1_event};
use crate::security::{now, secured, sign, token_for};
use crate::support::*;

/// Runs `doctor` with `--json`: the exit code, the layers by name, the summary.
async fn doctor(
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, BTreeMap<String, Value>, Value, String) {
    let mut argv = vec!["doctor"];
    argv.extend_from_slice(args);
    argv.push("--json");
    let out = run_cli_env(&argv, env).await;
    let records = records(&out);
    let layers = data_of(&records, "layer")
        .into_iter()
        .map(|l| (l["name"].as_str().unwrap().to_string(), l.clone()))
        .collect();
    let summary = data_of(&records, "summary")
        .first()
        .map(|s| (*s).clone())
        .unwrap_or(Value::Null);
    (out.status.code(), layers, summary, stdout(&out))
}

fn status_of(layers: &BTreeMap<String, Value>, name: &str) -> String {
    layers[name]["status"].as_str().unwrap().to_string()
}

fn text_of(layers: &BTreeMap<String, Value>, name: &str) -> String {
    format!("{} {}", layers[name]["detail"], layers[name]["hint"])
}

#[tokio::test]
async fn a_closed_port_fails_at_tcp_and_skips_the_rest() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("ws://127.0.0.1:{port}");
    let (code, layers, summary, _) = doctor(&["org-a", "--url", &url], &[]).await;
    assert_eq!(code, Some(3));
    assert_eq!(status_of(&layers, "dns"), "pass");
    assert_eq!(status_of(&layers, "tcp"), "fail");
    assert!(
        text_of(&layers, "tcp").contains("is the backend running"),
        "{layers:?}"
    );
    for name in ["upgrade", "connected", "ping", "idle"] {
        assert_eq!(status_of(&layers, name), "skip", "{name}");
        assert!(text_of(&layers, name).contains("tcp failed"), "{name}");
    }
    assert_eq!(layers.len(), 12);
    assert_eq!(summary["failed"], "tcp");
    assert_eq!(summary["exitCode"], 3);
}

#[tokio::test]
async fn a_port_that_never_answers_times_out_at_the_upgrade() {
    let silent = SilentServer::start().await;
    let (code, layers, _, _) = doctor(
        &["org-a", "--url", &silent.base(), "--connect-timeout", "1s"],
        &[],
    )
    .await;
    assert_eq!(code, Some(4));
    assert_eq!(status_of(&layers, "tcp"), "pass");
    assert_eq!(status_of(&layers, "upgrade"), "fail");
    assert!(text_of(&layers, "upgrade").contains("did not answer the upgrade"));
    assert_eq!(status_of(&layers, "connected"), "skip");
}

#[tokio::test]
async fn a_plain_web_server_fails_the_upgrade_with_the_web_page_hint() {
    let web = HttpServer::start("200 OK", "<html><title>Welcome</title></html>").await;
    let (code, layers, _, _) = doctor(&["org-a", "--url", &web.base()], &[]).await;
    assert_eq!(code, Some(3));
    assert_eq!(status_of(&layers, "upgrade"), "fail");
    let upgrade = text_of(&layers, "upgrade");
    assert!(upgrade.contains("HTTP 200 OK"), "{upgrade}");
    assert!(upgrade.contains("HTML page: Welcome"), "{upgrade}");
    assert!(upgrade.contains("this is a web page"), "{upgrade}");
}

/// A server certificate for 127.0.0.1 valid until midnight UTC four days from now
/// (so between 3 and 4 days left), and a `serve` config using it.
fn expiring_tls(dir: &std::path::Path) -> (syncprobe::server::Config, String) {
    use chrono::Datelike;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let end = chrono::Utc::now() + chrono::Duration::days(4);
    params.not_after = rcgen::date_time_ymd(end.year(), end.month() as u8, end.day() as u8);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let mut config = fast_config();
    config.tls = Some(syncprobe::server::tls::server_config(&cert_path, &key_path).unwrap());
    (config, cert_path.to_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_expiring_in_three_days_warns_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (config, cacert) = expiring_tls(dir.path());
    let server = TestServer::with(config).await;
    let url = format!("wss://127.0.0.1:{}", server.addr.port());
    let (code, layers, _, _) = doctor(&["org-tls", "--url", &url, "--cacert", &cacert], &[]).await;
    assert_eq!(code, Some(0), "{layers:?}");
    assert_eq!(status_of(&layers, "tls"), "warn");
    let tls = text_of(&layers, "tls");
    assert!(tls.contains("expires in 3 days"), "{tls}");
    assert!(
        tls.contains("TLSv1.3") && tls.contains("matches the host"),
        "{tls}"
    );
    assert!(tls.contains("renew it"), "{tls}");
    assert_eq!(status_of(&layers, "connected"), "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_scheme_either_way_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = expiring_tls(dir.path());
    let tls = TestServer::with(config).await;
    let plain_to_tls = format!("ws://127.0.0.1:{}", tls.addr.port());
    let (code, layers, _, _) = doctor(&["org-a", "--url", &plain_to_tls], &[]).await;
    assert_eq!(code, Some(3));
    assert_eq!(status_of(&layers, "upgrade"), "fail");
    assert!(text_of(&layers, "upgrade").contains("this port speaks TLS: use wss://"));

    let plain = TestServer::start().await;
    let tls_to_plain = format!("wss://127.0.0.1:{}", plain.addr.port());
    let (code, layers, _, _) = doctor(&["org-a", "--url", &tls_to_plain], &[]).await;
    assert_eq!(code, Some(3));
    assert_eq!(status_of(&layers, "tls"), "fail");
    let text = text_of(&layers, "tls");
    assert!(text.contains("this port is not TLS"), "{text}");
    assert!(text.contains("use ws://"), "{text}");
    assert!(text_of(&layers, "upgrade").contains("tls failed"));
}

#[tokio::test]
async fn a_secured_serve_names_the_token_problem() {
    let server = TestServer::with(secured()).await;
    let dir = tempfile::tempdir().unwrap();

    let (code, layers, _, _) = doctor(&["org-a", "--url", &server.base()], &[]).await;
    assert_eq!(code, Some(3));
    assert!(
        text_of(&layers, "upgrade").contains("HTTP 401"),
        "{layers:?}"
    );
    assert_eq!(status_of(&layers, "auth"), "fail");
    assert!(text_of(&layers, "auth").contains("no token was sent"));

    let expired = sign(json!({"org": "org-a", "exp": now() - 120}));
    let report = dir.path().join("expired.md");
    let (code, layers, _, _) = doctor(
        &[
            "org-a",
            "--url",
            &server.base(),
            "--token",
            &expired,
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(3));
    assert_eq!(status_of(&layers, "upgrade"), "fail");
    assert_eq!(status_of(&layers, "auth"), "fail");
    assert!(
        text_of(&layers, "auth").contains("expired 2m"),
        "{layers:?}"
    );
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(
        md.contains("| auth | fail |") && md.contains("expired"),
        "{md}"
    );
    let signature = expired.rsplit('.').next().unwrap();
    assert!(!md.contains(signature), "{md}");

    let other = token_for("org-b");
    let (code, layers, _, out) =
        doctor(&["org-a", "--url", &server.base(), "--token", &other], &[]).await;
    assert_eq!(code, Some(3));
    assert_eq!(status_of(&layers, "upgrade"), "fail");
    let auth = text_of(&layers, "auth");
    assert!(auth.contains("organizations [org-b]"), "{auth}");
    assert!(auth.contains("does not allow org-a"), "{auth}");
    assert!(!out.contains(other.rsplit('.').next().unwrap()), "{out}");
}

#[tokio::test]
async fn a_part1_backend_passes_with_part2_checks_skipped() {
    let org = "org-p1";
    let fake = FakeServer::sending(vec![
        part1_connected(org),
        part1_event("SYNC_QUEUED", "pfa-1", org),
    ])
    .await;
    let (code, layers, _, _) = doctor(
        &[
            org,
            "--url",
            &fake.base(),
            "--events",
            "300ms",
            "--timeout",
            "2s",
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(0), "{layers:?}");
    let connected = text_of(&layers, "connected");
    assert!(connected.contains("Part 1"), "{connected}");
    assert!(
        connected.contains("Part 2 checks (gaps by seq, resume) are skipped"),
        "{connected}"
    );
    assert_eq!(status_of(&layers, "ping"), "pass");
    let events = text_of(&layers, "events");
    assert!(
        events.contains("gaps not checked (Part 1: no seq)"),
        "{events}"
    );
    assert!(events.contains("SYNC_QUEUED 1"), "{events}");
}

/// A TCP proxy to `upstream` that drops both sides of a connection once it has
/// been silent (both ways) for `idle`.
struct IdleCutProxy {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl IdleCutProxy {
    async fn start(upstream: SocketAddr, idle: Duration) -> IdleCutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    relay_until_idle(client, server, idle).await;
                });
            }
        });
        IdleCutProxy { addr, accept }
    }
}

impl Drop for IdleCutProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay_until_idle(mut client: TcpStream, mut server: TcpStream, idle: Duration) {
    let (mut a, mut b) = ([0u8; 8192], [0u8; 8192]);
    loop {
        let step = tokio::time::timeout(idle, async {
            tokio::select! {
                n = client.read(&mut a) => match n {
                    Ok(n) if n > 0 => server.write_all(&a[..n]).await.is_ok(),
                    _ => false,
                },
                n = server.read(&mut b) => match n {
                    Ok(n) if n > 0 => client.write_all(&b[..n]).await.is_ok(),
                    _ => false,
                },
            }
        });
        match step.await {
            Ok(true) => continue,
            _ => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_cuts_idle_sockets_is_named_by_hold() {
    let server = TestServer::start().await;
    let proxy = IdleCutProxy::start(server.addr, Duration::from_secs(1)).await;
    let url = format!("ws://{}", proxy.addr);
    let (code, layers, summary, _) =
        doctor(&["org-idle", "--url", &url, "--hold", "3s"], &[]).await;
    assert_eq!(code, Some(5), "{layers:?}");
    assert_eq!(status_of(&layers, "connected"), "pass");
    assert_eq!(status_of(&layers, "idle"), "fail");
    let idle = text_of(&layers, "idle");
    assert!(idle.contains("proxy idle timeout"), "{idle}");
    assert!(idle.contains("(1006)"), "{idle}");
    assert_eq!(summary["failed"], "idle");
}

#[tokio::test]
async fn the_report_and_outputs_hold_no_signature_and_no_password() {
    let server = TestServer::start().await;
    let token = token_for("org-r");
    let signature = token.rsplit('.').next().unwrap().to_string();
    let url = format!("ws://ops:hunter2@127.0.0.1:{}", server.addr.port());
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("ticket.md");
    let args = [
        "doctor",
        "org-r",
        "--url",
        &url,
        "--token",
        &token,
        "--token-in",
        "query",
        "--report",
        report.to_str().unwrap(),
    ];
    let out = run_cli(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let md = std::fs::read_to_string(&report).unwrap();
    for text in [&md, &stdout(&out), &stderr(&out)] {
        assert!(!text.contains(&signature), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains(&token), "{text}");
    }
    assert!(md.contains("# syncprobe doctor: org-r"), "{md}");
    assert!(md.contains("--token ***"), "{md}");
    assert!(md.contains("## Layers") && md.contains("## Timeline") && md.contains("## Hints"));
    assert!(md.contains("token=***"), "{md}");
    assert!(md.contains("JWT HS256, organizations [org-r]"), "{md}");
    let human = stdout(&out);
    assert!(human.contains("connected  pass"), "{human}");
    assert!(human.contains("ok: no layer failed"), "{human}");

    let (code, _, summary, json) = doctor(
        &["org-r", "--url", &url, "--token", &token, "--redact-ids"],
        &[],
    )
    .await;
    assert_eq!(code, Some(0));
    assert!(
        !json.contains(&signature) && !json.contains("hunter2"),
        "{json}"
    );
    assert!(!json.contains("org-r"), "{json}");
    assert_eq!(summary["organizationId"], "‹org›");
}

/// A forward proxy that answers `CONNECT host:port` and relays; anything else
/// gets 405. Counts the tunnels it opened.
struct ConnectProxy {
    addr: SocketAddr,
    tunnels: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl ConnectProxy {
    async fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tunnels = Arc::new(AtomicUsize::new(0));
        let counter = tunnels.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(tunnel(client, counter));
            }
        });
        ConnectProxy {
            addr,
            tunnels,
            accept,
        }
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn tunnel(mut client: TcpStream, counter: Arc<AtomicUsize>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        if client.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut words = text.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let Ok(mut server) = TcpStream::connect(target).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    counter.fetch_add(1, Ordering::SeqCst);
    let _ = client
        .write_all(b"HTTP/1.1 200 Connection established\r\nVia: 1.1 test-proxy\r\n\r\n")
        .await;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_layer_goes_through_a_connect_proxy_and_so_does_connect() {
    let server = TestServer::start().await;
    let proxy = ConnectProxy::start().await;
    let proxy_url = format!("http://user:pw@{}", proxy.addr);
    let env = [("HTTP_PROXY", proxy_url.as_str()), ("NO_PROXY", "")];
    let (code, layers, _, out) = doctor(&["org-px", "--url", &server.base()], &env).await;
    assert_eq!(code, Some(0), "{layers:?}");
    assert_eq!(status_of(&layers, "proxy"), "pass");
    let text = text_of(&layers, "proxy");
    assert!(text.contains("HTTP_PROXY=http://user:***@"), "{text}");
    assert!(text.contains("200 Connection established"), "{text}");
    assert!(text.contains("via 1.1 test-proxy"), "{text}");
    assert!(!out.contains(":pw@"), "{out}");
    assert!(text_of(&layers, "tcp").contains("through the proxy"));
    assert_eq!(status_of(&layers, "connected"), "pass");
    assert_eq!(proxy.tunnels.load(Ordering::SeqCst), 1);

    let out = run_cli_env(&["connect", "org-px", "--url", &server.base()], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(proxy.tunnels.load(Ordering::SeqCst), 2);

    let env = [
        ("HTTP_PROXY", proxy_url.as_str()),
        ("no_proxy", "127.0.0.1"),
    ];
    let (code, layers, _, _) = doctor(&["org-px", "--url", &server.base()], &env).await;
    assert_eq!(code, Some(0));
    assert!(text_of(&layers, "proxy").contains("NO_PROXY entry \\\"127.0.0.1\\\""));
    assert_eq!(proxy.tunnels.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_human_output_is_an_aligned_list_with_a_waterfall() {
    let server = TestServer::start().await;
    let out = run_cli(&["doctor", "org-h", "--url", &server.base()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    for name in ["dns", "tcp", "upgrade", "connected", "ping", "idle"] {
        let line = lines
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} line: {text}"));
        // The status column starts at the same place on every line.
        assert_eq!(
            line.find(" pass").or(line.find(" skip")),
            Some(12),
            "{line}"
        );
    }
    assert!(text.contains("[ "), "{text}");
    assert!(text.contains("upgrade: "), "{text}");
}

#[tokio::test]
async fn odd_values_are_usage_errors_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder").join("ticket.md");
    for args in [
        vec!["doctor", "org-a", "--hold", "0"],
        vec!["doctor", "org-a", "--events", "-1s"],
        vec!["doctor", "org-a", "--pings", "101"],
        vec!["doctor", "org-a", "--report", missing.to_str().unwrap()],
        vec!["doctor", "org-a", "--url", "ftp://h"],
    ] {
        let out = run_cli(&args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    assert!(!missing.exists());
    let help = run_cli(&["doctor", "--help"]).await;
    assert!(stdout(&help).contains("Examples:"), "{}", stdout(&help));
}

#[tokio::test]
async fn an_organization_without_activity_gets_a_did_you_mean() {
    let server = TestServer::start().await;
    // Someone is connected to the organization under its real spelling.
    let (_held, _) = subscribe(&server, "org-Acme").await;
    let (code, layers, _, _) = doctor(&["org_acme", "--url", &server.base()], &[]).await;
    assert_eq!(code, Some(0), "{layers:?}");
    assert_eq!(status_of(&layers, "status"), "warn");
    let status = text_of(&layers, "status");
    assert!(
        status.contains("no activity recorded for org_acme"),
        "{status}"
    );
    assert!(status.contains("did you mean org-Acme?"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_tls_and_is_still_described() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = expiring_tls(dir.path());
    let server = TestServer::with(config).await;
    let url = format!("wss://127.0.0.1:{}", server.addr.port());
    let (code, layers, _, _) = doctor(&["org-tls", "--url", &url], &[]).await;
    assert_eq!(code, Some(3));
    assert_eq!(status_of(&layers, "tls"), "fail");
    let tls = text_of(&layers, "tls");
    assert!(tls.contains("--cacert FILE"), "{tls}");
    assert!(
        tls.contains("it presents subject") && tls.contains("expires in 3 days"),
        "{tls}"
    );
}
