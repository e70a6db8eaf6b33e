//! Filtered topics (CONTRACT §5): each user subscribes to a topic with a set of item keys,
//! stored per user and loaded into memory while the user has a connection. Publishing
//! parses the items once; each subscriber then gets the items whose keys it chose, as
//! raw JSON spliced into one frame, and subscribers with the same selection share it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use roomcast_protocol::{ErrorCode, UserId, topic_frame};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::warn;

use super::{ConnHandle, Hub, Outgoing};
use crate::ServerError;
use crate::clock::now_ms;

/// Longest topic name, in bytes.
const MAX_TOPIC_BYTES: usize = 128;
/// Longest key, in bytes.
const MAX_KEY_BYTES: usize = 128;
/// Most keys per subscription.
const MAX_KEYS: usize = 1000;
/// Most topics one user subscribes to.
const MAX_TOPICS_PER_USER: usize = 100;

/// The one field publishing reads from each item.
#[derive(Deserialize)]
struct Keyed<'a> {
    #[serde(borrow)]
    key: std::borrow::Cow<'a, str>,
}

fn bad(message: impl Into<String>) -> ServerError {
    ServerError::request(ErrorCode::BadRequest, message)
}

/// Checks a topic name.
///
/// # Errors
/// `bad_request` when it is empty, too long or has control characters.
pub fn check_topic(topic: &str) -> Result<(), ServerError> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_BYTES || topic.chars().any(char::is_control) {
        return Err(bad(format!(
            "`topic` must be 1 to {MAX_TOPIC_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

/// What a publish reached.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// Subscribed users with at least one matching item.
    pub users: usize,
    /// Connections that got a message.
    pub delivered: usize,
}

impl Hub {
    /// Sets the keys `conn`'s user receives on `topic`, for all its connections, now and
    /// after reconnects. Returns the stored keys (deduplicated, sorted).
    ///
    /// # Errors
    /// `bad_request` for a bad topic or keys, `limit_exceeded` past 100 topics, store
    /// failures.
    pub async fn subscribe(
        &self,
        conn: &ConnHandle,
        topic: &str,
        keys: Vec<String>,
    ) -> Result<Vec<String>, ServerError> {
        check_topic(topic)?;
        if keys.is_empty() {
            return Err(bad("`keys` must not be empty (use `unsubscribe` to stop)"));
        }
        if keys.len() > MAX_KEYS {
            return Err(bad(format!("at most {MAX_KEYS} keys per subscription")));
        }
        if let Some(key) = keys
            .iter()
            .find(|k| k.is_empty() || k.len() > MAX_KEY_BYTES)
        {
            return Err(bad(format!(
                "key {key:?}: keys must be 1 to {MAX_KEY_BYTES} bytes"
            )));
        }
        let user = conn.user().ok_or_else(|| {
            ServerError::request(ErrorCode::NotAuthenticated, "not authenticated")
        })?;
        let mut keys = keys;
        keys.sort();
        keys.dedup();
        let _turn = self.user_lock(&user.user_id).lock().await;
        let count = self
            .shared
            .subs
            .get(&user.user_id)
            .map_or(0, |m| m.len() + usize::from(!m.contains_key(topic)));
        if count > MAX_TOPICS_PER_USER {
            return Err(ServerError::request(
                ErrorCode::LimitExceeded,
                format!("a user may subscribe to at most {MAX_TOPICS_PER_USER} topics"),
            ));
        }
        self.shared
            .store
            .set_subscription(&user.user_id, topic, &keys)
            .await?;
        self.index(&user.user_id, topic, keys.iter().cloned().collect());
        Ok(keys)
    }

    /// Removes `conn`'s user's subscription to `topic`; returns whether there was one.
    ///
    /// # Errors
    /// `bad_request` for a bad topic, store failures.
    pub async fn unsubscribe(&self, conn: &ConnHandle, topic: &str) -> Result<bool, ServerError> {
        check_topic(topic)?;
        let user = conn.user().ok_or_else(|| {
            ServerError::request(ErrorCode::NotAuthenticated, "not authenticated")
        })?;
        let _turn = self.user_lock(&user.user_id).lock().await;
        let removed = self
            .shared
            .store
            .remove_subscription(&user.user_id, topic)
            .await?;
        if let Some(mut topics) = self.shared.subs.get_mut(&user.user_id) {
            topics.remove(topic);
        }
        self.unindex(&user.user_id, topic);
        Ok(removed)
    }

    fn index(&self, user: &UserId, topic: &str, keys: HashSet<String>) {
        self.shared
            .subs
            .entry(user.clone())
            .or_default()
            .insert(topic.to_owned(), Arc::new(keys));
        self.shared
            .topics
            .entry(topic.to_owned())
            .or_default()
            .insert(user.clone());
    }

    fn unindex(&self, user: &UserId, topic: &str) {
        if let Some(mut users) = self.shared.topics.get_mut(topic) {
            users.remove(user);
        }
        self.shared
            .topics
            .remove_if(topic, |_, users| users.is_empty());
    }

    /// Loads a user's stored subscriptions when its first connection arrives. The caller
    /// holds the user's lock.
    pub(crate) async fn load_subscriptions(&self, user: &UserId) {
        if self.shared.subs.contains_key(user) {
            return;
        }
        match self.shared.store.subscriptions(user).await {
            Ok(list) => {
                self.shared.subs.insert(user.clone(), HashMap::new());
                for (topic, keys) in list {
                    self.index(user, &topic, keys.into_iter().collect());
                }
            }
            Err(err) => warn!(%user, cause = %err, "subscriptions not loaded"),
        }
    }

    /// Forgets a user's subscriptions when its last connection is gone (they stay
    /// stored). The caller holds the user's lock.
    pub(crate) fn unload_subscriptions(&self, user: &UserId) {
        if let Some((_, topics)) = self.shared.subs.remove(user) {
            for topic in topics.keys() {
                self.unindex(user, topic);
            }
        }
    }

    /// Publishes `items` (JSON objects with a string `key`) to the subscribers of
    /// `topic`: each gets one `{"type":kind,"topic","data":[...],"timestamp"}` with the
    /// items whose key it subscribed to, or nothing when none match.
    ///
    /// # Errors
    /// `bad_request` for a bad topic or type, or an item without a string `key`.
    pub fn publish_topic(
        &self,
        topic: &str,
        kind: &str,
        items: &[Box<RawValue>],
    ) -> Result<Published, ServerError> {
        check_topic(topic)?;
        if kind.is_empty() {
            return Err(bad("`type` must not be empty"));
        }
        let keys = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                // Only objects: serde would also read `["AAPL"]` as a struct with a key.
                Some(item.get())
                    .filter(|raw| raw.starts_with('{'))
                    .and_then(|raw| serde_json::from_str::<Keyed<'_>>(raw).ok())
                    .map(|k| k.key)
                    .ok_or_else(|| bad(format!("items[{i}] must be an object with a string `key`")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let subscribers: Vec<UserId> = match self.shared.topics.get(topic) {
            Some(users) => users.iter().cloned().collect(),
            None => {
                return Ok(Published {
                    users: 0,
                    delivered: 0,
                });
            }
        };
        let timestamp = now_ms();
        let mut frames: HashMap<Vec<usize>, Outgoing> = HashMap::new();
        let mut published = Published {
            users: 0,
            delivered: 0,
        };
        let threshold = self.config().compression_threshold;
        for user in subscribers {
            let Some(wanted) = self
                .shared
                .subs
                .get(&user)
                .and_then(|topics| topics.get(topic).cloned())
            else {
                continue;
            };
            let selection: Vec<usize> = keys
                .iter()
                .enumerate()
                .filter(|(_, key)| wanted.contains(key.as_ref()))
                .map(|(i, _)| i)
                .collect();
            if selection.is_empty() {
                continue;
            }
            let outgoing = frames.entry(selection).or_insert_with_key(|selection| {
                let selected = selection.iter().map(|i| items[*i].get());
                let text = topic_frame(kind, topic, selected, timestamp);
                Outgoing::new(Utf8Bytes::from(text), threshold)
            });
            published.users += 1;
            if let Some(list) = self.shared.users.get(&user) {
                for conn in list.iter() {
                    if self.send_outgoing(conn, outgoing) {
                        published.delivered += 1;
                    }
                }
            }
        }
        Ok(published)
    }
}
