//! Moderation across the nodes of a cluster: one driver per activity, on its home node.
//!
//! Each activity's [`Consultation`](crate::consult::Consultation) (floor, questions, review
//! queue, comment policy, audit chain) lives in exactly one moderation driver
//! ([`super::driver`]), on the activity's *home* node ([`crate::bus::members`]: rendezvous
//! hashing over the alive nodes). Sessions on every node talk to it through a per-activity
//! **router** on their own node, with the same [`DriverMsg`]s as in single-node mode:
//!
//! ```text
//! session ─DriverMsg─▶ router(activity) ── home is me ──▶ local driver
//!                                      └─ home is N ───▶ NATS shangliang.consult.<key(N)>
//!                                                            │ (request/reply for cmd, state
//!                                                            │  and post — one round trip, the
//!                                                            │  answer sent once durable;
//!                                                            ▼  publish for join, leave)
//!                                              relay server on N ─▶ N's driver
//! N's driver ─ events ─▶ N's fan-out + NATS shangliang.events.<activity> ─▶ every other node's
//!                                                            fan-out / inboxes
//! ```
//!
//! The home is evaluated per message, so when a node dies its activities' routers on the other
//! nodes switch to the new home within [`crate::bus::members::LIVE_FOR`]; the new home's driver
//! starts from the audit chain in PostgreSQL. A node that receives a relayed request for an
//! activity it does not consider its own answers [`RelayReply::NotHome`] (the caller reports
//! "retry"), so two drivers never both accept work while the nodes agree. Requests time out
//! after [`RELAY_TIMEOUT`]; while NATS is down, moderation and posts of activities homed
//! elsewhere are refused with `unavailable`.
//!
//! Polls and statements (`consensus` requests) travel the same way (one request/reply to the
//! home's driver); the home's `consensus` events go out on `shangliang.cevents.<activity>`
//! beside the moderation events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shangliang_signaling::consult::{Command, ConsultEvent, Reply, Snapshot};
use shangliang_signaling::{ActivityId, ErrorCode, NodeId};
use tokio::sync::{mpsc, oneshot};

use super::deliver::Outlets;
use super::consensus_wire::{ConsensusAnswer, ConsensusRequest};
use super::msg::{ConsensusReply, DriverMsg, LocalDrivers, OrganiseReply, OrganiserNote, PostAnswer, PostReply, WireError};
use crate::bus::Cluster;
use crate::consult::{Audience, Grants, ParticipantId};

/// Longest wait for the home node's answer.
pub const RELAY_TIMEOUT: Duration = Duration::from_secs(3);
/// How often local drivers of activities homed elsewhere are stopped.
const HOME_CHECK: Duration = Duration::from_millis(500);
const RELAY_PREFIX: &str = "shangliang.consult.";
const EVENTS_PREFIX: &str = "shangliang.events.";
const CONSENSUS_EVENTS_PREFIX: &str = "shangliang.cevents.";
/// Messages routed to one activity's router before sessions wait.
const ROUTER_QUEUE: usize = 4096;

/// A [`DriverMsg`] on its way to the home node (JSON on NATS).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "m", rename_all = "snake_case")]
enum RelayMsg {
    Join { a: ActivityId, g: Grants },
    Leave { a: ActivityId, who: ParticipantId },
    Command {
        a: ActivityId,
        g: Grants,
        /// The address block of the caller (`DriverMsg::Command::from`).
        #[serde(default)]
        from: Option<crate::consult::votes::NetBlock>,
        cmd: Command,
    },
    State { a: ActivityId, g: Grants },
    Banned { a: ActivityId, who: ParticipantId },
    Post { a: ActivityId, g: Grants, topic: ActivityId, text: String },
    Organise { a: ActivityId, g: Grants, s: Box<crate::consult::SessionSettings>, notes: Vec<OrganiserNote> },
    Consensus { a: ActivityId, g: Grants, req: Box<ConsensusRequest> },
}

impl RelayMsg {
    fn activity(&self) -> &ActivityId {
        match self {
            RelayMsg::Join { a, .. }
            | RelayMsg::Leave { a, .. }
            | RelayMsg::Command { a, .. }
            | RelayMsg::State { a, .. }
            | RelayMsg::Banned { a, .. }
            | RelayMsg::Post { a, .. }
            | RelayMsg::Organise { a, .. }
            | RelayMsg::Consensus { a, .. } => a,
        }
    }
}

/// The home node's answer to a relayed request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "r", content = "v", rename_all = "snake_case")]
enum RelayReply {
    Reply(Result<Reply, WireError>),
    State(Result<Snapshot, WireError>),
    Banned(Result<bool, WireError>),
    Post(PostAnswer),
    Organised(Result<Vec<String>, WireError>),
    Consensus(Result<ConsensusAnswer, WireError>),
    /// The receiver is not the activity's home (as it sees the cluster): the named node is.
    NotHome(NodeId),
}

/// An event of a home node's driver, for the other nodes' connections.
#[derive(Debug, Serialize, Deserialize)]
struct EventWire {
    /// The publishing node (it has delivered the event to its own connections already).
    origin: NodeId,
    to: Audience,
    event: ConsultEvent,
}

/// A `consensus` event of a home node's driver (polls, statements, groups), for the other
/// nodes' connections; on its own subject prefix so the moderation events' wire is unchanged.
#[derive(Debug, Serialize, Deserialize)]
struct ConsensusEventWire {
    origin: NodeId,
    to: Audience,
    event: serde_json::Value,
}

/// What the event relay publishes.
enum Outgoing {
    Consult(ConsultEvent),
    Consensus(serde_json::Value),
}

/// The NATS subject a node receives relayed moderation on: a hash of its URL (URLs contain
/// characters subjects may not).
fn relay_subject(node: &NodeId) -> String {
    let d = Sha256::digest(node.as_str().as_bytes());
    format!("{RELAY_PREFIX}{}", hex::encode(&d[..8]))
}

fn moving() -> WireError {
    (
        ErrorCode::Unavailable,
        "the activity's moderation is moving to another node; retry".into(),
    )
}

fn unreachable_home(e: impl std::fmt::Display) -> WireError {
    (
        ErrorCode::Unavailable,
        format!("the activity's home node cannot be reached ({e}); retry"),
    )
}

/// Starts the router of `activity` on this node; the returned sender takes the place of a
/// driver's.
pub(super) fn spawn_router(
    drivers: Arc<dyn LocalDrivers>,
    cluster: Arc<Cluster>,
    control: &tokio::runtime::Handle,
    activity: ActivityId,
) -> mpsc::Sender<DriverMsg> {
    let (tx, mut rx) = mpsc::channel(ROUTER_QUEUE);
    control.spawn(async move {
        // This node's connections of the activity, to announce again to a new home.
        let mut present: HashMap<ParticipantId, (Grants, u32)> = HashMap::new();
        let mut last_home: Option<NodeId> = None;
        let mut check = tokio::time::interval(HOME_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let msg = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => Some(m),
                    None => break,
                },
                _ = check.tick() => None,
            };
            let home = cluster.home(&activity);
            if last_home.as_ref().is_some_and(|h| *h != home) {
                // The home moved: its successor starts with nobody connected.
                tracing::info!(%activity, %home, n = present.len(), "activity moved; announcing this node's connections");
                for (g, n) in present.values() {
                    for _ in 0..*n {
                        send(drivers.as_ref(), &cluster, &home, &activity, DriverMsg::Join(g.clone())).await;
                    }
                }
            }
            last_home = Some(home.clone());
            let Some(msg) = msg else { continue };
            match &msg {
                DriverMsg::Join(g) => present.entry(g.subject.clone()).or_insert_with(|| (g.clone(), 0)).1 += 1,
                DriverMsg::Leave(who) => {
                    if let Some((_, n)) = present.get_mut(who) {
                        *n -= 1;
                        if *n == 0 {
                            present.remove(who);
                        }
                    }
                }
                _ => {}
            }
            send(drivers.as_ref(), &cluster, &home, &activity, msg).await;
        }
    });
    tx
}

/// Hands one driver message to the driver on `home`: this node's own, or over NATS.
async fn send(drivers: &dyn LocalDrivers, cluster: &Arc<Cluster>, home: &NodeId, activity: &ActivityId, msg: DriverMsg) {
    if home == cluster.me() {
        // No driver (the activity is gone, or another node holds its fence): the reply senders
        // drop, callers see "unavailable".
        let driver = drivers.local(activity);
        if let Some(driver) = driver {
            let _ = driver.send(msg).await;
        }
    } else {
        relay(cluster, home, activity, msg).await;
    }
}

/// Sends one driver message to the home node `home`.
async fn relay(cluster: &Arc<Cluster>, home: &NodeId, activity: &ActivityId, msg: DriverMsg) {
    let subject = relay_subject(home);
    let a = activity.clone();
    let (wire, answer): (RelayMsg, Option<Answer>) = match msg {
        DriverMsg::Join(g) => (RelayMsg::Join { a, g }, None),
        DriverMsg::Leave(who) => (RelayMsg::Leave { a, who }, None),
        DriverMsg::Command { grants, from, cmd, reply } => {
            (RelayMsg::Command { a, g: grants, from, cmd }, Some(Answer::Reply(reply)))
        }
        DriverMsg::State { grants, reply } => {
            (RelayMsg::State { a, g: grants }, Some(Answer::State(reply)))
        }
        DriverMsg::Banned { who, reply } => (RelayMsg::Banned { a, who }, Some(Answer::Banned(reply))),
        DriverMsg::Post { grants, topic, text, reply } => {
            (RelayMsg::Post { a, g: grants, topic, text }, Some(Answer::Post(reply)))
        }
        DriverMsg::Organise { grants, settings, notes, reply } => {
            (RelayMsg::Organise { a, g: grants, s: settings, notes }, Some(Answer::Organised(reply)))
        }
        // Each node stops its own drivers; another node's is not ours to stop.
        DriverMsg::Shutdown { done } => {
            drop(done);
            return;
        }
        DriverMsg::Consensus { grants, req, reply } => {
            (RelayMsg::Consensus { a, g: grants, req }, Some(Answer::Consensus(reply)))
        }
    };
    // While NATS is down nothing reaches the home: answer at once rather than let messages
    // queue in the client (and sessions wait behind a full router). Joins and leaves of this
    // node made during the outage are lost to the home's attendance.
    if !cluster.nats_up() {
        metrics::counter!("shangliang_consult_relay_dropped_total").increment(1);
        if let Some(answer) = answer {
            answer.send(Err(unreachable_home("NATS is not connected")));
        }
        return;
    }
    let payload: bytes::Bytes = serde_json::to_vec(&wire).expect("relay messages serialize").into();
    let nats = cluster.nats().clone();
    let Some(answer) = answer else {
        // Fire and forget, but in order: awaited here, before the router takes the next one.
        if tokio::time::timeout(RELAY_TIMEOUT, nats.publish(subject, payload)).await.is_err() {
            metrics::counter!("shangliang_consult_relay_dropped_total").increment(1);
        }
        return;
    };
    metrics::counter!("shangliang_consult_relayed_total").increment(1);
    // Requests run concurrently (a slow answer must not hold up the activity's other traffic).
    tokio::spawn(async move {
        let res = tokio::time::timeout(RELAY_TIMEOUT, nats.request(subject, payload)).await;
        let reply = match res {
            Err(_) => Err(unreachable_home("no answer in time")),
            Ok(Err(e)) => Err(unreachable_home(e)),
            Ok(Ok(m)) => serde_json::from_slice::<RelayReply>(&m.payload)
                .map_err(|e| unreachable_home(format!("undecodable answer: {e}"))),
        };
        answer.send(reply);
    });
}

/// Where a relayed request's answer goes.
enum Answer {
    Reply(oneshot::Sender<Result<Reply, WireError>>),
    State(oneshot::Sender<Result<Snapshot, WireError>>),
    Banned(oneshot::Sender<Result<bool, WireError>>),
    Post(PostReply),
    Organised(OrganiseReply),
    Consensus(ConsensusReply),
}

impl Answer {
    fn send(self, r: Result<RelayReply, WireError>) {
        if matches!(r, Ok(RelayReply::NotHome(_))) {
            metrics::counter!("shangliang_consult_relay_not_home_total").increment(1);
        }
        match self {
            Answer::Reply(tx) => {
                let _ = tx.send(match r {
                    Ok(RelayReply::Reply(x)) => x,
                    Ok(_) => Err(moving()),
                    Err(e) => Err(e),
                });
            }
            Answer::State(tx) => {
                let _ = tx.send(match r {
                    Ok(RelayReply::State(x)) => x,
                    Ok(_) => Err(moving()),
                    Err(e) => Err(e),
                });
            }
            Answer::Banned(tx) => {
                let _ = tx.send(match r {
                    Ok(RelayReply::Banned(x)) => x,
                    Ok(_) => Err(moving()),
                    Err(e) => Err(e),
                });
            }
            Answer::Organised(tx) => {
                let _ = tx.send(match r {
                    Ok(RelayReply::Organised(x)) => x,
                    Ok(_) => Err(moving()),
                    Err(e) => Err(e),
                });
            }
            Answer::Post(reply) => reply.send(match r {
                Ok(RelayReply::Post(x)) => x,
                Ok(_) => Err(moving()),
                Err(e) => Err(e),
            }),
            Answer::Consensus(tx) => {
                let _ = tx.send(match r {
                    Ok(RelayReply::Consensus(x)) => x,
                    Ok(_) => Err(moving()),
                    Err(e) => Err(e),
                });
            }
        }
    }
}

/// Subscribes this node to relayed moderation (for the activities it is home to) and to the
/// other homes' events, then serves both on `control` and stops local drivers whose activity
/// moved away, for as long as the control runtime runs.
pub async fn start(
    cluster: Arc<Cluster>,
    drivers: Arc<dyn LocalDrivers>,
    outlets: Outlets,
    control: &tokio::runtime::Handle,
) -> Result<(), async_nats::SubscribeError> {
    let nats = cluster.nats().clone();
    let me = cluster.me().clone();
    let mut requests = nats.subscribe(relay_subject(&me)).await?;
    let mut events = nats.subscribe(format!("{EVENTS_PREFIX}>")).await?;
    let mut consensus_events = nats.subscribe(format!("{CONSENSUS_EVENTS_PREFIX}>")).await?;
    // Make sure the server has the subscriptions before anyone is told this node is up.
    let _ = tokio::time::timeout(RELAY_TIMEOUT, nats.flush()).await;
    control.spawn(async move {
        let mut check = tokio::time::interval(HOME_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                m = requests.next() => {
                    let Some(m) = m else { break };
                    handle_request(drivers.as_ref(), &cluster, m).await;
                }
                m = events.next() => {
                    let Some(m) = m else { break };
                    handle_event(&outlets, &me, m);
                }
                m = consensus_events.next() => {
                    let Some(m) = m else { break };
                    handle_consensus_event(&outlets, &me, m);
                }
                _ = check.tick() => {
                    drivers.retain(&|a| cluster.home(a) == me);
                }
            }
        }
    });
    Ok(())
}

async fn handle_request(drivers: &dyn LocalDrivers, cluster: &Arc<Cluster>, m: async_nats::Message) {
    let msg: RelayMsg = match serde_json::from_slice(&m.payload) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!("undecodable relayed moderation message: {e}");
            return;
        }
    };
    let nats = cluster.nats().clone();
    let respond = move |r: RelayReply| {
        let nats = nats.clone();
        let to = m.reply.clone();
        async move {
            if let Some(to) = to {
                let body = serde_json::to_vec(&r).expect("relay replies serialize");
                let _ = nats.publish(to, body.into()).await;
            }
        }
    };
    let home = cluster.home(msg.activity());
    let driver = if home == *cluster.me() {
        drivers.local(msg.activity())
    } else {
        None
    };
    let Some(driver) = driver else {
        tracing::debug!(activity = %msg.activity(), %home, "relayed moderation for an activity homed elsewhere");
        respond(RelayReply::NotHome(home)).await;
        return;
    };
    match msg {
        RelayMsg::Join { g, .. } => {
            let _ = driver.send(DriverMsg::Join(g)).await;
        }
        RelayMsg::Leave { who, .. } => {
            let _ = driver.send(DriverMsg::Leave(who)).await;
        }
        RelayMsg::Command { g, from, cmd, .. } => {
            let (reply, rx) = oneshot::channel();
            let _ = driver.send(DriverMsg::Command { grants: g, from, cmd, reply }).await;
            tokio::spawn(async move {
                respond(RelayReply::Reply(rx.await.unwrap_or_else(|_| Err(moving())))).await;
            });
        }
        RelayMsg::State { g, .. } => {
            let (reply, rx) = oneshot::channel();
            let _ = driver.send(DriverMsg::State { grants: g, reply }).await;
            tokio::spawn(async move {
                respond(RelayReply::State(rx.await.unwrap_or_else(|_| Err(moving())))).await;
            });
        }
        RelayMsg::Banned { who, .. } => {
            let (reply, rx) = oneshot::channel();
            let _ = driver.send(DriverMsg::Banned { who, reply }).await;
            tokio::spawn(async move {
                respond(RelayReply::Banned(rx.await.unwrap_or_else(|_| Err(moving())))).await;
            });
        }
        RelayMsg::Organise { g, s, notes, .. } => {
            let (reply, rx) = oneshot::channel();
            let _ = driver.send(DriverMsg::Organise { grants: g, settings: s, notes, reply }).await;
            tokio::spawn(async move {
                respond(RelayReply::Organised(rx.await.unwrap_or_else(|_| Err(moving())))).await;
            });
        }
        RelayMsg::Consensus { g, req, .. } => {
            let (reply, rx) = oneshot::channel();
            let _ = driver.send(DriverMsg::Consensus { grants: g, req, reply }).await;
            tokio::spawn(async move {
                respond(RelayReply::Consensus(rx.await.unwrap_or_else(|_| Err(moving())))).await;
            });
        }
        RelayMsg::Post { g, topic, text, .. } => {
            // Answered by the record's writer once the comment is durable (or by the driver
            // if it refuses it): the one round trip of a relayed post.
            let (reply, rx) = oneshot::channel();
            let _ = driver
                .send(DriverMsg::Post { grants: g, topic, text, reply: PostReply::relay(reply) })
                .await;
            tokio::spawn(async move {
                respond(RelayReply::Post(rx.await.unwrap_or_else(|_| Err(moving())))).await;
            });
        }
    }
}

fn handle_event(outlets: &Outlets, me: &NodeId, m: async_nats::Message) {
    let Some(activity) = m
        .subject
        .strip_prefix(EVENTS_PREFIX)
        .and_then(|a| ActivityId::new(a).ok())
    else {
        return;
    };
    match serde_json::from_slice::<EventWire>(&m.payload) {
        Ok(w) if w.origin == *me => {}
        Ok(w) => outlets.deliver(&activity, w.to, w.event),
        Err(e) => tracing::warn!(subject = %m.subject, "undecodable relayed event: {e}"),
    }
}

fn handle_consensus_event(outlets: &Outlets, me: &NodeId, m: async_nats::Message) {
    let Some(activity) = m
        .subject
        .strip_prefix(CONSENSUS_EVENTS_PREFIX)
        .and_then(|a| ActivityId::new(a).ok())
    else {
        return;
    };
    match serde_json::from_slice::<ConsensusEventWire>(&m.payload) {
        Ok(w) if w.origin == *me => {}
        Ok(w) => outlets.deliver_consensus(&activity, w.to, w.event),
        Err(e) => tracing::warn!(subject = %m.subject, "undecodable relayed consensus event: {e}"),
    }
}

/// Publishes a home driver's events to the other nodes, in the order they were made
/// (moderation and consensus events through one queue).
#[derive(Clone)]
pub(super) struct EventRelay {
    tx: mpsc::UnboundedSender<(ActivityId, Audience, Outgoing)>,
}

impl EventRelay {
    /// Starts the publishing task.
    pub(super) fn spawn(cluster: Arc<Cluster>, control: &tokio::runtime::Handle) -> EventRelay {
        let (tx, mut rx) = mpsc::unbounded_channel::<(ActivityId, Audience, Outgoing)>();
        control.spawn(async move {
            let origin = cluster.me().clone();
            while let Some((activity, to, event)) = rx.recv().await {
                let origin = origin.clone();
                let (body, subject) = match event {
                    Outgoing::Consult(event) => (
                        serde_json::to_vec(&EventWire { origin, to, event }),
                        format!("{EVENTS_PREFIX}{activity}"),
                    ),
                    Outgoing::Consensus(event) => (
                        serde_json::to_vec(&ConsensusEventWire { origin, to, event }),
                        format!("{CONSENSUS_EVENTS_PREFIX}{activity}"),
                    ),
                };
                let body = body.expect("events serialize");
                if tokio::time::timeout(RELAY_TIMEOUT, cluster.nats().publish(subject, body.into()))
                    .await
                    .is_err()
                {
                    metrics::counter!("shangliang_consult_events_dropped_total").increment(1);
                }
            }
        });
        EventRelay { tx }
    }

    /// Queues one event for the other nodes.
    pub(super) fn send(&self, activity: &ActivityId, to: Audience, event: ConsultEvent) {
        let _ = self.tx.send((activity.clone(), to, Outgoing::Consult(event)));
    }

    /// Queues one `consensus` event (already JSON) for the other nodes.
    pub(super) fn send_consensus(&self, activity: &ActivityId, to: Audience, event: serde_json::Value) {
        let _ = self.tx.send((activity.clone(), to, Outgoing::Consensus(event)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shangliang_signaling::Seq;

    #[test]
    fn relay_subjects_are_valid_nats_tokens_and_differ_per_node() {
        let a = relay_subject(&NodeId::new("http://127.0.0.1:8081"));
        let b = relay_subject(&NodeId::new("http://127.0.0.1:8082"));
        assert_ne!(a, b);
        let token = a.strip_prefix(RELAY_PREFIX).unwrap();
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    }

    #[test]
    fn a_relayed_command_survives_the_json_round_trip() {
        let g = Grants {
            subject: ParticipantId::new("m1"),
            name: "委员一".into(),
            role: shangliang_signaling::Role::Moderator,
            org: None,
            verified: true,
            activity: ActivityId::new("demo").unwrap(),
        };
        let msg = RelayMsg::Command {
            a: ActivityId::new("demo").unwrap(),
            g,
            from: Some(crate::consult::votes::NetBlock::of([203, 0, 113, 9].into())),
            cmd: Command::LowerHand { target: Some(ParticipantId::new("x")) },
        };
        let back: RelayMsg = serde_json::from_str(&serde_json::to_string(&msg).unwrap()).unwrap();
        assert!(matches!(back, RelayMsg::Command { cmd: Command::LowerHand { target: Some(_) }, .. }));
        assert!(matches!(back, RelayMsg::Command { from: Some(b), .. } if b.to_string() == "203.0.113.0/24"), "the vote's address block crosses the relay");
        let r = RelayReply::Post(Ok(super::super::msg::Acked { seq: Seq(7), held: true }));
        let back: RelayReply = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert!(matches!(back, RelayReply::Post(Ok(a)) if a.seq == Seq(7) && a.held));
    }

    #[test]
    fn a_relayed_consensus_request_and_its_answer_survive_the_json_round_trip() {
        let g = Grants {
            subject: ParticipantId::new("v1"),
            name: "观众".into(),
            role: shangliang_signaling::Role::Viewer,
            org: None,
            verified: false,
            activity: ActivityId::new("demo").unwrap(),
        };
        let req: ConsensusRequest = serde_json::from_value(serde_json::json!({"c": "statement_next", "n": 3})).unwrap();
        let msg = RelayMsg::Consensus { a: ActivityId::new("demo").unwrap(), g, req: Box::new(req.clone()) };
        let back: RelayMsg = serde_json::from_str(&serde_json::to_string(&msg).unwrap()).unwrap();
        assert!(matches!(back, RelayMsg::Consensus { req: r, .. } if *r == req));
        let r = RelayReply::Consensus(Err((ErrorCode::AlreadyAnswered, "once".into())));
        let back: RelayReply = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert!(matches!(back, RelayReply::Consensus(Err((ErrorCode::AlreadyAnswered, _)))));
        let w = ConsensusEventWire { origin: NodeId::new("http://a"), to: Audience::Everyone, event: serde_json::json!({"k": "poll_tally"}) };
        let back: ConsensusEventWire = serde_json::from_slice(&serde_json::to_vec(&w).unwrap()).unwrap();
        assert_eq!(back.event["k"], "poll_tally");
    }
}
