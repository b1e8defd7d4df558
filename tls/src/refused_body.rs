//! Reads what is left of a request body after an error answer, so the answer reaches the
//! client as a status.
//!
//! A handler that refuses a request (401, 413, 415, …) usually does so before reading its
//! body. Over HTTP/2 the stream is then reset under the client's upload, and clients such
//! as curl report "Stream error in the HTTP/2 framing layer" instead of the status; over
//! HTTP/1.1 the connection cannot be reused. So the body is handed to the handler through a
//! shared slot, and when the answer is an error the rest of it is read and discarded, at
//! most [`DRAIN_BYTES`] bytes within [`DRAIN_TIME`]: a client sending more or slower is
//! reset as before, so draining never becomes a way to hold the server.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

/// The most of a refused body that is read.
pub const DRAIN_BYTES: usize = 8 * 1024 * 1024;
/// The longest a refused body is read for.
pub const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Middleware: passes the request on with its body in a shared slot, and drains what the
/// handler left of it when the answer is a client or server error.
pub async fn drain_refused_bodies(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let slot = Arc::new(Mutex::new(body));
    let shared = Body::new(SharedBody(slot.clone()));
    let response = next.run(Request::from_parts(parts, shared)).await;
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        let _ = tokio::time::timeout(DRAIN_TIME, drain(&slot)).await;
    }
    response
}

/// Reads and discards frames until the end of the body, an error, or [`DRAIN_BYTES`].
async fn drain(slot: &Arc<Mutex<Body>>) {
    let mut read = 0;
    while read <= DRAIN_BYTES {
        let frame = std::future::poll_fn(|context| {
            let mut body = slot.lock().unwrap_or_else(PoisonError::into_inner);
            Pin::new(&mut *body).poll_frame(context)
        })
        .await;
        match frame {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(_)) | None => return,
        }
    }
}

/// The request body as the handler sees it: the same stream, read through the slot the
/// middleware keeps.
struct SharedBody(Arc<Mutex<Body>>);

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut body = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Pin::new(&mut *body).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .size_hint()
    }
}
