//! The `legate` binary's library: CLI commands, providers, output.

pub mod cli;
pub mod load;
pub mod output;
