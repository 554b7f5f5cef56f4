//! Active-speaker detection from the RFC 6464 audio-level header extension.
//!
//! ```text
//! for every audio packet:  det.handle_level(participant, level_dbov, now)
//! periodically or after:   if let Some(p) = det.poll_speaker(now) { announce(p) }
//! ```
//!
//! Each participant's loudness (`127 - dBov`) is smoothed; the loudest above a threshold
//! becomes the speaker when it beats the current one by a margin and the current one has held
//! the floor for a minimum time, so short noises do not flip the announcement. Pure: time is an
//! argument.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Parse the one-byte RFC 6464 extension payload: `(voice_activity, level in -dBov 0..=127)`.
pub fn parse_audio_level(payload: &[u8]) -> Option<(bool, u8)> {
    payload.first().map(|b| (b & 0x80 != 0, b & 0x7f))
}

#[derive(Debug, Clone)]
struct Level {
    smoothed: f32,
    last_at: Instant,
}

/// Chooses the dominant speaker among participants sending audio levels.
#[derive(Debug, Clone)]
pub struct ActiveSpeakerDetector<K> {
    levels: HashMap<K, Level>,
    current: Option<K>,
    announced: Option<K>,
    changed_at: Option<Instant>,
    /// Loudness (127 - dBov) a participant must exceed to count as speaking.
    threshold: f32,
    margin: f32,
    min_hold: Duration,
    silence_after: Duration,
}

impl<K: Clone + Eq + Hash> Default for ActiveSpeakerDetector<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash> ActiveSpeakerDetector<K> {
    /// Defaults: speaking above -60 dBov, a 6 dB margin to take over, 500 ms minimum hold.
    pub fn new() -> Self {
        Self {
            levels: HashMap::new(),
            current: None,
            announced: None,
            changed_at: None,
            threshold: 67.0,
            margin: 6.0,
            min_hold: Duration::from_millis(500),
            silence_after: Duration::from_millis(1000),
        }
    }

    /// One audio-level sample (`level_dbov`: 0 loudest … 127 silence).
    pub fn handle_level(&mut self, who: &K, level_dbov: u8, now: Instant) {
        let loudness = 127.0 - level_dbov.min(127) as f32;
        match self.levels.get_mut(who) {
            Some(l) => {
                l.smoothed = 0.8 * l.smoothed + 0.2 * loudness;
                l.last_at = now;
            }
            None => {
                self.levels.insert(who.clone(), Level { smoothed: loudness, last_at: now });
            }
        }
    }

    /// A participant left: forget it.
    pub fn handle_remove(&mut self, who: &K) {
        self.levels.remove(who);
        if self.current.as_ref() == Some(who) {
            self.current = None;
        }
    }

    /// The new dominant speaker, when it changed since the last call.
    pub fn poll_speaker(&mut self, now: Instant) -> Option<K> {
        let loudest = self
            .levels
            .iter()
            .filter(|(_, l)| now.saturating_duration_since(l.last_at) < self.silence_after)
            .filter(|(_, l)| l.smoothed > self.threshold)
            .max_by(|a, b| a.1.smoothed.total_cmp(&b.1.smoothed))
            .map(|(k, l)| (k.clone(), l.smoothed));
        if let Some((k, loud)) = loudest
            && self.current.as_ref() != Some(&k)
        {
            let held = self.changed_at.is_none_or(|t| now.saturating_duration_since(t) >= self.min_hold);
            let current_loud = self
                .current
                .as_ref()
                .and_then(|c| self.levels.get(c))
                .filter(|l| now.saturating_duration_since(l.last_at) < self.silence_after)
                .map_or(0.0, |l| l.smoothed);
            if held && loud > current_loud + self.margin {
                self.current = Some(k);
                self.changed_at = Some(now);
            }
        }
        if self.current != self.announced {
            self.announced = self.current.clone();
            return self.current.clone();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loudest_participant_is_announced_once() {
        let t0 = Instant::now();
        let mut d = ActiveSpeakerDetector::new();
        for i in 0..10 {
            let t = t0 + Duration::from_millis(20 * i);
            d.handle_level(&"a", 20, t);
            d.handle_level(&"b", 100, t);
        }
        assert_eq!(d.poll_speaker(t0 + Duration::from_millis(200)), Some("a"));
        assert_eq!(d.poll_speaker(t0 + Duration::from_millis(220)), None);
    }

    #[test]
    fn a_short_noise_does_not_take_the_floor_within_the_hold_time() {
        let t0 = Instant::now();
        let mut d = ActiveSpeakerDetector::new();
        d.handle_level(&"a", 30, t0);
        assert_eq!(d.poll_speaker(t0), Some("a"));
        for i in 1..10 {
            let t = t0 + Duration::from_millis(20 * i);
            d.handle_level(&"a", 30, t);
            d.handle_level(&"b", 5, t);
        }
        assert_eq!(d.poll_speaker(t0 + Duration::from_millis(200)), None);
        let t = t0 + Duration::from_millis(600);
        d.handle_level(&"a", 30, t);
        d.handle_level(&"b", 5, t);
        assert_eq!(d.poll_speaker(t), Some("b"));
    }

    #[test]
    fn silence_is_not_speech() {
        let t0 = Instant::now();
        let mut d = ActiveSpeakerDetector::new();
        d.handle_level(&"a", 127, t0);
        assert_eq!(d.poll_speaker(t0), None);
        assert_eq!(parse_audio_level(&[0x80 | 33]), Some((true, 33)));
    }
}
