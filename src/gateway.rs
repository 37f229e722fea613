//! Wiring: a configuration turned into a running gateway, and its shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::adapters::taxii_http;
use crate::config::Config;
use crate::services::Services;
use crate::store::{SqliteStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the HTTP server failed: {0}")]
    Server(std::io::Error),
}

/// A running gateway.
pub struct Gateway {
    /// Where the HTTP listener is bound (useful when the configuration said port 0).
    pub local_addr: SocketAddr,
    pub config: Arc<Config>,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<Result<(), std::io::Error>>,
}

impl Gateway {
    /// Opens the store, binds the listener and starts serving.
    pub async fn start(mut config: Config) -> Result<Gateway, GatewayError> {
        let address = config.server.listen;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| GatewayError::Listen { address, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| GatewayError::Listen { address, source })?;
        config.server.listen = local_addr;
        let store = SqliteStore::open(&config.server.data_dir).await?;
        let config = Arc::new(config);
        let services = Arc::new(Services::new(config.clone(), store));
        let app = operations().merge(taxii_http::router(services));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%local_addr, data_dir = %config.server.data_dir.display(), "taxiway is serving");
        Ok(Gateway {
            local_addr,
            config,
            shutdown,
            server,
        })
    }

    /// Stops accepting, lets requests in flight finish, and returns once they have.
    pub async fn stop(self) -> Result<(), GatewayError> {
        let _ = self.shutdown.send(());
        join(self.server).await
    }

    /// Runs until the server ends.
    pub async fn wait(self) -> Result<(), GatewayError> {
        join(self.server).await
    }
}

/// The operator's endpoints, beside the TAXII services.
fn operations() -> Router {
    let metrics = metrics_handle();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || async move { metrics.map(|h| h.render()).unwrap_or_default() }),
        )
}

/// The process-wide Prometheus recorder; installed by the first gateway started.
fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(error) => {
                tracing::warn!(%error, "metrics are not exported");
                None
            }
        })
        .clone()
}

async fn join(server: JoinHandle<Result<(), std::io::Error>>) -> Result<(), GatewayError> {
    match server.await {
        Ok(result) => result.map_err(GatewayError::Server),
        Err(join) => Err(GatewayError::Server(std::io::Error::other(join))),
    }
}
