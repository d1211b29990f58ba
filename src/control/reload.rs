//! Reloading the config file (SIGHUP and `POST /v1/reload`): the file is
//! validated, then actions, policies, account types and accounts are
//! rebuilt beside the running snapshot and swapped in at once, under the
//! same write lock as every admin change (so no change is lost to a
//! reload running beside it). Everything is prepared before the swap; a
//! reload that fails anywhere changes nothing. Limiter state and usage of
//! existing accounts carry over (windows of unchanged limits too), an
//! account added back finds its usage again, and in-flight requests and
//! tunnels keep the snapshot they started with. `[mitm] hosts` applies to
//! new tunnels; `[server]`, `[[listeners]]`, `[admin]`, `[state]`, `[tls]`
//! and the rest of `[mitm]` take effect only on restart.

use std::sync::Arc;

use serde_json::{json, Value};

use super::Control;
use crate::config::{self, Config};
use crate::state::persist;
use crate::state::snapshot::Snapshot;

/// What asked for a reload, named in its log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// `POST /v1/reload`.
    Api,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::Api => "POST /v1/reload",
        }
    }
}

/// Reloads the config file; on refusal, the errors (one per line), each
/// also logged as an error, whatever the trigger. Blocks on the store and
/// the write lock: call it off the async threads.
pub fn reload(control: &Control, trigger: Trigger) -> Result<Value, Vec<String>> {
    let outcome = apply(control);
    let trigger = trigger.as_str();
    let path = control
        .config_path
        .get()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match &outcome {
        Ok(summary) => tracing::info!(trigger, %path, %summary, "config reloaded"),
        Err(errors) => {
            for error in errors {
                tracing::error!(trigger, %path, %error, "config reload refused; the running config stays");
            }
        }
    }
    outcome
}

fn apply(control: &Control) -> Result<Value, Vec<String>> {
    let Some(path) = control.config_path.get() else {
        return Err(vec![
            "pacer was started without a config file to reload".into()
        ]);
    };
    let config = config::load(path).map_err(|errors| {
        errors
            .to_string()
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    })?;
    warn_about_restart_only_changes(&control.boot_config, &config);
    let _writing = control.writes.blocking_lock();
    let failed = |e: &dyn std::fmt::Display| vec![e.to_string()];
    let stored = control.load_kept().map_err(|e| failed(&e))?;
    let engine = &control.engine;
    let previous = engine.snapshot.load_full();
    let snapshot = Snapshot::build(
        &config,
        &stored,
        Some(&previous),
        control.journal.clone(),
        &engine.egress,
    )
    .map_err(|e| failed(&e))?;
    persist::restore_new(&control.store, &previous, &snapshot, &engine.clock)
        .map_err(|e| failed(&e))?;
    let summary = json!({
        "actions": snapshot.classifier.len(),
        "policies": snapshot.policies.len(),
        "accounts": snapshot.accounts.len(),
    });
    engine.snapshot.store(Arc::new(snapshot));
    control.in_force.store(Arc::new(config));
    Ok(summary)
}

fn warn_about_restart_only_changes(running: &Config, file: &Config) {
    let sections = [
        ("[server]", running.server != file.server),
        ("[[listeners]]", running.listeners != file.listeners),
        ("[admin]", running.admin != file.admin),
        ("[state]", running.state != file.state),
        ("[tls]", running.tls != file.tls),
        ("[mitm] (but `hosts`)", {
            let keep_hosts = |m: &crate::config::MitmConfig| crate::config::MitmConfig {
                hosts: Vec::new(),
                ..m.clone()
            };
            keep_hosts(&running.mitm) != keep_hosts(&file.mitm)
        }),
    ];
    for (section, changed) in sections {
        if changed {
            tracing::warn!(
                section,
                "changed in the config file; takes effect on restart"
            );
        }
    }
}
