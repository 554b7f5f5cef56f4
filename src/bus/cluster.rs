//! Cluster mode: PostgreSQL sequences and stores, NATS pushes, each node's delivery driver
//! feeds its fan-out in seq order and heals gaps from PostgreSQL.
//!
//! Tasks of one node:
//! - the record's writer ([`PgRecord`]): commits appends; its hook hands each committed item
//!   to the delivery driver (local viewers) and to the NATS publisher (other nodes);
//! - the NATS publisher: `shangliang.items.<activity>` ← JSON `{p, i}`; drops on a stalled
//!   connection (the gap is healed from the record);
//! - the NATS subscriber: `shangliang.items.>` → delivery driver;
//! - the watcher: every [`TICK`] reads the activities and their heads from PostgreSQL (new
//!   activities, lost items, database health) → delivery driver;
//! - the delivery driver ([`DeliveryDriver`]): one [`Sequencer`] per topic; publishes into the
//!   fan-out in order; reads gaps from the record.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use shangliang_signaling::{ActivityId, Item, Seq};
use tokio::sync::mpsc;

use super::members::{HEARTBEAT, Members, SETTLE};
use super::sequencer::Sequencer;
use crate::fanout::Fanout;
use crate::record::postgres::PgRecord;
use crate::record::{Activity, ActivityKind, ActivityState, RecordError};

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
    /// Base URLs of every node, the same list on every node: each activity's home node (its
    /// moderation and video room) is chosen from the alive ones; see [`super::members`].
    pub nodes: Vec<String>,
    /// This node's own base URL as it appears in `nodes` (how clients and other nodes reach
    /// it).
    pub public_url: String,
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

/// One node's connection to the cluster.
pub struct Cluster {
    cfg: ClusterConfig,
    pg: PgRecord,
    nats: async_nats::Client,
    /// Activities as last read from PostgreSQL (or created here since).
    activities: RwLock<Vec<Activity>>,
    /// Their heads as last read.
    heads: RwLock<HashMap<ActivityId, Seq>>,
    db_up: AtomicBool,
    db_error: Mutex<String>,
    delivery: mpsc::UnboundedSender<Delivery>,
    members: Members,
}

impl Cluster {
    /// Connects to PostgreSQL (must be up) and NATS (may come later), opens every activity's
    /// topic in `fanout` at its head, and starts the node's tasks.
    pub async fn connect(cfg: ClusterConfig, fanout: Fanout) -> Result<Arc<Cluster>, RecordError> {
        let (delivery_tx, delivery_rx) = mpsc::unbounded_channel();
        let (publish_tx, publish_rx) = mpsc::unbounded_channel::<(ActivityId, Item, bool)>();
        let hook_delivery = delivery_tx.clone();
        let pg = PgRecord::connect(
            &cfg.database_url,
            Box::new(move |activity: &ActivityId, item: &Item, public: bool| {
                let _ = hook_delivery.send(Delivery::Item(activity.clone(), item.clone(), public));
                let _ = publish_tx.send((activity.clone(), item.clone(), public));
            }),
        )
        .await?;
        let nats = async_nats::ConnectOptions::new()
            .name("shangliang")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(|n| Duration::from_millis((100 * n as u64).min(1000)))
            .connect(cfg.nats_url.as_str())
            .await
            .map_err(|e| RecordError::Unavailable(format!("nats: {e}")))?;
        let list = pg.activities().await?;
        for (a, head) in &list {
            fanout.open_topic(a.id.clone(), a.epoch, *head);
        }
        let cluster = Arc::new(Cluster {
            activities: RwLock::new(list.iter().map(|(a, _)| a.clone()).collect()),
            heads: RwLock::new(list.iter().map(|(a, h)| (a.id.clone(), *h)).collect()),
            pg: pg.clone(),
            nats: nats.clone(),
            db_up: AtomicBool::new(true),
            db_error: Mutex::new(String::new()),
            delivery: delivery_tx.clone(),
            members: Members::new(cfg.public_url.clone(), cfg.nodes.clone()),
            cfg,
        });
        let driver = DeliveryDriver {
            fanout,
            pg,
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

    /// The configuration in force.
    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    /// The PostgreSQL record (audit log and summaries are stored there too).
    pub fn record(&self) -> &PgRecord {
        &self.pg
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
    pub fn home(&self, activity: &ActivityId) -> String {
        self.members.home(activity, Instant::now(), self.nats_up())
    }

    /// This node's public URL.
    pub fn me(&self) -> &str {
        self.members.me()
    }

    /// The nodes alive now, as this node sees them.
    pub fn live_nodes(&self) -> Vec<String> {
        self.members.live(Instant::now(), self.nats_up())
    }

    /// Appends through the cluster's sequencer (PostgreSQL); `Ok` once committed.
    pub async fn append(
        &self,
        activity: &ActivityId,
        body: shangliang_signaling::ItemBody,
        public: bool,
    ) -> Result<Item, RecordError> {
        self.pg.append(activity, body, public).await
    }

    /// History from PostgreSQL.
    pub async fn items(
        &self,
        activity: &ActivityId,
        from: Seq,
        to: Seq,
        public_only: bool,
    ) -> Result<Vec<Item>, RecordError> {
        Ok(self
            .pg
            .items(activity, from, to, public_only)
            .await?
            .into_iter()
            .map(|(i, _)| i)
            .collect())
    }

    /// Activities as last known (refreshed every [`TICK`]).
    pub fn activities(&self) -> Vec<Activity> {
        self.activities
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// An activity's head as last read (at most a [`TICK`] old).
    pub fn head(&self, id: &ActivityId) -> Seq {
        self.heads
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied()
            .unwrap_or_default()
    }

    /// Creates an activity in PostgreSQL; every node opens its topic within a [`TICK`], this
    /// one at once.
    pub async fn create_activity(
        &self,
        id: ActivityId,
        title: &str,
        kind: ActivityKind,
        state: ActivityState,
    ) -> Result<Activity, RecordError> {
        let a = self.pg.create_activity(id, title, kind, state).await?;
        self.activities
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(a.clone());
        let _ = self
            .delivery
            .send(Delivery::Heads(vec![(a.clone(), Seq(0))]));
        Ok(a)
    }

    /// Whether NATS and PostgreSQL are reachable.
    pub fn health(&self) -> ClusterHealth {
        let nats = match self.nats.connection_state() {
            async_nats::connection::State::Connected => "connected".to_owned(),
            other => format!("{other:?}").to_lowercase(),
        };
        let database = if self.db_up.load(Ordering::Relaxed) {
            "ok".to_owned()
        } else {
            self.db_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
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
        .map(|c| (c.nats.clone(), c.members.me().to_owned()))
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
    loop {
        tick.tick().await;
        let Some(c) = cluster.upgrade() else { break };
        let nats_up = c.nats.connection_state() == async_nats::connection::State::Connected;
        metrics::gauge!("shangliang_cluster_nats_up").set(if nats_up { 1.0 } else { 0.0 });
        match c.pg.activities().await {
            Ok(list) => {
                c.db_up.store(true, Ordering::Relaxed);
                metrics::gauge!("shangliang_cluster_database_up").set(1.0);
                *c.activities.write().unwrap_or_else(|e| e.into_inner()) =
                    list.iter().map(|(a, _)| a.clone()).collect();
                *c.heads.write().unwrap_or_else(|e| e.into_inner()) =
                    list.iter().map(|(a, h)| (a.id.clone(), *h)).collect();
                if c.delivery.send(Delivery::Heads(list)).is_err() {
                    break;
                }
            }
            Err(e) => {
                if c.db_up.swap(false, Ordering::Relaxed) {
                    tracing::warn!("database unavailable: {e}");
                }
                metrics::gauge!("shangliang_cluster_database_up").set(0.0);
                *c.db_error.lock().unwrap_or_else(|e| e.into_inner()) = e.to_string();
            }
        }
    }
}

/// Owns the node's per-topic [`Sequencer`]s; the only task that publishes into the fan-out in
/// cluster mode.
struct DeliveryDriver {
    fanout: Fanout,
    pg: PgRecord,
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
        match self.pg.items(activity, from, to, false).await {
            Ok(items) => {
                metrics::counter!("shangliang_cluster_healed_items_total")
                    .increment(items.len() as u64);
                tracing::debug!(%activity, %from, %to, n = items.len(), "gap healed from the record");
                let seq = self.topics.get_mut(activity).expect("sequencer exists");
                for (item, public) in items {
                    seq.handle_item(item, public, ready);
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
