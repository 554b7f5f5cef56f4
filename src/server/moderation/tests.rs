//! The moderation driver driven through its registry with channels: a real SQLite record
//! (with switchable faults), a real fan-out core and inboxes, no sockets.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use shangliang_signaling::consult::{Command, PolicyChange, Reply};
use shangliang_signaling::{ActivityId, ErrorCode, ParticipantId, Role, Seq, ServerMsg};
use tokio::sync::{mpsc, oneshot};

use super::persist::{Persist, Persister};
use super::{DriverMsg, Outlets, PostReply, Registry};
use crate::consult::Grants;
use crate::fanout::{Fanout, FanoutConfig};
use crate::record::testing::Faulty;
use crate::record::Record;
use crate::server::inbox::{Direct, Inboxes};

/// Long enough for anything this test waits for; the loops below are bounded by it.
const WAIT: Duration = Duration::from_secs(10);

fn demo() -> ActivityId {
    ActivityId::new("demo").unwrap()
}

fn grants(name: &str, role: Role) -> Grants {
    Grants {
        subject: ParticipantId::new(format!("{}:{name}", role.as_str())),
        name: name.into(),
        role,
        org: None,
        verified: false,
        activity: demo(),
    }
}

struct Bench {
    record: Arc<Faulty>,
    fanout: Fanout,
    registry: Registry,
}

async fn bench() -> Bench {
    let fanout = Fanout::new(FanoutConfig::default());
    let hook_fanout = fanout.clone();
    let record = Faulty::open(
        &demo(),
        Box::new(move |a, item, public| {
            let _ = hook_fanout.publish(a, item.clone(), public);
        }),
    )
    .await;
    fanout.open_topic(demo(), record.activity(&demo()).unwrap().unwrap().epoch, Seq(0));
    let outlets = Outlets { fanout: fanout.clone(), inboxes: Arc::new(Inboxes::default()) };
    let registry = Registry::new(record.clone(), outlets, None, tokio::runtime::Handle::current(), 600);
    Bench { record, fanout, registry }
}

impl Bench {
    fn driver(&self) -> mpsc::Sender<DriverMsg> {
        self.registry.sender(&demo()).expect("the activity exists")
    }

    async fn cmd(&self, g: &Grants, cmd: Command) -> Result<Reply, (ErrorCode, String)> {
        let (reply, rx) = oneshot::channel();
        self.driver().send(DriverMsg::Command { grants: g.clone(), from: None, cmd, reply }).await.unwrap();
        tokio::time::timeout(WAIT, rx).await.expect("answered").expect("not dropped")
    }

    async fn post(&self, g: &Grants, id: u32, text: &str, inbox: &mpsc::Sender<Direct>) {
        let msg = DriverMsg::Post { grants: g.clone(), topic: demo(), text: text.into(), reply: PostReply::inbox(id, inbox.clone()) };
        self.driver().send(msg).await.unwrap();
    }
}

async fn answer(rx: &mut mpsc::Receiver<Direct>) -> ServerMsg {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("an answer in time").expect("inbox open").msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_who_reacts_to_the_ack_finds_the_comment_in_the_review_queue() {
    let b = bench().await;
    let chair = grants("主持人", Role::Moderator);
    b.cmd(&chair, Command::SetCommentPolicy { change: PolicyChange::Review(true) }).await.unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    for i in 1..=30u32 {
        b.post(&grants(&format!("网友{i}"), Role::Viewer), i, &format!("待审 {i}"), &tx).await;
        let seq = match answer(&mut rx).await {
            ServerMsg::Ack { id, seq, held: true } if id == i => seq,
            other => panic!("expected a held ack, got {other:?}"),
        };
        // The very next thing the driver hears is the approval: it must know the comment.
        match b.cmd(&chair, Command::ApproveComment { seq }).await {
            Ok(Reply::Approved { comment }) => assert_eq!(comment.text, format!("待审 {i}")),
            other => panic!("approval of {seq} right after its ack: {other:?}"),
        }
    }
    // Each comment and its approval copy are in the record and went to the fan-out.
    assert_eq!(b.record.head(&demo()).unwrap(), Seq(60));
    assert_eq!(b.fanout.topic_info(&demo()).unwrap().last_seq, Seq(60));
}

#[tokio::test]
async fn a_refused_post_is_answered_at_once_and_stores_nothing() {
    let b = bench().await;
    let (tx, mut rx) = mpsc::channel(16);
    b.post(&grants("v", Role::Viewer), 1, "  ", &tx).await;
    assert!(matches!(answer(&mut rx).await, ServerMsg::Error { id: Some(1), code: ErrorCode::TextEmpty, .. }));
    let other = ActivityId::new("other").unwrap();
    let msg = DriverMsg::Post { grants: grants("v", Role::Viewer), topic: other, text: "好".into(), reply: PostReply::inbox(2, tx.clone()) };
    b.driver().send(msg).await.unwrap();
    assert!(matches!(answer(&mut rx).await, ServerMsg::Error { id: Some(2), code: ErrorCode::Forbidden, .. }));
    assert_eq!(b.record.head(&demo()).unwrap(), Seq(0));
}

#[tokio::test]
async fn the_rate_limit_is_the_drivers_per_identity() {
    let b = bench().await; // 600 a minute: bursts of 10
    let (tx, mut rx) = mpsc::channel(64);
    let v = grants("快手", Role::Viewer);
    for i in 0..12 {
        b.post(&v, i, "刷", &tx).await;
    }
    let mut limited = 0;
    for _ in 0..12 {
        if let ServerMsg::Error { code: ErrorCode::RateLimited, .. } = answer(&mut rx).await {
            limited += 1;
        }
    }
    assert_eq!(limited, 2, "a burst of 10, then refused");
    b.post(&grants("别人", Role::Viewer), 99, "我也说一句", &tx).await;
    assert!(matches!(answer(&mut rx).await, ServerMsg::Ack { id: 99, .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_are_pipelined_the_driver_answers_others_while_their_commits_wait() {
    let b = bench().await;
    let (tx, mut rx) = mpsc::channel(16);
    let v = grants("v", Role::Viewer);
    b.record.hold_appends();
    for i in 1..=3 {
        b.post(&v, i, &format!("c{i}"), &tx).await;
    }
    // The driver is not waiting for those commits: it answers a state request now.
    let (reply, state) = oneshot::channel();
    b.driver().send(DriverMsg::State { grants: v.clone(), reply }).await.unwrap();
    tokio::time::timeout(WAIT, state).await.expect("answered while commits wait").unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.record.held() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the appends never reached the record");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(rx.try_recv().is_err(), "no ack before the commit");
    b.record.release();
    for i in 1..=3u32 {
        match answer(&mut rx).await {
            ServerMsg::Ack { id, seq, held: false } => assert_eq!((id, seq), (i, Seq(u64::from(i)))),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_failed_audit_write_is_tried_again_and_the_summary_waits_for_it() {
    let b = bench().await;
    b.record.fail_audit.store(2, Ordering::SeqCst);
    let chair = grants("主持人", Role::Moderator);
    b.cmd(&chair, Command::SetCommentPolicy { change: PolicyChange::SlowMode(Some(5_000)) }).await.unwrap();
    // Two failures, then it is written; the summary after it names it as the head.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (log, summary) = loop {
        let log = b.record.audit_log(&demo()).await.unwrap();
        let summary = b.record.summary(&demo()).await.unwrap();
        if let (1, Some(s)) = (log.len(), &summary) {
            break (log, s.clone());
        }
        // Nothing claims a head the record does not hold yet.
        assert!(summary.is_none(), "summary stored before its audit entry: {summary:?}");
        assert!(tokio::time::Instant::now() < deadline, "the audit entry was never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(b.record.audit_tries.load(Ordering::SeqCst), 3);
    assert_eq!(summary.1, log[0].hash);
    assert_eq!(crate::consult::verify_head(&log, &summary.1), Ok(()));
}

#[tokio::test]
async fn the_writers_count_of_written_entries_moves_only_when_they_are_durable() {
    let b = bench().await;
    b.record.fail_audit.store(u32::MAX, Ordering::SeqCst);
    let p = Persister::spawn(&tokio::runtime::Handle::current(), b.record.clone(), demo());
    let mut log = crate::consult::AuditLog::new();
    let e = log.append(1, &ParticipantId::new("m"), "comment_policy_set", "review", "true", None).clone();
    p.send(Persist::Audit(e));
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.record.audit_tries.load(Ordering::SeqCst) < 2 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(p.audit_progress(), (1, 0), "queued, not written");
    b.record.fail_audit.store(0, Ordering::SeqCst);
    while p.audit_progress() != (1, 1) {
        assert!(tokio::time::Instant::now() < deadline, "never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.record.audit_log(&demo()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_refused_audit_write_stops_the_driver_and_its_successor_continues_the_stored_chain() {
    let b = bench().await;
    let chair = grants("主持人", Role::Moderator);
    // Someone else's entry is already stored at the head of the chain.
    let mut theirs = crate::consult::AuditLog::new();
    let stored = theirs.append(1, &ParticipantId::new("moderator:别处"), "comment_policy_set", "review", "true", None).clone();
    b.record.append_audit(&demo(), &stored).await.unwrap();
    // This driver started before it (its chain is empty): its own first entry is refused.
    b.record.refuse_audit.store(true, Ordering::SeqCst);
    let _ = b.cmd(&chair, Command::SetCommentPolicy { change: PolicyChange::SlowMode(Some(1_000)) }).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.record.audit_tries.load(Ordering::SeqCst) < 2 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    b.record.refuse_audit.store(false, Ordering::SeqCst);
    // The next command finds the driver stale; a fresh one, restored from the record, takes it
    // and chains onto the stored entry.
    b.cmd(&chair, Command::SetCommentPolicy { change: PolicyChange::Lockdown(true) }).await.unwrap();
    loop {
        let log = b.record.audit_log(&demo()).await.unwrap();
        if log.len() == 2 {
            assert_eq!(log[0], stored);
            assert_eq!(crate::consult::verify(&log), Ok(()));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the successor did not continue the chain: {log:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_post_whose_driver_is_gone_is_answered_unavailable() {
    let (tx, mut rx) = mpsc::channel(4);
    drop(PostReply::inbox(7, tx));
    assert!(matches!(answer(&mut rx).await, ServerMsg::Error { id: Some(7), code: ErrorCode::Unavailable, .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_posts_larger_than_the_inbox_gets_every_ack() {
    let b = bench().await;
    // A small inbox, so that one group commit answers many more posts than it holds.
    let (tx, mut rx) = mpsc::channel(4);
    b.record.hold_appends();
    let n = 200u32;
    for i in 0..n {
        b.post(&grants(&format!("v{i}"), Role::Member), i, "洪峰", &tx).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.record.held() < n as usize {
        assert!(tokio::time::Instant::now() < deadline, "the appends never reached the record");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // One group commit answers them all at once, more than the inbox holds.
    b.record.release();
    let mut acked = 0;
    while acked < n {
        match answer(&mut rx).await {
            ServerMsg::Ack { .. } => acked += 1,
            other => panic!("{other:?}"),
        }
    }
}


/// A socket for the wire path: takes `room` bytes, then nothing until given more.
#[derive(Default)]
struct Socket {
    out: std::sync::Mutex<Vec<u8>>,
    room: std::sync::atomic::AtomicUsize,
}

impl crate::fanout::WireSocket for Arc<Socket> {
    fn try_write_vectored(&self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        let room = self.room.load(Ordering::SeqCst);
        if room == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let mut out = self.out.lock().unwrap();
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(room - n);
            out.extend_from_slice(&b[..take]);
            n += take;
        }
        self.room.fetch_sub(n, Ordering::SeqCst);
        Ok(n)
    }

    fn poll_write_ready(&self, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl Socket {
    /// The payloads of the whole websocket frames written (all short, unmasked).
    fn payloads(&self) -> Vec<Vec<u8>> {
        let out = self.out.lock().unwrap();
        let (mut at, mut got) = (0, Vec::new());
        while at + 2 <= out.len() && at + 2 + (out[at + 1] as usize) <= out.len() {
            let len = out[at + 1] as usize;
            got.push(out[at + 2..at + 2 + len].to_vec());
            at += 2 + len;
        }
        got
    }
}

#[tokio::test]
async fn an_ack_is_written_into_the_posters_socket_after_the_commit_without_the_inbox() {
    let b = bench().await;
    let socket = Arc::new(Socket::default());
    socket.room.store(1 << 20, Ordering::SeqCst);
    let wire = Arc::new(crate::fanout::Wire::new(socket.clone()));
    let (tx, mut rx) = mpsc::channel(16);
    b.record.hold_appends();
    let reply = PostReply::inbox_wire(1, tx.clone(), wire.clone(), shangliang_signaling::Form::MsgPack);
    let msg = DriverMsg::Post { grants: grants("网友", Role::Member), topic: demo(), text: "直达".into(), reply };
    b.driver().send(msg).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.record.held() < 1 {
        assert!(tokio::time::Instant::now() < deadline, "the append did not reach the record");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(socket.payloads().is_empty(), "nothing is answered before the commit");
    b.record.release();
    while socket.payloads().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no ack in the socket");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got = socket.payloads();
    assert_eq!(got.len(), 1);
    match shangliang_signaling::decode_server(shangliang_signaling::Form::MsgPack, &got[0]).unwrap() {
        ServerMsg::Ack { id: 1, seq, held: false } => assert_eq!(seq, b.record.head(&demo()).unwrap()),
        other => panic!("expected the ack, got {other:?}"),
    }
    assert!(rx.try_recv().is_err(), "the ack did not also go through the inbox");
}

#[tokio::test]
async fn an_ack_the_socket_does_not_take_at_once_is_left_to_the_session_to_flush_once() {
    let b = bench().await;
    let socket = Arc::new(Socket::default()); // no room at all
    let wire = Arc::new(crate::fanout::Wire::new(socket.clone()));
    let (tx, mut rx) = mpsc::channel(16);
    let reply = PostReply::inbox_wire(2, tx.clone(), wire.clone(), shangliang_signaling::Form::MsgPack);
    b.driver().send(DriverMsg::Post { grants: grants("网友", Role::Member), topic: demo(), text: "稍后".into(), reply }).await.unwrap();
    let env = tokio::time::timeout(WAIT, rx.recv()).await.expect("a notice in time").expect("inbox open");
    assert!(env.written, "the ack is already in the wire: the session only flushes");
    assert!(matches!(env.msg, ServerMsg::Ack { id: 2, .. }));
    assert!(!wire.is_drained());
    socket.room.store(1 << 20, Ordering::SeqCst);
    assert!(wire.try_drain().unwrap());
    assert_eq!(socket.payloads().len(), 1, "written once");
}

#[tokio::test]
async fn a_closing_connection_gets_no_late_ack_and_the_comment_stays_stored() {
    let b = bench().await;
    let socket = Arc::new(Socket::default());
    socket.room.store(1 << 20, Ordering::SeqCst);
    let wire = Arc::new(crate::fanout::Wire::new(socket.clone()));
    wire.seal();
    let (tx, mut rx) = mpsc::channel(16);
    let reply = PostReply::inbox_wire(3, tx.clone(), wire.clone(), shangliang_signaling::Form::MsgPack);
    b.driver().send(DriverMsg::Post { grants: grants("网友", Role::Member), topic: demo(), text: "告别".into(), reply }).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.record.head(&demo()).unwrap() < Seq(1) {
        assert!(tokio::time::Instant::now() < deadline, "the comment was not stored");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(socket.payloads().is_empty(), "nothing after the session's Close");
    assert!(rx.try_recv().is_err());
}
