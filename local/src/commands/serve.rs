//! `webhooks serve`: the router and the worker loop in one process.

use crate::cli::ServeArgs;
use crate::console::{self, Console};
use crate::context;
use anyhow::Context;
use axum::serve::ListenerExt;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::info;
use webhooks_core::app::App;
use webhooks_core::pipeline::worker::{self, WorkerSettings};
use webhooks_core::ports::artifacts::LocalDir;
use webhooks_core::secret::EnvResolver;

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = context::load_config(&args.config)?;
    let db = context::open_db(&args.store, args.durability)?;
    // Claims and enqueues of a delivery in one SQLite transaction, shared by
    // concurrent deliveries (group commit).
    let ports = db.ports(Arc::new(LocalDir::new(&args.artifacts_dir)));
    let store = ports.store.clone();
    let metrics = super::metrics::install().context("cannot install the metrics recorder")?;
    let app = App::build(&config, &EnvResolver, ports).context("cannot start")?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let local = listener.local_addr()?;
    // Plain stdout lines: what a newcomer reads, and what scripts wait for.
    println!("webhooks listening on http://{local}");
    println!("database: {}", args.store.db.display());
    println!("{}", context::describe_providers(&app.providers));
    for name in app.providers.names() {
        println!("  POST http://{local}/webhooks/{name}");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = if args.no_process {
        println!("processing: off (--no-process); events stay queued");
        None
    } else {
        let settings = WorkerSettings {
            batch: args.worker_batch.max(1),
            ..WorkerSettings::default()
        };
        Some(tokio::spawn(worker::run(
            app.processor.clone(),
            store,
            settings,
            stop_rx,
        )))
    };

    let mut router = webhooks_core::http::router(app.ingest.clone()).merge(super::metrics::routes(metrics, db.queue()));
    if args.no_console {
        println!("console: off (--no-console)");
    } else {
        match console::access(local) {
            Ok(access) => {
                let state = Console::new(
                    db.store(),
                    db.queue(),
                    access,
                    format!("SQLite {}", args.store.db.display()),
                )
                .with_refusals(db.refusals());
                router = router.merge(console::router(Arc::new(state)));
                println!("console: http://{local}/console");
            }
            Err(why) => println!("console: off ({why})"),
        }
    }
    // Answers are small and latency matters: no Nagle delay on them.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    // With the peer's address, for the refusal log's source IP.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("server failed")?;
    info!("stopped accepting; finishing in-flight work");
    let _ = stop_tx.send(true);
    if let Some(w) = worker {
        let _ = w.await;
    }
    println!("webhooks stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    info!("shutdown signal received");
}
