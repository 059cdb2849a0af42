//! `webhooks console`: the console alone, on the local database or a
//! deployed stack, on a loopback address unless a token is configured.

use crate::backend;
use crate::cli::{BackendArgs, BackendKind, ConsoleArgs};
use crate::console::{self, Console};
use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;

pub async fn run(args: ConsoleArgs) -> anyhow::Result<ExitCode> {
    let access = console::access(args.addr).map_err(|why| anyhow::anyhow!("the console cannot run: {why}"))?;
    let opened = backend::open(&args.backend).await?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let local = listener.local_addr()?;
    let state = Arc::new(
        Console::new(
            opened.store.clone(),
            opened.queue.clone(),
            access,
            source(&args.backend),
        )
        .with_refusals(opened.refusals.clone()),
    );
    println!("console on http://{local}/console ({})", state.source);
    axum::serve(listener, console::router(state))
        .with_graceful_shutdown(super::serve::shutdown_signal())
        .await
        .context("console server failed")?;
    drop(opened);
    Ok(ExitCode::SUCCESS)
}

/// What the console reads, for its header.
fn source(args: &BackendArgs) -> String {
    match args.kind() {
        BackendKind::Sqlite => format!("SQLite {}", args.store.db.display()),
        BackendKind::Aws => match (&args.stack, &args.table) {
            (Some(stack), _) => format!("AWS stack {stack}"),
            (None, Some(table)) => format!("AWS table {table}"),
            (None, None) => "AWS".to_string(),
        },
    }
}
