//! The `termroom` binary: parses the command line and dispatches.
#![forbid(unsafe_code)]

use clap::Parser;
use server::cli::{Cli, Command, ServeDefaults};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,russh=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeDefaults::parse_from(["termroom"]).serve));
    match command {
        Command::Serve(args) => server::web::run(args, cli.store).await,
        Command::User(cmd) => server::admin::user(cmd, &cli.store).await,
        Command::Namespace(cmd) => server::admin::namespace(cmd, &cli.store).await,
        Command::Host(cmd) => server::admin::host(cmd, &cli.store).await,
        Command::Recording(cmd) => server::admin::recording(cmd, &cli.store).await,
        Command::Guard(cmd) => server::admin::guard(cmd, &cli.store).await,
        Command::Session(cmd) => server::admin::session(cmd, &cli.store).await,
        Command::Audit(cmd) => server::admin::audit(cmd, &cli.store).await,
    }
}
