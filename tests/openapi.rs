//! `GET /openapi.json` against the live admin API: schemathesis (PyPI,
//! installed by `.ci/run`) generates requests from the document for every
//! operation and checks that no answer is a 5xx, that every status, content
//! type and body is the one the document describes (its schemas forbid
//! undocumented fields), so every error is an envelope. `PATCH
//! /v1/accounts/{id}` is left out: it dials the proxy in its body, and
//! generated hosts would leave the machine (tests/admin_api.rs covers it).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::admin::KEY;
use common::*;

/// schemathesis: `PACER_SCHEMATHESIS`, else the venv `.ci/run` makes.
fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("PACER_SCHEMATHESIS") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-python/bin/schemathesis");
    assert!(
        venv.exists(),
        "schemathesis is not installed: run .ci/run, or \
         `python3 -m venv target/ci-python && target/ci-python/bin/pip install -r tests/python/requirements.txt`"
    );
    venv
}

fn config() -> String {
    format!(
        r#"
[admin]
addr = "127.0.0.1:0"
api_keys = ["{KEY}"]

[[listeners]]
protocol = "http"
addr = "127.0.0.1:0"

[state]
path = "memory"

[[actions]]
name = "profiles"
paths = ["/in/*"]

[policies.standard_policy]
name = "Standard"
free = true
[policies.standard_policy.limits]
profiles = 100
all_per_minute = 30
batch = 40
batch_hours = 1

[policies.pro]
name = "Pro"
[policies.pro.limits]
all_per_second = 50

[account_types.sales]
policy = "standard_policy"
[account_types.sales.max]
profiles = 300

[[accounts]]
id = "acct-1"
secret = "{SECRET}"
type = "sales"

[[upstreams]]
url = "http://user:pass@127.0.0.1:9"
country = "US"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_the_live_api_matches_the_document() {
    let tool = schemathesis();
    let proxy = Proxy::start(&config()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("schemathesis.toml"),
        "[parameters]\n\"query.account\" = \"acct-1\"\n",
    )
    .expect("schemathesis config");
    let admin = format!("http://{}", proxy.admin);
    let run = tokio::task::spawn_blocking(move || {
        Command::new(tool)
            .current_dir(dir.path())
            .args(["--config-file", "schemathesis.toml", "run"])
            .arg(format!("{admin}/openapi.json"))
            .args(["-H", &format!("Authorization: Bearer {KEY}")])
            .args([
                "--checks",
                "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
                "--exclude-operation-id",
                "patchAccount",
                "--max-examples",
                "30",
                "--seed",
                "7",
                "--no-color",
            ])
            .output()
            .expect("schemathesis runs")
    })
    .await
    .expect("schemathesis task");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "schemathesis found answers that break the document:\n{out}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(out.contains("passed"), "{out}");
}
