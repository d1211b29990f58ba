//! Reloading the config file (SIGHUP and `POST /v1/reload`): the file is
//! validated, then actions, policies, account types and accounts are
//! rebuilt and swapped in at once. Limiter state and usage of existing
//! accounts carry over (windows of unchanged limits too); in-flight
//! requests and tunnels keep what they started with. An invalid file is
//! refused with its errors and the running config stays. `[server]`,
//! `[[listeners]]`, `[admin]`, `[state]`, `[tls]` and `[mitm]` take effect
//! only on restart.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::app::App;
use crate::config::{self, Config};
use crate::runtime::Runtime;

/// Reloads the config file; on refusal, the errors (one per line).
pub fn reload(app: &App) -> Result<Value, Vec<String>> {
    let Some(path) = app.config_path.get() else {
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
    warn_about_restart_only_changes(&app.boot_config, &config);
    let changes = app.store.load_changes().map_err(|e| vec![e.to_string()])?;
    let previous = app.runtime.load_full();
    let runtime = Runtime::build(
        &config,
        &changes,
        Some(&previous),
        app.journal.clone(),
        &app.egress,
    )
    .map_err(|e| vec![e.to_string()])?;
    persist_new_accounts(app, &previous, &runtime).map_err(|e| vec![e.to_string()])?;
    let summary = json!({
        "actions": runtime.classifier.len(),
        "policies": runtime.policies.len(),
        "accounts": runtime.accounts.len(),
    });
    app.runtime.store(Arc::new(runtime));
    tracing::info!(path = %path.display(), %summary, "config reloaded");
    Ok(summary)
}

/// A new account gets a durable usage record before its first request,
/// as at start-up.
fn persist_new_accounts(
    app: &App,
    previous: &Runtime,
    runtime: &Runtime,
) -> Result<(), crate::store::StoreError> {
    let fresh: Vec<_> = runtime
        .accounts
        .iter()
        .filter(|a| previous.accounts.get(&a.id).is_none())
        .filter_map(|a| {
            let (record, mark) = a.limiter.snapshot(&runtime.classifier, true)?;
            Some((a.clone(), record, mark))
        })
        .collect();
    app.store
        .save_usage(fresh.iter().map(|(a, record, _)| (&*a.id, record)))?;
    for (account, _, mark) in fresh {
        account.limiter.durable(mark);
    }
    Ok(())
}

fn warn_about_restart_only_changes(running: &Config, file: &Config) {
    let sections = [
        ("[server]", running.server != file.server),
        ("[[listeners]]", running.listeners != file.listeners),
        ("[admin]", running.admin != file.admin),
        ("[state]", running.state != file.state),
        ("[tls]", running.tls != file.tls),
        ("[mitm]", running.mitm != file.mitm),
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
