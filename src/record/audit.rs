//! How an audit entry is stored: the one [`AuditEntry`] type of the protocol (what moderators'
//! consoles receive and `consult::audit` chains), as a row of the `audit_log` table
//! ([`AuditRow`], also what a Merkle leaf of the record covers: `merkle::audit_leaf`).
//!
//! The chain itself (what is hashed, how) belongs to `consult::audit`, which owns the audit
//! state machine; the record only refuses a row that does not continue its activity's chain.
//! Differences of the row from the entry: `idx` counts from 1 (`index + 1`), the hashes are 32
//! raw bytes instead of hex, and an empty `target` or `detail` is NULL.

use shangliang_signaling::consult::AuditEntry;
use shangliang_signaling::{ActivityId, ParticipantId};

use super::RecordError;

/// A SHA-256 digest.
pub type AuditHash = [u8; 32];

/// The `prev_hash` of an activity's first row.
pub const GENESIS_HASH: AuditHash = [0; 32];

/// One row of `audit_log`: an audit entry as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// The activity whose log it is in.
    pub activity: ActivityId,
    /// Position in the activity's log: 1, 2, 3 ... without gaps.
    pub idx: u64,
    /// When the action was taken, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// Who took it (the token subject).
    pub actor: String,
    /// What was done, as `consult` names it (`comment_hidden`, `floor_granted` ...).
    pub action: String,
    /// What it was done to, if anything.
    pub target: Option<String>,
    /// The action's parameters, if any.
    pub detail: Option<String>,
    /// The reason the moderator gave, if any.
    pub reason: Option<String>,
    /// The previous row's `hash`, or [`GENESIS_HASH`] for `idx == 1`.
    pub prev_hash: AuditHash,
    /// This entry's hash.
    pub hash: AuditHash,
}

fn hash_of(hex_str: &str, what: &str) -> Result<AuditHash, RecordError> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(hex_str, &mut h)
        .map_err(|_| RecordError::Corrupt(format!("audit {what} {hex_str:?} is not 32 bytes of hex")))?;
    Ok(h)
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl AuditRow {
    /// The row that stores `e` in `activity`'s log. `Err(Corrupt)` if its hashes are not 32
    /// bytes of hex.
    pub fn from_entry(activity: &ActivityId, e: &AuditEntry) -> Result<AuditRow, RecordError> {
        Ok(AuditRow {
            activity: activity.clone(),
            idx: e.index + 1,
            ts_ms: e.at_ms,
            actor: e.actor.as_str().to_owned(),
            action: e.action.clone(),
            target: non_empty(&e.target),
            detail: non_empty(&e.detail),
            reason: e.reason.clone(),
            prev_hash: hash_of(&e.prev_hash, "prev_hash")?,
            hash: hash_of(&e.hash, "hash")?,
        })
    }

    /// The entry this row stores.
    pub fn into_entry(self) -> AuditEntry {
        AuditEntry {
            index: self.idx.saturating_sub(1),
            at_ms: self.ts_ms,
            actor: ParticipantId::from(self.actor),
            action: self.action,
            target: self.target.unwrap_or_default(),
            detail: self.detail.unwrap_or_default(),
            reason: self.reason,
            prev_hash: hex::encode(self.prev_hash),
            hash: hex::encode(self.hash),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_survives_the_row_and_back() {
        let e = AuditEntry {
            index: 4,
            at_ms: 1_000,
            actor: ParticipantId::new("moderator:主持人"),
            action: "comment_hidden".into(),
            target: "#12".into(),
            detail: String::new(),
            reason: Some("广告".into()),
            prev_hash: hex::encode([7u8; 32]),
            hash: hex::encode([9u8; 32]),
        };
        let row = AuditRow::from_entry(&ActivityId::new("demo").unwrap(), &e).unwrap();
        assert_eq!((row.idx, row.detail.as_deref(), row.target.as_deref()), (5, None, Some("#12")));
        assert_eq!(row.into_entry(), e);
        let bad = AuditEntry { hash: "xyz".into(), ..e };
        assert!(matches!(AuditRow::from_entry(&ActivityId::new("demo").unwrap(), &bad), Err(RecordError::Corrupt(_))));
    }
}
