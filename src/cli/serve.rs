//! `hookgate serve` (the default command): run the gateway until SIGINT or SIGTERM. Its
//! arguments are the gateway's settings, [`ServeArgs`].

use anyhow::Context as _;

use crate::config::{Config, GlobalArgs, ServeArgs};
use crate::Gateway;

/// Runs `hookgate serve` until SIGINT or SIGTERM, then drains.
///
/// # Errors
/// The configuration is invalid, the store cannot be opened, or the address cannot be bound.
pub async fn run(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(global, args)?;
    let listen = config.listen;
    let has_admin = config.admin_token.is_some();
    let has_secret_key = config.secret_key.is_some();
    let gateway = Gateway::start(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let state = &gateway.state;
    for row in state.db.list_connections().await? {
        tracing::info!(
            connection = %row.id,
            provider = %row.provider,
            enabled = row.enabled,
            "receive URL http://{local}/integrations/{}/webhook/{}",
            row.provider,
            row.id
        );
    }
    if !has_secret_key {
        tracing::warn!(
            "no secret_key configured: connection secrets are stored unencrypted in the database (set HOOKGATE_SECRET_KEY to encrypt them at rest)"
        );
    }
    if !has_admin {
        tracing::warn!(
            "no admin_token configured: the admin API answers 401 (set HOOKGATE_ADMIN_TOKEN)"
        );
    }
    let shutdown = shutdown_signal();
    tracing::info!(
        listen = %local,
        store = state.db.backend_name(),
        connections = state.registry.len(),
        version = crate::VERSION,
        "hookgate is listening"
    );
    gateway.serve(listener, shutdown).await?;
    tracing::info!("hookgate stopped");
    Ok(())
}

/// Registers for SIGTERM and SIGINT at once and returns what resolves on the first of them.
/// Registering when called, not when first polled, matters: the address is announced before
/// the serve loop polls this future, and a supervisor (or a test) that signals as soon as it
/// reads the address would otherwise kill the process with the default action instead of
/// stopping it cleanly.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (term, interrupt) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            async fn first(stream: Option<tokio::signal::unix::Signal>) {
                match stream {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = first(term) => {}
                () = first(interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: finishing open requests");
    }
}
