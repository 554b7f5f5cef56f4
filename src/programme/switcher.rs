//! Who is on air: the programme's choice of camera and voice, as a pure function of the floor,
//! the active speaker, a moderator's pin and what each participant publishes.
//!
//! Video, in order: the pinned participant; in a chaired session the floor holder, in open
//! discussion the active speaker (then the other of the two); whoever is on air already (a
//! floor passed to someone without a camera keeps the previous picture); any audible
//! participant with a camera; anyone with a camera. Only cameras the programme can package
//! without re-encoding count (H.264): a VP8-only publisher is never chosen for video.
//!
//! Audio is one voice (mixing several is a later step): the holder (chaired) or the active
//! speaker (open), then the other, then the participant on camera, then the only audible
//! participant with a microphone; always someone the floor lets be heard.

use std::collections::HashMap;

use crate::consult::ParticipantId;

/// What the floor says, as the moderation driver tells it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FloorView {
    /// Open discussion (everyone heard) rather than chaired.
    pub open: bool,
    /// The floor holder.
    pub holder: Option<ParticipantId>,
    /// Participants the driver told about: may they be heard? Anyone not listed (a WHIP
    /// publisher without a session, say) is heard, as the SFU's open gate does.
    pub audible: HashMap<ParticipantId, bool>,
}

impl FloorView {
    /// Whether `who` may be heard.
    pub fn audible(&self, who: &ParticipantId) -> bool {
        self.audible.get(who).copied().unwrap_or(true)
    }
}

/// What one participant on stage publishes that the programme can use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Who.
    pub participant: ParticipantId,
    /// An H.264 camera.
    pub video: bool,
    /// An Opus microphone.
    pub audio: bool,
}

/// The choice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnAir {
    /// Whose camera.
    pub video: Option<ParticipantId>,
    /// Whose voice.
    pub audio: Option<ParticipantId>,
}

/// Everything the choice depends on.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The floor.
    pub floor: &'a FloorView,
    /// The active speaker (loudest by audio level).
    pub speaker: Option<&'a ParticipantId>,
    /// A moderator's pin.
    pub pin: Option<&'a ParticipantId>,
    /// Whose camera is on air now.
    pub current_video: Option<&'a ParticipantId>,
    /// The stage, in publication order.
    pub candidates: &'a [Candidate],
}

/// Chooses the camera and the voice.
pub fn choose(i: Inputs<'_>) -> OnAir {
    let find = |p: Option<&ParticipantId>| p.and_then(|p| i.candidates.iter().find(|c| &c.participant == p));
    let audible = |c: &&Candidate| i.floor.audible(&c.participant);
    let speaker = find(i.speaker).filter(audible);
    let holder = find(i.floor.holder.as_ref());
    let (first, second) = if i.floor.open { (speaker, holder) } else { (holder, speaker) };
    let camera = |c: &&Candidate| c.video;
    let video = find(i.pin)
        .filter(camera)
        .or(first.filter(camera))
        .or(second.filter(camera))
        .or(find(i.current_video).filter(camera))
        .or(i.candidates.iter().filter(audible).find(camera))
        .or(i.candidates.iter().find(camera))
        .map(|c| c.participant.clone());
    let voice = |c: &&Candidate| c.audio && i.floor.audible(&c.participant);
    let on_camera = find(video.as_ref());
    let mut heard = i.candidates.iter().filter(voice);
    let only = match (heard.next(), heard.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    };
    let audio = first.filter(voice).or(second.filter(voice)).or(on_camera.filter(voice)).or(only).map(|c| c.participant.clone());
    OnAir { video, audio }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> ParticipantId {
        ParticipantId::new(s)
    }

    fn cand(s: &str, video: bool, audio: bool) -> Candidate {
        Candidate { participant: p(s), video, audio }
    }

    fn chaired(holder: Option<&str>, muted: &[&str]) -> FloorView {
        FloorView { open: false, holder: holder.map(p), audible: muted.iter().map(|m| (p(m), false)).collect() }
    }

    fn run(floor: &FloorView, speaker: Option<&str>, pin: Option<&str>, current: Option<&str>, c: &[Candidate]) -> OnAir {
        let (speaker, pin, current) = (speaker.map(p), pin.map(p), current.map(p));
        choose(Inputs { floor, speaker: speaker.as_ref(), pin: pin.as_ref(), current_video: current.as_ref(), candidates: c })
    }

    #[test]
    fn the_floor_holder_is_seen_and_heard_in_a_chaired_session() {
        let stage = [cand("chair", true, true), cand("wang", true, true), cand("li", true, true)];
        let floor = chaired(Some("wang"), &["li"]);
        let on = run(&floor, Some("chair"), None, Some("chair"), &stage);
        assert_eq!(on, OnAir { video: Some(p("wang")), audio: Some(p("wang")) });
    }

    #[test]
    fn in_open_discussion_the_active_speaker_is_on_air() {
        let stage = [cand("wang", true, true), cand("li", true, true)];
        let floor = FloorView { open: true, holder: Some(p("wang")), audible: HashMap::new() };
        let on = run(&floor, Some("li"), None, Some("wang"), &stage);
        assert_eq!(on, OnAir { video: Some(p("li")), audio: Some(p("li")) });
    }

    #[test]
    fn a_pin_overrides_the_picture_but_not_who_is_heard() {
        let stage = [cand("wang", true, true), cand("li", true, true)];
        let floor = chaired(Some("wang"), &["li"]);
        let on = run(&floor, None, Some("li"), Some("wang"), &stage);
        assert_eq!(on, OnAir { video: Some(p("li")), audio: Some(p("wang")) });
    }

    #[test]
    fn a_holder_without_an_h264_camera_keeps_the_previous_picture() {
        // "vp8" publishes VP8 only: its camera is not a candidate, its voice is.
        let stage = [cand("wang", true, true), cand("vp8", false, true)];
        let floor = chaired(Some("vp8"), &["wang"]);
        let on = run(&floor, None, None, Some("wang"), &stage);
        assert_eq!(on, OnAir { video: Some(p("wang")), audio: Some(p("vp8")) });
    }

    #[test]
    fn nobody_heard_means_silence_and_an_unpinned_muted_speaker_is_not_chosen_for_sound() {
        let stage = [cand("wang", true, true)];
        let floor = chaired(None, &["wang"]);
        assert_eq!(run(&floor, Some("wang"), None, None, &stage), OnAir { video: Some(p("wang")), audio: None });
    }

    #[test]
    fn a_whip_publisher_the_floor_never_mentioned_is_heard() {
        let stage = [cand("obs", true, true)];
        let on = run(&FloorView::default(), None, None, None, &stage);
        assert_eq!(on, OnAir { video: Some(p("obs")), audio: Some(p("obs")) });
    }

    proptest! {
        /// Whatever the inputs: the voice is always someone the floor lets be heard and who has
        /// a microphone; the camera always someone with an H.264 camera; a pinned camera wins.
        #[test]
        fn choices_respect_the_floor_and_the_codecs(
            stage in proptest::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 0..6),
            open in any::<bool>(),
            holder in proptest::option::of(0usize..6),
            speaker in proptest::option::of(0usize..6),
            pin in proptest::option::of(0usize..6),
            current in proptest::option::of(0usize..6),
        ) {
            let names: Vec<String> = (0..6).map(|i| format!("p{i}")).collect();
            let cands: Vec<Candidate> = stage.iter().enumerate().map(|(i, (v, a, _))| cand(&names[i], *v, *a)).collect();
            let audible: HashMap<ParticipantId, bool> = stage.iter().enumerate().map(|(i, (_, _, h))| (p(&names[i]), *h)).collect();
            let floor = FloorView { open, holder: holder.map(|i| p(&names[i])), audible };
            let pick = |o: Option<usize>| o.map(|i| names[i].as_str());
            let on = run(&floor, pick(speaker), pick(pin), pick(current), &cands);
            if let Some(a) = &on.audio {
                let c = cands.iter().find(|c| &c.participant == a).unwrap();
                prop_assert!(c.audio && floor.audible(a));
            }
            if let Some(v) = &on.video {
                prop_assert!(cands.iter().any(|c| &c.participant == v && c.video));
            } else {
                prop_assert!(!cands.iter().any(|c| c.video));
            }
            if let Some(pinned) = pin.and_then(|i| cands.get(i)).filter(|c| c.video) {
                prop_assert_eq!(on.video.as_ref(), Some(&pinned.participant));
            }
        }
    }
}
