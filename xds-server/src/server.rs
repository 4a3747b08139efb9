//! The tonic ADS service and a convenience `serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::session::{Outgoing, Poll, Session};
use crate::{Error, Protocol, ServerOptions, SnapshotCache};

/// The ADS service over a [`SnapshotCache`]. Clone it freely.
#[derive(Clone, Debug)]
pub struct AdsServer {
    cache: SnapshotCache,
    opts: ServerOptions,
    closing: Option<watch::Receiver<bool>>,
    authorize: bool,
}

impl AdsServer {
    /// A server following `cache`, with default [`ServerOptions`].
    pub fn new(cache: SnapshotCache) -> Self {
        AdsServer { cache, opts: ServerOptions::default(), closing: None, authorize: false }
    }

    /// The same server with other options.
    pub fn with_options(mut self, opts: ServerOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Ends every stream (as a clean end of the response stream) once `closing` turns true, so a
    /// graceful server shutdown does not wait for Envoy to hang up.
    pub fn with_closing_signal(mut self, closing: watch::Receiver<bool>) -> Self {
        self.closing = Some(closing);
        self
    }

    /// The same server, authorizing every stream by its TLS client certificate: a stream is
    /// refused (`PERMISSION_DENIED`) unless the peer presented a certificate naming a snapshot
    /// key ([`crate::tls::peer_key`]) and its node's `cluster` is that key. Only meaningful on
    /// a `tonic::transport::Server` with a TLS config that requires client certificates (see
    /// [`crate::serve_tls`]).
    pub fn with_peer_authorization(mut self) -> Self {
        self.authorize = true;
        self
    }

    /// The snapshot key the peer of `request` may follow: None when this server does not
    /// authorize; an error status when it does and the peer has no usable identity.
    fn allowed_key<T>(&self, request: &Request<T>) -> Result<Option<String>, Status> {
        if !self.authorize {
            return Ok(None);
        }
        match crate::tls::request_key(request) {
            Ok(key) => Ok(Some(key)),
            Err(why) => {
                tracing::warn!(remote = ?request.remote_addr(), reason = %why, "ADS stream refused: no peer identity");
                Err(Status::permission_denied(why))
            }
        }
    }

    /// The tonic service, to add to a `tonic::transport::Server`.
    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self).max_decoding_message_size(16 * 1024 * 1024)
    }

    fn start<Req, Resp>(
        &self,
        protocol: Protocol,
        allowed: Option<String>,
        incoming: Streaming<Req>,
    ) -> ReceiverStream<Result<Resp, Status>>
    where
        Req: XdsRequest,
        Resp: FromOutgoing,
    {
        let (tx, rx) = mpsc::channel(8);
        let this = self.clone();
        tokio::spawn(async move { this.drive(protocol, allowed, incoming, tx).await });
        ReceiverStream::new(rx)
    }

    async fn drive<Req, Resp>(
        self,
        protocol: Protocol,
        allowed: Option<String>,
        mut incoming: Streaming<Req>,
        tx: mpsc::Sender<Result<Resp, Status>>,
    ) where
        Req: XdsRequest,
        Resp: FromOutgoing,
    {
        let first = match incoming.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(status) => {
                tracing::debug!(%status, "ADS stream ended before its first request");
                return;
            }
        };
        let Some(node) = first.node().cloned().filter(|n| !n.cluster.is_empty()) else {
            tracing::warn!(%protocol, "ADS stream without node or node.cluster; refused");
            let _ =
                tx.send(Err(Status::invalid_argument("the first request must carry node.id and node.cluster"))).await;
            return;
        };
        if let Some(allowed) = allowed.filter(|k| *k != node.cluster) {
            tracing::warn!(
                %protocol, node_id = %node.id, node_cluster = %node.cluster, certificate_key = %allowed,
                "ADS stream refused: node.cluster is not the key its certificate names"
            );
            let msg =
                format!("this client certificate may only follow {allowed:?}, not node.cluster {:?}", node.cluster);
            let _ = tx.send(Err(Status::permission_denied(msg))).await;
            return;
        }
        let span =
            tracing::info_span!("xds_stream", protocol = %protocol, node_id = %node.id, node_cluster = %node.cluster);
        self.run(protocol, node, first, incoming, tx).instrument(span).await;
    }

    async fn run<Req, Resp>(
        self,
        protocol: Protocol,
        node: Node,
        first: Req,
        mut incoming: Streaming<Req>,
        tx: mpsc::Sender<Result<Resp, Status>>,
    ) where
        Req: XdsRequest,
        Resp: FromOutgoing,
    {
        let mut closing = self.closing.clone();
        let is_closing = |c: &Option<watch::Receiver<bool>>| c.as_ref().is_some_and(|c| *c.borrow());
        let mut snapshots = self.cache.watch(&node.cluster);
        let mut session = Session::new(self.cache.clone(), self.opts.clone(), protocol, node.id, node.cluster);
        tracing::info!(key = %session.key(), "ADS stream opened");
        session.set_snapshot(snapshots.borrow_and_update().clone());
        first.apply(&mut session);
        loop {
            if is_closing(&closing) {
                break;
            }
            let deadline = match session.poll(Instant::now()) {
                Poll::Send(out) => {
                    if tx.send(Ok(Resp::from_outgoing(out))).await.is_err() {
                        break;
                    }
                    continue;
                }
                Poll::Wait(deadline) => deadline,
            };
            tokio::select! {
                msg = incoming.message() => match msg {
                    Ok(Some(req)) => req.apply(&mut session),
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(%status, "ADS stream error");
                        break;
                    }
                },
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    session.set_snapshot(snapshots.borrow_and_update().clone());
                }
                _ = sleep_until(deadline) => {}
                _ = closing_changed(&mut closing) => {}
                _ = tx.closed() => break,
            }
        }
        tracing::info!("ADS stream closed");
    }
}

async fn closing_changed(closing: &mut Option<watch::Receiver<bool>>) {
    match closing {
        Some(c) => {
            if c.changed().await.is_err() {
                // The signal's sender is gone: it can no longer fire.
                *closing = None;
            }
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

trait XdsRequest: Send + 'static {
    fn node(&self) -> Option<&Node>;
    fn apply(self, session: &mut Session);
}

impl XdsRequest for DiscoveryRequest {
    fn node(&self) -> Option<&Node> {
        self.node.as_ref()
    }
    fn apply(self, session: &mut Session) {
        session.handle_sotw(self)
    }
}

impl XdsRequest for DeltaDiscoveryRequest {
    fn node(&self) -> Option<&Node> {
        self.node.as_ref()
    }
    fn apply(self, session: &mut Session) {
        session.handle_delta(self)
    }
}

trait FromOutgoing: Send + 'static {
    fn from_outgoing(o: Outgoing) -> Self;
}

impl FromOutgoing for DiscoveryResponse {
    fn from_outgoing(o: Outgoing) -> Self {
        match o {
            Outgoing::Sotw(r) => r,
            Outgoing::Delta(_) => unreachable!("a SotW session builds SotW responses"),
        }
    }
}

impl FromOutgoing for DeltaDiscoveryResponse {
    fn from_outgoing(o: Outgoing) -> Self {
        match o {
            Outgoing::Delta(r) => r,
            Outgoing::Sotw(_) => unreachable!("a Delta session builds Delta responses"),
        }
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let allowed = self.allowed_key(&request)?;
        Ok(Response::new(self.start(Protocol::Sotw, allowed, request.into_inner())))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let allowed = self.allowed_key(&request)?;
        Ok(Response::new(self.start(Protocol::Delta, allowed, request.into_inner())))
    }
}

/// Serves ADS over `cache` on `addr` (plaintext HTTP/2) until `shutdown` completes; then ends
/// every open stream and returns.
pub async fn serve(
    addr: SocketAddr,
    cache: SnapshotCache,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
    serve_with_listener(listener, cache, ServerOptions::default(), shutdown).await
}

/// Like [`serve`], on a bound listener (e.g. port 0 in tests) and with explicit options.
pub async fn serve_with_listener(
    listener: tokio::net::TcpListener,
    cache: SnapshotCache,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let (close_tx, close_rx) = watch::channel(false);
    let extra = opts.extra_services.clone();
    let service = AdsServer::new(cache).with_options(opts).with_closing_signal(close_rx).into_service();
    run(listener, service, extra, None, close_tx, shutdown).await
}

/// Runs the ADS service (and the `extra` services) on `listener` (with `tls` when given) until `shutdown`; then tells every
/// open stream to end (`close_tx`) and returns. Shared by [`serve_with_listener`] and
/// [`crate::serve_tls`].
pub(crate) async fn run(
    listener: tokio::net::TcpListener,
    service: AggregatedDiscoveryServiceServer<AdsServer>,
    extra: Option<tonic::service::Routes>,
    tls: Option<tonic::transport::ServerTlsConfig>,
    close_tx: watch::Sender<bool>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, mutual_tls = tls.is_some(), "xDS server listening");
    }
    let mut builder = tonic::transport::Server::builder();
    if let Some(config) = tls {
        builder = builder.tls_config(config)?;
    }
    builder
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_routes(extra.unwrap_or_default().add_service(service))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            shutdown.await;
            let _ = close_tx.send(true);
        })
        .await?;
    Ok(())
}
