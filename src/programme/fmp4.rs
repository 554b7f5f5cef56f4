//! CMAF / fragmented MP4: the init segment (`ftyp` + `moov` with `avc1`/`avcC` and
//! `Opus`/`dOps`, `mvex`/`trex`) and one fragment (`moof` + `mdat`) per LL-HLS part.
//!
//! Boxes are built and encoded with `mp4-atom` (kixelated's ISO-BMFF crate, the one moq-rs
//! uses), so the layout is the crate's, not ours; tests decode what we write with the same crate
//! and, end to end, ffprobe and hls.js read it.
//!
//! Track 1 is video (90 kHz, the RTP clock of H.264), track 2 audio (48 kHz, the RTP clock of
//! Opus), so sample durations are RTP timestamp differences with no rescaling. A fragment holds
//! one `traf` per track that has samples in it, both in one `mdat` (video first). Each `tfhd`
//! says `default-base-is-moof`, so `trun.data_offset` is measured from the start of the `moof`.

use bytes::Bytes;
use mp4_atom::{
    Audio, Avc1, Avcc, Codec, Dinf, Dops, Dref, Ftyp, Hdlr, Mdhd, Mdia, Mfhd, Minf, Moof, Moov, Mvex, Mvhd, Opus, Smhd, Stbl, Stco, Stsd, Tfdt,
    Encode, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry, Url, Visual, Vmhd,
};

use super::h264::SpsInfo;

/// The video track's id.
pub const VIDEO_TRACK: u32 = 1;
/// The audio track's id.
pub const AUDIO_TRACK: u32 = 2;
/// Video timescale: the H.264 RTP clock.
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Audio timescale: the Opus RTP clock.
pub const AUDIO_TIMESCALE: u32 = 48_000;

/// `sample_flags` of a sync sample: depends on no other (`sample_depends_on = 2`).
pub const SYNC_SAMPLE: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: depends on others, `sample_is_non_sync_sample`.
pub const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

/// What the init segment says about the video track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoParams {
    /// The SPS NAL unit.
    pub sps: Bytes,
    /// The PPS NAL unit.
    pub pps: Bytes,
    /// What the SPS says.
    pub info: SpsInfo,
}

impl VideoParams {
    /// Parameters from an SPS and a PPS; `Err` if the SPS cannot be parsed.
    pub fn new(sps: Bytes, pps: Bytes) -> Result<Self, String> {
        let info = SpsInfo::parse(&sps)?;
        Ok(Self { sps, pps, info })
    }
}

/// One sample of a fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Duration in the track's timescale.
    pub duration: u32,
    /// The sample (AVCC for video, the Opus packet for audio).
    pub data: Bytes,
    /// A sync sample (keyframe; every Opus packet is one).
    pub sync: bool,
}

/// The samples of one track in one fragment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackRun {
    /// Decode time of the first sample, in the track's timescale.
    pub base_decode_time: u64,
    /// The samples, in decode order.
    pub samples: Vec<Sample>,
}

impl TrackRun {
    /// Total duration in the track's timescale.
    pub fn duration(&self) -> u64 {
        self.samples.iter().map(|s| s.duration as u64).sum()
    }
}

fn encode(atom: &impl Encode, out: &mut Vec<u8>) {
    atom.encode(out).expect("encoding into a Vec cannot fail for boxes we build");
}

/// The RFC 6381 codecs of an init segment: `avc1.PPCCLL,opus` or `opus`.
pub fn codecs(video: Option<&VideoParams>) -> String {
    match video {
        Some(v) => format!("{},opus", v.info.codec_string()),
        None => "opus".into(),
    }
}

/// The init segment: one audio track (Opus, stereo, 48 kHz) and, with `video`, one H.264 track.
pub fn init_segment(video: Option<&VideoParams>) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    encode(
        &Ftyp { major_brand: b"iso6".into(), minor_version: 0, compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()] },
        &mut out,
    );
    let mut trak = Vec::new();
    let mut trex = Vec::new();
    if let Some(v) = video {
        trak.push(video_trak(v));
        trex.push(Trex { track_id: VIDEO_TRACK, default_sample_description_index: 1, ..Default::default() });
    }
    trak.push(audio_trak());
    trex.push(Trex { track_id: AUDIO_TRACK, default_sample_description_index: 1, ..Default::default() });
    let moov = Moov {
        mvhd: Mvhd { timescale: 1000, next_track_id: AUDIO_TRACK + 1, ..Default::default() },
        mvex: Some(Mvex { mehd: None, trex }),
        trak,
        ..Default::default()
    };
    encode(&moov, &mut out);
    out
}

fn dinf() -> Dinf {
    Dinf { dref: Dref { entries: vec![Url::default().into()] } }
}

fn video_trak(v: &VideoParams) -> Trak {
    let (w, h) = (v.info.width.min(u16::MAX as u32) as u16, v.info.height.min(u16::MAX as u32) as u16);
    let avc1 = Avc1 {
        visual: Visual { data_reference_index: 1, width: w, height: h, ..Default::default() },
        avcc: Avcc {
            configuration_version: 1,
            avc_profile_indication: v.info.profile,
            profile_compatibility: v.info.compatibility,
            avc_level_indication: v.info.level,
            length_size: 4,
            sequence_parameter_sets: vec![v.sps.to_vec()],
            picture_parameter_sets: vec![v.pps.to_vec()],
            ext: None,
        },
        btrt: None,
        colr: None,
        pasp: None,
        taic: None,
        fiel: None,
        spatial: None,
    };
    Trak {
        tkhd: Tkhd { track_id: VIDEO_TRACK, enabled: true, in_movie: true, width: w.into(), height: h.into(), ..Default::default() },
        mdia: Mdia {
            mdhd: Mdhd { timescale: VIDEO_TIMESCALE, language: "und".into(), ..Default::default() },
            hdlr: Hdlr { handler: b"vide".into(), name: "shangliang video".into() },
            minf: Minf {
                vmhd: Some(Vmhd::default()),
                dinf: dinf(),
                stbl: Stbl { stsd: Stsd { codecs: vec![Codec::from(avc1)] }, stco: Some(Stco::default()), ..Default::default() },
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

fn audio_trak() -> Trak {
    let opus = Opus {
        audio: Audio { data_reference_index: 1, channel_count: 2, sample_size: 16, sample_rate: 48_000u16.into() },
        dops: Dops { output_channel_count: 2, pre_skip: 0, input_sample_rate: AUDIO_TIMESCALE, output_gain: 0, channel_mapping: None },
        btrt: None,
    };
    Trak {
        tkhd: Tkhd { track_id: AUDIO_TRACK, enabled: true, in_movie: true, volume: 1u8.into(), alternate_group: 1, ..Default::default() },
        mdia: Mdia {
            mdhd: Mdhd { timescale: AUDIO_TIMESCALE, language: "und".into(), ..Default::default() },
            hdlr: Hdlr { handler: b"soun".into(), name: "shangliang audio".into() },
            minf: Minf {
                smhd: Some(Smhd::default()),
                dinf: dinf(),
                stbl: Stbl { stsd: Stsd { codecs: vec![Codec::from(opus)] }, stco: Some(Stco::default()), ..Default::default() },
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

fn traf(track_id: u32, run: &TrackRun, data_offset: i32) -> Traf {
    let entries: Vec<TrunEntry> = run
        .samples
        .iter()
        .map(|s| TrunEntry {
            duration: Some(s.duration),
            size: Some(s.data.len() as u32),
            flags: Some(if s.sync { SYNC_SAMPLE } else { NON_SYNC_SAMPLE }),
            cts: None,
        })
        .collect();
    Traf {
        tfhd: Tfhd { track_id, default_base_is_moof: true, ..Default::default() },
        tfdt: Some(Tfdt { base_media_decode_time: run.base_decode_time }),
        trun: vec![Trun { data_offset: Some(data_offset), samples: entries.into() }],
        ..Default::default()
    }
}

/// One fragment: `moof` (sequence number `seq`) and `mdat` with the video run's samples, then
/// the audio run's. A run without samples gets no `traf`.
pub fn fragment(seq: u32, video: Option<&TrackRun>, audio: Option<&TrackRun>) -> Vec<u8> {
    let runs: Vec<(u32, &TrackRun)> = [(VIDEO_TRACK, video), (AUDIO_TRACK, audio)]
        .into_iter()
        .filter_map(|(id, r)| r.filter(|r| !r.samples.is_empty()).map(|r| (id, r)))
        .collect();
    let build = |offsets: &[i32]| Moof {
        mfhd: Mfhd { sequence_number: seq },
        traf: runs.iter().zip(offsets).map(|((id, r), off)| traf(*id, r, *off)).collect(),
    };
    // The offsets depend on the moof's size, which does not depend on their values.
    let mut probe = Vec::new();
    encode(&build(&vec![0; runs.len()]), &mut probe);
    let mut offsets = Vec::with_capacity(runs.len());
    let mut at = probe.len() + 8;
    for (_, r) in &runs {
        offsets.push(at as i32);
        at += r.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    let mdat_len = at - probe.len();
    let mut out = Vec::with_capacity(at);
    encode(&build(&offsets), &mut out);
    debug_assert_eq!(out.len(), probe.len());
    out.extend_from_slice(&(mdat_len as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    for (_, r) in &runs {
        for s in &r.samples {
            out.extend_from_slice(&s.data);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programme::h264::tests::{PPS, SPS_640X360};
    use mp4_atom::{Any, Decode};

    fn params() -> VideoParams {
        VideoParams::new(Bytes::from_static(SPS_640X360), Bytes::from_static(PPS)).unwrap()
    }

    #[test]
    fn init_segment_parses_back_with_avcc_dops_and_trex() {
        let bytes = init_segment(Some(&params()));
        let mut buf = std::io::Cursor::new(&bytes[..]);
        let ftyp = Ftyp::decode(&mut buf).unwrap();
        assert_eq!(ftyp.major_brand, b"iso6".into());
        let moov = Moov::decode(&mut buf).unwrap();
        assert_eq!(moov.trak.len(), 2);
        let v = &moov.trak[0];
        assert_eq!(v.tkhd.track_id, VIDEO_TRACK);
        assert_eq!(v.mdia.mdhd.timescale, VIDEO_TIMESCALE);
        let Codec::Avc1(avc1) = &v.mdia.minf.stbl.stsd.codecs[0] else { panic!("{:?}", v.mdia.minf.stbl.stsd) };
        assert_eq!((avc1.visual.width, avc1.visual.height), (640, 360));
        assert_eq!(avc1.avcc.sequence_parameter_sets, vec![SPS_640X360.to_vec()]);
        assert_eq!(avc1.avcc.length_size, 4);
        let a = &moov.trak[1];
        let Codec::Opus(opus) = &a.mdia.minf.stbl.stsd.codecs[0] else { panic!() };
        assert_eq!(opus.dops.input_sample_rate, 48_000);
        assert_eq!(moov.mvex.unwrap().trex.len(), 2);
        assert_eq!(codecs(Some(&params())), "avc1.42c01e,opus");
    }

    #[test]
    fn audio_only_init_has_one_track() {
        let bytes = init_segment(None);
        let mut buf = std::io::Cursor::new(&bytes[..]);
        Ftyp::decode(&mut buf).unwrap();
        let moov = Moov::decode(&mut buf).unwrap();
        assert_eq!(moov.trak.len(), 1);
        assert_eq!(moov.trak[0].tkhd.track_id, AUDIO_TRACK);
        assert_eq!(codecs(None), "opus");
    }

    #[test]
    fn fragment_offsets_point_at_each_tracks_samples_in_the_mdat() {
        let video = TrackRun {
            base_decode_time: 90_000 * 5,
            samples: vec![
                Sample { duration: 3000, data: Bytes::from_static(b"KEYFRAME"), sync: true },
                Sample { duration: 3000, data: Bytes::from_static(b"delta"), sync: false },
            ],
        };
        let audio = TrackRun { base_decode_time: 48_000 * 5, samples: vec![Sample { duration: 960, data: Bytes::from_static(b"opus!"), sync: true }] };
        let bytes = fragment(7, Some(&video), Some(&audio));
        let mut buf = std::io::Cursor::new(&bytes[..]);
        let moof = Moof::decode(&mut buf).unwrap();
        assert_eq!(moof.mfhd.sequence_number, 7);
        assert_eq!(moof.traf.len(), 2);
        let Any::Mdat(mdat) = Any::decode(&mut buf).unwrap() else { panic!() };
        assert_eq!(mdat.data, b"KEYFRAMEdeltaopus!");
        let v = &moof.traf[0];
        assert!(v.tfhd.default_base_is_moof);
        assert_eq!(v.tfdt.as_ref().unwrap().base_media_decode_time, 450_000);
        let off = v.trun[0].data_offset.unwrap() as usize;
        assert_eq!(&bytes[off..off + 8], b"KEYFRAME");
        let entries: Vec<TrunEntry> = v.trun[0].samples.iter().collect();
        assert_eq!(entries[0].flags, Some(SYNC_SAMPLE));
        assert_eq!(entries[1].flags, Some(NON_SYNC_SAMPLE));
        let a = &moof.traf[1];
        let off = a.trun[0].data_offset.unwrap() as usize;
        assert_eq!(&bytes[off..off + 5], b"opus!");
        assert_eq!(video.duration(), 6000);
    }

    #[test]
    fn a_track_without_samples_gets_no_traf() {
        let audio = TrackRun { base_decode_time: 0, samples: vec![Sample { duration: 960, data: Bytes::from_static(b"x"), sync: true }] };
        let bytes = fragment(1, Some(&TrackRun::default()), Some(&audio));
        let moof = Moof::decode(&mut std::io::Cursor::new(&bytes[..])).unwrap();
        assert_eq!(moof.traf.len(), 1);
        assert_eq!(moof.traf[0].tfhd.track_id, AUDIO_TRACK);
    }
}
