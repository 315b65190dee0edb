//! The security rules of `serve` over real sockets, and the client subcommands with
//! credentials against a secured `serve`: JWT on upgrades and on the REST API, the
//! Origin allow-list and CORS, organization syntax and the reloadable allow-list,
//! rate, size, idle and token-lifetime limits, connection caps, the per-IP upgrade
//! limit, and `wss://`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use syncprobe::server::Config;
use syncprobe::server::security::{
    CapResponse, JwtConfig, OrgAllowList, OrgIdSyntax, OriginPattern, RateLimit,
};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::support::*;

pub(crate) const SECRET: &str = "a shared secret for the security tests";

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(crate) fn sign_with(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

pub(crate) fn sign(claims: Value) -> String {
    sign_with(&claims, SECRET.as_bytes())
}

/// A token for `org` (or `*`), valid for five minutes.
pub(crate) fn token_for(org: &str) -> String {
    sign(json!({"org": org, "exp": now() + 300}))
}

/// `{header}.{claims}.` with `alg: none`.
pub(crate) fn unsigned(claims: Value) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

pub(crate) fn jwt() -> JwtConfig {
    let mut jwt = JwtConfig::hs256(SECRET.as_bytes()).unwrap();
    // Expiry tests must not wait for a leeway.
    jwt.leeway = Duration::ZERO;
    jwt
}

/// A fast server that requires tokens.
pub(crate) fn secured() -> Config {
    let mut config = fast_config();
    config.jwt = Some(jwt());
    config
}

pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// What an upgrade attempt got.
enum Upgrade {
    Open(Box<Ws>),
    Refused {
        status: u16,
        body: Value,
        headers: HeaderMap,
    },
}

async fn upgrade(url: &str, headers: &[(&str, &str)]) -> Upgrade {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let attempt = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .unwrap_or_else(|_| panic!("the upgrade to {url} timed out"));
    match attempt {
        Ok((ws, _)) => Upgrade::Open(Box::new(ws)),
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            Upgrade::Refused {
                status: response.status().as_u16(),
                body: serde_json::from_slice(body).unwrap_or_else(|e| {
                    panic!(
                        "the refusal body is not JSON ({e}): {:?}",
                        String::from_utf8_lossy(body)
                    )
                }),
                headers: response.headers().clone(),
            }
        }
        Err(e) => panic!("the upgrade to {url} failed: {e}"),
    }
}

/// The socket of an upgrade that must succeed, with its CONNECTED checked.
pub(crate) async fn open(url: &str, headers: &[(&str, &str)]) -> Ws {
    match upgrade(url, headers).await {
        Upgrade::Open(mut ws) => {
            let connected = next_json(&mut ws).await;
            assert_eq!(connected["type"], "CONNECTED", "{connected}");
            *ws
        }
        Upgrade::Refused { status, body, .. } => {
            panic!("{url} was refused: HTTP {status} {body}")
        }
    }
}

/// The status and body of an upgrade that must be refused.
pub(crate) async fn refused(url: &str, headers: &[(&str, &str)]) -> (u16, Value, HeaderMap) {
    match upgrade(url, headers).await {
        Upgrade::Open(_) => panic!("{url} opened, but it must be refused"),
        Upgrade::Refused {
            status,
            body,
            headers,
        } => (status, body, headers),
    }
}

/// Reads until the server's close frame, then on to the end of the connection, so
/// that the close handshake completes as a well-behaved client completes it (and
/// the server has counted the disconnect). Bounded by [`WAIT`]; `None` when the
/// connection ended without a close frame.
async fn close_of(ws: &mut Ws) -> Option<(u16, String)> {
    let deadline = Instant::now() + WAIT;
    let mut close = None;
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the connection did not end in time")
        {
            Some(Ok(Message::Close(Some(frame)))) if close.is_none() => {
                close = Some((u16::from(frame.code), frame.reason.to_string()));
            }
            Some(Ok(_)) => continue,
            _ => return close,
        }
    }
}

/// A REST call with optional token, Origin and body: status, headers, JSON body.
pub(crate) async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    origin: Option<&str>,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let mut request = client.request(method.parse().unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, headers, body)
}

/// Publishes one event with a token and checks that it was accepted.
async fn publish_as(server: &TestServer, token: &str, org: &str, pfa: &str) {
    let body = json!({"organizationId": org, "type": "SYNC_QUEUED", "pfaId": pfa});
    let (status, _, answer) = call(
        "POST",
        &server.http("/api/ws/publish"),
        Some(token),
        None,
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

/// A `syncprobe_…_total{reason="…"}` figure from `/metrics` (0 when absent).
pub(crate) async fn metric(server: &TestServer, family: &str, reason: &str) -> u64 {
    let (_, text) = get(&server.http("/metrics")).await;
    let prefix = format!("syncprobe_{family}_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A self-signed certificate for localhost and 127.0.0.1: (cert path, key path).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (
        write(dir, "cert.pem", &certified.cert.pem()),
        write(dir, "key.pem", &certified.signing_key.serialize_pem()),
    )
}

// ---------------------------------------------------------------------------------
// JWT on the upgrade

#[tokio::test]
async fn valid_tokens_open_sockets_from_the_header_or_the_query() {
    let server = TestServer::with(secured()).await;
    let url = server.sync_url("org-v");
    open(&url, &[("authorization", &bearer(&token_for("org-v")))]).await;
    // Browsers cannot set headers on a WebSocket: the token query parameter.
    open(&format!("{url}?token={}", token_for("org-v")), &[]).await;
    // With resume parameters around it.
    open(
        &format!("{url}?since=0&token={}&epoch=x", token_for("org-v")),
        &[],
    )
    .await;
    // A list of organizations, and the wildcard.
    let list = sign(json!({"org": ["org-x", "org-v"], "exp": now() + 60}));
    open(&url, &[("authorization", &bearer(&list))]).await;
    open(&url, &[("authorization", &bearer(&token_for("*")))]).await;
    // The scheme is case-insensitive.
    open(
        &url,
        &[("authorization", &format!("bearer {}", token_for("org-v")))],
    )
    .await;
}

/// The original backend's error code and message for a refused token, as
/// `(status, error, message)`.
/// A refusal as the original backend words it: `(status, error, message)`.
pub(crate) type Answer = (u16, &'static str, &'static str);

pub(crate) const NO_TOKEN: Answer = (401, "UNAUTHORIZED", "No token provided");
pub(crate) const EXPIRED: Answer = (401, "TOKEN_EXPIRED", "Token has expired");
pub(crate) const INVALID: Answer = (401, "INVALID_TOKEN", "Invalid token");
pub(crate) const NO_ACCESS: Answer = (403, "FORBIDDEN", "No access to this organization");

/// Checks a refusal's status and body: the original's `error` and `message`, and
/// serve's explanation in `details`.
pub(crate) fn assert_refusal(
    case: &str,
    got: (u16, &Value),
    want: (u16, &str, &str),
    detail: &str,
) {
    let (status, body) = got;
    assert_eq!(status, want.0, "{case}: {body}");
    assert_eq!(
        (body["error"].as_str(), body["message"].as_str()),
        (Some(want.1), Some(want.2)),
        "{case}: {body}"
    );
    let details = body["details"].as_str().unwrap_or_default();
    assert!(details.contains(detail), "{case}: {body}");
}

#[tokio::test]
async fn refused_tokens_get_401_or_403_with_a_json_body() {
    let server = TestServer::with(secured()).await;
    let url = server.sync_url("org-r");
    let cases: Vec<(&str, Option<String>, Answer, &str)> = vec![
        ("missing", None, NO_TOKEN, "a token is required"),
        (
            "expired",
            Some(sign(json!({"org": "org-r", "exp": now() - 60}))),
            EXPIRED,
            "the token expired",
        ),
        (
            "badly signed",
            Some(sign_with(
                &json!({"org": "org-r", "exp": now() + 60}),
                b"another secret",
            )),
            INVALID,
            "signature does not verify",
        ),
        (
            "alg none",
            Some(unsigned(json!({"org": "org-r", "exp": now() + 60}))),
            INVALID,
            "alg none",
        ),
        ("garbage", Some("not-a-jwt".into()), INVALID, "malformed"),
        (
            "not yet valid",
            Some(sign(
                json!({"org": "org-r", "exp": now() + 600, "nbf": now() + 300}),
            )),
            INVALID,
            "not valid yet",
        ),
        (
            "no exp",
            Some(sign(json!({"org": "org-r"}))),
            INVALID,
            "has no exp claim",
        ),
        (
            "wrong organization",
            Some(token_for("org-other")),
            NO_ACCESS,
            "does not allow organization \"org-r\"",
        ),
        (
            "no org claim",
            Some(sign(json!({"exp": now() + 60}))),
            NO_ACCESS,
            "has no org, organizations or organizationIds claim",
        ),
    ];
    for (case, token, want, detail) in cases {
        let header = token.as_deref().map(bearer);
        let headers: Vec<(&str, &str)> = header
            .iter()
            .map(|h| ("authorization", h.as_str()))
            .collect();
        let (got, body, response_headers) = refused(&url, &headers).await;
        assert_refusal(case, (got, &body), want, detail);
        if got == 401 {
            let challenge = response_headers["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{case}: {challenge}");
        }
    }
    // Not a bearer token at all.
    let (status, body, _) = refused(&url, &[("authorization", "Basic dXNlcjpwYXNz")]).await;
    assert_refusal("basic", (status, &body), NO_TOKEN, "Bearer <JWT>");
    // Each refusal is counted by reason.
    assert!(metric(&server, "errors", "missing_token").await >= 2);
    for reason in [
        "token_expired",
        "bad_signature",
        "alg_none",
        "org_not_in_token",
    ] {
        assert_eq!(metric(&server, "errors", reason).await, 1, "{reason}");
    }
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let mut config = secured();
    let mut jwt = jwt();
    jwt.issuer = Some("https://issuer.test".into());
    jwt.audience = Some("syncprobe".into());
    config.jwt = Some(jwt);
    let server = TestServer::with(config).await;
    let url = server.sync_url("org-i");
    let claims = |iss: &str, aud: Value| {
        sign(json!({"org": "org-i", "exp": now() + 60, "iss": iss, "aud": aud}))
    };
    let good = claims("https://issuer.test", json!(["other", "syncprobe"]));
    open(&url, &[("authorization", &bearer(&good))]).await;
    for (token, message) in [
        (
            claims("https://elsewhere.test", json!("syncprobe")),
            "issuer",
        ),
        (claims("https://issuer.test", json!("other")), "audience"),
        (token_for("org-i"), "has no"),
    ] {
        let (status, body, _) = refused(&url, &[("authorization", &bearer(&token))]).await;
        assert_refusal(message, (status, &body), INVALID, message);
    }
}

#[tokio::test]
async fn public_key_tokens_verify_and_algorithm_confusion_is_refused() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let public_pem = key.public_key_pem();
    let mut config = fast_config();
    let mut jwt = JwtConfig::public_key_pem(public_pem.as_bytes()).unwrap();
    assert_eq!(jwt.algorithm(), Algorithm::ES256);
    jwt.leeway = Duration::ZERO;
    config.jwt = Some(jwt);
    let server = TestServer::with(config).await;
    let url = server.sync_url("org-es");
    let claims = json!({"org": "org-es", "exp": now() + 60});
    let es256_of = |claims: &Value| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            claims,
            &EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap()
    };
    open(&url, &[("authorization", &bearer(&es256_of(&claims)))]).await;
    // The original backend's shapes verify with a public key too.
    let pfa = json!({"userId": "u", "serviceStatus": "active", "exp": now() + 60,
        "organizations": [{"organizationId": "org-es", "permissions": {"perm_Sync": true}}]});
    open(&url, &[("authorization", &bearer(&es256_of(&pfa)))]).await;
    let admin = json!({"userId": "u", "role": "admin", "organizationIds": [], "exp": now() + 60});
    open(&url, &[("authorization", &bearer(&es256_of(&admin)))]).await;
    let listed = json!({"role": "user", "organizationIds": ["org-x"], "exp": now() + 60});
    let (status, body, _) = refused(&url, &[("authorization", &bearer(&es256_of(&listed)))]).await;
    assert_refusal("ids elsewhere", (status, &body), NO_ACCESS, "\"org-es\"");
    // The classic confusion: HS256 with the public key as the HMAC secret.
    let confused = sign_with(&claims, public_pem.as_bytes());
    let (status, body, _) = refused(&url, &[("authorization", &bearer(&confused))]).await;
    assert_refusal(
        "confused",
        (status, &body),
        INVALID,
        "signed with HS256; this server accepts ES256 only",
    );
    let none = unsigned(claims.clone());
    let (status, body, _) = refused(&url, &[("authorization", &bearer(&none))]).await;
    assert_eq!(status, 401, "{body}");
    // A key of another pair does not verify.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let (status, body, _) = refused(&url, &[("authorization", &bearer(&forged))]).await;
    assert_refusal("forged", (status, &body), INVALID, "signature");
}

#[tokio::test]
async fn a_token_expiring_during_the_session_closes_it_with_4401() {
    let server = TestServer::with(secured()).await;
    let token = sign(json!({"org": "org-exp", "exp": now() + 2}));
    let mut ws = open(
        &server.sync_url("org-exp"),
        &[("authorization", &bearer(&token))],
    )
    .await;
    // The session is live until then.
    publish_as(&server, &token_for("org-exp"), "org-exp", "before-expiry").await;
    assert_eq!(next_json(&mut ws).await["pfaId"], "before-expiry");
    let started = Instant::now();
    assert_eq!(
        close_of(&mut ws).await,
        Some((4401, "token expired".into()))
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(metric(&server, "ws_disconnects", "token_expired").await, 1);
}

// ---------------------------------------------------------------------------------
// JWT on the REST API

#[tokio::test]
async fn the_rest_api_requires_a_token_allowing_the_organization() {
    let server = TestServer::with(secured()).await;
    let write_sync = server.http("/api/pems/write-sync");
    let body = json!({"organizationId": "org-api", "count": 1});
    let (status, headers, answer) = call("POST", &write_sync, None, None, Some(body.clone())).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("UNAUTHORIZED"))
    );
    assert!(headers.contains_key("www-authenticate"));
    let (status, _, answer) = call(
        "POST",
        &write_sync,
        Some(&token_for("org-else")),
        None,
        Some(body.clone()),
    )
    .await;
    assert_eq!((status, answer["error"].as_str()), (403, Some("FORBIDDEN")));
    let (status, _, answer) = call(
        "POST",
        &write_sync,
        Some(&token_for("org-api")),
        None,
        Some(body),
    )
    .await;
    assert_eq!((status, answer["queuedCount"].as_u64()), (200, Some(1)));

    let status_url = server.http("/api/pems/sync-status?organizationId=org-api");
    assert_eq!(call("GET", &status_url, None, None, None).await.0, 401);
    assert_eq!(
        call("GET", &status_url, Some(&token_for("org-else")), None, None)
            .await
            .0,
        403
    );
    assert_eq!(
        call("GET", &status_url, Some(&token_for("org-api")), None, None)
            .await
            .0,
        200
    );
    // The query parameter is for browsers' sockets only.
    let with_query = format!("{status_url}&token={}", token_for("org-api"));
    assert_eq!(call("GET", &with_query, None, None, None).await.0, 401);

    let publish = json!({"organizationId": "org-api", "type": "SYNC_QUEUED"});
    let publish_url = server.http("/api/ws/publish");
    let (status, _, _) = call(
        "POST",
        &publish_url,
        Some(&token_for("org-else")),
        None,
        Some(publish.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = call(
        "POST",
        &publish_url,
        Some(&token_for("org-api")),
        None,
        Some(publish),
    )
    .await;
    assert_eq!(status, 200);

    // Stats: a limited token sees its own organizations only; the totals stay whole.
    let _a = open(
        &server.sync_url("org-api"),
        &[("authorization", &bearer(&token_for("*")))],
    )
    .await;
    let _b = open(
        &server.sync_url("org-hidden"),
        &[("authorization", &bearer(&token_for("*")))],
    )
    .await;
    let stats_url = server.http("/api/ws/stats");
    assert_eq!(call("GET", &stats_url, None, None, None).await.0, 401);
    let (status, _, stats) = call("GET", &stats_url, Some(&token_for("org-api")), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(stats["organizations"], json!({"org-api": 1}));
    assert_eq!(stats["totalConnections"], 2);
    let (_, _, stats) = call("GET", &stats_url, Some(&token_for("*")), None, None).await;
    assert_eq!(
        stats["organizations"],
        json!({"org-api": 1, "org-hidden": 1})
    );

    // Health and metrics stay open.
    assert_eq!(get(&server.http("/healthz")).await.0, 200);
    assert_eq!(get(&server.http("/metrics")).await.0, 200);
}

// ---------------------------------------------------------------------------------
// Origins and CORS

#[tokio::test]
async fn origins_are_allowed_or_refused_and_cors_answers_allowed_ones() {
    let mut config = fast_config();
    config.allowed_origins = vec![
        "https://app.example.com".parse::<OriginPattern>().unwrap(),
        "https://*.example.org".parse().unwrap(),
    ];
    let server = TestServer::with(config).await;
    let url = server.sync_url("org-o");
    for allowed in ["https://app.example.com", "https://a.b.example.org"] {
        open(&url, &[("origin", allowed)]).await;
    }
    // Clients that are not browsers send no Origin.
    open(&url, &[]).await;
    for refused_origin in [
        "https://evil.test",
        "https://example.org",
        "http://app.example.com",
        "null",
    ] {
        let (status, body, _) = refused(&url, &[("origin", refused_origin)]).await;
        assert_eq!(status, 403, "{refused_origin}: {body}");
        assert_eq!(body["error"], "FORBIDDEN");
        assert!(
            body["message"].as_str().unwrap().contains("is not allowed"),
            "{body}"
        );
    }

    // CORS on the REST API.
    let stats = server.http("/api/ws/stats");
    let (status, headers, _) =
        call("GET", &stats, None, Some("https://app.example.com"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(headers.get_all("vary").iter().any(|v| v == "origin"));
    let (status, _, body) = call("GET", &stats, None, Some("https://evil.test"), None).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("FORBIDDEN")));
    // No Origin: no CORS headers, no refusal.
    let (status, headers, _) = call("GET", &stats, None, None, None).await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("access-control-allow-origin"));

    // A preflight.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let preflight = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            server.http("/api/pems/write-sync"),
        )
        .header("origin", "https://x.example.org")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 204);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "https://x.example.org");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    // tower-http takes any OPTIONS from an allowed origin for a preflight, also one
    // without Access-Control-Request-Method (README, Security: CORS).
    let plain = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            server.http("/api/pems/write-sync"),
        )
        .header("origin", "https://x.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 204);
    assert_eq!(
        plain.headers()["access-control-allow-origin"],
        "https://x.example.org"
    );
    // Health stays open to any origin.
    let (status, _, _) = call(
        "GET",
        &server.http("/healthz"),
        None,
        Some("https://evil.test"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(metric(&server, "errors", "origin_not_allowed").await, 5);
}

// ---------------------------------------------------------------------------------
// Organizations

#[tokio::test]
async fn malformed_organization_ids_are_refused_with_400() {
    let server = TestServer::start().await;
    for bad in ["org%20a", "org%2Fa", &"x".repeat(129), "%C3%A9"] {
        let (status, body, _) = refused(&server.sync_url(bad), &[]).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "VALIDATION_ERROR");
        assert_eq!(body["details"][0]["field"], "organizationId");
    }
    open(&server.sync_url("Org:a.b_c-1"), &[]).await;
    open(&server.sync_url(&"x".repeat(128)), &[]).await;
    let (status, answer) = post(
        &server.http("/api/pems/write-sync"),
        r#"{"organizationId":"org a","count":1}"#,
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );

    // The rule can be relaxed.
    let mut config = fast_config();
    config.org_id_syntax = OrgIdSyntax::Any;
    let lax = TestServer::with(config).await;
    let mut ws = connect(&lax.sync_url("org%20a")).await;
    assert_eq!(next_json(&mut ws).await["organizationId"], "org a");
}

#[tokio::test]
async fn organizations_off_the_allow_list_are_refused_with_403() {
    let dir = tempfile::tempdir().unwrap();
    let list = write(
        dir.path(),
        "orgs.txt",
        "org-a\n# a comment\norg-b  # trailing\n",
    );
    let mut config = fast_config();
    config.org_allow_list = Some(OrgAllowList::load(&list).unwrap());
    let server = TestServer::with(config).await;
    open(&server.sync_url("org-a"), &[]).await;
    open(&server.sync_url("org-b"), &[]).await;
    let (status, body, _) = refused(&server.sync_url("org-c"), &[]).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("FORBIDDEN")));
    assert!(body["message"].as_str().unwrap().contains("not allowed"));
    let (status, _) = post(
        &server.http("/api/pems/write-sync"),
        r#"{"organizationId":"org-c","count":1}"#,
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn reloading_the_allow_list_closes_sockets_of_removed_organizations_with_4403() {
    let dir = tempfile::tempdir().unwrap();
    let list = write(dir.path(), "orgs.txt", "org-a\norg-b\n");
    let mut config = secured();
    config.org_allow_list = Some(OrgAllowList::load(&list).unwrap());
    let server = TestServer::with(config).await;
    let all = token_for("*");
    let mut a = open(
        &server.sync_url("org-a"),
        &[("authorization", &bearer(&all))],
    )
    .await;
    let mut b = open(
        &server.sync_url("org-b"),
        &[("authorization", &bearer(&all))],
    )
    .await;
    write(dir.path(), "orgs.txt", "org-b\n");
    let reload = server.http("/api/ws/admin/reload-orgs");
    assert_eq!(call("POST", &reload, None, None, None).await.0, 401);
    let (status, _, body) = call("POST", &reload, Some(&token_for("org-b")), None, None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("\"*\""));
    // Nothing changed yet: org-a still receives.
    publish_as(&server, &all, "org-a", "still-allowed").await;
    assert_eq!(next_json(&mut a).await["pfaId"], "still-allowed");

    let (status, _, body) = call("POST", &reload, Some(&all), None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "organizations": 1, "closing": 1})
    );
    assert_eq!(
        close_of(&mut a).await,
        Some((4403, "organization no longer allowed".into()))
    );
    publish_as(&server, &all, "org-b", "kept").await;
    assert_eq!(next_json(&mut b).await["pfaId"], "kept");
    let (status, _, _) = refused(
        &server.sync_url("org-a"),
        &[("authorization", &bearer(&all))],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(metric(&server, "ws_disconnects", "org_revoked").await, 1);

    // A file that cannot be read keeps the old list.
    std::fs::remove_file(&list).unwrap();
    let (status, _, body) = call("POST", &reload, Some(&all), None, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (500, Some("INTERNAL_ERROR"))
    );
    let _also_b = open(
        &server.sync_url("org-b"),
        &[("authorization", &bearer(&all))],
    )
    .await;

    // A session that outlived one change still watches the next one.
    write(dir.path(), "orgs.txt", "org-c\n");
    let (status, _, body) = call("POST", &reload, Some(&all), None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["closing"], 2, "{body}");
    assert_eq!(
        close_of(&mut b).await,
        Some((4403, "organization no longer allowed".into()))
    );
}

#[tokio::test]
async fn the_admin_endpoint_needs_jwt_and_an_allow_list() {
    let plain = TestServer::start().await;
    let (status, _, body) = call(
        "POST",
        &plain.http("/api/ws/admin/reload-orgs"),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("JWT"));
    let secured = TestServer::with(secured()).await;
    let (status, _, body) = call(
        "POST",
        &secured.http("/api/ws/admin/reload-orgs"),
        Some(&token_for("*")),
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("NOT_CONFIGURED"))
    );
    // The original's older admin (role admin, organizationIds) passes the same check;
    // a listing token of either original shape does not.
    let admin = sign(json!({"role": "admin", "organizationIds": [], "exp": now() + 60}));
    let listed = sign(json!({"role": "user", "organizationIds": ["o"], "exp": now() + 60}));
    let pfa = sign(json!({"organizations": [{"organizationId": "o",
        "permissions": {"perm_ManageUsers": true}}], "exp": now() + 60}));
    for (token, want) in [(admin, 409), (listed, 403), (pfa, 403)] {
        let url = secured.http("/api/ws/admin/reload-orgs");
        let (status, _, body) = call("POST", &url, Some(&token), None, None).await;
        assert_eq!(status, want, "{body}");
    }
}

// ---------------------------------------------------------------------------------
// Limits on client frames

#[tokio::test]
async fn client_frames_over_the_rate_limit_close_the_socket_with_4429() {
    let mut config = fast_config();
    config.rate_limit = Some(RateLimit {
        per_second: 5,
        burst: 5,
    });
    let server = TestServer::with(config).await;
    let (mut ws, _) = subscribe(&server, "org-rate").await;
    for _ in 0..4 {
        send_text(&mut ws, "within the burst").await;
    }
    publish(&server, "org-rate", "SYNC_QUEUED", "open", json!(null), 1).await;
    assert_eq!(next_json(&mut ws).await["pfaId"], "open");
    for _ in 0..20 {
        let _ = ws.send(Message::text("flood")).await;
    }
    assert_eq!(
        close_of(&mut ws).await,
        Some((4429, "rate limit exceeded".into()))
    );
    assert_eq!(metric(&server, "ws_disconnects", "rate_limited").await, 1);
}

#[tokio::test]
async fn an_oversized_message_closes_the_socket_with_1009() {
    let mut config = fast_config();
    config.max_message_size = 1024;
    let server = TestServer::with(config).await;
    let (mut ws, _) = subscribe(&server, "org-big").await;
    send_text(&mut ws, &"a".repeat(1024)).await;
    publish(&server, "org-big", "SYNC_QUEUED", "fits", json!(null), 1).await;
    assert_eq!(next_json(&mut ws).await["pfaId"], "fits");
    send_text(&mut ws, &"a".repeat(2000)).await;
    assert_eq!(
        close_of(&mut ws).await,
        Some((1009, "message too big: 2000 bytes, limit 1024".into()))
    );
    // Far over the limit: refused from the frame header, without reading it.
    let (mut ws, _) = subscribe(&server, "org-big").await;
    let _ = ws.send(Message::binary(vec![7u8; 256 * 1024])).await;
    let close = close_of(&mut ws).await.expect("a close frame");
    assert_eq!(close.0, 1009, "{close:?}");
    assert_eq!(
        metric(&server, "ws_disconnects", "message_too_big").await,
        2
    );
}

#[tokio::test]
async fn the_default_message_limit_is_10_kib() {
    assert_eq!(Config::default().max_message_size, 10 * 1024);
    let server = TestServer::start().await;
    let (mut ws, _) = subscribe(&server, "org-default").await;
    send_text(&mut ws, &"a".repeat(10 * 1024 + 1)).await;
    assert_eq!(close_of(&mut ws).await.map(|c| c.0), Some(1009));
}

#[tokio::test]
async fn an_idle_socket_closes_with_4408_and_activity_keeps_it_open() {
    let idle = Duration::from_millis(400);
    let mut config = fast_config();
    config.ping_interval = Duration::ZERO;
    config.idle_timeout = idle;
    let server = TestServer::with(config).await;
    let (mut ws, _) = subscribe(&server, "org-idle").await;
    // Twice the timeout, with a frame (a pong counts) every 100 ms: still open.
    let mut last_frame = Instant::now();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ws.send(Message::Pong(Vec::new().into())).await.unwrap();
        last_frame = Instant::now();
    }
    publish(&server, "org-idle", "SYNC_QUEUED", "alive", json!(null), 1).await;
    assert_eq!(next_json(&mut ws).await["pfaId"], "alive");
    assert_eq!(
        close_of(&mut ws).await,
        Some((4408, "idle timeout: nothing received for 400ms".into()))
    );
    assert!(last_frame.elapsed() >= idle, "closed before the timeout");
    assert_eq!(metric(&server, "ws_disconnects", "idle_timeout").await, 1);
}

// ---------------------------------------------------------------------------------
// Caps and the per-IP limit

#[tokio::test]
async fn the_per_organization_cap_refuses_with_503_until_a_socket_leaves() {
    let mut config = fast_config();
    config.max_connections_per_org = 2;
    let server = TestServer::with(config).await;
    let url = server.sync_url("org-cap");
    let mut first = open(&url, &[]).await;
    let _second = open(&url, &[]).await;
    let (status, body, headers) = refused(&url, &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "SERVICE_UNAVAILABLE");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("2 open connections for this organization")
    );
    assert_eq!(headers["retry-after"], "1");
    // Other organizations are not affected.
    open(&server.sync_url("org-other"), &[]).await;
    // A socket that leaves frees its place (once the server has seen it go).
    first.close(None).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match upgrade(&url, &[]).await {
            Upgrade::Open(_) => break,
            Upgrade::Refused { status: 503, .. } if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Upgrade::Refused { status, body, .. } => panic!("still refused: {status} {body}"),
        }
    }
    assert_eq!(metric(&server, "errors", "cap_org").await, 1);
}

#[tokio::test]
async fn the_total_cap_can_close_with_4503_instead() {
    let mut config = fast_config();
    config.max_connections = 2;
    config.cap_response = CapResponse::Close;
    let server = TestServer::with(config).await;
    let _a = open(&server.sync_url("org-t1"), &[]).await;
    let _b = open(&server.sync_url("org-t2"), &[]).await;
    let mut over = connect(&server.sync_url("org-t3")).await;
    // Nothing but the close: no CONNECTED.
    match next_message(&mut over).await {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 4503);
            assert_eq!(
                frame.reason.as_str(),
                "connection cap reached: 2 open connections in total"
            );
        }
        other => panic!("expected the 4503 close, got {other:?}"),
    }
    assert_eq!(metric(&server, "ws_disconnects", "connection_cap").await, 1);
}

#[tokio::test]
async fn upgrade_attempts_per_client_ip_are_limited_with_429() {
    let mut config = fast_config();
    config.ip_upgrade_limit = Some(RateLimit {
        per_second: 1,
        burst: 3,
    });
    let server = TestServer::with(config).await;
    let url = server.sync_url("org-ip");
    for _ in 0..3 {
        open(&url, &[]).await;
    }
    let (status, body, headers) = refused(&url, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("RATE_LIMITED"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("too many connection attempts from 127.0.0.1")
    );
    assert_eq!(headers["retry-after"], "1");
    // Only upgrades count.
    for _ in 0..5 {
        assert_eq!(get(&server.http("/healthz")).await.0, 200);
    }
}

// ---------------------------------------------------------------------------------
// TLS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_self_signed_certificate_and_cacert() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let mut config = fast_config();
    config.tls = Some(syncprobe::server::tls::server_config(&cert, &key).unwrap());
    let server = TestServer::with(config).await;
    let base = format!("wss://localhost:{}", server.addr.port());
    let cacert = cert.to_str().unwrap();
    let output = run_cli(&["connect", "org-tls", "--url", &base, "--cacert", cacert]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("CONNECTED"), "{}", stdout(&output));
    // The REST API over https too: the whole checklist.
    let output = run_cli(&[
        "smoke", "org-tls", "--url", &base, "--cacert", cacert, "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let summary: syncprobe::report::smoke::SmokeSummary = summary_of(&records(&output));
    assert!(
        summary.ok && summary.url.starts_with("wss://"),
        "{summary:?}"
    );
    // `load` reads its sockets itself past CONNECTED: over TLS too, every event.
    let output = run_cli(&[
        "load",
        "--url",
        &base,
        "--cacert",
        cacert,
        "--org",
        "org-tls",
        "--connections",
        "4",
        "--events",
        "20",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let load: syncprobe::report::load::LoadReport = summary_of(&records(&output));
    let c = load.summary.completeness.unwrap();
    assert_eq!((c.expected, c.received, c.missing), (80, 80, 0));
    assert!(load.summary.errors.is_empty(), "{:?}", load.summary.errors);
    // Without the CA the certificate is not trusted.
    let output = run_cli(&["connect", "org-tls", "--url", &base]).await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("TLS handshake with localhost failed"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("hint: the certificate is not signed by a CA this machine trusts: pass that CA with --cacert FILE"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_flags_turn_on_tls_and_jwt() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let running = spawn_cli(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--json",
        "--jwt-secret",
        SECRET,
        "--jwt-leeway",
        "0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--allowed-origin",
        "https://app.example.com,https://*.example.org",
        "--max-connections-per-org",
        "1",
    ]);
    let mut running = running;
    let listening = running
        .wait_for("listening", |r| r["type"] == "listening")
        .await;
    let url = listening["data"]["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
    let cacert = cert.to_str().unwrap();
    let token = token_for("org-flags");
    let output = run_cli(&[
        "connect",
        "org-flags",
        "--url",
        &url,
        "--cacert",
        cacert,
        "--token",
        &token,
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = run_cli(&["connect", "org-flags", "--url", &url, "--cacert", cacert]).await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("HTTP 401"), "{}", stderr(&output));
    let output = run_cli(&[
        "connect",
        "org-flags",
        "--url",
        &url,
        "--cacert",
        cacert,
        "--token",
        &token,
        "--origin",
        "https://evil.test",
    ])
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("HTTP 403"), "{}", stderr(&output));
    running.interrupt().await;
    let finished = running.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
}

#[tokio::test]
async fn bad_security_flags_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = write(dir.path(), "key.pem", "not a key");
    // Flags that cannot work are usage errors (2); files that cannot be read or
    // parsed are input errors (6).
    for (args, expected, code) in [
        (
            vec!["--jwt-public-key", not_pem.to_str().unwrap()],
            "not an RSA or EC (P-256) public key",
            6,
        ),
        (vec!["--jwt-secret", ""], "the JWT secret is empty", 2),
        (
            vec![
                "--tls-cert",
                not_pem.to_str().unwrap(),
                "--tls-key",
                not_pem.to_str().unwrap(),
            ],
            "holds no certificate",
            6,
        ),
        (vec!["--jwt-issuer", "x"], "need --jwt-secret", 2),
        (
            vec!["--org-allow-file", "/nonexistent/orgs.txt"],
            "allow-list",
            6,
        ),
        (
            vec!["--jwt-leeway", "2h", "--jwt-secret", "s"],
            "at most 1h",
            2,
        ),
    ] {
        let mut argv = vec!["serve", "--listen", "127.0.0.1:0"];
        argv.extend(args);
        let output = run_cli(&argv).await;
        assert_eq!(
            output.status.code(),
            Some(code),
            "{argv:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expected),
            "{argv:?}: {}",
            stderr(&output)
        );
    }
    let output = run_cli(&["serve", "--allowed-origin", "example.com"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    // Secret values stay out of the help.
    let output = run_cli_env(
        &["serve", "--help"],
        &[("SYNCPROBE_JWT_SECRET", "hush-hush")],
    )
    .await;
    assert!(stdout(&output).contains("SYNCPROBE_JWT_SECRET"));
    assert!(
        !stdout(&output).contains("hush-hush"),
        "{}",
        stdout(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let list = write(dir.path(), "orgs.txt", "org-a\norg-b\n");
    let mut running = spawn_cli(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--json",
        "--org-allow-file",
        list.to_str().unwrap(),
    ]);
    let listening = running
        .wait_for("listening", |r| r["type"] == "listening")
        .await;
    let base = listening["data"]["url"].as_str().unwrap().to_string();
    let sync = |org: &str| format!("{base}/api/ws/sync/{org}");
    let mut a = open(&sync("org-a"), &[]).await;
    let _b = open(&sync("org-b"), &[]).await;
    write(dir.path(), "orgs.txt", "org-b\n");
    let hangup = |pid: u32| async move {
        let status = tokio::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    };
    hangup(running.pid()).await;
    assert_eq!(
        close_of(&mut a).await,
        Some((4403, "organization no longer allowed".into()))
    );
    let (status, _, _) = refused(&sync("org-a"), &[]).await;
    assert_eq!(status, 403);
    // A list that cannot be read is reported and the old one stays.
    std::fs::remove_file(&list).unwrap();
    hangup(running.pid()).await;
    let warning = running
        .wait_for("warning", |r| r["type"] == "warning")
        .await;
    assert!(
        warning["data"]["message"]
            .as_str()
            .unwrap()
            .contains("the allow-list was not reloaded"),
        "{warning}"
    );
    open(&sync("org-b"), &[]).await;
    running.interrupt().await;
    let finished = running.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    assert!(
        finished
            .stderr
            .contains("reloaded the organization allow-list: 1 organization, closing 1 connection"),
        "{}",
        finished.stderr
    );
}

// ---------------------------------------------------------------------------------
// The client subcommands against a secured serve

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_enqueue_with_tokens() {
    let server = TestServer::with(secured()).await;
    let base = server.base();
    let token = token_for("org-c");
    let dir = tempfile::tempdir().unwrap();
    let token_file = write(dir.path(), "token", &format!("  {token}\n"));
    let token_file = token_file.to_str().unwrap();
    for extra in [
        vec!["--token", token.as_str()],
        vec!["--token-file", token_file],
        vec!["--token", token.as_str(), "--token-in", "query"],
    ] {
        let mut argv = vec!["connect", "org-c", "--url", &base];
        argv.extend(extra.iter().copied());
        let output = run_cli(&argv).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{argv:?}: {}",
            stderr(&output)
        );
        // The token is never printed.
        assert!(!stdout(&output).contains(&token) && !stderr(&output).contains(&token));
    }
    let output = run_cli_env(
        &["connect", "org-c", "--url", &base],
        &[("SYNCPROBE_TOKEN", &token)],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = run_cli(&["connect", "org-c", "--url", &base]).await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("HTTP 401 Unauthorized")
            && stderr(&output).contains("UNAUTHORIZED"),
        "{}",
        stderr(&output)
    );

    let output = run_cli(&[
        "enqueue",
        "org-c",
        "--url",
        &base,
        "--count",
        "2",
        "--wait",
        "--token-file",
        token_file,
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // A token for another organization: the upgrade of --wait is refused.
    let output = run_cli(&[
        "enqueue",
        "org-c",
        "--url",
        &base,
        "--count",
        "1",
        "--wait",
        "--token",
        &token_for("org-else"),
    ])
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("HTTP 403"), "{}", stderr(&output));
    // Without --wait the REST refusal is the credentials' exit code too.
    let output = run_cli(&["enqueue", "org-c", "--url", &base, "--count", "1"]).await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sync_with_a_token() {
    let server = TestServer::with(secured()).await;
    let token = token_for("org-w");
    let mut running = spawn_cli(&[
        "watch-sync",
        "org-w",
        "--url",
        &server.base(),
        "--token",
        &token,
        "--count",
        "1",
        "--json",
    ]);
    running.wait_for_connected().await;
    publish_as(&server, &token, "org-w", "watched").await;
    let finished = running.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let events = data_of(&finished.records, "event");
    assert_eq!(events.last().unwrap()["pfaId"], "watched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_passes_with_a_token_and_fails_clearly_without() {
    let server = TestServer::with(secured()).await;
    let base = server.base();
    let output = run_cli(&[
        "smoke",
        "org-smoke",
        "--url",
        &base,
        "--token",
        &token_for("org-smoke"),
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let summary: syncprobe::report::smoke::SmokeSummary = summary_of(&records(&output));
    assert!(summary.ok);
    assert!(
        summary
            .steps
            .iter()
            .all(|s| s.status == syncprobe::report::smoke::StepStatus::Passed),
        "{:?}",
        summary.steps
    );
    let output = run_cli(&["smoke", "org-smoke", "--url", &base]).await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("smoke failed at step connect"), "{err}");
    assert!(
        err.contains("HTTP 401") && err.contains("a token is required"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_with_a_token() {
    let server = TestServer::with(secured()).await;
    let output = run_cli(&[
        "load",
        "--url",
        &server.base(),
        "--token",
        &token_for("org-load"),
        "--org",
        "org-load",
        "--connections",
        "5",
        "--events",
        "5",
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: syncprobe::report::load::LoadReport = summary_of(&records(&output));
    assert_eq!(report.summary.connections_opened, 5);
    assert_eq!(report.summary.frames_delivered, 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_mints_what_serve_accepts() {
    let server = TestServer::with(secured()).await;
    let output = run_cli(&[
        "token", "--secret", SECRET, "--org", "org-t", "--ttl", "10m",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let token = stdout(&output);
    assert_eq!(token.lines().count(), 1, "{token:?}");
    let token = token.trim();
    let output = run_cli(&[
        "connect",
        "org-t",
        "--url",
        &server.base(),
        "--token",
        token,
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // Not for another organization.
    let output = run_cli(&[
        "connect",
        "org-u",
        "--url",
        &server.base(),
        "--token",
        token,
    ])
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));

    // The secret from the environment, as `serve` reads it; --json.
    let output = run_cli_env(
        &["token", "--org", "org-t", "--org", "org-u", "--json"],
        &[("SYNCPROBE_JWT_SECRET", SECRET)],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let summary: syncprobe::report::token::TokenSummary = summary_of(&records(&output));
    assert_eq!(summary.claims["org"], json!(["org-t", "org-u"]));
    assert_eq!(summary.algorithm, "HS256");
    let exp = summary.claims["exp"].as_u64().unwrap();
    assert!(exp.abs_diff(now() + 3600) <= 2, "{exp}");
    let output = run_cli(&[
        "connect",
        "org-u",
        "--url",
        &server.base(),
        "--token",
        &summary.token,
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let output = run_cli(&["token", "--secret", SECRET]).await;
    assert_eq!(output.status.code(), Some(2), "--org is required");
    let output = run_cli(&["token", "--org", "o"]).await;
    assert_eq!(output.status.code(), Some(2), "a secret is required");
    let output = run_cli(&["token", "--help"]).await;
    assert!(stdout(&output).contains("development and CI"));
}
