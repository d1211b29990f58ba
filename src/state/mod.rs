//! State: what pacer knows about accounts.
//!
//! - [`snapshot`]: everything compiled from the config file (actions,
//!   policies, account types, accounts, routes), immutable; a reload
//!   builds a new one and swaps it whole.
//! - [`accounts`]: each account's identity, limiter state and settings in
//!   force; [`changes`]: the runtime changes the admin API made;
//!   [`runtime`]: the accounts it created.
//! - [`store`]: the embedded store; [`persist`]: usage made durable.

pub mod accounts;
pub mod changes;
pub mod persist;
pub mod runtime;
pub mod snapshot;
pub mod store;
