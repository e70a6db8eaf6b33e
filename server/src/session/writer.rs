//! The writer half of a connection: takes frames from the connection's bounded queue,
//! several at a time, and writes them, flushing as soon as nothing more waits; on a close
//! signal it writes what was queued before it (the `error` that explains the close), then
//! the close frame.
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
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{
    CloseCode as WsCloseCode, Data, OpCode,
};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::CLOSE_GRACE;
use crate::hub::{ConnHandle, Hub};

/// Frames the writer takes from its queue at a time.
const WRITE_BATCH: usize = 64;
/// The largest frame written whole; a larger message goes out in fragments of this size.
const FRAGMENT: usize = 4 * 1024;

/// Writes queued frames, several at a time, until the queue closes or a close is asked.
pub(super) async fn write_loop<S>(
    hub: Hub,
    conn: Arc<ConnHandle>,
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut outbox: mpsc::Receiver<Utf8Bytes>,
    mut close_rx: oneshot::Receiver<Option<CloseCode>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut batch = Vec::new();
    let code = loop {
        tokio::select! {
            biased;
            signal = &mut close_rx => break signal.ok().flatten(),
            n = outbox.recv_many(&mut batch, WRITE_BATCH) => {
                if n == 0 {
                    break None;
                }
                if write_batch(&hub, &conn, &mut sink, &mut batch).await.is_err() {
                    return;
                }
                // Flush once nothing more waits: what came meanwhile joins this write.
                if outbox.is_empty() && sink.flush().await.is_err() {
                    return;
                }
            }
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
        while let Ok(frame) = outbox.try_recv() {
            batch.push(frame);
        }
        write_batch(&hub, &conn, &mut sink, &mut batch).await?;
        let frame = CloseFrame {
            code: WsCloseCode::from(code.code()),
            reason: code.reason().into(),
        };
        sink.send(Message::Close(Some(frame))).await
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, closing).await;
}

/// Feeds the batch's frames to the socket, without flushing.
async fn write_batch<S>(
    hub: &Hub,
    conn: &ConnHandle,
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    batch: &mut Vec<Utf8Bytes>,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let metrics = hub.metrics();
    let count = batch.len() as u64;
    for frame in batch.drain(..) {
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
async fn feed<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    text: Utf8Bytes,
) -> Result<(), WsError>
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
