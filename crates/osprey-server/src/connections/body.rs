//! Request and response bodies on a connection: the body timeout, and the
//! lingering read of a body the handler did not want.
//!
//! A request refused on its headers (413 for a declared length over the limit)
//! is answered while the client is still sending. Closing the connection then
//! would leave unread bytes in the socket, and the kernel answers those with a
//! reset that can destroy the answer before a client that writes its whole body
//! before reading (Python's `http.client`, many others) has read it. So, as
//! nginx's `lingering_close`, the rest of the body is read and dropped, within a
//! bounded size and time, once the answer is on its way.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Version, header, request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

use super::idle::Busy;

/// A refused body is drained up to this size; a body declared larger is not
/// drained at all, since the client could not finish sending it anyway.
const LINGER_BYTES: u64 = 32 * 1024 * 1024;
/// Longest a refused body is drained for.
const LINGER_TIME: Duration = Duration::from_secs(10);

/// Whether a request's body missed its deadline, for the middleware that answers
/// for it. In the request's extensions when the body timeout is on.
#[derive(Clone)]
pub(crate) struct BodyClock(Arc<ClockState>);

struct ClockState {
    limit: Duration,
    expired: AtomicBool,
}

impl BodyClock {
    fn expired(&self) -> bool {
        self.0.expired.load(Ordering::Acquire)
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("the request body did not arrive within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error(transparent)]
    Read(#[from] hyper::Error),
}

/// A request's body as the handlers see it: hyper's, with the body timeout, and
/// handed over to be drained if dropped unfinished.
pub(crate) struct RequestBody {
    inner: Option<Incoming>,
    deadline: Option<(Pin<Box<Sleep>>, BodyClock)>,
    linger: Option<Arc<Linger>>,
    busy: Option<Busy>,
}

impl RequestBody {
    /// `busy` keeps the connection counted as busy while the body is being read.
    /// Returns the body and, when the body may be drained after the answer, the
    /// hand-over for the answer's body to start the draining.
    pub(crate) fn new(
        inner: Incoming,
        head: &mut request::Parts,
        timeout: Option<Duration>,
        busy: Busy,
    ) -> (Self, Option<Arc<Linger>>) {
        if inner.is_end_stream() {
            let body = Self {
                inner: None,
                deadline: None,
                linger: None,
                busy: None,
            };
            return (body, None);
        }
        let deadline = timeout.map(|limit| {
            let clock = BodyClock(Arc::new(ClockState {
                limit,
                expired: AtomicBool::new(false),
            }));
            head.extensions.insert(clock.clone());
            (Box::pin(tokio::time::sleep(limit)), clock)
        });
        // HTTP/2 refuses an unwanted body with a stream reset and keeps the
        // connection; only HTTP/1 needs to read it.
        let declared = head
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let linger = (head.version <= Version::HTTP_11
            && declared.is_none_or(|n| n <= LINGER_BYTES))
        .then(|| Arc::new(Linger::default()));
        let body = Self {
            inner: Some(inner),
            deadline,
            linger: linger.clone(),
            busy: Some(busy),
        };
        (body, linger)
    }

    fn finish(&mut self) {
        self.inner = None;
        self.deadline = None;
        self.busy = None;
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame.map_err(BodyError::from))),
            Poll::Pending => {
                let Some((sleep, clock)) = this.deadline.as_mut() else {
                    return Poll::Pending;
                };
                ready!(sleep.as_mut().poll(cx));
                clock.0.expired.store(true, Ordering::Release);
                let limit = clock.0.limit;
                // A client this slow is not waited for again by a drain.
                this.finish();
                Poll::Ready(Some(Err(BodyError::Timeout(limit))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let (Some(inner), Some(linger)) = (self.inner.take(), self.linger.take()) else {
            return;
        };
        if inner.is_end_stream() {
            return;
        }
        linger.park(inner, self.busy.take());
    }
}

/// A body dropped unfinished, waiting for its answer to be under way before it is
/// drained: draining reads the body, and hyper would answer the first read of a
/// body sent with `Expect: 100-continue` with a `100 Continue` if no answer had
/// been started, asking the client for the body the server does not want.
#[derive(Default)]
pub(crate) struct Linger(Mutex<Parked>);

#[derive(Default)]
enum Parked {
    #[default]
    Empty,
    Body(Incoming, Option<Busy>),
    /// The answer is under way: drain at once.
    Answered,
}

impl Linger {
    fn park(&self, body: Incoming, busy: Option<Busy>) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match *slot {
            Parked::Answered => drain(body, busy),
            _ => *slot = Parked::Body(body, busy),
        }
    }

    fn answered(&self) {
        let parked = std::mem::replace(
            &mut *self.0.lock().unwrap_or_else(PoisonError::into_inner),
            Parked::Answered,
        );
        if let Parked::Body(body, busy) = parked {
            drain(body, busy);
        }
    }
}

/// Reads and drops the rest of `body`, within [`LINGER_BYTES`] and [`LINGER_TIME`],
/// on a task of its own. Once it is all read the connection can even serve the
/// client's next request.
fn drain(mut body: Incoming, busy: Option<Busy>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let _busy = busy;
        let read = async {
            let mut left = LINGER_BYTES;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { return };
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                match left.checked_sub(n) {
                    Some(rest) => left = rest,
                    None => return,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, read).await;
    });
}

/// An answer's body: keeps its connection busy until it is sent, and starts the
/// draining of its request's body once hyper is sending it.
pub(crate) struct ResponseBody {
    inner: Body,
    linger: Option<Arc<Linger>>,
    _busy: Busy,
}

impl ResponseBody {
    pub(crate) fn new(inner: Body, linger: Option<Arc<Linger>>, busy: Busy) -> Self {
        Self {
            inner,
            linger,
            _busy: busy,
        }
    }

    fn answered(&mut self) {
        if let Some(l) = self.linger.take() {
            l.answered();
        }
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        // hyper reads the body once the head is written.
        this.answered();
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.answered();
    }
}

/// Answers 408 for a request whose body missed its deadline, whatever the handler
/// made of the cut-short body, and closes the connection: the rest of the body
/// is not waited for.
pub(crate) async fn answer_body_timeouts(req: Request, next: Next) -> Response {
    let clock = req.extensions().get::<BodyClock>().cloned();
    let resp = next.run(req).await;
    match clock {
        Some(clock) if clock.expired() => timed_out(clock.0.limit),
        _ => resp,
    }
}

fn timed_out(limit: Duration) -> Response {
    let body = serde_json::json!({
        "error": {
            "type": "timeout",
            "message": BodyError::Timeout(limit).to_string(),
            "code": "body_timeout",
        }
    });
    let mut resp = (StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}
