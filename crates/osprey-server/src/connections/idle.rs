//! When a connection may be closed for want of a request: the clock for a
//! request's head, and for a kept-alive connection waiting for its next request.
//!
//! hyper's own `header_read_timeout` starts when a kept-alive connection goes idle,
//! so it cannot keep a connection open for a long keep-alive and still want a head
//! in a few seconds once the client starts one; and it does not apply to HTTP/2.
//! The rules here are nginx's and Go's: a new connection must send its head within
//! the header timeout; after a response, the connection may idle for the
//! keep-alive time, and once the next request's first byte arrives its head must
//! be complete within the header timeout.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// One connection's requests and its idle clock.
pub(crate) struct Activity {
    state: Mutex<State>,
    /// Set while idle until a byte arrives, so reads take the lock only once.
    awaiting_byte: AtomicBool,
    changed: Notify,
    header: Option<Duration>,
    keep_alive: Duration,
}

#[derive(Debug)]
struct State {
    /// Requests being served (and bodies still being drained).
    busy: usize,
    /// When the connection was opened or last went idle.
    idle_since: Instant,
    /// A request has been served: the first one's head is timed from the accept.
    served: bool,
    /// The first byte read since the connection went idle: a head has begun.
    first_byte: Option<Instant>,
}

impl Activity {
    pub(crate) fn new(header: Option<Duration>, keep_alive: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                busy: 0,
                idle_since: Instant::now(),
                served: false,
                first_byte: None,
            }),
            awaiting_byte: AtomicBool::new(true),
            changed: Notify::new(),
            header,
            keep_alive,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every step, so a panic elsewhere cannot
        // leave it half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks a request (or a body being drained) as under way until the guard drops.
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        {
            let mut s = self.lock();
            s.busy += 1;
            s.first_byte = None;
            self.awaiting_byte.store(false, Ordering::Release);
        }
        self.changed.notify_one();
        Busy(self.clone())
    }

    pub(crate) fn is_busy(&self) -> bool {
        self.lock().busy > 0
    }

    fn read_some(&self) {
        if !self.awaiting_byte.swap(false, Ordering::AcqRel) {
            return;
        }
        {
            let mut s = self.lock();
            if s.busy == 0 && s.first_byte.is_none() {
                s.first_byte = Some(Instant::now());
            }
        }
        self.changed.notify_one();
    }

    /// When the connection is to be closed if nothing changes; `None` while busy.
    fn deadline(&self) -> Option<Instant> {
        let s = self.lock();
        if s.busy > 0 {
            None
        } else if !s.served {
            after(s.idle_since, self.header)
        } else if let Some(first) = s.first_byte {
            after(first, self.header)
        } else {
            after(s.idle_since, Some(self.keep_alive))
        }
    }

    /// Resolves once the connection has been idle, or sending a head, too long.
    pub(crate) async fn expired(&self) {
        loop {
            // A change between reading the deadline and waiting leaves a permit,
            // so it is not missed.
            let changed = self.changed.notified();
            match self.deadline() {
                None => changed.await,
                Some(at) if at <= Instant::now() => return,
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// `base + limit`; `None` for no limit (or a limit beyond the clock's range).
fn after(base: Instant, limit: Option<Duration>) -> Option<Instant> {
    limit.and_then(|d| base.checked_add(d))
}

/// A request under way on its connection.
pub(crate) struct Busy(Arc<Activity>);

impl Busy {
    /// Another guard on the same connection, for a part of the request that may
    /// outlive this one (its body, drained after the answer).
    pub(crate) fn another(&self) -> Busy {
        self.0.busy()
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        {
            let mut s = a.lock();
            s.busy = s.busy.saturating_sub(1);
            if s.busy == 0 {
                s.idle_since = Instant::now();
                s.served = true;
                s.first_byte = None;
                a.awaiting_byte.store(true, Ordering::Release);
            }
        }
        a.changed.notify_one();
    }
}

/// A connection's stream, noting the first byte of each request's head.
pub(crate) struct Tracked<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    pub(crate) fn new(io: T, activity: Arc<Activity>) -> Self {
        Self { io, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read_some();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_secs(10);
    const KEEP_ALIVE: Duration = Duration::from_secs(75);

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_gets_the_header_timeout() {
        let a = Activity::new(Some(HEADER), KEEP_ALIVE);
        let opened = Instant::now();
        a.expired().await;
        assert_eq!(opened.elapsed(), HEADER);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_gets_the_keep_alive_then_the_header_timeout() {
        let a = Activity::new(Some(HEADER), KEEP_ALIVE);
        drop(a.busy());
        assert!(!a.is_busy());
        let idle = Instant::now();
        assert_eq!(a.deadline(), Some(idle + KEEP_ALIVE));
        tokio::time::advance(Duration::from_secs(70)).await;
        // The next head begins late in the keep-alive: it has the header timeout.
        a.read_some();
        assert_eq!(a.deadline(), Some(Instant::now() + HEADER));
        // Further bytes do not move the clock.
        tokio::time::advance(Duration::from_secs(1)).await;
        a.read_some();
        assert_eq!(a.deadline(), Some(idle + Duration::from_secs(70) + HEADER));
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_has_no_deadline_until_every_guard_drops() {
        let a = Activity::new(Some(HEADER), KEEP_ALIVE);
        let request = a.busy();
        let body = request.another();
        a.read_some();
        assert_eq!(a.deadline(), None);
        drop(request);
        assert_eq!(a.deadline(), None);
        drop(body);
        assert_eq!(a.deadline(), Some(Instant::now() + KEEP_ALIVE));
    }

    #[tokio::test(start_paused = true)]
    async fn no_header_timeout_leaves_a_new_connection_open() {
        let a = Activity::new(None, KEEP_ALIVE);
        assert_eq!(a.deadline(), None);
        drop(a.busy());
        assert_eq!(a.deadline(), Some(Instant::now() + KEEP_ALIVE));
    }
}
