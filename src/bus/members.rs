//! Which nodes of the cluster are alive, and so which node is an activity's *home*: the node
//! that runs its moderation (floor, questions, review queue, audit) and hosts its video room.
//!
//! Every node publishes a heartbeat (its public URL) on NATS every [`HEARTBEAT`]; a node counts
//! as alive while its last heartbeat is younger than [`LIVE_FOR`]. The home of an activity is
//! the rendezvous winner ([`super::home_node`]) over the alive nodes of the configured list, so
//! every node that sees the same heartbeats computes the same home, and when a node dies only
//! the activities it was home to move.
//!
//! The node list is either configured (`--nodes`, the same on every node: heartbeats of other
//! URLs are ignored, so a stray process cannot take over activities) or, when `--nodes` is not
//! given, discovered: every node heard on NATS counts.
//!
//! Two rules keep nodes from disagreeing more than they must:
//! - **Listen before serving:** a starting node has heard nobody yet, so it would believe it is
//!   home to everything; the cluster waits [`SETTLE`] (two heartbeats) after subscribing before
//!   the node serves anything.
//! - **Frozen while NATS is down:** heartbeats stop arriving for everyone at once, so a node
//!   keeps the view it had when NATS was last connected instead of declaring every other node
//!   dead and running their activities itself (split brain). Moderation of activities homed
//!   elsewhere is then unavailable until NATS returns; posts are refused with a clear error.
//!
//! A short disagreement (a heartbeat lost at the edge of [`LIVE_FOR`], a node cut off from NATS
//! but not from PostgreSQL) can still make two nodes believe they are home to one activity. The
//! view is only advice: before a driver runs it takes the activity's *fence*, a session-level
//! advisory lock in PostgreSQL (`crate::record::Record::fence`), released when the driver stops or its
//! node or connection dies; the second node waits. As a second line, audit rows are appended only
//! if they continue the stored chain.
//!
//! This type is a pure state machine (no sockets, no clock of its own): the cluster's tasks
//! feed it heartbeats and the time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shangliang_signaling::{ActivityId, NodeId};

use super::home::home_node;

/// How often a node announces itself.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// A node whose last heartbeat is older than this is considered gone.
pub const LIVE_FOR: Duration = Duration::from_millis(2000);
/// How long a starting node listens to heartbeats before it serves.
pub const SETTLE: Duration = Duration::from_millis(1100);

/// The membership view of one node.
#[derive(Debug)]
pub struct Members {
    me: NodeId,
    /// The configured list (sorted, including `me`); `None`: discovered from heartbeats.
    nodes: Option<Vec<NodeId>>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Last heartbeat heard from each node (configured ones only, if there is a list).
    seen: HashMap<NodeId, Instant>,
    /// The alive set as last computed while NATS was connected (sorted).
    last_live: Vec<NodeId>,
}

impl Members {
    /// `me` is this node's own public URL; `nodes` the configured list (the same on every
    /// node), or empty to discover the nodes from their heartbeats. `me` is always alive.
    pub fn new(me: NodeId, nodes: Vec<NodeId>) -> Members {
        let configured = !nodes.is_empty();
        let mut all = nodes;
        all.push(me.clone());
        all.sort();
        all.dedup();
        Members {
            state: Mutex::new(State {
                seen: HashMap::new(),
                last_live: all.clone(),
            }),
            me,
            nodes: configured.then_some(all),
        }
    }

    /// This node.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// A heartbeat from `node` arrived. With a configured list, unknown nodes are ignored.
    pub fn handle_heartbeat(&self, node: &str, now: Instant) {
        if node.is_empty() || node.len() > 512 {
            return;
        }
        if self
            .nodes
            .as_ref()
            .is_none_or(|list| list.iter().any(|n| n.as_str() == node))
        {
            self.lock().seen.insert(NodeId::new(node), now);
        }
    }

    /// The nodes considered alive now, sorted. `nats_up`: whether heartbeats can arrive at
    /// all; while it is `false` the last view is kept (see the module docs).
    pub fn live(&self, now: Instant, nats_up: bool) -> Vec<NodeId> {
        let mut st = self.lock();
        if !nats_up {
            return st.last_live.clone();
        }
        let alive = |t: &Instant| now.saturating_duration_since(*t) < LIVE_FOR;
        st.seen.retain(|_, t| now.saturating_duration_since(*t) < LIVE_FOR * 30);
        let mut live: Vec<NodeId> = match &self.nodes {
            Some(list) => list
                .iter()
                .filter(|n| **n == self.me || st.seen.get(*n).is_some_and(alive))
                .cloned()
                .collect(),
            None => st
                .seen
                .iter()
                .filter(|(_, t)| alive(t))
                .map(|(n, _)| n.clone())
                .chain([self.me.clone()])
                .collect(),
        };
        live.sort();
        live.dedup();
        st.last_live.clone_from(&live);
        live
    }

    /// The home node of `activity` now.
    pub fn home(&self, activity: &ActivityId, now: Instant, nats_up: bool) -> NodeId {
        let live = self.live(now, nats_up);
        home_node(activity, &live).unwrap_or(&self.me).clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> Vec<NodeId> {
        (1..=n).map(|i| NodeId::from(format!("http://127.0.0.1:{}", 8080 + i))).collect()
    }

    fn ids(list: &[&str]) -> Vec<NodeId> {
        list.iter().map(NodeId::new).collect()
    }

    fn act(i: usize) -> ActivityId {
        ActivityId::new(&format!("act-{i}")).unwrap()
    }

    #[test]
    fn a_node_that_has_heard_nobody_yet_sees_only_itself_hence_the_settle_wait() {
        let t0 = Instant::now();
        let m = Members::new(urls(3)[0].clone(), urls(3));
        assert_eq!(m.live(t0, true), vec![urls(3)[0].clone()]);
        for n in urls(3) {
            m.handle_heartbeat(n.as_str(), t0 + HEARTBEAT);
        }
        assert_eq!(m.live(t0 + SETTLE, true), urls(3));
    }

    #[test]
    fn without_a_configured_list_every_node_heard_counts() {
        let t0 = Instant::now();
        let m = Members::new(NodeId::new("http://a:1"), Vec::new());
        m.handle_heartbeat("http://b:1", t0);
        m.handle_heartbeat("http://c:1", t0);
        assert_eq!(m.live(t0, true), ids(&["http://a:1", "http://b:1", "http://c:1"]));
        assert_eq!(m.live(t0 + LIVE_FOR, true), ids(&["http://a:1"]));
    }

    #[test]
    fn a_silent_node_drops_out_after_live_for_and_its_activities_move() {
        let t0 = Instant::now();
        let nodes = urls(3);
        let m = Members::new(nodes[0].clone(), nodes.clone());
        let later = t0 + LIVE_FOR + Duration::from_millis(500);
        m.handle_heartbeat(nodes[1].as_str(), later - Duration::from_millis(100));
        assert_eq!(m.live(later, true), vec![nodes[0].clone(), nodes[1].clone()]);
        for i in 0..50 {
            let a = act(i);
            let before = home_node(&a, &nodes).unwrap().clone();
            let after = m.home(&a, later, true);
            if before != nodes[2] {
                assert_eq!(after, before, "only the dead node's activities move");
            } else {
                assert_ne!(after, nodes[2]);
            }
        }
    }

    #[test]
    fn nodes_that_hear_the_same_heartbeats_agree_on_every_home() {
        let t0 = Instant::now();
        let nodes = urls(6);
        let views: Vec<Members> =
            nodes.iter().map(|me| Members::new(me.clone(), nodes.clone())).collect();
        let now = t0 + Duration::from_secs(10);
        for v in &views {
            for n in nodes.iter().filter(|n| **n != nodes[4]) {
                v.handle_heartbeat(n.as_str(), now - Duration::from_millis(300));
            }
        }
        // Node 5 is dead; it still counts itself alive, so compare the other five.
        for i in 0..200 {
            let homes: Vec<NodeId> = views
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != 4)
                .map(|(_, v)| v.home(&act(i), now, true))
                .collect();
            assert!(homes.windows(2).all(|w| w[0] == w[1]), "{homes:?}");
            assert_ne!(homes[0], nodes[4]);
        }
    }

    #[test]
    fn the_view_is_frozen_while_nats_is_down() {
        let t0 = Instant::now();
        let nodes = urls(3);
        let m = Members::new(nodes[0].clone(), nodes.clone());
        let t1 = t0 + Duration::from_secs(5);
        m.handle_heartbeat(nodes[1].as_str(), t1);
        m.handle_heartbeat(nodes[2].as_str(), t1);
        assert_eq!(m.live(t1, true), nodes);
        // NATS goes away: no heartbeats for a minute, yet nobody is declared dead.
        assert_eq!(m.live(t1 + Duration::from_secs(60), false), nodes);
        // Back, and still silent: now they drop out.
        assert_eq!(m.live(t1 + Duration::from_secs(61), true), vec![nodes[0].clone()]);
    }

    #[test]
    fn a_heartbeat_from_an_unconfigured_node_is_ignored() {
        let t0 = Instant::now();
        let nodes = urls(2);
        let m = Members::new(nodes[0].clone(), nodes.clone());
        let later = t0 + Duration::from_secs(10);
        m.handle_heartbeat("http://10.9.9.9:1", later);
        assert_eq!(m.live(later, true), vec![nodes[0].clone()]);
    }
}
