//! The builder: file shape → validated [`Config`], collecting every error
//! with its position rather than stopping at the first.
//!
//! [`build`] resolves sections in dependency order: actions, then policies
//! (whose limit keys name actions), account types (which name policies),
//! the upstream pool, accounts (which name all of those), and last the
//! listeners (which may name accounts). The work per section lives in
//! `validate/sections.rs` (server, listeners, admin, state, tls, routing,
//! mitm), `validate/rules.rs` (actions, policies, account types, limit
//! tables) and `validate/accounts.rs` (accounts and the upstream pool).
//! [`Ctx`] holds the error list and the small typed readers they share.

mod accounts;
mod fleet;
mod rules;
mod sections;

use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use toml::Spanned;

use super::file::{DurationText, FileConfig, Text};
use super::locate::Document;
use super::types::parse_duration;
use super::{Config, ConfigError};

/// Builds the validated config, or returns every error found.
pub fn build(
    shape: &FileConfig,
    doc: &Document<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let mut cx = Ctx {
        doc,
        env,
        errors: Vec::new(),
    };
    let actions = rules::actions(&mut cx, &shape.actions);
    let action_names: Vec<&str> = actions.iter().map(|a| a.name.as_str()).collect();
    let policies = rules::policies(&mut cx, &shape.policies, &action_names);
    let account_types =
        rules::account_types(&mut cx, &shape.account_types, &action_names, &policies);
    let (upstreams, countries) = accounts::upstreams(&mut cx, &shape.upstreams);
    let known = accounts::Known {
        policies: &policies,
        types: &account_types,
        countries: &countries,
    };
    let accounts = accounts::accounts(&mut cx, &shape.accounts, &known);
    let admin = sections::admin(&mut cx, &shape.admin);
    let listeners = sections::listeners(&mut cx, shape.listeners.as_ref(), &accounts, admin.addr);
    let config = Config {
        server: sections::server(&mut cx, &shape.server),
        listeners,
        admin,
        state: sections::state(&mut cx, &shape.state),
        tls: sections::tls(&mut cx, &shape.tls),
        actions,
        policies,
        account_types,
        accounts,
        upstreams,
        routing: sections::routing(&mut cx, &shape.routing),
        mitm: sections::mitm(&mut cx, &shape.mitm),
        fleet: fleet::fleet(&mut cx, shape.fleet.as_ref()),
    };
    if cx.errors.is_empty() {
        Ok(config)
    } else {
        Err(cx.errors)
    }
}

/// What a section has seen so far, each with the offset it was first
/// written at: a duplicate is found in constant time, and its "first at
/// line N" is located only when there is one.
struct FirstSeen<K> {
    at: HashMap<K, usize>,
}

impl<K: Hash + Eq> FirstSeen<K> {
    fn new() -> Self {
        FirstSeen { at: HashMap::new() }
    }

    /// Records `key`, written at `span`; for a key seen before, the offset
    /// where it was first written (and nothing is recorded).
    fn earlier(&mut self, key: K, span: &Range<usize>) -> Option<usize> {
        match self.at.entry(key) {
            std::collections::hash_map::Entry::Occupied(first) => Some(*first.get()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(span.start);
                None
            }
        }
    }
}

/// Validation context: the document (for positions), the environment and
/// the errors found so far.
pub struct Ctx<'d, 'a> {
    doc: &'d Document<'a>,
    env: &'d dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl Ctx<'_, '_> {
    /// Records an error at a value.
    fn at<T>(&mut self, value: &Spanned<T>, message: impl Into<String>) {
        self.at_span(value.span(), message);
    }

    fn at_span(&mut self, span: Range<usize>, message: impl Into<String>) {
        let e = self.doc.error(span, message);
        self.errors.push(e);
    }

    /// Records an error at a key found by its table path.
    fn at_key(&mut self, keys: &[&str], message: impl Into<String>) {
        let e = self.doc.key_error(keys, message);
        self.errors.push(e);
    }

    /// 1-based line of a byte offset, for "first defined at line N" notes.
    fn line_of(&self, offset: usize) -> usize {
        self.doc.line_of(offset)
    }

    fn env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// Parses a string value with its type's `FromStr`; errors at it.
    fn parse<T: FromStr<Err = String>>(&mut self, text: &Text) -> Option<T> {
        match text.get_ref().parse() {
            Ok(v) => Some(v),
            Err(message) => {
                self.at(text, message);
                None
            }
        }
    }

    /// A non-empty string, or an error naming `what`.
    fn non_empty(&mut self, text: &Text, what: &str) -> Option<String> {
        if text.get_ref().trim().is_empty() {
            self.at(text, format!("{what} must not be empty"));
            return None;
        }
        Some(text.get_ref().clone())
    }

    /// A duration with a unit, or `default` when absent or invalid.
    fn duration(
        &mut self,
        value: Option<&Spanned<DurationText>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let Some(value) = value else { return default };
        let parsed = match value.get_ref() {
            DurationText::Text(t) => parse_duration(t),
            DurationText::Number(n) => Err(format!(
                "duration `{n}` needs a unit and quotes, e.g. \"{n}s\""
            )),
        };
        parsed.unwrap_or_else(|m| {
            self.at(value, format!("`{key}`: {m}"));
            default
        })
    }

    /// Like [`Ctx::duration`], refusing zero.
    fn positive_duration(
        &mut self,
        value: Option<&Spanned<DurationText>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let d = self.duration(value, key, default);
        if d.is_zero() {
            if let Some(v) = value {
                self.at(v, format!("`{key}` must be greater than zero"));
            }
            return default;
        }
        d
    }

    /// An integer of at least `min`, or `default` when absent or invalid.
    fn integer_at_least(
        &mut self,
        value: Option<&Spanned<i64>>,
        key: &str,
        min: i64,
        default: usize,
    ) -> usize {
        let Some(value) = value else { return default };
        let n = *value.get_ref();
        match usize::try_from(n) {
            Ok(v) if n >= min => v,
            _ if min == 1 => self.fail(
                value,
                format!("`{key}` must be a positive integer, got {n}"),
                default,
            ),
            _ => self.fail(
                value,
                format!("`{key}` must be at least {min}, got {n}"),
                default,
            ),
        }
    }

    fn fail<T, D>(&mut self, value: &Spanned<T>, message: String, default: D) -> D {
        self.at(value, message);
        default
    }

    /// One of a closed set of lower-case words.
    fn choice<T: Copy>(&mut self, value: &Text, key: &str, options: &[(&str, T)]) -> Option<T> {
        if let Some((_, v)) = options.iter().find(|(word, _)| *word == value.get_ref()) {
            return Some(*v);
        }
        let words: Vec<String> = options.iter().map(|(w, _)| format!("\"{w}\"")).collect();
        let message = format!(
            "invalid `{key}` \"{}\": expected {}",
            value.get_ref(),
            words.join(" or ")
        );
        self.fail(value, message, None)
    }
}
