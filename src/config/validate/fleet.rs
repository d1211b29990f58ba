//! `[fleet]`, with env `PACER_REDIS_URL`: the URLs (checked by the Redis
//! client's own parser, `redis://` or `rediss://` only), the Cluster flag,
//! the key prefix, the admission timeout and the fault mode.

use toml::Spanned;

use super::Ctx;
use crate::config::file::{FleetFile, Text};
use crate::config::{FleetConfig, OnUnavailable, Secret, REDIS_URL_ENV};

const MODES: &[(&str, OnUnavailable)] = &[
    ("refuse", OnUnavailable::Refuse),
    ("local", OnUnavailable::Local),
];

/// The fleet, when `[fleet]` names a Redis or the environment does.
pub fn fleet(cx: &mut Ctx, section: Option<&Spanned<FleetFile>>) -> Option<FleetConfig> {
    let from_env = cx.env(REDIS_URL_ENV).filter(|url| !url.trim().is_empty());
    let file = section.map(Spanned::get_ref);
    let d = FleetConfig::default();
    let nodes = match (&from_env, file.and_then(|f| f.redis.as_ref())) {
        (Some(url), _) => env_nodes(cx, url),
        (None, Some(redis)) => file_nodes(cx, redis),
        (None, None) => {
            if section.is_some() {
                cx.at_key(
                    &["fleet"],
                    format!("[fleet] needs `redis` (a redis:// or rediss:// URL) or env {REDIS_URL_ENV}"),
                );
            }
            return None;
        }
    };
    let cluster = file.and_then(|f| f.cluster.as_ref());
    let fleet = FleetConfig {
        cluster: cluster.is_some_and(|c| *c.get_ref()),
        key_prefix: file
            .and_then(|f| f.key_prefix.as_ref())
            .and_then(|p| key_prefix(cx, p))
            .unwrap_or(d.key_prefix),
        timeout: cx.positive_duration(file.and_then(|f| f.timeout.as_ref()), "timeout", d.timeout),
        on_unavailable: file
            .and_then(|f| f.on_unavailable.as_ref())
            .and_then(|m| cx.choice(m, "on_unavailable", MODES))
            .unwrap_or_default(),
        nodes,
    };
    if fleet.nodes.len() > 1 && !fleet.cluster {
        match cluster {
            Some(flag) => cx.at(
                flag,
                "several Redis URLs name the seed nodes of a Redis Cluster: set `cluster = true`",
            ),
            None => cx.at_key(
                &["fleet", "redis"],
                "several Redis URLs name the seed nodes of a Redis Cluster: set `cluster = true`",
            ),
        }
    }
    Some(fleet)
}

/// `PACER_REDIS_URL`: one URL, or a comma list of seed nodes.
fn env_nodes(cx: &mut Ctx, value: &str) -> Vec<Secret> {
    let mut nodes = Vec::new();
    for url in value.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        match url_problem(url) {
            None => nodes.push(Secret::new(url)),
            Some(problem) => cx.at_key(&["fleet"], format!("env {REDIS_URL_ENV}: {problem}")),
        }
    }
    nodes
}

fn file_nodes(cx: &mut Ctx, redis: &Spanned<toml::Value>) -> Vec<Secret> {
    let urls: Vec<&str> = match redis.get_ref() {
        toml::Value::String(url) => vec![url.as_str()],
        toml::Value::Array(list) if list.iter().all(toml::Value::is_str) => {
            list.iter().filter_map(toml::Value::as_str).collect()
        }
        _ => {
            cx.at(redis, "`redis` must be a URL or a list of URLs");
            return Vec::new();
        }
    };
    if urls.is_empty() {
        cx.at(redis, "`redis` must name at least one URL");
    }
    let mut nodes = Vec::new();
    for url in urls {
        match url_problem(url) {
            None => nodes.push(Secret::new(url)),
            Some(problem) => cx.at(redis, format!("`redis`: {problem}")),
        }
    }
    nodes
}

/// Why `url` cannot name a Redis node, if it cannot. The password is never
/// part of the message.
fn url_problem(url: &str) -> Option<String> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    if !matches!(scheme, Some("redis" | "rediss")) {
        return Some("expected a redis:// or rediss:// URL".into());
    }
    match redis::IntoConnectionInfo::into_connection_info(url) {
        Ok(_) => None,
        Err(err) => Some(format!("not a valid Redis URL ({})", err.category())),
    }
}

/// A prefix every key starts with: non-empty, without the braces of a
/// Redis Cluster hash tag (pacer puts `{account}` after it).
fn key_prefix(cx: &mut Ctx, prefix: &Text) -> Option<String> {
    let text = cx.non_empty(prefix, "`key_prefix`")?;
    if text.contains(['{', '}']) || text.chars().any(|c| c.is_control() || c == ' ') {
        cx.at(
            prefix,
            "`key_prefix` must not contain `{`, `}`, spaces or control characters",
        );
        return None;
    }
    Some(text)
}
