//! The HTTP/1.1 client: one keep-alive hyper connection per worker, no pool, no
//! redirects, no TLS. That is what keeps the generator far cheaper than the
//! servers it measures (reqwest's pool and layers cost about twice the CPU).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::{BenchError, Result};

/// Where requests go and which headers every request carries.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub timeout: Duration,
}

impl Endpoint {
    /// Builds the header list: Host, Content-Type, then the user's headers.
    pub fn new(
        addr: SocketAddr,
        authority: &str,
        path: String,
        user_headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<Self> {
        let mut headers = vec![
            (
                HOST,
                HeaderValue::from_str(authority)
                    .map_err(|_| BenchError::invalid("url", "host is not a valid header value"))?,
            ),
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        ];
        for (name, value) in user_headers {
            let n = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                BenchError::invalid(format!("header {name:?}"), "invalid header name")
            })?;
            let v = HeaderValue::from_str(value.trim()).map_err(|_| {
                BenchError::invalid(format!("header {name:?}"), "invalid header value")
            })?;
            headers.push((n, v));
        }
        Ok(Self {
            addr,
            path,
            headers,
            timeout,
        })
    }

    /// The same endpoint at another path (used by API detection).
    pub fn with_path(&self, path: String) -> Self {
        Self {
            path,
            ..self.clone()
        }
    }
}

/// Why a request did not succeed. `key()` names it in reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Status(u16),
    Timeout,
    Connect,
    Io,
}

impl Failure {
    pub fn key(&self) -> String {
        match self {
            Self::Status(code) => format!("http {code}"),
            Self::Timeout => "timeout".into(),
            Self::Connect => "connect".into(),
            Self::Io => "io".into(),
        }
    }
}

/// One completed exchange: the status and body bytes seen, or why it failed.
#[derive(Debug)]
pub struct Exchange {
    pub result: std::result::Result<(), Failure>,
    pub bytes_received: u64,
}

/// A worker's own connection, reopened when the server closes it or a request
/// times out mid-flight.
pub struct Conn {
    endpoint: std::rc::Rc<Endpoint>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(endpoint: std::rc::Rc<Endpoint>) -> Self {
        Self {
            endpoint,
            sender: None,
        }
    }

    async fn connect(&mut self) -> std::result::Result<(), Failure> {
        let stream = TcpStream::connect(self.endpoint.addr)
            .await
            .map_err(|_| Failure::Connect)?;
        // Small requests must leave at once, not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| Failure::Connect)?;
        tokio::task::spawn_local(async move {
            // The connection ends when the sender is dropped or the server closes;
            // request errors reach the sender, so this one carries nothing new.
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends one POST and reads the whole response body, within the timeout.
    pub async fn post(&mut self, body: Bytes) -> Exchange {
        let timeout = self.endpoint.timeout;
        match tokio::time::timeout(timeout, self.post_inner(body)).await {
            Ok(exchange) => exchange,
            Err(_) => {
                // The connection is mid-request: it cannot be reused.
                self.sender = None;
                Exchange {
                    result: Err(Failure::Timeout),
                    bytes_received: 0,
                }
            }
        }
    }

    async fn post_inner(&mut self, body: Bytes) -> Exchange {
        let fail = |f| Exchange {
            result: Err(f),
            bytes_received: 0,
        };
        let ready = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            self.sender = None;
            if let Err(f) = self.connect().await {
                return fail(f);
            }
        }
        let Some(sender) = self.sender.as_mut() else {
            return fail(Failure::Connect);
        };
        let mut builder = Request::post(self.endpoint.path.as_str());
        if let Some(h) = builder.headers_mut() {
            h.reserve(self.endpoint.headers.len());
            for (n, v) in &self.endpoint.headers {
                h.append(n.clone(), v.clone());
            }
        }
        let Ok(req) = builder.body(Full::new(body)) else {
            return fail(Failure::Io);
        };
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(_) => {
                self.sender = None;
                return fail(Failure::Io);
            }
        };
        let status = resp.status();
        let mut body = resp.into_body();
        let mut received = 0u64;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(d) = f.data_ref() {
                        received += d.len() as u64;
                    }
                }
                Err(_) => {
                    self.sender = None;
                    return Exchange {
                        result: Err(Failure::Io),
                        bytes_received: received,
                    };
                }
            }
        }
        Exchange {
            result: if status.is_success() {
                Ok(())
            } else {
                Err(Failure::Status(status.as_u16()))
            },
            bytes_received: received,
        }
    }
}

/// One request outside the measured load (API detection, checks): the status and
/// the whole body.
pub async fn probe(endpoint: &Endpoint, body: Bytes) -> Result<(StatusCode, Bytes)> {
    let target = format!("http://{}{}", endpoint.addr, endpoint.path);
    let work = async {
        let stream = TcpStream::connect(endpoint.addr)
            .await
            .map_err(|e| BenchError::Target(format!("cannot connect to {}: {e}", endpoint.addr)))?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| BenchError::Target(format!("{target}: {e}")))?;
        let driver = tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        let mut builder = Request::post(endpoint.path.as_str());
        for (n, v) in &endpoint.headers {
            builder = builder.header(n, v);
        }
        let req = builder
            .body(Full::new(body))
            .map_err(|e| BenchError::Target(format!("{target}: {e}")))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| BenchError::Target(format!("{target}: {e}")))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| BenchError::Target(format!("{target}: {e}")))?
            .to_bytes();
        drop(sender);
        driver.abort();
        Ok((status, bytes))
    };
    tokio::time::timeout(endpoint.timeout, work)
        .await
        .map_err(|_| {
            BenchError::Target(format!("{target}: no answer within {:?}", endpoint.timeout))
        })?
}
