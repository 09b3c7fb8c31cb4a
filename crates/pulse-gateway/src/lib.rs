//! The Pulse reference gateway: WebSocket stream with replay, REST (snapshot, events,
//! ingest, mutations, login/refresh), health and Prometheus metrics over a per-tenant
//! event log (memory, SQLite, or Redis shared by several nodes). See `docs/protocol.md` for the wire protocol.
//!
//! Embedding (tests, the desktop app's demo mode):
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use pulse_gateway::{auth, Config, Gateway};
//! use pulse_protocol::auth::{Role, TokenUse};
//!
//! let config = Config { jwt_secret: Some("an-hs256-secret-of-32-bytes-or-more".into()), ..Config::default() };
//! let gw = Gateway::start(config).await?;
//! let claims = auth::claims("ann", "acme", Role::Viewer, TokenUse::Access,
//!                           std::time::Duration::from_secs(900));
//! let token = auth::mint(gw.secret(), &claims)?;
//! println!("connect to ws://{}/v1/stream with {}", gw.addr(), token.len());
//! gw.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Invariants of a running gateway:
//! - it is bound and serving when [`Gateway::start`] returns;
//! - [`RunningGateway::shutdown`] (or dropping the handle) stops accepting, closes
//!   every WebSocket with 1001 and stops the demo simulator; `shutdown` returns
//!   once the server task has ended; both are idempotent;
//! - every event reaches the log through one path ([`hub::Hub`]), whatever its
//!   source (ingest, mutation, demo).

#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod auth;
pub mod config;
pub mod demo;
pub mod http;
pub mod hub;
pub mod langgraph;
pub mod limits;
pub mod metrics;
pub mod revoked;
pub mod source;
pub mod store;
pub mod users;

pub mod cli;

pub use config::{Config, DemoConfig, StoreConfig, User};

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// No JWT secret and not in demo mode.
    #[error("no JWT secret: pass --jwt-secret or set PULSE_JWT_SECRET (or run with --demo)")]
    MissingSecret,
    /// The JWT secret is shorter than [`auth::MIN_SECRET_BYTES`].
    #[error("{0}")]
    WeakSecret(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] store::StoreError),
    /// The `--source` consumer could not be started.
    #[error("cannot start the source: {0}")]
    Source(String),
    /// The users file is invalid (or the demo tenant's name is).
    #[error("{0}")]
    Users(#[source] users::UsersError),
    /// The store could not be read at start.
    #[error("cannot read the store: {0}")]
    Hub(#[from] hub::HubError),
}

/// Entry point: [`Gateway::start`].
#[derive(Debug)]
pub struct Gateway;

impl Gateway {
    /// Open the store, bind `config.addr` and serve until shut down.
    pub async fn start(config: Config) -> Result<RunningGateway, StartError> {
        let secret = match (&config.jwt_secret, &config.demo) {
            (Some(s), _) if !s.is_empty() => {
                auth::check_secret(s, "the configuration").map_err(StartError::WeakSecret)?;
                s.clone()
            }
            (_, Some(_)) => auth::random_secret(),
            _ => return Err(StartError::MissingSecret),
        };
        let retain = config.retain.max(1);
        let node = config
            .node_id
            .clone()
            .unwrap_or_else(|| format!("{:08x}", rand::random::<u32>()));
        let store: Arc<dyn store::LogStore> = match &config.store {
            StoreConfig::Memory => Arc::new(store::MemoryStore::new(retain)),
            StoreConfig::Sqlite(path) => {
                let path = path.clone();
                Arc::new(
                    tokio::task::spawn_blocking(move || store::SqliteStore::open(&path, retain))
                        .await
                        .map_err(|e| hub::HubError::Task(e.to_string()))??,
                )
            }
            StoreConfig::Redis(url) => {
                let (url, age) = (url.clone(), config.retain_age);
                let node = node.clone();
                Arc::new(
                    tokio::task::spawn_blocking(move || {
                        store::RedisStore::open(&url, retain, age, &node)
                    })
                    .await
                    .map_err(|e| hub::HubError::Task(e.to_string()))??,
                )
            }
        };
        let metrics = Arc::new(metrics::Metrics::default());
        let hub = Arc::new(hub::Hub::new(store, config.client_queue, metrics)?);
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
        let mut fixed = config.users.clone();
        if let Some(demo) = &config.demo {
            fixed.push(
                User::new(
                    "demo",
                    "demo",
                    &demo.tenant,
                    pulse_protocol::auth::Role::Viewer,
                )
                .map_err(StartError::Users)?,
            );
        }
        let users = Arc::new(
            users::Directory::new(fixed, config.users_file.as_deref())
                .map_err(StartError::Users)?,
        );
        let (stop_tx, stop_rx) = watch::channel(false);
        hub.start_tail(stop_rx.clone());
        let revoked = Arc::new(revoked::Revoked::new(config.access_ttl));
        users::watch_removals(
            &users,
            &revoked,
            &hub,
            config.users_file.is_some(),
            stop_rx.clone(),
        );
        let langgraph = config
            .langgraph
            .clone()
            .map(|cfg| langgraph::LangGraphSource::new(cfg, hub.clone()));
        let state = Arc::new(http::AppState {
            hub: hub.clone(),
            keys: auth::Keys::new(&secret),
            users,
            revoked,
            ping_interval: config.ping_interval,
            ping_timeout: config.ping_timeout,
            access_ttl: config.access_ttl,
            refresh_ttl: config.refresh_ttl,
            shutdown: stop_rx.clone(),
            langgraph: langgraph.clone(),
            limiter: limits::Limiter::new(&config.limits),
            metrics_token: config.metrics_token.clone().filter(|t| !t.is_empty()),
            in_flight: http::idempotency::InFlight::default(),
        });
        let app = http::router(state);
        let mut server_stop = stop_rx.clone();
        let server = tokio::spawn(async move {
            let signal = async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            };
            // Nagle off: a frame written while the previous one is unacknowledged
            // would otherwise wait for the client's delayed ACK (up to 40 ms).
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
            });
            // The peer address, for the per-address limits.
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::error!(error = %e, "server failed");
            }
        });
        if let Some((url, mapping)) = config.source.clone() {
            let stats = hub.metrics().source.clone();
            source::start(
                url,
                mapping,
                node.clone(),
                hub.clone(),
                stats,
                stop_rx.clone(),
            )
            .map_err(|e| StartError::Source(e.to_string()))?;
        }
        if let Some(lg) = &langgraph {
            lg.start(stop_rx.clone());
        }
        let demo = config
            .demo
            .clone()
            .map(|d| tokio::spawn(demo::run(hub.clone(), d, stop_rx.clone())));
        tracing::info!(%addr, store = hub.backend(), demo = config.demo.is_some(), "gateway started");
        Ok(RunningGateway {
            addr,
            secret,
            stop: stop_tx,
            server: Some(server),
            demo,
            hub,
        })
    }
}

/// A started gateway. Stops when dropped.
#[derive(Debug)]
pub struct RunningGateway {
    addr: SocketAddr,
    secret: String,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    demo: Option<JoinHandle<()>>,
    hub: Arc<hub::Hub>,
}

impl RunningGateway {
    /// The bound address (the real port when the config asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The JWT secret in use (the generated one in demo mode without a secret), so an
    /// embedder can mint tokens with [`auth::mint`].
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The append path, for embedders that publish in-process.
    pub fn hub(&self) -> &Arc<hub::Hub> {
        &self.hub
    }

    /// Ask the gateway to stop without waiting.
    pub fn stop(&self) {
        if !self.stop.send_replace(true) {
            // A blocking Redis call: off the async workers.
            let hub = self.hub.clone();
            std::thread::spawn(move || hub.wake_tail());
        }
    }

    /// Stop and wait (at most 5 s) for the server and the simulator to end.
    pub async fn shutdown(mut self) {
        self.stop();
        for task in [self.server.take(), self.demo.take()].into_iter().flatten() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        tracing::info!(addr = %self.addr, "gateway stopped");
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.stop();
    }
}
