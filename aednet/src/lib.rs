//! The `aednet` binary's library half: CLI, configuration, wiring of the routers, and the
//! synthetic demo city. `main.rs` only parses the command line and calls [`cli::run`].

pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod demo;
pub mod plan;
pub mod server;
pub mod simulate;
