//! HTTP errors as a stable JSON body `{"error": "...", "detail": "..."}`; 5xx bodies reveal
//! no internals.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    detail: &'a str,
}

impl ApiError {
    /// 400: the body is not an acceptable payload.
    pub fn bad_request(error: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error,
            detail: detail.into(),
        }
    }

    /// 401: missing or wrong bearer token.
    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "unauthorized",
            detail: "a valid bearer token is required".into(),
        }
    }

    /// 403: authenticated, but not allowed to ask for this.
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            error: "forbidden",
            detail: detail.into(),
        }
    }

    /// 404: no such thing.
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: "not_found",
            detail: detail.into(),
        }
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            error: "conflict",
            detail: detail.into(),
        }
    }

    /// 413: the body is larger than `server.max_body_bytes`.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error: "payload_too_large",
            detail: format!("request bodies are limited to {limit} bytes"),
        }
    }

    /// 408: the body did not arrive within the server's body timeout.
    pub fn body_timeout() -> ApiError {
        ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            error: "body_timeout",
            detail: "the request body did not arrive in time".into(),
        }
    }

    /// 431: the request's header fields are more than the server reads.
    pub fn headers_too_large(detail: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            error: "request_header_fields_too_large",
            detail: detail.into(),
        }
    }

    /// 415: not JSON.
    pub fn unsupported_media_type() -> ApiError {
        ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            error: "unsupported_media_type",
            detail: "send Content-Type: application/json".into(),
        }
    }

    /// 503: the journal could not record the request; Alertmanager retries. The cause goes
    /// to the log, not the client.
    pub fn journal_unavailable() -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "journal_unavailable",
            detail: "the alerts could not be journaled; retry later".into(),
        }
    }

    /// 503 with a reason the client may see (nothing internal): try again later.
    pub fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "unavailable",
            detail: detail.into(),
        }
    }

    /// What went wrong, for the client.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.error,
            detail: &self.detail,
        };
        (self.status, Json(body)).into_response()
    }
}
