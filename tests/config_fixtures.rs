//! Data-driven config tests: every file under `tests/fixtures/config/valid`
//! and `config/` parses; every file under `tests/fixtures/config/invalid`
//! yields exactly the errors its `# expect: LINE:COLUMN: substring` lines
//! name, in file order.

use std::fs;
use std::path::{Path, PathBuf};

use pacer::config::{self, ConfigError};

/// The environment the fixtures see (never the process environment).
fn fixture_env(name: &str) -> Option<String> {
    match name {
        "ACCT_SECRET" | "ACCT2_SECRET" => Some("from-env".into()),
        "EMPTY_SECRET" => Some(String::new()),
        _ => None,
    }
}

fn toml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn parse_file(path: &Path) -> (String, Result<config::Config, Vec<ConfigError>>) {
    let source = fs::read_to_string(path).unwrap();
    let result = config::parse(&source, &fixture_env);
    (source, result)
}

fn render(errors: &[ConfigError]) -> String {
    errors.iter().map(|e| format!("  {e}\n")).collect()
}

#[test]
fn valid_fixtures_and_shipped_configs_parse() {
    let mut files = toml_files("tests/fixtures/config/valid");
    files.extend(toml_files("config"));
    for path in files {
        if let (_, Err(errors)) = parse_file(&path) {
            panic!(
                "{} should be valid, got:\n{}",
                path.display(),
                render(&errors)
            );
        }
    }
}

/// `(line, column, substring)` from the `# expect:` lines.
fn expectations(source: &str, path: &Path) -> Vec<(usize, usize, String)> {
    let parse = |line: &str| -> Option<(usize, usize, String)> {
        let rest = line.strip_prefix("# expect: ")?;
        let mut parts = rest.splitn(3, ':');
        let l = parts.next()?.parse().ok()?;
        let c = parts.next()?.parse().ok()?;
        Some((l, c, parts.next()?.trim_start().to_string()))
    };
    let expects: Vec<_> = source
        .lines()
        .filter(|l| l.starts_with("# expect:"))
        .map(|l| parse(l).unwrap_or_else(|| panic!("{}: bad expect line `{l}`", path.display())))
        .collect();
    assert!(
        !expects.is_empty(),
        "{}: no `# expect:` line",
        path.display()
    );
    expects
}

#[test]
fn invalid_fixtures_report_exactly_the_expected_errors() {
    let mut failures = String::new();
    for path in toml_files("tests/fixtures/config/invalid") {
        let (source, result) = parse_file(&path);
        let expects = expectations(&source, &path);
        let errors = match result {
            Ok(_) => {
                failures += &format!("{}: parsed, expected errors\n", path.display());
                continue;
            }
            Err(errors) => errors,
        };
        let matches = errors.len() == expects.len()
            && errors.iter().zip(&expects).all(|(e, (l, c, s))| {
                e.line == *l && e.column == *c && e.message.contains(s.as_str())
            });
        if !matches {
            let want: String = expects
                .iter()
                .map(|(l, c, s)| format!("  {l}:{c}: {s}\n"))
                .collect();
            failures += &format!(
                "{}:\n want:\n{want} got:\n{}",
                path.display(),
                render(&errors)
            );
        }
    }
    assert!(failures.is_empty(), "\n{failures}");
}

#[test]
fn two_unknown_keys_in_one_file_are_both_reported() {
    let source = "[[listeners]]\nprotocol = \"http\"\naddr = \"127.0.0.1:8080\"\nport = 1\n\n[admin]\nkeys = []\n";
    let errors = config::parse(source, &fixture_env).unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "4:1: unknown key `port` in [[listeners]]",
            "7:1: unknown key `keys` in [admin]"
        ],
    );
}

#[test]
fn unknown_keys_are_reported_with_validation_errors() {
    let source = "[[listeners]]\nprotocol = \"ftp\"\naddr = \"127.0.0.1:8080\"\nbogus = 1\n";
    let errors = config::parse(source, &fixture_env).unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(text[0].starts_with("2:12: invalid `protocol`"), "{text:?}");
    assert_eq!(text[1], "4:1: unknown key `bogus` in [[listeners]]");
}

#[test]
fn load_prints_file_line_column_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    fs::write(&path, "[server]\nmax_connections = 0\nidle = \"1s\"\n").unwrap();
    let err = config::load(&path).unwrap_err();
    let shown = err.to_string();
    let file = path.display();
    assert_eq!(
        shown,
        format!(
            "{file}:1:1: no [[listeners]]: at least one proxy listener is needed\n\
             {file}:2:19: `max_connections` must be a positive integer, got 0\n\
             {file}:3:1: unknown key `idle` in [server]"
        )
    );
}

#[test]
fn load_reports_an_unreadable_file() {
    let path = Path::new("/nonexistent/pacer.toml");
    let err = config::load(path).unwrap_err();
    assert_eq!(err.errors.len(), 1);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/pacer.toml: cannot read config file"),
        "{err}"
    );
}
