//! Which driver a session talks to: the registry of this node's moderation drivers (one per
//! activity, started on first use) and, in cluster mode, of the routers that carry a session's
//! messages to the activity's home node.

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use shangliang_signaling::ActivityId;
use tokio::sync::mpsc;

use super::deliver::Outlets;
use super::driver::{self, DriverDeps, Ended};
use super::floor::{FloorHook, NoFloorHook};
use super::msg::{DriverMsg, LocalDrivers, SessionSource};
use super::relay::{self, EventRelay};
use crate::bus::Cluster;
use crate::record::Record;

/// Requests queued for one driver before senders wait.
const DRIVER_QUEUE: usize = 1024;
/// How long after a refused fence a node waits before it tries again.
const FENCE_RETRY: Duration = Duration::from_millis(500);

/// The moderation of every activity, as this node's sessions reach it. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    local: Arc<Local>,
    /// Cluster mode: the router of each activity on this node.
    routers: Arc<DashMap<ActivityId, mpsc::Sender<DriverMsg>>>,
}

/// The drivers running on this node.
struct Local {
    /// Itself, for the drivers' end callbacks (which may start a successor).
    me: Weak<Local>,
    deps: DriverDeps,
    control: tokio::runtime::Handle,
    map: DashMap<ActivityId, mpsc::Sender<DriverMsg>>,
    /// When a driver last found its activity's fence held by another node (for
    /// [`FENCE_RETRY`], new drivers are not started).
    fence_refused: Arc<DashMap<ActivityId, Instant>>,
}

impl Registry {
    /// The registry of a node whose drivers store in `record`, reach this node's connections
    /// through `outlets`, run on `control` and let each identity post `comments_per_minute`.
    /// In cluster mode (`cluster`) sessions reach every activity through a router, and home
    /// drivers' events also go to the other nodes.
    pub fn new(
        record: Arc<dyn Record>,
        outlets: Outlets,
        cluster: Option<Arc<Cluster>>,
        control: tokio::runtime::Handle,
        comments_per_minute: u32,
    ) -> Registry {
        let events = cluster.as_ref().map(|c| EventRelay::spawn(c.clone(), &control));
        let deps = DriverDeps {
            record,
            outlets,
            cluster,
            events,
            hook: Arc::new(RwLock::new(Arc::new(NoFloorHook))),
            comments_per_minute,
            consensus: Arc::default(),
            sessions: Arc::default(),
            votes: Arc::default(),
        };
        Registry {
            local: Arc::new_cyclic(|me| Local {
                me: me.clone(),
                deps,
                control,
                map: DashMap::new(),
                fence_refused: Arc::new(DashMap::new()),
            }),
            routers: Arc::new(DashMap::new()),
        }
    }

    /// Installs where the floor reaches the media plane.
    pub fn set_floor_hook(&self, hook: Arc<dyn FloorHook>) {
        *self.local.deps.hook.write().unwrap_or_else(|e| e.into_inner()) = hook;
    }

    /// Sets the timing and method of the consensus part for drivers started from now on.
    pub fn set_consensus_config(&self, cfg: crate::consensus::ConsensusConfig) {
        *self.local.deps.consensus.write().unwrap_or_else(|e| e.into_inner()) = cfg;
    }

    /// Installs where drivers read the organisers' settings of their activity when they start.
    pub fn set_session_source(&self, source: Arc<dyn SessionSource>) {
        *self.local.deps.sessions.write().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// The limits on anonymous question votes (read when a driver starts).
    pub fn set_vote_rules(&self, rules: crate::consult::votes::VoteRules) {
        *self.local.deps.votes.write().unwrap_or_else(|e| e.into_inner()) = rules;
    }

    /// A graceful stop (SIGTERM) on a single node: every driver of this node closes the open
    /// attendance spans and the turn at the floor and writes its final summary; waits until
    /// all are durable or `wait` has passed (then logs which were not). In a cluster the
    /// activities' next home continues their attendance from the checkpoint instead (people
    /// still connected elsewhere are still present), so nothing is closed.
    pub async fn shutdown(&self, wait: Duration) {
        if self.local.deps.cluster.is_some() {
            return;
        }
        let drivers: Vec<(ActivityId, mpsc::Sender<DriverMsg>)> =
            self.local.map.iter().map(|e| (e.key().clone(), e.value().clone())).collect();
        let mut pending = Vec::new();
        for (activity, tx) in drivers {
            let (done, rx) = tokio::sync::oneshot::channel();
            if tx.send(DriverMsg::Shutdown { done }).await.is_ok() {
                pending.push((activity, rx));
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        for (activity, rx) in pending {
            if tokio::time::timeout_at(deadline, rx).await.is_err() {
                tracing::warn!(%activity, "the final session record was not written before the shutdown deadline");
            }
        }
    }

    /// This node's drivers, as the cluster relay reaches them.
    pub fn local_drivers(&self) -> Arc<dyn LocalDrivers> {
        self.local.clone()
    }

    /// Where a session sends `activity`'s driver messages: the driver (one node), or this
    /// node's router to the activity's home (cluster mode); `None` if the activity does not
    /// exist (or, on one node, another holder of its fence runs it).
    pub fn sender(&self, activity: &ActivityId) -> Option<mpsc::Sender<DriverMsg>> {
        let Some(cluster) = self.local.deps.cluster.as_ref() else {
            return self.local.local(activity);
        };
        if let Some(tx) = self.routers.get(activity) {
            return Some(tx.clone());
        }
        self.local.deps.record.activity(activity).ok()??;
        let entry = self.routers.entry(activity.clone()).or_insert_with(|| {
            relay::spawn_router(
                self.local.clone(),
                cluster.clone(),
                &self.local.control,
                activity.clone(),
            )
        });
        Some(entry.clone())
    }
}

impl Local {
    /// What a stale driver had not handled goes to its successor, started afresh from the
    /// stored record (in order; whatever the successor cannot take is answered `unavailable`
    /// as it is dropped).
    fn hand_over(
        &self,
        activity: &ActivityId,
        pending: Option<DriverMsg>,
        mut rx: mpsc::Receiver<DriverMsg>,
    ) {
        // Closed first, so that `local` no longer takes it for a live driver.
        rx.close();
        let Some(next) = self.local(activity) else { return };
        self.control.spawn(async move {
            if let Some(m) = pending
                && next.send(m).await.is_err()
            {
                return;
            }
            while let Some(m) = rx.recv().await {
                if next.send(m).await.is_err() {
                    return;
                }
            }
        });
    }
}

impl LocalDrivers for Local {
    fn local(&self, activity: &ActivityId) -> Option<mpsc::Sender<DriverMsg>> {
        if let Some(tx) = self.map.get(activity).filter(|tx| !tx.is_closed()) {
            return Some(tx.clone());
        }
        // Another node held the activity's fence a moment ago: do not ask the record again
        // for every message.
        if self
            .fence_refused
            .get(activity)
            .is_some_and(|t| t.elapsed() < FENCE_RETRY)
        {
            return None;
        }
        let a = self.deps.record.activity(activity).ok()??;
        // A stopped driver's entry (its fence was refused or lost) is replaced.
        self.map.remove_if(activity, |_, tx| tx.is_closed());
        let entry = self.map.entry(activity.clone()).or_insert_with(|| {
            let head = self.deps.record.head(activity).unwrap_or_default();
            let (me, id) = (self.me.clone(), activity.clone());
            driver::spawn(
                self.deps.clone(),
                &self.control,
                activity.clone(),
                a.title.clone(),
                head,
                DRIVER_QUEUE,
                move |ended| {
                    let Some(local) = me.upgrade() else { return };
                    match ended {
                        // Another node runs it: do not ask for every message. (If the record
                        // could not be reached, the next message asks again.)
                        Ended::FenceRefused { held_elsewhere: true } => {
                            local.fence_refused.insert(id, Instant::now());
                        }
                        Ended::FenceRefused { held_elsewhere: false } => {}
                        Ended::Stopped => {}
                        Ended::Stale { pending, rx } => local.hand_over(&id, pending, rx),
                    }
                },
            )
        });
        Some(entry.clone())
    }

    fn retain(&self, keep: &dyn Fn(&ActivityId) -> bool) {
        self.map.retain(|a, _| {
            let k = keep(a);
            if !k {
                tracing::info!(activity = %a, "moderation moved to another node; local driver stops");
            }
            k
        });
    }
}
