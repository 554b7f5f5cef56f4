//! The SDP parser a WHIP/WHEP body reaches: the SFU checks `v=0` and hands the text to
//! `RTCSessionDescription::offer` (webrtc-rs's `rtc`, which parses it with `rtc-sdp`). Any body
//! must come back as an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc::peer_connection::sdp::RTCSessionDescription;

fuzz_target!(|data: &[u8]| {
    // The hub refuses bodies that are not UTF-8 or larger than MAX_SDP_BYTES before this.
    if data.len() > shangliang_signaling::limits::MAX_SDP_BYTES {
        return;
    }
    if let Ok(text) = std::str::from_utf8(data) {
        // The SFU's own first check; inputs without it get it, so every input reaches the
        // parser (seed: `fuzz/seeds/sdp_offer`, a browser's receive-only offer).
        let sdp = if text.trim_start().starts_with("v=0") { text.to_owned() } else { format!("v=0\r\n{text}") };
        let _ = RTCSessionDescription::offer(sdp);
    }
});
