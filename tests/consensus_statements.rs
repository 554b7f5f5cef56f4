//! Statements and opinion groups over the real websocket: a moderator promotes a comment and a
//! question into statements and writes others; many viewers, in planted opinion groups, ask
//! `statement_next` what to vote on and vote; the hub publishes the groups and the consensus
//! list every few hundred milliseconds (as configured), and the planted consensus is in it.

mod common;

use common::{Client, TestHub, WAIT, ask as ask_question, demo};
use serde_json::{Value, json};
use shangliang::consensus::ConsensusEvent;
use shangliang_signaling::{ClientMsg, ErrorCode, Role, ServerMsg};

static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1_000);

/// Sends a `consensus` request and waits for its answer, skipping everything else.
async fn req(c: &mut Client, req: Value) -> Result<Value, ErrorCode> {
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    c.send(&ClientMsg::Consensus { id, topic: demo(), req }).await;
    loop {
        match c.recv().await {
            ServerMsg::ConsensusReply { id: i, reply } if i == id => return Ok(reply),
            ServerMsg::Error { id: Some(i), code, .. } if i == id => return Err(code),
            _ => {}
        }
    }
}

fn statement(reply: Result<Value, ErrorCode>) -> u64 {
    let reply = reply.expect("statement made");
    assert_eq!(reply["r"], "statement_created", "{reply}");
    reply["statement"].as_u64().unwrap()
}

/// Waits for a `consensus` event that `pick` accepts.
async fn consensus_event<T>(c: &mut Client, mut pick: impl FnMut(&ConsensusEvent) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.try_recv(left).await {
            Some(Ok(ServerMsg::Consensus { event, .. })) => {
                if let Some(t) = pick(&serde_json::from_value(event).expect("a consensus event")) {
                    return t;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("connection ended: {e:?}"),
            None => panic!("no such consensus event within {WAIT:?}"),
        }
    }
}

/// Stances of three planted groups on 12 statements: 0 and 1 every group agrees with, 2 every
/// group rejects, 3..12 split the groups.
fn stance(group: usize, s: usize) -> bool {
    match s {
        0 | 1 => true,
        2 => false,
        _ => [[true, false, false], [false, true, false], [false, false, true], [true, true, false], [false, true, true]][(s - 3) % 5][group],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_opinion_groups_voting_over_the_websocket_publish_their_consensus_statement() {
    const PER_GROUP: usize = 20;
    const STATEMENTS: usize = 12;
    let hub = TestHub::start(|cfg| {
        cfg.consensus.recompute_interval_ms = 300;
    })
    .await;
    let mut m = hub.client(Role::Moderator, "主持").await;
    assert!(matches!(m.sub(&demo(), None).await, ServerMsg::Subscribed { .. }));
    let mut member = hub.client(Role::Member, "委员").await;
    let seq = member.post_ok(&demo(), "公交应该延长夜间运营时间").await;
    let question = ask_question(&mut member, "学校周边能否增加过街天桥？").await;

    // Statement 1 is the comment (its text by default), 2 the question (shortened), the rest written.
    let mut ids = vec![statement(req(&mut m, json!({"c": "statement_promote", "seq": seq.0})).await)];
    ids.push(statement(req(&mut m, json!({"c": "statement_promote", "question": question.0, "text": "学校周边应增加过街天桥"})).await));
    for s in 2..STATEMENTS {
        ids.push(statement(req(&mut m, json!({"c": "statement_create", "text": format!("第{s}条主张")})).await));
    }
    assert_eq!(req(&mut m, json!({"c": "statement_promote", "seq": seq.0})).await, Err(ErrorCode::AlreadyPromoted));
    assert_eq!(req(&mut m, json!({"c": "statement_promote", "seq": 9_999})).await, Err(ErrorCode::NoSuchComment));
    assert_eq!(req(&mut member, json!({"c": "statement_create", "text": "我也想写"})).await, Err(ErrorCode::Forbidden));

    // An observer sees what everyone sees.
    let mut observer = hub.client(Role::Viewer, "旁观").await;
    assert!(matches!(observer.sub(&demo(), None).await, ServerMsg::Subscribed { .. }));
    let state = req(&mut observer, json!({"c": "state"})).await.unwrap();
    assert_eq!(state["statements"].as_array().unwrap().len(), STATEMENTS);
    assert_eq!((&state["statements"][0]["source"]["from"], &state["statements"][0]["source"]["seq"]), (&json!("comment"), &json!(seq.0)), "{state}");

    let mut tasks = Vec::new();
    for g in 0..3 {
        for i in 0..PER_GROUP {
            let mut v = hub.client(Role::Viewer, &format!("g{g}-{i}")).await;
            let ids = ids.clone();
            tasks.push(tokio::spawn(async move {
                let mut voted = Vec::new();
                // Routing: ask what to vote on until nothing is left (bounded).
                for _ in 0..STATEMENTS + 2 {
                    let next = req(&mut v, json!({"c": "statement_next", "n": 3})).await.unwrap();
                    assert_eq!(next["r"], "next");
                    let next: Vec<u64> = next["statements"].as_array().unwrap().iter().map(|s| s["id"].as_u64().unwrap()).collect();
                    if next.is_empty() {
                        break;
                    }
                    for id in next {
                        assert!(!voted.contains(&id), "statement {id} routed again after a vote");
                        let s = ids.iter().position(|x| *x == id).unwrap();
                        // A little noise: one identity in seven passes on one split statement.
                        let vote = if s >= 3 && (i + s) % 7 == 0 { "pass" } else if stance(g, s) { "agree" } else { "disagree" };
                        let r = req(&mut v, json!({"c": "statement_vote", "statement": id, "vote": vote})).await.unwrap();
                        assert_eq!(r, json!({"r": "voted", "outcome": "new"}));
                        voted.push(id);
                    }
                }
                assert_eq!(voted.len(), STATEMENTS, "routing offered every statement once");
                v
            }));
        }
    }
    let mut viewers = Vec::new();
    for t in tasks {
        viewers.push(t.await.unwrap());
    }

    // The published map lists the planted consensus statements (the promoted comment and
    // question among them) and, in time, three groups.
    let planted = [ids[0], ids[1]];
    // The first map that counts every voter (an earlier one may come from mid-voting).
    let map = consensus_event(&mut observer, |e| match e {
        ConsensusEvent::GroupMap { map } if map.counted as usize == 3 * PER_GROUP => Some(map.clone()),
        _ => None,
    })
    .await;
    for p in planted {
        assert!(map.consensus.iter().any(|(s, _)| u64::from(s.0) == p), "planted consensus {p} missing: {:?}", map.consensus);
    }
    for (s, _) in &map.consensus {
        assert!(planted.contains(&u64::from(s.0)), "statement {s} is no planted consensus");
    }
    // The console shows the rejected one as consensus against and the splits as divisive.
    let console = consensus_event(&mut m, |e| match e {
        ConsensusEvent::GroupConsole { summary } if summary.groups.len() >= 2 && !summary.divisive.is_empty() => Some(summary.clone()),
        _ => None,
    })
    .await;
    assert!(console.consensus_against.iter().any(|b| u64::from(b.statement.0) == ids[2]), "{:?}", console.consensus_against);
    for d in &console.divisive {
        assert!(!planted.contains(&u64::from(d.statement.0)) && u64::from(d.statement.0) != ids[2], "{d:?}");
    }
    // Where a viewer stands, and nothing left to route once all is voted.
    let next = req(&mut viewers[0], json!({"c": "statement_next"})).await.unwrap();
    assert_eq!(next["statements"], json!([]));
    assert_eq!(next["you"]["counted"], true, "{next}");

    // A withdrawn statement takes no more votes; a changed vote is one vote.
    req(&mut m, json!({"c": "statement_withdraw", "statement": ids[11]})).await.unwrap();
    assert_eq!(req(&mut viewers[1], json!({"c": "statement_vote", "statement": ids[11], "vote": "agree"})).await, Err(ErrorCode::NoSuchStatement));
    let changed = req(&mut viewers[1], json!({"c": "statement_vote", "statement": ids[3], "vote": "pass"})).await.unwrap();
    assert_eq!(changed["outcome"]["changed"]["from"], "agree", "{changed}");
}
