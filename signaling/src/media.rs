//! Media signalling over the websocket, for members in a video consultation room.
//!
//! A client sends `{"t":"media","id":N,"req":{...}}` ([`crate::ClientMsg::Media`]); the server
//! answers a request with `{"t":"media","id":N,"ev":{...}}` and pushes events it initiates
//! (subscriber offers, candidates, tracks, speaker, connection state) without an `id`
//! ([`crate::ServerMsg::Media`]). Both inner objects are tagged by the field `op`.
//!
//! A member has two peer connections: the **publisher** connection (the client offers, the
//! server answers) and the **subscriber** connection (the server offers as tracks come and go,
//! the client answers).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::ids::{NodeId, ParticipantId};

/// Which of a member's two peer connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum PcKind {
    /// The connection the client sends on (client offers).
    Publisher,
    /// The connection the client receives on (server offers).
    Subscriber,
}

/// An ICE candidate (trickle), as `RTCIceCandidateInit` has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct IceCandidate {
    /// The `candidate:...` attribute (without `a=`). Empty: end of candidates.
    pub candidate: String,
    /// The media section's mid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The media section's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u16>,
}

/// A STUN/TURN server for the client's `RTCPeerConnection` (`RTCIceServer`): the hub's TURN
/// relay with time-limited credentials, for networks where neither UDP nor ICE-TCP to the
/// node gets through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct IceServer {
    /// `turn:`, `turns:` or `stun:` URLs.
    pub urls: Vec<String>,
    /// `{expiry}:{subject}` (TURN REST credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// base64 HMAC-SHA1 of the username with the secret the TURN server shares with the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Audio or video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// What a member asks of the media plane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MediaRequest {
    /// Join the room of the token's activity. Answered by `joined`; a `subscriber_offer` follows.
    Join,
    /// An offer for the publisher connection (first publish or renegotiation).
    /// Answered by `publish_answer`.
    PublishOffer {
        /// The SDP offer, at most [`crate::limits::MAX_SDP_BYTES`].
        sdp: String,
    },
    /// The answer to the last `subscriber_offer`. Answered by `ok`.
    SubscriberAnswer {
        /// The SDP answer, at most [`crate::limits::MAX_SDP_BYTES`].
        sdp: String,
    },
    /// A local candidate of the client's connection `pc` (trickle ICE). Answered by `ok`.
    Ice {
        /// Which connection.
        pc: PcKind,
        /// The candidate.
        candidate: IceCandidate,
    },
    /// Restart ICE on the subscriber connection: a new `subscriber_offer` follows. (The
    /// publisher connection is restarted by offering with `iceRestart`.) Answered by `ok`.
    IceRestart,
    /// Receive `track` at simulcast layer `rid` ("q", "h", "f"). Answered by `ok`.
    SetLayer {
        /// The track, as named in `track_published`.
        track: u64,
        /// The layer.
        rid: String,
    },
    /// Leave the room; both connections are closed. Answered by `left`.
    Leave,
}

/// Why a media request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum MediaErrorCode {
    /// The role may not join rooms (viewers), or the token is for another activity.
    Forbidden,
    /// The activity does not exist or is not a room.
    NoSuchRoom,
    /// `join` on a connection that has joined already.
    AlreadyJoined,
    /// A request other than `join` before `join`.
    NotJoined,
    /// The SDP could not be parsed or applied, or is larger than the limit.
    InvalidSdp,
    /// The room has its maximum number of participants.
    RoomFull,
    /// This node has no capacity (UDP ports) left.
    NodeFull,
    /// The request does not fit the state (e.g. an answer without an outstanding offer).
    NotAllowed,
    /// The participation ended (connection failed); `join` again.
    Closed,
    /// A bug or an unexpected failure on the server.
    Internal,
}

/// What the media plane tells a member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MediaEvent {
    /// Answer to `join`.
    Joined {
        /// The participant id the others see (the token's subject).
        participant: ParticipantId,
        /// STUN/TURN servers for both peer connections (`new RTCPeerConnection({iceServers})`);
        /// empty when the hub has no TURN relay configured.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    /// Answer to `publish_offer`.
    PublishAnswer {
        /// The SDP answer (ICE gathering complete).
        sdp: String,
    },
    /// The server offers (or re-offers) the subscriber connection; reply `subscriber_answer`.
    SubscriberOffer {
        /// The SDP offer (ICE gathering complete).
        sdp: String,
    },
    /// A server candidate for connection `pc` (trickle; the SDP already holds them all).
    Ice {
        /// Which connection.
        pc: PcKind,
        /// The candidate.
        candidate: IceCandidate,
    },
    /// Another participant published a track; it arrives on the subscriber connection.
    TrackPublished {
        /// Who.
        participant: ParticipantId,
        /// The track's id (for `set_layer`).
        track: u64,
        /// Audio or video.
        kind: TrackKind,
    },
    /// A track went away.
    TrackUnpublished {
        /// Who.
        participant: ParticipantId,
        /// The track.
        track: u64,
        /// Audio or video.
        kind: TrackKind,
    },
    /// The dominant speaker changed.
    ActiveSpeaker {
        /// Who speaks.
        participant: ParticipantId,
    },
    /// One of the connections changed state (`connecting`, `connected`, `disconnected`,
    /// `failed`, `closed`).
    ConnectionState {
        /// Which connection.
        pc: PcKind,
        /// The new state.
        state: String,
    },
    /// A request succeeded and has nothing else to say.
    Ok,
    /// The member is out of the room (after `leave`, or when the participation ended).
    Left,
    /// Answer to `join` in a cluster: the room is hosted on another node. Connect to `node`
    /// (a base URL such as `http://10.0.0.7:8080`; the websocket is `ws://…/ws`), `auth` with
    /// the same token and `join` there.
    Redirect {
        /// The node hosting the room.
        node: NodeId,
    },
    /// A request failed.
    Error {
        /// Stable code.
        code: MediaErrorCode,
        /// Human-readable detail (English).
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use crate::{
        ClientMsg, Form, ServerMsg, decode_client, decode_server, encode_client, encode_server,
    };

    use super::*;

    #[test]
    fn media_messages_have_the_documented_json_shape_and_round_trip() {
        let json = br#"{"t":"media","id":4,"req":{"op":"ice","pc":"publisher","candidate":{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdp_mid":"0","sdp_mline_index":0}}}"#;
        let m = decode_client(Form::Json, json).unwrap();
        assert!(matches!(
            &m,
            ClientMsg::Media {
                id: 4,
                req: MediaRequest::Ice {
                    pc: PcKind::Publisher,
                    ..
                }
            }
        ));
        let reqs = [
            MediaRequest::Join,
            MediaRequest::PublishOffer { sdp: "v=0".into() },
            MediaRequest::SubscriberAnswer { sdp: "v=0".into() },
            MediaRequest::IceRestart,
            MediaRequest::SetLayer {
                track: 3,
                rid: "q".into(),
            },
            MediaRequest::Leave,
        ];
        for form in [Form::MsgPack, Form::Json] {
            for req in &reqs {
                let m = ClientMsg::Media {
                    id: 9,
                    req: req.clone(),
                };
                assert_eq!(decode_client(form, &encode_client(form, &m)).unwrap(), m);
            }
            let evs = [
                ServerMsg::Media {
                    id: Some(1),
                    ev: MediaEvent::Joined {
                        participant: "member:a".into(),
                        ice_servers: vec![],
                    },
                },
                ServerMsg::Media {
                    id: Some(2),
                    ev: MediaEvent::Joined {
                        participant: "member:a".into(),
                        ice_servers: vec![IceServer {
                            urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
                            username: Some("1700000000:member:a".into()),
                            credential: Some("c2VjcmV0".into()),
                        }],
                    },
                },
                ServerMsg::Media {
                    id: None,
                    ev: MediaEvent::TrackPublished {
                        participant: "a".into(),
                        track: 7,
                        kind: TrackKind::Video,
                    },
                },
                ServerMsg::Media {
                    id: Some(2),
                    ev: MediaEvent::Error {
                        code: MediaErrorCode::InvalidSdp,
                        message: "x".into(),
                    },
                },
                ServerMsg::Media {
                    id: None,
                    ev: MediaEvent::Ok,
                },
            ];
            for e in &evs {
                assert_eq!(&decode_server(form, &encode_server(form, e)).unwrap(), e);
            }
        }
        let ev = ServerMsg::Media {
            id: None,
            ev: MediaEvent::ActiveSpeaker {
                participant: "a".into(),
            },
        };
        assert_eq!(
            &encode_server(Form::Json, &ev)[..],
            br#"{"t":"media","ev":{"op":"active_speaker","participant":"a"}}"#
        );
    }
}
