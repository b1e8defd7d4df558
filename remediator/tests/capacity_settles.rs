//! Capacity goes back up only when it is safe (`restore_after`): a lowered builder's
//! capacity stays lowered until the host has been quiet for the period, a re-fire meanwhile
//! holds it (and may lower further), changes are undone one step at a time, the latest
//! first, each after its own quiet period, across a remediator restart; a capacity someone
//! else changed meanwhile is never overwritten. Through the webhook, with the journal and a
//! Koji-shaped hub database (the quiet period made 2 s).

mod support;

use std::time::{Duration, Instant};

use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion};
use support::{payload, Remediator, HOST};

const QUIET: Duration = Duration::from_secs(2);

const RULES: &str = r#"
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
cooldown = "0s"
restore_on_resolve = true
restore_after = "2s"
params = { step = 1.0, floor = 2.0 }
"#;

fn labels() -> Vec<(&'static str, &'static str)> {
    vec![("alertname", "KojiBuilderOverloaded"), ("host", HOST)]
}

async fn started() -> Remediator {
    let remediator = Remediator::start(KojiVersion::V1_33, RULES).await;
    let mut host = HostSpec::new(HOST);
    host.capacity = 4.0;
    add_host(&remediator.hub.client, KojiVersion::V1_33, &host)
        .await
        .unwrap();
    remediator
}

/// Waits until the host's capacity is `expected`; returns when it became so.
async fn capacity_becomes(remediator: &Remediator, expected: f64, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        let now = remediator.active_capacity_of(HOST).await;
        if now == expected {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "capacity {now}, not {expected}, after {within:?}: {:#?}",
            remediator.runs().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The capacity stays `expected` for `period`.
async fn capacity_stays(remediator: &Remediator, expected: f64, period: Duration) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        assert_eq!(
            remediator.active_capacity_of(HOST).await,
            expected,
            "{:#?}",
            remediator.runs().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowered_capacity_settles_then_steps_back_up_latest_first() {
    let mut remediator = started().await;
    let post = |resolved: bool, fingerprint: &'static str, starts: &'static str| {
        payload(resolved, &labels(), fingerprint, starts)
    };
    // Occurrence A lowers 4 -> 3 and resolves: the restore waits for the quiet period.
    remediator
        .post(&post(false, "a0a0a0a0a0a0a0a0", "2026-11-30T08:00:00Z"))
        .await;
    capacity_becomes(&remediator, 3.0, Duration::from_secs(10)).await;
    remediator
        .post(&post(true, "a0a0a0a0a0a0a0a0", "2026-11-30T08:00:00Z"))
        .await;
    capacity_stays(&remediator, 3.0, QUIET / 2).await;
    let runs = remediator.runs().await;
    let waiting = runs
        .iter()
        .find(|run| run["kind"] == "restore")
        .expect("the restore is journaled");
    assert_eq!(waiting["state"], "pending", "{runs:#?}");
    assert!(
        waiting["outcome"]
            .as_str()
            .unwrap()
            .contains(&format!("if host:{HOST} stays quiet")),
        "the journal says when: {waiting:#}"
    );

    // Occurrence B fires within the quiet period: A's restore is held, B lowers 3 -> 2,
    // and nothing goes back up while B fires, however long.
    remediator
        .post(&post(false, "b1b1b1b1b1b1b1b1", "2026-11-30T08:10:00Z"))
        .await;
    capacity_becomes(&remediator, 2.0, Duration::from_secs(10)).await;
    capacity_stays(&remediator, 2.0, QUIET * 2).await;
    let held = remediator.runs().await;
    let held = held.iter().find(|run| run["kind"] == "restore").unwrap();
    assert!(
        held["outcome"].as_str().unwrap().contains("still fires"),
        "{held:#}"
    );

    // The remediator restarts while A's restore is held (the wait is in the journal),
    // then B resolves.
    remediator.restart().await;
    capacity_stays(&remediator, 2.0, QUIET / 2).await;
    remediator
        .post(&post(true, "b1b1b1b1b1b1b1b1", "2026-11-30T08:10:00Z"))
        .await;
    let resolved = Instant::now();
    // B's change is undone first (2 -> 3) after the quiet period, then A's (3 -> 4) after
    // another: one step at a time, never above the 4 before the first lowering.
    let first = capacity_becomes(&remediator, 3.0, Duration::from_secs(15)).await;
    assert!(
        first - resolved >= QUIET,
        "the first step back waited the quiet period: {:?}",
        first - resolved
    );
    let second = capacity_becomes(&remediator, 4.0, Duration::from_secs(15)).await;
    assert!(
        second - first >= QUIET - Duration::from_millis(100),
        "the second step waited another quiet period: {:?}",
        second - first
    );
    capacity_stays(&remediator, 4.0, QUIET).await;
    let runs = remediator.finished_runs(4).await;
    let mut restores: Vec<(&str, &str, &str)> = runs
        .iter()
        .filter(|run| run["kind"] == "restore")
        .map(|run| {
            (
                run["finished_at"].as_str().unwrap(),
                run["fingerprint"].as_str().unwrap(),
                run["state"].as_str().unwrap(),
            )
        })
        .collect();
    restores.sort();
    // In the order they ended: B's change undone first, then A's.
    let order: Vec<(&str, &str)> = restores.iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        order,
        [
            ("b1b1b1b1b1b1b1b1", "succeeded"),
            ("a0a0a0a0a0a0a0a0", "succeeded")
        ],
        "{runs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_someone_else_set_meanwhile_is_left_alone() {
    let remediator = started().await;
    let fingerprint = "c2c2c2c2c2c2c2c2";
    let starts = "2026-11-30T09:00:00Z";
    remediator
        .post(&payload(false, &labels(), fingerprint, starts))
        .await;
    capacity_becomes(&remediator, 3.0, Duration::from_secs(10)).await;
    remediator
        .post(&payload(true, &labels(), fingerprint, starts))
        .await;
    // An administrator sets 5 during the quiet period, as editHost would.
    remediator.set_capacity_as_admin(HOST, 3.0, 5.0).await;
    let runs = remediator.finished_runs(2).await;
    let restore = runs.iter().find(|run| run["kind"] == "restore").unwrap();
    assert_eq!(restore["state"], "refused", "{runs:#?}");
    assert!(
        restore["outcome"]
            .as_str()
            .unwrap()
            .contains("someone changed it"),
        "{restore:#}"
    );
    assert_eq!(remediator.active_capacity_of(HOST).await, 5.0);
}

/// The approval page shows what is held and until when: "set capacity ... from 4 to 3",
/// since when, and "undone at ... if host:... stays quiet".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_page_shows_held_changes_and_when_they_go_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alice.token"), support::ALICE).unwrap();
    let rules = format!(
        "[[oncall]]\nname = \"alice\"\ntoken_file = \"{}\"\n{}",
        dir.path().join("alice.token").display(),
        RULES.replace("restore_after = \"2s\"", "restore_after = \"1h\"")
    );
    let remediator = Remediator::start(KojiVersion::V1_33, &rules).await;
    let mut host = HostSpec::new(HOST);
    host.capacity = 4.0;
    add_host(&remediator.hub.client, KojiVersion::V1_33, &host)
        .await
        .unwrap();
    let (fingerprint, starts) = ("d3d3d3d3d3d3d3d3", "2026-11-30T10:00:00Z");
    remediator
        .post(&payload(false, &labels(), fingerprint, starts))
        .await;
    capacity_becomes(&remediator, 3.0, Duration::from_secs(10)).await;
    remediator
        .post(&payload(true, &labels(), fingerprint, starts))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !remediator.runs().await.iter().any(|run| {
        run["kind"] == "restore"
            && run["outcome"]
                .as_str()
                .unwrap_or("")
                .contains("stays quiet")
    }) {
        assert!(Instant::now() < deadline, "{:#?}", remediator.runs().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let logged_in = browser
        .post(format!("{}/login", remediator.base))
        .form(&[("name", "alice"), ("token", support::ALICE)])
        .send()
        .await
        .unwrap();
    let cookie = logged_in.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = browser
        .get(format!("{}/escalations", remediator.base))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let held = &page[page.find("<table id=\"held\">").expect(&page)..];
    let held = &held[..held.find("</table>").unwrap()];
    assert!(
        held.contains(&format!("set capacity of Koji host {HOST} from 4 to 3"))
            && held.contains("since 2026-")
            && held.contains(&format!("if host:{HOST} stays quiet")),
        "{held}"
    );
}
