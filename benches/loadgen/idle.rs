//! The idle mode: open N connections (keep-alive HTTP through the proxy or to
//! the origin, or CONNECT/SOCKS5 tunnels), send one request on each, then
//! hold them idle so that a script can read the proxy's memory. Prints a
//! `ready` line once every connection is open (or the open phase timed
//! out), and a `done` line after the hold; both say how many are still open.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::cli::{IdleSettings, Plan};
use crate::report::round3;
use crate::wire::{self, Conn, ErrorKind, Outcome};

/// Time for peers that close after the first response to be seen closing.
const SETTLE: Duration = Duration::from_millis(500);

/// What the open phase left.
struct Opened {
    conns: Vec<Conn>,
    errors: BTreeMap<ErrorKind, u64>,
    took: Duration,
}

/// Opens, reports `ready`, holds, reports `done`. Returns how many
/// connections were open when the hold began.
pub async fn hold(plan: Plan, settings: IdleSettings, json: bool) -> usize {
    let plan = Arc::new(plan);
    let opened = open_all(&plan, settings).await;
    tokio::time::sleep(SETTLE).await;
    let open = count_open(&opened.conns);
    print_event(&plan, "ready", open, &opened, json);
    tokio::time::sleep(settings.hold).await;
    let still = count_open(&opened.conns);
    print_event(&plan, "done", still, &opened, json);
    open
}

async fn open_all(plan: &Arc<Plan>, settings: IdleSettings) -> Opened {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + settings.open_timeout;
    let gate = Arc::new(Semaphore::new(settings.open_parallel));
    let tasks: Vec<_> = (0..plan.connections)
        .map(|_| {
            let plan = plan.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.map_err(|_| ErrorKind::Io)?;
                let opening = tokio::time::timeout(plan.timeout, open_one(&plan));
                match tokio::time::timeout_at(deadline, opening).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(_)) | Err(_) => Err(ErrorKind::Timeout),
                }
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(tasks.len());
    let mut errors = BTreeMap::new();
    for task in tasks {
        match task.await {
            Ok(Ok(conn)) => conns.push(conn),
            Ok(Err(kind)) => *errors.entry(kind).or_insert(0) += 1,
            Err(_) => *errors.entry(ErrorKind::Io).or_insert(0) += 1,
        }
    }
    Opened {
        conns,
        errors,
        took: started.elapsed(),
    }
}

/// One connection with one request done on it, kept open.
async fn open_one(plan: &Plan) -> Outcome<Conn> {
    let mut conn = wire::open(plan).await?;
    wire::exchange(&mut conn, wire::request(plan, false), plan.min_body).await?;
    Ok(conn)
}

fn count_open(conns: &[Conn]) -> usize {
    conns.iter().filter(|c| c.is_open()).count()
}

fn print_event(plan: &Plan, event: &str, open: usize, opened: &Opened, json: bool) {
    let errors: serde_json::Map<String, Value> = opened
        .errors
        .iter()
        .map(|(k, n)| (k.name().to_owned(), json!(n)))
        .collect();
    if json {
        let line = json!({
            "event": event,
            "mode": "idle",
            "via": plan.door.name(),
            "requested": plan.connections,
            "opened": opened.conns.len(),
            "open": open,
            "errors": errors,
            "open_s": round3(opened.took.as_secs_f64()),
        });
        println!("{line}");
    } else {
        println!(
            "{event}: idle via {}: {open} of {} connections open ({} opened in {:.2}s; errors {:?})",
            plan.door.name(),
            plan.connections,
            opened.conns.len(),
            opened.took.as_secs_f64(),
            errors,
        );
    }
}
