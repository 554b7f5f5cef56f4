//! Roles and grants: who may do what in an activity, and the one error enum of the domain.
//!
//! A [`Grants`] is what the server extracted from a verified token. [`authorize`] decides by
//! role alone; state-dependent refusals (not your turn, already voted, banned ...) come from
//! the state machines, with the same [`ConsultError`].

use serde::{Deserialize, Serialize};
use shangliang_signaling::{ActivityId, Author, ErrorCode, Org, Role};

use super::ids::{ParticipantId, QuestionId};
use super::text::TextError;
use shangliang_signaling::Seq;

/// What a verified token grants its bearer in one activity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// The token's subject.
    pub subject: ParticipantId,
    /// Display name.
    pub name: String,
    /// Role in the activity.
    pub role: Role,
    /// The organisation, for members and staff.
    pub org: Option<Org>,
    /// Whether the organisers verified the identity (real name).
    pub verified: bool,
    /// The activity the token is for; it grants nothing anywhere else.
    pub activity: ActivityId,
}

impl Grants {
    /// How other readers see this identity on a comment or question.
    pub fn author(&self) -> Author {
        Author {
            id: self.subject.clone(),
            name: self.name.clone(),
            role: self.role,
            verified: self.verified,
        }
    }
}

/// Every action of the domain, as [`authorize`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Enter the activity (attendance).
    Join,
    /// Raise one's own hand to ask for the floor.
    RaiseHand,
    /// Lower one's own hand.
    LowerOwnHand,
    /// Lower someone else's hand.
    LowerHandOf,
    /// Give the floor (to the next hand or a named participant).
    GrantFloor,
    /// Give the current speaker more time.
    ExtendFloor,
    /// Take the floor back.
    RevokeFloor,
    /// Give up one's own floor.
    YieldFloor,
    /// Switch between chaired and open mode, or set auto-advance.
    SetFloorMode,
    /// Mute everybody but the moderators.
    MuteAll,
    /// Submit a question.
    SubmitQuestion,
    /// Upvote or un-vote a published question.
    VoteQuestion,
    /// Publish, reject, put on stage, mark answered, dismiss, pin or unpin a question.
    ModerateQuestion,
    /// See every question including pending ones and anonymous askers.
    ViewAllQuestions,
    /// Post a live comment.
    PostComment,
    /// Approve a held comment or hide one.
    ModerateComment,
    /// Set comment modes (review, slow mode, verified-only, lockdown) and keyword lists.
    SetCommentPolicy,
    /// Time out, ban or unban an identity.
    Discipline,
    /// Read the session record (summary, export).
    ReadRecord,
}

/// Why an action was refused. The set is stable; [`ConsultError::code`] is what clients and
/// the record see.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConsultError {
    /// The role may not do this.
    #[error("your role may not do this")]
    Forbidden,
    /// The grants are for another activity.
    #[error("the token is for another activity")]
    WrongActivity,
    /// Only the floor holder may do this (yield).
    #[error("you do not hold the floor")]
    NotYourTurn,
    /// Nobody holds the floor.
    #[error("nobody holds the floor")]
    NoFloorHolder,
    /// The floor was to go to the next hand, but no hand is raised.
    #[error("no hand is raised")]
    NoHands,
    /// The named participant is not present, or may not hold the floor.
    #[error("{0} is not present or may not take the floor")]
    NotEligible(ParticipantId),
    /// A time limit or extension of zero.
    #[error("a time limit must be positive")]
    BadTimeLimit,
    /// No such question (or not one the caller may see).
    #[error("no such question {0}")]
    NoSuchQuestion(QuestionId),
    /// The question is not in a state that allows this.
    #[error("question {id} is {state}; cannot {op}")]
    BadQuestionState {
        /// The question.
        id: QuestionId,
        /// Its state.
        state: String,
        /// What was asked.
        op: String,
    },
    /// The asker has too many questions waiting for review.
    #[error("you have {0} questions waiting for review already")]
    TooManyQuestions(usize),
    /// The identity already upvoted this question.
    #[error("you already voted for this question")]
    AlreadyVoted,
    /// Un-vote without a vote.
    #[error("you have not voted for this question")]
    NotVoted,
    /// The identity is banned from this activity.
    #[error("you are banned from this activity")]
    Banned,
    /// The identity is timed out until the given time.
    #[error("you are timed out until {until_ms}")]
    TimedOut {
        /// When the timeout ends (ms since the Unix epoch).
        until_ms: u64,
    },
    /// Too many comments from this identity: the per-identity rate limit.
    #[error("too many comments; wait a moment")]
    RateLimited {
        /// In how many ms the next comment would be allowed.
        retry_after_ms: u64,
    },
    /// Slow mode: the identity posted too recently.
    #[error("slow mode: try again in {retry_after_ms} ms")]
    SlowMode {
        /// How long to wait.
        retry_after_ms: u64,
    },
    /// Lockdown: only members, guests and moderators may post.
    #[error("comments are limited to members, guests and moderators")]
    Lockdown,
    /// Verified-only mode: unverified identities may not post.
    #[error("only verified identities may post now")]
    VerifiedOnly,
    /// The text contains a blocked word.
    #[error("the text contains a blocked word")]
    Blocked,
    /// The text was refused by normalisation.
    #[error("{0}")]
    Text(TextError),
    /// No comment with this sequence number is known.
    #[error("no such comment {0}")]
    NoSuchComment(Seq),
    /// The comment is not held (approve).
    #[error("comment {0} is not held")]
    NotHeld(Seq),
    /// The comment is already hidden.
    #[error("comment {0} is already hidden")]
    AlreadyHidden(Seq),
    /// Moderators cannot be disciplined.
    #[error("moderators cannot be timed out or banned")]
    CannotDisciplineModerator,
    /// The organisers paused the session (only moderators act until it resumes).
    #[error("the session is paused")]
    Paused,
    /// The organisers closed comments or questions for now (`what`: `comments`, `questions`).
    #[error("the organisers have closed {0} for now")]
    InteractionClosed(&'static str),
    /// The question holds as many anonymous votes from this address block as it may
    /// (`super::votes`).
    #[error("this question already counts {cap} anonymous votes from your network; a verified identity's vote still counts")]
    VoteCapped {
        /// The cap per question and address block.
        cap: u32,
    },
    /// Too many anonymous votes from this address block (`super::votes`).
    #[error("too many votes from your network; try again in {retry_after_ms} ms")]
    VotesRateLimited {
        /// In how many ms the next vote would be allowed.
        retry_after_ms: u64,
    },
}

impl ConsultError {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            ConsultError::Forbidden => "forbidden",
            ConsultError::WrongActivity => "wrong_activity",
            ConsultError::NotYourTurn => "not_your_turn",
            ConsultError::NoFloorHolder => "no_floor_holder",
            ConsultError::NoHands => "no_hands",
            ConsultError::NotEligible(_) => "not_eligible",
            ConsultError::BadTimeLimit => "bad_time_limit",
            ConsultError::NoSuchQuestion(_) => "no_such_question",
            ConsultError::BadQuestionState { .. } => "bad_question_state",
            ConsultError::TooManyQuestions(_) => "too_many_questions",
            ConsultError::AlreadyVoted => "already_voted",
            ConsultError::NotVoted => "not_voted",
            ConsultError::Banned => "banned",
            ConsultError::TimedOut { .. } => "timed_out",
            ConsultError::RateLimited { .. } => "rate_limited",
            ConsultError::SlowMode { .. } => "slow_mode",
            ConsultError::Lockdown => "lockdown",
            ConsultError::VerifiedOnly => "verified_only",
            ConsultError::Blocked => "blocked",
            ConsultError::Text(TextError::Empty) => "text_empty",
            ConsultError::Text(TextError::TooLong(_)) => "text_too_long",
            ConsultError::Text(TextError::Control) => "text_invalid",
            ConsultError::NoSuchComment(_) => "no_such_comment",
            ConsultError::NotHeld(_) => "not_held",
            ConsultError::AlreadyHidden(_) => "already_hidden",
            ConsultError::CannotDisciplineModerator => "cannot_discipline_moderator",
            ConsultError::Paused => "paused",
            ConsultError::InteractionClosed(_) => "interaction_closed",
            ConsultError::VoteCapped { .. } => "vote_capped",
            ConsultError::VotesRateLimited { .. } => "rate_limited",
        }
    }

    /// The wire [`ErrorCode`]: one per refusal, so clients can tell "not your turn" from
    /// "banned" (`forbidden` only for role and activity refusals).
    pub fn wire_code(&self) -> ErrorCode {
        match self {
            ConsultError::Text(e) => e.code(),
            ConsultError::Forbidden | ConsultError::WrongActivity => ErrorCode::Forbidden,
            ConsultError::NotYourTurn => ErrorCode::NotYourTurn,
            ConsultError::NoFloorHolder => ErrorCode::NoFloorHolder,
            ConsultError::NoHands => ErrorCode::NoHands,
            ConsultError::NotEligible(_) => ErrorCode::NotEligible,
            ConsultError::BadTimeLimit => ErrorCode::BadTimeLimit,
            ConsultError::NoSuchQuestion(_) => ErrorCode::NoSuchQuestion,
            ConsultError::BadQuestionState { .. } => ErrorCode::BadQuestionState,
            ConsultError::TooManyQuestions(_) => ErrorCode::TooManyQuestions,
            ConsultError::AlreadyVoted => ErrorCode::AlreadyVoted,
            ConsultError::NotVoted => ErrorCode::NotVoted,
            ConsultError::Banned => ErrorCode::Banned,
            ConsultError::TimedOut { .. } => ErrorCode::TimedOut,
            ConsultError::RateLimited { .. } => ErrorCode::RateLimited,
            ConsultError::SlowMode { .. } => ErrorCode::SlowMode,
            ConsultError::Lockdown => ErrorCode::Lockdown,
            ConsultError::VerifiedOnly => ErrorCode::VerifiedOnly,
            ConsultError::Blocked => ErrorCode::Blocked,
            ConsultError::NoSuchComment(_) => ErrorCode::NoSuchComment,
            ConsultError::NotHeld(_) => ErrorCode::NotHeld,
            ConsultError::AlreadyHidden(_) => ErrorCode::AlreadyHidden,
            ConsultError::CannotDisciplineModerator => ErrorCode::CannotDisciplineModerator,
            ConsultError::Paused => ErrorCode::Paused,
            ConsultError::InteractionClosed(_) => ErrorCode::InteractionClosed,
            ConsultError::VoteCapped { .. } => ErrorCode::VoteCapped,
            ConsultError::VotesRateLimited { .. } => ErrorCode::RateLimited,
        }
    }
}

impl From<TextError> for ConsultError {
    fn from(e: TextError) -> Self {
        ConsultError::Text(e)
    }
}

/// Decides by role whether the bearer of `grants` may attempt `action`.
///
/// | action | roles |
/// |---|---|
/// | join, yield, submit/vote question, post comment | everyone |
/// | raise hand | member, guest (a moderator already may speak; a viewer does not publish) |
/// | lower own hand | member, guest, moderator (a viewer has no hand to lower) |
/// | everything else (floor control, moderation, discipline, record) | moderator |
pub fn authorize(grants: &Grants, action: Action) -> Result<(), ConsultError> {
    use Action::*;
    let ok = match action {
        Join | YieldFloor | SubmitQuestion | VoteQuestion | PostComment => true,
        LowerOwnHand => grants.role != Role::Viewer,
        RaiseHand => matches!(grants.role, Role::Member | Role::Guest),
        LowerHandOf | GrantFloor | ExtendFloor | RevokeFloor | SetFloorMode | MuteAll
        | ModerateQuestion | ViewAllQuestions | ModerateComment | SetCommentPolicy | Discipline
        | ReadRecord => grants.role.is_moderator(),
    };
    if ok {
        Ok(())
    } else {
        Err(ConsultError::Forbidden)
    }
}

/// [`authorize`], after checking that the grants are for `activity`.
pub fn authorize_in(
    grants: &Grants,
    activity: &ActivityId,
    action: Action,
) -> Result<(), ConsultError> {
    if &grants.activity != activity {
        return Err(ConsultError::WrongActivity);
    }
    authorize(grants, action)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn grants(id: &str, role: Role) -> Grants {
        Grants {
            subject: ParticipantId::new(id),
            name: id.to_uppercase(),
            role,
            org: None,
            verified: role != Role::Viewer,
            activity: ActivityId::new("act-1").unwrap(),
        }
    }

    #[test]
    fn viewer_cannot_grant_the_floor() {
        let v = grants("v", Role::Viewer);
        assert_eq!(
            authorize(&v, Action::GrantFloor),
            Err(ConsultError::Forbidden)
        );
        assert_eq!(
            authorize(&v, Action::RaiseHand),
            Err(ConsultError::Forbidden)
        );
        assert!(authorize(&v, Action::PostComment).is_ok());
        assert!(authorize(&v, Action::VoteQuestion).is_ok());
    }

    #[test]
    fn a_viewer_cannot_lower_a_hand_as_the_protocol_says() {
        assert_eq!(authorize(&grants("v", Role::Viewer), Action::LowerOwnHand), Err(ConsultError::Forbidden));
        for role in [Role::Member, Role::Guest, Role::Moderator] {
            assert!(authorize(&grants("x", role), Action::LowerOwnHand).is_ok(), "{role:?}");
        }
    }

    #[test]
    fn only_moderators_moderate() {
        for role in [Role::Member, Role::Guest, Role::Viewer] {
            let g = grants("x", role);
            for a in [
                Action::GrantFloor,
                Action::RevokeFloor,
                Action::ModerateQuestion,
                Action::ModerateComment,
                Action::SetCommentPolicy,
                Action::Discipline,
                Action::ReadRecord,
                Action::MuteAll,
            ] {
                assert_eq!(
                    authorize(&g, a),
                    Err(ConsultError::Forbidden),
                    "{role:?} {a:?}"
                );
            }
        }
        let m = grants("m", Role::Moderator);
        assert!(authorize(&m, Action::Discipline).is_ok());
    }

    #[test]
    fn grants_for_another_activity_grant_nothing() {
        let m = grants("m", Role::Moderator);
        let other = ActivityId::new("other").unwrap();
        assert_eq!(
            authorize_in(&m, &other, Action::Join),
            Err(ConsultError::WrongActivity)
        );
    }

    #[test]
    fn error_codes_are_stable_snake_case() {
        assert_eq!(ConsultError::NotYourTurn.code(), "not_your_turn");
        assert_eq!(ConsultError::TimedOut { until_ms: 5 }.code(), "timed_out");
        assert_eq!(ConsultError::Text(TextError::Empty).code(), "text_empty");
        let e = ConsultError::SlowMode { retry_after_ms: 7 };
        assert_eq!(e.code(), "slow_mode");
        assert_eq!(e.to_string(), "slow mode: try again in 7 ms");
    }
}
