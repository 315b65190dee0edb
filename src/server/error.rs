//! The protocol's JSON error answer (`{"error":…,"message":…,"details":…}`), shared by
//! the REST handlers, the socket handlers and the security rules: [`Rejection`] (an
//! answer not yet sent) and [`Refusal`] (a rule's verdict, counted under a reason). A
//! leaf: it knows nothing of the routes or of the rules that refuse.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::metrics::Metrics;
use crate::protocol::ApiError;

/// A JSON error answer in the protocol's shape.
pub fn api_error(
    status: StatusCode,
    error: &str,
    message: &str,
    details: Option<Value>,
) -> Response {
    Rejection::new(status, error, message.to_string(), details).into_response()
}

/// An error answer not yet turned into a response.
#[derive(Debug)]
pub struct Rejection {
    pub status: StatusCode,
    pub body: Box<ApiError>,
}

impl Rejection {
    pub fn new(status: StatusCode, error: &str, message: String, details: Option<Value>) -> Self {
        Rejection {
            status,
            body: Box::new(ApiError {
                error: error.to_string(),
                message,
                details,
            }),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// A refused request: its HTTP status, the protocol's error body, and the reason
/// label the error metric counts it under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub error: &'static str,
    pub message: String,
    pub reason: &'static str,
    pub field: Option<&'static str>,
    /// serve's own explanation, as `details` (a string), when `message` is the
    /// original backend's fixed text.
    pub detail: Option<String>,
}

impl Refusal {
    pub fn new(
        status: StatusCode,
        error: &'static str,
        reason: &'static str,
        message: String,
    ) -> Self {
        Refusal {
            status,
            error,
            message,
            reason,
            field: None,
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn unauthorized(reason: &'static str, message: impl Into<String>) -> Self {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            reason,
            message.into(),
        )
    }

    pub fn forbidden(reason: &'static str, message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::FORBIDDEN, "FORBIDDEN", reason, message.into())
    }

    /// Counts the refusal and turns it into the JSON answer.
    pub fn respond(self, metrics: &Metrics) -> Response {
        metrics.error(self.reason);
        let status = self.status;
        let mut response = Rejection::from(self).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="syncprobe", error="invalid_token""#),
            );
        }
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<Refusal> for Rejection {
    fn from(refusal: Refusal) -> Self {
        let details = match (refusal.field, refusal.detail) {
            (Some(field), _) => Some(json!([{ "field": field, "message": refusal.message }])),
            (None, detail) => detail.map(Value::String),
        };
        Rejection::new(refusal.status, refusal.error, refusal.message, details)
    }
}
