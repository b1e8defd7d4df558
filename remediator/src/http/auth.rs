//! Who a request is: bearer tokens checked in constant time, and on-call people by their
//! own tokens. Handlers take one of the extractors below ([`Alertmanager`], [`OncallApi`],
//! [`OncallReader`], [`OncallPerson`], [`Central`]) and never see a request of anyone else.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::api_error::ApiError;
use super::state::AppState;
use crate::agent::AgentState;

/// The bearer token a request presents, if any (the scheme is case-insensitive, RFC 9110).
pub fn presented(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim_start())
}

/// Checks `Authorization: Bearer TOKEN` in constant time.
pub fn authorized(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    let presented = presented(headers);
    if !presented.is_empty()
        && constant_time_eq::constant_time_eq(presented.as_bytes(), token.as_bytes())
    {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// The on-call person whose own token this is; the shared API token and the webhook token
/// never decide on an escalation.
pub fn oncall_person(headers: &HeaderMap, state: &AppState) -> Result<String, ApiError> {
    let presented = presented(headers);
    state
        .oncall
        .iter()
        .find(|(_, token)| {
            !presented.is_empty()
                && constant_time_eq::constant_time_eq(
                    presented.as_bytes(),
                    token.current().as_bytes(),
                )
        })
        .map(|(name, _)| name.clone())
        .ok_or_else(ApiError::unauthorized)
}

/// Alertmanager, by the webhook token: extracting it refuses anyone else with 401 before
/// the body is read.
#[derive(Debug, Clone, Copy)]
pub struct Alertmanager;

/// On-call's shared API token (journal, pause).
#[derive(Debug, Clone, Copy)]
pub struct OncallApi;

/// On-call's shared API token or a person's own token (reading escalations).
#[derive(Debug, Clone, Copy)]
pub struct OncallReader;

/// An on-call person, by their own token: the only caller that decides on escalations.
#[derive(Debug, Clone)]
pub struct OncallPerson(pub String);

/// The central remediator, by the forwarding token an agent holds.
#[derive(Debug, Clone, Copy)]
pub struct Central;

impl FromRequestParts<AppState> for Alertmanager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authorized(&parts.headers, &state.webhook_token.current()).map(|()| Alertmanager)
    }
}

impl FromRequestParts<AppState> for OncallApi {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authorized(&parts.headers, &state.api_token.current()).map(|()| OncallApi)
    }
}

impl FromRequestParts<AppState> for OncallReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if authorized(&parts.headers, &state.api_token.current()).is_ok() {
            return Ok(OncallReader);
        }
        oncall_person(&parts.headers, state).map(|_| OncallReader)
    }
}

impl FromRequestParts<AppState> for OncallPerson {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        oncall_person(&parts.headers, state).map(OncallPerson)
    }
}

impl FromRequestParts<AgentState> for Central {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AgentState) -> Result<Self, ApiError> {
        authorized(&parts.headers, &state.token.current()).map(|()| Central)
    }
}
