//! The organisers' entries for an activity's audit log, as values: every change of the
//! organisers' side returns them, and the hub appends them to the activity's hash-chained log
//! (through its moderation driver, so the chain has one writer). A leaf module.

use serde::{Deserialize, Serialize};

/// One entry for the activity's audit log, in the shape of
/// [`crate::consult::AuditLog::append`]: the wiring appends it to the same hash chain as the
/// moderators' actions (through the driver while the session runs, to the record otherwise).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditNote {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Who ([`Actor::audit_name`]; for an invitation's use, the person).
    pub actor: String,
    /// What, snake_case (`activity_opened`, `invitation_issued`, `settings_changed` …).
    pub action: &'static str,
    /// To what (a setting, an invitation id, a committee), or empty.
    pub target: String,
    /// Parameters (a new value, a state change `open->paused`), or empty.
    pub detail: String,
    /// Why, when the actor gave a reason.
    pub reason: Option<String>,
}

impl AuditNote {
    pub(crate) fn new(at_ms: u64, actor: String, action: &'static str, target: impl Into<String>, detail: impl Into<String>) -> Self {
        AuditNote { at_ms, actor, action, target: target.into(), detail: detail.into(), reason: None }
    }
}

