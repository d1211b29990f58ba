//! Positions: the TOML document parsed once with every key's span, turning
//! byte offsets and key paths into 1-based `LINE:COLUMN` errors.
//!
//! Values carry their own spans (`toml::Spanned` in the file shape); keys
//! cannot (`serde_ignored` breaks `Spanned` map keys), so errors about a key
//! (an unknown key, a bad limit key, a missing table entry) look the key up
//! here by its path, one map lookup per step.
//!
//! Lines are found through a [`LineIndex`] (the offset of every newline,
//! built once, on the first position asked for) by binary search, and keys
//! in a tree parsed again on the first lookup: locating is logarithmic in
//! the file, and a valid file (which locates nothing) pays for neither.

use std::cell::{Cell, OnceCell};
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::ConfigError;

/// One step of a path into the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A parsed document and its source text.
pub struct Document<'a> {
    src: &'a str,
    /// The tree [`Document::parse`] built, until the deserializer takes it.
    parsed: Cell<Option<Spanned<DeTable<'a>>>>,
    /// The tree keys are located in: parsed again on the first lookup
    /// (which only an error needs), so a valid file is parsed once.
    tree: OnceCell<Spanned<DeTable<'a>>>,
    lines: OnceCell<LineIndex<'a>>,
}

impl<'a> Document<'a> {
    /// Parses the TOML syntax; a syntax error is the only error reported.
    pub fn parse(src: &'a str) -> Result<Self, ConfigError> {
        match DeTable::parse(src) {
            Ok(root) => Ok(Document {
                src,
                parsed: Cell::new(Some(root)),
                tree: OnceCell::new(),
                lines: OnceCell::new(),
            }),
            Err(e) => Err(LineIndex::new(src).error(e.span().unwrap_or(0..0), e.message())),
        }
    }

    /// A serde deserializer over the document (the parsed tree itself the
    /// first time).
    pub fn deserializer(&self) -> toml::de::Deserializer<'a> {
        let root = self.parsed.take().unwrap_or_else(|| self.parse_again());
        toml::de::Deserializer::from(root)
    }

    /// The tree of a source already known to parse.
    fn parse_again(&self) -> Spanned<DeTable<'a>> {
        DeTable::parse(self.src).unwrap_or_else(|_| Spanned::new(0..0, DeTable::new()))
    }

    /// An error at a byte range of the source.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        self.line_index().error(span, message)
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_index().line_column(offset).0
    }

    fn line_index(&self) -> &LineIndex<'a> {
        self.lines.get_or_init(|| LineIndex::new(self.src))
    }

    /// An error at the key named by `keys` (table keys only), or at the
    /// deepest part of that path that exists.
    pub fn key_error(&self, keys: &[&str], message: impl Into<String>) -> ConfigError {
        let path: Vec<Seg> = keys.iter().map(|k| Seg::Key(k.to_string())).collect();
        self.error(self.span_of(&path), message)
    }

    /// Span of the last key (or array element) of `path`; falls back to
    /// the deepest match, then to the start of the file.
    pub fn span_of(&self, path: &[Seg]) -> Range<usize> {
        let root = self.tree.get_or_init(|| self.parse_again()).get_ref();
        let mut found = 0..0;
        let mut value: Option<&Spanned<DeValue<'a>>> = None;
        for seg in path {
            let next = match (seg, value.map(|v| v.get_ref())) {
                (Seg::Key(k), None) => lookup(root, k),
                (Seg::Key(k), Some(DeValue::Table(t))) => lookup(t, k),
                (Seg::Index(i), Some(DeValue::Array(a))) => a.get(*i).map(|v| (v.span(), v)),
                _ => None,
            };
            let Some((span, v)) = next else { break };
            found = span;
            value = Some(v);
        }
        found
    }
}

fn lookup<'t, 'a>(
    table: &'t DeTable<'a>,
    key: &str,
) -> Option<(Range<usize>, &'t Spanned<DeValue<'a>>)> {
    table.get_key_value(key).map(|(k, v)| (k.span(), v))
}

/// A text with the byte offset of every newline, in order.
pub struct LineIndex<'a> {
    src: &'a str,
    newlines: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes `src` (one pass).
    pub fn new(src: &'a str) -> Self {
        let newlines = src
            .bytes()
            .enumerate()
            .filter_map(|(i, b)| (b == b'\n').then_some(i))
            .collect();
        LineIndex { src, newlines }
    }

    /// An error at a byte range (its start) of the text.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.line_column(span.start);
        ConfigError {
            line,
            column,
            message: message.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let src = self.src;
        let mut offset = offset.min(src.len());
        while !src.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = self.newlines.partition_point(|&n| n < offset);
        let line_start = match before {
            0 => 0,
            n => self.newlines[n - 1] + 1,
        };
        let column = src.get(line_start..offset).map_or(0, |s| s.chars().count());
        (before + 1, column + 1)
    }
}

/// Errors in file order, without exact duplicates.
pub fn sorted(mut errors: Vec<ConfigError>) -> Vec<ConfigError> {
    errors.sort_by_key(|e| (e.line, e.column));
    errors.dedup();
    errors
}

/// Renders the table a key lives in: `[server]`, `[[accounts]]`, or the
/// empty string at the top level.
pub fn table_label(path: &[Seg]) -> String {
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    match path.last() {
        None => String::new(),
        Some(Seg::Index(_)) => format!("[[{}]]", keys.join(".")),
        Some(Seg::Key(_)) => format!("[{}]", keys.join(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_column(src: &str, offset: usize) -> (usize, usize) {
        LineIndex::new(src).line_column(offset)
    }

    #[test]
    fn line_and_column() {
        let src = "a = 1\nbé = 2\n\nc";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 4), (1, 5));
        assert_eq!(line_column(src, 6), (2, 1));
        // `=` after a two-byte character is the 4th character of line 2.
        assert_eq!(line_column(src, 10), (2, 4));
        assert_eq!(line_column(src, src.len()), (4, 2));
        assert_eq!(line_column(src, 999), (4, 2));
        assert_eq!(line_column(src, 5), (1, 6), "the newline ends its line");
        assert_eq!(line_column("", 0), (1, 1));
        assert_eq!(line_column("\n\n", 2), (3, 1));
    }

    #[test]
    fn finds_key_spans() {
        let src =
            "[server]\nx = 1\n\n[[accounts]]\nid = \"a\"\n[[accounts]]\nid = \"b\"\nfoo = 2\n";
        let doc = Document::parse(src).unwrap();
        let path = [
            Seg::Key("accounts".into()),
            Seg::Index(1),
            Seg::Key("foo".into()),
        ];
        assert_eq!(line_column(src, doc.span_of(&path).start), (8, 1));
        let e = doc.key_error(&["server", "x"], "m");
        assert_eq!((e.line, e.column), (2, 1));
        // A missing key falls back to its deepest existing parent.
        let e = doc.key_error(&["server", "nope"], "m");
        assert_eq!((e.line, e.column), (1, 2));
    }

    #[test]
    fn syntax_error_has_position() {
        let e = Document::parse("a = 1\nb = \n").err().unwrap();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn labels() {
        let k = |s: &str| Seg::Key(s.into());
        assert_eq!(table_label(&[]), "");
        assert_eq!(table_label(&[k("server")]), "[server]");
        assert_eq!(table_label(&[k("accounts"), Seg::Index(0)]), "[[accounts]]");
        assert_eq!(
            table_label(&[k("policies"), k("strict")]),
            "[policies.strict]"
        );
    }
}
