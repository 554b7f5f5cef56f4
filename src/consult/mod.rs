//! The consultation domain as sans-I/O state machines: no tokio, no I/O; time comes in as an
//! argument (`now_ms`, milliseconds since the Unix epoch). The server feeds inputs
//! (`handle_*`) and sends what comes out (`poll_*`).
//!
//! - [`consultation::Consultation`]: one per activity, the only object the server needs to drive.
//!   It authorises every input ([`grants`]), routes it to the parts below, appends moderator
//!   actions to the [`audit`] log and queues [`consultation::Addressed`] events.
//! - [`command`]: every request as one serde enum, for a driver fed by a channel.
//! - [`floor`]: the hand queue and who may speak ([`floor::Floor::may_speak`] is the SFU's hook).
//! - [`questions`]: the public's questions, votes and their fate.
//! - [`votes`]: which votes count: tiers of identities, the caps on anonymous address blocks.
//! - [`comments`]: what happens to a posted comment (topic, text, rate, the moderators' rules);
//!   holds, hides, bans, modes.
//! - [`session`]: the organisers' settings and pause as one desired state the session
//!   reconciles itself with.
//! - [`rate`]: the per-identity comment rate limit (GCRA, time as an argument).
//! - [`audit`]: the hash-chained log and [`audit::verify`].
//! - [`minutes`]: the session record as JSON, CSV and Markdown minutes.
//! - [`text`]: normalisation of user-written text.
//!
//! ```text
//! let mut c = Consultation::new(activity, config, now_ms);
//! c.handle_join(&grants, now_ms)?;                 // every input: grants + now
//! c.handle_grant_floor(&moderator, GrantTarget::NextHand, None, now_ms)?;
//! c.handle_tick(now_ms);                           // at c.poll_timeout() at the latest
//! while let Some(out) = c.poll_event() { deliver(out.audience, out.event) }
//! ```

pub mod audit;
pub mod command;
pub mod comments;
pub mod floor;
pub mod grants;
pub mod ids;
pub mod consultation;
pub mod minutes;
pub mod questions;
pub mod rate;
pub mod session;
pub mod text;
pub mod votes;

pub use audit::{AuditEntry, AuditLog, BrokenLink, verify, verify_head};
pub use command::{Command, Reply};
pub use comments::{CommentDecision, CommentModes, HoldReason, PolicyChange};
pub use floor::{FloorEvent, FloorMode, GrantTarget, OvertimeRule, TurnEnd};
pub use session::SessionSettings;
pub use grants::{Action, ConsultError, Grants, authorize};
pub use ids::{ParticipantId, QuestionId};
pub use questions::{QuestionState, QuestionView};
pub use consultation::{
    Addressed, Audience, ConsultEvent, Consultation, ConsultationConfig, QuestionOp,
    SessionSummary, Snapshot,
};
