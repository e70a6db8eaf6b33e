//! The writer half of a connection: takes frames from the connection's bounded queue,
//! several per flush, and writes them; on a close signal it writes what was queued before
//! it (the `error` that explains the close), then the close frame.

use std::sync::Arc;

use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use roomcast_protocol::CloseCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::CLOSE_GRACE;
use crate::hub::{ConnHandle, Hub};

/// Frames the writer takes from its queue per flush.
const WRITE_BATCH: usize = 64;

/// Writes queued frames, several per flush, until the queue closes or a close is asked.
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
        sink.feed(Message::Text(frame)).await?;
    }
    metrics.messages_out.inc_by(count);
    conn.messages_out
        .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
    sink.flush().await
}
