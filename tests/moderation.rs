//! Moderation over the real websocket: the floor, the questions, comment review, hiding,
//! timeouts, the state for late joiners, and the session record with its audit chain.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{TestHub, WAIT, cmd, demo, event, items_through, ok, sub_state};
use shangliang::server::moderation::FloorHook;
use shangliang_signaling::consult::{
    Command, ConsultEvent, FloorEvent, GrantTarget, ParticipantId, PolicyChange, QuestionId,
    QuestionOp, Reply, TurnEnd,
};
use shangliang_signaling::{
    ActivityId, ErrorCode, Item, ItemBody, Role, ServerMsg,
};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn pid(role: Role, name: &str) -> ParticipantId {
    ParticipantId::new(format!("{}:{name}", role.as_str()))
}

fn comment_texts(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match &i.body {
            ItemBody::Comment { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn viewer_cannot_moderate() {
    let hub = TestHub::start(|_| {}).await;
    let mut member = hub.client(Role::Member, "甲").await;
    let seq = member.post_ok(&demo(), "一条评论").await;
    let mut viewer = hub.client(Role::Viewer, "看客").await;
    for c in [
        Command::GrantFloor {
            target: GrantTarget::Participant(pid(Role::Member, "甲")),
            limit_ms: None,
        },
        Command::MuteAll,
        Command::HideComment {
            seq,
            reason: "我不喜欢".into(),
        },
        Command::SetCommentPolicy {
            change: PolicyChange::Lockdown(true),
        },
        Command::Ban {
            who: pid(Role::Member, "甲"),
            reason: "x".into(),
        },
        Command::ModerateQuestion {
            id: QuestionId(1),
            op: QuestionOp::Pin,
        },
    ] {
        assert_eq!(
            cmd(&mut viewer, c.clone()).await,
            Err(ErrorCode::Forbidden),
            "{c:?}"
        );
    }
    // A member may not either, and a member without the floor cannot yield it.
    assert_eq!(
        cmd(&mut member, Command::MuteAll).await,
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        cmd(&mut member, Command::YieldFloor).await,
        Err(ErrorCode::NotYourTurn)
    );
    // Nothing was logged.
    let log = hub.hub.record.audit_log(&demo()).await.unwrap();
    assert!(log.is_empty(), "{log:?}");
}

#[derive(Default)]
struct RecordingHook(Mutex<Vec<(String, bool)>>);

impl FloorHook for RecordingHook {
    fn set_forwarding(&self, _: &ActivityId, p: &ParticipantId, audio: bool, _video: bool) {
        self.0.lock().unwrap().push((p.to_string(), audio));
    }
}

impl RecordingHook {
    fn last(&self, who: &str) -> Option<bool> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(p, _)| p == who)
            .map(|(_, a)| *a)
    }

    async fn wait_for(&self, who: &str, audio: bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.last(who) != Some(audio) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{who} never set to audio={audio}: {:?}",
                self.0.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn member_without_the_floor_is_not_heard_in_chaired_mode() {
    let hub = TestHub::start(|_| {}).await;
    let hook = Arc::new(RecordingHook::default());
    hub.hub.set_floor_hook(hook.clone());
    let mut chair = hub.client(Role::Moderator, "主持人").await;
    let _a = hub.client(Role::Member, "甲").await;
    let _b = hub.client(Role::Member, "乙").await;
    // Chaired is the default: members are not forwarded, the moderator is.
    hook.wait_for("moderator:主持人", true).await;
    hook.wait_for("member:甲", false).await;
    hook.wait_for("member:乙", false).await;
    let granted = ok(
        &mut chair,
        Command::GrantFloor {
            target: GrantTarget::Participant(pid(Role::Member, "甲")),
            limit_ms: None,
        },
    )
    .await;
    assert_eq!(
        granted,
        Reply::FloorGranted {
            holder: pid(Role::Member, "甲")
        }
    );
    hook.wait_for("member:甲", true).await;
    assert_eq!(
        hook.last("member:乙"),
        Some(false),
        "only the holder is heard"
    );
    ok(
        &mut chair,
        Command::RevokeFloor {
            reason: Some("时间到".into()),
        },
    )
    .await;
    hook.wait_for("member:甲", false).await;
    // Open mode: everyone is heard.
    ok(
        &mut chair,
        Command::SetFloorMode {
            mode: shangliang_signaling::consult::FloorMode::Open,
        },
    )
    .await;
    hook.wait_for("member:乙", true).await;
}

#[tokio::test]
async fn floor_is_granted_to_the_next_hand_and_expires() {
    let hub = TestHub::start(|_| {}).await;
    let mut chair = hub.client(Role::Moderator, "主持人").await;
    sub_state(&mut chair).await;
    let mut a = hub.client(Role::Member, "甲").await;
    let mut b = hub.client(Role::Member, "乙").await;
    assert_eq!(
        cmd(
            &mut chair,
            Command::GrantFloor {
                target: GrantTarget::NextHand,
                limit_ms: None
            }
        )
        .await,
        Err(ErrorCode::NoHands)
    );
    ok(&mut a, Command::RaiseHand).await;
    ok(&mut b, Command::RaiseHand).await;
    let hands = event(&mut chair, |e| match e {
        ConsultEvent::Floor(FloorEvent::HandsChanged { hands }) if hands.len() == 2 => {
            Some(hands.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(
        hands,
        vec![pid(Role::Member, "甲"), pid(Role::Member, "乙")]
    );
    let reply = ok(
        &mut chair,
        Command::GrantFloor {
            target: GrantTarget::NextHand,
            limit_ms: Some(300),
        },
    )
    .await;
    assert_eq!(
        reply,
        Reply::FloorGranted {
            holder: pid(Role::Member, "甲")
        }
    );
    let deadline = event(&mut chair, |e| match e {
        ConsultEvent::Floor(FloorEvent::FloorGranted {
            holder,
            deadline_ms,
            ..
        }) => {
            assert_eq!(*holder, pid(Role::Member, "甲"));
            Some(*deadline_ms)
        }
        _ => None,
    })
    .await;
    // The driver's timer takes it back at the deadline, without anyone asking.
    let (end, ended_at) = event(&mut chair, |e| match e {
        ConsultEvent::Floor(FloorEvent::FloorEnded {
            holder,
            end,
            ended_at_ms,
            ..
        }) => {
            assert_eq!(*holder, pid(Role::Member, "甲"));
            Some((*end, *ended_at_ms))
        }
        _ => None,
    })
    .await;
    assert_eq!(end, TurnEnd::Expired);
    assert!(
        ended_at >= deadline && ended_at < deadline + 1_000,
        "ended {ended_at}, deadline {deadline}"
    );
    // The next hand is next.
    let reply = ok(
        &mut chair,
        Command::GrantFloor {
            target: GrantTarget::NextHand,
            limit_ms: Some(60_000),
        },
    )
    .await;
    assert_eq!(
        reply,
        Reply::FloorGranted {
            holder: pid(Role::Member, "乙")
        }
    );
}

#[tokio::test]
async fn held_comment_reaches_moderators_and_not_the_public_until_approved() {
    let hub = TestHub::start(|_| {}).await;
    let mut chair = hub.client(Role::Moderator, "主持人").await;
    let mut watcher = hub.client(Role::Viewer, "旁观").await;
    ok(
        &mut chair,
        Command::SetCommentPolicy {
            change: PolicyChange::Review(true),
        },
    )
    .await;
    sub_state(&mut chair).await;
    let (_, state) = sub_state(&mut watcher).await;
    assert!(
        state.comment_modes.review,
        "the state tells viewers that review is on"
    );
    let mut poster = hub.client(Role::Viewer, "网友").await;
    let seq = match poster.post(&demo(), "先审后发的评论").await {
        ServerMsg::Ack { seq, held, .. } => {
            assert!(held, "acknowledged as held");
            seq
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        comment_texts(&items_through(&mut chair, seq).await),
        vec!["先审后发的评论"]
    );
    assert!(
        comment_texts(&items_through(&mut watcher, seq).await).is_empty(),
        "the public does not see it"
    );
    match ok(&mut chair, Command::ApproveComment { seq }).await {
        Reply::Approved { comment } => assert_eq!(comment.seq, seq),
        other => panic!("{other:?}"),
    }
    let items = items_through(&mut watcher, seq.next()).await;
    let approved: Vec<_> = items
        .iter()
        .filter_map(|i| match &i.body {
            ItemBody::Comment {
                text,
                approves,
                author,
            } => Some((text.as_str(), *approves, author.name.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(approved, vec![("先审后发的评论", Some(seq), "网友")]);
    assert_eq!(
        cmd(&mut chair, Command::ApproveComment { seq }).await,
        Err(ErrorCode::NotHeld)
    );
}

#[tokio::test]
async fn hidden_comment_is_removed_from_viewers_who_already_saw_it() {
    let hub = TestHub::start(|_| {}).await;
    let mut chair = hub.client(Role::Moderator, "主持人").await;
    let mut viewer = hub.client(Role::Viewer, "看客").await;
    sub_state(&mut viewer).await;
    let mut poster = hub.client(Role::Viewer, "广告号").await;
    let seq = poster.post_ok(&demo(), "加微信领红包").await;
    assert_eq!(
        comment_texts(&items_through(&mut viewer, seq).await),
        vec!["加微信领红包"]
    );
    assert_eq!(
        ok(
            &mut chair,
            Command::HideComment {
                seq,
                reason: "广告".into()
            }
        )
        .await,
        Reply::Done
    );
    let mut hidden = false;
    while !hidden {
        if let ServerMsg::Batch { items, .. } = viewer.recv().await {
            hidden |= items
                .iter()
                .any(|i| i.body == ItemBody::Hide { target: seq });
        }
    }
    assert_eq!(
        cmd(
            &mut chair,
            Command::HideComment {
                seq,
                reason: "再藏".into()
            }
        )
        .await,
        Err(ErrorCode::AlreadyHidden)
    );
    // The original stays in the record; the audit log says who hid it and why.
    let original: Vec<Item> = hub
        .hub
        .record
        .items(&demo(), seq, seq, false)
        .await
        .unwrap()
        .into_iter()
        .map(|stored| stored.item)
        .collect();
    assert_eq!(comment_texts(&original), vec!["加微信领红包"]);
    let log = hub.hub.record.audit_log(&demo()).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].action, "comment_hidden");
    assert_eq!(log[0].reason.as_deref(), Some("广告"));
}

#[tokio::test]
async fn timed_out_viewer_can_post_again_after_the_timeout() {
    let hub = TestHub::start(|_| {}).await;
    let mut chair = hub.client(Role::Moderator, "主持人").await;
    let mut viewer = hub.client(Role::Viewer, "小王").await;
    viewer.post_ok(&demo(), "第一条").await;
    let until = now_ms() + 2_000;
    ok(
        &mut chair,
        Command::Timeout {
            who: pid(Role::Viewer, "小王"),
            until_ms: until,
            reason: "刷屏".into(),
        },
    )
    .await;
    match viewer.post(&demo(), "第二条").await {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::TimedOut),
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(until.saturating_sub(now_ms()) + 50)).await;
    viewer.post_ok(&demo(), "第三条").await;
    // Bans are told apart from timeouts.
    ok(
        &mut chair,
        Command::Ban {
            who: pid(Role::Viewer, "小王"),
            reason: "辱骂".into(),
        },
    )
    .await;
    match viewer.post(&demo(), "第四条").await {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::Banned),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn pinned_question_reaches_late_joiners() {
    let hub = TestHub::start(|_| {}).await;
    let mut chair = hub.client(Role::Moderator, "主持人").await;
    let mut member = hub.client(Role::Member, "甲").await;
    let mut asker = hub.client(Role::Viewer, "提问者").await;
    let id = common::ask(&mut asker, "农村养老怎么保障？").await;
    ok(
        &mut chair,
        Command::ModerateQuestion {
            id,
            op: QuestionOp::Publish,
        },
    )
    .await;
    ok(
        &mut chair,
        Command::ModerateQuestion {
            id,
            op: QuestionOp::Pin,
        },
    )
    .await;
    ok(&mut member, Command::RaiseHand).await;
    ok(
        &mut chair,
        Command::GrantFloor {
            target: GrantTarget::NextHand,
            limit_ms: Some(120_000),
        },
    )
    .await;
    let mut late = hub.client(Role::Viewer, "迟到者").await;
    let (_, state) = sub_state(&mut late).await;
    assert_eq!(state.pinned, vec![id]);
    let q = state
        .questions
        .iter()
        .find(|q| q.id == id)
        .expect("the pinned question is in the state");
    assert_eq!(q.text, "农村养老怎么保障？");
    assert!(q.pinned);
    assert_eq!(state.floor.holder, Some(pid(Role::Member, "甲")));
    let deadline = state.floor.deadline_ms.expect("the holder's deadline");
    assert!(deadline > now_ms() + 60_000);
    assert!(state.floor.hands.is_empty());
    assert!(
        state
            .present
            .iter()
            .any(|p| p.id == pid(Role::Member, "甲"))
    );
}

#[tokio::test]
async fn question_votes_count_once_per_identity() {
    let hub = TestHub::start(|_| {}).await;
    let mut chair = hub.client(Role::Moderator, "主持人").await;
    let mut asker = hub.client(Role::Viewer, "提问者").await;
    let id = match ok(
        &mut asker,
        Command::SubmitQuestion {
            text: "公交一体化何时落地？".into(),
            anonymous: true,
        },
    )
    .await
    {
        Reply::QuestionSubmitted { id } => id,
        other => panic!("{other:?}"),
    };
    // Pending questions take no votes.
    let mut v1 = hub.client(Role::Viewer, "一号").await;
    assert!(
        cmd(&mut v1, Command::VoteQuestion { id, up: true })
            .await
            .is_err()
    );
    ok(
        &mut chair,
        Command::ModerateQuestion {
            id,
            op: QuestionOp::Publish,
        },
    )
    .await;
    let mut v1_again = hub.client(Role::Viewer, "一号").await;
    let mut v2 = hub.client(Role::Viewer, "二号").await;
    sub_state(&mut v2).await;
    assert_eq!(
        ok(&mut v1, Command::VoteQuestion { id, up: true }).await,
        Reply::Votes { votes: 1 }
    );
    assert_eq!(
        cmd(&mut v1_again, Command::VoteQuestion { id, up: true }).await,
        Err(ErrorCode::AlreadyVoted)
    );
    assert_eq!(
        ok(&mut v2, Command::VoteQuestion { id, up: true }).await,
        Reply::Votes { votes: 2 }
    );
    // Viewers see the count (coalesced), and not the anonymous asker.
    event(&mut v2, |e| match e {
        ConsultEvent::Question { question } if question.id == id && question.votes == 2 => {
            assert!(
                question.asker.is_none(),
                "anonymous asker hidden from viewers"
            );
            Some(())
        }
        _ => None,
    })
    .await;
    assert_eq!(
        cmd(
            &mut v2,
            Command::VoteQuestion {
                id: QuestionId(99),
                up: true
            }
        )
        .await,
        Err(ErrorCode::NoSuchQuestion)
    );
}

#[tokio::test]
async fn export_writes_minutes_and_verify_record_detects_an_edit() {
    let hub = TestHub::start(|_| {}).await;
    let mut chair = hub.client(Role::Moderator, "主持人").await;
    let mut member = hub.client(Role::Member, "王委员").await;
    ok(&mut member, Command::RaiseHand).await;
    ok(
        &mut chair,
        Command::GrantFloor {
            target: GrantTarget::NextHand,
            limit_ms: Some(60_000),
        },
    )
    .await;
    let mut poster = hub.client(Role::Viewer, "广告号").await;
    let seq = poster.post_ok(&demo(), "加微信领红包").await;
    ok(
        &mut chair,
        Command::HideComment {
            seq,
            reason: "广告".into(),
        },
    )
    .await;
    ok(
        &mut chair,
        Command::RevokeFloor {
            reason: Some("发言结束".into()),
        },
    )
    .await;
    // The summary is written a moment after the last change.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = hub.hub.record.summary(&demo()).await.unwrap();
        if s.is_some_and(|(json, _)| json.contains("floor_revoked") && json.contains("广告")) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "summary never written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exe = env!("CARGO_BIN_EXE_shangliang");
    let dir = hub.dir.path().to_str().unwrap().to_owned();
    let run = |args: &[&str]| {
        std::process::Command::new(exe)
            .args(args)
            .args(["--activity", "demo", "--data-dir", &dir])
            .output()
            .unwrap()
    };
    let md = run(&["export", "--format", "md"]);
    assert!(
        md.status.success(),
        "{}",
        String::from_utf8_lossy(&md.stderr)
    );
    let md = String::from_utf8(md.stdout).unwrap();
    assert!(md.contains("王委员"), "minutes name the speaker:\n{md}");
    assert!(md.contains("广告"), "minutes give the hide reason:\n{md}");
    for format in ["json", "csv"] {
        let out = run(&["export", "--format", format]);
        assert!(out.status.success() && !out.stdout.is_empty(), "{format}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&run(&["export", "--format", "json"]).stdout).unwrap();
    assert_eq!(json["turns"].as_array().unwrap().len(), 1);
    let good = run(&["verify-record"]);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    // Someone edits the reason of the hide in the database.
    let db = rusqlite::Connection::open(hub.dir.path().join("shangliang.sqlite3")).unwrap();
    let idx: i64 = db
        .query_row(
            "SELECT idx FROM audit_log WHERE activity='demo' AND action='comment_hidden'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    db.execute(
        "UPDATE audit_log SET reason='违规' WHERE activity='demo' AND idx=?1",
        [idx],
    )
    .unwrap();
    let bad = run(&["verify-record"]);
    assert!(
        !bad.status.success(),
        "an edited row must fail verification"
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains(&format!("idx {idx}")),
        "names the first broken link: {err}"
    );
}
