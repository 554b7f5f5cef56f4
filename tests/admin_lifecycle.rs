//! The organisers' domain (`shangliang::admin`) through its public API: the lifecycle of an
//! activity by state, committee and role; what each state allows; editing rules; settings
//! changed before and during a session; the committee rule. Pure: no sockets, no sleeps.

use shangliang::admin::access::Share;
use shangliang::admin::activity::{ActivityPatch, Effect, LifecycleAction as A, LifecycleState as S, ListFilter, list};
use shangliang::admin::settings::{CommentReview, MissingInput, SessionInput, StageLineup};
use shangliang::admin::{
    Access, Activity, ActivityDraft, ActivityKind, Actor, AdminError, CommitteeId, Directory, Level, PersonId,
    SettingsPatch, Staff, StaffRole, UserId,
};
use shangliang::consult::{Command, FloorMode, PolicyChange};
use shangliang_signaling::ActivityId;

/// 2024-09-20 00:00 UTC, the day of the livestream in the seed article.
const T0: u64 = 1_726_790_400_000;
const MIN: u64 = 60_000;
const H: u64 = 3_600_000;

fn cid(s: &str) -> CommitteeId {
    CommitteeId::new(s).unwrap()
}

/// 陕西省政协 → 西安市政协 (→ 莲湖区政协) and 宝鸡市政协.
fn directory() -> Directory {
    let mut d = Directory::new();
    d.handle_add(cid("sn"), "陕西省政协", Level::Province, None).unwrap();
    d.handle_add(cid("sn-xa"), "西安市政协", Level::City, Some(cid("sn"))).unwrap();
    d.handle_add(cid("sn-bj"), "宝鸡市政协", Level::City, Some(cid("sn"))).unwrap();
    d.handle_add(cid("sn-xa-lh"), "莲湖区政协", Level::County, Some(cid("sn-xa"))).unwrap();
    d
}

fn staff(committee: &str, role: StaffRole) -> Actor {
    Actor::Staff(Staff {
        user: UserId::new(&format!("u-{committee}-{}", role.as_str())).unwrap(),
        name: format!("{committee}/{}", role.as_str()),
        committee: cid(committee),
        role,
    })
}

fn operator() -> Actor {
    Actor::Operator { name: "root".into() }
}

fn draft(committee: &str, kind: ActivityKind) -> ActivityDraft {
    ActivityDraft {
        title: "推进城乡融合发展网络议政".into(),
        topic: "以县城为重要载体推进城乡融合发展".into(),
        description: "五位委员和专家在线讨论。\n欢迎群众提问。".into(),
        kind,
        committee: cid(committee),
        scheduled_start_ms: T0 + 2 * H,
        planned_end_ms: T0 + 4 * H,
        settings: SettingsPatch::default(),
    }
}

fn schedule(id: &str, committee: &str, kind: ActivityKind) -> Activity {
    let (a, note) =
        Activity::handle_schedule(ActivityId::new(id).unwrap(), draft(committee, kind), &operator(), &directory(), T0)
            .unwrap();
    assert_eq!(note.action, "activity_scheduled");
    a
}

/// The start: the time every transition below happens at.
const START: u64 = T0 + 2 * H;

/// A city (西安) livestream shared with 宝鸡 for moderation, brought to `state` by the operator.
fn city_activity_in(state: S) -> Activity {
    let d = directory();
    let mut a = schedule("xa-1", "sn-xa", ActivityKind::Livestream);
    a.handle_share(&operator(), &d, &cid("sn-bj"), Some(Share::Moderate), T0).unwrap();
    let path: &[A] = match state {
        S::Scheduled => &[],
        S::Open => &[A::Open],
        S::Paused => &[A::Open, A::Pause],
        S::Closed => &[A::Open, A::Close],
        S::Archived => &[A::Open, A::Close, A::Archive],
    };
    for act in path {
        a.handle_transition(&operator(), &d, *act, None, START).unwrap();
    }
    assert_eq!(a.state(), state);
    a
}

/// The lifecycle, written out independently of the code under test.
fn expected_next(state: S, action: A) -> Option<Option<S>> {
    Some(Some(match (state, action) {
        (S::Scheduled, A::Open) => S::Open,
        (S::Scheduled, A::Delete) => return Some(None),
        (S::Open, A::Pause) => S::Paused,
        (S::Open, A::Close) | (S::Paused, A::Close) => S::Closed,
        (S::Paused, A::Resume) => S::Open,
        (S::Closed, A::Archive) => S::Archived,
        (S::Archived, A::Unarchive) => S::Closed,
        _ => return None,
    }))
}

#[test]
fn every_lifecycle_action_is_allowed_or_refused_by_state_committee_and_role() {
    let d = directory();
    // (actor, its access to a 西安 activity shared with 宝鸡 for moderation, own committee?)
    let actors = [
        (staff("sn-xa", StaffRole::Organiser), Access::Organise, true),
        (staff("sn-xa", StaffRole::Moderator), Access::Run, true),
        (staff("sn-bj", StaffRole::Organiser), Access::Moderate, false), // invited to moderate
        (staff("sn", StaffRole::Organiser), Access::See, false),         // the province above
        (staff("sn-xa-lh", StaffRole::Organiser), Access::None, false),  // a county below
        (operator(), Access::Organise, false),
    ];
    let mut checked = 0;
    for state in [S::Scheduled, S::Open, S::Paused, S::Closed, S::Archived] {
        for action in A::ALL {
            for (actor, access, own) in &actors {
                let mut a = city_activity_in(state);
                assert_eq!(a.access_of(actor, &d), *access);
                let need = match action {
                    A::Open | A::Pause | A::Resume | A::Close => Access::Run,
                    A::Archive | A::Unarchive | A::Delete => Access::Organise,
                };
                let got = a.handle_transition(actor, &d, action, Some("按计划"), START);
                let case = format!("{action} from {state} by {actor:?}");
                if *access < need {
                    let want = if *own { AdminError::RoleForbidden } else { AdminError::CommitteeForbidden };
                    assert_eq!(got.unwrap_err(), want, "{case}");
                    assert_eq!(a.state(), state, "{case}: a refusal changes nothing");
                } else if let Some(to) = expected_next(state, action) {
                    let t = got.unwrap_or_else(|e| panic!("{case}: {e}"));
                    assert_eq!((t.from, t.to), (state, to), "{case}");
                    assert_eq!(a.state(), to.unwrap_or(state), "{case}");
                    assert_eq!(t.audit.actor, actor.audit_name());
                    assert_eq!(t.audit.reason.as_deref(), Some("按计划"));
                    assert!(t.audit.action.starts_with("activity_"), "{}", t.audit.action);
                } else {
                    assert_eq!(got.unwrap_err(), AdminError::BadTransition { action, state }, "{case}");
                    assert_eq!(a.state(), state, "{case}");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 5 * 7 * 6);
}

#[test]
fn refusals_carry_stable_codes_and_statuses() {
    let d = directory();
    let mut a = city_activity_in(S::Closed);
    let e = a.handle_transition(&staff("sn-xa", StaffRole::Organiser), &d, A::Open, None, START).unwrap_err();
    assert_eq!((e.code(), e.status()), ("bad_transition", 409));
    assert_eq!(e.to_string(), "cannot open an activity that is closed");
    let e = a.handle_transition(&staff("sn", StaffRole::Organiser), &d, A::Archive, None, START).unwrap_err();
    assert_eq!((e.code(), e.status()), ("committee_forbidden", 403));
    let e = a.handle_transition(&staff("sn-xa", StaffRole::Moderator), &d, A::Archive, None, START).unwrap_err();
    assert_eq!((e.code(), e.status()), ("role_forbidden", 403));
}

#[test]
fn an_activity_opens_from_an_hour_before_its_start_and_not_earlier() {
    let d = directory();
    let org = staff("sn-xa", StaffRole::Organiser);
    let mut a = schedule("xa-2", "sn-xa", ActivityKind::Room);
    assert_eq!(a.available_actions(&org, &d, START - H - 1), [A::Delete]);
    assert_eq!(
        a.handle_transition(&org, &d, A::Open, None, START - H - 1),
        Err(AdminError::TooEarly { opens_from_ms: START - H })
    );
    assert_eq!(a.available_actions(&org, &d, START - H), [A::Open, A::Delete]);
    let t = a.handle_transition(&org, &d, A::Open, None, START - H).unwrap();
    assert_eq!(a.opened_ms(), Some(START - H));
    let Effect::StartSession { config, inputs } = &t.effects[0] else { panic!("{:?}", t.effects) };
    assert_eq!(config.title, "推进城乡融合发展网络议政");
    assert_eq!(config.floor_mode, FloorMode::Chaired);
    // A room: comments by members only, no review.
    assert!(inputs.contains(&SessionInput::Command(Command::SetCommentPolicy { change: PolicyChange::Lockdown(true) })));
    assert!(inputs.contains(&SessionInput::Command(Command::SetCommentPolicy { change: PolicyChange::Review(false) })));
}

#[test]
fn each_state_says_what_it_allows() {
    let a = city_activity_in(S::Scheduled);
    let r = a.rules(START - 90 * MIN);
    assert!(r.waiting_page && !r.may_join && !r.comments_open && !r.questions_open && !r.hands_open);
    assert_eq!(r.countdown_ms, Some(90 * MIN));
    assert_eq!(a.rules(START + MIN).countdown_ms, Some(0), "due but not opened: starting soon");
    assert!(r.details_editable && r.settings_editable && r.invitations_open && r.listed && !r.read_only);

    let r = city_activity_in(S::Open).rules(START);
    assert!(!r.waiting_page && r.countdown_ms.is_none() && r.may_join && r.comments_open && r.questions_open && r.hands_open);
    assert!(!r.details_editable && r.settings_editable && !r.read_only && r.replay_path.is_none());

    let r = city_activity_in(S::Paused).rules(START);
    assert!(r.may_join && !r.comments_open && !r.questions_open && !r.hands_open && r.settings_editable);

    let closed = city_activity_in(S::Closed);
    let r = closed.rules(START);
    assert!(r.read_only && r.record_exported && !r.may_join && !r.settings_editable && !r.invitations_open && r.listed);
    assert_eq!(r.replay_path.as_deref(), Some("/replay/xa-1"));
    assert_eq!(closed.closed_ms(), Some(START));

    let r = city_activity_in(S::Archived).rules(START);
    assert!(r.read_only && !r.listed && r.replay_path.is_some());
}

#[test]
fn closing_exports_the_record_and_links_the_replay_and_pausing_mutes_the_room() {
    let d = directory();
    let m = staff("sn-xa", StaffRole::Moderator);
    let mut a = city_activity_in(S::Open);
    let t = a.handle_transition(&m, &d, A::Pause, None, START + MIN).unwrap();
    assert_eq!(
        t.effects,
        [Effect::SessionInputs(vec![
            SessionInput::Command(Command::MuteAll),
            SessionInput::Missing(MissingInput::SetInteraction { comments: false, questions: false }),
            SessionInput::Missing(MissingInput::SetHands { open: false }),
        ])]
    );
    assert_eq!(t.audit.detail, "open->paused");
    let t = a.handle_transition(&m, &d, A::Close, None, START + 2 * MIN).unwrap();
    assert_eq!(t.effects, [Effect::EndSession, Effect::LinkReplay { path: "/replay/xa-1".into() }]);
    let t = a.handle_transition(&staff("sn-xa", StaffRole::Organiser), &d, A::Archive, None, START + H).unwrap();
    assert_eq!(t.effects, [Effect::HideFromLists]);
}

#[test]
fn only_a_scheduled_activity_can_be_deleted() {
    let d = directory();
    let org = staff("sn-xa", StaffRole::Organiser);
    let mut a = city_activity_in(S::Scheduled);
    let t = a.handle_transition(&org, &d, A::Delete, None, T0).unwrap();
    assert_eq!((t.to, t.effects), (None, vec![Effect::Remove]));
    assert_eq!(t.audit.detail, "scheduled->removed");
    for s in [S::Open, S::Paused, S::Closed, S::Archived] {
        let mut a = city_activity_in(s);
        assert_eq!(a.handle_transition(&org, &d, A::Delete, None, START).unwrap_err().code(), "bad_transition");
    }
}

#[test]
fn a_draft_is_validated_field_by_field() {
    let d = directory();
    let org = staff("sn-xa", StaffRole::Organiser);
    let sched = |f: &dyn Fn(&mut ActivityDraft)| {
        let mut dr = draft("sn-xa", ActivityKind::Livestream);
        f(&mut dr);
        Activity::handle_schedule(ActivityId::new("x").unwrap(), dr, &org, &d, T0).map(|_| ()).unwrap_err()
    };
    assert_eq!(sched(&|d| d.title = " ".into()), AdminError::Invalid { field: "title", problem: "must not be empty".into() });
    assert_eq!(sched(&|d| d.title = "题".repeat(101)).code(), "invalid");
    assert_eq!(sched(&|d| d.topic = "议".repeat(201)).code(), "invalid");
    assert_eq!(sched(&|d| d.description = "x\u{7}".into()).code(), "invalid");
    assert_eq!(sched(&|d| d.scheduled_start_ms = T0 - 1).code(), "bad_schedule");
    assert_eq!(sched(&|d| d.planned_end_ms = d.scheduled_start_ms).code(), "bad_schedule");
    assert_eq!(sched(&|d| d.planned_end_ms = d.scheduled_start_ms + 4 * MIN).code(), "bad_schedule");
    assert_eq!(sched(&|d| d.planned_end_ms = d.scheduled_start_ms + 25 * H).code(), "bad_schedule");
    assert_eq!(
        sched(&|d| {
            d.scheduled_start_ms = T0 + 401 * 24 * H;
            d.planned_end_ms = d.scheduled_start_ms + H;
        })
        .code(),
        "bad_schedule"
    );
    assert_eq!(sched(&|d| d.settings.turn_ms = Some(1)).code(), "invalid");
    assert_eq!(sched(&|d| d.committee = cid("nowhere")).code(), "no_such_committee");
    // Only its own organisers schedule for a committee: not the province for a city, not a moderator.
    let by = |who: Actor| {
        Activity::handle_schedule(ActivityId::new("x").unwrap(), draft("sn-xa", ActivityKind::Room), &who, &d, T0)
            .map(|_| ())
            .unwrap_err()
    };
    assert_eq!(by(staff("sn", StaffRole::Organiser)), AdminError::CommitteeForbidden);
    assert_eq!(by(staff("sn-xa", StaffRole::Moderator)), AdminError::RoleForbidden);
    // Starting exactly now is fine; the level comes from the committee.
    let mut dr = draft("sn-xa-lh", ActivityKind::Room);
    dr.scheduled_start_ms = T0;
    dr.planned_end_ms = T0 + 5 * MIN;
    let (a, _) = Activity::handle_schedule(ActivityId::new("lh-1").unwrap(), dr, &operator(), &d, T0).unwrap();
    assert_eq!(a.level(), Level::County);
    assert_eq!(a.description(), "五位委员和专家在线讨论。\n欢迎群众提问。", "line breaks are kept");
}

#[test]
fn details_are_editable_while_scheduled_only_the_end_once_live_and_nothing_once_closed() {
    let d = directory();
    let org = staff("sn-xa", StaffRole::Organiser);
    let mut a = city_activity_in(S::Scheduled);
    let notes = a
        .handle_update(&org, &d, &ActivityPatch { title: Some("新标题".into()), scheduled_start_ms: Some(T0 + 3 * H), ..Default::default() }, T0)
        .unwrap();
    assert_eq!(notes.iter().map(|n| n.target.as_str()).collect::<Vec<_>>(), ["title", "scheduled_start_ms"]);
    assert_eq!((a.title(), a.scheduled_start_ms()), ("新标题", T0 + 3 * H));
    let past = ActivityPatch { scheduled_start_ms: Some(T0 - 1), ..Default::default() };
    assert_eq!(a.handle_update(&org, &d, &past, T0).unwrap_err().code(), "bad_schedule");
    let backwards = ActivityPatch { planned_end_ms: Some(T0 + 3 * H), ..Default::default() };
    assert_eq!(a.handle_update(&org, &d, &backwards, T0).unwrap_err().code(), "bad_schedule");
    assert_eq!(
        a.handle_update(&staff("sn-xa", StaffRole::Moderator), &d, &ActivityPatch::default(), T0),
        Err(AdminError::RoleForbidden)
    );

    let mut live = city_activity_in(S::Open);
    let retitle = ActivityPatch { title: Some("改".into()), ..Default::default() };
    assert_eq!(live.handle_update(&org, &d, &retitle, START), Err(AdminError::LockedWhileLive("title")));
    let longer = ActivityPatch { planned_end_ms: Some(T0 + 5 * H), ..Default::default() };
    assert_eq!(live.handle_update(&org, &d, &longer, START).unwrap().len(), 1);
    assert_eq!(live.planned_end_ms(), T0 + 5 * H);
    let ended = ActivityPatch { planned_end_ms: Some(START + MIN * 10), ..Default::default() };
    assert_eq!(live.handle_update(&org, &d, &ended, START + MIN * 20).unwrap_err().code(), "bad_schedule");

    for s in [S::Closed, S::Archived] {
        let mut a = city_activity_in(s);
        assert_eq!(a.handle_update(&org, &d, &longer, START), Err(AdminError::ReadOnly(s)));
        let p = SettingsPatch { slow_mode_ms: Some(0), ..Default::default() };
        assert_eq!(a.handle_settings(&org, &d, &p, START), Err(AdminError::ReadOnly(s)));
        assert_eq!(a.handle_share(&org, &d, &cid("sn"), Some(Share::See), START), Err(AdminError::ReadOnly(s)));
    }
}

#[test]
fn settings_changed_during_a_session_become_moderator_commands_and_audit_notes() {
    let d = directory();
    let moderator = staff("sn-xa", StaffRole::Moderator);
    let slow = SettingsPatch { slow_mode_ms: Some(30_000), comment_review: Some(CommentReview::Off), ..Default::default() };

    // Before the session: organisers only, and nothing reaches a session.
    let mut a = city_activity_in(S::Scheduled);
    assert_eq!(a.handle_settings(&moderator, &d, &slow, T0), Err(AdminError::RoleForbidden));
    let out = a.handle_settings(&staff("sn-xa", StaffRole::Organiser), &d, &slow, T0).unwrap();
    assert_eq!(out.changes.len(), 2);
    assert!(out.session.is_empty());

    // During it: the moderator may, and the session is told at once.
    let mut a = city_activity_in(S::Open);
    let out = a.handle_settings(&moderator, &d, &slow, START).unwrap();
    let policy = |change| SessionInput::Command(Command::SetCommentPolicy { change });
    assert_eq!(
        out.session,
        [
            policy(PolicyChange::Review(false)),
            policy(PolicyChange::HoldWords(vec![])),
            policy(PolicyChange::SlowMode(Some(30_000))),
        ]
    );
    assert_eq!(out.audit.len(), 2);
    assert_eq!((out.audit[0].action, out.audit[0].target.as_str()), ("settings_changed", "comment_review"));
    assert_eq!(out.audit[1].detail, "30000");
    assert_eq!(out.audit[1].actor, moderator.audit_name());
    assert_eq!(a.settings().slow_mode_ms, 30_000);

    // The stage line-up and languages stay with the organisers, even live.
    let stage = SettingsPatch {
        stage: Some(StageLineup::Listed(vec![PersonId::new("m-1001").unwrap()])),
        ..Default::default()
    };
    assert_eq!(a.handle_settings(&moderator, &d, &stage, START), Err(AdminError::RoleForbidden));
    let out = a.handle_settings(&staff("sn-xa", StaffRole::Organiser), &d, &stage, START).unwrap();
    assert!(matches!(out.session[..], [SessionInput::Missing(MissingInput::SetStage(_))]));

    // A committee invited to moderate changes session settings too; one only above sees them.
    let quiet = SettingsPatch { questions_open: Some(false), ..Default::default() };
    assert!(a.handle_settings(&staff("sn-bj", StaffRole::Moderator), &d, &quiet, START).is_ok());
    assert!(!a.rules(START).questions_open);
    assert_eq!(
        a.handle_settings(&staff("sn", StaffRole::Organiser), &d, &quiet, START),
        Err(AdminError::CommitteeForbidden)
    );
}

#[test]
fn a_city_organiser_cannot_touch_a_province_activity_unless_invited() {
    let d = directory();
    let city = staff("sn-xa", StaffRole::Organiser);
    let province = staff("sn", StaffRole::Organiser);
    let mut a = schedule("sn-1", "sn", ActivityKind::Livestream);
    let before = a.clone();
    assert_eq!(a.access_of(&city, &d), Access::None);
    for action in A::ALL {
        assert_eq!(a.handle_transition(&city, &d, action, None, START), Err(AdminError::CommitteeForbidden), "{action}");
    }
    assert_eq!(a.handle_update(&city, &d, &ActivityPatch::default(), T0), Err(AdminError::CommitteeForbidden));
    assert_eq!(a.handle_settings(&city, &d, &SettingsPatch::default(), T0), Err(AdminError::CommitteeForbidden));
    assert_eq!(a.handle_share(&city, &d, &cid("sn-xa"), Some(Share::Moderate), T0), Err(AdminError::CommitteeForbidden));
    assert_eq!(a, before, "nothing changed");
    let all = [a.clone()];
    assert!(list(&all, &city, &d, &ListFilter::default()).is_empty(), "not even listed");

    // Invited as a sub-venue (分会场), the city moderates the province session but does not run it.
    a.handle_link_sub_venue(&province, &d, &cid("sn-xa"), T0).unwrap();
    assert_eq!(a.access_of(&city, &d), Access::Moderate);
    assert_eq!(a.moderating_committees().collect::<Vec<_>>(), [&cid("sn-xa")]);
    a.handle_transition(&province, &d, A::Open, None, START).unwrap();
    let p = SettingsPatch { slow_mode_ms: Some(5_000), ..Default::default() };
    assert!(a.handle_settings(&city, &d, &p, START).is_ok());
    assert_eq!(a.handle_transition(&city, &d, A::Close, None, START), Err(AdminError::CommitteeForbidden));
    let all = [a.clone()];
    assert_eq!(list(&all, &city, &d, &ListFilter::default()).len(), 1);

    // A sub-venue is a committee below the organiser's: not a sibling, not oneself.
    let mut xa = schedule("xa-3", "sn-xa", ActivityKind::Room);
    let xa_org = staff("sn-xa", StaffRole::Organiser);
    assert_eq!(xa.handle_link_sub_venue(&xa_org, &d, &cid("sn-bj"), T0).unwrap_err().code(), "invalid");
    assert_eq!(xa.handle_link_sub_venue(&xa_org, &d, &cid("sn-xa-lh"), T0).unwrap().action, "sub_venue_linked");
}

#[test]
fn the_province_sees_its_cities_activities_but_does_not_run_them() {
    let d = directory();
    let province = staff("sn", StaffRole::Organiser);
    let mut a = schedule("lh-2", "sn-xa-lh", ActivityKind::Room);
    assert_eq!(a.access_of(&province, &d), Access::See);
    assert_eq!(a.access_of(&staff("sn-xa", StaffRole::Moderator), &d), Access::See);
    assert_eq!(a.access_of(&staff("sn-bj", StaffRole::Organiser), &d), Access::None);
    assert_eq!(a.handle_transition(&province, &d, A::Open, None, START), Err(AdminError::CommitteeForbidden));
    assert!(a.available_actions(&province, &d, START).is_empty());
}

#[test]
fn lists_show_what_the_actor_may_see_by_start_and_leave_archived_out() {
    let d = directory();
    let mut xa_late = schedule("xa-late", "sn-xa", ActivityKind::Room);
    xa_late.handle_update(&operator(), &d, &ActivityPatch { scheduled_start_ms: Some(T0 + 3 * H), planned_end_ms: Some(T0 + 5 * H), ..Default::default() }, T0).unwrap();
    let xa_archived = {
        let mut a = schedule("xa-old", "sn-xa", ActivityKind::Room);
        for act in [A::Open, A::Close, A::Archive] {
            a.handle_transition(&operator(), &d, act, None, START).unwrap();
        }
        a
    };
    let all = [xa_late, schedule("bj-1", "sn-bj", ActivityKind::Room), schedule("sn-2", "sn", ActivityKind::Livestream), xa_archived];
    let ids = |who: &Actor, f: &ListFilter| list(&all, who, &d, f).iter().map(|a| a.id().to_string()).collect::<Vec<_>>();
    let everything = ListFilter { include_archived: true, ..Default::default() };
    assert_eq!(ids(&staff("sn", StaffRole::Organiser), &ListFilter::default()), ["bj-1", "sn-2", "xa-late"]);
    assert_eq!(ids(&staff("sn", StaffRole::Organiser), &everything), ["bj-1", "sn-2", "xa-old", "xa-late"]);
    assert_eq!(ids(&staff("sn-xa", StaffRole::Moderator), &ListFilter::default()), ["xa-late"]);
    assert_eq!(ids(&staff("sn-xa-lh", StaffRole::Organiser), &everything), Vec::<String>::new());
    let archived = ListFilter { states: vec![S::Archived], ..Default::default() };
    assert_eq!(ids(&operator(), &archived), ["xa-old"]);
    let window = ListFilter { committee: Some(cid("sn-xa")), from_ms: Some(T0 + 3 * H), ..Default::default() };
    assert_eq!(ids(&operator(), &window), ["xa-late"]);
}
