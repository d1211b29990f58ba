//! `loadgen`: the load generator for pacer and the proxies it is compared
//! with. It drives a forward proxy through each of its doors over loopback
//! and reports requests/s, MB/s, latency p50/p99/p99.9 and errors by kind:
//!
//! - `http`: absolute-form GET through an HTTP proxy, keep-alive, one hyper
//!   client connection per worker;
//! - `connect`: a short CONNECT tunnel per request (connect, CONNECT, one
//!   request, close); with `--bulk`, each response must be at least 1 MiB;
//!   with `--keep-tunnel`, one tunnel per worker carries every request;
//! - `socks5`: the same through SOCKS5, with RFC 1929 auth when `--auth`;
//! - `direct`: the same requests straight to the origin, the ceiling
//!   (`--fresh` for a new connection per request, like a tunnel);
//! - `idle`: hold N idle keep-alive connections or tunnels, for memory.
//!
//! Run it with `cargo bench --bench loadgen -- MODE ARGS`, or build it once
//! (`cargo bench --bench loadgen --no-run`) and run the printed executable.
//! It only ever targets loopback addresses. See BENCHMARKS.md.
//!
//! Layout: [`cli`] (arguments to a validated plan), [`wire`] (one
//! connection or tunnel and one HTTP exchange; errors by kind), [`run`]
//! (workers and the time/count schedule), [`idle`] (the idle hold),
//! [`report`] (histograms and output).

#[path = "loadgen/cli.rs"]
mod cli;
#[path = "loadgen/idle.rs"]
mod idle;
#[path = "loadgen/report.rs"]
mod report;
#[path = "loadgen/run.rs"]
mod run;
#[path = "loadgen/wire.rs"]
mod wire;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{Cli, Job, Output};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(mode) = cli.mode else {
        // `cargo bench` with no arguments runs every bench: explain, succeed.
        println!("loadgen: no mode given, nothing measured. Usage:\n");
        let _ = Cli::command().print_help();
        return ExitCode::SUCCESS;
    };
    let (job, output) = match Job::from_mode(mode) {
        Ok(pair) => pair,
        Err(message) => {
            eprintln!("loadgen: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match runtime(output) {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("loadgen: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(execute(job, output))
}

fn runtime(output: Output) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = output.threads {
        builder.worker_threads(threads.max(1));
    }
    builder.enable_all().build()
}

async fn execute(job: Job, output: Output) -> ExitCode {
    match job {
        Job::Load(plan, settings) => {
            let report = run::load(plan, settings).await;
            if output.json {
                println!("{}", report.json());
            } else {
                print!("{}", report.human());
            }
            exit_code(report.requests() > 0)
        }
        Job::Idle(plan, settings) => {
            let open = idle::hold(plan, settings, output.json).await;
            exit_code(open > 0)
        }
    }
}

/// Failure when nothing at all succeeded, so scripts notice a dead peer.
fn exit_code(any_success: bool) -> ExitCode {
    if any_success {
        ExitCode::SUCCESS
    } else {
        eprintln!("loadgen: no request succeeded");
        ExitCode::FAILURE
    }
}
