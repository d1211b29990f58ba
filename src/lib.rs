//! pacer: a forward proxy that identifies, paces and routes the traffic of
//! automation accounts.
//!
//! Stage map, in request order, is filled in as the stages land.

pub mod config;
