//! TLS interception (SPEC section 7): the local CA (`pacer ca init`).
//! The decision to intercept a tunnel is the pipeline's
//! ([`crate::pipeline::tunnel`]).

pub mod ca;
