//! Cluster mode: several hub processes sharing one `nats-server` and one PostgreSQL, all started
//! here as local processes on loopback ports and stopped when the test ends.
//!
//! Needs Debian's `nats-server` and `postgresql` packages (`.ci/run` installs them). As root,
//! PostgreSQL runs as the `postgres` system user (initdb refuses root).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::services::{Nats, Postgres, free_port};
use common::{Client, demo};
use shangliang::server::auth::{Claims, TokenKeys, now_secs};
use shangliang_signaling::{Form, ItemBody, Position, Role, Seq, ServerMsg};

const BIN: &str = env!("CARGO_BIN_EXE_shangliang");
/// The token secret every node of a test cluster shares.
const SECRET: &str = "5c1d0e8f2a4b6c8d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f";

/// Cluster tests start several processes each: run them one at a time on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One hub process in cluster mode.
struct Node {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Node {
    async fn start(root: &Path, name: &str, nats: &Nats, pg: &Postgres) -> Node {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secret.key"), SECRET).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("hub.log")).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--comments-per-minute",
                "100000",
                "--frames-per-second",
                "10000",
            ])
            .args(["--nats", &nats.url(), "--database", &pg.url()])
            .arg("--data-dir")
            .arg(&dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn hub");
        let node = Node { port, dir, child };
        node.wait_healthy().await;
        node
    }

    async fn health(&self) -> Option<(u16, serde_json::Value)> {
        let r = reqwest::get(format!("http://127.0.0.1:{}/healthz", self.port))
            .await
            .ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().await.ok()?))
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, _)) = self.health().await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "hub on port {} did not become healthy; its log:\n{}",
                self.port,
                std::fs::read_to_string(self.dir.join("hub.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// The node's public URL (the default: http://<listen>).
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn client(&self, role: Role, name: &str) -> Client {
        let mut c = Client::connect(&self.url(), Form::MsgPack).await;
        c.auth(&token(role, name)).await;
        c
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token(role: Role, name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.key"), SECRET).unwrap();
    let keys = TokenKeys::load_or_create(dir.path()).unwrap();
    let now = now_secs();
    keys.mint(&Claims {
        sub: format!("{}:{name}", role.as_str()).into(),
        name: name.into(),
        role,
        act: demo(),
        org: None,
        verified: false,
        iat: now,
        exp: now + 3600,
    })
}

/// Posts; `None` if the connection ended before the answer.
async fn try_post(c: &mut Client, id: u32, text: &str) -> Option<ServerMsg> {
    use futures_util::SinkExt;
    let msg = shangliang_signaling::ClientMsg::Post {
        id,
        topic: demo(),
        text: text.into(),
    };
    let frame = shangliang_signaling::encode_client(Form::MsgPack, &msg);
    c.ws.send(tokio_tungstenite::tungstenite::Message::Binary(frame))
        .await
        .ok()?;
    loop {
        match c.try_recv(Duration::from_secs(10)).await? {
            Ok(m @ (ServerMsg::Ack { id: i, .. } | ServerMsg::Error { id: Some(i), .. }))
                if i == id =>
            {
                return Some(m);
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

fn comment_text(item: &shangliang_signaling::Item) -> Option<String> {
    match &item.body {
        ItemBody::Comment { text, .. } => Some(text.clone()),
        _ => None,
    }
}

async fn subscribed(
    c: &mut Client,
    resume: Option<Position>,
) -> (shangliang_signaling::Epoch, Seq) {
    match c.sub(&demo(), resume).await {
        ServerMsg::Subscribed { epoch, offset, .. } => (epoch, offset),
        other => panic!("subscription refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_cross_nodes_with_identical_sequence_numbers() {
    let _serial = SERIAL.lock().await;
    let (nats, pg) = (Nats::start().await, Postgres::start().await);
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(root.path(), "a", &nats, &pg).await;
    let b = Node::start(root.path(), "b", &nats, &pg).await;

    let mut viewer_a = a.client(Role::Viewer, "va").await;
    let mut viewer_b = b.client(Role::Viewer, "vb").await;
    let (epoch_a, start_a) = subscribed(&mut viewer_a, None).await;
    let (epoch_b, start_b) = subscribed(&mut viewer_b, None).await;
    assert_eq!(
        epoch_a, epoch_b,
        "both nodes must show the activity's one epoch"
    );
    assert_eq!((start_a, start_b), (Seq(0), Seq(0)));

    // Two posters on two nodes, concurrently.
    let mut posters = Vec::new();
    for (node, name) in [(&a, "pa"), (&b, "pb")] {
        let mut p = node.client(Role::Member, name).await;
        posters.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..20 {
                let text = format!("{name}-{i}");
                acked.push((p.post_ok(&demo(), &text).await, text));
            }
            acked
        }));
    }
    let mut acked: Vec<(Seq, String)> = Vec::new();
    for p in posters {
        acked.extend(p.await.unwrap());
    }
    acked.sort();
    let seqs: Vec<u64> = acked.iter().map(|(s, _)| s.0).collect();
    assert_eq!(
        seqs,
        (1..=40).collect::<Vec<_>>(),
        "one dense order across both nodes"
    );

    let seen_a = viewer_a.collect(Seq(0), 40).await;
    let seen_b = viewer_b.collect(Seq(0), 40).await;
    assert_eq!(
        seen_a, acked,
        "node a's viewer sees every comment at its acknowledged seq"
    );
    assert_eq!(seen_b, acked, "node b's viewer sees the same sequence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_resumes_on_another_node() {
    let _serial = SERIAL.lock().await;
    let (nats, pg) = (Nats::start().await, Postgres::start().await);
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(root.path(), "a", &nats, &pg).await;
    let b = Node::start(root.path(), "b", &nats, &pg).await;

    let mut poster = a.client(Role::Member, "p").await;
    let mut viewer = a.client(Role::Viewer, "v").await;
    let (epoch, _) = subscribed(&mut viewer, None).await;
    for i in 1..=10 {
        poster.post_ok(&demo(), &format!("c{i}")).await;
    }
    let seen = viewer.collect(Seq(0), 10).await;
    assert_eq!(seen.last().unwrap().0, Seq(10));
    drop(viewer); // node a's viewer goes away ...

    let mut poster_b = b.client(Role::Member, "pb").await;
    for i in 11..=20 {
        poster_b.post_ok(&demo(), &format!("c{i}")).await;
    }
    // ... and comes back on node b: its ring has what it missed.
    let mut viewer = b.client(Role::Viewer, "v").await;
    let (e, offset) = subscribed(
        &mut viewer,
        Some(Position {
            epoch,
            offset: Seq(10),
        }),
    )
    .await;
    assert_eq!(
        (e, offset),
        (epoch, Seq(10)),
        "resume honoured on another node"
    );
    let missed = viewer.collect(Seq(10), 10).await;
    let want: Vec<(Seq, String)> = (11..=20).map(|i| (Seq(i), format!("c{i}"))).collect();
    assert_eq!(missed, want);

    // A node started after the posts has none of them in memory: PostgreSQL serves them.
    let c = Node::start(root.path(), "c", &nats, &pg).await;
    let mut viewer = c.client(Role::Viewer, "v").await;
    let (e, offset) = subscribed(
        &mut viewer,
        Some(Position {
            epoch,
            offset: Seq(5),
        }),
    )
    .await;
    assert_eq!((e, offset), (epoch, Seq(5)));
    let missed = viewer.collect(Seq(5), 15).await;
    let want: Vec<(Seq, String)> = (6..=20).map(|i| (Seq(i), format!("c{i}"))).collect();
    assert_eq!(missed, want);
    // And it is live from there.
    poster.post_ok(&demo(), "c21").await;
    assert_eq!(
        viewer.collect(Seq(20), 1).await,
        vec![(Seq(21), "c21".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_loses_no_acknowledged_comment() {
    let _serial = SERIAL.lock().await;
    let (nats, pg) = (Nats::start().await, Postgres::start().await);
    let root = tempfile::tempdir().unwrap();
    let mut a = Node::start(root.path(), "a", &nats, &pg).await;
    let b = Node::start(root.path(), "b", &nats, &pg).await;

    let mut posters = Vec::new();
    for p in 0..4 {
        let mut c = a.client(Role::Member, &format!("p{p}")).await;
        posters.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 1.. {
                let text = format!("p{p}-{i}");
                match try_post(&mut c, i, &text).await {
                    Some(ServerMsg::Ack { seq, .. }) => acked.push((seq, text)),
                    Some(other) => panic!("post refused: {other:?}"),
                    None => break, // the node died
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    let mut acked = BTreeMap::new();
    for p in posters {
        acked.extend(p.await.unwrap());
    }
    assert!(
        acked.len() >= 10,
        "too few posts acknowledged before the kill: {}",
        acked.len()
    );

    // Everything acknowledged is on node b, at the acknowledged seq.
    let mut viewer = b.client(Role::Viewer, "v").await;
    let (epoch, _) = subscribed(&mut viewer, None).await;
    viewer
        .send(&shangliang_signaling::ClientMsg::Unsub { topic: demo() })
        .await;
    let (_, _) = subscribed(
        &mut viewer,
        Some(Position {
            epoch,
            offset: Seq(0),
        }),
    )
    .await;
    let last = *acked.keys().last().unwrap();
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.keys().last().is_none_or(|s| *s < last) {
        assert!(
            Instant::now() < deadline,
            "node b did not show up to seq {last:?}"
        );
        match viewer.recv().await {
            ServerMsg::Batch { items, .. } => {
                for item in items {
                    if let Some(t) = comment_text(&item) {
                        seen.insert(item.seq, t);
                    }
                }
            }
            ServerMsg::Reset { .. } => panic!("resume from 0 must be honoured"),
            _ => {}
        }
    }
    for (seq, text) in &acked {
        assert_eq!(
            seen.get(seq),
            Some(text),
            "acknowledged comment {seq:?} lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_is_survived() {
    let _serial = SERIAL.lock().await;
    let (mut nats, pg) = (Nats::start().await, Postgres::start().await);
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(root.path(), "a", &nats, &pg).await;
    let b = Node::start(root.path(), "b", &nats, &pg).await;
    // Comments are decided (comment policy) on the activity's home node and sequenced by
    // PostgreSQL: during a NATS outage the home keeps accepting, the other node refuses with
    // a clear error rather than skip the policy.
    let home = home_of(&[&a, &b]);
    let other = if home.port == a.port { &b } else { &a };

    let mut poster = home.client(Role::Member, "p").await;
    let mut remote_poster = other.client(Role::Member, "q").await;
    let mut viewer = other.client(Role::Viewer, "v").await;
    subscribed(&mut viewer, None).await;
    for i in 1..=5 {
        poster.post_ok(&demo(), &format!("c{i}")).await;
    }
    assert_eq!(viewer.collect(Seq(0), 5).await.len(), 5);

    nats.stop();
    // The outage is reported ...
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((503, body)) = other.health().await {
            assert_ne!(body["nats"], "connected");
            assert_eq!(body["database"], "ok");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz did not report the NATS outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... posting on the home goes on (PostgreSQL sequences), and the other node's viewers get
    // the comments from PostgreSQL, in order, without a gap ...
    for i in 6..=10 {
        poster.post_ok(&demo(), &format!("c{i}")).await;
    }
    let during = viewer.collect(Seq(5), 5).await;
    assert_eq!(
        during,
        (6..=10)
            .map(|i| (Seq(i), format!("c{i}")))
            .collect::<Vec<_>>()
    );
    // ... and a poster on the other node is told to retry, at once.
    let asked = Instant::now();
    match remote_poster.post(&demo(), "during the outage").await {
        ServerMsg::Error { code, message, .. } => {
            assert_eq!(code, shangliang_signaling::ErrorCode::Unavailable, "{message}");
        }
        other => panic!("expected unavailable during the NATS outage, got {other:?}"),
    }
    assert!(asked.elapsed() < Duration::from_secs(1), "refused after {:?}", asked.elapsed());
    // A viewer connecting to the other node during the outage is served (its join cannot
    // reach the home, which must not hold up the session).
    let mut late = other.client(Role::Viewer, "outage viewer").await;
    let (_, offset) = subscribed(&mut late, None).await;
    assert_eq!(offset, Seq(10));

    nats.restart().await;
    a.wait_healthy().await;
    b.wait_healthy().await;
    for i in 11..=15 {
        poster.post_ok(&demo(), &format!("c{i}")).await;
    }
    let after = viewer.collect(Seq(10), 5).await;
    assert_eq!(
        after,
        (11..=15)
            .map(|i| (Seq(i), format!("c{i}")))
            .collect::<Vec<_>>()
    );
    // The other node posts again once NATS is back (the relay reconnects with it).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match remote_poster.post(&demo(), "after the outage").await {
            ServerMsg::Ack { seq, .. } => {
                assert_eq!(seq, Seq(16));
                break;
            }
            other => assert!(Instant::now() < deadline, "still refused: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_refuses_posts_then_recovers() {
    let _serial = SERIAL.lock().await;
    let nats = Nats::start().await;
    let mut pg = Postgres::start().await;
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(root.path(), "a", &nats, &pg).await;
    let mut poster = a.client(Role::Member, "p").await;
    let mut viewer = a.client(Role::Viewer, "v").await;
    subscribed(&mut viewer, None).await;
    poster.post_ok(&demo(), "before").await;

    // Stop PostgreSQL (fast shutdown keeps the data) and start it again on the same port.
    let _ = Command::new("kill")
        .args(["-INT", &pg.child.id().to_string()])
        .status();
    pg.child.wait().unwrap();
    match poster.post(&demo(), "during").await {
        ServerMsg::Error { code, .. } => {
            assert_eq!(code, shangliang_signaling::ErrorCode::Unavailable)
        }
        other => panic!("a post without the database must be refused, got {other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((503, body)) = a.health().await {
            assert_ne!(body["database"], "ok");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz did not report the database outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pg.restart().await;
    a.wait_healthy().await;
    let seq = poster.post_ok(&demo(), "after").await;
    assert_eq!(seq, Seq(2), "the refused post took no seq");
    assert_eq!(
        viewer.collect(Seq(0), 2).await,
        vec![(Seq(1), "before".to_owned()), (Seq(2), "after".to_owned())]
    );
}

/// The activity's home node among `nodes` (the rule every node applies to the alive ones).
fn home_of<'a>(nodes: &[&'a Node]) -> &'a Node {
    let urls: Vec<shangliang_signaling::NodeId> = nodes.iter().map(|n| n.base().into()).collect();
    let home = shangliang::bus::home_node(&demo(), &urls).unwrap().to_string();
    nodes.iter().find(|n| n.base() == home).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_is_one_state_across_nodes() {
    use common::{event, items_through, ok, sub_state};
    use shangliang_signaling::consult::{
        Command, ConsultEvent, GrantTarget, ParticipantId, PolicyChange, QuestionOp, Reply,
    };
    let _serial = SERIAL.lock().await;
    let (nats, pg) = (Nats::start().await, Postgres::start().await);
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(root.path(), "a", &nats, &pg).await;
    let b = Node::start(root.path(), "b", &nats, &pg).await;
    let c = Node::start(root.path(), "c", &nats, &pg).await;
    // Whichever node is home, the chair, the posters and the watchers are spread over all
    // three, so at least two of them talk to the home through the relay.
    let mut chair = a.client(Role::Moderator, "主持人").await;
    sub_state(&mut chair).await;
    ok(
        &mut chair,
        Command::SetCommentPolicy {
            change: PolicyChange::Review(true),
        },
    )
    .await;
    for node in [&a, &b, &c] {
        let mut v = node.client(Role::Viewer, "看一眼").await;
        let (_, state) = sub_state(&mut v).await;
        assert!(
            state.comment_modes.review,
            "node on port {} shows the review mode set through node a",
            node.port
        );
    }

    // A comment posted on b is held by the one policy and approved from a; c's viewer sees
    // only the approved copy.
    let mut watcher = c.client(Role::Viewer, "旁观").await;
    sub_state(&mut watcher).await;
    let mut poster = b.client(Role::Viewer, "网友").await;
    let seq = match poster.post(&demo(), "跨节点先审后发").await {
        ServerMsg::Ack { seq, held, .. } => {
            assert!(held, "held under the review mode set on another node");
            seq
        }
        other => panic!("{other:?}"),
    };
    match ok(&mut chair, Command::ApproveComment { seq }).await {
        Reply::Approved { comment } => assert_eq!(comment.text, "跨节点先审后发"),
        other => panic!("{other:?}"),
    }
    let items = items_through(&mut watcher, seq.next()).await;
    let seen: Vec<_> = items
        .iter()
        .filter_map(|i| match &i.body {
            ItemBody::Comment { text, approves, .. } => Some((text.as_str(), *approves)),
            _ => None,
        })
        .collect();
    assert_eq!(seen, vec![("跨节点先审后发", Some(seq))]);
    assert_eq!(
        common::cmd(&mut chair, Command::ApproveComment { seq }).await,
        Err(shangliang_signaling::ErrorCode::NotHeld),
        "one review queue: approving twice is refused"
    );

    // A question asked on c, published from a, reaches b's viewer as an event.
    let mut viewer_b = b.client(Role::Viewer, "乙地观众").await;
    sub_state(&mut viewer_b).await;
    let mut asker = c.client(Role::Viewer, "提问者").await;
    let id = common::ask(&mut asker, "跨节点的问题").await;
    ok(&mut chair, Command::ModerateQuestion { id, op: QuestionOp::Publish }).await;
    let text = event(&mut viewer_b, |e| match e {
        ConsultEvent::Question { question } if question.id == id => Some(question.text.clone()),
        _ => None,
    })
    .await;
    assert_eq!(text, "跨节点的问题");

    // A hand raised on b, granted from a: a late viewer on c sees the holder.
    let mut member = b.client(Role::Member, "甲").await;
    ok(&mut member, Command::RaiseHand).await;
    ok(
        &mut chair,
        Command::GrantFloor {
            target: GrantTarget::NextHand,
            limit_ms: Some(120_000),
        },
    )
    .await;
    let mut late = c.client(Role::Viewer, "迟到者").await;
    let (_, state) = sub_state(&mut late).await;
    assert_eq!(state.floor.holder, Some(ParticipantId::new("member:甲")));
    assert!(state.questions.iter().any(|q| q.id == id));
    let present: Vec<_> = state.present.iter().map(|p| p.id.to_string()).collect();
    assert!(
        present.contains(&"moderator:主持人".to_string()) && present.contains(&"member:甲".to_string()),
        "attendance counts connections of every node: {present:?}"
    );
    // Every node agrees on the home (the rule over the alive nodes).
    let home = home_of(&[&a, &b, &c]);
    assert!([a.port, b.port, c.port].contains(&home.port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_moves_to_a_surviving_node_when_its_home_dies() {
    use common::{cmd, ok, sub_state};
    use shangliang_signaling::ErrorCode;
    use shangliang_signaling::consult::{Command, GrantTarget, ParticipantId, PolicyChange, Reply};
    let _serial = SERIAL.lock().await;
    let (nats, pg) = (Nats::start().await, Postgres::start().await);
    let root = tempfile::tempdir().unwrap();
    let mut nodes = vec![
        Node::start(root.path(), "a", &nats, &pg).await,
        Node::start(root.path(), "b", &nats, &pg).await,
        Node::start(root.path(), "c", &nats, &pg).await,
    ];
    let home_port = home_of(&nodes.iter().collect::<Vec<_>>()).port;
    let home = nodes.remove(nodes.iter().position(|n| n.port == home_port).unwrap());
    let (s1, s2) = (&nodes[0], &nodes[1]);

    let mut chair = s1.client(Role::Moderator, "主持人").await;
    ok(&mut chair, Command::SetCommentPolicy { change: PolicyChange::Review(true) }).await;
    let mut member = s2.client(Role::Member, "甲").await;
    ok(&mut member, Command::RaiseHand).await;
    let mut poster = s2.client(Role::Viewer, "网友").await;
    let held = match poster.post(&demo(), "宕机前待审").await {
        ServerMsg::Ack { seq, held: true, .. } => seq,
        other => panic!("{other:?}"),
    };
    // The home writes its checkpoint ~200 ms after a change.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    drop(home); // kill -9

    // Within a few seconds the survivors agree on a new home, which continues from the
    // checkpoint: the held comment is still held, the hand still raised.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match cmd(&mut chair, Command::ApproveComment { seq: held }).await {
            Ok(Reply::Approved { comment }) => {
                assert_eq!(comment.text, "宕机前待审");
                break;
            }
            Err(ErrorCode::Unavailable) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("approval after the home died: {other:?}"),
        }
    }
    // The survivors announce their connections to the new home: the member is present again
    // (with their hand still raised) without reconnecting.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut late = s2.client(Role::Viewer, "迟到者").await;
        let (_, state) = sub_state(&mut late).await;
        assert!(state.comment_modes.review, "review mode survived the home's death");
        if state.present.iter().any(|p| p.id == ParticipantId::new("member:甲")) {
            assert_eq!(state.floor.hands, vec![ParticipantId::new("member:甲")]);
            break;
        }
        assert!(Instant::now() < deadline, "the member was not announced to the new home: {state:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    match ok(&mut chair, Command::GrantFloor { target: GrantTarget::NextHand, limit_ms: None }).await {
        Reply::FloorGranted { holder } => assert_eq!(holder, ParticipantId::new("member:甲")),
        other => panic!("{other:?}"),
    }

    // One audit chain in PostgreSQL, continued by the new home.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = std::process::Command::new(BIN)
        .args(["verify-record", "--activity", "demo", "--database", &pg.url(), "--chain-only"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("ok: 3 audit entries"), "{text}");
}

/// Sends a media `join` and returns its answer.
async fn media_join(c: &mut Client) -> shangliang_signaling::media::MediaEvent {
    c.send(&shangliang_signaling::ClientMsg::Media {
        id: 7,
        req: shangliang_signaling::media::MediaRequest::Join,
    })
    .await;
    loop {
        if let ServerMsg::Media { id: Some(7), ev } = c.recv().await {
            return ev;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_redirected_to_the_activitys_home_node() {
    use shangliang_signaling::media::MediaEvent;
    let _serial = SERIAL.lock().await;
    let (nats, pg) = (Nats::start().await, Postgres::start().await);
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(root.path(), "a", &nats, &pg).await;
    let b = Node::start(root.path(), "b", &nats, &pg).await;
    let home = home_of(&[&a, &b]);
    let other = if home.port == a.port { &b } else { &a };

    // WHEP and WHIP: 307 to the same path on the home (method and body are kept).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for kind in ["whep", "whip"] {
        let r = http
            .post(format!("{}/{kind}/demo", other.base()))
            .header("content-type", "application/sdp")
            .bearer_auth(token(Role::Member, "甲"))
            .body("v=0\r\n")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 307, "{kind}");
        assert_eq!(
            r.headers()["location"].to_str().unwrap(),
            format!("{}/{kind}/demo", home.base())
        );
    }
    // The home itself answers (here: the SDP is refused as invalid, not redirected).
    let r = http
        .post(format!("{}/whep/demo", home.base()))
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // Room signalling: `join` on the other node names the home; on the home it joins.
    let mut member = other.client(Role::Member, "甲").await;
    assert_eq!(media_join(&mut member).await, MediaEvent::Redirect { node: home.base().into() });
    let mut member = home.client(Role::Member, "甲").await;
    assert!(matches!(media_join(&mut member).await, MediaEvent::Joined { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_waits_while_another_node_holds_the_activitys_fence() {
    use common::cmd;
    use shangliang_signaling::ErrorCode;
    use shangliang_signaling::consult::{Command, PolicyChange};
    let _serial = SERIAL.lock().await;
    let (nats, pg) = (Nats::start().await, Postgres::start().await);
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(root.path(), "a", &nats, &pg).await;
    // Someone else holds the fence of the activity's moderation: a node that still believes it
    // is home (cut off from NATS but not from PostgreSQL), played here by the test.
    let (other, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.unwrap();
    let conn = tokio::spawn(conn);
    let key = shangliang::record::postgres::fence_key(&demo());
    other.query_one("SELECT pg_advisory_lock($1)", &[&key]).await.unwrap();

    let mut chair = a.client(Role::Moderator, "主持人").await;
    let review = || Command::SetCommentPolicy { change: PolicyChange::Review(true) };
    for _ in 0..3 {
        assert_eq!(
            cmd(&mut chair, review()).await,
            Err(ErrorCode::Unavailable),
            "no second driver while the fence is held elsewhere"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The other holder goes away (its connection ends): this node takes over.
    drop(other);
    conn.abort();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match cmd(&mut chair, review()).await {
            Ok(_) => break,
            Err(ErrorCode::Unavailable) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("after the fence was released: {other:?}"),
        }
    }
}

/// A `consensus` request and its answer (`consensus_reply` or `error`), other messages skipped.
async fn consensus(c: &mut Client, id: u32, req: serde_json::Value) -> Result<serde_json::Value, shangliang_signaling::ErrorCode> {
    c.send(&shangliang_signaling::ClientMsg::Consensus { id, topic: demo(), req }).await;
    loop {
        match c.recv().await {
            ServerMsg::ConsensusReply { id: i, reply } if i == id => return Ok(reply),
            ServerMsg::Error { id: Some(i), code, .. } if i == id => return Err(code),
            _ => continue,
        }
    }
}

/// Reads until the closed tally of `poll` arrives (bounded), returning it.
async fn closed_tally(c: &mut Client, poll: &serde_json::Value) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        match c.try_recv(Duration::from_secs(1)).await {
            Some(Ok(ServerMsg::Consensus { event, .. }))
                if event["k"] == "poll_tally" && event["tally"]["poll"] == *poll && event["tally"]["state"] == "closed" =>
            {
                return event["tally"].clone();
            }
            Some(Err(e)) => panic!("connection ended: {e:?}"),
            _ => continue,
        }
    }
    panic!("no closed tally of poll {poll}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_are_one_state_across_nodes_and_their_tallies_reach_every_node() {
    use common::sub_state;
    use shangliang_signaling::ErrorCode;
    use serde_json::json;
    let _serial = SERIAL.lock().await;
    let (nats, pg) = (Nats::start().await, Postgres::start().await);
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(root.path(), "a", &nats, &pg).await;
    let b = Node::start(root.path(), "b", &nats, &pg).await;
    let home = home_of(&[&a, &b]);
    let away = if home.port == a.port { &b } else { &a };

    // The chair is on the node that is not the activity's home: every request is relayed.
    let mut chair = away.client(Role::Moderator, "主持人").await;
    sub_state(&mut chair).await;
    let spec = json!({"question": "跨节点投票？", "kind": "single_choice", "options": ["赞成", "反对"], "changeable": false});
    // The first relayed request may meet the nodes still agreeing on the home: retried briefly.
    let mut created = Err(ErrorCode::Unavailable);
    for i in 0..40 {
        created = consensus(&mut chair, 1 + i, json!({"c": "poll_create", "spec": spec})).await;
        if created != Err(ErrorCode::Unavailable) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let created = created.expect("a poll created through the relay");
    assert_eq!(created["r"], "poll_created", "{created}");
    let poll = created["poll"].clone();
    assert_eq!(consensus(&mut chair, 100, json!({"c": "poll_launch", "poll": poll})).await.unwrap()["r"], "done");

    // One voter on each node; the same identity answering again on the other node is refused:
    // one poll, one set of answers.
    let mut voter_away = away.client(Role::Viewer, "远端观众").await;
    sub_state(&mut voter_away).await;
    let mut voter_home = home.client(Role::Viewer, "本地观众").await;
    sub_state(&mut voter_home).await;
    let answer = |option: u32| json!({"c": "poll_answer", "poll": poll, "answer": {"a": "choice", "option": option}});
    assert_eq!(consensus(&mut voter_away, 1, answer(0)).await.unwrap(), json!({"r": "answered", "outcome": "new"}));
    assert_eq!(consensus(&mut voter_home, 1, answer(1)).await.unwrap(), json!({"r": "answered", "outcome": "new"}));
    let mut again = home.client(Role::Viewer, "远端观众").await;
    assert_eq!(consensus(&mut again, 1, answer(1)).await, Err(ErrorCode::AlreadyAnswered));

    // Closed from the away node; the closed tally reaches the connections of both nodes.
    assert_eq!(consensus(&mut chair, 101, json!({"c": "poll_close", "poll": poll})).await.unwrap()["r"], "done");
    for c in [&mut voter_away, &mut voter_home] {
        let tally = closed_tally(c, &poll).await;
        assert_eq!(tally["voters"], 2, "{tally}");
        assert_eq!(tally["counts"], json!([1, 1]), "{tally}");
    }
    // The state read through the relay is the home's.
    let state = consensus(&mut voter_away, 2, json!({"c": "state"})).await.unwrap();
    assert_eq!(state["r"], "state", "{state}");
}
