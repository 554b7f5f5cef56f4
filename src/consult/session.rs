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
