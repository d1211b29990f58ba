//! The layer table in `src/lib.rs` (`pacer::LAYERS`) is the architecture:
//! every `crate::X` path outside test code must name a layer that its
//! module may import. A change that points an import up or sideways fails
//! here.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments and without `#[cfg(test)]` items.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            skip_item(&mut lines);
            continue;
        }
        let code = line.split("//").next().unwrap_or("");
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Skips one item (a `mod x;` line, or a braced block).
fn skip_item<'a>(lines: &mut impl Iterator<Item = &'a str>) {
    let mut depth = 0i32;
    for line in lines.by_ref() {
        let code = line.split("//").next().unwrap_or("");
        depth += code.matches('{').count() as i32;
        depth -= code.matches('}').count() as i32;
        if depth <= 0 && (code.contains('}') || code.trim_end().ends_with(';')) {
            return;
        }
    }
}

/// Every top-level module named by a `crate::` path in `code`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if rest.starts_with('{') {
            let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
            for part in group.split(',') {
                let name = part.trim().split("::").next().unwrap_or("");
                found.insert(name.trim().to_owned());
            }
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        found.insert(name);
    }
    found.retain(|n| !n.is_empty());
    found
}

#[test]
fn every_import_points_down_the_layer_table() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let layers: Vec<&str> = pacer::LAYERS.iter().map(|(name, _)| *name).collect();
    let mut violations = Vec::new();
    let mut seen = BTreeSet::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let first = relative
            .iter()
            .next()
            .and_then(|p| p.to_str())
            .unwrap_or("");
        let module = first.trim_end_matches(".rs");
        if module == "lib" || module == "main" || relative.ends_with("tests.rs") {
            continue;
        }
        seen.insert(module.to_owned());
        let Some((_, allowed)) = pacer::LAYERS.iter().find(|(name, _)| *name == module) else {
            violations.push(format!("{module}: not in the layer table"));
            continue;
        };
        let text = fs::read_to_string(&file).expect("readable source");
        for used in imports(&code_of(&text)) {
            if used != module
                && layers.contains(&used.as_str())
                && !allowed.contains(&used.as_str())
            {
                violations.push(format!("{}: imports {used}", relative.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layer table:\n{}",
        violations.join("\n")
    );
    for (name, allowed) in pacer::LAYERS {
        assert!(seen.contains(*name), "layer {name} has no module");
        let position = layers.iter().position(|l| l == name).expect("listed");
        for below in *allowed {
            let at = layers
                .iter()
                .position(|l| l == below)
                .expect("allowed layer is listed");
            assert!(
                at < position,
                "{name} may import {below}, which is not below it"
            );
        }
    }
}

#[test]
fn the_checker_sees_imports_and_ignores_tests_and_comments() {
    let code = code_of(
        "use crate::a::B;\n// crate::hidden\nuse crate::{c::D, e};\n#[cfg(test)]\nmod tests {\n    use crate::f;\n}\nfn g() { crate::h::i(); }\n",
    );
    let found: Vec<String> = imports(&code).into_iter().collect();
    assert_eq!(found, ["a", "c", "e", "h"]);
}
