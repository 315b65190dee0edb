//! REST calls to a backend: write-sync, sync-status, conflicts, stats and publish, with the same
//! credentials, headers and TLS as the sockets.
//!
//! Failures carry the exit code of the table:
//! - 3: the API could not be reached (DNS, TCP, TLS) or refused the credentials (401, 403);
//! - 4: no answer within the timeout;
//! - 5: an answer the protocol does not allow (404 on a protocol endpoint, 5xx, a body
//!   that is not the documented JSON);
//! - 6: the server rejected what was sent (400 and other 4xx): bad input.

use std::time::Duration;

use anyhow::Context;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ClientOptions, Endpoint};
use crate::exit::Failure;
use crate::protocol::{
    ApiError, ConflictList, PublishRequest, PublishResponse, ResolveRequest, ResolveResponse,
    SyncStatus, WriteSyncRequest, WriteSyncResponse,
};

/// Most bytes of a REST answer the client reads: the documented answers are small
/// JSON objects, so a bigger body is refused (exit 5) instead of being held whole.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// Most characters of an error answer's body kept with the error (what the hints
/// read; what is shown is cut shorter still).
pub const KEPT_ERROR_BODY: usize = 16 * 1024;

/// A REST answer that is not a success, with the server's error body (the first
/// [`KEPT_ERROR_BODY`] characters).
#[derive(Debug, thiserror::Error)]
#[error("{method} {url} answered HTTP {status}{}", describe(body))]
pub struct HttpError {
    pub method: &'static str,
    pub url: String,
    pub status: u16,
    pub body: String,
}

fn describe(body: &str) -> String {
    match serde_json::from_str::<ApiError>(body) {
        Ok(e) => format!(
            ": {}: {}",
            crate::text::shown(&e.error, crate::text::MAX_COLUMN),
            crate::text::shown(&e.message, crate::text::MAX_SHOWN)
        ),
        Err(_) if body.trim().is_empty() => String::new(),
        Err(_) => format!(": {}", super::error::body_preview(body)),
    }
}

impl HttpError {
    /// The exit-code class of this answer, as the context of the error; `token`
    /// is what was sent, for what it says about itself on a 401.
    fn failure(&self, token: Option<&str>) -> Failure {
        match self.status {
            401 => Failure::Connect(format!(
                "the backend refused the credentials{}",
                token.map(super::token_facts).unwrap_or_default()
            )),
            403 => Failure::Connect("the backend refused the credentials".into()),
            404 | 500.. => {
                Failure::Protocol("the backend did not answer as the protocol says".into())
            }
            _ => Failure::Runtime("the backend rejected the request".into()),
        }
    }
}

/// A backend's REST API.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    endpoint: Endpoint,
    /// Each call's limit, and the flag that sets it (named when a call times out).
    timeout: Duration,
    limit_flag: &'static str,
    connect_timeout: Duration,
    /// The token sent, if any (never shown; its expiry is, on a 401).
    token: Option<String>,
    max_body: usize,
}

impl Api {
    pub fn new(
        endpoint: &Endpoint,
        options: &ClientOptions,
        timeout: Duration,
    ) -> anyhow::Result<Api> {
        let mut headers = HeaderMap::new();
        if let Some(token) = &options.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the token is not a valid header value")?;
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in &options.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .with_context(|| format!("{name:?} is not a valid header name"))?;
            let value = HeaderValue::from_str(value)
                .with_context(|| format!("{value:?} is not a valid header value"))?;
            headers.append(name, value);
        }
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(if endpoint.api.scheme() == "https" {
                (*options.tls.config()?).clone()
            } else {
                super::tls::plain_config()
            })
            .default_headers(headers)
            .connect_timeout(options.connect_timeout)
            .timeout(timeout)
            .user_agent(concat!("syncprobe/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("failed to set up the HTTP client")?;
        Ok(Api {
            client,
            endpoint: endpoint.clone(),
            timeout,
            limit_flag: "--timeout",
            connect_timeout: options.connect_timeout,
            token: options.token.clone(),
            max_body: options.max_body,
        })
    }

    /// Names the flag that sets the calls' limit, for the message of a timeout
    /// (`--timeout` unless told otherwise).
    pub fn limit_set_by(mut self, flag: &'static str) -> Api {
        self.limit_flag = flag;
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> anyhow::Result<T> {
        let url = self.endpoint.rest(path);
        let shown = super::redact(&url);
        let request = match body {
            Some(body) => self.client.post(url).json(body),
            None => self.client.get(url),
        };
        let response = request
            .send()
            .await
            .map_err(|e| self.request_failure(e, method, &shown))?;
        let status = response.status().as_u16();
        let text = self.read_body(response, method, &shown).await?;
        if !(200..300).contains(&status) {
            let error = HttpError {
                method,
                url: shown,
                status,
                body: crate::text::clamp(&text, KEPT_ERROR_BODY).into_owned(),
            };
            let failure = error.failure(self.token.as_deref());
            return Err(anyhow::Error::new(error).context(failure));
        }
        serde_json::from_str(&text).map_err(|e| {
            Failure::Protocol(format!(
                "{method} {shown} answered HTTP {status} with a body that is not the documented JSON ({e}): {}",
                text.chars().take(200).collect::<String>()
            ))
            .into()
        })
    }

    /// `POST /api/pems/write-sync`.
    pub async fn write_sync(
        &self,
        request: &WriteSyncRequest,
    ) -> anyhow::Result<WriteSyncResponse> {
        self.call("POST", "api/pems/write-sync", Some(request))
            .await
    }

    /// `GET /api/pems/sync-status?organizationId=…`.
    pub async fn sync_status(&self, org: &str) -> anyhow::Result<SyncStatus> {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("organizationId", org)
            .finish();
        self.call("GET", &format!("api/pems/sync-status?{query}"), None::<&()>)
            .await
    }

    /// `GET /api/pems/conflicts?organizationId=…[&status=…]`.
    pub async fn conflicts(&self, org: &str, status: Option<&str>) -> anyhow::Result<ConflictList> {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("organizationId", org);
        if let Some(status) = status {
            query.append_pair("status", status);
        }
        let path = format!("api/pems/conflicts?{}", query.finish());
        self.call("GET", &path, None::<&()>).await
    }

    /// `POST /api/pems/conflicts/{conflictId}/resolve`.
    pub async fn resolve(
        &self,
        id: &str,
        request: &ResolveRequest,
    ) -> anyhow::Result<ResolveResponse> {
        let path = format!("api/pems/conflicts/{}/resolve", path_segment(id));
        self.call("POST", &path, Some(request)).await
    }

    /// `GET /api/ws/stats` (Part 2).
    pub async fn stats(&self) -> anyhow::Result<serde_json::Value> {
        self.call("GET", "api/ws/stats", None::<&()>).await
    }

    /// `POST /api/ws/publish` (Part 2).
    pub async fn publish(&self, request: &PublishRequest) -> anyhow::Result<PublishResponse> {
        self.call("POST", "api/ws/publish", Some(request)).await
    }
}

/// `text` as one path segment: everything but unreserved characters percent-encoded.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Api {
    /// The answer's body, at most `--max-body-size` bytes (more is an error, exit 5).
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        method: &str,
        url: &str,
    ) -> anyhow::Result<String> {
        let status = response.status().as_u16();
        let max_body = self.max_body;
        let too_big = || {
            anyhow::Error::from(Failure::Protocol(format!(
                "{method} {url} answered HTTP {status} with a body over {max_body} bytes, the client's limit: not read further (raise --max-body-size)"
            )))
        };
        if response
            .content_length()
            .is_some_and(|len| len > max_body as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.request_failure(e, method, url))?
        {
            if body.len() + chunk.len() > max_body {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// A request that got no answer, with the reqwest error (and the I/O or TLS
    /// error below it) kept as the typed cause.
    fn request_failure(&self, error: reqwest::Error, method: &str, url: &str) -> anyhow::Error {
        let failure = if error.is_connect() && error.is_timeout() {
            Failure::Timeout(format!(
                "connecting to {url} timed out after {} (raise --connect-timeout)",
                humantime::format_duration(self.connect_timeout)
            ))
        } else if error.is_timeout() {
            Failure::Timeout(format!(
                "{method} {url} timed out after {} (raise {})",
                humantime::format_duration(self.timeout),
                self.limit_flag
            ))
        } else if error.is_connect() {
            Failure::Connect(format!("failed to connect to {url}"))
        } else {
            Failure::Protocol(format!("{method} {url} failed"))
        };
        super::error::failed(failure, error)
    }
}
