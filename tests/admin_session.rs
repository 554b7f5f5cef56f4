//! The organisers' changes reach the running session for everyone at once (issue 14): a pause
//! refuses posts, questions and hands with `paused` until the resume; settings changed over
//! REST (slow mode, comments closed, turn length, discussion mode, stage line-up) take effect in
//! the moderation driver and reach clients as the events they know (`comment_modes`, floor
//! events); and every change is an entry of the activity's hash-chained audit log, by the
//! organiser who made it.

mod admin_support;
mod common;

use admin_support::*;
use common::TestHub;
use serde_json::json;
use shangliang_signaling::consult::{Command, ConsultEvent, FloorEvent, FloorMode, GrantTarget};
use shangliang_signaling::{ActivityId, ErrorCode, Role};

#[tokio::test]
async fn a_pause_and_changed_settings_take_effect_for_everyone_and_are_chained_in_the_audit_log() {
    let h = TestHub::start(|_| {}).await;
    bootstrap(h.hub.organisers.as_ref().unwrap());
    let api = Api::new(h.http(""));
    let prov = api.sign_in("prov.org").await;
    let start = now_ms() + HOUR / 2;
    // Comments published at once and no slow mode, so every refusal below is the change's.
    let v = api
        .ok(reqwest::Method::POST, "/api/admin/activities", &prov, Some(json!({
            "id": "live-1", "title": "城乡融合", "topic": "以县城为载体", "kind": "livestream",
            "scheduled_start_ms": start, "planned_end_ms": start + 2 * HOUR,
            "settings": {"comment_review": "off", "slow_mode_ms": 0},
        })))
        .await;
    assert_eq!(v["state"], "scheduled");
    let id = ActivityId::new("live-1").unwrap();
    let (_, inv) = api
        .post("/api/admin/activities/live-1/invitations", Some(&prov), json!({"person": "m-wang", "name": "王委员", "role": "member", "committee": "sn-xa"}))
        .await;
    let link_token = inv["link"].as_str().unwrap().split("invite=").nth(1).unwrap().to_owned();
    let (_, pass) = api.post("/api/invitations/redeem", None, json!({"token": link_token})).await;
    api.ok(reqwest::Method::POST, "/api/admin/activities/live-1/open", &prov, Some(json!({}))).await;

    let viewer_token = h.token_with(Role::Viewer, "看客", "live-1", 3600);
    let (mut viewer, modes) = join(&h.url(), &viewer_token, &id).await;
    assert!(!modes.paused && !modes.comments_closed && modes.slow_mode_ms.is_none(), "{modes:?}");
    let (mut wang, _) = join(&h.url(), pass["token"].as_str().unwrap(), &id).await;
    let console = api.ok(reqwest::Method::POST, "/api/admin/activities/live-1/console-token", &prov, None).await;
    let (mut chair, _) = join(&h.url(), console["token"].as_str().unwrap(), &id).await;
    assert_eq!(post_code(&mut viewer, &id, "开始了").await, None);

    // Pause: every client is told, the public's posts and questions and the member's hand are
    // refused with `paused`; the moderator still posts.
    api.ok(reqwest::Method::POST, "/api/admin/activities/live-1/pause", &prov, Some(json!({"reason": "技术调试"}))).await;
    for c in [&mut viewer, &mut wang] {
        event_in(c, |e| matches!(e, ConsultEvent::CommentModes { modes } if modes.paused).then_some(())).await;
    }
    assert_eq!(post_code(&mut viewer, &id, "暂停了吗").await, Some(ErrorCode::Paused));
    assert_eq!(post_code(&mut wang, &id, "委员发言").await, Some(ErrorCode::Paused));
    let ask = Command::SubmitQuestion { text: "何时继续？".into(), anonymous: false };
    assert_eq!(cmd_in(&mut viewer, &id, ask.clone()).await.unwrap_err(), ErrorCode::Paused);
    assert_eq!(cmd_in(&mut wang, &id, Command::RaiseHand).await.unwrap_err(), ErrorCode::Paused);
    assert_eq!(post_code(&mut chair, &id, "稍后继续").await, None);

    // Resume: accepted again.
    api.ok(reqwest::Method::POST, "/api/admin/activities/live-1/resume", &prov, Some(json!({}))).await;
    event_in(&mut viewer, |e| matches!(e, ConsultEvent::CommentModes { modes } if !modes.paused).then_some(())).await;
    assert_eq!(post_code(&mut viewer, &id, "继续").await, None);
    cmd_in(&mut viewer, &id, ask).await.unwrap();

    // Slow mode over REST: announced, and a second quick post is refused.
    let v = api.patch("/api/admin/activities/live-1/settings", &prov, json!({"slow_mode_ms": 60_000})).await;
    assert!(v.0.is_success(), "{v:?}");
    event_in(&mut viewer, |e| matches!(e, ConsultEvent::CommentModes { modes } if modes.slow_mode_ms == Some(60_000)).then_some(())).await;
    // (The first viewer posted a moment ago: slow mode counts that post too.)
    assert_eq!(post_code(&mut viewer, &id, "又一条").await, Some(ErrorCode::SlowMode));
    let (mut second, modes) = join(&h.url(), &h.token_with(Role::Viewer, "路人", "live-1", 3600), &id).await;
    assert_eq!(modes.slow_mode_ms, Some(60_000), "a client that joins now gets the modes in its state");
    assert_eq!(post_code(&mut second, &id, "第一条").await, None);
    assert_eq!(post_code(&mut second, &id, "第二条").await, Some(ErrorCode::SlowMode));

    // Comments closed (questions stay open), then open again.
    api.patch("/api/admin/activities/live-1/settings", &prov, json!({"comments_open": false})).await;
    event_in(&mut wang, |e| matches!(e, ConsultEvent::CommentModes { modes } if modes.comments_closed).then_some(())).await;
    assert_eq!(post_code(&mut wang, &id, "还能发吗").await, Some(ErrorCode::InteractionClosed));
    api.patch("/api/admin/activities/live-1/settings", &prov, json!({"comments_open": true})).await;
    event_in(&mut wang, |e| matches!(e, ConsultEvent::CommentModes { modes } if !modes.comments_closed).then_some(())).await;
    assert_eq!(post_code(&mut wang, &id, "可以了").await, None);

    // Open discussion reaches everyone as the floor's mode change; a one-minute default turn
    // is what a grant without a limit now gets.
    api.patch("/api/admin/activities/live-1/settings", &prov, json!({"discussion": "open", "turn_ms": 60_000})).await;
    event_in(&mut viewer, |e| matches!(e, ConsultEvent::Floor(FloorEvent::ModeChanged { mode: FloorMode::Open })).then_some(())).await;
    let grant = Command::GrantFloor { target: GrantTarget::Participant("m-wang".into()), limit_ms: None };
    cmd_in(&mut chair, &id, grant.clone()).await.unwrap();
    let allotted = event_in(&mut viewer, |e| match e {
        ConsultEvent::Floor(FloorEvent::FloorGranted { allotted_ms, .. }) => Some(*allotted_ms),
        _ => None,
    })
    .await;
    assert_eq!(allotted, 60_000);
    cmd_in(&mut chair, &id, Command::RevokeFloor { reason: None }).await.unwrap();

    // A stage line-up without 王委员: his hand and a grant to him are refused; with him, fine.
    api.patch("/api/admin/activities/live-1/settings", &prov, json!({"stage": {"who": "listed", "people": ["m-li"]}})).await;
    assert_eq!(cmd_in(&mut wang, &id, Command::RaiseHand).await.unwrap_err(), ErrorCode::NotEligible);
    assert_eq!(cmd_in(&mut chair, &id, grant).await.unwrap_err(), ErrorCode::NotEligible);
    api.patch("/api/admin/activities/live-1/settings", &prov, json!({"stage": {"who": "any_invited"}})).await;
    cmd_in(&mut wang, &id, Command::RaiseHand).await.unwrap();

    // The hash chain names the organiser for each change, and verifies.
    let settings_changes = |es: &[serde_json::Value]| es.iter().filter(|e| e["action"] == "settings_changed").count();
    let chain = chain_until(&api, &prov, "live-1", &["activity_opened", "activity_paused", "activity_resumed"], |es| settings_changes(es) == 7).await;
    let organiser = chain.iter().find(|e| e["action"] == "activity_paused").unwrap();
    assert!(organiser["actor"].as_str().unwrap().starts_with("staff:"), "{organiser}");
    assert_eq!(organiser["reason"], "技术调试");
    let settings: Vec<(String, String)> = chain
        .iter()
        .filter(|e| e["action"] == "settings_changed")
        .map(|e| (e["target"].as_str().unwrap().to_owned(), e["detail"].as_str().unwrap().to_owned()))
        .collect();
    for (field, value) in [("slow_mode_ms", "60000"), ("comments_open", "false"), ("comments_open", "true"), ("discussion", "open"), ("turn_ms", "60000")] {
        assert!(settings.contains(&(field.to_owned(), value.to_owned())), "{field}={value} missing from {settings:?}");
    }
    assert!(settings.iter().filter(|(f, _)| f == "stage").count() == 2, "{settings:?}");
}

#[tokio::test]
async fn a_driver_that_starts_takes_up_the_stored_settings_and_says_so_in_the_chain() {
    let h = TestHub::start(|_| {}).await;
    bootstrap(h.hub.organisers.as_ref().unwrap());
    let api = Api::new(h.http(""));
    let prov = api.sign_in("prov.org").await;
    let start = now_ms() + HOUR / 2;
    api.ok(reqwest::Method::POST, "/api/admin/activities", &prov, Some(json!({
        "id": "live-2", "title": "县域议政", "topic": "县城建设", "kind": "livestream",
        "scheduled_start_ms": start, "planned_end_ms": start + HOUR,
        "settings": {"slow_mode_ms": 30_000, "commenters": "verified"},
    })))
    .await;
    api.ok(reqwest::Method::POST, "/api/admin/activities/live-2/open", &prov, Some(json!({}))).await;
    let id = ActivityId::new("live-2").unwrap();
    // The first client sees the activity's modes, not the state machine's defaults.
    let (mut viewer, modes) = join(&h.url(), &h.token_with(Role::Viewer, "看客", "live-2", 3600), &id).await;
    assert_eq!((modes.slow_mode_ms, modes.verified_only, modes.review), (Some(30_000), true, true), "{modes:?}");
    assert_eq!(post_code(&mut viewer, &id, "未实名").await, Some(ErrorCode::VerifiedOnly));
    let chain = chain_with(&api, &prov, "live-2", &["session_configured", "activity_opened"]).await;
    let configured = chain.iter().find(|e| e["action"] == "session_configured").unwrap();
    assert!(configured["detail"].as_str().unwrap().contains("slow_mode_ms"), "{configured}");
}

#[tokio::test]
async fn the_minutes_name_the_committee_the_topic_and_the_invited_people_with_their_attendance() {
    use shangliang::server::moderation::export::{ExportFormat, RecordSource, export_record};
    let h = TestHub::start(|_| {}).await;
    bootstrap(h.hub.organisers.as_ref().unwrap());
    let api = Api::new(h.http(""));
    let prov = api.sign_in("prov.org").await;
    let start = now_ms() + HOUR / 2;
    api.ok(reqwest::Method::POST, "/api/admin/activities", &prov, Some(json!({
        "id": "minutes-1", "title": "推进城乡融合发展网络议政", "topic": "以县城为重要载体推进城乡融合发展", "kind": "room",
        "scheduled_start_ms": start, "planned_end_ms": start + HOUR,
    })))
    .await;
    let invite = |body| api.post("/api/admin/activities/minutes-1/invitations", Some(&prov), body);
    let (_, wang) = invite(json!({"person": "m-wang", "name": "王委员", "role": "member", "committee": "sn-xa"})).await;
    let (_, li) = invite(json!({"name": "李教授", "role": "guest", "affiliation": "西北大学"})).await;
    assert!(li["link"].is_string(), "{li}");
    api.ok(reqwest::Method::POST, "/api/admin/activities/minutes-1/open", &prov, Some(json!({}))).await;
    let link = wang["link"].as_str().unwrap().split("invite=").nth(1).unwrap().to_owned();
    let (_, pass) = api.post("/api/invitations/redeem", None, json!({"token": link})).await;
    let id = ActivityId::new("minutes-1").unwrap();
    let (mut member, _) = join(&h.url(), pass["token"].as_str().unwrap(), &id).await;
    assert_eq!(post_code(&mut member, &id, "县城是城乡融合的关键").await, None);
    // The session's summary has 王委员 present before the close.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = h.hub.record.summary(&id).await.unwrap();
        if s.is_some_and(|(json, _)| json.contains("m-wang")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no summary with the member");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    api.ok(reqwest::Method::POST, "/api/admin/activities/minutes-1/close", &prov, Some(json!({}))).await;

    let dir = h.dir.path().to_path_buf();
    let export = move |f| {
        let dir = dir.clone();
        let id = ActivityId::new("minutes-1").unwrap();
        tokio::task::spawn_blocking(move || export_record(&RecordSource::Dir(dir), &id, f).unwrap())
    };
    let md = export(ExportFormat::Markdown).await.unwrap();
    for want in ["议题与邀请", "主办 (Organised by): 陕西省政协（省级 (province)）", "议题 (Topic): 以县城为重要载体推进城乡融合发展", "应邀 (Invited): 2 人，出席 1 人"] {
        assert!(md.contains(want), "{want:?} missing from the minutes:\n{md}");
    }
    let row = |name: &str| md.lines().find(|l| l.starts_with(&format!("| {name} |"))).unwrap_or_else(|| panic!("no row for {name}:\n{md}")).to_owned();
    assert!(row("王委员").contains("| 委员 | 西安市政协 | 出席 (yes) |"), "{}", row("王委员"));
    assert!(row("李教授").contains("| 特邀嘉宾 | 西北大学 | 缺席 (no) |"), "{}", row("李教授"));
    assert!(md.find("议题与邀请").unwrap() < md.find("出席情况").unwrap(), "the organisers' section comes before the attendance");

    let json: serde_json::Value = serde_json::from_str(&export(ExportFormat::Json).await.unwrap()).unwrap();
    let o = &json["organisers"];
    assert_eq!((o["committee"]["name"].as_str(), o["committee"]["level"].as_str()), (Some("陕西省政协"), Some("province")), "{o}");
    assert_eq!(o["topic"], "以县城为重要载体推进城乡融合发展");
    let invited = o["invited"].as_array().unwrap();
    let by_name = |n: &str| invited.iter().find(|r| r["name"] == n).unwrap();
    assert_eq!((by_name("王委员")["attended"].as_bool(), by_name("王委员")["uses"].as_u64()), (Some(true), Some(1)));
    assert!(by_name("王委员")["present_ms"].as_u64().unwrap() > 0 || by_name("王委员")["first_joined_ms"].is_u64());
    assert_eq!(by_name("李教授")["attended"], false);
    assert_eq!(o["attended"], 1);
}
