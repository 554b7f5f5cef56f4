//! The livestream's programme: the stage as the floor lets it be seen and heard, packaged as
//! LL-HLS (CMAF/fMP4) for the public audience and kept as the recording. Pure: no tokio, no
//! sockets; time is an argument and decisions are values (STYLE habits 1 and 12). The one
//! module that touches the disk is [`store`], the segment store, kept apart so that everything
//! else is tested without it.
//!
//! ```text
//! SFU tap ──► Programme (engine) ─┬─ h264 / opus     RTP → access units / Opus packets
//!  (tracks,    │                   ├─ switcher        who is seen, who is heard
//!   packets,   │                   ├─ packager        parts, segments, epochs (init changes)
//!   speaker)   │                   └─ fmp4            the boxes (mp4-atom)
//! floor ───────┘ ──► Output: RequestKeyframe | Init | Part | Segment | OnAir | Unsupported
//!                        │
//!                        ├─► playlist::LiveWindow   the live LL-HLS playlist (blocking reloads)
//!                        └─► store::SegmentStore    recordings/{activity}/…, index.jsonl
//! ```
//!
//! The server's `programme.rs` owns one [`Programme`] per live livestream (a `*Driver` task fed
//! by the tap and the floor hook); `hls.rs` serves the window and the store.

pub mod engine;
pub mod fmp4;
pub mod h264;
pub mod opus;
pub mod packager;
pub mod playlist;
pub mod replay;
pub mod reorder;
pub mod store;
pub mod switcher;

pub use engine::{Output, Programme, ProgrammeConfig, ProgrammeStatus, TrackCodec, TrackKey, TrackKind};

use bytes::Bytes;

/// One RTP packet of a stage track, as the SFU's tap hands it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpPacket {
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub ts: u32,
    /// The marker bit (last packet of a video frame).
    pub marker: bool,
    /// The payload (header extensions already stripped).
    pub payload: Bytes,
    /// When it arrived, microseconds since the Unix epoch.
    pub arrival_us: u64,
}
