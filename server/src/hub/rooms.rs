//! [`Rooms`]: this node's rooms by name. It owns the map and the rule of when a room
//! exists: a join creates it, the last leave drops it unless it was created through the
//! API. Each [`Room`] owns its members behind its own lock.

use std::collections::HashSet;
use std::sync::Arc;

use dashmap::DashMap;
use roomcast_protocol::{ClientId, RoomName};

use super::conn::ConnHandle;
use super::room::{Room, RoomInfo};
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::model::RoomOptions;

/// Every room of this node.
#[derive(Debug)]
pub(crate) struct Rooms {
    map: DashMap<RoomName, Arc<Room>>,
    metrics: Arc<Metrics>,
}

impl Rooms {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            map: DashMap::new(),
            metrics,
        }
    }

    /// A room by name.
    pub(crate) fn get(&self, name: &RoomName) -> Option<Arc<Room>> {
        self.map.get(name).map(|r| r.clone())
    }

    /// The room, created with default options if it does not exist.
    pub(crate) fn get_or_create(&self, name: &RoomName) -> Arc<Room> {
        self.map
            .entry(name.clone())
            .or_insert_with(|| {
                self.metrics.rooms.inc();
                Arc::new(Room::new(
                    name.clone(),
                    RoomOptions::default(),
                    now_ms(),
                    false,
                ))
            })
            .clone()
    }

    /// Creates a room with `options` as an API room, or sets the options of an existing
    /// one (which then stays until deleted). Returns its info and whether it was created.
    pub(crate) fn configure(&self, name: &RoomName, options: RoomOptions) -> (RoomInfo, bool) {
        let mut created = false;
        let room = self
            .map
            .entry(name.clone())
            .or_insert_with(|| {
                created = true;
                self.metrics.rooms.inc();
                Arc::new(Room::new(name.clone(), options.clone(), now_ms(), true))
            })
            .clone();
        if !created {
            room.set_options(options);
            room.mark_api_created();
        }
        (room.info(false), created)
    }

    /// Drops a room that has no member and was created by a join (API rooms stay).
    pub(crate) fn remove_if_empty(&self, name: &RoomName) {
        if self
            .map
            .remove_if(name, |_, room| room.retire_if_empty())
            .is_some()
        {
            self.metrics.rooms.dec();
        }
    }

    /// Every room's info with its members, by name.
    pub(crate) fn infos_with_clients(&self) -> Vec<RoomInfo> {
        let mut list: Vec<RoomInfo> = self.map.iter().map(|r| r.info(true)).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Every room.
    pub(crate) fn all(&self) -> Vec<Arc<Room>> {
        self.map.iter().map(|r| r.value().clone()).collect()
    }

    /// How many rooms exist.
    pub(crate) fn count(&self) -> usize {
        self.map.len()
    }

    /// Calls `f` once for each member of any of `names` (each connection once). Holds
    /// room read locks while it runs: `f` must not block.
    pub(crate) fn for_each_member_of(
        &self,
        names: &[RoomName],
        mut f: impl FnMut(&Arc<ConnHandle>),
    ) {
        if let [name] = names {
            if let Some(room) = self.get(name) {
                room.for_each_member(f);
            }
            return;
        }
        let mut seen: HashSet<ClientId> = HashSet::new();
        for name in names {
            if let Some(room) = self.get(name) {
                room.for_each_member(|conn| {
                    if seen.insert(conn.id.clone()) {
                        f(conn);
                    }
                });
            }
        }
    }
}
