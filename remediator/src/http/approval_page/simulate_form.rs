//! The approval page's "what would this alert do now?" form: an Alertmanager payload pasted
//! in, the same answer as `POST /api/v1/simulate`, shown as a page. Posted like a decision
//! (logged in, from this site, with the session's form token), though it changes nothing.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use minijinja::context;
use serde::Deserialize;

use super::{authorize_post, message, render};
use crate::http::simulate_api::simulated;
use crate::http::state::AppState;

/// The form's fields.
#[derive(Deserialize)]
pub struct SimulateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    payload: String,
}

/// `POST /simulate`.
pub async fn simulate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SimulateForm>,
) -> Response {
    let (_, session) = match authorize_post(&headers, &state, &form.csrf) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    if form.payload.len() > state.config.server.max_body_bytes {
        return message(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "Payloads are limited to {} bytes.",
                state.config.server.max_body_bytes
            ),
            Some(&session),
        );
    }
    match simulated(&state, form.payload.as_bytes()).await {
        Ok(alerts) => render(
            StatusCode::OK,
            "simulate.html",
            context! {
                alerts => minijinja::value::Serde(&alerts),
                person => session.person,
                csrf => session.csrf,
            },
        ),
        Err(error) => message(error.status(), error.detail(), Some(&session)),
    }
}
