//! Listeners and shutdown: HTTPS for admission, plain HTTP for admin.
//!
//! Both listeners share one accept loop: each connection gets its own task
//! (so a slow TLS handshake cannot stall `accept`), is served by hyper-util's
//! connection builder, and is watched by a `GracefulShutdown` so cancelling
//! the shutdown token closes the listener, lets in-flight requests finish
//! and then stops, within a drain deadline. Request-level limits (body size,
//! per-request timeout) belong to the router; only connection-level ones
//! live here.

mod signals;
#[cfg(test)]
mod tests;

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub(crate) use signals::shutdown_on_signals;

/// Connection-level limits of a listener.
///
/// Build with struct update syntax, `HttpsOptions { drain_timeout, ..Default::default() }`,
/// so new fields do not break callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsOptions {
    /// Longest a client may take to finish the TLS handshake; stops idle
    /// or stalled sockets from holding a task forever.
    pub handshake_timeout: Duration,
    /// Longest an HTTP/1 client may take to send a request's headers. Hyper
    /// also applies it to the wait for the next request on a kept-alive
    /// connection, so it doubles as the HTTP/1 idle timeout.
    pub header_read_timeout: Duration,
    /// How often to PING an HTTP/2 peer so dead connections are noticed;
    /// `None` disables it.
    pub http2_keep_alive_interval: Option<Duration>,
    /// How long to wait for the PING's answer before closing.
    pub http2_keep_alive_timeout: Duration,
    /// How long in-flight requests may run after shutdown starts before
    /// their connections are closed anyway. Keep it below the Pod's
    /// `terminationGracePeriodSeconds`.
    pub drain_timeout: Duration,
}

impl Default for HttpsOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            http2_keep_alive_interval: Some(Duration::from_secs(30)),
            http2_keep_alive_timeout: Duration::from_secs(10),
            // The apiserver gives up on a webhook after at most 30 s, usually 10.
            drain_timeout: Duration::from_secs(20),
        }
    }
}

/// Why a listener could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listener socket is unusable (it has no local address).
    #[error("listener is unusable: {0}")]
    Listener(#[source] io::Error),
    /// A shutdown signal handler could not be installed.
    #[error("installing the {signal} handler: {source}")]
    Signal {
        /// `SIGTERM` or `SIGINT`.
        signal: &'static str,
        /// The underlying error.
        source: io::Error,
    },
}

/// Serves `app` over TLS on `listener` until `shutdown` is cancelled, then
/// stops accepting (new connections are refused) and drains open ones for
/// at most `opts.drain_timeout`.
///
/// The protocol follows ALPN: `h2` gets HTTP/2, anything else (including no
/// ALPN) HTTP/1.1, as RFC 9113 requires HTTP/2 over TLS to be negotiated.
/// `tls` is normally [`crate::tls::server_config`]. Failed handshakes and
/// failed `accept` calls (e.g. out of file descriptors) are logged and never
/// stop the loop.
pub async fn serve_https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: CancellationToken,
    opts: HttpsOptions,
) -> Result<(), ServerError> {
    serve(listener, Some(TlsAcceptor::from(tls)), app, shutdown, opts).await
}

/// Serves `app` over plain HTTP/1.1 (the admin listener: probes and
/// metrics) with the same shutdown behaviour and [`HttpsOptions::default`]
/// limits.
pub(crate) async fn serve_http(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    serve(listener, None, app, shutdown, HttpsOptions::default()).await
}

/// After a failed `accept`, Go's net/http backs off from 5 ms doubling to
/// 1 s; the same keeps EMFILE from spinning a core or flooding the log.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    shutdown: CancellationToken,
    opts: HttpsOptions,
) -> Result<(), ServerError> {
    let addr = listener.local_addr().map_err(ServerError::Listener)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(%addr, scheme, "listening");
    let builders = Arc::new(Builders::new(&opts));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished tasks so the set tracks only open connections.
        while connections.try_join_next().is_some() {}
        let (tcp, peer) = match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF_MIN;
                accepted
            }
            // The peer gave up before we got to it; nothing wrong locally.
            Err(e) if is_peer_error(&e) => {
                debug!(%addr, error = %e, "accept: peer went away");
                continue;
            }
            Err(e) => {
                warn!(%addr, error = %e, retry_in = ?backoff, "accept failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        // Admission responses are small; Nagle would only add latency.
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(%peer, error = %e, "setting TCP_NODELAY");
        }
        let conn = Connection {
            builders: Arc::clone(&builders),
            app: app.clone(),
            tls: tls.clone(),
            handshake_timeout: opts.handshake_timeout,
            peer,
        };
        // The watcher is taken before the handshake so a connection still
        // handshaking when shutdown starts is drained too, not orphaned.
        connections.spawn(conn.run(tcp, graceful.watcher()));
    }

    // Close the socket first: new connections are refused while open ones drain.
    drop(listener);
    info!(%addr, open = connections.len(), "shutting down; draining connections");
    tokio::select! {
        () = graceful.shutdown() => info!(%addr, "all connections drained"),
        () = tokio::time::sleep(opts.drain_timeout) => warn!(
            %addr,
            still_open = connections.len(),
            drain_timeout = ?opts.drain_timeout,
            "drain deadline passed; closing the remaining connections"
        ),
    }
    connections.shutdown().await;
    Ok(())
}

fn is_peer_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// One builder per protocol: choosing from ALPN up front avoids hyper's
/// protocol sniffing, which waits for bytes with no timeout of its own.
struct Builders {
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(opts: &HttpsOptions) -> Self {
        let mut base = auto::Builder::new(TokioExecutor::new());
        base.http1()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(opts.header_read_timeout);
        base.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(opts.http2_keep_alive_interval)
            .keep_alive_timeout(opts.http2_keep_alive_timeout);
        Self {
            http1: base.clone().http1_only(),
            http2: base.http2_only(),
        }
    }
}

struct Connection {
    builders: Arc<Builders>,
    app: Router,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    peer: SocketAddr,
}

impl Connection {
    async fn run(self, tcp: TcpStream, watcher: hyper_util::server::graceful::Watcher) {
        let peer = self.peer;
        let service = TowerToHyperService::new(self.app);
        let served = match self.tls {
            None => {
                let conn = self
                    .builders
                    .http1
                    .serve_connection(TokioIo::new(tcp), service);
                watcher.watch(conn).await
            }
            Some(acceptor) => {
                let handshake = tokio::time::timeout(self.handshake_timeout, acceptor.accept(tcp));
                let stream = match handshake.await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return log_handshake_error(peer, &e),
                    Err(_) => {
                        debug!(%peer, timeout = ?self.handshake_timeout, "TLS handshake timed out");
                        return;
                    }
                };
                let builder = match stream.get_ref().1.alpn_protocol() {
                    Some(b"h2") => &self.builders.http2,
                    _ => &self.builders.http1,
                };
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                watcher.watch(conn).await
            }
        };
        // Resets and abrupt closes are routine for HTTP clients.
        if let Err(e) = served {
            debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// TLS-level failures (an apiserver with the wrong `caBundle` sends a
/// `bad_certificate` alert) are worth seeing; bare TCP probes and port
/// scans that hang up mid-handshake are not.
fn log_handshake_error(peer: SocketAddr, e: &io::Error) {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => info!(%peer, error = %tls, "TLS handshake failed"),
        None => debug!(%peer, error = %e, "connection closed during the TLS handshake"),
    }
}
