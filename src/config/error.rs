//! [`ConfigError`] (one problem, with its 1-based position) and
//! [`ConfigErrors`] (every problem of one file), as `pacer check` prints
//! them: `FILE:LINE:COLUMN: message`, one per line.

use std::fmt;
use std::path::PathBuf;

/// One problem in a config file. `line` and `column` are 1-based; both are
/// 0 for a problem with the file as a whole (it cannot be read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => f.write_str(&self.message),
            _ => write!(f, "{}:{}: {}", self.line, self.column, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one file, in file order. `Display` prints one
/// line per error: `FILE:LINE:COLUMN: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            match e.line {
                0 => write!(f, "{}: {e}", self.file.display())?,
                _ => write!(f, "{}:{e}", self.file.display())?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
