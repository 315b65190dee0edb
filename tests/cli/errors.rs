//! Errors that name the real problem: what a server that is not a sync socket really
//! answered (an HTTP/1.0 page, TLS, HTML bodies), the scheme to use, token refusals
//! by what the server said, certificates, and REST limits. Each against a server
//! written here or `serve`, never a mock of the client.

use std::net::SocketAddr;

use base64::Engine;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::fake::HttpServer;
use crate::support::*;

/// Answers every connection with fixed bytes once the request head has arrived.
struct RawServer {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl RawServer {
    async fn start(answer: &'static [u8]) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tcp.write_all(answer).await;
                    let _ = tcp.shutdown().await;
                });
            }
        });
        RawServer { addr, accept }
    }

    fn base(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The one `syncprobe: error:` line and the `hint:` lines of a run.
fn error_and_hints(output: &std::process::Output) -> (String, Vec<String>) {
    let err = stderr(output);
    let error = err
        .lines()
        .find(|l| l.starts_with("syncprobe: error:"))
        .unwrap_or_else(|| panic!("no error line in {err}"))
        .to_string();
    let hints = err
        .lines()
        .filter_map(|l| l.strip_prefix("hint: "))
        .map(String::from)
        .collect();
    (error, hints)
}

const PYTHON_PAGE: &[u8] = b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.12\r\nContent-type: text/html\r\n\r\n<!DOCTYPE HTML>\n<html>\n<head><title>Directory listing for /</title></head>\n<body><h1>Directory listing for /</h1>\n<ul><li>a</li></ul>\n</body>\n</html>\n";

#[tokio::test]
async fn a_plain_http_server_shows_its_status_line_and_a_web_page_hint() {
    let server = RawServer::start(PYTHON_PAGE).await;
    let output = run_cli(&["connect", "org-a", "--url", &server.base()]).await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let (error, hints) = error_and_hints(&output);
    assert!(error.contains("did not upgrade to a WebSocket"), "{error}");
    assert!(
        error.contains("the server answered HTTP/1.0 200 OK"),
        "{error}"
    );
    assert!(
        error.contains("HTML page: Directory listing for /"),
        "{error}"
    );
    assert!(!error.contains("HTTP version must be"), "{error}");
    assert!(!stderr(&output).contains("<html"), "{}", stderr(&output));
    assert!(
        hints
            .iter()
            .any(|h| h.starts_with("this is a web page, not a WebSocket endpoint")),
        "{hints:?}"
    );
    // HTTP/1.1 pages get the same hint, with the status.
    let web = HttpServer::start("200 OK", "<html><body>hello</body></html>").await;
    let output = run_cli(&["connect", "org-a", "--url", &web.base()]).await;
    let (error, hints) = error_and_hints(&output);
    assert!(error.contains("HTTP 200 OK: HTML page: hello"), "{error}");
    assert!(
        hints.iter().any(|h| h.contains("not a WebSocket endpoint")),
        "{hints:?}"
    );
    // `load` counts it by its status, never with an empty one.
    let output = run_cli(&[
        "load",
        "-c",
        "2",
        "--url",
        &server.base(),
        "--events",
        "1",
        "--json",
    ])
    .await;
    let summary: syncprobe::load::LoadSummary = summary_of(&records(&output));
    let kinds: Vec<String> = summary.errors.keys().map(|k| k.to_string()).collect();
    assert_eq!(kinds, ["upgrade refused: HTTP 200"], "{}", stdout(&output));
}

#[tokio::test]
async fn another_protocol_and_a_silent_close_are_named() {
    let ssh = RawServer::start(b"SSH-2.0-OpenSSH_9.6\r\n").await;
    let output = run_cli(&["connect", "org-a", "--url", &ssh.base()]).await;
    assert_eq!(output.status.code(), Some(3));
    let (error, hints) = error_and_hints(&output);
    assert!(error.contains("not HTTP: SSH-2.0-OpenSSH_9.6"), "{error}");
    assert!(
        hints.iter().any(|h| h.contains("another protocol")),
        "{hints:?}"
    );
    let closing = RawServer::start(b"").await;
    let output = run_cli(&["connect", "org-a", "--url", &closing.base()]).await;
    assert_eq!(output.status.code(), Some(3));
    let (error, _) = error_and_hints(&output);
    assert!(
        error.contains("ended the connection without answering the upgrade"),
        "{error}"
    );
}

fn tls_server_config(
    dir: &std::path::Path,
    ca: bool,
) -> (syncprobe::server::Config, std::path::PathBuf) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    if ca {
        // What `openssl req -x509` makes by default: a CA certificate used as the server's.
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_path = dir.join(if ca { "ca-cert.pem" } else { "cert.pem" });
    let key_path = dir.join(if ca { "ca-key.pem" } else { "key.pem" });
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let mut config = fast_config();
    config.tls = Some(syncprobe::server::tls::server_config(&cert_path, &key_path).unwrap());
    (config, cert_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_scheme_for_the_port_says_which_to_use() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = tls_server_config(dir.path(), false);
    let tls = TestServer::with(config).await;
    let plain_to_tls = format!("ws://127.0.0.1:{}", tls.addr.port());
    let output = run_cli(&["connect", "org-a", "--url", &plain_to_tls]).await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let (error, hints) = error_and_hints(&output);
    assert!(error.contains("answered with TLS"), "{error}");
    assert!(
        hints
            .iter()
            .any(|h| h.starts_with("this port speaks TLS: use wss://")),
        "{hints:?}"
    );

    let plain = TestServer::start().await;
    let tls_to_plain = format!("wss://127.0.0.1:{}", plain.addr.port());
    let output = run_cli(&["connect", "org-a", "--url", &tls_to_plain]).await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let (error, hints) = error_and_hints(&output);
    assert!(
        error.contains("TLS handshake with 127.0.0.1 failed"),
        "{error}"
    );
    assert!(
        hints
            .iter()
            .any(|h| h.starts_with("this port does not answer TLS: use ws://")),
        "{hints:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_ca_certificate_given_with_cacert_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (config, cert) = tls_server_config(dir.path(), true);
    let server = TestServer::with(config).await;
    let cacert = cert.to_str().unwrap();
    let base = format!("wss://localhost:{}", server.addr.port());
    let output = run_cli(&["connect", "org-a", "--url", &base, "--cacert", cacert]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // The name is still checked: 127.0.0.2 is not on the certificate.
    let wrong = format!("wss://127.0.0.2:{}", server.addr.port());
    let output = run_cli(&["connect", "org-a", "--url", &wrong, "--cacert", cacert]).await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    // A CA:TRUE certificate that is not the one given is explained.
    let other_dir = tempfile::tempdir().unwrap();
    let (_, other) = tls_server_config(other_dir.path(), true);
    let output = run_cli(&[
        "connect",
        "org-a",
        "--url",
        &base,
        "--cacert",
        other.to_str().unwrap(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(3));
    let (_, hints) = error_and_hints(&output);
    assert!(
        hints.iter().any(|h| h.contains("CA certificate (CA:TRUE)")),
        "{hints:?}"
    );
}

/// The `openssl` line of the README's TLS section, run as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_self_signed_recipe_works_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let recipe = readme
        .lines()
        .find(|l| l.starts_with("openssl req -x509"))
        .expect("the README's TLS section shows how to make cert.pem");
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("sh")
        .arg("-c")
        .arg(recipe)
        .current_dir(dir.path())
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(
        made.status.success(),
        "{recipe}: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let mut config = fast_config();
    config.tls = Some(syncprobe::server::tls::server_config(&cert, &key).unwrap());
    let server = TestServer::with(config).await;
    let base = format!("wss://localhost:{}", server.addr.port());
    let output = run_cli(&[
        "smoke",
        "org-rio",
        "--url",
        &base,
        "--cacert",
        cert.to_str().unwrap(),
    ])
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
}

/// An HS256-shaped token whose `exp` is `exp` (the signature is not checked by
/// the servers here).
fn token_with_exp(exp: u64) -> String {
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "HS256", "typ": "JWT"})),
        b64(json!({"userId": "u-1", "exp": exp}))
    )
}

#[tokio::test]
async fn refused_tokens_get_a_hint_from_what_the_server_said() {
    let expired = HttpServer::start(
        "401 Unauthorized",
        r#"{"error":"TOKEN_EXPIRED","message":"Token has expired"}"#,
    )
    .await;
    let token = token_with_exp(1_700_000_000);
    let output = run_cli(&[
        "connect",
        "org-a",
        "--url",
        &expired.base(),
        "--token",
        &token,
    ])
    .await;
    assert_eq!(output.status.code(), Some(3));
    let (error, hints) = error_and_hints(&output);
    assert!(
        error.contains("the token sent expired at 2023-11-14T22:13:20Z"),
        "{error}"
    );
    assert_eq!(hints.len(), 1, "{hints:?}");
    assert!(
        hints[0].starts_with("the server says the token expired"),
        "{hints:?}"
    );
    assert!(
        !stderr(&output).contains(&token),
        "the token is never printed"
    );

    let missing = HttpServer::start(
        "401 Unauthorized",
        r#"{"error":"UNAUTHORIZED","message":"No token provided"}"#,
    )
    .await;
    let output = run_cli(&["connect", "org-a", "--url", &missing.base()]).await;
    let (_, hints) = error_and_hints(&output);
    assert!(
        hints[0].starts_with("pass a token with --token"),
        "{hints:?}"
    );

    let invalid = HttpServer::start(
        "401 Unauthorized",
        r#"{"error":"INVALID_TOKEN","message":"Invalid token"}"#,
    )
    .await;
    let valid_for_now = token_with_exp(u64::MAX / 4);
    let output = run_cli(&[
        "connect",
        "org-a",
        "--url",
        &invalid.base(),
        "--token",
        &valid_for_now,
    ])
    .await;
    let (error, hints) = error_and_hints(&output);
    assert!(!error.contains("expired at"), "{error}");
    assert!(
        hints[0].starts_with("the server rejected the token"),
        "{hints:?}"
    );

    // The same words from a REST answer.
    let output = run_cli(&[
        "enqueue",
        "org-a",
        "--url",
        &expired.base(),
        "--count",
        "1",
        "--token",
        &token,
    ])
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let (error, hints) = error_and_hints(&output);
    assert!(
        error.contains("the token sent expired at 2023-11-14T22:13:20Z"),
        "{error}"
    );
    assert!(
        hints
            .iter()
            .any(|h| h.starts_with("the server says the token expired")),
        "{hints:?}"
    );
    assert!(
        !stderr(&output).contains(&token),
        "the token is never printed"
    );
}

#[tokio::test]
async fn an_html_error_body_is_one_short_line() {
    let nginx = HttpServer::start(
        "502 Bad Gateway",
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n",
    )
    .await;
    for args in [
        vec!["connect", "org-a"],
        vec!["enqueue", "org-a", "--count", "1"],
    ] {
        let base = nginx.base();
        let mut argv = args.clone();
        argv.extend(["--url", base.as_str()]);
        let output = run_cli(&argv).await;
        let err = stderr(&output);
        let (error, hints) = error_and_hints(&output);
        assert!(
            error.contains("HTML page: 502 Bad Gateway"),
            "{args:?}: {error}"
        );
        assert!(
            !err.contains("<center>") && !err.contains("<html"),
            "{args:?}: {err}"
        );
        assert_eq!(
            err.lines().filter(|l| !l.starts_with("hint:")).count(),
            1,
            "{args:?}: {err}"
        );
        assert!(
            hints.iter().any(|h| h.contains("proxy or the backend")),
            "{hints:?}"
        );
    }
}
