//! One module per subcommand.

mod console;
mod dead_letters;
mod events;
mod metrics;
mod presets;
mod replay;
mod serve;
mod sign;

use crate::cli::{Cli, Command, DeadLettersCommand, EventsCommand, ServeOnly};
use clap::Parser;
use std::process::ExitCode;

/// Runs the chosen subcommand; `serve` when none is given.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = match cli.command {
        Some(c) => c,
        None => Command::Serve(ServeOnly::parse_from(["webhooks"]).args),
    };
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Sign(args) => sign::sign(args),
        Command::Send(args) => sign::send(args).await,
        Command::Events(EventsCommand::List(args)) => events::list(args).await,
        Command::Events(EventsCommand::Show(args)) => events::show(args).await,
        Command::Events(EventsCommand::Export(args)) => events::export(args).await,
        Command::Replay(args) => replay::run(args).await,
        Command::DeadLetters(DeadLettersCommand::List(args)) => dead_letters::list(args).await,
        Command::DeadLetters(DeadLettersCommand::Discard(args)) => dead_letters::discard(args).await,
        Command::Presets(args) => presets::run(args),
        Command::Console(args) => console::run(args).await,
    }
}
