//! Per-packet forwarding decisions for one outgoing track of one subscriber, as values.
//! Pure: no I/O, no clock (time is an argument), no knowledge of peer connections.
//!
//! ```text
//! on a source change:     ask = fwd.handle_source(Some(Source { .. }))     // ask: keyframe wanted
//! on a layer choice:      ask = fwd.handle_target_layer(layer)
//! on receiver loss:       ask = fwd.handle_loss(fraction_lost)
//! when DTLS completes:    ask = fwd.handle_connected()
//! for every packet:       let d = fwd.handle_packet(&meta, now);
//!                         match d.verdict { Forward { seq, ts, .. } => send, Drop(_) => {} }
//!                         if d.request_keyframe { throttled PLI to the source }
//! ```
//!
//! The caller (the driver) applies a [`Decision`]: it rewrites the packet's header with the
//! returned sequence number and timestamp and hands it to the subscriber's connection, and it
//! turns `request_keyframe` into a PLI to the publisher through the track's throttle. This is the
//! shape of LiveKit's `Forwarder`, whose `TranslationParams` carry `shouldDrop`, `shouldSendPLI`
//! and the rewritten `sn`/`ts`.
//!
//! Invariants (property-tested below): across source switches, layer switches and floor changes
//! the forwarded sequence numbers are continuous (`+1` per forwarded packet when the source
//! loses nothing); nothing is forwarded while the floor gate is closed; every switch asks for a
//! keyframe and the first video packet forwarded after it is a keyframe.

use std::time::Instant;

use crate::TrackId;
use crate::rewrite::{LayerDecision, LayerSelector, SeqRewriter, TsRewriter};

/// What the forwarder needs to know about one incoming packet (the payload stays with the
/// caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketMeta {
    /// The published track it came from.
    pub source: TrackId,
    /// Its simulcast layer (0 the lowest; 0 without simulcast).
    pub layer: u8,
    /// Layers the source currently has (1 without simulcast).
    pub layers: usize,
    /// Sequence number as sent by the publisher.
    pub seq: u16,
    /// RTP timestamp as sent by the publisher.
    pub ts: u32,
    /// It starts a keyframe (always true for audio).
    pub keyframe: bool,
    /// The floor lets this source's media of this kind through.
    pub gate_open: bool,
}

/// A source the forwarder follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The published track.
    pub id: TrackId,
    /// Its layer count.
    pub layers: usize,
    /// The subscriber's leg negotiated this source's codec (no transcoding: otherwise dropped).
    pub codec_matches: bool,
}

/// Why a packet is not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The subscriber's connection is not up yet (DTLS incomplete).
    NotConnected,
    /// The packet is not from the source this forwarder follows (or it follows none).
    NotSource,
    /// The source's codec is not negotiated on the subscriber's leg.
    Codec,
    /// The floor withholds this media.
    Muted,
    /// Another simulcast layer, or waiting for a keyframe to start or switch.
    AwaitingKeyframe,
    /// A late packet from before the current source began (its sequence slot is taken).
    Late,
}

/// The verdict on one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it with this sequence number and timestamp.
    Forward {
        /// Rewritten sequence number.
        seq: u16,
        /// Rewritten timestamp.
        ts: u32,
        /// First packet after a switch (source, layer or floor).
        switched: bool,
    },
    /// Do not send it.
    Drop(DropReason),
}

/// A forwarding decision: the verdict, and whether the source should be asked for a keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Forward (rewritten) or drop.
    pub verdict: Verdict,
    /// A keyframe is needed from the source (the caller throttles the PLIs).
    pub request_keyframe: bool,
}

impl Decision {
    fn drop(r: DropReason) -> Self {
        Self { verdict: Verdict::Drop(r), request_keyframe: false }
    }
}

/// A simulcast layer not heard for this long has stopped flowing (a publisher's encoder drops
/// its top layer when its bandwidth estimate falls; a camera may stop one).
pub const LAYER_STALE: std::time::Duration = std::time::Duration::from_millis(500);

/// Forwarding state of one outgoing track of one subscriber.
#[derive(Debug, Clone)]
pub struct Forwarder {
    seq: SeqRewriter,
    ts: TsRewriter,
    selector: LayerSelector,
    /// The layer chosen for the subscriber.
    target_layer: usize,
    /// The layer the selector aims at: the chosen one, or while it has stopped flowing, the
    /// best layer below it still flowing (layer fallback).
    goal: usize,
    /// When each layer of the source was last heard, and when the source's first packet came.
    heard: [Option<Instant>; 8],
    first_heard: Option<Instant>,
    source: Option<Source>,
    connected: bool,
    /// The floor was closed for the last packet seen.
    muted: bool,
    /// The next forwarded packet starts after a switch.
    switching: bool,
}

impl Forwarder {
    /// A forwarder for a stream of `clock_rate` Hz starting at `first_seq`/`first_ts`, aiming at
    /// simulcast layer `target_layer` (clamped to what the source has).
    pub fn new(clock_rate: u32, first_seq: u16, first_ts: u32, target_layer: usize) -> Self {
        Self {
            seq: SeqRewriter::new(first_seq),
            ts: TsRewriter::new(clock_rate, first_ts),
            selector: LayerSelector::new(1, target_layer),
            target_layer,
            goal: target_layer,
            heard: [None; 8],
            first_heard: None,
            source: None,
            connected: false,
            muted: false,
            switching: true,
        }
    }

    /// The source followed now.
    pub fn source(&self) -> Option<TrackId> {
        self.source.map(|s| s.id)
    }

    fn restart(&mut self) {
        let layers = self.source.map_or(1, |s| s.layers);
        self.selector = LayerSelector::new(layers, self.goal);
        self.seq.handle_switch();
        self.ts.handle_switch();
        self.switching = true;
    }

    /// Follow `source` from now on (`None`: pause). True when a keyframe should be requested.
    pub fn handle_source(&mut self, source: Option<Source>) -> bool {
        if self.source.map(|s| s.id) == source.map(|s| s.id) {
            self.source = source;
            return false;
        }
        self.source = source;
        self.heard = [None; 8];
        self.first_heard = None;
        self.goal = self.target_layer;
        self.restart();
        self.source.is_some()
    }

    /// The subscriber's connection completed DTLS: whatever keyframe went by is lost to it.
    pub fn handle_connected(&mut self) -> bool {
        if self.connected {
            return false;
        }
        self.connected = true;
        self.restart();
        self.source.is_some()
    }

    /// The subscriber (or policy) chose simulcast layer `layer`.
    pub fn handle_target_layer(&mut self, layer: usize) -> bool {
        self.target_layer = layer;
        self.goal = layer; // the next packet falls back again if this layer is not flowing
        self.selector.handle_set_target(layer);
        self.source.is_some() && self.selector.wants_keyframe()
    }

    /// Layer fallback: the layer to aim at given what has been heard — the chosen layer while
    /// it flows (or while the source is too new to tell), else the best layer below it heard
    /// in the last [`LAYER_STALE`] (the chosen one if none is).
    fn fallback_goal(&self, layers: usize, now: Instant) -> usize {
        let want = self.target_layer.min(layers.saturating_sub(1)).min(self.heard.len() - 1);
        let fresh = |i: usize| self.heard[i].is_some_and(|t| now.saturating_duration_since(t) < LAYER_STALE);
        let young = self.first_heard.is_none_or(|t| now.saturating_duration_since(t) < LAYER_STALE);
        if fresh(want) || (young && self.heard[want].is_none()) {
            return want;
        }
        (0..want).rev().find(|&i| fresh(i)).unwrap_or(want)
    }

    /// The subscriber's receiver report: `fraction_lost` / 256.
    pub fn handle_loss(&mut self, fraction_lost: u8) -> bool {
        let before = self.selector.effective_target();
        self.selector.handle_loss(fraction_lost);
        self.source.is_some() && self.selector.effective_target() != before
    }

    /// The subscriber asked for a keyframe (PLI/FIR): pass it on if there is a source.
    pub fn handle_keyframe_request(&self) -> bool {
        self.source.is_some()
    }

    /// Decide for one packet.
    pub fn handle_packet(&mut self, p: &PacketMeta, now: Instant) -> Decision {
        let Some(src) = self.source.filter(|s| s.id == p.source) else {
            return Decision::drop(DropReason::NotSource);
        };
        if !src.codec_matches {
            return Decision::drop(DropReason::Codec);
        }
        // Which layers flow is known from every packet, forwarded or not.
        if let Some(h) = self.heard.get_mut(p.layer as usize) {
            *h = Some(now);
        }
        self.first_heard.get_or_insert(now);
        if !self.connected {
            return Decision::drop(DropReason::NotConnected);
        }
        if !p.gate_open {
            self.muted = true;
            return Decision::drop(DropReason::Muted);
        }
        let mut request_keyframe = false;
        if self.muted {
            // The floor came back: restart on a keyframe, continuing the sequence.
            self.muted = false;
            self.restart();
            request_keyframe = true;
        }
        self.selector.handle_layers(p.layers);
        if p.layers > 1 {
            let goal = self.fallback_goal(p.layers, now);
            if goal != self.goal {
                self.goal = goal;
                self.selector.handle_set_target(goal);
                request_keyframe |= self.selector.wants_keyframe();
            }
        }
        match self.selector.handle_packet(p.layer as usize, p.keyframe) {
            LayerDecision::Drop => {
                return Decision { verdict: Verdict::Drop(DropReason::AwaitingKeyframe), request_keyframe };
            }
            LayerDecision::SwitchAndForward => {
                self.seq.handle_switch();
                self.ts.handle_switch();
                self.switching = true;
            }
            LayerDecision::Forward => {}
        }
        let Some(seq) = self.seq.rewrite(p.seq) else {
            return Decision { verdict: Verdict::Drop(DropReason::Late), request_keyframe };
        };
        let ts = self.ts.rewrite(p.ts, now);
        let switched = std::mem::take(&mut self.switching);
        Decision { verdict: Verdict::Forward { seq, ts, switched }, request_keyframe }
    }

    /// Waiting for a keyframe before anything can be forwarded (a deferred PLI is worth sending).
    pub fn wants_keyframe(&self) -> bool {
        self.source.is_some() && (self.muted || self.selector.wants_keyframe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    const A: TrackId = TrackId(1);
    const B: TrackId = TrackId(2);

    fn src(id: TrackId, layers: usize) -> Option<Source> {
        Some(Source { id, layers, codec_matches: true })
    }

    fn pkt(source: TrackId, layer: u8, layers: usize, seq: u16, keyframe: bool, gate_open: bool) -> PacketMeta {
        PacketMeta { source, layer, layers, seq, ts: seq as u32 * 3000, keyframe, gate_open }
    }

    fn forwarded(d: Decision) -> Option<u16> {
        match d.verdict {
            Verdict::Forward { seq, .. } => Some(seq),
            Verdict::Drop(_) => None,
        }
    }

    #[test]
    fn nothing_before_the_connection_is_up_then_a_keyframe_start() {
        let t = Instant::now();
        let mut f = Forwarder::new(90_000, 500, 0, 2);
        assert!(f.handle_source(src(A, 1)), "a new source asks for a keyframe");
        assert_eq!(f.handle_packet(&pkt(A, 0, 1, 10, true, true), t).verdict, Verdict::Drop(DropReason::NotConnected));
        assert!(f.handle_connected(), "connecting asks again: earlier keyframes were missed");
        assert_eq!(f.handle_packet(&pkt(A, 0, 1, 11, false, true), t).verdict, Verdict::Drop(DropReason::AwaitingKeyframe));
        assert!(f.wants_keyframe());
        let d = f.handle_packet(&pkt(A, 0, 1, 12, true, true), t);
        assert_eq!(d.verdict, Verdict::Forward { seq: 500, ts: 0, switched: true });
        assert_eq!(forwarded(f.handle_packet(&pkt(A, 0, 1, 13, false, true), t + Duration::from_millis(33))), Some(501));
        assert_eq!(f.handle_packet(&pkt(B, 0, 1, 1, true, true), t).verdict, Verdict::Drop(DropReason::NotSource));
    }

    #[test]
    fn a_codec_the_leg_did_not_negotiate_is_dropped() {
        let mut f = Forwarder::new(90_000, 1, 0, 0);
        f.handle_source(Some(Source { id: A, layers: 1, codec_matches: false }));
        f.handle_connected();
        assert_eq!(f.handle_packet(&pkt(A, 0, 1, 1, true, true), Instant::now()).verdict, Verdict::Drop(DropReason::Codec));
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// `n` packets of the current source (a keyframe first when `key`).
        Packets { n: u8, key: bool },
        SwitchSource,
        SetLayer(u8),
        Floor(bool),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (1u8..20, any::<bool>()).prop_map(|(n, key)| Step::Packets { n, key }),
            1 => Just(Step::SwitchSource),
            1 => (0u8..3).prop_map(Step::SetLayer),
            1 => any::<bool>().prop_map(Step::Floor),
        ]
    }

    proptest! {
        /// Sources switch, layers switch, the floor closes and opens; each source's layers are
        /// sent without loss. Then: forwarded sequence numbers step by exactly one, nothing passes
        /// a closed floor, every switch asks for a keyframe, and whenever the forwarded layer
        /// changes (a new source, a new layer, the floor back) it starts on a keyframe of the
        /// target layer.
        #[test]
        fn forwarded_stream_is_continuous_gated_and_starts_on_keyframes(
            first in any::<u16>(),
            steps in proptest::collection::vec(step(), 1..40),
        ) {
            let t0 = Instant::now();
            let layers = 3usize;
            let mut f = Forwarder::new(90_000, first, 7, 2);
            let mut source = A;
            let mut in_seq = [[1000u16, 20_000, 40_000], [5u16, 30_000, 60_000]];
            let mut gate = true;
            let mut target = 2u8;
            prop_assert!(f.handle_source(src(source, layers)));
            prop_assert!(f.handle_connected());
            let mut last_out: Option<u16> = None;
            // The layer being forwarded; `None` after a source switch or a floor restart.
            let mut current: Option<u8> = None;
            let mut muted_seen = false;
            let mut now = t0;
            for s in steps {
                match s {
                    Step::Packets { n, key } => {
                        for k in 0..n {
                            now += Duration::from_millis(10);
                            let si = (source.0 - 1) as usize;
                            for l in 0..layers as u8 {
                                let seq = in_seq[si][l as usize];
                                in_seq[si][l as usize] = seq.wrapping_add(1);
                                let keyframe = key && k == 0;
                                if gate && muted_seen {
                                    muted_seen = false;
                                    current = None; // the floor came back: a restart
                                }
                                let d = f.handle_packet(&pkt(source, l, layers, seq, keyframe, gate), now);
                                if !gate {
                                    muted_seen = true;
                                }
                                if let Verdict::Forward { seq: out, switched, .. } = d.verdict {
                                    prop_assert!(gate, "forwarded while the floor was closed");
                                    if current != Some(l) {
                                        prop_assert!(keyframe, "a switch to layer {} did not start on a keyframe", l);
                                        prop_assert_eq!(l, target, "switched to a layer other than the target");
                                        prop_assert!(switched);
                                        current = Some(l);
                                    }
                                    if let Some(prev) = last_out {
                                        prop_assert_eq!(out, prev.wrapping_add(1), "gap or repeat in the forwarded stream");
                                    } else {
                                        prop_assert_eq!(out, first);
                                    }
                                    last_out = Some(out);
                                }
                            }
                        }
                    }
                    Step::SwitchSource => {
                        source = if source == A { B } else { A };
                        prop_assert!(f.handle_source(src(source, layers)), "a source switch asks for a keyframe");
                        current = None;
                    }
                    Step::SetLayer(l) => {
                        let ask = f.handle_target_layer(l as usize);
                        if current.is_some_and(|c| c != l) {
                            prop_assert!(ask, "a layer switch asks for a keyframe");
                        }
                        target = l;
                    }
                    Step::Floor(open) => gate = open,
                }
            }
        }

        /// Layers of a simulcast source stop and resume at random (every flowing layer sends a
        /// keyframe every 5 ticks). The forwarded stream stays continuous and never above the
        /// chosen layer, and once the set of flowing layers has been stable for longer than
        /// [`LAYER_STALE`] plus a keyframe interval, the viewer gets the best layer still
        /// flowing at or below the chosen one.
        #[test]
        fn a_viewer_falls_back_to_the_best_layer_still_flowing(
            first in any::<u16>(),
            target in 0usize..3,
            phases in proptest::collection::vec((proptest::array::uniform3(any::<bool>()), 1usize..60), 1..8),
        ) {
            let tick = Duration::from_millis(20);
            let settle = (LAYER_STALE.as_millis() / tick.as_millis()) as usize + 5 + 2;
            let mut f = Forwarder::new(90_000, first, 7, target);
            f.handle_source(src(A, 3));
            f.handle_connected();
            let mut in_seq = [100u16, 20_000, 40_000];
            let mut now = Instant::now();
            let mut last_out: Option<u16> = None;
            let mut t = 0usize;
            for (alive, ticks) in phases {
                for k in 0..ticks {
                    now += tick;
                    t += 1;
                    let mut forwarded_layer = None;
                    for l in 0..3usize {
                        if !alive[l] {
                            continue;
                        }
                        let seq = in_seq[l];
                        in_seq[l] = seq.wrapping_add(1);
                        let d = f.handle_packet(&pkt(A, l as u8, 3, seq, t.is_multiple_of(5), true), now);
                        if let Verdict::Forward { seq: out, .. } = d.verdict {
                            prop_assert!(l <= target, "layer {} above the chosen {}", l, target);
                            if let Some(prev) = last_out {
                                prop_assert_eq!(out, prev.wrapping_add(1), "gap or repeat");
                            }
                            last_out = Some(out);
                            forwarded_layer = Some(l);
                        }
                    }
                    let best = (0..=target).rev().find(|&l| alive[l]);
                    if k >= settle && best.is_some() {
                        prop_assert_eq!(forwarded_layer, best, "tick {} of a phase with {:?}: not the best flowing layer", k, alive);
                    }
                }
            }
        }

        /// A closed floor forwards nothing, whatever arrives.
        #[test]
        fn nothing_is_forwarded_while_the_floor_is_closed(
            packets in proptest::collection::vec((any::<u16>(), any::<bool>(), 0u8..3), 1..100),
        ) {
            let mut f = Forwarder::new(48_000, 1, 1, 0);
            f.handle_source(src(A, 3));
            f.handle_connected();
            let now = Instant::now();
            for (seq, key, layer) in packets {
                let d = f.handle_packet(&pkt(A, layer, 3, seq, key, false), now);
                prop_assert_eq!(d.verdict, Verdict::Drop(DropReason::Muted));
            }
        }
    }
}
