//! Creates a Koji-shaped database with generated data, or holds idle connections to one:
//! the benchmark's way of making a hub at a given scale.

use clap::{Parser, Subcommand};
use koji_testkit::{generate, test_db::connect, KojiVersion, Scale};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the Koji tables in an empty database and fill them.
    Generate {
        /// Connection string of the (empty) target database.
        #[arg(long)]
        url: String,
        /// Koji version whose layout to create: 1.15, 1.16 or 1.33.
        #[arg(long, default_value = "1.33")]
        koji_version: String,
        /// Number of builders.
        #[arg(long, default_value_t = 100)]
        hosts: i32,
        /// Channels beyond Koji's eight.
        #[arg(long, default_value_t = 4)]
        extra_channels: i32,
        /// FREE, OPEN and ASSIGNED tasks.
        #[arg(long, default_value_t = 300)]
        active_tasks: i32,
        /// CLOSED, CANCELED and FAILED tasks.
        #[arg(long, default_value_t = 100_000)]
        finished_tasks: i32,
    },
    /// Scrape URL COUNT times, one after another, and print the latency median and p99.
    TimeScrapes {
        /// The /metrics URL.
        #[arg(long)]
        url: String,
        /// Number of timed scrapes (after five untimed warm-up scrapes).
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// For https: CA certificates (PEM) to trust.
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
        /// For mutual TLS: client certificate and key (PEM), in this order.
        #[arg(long, num_args = 2, value_names = ["CERT", "KEY"])]
        client_cert: Option<Vec<std::path::PathBuf>>,
        /// Open a new connection (and TLS handshake) for every scrape instead of keeping
        /// one alive as Prometheus does.
        #[arg(long)]
        new_connections: bool,
        /// Ask for a gzip-compressed answer, as Prometheus does on every scrape (the size
        /// reported is then what travels).
        #[arg(long)]
        gzip: bool,
    },
    /// Create a build-directory tree: DIRS directories (in mock-chroot-like nesting under
    /// top-level builds of 100 directories each) holding FILES_PER_DIR small files each.
    MakeTree {
        /// Where to create it (created if missing; must be empty).
        #[arg(long)]
        root: std::path::PathBuf,
        /// Directories in all.
        #[arg(long, default_value_t = 10_000)]
        dirs: usize,
        /// Files in each directory.
        #[arg(long, default_value_t = 100)]
        files_per_dir: usize,
    },
    /// Post COUNT distinct alerts (one per delivery) to a koji-remediator webhook from
    /// CONCURRENCY workers; print acknowledgement latency percentiles and the rate.
    PostAlerts {
        /// The webhook URL.
        #[arg(long)]
        url: String,
        /// Bearer token.
        #[arg(long)]
        token: String,
        /// Alert name to send.
        #[arg(long, default_value = "KojiBenchAlert")]
        alertname: String,
        /// Deliveries in all.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// Deliveries in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Open COUNT connections and keep them idle until killed, like a hub's httpd workers.
    HoldConnections {
        /// Connection string.
        #[arg(long)]
        url: String,
        /// How many connections.
        #[arg(long)]
        count: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate {
            url,
            koji_version,
            hosts,
            extra_channels,
            active_tasks,
            finished_tasks,
        } => {
            let version = KojiVersion::parse(&koji_version)
                .ok_or_else(|| anyhow::anyhow!("unknown Koji version {koji_version}"))?;
            let client = connect(&url).await?;
            version.create_schema(&client).await?;
            let scale = Scale {
                hosts,
                extra_channels,
                active_tasks,
                finished_tasks,
            };
            generate(&client, version, scale).await?;
            println!("generated {scale:?} in Koji {koji_version} layout");
        }
        Command::TimeScrapes {
            url,
            count,
            ca_file,
            client_cert,
            new_connections,
            gzip,
        } => {
            let mut client = reqwest::Client::builder();
            if let Some(ca_file) = ca_file {
                client = client.add_root_certificate(reqwest::Certificate::from_pem(
                    &std::fs::read(ca_file)?,
                )?);
            }
            if let Some(files) = client_cert {
                let pem = [std::fs::read(&files[0])?, std::fs::read(&files[1])?].concat();
                client = client.identity(reqwest::Identity::from_pem(&pem)?);
            }
            if new_connections {
                client = client.pool_max_idle_per_host(0);
            }
            time_scrapes(client.build()?, &url, count, gzip).await?
        }
        Command::PostAlerts {
            url,
            token,
            alertname,
            count,
            concurrency,
        } => post_alerts(&url, &token, &alertname, count, concurrency).await?,
        Command::MakeTree {
            root,
            dirs,
            files_per_dir,
        } => make_tree(&root, dirs, files_per_dir)?,
        Command::HoldConnections { url, count } => {
            let mut clients = Vec::with_capacity(count);
            for _ in 0..count {
                let client = connect(&url).await?;
                client.simple_query("SELECT 1").await?;
                clients.push(client);
            }
            println!("holding {count} connections");
            tokio::signal::ctrl_c().await?;
            drop(clients);
        }
    }
    Ok(())
}

/// What Prometheus 2.x sends, so each exporter answers in the format it would in production.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

async fn time_scrapes(
    client: reqwest::Client,
    url: &str,
    count: usize,
    gzip: bool,
) -> anyhow::Result<()> {
    let scrape = || async {
        let started = std::time::Instant::now();
        let mut request = client.get(url).header("Accept", PROMETHEUS_ACCEPT);
        if gzip {
            // reqwest is built without decompression: the body stays as sent.
            request = request.header("Accept-Encoding", "gzip");
        }
        let response = request.send().await?.error_for_status()?;
        let bytes = response.bytes().await?.len();
        Ok::<_, anyhow::Error>((started.elapsed(), bytes))
    };
    for _ in 0..5 {
        scrape().await?;
    }
    let mut latencies = Vec::with_capacity(count);
    let mut bytes = 0;
    for _ in 0..count {
        let (elapsed, size) = scrape().await?;
        latencies.push(elapsed.as_secs_f64() * 1000.0);
        bytes = size;
    }
    latencies.sort_by(f64::total_cmp);
    let median = latencies[latencies.len() / 2];
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    println!("median_ms={median:.2} p99_ms={p99:.2} bytes={bytes} scrapes={count}");
    Ok(())
}

/// Builds the tree with sizes from 0 to 8 KiB in a fixed pattern, so every run makes the
/// same tree.
fn make_tree(root: &std::path::Path, dirs: usize, files_per_dir: usize) -> anyhow::Result<()> {
    let content = vec![b'k'; 8192];
    for index in 0..dirs {
        let build = format!("f40-build-{}-{}", index / 100, index % 7);
        let dir = root
            .join(build)
            .join("root/usr/share")
            .join(format!("pkg-{:02}", (index % 100) / 10))
            .join(format!("d{}", index % 10));
        std::fs::create_dir_all(&dir)?;
        for file in 0..files_per_dir {
            let size = (index * 7 + file * 13) % content.len();
            std::fs::write(dir.join(format!("f{file}")), &content[..size])?;
        }
    }
    println!(
        "made {dirs} directories of {files_per_dir} files under {}",
        root.display()
    );
    Ok(())
}

/// The captured Alertmanager delivery the load is made from.
const CAPTURED_FIRING: &str =
    include_str!("../../../tests/fixtures/alertmanager/builder-overloaded-firing.json");

async fn post_alerts(
    url: &str,
    token: &str,
    alertname: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let template: serde_json::Value = serde_json::from_str(CAPTURED_FIRING)?;
    let client = reqwest::Client::new();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (client, next, template) = (client.clone(), next.clone(), template.clone());
        async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= count {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let mut body = template.clone();
                let alert = &mut body["alerts"][0];
                alert["labels"]["alertname"] = alertname.into();
                alert["labels"]["host"] = format!("bench-host-{n}").into();
                alert["fingerprint"] = format!("{n:016x}").into();
                let sent = std::time::Instant::now();
                client
                    .post(url)
                    .bearer_auth(token)
                    .header("Content-Type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await?
                    .error_for_status()?;
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
        }
    });
    let mut latencies: Vec<f64> = Vec::with_capacity(count);
    for result in futures::future::join_all(workers).await {
        latencies.extend(result?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "p50_ms={:.2} p99_ms={:.2} rate={:.0} deliveries={count} seconds={elapsed:.1}",
        at(0.5),
        at(0.99),
        count as f64 / elapsed
    );
    Ok(())
}
