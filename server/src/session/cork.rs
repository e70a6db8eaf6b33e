//! [`Corked`]: the socket under a connection's WebSocket, holding the buffer where the
//! writer's frames are coalesced. tungstenite is told to write every frame at once (a
//! write buffer threshold of 0); this buffer takes those writes without a syscall, up to
//! [`CORK`] bytes, and hands them to the socket in one `write(2)` when it fills or when
//! the writer flushes (which it does as soon as its queue is empty, so a lone frame is
//! not delayed).
//!
//! Why not tungstenite's own write buffer: it is a `Vec` that keeps the capacity of its
//! largest burst for the life of the connection, and tungstenite has no way to give it
//! back. This one is freed each time a flush empties it, so an idle connection keeps no
//! write buffer at all; tungstenite's is left holding one frame at a time, which the
//! writer keeps small by sending large messages in fragments.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes coalesced before they are written: a batch of small frames is one `write(2)`
/// per this much.
const CORK: usize = 16 * 1024;

/// A socket whose writes are coalesced until a flush or [`CORK`] bytes.
#[derive(Debug)]
pub(crate) struct Corked<S> {
    inner: S,
    /// Bytes taken and not yet written to `inner`; no allocation while empty after a
    /// flush.
    out: Vec<u8>,
}

impl<S> Corked<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            out: Vec::new(),
        }
    }
}

impl<S: AsyncWrite + Unpin> Corked<S> {
    /// Writes the buffer to the socket; ready once it is all written.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut written = 0;
        let result = loop {
            if written == self.out.len() {
                break Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &self.out[written..]) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => written += n,
                other => break other.map_ok(|_| ()),
            }
        };
        self.out.drain(..written);
        result
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Corked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Corked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.len() + buf.len() > CORK {
            // Pending leaves `buf` with tungstenite, which retries it after a flush.
            ready!(this.poll_drain(cx))?;
            if buf.len() >= CORK {
                // Nothing to coalesce it with: no copy.
                return Pin::new(&mut this.inner).poll_write(cx, buf);
            }
        }
        this.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        // All written: give the memory back (a burst grows it to `CORK`).
        this.out = Vec::new();
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        this.out = Vec::new();
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::task::Waker;

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A socket that records each write it gets. It takes at most `budget` bytes in all,
    /// then is `Pending` until the budget is raised.
    #[derive(Debug, Clone)]
    struct Recorder(Arc<Mutex<Recorded>>);

    #[derive(Debug)]
    struct Recorded {
        writes: Vec<Vec<u8>>,
        budget: usize,
        waker: Option<Waker>,
    }

    impl Recorder {
        fn new(budget: usize) -> Self {
            Self(Arc::new(Mutex::new(Recorded {
                writes: Vec::new(),
                budget,
                waker: None,
            })))
        }

        fn writes(&self) -> Vec<usize> {
            self.0.lock().unwrap().writes.iter().map(Vec::len).collect()
        }

        fn raise(&self, budget: usize) {
            let mut state = self.0.lock().unwrap();
            state.budget = budget;
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let mut state = self.0.lock().unwrap();
            let n = buf.len().min(state.budget);
            if n == 0 {
                state.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            state.budget -= n;
            state.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn small_writes_go_out_together_at_the_flush_and_the_buffer_is_freed() {
        let socket = Recorder::new(usize::MAX);
        let mut corked = Corked::new(socket.clone());
        for _ in 0..10 {
            corked.write_all(&[7; 100]).await.unwrap();
        }
        assert!(
            socket.writes().is_empty(),
            "nothing written before the flush"
        );
        corked.flush().await.unwrap();
        assert_eq!(socket.writes(), [1000]);
        assert_eq!(corked.out.capacity(), 0, "freed once written");
    }

    #[tokio::test]
    async fn a_full_cork_is_written_and_a_big_write_is_not_copied() {
        let socket = Recorder::new(usize::MAX);
        let mut corked = Corked::new(socket.clone());
        for _ in 0..5 {
            corked.write_all(&[1; CORK / 4]).await.unwrap();
        }
        assert_eq!(socket.writes(), [CORK], "written once full");
        corked.write_all(&vec![2; CORK * 2]).await.unwrap();
        assert_eq!(socket.writes(), [CORK, CORK / 4, CORK * 2]);
        corked.flush().await.unwrap();
        assert_eq!(socket.writes(), [CORK, CORK / 4, CORK * 2]);
    }

    #[tokio::test]
    async fn what_a_full_socket_did_not_take_waits_in_order() {
        let socket = Recorder::new(300);
        let mut corked = Corked::new(socket.clone());
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        corked.write_all(&data).await.unwrap();
        let mut flush = std::pin::pin!(corked.flush());
        assert!(futures_util::poll!(flush.as_mut()).is_pending());
        socket.raise(usize::MAX);
        flush.await.unwrap();
        let written: Vec<u8> = socket.0.lock().unwrap().writes.concat();
        assert_eq!(written, data);
        assert_eq!(socket.writes(), [300, 700]);
    }
}
