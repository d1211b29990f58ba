//! Configuration: `pacer.toml` from file shape to a validated `Config`.
//!
//! `limit_key` (the limit-key grammar), `types` and `upstream_url` (value
//! types) know nothing about TOML and are reused by the admin API.

mod limit_key;
mod types;
mod upstream_url;

pub use limit_key::{
    check_action_name, Limit, LimitKey, LimitKeyError, LimitNumber, LimitValue, ALL_ACTION,
};
pub use types::{parse_duration, CountryCode, DayReset, Secret};
pub use upstream_url::{format_authority, parse_host_port, UpstreamScheme, UpstreamUrl};
