//! The floor: who may speak in a video consultation room.
//!
//! A sans-I/O state machine. Inputs are `handle_*` calls carrying `now_ms` (milliseconds since
//! the Unix epoch); outputs are [`FloorEvent`]s drained with [`Floor::poll_event`]. Role checks
//! are not done here (see [`super::grants`]); [`super::consultation::Consultation`] does them.
//!
//! ```text
//! loop {
//!     // an input arrives, or the deadline from poll_timeout() passes
//!     floor.handle_raise_hand(&who, now_ms);      // ... or any other handle_*
//!     floor.handle_tick(now_ms);                  // at poll_timeout() at the latest
//!     while let Some(ev) = floor.poll_event() { broadcast(ev) }
//!     // the SFU's floor hook asks floor.may_speak(&who, role) per participant
//! }
//! ```
//!
//! Invariants (checked by property tests): at most one turn is open at a time; the hand queue
//! holds each participant at most once, in the order hands were raised; a turn whose deadline
//! has passed is ended by the next tick.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use shangliang_signaling::Role;

use super::grants::ConsultError;
use super::ids::ParticipantId;
pub use shangliang_signaling::consult::{FloorMode, TurnEnd, FloorEvent, GrantTarget};

/// One turn at the floor, kept for the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// Who held the floor.
    pub holder: ParticipantId,
    /// The moderator who granted it, or `None` when auto-advance did.
    pub granted_by: Option<ParticipantId>,
    /// When it began.
    pub granted_at_ms: u64,
    /// The time limit given at the grant.
    pub allotted_ms: u64,
    /// Extra time added by extensions since.
    pub extended_ms: u64,
    /// When it ended, if it has.
    pub ended_at_ms: Option<u64>,
    /// How it ended, if it has.
    pub end: Option<TurnEnd>,
}

impl Turn {
    /// When the floor is due back: grant time + allotted + extensions.
    pub fn deadline_ms(&self) -> u64 {
        self.granted_at_ms
            .saturating_add(self.allotted_ms)
            .saturating_add(self.extended_ms)
    }

    /// How long the holder had the floor (up to `now_ms` if the turn is open).
    pub fn spoken_ms(&self, now_ms: u64) -> u64 {
        self.ended_at_ms
            .unwrap_or(now_ms)
            .saturating_sub(self.granted_at_ms)
    }

    /// Overtime: time held beyond the **originally allotted** limit. Time granted by an
    /// extension counts as overtime (it is beyond what was first allotted); [`Turn::extended_ms`]
    /// says how much of it a moderator approved. A tick that comes late also shows up here,
    /// as the few milliseconds between the deadline and the tick.
    pub fn overtime_ms(&self, now_ms: u64) -> u64 {
        self.spoken_ms(now_ms).saturating_sub(self.allotted_ms)
    }
}

/// What the floor does when a turn's time is up (the organisers' overtime rule).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum OvertimeRule {
    /// Taken back at the deadline.
    #[default]
    Hard,
    /// Taken back `grace_ms` after the deadline (clients show the overtime meanwhile).
    Grace {
        /// How long after the deadline.
        grace_ms: u64,
    },
    /// Never taken back by the clock: the moderator decides.
    Soft,
}

/// The floor of one activity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Floor {
    mode: FloorMode,
    /// Raised hands, oldest first; never holds a participant twice.
    hands: Vec<ParticipantId>,
    /// The open turn, if any. At most one: this is the single-holder invariant.
    current: Option<Turn>,
    /// Ended turns, in order.
    past: Vec<Turn>,
    /// When set, an expired or yielded turn passes to the next hand with this limit.
    auto_advance_ms: Option<u64>,
    /// When an expired turn ends (absent from older checkpoints: hard).
    #[serde(default)]
    overtime: OvertimeRule,
    #[serde(skip)]
    events: VecDeque<FloorEvent>,
}

impl Default for Floor {
    fn default() -> Self {
        Self::new(FloorMode::Chaired)
    }
}

impl Floor {
    /// An empty floor in `mode`, auto-advance off.
    pub fn new(mode: FloorMode) -> Self {
        Floor {
            mode,
            hands: Vec::new(),
            current: None,
            past: Vec::new(),
            auto_advance_ms: None,
            overtime: OvertimeRule::Hard,
            events: VecDeque::new(),
        }
    }

    /// The mode.
    pub fn mode(&self) -> FloorMode {
        self.mode
    }

    /// The raised hands, oldest first.
    pub fn hands(&self) -> &[ParticipantId] {
        &self.hands
    }

    /// The open turn.
    pub fn current(&self) -> Option<&Turn> {
        self.current.as_ref()
    }

    /// The holder of the floor.
    pub fn holder(&self) -> Option<&ParticipantId> {
        self.current.as_ref().map(|t| &t.holder)
    }

    /// Ended turns, oldest first.
    pub fn past_turns(&self) -> &[Turn] {
        &self.past
    }

    /// Every turn, ended ones first, then the open one.
    pub fn turns(&self) -> impl Iterator<Item = &Turn> {
        self.past.iter().chain(self.current.iter())
    }

    /// The auto-advance limit, if auto-advance is on.
    pub fn auto_advance(&self) -> Option<u64> {
        self.auto_advance_ms
    }

    /// Whether `who` (in `role`) is heard now. Viewers never are; moderators always are; in
    /// [`FloorMode::Chaired`] others only while they hold the floor.
    pub fn may_speak(&self, who: &ParticipantId, role: Role) -> bool {
        match role {
            Role::Viewer => false,
            Role::Moderator => true,
            Role::Member | Role::Guest => match self.mode {
                FloorMode::Open => true,
                FloorMode::Chaired => self.holder() == Some(who),
            },
        }
    }

    /// When [`Floor::handle_tick`] must be called at the latest: when the open turn is taken
    /// back (its deadline, plus the grace of [`OvertimeRule::Grace`]; never under
    /// [`OvertimeRule::Soft`]).
    pub fn poll_timeout(&self) -> Option<u64> {
        let t = self.current.as_ref()?;
        match self.overtime {
            OvertimeRule::Hard => Some(t.deadline_ms()),
            OvertimeRule::Grace { grace_ms } => Some(t.deadline_ms().saturating_add(grace_ms)),
            OvertimeRule::Soft => None,
        }
    }

    /// The overtime rule.
    pub fn overtime(&self) -> OvertimeRule {
        self.overtime
    }

    /// Sets the overtime rule (for the open turn too); returns whether it changed.
    pub fn handle_set_overtime(&mut self, rule: OvertimeRule) -> bool {
        let changed = self.overtime != rule;
        self.overtime = rule;
        changed
    }

    /// The next event to broadcast.
    pub fn poll_event(&mut self) -> Option<FloorEvent> {
        self.events.pop_front()
    }

    /// Raises `who`'s hand. Raising a raised hand, or raising while holding the floor, changes
    /// nothing (and emits nothing). Returns whether the queue changed.
    pub fn handle_raise_hand(&mut self, who: &ParticipantId, _now_ms: u64) -> bool {
        if self.hands.contains(who) || self.holder() == Some(who) {
            return false;
        }
        self.hands.push(who.clone());
        self.hands_changed();
        true
    }

    /// Lowers `who`'s hand; returns whether it was raised.
    pub fn handle_lower_hand(&mut self, who: &ParticipantId, _now_ms: u64) -> bool {
        let before = self.hands.len();
        self.hands.retain(|h| h != who);
        let changed = self.hands.len() != before;
        if changed {
            self.hands_changed();
        }
        changed
    }

    /// Gives the floor to `target` for `limit_ms`, ending an open turn as
    /// [`TurnEnd::Revoked`] (even the same holder's: a re-grant starts a new turn with a fresh
    /// limit, so the record shows it). Returns the new holder.
    pub fn handle_grant(
        &mut self,
        target: &GrantTarget,
        limit_ms: u64,
        by: Option<&ParticipantId>,
        now_ms: u64,
    ) -> Result<ParticipantId, ConsultError> {
        if limit_ms == 0 {
            return Err(ConsultError::BadTimeLimit);
        }
        let holder = match target {
            GrantTarget::NextHand => self.hands.first().cloned().ok_or(ConsultError::NoHands)?,
            GrantTarget::Participant(p) => p.clone(),
        };
        self.end_current(TurnEnd::Revoked, now_ms);
        self.start_turn(holder.clone(), limit_ms, by.cloned(), now_ms);
        Ok(holder)
    }

    /// Adds `extra_ms` to the open turn.
    pub fn handle_extend(&mut self, extra_ms: u64, _now_ms: u64) -> Result<u64, ConsultError> {
        if extra_ms == 0 {
            return Err(ConsultError::BadTimeLimit);
        }
        let turn = self.current.as_mut().ok_or(ConsultError::NoFloorHolder)?;
        turn.extended_ms = turn.extended_ms.saturating_add(extra_ms);
        let (holder, deadline_ms) = (turn.holder.clone(), turn.deadline_ms());
        self.events.push_back(FloorEvent::FloorExtended {
            holder,
            deadline_ms,
        });
        Ok(deadline_ms)
    }

    /// Takes the floor back. Auto-advance does not apply: the moderator decides what is next.
    pub fn handle_revoke(&mut self, now_ms: u64) -> Result<ParticipantId, ConsultError> {
        self.end_current(TurnEnd::Revoked, now_ms)
            .ok_or(ConsultError::NoFloorHolder)
    }

    /// `who` gives up the floor; with auto-advance on, the next hand gets it.
    pub fn handle_yield(&mut self, who: &ParticipantId, now_ms: u64) -> Result<(), ConsultError> {
        if self.holder() != Some(who) {
            return Err(ConsultError::NotYourTurn);
        }
        self.end_current(TurnEnd::Yielded, now_ms);
        self.advance(now_ms);
        Ok(())
    }

    /// `who` left the activity: their hand is lowered and their turn, if any, ends as
    /// [`TurnEnd::Left`] (with auto-advance on, the next hand gets the floor).
    pub fn handle_left(&mut self, who: &ParticipantId, now_ms: u64) {
        self.handle_lower_hand(who, now_ms);
        if self.holder() == Some(who) {
            self.end_current(TurnEnd::Left, now_ms);
            self.advance(now_ms);
        }
    }

    /// Takes the floor back when its time has run out; with auto-advance on, gives it to the
    /// next hand. Call it at [`Floor::poll_timeout`] at the latest; extra calls are harmless.
    pub fn handle_tick(&mut self, now_ms: u64) {
        // The turn ends, and the next begins, at the tick: the holder was heard until then
        // (`may_speak` has no clock), so the record says so; lateness shows as overtime.
        if self.poll_timeout().is_some_and(|due| now_ms >= due) {
            self.end_current(TurnEnd::Expired, now_ms);
            self.advance(now_ms);
        }
    }

    /// Switches mode; returns whether it changed.
    pub fn handle_set_mode(&mut self, mode: FloorMode, _now_ms: u64) -> bool {
        if self.mode == mode {
            return false;
        }
        self.mode = mode;
        self.events.push_back(FloorEvent::ModeChanged { mode });
        true
    }

    /// Turns auto-advance on (with the limit for each auto-granted turn) or off. It acts when
    /// a turn expires or is yielded (or its holder leaves), not at once and not after a revoke:
    /// an idle floor stays idle until a moderator grants it.
    pub fn handle_set_auto_advance(&mut self, limit_ms: Option<u64>) -> Result<(), ConsultError> {
        if limit_ms == Some(0) {
            return Err(ConsultError::BadTimeLimit);
        }
        self.auto_advance_ms = limit_ms;
        Ok(())
    }

    /// Mutes everyone but the moderators: the open turn ends as revoked and the mode becomes
    /// chaired. Raised hands stay raised.
    pub fn handle_mute_all(&mut self, now_ms: u64) {
        self.end_current(TurnEnd::Revoked, now_ms);
        self.handle_set_mode(FloorMode::Chaired, now_ms);
        self.events
            .push_back(FloorEvent::MutedAll { at_ms: now_ms });
    }

    fn advance(&mut self, now_ms: u64) {
        if self.current.is_some() {
            return;
        }
        if let (Some(limit), Some(next)) = (self.auto_advance_ms, self.hands.first().cloned()) {
            self.start_turn(next, limit, None, now_ms);
        }
    }

    fn start_turn(
        &mut self,
        holder: ParticipantId,
        limit_ms: u64,
        by: Option<ParticipantId>,
        now_ms: u64,
    ) {
        debug_assert!(self.current.is_none());
        self.handle_lower_hand(&holder, now_ms);
        let turn = Turn {
            holder: holder.clone(),
            granted_by: by,
            granted_at_ms: now_ms,
            allotted_ms: limit_ms,
            extended_ms: 0,
            ended_at_ms: None,
            end: None,
        };
        self.events.push_back(FloorEvent::FloorGranted {
            holder,
            granted_at_ms: now_ms,
            allotted_ms: limit_ms,
            deadline_ms: turn.deadline_ms(),
        });
        self.current = Some(turn);
    }

    fn end_current(&mut self, end: TurnEnd, now_ms: u64) -> Option<ParticipantId> {
        let mut turn = self.current.take()?;
        // Time never runs backwards in the record, even if the caller's clock did.
        let ended = now_ms.max(turn.granted_at_ms);
        turn.ended_at_ms = Some(ended);
        turn.end = Some(end);
        self.events.push_back(FloorEvent::FloorEnded {
            holder: turn.holder.clone(),
            ended_at_ms: ended,
            end,
            spoken_ms: turn.spoken_ms(ended),
            overtime_ms: turn.overtime_ms(ended),
        });
        let holder = turn.holder.clone();
        self.past.push(turn);
        Some(holder)
    }

    fn hands_changed(&mut self) {
        self.events.push_back(FloorEvent::HandsChanged {
            hands: self.hands.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> ParticipantId {
        ParticipantId::new(s)
    }

    fn drain(f: &mut Floor) -> Vec<FloorEvent> {
        std::iter::from_fn(|| f.poll_event()).collect()
    }

    #[test]
    fn hands_queue_in_order_without_duplicates() {
        let mut f = Floor::default();
        assert!(f.handle_raise_hand(&p("a"), 0));
        assert!(f.handle_raise_hand(&p("b"), 1));
        assert!(!f.handle_raise_hand(&p("a"), 2));
        assert_eq!(f.hands(), &[p("a"), p("b")]);
        assert!(f.handle_lower_hand(&p("a"), 3));
        assert!(!f.handle_lower_hand(&p("a"), 3));
        assert_eq!(f.hands(), &[p("b")]);
    }

    #[test]
    fn floor_expires_and_next_hand_gets_it() {
        let mut f = Floor::default();
        f.handle_set_auto_advance(Some(60_000)).unwrap();
        f.handle_raise_hand(&p("a"), 0);
        f.handle_raise_hand(&p("b"), 0);
        f.handle_grant(&GrantTarget::NextHand, 30_000, Some(&p("mod")), 1_000)
            .unwrap();
        assert_eq!(f.holder(), Some(&p("a")));
        assert_eq!(f.poll_timeout(), Some(31_000));
        f.handle_tick(30_999);
        assert_eq!(f.holder(), Some(&p("a")));
        drain(&mut f);
        f.handle_tick(31_005);
        assert_eq!(f.holder(), Some(&p("b")));
        let t = &f.past_turns()[0];
        assert_eq!(t.end, Some(TurnEnd::Expired));
        assert_eq!(t.ended_at_ms, Some(31_005));
        let cur = f.current().unwrap();
        assert_eq!(
            (cur.granted_at_ms, cur.allotted_ms, cur.granted_by.clone()),
            (31_005, 60_000, None)
        );
        let evs = drain(&mut f);
        assert!(matches!(
            evs[0],
            FloorEvent::FloorEnded {
                end: TurnEnd::Expired,
                ..
            }
        ));
        assert!(
            evs.iter()
                .any(|e| matches!(e, FloorEvent::FloorGranted { holder, .. } if *holder == p("b")))
        );
        assert!(f.hands().is_empty());
    }

    #[test]
    fn floor_expires_without_auto_advance_and_nobody_gets_it() {
        let mut f = Floor::default();
        f.handle_raise_hand(&p("b"), 0);
        f.handle_grant(&GrantTarget::Participant(p("a")), 10, None, 0)
            .unwrap();
        f.handle_tick(10);
        assert_eq!(f.holder(), None);
        assert_eq!(f.hands(), &[p("b")]);
    }

    #[test]
    fn member_without_floor_is_not_heard_in_chaired_mode() {
        let mut f = Floor::new(FloorMode::Chaired);
        f.handle_grant(&GrantTarget::Participant(p("a")), 1_000, None, 0)
            .unwrap();
        assert!(f.may_speak(&p("a"), Role::Member));
        assert!(!f.may_speak(&p("b"), Role::Member));
        assert!(f.may_speak(&p("chair"), Role::Moderator));
        assert!(!f.may_speak(&p("v"), Role::Viewer));
        f.handle_set_mode(FloorMode::Open, 1);
        assert!(f.may_speak(&p("b"), Role::Member));
        assert!(!f.may_speak(&p("v"), Role::Viewer));
    }

    #[test]
    fn extension_moves_the_deadline_and_counts_as_overtime() {
        let mut f = Floor::default();
        f.handle_grant(&GrantTarget::Participant(p("a")), 1_000, None, 0)
            .unwrap();
        assert_eq!(f.handle_extend(500, 900), Ok(1_500));
        f.handle_tick(1_200);
        assert_eq!(f.holder(), Some(&p("a")));
        f.handle_yield(&p("a"), 1_300).unwrap();
        let t = &f.past_turns()[0];
        assert_eq!(
            (t.spoken_ms(0), t.overtime_ms(0), t.extended_ms),
            (1_300, 300, 500)
        );
        assert_eq!(t.end, Some(TurnEnd::Yielded));
    }

    #[test]
    fn only_the_holder_may_yield() {
        let mut f = Floor::default();
        assert_eq!(f.handle_yield(&p("a"), 0), Err(ConsultError::NotYourTurn));
        f.handle_grant(&GrantTarget::Participant(p("a")), 1_000, None, 0)
            .unwrap();
        assert_eq!(f.handle_yield(&p("b"), 0), Err(ConsultError::NotYourTurn));
    }

    #[test]
    fn granting_to_another_revokes_the_current_turn() {
        let mut f = Floor::default();
        f.handle_grant(&GrantTarget::Participant(p("a")), 1_000, None, 0)
            .unwrap();
        f.handle_grant(&GrantTarget::Participant(p("b")), 1_000, None, 10)
            .unwrap();
        assert_eq!(f.past_turns()[0].end, Some(TurnEnd::Revoked));
        assert_eq!(f.holder(), Some(&p("b")));
    }

    #[test]
    fn grant_next_hand_with_no_hands_is_refused() {
        let mut f = Floor::default();
        assert_eq!(
            f.handle_grant(&GrantTarget::NextHand, 10, None, 0),
            Err(ConsultError::NoHands)
        );
        assert_eq!(f.handle_revoke(0), Err(ConsultError::NoFloorHolder));
    }

    #[test]
    fn mute_all_ends_the_turn_and_chairs_the_room() {
        let mut f = Floor::new(FloorMode::Open);
        f.handle_grant(&GrantTarget::Participant(p("a")), 1_000, None, 0)
            .unwrap();
        drain(&mut f);
        f.handle_mute_all(5);
        assert_eq!(f.holder(), None);
        assert!(!f.may_speak(&p("a"), Role::Member));
        let evs = drain(&mut f);
        assert!(matches!(
            evs[0],
            FloorEvent::FloorEnded {
                end: TurnEnd::Revoked,
                ..
            }
        ));
        assert_eq!(
            evs[1],
            FloorEvent::ModeChanged {
                mode: FloorMode::Chaired
            }
        );
        assert_eq!(evs[2], FloorEvent::MutedAll { at_ms: 5 });
    }

    #[derive(Clone, Debug)]
    enum Op {
        Raise(u8),
        Lower(u8),
        GrantNext(u16),
        GrantTo(u8, u16),
        Extend(u16),
        Revoke,
        Yield(u8),
        Left(u8),
        Auto(Option<u16>),
        Tick,
        Advance(u16),
        MuteAll,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..6).prop_map(Op::Raise),
            (0u8..6).prop_map(Op::Lower),
            (1u16..500).prop_map(Op::GrantNext),
            ((0u8..6), (1u16..500)).prop_map(|(a, b)| Op::GrantTo(a, b)),
            (1u16..500).prop_map(Op::Extend),
            Just(Op::Revoke),
            (0u8..6).prop_map(Op::Yield),
            (0u8..6).prop_map(Op::Left),
            proptest::option::of(1u16..500).prop_map(Op::Auto),
            Just(Op::Tick),
            (0u16..1000).prop_map(Op::Advance),
            Just(Op::MuteAll),
        ]
    }

    proptest! {
        #[test]
        fn floor_invariants_hold_under_any_inputs(ops in proptest::collection::vec(op(), 0..80)) {
            let mut f = Floor::default();
            let mut now = 0u64;
            // A model of the hand queue: order of raising, no duplicates.
            let mut model: Vec<ParticipantId> = Vec::new();
            for o in ops {
                let pid = |i: u8| p(&format!("p{i}"));
                match o {
                    Op::Raise(i) => { f.handle_raise_hand(&pid(i), now); }
                    Op::Lower(i) => { f.handle_lower_hand(&pid(i), now); }
                    Op::GrantNext(l) => { let _ = f.handle_grant(&GrantTarget::NextHand, l as u64, None, now); }
                    Op::GrantTo(i, l) => { let _ = f.handle_grant(&GrantTarget::Participant(pid(i)), l as u64, None, now); }
                    Op::Extend(l) => { let _ = f.handle_extend(l as u64, now); }
                    Op::Revoke => { let _ = f.handle_revoke(now); }
                    Op::Yield(i) => { let _ = f.handle_yield(&pid(i), now); }
                    Op::Left(i) => f.handle_left(&pid(i), now),
                    Op::Auto(l) => f.handle_set_auto_advance(l.map(u64::from)).unwrap(),
                    Op::Tick => {
                        let due = f.poll_timeout();
                        f.handle_tick(now);
                        // An expired turn always ends on tick.
                        if let Some(d) = due && d <= now {
                            prop_assert!(f.past_turns().iter().any(|t| t.deadline_ms() == d && t.end == Some(TurnEnd::Expired)));
                        }
                        if let Some(d) = f.poll_timeout() { prop_assert!(d > now); }
                    }
                    Op::Advance(ms) => now += ms as u64,
                    Op::MuteAll => f.handle_mute_all(now),
                }
                // At most one holder: all ended turns are closed, and only `current` is open.
                prop_assert!(f.past_turns().iter().all(|t| t.ended_at_ms.is_some() && t.end.is_some()));
                prop_assert!(f.current().is_none_or(|t| t.ended_at_ms.is_none()));
                prop_assert_eq!(f.turns().filter(|t| t.end.is_none()).count(), usize::from(f.holder().is_some()));
                // Turns never overlap in time.
                let turns: Vec<&Turn> = f.turns().collect();
                for w in turns.windows(2) {
                    prop_assert!(w[0].ended_at_ms.unwrap() <= w[1].granted_at_ms);
                }
                // The queue has no duplicates, and is the model's order with some removed.
                let hands = f.hands().to_vec();
                let mut dedup = hands.clone(); dedup.sort(); dedup.dedup();
                prop_assert_eq!(dedup.len(), hands.len());
                model.retain(|m| hands.contains(m));
                for h in &hands { if !model.contains(h) { model.push(h.clone()); } }
                prop_assert_eq!(&model, &hands);
                // The holder never has a raised hand.
                if let Some(h) = f.holder() { prop_assert!(!hands.contains(h)); }
            }
        }
    }
}
