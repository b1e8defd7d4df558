//! An early error answer on HTTP/2 (a 401 to a POST whose body the server never reads)
//! reaches the client as a status, not as a stream reset ("Stream error in the HTTP/2
//! framing layer", as curl used to report). Checked with curl, a client that reports
//! resets as errors.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_401_to_a_large_post_over_http2_arrives_as_a_status() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("agent.token"), "agent-token-for-h2-test-0123456789").unwrap();
    std::fs::write(
        d.join("agent.toml"),
        format!(
            "[agent]\ntoken_file = \"{d}/agent.token\"\nactions = [\"restart_local_services\"]\nhost_name = \"h\"\nstate_dir = \"{d}/state\"\n[agent.restart_local_services]\nservices = [\"x\"]\n",
            d = d.display()
        ),
    )
    .unwrap();
    std::fs::write(d.join("body"), vec![b'x'; 512 * 1024]).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_koji-remediator"))
        .args(["--config.file", d.join("agent.toml").to_str().unwrap()])
        .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the agent did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let curl = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
        ])
        .args(["--http2-prior-knowledge", "-X", "POST"])
        .args(["-H", "Authorization: Bearer wrong-token-wrong-token-000"])
        .arg("--data-binary")
        .arg(format!("@{}", d.join("body").display()))
        .arg(format!("http://127.0.0.1:{port}/api/v1/agent/run"))
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(curl.status.success(), "{curl:?}");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "401 2");
}
