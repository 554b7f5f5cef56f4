//! A room: who is in it, the floor gates, the tracks published in it (its stage, in
//! publication order) and the active-speaker detector. Plain data owned by the driver.

use std::collections::HashMap;
use std::time::Instant;

use crate::speaker::ActiveSpeakerDetector;
use crate::tap::TapSink;
use crate::{SessionId, SfuError, TrackId};

/// One participant's presence and floor gates (set by [`crate::Sfu::set_forwarding`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Presence {
    /// Open sessions (WHIP ingests and member participations) of this participant.
    pub sessions: usize,
    pub audio: bool,
    pub video: bool,
    /// Reaches the public (WHEP viewers, stage taps): a livestream's stage gate.
    pub public: bool,
}

impl Default for Presence {
    fn default() -> Self {
        Self { sessions: 0, audio: true, video: true, public: true }
    }
}

#[derive(Default)]
pub(crate) struct Room {
    pub participants: HashMap<String, Presence>,
    /// Published tracks in publication order.
    pub tracks: Vec<TrackId>,
    /// Sessions to tell about changes (viewers and members).
    pub sessions: Vec<SessionId>,
    pub viewers: usize,
    pub speaker: Option<String>,
    pub detector: ActiveSpeakerDetector<String>,
    /// Open stage taps: while there is one the room is a stage (kept when idle, H.264 asked).
    pub taps: Vec<TapSink>,
}

impl Room {
    /// Admit one more session of `participant`, unless the room is full.
    pub fn enter(&mut self, name: &str, participant: &str, max: usize) -> Result<(), SfuError> {
        let active = self.participants.values().filter(|p| p.sessions > 0).count();
        let p = self.participants.entry(participant.to_owned()).or_default();
        if p.sessions == 0 && active >= max {
            return Err(SfuError::RoomFull { room: name.to_owned(), max });
        }
        p.sessions += 1;
        Ok(())
    }

    /// One session of `participant` ended.
    pub fn leave(&mut self, participant: &str) {
        let gone = match self.participants.get_mut(participant) {
            Some(p) => {
                p.sessions = p.sessions.saturating_sub(1);
                p.sessions == 0
            }
            None => false,
        };
        if gone {
            self.detector.handle_remove(&participant.to_owned());
            if self.participants.get(participant).is_some_and(|p| p.audio && p.video && p.public) {
                // A closed gate is remembered (the floor holds across a rejoin); an open one is
                // the default and need not be kept.
                self.participants.remove(participant);
            }
        }
    }

    /// The floor gates of `participant` (open if unknown).
    pub fn gates(&self, participant: &str) -> Presence {
        self.participants.get(participant).copied().unwrap_or_default()
    }

    /// Feed one audio level; the new dominant speaker, if it changed.
    pub fn handle_audio_level(&mut self, participant: &str, level: u8, now: Instant) -> Option<String> {
        self.detector.handle_level(&participant.to_owned(), level, now);
        let s = self.detector.poll_speaker(now)?;
        self.speaker = Some(s.clone());
        Some(s)
    }

    /// Nobody is left, no tap watches and no floor decision is pending: the room can be
    /// forgotten. A closed gate keeps the room (so a floor set before someone joins, or across a
    /// rejoin, holds).
    pub fn is_idle(&self) -> bool {
        self.taps.is_empty()
            && self.viewers == 0
            && self.tracks.is_empty() && self.sessions.is_empty() && self.participants.values().all(|p| p.sessions == 0 && p.audio && p.video && p.public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_room_refuses_a_newcomer_but_not_a_second_session() {
        let mut r = Room::default();
        r.enter("r", "a", 1).unwrap();
        assert!(matches!(r.enter("r", "b", 1), Err(SfuError::RoomFull { max: 1, .. })));
        r.enter("r", "a", 1).unwrap();
        r.leave("a");
        r.leave("a");
        assert!(r.is_idle());
        r.enter("r", "b", 1).unwrap();
    }

    #[test]
    fn a_withheld_floor_outlives_the_participant() {
        let mut r = Room::default();
        r.participants.insert("a".into(), Presence { sessions: 0, audio: false, video: true, public: true });
        assert!(!r.is_idle(), "a closed gate keeps the room");
        r.enter("r", "a", 5).unwrap();
        r.leave("a");
        assert!(!r.gates("a").audio);
        assert!(r.gates("nobody").audio);
    }
}
