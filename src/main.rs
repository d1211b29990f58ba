//! The `pacer` command: `pacer [--config FILE]` runs the proxy,
//! `pacer check --config FILE` validates a config, `pacer ca init` writes a
//! local CA. Logging goes to stderr through `tracing`, filtered by
//! `RUST_LOG` (default `info`), off the request threads
//! ([`pacer::telemetry::logging`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use std::sync::Arc;

use pacer::config::{self, Config};
use pacer::control::{reload, Control};
use pacer::server::Server;

/// jemalloc: less memory per idle connection and cheaper allocation than
/// glibc's malloc (BENCHMARKS.md has the figures).
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "pacer",
    version,
    about = "A forward proxy that paces automation accounts"
)]
struct Cli {
    /// The config file.
    #[arg(short, long, global = true, default_value = "config/pacer.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the config file: exit 0, or print every error and exit 1.
    Check,
    /// Manage the local CA used for TLS interception.
    Ca {
        #[command(subcommand)]
        action: CaAction,
    },
}

#[derive(Debug, Subcommand)]
enum CaAction {
    /// Write a new CA certificate and key (`ca.pem`, `ca.key`).
    Init {
        /// Folder to write into.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Replace an existing CA (clients trusting the old one must be
        /// given the new certificate).
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = pacer::telemetry::logging::init();
    let result = match cli.command {
        None => run(&cli.config),
        Some(Command::Check) => Ok(check(&cli.config)),
        Some(Command::Ca {
            action: CaAction::Init { dir, force },
        }) => ca_init(&dir, force),
    };
    // Every queued log line is written before the last word.
    drop(log);
    result.unwrap_or_else(|err| {
        eprintln!("pacer: {err:#}");
        ExitCode::FAILURE
    })
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errors| {
        eprint!("{errors}");
        ExitCode::FAILURE
    })
}

fn check(path: &Path) -> ExitCode {
    match load(path) {
        Ok(_) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn ca_init(dir: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let written = pacer::intercept::ca::init(dir, force)?;
    println!(
        "wrote {} (install in clients) and {} (keep private)",
        written.cert.display(),
        written.key.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    // Connections are served on one runtime per core (`pacer::ingress::threads`);
    // this one runs the admin API, the usage flusher and signals.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(&config, path))?;
    // Whatever is still running after the grace period is dropped here.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: &Config, path: &Path) -> anyhow::Result<()> {
    let server = Server::bind_per_core(config)
        .await?
        .reload_from(path.to_path_buf());
    for (protocol, addr) in server.local_addrs() {
        tracing::info!(?protocol, %addr, "listening");
    }
    if let Some(addr) = server.admin_addr() {
        tracing::info!(%addr, "admin API listening");
    }
    let control = server.control();
    server.run(stop_signal(control)).await?;
    Ok(())
}

/// Reloads the config file (SIGHUP), off the async threads; the reload
/// logs its outcome.
async fn reload(control: Arc<Control>) {
    let reloading = move || reload::reload(&control, reload::Trigger::Signal);
    if let Err(err) = tokio::task::spawn_blocking(reloading).await {
        tracing::error!(%err, "config reload failed");
    }
}

/// Resolves on SIGINT or SIGTERM; reloads on SIGHUP.
#[cfg(unix)]
async fn stop_signal(control: Arc<Control>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stopping on Ctrl-C only");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term.recv() => return,
            _ = hup.recv() => reload(control.clone()).await,
        }
    }
}

#[cfg(not(unix))]
async fn stop_signal(_control: Arc<Control>) {
    let _ = tokio::signal::ctrl_c().await;
}
