// A member's media in a video room over the websocket (`media` messages): a publisher peer
// connection (the client offers its camera/microphone) and a subscriber peer connection (the
// server offers everyone else's tracks and renegotiates as they come and go), ICE trickled both
// ways. Incoming streams become tiles; the active speaker is marked.

import type { Connection } from '../connection';
import type { IceCandidateMsg, MediaEvent, PcKind } from '../protocol';

export interface RoomMediaView {
  /** A remote stream appeared (or got another track). */
  stream(s: MediaStream): void;
  /** A remote stream has no live track left. */
  gone(s: MediaStream): void;
  speaker(participant: string): void;
  state(pc: PcKind, state: string): void;
}

export class RoomMedia {
  private pub: RTCPeerConnection | null = null;
  private sub: RTCPeerConnection | null = null;
  private joined = false;
  private tracks: { audio: MediaStreamTrack | null; video: MediaStreamTrack | null } = { audio: null, video: null };
  private audioTx: RTCRtpTransceiver | null = null;
  private videoTx: RTCRtpTransceiver | null = null;

  constructor(
    private readonly conn: Connection,
    private readonly view: RoomMediaView,
  ) {}

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
    this.joined = true;
  }

  /**
   * Sends these tracks (null: nothing of that kind). The publisher connection is negotiated once
   * with one audio and one video sender; later changes swap tracks without renegotiating.
   */
  async setTracks(audio: MediaStreamTrack | null, video: MediaStreamTrack | null): Promise<void> {
    this.tracks = { audio, video };
    await this.join();
    if (this.pub && this.audioTx && this.videoTx) {
      await this.audioTx.sender.replaceTrack(audio);
      await this.videoTx.sender.replaceTrack(video);
      return;
    }
    if (!audio && !video) return;
    const pc = this.newPc('publisher');
    this.pub = pc;
    const out = new MediaStream();
    this.audioTx = pc.addTransceiver(audio ?? 'audio', { direction: 'sendonly', streams: [out] });
    this.videoTx = pc.addTransceiver(video ?? 'video', { direction: 'sendonly', streams: [out] });
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await this.conn.media({ op: 'publish_offer', sdp: pc.localDescription!.sdp });
    if (answer.op === 'publish_answer') await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
  }

  /** Server-initiated media events (wire to `ConnectionEvents.mediaEvent`). */
  async handle(e: MediaEvent): Promise<void> {
    switch (e.op) {
      case 'subscriber_offer': {
        this.sub ??= this.newPc('subscriber');
        await this.sub.setRemoteDescription({ type: 'offer', sdp: e.sdp });
        await this.sub.setLocalDescription(await this.sub.createAnswer());
        await this.conn.media({ op: 'subscriber_answer', sdp: this.sub.localDescription!.sdp });
        return;
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
      default:
        return;
    }
  }

  /** After a reconnect the server has forgotten this connection's media: start over. */
  async rejoin(): Promise<void> {
    this.pub?.close();
    this.sub?.close();
    this.pub = this.sub = null;
    this.audioTx = this.videoTx = null;
    this.joined = false;
    await this.join();
    await this.setTracks(this.tracks.audio, this.tracks.video);
  }

  async leave(): Promise<void> {
    if (this.joined) await this.conn.media({ op: 'leave' }).catch(() => undefined);
    this.pub?.close();
    this.sub?.close();
    this.pub = this.sub = null;
    this.audioTx = this.videoTx = null;
    this.joined = false;
  }

  private newPc(kind: PcKind): RTCPeerConnection {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    pc.onicecandidate = (ev) => {
      if (!ev.candidate || !ev.candidate.candidate) return;
      const candidate: IceCandidateMsg = { candidate: ev.candidate.candidate };
      if (ev.candidate.sdpMid != null) candidate.sdp_mid = ev.candidate.sdpMid;
      if (ev.candidate.sdpMLineIndex != null) candidate.sdp_mline_index = ev.candidate.sdpMLineIndex;
      void this.conn.media({ op: 'ice', pc: kind, candidate }).catch(() => undefined);
    };
    pc.onconnectionstatechange = () => this.view.state(kind, pc.connectionState);
    if (kind === 'subscriber') {
      pc.ontrack = (ev) => {
        const s = ev.streams[0] ?? new MediaStream([ev.track]);
        this.view.stream(s);
        ev.track.onended = () => {
          if (!s.getTracks().some((t) => t.readyState === 'live')) this.view.gone(s);
        };
        s.onremovetrack = () => {
          if (!s.getTracks().length) this.view.gone(s);
        };
      };
    }
    return pc;
  }
}
