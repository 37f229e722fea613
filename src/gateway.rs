//! Wiring: a configuration turned into a running gateway, and its shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::adapters::taxii_client::{self, push::PushWorker};
use crate::adapters::{rolie_http, taxii_http};
use crate::auth::{Authenticator, TlsPeer};
use crate::bindings::amqp::AmqpMappings;
use crate::config::{Config, ServiceKind, TlsConfig};
use crate::core::Timestamp;
use crate::services::Services;
use crate::store::{SqliteStore, Store, StoreError};

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
    Push(String),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("the AMQP mappings: {0}")]
    Mappings(String),
}

/// The longest a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for TLS connections in flight before dropping them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A running gateway.
pub struct Gateway {
    /// Where the HTTP listener is bound (useful when the configuration said port 0).
    pub local_addr: SocketAddr,
    pub config: Arc<Config>,
    /// Its name in relay hop records.
    pub gateway_id: String,
    /// Checks the passwords of every adapter's requests.
    pub authenticator: Arc<Authenticator>,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<Result<(), std::io::Error>>,
    push: PushWorker,
    background: Background,
}

impl Gateway {
    /// Opens the store, binds the listener and starts serving.
    pub async fn start(mut config: Config) -> Result<Gateway, GatewayError> {
        // Read before binding, so that a bad file leaves no listener behind.
        let acceptor = config.server.tls.as_ref().map(tls_acceptor).transpose()?;
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
        let push = PushWorker::start(store.clone(), config.clone()).map_err(GatewayError::Push)?;
        let gateway_id = gateway_id(&config)?;
        let amqp_mappings = Arc::new(amqp_mappings(&config)?);
        let router = Arc::new(crate::router::Router::new(
            config.clone(),
            gateway_id.clone(),
        ));
        let services = Arc::new(Services::new(config.clone(), store.clone(), router));
        let background = Background::new();
        let ttl = config.router.seen_ttl_seconds;
        let kept = store.clone();
        background.spawn(move |stop| forget_seen(kept, ttl, stop));
        let own_inboxes: Vec<String> = config
            .services
            .iter()
            .filter(|service| service.kind == ServiceKind::Inbox)
            .map(|service| format!("{}{}", config.public_url(), service.path))
            .collect();
        for egress in &config.egress {
            if let Some(fan_out) = &egress.fan_out {
                let (egress, fan_out, store) = (egress.clone(), fan_out.clone(), store.clone());
                let own = own_inboxes.clone();
                background.spawn(move |stop| {
                    taxii_client::fanout::run(egress, fan_out, own, store, stop)
                });
            }
            if let Some(rolie) = &egress.rolie {
                let (egress, rolie, store) = (egress.clone(), rolie.clone(), store.clone());
                let gateway_id = gateway_id.clone();
                background.spawn(move |stop| {
                    crate::adapters::rolie_client::run_egress(
                        egress, rolie, gateway_id, store, stop,
                    )
                });
            }
            if let Some(taxii) = &egress.taxii {
                let (egress, taxii, store) = (egress.clone(), taxii.clone(), store.clone());
                background.spawn(move |stop| taxii_client::egress::run(egress, taxii, store, stop));
            }
            if let Some(amqp) = &egress.amqp {
                let (egress, amqp, store) = (egress.clone(), amqp.clone(), store.clone());
                let (gateway_id, mappings) = (gateway_id.clone(), amqp_mappings.clone());
                background.spawn(move |stop| {
                    crate::adapters::amqp::egress::run(
                        egress, amqp, mappings, gateway_id, store, stop,
                    )
                });
            }
        }
        for poller in &config.pollers {
            let (poller, services, store) = (poller.clone(), services.clone(), store.clone());
            background.spawn(move |stop| taxii_client::poller::run(poller, services, store, stop));
        }
        for poller in &config.rolie_pollers {
            let (poller, services, store) = (poller.clone(), services.clone(), store.clone());
            background.spawn(move |stop| {
                crate::adapters::rolie_client::run(poller, services, store, stop)
            });
        }
        for ingress in &config.amqp_ingress {
            let (ingress, services) = (ingress.clone(), services.clone());
            let mappings = amqp_mappings.clone();
            background.spawn(move |stop| {
                crate::adapters::amqp::ingress::run(ingress, mappings, services, stop)
            });
        }
        let authenticator = Arc::new(Authenticator::new(&config));
        let app = operations(store.clone())
            .merge(rolie_http::router(
                config.clone(),
                store.clone(),
                services.clone(),
                authenticator.clone(),
                gateway_id.clone(),
            ))
            .merge(taxii_http::router(services, authenticator.clone()));
        let app = match rolie_http::service_document_url(&config) {
            Some(location) => app.layer(axum::middleware::from_fn_with_state(
                Arc::<str>::from(location),
                rolie_http::forward_slash,
            )),
            None => app,
        };
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = match acceptor {
            Some(acceptor) => tokio::spawn(serve_tls(listener, acceptor, app, stopped)),
            None => tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
            }),
        };
        tracing::info!(%local_addr, data_dir = %config.server.data_dir.display(), %gateway_id,
            "taxiway is serving");
        Ok(Gateway {
            local_addr,
            config,
            gateway_id,
            authenticator,
            shutdown,
            server,
            push,
            background,
        })
    }

    /// Stops accepting, lets requests in flight finish, and returns once they have.
    pub async fn stop(self) -> Result<(), GatewayError> {
        let _ = self.shutdown.send(());
        let served = join(self.server).await;
        self.push.stop().await;
        self.background.stop().await;
        served
    }

    /// Runs until the server ends.
    pub async fn wait(self) -> Result<(), GatewayError> {
        let served = join(self.server).await;
        self.push.stop().await;
        self.background.stop().await;
        served
    }
}

/// The gateway's own tasks besides the listener: each runs until told to stop.
struct Background {
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<JoinSet<()>>,
}

impl Background {
    fn new() -> Background {
        Background {
            stop: watch::channel(false).0,
            tasks: std::sync::Mutex::new(JoinSet::new()),
        }
    }

    /// Runs `task` with a receiver that turns true when the gateway stops.
    fn spawn<F, T>(&self, task: F)
    where
        F: FnOnce(watch::Receiver<bool>) -> T,
        T: std::future::Future<Output = ()> + Send + 'static,
    {
        let running = task(self.stop.subscribe());
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.spawn(running);
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let Ok(mut tasks) = self.tasks.into_inner() else {
            return;
        };
        while let Some(done) = tasks.join_next().await {
            if let Err(error) = done {
                tracing::error!(%error, "a background task failed");
            }
        }
    }
}

/// The shipped AMQP mappings, or the operator's file that replaces them.
fn amqp_mappings(config: &Config) -> Result<AmqpMappings, GatewayError> {
    let Some(path) = &config.mappings.amqp else {
        return Ok(crate::bindings::amqp::amqp_mappings().clone());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| GatewayError::Mappings(format!("cannot read {}: {e}", path.display())))?;
    AmqpMappings::from_toml(&text)
        .map_err(|e| GatewayError::Mappings(format!("in {}: {e}", path.display())))
}

/// This gateway's relay name: configured, or made once and kept in the data
/// directory, so that it survives restarts and differs between installations.
fn gateway_id(config: &Config) -> Result<String, GatewayError> {
    if let Some(id) = &config.gateway.id {
        return Ok(id.clone());
    }
    let path = config.server.data_dir.join("gateway-id");
    let unreadable = |error: std::io::Error| {
        GatewayError::Store(StoreError::Unavailable(format!(
            "cannot keep the gateway id in {}: {error}",
            path.display()
        )))
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) => Err(unreadable(std::io::Error::other("the file is empty"))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("taxiway-{}", uuid::Uuid::new_v4().simple());
            std::fs::write(&path, format!("{id}\n")).map_err(unreadable)?;
            Ok(id)
        }
        Err(error) => Err(unreadable(error)),
    }
}

/// Forgets remembered message ids once they are older than the seen window.
async fn forget_seen<S: Store>(store: S, ttl_seconds: u64, mut stop: watch::Receiver<bool>) {
    let ttl = i64::try_from(ttl_seconds.saturating_mul(1_000_000_000)).unwrap_or(i64::MAX);
    loop {
        match store
            .forget_seen(Timestamp::now().shifted_nanos(-ttl))
            .await
        {
            Ok(0) => {}
            Ok(forgotten) => tracing::debug!(forgotten, "message ids forgotten"),
            Err(error) => tracing::warn!(%error, "cannot forget old message ids"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The rustls server configuration: the certificate and key, and the client
/// verifier when a client CA is configured.
fn tls_acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, GatewayError> {
    let failed = |what: &str, path: &std::path::Path, error: &dyn std::fmt::Display| {
        GatewayError::Tls(format!("{what} {}: {error}", path.display()))
    };
    let read_certificates = |path: &std::path::Path| {
        CertificateDer::pem_file_iter(path)
            .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
            .map_err(|error| failed("cannot read the certificates of", path, &error))
            .and_then(|certificates| match certificates.is_empty() {
                true => Err(failed("no certificate in", path, &"empty")),
                false => Ok(certificates),
            })
    };
    let chain = read_certificates(&tls.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|error| failed("cannot read the private key of", &tls.key, &error))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| GatewayError::Tls(error.to_string()))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in read_certificates(path)? {
                roots
                    .add(certificate)
                    .map_err(|error| failed("a bad CA certificate in", path, &error))?;
            }
            // Optional, so that Basic and anonymous clients still connect.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|error| failed("cannot verify clients with", path, &error))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder
        .with_single_cert(chain, key)
        .map_err(|error| GatewayError::Tls(format!("the certificate and key: {error}")))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Accepts TLS connections until stopped, then lets those in flight finish
/// (for at most DRAIN_TIMEOUT).
async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    mut stopped: oneshot::Receiver<()>,
) -> Result<(), std::io::Error> {
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of descriptors, say: wait rather than spin.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let connection = tls_connection(stream, acceptor.clone(), app.clone(), draining.clone());
                connections.spawn(connection);
            }
        }
    }
    drop(listener);
    let _ = drain.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(left = connections.len(), "TLS connections dropped at stop");
        connections.shutdown().await;
    }
    Ok(())
}

async fn tls_connection(
    stream: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    app: Router,
    mut draining: watch::Receiver<bool>,
) {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::info!(%error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!("TLS handshake timed out");
            return;
        }
    };
    // rustls has verified any certificate presented against the client CA.
    let certificate_subject = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|certificate| crate::auth::certificate_common_name(certificate));
    let peer = TlsPeer {
        certificate_subject,
    };
    let service = hyper_util::service::TowerToHyperService::new(app.layer(axum::Extension(peer)));
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    let connection =
        builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        // Set once, at stop (or dropped if the server task ends).
        _ = draining.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = served {
        tracing::debug!(%error, "TLS connection ended with an error");
    }
}

/// The operator's endpoints, beside the TAXII services.
fn operations<S: Store + Clone>(store: S) -> Router {
    let metrics = metrics_handle();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || async move {
                let Some(metrics) = metrics else {
                    return String::new();
                };
                // Read at scrape time, so that the gauge is never stale.
                match store.outbox_depth().await {
                    Ok(depth) => {
                        metrics::gauge!("taxiway_outbox_depth", "state" => "pending")
                            .set(depth.pending as f64);
                        metrics::gauge!("taxiway_outbox_depth", "state" => "dead")
                            .set(depth.dead as f64);
                    }
                    Err(error) => tracing::warn!(%error, "cannot measure the outbox"),
                }
                metrics.render()
            }),
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
