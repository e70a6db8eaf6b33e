//! Messages addressed to users: private messages and notifications (CLUSTER §2.7). Each
//! is stored undelivered, then published to the addressee's connections on every node;
//! the node that hands it to one of them marks it delivered. What no connection got
//! waits in the store ([`super::pending`] hands it over). Each connection's
//! [`super::floor::Floor`] merges these paths, so it gets each message at most once. On
//! one node, the user's admission lock also orders each message against the
//! connect-time catch-up. Also the application's own messages (`/api/broadcast`,
//! `/api/send`).

use roomcast_protocol::{
    ClientId, ErrorCode, MessageId, Priority, PrivateReply, ServerMessage, Timestamp, UserId,
};
use serde_json::Value;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::pending::Kind;
use super::repair::sequence_of;
use super::{ConnHandle, Hub, frame};
use crate::ServerError;
use crate::broker::{Delivery, Target};
use crate::clock::now_ms;
use crate::model::{app_frame, check_content};
use crate::store::{
    NewGlobal, NewNotification, NewPrivate, PrivateRef, StoredNotification, StoredPrivate,
};

/// Longest notification title, in bytes.
const MAX_TITLE_BYTES: usize = 256;
/// `GET /api/users/{id}/notifications` answers this many unless asked otherwise.
pub(crate) const DEFAULT_NOTIFICATIONS: u32 = 100;
/// ... and at most this many.
pub(crate) const MAX_NOTIFICATIONS: u32 = 1000;

/// `private_history` answers this many messages unless asked otherwise (as `history`).
pub(super) const DEFAULT_PRIVATE_HISTORY: u32 = 50;
/// ... and at most this many.
pub(super) const MAX_PRIVATE_HISTORY: u32 = 500;

/// What `/api/notify` and `/api/notify_all` answer.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notified {
    /// The notification id.
    pub id: MessageId,
    /// Connections that got it now.
    pub delivered: usize,
    /// When it was created.
    pub timestamp: Timestamp,
}

/// A stored notification as the `notification` message (and API list item).
pub fn notification_message(n: StoredNotification) -> ServerMessage {
    ServerMessage::Notification {
        id: n.id,
        title: n.title,
        content: n.content,
        priority: n.priority,
        read: n.read,
        timestamp: n.timestamp,
    }
}

pub(super) fn private_message(p: StoredPrivate) -> ServerMessage {
    ServerMessage::Private {
        id: p.id,
        from: p.from,
        to: p.to,
        message: p.message,
        timestamp: p.timestamp,
    }
}

impl Hub {
    /// Publishes an application message (a JSON object with a string `type`) to `target`.
    /// Returns how many connections of this node got it.
    ///
    /// # Errors
    /// `bad_request` when `message` is not such an object; broker failures.
    pub async fn broadcast(&self, target: Target, message: &Value) -> Result<usize, ServerError> {
        let frame = app_frame(message)?;
        Ok(self
            .inner
            .broker
            .publish_counted(Delivery::new(target, frame))
            .await?
            .connections)
    }

    /// Sends an application message to one authenticated connection, on any node.
    ///
    /// # Errors
    /// `not_found` for an unknown (or still authenticating, or closing) client,
    /// `bad_request` for a bad message.
    pub async fn send_to_client(&self, id: &ClientId, message: &Value) -> Result<(), ServerError> {
        let frame = app_frame(message)?;
        let reach = self
            .inner
            .broker
            .publish_counted(Delivery::new(Target::Client(id.clone()), frame))
            .await?;
        if reach.connections == 0 {
            return Err(ServerError::request(
                ErrorCode::NotFound,
                format!("no authenticated connection {id}"),
            ));
        }
        Ok(())
    }

    /// Sends a private message from `conn`'s user to every connection of `target` and to
    /// the sender's other connections, after storing it.
    ///
    /// # Errors
    /// `too_large` content, store or broker failures.
    pub async fn private(
        &self,
        conn: &ConnHandle,
        target: &UserId,
        content: Value,
    ) -> Result<PrivateReply, ServerError> {
        check_content(&content, self.config().limits.max_content_bytes)?;
        let from = conn.user().ok_or_else(|| {
            ServerError::request(ErrorCode::NotAuthenticated, "not authenticated")
        })?;
        // On this node, one message to a user at a time against the user's admission:
        // a connection admitted here gets it either live or as pending, never both.
        let _turn = self.inner.user_locks.lock(target).await;
        let message = NewPrivate {
            to: target.clone(),
            from: (*from).clone(),
            message: content,
            timestamp: now_ms(),
        };
        let stored = self.inner.store.append_private(&message, false).await?;
        let (id, timestamp) = (stored.id.clone(), stored.timestamp);
        let delivery = addressed(
            Target::Users(vec![target.clone(), from.user_id.clone()]),
            target,
            &id,
            frame(&private_message(stored)),
        )
        .except(conn.id.clone());
        // Whichever node hands it to a connection of the target marks it delivered; the
        // reply does not wait for the other nodes, it says whether the target is online.
        let reach = self.publish(delivery).await?;
        let delivered = if *target == from.user_id {
            // To oneself: the sending connection has it.
            self.mark(target, &id, Kind::Private).await;
            true
        } else {
            reach.user_ids.contains(target) || self.is_online(target).await
        };
        let sent = PrivateReply {
            id,
            target_user_id: target.clone(),
            delivered,
            timestamp,
        };
        Ok(sent)
    }

    /// The conversation of `user` with `with` read back: the newest `limit` (default 50,
    /// at most 500, 0 counting as 1, as for `history`) stored private messages between
    /// them, both directions, strictly older than the message `before` and `before_to`
    /// name (its `id` and `to`), oldest first, as `private` messages. The order is by
    /// `timestamp`, then `to`, then `id` (see [`crate::store::Store::private_history`]).
    ///
    /// `user` is whoever asks: the connection's user for `private_history`, the user an
    /// application backend acts for on the HTTP API. Only conversations `user` is part of
    /// can be read, since `user` is always one side.
    ///
    /// # Errors
    /// `bad_request` when `before_to` comes without `before`, or is neither side, or
    /// `before` alone names a message in each direction; `not_found` when they name no message of this conversation; store
    /// failures.
    pub async fn private_history(
        &self,
        user: &UserId,
        with: &UserId,
        limit: Option<u32>,
        before: Option<&MessageId>,
        before_to: Option<&UserId>,
    ) -> Result<Vec<ServerMessage>, ServerError> {
        let limit = limit
            .unwrap_or(DEFAULT_PRIVATE_HISTORY)
            .clamp(1, MAX_PRIVATE_HISTORY);
        let bad = |message: String| Err(ServerError::request(ErrorCode::BadRequest, message));
        let cursor = match (before, before_to) {
            (None, None) => None,
            (Some(id), Some(to)) if to == user || to == with => Some(PrivateRef {
                to: to.clone(),
                id: id.clone(),
            }),
            (Some(_), Some(to)) => {
                return bad(format!(
                    "`beforeTo` {to} is neither side of the conversation of {user} and {with}"
                ));
            }
            // The contract's `before` alone: ids of the two directions come from two
            // sequences, so it is followed only when it names one message.
            (Some(id), None) => return self.private_before(user, with, limit, id).await,
            (None, Some(_)) => return bad("`beforeTo` without `before`".into()),
        };
        let items = self
            .inner
            .store
            .private_history(user, with, limit, cursor.as_ref())
            .await?;
        match (items, cursor) {
            (Some(items), _) => Ok(items.into_iter().map(private_message).collect()),
            // Only a cursor can name no message.
            (None, cursor) => Err(ServerError::request(
                ErrorCode::NotFound,
                cursor.map_or_else(String::new, |PrivateRef { to, id }| {
                    format!("no message {id} to {to} between {user} and {with}")
                }),
            )),
        }
    }

    /// A page before the one message of the conversation with this id, whichever side
    /// it went to.
    async fn private_before(
        &self,
        user: &UserId,
        with: &UserId,
        limit: u32,
        id: &MessageId,
    ) -> Result<Vec<ServerMessage>, ServerError> {
        let mut pages = Vec::new();
        for to in [user, with] {
            let cursor = PrivateRef {
                to: to.clone(),
                id: id.clone(),
            };
            let page = self
                .inner
                .store
                .private_history(user, with, limit, Some(&cursor))
                .await?;
            pages.extend(page);
            if user == with {
                break;
            }
        }
        match pages.len() {
            1 => Ok(pages.remove(0).into_iter().map(private_message).collect()),
            0 => Err(ServerError::request(
                ErrorCode::NotFound,
                format!("no message {id} between {user} and {with}"),
            )),
            _ => Err(ServerError::request(
                ErrorCode::BadRequest,
                format!(
                    "both directions hold a message {id}: add `beforeTo`, the `to` of the one you mean"
                ),
            )),
        }
    }

    /// Stores a notification for `user`, then delivers it to all its connections.
    ///
    /// # Errors
    /// `bad_request` for an empty or too long title, `too_large` content, store or
    /// broker failures.
    pub async fn notify(
        &self,
        user: &UserId,
        title: String,
        content: String,
        priority: Priority,
    ) -> Result<Notified, ServerError> {
        self.check_notification(&title, &content)?;
        let _turn = self.inner.user_locks.lock(user).await;
        let notification = NewNotification {
            user_id: user.clone(),
            title,
            content,
            priority,
            read: false,
            timestamp: now_ms(),
        };
        let stored = self
            .inner
            .store
            .append_notification(&notification, false)
            .await?;
        let (id, timestamp) = (stored.id.clone(), stored.timestamp);
        let delivery = addressed(
            Target::User(user.clone()),
            user,
            &id,
            frame(&notification_message(stored)),
        );
        // Counted on every node (what the API reports); each marks what it handed over.
        let reach = self.inner.broker.publish_counted(delivery).await?;
        Ok(Notified {
            id,
            delivered: reach.connections,
            timestamp,
        })
    }

    /// Logs a notification to everyone, then sends `global_notification` to every
    /// authenticated connection.
    ///
    /// # Errors
    /// As [`Self::notify`].
    pub async fn notify_all(
        &self,
        title: String,
        content: String,
    ) -> Result<Notified, ServerError> {
        self.check_notification(&title, &content)?;
        let notification = NewGlobal {
            title,
            content,
            timestamp: now_ms(),
        };
        let stored = self.inner.store.append_global(&notification).await?;
        let (id, timestamp) = (stored.id.clone(), stored.timestamp);
        let message = ServerMessage::GlobalNotification {
            id: stored.id,
            title: stored.title,
            content: stored.content,
            timestamp: stored.timestamp,
        };
        let count = self
            .inner
            .broker
            .publish_counted(Delivery::new(Target::All, frame(&message)))
            .await?
            .connections;
        Ok(Notified {
            id,
            delivered: count,
            timestamp,
        })
    }

    fn check_notification(&self, title: &str, content: &str) -> Result<(), ServerError> {
        if title.trim().is_empty() {
            return Err(ServerError::request(
                ErrorCode::BadRequest,
                "`title` must not be empty",
            ));
        }
        if title.len() > MAX_TITLE_BYTES {
            return Err(ServerError::request(
                ErrorCode::BadRequest,
                format!("`title` is over {MAX_TITLE_BYTES} bytes"),
            ));
        }
        let max = self.config().limits.max_content_bytes;
        if content.len() > max {
            return Err(ServerError::request(
                ErrorCode::TooLarge,
                format!("`content` is {} bytes, the limit is {max}", content.len()),
            ));
        }
        Ok(())
    }

    /// Marks a notification of `conn`'s user read and tells all its connections.
    ///
    /// # Errors
    /// `not_found` when the user has no such notification; store or broker failures.
    pub async fn mark_read(&self, conn: &ConnHandle, id: &MessageId) -> Result<(), ServerError> {
        let user = conn.user().ok_or_else(|| {
            ServerError::request(ErrorCode::NotAuthenticated, "not authenticated")
        })?;
        if !self.inner.store.mark_read(&user.user_id, id).await? {
            return Err(ServerError::request(
                ErrorCode::NotFound,
                format!("no notification {id}"),
            ));
        }
        let message = ServerMessage::NotificationRead {
            notification_id: id.clone(),
            timestamp: now_ms(),
        };
        self.publish(Delivery::new(
            Target::User(user.user_id.clone()),
            frame(&message),
        ))
        .await?;
        Ok(())
    }

    /// A user's stored notifications, newest first, as `notification` messages.
    ///
    /// # Errors
    /// Store failures.
    pub async fn notifications(
        &self,
        user: &UserId,
        unread_only: bool,
        limit: Option<u32>,
    ) -> Result<Vec<ServerMessage>, ServerError> {
        let limit = limit
            .unwrap_or(DEFAULT_NOTIFICATIONS)
            .clamp(1, MAX_NOTIFICATIONS);
        let items = self
            .inner
            .store
            .notifications(user, unread_only, limit)
            .await?;
        Ok(items.into_iter().map(notification_message).collect())
    }
}

/// The delivery of a stored message to `addressee`, numbered by its id (ids are
/// always [`crate::store::sequence_id`]s; one that is not goes out unnumbered).
fn addressed(target: Target, addressee: &UserId, id: &MessageId, frame: Utf8Bytes) -> Delivery {
    match sequence_of(id) {
        Some(seq) => Delivery::addressed(target, addressee.clone(), seq, frame),
        None => Delivery::new(target, frame),
    }
}
