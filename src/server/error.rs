//! The protocol's JSON error answer (`{"error":…,"message":…,"details":…}`), shared by
//! the REST handlers, the socket handlers and the security rules. A leaf: it knows
//! nothing of the routes or the rules that refuse.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

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
    status: StatusCode,
    body: Box<ApiError>,
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

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn body(&self) -> &ApiError {
        &self.body
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
