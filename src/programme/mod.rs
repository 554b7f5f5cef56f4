//! The stage programme (placeholder, filled in below).

pub mod fmp4;
pub mod h264;
pub mod opus;
pub mod packager;
pub mod playlist;
pub mod reorder;

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
