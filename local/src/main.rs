//! `webhooks`: the receiver as one local process on an embedded SQLite
//! database, plus the tools to sign, send, inspect and replay events.

mod backend;
mod cli;
mod commands;
mod console;
mod context;
mod progress;

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let _logs = context::init_tracing(&cli.log_format);
    match commands::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
