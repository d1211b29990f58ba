//! Globs of SPEC section 2 (`*` matches any run of characters, dots and
//! slashes included; everything else is literal) in globset's syntax, and
//! [`HostGlobs`], a compiled set of host globs matched case-insensitively
//! without a trailing dot (`[mitm] hosts`, `[server] deny_destinations`).

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// A SPEC glob in globset syntax: runs of `*` become one `*` (any run of
/// characters, `/` included, since separators are not literal), and every
/// other glob metacharacter is escaped.
pub fn globset_pattern(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    let mut previous_star = false;
    for c in glob.chars() {
        if c == '*' {
            if !previous_star {
                out.push('*');
            }
            previous_star = true;
            continue;
        }
        previous_star = false;
        if matches!(c, '?' | '[' | ']' | '{' | '}' | '\\' | '!' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A compiled set of host globs.
#[derive(Debug, Clone)]
pub struct HostGlobs(GlobSet);

impl HostGlobs {
    /// Compiles `globs`; the error names the glob that does not build.
    pub fn new(globs: &[String]) -> Result<Self, String> {
        let mut builder = GlobSetBuilder::new();
        for glob in globs {
            let compiled = GlobBuilder::new(&globset_pattern(&glob.to_ascii_lowercase()))
                .literal_separator(false)
                .backslash_escape(true)
                .build()
                .map_err(|err| format!("bad glob `{glob}`: {err}"))?;
            builder.add(compiled);
        }
        builder
            .build()
            .map(HostGlobs)
            .map_err(|err| err.to_string())
    }

    /// Whether `host` (without port) matches one of the globs.
    pub fn matches(&self, host: &str) -> bool {
        !self.0.is_empty()
            && self
                .0
                .is_match(host.to_ascii_lowercase().trim_end_matches('.'))
    }
}
