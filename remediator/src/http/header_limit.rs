//! The limit on a request's header fields, answered as every other refusal is: a 431 with
//! the JSON error shape.
//!
//! hyper refuses header fields beyond its own buffers with a bare 431 (no body) or, over
//! HTTP/2, a reset. The listener sets those buffers well above [`MAX_HEADER_BYTES`] and
//! [`MAX_HEADER_FIELDS`] (koji_tls::serve), so a client that sends too much meets this
//! limit first and is told what it is. Sizes are counted as HTTP/2 counts a header list:
//! name, value and 32 bytes per field.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api_error::ApiError;

/// The most header bytes a request may carry (names, values, 32 per field).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// The most header fields a request may carry.
pub const MAX_HEADER_FIELDS: usize = 100;

/// Middleware: refuses requests whose header fields exceed the limits.
pub async fn limit_headers(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum();
    if headers.len() > MAX_HEADER_FIELDS || bytes > MAX_HEADER_BYTES {
        return ApiError::headers_too_large(format!(
            "header fields are limited to {MAX_HEADER_FIELDS} fields and {MAX_HEADER_BYTES} bytes \
             (name, value and 32 per field); this request has {} fields, {bytes} bytes",
            headers.len()
        ))
        .into_response();
    }
    next.run(request).await
}
