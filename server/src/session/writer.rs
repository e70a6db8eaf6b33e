//! The writer half of a connection: takes frames from the connection's queue
//! ([`crate::hub::ConnHandle::outbox`]), several at a time, and writes them, flushing as
//! soon as nothing more waits; on a close signal it writes what was queued before it (the
//! `error` that explains the close), then the close frame.
//!
//! Writes are coalesced below, in [`super::Corked`]: a backlog of k small frames goes out
//! in about k × size / 16 KiB `write(2)`s, a lone frame in one, at once. A frame larger
//! than [`FRAGMENT`] goes out as fragments of that size, so tungstenite's own write buffer
//! (which never shrinks) holds at most one fragment.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use roomcast_protocol::CloseCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::sync::oneshot::error::TryRecvError;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{
    CloseCode as WsCloseCode, Data, OpCode,
};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::CLOSE_GRACE;
use crate::hub::{ConnHandle, Entry, Hub};

/// Frames the writer takes from its queue at a time.
const WRITE_BATCH: usize = 64;
/// The largest frame written whole; a larger message goes out in fragments of this size.
/// tungstenite's write buffer keeps the size of the largest frame it held, so this is
/// what a connection keeps after a `user_list` of 100 users (~2–6 KB): 1 KiB rather than
/// 4 saves ~2 KB per idle connection in a big room (loadgen `idle`).
const FRAGMENT: usize = 1024;

type Sink<S> = SplitSink<WebSocketStream<S>, Message>;

/// Writes queued frames until a close is asked (or the reader is done).
pub(super) async fn write_loop<S>(
    hub: Hub,
    conn: Arc<ConnHandle>,
    mut sink: Sink<S>,
    mut close_rx: oneshot::Receiver<Option<CloseCode>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let outbox = conn.outbox();
    // However the writer ends (aborted included), its queue takes nothing more and what
    // waits in it is dropped.
    let _closed = CloseOnDrop(&conn);
    let mut batch = Vec::new();
    let code = loop {
        match close_rx.try_recv() {
            Ok(signal) => break signal,
            Err(TryRecvError::Closed) => break None,
            Err(TryRecvError::Empty) => {}
        }
        let cost = outbox.take(&mut batch, WRITE_BATCH);
        if batch.is_empty() {
            // Idle: the batch's slots go back, as the queue's did.
            batch = Vec::new();
            tokio::select! {
                biased;
                signal = &mut close_rx => break signal.ok().flatten(),
                () = outbox.ready() => continue,
            }
        }
        if write_batch(&hub, &conn, &mut sink, &mut batch)
            .await
            .is_err()
        {
            return;
        }
        outbox.written(cost);
        // Flush once nothing more waits: what came meanwhile joins this write.
        if outbox.is_empty() && sink.flush().await.is_err() {
            return;
        }
    };
    let closing = async {
        let Some(code) = code else {
            // The reader is done (the client closed or vanished): answer its close, if
            // any, and stop.
            return sink.close().await;
        };
        hub.metrics().close(code.code());
        // Whatever was queued before the close (an `error` explaining it) goes out first.
        let cost = outbox.take(&mut batch, usize::MAX);
        write_batch(&hub, &conn, &mut sink, &mut batch).await?;
        outbox.written(cost);
        let frame = CloseFrame {
            code: WsCloseCode::from(code.code()),
            reason: code.reason().into(),
        };
        sink.send(Message::Close(Some(frame))).await
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, closing).await;
}

/// Closes the connection's queue when dropped.
struct CloseOnDrop<'a>(&'a ConnHandle);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.outbox().close();
    }
}

/// Feeds the batch's frames to the socket, without flushing.
async fn write_batch<S>(
    hub: &Hub,
    conn: &ConnHandle,
    sink: &mut Sink<S>,
    batch: &mut Vec<Entry>,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let metrics = hub.metrics();
    let threshold = hub.config().features.compression_threshold;
    let count = batch.len() as u64;
    for entry in batch.drain(..) {
        let frame = entry.into_frame(conn, threshold);
        metrics.bytes_out.inc_by(frame.len() as u64);
        feed(sink, frame).await?;
    }
    metrics.messages_out.inc_by(count);
    conn.messages_out
        .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Feeds one text message: whole, or in fragments of [`FRAGMENT`] bytes. tungstenite
/// copies each frame into its write buffer, which keeps its largest size; fragments keep
/// that at [`FRAGMENT`] after a large message (a fragment may end inside a character:
/// the receiver checks UTF-8 on the whole message).
async fn feed<S>(sink: &mut Sink<S>, text: Utf8Bytes) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if text.len() <= FRAGMENT {
        return sink.feed(Message::Text(text)).await;
    }
    let bytes = Bytes::from(text);
    let mut start = 0;
    while start < bytes.len() {
        let end = (start + FRAGMENT).min(bytes.len());
        let opcode = if start == 0 {
            Data::Text
        } else {
            Data::Continue
        };
        let fragment = Frame::message(
            bytes.slice(start..end),
            OpCode::Data(opcode),
            end == bytes.len(),
        );
        sink.feed(Message::Frame(fragment)).await?;
        start = end;
    }
    Ok(())
}
