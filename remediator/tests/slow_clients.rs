//! Slow and idle clients against the real binary: with 2,000 idle connections and 50
//! slowloris ones open, `/healthz` answers fast and a webhook is journaled; idle and
//! trickling connections are closed after the header timeout; a slow body gets 408; and
//! SIGTERM with slow clients still connected stops the process within the drain bound.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use koji_testkit::{KojiVersion, TestDb};
use support::{config_text, payload, WEBHOOK_TOKEN};

const IDLE: usize = 2000;
const SLOWLORIS: usize = 50;

/// Raises this process's descriptor limit to its hard limit (the clients need ~2,100).
fn room_for_clients() {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .unwrap();
}

/// Whether the server closed `stream` (a read sees the end, or a reset).
fn closed(mut stream: &TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut byte = [0u8; 64];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => true, // an answer (408) and then the end
        Err(error) => !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[tokio::test]
async fn idle_and_slow_clients_cannot_starve_the_listener_or_hold_up_a_stop() {
    room_for_clients();
    let hub = TestDb::koji("slow_hub", KojiVersion::V1_33).await.unwrap();
    let journal = TestDb::empty("slow_journal").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = config_text(d, &hub.url, &journal.url, "").replace(
        "max_body_bytes = 65536",
        "max_body_bytes = 65536\nheader_read_timeout = \"2s\"\nbody_timeout = \"2s\"\nshutdown_drain = \"3s\"",
    );
    std::fs::write(d.join("remediator.toml"), text).unwrap();
    let port = koji_testkit::free_port();
    let address = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_koji-remediator"))
        .args(["--config.file", d.join("remediator.toml").to_str().unwrap()])
        .args(["--web.listen-address", &address])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://{address}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the binary did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(&address).unwrap())
        .collect();
    let slowloris: Vec<TcpStream> = (0..SLOWLORIS)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream
                .write_all(b"POST /webhook/alertmanager HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    // Keep the slowloris ones trickling a header line now and then.
    let trickle = std::thread::spawn({
        let mut streams: Vec<TcpStream> =
            slowloris.iter().map(|s| s.try_clone().unwrap()).collect();
        move || {
            for n in 0..6 {
                std::thread::sleep(Duration::from_millis(500));
                for stream in &mut streams {
                    let _ = stream.write_all(format!("X-Slow-{n}: 1\r\n").as_bytes());
                }
            }
        }
    });

    // Served meanwhile: health fast, a webhook journaled.
    let fresh = reqwest::Client::new();
    let mut fastest = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let response = fresh.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        fastest = fastest.min(started.elapsed());
    }
    assert!(
        fastest < Duration::from_millis(100),
        "/healthz took {fastest:?}"
    );
    let body = payload(
        false,
        &[("alertname", "Unmatched"), ("host", "h")],
        "abababababababab",
        "2026-11-30T08:00:00Z",
    );
    let response = fresh
        .post(format!("{base}/webhook/alertmanager"))
        .bearer_auth(WEBHOOK_TOKEN)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // After the header timeout, idle and trickling connections are closed.
    tokio::time::sleep(Duration::from_secs(4)).await;
    trickle.join().unwrap();
    let idle_closed = idle.iter().step_by(100).filter(|s| closed(s)).count();
    assert_eq!(idle_closed, IDLE / 100, "idle connections closed");
    let slow_closed = slowloris.iter().filter(|s| closed(s)).count();
    assert_eq!(slow_closed, SLOWLORIS, "slowloris connections closed");
    drop(idle);
    drop(slowloris);

    // A body that trickles gets 408.
    let mut slow_body = TcpStream::connect(&address).unwrap();
    slow_body
        .write_all(
            format!(
                "POST /webhook/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WEBHOOK_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .unwrap();
    slow_body
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = slow_body.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // SIGTERM with slow clients connected: the process ends within the drain bound.
    let _held: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
            stream
        })
        .collect();
    let stopping = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(8),
            "still running {:?} after SIGTERM",
            stopping.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
