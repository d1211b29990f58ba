//! The whole config pipeline on any text: TOML parse with spans, the file
//! shape with unknown keys, validation into a `Config` (limit keys,
//! durations, globs, upstream URLs, references). Loading is deterministic:
//! the same text gives the same answer twice.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn env(name: &str) -> Option<String> {
    (name == "FUZZ_SECRET").then(|| "from-env".to_owned())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = pacer::config::parse(text, &env);
    if let Err(errors) = &first {
        assert!(!errors.is_empty(), "a refused config says why");
    }
    assert_eq!(
        first,
        pacer::config::parse(text, &env),
        "loading is deterministic"
    );
});
