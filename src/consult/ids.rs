//! Typed identifiers of the consultation domain (STYLE habit 5): a participant is never a bare
//! `String` and a question never a bare `u64` across module boundaries.

pub use shangliang_signaling::consult::{ParticipantId, QuestionId};
