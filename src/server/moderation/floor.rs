//! Where the floor reaches the media plane.

use shangliang_signaling::{ActivityId, ParticipantId};

/// Where the floor reaches the media plane. The driver calls it for every present member,
/// guest or moderator whose `Consultation::may_speak` changed (and once when they join), after
/// floor and mode events. The SFU wiring (`server::media::SfuFloor`) implements it with
/// `sfu.set_forwarding(room, participant, audio, video)`; until one is installed
/// ([`super::Registry::set_floor_hook`]) the default does nothing.
///
/// `video` is always `true` today: the floor gates who is *heard*; being seen is not moderated.
pub trait FloorHook: Send + Sync + 'static {
    /// `participant` of `activity` may (or may no longer) be forwarded to the others.
    fn set_forwarding(
        &self,
        activity: &ActivityId,
        participant: &ParticipantId,
        audio: bool,
        video: bool,
    );

    /// The floor's holder or mode may have changed (called with `set_forwarding`'s updates).
    /// The livestream programme follows it to choose whose camera is on air; the SFU needs only
    /// the gates, hence the default that does nothing.
    fn set_turn(&self, _activity: &ActivityId, _holder: Option<&ParticipantId>, _open: bool) {}

    /// A moderator pinned (`Some`) or unpinned whose camera the livestream programme shows
    /// (`Command::PinProgramme`, audited by the session first). The SFU ignores it.
    fn set_pin(&self, _activity: &ActivityId, _pin: Option<&ParticipantId>) {}

    /// A livestream's stage: whether `participant`'s media may reach the public (WHEP viewers,
    /// the programme). The driver calls it for every present member, guest or moderator of a
    /// livestream whose `Consultation::is_on_air` changed (and once when they join, closed
    /// until a moderator puts them on air); never in a room. The SFU gates its viewer slots and
    /// stage taps with it (`Sfu::set_public`); members in the room are not affected.
    fn set_public(&self, _activity: &ActivityId, _participant: &ParticipantId, _public: bool) {}

    /// A moderator banned `participant`: the media plane ends their participation and
    /// ingests in `activity` (a join or WHIP afterwards is refused by its own check).
    fn banned(&self, _activity: &ActivityId, _participant: &ParticipantId) {}
}

/// The default hook: media is not wired.
#[derive(Debug, Default)]
pub struct NoFloorHook;

impl FloorHook for NoFloorHook {
    fn set_forwarding(&self, _: &ActivityId, _: &ParticipantId, _: bool, _: bool) {}
}
