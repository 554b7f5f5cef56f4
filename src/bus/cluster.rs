//! Cluster mode: the record (PostgreSQL) sequences and stores, NATS pushes, each node's
//! delivery driver feeds its fan-out in seq order and heals gaps from the record.
//!
//! Tasks of one node:
//! - the record's writer (`crate::record::postgres`): commits appends; its commit hook (made
//!   by [`commit_feed`]) hands each committed item to the delivery driver (local viewers) and to
//!   the NATS publisher (other nodes);
//! - the NATS publisher: `shangliang.items.<activity>` ← JSON `{p, i}`; drops on a stalled
//!   connection (the gap is healed from the record);
//! - the NATS subscriber: `shangliang.items.>` → delivery driver;
//! - the watcher: every [`TICK`] reads the activities and their heads from the record
//!   ([`Record::catalogue`]: new activities, lost items, database health) → delivery driver;
//! - the delivery driver ([`DeliveryDriver`]): one [`Sequencer`] per topic; publishes into the
//!   fan-out in order; reads gaps from the record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use shangliang_signaling::{ActivityId, Item, NodeId, Seq};
use tokio::sync::mpsc;

use super::members::{HEARTBEAT, Members, SETTLE};
use super::sequencer::Sequencer;
use crate::fanout::Fanout;
use crate::record::{Activity, CommitHook, Record, RecordError};

/// How often each node reads the heads from PostgreSQL.
pub const TICK: Duration = Duration::from_millis(200);
const SUBJECT_PREFIX: &str = "shangliang.items.";
/// Heartbeats of the nodes (payload: the node's public URL).
const NODES_SUBJECT: &str = "shangliang.nodes";
/// A NATS publish that cannot be buffered within this is dropped (healed from the record).
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(200);

/// What cluster mode needs to be told.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// NATS server URL(s), comma-separated: `nats://127.0.0.1:4222`.
    pub nats_url: String,
    /// PostgreSQL connection string: `postgres://user@host:port/db`.
    pub database_url: String,
    /// Every node, the same list on every node (empty: discovered from heartbeats): each
    /// activity's home node (its moderation and video room) is chosen from the alive ones;
    /// see [`super::members`].
    pub nodes: Vec<NodeId>,
    /// This node as it appears in `nodes` (its base URL: how clients and other nodes reach
    /// it).
    pub public_url: NodeId,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    /// Public (not held for review).
    p: bool,
    i: Item,
}

enum Delivery {
    Item(ActivityId, Item, bool),
    Heads(Vec<(Activity, Seq)>),
}

/// Health of the cluster's dependencies, for `/healthz`.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterHealth {
    /// `connected`, or what is wrong.
    pub nats: String,
    /// `ok`, or the last error.
    pub database: String,
}

impl ClusterHealth {
    /// Both dependencies are up.
    pub fn ok(&self) -> bool {
        self.nats == "connected" && self.database == "ok"
    }
}

/// What the record's commit hook feeds: made by [`commit_feed`], consumed by
/// [`Cluster::connect`].
pub struct CommitFeed {
    delivery_tx: mpsc::UnboundedSender<Delivery>,
    delivery_rx: mpsc::UnboundedReceiver<Delivery>,
    publish_rx: mpsc::UnboundedReceiver<(ActivityId, Item, bool)>,
}

/// The commit hook a cluster node opens its record with: every item the record commits goes
/// to this node's delivery driver (its own viewers) and to the NATS publisher (the other
/// nodes). Cheap and non-blocking, as a hook must be.
pub fn commit_feed() -> (CommitHook, CommitFeed) {
    let (delivery_tx, delivery_rx) = mpsc::unbounded_channel();
    let (publish_tx, publish_rx) = mpsc::unbounded_channel::<(ActivityId, Item, bool)>();
    let hook_delivery = delivery_tx.clone();
    let hook: CommitHook = Box::new(move |activity: &ActivityId, item: &Item, public: bool| {
        let _ = hook_delivery.send(Delivery::Item(activity.clone(), item.clone(), public));
        let _ = publish_tx.send((activity.clone(), item.clone(), public));
    });
    (
        hook,
        CommitFeed {
            delivery_tx,
            delivery_rx,
            publish_rx,
        },
    )
}

/// One node's connection to the cluster.
pub struct Cluster {
    record: Arc<dyn Record>,
    nats: async_nats::Client,
    delivery: mpsc::UnboundedSender<Delivery>,
    members: Members,
}

impl Cluster {
    /// Connects to NATS (which may come later), opens every activity's topic in `fanout` at its
    /// head, and starts the node's tasks on the current runtime. `record` is the cluster's
    /// shared record, opened with the hook of `feed`.
    pub async fn connect(
        cfg: ClusterConfig,
        fanout: Fanout,
        record: Arc<dyn Record>,
        feed: CommitFeed,
    ) -> Result<Arc<Cluster>, RecordError> {
        let CommitFeed {
            delivery_tx,
            delivery_rx,
            publish_rx,
        } = feed;
        let nats = async_nats::ConnectOptions::new()
            .name("shangliang")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(|n| Duration::from_millis((100 * n as u64).min(1000)))
            .connect(cfg.nats_url.as_str())
            .await
            .map_err(|e| RecordError::Unavailable(format!("nats: {e}")))?;
        for (a, head) in record.catalogue().await? {
            fanout.open_topic(a.id.clone(), a.epoch, head);
        }
        let cluster = Arc::new(Cluster {
            record: record.clone(),
            nats: nats.clone(),
            delivery: delivery_tx.clone(),
            members: Members::new(cfg.public_url.clone(), cfg.nodes.clone()),
        });
        let driver = DeliveryDriver {
            fanout,
            record,
            rx: delivery_rx,
            topics: HashMap::new(),
        };
        tokio::spawn(driver.run());
        tokio::spawn(publisher(nats.clone(), publish_rx));
        let subscriber = nats
            .subscribe(format!("{SUBJECT_PREFIX}>"))
            .await
            .map_err(|e| RecordError::Unavailable(format!("nats: {e}")))?;
        tokio::spawn(subscriber_task(subscriber, delivery_tx));
        let heartbeats = nats
            .subscribe(NODES_SUBJECT)
            .await
            .map_err(|e| RecordError::Unavailable(format!("nats: {e}")))?;
        tokio::spawn(heartbeat_task(Arc::downgrade(&cluster), heartbeats));
        // Hear the other nodes before serving, or this node would believe it is home to every
        // activity for a moment (see `members`).
        tokio::time::sleep(SETTLE).await;
        tokio::spawn(watcher(Arc::downgrade(&cluster)));
        Ok(cluster)
    }

    /// The node's NATS connection (for the moderation relay).
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// Whether NATS is connected now.
    pub fn nats_up(&self) -> bool {
        self.nats.connection_state() == async_nats::connection::State::Connected
    }

    /// The home node of `activity` now (its moderation and video room); see
    /// [`super::members`].
    pub fn home(&self, activity: &ActivityId) -> NodeId {
        self.members.home(activity, Instant::now(), self.nats_up())
    }

    /// The home node of `activity` if it is another node: that node runs its moderation and
    /// hosts its video room. `None`: this node.
    pub fn home_elsewhere(&self, activity: &ActivityId) -> Option<NodeId> {
        let home = self.home(activity);
        (home != *self.me()).then_some(home)
    }

    /// This node.
    pub fn me(&self) -> &NodeId {
        self.members.me()
    }

    /// Whether NATS and the record are reachable.
    pub fn health(&self) -> ClusterHealth {
        let nats = match self.nats.connection_state() {
            async_nats::connection::State::Connected => "connected".to_owned(),
            other => format!("{other:?}").to_lowercase(),
        };
        let database = match self.record.health() {
            Ok(()) => "ok".to_owned(),
            Err(e) => e,
        };
        ClusterHealth { nats, database }
    }
}

async fn publisher(
    nats: async_nats::Client,
    mut rx: mpsc::UnboundedReceiver<(ActivityId, Item, bool)>,
) {
    while let Some((activity, item, public)) = rx.recv().await {
        let payload = serde_json::to_vec(&Wire { p: public, i: item }).expect("items serialize");
        let subject = format!("{SUBJECT_PREFIX}{activity}");
        match tokio::time::timeout(PUBLISH_TIMEOUT, nats.publish(subject, payload.into())).await {
            Ok(Ok(())) => {}
            _ => metrics::counter!("shangliang_cluster_publish_dropped_total").increment(1),
        }
    }
}

async fn subscriber_task(mut sub: async_nats::Subscriber, tx: mpsc::UnboundedSender<Delivery>) {
    while let Some(msg) = sub.next().await {
        let Some(activity) = msg
            .subject
            .strip_prefix(SUBJECT_PREFIX)
            .and_then(|a| ActivityId::new(a).ok())
        else {
            continue;
        };
        match serde_json::from_slice::<Wire>(&msg.payload) {
            Ok(w) => {
                if tx.send(Delivery::Item(activity, w.i, w.p)).is_err() {
                    break;
                }
            }
            Err(e) => tracing::warn!(subject = %msg.subject, "undecodable cluster item: {e}"),
        }
    }
}

/// Announces this node every [`HEARTBEAT`] and records the others' announcements.
async fn heartbeat_task(cluster: std::sync::Weak<Cluster>, mut sub: async_nats::Subscriber) {
    let Some((nats, me)) = cluster
        .upgrade()
        .map(|c| (c.nats.clone(), c.members.me().to_string()))
    else {
        return;
    };
    let announce = tokio::spawn({
        let cluster = cluster.clone();
        async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while cluster.strong_count() > 0 {
                tick.tick().await;
                let _ = tokio::time::timeout(
                    PUBLISH_TIMEOUT,
                    nats.publish(NODES_SUBJECT, me.clone().into_bytes().into()),
                )
                .await;
            }
        }
    });
    while let Some(msg) = sub.next().await {
        let Some(c) = cluster.upgrade() else { break };
        if let Ok(node) = std::str::from_utf8(&msg.payload) {
            c.members.handle_heartbeat(node, Instant::now());
        }
    }
    announce.abort();
}

async fn watcher(cluster: std::sync::Weak<Cluster>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut db_up = true;
    loop {
        tick.tick().await;
        let Some(c) = cluster.upgrade() else { break };
        metrics::gauge!("shangliang_cluster_nats_up").set(if c.nats_up() { 1.0 } else { 0.0 });
        match c.record.catalogue().await {
            Ok(list) => {
                db_up = true;
                metrics::gauge!("shangliang_cluster_database_up").set(1.0);
                if c.delivery.send(Delivery::Heads(list)).is_err() {
                    break;
                }
            }
            Err(e) => {
                if std::mem::replace(&mut db_up, false) {
                    tracing::warn!("database unavailable: {e}");
                }
                metrics::gauge!("shangliang_cluster_database_up").set(0.0);
            }
        }
    }
}

/// Owns the node's per-topic [`Sequencer`]s; the only task that publishes into the fan-out in
/// cluster mode.
struct DeliveryDriver {
    fanout: Fanout,
    record: Arc<dyn Record>,
    rx: mpsc::UnboundedReceiver<Delivery>,
    topics: HashMap<ActivityId, Sequencer>,
}

impl DeliveryDriver {
    async fn run(mut self) {
        let mut ready = Vec::new();
        while let Some(msg) = self.rx.recv().await {
            match msg {
                Delivery::Item(activity, item, public) => {
                    let Some(seq) = self.sequencer(&activity) else {
                        continue;
                    };
                    seq.handle_item(item, public, &mut ready);
                    self.publish(&activity, &mut ready);
                }
                Delivery::Heads(list) => {
                    let now = Instant::now();
                    for (a, head) in list {
                        if self
                            .fanout
                            .topic_info(&a.id)
                            .is_none_or(|t| t.epoch != a.epoch)
                        {
                            self.fanout.open_topic(a.id.clone(), a.epoch, head);
                            self.topics.insert(a.id.clone(), Sequencer::new(head));
                            continue;
                        }
                        let Some(seq) = self.sequencer(&a.id) else {
                            continue;
                        };
                        if let Some((from, to)) = seq.handle_head(Some(head), now) {
                            self.heal(&a.id, from, to, &mut ready).await;
                        }
                    }
                }
            }
        }
    }

    fn sequencer(&mut self, activity: &ActivityId) -> Option<&mut Sequencer> {
        if !self.topics.contains_key(activity) {
            // Unknown topics are opened by the watcher, which knows their epoch.
            let info = self.fanout.topic_info(activity)?;
            self.topics
                .insert(activity.clone(), Sequencer::new(info.last_seq));
        }
        self.topics.get_mut(activity)
    }

    async fn heal(
        &mut self,
        activity: &ActivityId,
        from: Seq,
        to: Seq,
        ready: &mut Vec<(Item, bool)>,
    ) {
        match self.record.items(activity, from, to, false).await {
            Ok(items) => {
                metrics::counter!("shangliang_cluster_healed_items_total")
                    .increment(items.len() as u64);
                tracing::debug!(%activity, %from, %to, n = items.len(), "gap healed from the record");
                let seq = self.topics.get_mut(activity).expect("sequencer exists");
                for s in items {
                    seq.handle_item(s.item, s.public, ready);
                }
                self.publish(activity, ready);
            }
            Err(e) => tracing::warn!(%activity, "cannot heal a gap from the record: {e}"),
        }
    }

    fn publish(&self, activity: &ActivityId, ready: &mut Vec<(Item, bool)>) {
        for (item, public) in ready.drain(..) {
            let seq = item.seq;
            if let Err(e) = self.fanout.publish(activity, item, public) {
                tracing::error!(%activity, %seq, "fan-out refused a cluster item: {e}");
            }
        }
    }
}
