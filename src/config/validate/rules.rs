//! `[[actions]]`, `[policies.*]` and `[account_types.*]`: the rules that
//! classify requests and the limit tables that name them.
//!
//! A policy or type with errors is still returned (with defaults for the
//! bad fields), so references to it do not cascade into more errors; the
//! whole config is refused anyway.

use std::collections::BTreeMap;
use std::time::Duration;

use http::Method;
use toml::Spanned;

use super::{Ctx, FirstSeen};
use crate::config::file::{
    AccountTypeFile, ActionFile, BackoffFile, DurationText, LimitTable, PolicyFile, Text,
};
use crate::config::limit_key::{check_action_name, Limit, LimitKey, LimitNumber};
use crate::config::{
    AccountType, ActionRule, Backoff, Policy, PolicyMode, MAX_WINDOW, STANDARD_POLICY,
};

pub fn actions(cx: &mut Ctx, list: &[Spanned<ActionFile>]) -> Vec<ActionRule> {
    let mut seen = FirstSeen::new();
    let mut out = Vec::new();
    for entry in list {
        let f = entry.get_ref();
        let Some(name) = &f.name else {
            cx.at(entry, "action needs a `name`");
            continue;
        };
        if let Err(message) = check_action_name(name.get_ref()) {
            cx.at(name, message);
        }
        if let Some(first) = seen.earlier(name.get_ref().as_str(), &name.span()) {
            let line = cx.line_of(first);
            cx.at(
                name,
                format!(
                    "duplicate action `{}` (first defined at line {line})",
                    name.get_ref()
                ),
            );
            continue;
        }
        out.push(ActionRule {
            name: name.get_ref().clone(),
            methods: f.methods.as_ref().and_then(|m| methods(cx, m)),
            hosts: f.hosts.as_ref().and_then(|h| globs(cx, h, "hosts")),
            paths: f.paths.as_ref().and_then(|p| globs(cx, p, "paths")),
        });
    }
    out
}

fn methods(cx: &mut Ctx, list: &Spanned<Vec<Text>>) -> Option<Vec<Method>> {
    if list.get_ref().is_empty() {
        return cx.fail(
            list,
            "`methods` is empty: omit it to match every method".into(),
            None,
        );
    }
    let parse = |cx: &mut Ctx, m: &Text| match Method::from_bytes(
        m.get_ref().to_ascii_uppercase().as_bytes(),
    ) {
        Ok(method) => Some(method),
        Err(_) => cx.fail(m, format!("invalid HTTP method `{}`", m.get_ref()), None),
    };
    list.get_ref()
        .iter()
        .map(|m| parse(cx, m))
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

fn globs(cx: &mut Ctx, list: &Spanned<Vec<Text>>, key: &str) -> Option<Vec<String>> {
    if list.get_ref().is_empty() {
        return cx.fail(
            list,
            format!("`{key}` is empty: omit it to match anything"),
            None,
        );
    }
    let kind = if key == "paths" {
        GlobKind::Path
    } else {
        GlobKind::Host
    };
    list.get_ref()
        .iter()
        .map(|g| glob(cx, g, kind))
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// What a glob is matched against.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum GlobKind {
    Host,
    Path,
}

/// A glob that can match something: hosts are matched without the port,
/// paths always start with `/`.
pub fn glob(cx: &mut Ctx, text: &Text, kind: GlobKind) -> Option<String> {
    let g = text.get_ref();
    let problem = match kind {
        _ if g.is_empty() => Some("a glob must not be empty".to_string()),
        GlobKind::Host if g.contains(['/', ' ']) => {
            Some(format!("host glob `{g}` is not a host name pattern"))
        }
        GlobKind::Host if g.contains(':') && !g.starts_with('[') => Some(format!(
            "host glob `{g}` must not include a port (hosts are matched without it)"
        )),
        GlobKind::Path if !g.starts_with(['/', '*']) => {
            Some(format!("path glob `{g}` must start with `/` or `*`"))
        }
        _ => None,
    };
    match problem {
        Some(message) => cx.fail(text, message, None),
        None => Some(g.clone()),
    }
}

const MODES: &[(&str, PolicyMode)] = &[("pace", PolicyMode::Pace), ("reject", PolicyMode::Reject)];

pub fn policies(
    cx: &mut Ctx,
    map: &BTreeMap<String, PolicyFile>,
    actions: &[&str],
) -> BTreeMap<String, Policy> {
    map.iter()
        .map(|(slug, f)| (slug.clone(), policy(cx, slug, f, actions)))
        .collect()
}

fn policy(cx: &mut Ctx, slug: &str, f: &PolicyFile, actions: &[&str]) -> Policy {
    if slug.trim().is_empty() {
        cx.at_key(&["policies", slug], "policy slug must not be empty");
    }
    let d = Policy::with_defaults(slug);
    let limits = limit_table(cx, &["policies", slug, "limits"], &f.limits, actions);
    check_batch_pair(cx, &["policies", slug, "limits"], &limits);
    Policy {
        slug: d.slug,
        name: f.name.clone().unwrap_or(d.name),
        description: f.description.clone().unwrap_or(d.description),
        free: f.free.unwrap_or(d.free),
        mode: f
            .mode
            .as_ref()
            .and_then(|m| cx.choice(m, "mode", MODES))
            .unwrap_or(d.mode),
        max_wait: cx.duration(f.max_wait.as_ref(), "max_wait", d.max_wait),
        jitter: cx.duration(f.jitter.as_ref(), "jitter", d.jitter),
        guard: guard(cx, f.guard.as_ref(), d.guard),
        day_resets_at: f
            .day_resets_at
            .as_ref()
            .and_then(|t| cx.parse(t))
            .unwrap_or(d.day_resets_at),
        limits,
        backoff: f.backoff.as_ref().map(|b| backoff(cx, slug, b)),
    }
}

/// `guard`: a duration up to the longest window.
fn guard(cx: &mut Ctx, value: Option<&Spanned<DurationText>>, default: Duration) -> Duration {
    let guard = cx.duration(value, "guard", default);
    match value {
        Some(value) if guard > MAX_WINDOW => {
            let hours = MAX_WINDOW.as_secs() / 3600;
            cx.at(
                value,
                format!("`guard` is longer than pacer can count (at most {hours}h)"),
            );
            default
        }
        _ => guard,
    }
}

/// `[policies.X.backoff]`: statuses 100 to 999, positive pauses, and
/// `max_pause` at least `default_pause`.
fn backoff(cx: &mut Ctx, slug: &str, f: &Spanned<BackoffFile>) -> Backoff {
    let d = Backoff::default();
    let f = f.get_ref();
    let mut statuses = Vec::new();
    if let Some(list) = &f.statuses {
        if list.get_ref().is_empty() {
            cx.at(list, "`statuses` must name at least one status");
        }
        for status in list.get_ref() {
            match u16::try_from(*status.get_ref()) {
                Ok(code) if (100..=999).contains(&code) => statuses.push(code),
                _ => cx.at(
                    status,
                    format!(
                        "`statuses`: {} is not a status from 100 to 999",
                        status.get_ref()
                    ),
                ),
            }
        }
    } else {
        statuses = d.statuses.clone();
    }
    let default_pause =
        cx.positive_duration(f.default_pause.as_ref(), "default_pause", d.default_pause);
    let max_pause = cx.positive_duration(
        f.max_pause.as_ref(),
        "max_pause",
        d.max_pause.max(default_pause),
    );
    if max_pause < default_pause {
        let message = format!("policy `{slug}`: `max_pause` must be at least `default_pause`");
        match &f.max_pause {
            Some(value) => cx.at(value, message),
            None => cx.at_key(&["policies", slug, "backoff"], message),
        }
    }
    Backoff {
        statuses,
        default_pause,
        max_pause,
    }
}

pub fn account_types(
    cx: &mut Ctx,
    map: &BTreeMap<String, AccountTypeFile>,
    actions: &[&str],
    policies: &BTreeMap<String, Policy>,
) -> BTreeMap<String, AccountType> {
    let mut out = BTreeMap::new();
    for (name, f) in map {
        let policy = match &f.policy {
            Some(p) => policy_ref(cx, p, policies),
            None if policies.contains_key(STANDARD_POLICY) => STANDARD_POLICY.to_string(),
            None => {
                let message = format!(
                    "account type `{name}` has no `policy` and `{STANDARD_POLICY}` is not defined"
                );
                cx.at_key(&["account_types", name], message);
                STANDARD_POLICY.to_string()
            }
        };
        let max = limit_table(cx, &["account_types", name, "max"], &f.max, actions);
        out.insert(
            name.clone(),
            AccountType {
                name: name.clone(),
                policy,
                max,
            },
        );
    }
    out
}

/// A reference to a policy by slug; an unknown slug is an error at it.
pub fn policy_ref(cx: &mut Ctx, slug: &Text, policies: &BTreeMap<String, Policy>) -> String {
    let name = slug.get_ref();
    if !policies.contains_key(name) {
        let defined: Vec<&str> = policies.keys().map(String::as_str).collect();
        let message = if defined.is_empty() {
            format!("unknown policy `{name}` (no policies are defined)")
        } else {
            format!("unknown policy `{name}` (defined: {})", defined.join(", "))
        };
        cx.at(slug, message);
    }
    name.clone()
}

/// Parses a limit table into limits in file order. Bad keys are reported
/// at the key, bad values at the value; two keys for the same limit
/// (`x_per_60s` and `x_per_minute`, `x` and `x_daily_cap`) are refused.
fn limit_table(cx: &mut Ctx, path: &[&str], table: &LimitTable, actions: &[&str]) -> Vec<Limit> {
    let mut found: Vec<(usize, Limit)> = Vec::new();
    for (raw_key, value) in table {
        let key_path = [path, &[raw_key.as_str()]].concat();
        let Some(limit) = limit(cx, &key_path, raw_key, value, actions) else {
            continue;
        };
        if let Some((_, twin)) = found.iter().find(|(_, l)| l.key == limit.key) {
            let message = format!("`{raw_key}` is the same limit as `{}`", twin.raw_key);
            cx.at_key(&key_path, message);
            continue;
        }
        // A value comes after its key: values are in file order too.
        found.push((value.span().start, limit));
    }
    found.sort_by_key(|(at, _)| *at);
    found.into_iter().map(|(_, l)| l).collect()
}

fn limit(
    cx: &mut Ctx,
    key_path: &[&str],
    raw_key: &str,
    value: &Spanned<toml::Value>,
    actions: &[&str],
) -> Option<Limit> {
    if let Err(e) = LimitKey::parse(raw_key, actions) {
        cx.at_key(key_path, e.to_string());
        return None;
    }
    let number = match value.get_ref() {
        toml::Value::Integer(i) => LimitNumber::Int(*i),
        toml::Value::Float(f) => LimitNumber::Float(*f),
        other => {
            let message = format!("`{raw_key}` must be a number, got a {}", other.type_str());
            return cx.fail(value, message, None);
        }
    };
    Limit::parse(raw_key, number, actions)
        .map_err(|e| cx.at(value, e.to_string()))
        .ok()
}

/// `batch` and `batch_hours` come together or not at all.
fn check_batch_pair(cx: &mut Ctx, path: &[&str], limits: &[Limit]) {
    let has = |k: &LimitKey| limits.iter().find(|l| &l.key == k);
    match (has(&LimitKey::Batch), has(&LimitKey::BatchHours)) {
        (Some(b), None) => cx.at_key(
            &[path, &[b.raw_key.as_str()]].concat(),
            "`batch` needs `batch_hours` in the same table",
        ),
        (None, Some(h)) => cx.at_key(
            &[path, &[h.raw_key.as_str()]].concat(),
            "`batch_hours` needs `batch` in the same table",
        ),
        _ => {}
    }
}
