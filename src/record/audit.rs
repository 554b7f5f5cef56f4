//! Rows of the moderators' audit log.
//!
//! The chain itself (what is hashed, how) belongs to `consult`, which owns the audit state
//! machine; the record stores entries and refuses one that does not continue its activity's
//! chain (`idx` must be the last `idx + 1`, `prev_hash` the last `hash`), so two writers or a
//! bug cannot fork it silently.

use serde::{Deserialize, Serialize};
use shangliang_signaling::ActivityId;

/// A SHA-256 digest.
pub type AuditHash = [u8; 32];

/// The `prev_hash` of an activity's first entry.
pub const GENESIS_HASH: AuditHash = [0; 32];

/// One moderator action, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The activity the action was taken in.
    pub activity: ActivityId,
    /// Position in the activity's log: 1, 2, 3 ... without gaps.
    pub idx: u64,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// Who took it (the token subject).
    pub actor: String,
    /// What was done, e.g. `hide_comment`, `grant_floor`.
    pub action: String,
    /// What it was done to (a seq, a participant id ...), if anything.
    pub target: Option<String>,
    /// The action's parameters (a limit, a new setting ...), if any.
    #[serde(default)]
    pub detail: Option<String>,
    /// The reason the moderator gave, if any.
    pub reason: Option<String>,
    /// The previous entry's `hash`, or [`GENESIS_HASH`] for `idx == 1`.
    pub prev_hash: AuditHash,
    /// This entry's hash, computed by the caller over its fields and `prev_hash`.
    pub hash: AuditHash,
}
