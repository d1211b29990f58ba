//! Configuration: `pacer.toml` from file shape to a validated [`Config`].
