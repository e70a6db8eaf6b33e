//! Filtered topics (CONTRACT §5): each user subscribes to a topic with a set of item keys,
//! stored per user and loaded into memory while the user has a connection. Publishing
//! parses the items once; each subscriber then gets the items whose keys it chose, as
//! raw JSON spliced into one frame, and subscribers with the same selection share it. A
//! subscriber that has fallen behind gets, per key, the newest item (its queue merges a
//! topic's frames while they wait, see [`super::outbox`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use dashmap::DashMap;
use roomcast_protocol::{ClientId, ErrorCode, UserId, topic_frame};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::warn;

use super::Hub;
use super::outbox::TopicUpdate;
use super::outgoing::{Outgoing, send_topic};
use super::registry::Registry;
use crate::ServerError;
use crate::broker::{Delivery, Frame, Reach, Target, TopicItems};
use crate::clock::now_ms;
use crate::metrics::Metrics;

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

/// The topic subscriptions of this node's connected users.
#[derive(Debug, Default)]
pub(crate) struct Topics {
    /// user → topic → keys.
    subs: DashMap<UserId, HashMap<String, Arc<HashSet<String>>>>,
    /// topic → subscribed users.
    topics: DashMap<String, HashSet<UserId>>,
}

impl Topics {
    /// How many topics `user` would have with `topic` added.
    fn count_with(&self, user: &UserId, topic: &str) -> usize {
        self.subs
            .get(user)
            .map_or(1, |m| m.len() + usize::from(!m.contains_key(topic)))
    }

    fn index(&self, user: &UserId, topic: &str, keys: HashSet<String>) {
        self.subs
            .entry(user.clone())
            .or_default()
            .insert(topic.to_owned(), Arc::new(keys));
        self.topics
            .entry(topic.to_owned())
            .or_default()
            .insert(user.clone());
    }

    fn unindex(&self, user: &UserId, topic: &str) {
        if let Some(mut topics) = self.subs.get_mut(user) {
            topics.remove(topic);
        }
        if let Some(mut users) = self.topics.get_mut(topic) {
            users.remove(user);
        }
        self.topics.remove_if(topic, |_, users| users.is_empty());
    }

    fn is_loaded(&self, user: &UserId) -> bool {
        self.subs.contains_key(user)
    }

    fn forget_user(&self, user: &UserId) {
        if let Some((_, topics)) = self.subs.remove(user) {
            for topic in topics.keys() {
                if let Some(mut users) = self.topics.get_mut(topic) {
                    users.remove(user);
                }
                self.topics.remove_if(topic, |_, users| users.is_empty());
            }
        }
    }

    /// The users subscribed to `topic` here.
    pub(crate) fn subscribers(&self, topic: &str) -> Vec<UserId> {
        self.topics
            .get(topic)
            .map(|users| users.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Delivers a topic publish to this node's subscribers: each gets the items its keys
    /// select, as one frame shared by every subscriber with the same selection. A
    /// subscriber whose frame of the topic still waits in its queue gets this one merged
    /// into it instead (see [`super::outbox`]), which is why the queue is handed the items
    /// and the selection along with the frame.
    pub(crate) fn deliver(
        &self,
        items: &TopicItems,
        except: Option<&ClientId>,
        registry: &Registry,
        metrics: &Metrics,
        threshold: usize,
    ) -> Reach {
        let mut frames: HashMap<Vec<usize>, (Outgoing, Arc<[usize]>)> = HashMap::new();
        // Shared by every queue that keeps an item of it: copied once, and only when
        // someone subscribes.
        let mut published: Option<Arc<TopicItems>> = None;
        let mut reach = Reach::default();
        for user in self.subscribers(&items.topic) {
            let Some(wanted) = self
                .subs
                .get(&user)
                .and_then(|topics| topics.get(&items.topic).cloned())
            else {
                continue;
            };
            let selection: Vec<usize> = items
                .items
                .iter()
                .enumerate()
                .filter(|(_, (key, _))| wanted.contains(key))
                .map(|(i, _)| i)
                .collect();
            if selection.is_empty() {
                continue;
            }
            let (outgoing, selection) = frames.entry(selection).or_insert_with_key(|selection| {
                let selected = selection.iter().map(|i| items.items[*i].1.as_str());
                let text = topic_frame(&items.kind, &items.topic, selected, items.timestamp);
                let outgoing = Outgoing::new(Utf8Bytes::from(text), threshold);
                (outgoing, Arc::from(selection.as_slice()))
            });
            let published = published.get_or_insert_with(|| Arc::new(items.clone()));
            reach.users += 1;
            reach.user_ids.push(user.clone());
            registry.for_each_of_user(&user, |conn| {
                if Some(&conn.id) == except {
                    return;
                }
                let update = TopicUpdate {
                    items: published,
                    selection,
                    frame: outgoing.for_conn(conn),
                };
                if send_topic(metrics, conn, update) {
                    reach.connections += 1;
                }
            });
        }
        reach
    }
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
        conn: &super::ConnHandle,
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
        let _turn = self.inner.user_locks.lock(&user.user_id).await;
        if self.inner.topics.count_with(&user.user_id, topic) > MAX_TOPICS_PER_USER {
            return Err(ServerError::request(
                ErrorCode::LimitExceeded,
                format!("a user may subscribe to at most {MAX_TOPICS_PER_USER} topics"),
            ));
        }
        self.inner
            .store
            .set_subscription(&user.user_id, topic, &keys)
            .await?;
        self.inner
            .topics
            .index(&user.user_id, topic, keys.iter().cloned().collect());
        drop(_turn);
        self.subscriptions_changed(&user.user_id).await;
        Ok(keys)
    }

    /// Tells every node that `user`'s subscriptions changed, so that its connections on
    /// any node receive what they now select. A node that does not answer reloads at the
    /// user's next connection there; the change itself is stored.
    async fn subscriptions_changed(&self, user: &UserId) {
        let request = crate::broker::NodeRequest::ReloadSubscriptions(user.clone());
        if let Err(err) = self.inner.broker.request(request).await {
            warn!(%user, cause = %err, "other nodes not told of a subscription change");
        }
    }

    /// Reads `user`'s subscriptions again if this node has them loaded (another node
    /// changed them).
    pub(super) async fn reload_subscriptions(&self, user: &UserId) {
        let _turn = self.inner.user_locks.lock(user).await;
        if !self.inner.topics.is_loaded(user) {
            return;
        }
        match self.inner.store.subscriptions(user).await {
            Ok(list) => {
                let topics = &self.inner.topics;
                topics.forget_user(user);
                topics.subs.insert(user.clone(), HashMap::new());
                for (topic, keys) in list {
                    topics.index(user, &topic, keys.into_iter().collect());
                }
            }
            Err(err) => warn!(%user, cause = %err, "subscriptions not reloaded"),
        }
    }

    /// Removes `conn`'s user's subscription to `topic`; returns whether there was one.
    ///
    /// # Errors
    /// `bad_request` for a bad topic, store failures.
    pub async fn unsubscribe(
        &self,
        conn: &super::ConnHandle,
        topic: &str,
    ) -> Result<bool, ServerError> {
        check_topic(topic)?;
        let user = conn.user().ok_or_else(|| {
            ServerError::request(ErrorCode::NotAuthenticated, "not authenticated")
        })?;
        let _turn = self.inner.user_locks.lock(&user.user_id).await;
        let removed = self
            .inner
            .store
            .remove_subscription(&user.user_id, topic)
            .await?;
        self.inner.topics.unindex(&user.user_id, topic);
        drop(_turn);
        self.subscriptions_changed(&user.user_id).await;
        Ok(removed)
    }

    /// Loads a user's stored subscriptions when its first connection arrives; called
    /// during admission, under the user's lock.
    pub(super) async fn load_subscriptions(&self, user: &UserId) {
        let topics = &self.inner.topics;
        if topics.is_loaded(user) {
            return;
        }
        match self.inner.store.subscriptions(user).await {
            Ok(list) => {
                topics.subs.insert(user.clone(), HashMap::new());
                for (topic, keys) in list {
                    topics.index(user, &topic, keys.into_iter().collect());
                }
            }
            Err(err) => warn!(%user, cause = %err, "subscriptions not loaded"),
        }
    }

    /// Forgets a user's subscriptions when its last connection is gone (they stay
    /// stored); called under the user's lock.
    pub(super) fn unload_subscriptions(&self, user: &UserId) {
        self.inner.topics.forget_user(user);
    }

    /// Publishes `items` (JSON objects with a string `key`) to the subscribers of
    /// `topic` on every node: each gets one `{"type":kind,"topic","data":[...],
    /// "timestamp"}` with the items whose key it subscribed to, or nothing when none
    /// match.
    ///
    /// # Errors
    /// `bad_request` for a bad topic or type, or an item without a string `key`; broker
    /// failures.
    pub async fn publish_topic(
        &self,
        topic: &str,
        kind: &str,
        items: &[Box<RawValue>],
    ) -> Result<Published, ServerError> {
        check_topic(topic)?;
        if kind.is_empty() {
            return Err(bad("`type` must not be empty"));
        }
        let items = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                // Only objects: serde would also read `["AAPL"]` as a struct with a key.
                Some(item.get())
                    .filter(|raw| raw.starts_with('{'))
                    .and_then(|raw| serde_json::from_str::<Keyed<'_>>(raw).ok())
                    .map(|k| (k.key.into_owned(), item.get().to_owned()))
                    .ok_or_else(|| bad(format!("items[{i}] must be an object with a string `key`")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let delivery = Delivery {
            target: Target::Topic(topic.to_owned()),
            except: None,
            frame: Frame::Topic(TopicItems {
                kind: kind.to_owned(),
                topic: topic.to_owned(),
                items,
                timestamp: now_ms(),
            }),
            sequence: None,
            addressee: None,
        };
        let reach = self.inner.broker.publish_counted(delivery).await?;
        Ok(Published {
            users: reach.users,
            delivered: reach.connections,
        })
    }
}
