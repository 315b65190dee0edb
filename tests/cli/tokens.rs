//! The original backend's tokens against `serve` over real sockets and HTTP: the
//! three claim shapes on upgrades and on the REST API, `perm_Sync` on write-sync,
//! `serviceStatus`, the original's error bodies; `token --claims pfa|ids` minting
//! what the original issues; and `token inspect`, one test per exit code.

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use syncprobe::report::token::TokenInspection;
use tokio::io::AsyncWriteExt;

use super::security::{
    Answer, EXPIRED, INVALID, NO_ACCESS, NO_TOKEN, SECRET, assert_refusal, bearer, call, metric,
    now, open, refused, secured, sign, sign_with,
};
use super::support::*;

/// The permission flags of an `organizations[]` entry.
fn flags(granted: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for p in ["perm_Read", "perm_Sync", "perm_Delete"] {
        map.insert(p.into(), json!(granted.contains(&p)));
    }
    Value::Object(map)
}

/// The original backend's payload for `orgs`, each with `granted` flags (`None`:
/// an entry without `permissions`).
fn pfa(orgs: &[&str], granted: Option<&[&str]>, status: &str, exp: u64) -> String {
    let entries: Vec<Value> = orgs
        .iter()
        .map(|org| {
            let mut entry = json!({"organizationId": org, "organizationCode": org.to_uppercase(), "role": "member"});
            if let Some(granted) = granted {
                entry["permissions"] = flags(granted);
            }
            entry
        })
        .collect();
    sign(json!({
        "userId": "u-1", "username": "ana", "email": null, "authProvider": "local",
        "serviceStatus": status, "organizations": entries, "iat": now(), "exp": exp,
    }))
}

fn pfa_for(org: &str, granted: &[&str]) -> String {
    pfa(&[org], Some(granted), "active", now() + 300)
}

/// The older middleware's payload.
fn ids(orgs: &[&str], role: &str) -> String {
    sign(
        json!({"userId": "u-2", "username": "bo", "role": role, "organizationIds": orgs, "exp": now() + 300}),
    )
}

const SYNC_REQUIRED: Answer = (403, "FORBIDDEN", "Sync permission required");
const INACTIVE: Answer = (403, "FORBIDDEN", "Account is not active");

/// POST write-sync for `org` with `token`: status and body.
async fn write_sync(server: &TestServer, token: Option<&str>, org: &str) -> (u16, Value) {
    let body = json!({"organizationId": org, "count": 1});
    let (status, _, answer) = call(
        "POST",
        &server.http("/api/pems/write-sync"),
        token,
        None,
        Some(body),
    )
    .await;
    (status, answer)
}

#[tokio::test]
async fn each_shape_opens_sockets_of_the_organizations_it_lists_only() {
    let server = TestServer::with(secured()).await;
    let header = |t: &str| bearer(t);
    let cases: Vec<(&str, String, &str, Option<&str>)> = vec![
        // (case, token, an organization it allows, one it does not)
        (
            "pfa",
            pfa_for("org-a", &["perm_Read", "perm_Sync"]),
            "org-a",
            Some("org-b"),
        ),
        (
            "pfa without perm_Sync",
            pfa_for("org-a", &["perm_Read"]),
            "org-a",
            Some("org-b"),
        ),
        (
            "pfa without permissions",
            pfa(&["org-a", "org-c"], None, "active", now() + 300),
            "org-c",
            Some("org-b"),
        ),
        (
            "ids",
            ids(&["org-a", "org-d"], "user"),
            "org-d",
            Some("org-b"),
        ),
        ("ids admin", ids(&[], "admin"), "org-anything", None),
    ];
    for (case, token, allowed, other) in cases {
        open(
            &server.sync_url(allowed),
            &[("authorization", &header(&token))],
        )
        .await;
        // Browsers: the token query parameter, same rules.
        open(&format!("{}?token={token}", server.sync_url(allowed)), &[]).await;
        if let Some(other) = other {
            let (status, body, _) = refused(
                &server.sync_url(other),
                &[("authorization", &header(&token))],
            )
            .await;
            assert_refusal(case, (status, &body), NO_ACCESS, &format!("{other:?}"));
        }
    }
    // A suspended account is refused on the upgrade too.
    let suspended = pfa(&["org-a"], Some(&["perm_Sync"]), "suspended", now() + 300);
    let (status, body, _) = refused(
        &server.sync_url("org-a"),
        &[("authorization", &header(&suspended))],
    )
    .await;
    assert_refusal("suspended", (status, &body), INACTIVE, "\"suspended\"");
    // An expired token of the original shape.
    let expired = pfa(&["org-a"], Some(&["perm_Sync"]), "active", now() - 60);
    let (status, body, _) = refused(
        &server.sync_url("org-a"),
        &[("authorization", &header(&expired))],
    )
    .await;
    assert_refusal("expired", (status, &body), EXPIRED, "expired");
    // Entries without an organizationId are not a shape serve accepts.
    let odd = sign(json!({"organizations": [{"organizationCode": "A"}], "exp": now() + 60}));
    let (status, body, _) = refused(
        &server.sync_url("org-a"),
        &[("authorization", &header(&odd))],
    )
    .await;
    assert_refusal(
        "no organizationId",
        (status, &body),
        NO_ACCESS,
        "organizationId",
    );
}

#[tokio::test]
async fn write_sync_needs_perm_sync_when_the_token_carries_permissions() {
    let server = TestServer::with(secured()).await;
    let allowed: Vec<(&str, String)> = vec![
        (
            "pfa with perm_Sync",
            pfa_for("org-w", &["perm_Read", "perm_Sync"]),
        ),
        (
            "pfa entry without permissions",
            pfa(&["org-w"], None, "active", now() + 300),
        ),
        ("ids", ids(&["org-w"], "user")),
        ("ids admin", ids(&[], "admin")),
        ("simple", sign(json!({"org": "org-w", "exp": now() + 60}))),
    ];
    for (case, token) in &allowed {
        let (status, body) = write_sync(&server, Some(token), "org-w").await;
        assert_eq!(
            (status, body["queuedCount"].as_u64()),
            (200, Some(1)),
            "{case}: {body}"
        );
    }

    let read_only = pfa_for("org-w", &["perm_Read"]);
    let (status, body) = write_sync(&server, Some(&read_only), "org-w").await;
    assert_refusal("no perm_Sync", (status, &body), SYNC_REQUIRED, "perm_Sync");
    // Permissions are per organization: perm_Sync in another does not count.
    let mixed = sign(json!({
        "organizations": [
            {"organizationId": "org-w", "permissions": flags(&["perm_Read"])},
            {"organizationId": "org-x", "permissions": flags(&["perm_Sync"])},
        ],
        "exp": now() + 60,
    }));
    let (status, body) = write_sync(&server, Some(&mixed), "org-w").await;
    assert_refusal(
        "perm_Sync elsewhere",
        (status, &body),
        SYNC_REQUIRED,
        "\"org-w\"",
    );
    assert_eq!(write_sync(&server, Some(&mixed), "org-x").await.0, 200);
    // The organization is checked first, as the original does.
    let (status, body) = write_sync(&server, Some(&read_only), "org-other").await;
    assert_refusal(
        "other organization",
        (status, &body),
        NO_ACCESS,
        "\"org-other\"",
    );
    assert!(metric(&server, "errors", "permission_denied").await >= 2);

    // Reading needs no perm_Sync: sync-status and the socket are open to the same token.
    let status_url = server.http("/api/pems/sync-status?organizationId=org-w");
    assert_eq!(
        call("GET", &status_url, Some(&read_only), None, None)
            .await
            .0,
        200
    );

    // The original's 401s on the REST API.
    let (status, body) = write_sync(&server, None, "org-w").await;
    assert_refusal("missing", (status, &body), NO_TOKEN, "Bearer");
    let expired = pfa(&["org-w"], Some(&["perm_Sync"]), "active", now() - 60);
    let (status, body) = write_sync(&server, Some(&expired), "org-w").await;
    assert_refusal("expired", (status, &body), EXPIRED, "expired");
    let forged = sign_with(
        &json!({"org": "org-w", "exp": now() + 60}),
        b"not the secret",
    );
    let (status, body) = write_sync(&server, Some(&forged), "org-w").await;
    assert_refusal("forged", (status, &body), INVALID, "signature");
    for status in ["suspended", "locked"] {
        let token = pfa(&["org-w"], Some(&["perm_Sync"]), status, now() + 300);
        let (code, body) = write_sync(&server, Some(&token), "org-w").await;
        assert_refusal(status, (code, &body), INACTIVE, status);
    }
    assert_eq!(metric(&server, "errors", "account_inactive").await, 2);
}

/// The claims of a JWT, decoded.
fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `syncprobe token ARGS --secret SECRET`: the token.
async fn minted(args: &[&str]) -> String {
    let mut argv = vec!["token", "--secret", SECRET];
    argv.extend_from_slice(args);
    let output = run_cli(&argv).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {}",
        stderr(&output)
    );
    stdout(&output).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_pfa_tokens_have_the_original_shape_and_serve_accepts_them() {
    let server = TestServer::with(secured()).await;
    let token = minted(&["--claims", "pfa", "--org", "org-rio", "--user", "u-9"]).await;
    let claims = payload(&token);
    let keys: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "userId",
            "username",
            "email",
            "authProvider",
            "serviceStatus",
            "organizations",
            "iat",
            "exp"
        ]
    );
    assert_eq!(
        (
            &claims["userId"],
            &claims["username"],
            &claims["email"],
            &claims["authProvider"],
            &claims["serviceStatus"]
        ),
        (
            &json!("u-9"),
            &json!("u-9"),
            &Value::Null,
            &json!("local"),
            &json!("active")
        )
    );
    let orgs = claims["organizations"].as_array().unwrap();
    assert_eq!(orgs.len(), 1);
    let entry = orgs[0].as_object().unwrap();
    let entry_keys: Vec<&str> = entry.keys().map(String::as_str).collect();
    assert_eq!(
        entry_keys,
        ["organizationId", "organizationCode", "role", "permissions"]
    );
    assert_eq!(
        (&entry["organizationId"], &entry["organizationCode"]),
        (&json!("org-rio"), &json!("RIO"))
    );
    let permissions = entry["permissions"].as_object().unwrap();
    assert_eq!(permissions.len(), 16, "{permissions:?}");
    assert!(permissions.values().all(Value::is_boolean));
    let granted: Vec<&str> = permissions
        .iter()
        .filter(|(_, v)| **v == json!(true))
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(granted, ["perm_Read", "perm_Sync"]);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );

    // serve takes it: the socket and write-sync.
    let output = run_cli(&[
        "connect",
        "org-rio",
        "--url",
        &server.base(),
        "--token",
        &token,
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(write_sync(&server, Some(&token), "org-rio").await.0, 200);

    // --permission replaces the defaults: without perm_Sync, write-sync is refused.
    let read_only = minted(&[
        "--claims",
        "pfa",
        "--org",
        "org-rio",
        "--permission",
        "perm_Read",
    ])
    .await;
    let (status, body) = write_sync(&server, Some(&read_only), "org-rio").await;
    assert_refusal(
        "minted read-only",
        (status, &body),
        SYNC_REQUIRED,
        "perm_Sync",
    );
    // --service-status suspended: refused on the upgrade.
    let suspended = minted(&[
        "--claims",
        "pfa",
        "--org",
        "org-rio",
        "--service-status",
        "suspended",
    ])
    .await;
    let output = run_cli(&[
        "connect",
        "org-rio",
        "--url",
        &server.base(),
        "--token",
        &suspended,
    ])
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Account is not active"),
        "{}",
        stderr(&output)
    );

    // The older shape: organizationIds, role admin for '*'.
    let admin = minted(&["--claims", "ids", "--org", "*"]).await;
    assert_eq!(payload(&admin)["role"], "admin");
    assert_eq!(write_sync(&server, Some(&admin), "org-any").await.0, 200);
    let listed = minted(&["--claims", "ids", "--org", "org-a", "--org", "org-b"]).await;
    assert_eq!(
        payload(&listed)["organizationIds"],
        json!(["org-a", "org-b"])
    );
    assert_eq!(write_sync(&server, Some(&listed), "org-c").await.0, 403);
}

#[tokio::test]
async fn shape_flags_out_of_place_are_usage_errors() {
    for args in [
        &["--org", "o", "--permission", "perm_Sync"][..],
        &["--org", "o", "--claims", "pfa", "--permission", "perm_Fly"],
        &[
            "--org",
            "o",
            "--claims",
            "ids",
            "--service-status",
            "locked",
        ],
        &["--org", "o", "--claims", "pfa", "--service-status", "gone"],
        &["--org", "o", "--user", "u"],
        &["--org", "*", "--claims", "pfa"],
        &["--org", "o", "--claims", "jwt"],
    ] {
        let mut argv = vec!["token", "--secret", "s"];
        argv.extend_from_slice(args);
        let output = run_cli(&argv).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // Mint flags before `inspect` are refused, not ignored.
    let token = minted(&["--org", "o"]).await;
    let output = run_cli(&["token", "--org", "o", "inspect", &token]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--org"), "{}", stderr(&output));
}

/// `syncprobe token inspect ARGS`, with `stdin` piped in when given.
async fn inspect(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncprobe"));
    command
        .args(["token", "inspect"])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("SYNCPROBE_TOKEN")
        .env_remove("SYNCPROBE_JWT_SECRET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).await.unwrap();
    }
    drop(pipe);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("token inspect did not finish in time")
        .unwrap()
}

/// Asserts the exit code, that neither the token nor its signature is printed,
/// and returns the JSON inspection (run again with --json) when there is one.
async fn inspected(token: &str, org: Option<&str>, code: i32) -> (String, Option<TokenInspection>) {
    let mut args = vec![token];
    if let Some(org) = org {
        args.extend(["--org", org]);
    }
    let output = inspect(&args, None, &[]).await;
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(code), "{args:?}: {out}{err}");
    let signature = token.rsplit('.').next().unwrap_or(token);
    for text in [&out, &err] {
        assert!(!text.contains(token), "the token was printed: {text}");
        assert!(
            signature.len() < 8 || !text.contains(signature),
            "the signature was printed: {text}"
        );
    }
    args.push("--json");
    let output = inspect(&args, None, &[]).await;
    assert_eq!(output.status.code(), Some(code));
    let inspection = records(&output)
        .iter()
        .find(|r| r["type"] == "summary")
        .map(|r| typed::<TokenInspection>(&r["data"]));
    (out, inspection)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_inspect_exits_0_when_usable() {
    let token = pfa(
        &["org-rio", "org-sp"],
        Some(&["perm_Read", "perm_Sync"]),
        "active",
        now() + 3600,
    );
    let (out, inspection) = inspected(&token, Some("org-rio"), 0).await;
    for line in [
        "HS256",
        "pfa",
        "ana",
        "org-rio (ORG-RIO, member): perm_Read, perm_Sync",
        "expires in 59m",
        "✓ usable for org-rio",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    let inspection = inspection.unwrap();
    assert_eq!(
        (inspection.shape.as_deref(), inspection.usable),
        (Some("pfa"), true)
    );
    assert_eq!(inspection.organizations.len(), 2);
    assert_eq!(
        inspection.organizations[0].permissions,
        Some(vec!["perm_Read".to_string(), "perm_Sync".to_string()])
    );
    assert_eq!(inspection.user_id.as_deref(), Some("u-1"));
    assert!(inspection.expires_at.is_some() && inspection.issued_at.is_some());
    // Without --org: usable at all. The older shape's admin: every organization.
    inspected(&token, None, 0).await;
    let (out, inspection) = inspected(&ids(&[], "admin"), Some("org-x"), 0).await;
    assert!(out.contains("every organization"), "{out}");
    assert!(inspection.unwrap().all_organizations);
    // Usable for sockets but without perm_Sync: a note, still 0.
    let (out, _) = inspected(&pfa_for("org-rio", &["perm_Read"]), Some("org-rio"), 0).await;
    assert!(out.contains("lacks perm_Sync"), "{out}");

    // The token from stdin (`-`, with a copied `Bearer ` prefix) and from SYNCPROBE_TOKEN.
    let output = inspect(
        &["-", "--org", "org-sp"],
        Some(&format!("Bearer {token}\n")),
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = inspect(&["--org", "org-sp"], None, &[("SYNCPROBE_TOKEN", &token)]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_inspect_exits_1_and_says_why_when_unusable() {
    let expired = sign(json!({"org": "org-a", "exp": now() - 600}));
    let (out, inspection) = inspected(&expired, None, 1).await;
    assert!(
        out.contains("expired 10m") && out.contains("✗ not usable"),
        "{out}"
    );
    assert!(inspection.unwrap().problems[0].contains("expired"));

    let early = sign(json!({"org": "org-a", "exp": now() + 600, "nbf": now() + 300}));
    let (out, _) = inspected(&early, Some("org-a"), 1).await;
    assert!(out.contains("not valid yet"), "{out}");

    let elsewhere = pfa_for("org-a", &["perm_Sync"]);
    let (out, inspection) = inspected(&elsewhere, Some("org-b"), 1).await;
    assert!(
        out.contains("does not allow organization \"org-b\" (it allows: org-a)"),
        "{out}"
    );
    assert_eq!(inspection.unwrap().org.as_deref(), Some("org-b"));

    let suspended = pfa(&["org-a"], Some(&["perm_Sync"]), "locked", now() + 60);
    let (out, _) = inspected(&suspended, Some("org-a"), 1).await;
    assert!(out.contains("serviceStatus is \"locked\""), "{out}");

    let nothing = sign(json!({"sub": "x", "exp": now() + 60}));
    let (out, inspection) = inspected(&nothing, None, 1).await;
    assert!(out.contains("names no organization"), "{out}");
    assert_eq!(inspection.unwrap().shape, None);

    let forever = sign(json!({"org": "org-a"}));
    let (out, _) = inspected(&forever, None, 1).await;
    assert!(out.contains("has no exp"), "{out}");
}

#[tokio::test]
async fn token_inspect_exits_2_for_what_is_not_a_jwt() {
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    for (text, why) in [
        ("not-a-jwt".to_string(), "1 dot-separated part"),
        ("a.b".to_string(), "2 dot-separated parts"),
        ("%%%.e30.sig".to_string(), "header is not base64url"),
        (
            format!("{}.{}.sig", b64("{\"alg\":\"HS256\"}"), b64("[1,2]")),
            "claims are not a JSON object",
        ),
    ] {
        let output = inspect(&[&text], None, &[]).await;
        assert_eq!(output.status.code(), Some(2), "{text}");
        let err = stderr(&output);
        assert!(
            err.contains("not a JWT") && err.contains(why),
            "{text}: {err}"
        );
        assert!(!err.contains(&text), "the text was echoed: {err}");
    }
    // No token at all: neither an argument, nor stdin, nor SYNCPROBE_TOKEN.
    let output = inspect(&[], None, &[]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("SYNCPROBE_TOKEN"),
        "{}",
        stderr(&output)
    );
    let output = inspect(&["-"], Some(""), &[]).await;
    assert_eq!(output.status.code(), Some(2));
}
