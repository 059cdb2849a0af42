//! The `webhooks` command's tests, as one binary: the subcommands as a user
//! types them, and `serve` end to end over HTTP.

#![allow(clippy::unwrap_used, dead_code)]

mod browser;
mod cli;
mod console;
mod serve;
mod support;
