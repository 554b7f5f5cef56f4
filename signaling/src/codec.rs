//! Frames to messages and back, in both forms, under the protocol's limits.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::{ActivityId, Epoch, Seq};
use crate::limits::{MAX_CLIENT_FRAME_BYTES, MAX_CLIENT_NESTING};
use crate::messages::{ClientMsg, Item, ServerMsg};

/// The two forms of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// Binary websocket frames holding MessagePack (maps with string keys). The normal form.
    MsgPack,
    /// Text websocket frames holding JSON. For debugging and hand-written clients.
    Json,
}

/// Why a client frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is larger than [`MAX_CLIENT_FRAME_BYTES`].
    #[error("frame of {0} bytes is larger than the limit of {MAX_CLIENT_FRAME_BYTES}")]
    TooLarge(usize),
    /// The frame nests arrays/maps deeper than [`MAX_CLIENT_NESTING`].
    #[error("frame nests arrays or maps deeper than {MAX_CLIENT_NESTING} levels")]
    TooDeep,
    /// The frame names a message type this protocol does not have.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// The frame is not a well-formed message.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

const CLIENT_TYPES: &[&str] = &["auth", "sub", "unsub", "post", "cmd", "ping", "media", "consensus"];

#[derive(Deserialize)]
struct TagOnly {
    t: String,
}

fn from_form<'a, T: Deserialize<'a>>(form: Form, frame: &'a [u8]) -> Result<T, String> {
    match form {
        Form::MsgPack => rmp_serde::from_slice(frame).map_err(|e| e.to_string()),
        Form::Json => serde_json::from_slice(frame).map_err(|e| e.to_string()),
    }
}

fn to_form<T: Serialize>(form: Form, msg: &T) -> Bytes {
    // Serialising these types cannot fail: every map key is a string and no type has a
    // custom serializer that errors.
    match form {
        Form::MsgPack => rmp_serde::to_vec_named(msg).expect("msgpack encoding").into(),
        Form::Json => serde_json::to_vec(msg).expect("json encoding").into(),
    }
}

/// Decodes one client frame. Checks the size limit before parsing.
pub fn decode_client(form: Form, frame: &[u8]) -> Result<ClientMsg, DecodeError> {
    if frame.len() > MAX_CLIENT_FRAME_BYTES {
        return Err(DecodeError::TooLarge(frame.len()));
    }
    if nesting_exceeds(form, frame, MAX_CLIENT_NESTING) {
        return Err(DecodeError::TooDeep);
    }
    from_form::<ClientMsg>(form, frame).map_err(|err| match from_form::<TagOnly>(form, frame) {
        Ok(tag) if !CLIENT_TYPES.contains(&tag.t.as_str()) => {
            let mut t = tag.t;
            t.truncate(t.floor_char_boundary(64));
            DecodeError::UnknownType(t)
        }
        _ => DecodeError::Malformed(err),
    })
}

/// Whether `frame` nests arrays/maps deeper than `max`, found by one pass over its bytes without
/// recursion (the decoders recurse once per level). Malformed or truncated frames answer `false`
/// as far as they nest: the decoder then reports them.
pub fn nesting_exceeds(form: Form, frame: &[u8], max: usize) -> bool {
    match form {
        Form::Json => json_nesting_exceeds(frame, max),
        Form::MsgPack => msgpack_nesting_exceeds(frame, max),
    }
}

fn json_nesting_exceeds(frame: &[u8], max: usize) -> bool {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in frame {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn msgpack_nesting_exceeds(frame: &[u8], max: usize) -> bool {
    // Elements still to read in each open container, innermost last; the frame is one value.
    let mut open: Vec<u64> = Vec::new();
    let mut i = 0usize;
    let be = |at: usize, n: usize| -> Option<u64> {
        let b = frame.get(at..at + n)?;
        Some(b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
    };
    loop {
        let Some(&b) = frame.get(i) else { return false };
        i += 1;
        // (bytes to skip after the marker, elements of a container opened here)
        let (skip, elems): (u64, Option<u64>) = match b {
            0x00..=0x7f | 0xe0..=0xff | 0xc0..=0xc3 => (0, None),
            0x80..=0x8f => (0, Some(2 * u64::from(b & 0x0f))),
            0x90..=0x9f => (0, Some(u64::from(b & 0x0f))),
            0xa0..=0xbf => (u64::from(b & 0x1f), None),
            0xc4 | 0xd9 => match be(i, 1) { Some(n) => (1 + n, None), None => return false },
            0xc5 | 0xda => match be(i, 2) { Some(n) => (2 + n, None), None => return false },
            0xc6 | 0xdb => match be(i, 4) { Some(n) => (4 + n, None), None => return false },
            0xc7 => match be(i, 1) { Some(n) => (2 + n, None), None => return false },
            0xc8 => match be(i, 2) { Some(n) => (3 + n, None), None => return false },
            0xc9 => match be(i, 4) { Some(n) => (5 + n, None), None => return false },
            0xca => (4, None),
            0xcb => (8, None),
            0xcc | 0xd0 => (1, None),
            0xcd | 0xd1 => (2, None),
            0xce | 0xd2 => (4, None),
            0xcf | 0xd3 => (8, None),
            0xd4 => (2, None),
            0xd5 => (3, None),
            0xd6 => (5, None),
            0xd7 => (9, None),
            0xd8 => (17, None),
            0xdc => match be(i, 2) { Some(n) => (2, Some(n)), None => return false },
            0xdd => match be(i, 4) { Some(n) => (4, Some(n)), None => return false },
            0xde => match be(i, 2) { Some(n) => (2, Some(2 * n)), None => return false },
            0xdf => match be(i, 4) { Some(n) => (4, Some(2 * n)), None => return false },
        };
        i = match usize::try_from(skip).ok().and_then(|s| i.checked_add(s)) {
            Some(next) if next <= frame.len() => next,
            _ => return false,
        };
        match elems {
            Some(n) if n > 0 => {
                open.push(n);
                if open.len() > max {
                    return true;
                }
                continue;
            }
            _ => {}
        }
        // One value (a scalar or an empty container) is complete: close what it completes.
        loop {
            match open.last_mut() {
                None => return false,
                Some(left) => {
                    *left -= 1;
                    if *left > 0 {
                        break;
                    }
                    open.pop();
                }
            }
        }
    }
}

/// Encodes a client message (for clients, tests and the load harness).
pub fn encode_client(form: Form, msg: &ClientMsg) -> Bytes {
    to_form(form, msg)
}

/// Encodes a server message.
pub fn encode_server(form: Form, msg: &ServerMsg) -> Bytes {
    to_form(form, msg)
}

/// Decodes a server frame (for clients, tests and the load harness). No size limit.
pub fn decode_server(form: Form, frame: &[u8]) -> Result<ServerMsg, DecodeError> {
    from_form(form, frame).map_err(DecodeError::Malformed)
}

/// Encodes one item on its own, to be spliced into `batch` frames by [`encode_batch`].
pub fn encode_item(form: Form, item: &Item) -> Bytes {
    to_form(form, item)
}

/// Builds a `batch` frame out of items already encoded by [`encode_item`] in the same form,
/// without decoding or re-encoding them: this is how one frame per topic per flush is made
/// for every subscriber at the cost of a copy. The result decodes as [`ServerMsg::Batch`].
pub fn encode_batch<'a, I>(
    form: Form,
    topic: &ActivityId,
    epoch: Epoch,
    from: Seq,
    to: Seq,
    thinned: u32,
    items: I,
) -> Bytes
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: ExactSizeIterator,
{
    let items = items.into_iter();
    let mut buf = Vec::with_capacity(96 + topic.as_str().len());
    match form {
        Form::MsgPack => {
            use rmp::encode::{write_array_len, write_map_len, write_str, write_uint};
            // Writing into a Vec cannot fail.
            let w = &mut buf;
            write_map_len(w, 7).unwrap();
            write_str(w, "t").unwrap();
            write_str(w, "batch").unwrap();
            write_str(w, "topic").unwrap();
            write_str(w, topic.as_str()).unwrap();
            write_str(w, "epoch").unwrap();
            write_uint(w, epoch.0.into()).unwrap();
            write_str(w, "from").unwrap();
            write_uint(w, from.0).unwrap();
            write_str(w, "to").unwrap();
            write_uint(w, to.0).unwrap();
            write_str(w, "thinned").unwrap();
            write_uint(w, thinned.into()).unwrap();
            write_str(w, "items").unwrap();
            write_array_len(w, items.len() as u32).unwrap();
            for item in items {
                buf.extend_from_slice(item);
            }
        }
        Form::Json => {
            use std::io::Write;
            // Topic ids are restricted to [A-Za-z0-9_-], so they need no escaping.
            write!(
                buf,
                r#"{{"t":"batch","topic":"{}","epoch":{},"from":{},"to":{},"thinned":{},"items":["#,
                topic.as_str(),
                epoch.0,
                from.0,
                to.0,
                thinned
            )
            .unwrap();
            for (i, item) in items.enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                buf.extend_from_slice(item);
            }
            buf.extend_from_slice(b"]}");
        }
    }
    buf.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::*;
    use crate::messages::*;

    fn nested_msgpack(depth: usize, leaf: &[u8]) -> Vec<u8> {
        let mut f = vec![0x91u8; depth];
        f.extend_from_slice(leaf);
        f
    }

    #[test]
    fn a_frame_nested_deeper_than_the_limit_is_refused_before_decoding() {
        // 8,000 levels would overflow the decoder's stack (it recurses once per level).
        let mut mp = vec![0x82u8];
        mp.extend(rmp_serde::to_vec("t").unwrap());
        mp.extend(rmp_serde::to_vec("post").unwrap());
        mp.extend(rmp_serde::to_vec("text").unwrap());
        mp.extend(nested_msgpack(8_000, &[0xc0]));
        assert_eq!(decode_client(Form::MsgPack, &mp), Err(DecodeError::TooDeep));
        let json = format!(r#"{{"t":"post","text":{}1{}}}"#, "[".repeat(8_000), "]".repeat(8_000));
        assert_eq!(decode_client(Form::Json, json.as_bytes()), Err(DecodeError::TooDeep));
        // The big forms of arrays and maps count too.
        let mut wide = Vec::new();
        for _ in 0..40 {
            wide.extend([0xdc, 0x00, 0x01]);
        }
        wide.push(0x01);
        assert!(nesting_exceeds(Form::MsgPack, &wide, MAX_CLIENT_NESTING));
        let mut maps = Vec::new();
        for _ in 0..40 {
            maps.extend([0xde, 0x00, 0x01, 0xa1, b'k']);
        }
        maps.push(0x01);
        assert!(nesting_exceeds(Form::MsgPack, &maps, MAX_CLIENT_NESTING));
    }

    #[test]
    fn nesting_is_counted_exactly_and_brackets_in_strings_do_not_count() {
        for depth in [0, 1, 5, MAX_CLIENT_NESTING - 1, MAX_CLIENT_NESTING, MAX_CLIENT_NESTING + 1, 100] {
            let want = depth > MAX_CLIENT_NESTING;
            assert_eq!(nesting_exceeds(Form::MsgPack, &nested_msgpack(depth, &[0x01]), MAX_CLIENT_NESTING), want, "msgpack {depth}");
            let json = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(nesting_exceeds(Form::Json, json.as_bytes(), MAX_CLIENT_NESTING), want, "json {depth}");
        }
        // Siblings are not nesting: 100 arrays side by side inside one array are depth 2.
        let mut side = vec![0xdc, 0x00, 100];
        for _ in 0..100 {
            side.extend([0x91, 0x01]);
        }
        assert!(!nesting_exceeds(Form::MsgPack, &side, 2));
        assert!(nesting_exceeds(Form::MsgPack, &side, 1));
        let text = format!(r#"{{"t":"post","id":1,"topic":"demo","text":"{}\"{}"}}"#, "[".repeat(200), "{".repeat(200));
        assert!(!nesting_exceeds(Form::Json, text.as_bytes(), MAX_CLIENT_NESTING));
        // Strings, binaries and numbers of every width are skipped whole.
        let mut mixed = vec![0x9a];
        mixed.extend([0xd9, 3, 0x91, 0x91, 0x91]); // str8 "\x91\x91\x91"
        mixed.extend([0xc4, 2, 0x91, 0x91]); // bin8
        mixed.extend([0xcb, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91]); // f64
        mixed.extend([0xcf, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91]); // u64
        mixed.extend([0xd8, 1, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91]); // fixext16
        mixed.extend([0xc7, 2, 1, 0x91, 0x91]); // ext8
        mixed.extend([0xa2, 0x91, 0x91]); // fixstr
        mixed.extend([0x90, 0x80, 0xc0]); // empty array, empty map, nil
        assert!(!nesting_exceeds(Form::MsgPack, &mixed, 1));
        // Truncated frames are left to the decoder.
        assert!(!nesting_exceeds(Form::MsgPack, &[0xdd, 0xff], 1));
        assert!(!nesting_exceeds(Form::MsgPack, &[0xd9], 1));
    }

    #[test]
    fn every_message_of_the_protocol_is_within_the_nesting_limit() {
        let post = ClientMsg::Post { id: 7, topic: ActivityId::new("demo").unwrap(), text: "hi [x]".into() };
        for form in [Form::MsgPack, Form::Json] {
            let f = encode_client(form, &post);
            assert!(!nesting_exceeds(form, &f, MAX_CLIENT_NESTING));
            assert!(decode_client(form, &f).is_ok());
        }
    }

    fn sample_item(seq: u64) -> Item {
        Item {
            seq: Seq(seq),
            ts: 1_700_000_000_000 + seq,
            body: ItemBody::Comment {
                author: Author {
                    id: "u1".into(),
                    name: "张三".into(),
                    role: Role::Viewer,
                    verified: false,
                },
                text: format!("评论 {seq} \"quoted\""),
                approves: None,
            },
        }
    }

    #[test]
    fn spliced_batch_decodes_as_the_batch_message_in_both_forms() {
        let topic = ActivityId::new("demo").unwrap();
        for form in [Form::MsgPack, Form::Json] {
            let items: Vec<Item> = (5..=7).map(sample_item).collect();
            let encoded: Vec<Bytes> = items.iter().map(|i| encode_item(form, i)).collect();
            let frame = encode_batch(
                form,
                &topic,
                Epoch(9),
                Seq(5),
                Seq(8),
                1,
                encoded.iter().map(|b| b.as_ref()),
            );
            let expected = ServerMsg::Batch {
                topic: topic.clone(),
                epoch: Epoch(9),
                from: Seq(5),
                to: Seq(8),
                thinned: 1,
                items,
            };
            assert_eq!(decode_server(form, &frame).unwrap(), expected);
            assert_eq!(frame, encode_server(form, &expected), "{form:?} splice matches serde");
        }
    }

    #[test]
    fn client_messages_round_trip_in_both_forms() {
        let msgs = vec![
            ClientMsg::Auth { v: 1, token: "x.y.z".into() },
            ClientMsg::Sub {
                topic: ActivityId::new("a-1").unwrap(),
                resume: Some(Position { epoch: Epoch(3), offset: Seq(10) }),
                last: None,
            },
            ClientMsg::Sub { topic: ActivityId::new("a").unwrap(), resume: None, last: Some(50) },
            ClientMsg::Unsub { topic: ActivityId::new("a").unwrap() },
            ClientMsg::Post { id: 7, topic: ActivityId::new("a").unwrap(), text: "你好".into() },
            ClientMsg::Ping { id: 1 },
        ];
        for form in [Form::MsgPack, Form::Json] {
            for m in &msgs {
                assert_eq!(&decode_client(form, &encode_client(form, m)).unwrap(), m);
            }
        }
    }

    #[test]
    fn json_form_is_the_documented_shape() {
        let json = br#"{"t":"post","id":3,"topic":"demo","text":"hi"}"#;
        assert_eq!(
            decode_client(Form::Json, json).unwrap(),
            ClientMsg::Post { id: 3, topic: ActivityId::new("demo").unwrap(), text: "hi".into() }
        );
    }

    #[test]
    fn unknown_type_is_told_apart_from_malformed() {
        assert_eq!(
            decode_client(Form::Json, br#"{"t":"launch","x":1}"#),
            Err(DecodeError::UnknownType("launch".into()))
        );
        assert!(matches!(
            decode_client(Form::Json, br#"{"t":"post","id":"nope"}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(decode_client(Form::MsgPack, b"\xc1\xc1"), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode_client(Form::Json, b"not json"), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn oversized_frame_is_refused_before_parsing() {
        let big = vec![b' '; MAX_CLIENT_FRAME_BYTES + 1];
        assert_eq!(decode_client(Form::Json, &big), Err(DecodeError::TooLarge(big.len())));
    }

    #[test]
    fn invalid_topic_id_is_malformed() {
        assert!(matches!(
            decode_client(Form::Json, br#"{"t":"sub","topic":"../etc"}"#),
            Err(DecodeError::Malformed(_))
        ));
    }
}

#[cfg(test)]
mod consult_tests {
    use super::*;
    use crate::consult::*;
    use crate::identity::*;
    use crate::messages::*;

    fn topic() -> ActivityId {
        ActivityId::new("demo").unwrap()
    }

    #[test]
    fn moderation_messages_round_trip_in_both_forms() {
        let cmds = vec![
            Command::RaiseHand,
            Command::LowerHand { target: Some(ParticipantId::new("wang")) },
            Command::GrantFloor { target: GrantTarget::NextHand, limit_ms: Some(60_000) },
            Command::GrantFloor { target: GrantTarget::Participant(ParticipantId::new("li")), limit_ms: None },
            Command::ExtendFloor { extra_ms: 30_000 },
            Command::RevokeFloor { reason: Some("超时".into()) },
            Command::YieldFloor,
            Command::SetFloorMode { mode: FloorMode::Open },
            Command::SetAutoAdvance { limit_ms: None },
            Command::MuteAll,
            Command::PinProgramme { participant: Some(ParticipantId::new("member:王委员")) },
            Command::PinProgramme { participant: None },
            Command::SetStage { participant: ParticipantId::new("member:王委员"), on: true },
            Command::SubmitQuestion { text: "问".into(), anonymous: true },
            Command::VoteQuestion { id: QuestionId(3), up: true },
            Command::ModerateQuestion { id: QuestionId(3), op: QuestionOp::Reject { reason: Some("重复".into()) } },
            Command::ModerateQuestion { id: QuestionId(3), op: QuestionOp::Pin },
            Command::SetQuestionReview { review: false },
            Command::ApproveComment { seq: Seq(9) },
            Command::HideComment { seq: Seq(9), reason: "广告".into() },
            Command::SetCommentPolicy { change: PolicyChange::SlowMode(Some(10_000)) },
            Command::SetCommentPolicy { change: PolicyChange::BlockWords(vec!["x".into()]) },
            Command::Timeout { who: ParticipantId::new("v-1"), until_ms: 5, reason: "刷屏".into() },
            Command::Ban { who: ParticipantId::new("v-1"), reason: "辱骂".into() },
            Command::Unban { who: ParticipantId::new("v-1") },
        ];
        let view = QuestionView {
            id: QuestionId(1),
            text: "问".into(),
            asker: None,
            anonymous: true,
            state: QuestionState::Published,
            votes: 2,
            pinned: true,
            submitted_at_ms: 1,
            answered_at_ms: None,
        };
        let server = vec![
            ServerMsg::Reply { id: 1, reply: Reply::Done },
            ServerMsg::Reply { id: 2, reply: Reply::FloorGranted { holder: ParticipantId::new("wang") } },
            ServerMsg::Reply { id: 3, reply: Reply::Votes { votes: 4 } },
            ServerMsg::Error { id: Some(4), code: ErrorCode::AlreadyVoted, message: "x".into() },
            ServerMsg::Event {
                topic: topic(),
                event: ConsultEvent::Floor(FloorEvent::FloorGranted {
                    holder: ParticipantId::new("wang"),
                    granted_at_ms: 1,
                    allotted_ms: 2,
                    deadline_ms: 3,
                }),
            },
            ServerMsg::Event { topic: topic(), event: ConsultEvent::Question { question: view.clone() } },
            ServerMsg::Event { topic: topic(), event: ConsultEvent::CommentModes { modes: CommentModes::default() } },
            ServerMsg::Event { topic: topic(), event: ConsultEvent::Stage { stage: vec![ParticipantId::new("wang")], on_air: vec![ParticipantId::new("wang")] } },
            ServerMsg::State {
                topic: topic(),
                state: Snapshot {
                    floor: FloorSnapshot {
                        mode: FloorMode::Chaired,
                        hands: vec![ParticipantId::new("li")],
                        holder: Some(ParticipantId::new("wang")),
                        granted_at_ms: Some(1),
                        deadline_ms: Some(2),
                    },
                    questions: vec![view],
                    on_stage: None,
                    pinned: vec![QuestionId(1)],
                    comment_modes: CommentModes { review: true, slow_mode_ms: Some(5), verified_only: false, lockdown: false, ..Default::default() },
                    present: vec![PresentRow { id: ParticipantId::new("wang"), name: "王".into(), role: Role::Member }],
                    viewers: 7,
                    held: vec![crate::consult::HeldComment {
                        seq: crate::Seq(4),
                        author: crate::Author { id: ParticipantId::new("v-1"), name: "网友".into(), role: Role::Viewer, verified: false },
                        text: "待审".into(),
                        at_ms: 9,
                    }],
                    stage: vec![ParticipantId::new("wang")],
                    on_air: vec![ParticipantId::new("wang")],
                    livestream: true,
                },
            },
        ];
        for form in [Form::MsgPack, Form::Json] {
            for (i, cmd) in cmds.iter().enumerate() {
                let m = ClientMsg::Cmd { id: i as u32, topic: topic(), cmd: cmd.clone() };
                assert_eq!(decode_client(form, &encode_client(form, &m)).unwrap(), m, "{form:?}");
            }
            for m in &server {
                assert_eq!(&decode_server(form, &encode_server(form, m)).unwrap(), m, "{form:?}");
            }
        }
    }

    #[test]
    fn cmd_json_is_the_documented_shape() {
        let json = br#"{"t":"cmd","id":5,"topic":"demo","cmd":{"c":"grant_floor","target":"next_hand","limit_ms":60000}}"#;
        assert_eq!(
            decode_client(Form::Json, json).unwrap(),
            ClientMsg::Cmd {
                id: 5,
                topic: topic(),
                cmd: Command::GrantFloor { target: GrantTarget::NextHand, limit_ms: Some(60_000) }
            }
        );
        let reply = encode_server(Form::Json, &ServerMsg::Reply { id: 5, reply: Reply::Done });
        assert_eq!(&reply[..], br#"{"t":"reply","id":5,"reply":{"r":"done"}}"#);
    }
}
