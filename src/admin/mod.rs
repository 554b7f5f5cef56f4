//! The organisers' side as a pure domain: activities as a resource with a lifecycle and
//! settings, committees at three levels, staff accounts, invitations, and the types of the REST
//! API to come. No HTTP, no SQL, no tokio; time comes in as an argument (`now_ms`, ms since
//! the Unix epoch) and randomness as ids the caller makes.
//!
//! - [`activity`]: an [`Activity`] is scheduled from an [`ActivityDraft`]; lifecycle actions
//!   ([`LifecycleAction`]) move it through [`LifecycleState`]s and return a [`Transition`] whose
//!   [`Effect`]s the hub carries out; [`Activity::rules`] says what the state allows now.
//! - [`settings`]: [`ActivitySettings`] with defaults per kind, validated patches, and how each
//!   change reaches the moderation state machine ([`SessionInput`]).
//! - [`committee`]: the [`Directory`] of committees (province → city → county).
//! - [`access`]: staff roles and the committee rule ([`access()`](access::access)).
//! - [`accounts`]: local staff accounts with argon2id hashes, sign-in; the OpenID Connect plan.
//! - [`signing`]: purpose-bound HS256 keys derived from the hub secret; staff session tokens.
//! - [`invitations`]: one signed, revocable link per person and activity; redemption yields a
//!   [`ParticipantPass`] whose subject is the person.
//! - [`api`]: serde + utoipa request/response types; one error body.
//! - [`error`]: [`AdminError`], one stable code per refusal.
//!
//! Every change takes the [`Actor`], authorises it, checks the rules, and returns what
//! happened as values, among them [`AuditNote`]s for the activity's audit log:
//!
//! ```text
//! let (mut a, note) = Activity::handle_schedule(id, draft, &actor, &directory, now_ms)?;
//! record.put(&a); audit.append(note);
//! let t = a.handle_transition(&actor, &directory, LifecycleAction::Open, None, now_ms)?;
//! for effect in t.effects { hub.apply(effect) }     // StartSession { config, inputs } …
//! record.put(&a); audit.append(t.audit);
//! ```

pub mod access;
pub mod accounts;
pub mod activity;
pub mod api;
pub mod audit;
pub mod committee;
pub mod error;
pub mod ids;
pub mod invitations;
pub mod lifecycle;
pub mod roles;
pub mod settings;
pub mod signing;
mod text;

pub use access::{Access, Actor, Share, Staff, StaffRole};
pub use accounts::{HashParams, PasswordHasher, StaffAccount};
pub use activity::{
    Activity, ActivityDraft, ActivityKind, ActivityPatch, AuditNote, Effect, LifecycleAction, LifecycleState,
    ListFilter, StateRules, Transition,
};
pub use committee::{Committee, Directory, Level};
pub use error::AdminError;
pub use ids::{CommitteeId, InvitationId, PersonId, UserId};
pub use invitations::{InvitationBook, InvitationKeys, ParticipantPass, RevocationList};
pub use settings::{ActivitySettings, SessionInput, SettingChange, SettingsPatch};
pub use signing::StaffTokens;
