//! The task queries must use Koji's `task_by_state` index, never scan the whole table:
//! a real hub's `task` table holds tens of millions of finished rows.

use koji_exporter::collectors::{koji_hosts, koji_tasks};
use koji_testkit::{generate, KojiVersion, Scale, TestDb};

/// Walks an `EXPLAIN (FORMAT JSON)` plan and lists the relations read by sequential scan.
fn sequential_scans(plan: &serde_json::Value, found: &mut Vec<String>) {
    match plan {
        serde_json::Value::Object(node) => {
            if node.get("Node Type").and_then(|v| v.as_str()) == Some("Seq Scan") {
                let relation = node.get("Relation Name").and_then(|v| v.as_str());
                found.push(relation.unwrap_or("?").to_string());
            }
            node.values()
                .for_each(|child| sequential_scans(child, found));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| sequential_scans(i, found)),
        _ => {}
    }
}

#[tokio::test]
async fn task_queries_use_the_state_index_on_a_large_task_table() {
    let db = TestDb::koji("plans", KojiVersion::V1_33).await.unwrap();
    let scale = Scale {
        hosts: 50,
        extra_channels: 2,
        active_tasks: 500,
        finished_tasks: 300_000,
    };
    generate(&db.client, KojiVersion::V1_33, scale)
        .await
        .unwrap();

    for query in [koji_tasks::ACTIVE_TASKS, koji_hosts::HOST_TASKS] {
        let row = db
            .client
            .query_one(&format!("EXPLAIN (FORMAT JSON) {query}"), &[])
            .await
            .unwrap();
        let plan: serde_json::Value = row.get(0);
        let mut scans = Vec::new();
        sequential_scans(&plan, &mut scans);
        assert!(
            !scans.iter().any(|relation| relation == "task"),
            "sequential scan of task in plan of {query}:\n{plan:#}"
        );
        assert!(plan.to_string().contains("task_by_state"), "{plan:#}");
    }
}
