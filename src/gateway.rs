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
use crate::adapters::taxii_push::PushWorker;
use crate::auth::Authenticator;
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
    #[error("cannot start push delivery: {0}")]
    Push(reqwest::Error),
}

/// A running gateway.
pub struct Gateway {
    /// Where the HTTP listener is bound (useful when the configuration said port 0).
    pub local_addr: SocketAddr,
    pub config: Arc<Config>,
    /// Checks the passwords of every adapter's requests.
    pub authenticator: Arc<Authenticator>,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<Result<(), std::io::Error>>,
    push: PushWorker,
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
        let store = Arc::new(SqliteStore::open(&config.server.data_dir).await?);
        let config = Arc::new(config);
        let push = PushWorker::start(store.clone(), config.delivery.clone())
            .map_err(GatewayError::Push)?;
        let services = Arc::new(Services::new(config.clone(), store));
        let authenticator = Arc::new(Authenticator::new(&config));
        let app = operations().merge(taxii_http::router(services, authenticator.clone()));
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
            authenticator,
            shutdown,
            server,
            push,
        })
    }

    /// Stops accepting, lets requests in flight finish, and returns once they have.
    pub async fn stop(self) -> Result<(), GatewayError> {
        let _ = self.shutdown.send(());
        let served = join(self.server).await;
        self.push.stop().await;
        served
    }

    /// Runs until the server ends.
    pub async fn wait(self) -> Result<(), GatewayError> {
        let served = join(self.server).await;
        self.push.stop().await;
        served
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
