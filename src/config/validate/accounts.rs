//! `[[upstreams]]` (the managed pool) and `[[accounts]]`: credentials,
//! type, resolved policy, plan and route.
//!
//! An account's policy is its own `policy`, else its type's, else
//! `standard_policy`, which must then be defined. An account routes through
//! its own `upstream`, or the pool of its `country` (which must have at
//! least one upstream), or goes direct; `upstream` and `country` together
//! are an error. An account with errors is still returned when it has an
//! id, so a listener bound to it does not add an "unknown account" error.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use super::rules::policy_ref;
use super::{Ctx, FirstSeen};
use crate::config::file::{AccountFile, Text, UpstreamFile};
use crate::config::{
    account_id_problem, AccountConfig, AccountRoute, AccountType, CountryCode, Plan, Policy,
    Secret, UpstreamConfig, UpstreamUrl, STANDARD_POLICY,
};

/// What accounts may refer to.
pub struct Known<'k> {
    pub policies: &'k BTreeMap<String, Policy>,
    pub types: &'k BTreeMap<String, AccountType>,
    /// Countries of every pool entry whose country is valid (even if its
    /// URL is not, to avoid cascading errors).
    pub countries: &'k BTreeSet<CountryCode>,
}

/// The pool, and the countries it serves.
pub fn upstreams(
    cx: &mut Ctx,
    list: &[Spanned<UpstreamFile>],
) -> (Vec<UpstreamConfig>, BTreeSet<CountryCode>) {
    let mut pool = Vec::with_capacity(list.len());
    let mut seen = FirstSeen::new();
    let mut countries = BTreeSet::new();
    for entry in list {
        let f = entry.get_ref();
        let country = match &f.country {
            Some(c) => cx.parse::<CountryCode>(c),
            None => cx.fail(entry, "upstream needs a `country`".into(), None),
        };
        countries.extend(country);
        let url = match &f.url {
            Some(u) => upstream_url(cx, u, "url"),
            None => cx.fail(entry, "upstream needs a `url`".into(), None),
        };
        let (Some(url), Some(country), Some(text)) = (url, country, &f.url) else {
            continue;
        };
        let proxy = (url.scheme, url.host.clone(), url.port, url.username.clone());
        if let Some(first) = seen.earlier(proxy, &text.span()) {
            let line = cx.line_of(first);
            cx.at(
                text,
                format!("duplicate upstream `{url}` (first at line {line})"),
            );
            continue;
        }
        pool.push(UpstreamConfig { url, country });
    }
    (pool, countries)
}

fn upstream_url(cx: &mut Ctx, text: &Text, key: &str) -> Option<UpstreamUrl> {
    text.get_ref()
        .parse()
        .map_err(|m| cx.at(text, format!("`{key}`: {m}")))
        .ok()
}

/// Every account with an id, in file order; ids must be unique.
pub fn accounts(cx: &mut Ctx, list: &[Spanned<AccountFile>], known: &Known) -> Vec<AccountConfig> {
    let mut seen = FirstSeen::new();
    let mut out = Vec::with_capacity(list.len());
    for entry in list {
        let Some(id) = &entry.get_ref().id else {
            cx.at(entry, "account needs an `id`");
            continue;
        };
        if let Some(first) = seen.earlier(id.get_ref().as_str(), &id.span()) {
            let line = cx.line_of(first);
            cx.at(
                id,
                format!(
                    "duplicate account id `{}` (first defined at line {line})",
                    id.get_ref()
                ),
            );
            continue;
        }
        out.push(account(cx, entry, id, known));
    }
    out
}

const PLANS: &[(&str, Plan)] = &[("free", Plan::Free), ("paid", Plan::Paid)];

fn account(cx: &mut Ctx, entry: &Spanned<AccountFile>, id: &Text, known: &Known) -> AccountConfig {
    let f = entry.get_ref();
    check_id(cx, id);
    let account_type = f
        .account_type
        .as_ref()
        .map(|t| type_ref(cx, t, known.types));
    AccountConfig {
        id: id.get_ref().clone(),
        secret: secret(cx, entry, id.get_ref()),
        policy: resolve_policy(cx, entry, id.get_ref(), known),
        account_type,
        plan: f
            .plan
            .as_ref()
            .and_then(|p| cx.choice(p, "plan", PLANS))
            .unwrap_or_default(),
        route: route(cx, f, id.get_ref(), known.countries),
    }
}

/// Ids are sent as credentials and in admin paths
/// ([`account_id_problem`]).
fn check_id(cx: &mut Ctx, id: &Text) {
    if let Some(problem) = account_id_problem(id.get_ref()) {
        cx.at(id, problem);
    }
}

fn type_ref(cx: &mut Ctx, name: &Text, types: &BTreeMap<String, AccountType>) -> String {
    if !types.contains_key(name.get_ref()) {
        cx.at(name, format!("unknown account type `{}`", name.get_ref()));
    }
    name.get_ref().clone()
}

fn secret(cx: &mut Ctx, entry: &Spanned<AccountFile>, id: &str) -> Secret {
    let f = entry.get_ref();
    match (&f.secret, &f.secret_env) {
        (Some(_), Some(env)) => cx.fail(
            env,
            format!("account `{id}` has both `secret` and `secret_env`; keep one"),
            Secret::default(),
        ),
        (None, None) => cx.fail(
            entry,
            format!("account `{id}` needs a `secret` or a `secret_env`"),
            Secret::default(),
        ),
        (Some(s), None) => cx
            .non_empty(s, "`secret`")
            .map(Secret::new)
            .unwrap_or_default(),
        (None, Some(name)) => secret_from_env(cx, name, id),
    }
}

fn secret_from_env(cx: &mut Ctx, name: &Text, id: &str) -> Secret {
    let var = name.get_ref();
    match cx.env(var) {
        Some(value) if !value.is_empty() => Secret::new(value),
        Some(_) => cx.fail(
            name,
            format!("environment variable `{var}` (secret of account `{id}`) is empty"),
            Secret::default(),
        ),
        None => cx.fail(
            name,
            format!("environment variable `{var}` (secret of account `{id}`) is not set"),
            Secret::default(),
        ),
    }
}

fn resolve_policy(cx: &mut Ctx, entry: &Spanned<AccountFile>, id: &str, known: &Known) -> String {
    let f = entry.get_ref();
    match (&f.policy, &f.account_type) {
        (Some(p), _) => policy_ref(cx, p, known.policies),
        // An unknown type is reported at the type; no second error here.
        (None, Some(t)) => known
            .types
            .get(t.get_ref())
            .map_or(STANDARD_POLICY.into(), |ty| ty.policy.clone()),
        (None, None) if known.policies.contains_key(STANDARD_POLICY) => STANDARD_POLICY.into(),
        (None, None) => {
            let message = format!(
                "account `{id}` has no `policy` nor `type`, and `{STANDARD_POLICY}` is not defined"
            );
            cx.fail(entry, message, STANDARD_POLICY.into())
        }
    }
}

fn route(
    cx: &mut Ctx,
    f: &AccountFile,
    id: &str,
    countries: &BTreeSet<CountryCode>,
) -> AccountRoute {
    match (&f.upstream, &f.country) {
        (Some(_), Some(c)) => cx.fail(
            c,
            format!("account `{id}` has both `upstream` and `country`; keep one"),
            AccountRoute::Direct,
        ),
        (Some(u), None) => {
            upstream_url(cx, u, "upstream").map_or(AccountRoute::Direct, AccountRoute::Custom)
        }
        (None, Some(c)) => match cx.parse::<CountryCode>(c) {
            Some(code) if countries.contains(&code) => AccountRoute::Country(code),
            Some(code) => cx.fail(
                c,
                format!("no [[upstreams]] entry serves country `{code}`"),
                AccountRoute::Direct,
            ),
            None => AccountRoute::Direct,
        },
        (None, None) => AccountRoute::Direct,
    }
}
