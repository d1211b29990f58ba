//! The `pacer` binary run as a user runs it: the shipped `config/pacer.toml`
//! on 127.0.0.1:0 ports, usage kept in memory, its actions also matching a
//! loopback origin, plus the bound SOCKS5 listener of the README's browser
//! recipe; and the Node scripts of `tests/browser`, which need Node,
//! `npm ci` in that folder and Debian's Chromium (installed by `.ci/run`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// The admin key of the shipped config.
pub const ADMIN_KEY: &str = "change-me";

/// The account of the README's bound SOCKS5 listener.
pub const BROWSER_ACCOUNT: &str = "browser-1";

/// A running `pacer` binary with the shipped config.
pub struct Shipped {
    pub http: String,
    pub socks: String,
    pub bound_socks: String,
    pub admin: String,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

/// The shipped config with loopback ports, in-memory state, the loopback
/// origin among the actions' hosts, and the README's bound SOCKS5
/// listener (account [`BROWSER_ACCOUNT`]).
pub fn shipped_config() -> String {
    let shipped = std::fs::read_to_string(repo_path("config/pacer.toml")).expect("shipped config");
    let bound = readme_block("recipe-config: bound-socks5");
    assert!(bound.contains(&format!("account = \"{BROWSER_ACCOUNT}\"")));
    let mut toml = String::new();
    for line in shipped.lines().chain(["", ""]).chain(bound.lines()) {
        let line = match line {
            l if l.starts_with("addr = ") => "addr = \"127.0.0.1:0\"".to_owned(),
            l if l.starts_with("path = ") => "path = \"memory\"".to_owned(),
            l if l.starts_with("hosts = [\"*.example.com\"]") => {
                "hosts = [\"*.example.com\", \"127.0.0.1\"]".to_owned()
            }
            l => l.to_owned(),
        };
        toml.push_str(&line);
        toml.push('\n');
    }
    assert!(
        toml.contains("\"127.0.0.1\"]"),
        "the shipped actions name hosts"
    );
    toml
}

/// The fenced block that follows `<!-- marker -->` in README.md.
pub fn readme_block(marker: &str) -> String {
    let readme = std::fs::read_to_string(repo_path("README.md")).expect("README.md");
    let tag = format!("<!-- {marker} -->");
    let after = readme
        .split_once(&tag)
        .unwrap_or_else(|| panic!("README.md has no `{tag}`"))
        .1;
    let fence = after.find("```").expect("a fenced block follows");
    let body = after[fence..].split_once('\n').expect("fence line").1;
    let end = body.find("\n```").expect("the block ends");
    body[..=end].to_owned()
}

impl Shipped {
    /// Starts the binary; returns once it listens.
    pub async fn start() -> Shipped {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("pacer.toml");
        std::fs::write(&config, shipped_config()).expect("write config");
        // http, socks5, bound socks5, then the admin API.
        let (child, addrs) = super::spawn_pacer(&config, 4).await;
        Shipped {
            http: addrs[0].clone(),
            socks: addrs[1].clone(),
            bound_socks: addrs[2].clone(),
            admin: addrs[3].clone(),
            child,
            _dir: dir,
        }
    }

    /// `GET path` on the admin API with the key, as JSON.
    pub async fn admin_get(&self, path: &str) -> Value {
        let response = reqwest::Client::new()
            .get(format!("http://{}{path}", self.admin))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("admin API answers");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("admin JSON")
    }

    /// Requests counted today for `account`.
    pub async fn usage(&self, account: &str) -> u64 {
        let view = self.admin_get(&format!("/v1/accounts/{account}")).await;
        view["usage"]["all"].as_u64().expect("usage.all")
    }

    /// Whether the binary is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// A path in the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// `tests/browser`, the Node package of the browser tests and recipes.
pub fn browser_dir() -> PathBuf {
    repo_path("tests/browser")
}

/// Panics with what to install when Node, the `tests/browser` packages or
/// Chromium is missing.
pub fn require_browser_tools() {
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is not installed: `apt-get install nodejs npm` (.ci/run does)"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser (.ci/run does)"
    );
    require_chromium();
}

/// Panics with what to install when Debian's Chromium is missing.
pub fn require_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does)"
    );
}

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs `node script` in `dir` with `envs`, for at most `limit`; returns
/// its stdout, panicking with its output if it fails.
pub async fn run_node(dir: &Path, script: &Path, envs: &[(&str, &str)], limit: Duration) -> String {
    let mut command = tokio::process::Command::new("node");
    command
        .arg(script)
        .current_dir(dir)
        .envs(envs.iter().copied())
        .kill_on_drop(true);
    run(command, limit).await
}

/// Runs `command` for at most `limit`; its stdout, or a panic with its
/// status, stdout and stderr.
pub async fn run(mut command: tokio::process::Command, limit: Duration) -> String {
    let what = format!("{:?}", command.as_std());
    let output = tokio::time::timeout(limit, command.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
        .unwrap_or_else(|err| panic!("{what} could not start: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
