//! Telemetry: one [`context::RequestContext`] per request or tunnel,
//! filled in stage by stage, and what is made of it when it closes: the
//! access line ([`access_log`]), the Prometheus series ([`metrics`]) and
//! the recent history the admin API's `/v1/stats` reads ([`history`]); the
//! log output itself, off the request threads ([`logging`]).
//! It observes and never decides.

pub mod access_log;
pub mod context;
pub mod handles;
pub mod history;
pub mod logging;
pub mod metrics;
#[cfg(test)]
mod testing;
