// A WHEP player (RFC 9725): a receive-only peer connection whose offer is POSTed to the endpoint
// (`application/sdp`, bearer token); the answer comes back in the body and the session's URL in
// `Location`, which a DELETE ends. Candidates are gathered before the offer is sent (no trickle),
// matching the SFU, which answers with gathering complete.

export type WhepState = 'connecting' | 'playing' | 'failed' | 'closed';

export class WhepPlayer {
  private pc: RTCPeerConnection | null = null;
  private session: string | null = null;
  private retry = 0;
  private timer: number | undefined;
  private closed = false;

  constructor(
    private readonly endpoint: string,
    private readonly token: () => Promise<string | null>,
    private readonly video: HTMLVideoElement,
    private readonly onState: (s: WhepState, detail?: string) => void,
  ) {}

  async start(): Promise<void> {
    this.closed = false;
    this.onState('connecting');
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    this.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      this.video.srcObject = stream;
    };
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      if (pc.connectionState === 'connected') {
        this.retry = 0;
        this.onState('playing');
      } else if (pc.connectionState === 'failed') this.restart('ice failed');
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, 3000);
      const token = await this.token();
      const resp = await fetch(this.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/sdp', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: pc.localDescription!.sdp,
      });
      if (resp.status !== 201 && resp.status !== 200) throw new Error(`WHEP ${resp.status}`);
      const loc = resp.headers.get('location');
      this.session = loc ? new URL(loc, new URL(this.endpoint, location.href)).toString() : null;
      await pc.setRemoteDescription({ type: 'answer', sdp: await resp.text() });
    } catch (e) {
      this.restart(e instanceof Error ? e.message : String(e));
    }
  }

  private restart(why: string): void {
    if (this.closed) return;
    void this.teardown();
    this.retry++;
    this.onState('failed', why);
    const delay = Math.min(15_000, 1000 * 2 ** Math.min(this.retry, 4));
    this.timer = window.setTimeout(() => void this.start(), delay);
  }

  private async teardown(): Promise<void> {
    const pc = this.pc;
    const session = this.session;
    this.pc = null;
    this.session = null;
    pc?.close();
    if (session) await fetch(session, { method: 'DELETE' }).catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.closed = true;
    window.clearTimeout(this.timer);
    await this.teardown();
    this.onState('closed');
  }
}

function gathered(pc: RTCPeerConnection, maxMs: number): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => pc.iceGatheringState === 'complete' && done();
    pc.addEventListener('icegatheringstatechange', check);
    window.setTimeout(done, maxMs);
  });
}
