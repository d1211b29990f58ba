//! The wire: how pacer answers clients. [`error`] holds the proxy
//! boundary's error enum and its one mapping to HTTP status, envelope type,
//! SOCKS5 reply and extra headers; [`problem`] builds the
//! `application/problem+json` envelope; [`body`] is the body of every
//! response the proxy sends; [`head`] reads and checks request heads;
//! [`request_id`] names each request.

pub mod body;
pub mod error;
pub mod head;
pub mod problem;
pub mod request_id;
