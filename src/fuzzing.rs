//! Fuzz entry points: what the server does with untrusted input, and the expectation
//! parser. Compiled for tests and with the `fuzzing` feature only; `fuzz/` (cargo-fuzz,
//! nightly) enables it and calls these functions:
//!
//! ```text
//! cargo +nightly fuzz run frames        -- -max_total_time=60
//! cargo +nightly fuzz run rest_bodies   -- -max_total_time=60
//! cargo +nightly fuzz run expect_parser -- -max_total_time=60
//! cargo +nightly fuzz run load_wire     -- -max_total_time=60
//! ```
//!
//! and the tests at the bottom run them on seeded random input in `cargo test`, so CI
//! exercises them without nightly. Each function panics on a broken invariant, not
//! just on a crash: that is what makes a fuzzer find logic bugs.
//!
//! Raw bytes rarely make a JSON object with the right keys or a pattern with the
//! right words, so each target also reads a structured input out of the same bytes
//! with `arbitrary::Unstructured` (the [`Arbitrary`] impls below): a fuzzer then
//! explores both the parsers' edges and the logic behind.

use std::sync::Arc;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use futures_util::FutureExt;
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket, WebSocketConfig};

use crate::expect::{Matcher, Mode, Pattern, Status};
use crate::protocol::ServerFrame;
use crate::server::bus::{BusFuture, EventBus, Resume};
use crate::server::error::Rejection;
use crate::server::in_process::{BusConfig, InProcessBus};
use crate::server::metrics::Metrics;
use crate::server::queue::{Queue, WorkerConfig};
use crate::server::routes::{self, MAX_ITEMS, MAX_PUBLISH, MAX_RATE};
use crate::server::security::{
    self, ClientFrame, Closing, JwtConfig, OriginPattern, RateLimit, Security,
};
use crate::server::{Config, Shared, ws};

/// The message limit the frame target configures: small, so inputs reach it.
const FUZZ_MAX_MESSAGE: usize = 256;
/// The HS256 secret the frame target signs its own tokens with.
const FUZZ_SECRET: &[u8] = b"fuzz-secret";
/// Most items a write-sync input may queue for real (bigger plans are only validated).
const ENQUEUE_LIMIT: usize = 32;
/// Deepest nesting of the JSON values the REST target builds.
const MAX_DEPTH: u32 = 3;

// ---------------------------------------------------------------------------------
// Structured inputs

/// Up to `max` bytes of the input, as (lossy) text.
fn text(u: &mut Unstructured, max: usize) -> arbitrary::Result<String> {
    let len = u.int_in_range(0..=max)?;
    let bytes = u.bytes(len.min(u.len()))?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// A number around the edges of the REST bodies' ranges.
fn number(u: &mut Unstructured) -> arbitrary::Result<Value> {
    Ok(match u.choose_index(8)? {
        0 => json!(0),
        1 => json!(u8::arbitrary(u)?),
        2 => json!(-i64::from(u8::arbitrary(u)?)),
        3 => json!(u64::MAX),
        4 => json!(10_001),
        5 => json!(1.5),
        6 => json!(f64::from(u8::arbitrary(u)?) / 7.0),
        _ => json!(1e300),
    })
}

/// A JSON value shaped like what the REST bodies hold.
fn value(u: &mut Unstructured, depth: u32) -> arbitrary::Result<Value> {
    const WORDS: [&str; 12] = [
        "org-rio",
        "",
        "   ",
        "success",
        "conflict",
        "failed",
        "retry-then-success",
        "mixed",
        "SYNC_SUCCESS",
        "SYNC_CONFLICT",
        "CONNECTED",
        "SYNC_X",
    ];
    Ok(match u.choose_index(9)? {
        0 => Value::Null,
        1 => Value::Bool(bool::arbitrary(u)?),
        2 => number(u)?,
        3 => Value::from(*u.choose(&WORDS)?),
        4 => Value::from(text(u, 40)?),
        5 if depth < MAX_DEPTH => {
            let n = u.int_in_range(0..=4)?;
            Value::Array(
                (0..n)
                    .map(|_| value(u, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        6 if depth < MAX_DEPTH => Value::Object(object(u, depth + 1)?),
        7 => {
            let n = u.int_in_range(0..=3)?;
            Value::Array(
                (0..n)
                    .map(|_| text(u, 12).map(Value::from))
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => Value::from(text(u, 8)?),
    })
}

/// A JSON object over the keys of the REST bodies and of event details.
fn object(u: &mut Unstructured, depth: u32) -> arbitrary::Result<Map<String, Value>> {
    const KEYS: [&str; 16] = [
        "organizationId",
        "modificationIds",
        "pfaIds",
        "count",
        "priority",
        "outcome",
        "type",
        "pfaId",
        "details",
        "ratePerSec",
        "newVersion",
        "conflictId",
        "conflictingFields",
        "error",
        "retryCount",
        "x",
    ];
    let n = u.int_in_range(0..=7)?;
    (0..n)
        .map(|_| Ok((u.choose(&KEYS)?.to_string(), value(u, depth)?)))
        .collect()
}

/// JWT claims around the edges the verifier must get right.
fn claims(u: &mut Unstructured) -> arbitrary::Result<Map<String, Value>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let exp = [
        Value::Null,
        json!(now + 60),
        json!(now - 60),
        json!(now),
        json!(u64::MAX),
        json!(1e300),
        json!(-5),
        json!("soon"),
        json!(now as f64 + 0.5),
    ];
    let nbf = [Value::Null, json!(now + 3600), json!(now - 10), json!("x")];
    let org = [
        Value::Null,
        json!("org-a"),
        json!("*"),
        json!(["a", "*"]),
        json!(["a", "b"]),
        json!([1]),
        json!({}),
        json!([]),
    ];
    let mut claims = Map::new();
    for (name, choices) in [("exp", &exp[..]), ("nbf", &nbf[..]), ("org", &org[..])] {
        let value = u.choose(choices)?.clone();
        // Null means "left out", mostly; now and then an explicit null.
        if !value.is_null() || u.ratio(1, 4)? {
            claims.insert(name.to_string(), value);
        }
    }
    if u.ratio(1, 4)? {
        claims.insert("sub".into(), value(u, MAX_DEPTH - 1)?);
    }
    Ok(claims)
}

/// Where an upgrade carries its token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum TokenPlace {
    #[default]
    Header,
    Query,
    Nowhere,
}

/// The inputs of a sync socket upgrade, as an attacker controls them.
#[derive(Clone, Debug, Default)]
struct Upgrade {
    query: String,
    org: String,
    origin: String,
    /// Arbitrary text presented as a token.
    token: String,
    /// Claims the target signs with the right secret.
    claims: Map<String, Value>,
    /// Upgrade to `org` (`None`), or to one of `org-a`, `org-b`, `org-c` (only the
    /// first two are on the allow-list).
    listed_org: Option<u8>,
    /// Present the signed claims rather than `token`.
    signed: bool,
    place: TokenPlace,
}

impl<'a> Arbitrary<'a> for Upgrade {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Upgrade {
            query: text(u, 64)?,
            org: text(u, 140)?,
            origin: text(u, 64)?,
            token: text(u, 200)?,
            claims: claims(u)?,
            listed_org: match u.choose_index(4)? {
                0 => None,
                n => Some(n as u8 - 1),
            },
            signed: bool::arbitrary(u)?,
            place: *u.choose(&[TokenPlace::Header, TokenPlace::Query, TokenPlace::Nowhere])?,
        })
    }
}

/// An expectation pattern and an event stream to match it against.
#[derive(Debug)]
struct Expectation {
    raw: String,
    /// A pattern assembled from the language's words.
    built: String,
    events: Vec<String>,
}

impl<'a> Arbitrary<'a> for Expectation {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        const WORDS: [&str; 24] = [
            "QUEUED",
            "PROCESSING",
            "SUCCESS",
            "CONFLICT",
            "FAILED",
            "TERMINAL",
            "CONNECTED",
            "_",
            "sync_queued",
            "(",
            ")",
            "|",
            "+",
            "*",
            "?",
            "{2}",
            "{1,3}",
            "{0,}",
            "{1000}",
            "{3,1}",
            ",",
            " ",
            "{",
            "(_)",
        ];
        const TYPES: [&str; 7] = [
            "SYNC_QUEUED",
            "SYNC_PROCESSING",
            "SYNC_SUCCESS",
            "SYNC_CONFLICT",
            "SYNC_FAILED",
            "CONNECTED",
            "HEARTBEAT",
        ];
        let raw = text(u, 200)?;
        let words = u.int_in_range(0..=23)?;
        let built = (0..words)
            .map(|_| u.choose(&WORDS).copied())
            .collect::<Result<Vec<_>, _>>()?
            .join(" ");
        let n = u.int_in_range(0..=31)?;
        let events = (0..n)
            .map(|_| u.choose(&TYPES).map(|t| t.to_string()))
            .collect::<Result<_, _>>()?;
        Ok(Expectation { raw, built, events })
    }
}

// ---------------------------------------------------------------------------------
// frames

/// The server's handling of untrusted socket input: the upgrade's inputs (resume
/// query, organization id, Origin, token and its claims) and the client's frames,
/// parsed by the WebSocket layer with the server's limits and judged by the
/// session's rules; plus the client's parser of server frames.
pub fn frames(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(upgrade) = Upgrade::arbitrary(&mut u) else {
        return;
    };
    frames_of(&upgrade, u.take_rest());
}

/// The frames target on its structured input and the client's bytes.
fn frames_of(upgrade: &Upgrade, wire: &[u8]) {
    upgrade_inputs(upgrade);
    let signed = tokens(upgrade);
    let org = admission(upgrade, &signed);

    // CONNECTED for any organization id is a frame a strict client accepts.
    let bus = InProcessBus::with_own_hub(
        BusConfig {
            history: 4,
            ..BusConfig::default()
        },
        crate::server::fanout::Limits {
            frames: 4,
            bytes: usize::MAX,
        },
        Arc::new(Metrics::new()),
    );
    let resume = Resume {
        since: 0,
        epoch: None,
    };
    let connected = bus.subscribe_captured(&org, Some(&resume)).0;
    let text = serde_json::to_string(&ServerFrame::Connected(connected.connected))
        .expect("CONNECTED serialises");
    ServerFrame::parse(&text).unwrap_or_else(|e| panic!("our CONNECTED is invalid: {e}: {text}"));

    client_frames(wire);

    // The client's parser of server frames: whatever it accepts survives a round trip.
    let text = String::from_utf8_lossy(wire);
    if let Ok(frame) = ServerFrame::parse(&text) {
        let again = serde_json::to_string(&frame).expect("frames serialise");
        let reparsed = ServerFrame::parse(&again).unwrap_or_else(|e| {
            panic!("{text:?} parsed, its serialisation {again:?} did not: {e}")
        });
        assert_eq!(reparsed.kind(), frame.kind());
        assert_eq!(reparsed.organization_id(), frame.organization_id());
    }
}

/// The resume query, the organization syntax and the Origin patterns.
fn upgrade_inputs(upgrade: &Upgrade) {
    let Upgrade {
        query, org, origin, ..
    } = upgrade;
    if let Ok(Some(resume)) = ws::parse_resume(query) {
        assert!(query.contains("since"), "{query:?} resumed without since");
        let _ = resume.since;
    }

    // Organization syntax: what passes is what the rule says.
    if security::check_org_syntax(org).is_ok() {
        assert!(
            (1..=security::MAX_ORG_ID_LEN).contains(&org.len()),
            "{org:?}"
        );
        assert!(
            org.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b)),
            "{org:?}"
        );
    }

    // Origin patterns: a pattern matches its own text; a wildcard never matches its
    // bare domain.
    if let Ok(pattern) = origin.parse::<OriginPattern>() {
        let _ = pattern.matches(origin);
    }
    for pattern in ["https://app.example.com", "https://*.example.com"] {
        let pattern: OriginPattern = pattern.parse().expect("valid pattern");
        if pattern.matches(origin) {
            let url = url::Url::parse(origin.trim()).expect("a matching origin parses");
            assert_eq!(url.scheme(), "https", "{origin:?}");
            assert!(
                url.host_str()
                    .is_some_and(|h| h.to_ascii_lowercase().ends_with("example.com")),
                "{origin:?}"
            );
        }
    }
}

/// Tokens: arbitrary text never verifies; claims we sign ourselves verify exactly
/// when their exp is in the future, and the grant says what their org claim says.
/// Returns the signed token.
fn tokens(upgrade: &Upgrade) -> String {
    let Upgrade { token, claims, .. } = upgrade;
    let mut jwt = JwtConfig::hs256(FUZZ_SECRET).expect("a secret");
    jwt.leeway = Duration::ZERO;
    assert!(
        security::jwt::verify(&jwt, token).is_err(),
        "an arbitrary token verified: {token:?}"
    );
    let signed = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(FUZZ_SECRET),
    )
    .expect("claims sign");
    if let Ok(grant) = security::jwt::verify(&jwt, &signed) {
        assert!(
            claims.contains_key("exp"),
            "no exp, yet verified: {claims:?}"
        );
        assert!(
            grant.expires_at > std::time::SystemTime::now() - Duration::from_secs(1),
            "{claims:?}"
        );
        match &claims["org"] {
            Value::String(o) => assert!(grant.allows(o)),
            Value::Array(orgs) => {
                for o in orgs {
                    assert!(grant.allows(o.as_str().expect("verified orgs are strings")));
                }
            }
            other => panic!("org claim {other:?} verified"),
        }
    }
    signed
}

/// The whole admission of an upgrade, on a server with JWT and an allow-list: it
/// admits exactly a verified token allowing a well-formed, listed organization.
/// Returns the organization of the upgrade.
fn admission(upgrade: &Upgrade, signed: &str) -> String {
    let state = admission_server();
    let org = match upgrade.listed_org {
        None => upgrade.org.clone(),
        Some(n) => format!("org-{}", (b'a' + n) as char),
    };
    let presented = if upgrade.signed {
        signed
    } else {
        &upgrade.token
    };
    let mut headers = axum::http::HeaderMap::new();
    let mut query = upgrade.query.clone();
    match upgrade.place {
        TokenPlace::Header => {
            if let Ok(value) = axum::http::HeaderValue::from_str(&format!("Bearer {presented}")) {
                headers.insert(axum::http::header::AUTHORIZATION, value);
            }
        }
        TokenPlace::Query => query.push_str(&format!("&token={presented}")),
        TokenPlace::Nowhere => {}
    }
    if let Ok(admission) = state.security.admit(&headers, Some(&query), &org) {
        assert!(security::check_org_syntax(&org).is_ok(), "{org:?} admitted");
        assert!(
            ["org-a", "org-b"].contains(&org.as_str()),
            "{org:?} admitted"
        );
        let grant = admission.grant.expect("JWT is configured");
        assert!(grant.allows(&org));
        assert!(admission.permit.is_some() && admission.refused.is_none());
    }
    org
}

/// A server state with JWT (the fuzz secret) and the allow-list {org-a, org-b}, built
/// once: the admission logic needs no runtime.
fn admission_server() -> &'static Shared {
    static STATE: std::sync::OnceLock<crate::server::AppState> = std::sync::OnceLock::new();
    STATE.get_or_init(|| {
        let mut jwt = JwtConfig::hs256(FUZZ_SECRET).expect("a secret");
        jwt.leeway = Duration::ZERO;
        let config = Config {
            jwt: Some(jwt),
            org_allow_list: Some(security::OrgAllowList {
                path: "/nonexistent".into(),
                orgs: ["org-a", "org-b"].map(String::from).into(),
            }),
            ..Config::default()
        };
        crate::server::app(config).0
    })
}

/// In-memory socket: reads the fuzz bytes, swallows writes.
struct Wire<'a> {
    input: &'a [u8],
}

impl std::io::Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl std::io::Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes from a client, through the WebSocket layer configured as the server
/// configures it, into the session's rules.
fn client_frames(wire: &[u8]) {
    let config = Config {
        max_message_size: FUZZ_MAX_MESSAGE,
        // Timers need a runtime; the rate and size rules do not.
        idle_timeout: Duration::ZERO,
        rate_limit: Some(RateLimit {
            per_second: 1,
            burst: 8,
        }),
        ..Config::default()
    };
    let rules = Security::new(&config, Arc::new(Metrics::new()));
    let mut guard = rules.session_guard("org-fuzz", None);
    let mut socket = WebSocket::from_raw_socket(
        Wire { input: wire },
        Role::Server,
        Some(
            WebSocketConfig::default()
                .max_message_size(Some(FUZZ_MAX_MESSAGE))
                .max_frame_size(Some(security::frame_limit(FUZZ_MAX_MESSAGE))),
        ),
    );
    let mut data_frames = 0;
    loop {
        let message = match socket.read() {
            Ok(message) => message,
            Err(error) => {
                if let Some(closing) = guard.read_error(&error) {
                    let Closing::TooBig { size, max, .. } = closing else {
                        panic!("a read error closed with {closing:?}");
                    };
                    assert!(size > max && max == FUZZ_MAX_MESSAGE, "{closing:?}");
                    assert_eq!(closing.code(), 1009);
                }
                return;
            }
        };
        let kind = match &message {
            Message::Text(text) => {
                // What a client sends is never trusted to be a protocol frame.
                let _ = ServerFrame::parse(text);
                ClientFrame::Data
            }
            Message::Binary(_) => ClientFrame::Data,
            Message::Ping(_) => ClientFrame::Ping,
            Message::Pong(_) => ClientFrame::Pong,
            Message::Close(_) => ClientFrame::Close,
            Message::Frame(_) => continue,
        };
        assert!(
            message.len() <= FUZZ_MAX_MESSAGE.max(125),
            "{} bytes passed",
            message.len()
        );
        let counted = matches!(kind, ClientFrame::Data | ClientFrame::Ping);
        match guard.client_frame(kind) {
            Ok(()) => data_frames += u32::from(counted),
            Err(Closing::RateLimited) => {
                // The burst of 8 is spent before the rate refuses anything (at 1/s,
                // nothing replenishes while one input runs).
                assert!(counted && data_frames >= 8, "refused after {data_frames}");
                return;
            }
            Err(other) => panic!("a client frame closed with {other:?}"),
        }
        if kind == ClientFrame::Close {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------
// rest_bodies

/// The REST validators on raw bytes and on structured JSON; every accepted body
/// becomes frames a strict client accepts.
pub fn rest_bodies(data: &[u8]) {
    rest_body(data);
    let mut u = Unstructured::new(data);
    // Each object takes at least a byte, so this ends.
    while !u.is_empty() {
        let Ok(body) = object(&mut u, 0) else {
            return;
        };
        rest_body(Value::Object(body).to_string().as_bytes());
    }
}

fn rest_body(body: &[u8]) {
    match routes::validate_write_sync(body) {
        Ok(plan) => {
            assert!(!plan.org.trim().is_empty());
            assert!(plan.priority <= 10);
            assert!(plan.items.len() as u64 <= MAX_ITEMS);
            if plan.items.len() <= ENQUEUE_LIMIT {
                let bus = Arc::new(InProcessBus::with_own_hub(
                    BusConfig {
                        history: ENQUEUE_LIMIT,
                        ..BusConfig::default()
                    },
                    crate::server::fanout::Limits {
                        frames: ENQUEUE_LIMIT,
                        bytes: usize::MAX,
                    },
                    Arc::new(Metrics::new()),
                ));
                let queue = Queue::new(
                    WorkerConfig {
                        workers: 1,
                        processing_time: Duration::ZERO,
                        max_retries: 0,
                        retry_base: Duration::ZERO,
                    },
                    bus.clone(),
                );
                let n = plan.items.len();
                let queued = queue
                    .enqueue(&plan.org, plan.priority, plan.items)
                    .now_or_never()
                    .expect("the in-process queue never waits")
                    .expect("the in-process bus never fails");
                assert_eq!(queued.len(), n);
                let resume = Resume {
                    since: 0,
                    epoch: None,
                };
                let replay = bus.subscribe_captured(&plan.org, Some(&resume)).0;
                assert_eq!(replay.replay.len(), n);
                for frame in &replay.replay {
                    let text = frame.text();
                    let parsed = ServerFrame::parse(text)
                        .unwrap_or_else(|e| panic!("SYNC_QUEUED is invalid: {e}: {text}"));
                    assert_eq!(parsed.kind(), "SYNC_QUEUED");
                }
            }
        }
        Err(rejection) => check_rejection(&rejection, body),
    }
    match routes::validate_publish(body) {
        Ok(publish) => {
            assert!((1..=MAX_PUBLISH).contains(&publish.count));
            assert!(publish.rate.is_finite() && (0.0..=MAX_RATE).contains(&publish.rate));
            assert_ne!(publish.draft.kind.as_str(), "CONNECTED");
            let bus = InProcessBus::with_own_hub(
                BusConfig {
                    history: 1,
                    ..BusConfig::default()
                },
                crate::server::fanout::Limits {
                    frames: 1,
                    bytes: usize::MAX,
                },
                Arc::new(Metrics::new()),
            );
            at_once(bus.publish(&publish.org, publish.draft));
            let resume = Resume {
                since: 0,
                epoch: None,
            };
            let replay = bus.subscribe_captured(&publish.org, Some(&resume)).0;
            let text = replay.replay[0].text();
            ServerFrame::parse(text).unwrap_or_else(|e| {
                panic!("an accepted publish made an invalid frame: {e}: {text}")
            });
        }
        Err(rejection) => check_rejection(&rejection, body),
    }
}

/// A call of the in-process bus, which never waits nor fails (so the targets need
/// no runtime).
fn at_once<T>(call: BusFuture<'_, T>) -> T {
    call.now_or_never()
        .expect("the in-process bus never waits")
        .expect("the in-process bus never fails")
}

fn check_rejection(rejection: &Rejection, body: &[u8]) {
    let shown = String::from_utf8_lossy(body);
    assert_eq!(rejection.status.as_u16(), 400, "{shown}");
    let answer = &rejection.body;
    assert_eq!(answer.error, "VALIDATION_ERROR", "{shown}");
    assert!(!answer.message.is_empty(), "{shown}");
    let details = answer
        .details
        .as_ref()
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no details for {shown}"));
    assert!(!details.is_empty(), "{shown}");
}

// ---------------------------------------------------------------------------------
// expect_parser

/// The expectation language: raw text and patterns built from its words, matched
/// against event streams in both modes.
pub fn expect_parser(data: &[u8]) {
    let Ok(Expectation { raw, built, events }) =
        Expectation::arbitrary(&mut Unstructured::new(data))
    else {
        return;
    };
    for text in [raw, built] {
        let Ok(pattern) = Pattern::parse(&text) else {
            continue;
        };
        assert_eq!(pattern.source(), text);
        let pattern = Arc::new(pattern);
        let mut strict = Matcher::new(&pattern, Mode::Strict);
        let mut loose = Matcher::new(&pattern, Mode::Subsequence);
        let mut strict_done = None;
        let mut loose_done = None;
        for (i, event) in events.iter().enumerate() {
            let before = (strict.status(), loose.status());
            let s = strict.push(event);
            let l = loose.push(event);
            // Final states stick.
            if before.0 != Status::Pending {
                assert_eq!(s, before.0);
            }
            if before.1 != Status::Pending {
                assert_eq!(l, before.1);
            }
            assert_ne!(l, Status::Failed, "subsequence matching never fails");
            if s == Status::Satisfied && strict_done.is_none() {
                strict_done = Some(i);
            }
            if l == Status::Satisfied && loose_done.is_none() {
                loose_done = Some(i);
            }
        }
        // A strict match is also a subsequence match, no later.
        if let Some(at) = strict_done {
            assert!(
                loose_done.is_some_and(|l| l <= at),
                "{text:?} on {events:?}: strict at {at}, subsequence {loose_done:?}"
            );
        }
        for matcher in [&strict, &loose] {
            let next = matcher.expected_next();
            if matcher.status() == Status::Satisfied {
                assert!(next.is_empty());
            }
            let _ = matcher.explain();
            assert_eq!(matcher.received().len(), events.len());
        }
    }
}

// ---------------------------------------------------------------------------------
// Hostile server frames, through the client's check and human rendering

/// Peer text at its worst: controls, escape sequences, bidi overrides, and now and
/// then a string longer than any column (65,536 characters once overflowed one).
fn hostile_text(u: &mut Unstructured) -> arbitrary::Result<String> {
    const NASTY: [&str; 8] = [
        "\r",
        "\u{1b}]52;c;aGk=\u{7}",
        "\u{1b}[2J",
        "\u{9b}31m",
        "\u{202e}",
        "\n",
        "\u{0}",
        "é✓",
    ];
    Ok(match u.choose_index(40)? {
        0 => "P".repeat(70_000),
        1..=8 => u.choose(&NASTY)?.to_string(),
        9..=20 => format!("pfa-{}{}", text(u, 8)?, u.choose(&NASTY)?),
        _ => text(u, 24)?,
    })
}

/// One frame as a hostile server might send it.
fn hostile_frame(u: &mut Unstructured) -> arbitrary::Result<String> {
    const TYPES: [&str; 8] = [
        "SYNC_QUEUED",
        "SYNC_PROCESSING",
        "SYNC_SUCCESS",
        "SYNC_CONFLICT",
        "SYNC_FAILED",
        "CONNECTED",
        "HEARTBEAT",
        "",
    ];
    if u.ratio(1, 8)? {
        return hostile_text(u);
    }
    let kind = if u.ratio(1, 6)? {
        hostile_text(u)?
    } else {
        u.choose(&TYPES)?.to_string()
    };
    let mut frame = json!({
        "type": kind,
        "pfaId": hostile_text(u)?,
        "organizationId": if u.ratio(1, 10)? { hostile_text(u)? } else { "o".into() },
        "timestamp": if u.ratio(1, 10)? { hostile_text(u)? } else { "2025-11-28T10:00:00.000Z".into() },
        "details": {"error": hostile_text(u)?, "retryCount": 3, "newVersion": 2,
                    "conflictId": hostile_text(u)?, "conflictingFields": [hostile_text(u)?]},
    });
    if u.ratio(1, 2)? {
        frame["seq"] = number(u)?;
    }
    Ok(frame.to_string())
}

/// Hostile server frames through the stream check (with and without a per-item
/// expectation), the expectation's explanation and the human renderers: nothing
/// panics, and no rendered line carries a raw control character or is longer than
/// its bound.
pub fn server_frames(data: &[u8]) {
    use crate::check::{CheckConfig, Expectation as Expect, StreamCheck};
    use crate::report::human::{self, EventStyle};
    use crate::report::watch::{self, Reached, WatchOutcome, WatchSummary};
    colored::control::set_override(false);
    let mut u = Unstructured::new(data);
    let Ok(count) = u.int_in_range(1..=12) else {
        return;
    };
    let Ok(frames) = (0..count)
        .map(|_| hostile_frame(&mut u))
        .collect::<arbitrary::Result<Vec<String>>>()
    else {
        return;
    };
    let per_item = u.ratio(1, 2).unwrap_or(false);
    let pattern = Arc::new(Pattern::parse("QUEUED PROCESSING+ TERMINAL").expect("parses"));
    let mut check = StreamCheck::new(CheckConfig {
        org: "o".into(),
        lenient: u.ratio(1, 2).unwrap_or(true),
        expect: Some(Expect {
            pattern,
            mode: Mode::Subsequence,
            per_item,
            min_items: 1,
        }),
        ..CheckConfig::default()
    });
    let connected = crate::protocol::Connected {
        organization_id: "o".into(),
        timestamp: crate::protocol::Timestamp::now(),
        seq: Some(0),
        epoch: Some("e".into()),
        history_truncated: None,
        extra: Map::new(),
    };
    check.on_connected(&connected, None);
    let mut rendered = String::new();
    for raw in &frames {
        let parsed = ServerFrame::parse(raw).ok();
        rendered.push_str(&human::event(raw, parsed.as_ref(), EventStyle::Line));
        rendered.push_str(&human::event(raw, parsed.as_ref(), EventStyle::Pretty));
        let at = std::time::SystemTime::now();
        rendered.push_str(&watch::event_line(
            raw,
            parsed.as_ref(),
            at,
            usize::MAX,
            true,
        ));
        rendered.push('\n');
        match check.on_frame(raw, std::time::SystemTime::now()) {
            Ok(outcome) => {
                for finding in &outcome.findings {
                    rendered.push_str(&human::warning(&finding.message()));
                }
            }
            Err(violation) => rendered.push_str(&human::warning(&violation.0)),
        }
    }
    rendered.push_str(&human::warning(&check.explain_unmet()));
    rendered.push_str(&watch::summary(&WatchSummary {
        outcome: WatchOutcome::Count,
        reached: Reached::Connected,
        duration_ms: 1.0,
        sessions: Vec::new(),
        check: check.summary(),
    }));
    for line in rendered.lines() {
        assert!(
            !line.chars().any(|c| c.is_control()
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')),
            "a raw control character reached the output: {line:?}"
        );
        assert!(
            line.chars().count() <= 2 * crate::text::MAX_LINE,
            "a line of {} characters",
            line.chars().count()
        );
    }
}

/// Hostile server bytes through the load client's own frame reader (`load::wire`),
/// cut into reads where the input says: nothing panics, the bytes it keeps between
/// reads stay within one frame of the limit, and how the reads cut the bytes changes
/// nothing (the same frames, the same verdict, as when they come in one read).
pub fn load_wire(data: &[u8]) {
    use crate::load::wire::{Decoder, Incoming};
    use std::ops::ControlFlow;
    const MAX: usize = 512;
    /// What a decoder saw: each frame, then how it ended.
    fn run(wire: &[u8], cuts: &[usize]) -> (Vec<String>, String) {
        let mut decoder = Decoder::new(Vec::new(), MAX);
        let mut seen = Vec::new();
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&wire.len())) {
            let end = cut.clamp(at, wire.len());
            let input = [decoder.partial(), &wire[at..end]].concat();
            at = end;
            let decoded = decoder.decode(&input, |frame| {
                seen.push(match frame {
                    Incoming::Text(t) => format!("text {t:?}"),
                    other => format!("{other:?}"),
                });
                ControlFlow::Continue(())
            });
            // The start of one frame at most: its header and up to MAX bytes.
            assert!(
                decoder.partial().len() <= MAX + 14,
                "{} bytes kept",
                decoder.partial().len()
            );
            match decoded {
                Err(violation) => return (seen, format!("violation: {violation}")),
                Ok(ControlFlow::Break(())) => return (seen, "closed".into()),
                Ok(ControlFlow::Continue(())) => {}
            }
        }
        (seen, format!("{} bytes kept", decoder.partial().len()))
    }
    let mut u = Unstructured::new(data);
    let Ok(cut_count) = u.int_in_range(0..=8usize) else {
        return;
    };
    let mut cuts: Vec<usize> = (0..cut_count)
        .map(|_| u.int_in_range(0..=u16::MAX as usize).unwrap_or(0))
        .collect();
    let wire = u.take_rest();
    cuts.iter_mut().for_each(|c| *c %= wire.len() + 1);
    cuts.sort_unstable();
    assert_eq!(
        run(wire, &cuts),
        run(wire, &[]),
        "the reads' cuts changed the outcome"
    );
}

#[cfg(test)]
mod tests {
    //! The fuzz targets on seeded random input: bounded, deterministic, stable Rust.
    use super::{Upgrade, frames_of};
    use rand::{Rng, RngExt, SeedableRng};
    use serde_json::json;

    const RUNS: usize = 3_000;

    fn run(target: fn(&[u8]), seed: u64, seeds: &[&[u8]]) {
        run_n(target, seed, seeds, RUNS);
    }

    fn run_n(target: fn(&[u8]), seed: u64, seeds: &[&[u8]], runs: usize) {
        for input in seeds {
            target(input);
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut buf = Vec::new();
        for _ in 0..runs {
            let len = rng.random_range(0..600);
            buf.resize(len, 0);
            rng.fill_bytes(&mut buf);
            target(&buf);
        }
    }

    /// A client frame, masked as clients must: FIN, `opcode`, the length, the key.
    fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![opcode | if fin { 0x80 } else { 0 }];
        match payload.len() {
            n @ 0..=125 => frame.push(0x80 | n as u8),
            n @ 126..=65535 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let key = [1, 2, 3, 4];
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        frame
    }

    /// An upgrade the admission accepts: a listed organization, a signed token
    /// allowing it.
    fn admitted() -> Upgrade {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({"exp": now + 60, "org": "org-a"});
        Upgrade {
            claims: claims.as_object().unwrap().clone(),
            listed_org: Some(0),
            signed: true,
            ..Upgrade::default()
        }
    }

    #[test]
    fn frames_on_random_input() {
        let text = client_frame(0x1, true, b"hello");
        let flood: Vec<u8> = (0..20).flat_map(|_| text.clone()).collect();
        let too_big = client_frame(0x2, true, &[7; 300]);
        let fragmented = [
            client_frame(0x1, false, &[b'a'; 200]),
            client_frame(0x0, true, &[b'b'; 200]),
        ]
        .concat();
        // Claims a 100 kB frame: refused from its header.
        let huge_header = client_frame(0x2, true, &[0; 100_000])[..14].to_vec();
        let ping_then_close = [
            client_frame(0x9, true, b"p"),
            client_frame(0x8, true, &[3, 232]),
        ]
        .concat();
        for wire in [
            &text,
            &flood,
            &too_big,
            &fragmented,
            &huge_header,
            &ping_then_close,
        ] {
            frames_of(&Upgrade::default(), wire);
            frames_of(&admitted(), wire);
        }
        run(super::frames, 1, &[]);
    }

    #[test]
    fn rest_bodies_on_random_input() {
        run(
            super::rest_bodies,
            2,
            &[
                br#"{"organizationId":"o","count":3,"outcome":"mixed"}"#,
                br#"{"organizationId":"o","type":"SYNC_CONFLICT","details":{"conflictId":"c","conflictingFields":[]}}"#,
                b"[]",
                b"",
            ],
        );
    }

    #[test]
    fn server_frames_on_random_input() {
        // Fewer runs: a hostile frame can carry 70,000-character strings.
        run_n(
            super::server_frames,
            4,
            &[b"", &[3, 0, 1, 2, 3, 4, 5, 6, 7, 8]],
            200,
        );
    }

    #[test]
    fn load_wire_on_random_input() {
        // No cut, then cuts at 1 and 3: a text frame, a ping, a close.
        let wire = [0x81, 2, b'h', b'i', 0x89, 0, 0x88, 2, 3, 232];
        let cut = [2, 0, 1, 0, 3, 0x81, 2, b'h', b'i', 0x89, 0, 0x88, 2, 3, 232];
        run(
            super::load_wire,
            5,
            &[
                b"",
                &[0, 0x81, 2, b'h', b'i'],
                &cut,
                &[&[0][..], &wire].concat(),
            ],
        );
    }

    #[test]
    fn expect_parser_on_random_input() {
        // No raw text; the pattern QUEUED PROCESSING SUCCESS; the events it names.
        let satisfied = [0, 3, 0, 1, 2, 3, 0, 1, 2];
        run(super::expect_parser, 3, &[b"", b"\x05QUEUED", &satisfied]);
    }
}
