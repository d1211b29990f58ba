//! The file shape: serde types mirroring `pacer.toml` one to one.
//!
//! Everything is optional here, required keys included, so the validator
//! can report every missing key instead of serde stopping at the first.
//! Values that a later error must point at are `Spanned`. Unknown keys are
//! not refused by serde (`deny_unknown_fields` stops at the first one):
//! [`read`] collects all of them through `serde_ignored`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::locate::{table_label, Document, Seg};
use super::ConfigError;

/// A string value with its span.
pub type Text = Spanned<String>;
/// An integer value with its span (signed, so `-1` gets a clear message).
pub type Int = Spanned<i64>;
/// A limit table: key as written → value of any TOML type.
pub type LimitTable = BTreeMap<String, Spanned<toml::Value>>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileConfig {
    pub server: ServerFile,
    pub listeners: Option<Spanned<Vec<Spanned<ListenerFile>>>>,
    pub admin: AdminFile,
    pub state: StateFile,
    pub tls: TlsFile,
    pub actions: Vec<Spanned<ActionFile>>,
    pub policies: BTreeMap<String, PolicyFile>,
    pub account_types: BTreeMap<String, AccountTypeFile>,
    pub accounts: Vec<Spanned<AccountFile>>,
    pub upstreams: Vec<Spanned<UpstreamFile>>,
    pub routing: RoutingFile,
    pub mitm: MitmFile,
    pub fleet: Option<Spanned<FleetFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ServerFile {
    pub header_read_timeout: Option<Spanned<DurationText>>,
    pub idle_timeout: Option<Spanned<DurationText>>,
    pub connect_timeout: Option<Spanned<DurationText>>,
    pub max_connections: Option<Int>,
    pub shutdown_grace: Option<Spanned<DurationText>>,
    pub max_header_bytes: Option<Int>,
    pub deny_destinations: Option<Vec<Text>>,
    pub splice_pipes: Option<Int>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListenerFile {
    pub protocol: Option<Text>,
    pub addr: Option<Text>,
    pub account: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AdminFile {
    pub addr: Option<Text>,
    pub api_keys: Vec<Text>,
    pub public_metrics: bool,
    pub account_metrics: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StateFile {
    pub path: Option<Text>,
}

/// `[fleet]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FleetFile {
    /// One URL, or a list of seed nodes.
    pub redis: Option<Spanned<toml::Value>>,
    pub cluster: Option<Spanned<bool>>,
    pub key_prefix: Option<Text>,
    pub timeout: Option<Spanned<DurationText>>,
    pub on_unavailable: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TlsFile {
    pub extra_roots: Vec<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActionFile {
    pub name: Option<Text>,
    pub methods: Option<Spanned<Vec<Text>>>,
    pub hosts: Option<Spanned<Vec<Text>>>,
    pub paths: Option<Spanned<Vec<Text>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PolicyFile {
    pub name: Option<String>,
    pub description: Option<String>,
    pub free: Option<bool>,
    pub mode: Option<Text>,
    pub max_wait: Option<Spanned<DurationText>>,
    pub jitter: Option<Spanned<DurationText>>,
    pub guard: Option<Spanned<DurationText>>,
    pub day_resets_at: Option<Text>,
    pub limits: LimitTable,
    pub backoff: Option<Spanned<BackoffFile>>,
}

/// `[policies.X.backoff]`: platform feedback.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BackoffFile {
    pub statuses: Option<Spanned<Vec<Int>>>,
    pub default_pause: Option<Spanned<DurationText>>,
    pub max_pause: Option<Spanned<DurationText>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AccountTypeFile {
    pub policy: Option<Text>,
    pub max: LimitTable,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AccountFile {
    pub id: Option<Text>,
    pub secret: Option<Text>,
    pub secret_env: Option<Text>,
    #[serde(rename = "type")]
    pub account_type: Option<Text>,
    pub policy: Option<Text>,
    pub plan: Option<Text>,
    pub upstream: Option<Text>,
    pub country: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UpstreamFile {
    pub url: Option<Text>,
    pub country: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoutingFile {
    pub strategy: Option<Text>,
    pub max_attempts: Option<Int>,
    pub failure_cooldown: Option<Spanned<DurationText>>,
    pub probe_target: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MitmFile {
    pub enabled: bool,
    pub ca_cert: Option<Text>,
    pub ca_key: Option<Text>,
    pub hosts: Vec<Text>,
    pub leaf_cache: Option<Int>,
}

/// A duration as written: a string (`"10s"`), or a bare number, kept so
/// the validator can say "needs a unit" instead of a serde type error.
#[derive(Debug, Clone, PartialEq)]
pub enum DurationText {
    Text(String),
    Number(String),
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = DurationText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string with a unit, e.g. \"10s\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationText, E> {
        Ok(DurationText::Text(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationText, E> {
        Ok(DurationText::Number(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationText, E> {
        Ok(DurationText::Number(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationText, E> {
        Ok(DurationText::Number(v.to_string()))
    }
}

/// Private field name `serde_spanned` gives the inner value of a
/// `Spanned<T>`; it shows up in `serde_ignored` paths and is skipped.
const SPANNED_VALUE_FIELD: &str = "$__serde_spanned_private_value";

/// Deserializes the file shape. Returns the shape (or the serde error that
/// stopped it: a type error) and one error per unknown key seen.
pub fn read(doc: &Document<'_>) -> (Result<FileConfig, ConfigError>, Vec<ConfigError>) {
    let mut unknown = Vec::new();
    let result =
        serde_ignored::deserialize(doc.deserializer(), |path| unknown.push(segments(&path)));
    let shape = result.map_err(|e| doc.error(e.span().unwrap_or(0..0), e.message()));
    let errors = unknown.iter().map(|path| unknown_key(doc, path)).collect();
    (shape, errors)
}

fn unknown_key(doc: &Document<'_>, path: &[Seg]) -> ConfigError {
    let (key, parent) = match path.split_last() {
        Some((Seg::Key(k), parent)) => (k.as_str(), parent),
        _ => ("?", path),
    };
    let message = match table_label(parent) {
        label if label.is_empty() => format!("unknown key `{key}`"),
        label => format!("unknown key `{key}` in {label}"),
    };
    doc.error(doc.span_of(path), message)
}

fn segments(path: &serde_ignored::Path<'_>) -> Vec<Seg> {
    use serde_ignored::Path;
    match path {
        Path::Root => Vec::new(),
        Path::Seq { parent, index } => push(segments(parent), Seg::Index(*index)),
        Path::Map { parent, key } if key == SPANNED_VALUE_FIELD => segments(parent),
        Path::Map { parent, key } => push(segments(parent), Seg::Key(key.clone())),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => segments(parent),
    }
}

fn push(mut v: Vec<Seg>, s: Seg) -> Vec<Seg> {
    v.push(s);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_unknown_key_with_its_path() {
        let src = "bogus = 1\n[server]\nidle = \"1s\"\n[[accounts]]\nid = \"a\"\nsecrt = \"x\"\n";
        let doc = Document::parse(src).unwrap();
        let (shape, errors) = read(&doc);
        assert!(shape.is_ok());
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.contains(&"1:1: unknown key `bogus`".to_string()),
            "{text:?}"
        );
        assert!(
            text.contains(&"3:1: unknown key `idle` in [server]".to_string()),
            "{text:?}"
        );
        assert!(
            text.contains(&"6:1: unknown key `secrt` in [[accounts]]".to_string()),
            "{text:?}"
        );
    }

    #[test]
    fn durations_accept_numbers_for_a_later_message() {
        let doc = Document::parse("[server]\nidle_timeout = 90\n").unwrap();
        let shape = read(&doc).0.unwrap();
        let d = shape.server.idle_timeout.unwrap();
        assert_eq!(d.get_ref(), &DurationText::Number("90".into()));
    }

    #[test]
    fn type_error_is_positioned() {
        let doc = Document::parse("[server]\nmax_connections = \"many\"\n").unwrap();
        let e = read(&doc).0.unwrap_err();
        assert_eq!((e.line, e.column), (2, 19), "{e}");
    }
}
