//! Real headless Chromium (Debian's `chromium`), driven through ChromeDriver (Debian's
//! `chromium-driver`) with fantoccini, a maintained WebDriver client. Chromium starts with
//! the flags a container without a display needs and a fresh profile, so no cookie or
//! cache from another run can make a test pass.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::{artifacts_dir, free_port, Process};

/// A running ChromeDriver with one Chromium session.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    _driver: Process,
}

impl Browser {
    /// Starts ChromeDriver and Chromium; logs and the profile go under `dir`.
    pub async fn start(dir: &Path) -> Browser {
        let port = free_port();
        let driver = Process::start(
            dir,
            "chromedriver",
            Path::new("/usr/bin/chromedriver"),
            &[format!("--port={port}"), "--allowed-ips=127.0.0.1".into()],
        );
        let profile = dir.join("chromium-profile");
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = String::new();
        for _ in 0..100 {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        _driver: driver,
                    }
                }
                Err(error) => last_error = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no Chromium session ({last_error}); is chromium-driver installed?\n{}",
            driver.log_tail()
        );
    }

    /// Sets the window's size, as a laptop's or a phone's screen.
    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("the window resized");
    }

    /// Saves a screenshot of the page as `name` in [`artifacts_dir`], and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let path = artifacts_dir().join(name);
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the session (Chromium exits) before ChromeDriver is stopped.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
