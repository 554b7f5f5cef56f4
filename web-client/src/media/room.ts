// A member's media in a video room over the websocket (`media` messages): a publisher peer
// connection (the client offers its microphone, camera and screen) and a subscriber peer
// connection (the server offers everyone else's tracks and renegotiates as they come and go), ICE
// trickled both ways. Incoming tracks go to the view with their receiver (for levels and layers).
//
// The publisher is negotiated once with three senders — audio, camera, screen — and later changes
// swap tracks without renegotiating. Camera and screen are sent as simulcast (rids q/h/f at ¼, ½
// and full resolution) so the SFU can give each receiver the layer that fits its tile. Both video
// senders use the same rids: the SFU keeps one rid list per participant and forwards only the
// layer it targets, so every video track must send every layer the list names.

import type { Connection } from '../connection';
import type { IceCandidateMsg, MediaEvent, PcKind } from '../protocol';

export interface RoomMediaView {
  /** A remote track arrived (its stream id names the participant, see `parseStreamId`). */
  track(track: MediaStreamTrack, stream: MediaStream, receiver: RTCRtpReceiver): void;
  /** A remote track ended. */
  gone(track: MediaStreamTrack, stream: MediaStream): void;
  speaker(participant: string): void;
  state(pc: PcKind, state: string): void;
  /** The server announced a track (participant, track number, kind). */
  published?(participant: string, track: number, kind: 'audio' | 'video', present: boolean): void;
}

/** The simulcast layers, lowest first (the SFU ranks q < h < f). */
export const SIMULCAST: RTCRtpEncodingParameters[] = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

/** How long after the publisher connects a screen shared with the camera starts. */
const SCREEN_AFTER_CAMERA_MS = 1000;

export interface Outgoing {
  audio: MediaStreamTrack | null;
  video: MediaStreamTrack | null;
  screen: MediaStreamTrack | null;
}

/** The SFU names each outgoing stream `sl-{participant}-{track}`; participant ids may hold '-'. */
export function parseStreamId(id: string): { participant: string; track: number | null } {
  const m = /^sl-(.+)-(\d+)$/.exec(id);
  return m ? { participant: m[1], track: Number(m[2]) } : { participant: id, track: null };
}

export class RoomMedia {
  private pub: RTCPeerConnection | null = null;
  private sub: RTCPeerConnection | null = null;
  private joined = false;
  /** STUN/TURN servers from the room's `joined` answer, for every peer connection after it. */
  private iceServers: RTCIceServer[] = [];
  private tracks: Outgoing = { audio: null, video: null, screen: null };
  private tx: { audio: RTCRtpTransceiver; video: RTCRtpTransceiver; screen: RTCRtpTransceiver } | null = null;
  /** The screen waits until the camera flows (see `setTracks`). */
  private screenHeld = false;
  /** When the publisher connected, and when the camera was turned on (performance.now()). */
  private connectedAt = 0;
  private videoSince = 0;
  /** Subscriber offers are answered one at a time, in order. */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly conn: Connection,
    private readonly view: RoomMediaView,
    private readonly simulcast = true,
  ) {}

  isJoined(): boolean {
    return this.joined;
  }

  /** Joins the room (idempotent); the subscriber leg follows the server's offers. */
  async join(): Promise<void> {
    if (this.joined) return;
    const answer = await this.conn.media({ op: 'join' });
    if (answer.op === 'redirect') {
      // Cluster mode: the room lives on another node. The page (with its ?token= link) moves
      // there whole, so comments and media share one connection again.
      const here = window.location;
      window.location.assign(`${answer.node.replace(/\/$/, '')}${here.pathname}${here.search}${here.hash}`);
      throw new Error(`the room is hosted on ${answer.node}`);
    }
    // The hub's TURN relay (time-limited credentials), when it has one: for networks where
    // neither UDP nor ICE-TCP to the node gets through.
    if (answer.op === 'joined') {
      this.iceServers = (answer.ice_servers ?? []).map((s) => ({
        urls: s.urls,
        ...(s.username ? { username: s.username } : {}),
        ...(s.credential ? { credential: s.credential } : {}),
      }));
    }
    this.joined = true;
  }

  /** Sends these tracks (null: nothing of that kind). */
  async setTracks(out: Outgoing): Promise<void> {
    if (out.video && !this.tracks.video) this.videoSince = performance.now();
    this.tracks = { ...out };
    await this.join();
    if (this.pub && this.tx) {
      await this.tx.audio.sender.replaceTrack(out.audio);
      await this.tx.video.sender.replaceTrack(out.video);
      if (out.screen && out.video && !this.cameraFlowing()) {
        if (!this.screenHeld) {
          this.screenHeld = true;
          void this.releaseScreen(this.pub);
        }
      } else if (!this.screenHeld) await this.tx.screen.sender.replaceTrack(out.screen);
      return;
    }
    if (!out.audio && !out.video && !out.screen) return;
    const pc = this.newPc('publisher');
    this.pub = pc;
    const camStream = new MediaStream();
    const screenStream = new MediaStream();
    const video = (stream: MediaStream): RTCRtpTransceiverInit => ({
      direction: 'sendonly',
      streams: [stream],
      ...(this.simulcast ? { sendEncodings: SIMULCAST.map((e) => ({ ...e })) } : {}),
    });
    // The SFU numbers tracks in the order their first packets arrive and does not say which is
    // the camera; receivers treat the first as the camera. So a screen shared together with the
    // camera joins only once the camera is flowing.
    const holdScreen = !!out.video && !!out.screen;
    this.screenHeld = holdScreen;
    this.tx = {
      audio: pc.addTransceiver(out.audio ?? 'audio', { direction: 'sendonly', streams: [camStream] }),
      video: pc.addTransceiver(out.video ?? 'video', video(camStream)),
      screen: pc.addTransceiver(holdScreen ? 'video' : (out.screen ?? 'video'), video(screenStream)),
    };
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await this.conn.media({ op: 'publish_offer', sdp: pc.localDescription!.sdp });
    if (answer.op === 'publish_answer') await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    if (holdScreen) void this.releaseScreen(pc);
  }

  /** The camera has been sending for a while on a connected publisher. */
  private cameraFlowing(): boolean {
    const since = Math.max(this.connectedAt, this.videoSince);
    return !!this.connectedAt && performance.now() - since > SCREEN_AFTER_CAMERA_MS;
  }

  private async releaseScreen(pc: RTCPeerConnection): Promise<void> {
    const t0 = performance.now();
    while (!this.cameraFlowing() && this.tracks.video && performance.now() - t0 < 10_000 && this.pub === pc) await new Promise((r) => setTimeout(r, 100));
    if (this.pub !== pc || !this.tx) return;
    this.screenHeld = false;
    await this.tx.screen.sender.replaceTrack(this.tracks.screen).catch(() => undefined);
  }

  /** The publisher's outbound video encodings now (for tests and diagnostics). */
  async outboundLayers(): Promise<{ rid: string; frames: number; width: number }[]> {
    const out: { rid: string; frames: number; width: number }[] = [];
    if (!this.pub) return out;
    (await this.pub.getStats()).forEach((s: { type: string; kind?: string; rid?: string; framesEncoded?: number; frameWidth?: number }) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') out.push({ rid: s.rid ?? '', frames: s.framesEncoded ?? 0, width: s.frameWidth ?? 0 });
    });
    return out;
  }

  /** Asks the SFU for simulcast layer `rid` of remote track `track`. */
  setLayer(track: number, rid: 'q' | 'h' | 'f'): Promise<unknown> {
    return this.conn.media({ op: 'set_layer', track, rid });
  }

  subscriberStats(): Promise<RTCStatsReport> | null {
    return this.sub ? this.sub.getStats() : null;
  }

  /** Server-initiated media events (wire to `ConnectionEvents.mediaEvent`). */
  async handle(e: MediaEvent): Promise<void> {
    switch (e.op) {
      case 'subscriber_offer': {
        const sdp = e.sdp;
        this.chain = this.chain.then(async () => {
          this.sub ??= this.newPc('subscriber');
          await this.sub.setRemoteDescription({ type: 'offer', sdp });
          await this.sub.setLocalDescription(await this.sub.createAnswer());
          await this.conn.media({ op: 'subscriber_answer', sdp: this.sub.localDescription!.sdp });
        }).catch(() => undefined);
        return this.chain;
      }
      case 'ice': {
        const pc = e.pc === 'publisher' ? this.pub : this.sub;
        await pc?.addIceCandidate({ candidate: e.candidate.candidate, sdpMid: e.candidate.sdp_mid ?? null, sdpMLineIndex: e.candidate.sdp_mline_index ?? null }).catch(() => undefined);
        return;
      }
      case 'active_speaker':
        this.view.speaker(e.participant);
        return;
      case 'connection_state':
        this.view.state(e.pc, e.state);
        return;
      case 'track_published':
        this.view.published?.(e.participant, e.track, e.kind, true);
        return;
      case 'track_unpublished':
        this.view.published?.(e.participant, e.track, e.kind, false);
        return;
      default:
        return;
    }
  }

  /** After a reconnect the server has forgotten this connection's media: start over. */
  async rejoin(): Promise<void> {
    this.pub?.close();
    this.sub?.close();
    this.pub = this.sub = null;
    this.tx = null;
    this.joined = false;
    this.connectedAt = 0;
    this.screenHeld = false;
    await this.join();
    await this.setTracks(this.tracks);
  }

  async leave(): Promise<void> {
    if (this.joined) await this.conn.media({ op: 'leave' }).catch(() => undefined);
    this.pub?.close();
    this.sub?.close();
    this.pub = this.sub = null;
    this.tx = null;
    this.joined = false;
  }

  private newPc(kind: PcKind): RTCPeerConnection {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', iceServers: this.iceServers });
    pc.onicecandidate = (ev) => {
      if (!ev.candidate || !ev.candidate.candidate) return;
      const candidate: IceCandidateMsg = { candidate: ev.candidate.candidate };
      if (ev.candidate.sdpMid != null) candidate.sdp_mid = ev.candidate.sdpMid;
      if (ev.candidate.sdpMLineIndex != null) candidate.sdp_mline_index = ev.candidate.sdpMLineIndex;
      void this.conn.media({ op: 'ice', pc: kind, candidate }).catch(() => undefined);
    };
    pc.onconnectionstatechange = () => {
      if (kind === 'publisher' && pc === this.pub) this.connectedAt = pc.connectionState === 'connected' ? performance.now() : 0;
      this.view.state(kind, pc.connectionState);
    };
    if (kind === 'subscriber') {
      pc.ontrack = (ev) => {
        const s = ev.streams[0] ?? new MediaStream([ev.track]);
        this.view.track(ev.track, s, ev.receiver);
        ev.track.onended = () => this.view.gone(ev.track, s);
        s.onremovetrack = (r) => this.view.gone(r.track, s);
      };
    }
    return pc;
  }
}
