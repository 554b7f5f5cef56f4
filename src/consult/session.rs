//! What the organisers set for a running session, as one value the state machine reconciles
//! itself with ([`Consultation::handle_session_settings`](super::Consultation::handle_session_settings)).
//!
//! The organisers' side (`crate::admin`) owns the settings and the lifecycle; the moderation
//! driver owns the running [`Consultation`](super::Consultation). Rather than replaying every
//! change as a command, the driver hands the state machine the *whole* desired state after each
//! change (and once when it starts): the state machine compares it with what it has and applies
//! the difference. So a lost, repeated or reordered update cannot leave the session out of step,
//! and a driver that starts (or restarts from a checkpoint) catches up in one step.
//!
//! ```text
//! organisers: change settings / pause  ──▶ SessionSettings (the whole desired state)
//! driver:     c.handle_session_settings(&organiser, &s, now) ──▶ [what changed]
//!             events: comment_modes, floor (mode_changed, muted_all, hands_changed)
//!             audit:  the organisers' notes, appended by the driver to the same hash chain
//! ```

use serde::{Deserialize, Serialize};

use super::floor::{FloorMode, OvertimeRule};
use super::ids::ParticipantId;

/// The organisers' settings as the moderation state machine needs them (the mapping from
/// `crate::admin::ActivitySettings` and the lifecycle state is `ActivitySettings::session_settings`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSettings {
    /// Chaired or open discussion (while paused the floor is chaired whatever this says).
    pub floor_mode: FloorMode,
    /// The limit of a grant that names none, ms.
    pub default_turn_ms: u64,
    /// When an expired turn is taken back.
    pub overtime: OvertimeRule,
    /// Auto-advance, each turn `default_turn_ms`.
    pub auto_advance: bool,
    /// Questions of the public wait for review.
    pub question_review: bool,
    /// 先审后发: comments of viewers and guests wait for review.
    pub review: bool,
    /// Slow mode interval, ms; `None` off.
    pub slow_mode_ms: Option<u64>,
    /// Only verified identities may comment.
    pub verified_only: bool,
    /// Only members, guests and moderators may comment.
    pub lockdown: bool,
    /// Blocked words.
    pub block_words: Vec<String>,
    /// Hold words (empty when review is off: 先发后审).
    pub hold_words: Vec<String>,
    /// Comments accepted now (apart from a pause).
    pub comments_open: bool,
    /// Questions accepted now (apart from a pause).
    pub questions_open: bool,
    /// Who may raise a hand and be granted the floor, besides moderators: `None` every
    /// member and guest; `Some(list)` only these.
    pub stage: Option<Vec<ParticipantId>>,
    /// Paused: only moderators act; the floor is taken back and chaired.
    pub paused: bool,
}

/// One field of [`SessionSettings`] that a reconciliation changed (what the driver reports and
/// tests assert on).
pub type Changed = &'static str;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consult::grants::tests::grants;
    use crate::consult::{Addressed, Audience, ConsultError, ConsultEvent, Consultation, ConsultationConfig, GrantTarget};
    use shangliang_signaling::{ActivityId, Role};

    fn base() -> SessionSettings {
        SessionSettings {
            floor_mode: FloorMode::Chaired,
            default_turn_ms: 180_000,
            overtime: OvertimeRule::Hard,
            auto_advance: false,
            question_review: true,
            review: false,
            slow_mode_ms: None,
            verified_only: false,
            lockdown: false,
            block_words: vec![],
            hold_words: vec![],
            comments_open: true,
            questions_open: true,
            stage: None,
            paused: false,
        }
    }

    fn session() -> Consultation {
        let mut c = Consultation::new(ActivityId::new("act-1").unwrap(), ConsultationConfig::default(), 0);
        for (who, role) in [("chair", Role::Moderator), ("wang", Role::Member), ("li", Role::Guest)] {
            c.handle_join(&grants(who, role), 0).unwrap();
        }
        while c.poll_event().is_some() {}
        c
    }

    fn events(c: &mut Consultation) -> Vec<Addressed> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    #[test]
    fn the_same_settings_twice_change_nothing_the_second_time() {
        let (mut c, m) = (session(), grants("chair", Role::Moderator));
        let s = SessionSettings { slow_mode_ms: Some(10_000), review: true, floor_mode: FloorMode::Open, ..base() };
        let changed = c.handle_session_settings(&m, &s, 1).unwrap();
        assert_eq!(changed, ["floor_mode", "review", "slow_mode_ms"]);
        assert!(events(&mut c).iter().any(|e| matches!(&e.event, ConsultEvent::CommentModes { modes } if modes.review && modes.slow_mode_ms == Some(10_000))));
        assert!(c.handle_session_settings(&m, &s, 2).unwrap().is_empty());
        assert!(events(&mut c).is_empty(), "nothing to announce");
        assert!(c.audit().entries().is_empty(), "the driver logs the organisers' notes, not the reconciliation");
    }

    #[test]
    fn a_pause_refuses_everyone_but_moderators_and_a_resume_restores_the_mode() {
        let (mut c, m, wang) = (session(), grants("chair", Role::Moderator), grants("wang", Role::Member));
        let topic = ActivityId::new("act-1").unwrap();
        c.handle_session_settings(&m, &SessionSettings { floor_mode: FloorMode::Open, ..base() }, 1).unwrap();
        c.handle_grant_floor(&m, GrantTarget::Participant("wang".into()), None, 2).unwrap();
        let paused = SessionSettings { floor_mode: FloorMode::Open, paused: true, ..base() };
        assert_eq!(c.handle_session_settings(&m, &paused, 3).unwrap(), ["paused", "floor_mode"]);
        assert_eq!(c.floor().holder(), None, "the turn ends");
        assert!(!c.may_speak(&"wang".into()), "nobody but moderators is heard");
        let refused = |d| matches!(d, crate::consult::CommentDecision::Refuse(ConsultError::Paused));
        assert!(refused(c.handle_post_comment(&wang, &topic, "发言", 4)));
        assert_eq!(c.handle_raise_hand(&wang, 4), Err(ConsultError::Paused));
        assert_eq!(c.handle_submit_question(&wang, "问题", false, 4), Err(ConsultError::Paused));
        assert_eq!(c.handle_grant_floor(&m, GrantTarget::Participant("wang".into()), None, 4), Err(ConsultError::Paused));
        assert!(!refused(c.handle_post_comment(&m, &topic, "主持人说明", 4)));
        let changed = c.handle_session_settings(&m, &SessionSettings { paused: false, ..paused }, 5).unwrap();
        assert_eq!(changed, ["paused", "floor_mode"]);
        assert_eq!(c.floor().mode(), FloorMode::Open);
        assert!(c.may_speak(&"wang".into()));
        c.handle_raise_hand(&wang, 6).unwrap();
    }

    #[test]
    fn closed_comments_and_questions_are_refused_with_their_own_code() {
        let (mut c, m, li) = (session(), grants("chair", Role::Moderator), grants("li", Role::Guest));
        let topic = ActivityId::new("act-1").unwrap();
        c.handle_session_settings(&m, &SessionSettings { comments_open: false, questions_open: false, ..base() }, 1).unwrap();
        assert!(matches!(
            c.handle_post_comment(&li, &topic, "评论", 2),
            crate::consult::CommentDecision::Refuse(ConsultError::InteractionClosed("comments"))
        ));
        assert_eq!(c.handle_submit_question(&li, "问题", false, 2), Err(ConsultError::InteractionClosed("questions")));
        assert_eq!(ConsultError::InteractionClosed("comments").wire_code(), shangliang_signaling::ErrorCode::InteractionClosed);
    }

    #[test]
    fn the_default_turn_and_the_overtime_rule_shape_the_next_grants() {
        let (mut c, m) = (session(), grants("chair", Role::Moderator));
        let s = SessionSettings { default_turn_ms: 60_000, overtime: OvertimeRule::Grace { grace_ms: 30_000 }, ..base() };
        c.handle_session_settings(&m, &s, 0).unwrap();
        c.handle_grant_floor(&m, GrantTarget::Participant("wang".into()), None, 1_000).unwrap();
        assert_eq!(c.floor().current().unwrap().allotted_ms, 60_000);
        assert_eq!(c.poll_timeout(), Some(91_000), "taken back 30 s after the deadline");
        c.handle_tick(61_000);
        assert_eq!(c.floor().holder().map(|p| p.as_str()), Some("wang"), "in grace");
        c.handle_tick(91_000);
        assert_eq!(c.floor().holder(), None);
        c.handle_session_settings(&m, &SessionSettings { overtime: OvertimeRule::Soft, ..s }, 92_000).unwrap();
        c.handle_grant_floor(&m, GrantTarget::Participant("li".into()), None, 92_000).unwrap();
        assert_eq!(c.poll_timeout(), None, "soft: never taken back by the clock");
        c.handle_tick(10_000_000);
        assert_eq!(c.floor().holder().map(|p| p.as_str()), Some("li"));
    }

    #[test]
    fn a_stage_line_up_lowers_the_hands_it_leaves_out_and_refuses_them_the_floor() {
        let (mut c, m) = (session(), grants("chair", Role::Moderator));
        c.handle_raise_hand(&grants("wang", Role::Member), 1).unwrap();
        c.handle_raise_hand(&grants("li", Role::Guest), 1).unwrap();
        events(&mut c);
        let s = SessionSettings { stage: Some(vec!["li".into()]), ..base() };
        assert_eq!(c.handle_session_settings(&m, &s, 2).unwrap(), ["stage"]);
        assert_eq!(c.floor().hands(), [crate::consult::ParticipantId::new("li")]);
        assert!(events(&mut c).iter().any(|e| e.audience == Audience::Everyone && matches!(e.event, ConsultEvent::Floor(_))));
        assert_eq!(c.handle_raise_hand(&grants("wang", Role::Member), 3), Err(ConsultError::NotEligible("wang".into())));
        assert_eq!(
            c.handle_grant_floor(&m, GrantTarget::Participant("wang".into()), None, 3),
            Err(ConsultError::NotEligible("wang".into()))
        );
        c.handle_grant_floor(&m, GrantTarget::NextHand, None, 3).unwrap();
        assert_eq!(c.floor().holder().map(|p| p.as_str()), Some("li"));
    }

    #[test]
    fn only_a_moderator_may_reconcile_and_nothing_changes_on_a_refusal() {
        let mut c = session();
        let s = SessionSettings { paused: true, ..base() };
        assert_eq!(c.handle_session_settings(&grants("wang", Role::Member), &s, 1), Err(ConsultError::Forbidden));
        assert!(!c.comments().modes().paused);
        assert_eq!(
            c.handle_session_settings(&grants("chair", Role::Moderator), &SessionSettings { default_turn_ms: 0, ..base() }, 1),
            Err(ConsultError::BadTimeLimit)
        );
    }
}
