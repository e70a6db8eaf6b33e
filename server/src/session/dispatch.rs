//! Decode, dispatch, act: a text frame becomes a typed [`ClientMessage`] at the edge, is
//! checked against the rate limit, and goes to the hub operation it names; the answer is
//! the `reply` (or `error`) the contract gives each request. Authentication (the first
//! `auth`, and refreshes) lives here too.

use std::sync::Arc;

use roomcast_protocol::{
    AckReply, AuthReply, ChatReply, ClientFrame, ClientMessage, CloseCode, ErrorCode, HistoryReply,
    LeaveReply, MarkReadReply, PrivateHistoryReply, RefreshReply, RequestId, ServerMessage,
    SubscribeReply, UnsubscribeReply, User,
};
use serde_json::Value;
use tracing::info;

use super::Session;
use crate::ServerError;
use crate::auth::Identity;
use crate::clock::now_ms;
use crate::handler::HandlerContext;

impl Session {
    pub(super) async fn on_text(&mut self, text: &str) {
        self.count_in(text.len());
        let frame = match ClientFrame::decode(text) {
            Ok(frame) => frame,
            Err(err) => {
                if self.within_rate(err.id.as_ref()) {
                    self.error(err.id, ErrorCode::BadRequest, err.error.to_string());
                }
                return;
            }
        };
        let ClientFrame { id, message } = frame;
        if matches!(message, ClientMessage::Pong) {
            return;
        }
        if !self.within_rate(id.as_ref()) {
            return;
        }
        if self.user.is_none() {
            match message {
                ClientMessage::Auth { token } => self.on_auth(id, &token).await,
                other => self.error(
                    id,
                    ErrorCode::NotAuthenticated,
                    format!("authenticate first: send `auth` before `{}`", other.kind()),
                ),
            }
            return;
        }
        let result = self.dispatch(id.as_ref(), message).await;
        match (result, id) {
            (Ok(Some(data)), Some(id)) => {
                self.hub.send(&self.conn, &ServerMessage::reply(id, data));
            }
            (Ok(_), _) => {}
            (Err(err), id) => self.error(id, err.code(), err.public_message()),
        }
    }

    /// Handles a message from an authenticated connection. `Ok(Some(data))` is the reply
    /// data; `Ok(None)` means the answer was already sent.
    async fn dispatch(
        &mut self,
        id: Option<&RequestId>,
        message: ClientMessage,
    ) -> Result<Option<Value>, ServerError> {
        match message {
            ClientMessage::Auth { token } => {
                self.on_refresh(id, &token);
                Ok(None)
            }
            ClientMessage::Ping => {
                self.hub.send(
                    &self.conn,
                    &ServerMessage::Pong {
                        id: id.cloned(),
                        timestamp: now_ms(),
                    },
                );
                Ok(None)
            }
            ClientMessage::Pong => Ok(None),
            ClientMessage::Join { room, since } => {
                let joined = self.hub.join(&self.conn, &room, since.as_ref()).await?;
                Ok(Some(joined.into()))
            }
            ClientMessage::Leave { room } => {
                self.hub.leave(&self.conn, &room).await?;
                Ok(Some(LeaveReply { room }.into()))
            }
            ClientMessage::Chat { room, content } => {
                let (id, timestamp) = self.hub.chat(&self.conn, &room, content).await?;
                Ok(Some(
                    ChatReply {
                        id,
                        room,
                        timestamp,
                    }
                    .into(),
                ))
            }
            ClientMessage::History {
                room,
                limit,
                before,
            } => {
                if !self.conn.state().rooms.contains(&room) {
                    return Err(ServerError::request(
                        ErrorCode::NotMember,
                        format!("join room {room} to read its history"),
                    ));
                }
                let items = self.hub.history(&room, limit, before.as_ref()).await?;
                Ok(Some(HistoryReply { items }.into()))
            }
            ClientMessage::Members { room, after, limit } => {
                let page = self
                    .hub
                    .members(&self.conn, &room, after.as_ref(), limit)
                    .await?;
                Ok(Some(page.into()))
            }
            ClientMessage::Private {
                target_user_id,
                content,
            } => {
                let sent = self
                    .hub
                    .private(&self.conn, &target_user_id, content)
                    .await?;
                Ok(Some(sent.into()))
            }
            ClientMessage::PrivateHistory {
                user_id,
                limit,
                before,
                before_to,
            } => {
                // The caller is one side: it reads only its own conversations.
                let me = self.conn.user().ok_or_else(|| {
                    ServerError::request(ErrorCode::NotAuthenticated, "not authenticated")
                })?;
                let items = self
                    .hub
                    .private_history(
                        &me.user_id,
                        &user_id,
                        limit,
                        before.as_ref(),
                        before_to.as_ref(),
                    )
                    .await?;
                Ok(Some(PrivateHistoryReply { items }.into()))
            }
            ClientMessage::Ack { message_id } => {
                let awaited = self.hub.on_ack(&self.conn, &message_id);
                Ok(Some(
                    AckReply {
                        message_id,
                        awaited,
                    }
                    .into(),
                ))
            }
            ClientMessage::MarkRead { notification_id } => {
                self.hub.mark_read(&self.conn, &notification_id).await?;
                Ok(Some(MarkReadReply { notification_id }.into()))
            }
            ClientMessage::Subscribe { topic, keys } => {
                let keys = self.hub.subscribe(&self.conn, &topic, keys).await?;
                Ok(Some(SubscribeReply { topic, keys }.into()))
            }
            ClientMessage::Unsubscribe { topic } => {
                let removed = self.hub.unsubscribe(&self.conn, &topic).await?;
                Ok(Some(UnsubscribeReply { topic, removed }.into()))
            }
            ClientMessage::Custom(custom) => {
                let (Some(handler), Some(user)) = (self.handler.clone(), self.user.clone()) else {
                    return Err(ServerError::request(
                        ErrorCode::BadRequest,
                        format!(
                            "unknown message type `{}` (no application handler is configured)",
                            custom.kind
                        ),
                    ));
                };
                let ctx = self.context(user);
                match handler.on_message(&ctx, &custom).await {
                    Ok(data) => Ok(Some(data.unwrap_or(Value::Null))),
                    Err(err) => Err(ServerError::request(err.code, err.message)),
                }
            }
        }
    }

    fn context(&self, user: Arc<User>) -> HandlerContext {
        HandlerContext {
            client_id: self.conn.id().clone(),
            user,
            hub: self.hub.clone(),
        }
    }

    async fn on_auth(&mut self, id: Option<RequestId>, token: &str) {
        match self.hub.auth().verify(token) {
            Ok(identity) => self.on_identity(id, identity).await,
            Err(reason) => {
                self.error(id, ErrorCode::AuthFailed, reason);
                self.close(CloseCode::AuthFailed);
            }
        }
    }

    /// A verified identity for a connection that had none: ask the application's
    /// handler, then let the hub admit the connection (per-user limit, `auth_ok`, what
    /// waited for the user, the default rooms).
    pub(super) async fn on_identity(&mut self, id: Option<RequestId>, identity: Identity) {
        if let Some(handler) = self.handler.clone() {
            let ctx = self.context(Arc::new(identity.user.clone()));
            if let Err(refusal) = handler.on_connect(&ctx).await {
                info!(client = %self.conn.id(), user = %identity.user.user_id, reason = %refusal.message, "refused by the application");
                self.error(id, ErrorCode::Forbidden, refusal.message);
                self.close(CloseCode::Refused);
                return;
            }
        }
        let admitted = match self.hub.admit(&self.conn, &identity).await {
            Ok(admitted) => admitted,
            Err(err) => {
                self.error(id, err.code(), err.public_message());
                self.close(if err.code() == ErrorCode::LimitExceeded {
                    CloseCode::ConnectionLimit
                } else {
                    CloseCode::GoingAway
                });
                // The application heard `connect`: it hears the matching `close`.
                if let Some(handler) = self.handler.clone() {
                    let ctx = self.context(Arc::new(identity.user));
                    handler.on_close(&ctx).await;
                }
                return;
            }
        };
        let user = admitted.user;
        self.user = Some(user.clone());
        self.set_expiry(identity.expires_at);
        for (room, err) in admitted.refused {
            self.error(
                None,
                err.code(),
                format!("default room {room}: {}", err.public_message()),
            );
        }
        if let Some(id) = id {
            let data = AuthReply {
                client_id: self.conn.id().clone(),
                user_id: user.user_id.clone(),
            };
            self.hub.send(&self.conn, &ServerMessage::reply(id, data));
        }
        info!(client = %self.conn.id(), user = %user.user_id, "authenticated");
    }

    fn on_refresh(&mut self, id: Option<&RequestId>, token: &str) {
        let identity = match self.hub.auth().verify(token) {
            Ok(identity) => identity,
            Err(reason) => {
                self.error(id.cloned(), ErrorCode::AuthFailed, reason);
                self.close(CloseCode::AuthFailed);
                return;
            }
        };
        match self.hub.refresh(&self.conn, &identity) {
            Ok(user) => {
                self.set_expiry(identity.expires_at);
                let rooms = {
                    let state = self.conn.state();
                    let defaults = &self.hub.config().features.default_rooms;
                    defaults
                        .iter()
                        .filter(|r| state.rooms.contains(*r))
                        .cloned()
                        .collect()
                };
                let welcome = self.hub.auth_ok(&self.conn, &user, &identity, rooms);
                self.hub.send(&self.conn, &welcome);
                if let Some(id) = id {
                    let data = RefreshReply {
                        client_id: self.conn.id().clone(),
                        user_id: user.user_id.clone(),
                        expires_at: identity.expires_at,
                    };
                    self.hub
                        .send(&self.conn, &ServerMessage::reply(id.clone(), data));
                }
            }
            Err(err) => self.error(id.cloned(), err.code(), err.public_message()),
        }
    }
}
