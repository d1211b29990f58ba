//! The config digest every instance publishes (SPEC section 10): one
//! SHA-256 per section the instances of a fleet must share (actions,
//! policies, upstreams), compared with every other live instance's; the
//! first differing section is logged once, shown in `/healthz` and sets
//! `pacer_fleet_config_mismatch` until the digests agree again.

use std::fmt::Write as _;
use std::time::Duration;

use super::{keys, Fleet, FleetError};
use crate::config::Config;

/// How long an instance counts as alive after it last published.
const ALIVE: Duration = Duration::from_secs(5);

/// The sections compared, in the order a mismatch is named.
const SECTIONS: [&str; 3] = ["[[actions]]", "[policies]", "[[upstreams]]"];

/// `config`'s digest text: `section=hex` for each shared section.
pub fn digest(config: &Config) -> String {
    let parts = [
        format!("{:?}", config.actions),
        format!("{:?}", config.policies),
        format!("{:?}", config.upstreams),
    ];
    let mut text = String::new();
    for (section, part) in SECTIONS.iter().zip(parts) {
        let hash = ring::digest::digest(&ring::digest::SHA256, part.as_bytes());
        let _ = write!(text, "{section}=");
        for byte in &hash.as_ref()[..12] {
            let _ = write!(text, "{byte:02x}");
        }
        text.push(' ');
    }
    text.trim_end().to_owned()
}

/// The first section whose digest differs between two digest texts.
fn first_difference(ours: &str, theirs: &str) -> Option<String> {
    let mut theirs = theirs.split(' ');
    for part in ours.split(' ') {
        if theirs.next() != Some(part) {
            return Some(part.split('=').next().unwrap_or(part).to_owned());
        }
    }
    None
}

impl Fleet {
    /// Publishes this instance's digest and compares it with every other
    /// live instance's; notes (and logs, when it changes) the first
    /// differing section.
    pub async fn compare_digest(&self, ours: &str) -> Result<(), FleetError> {
        let key = keys::global(&self.config.key_prefix, "{fleet}:instances");
        let mut invocation = self.scripts.instances.key(key);
        invocation
            .arg(&self.instance)
            .arg(ours)
            .arg(u64::try_from(ALIVE.as_millis()).unwrap_or(u64::MAX));
        let others: Vec<String> = self.invoke(invocation).await?;
        let differing = others
            .iter()
            .find_map(|theirs| first_difference(ours, theirs));
        self.gauges
            .config_mismatch
            .set(i64::from(differing.is_some()));
        let mut noted = self
            .mismatch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *noted != differing {
            match &differing {
                Some(section) => tracing::warn!(
                    section = %section,
                    "another live instance of the fleet runs a different {section}: instances of one fleet must share actions, policies and upstreams"
                ),
                None => tracing::info!("every live instance of the fleet runs the same actions, policies and upstreams"),
            }
            *noted = differing;
        }
        Ok(())
    }

    /// The first section whose digest differs from another live
    /// instance's, while one does.
    pub fn config_mismatch(&self) -> Option<String> {
        self.mismatch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_differing_section_is_named() {
        let ours = "[[actions]]=aa [policies]=bb [[upstreams]]=cc";
        assert_eq!(first_difference(ours, ours), None);
        let theirs = "[[actions]]=aa [policies]=b0 [[upstreams]]=c0";
        assert_eq!(
            first_difference(ours, theirs).as_deref(),
            Some("[policies]")
        );
    }
}
