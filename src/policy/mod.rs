//! Policy: what an account may do. [`auth`] reads proxy credentials and
//! checks secrets in constant time; [`classify`] turns a request's method,
//! host and path into actions; [`limit`] admits, paces or refuses it by the
//! account's limits. Nothing here does I/O or knows how a refusal is
//! answered on the wire.

pub mod auth;
pub mod classify;
pub mod limit;
