//! The accept loop shared by plain HTTP and HTTPS: HTTP/1.1 and HTTP/2 by
//! hyper-util, a cap on open connections, the header, body and keep-alive
//! timeouts, and graceful shutdown.

mod body;
mod idle;

pub(crate) use body::answer_body_timeouts;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::ServerConfig;
use body::{RequestBody, ResponseBody};
use idle::{Activity, Tracked};

/// A TLS handshake that has not finished by then is dropped, so idle sockets cannot
/// pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// After a connection is asked to close for idling (HTTP/2 is sent a GOAWAY), how
/// long it may take before it is dropped: an HTTP/1.1 client stalled mid-head
/// does not close on request.
const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// How connections arrive: as they are, or inside TLS.
#[derive(Clone)]
pub(crate) enum Transport {
    Plain,
    Tls(TlsAcceptor),
}

/// The `[server]` settings each connection applies.
struct Timeouts {
    header: Option<Duration>,
    body: Option<Duration>,
    keep_alive: Duration,
}

impl Timeouts {
    fn of(config: &ServerConfig) -> Self {
        let ms = |v: u64| (v > 0).then(|| Duration::from_millis(v));
        Self {
            header: ms(config.header_timeout_ms),
            body: ms(config.body_timeout_ms),
            keep_alive: Duration::from_secs(config.keep_alive_secs),
        }
    }
}

/// Accepts connections until `shutdown` resolves, then lets open connections
/// finish their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    transport: Transport,
    app: Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let timeouts = Arc::new(Timeouts::of(config));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header clock is ours (see `idle`); without this hyper would start its own
    // 30 s one.
    builder
        .http1()
        .keep_alive(config.keep_alive_secs > 0)
        .header_read_timeout(None);
    // At the cap the loop stops accepting, as nginx does, rather than accepting and
    // closing at once: clients beyond it wait in the kernel's listen backlog and
    // are served as connections close, instead of failing outright.
    let cap = (config.max_connections > 0).then(|| {
        Arc::new(Semaphore::new(
            config.max_connections.min(Semaphore::MAX_PERMITS),
        ))
    });
    let (stop, stopped) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = match &cap {
            Some(cap) => tokio::select! {
                p = cap.clone().acquire_owned() => p.ok(),
                () = &mut shutdown => break,
            },
            None => None,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let conn = Conn {
            peer,
            app: app.clone(),
            builder: builder.clone(),
            timeouts: timeouts.clone(),
            stopped: stopped.clone(),
            _permit: permit,
        };
        tokio::spawn(conn.run(tcp, transport.clone()));
    }
    // New connections are refused from here; open ones are asked to finish, and
    // each holds a receiver until it has.
    drop(listener);
    drop(stopped);
    let _ = stop.send(true);
    stop.closed().await;
    Ok(())
}

/// One accepted connection.
struct Conn {
    peer: SocketAddr,
    app: Router,
    builder: auto::Builder<TokioExecutor>,
    timeouts: Arc<Timeouts>,
    stopped: watch::Receiver<bool>,
    /// Its place under `server.max_connections`, given back when it closes.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Conn {
    async fn run(mut self, tcp: TcpStream, transport: Transport) {
        let _ = tcp.set_nodelay(true);
        match transport {
            Transport::Plain => self.serve(tcp).await,
            Transport::Tls(acceptor) => {
                let peer = self.peer;
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                let tls = tokio::select! {
                    done = handshake => match done {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    },
                    _ = self.stopped.wait_for(|s| *s) => return,
                };
                self.serve(tls).await;
            }
        }
    }

    /// Serves requests until the connection ends, idles too long, or the server
    /// shuts down.
    async fn serve<IO>(mut self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let t = &self.timeouts;
        let activity = Activity::new(t.header, t.keep_alive);
        let svc = ConnService {
            app: self.app.clone(),
            peer: self.peer,
            activity: activity.clone(),
            body_timeout: t.body,
        };
        let io = TokioIo::new(Tracked::new(io, activity.clone()));
        let conn = self.builder.serve_connection(io, svc);
        tokio::pin!(conn);
        let mut asked_to_close = false;
        let mut expired = false;
        let mut drop_at: Option<Instant> = None;
        let mut stopping = false;
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = activity.expired(), if !expired => {
                    expired = true;
                    if !asked_to_close {
                        conn.as_mut().graceful_shutdown();
                        asked_to_close = true;
                    }
                    drop_at = Some(Instant::now() + CLOSE_GRACE);
                }
                () = tokio::time::sleep_until(drop_at.unwrap_or_else(Instant::now)), if drop_at.is_some() => {
                    // A request that began meanwhile is let finish: the connection
                    // closes after it.
                    if !activity.is_busy() {
                        return;
                    }
                    drop_at = None;
                }
                _ = self.stopped.changed(), if !stopping => {
                    stopping = true;
                    if !asked_to_close {
                        conn.as_mut().graceful_shutdown();
                        asked_to_close = true;
                    }
                }
            }
        }
    }
}

/// Each request of a connection: its peer address for the handlers, its body
/// under the body timeout, and the connection kept busy until the answer is sent.
#[derive(Clone)]
struct ConnService {
    app: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
    body_timeout: Option<Duration>,
}

type Answer = Pin<Box<dyn Future<Output = Result<hyper::Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = hyper::Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, req: hyper::Request<Incoming>) -> Answer {
        let busy = self.activity.busy();
        let (mut head, incoming) = req.into_parts();
        head.extensions.insert(ConnectInfo(self.peer));
        let (body, linger) =
            RequestBody::new(incoming, &mut head, self.body_timeout, busy.another());
        let req = hyper::Request::from_parts(head, Body::new(body));
        let app = self.app.clone();
        Box::pin(async move {
            let resp = match app.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            Ok(resp.map(|b| Body::new(ResponseBody::new(b, linger, busy))))
        })
    }
}
