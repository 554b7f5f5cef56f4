//! The one error enum of the organisers' side (STYLE habit 6).
//!
//! Every refusal has a stable snake_case [`AdminError::code`] (what clients, the console and the
//! audit log see) and an HTTP status ([`AdminError::status`]) that the REST edge turns into its
//! response, answering `{"error": code, "message": …}` like `server::http::ApiError`. The
//! message is English, for people, and may change between versions; the code may not.

use super::lifecycle::{LifecycleAction, LifecycleState};

/// Why an organisers'-side request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// A field failed validation (length, characters, range, list size).
    #[error("{field}: {problem}")]
    Invalid {
        /// The field, as named in the API (`title`, `settings.turn_ms`, …).
        field: &'static str,
        /// What is wrong, for people.
        problem: String,
    },
    /// The schedule does not hold together (start in the past, end not after start, too long).
    #[error("schedule: {0}")]
    BadSchedule(String),
    /// A password that the policy refuses (too short, too long, equal to the user name).
    #[error("password: {0}")]
    WeakPassword(String),
    /// The activity does not exist (or was deleted).
    #[error("no such activity")]
    NoSuchActivity,
    /// The committee does not exist.
    #[error("no such committee")]
    NoSuchCommittee,
    /// The staff account does not exist.
    #[error("no such user")]
    NoSuchUser,
    /// The invitation does not exist.
    #[error("no such invitation")]
    NoSuchInvitation,
    /// An id (activity, committee, user name) that is taken already.
    #[error("{0} exists already")]
    AlreadyExists(&'static str),
    /// A committee's parent is missing or of the wrong level (a county sits under a city, a
    /// city under a province, a province under nothing).
    #[error("committee: {0}")]
    BadParent(String),
    /// The lifecycle does not allow this action in this state.
    #[error("cannot {action} an activity that is {state}")]
    BadTransition {
        /// What was asked.
        action: LifecycleAction,
        /// Where the activity is.
        state: LifecycleState,
    },
    /// Opening more than `activity::OPEN_EARLY_MS` before the scheduled start.
    #[error("too early to open: it may open from {opens_from_ms} (ms since the Unix epoch)")]
    TooEarly {
        /// The earliest time it may be opened.
        opens_from_ms: u64,
    },
    /// A closed or archived activity is read-only.
    #[error("the activity is {0}; it is read-only")]
    ReadOnly(LifecycleState),
    /// A field that is fixed once the activity has started (title, topic, start …).
    #[error("{0} cannot change once the activity has started")]
    LockedWhileLive(&'static str),
    /// The activity belongs to another committee and the caller's committee is not invited to
    /// it (or not invited to do this).
    #[error("this activity belongs to another committee")]
    CommitteeForbidden,
    /// The caller's committee may do this, but the caller's role may not.
    #[error("your role may not do this")]
    RoleForbidden,
    /// A staff sign-in failed: unknown user or wrong password (deliberately not told apart).
    #[error("wrong user name or password")]
    BadCredentials,
    /// The staff account is disabled.
    #[error("the account is disabled")]
    AccountDisabled,
    /// A staff session token that is missing, forged, malformed or expired.
    #[error("not signed in: {0}")]
    Unauthenticated(String),
    /// The person already holds a live invitation to this activity (revoke it first, or
    /// re-issue).
    #[error("this person is invited already")]
    AlreadyInvited,
    /// An invitation link that is forged, malformed or for another purpose.
    #[error("invalid invitation link")]
    InvitationInvalid,
    /// An invitation link past its expiry.
    #[error("the invitation has expired")]
    InvitationExpired,
    /// An invitation that the organisers revoked.
    #[error("the invitation was revoked")]
    InvitationRevoked,
    /// Redeeming an invitation to an activity that is closed or archived.
    #[error("the activity is over")]
    ActivityOver,
    /// A per-activity or per-platform limit (invitations, committees, shares).
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    /// Hashing failed (argon2 refused its parameters); a configuration bug, not the caller's.
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl AdminError {
    /// The stable code (snake_case). The REST edge puts it in `{"error": code}`.
    pub fn code(&self) -> &'static str {
        use AdminError::*;
        match self {
            Invalid { .. } => "invalid",
            BadSchedule(_) => "bad_schedule",
            WeakPassword(_) => "weak_password",
            NoSuchActivity => "no_such_activity",
            NoSuchCommittee => "no_such_committee",
            NoSuchUser => "no_such_user",
            NoSuchInvitation => "no_such_invitation",
            AlreadyExists(_) => "already_exists",
            BadParent(_) => "bad_parent",
            BadTransition { .. } => "bad_transition",
            TooEarly { .. } => "too_early",
            ReadOnly(_) => "read_only",
            LockedWhileLive(_) => "locked_while_live",
            CommitteeForbidden => "committee_forbidden",
            RoleForbidden => "role_forbidden",
            BadCredentials => "bad_credentials",
            AccountDisabled => "account_disabled",
            Unauthenticated(_) => "unauthenticated",
            AlreadyInvited => "already_invited",
            InvitationInvalid => "invitation_invalid",
            InvitationExpired => "invitation_expired",
            InvitationRevoked => "invitation_revoked",
            ActivityOver => "activity_over",
            LimitReached(_) => "limit_reached",
            Hashing(_) => "internal",
        }
    }

    /// The HTTP status the REST edge answers with.
    ///
    /// 400 malformed or invalid input; 401 not (or wrongly) signed in, bad invitation link;
    /// 403 signed in but not allowed; 404 unknown resource; 409 the resource's state refuses
    /// it; 410 an invitation that is no longer good (expired, revoked, activity over);
    /// 500 a bug.
    pub fn status(&self) -> u16 {
        use AdminError::*;
        match self {
            Invalid { .. } | BadSchedule(_) | WeakPassword(_) | BadParent(_) => 400,
            BadCredentials | Unauthenticated(_) | InvitationInvalid => 401,
            CommitteeForbidden | RoleForbidden | AccountDisabled => 403,
            NoSuchActivity | NoSuchCommittee | NoSuchUser | NoSuchInvitation => 404,
            AlreadyExists(_) | BadTransition { .. } | TooEarly { .. } | ReadOnly(_)
            | LockedWhileLive(_) | AlreadyInvited | LimitReached(_) => 409,
            InvitationExpired | InvitationRevoked | ActivityOver => 410,
            Hashing(_) => 500,
        }
    }

    /// Shorthand for a field refusal.
    pub(crate) fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        AdminError::Invalid { field, problem: problem.into() }
    }
}

/// Every code [`AdminError::code`] can return, for the OpenAPI document and the console's
/// message table. A test checks it against the enum.
pub const ERROR_CODES: &[&str] = &[
    "invalid",
    "bad_schedule",
    "weak_password",
    "no_such_activity",
    "no_such_committee",
    "no_such_user",
    "no_such_invitation",
    "already_exists",
    "bad_parent",
    "bad_transition",
    "too_early",
    "read_only",
    "locked_while_live",
    "committee_forbidden",
    "role_forbidden",
    "bad_credentials",
    "account_disabled",
    "unauthenticated",
    "already_invited",
    "invitation_invalid",
    "invitation_expired",
    "invitation_revoked",
    "activity_over",
    "limit_reached",
    "internal",
];
