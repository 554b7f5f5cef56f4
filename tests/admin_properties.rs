//! Invariants of the organisers' domain under arbitrary sequences of requests by arbitrary
//! actors (proptest): a closed or archived activity never becomes editable again; a scheduled
//! state is never re-entered; actors without run or organise access change nothing; the
//! settings validation accepts exactly the values in range.

use proptest::prelude::*;
use shangliang::admin::access::Share;
use shangliang::admin::activity::{ActivityPatch, LifecycleAction as A, LifecycleState as S};
use shangliang::admin::settings::{
    ActivitySettings, CommentReview, Commenters, MAX_GRACE_MS, MAX_SLOW_MODE_MS, MAX_TURN_MS, MIN_SLOW_MODE_MS,
    MIN_TURN_MS, Overtime,
};
use shangliang::admin::{
    Access, Activity, ActivityDraft, ActivityKind, Actor, AdminError, CommitteeId, Directory, Level, SettingsPatch,
    Staff, StaffRole, UserId,
};
use shangliang_signaling::ActivityId;

const T0: u64 = 1_726_790_400_000;
const H: u64 = 3_600_000;

fn cid(s: &str) -> CommitteeId {
    CommitteeId::new(s).unwrap()
}

fn directory() -> Directory {
    let mut d = Directory::new();
    d.handle_add(cid("sn"), "陕西省政协", Level::Province, None).unwrap();
    d.handle_add(cid("sn-xa"), "西安市政协", Level::City, Some(cid("sn"))).unwrap();
    d.handle_add(cid("sn-bj"), "宝鸡市政协", Level::City, Some(cid("sn"))).unwrap();
    d.handle_add(cid("sn-xa-lh"), "莲湖区政协", Level::County, Some(cid("sn-xa"))).unwrap();
    d
}

fn actors() -> Vec<Actor> {
    let s = |c: &str, role| {
        Actor::Staff(Staff {
            user: UserId::new(&format!("u-{c}-{}", role as u8)).unwrap(),
            name: c.into(),
            committee: cid(c),
            role,
        })
    };
    vec![
        s("sn-xa", StaffRole::Organiser),
        s("sn-xa", StaffRole::Moderator),
        s("sn-bj", StaffRole::Organiser),
        s("sn-bj", StaffRole::Moderator),
        s("sn", StaffRole::Organiser),
        s("sn-xa-lh", StaffRole::Organiser),
        Actor::Operator { name: "root".into() },
    ]
}

#[derive(Clone, Debug)]
enum Step {
    Transition(usize, A),
    Update(usize, Option<String>, Option<u64>),
    Settings(usize, SettingsPatch),
    Share(usize, usize, Option<Share>),
    Wait(u64),
}

fn patch() -> impl Strategy<Value = SettingsPatch> {
    (
        prop::option::of(prop_oneof![Just(10_000u64), Just(60_000), Just(180_000), Just(1)]),
        prop::option::of(prop_oneof![Just(0u64), Just(5_000), Just(500)]),
        prop::option::of(any::<bool>()),
        prop::option::of(prop_oneof![Just(CommentReview::Off), Just(CommentReview::All)]),
    )
        .prop_map(|(turn_ms, slow_mode_ms, comments_open, comment_review)| SettingsPatch {
            turn_ms,
            slow_mode_ms,
            comments_open,
            comment_review,
            ..Default::default()
        })
}

fn step() -> impl Strategy<Value = Step> {
    let actor = 0..7usize;
    prop_oneof![
        // Weighted so that many sequences reach closed and archived (delete ends a sequence).
        5 => (actor.clone(), prop_oneof![
            3 => Just(A::Open), 3 => Just(A::Close), 2 => Just(A::Pause), 2 => Just(A::Resume),
            2 => Just(A::Archive), 2 => Just(A::Unarchive), 1 => Just(A::Delete),
        ]).prop_map(|(a, x)| Step::Transition(a, x)),
        2 => (actor.clone(), prop::option::of(Just("改过的标题".to_owned())), prop::option::of(0..8u64))
            .prop_map(|(a, t, e)| Step::Update(a, t, e.map(|h| T0 + (3 + h) * H))),
        2 => (actor.clone(), patch()).prop_map(|(a, p)| Step::Settings(a, p)),
        1 => (actor, 0..4usize, prop::option::of(prop_oneof![Just(Share::See), Just(Share::Moderate)]))
            .prop_map(|(a, c, s)| Step::Share(a, c, s)),
        1 => (0..2 * H).prop_map(Step::Wait),
    ]
}

/// Everything about an activity but its state (which archive/unarchive still move).
fn content(a: &Activity) -> String {
    format!(
        "{:?}",
        (a.title(), a.topic(), a.description(), a.scheduled_start_ms(), a.planned_end_ms(), a.settings(), a.shares(), a.opened_ms(), a.closed_ms())
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_sequence_of_requests_makes_a_closed_activity_editable_again(steps in prop::collection::vec(step(), 1..40)) {
        let d = directory();
        let people = actors();
        let committees = ["sn", "sn-xa", "sn-bj", "sn-xa-lh"];
        let draft = ActivityDraft {
            title: "议政".into(),
            topic: "城乡融合".into(),
            description: String::new(),
            kind: ActivityKind::Livestream,
            committee: cid("sn-xa"),
            scheduled_start_ms: T0 + 2 * H,
            planned_end_ms: T0 + 4 * H,
            settings: SettingsPatch::default(),
        };
        let (mut a, _) = Activity::handle_schedule(ActivityId::new("xa-p").unwrap(), draft, &people[0], &d, T0).unwrap();
        // Half an hour before the start: it may be opened at once.
        let mut now = T0 + 90 * 60_000;
        let mut frozen: Option<String> = None;
        let mut left_scheduled = false;
        for step in steps {
            let before = a.clone();
            let actor = match &step {
                Step::Transition(i, _) | Step::Update(i, ..) | Step::Settings(i, _) | Step::Share(i, ..) => Some(&people[*i]),
                Step::Wait(_) => None,
            };
            let result: Result<(), AdminError> = match &step {
                Step::Transition(i, act) => match a.handle_transition(&people[*i], &d, *act, None, now) {
                    Ok(t) if t.to.is_none() => {
                        // Deleted: only ever from scheduled, and nothing more can happen to it.
                        prop_assert_eq!(t.from, S::Scheduled);
                        prop_assert!(before.opened_ms().is_none());
                        return Ok(());
                    }
                    r => r.map(drop),
                },
                Step::Update(i, title, end) => {
                    let p = ActivityPatch { title: title.clone(), planned_end_ms: *end, ..Default::default() };
                    a.handle_update(&people[*i], &d, &p, now).map(drop)
                }
                Step::Settings(i, p) => a.handle_settings(&people[*i], &d, p, now).map(drop),
                Step::Share(i, c, s) => a.handle_share(&people[*i], &d, &cid(committees[*c]), *s, now).map(drop),
                Step::Wait(ms) => {
                    now += ms;
                    Ok(())
                }
            };
            // Whoever may neither run nor organise it changes nothing (moderators only settings).
            if let Some(who) = actor {
                let access = before.access_of(who, &d);
                if access <= Access::See {
                    prop_assert!(result.is_err());
                    prop_assert_eq!(&a, &before);
                }
                if access == Access::Moderate && !matches!(step, Step::Settings(..)) {
                    prop_assert!(result.is_err());
                    prop_assert_eq!(&a, &before);
                }
            }
            // Once closed, only closed <-> archived moves; every edit is refused as read-only.
            if let Some(f) = &frozen {
                prop_assert_eq!(f, &content(&a));
                prop_assert!(a.state().is_read_only());
                if let (Step::Update(..) | Step::Settings(..) | Step::Share(..), Err(e)) = (&step, &result) {
                    prop_assert!(
                        matches!(e, AdminError::ReadOnly(_) | AdminError::RoleForbidden | AdminError::CommitteeForbidden),
                        "{:?}", e
                    );
                }
                prop_assert!(!matches!(step, Step::Update(..) | Step::Settings(..) | Step::Share(..)) || result.is_err());
            } else if a.state().is_read_only() {
                frozen = Some(content(&a));
            }
            left_scheduled |= a.state() != S::Scheduled;
            prop_assert!(!(left_scheduled && a.state() == S::Scheduled), "scheduled is never re-entered");
            prop_assert_eq!(a.opened_ms().is_some(), a.state() != S::Scheduled);
            prop_assert_eq!(a.closed_ms().is_some(), a.state().is_read_only());
            let r = a.rules(now);
            prop_assert_eq!(r.read_only, a.state().is_read_only());
            prop_assert_eq!(r.settings_editable, !r.read_only);
            prop_assert!(!r.comments_open || a.state() == S::Open);
            prop_assert!(!r.details_editable || a.state() == S::Scheduled);
            prop_assert_eq!(r.listed, a.state() != S::Archived);
        }
    }

    #[test]
    fn settings_are_accepted_exactly_when_every_value_is_in_range(
        turn_ms in prop_oneof![0..MIN_TURN_MS, MIN_TURN_MS..=MAX_TURN_MS, MAX_TURN_MS + 1..u64::MAX],
        slow in prop_oneof![Just(0u64), 1..MIN_SLOW_MODE_MS, MIN_SLOW_MODE_MS..=MAX_SLOW_MODE_MS, MAX_SLOW_MODE_MS + 1..u64::MAX],
        grace in prop_oneof![Just(0u64), 1..=MAX_GRACE_MS, MAX_GRACE_MS + 1..u64::MAX],
        commenters in prop_oneof![Just(Commenters::Public), Just(Commenters::Verified), Just(Commenters::MembersOnly)],
        words in prop::collection::vec("[a-z\u{4e00}-\u{4e10}]{1,40}", 0..5),
    ) {
        let base = ActivitySettings::defaults_for(ActivityKind::Livestream);
        let p = SettingsPatch {
            turn_ms: Some(turn_ms),
            slow_mode_ms: Some(slow),
            overtime: Some(Overtime::Grace { grace_ms: grace }),
            commenters: Some(commenters),
            block_words: Some(words.clone()),
            ..Default::default()
        };
        let in_range = (MIN_TURN_MS..=MAX_TURN_MS).contains(&turn_ms)
            && (slow == 0 || (MIN_SLOW_MODE_MS..=MAX_SLOW_MODE_MS).contains(&slow))
            && (1..=MAX_GRACE_MS).contains(&grace)
            && words.iter().all(|w| w.chars().count() <= 32);
        match base.with_patch(&p) {
            Ok((next, _)) => {
                prop_assert!(in_range);
                prop_assert_eq!(next.clone().validated(), Ok(next.clone()), "validation is idempotent");
                prop_assert_eq!(next.turn_ms, turn_ms);
            }
            Err(AdminError::Invalid { .. }) => prop_assert!(!in_range),
            Err(e) => prop_assert!(false, "unexpected {:?}", e),
        }
    }
}
