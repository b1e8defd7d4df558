//! A real SMTP server for tests: Python's aiosmtpd (installed by tools/install-test-deps)
//! on a free loopback port, storing every message it accepts in a maildir. Stopped when
//! dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A running SMTP sink.
#[derive(Debug)]
pub struct SmtpSink {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    maildir: PathBuf,
    child: Child,
}

impl SmtpSink {
    /// Starts the sink with its maildir under `dir`, and waits until it accepts connections.
    pub fn start(dir: &Path) -> SmtpSink {
        SmtpSink::spawn(dir, |port, maildir| {
            let mut command = Command::new("python3");
            command
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(maildir);
            command
        })
    }

    /// A sink that requires STARTTLS (with `cert_file` and `key_file`) and a login as
    /// `user` with `password` before it takes a message, as a relay without a local MTA
    /// would.
    pub fn start_secure(
        dir: &Path,
        cert_file: &Path,
        key_file: &Path,
        user: &str,
        password: &str,
    ) -> SmtpSink {
        SmtpSink::spawn(dir, |port, maildir| {
            let mut command = Command::new("python3");
            command
                .arg("-c")
                .arg(SECURE_SINK)
                .arg(port.to_string())
                .arg(maildir)
                .args([cert_file, key_file])
                .args([user, password]);
            command
        })
    }

    /// Runs the command `make` gives for a free port and the maildir, and waits until it
    /// accepts connections.
    fn spawn(dir: &Path, make: impl FnOnce(u16, &Path) -> Command) -> SmtpSink {
        let port = crate::ports::free_port();
        let maildir = dir.join("maildir");
        let child = make(port, &maildir)
            .spawn()
            .expect("python3 with aiosmtpd (tools/install-test-deps installs it)");
        let sink = SmtpSink {
            port,
            maildir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        sink
    }

    /// The messages received so far, each as its full text, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut found: Vec<(std::time::SystemTime, String)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let modified = entry.metadata().ok()?.modified().ok()?;
                Some((modified, std::fs::read_to_string(entry.path()).ok()?))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, text)| text).collect()
    }
}

/// aiosmtpd with STARTTLS required and a login required after it; arguments: port,
/// maildir, certificate, key, user, password.
const SECURE_SINK: &str = r#"
import ssl, sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

port, maildir, cert, key, user, password = sys.argv[1:]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)

def authenticate(server, session, envelope, mechanism, data):
    ok = (isinstance(data, LoginPassword)
          and data.login.decode() == user and data.password.decode() == password)
    # handled=False: aiosmtpd answers 535 itself on failure.
    return AuthResult(success=ok, handled=False)

controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port),
                        tls_context=context, require_starttls=True,
                        authenticator=authenticate, auth_required=True,
                        auth_require_tls=True)
controller.start()
threading.Event().wait()
"#;

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
