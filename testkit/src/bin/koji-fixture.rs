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
