//! `koji-remediator escalations list|approve ID|reject ID` and `koji-remediator simulate
//! --alert FILE`: on-call's command line against a running remediator's API, with their
//! token read from a file.

use std::path::Path;

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscalationCommand {
    /// Show waiting and recent escalations.
    List,
    /// Approve one.
    Approve {
        /// Escalation id.
        id: i64,
        /// Why.
        reason: String,
    },
    /// Reject one.
    Reject {
        /// Escalation id.
        id: i64,
        /// Why.
        reason: String,
    },
    /// What an Alertmanager payload (JSON text) would do now; nothing is written.
    Simulate {
        /// The payload.
        payload: String,
    },
}

/// Runs `command` against the remediator at `url` (trusting `ca_file` too, for https);
/// returns the text to print.
pub async fn run(
    url: &str,
    token_file: &Path,
    ca_file: Option<&Path>,
    command: EscalationCommand,
) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("cannot read the token file {}", token_file.display()))?;
    let token = token.trim();
    let base = url.trim_end_matches('/');
    let mut client = reqwest::Client::builder();
    if let Some(ca_file) = ca_file {
        client = client.use_preconfigured_tls(koji_tls::client_config::build(ca_file, None)?);
    }
    let client = client.build().context("an HTTP client")?;
    let response = match &command {
        EscalationCommand::List => client.get(format!("{base}/api/v1/escalations")),
        EscalationCommand::Approve { id, reason } => client
            .post(format!("{base}/api/v1/escalations/{id}/approve"))
            .json(&json!({ "reason": reason })),
        EscalationCommand::Reject { id, reason } => client
            .post(format!("{base}/api/v1/escalations/{id}/reject"))
            .json(&json!({ "reason": reason })),
        EscalationCommand::Simulate { payload } => client
            .post(format!("{base}/api/v1/simulate"))
            .header("Content-Type", "application/json")
            .body(payload.clone()),
    }
    .bearer_auth(token)
    .send()
    .await
    .map_err(|error| {
        anyhow::anyhow!(
            "cannot reach {base}: {}",
            koji_config::error_chain::error_chain(&error)
        )
    })?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{status}: {}",
            body["detail"]
                .as_str()
                .unwrap_or("the remediator refused the request")
        );
    }
    Ok(match command {
        EscalationCommand::List => format_list(&body),
        EscalationCommand::Simulate { .. } => format_simulation(&body),
        _ => format!(
            "escalation {} {} by {}",
            body["id"],
            body["state"].as_str().unwrap_or("?"),
            body["by"].as_str().unwrap_or("?")
        ),
    })
}

fn format_simulation(body: &Value) -> String {
    let Some(alerts) = body["alerts"].as_array().filter(|a| !a.is_empty()) else {
        return "no alerts in the payload".into();
    };
    alerts
        .iter()
        .map(|alert| {
            let mut lines = vec![format!(
                "{} -> {} ({})",
                alert["alertname"].as_str().unwrap_or(""),
                alert["decision"].as_str().unwrap_or(""),
                alert["detail"].as_str().unwrap_or("")
            )];
            lines.push(format!(
                "        would: {}",
                alert["would"].as_str().unwrap_or("")
            ));
            if let Some(plan) = alert["plan"].as_str() {
                lines.push(format!("        plan: {plan}"));
            }
            lines.join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn format_list(body: &Value) -> String {
    let Some(entries) = body.as_array().filter(|e| !e.is_empty()) else {
        return "no escalations".into();
    };
    entries
        .iter()
        .map(|entry| {
            format!(
                "{:>6}  {:<18} {:<28} {}\n        plan: {}",
                entry["id"],
                entry["state"].as_str().unwrap_or(""),
                entry["rule"].as_str().unwrap_or(""),
                entry["target"].as_str().unwrap_or(""),
                entry["plan"].as_str().unwrap_or("(not planned)")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
