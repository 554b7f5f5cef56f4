//! The organisers' side in the record: committees, activities as resources (with their
//! settings and lifecycle state), staff accounts, invitations, and the organisers' audit
//! notes. One seam, [`AdminStore`], with the SQLite implementation in
//! [`super::sqlite::admin`] (same file as the record, tables of their own).
//!
//! The values are the pure domain's ([`crate::admin`]); a store keeps each one whole as JSON
//! next to the columns it is looked up by. So a field added to the domain needs no
//! migration, and the rules stay in one place (the domain decides, the store keeps).
//!
//! Every change is written in one transaction with its audit notes: an activity is never
//! changed without its note, nor a note kept for a change that was not.
//!
//! The methods are blocking (a local SQLite file, a handful of writes per organiser action);
//! async callers use `spawn_blocking` (see [`crate::organise`]).

use shangliang_signaling::ActivityId;

use super::RecordError;
use crate::admin::accounts::StaffAccount;
use crate::admin::invitations::Invitation;
use crate::admin::{Activity, AuditNote, Committee, InvitationId};

/// An audit note as stored: [`AuditNote`] with an owned action, and the scope it belongs to
/// (an activity id, or `committee:<id>` for the committees' and accounts' notes).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StoredNote {
    /// Position in the store, from 1, over all scopes.
    pub seq: u64,
    /// The activity or `committee:<id>`.
    pub scope: String,
    /// When, ms.
    pub at_ms: u64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// To what.
    pub target: String,
    /// Parameters.
    pub detail: String,
    /// Why.
    pub reason: Option<String>,
}

impl StoredNote {
    /// Whether it is the same note as `n` (ignoring seq and scope).
    pub fn is(&self, n: &AuditNote) -> bool {
        self.at_ms == n.at_ms && self.actor == n.actor && self.action == n.action && self.target == n.target && self.detail == n.detail
    }
}

/// The scope of a committee's notes (its creation, its accounts).
pub fn committee_scope(id: &crate::admin::CommitteeId) -> String {
    format!("committee:{id}")
}

/// Where the organisers' side keeps its state. See the module docs.
pub trait AdminStore: Send + Sync + 'static {
    /// Every committee.
    fn committees(&self) -> Result<Vec<Committee>, RecordError>;
    /// Adds a committee with its note. `Err(Corrupt)` never; a duplicate id replaces nothing
    /// and answers `Ok(false)`.
    fn insert_committee(&self, c: &Committee, note: &AuditNote) -> Result<bool, RecordError>;

    /// Every activity, oldest first.
    fn activities(&self) -> Result<Vec<Activity>, RecordError>;
    /// One activity.
    fn activity(&self, id: &ActivityId) -> Result<Option<Activity>, RecordError>;
    /// Stores a new activity with its notes; `Ok(false)` if the id is taken (nothing stored).
    fn insert_activity(&self, a: &Activity, notes: &[AuditNote]) -> Result<bool, RecordError>;
    /// Replaces a stored activity with its notes, if it is still at `expected` (what the
    /// caller read and changed): `Ok(false)` and nothing stored if someone changed it in
    /// between (the caller reads again and retries, or answers a conflict).
    fn update_activity(&self, expected: &Activity, next: &Activity, notes: &[AuditNote]) -> Result<bool, RecordError>;
    /// Removes an activity and its invitations (deleted before it ever opened), keeping the
    /// notes (the deletion's among them).
    fn delete_activity(&self, id: &ActivityId, notes: &[AuditNote]) -> Result<bool, RecordError>;

    /// Every staff account.
    fn accounts(&self) -> Result<Vec<StaffAccount>, RecordError>;
    /// The account with this sign-in name.
    fn account_by_username(&self, username: &str) -> Result<Option<StaffAccount>, RecordError>;
    /// Stores a new account with its note; `Ok(false)` if the id or user name is taken.
    fn insert_account(&self, a: &StaffAccount, note: &AuditNote) -> Result<bool, RecordError>;
    /// Replaces an account (a rehashed password, disabled).
    fn update_account(&self, a: &StaffAccount, notes: &[AuditNote]) -> Result<(), RecordError>;

    /// The invitations of an activity, by id.
    fn invitations(&self, activity: &ActivityId) -> Result<Vec<Invitation>, RecordError>;
    /// One invitation.
    fn invitation(&self, id: &InvitationId) -> Result<Option<Invitation>, RecordError>;
    /// Stores (inserts or replaces) invitations with notes for their activity, in one
    /// transaction.
    fn put_invitations(&self, activity: &ActivityId, invitations: &[&Invitation], notes: &[AuditNote]) -> Result<(), RecordError>;

    /// The notes of a scope (an activity id or [`committee_scope`]), oldest first.
    fn notes(&self, scope: &str) -> Result<Vec<StoredNote>, RecordError>;
}
