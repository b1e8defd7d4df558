//! Escalations through the API: an `approve` rule plans and waits; on-call sees the plan,
//! approves or rejects with their own token (never the webhook's or the shared API token);
//! approving applies the stored plan once; double approvals, decisions on rejected or
//! expired escalations are refused; a pending escalation survives an abrupt restart.

mod support;

use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion};
use serde_json::Value;
use support::{approve_lowering_rules, payload, Remediator, ALICE, API_TOKEN, WEBHOOK_TOKEN};

const HOST: &str = "buildvm-x86-01.example.org";

fn labels() -> Vec<(&'static str, &'static str)> {
    vec![("alertname", "KojiBuilderOverloaded"), ("host", HOST)]
}

async fn decide(remediator: &Remediator, id: i64, verb: &str, token: &str) -> (u16, Value) {
    let response = remediator
        .client
        .post(format!(
            "{}/api/v1/escalations/{id}/{verb}",
            remediator.base
        ))
        .bearer_auth(token)
        .body(r#"{"reason": "load is from plague, lowering is right"}"#)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until the newest escalation has its plan, and returns it.
async fn planned_escalation(remediator: &Remediator) -> Value {
    for _ in 0..200 {
        let list = remediator.escalations().await;
        if let Some(first) = list
            .first()
            .filter(|e| e["state"] == "awaiting_approval" && e["plan"].is_string())
        {
            return first.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no planned escalation");
}

#[tokio::test]
async fn approve_reject_expire_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut remediator =
        Remediator::start(KojiVersion::V1_33, &approve_lowering_rules(dir.path())).await;
    add_host(
        &remediator.hub.client,
        KojiVersion::V1_33,
        &HostSpec::new(HOST),
    )
    .await
    .unwrap();

    remediator
        .post(&payload(
            false,
            &labels(),
            "e5e5e5e5e5e5e5e5",
            "2026-11-28T23:00:00Z",
        ))
        .await;
    let escalation = planned_escalation(&remediator).await;
    let id = escalation["id"].as_i64().unwrap();
    assert!(
        escalation["plan"].as_str().unwrap().contains("from 4 to 3"),
        "{escalation}"
    );
    assert_eq!(
        remediator.active_capacity().await,
        4.0,
        "nothing applied before approval"
    );

    // Alertmanager's token and the shared API token decide nothing.
    for token in [WEBHOOK_TOKEN, API_TOKEN, "nobody-knows-this-token-0000"] {
        assert_eq!(
            decide(&remediator, id, "approve", token).await.0,
            401,
            "{token}"
        );
    }
    let (status, body) = decide(&remediator, id, "approve", ALICE).await;
    assert_eq!(
        (status, body["by"].as_str()),
        (200, Some("alice")),
        "{body}"
    );
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert_eq!(remediator.active_capacity().await, 3.0);
    // Approving twice applies once.
    let (status, body) = decide(&remediator, id, "approve", ALICE).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(remediator.active_capacity().await, 3.0);

    // A second occurrence, rejected: nothing changes, and it cannot be approved after.
    remediator
        .post(&payload(
            false,
            &labels(),
            "e5e5e5e5e5e5e5e5",
            "2026-11-28T23:10:00Z",
        ))
        .await;
    let second = planned_escalation(&remediator).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(decide(&remediator, second, "reject", ALICE).await.0, 200);
    let (status, body) = decide(&remediator, second, "approve", ALICE).await;
    assert_eq!(status, 409);
    assert!(
        body["detail"].as_str().unwrap().contains("rejected"),
        "{body}"
    );
    assert_eq!(remediator.active_capacity().await, 3.0);

    // A third, whose alert resolves before anyone decides: expired.
    remediator
        .post(&payload(
            false,
            &labels(),
            "e5e5e5e5e5e5e5e5",
            "2026-11-28T23:20:00Z",
        ))
        .await;
    let third = planned_escalation(&remediator).await["id"]
        .as_i64()
        .unwrap();
    remediator
        .post(&payload(
            true,
            &labels(),
            "e5e5e5e5e5e5e5e5",
            "2026-11-28T23:20:00Z",
        ))
        .await;
    let (status, body) = decide(&remediator, third, "approve", ALICE).await;
    assert_eq!(status, 409);
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    assert_eq!(decide(&remediator, 9999, "approve", ALICE).await.0, 404);

    // A fourth waits while the remediator is killed and started again; approved after, it
    // is applied exactly once.
    remediator
        .post(&payload(
            false,
            &labels(),
            "e5e5e5e5e5e5e5e5",
            "2026-11-28T23:30:00Z",
        ))
        .await;
    let fourth = planned_escalation(&remediator).await["id"]
        .as_i64()
        .unwrap();
    remediator.restart().await;
    let (status, _) = decide(&remediator, fourth, "approve", ALICE).await;
    assert_eq!(status, 200);
    let runs = remediator.finished_runs(4).await;
    let fourth_run = runs
        .iter()
        .find(|r| r["id"].as_i64() == Some(fourth))
        .unwrap();
    assert_eq!(fourth_run["state"], "succeeded", "{runs:#?}");
    assert_eq!(remediator.active_capacity().await, 2.0);
    assert_eq!(decide(&remediator, fourth, "approve", ALICE).await.0, 409);
    assert_eq!(remediator.active_capacity().await, 2.0);
}
