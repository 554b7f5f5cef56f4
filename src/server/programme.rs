//! The programme drivers: one task per live livestream owns its [`Programme`] (STYLE habit 3),
//! fed by the SFU's stage tap and the floor, writing parts and segments to the live window (in
//! memory, for `hls.rs`) and to the segment store (on disk, the recording).
//!
//! ```text
//! Sfu::stage_tap(activity) ─ StageEvent ─┐
//! ConsultDriver → FloorHook (Tee) ───────┼─► ProgrammeDriver ─► Programme::handle_* / poll_output
//! POST …/programme/pin (moderator) ──────┘        │
//!        RequestKeyframe ─► Sfu::request_keyframe  │
//!        Init/Part/Segment ─► LiveWindow + bytes ──┼─► watch::Sender<Arc<LiveSnapshot>> ─► hls.rs
//!                          ─► writer thread ───────┘    (one rendered playlist per change)
//!                             (SegmentStore: tmp + rename, index.jsonl)
//! ```
//!
//! The floor reaches the programme through the same [`FloorHook`] the SFU gets: [`Tee`] calls
//! both, so the SFU's gates and the programme's choice never disagree. The hook is called on the
//! moderation driver's thread; it only caches the state and `try_send`s to the programme.
//!
//! Each change of the window publishes one new [`LiveSnapshot`] with the playlist rendered once;
//! every blocked playlist request waits on a clone of the `watch` receiver (no task per waiter)
//! and answers with the shared bytes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dashmap::DashMap;
use shangliang_sfu::{MediaKind, StageEvent};
use shangliang_signaling::ActivityId;
use tokio::sync::{mpsc, watch};

use super::Hub;
use super::moderation::FloorHook;
use crate::consult::ParticipantId;
use crate::programme::playlist::{LiveWindow, PlaylistConfig};
use crate::programme::store::{self, SegmentStore};
use crate::programme::{Output, Programme, ProgrammeConfig, ProgrammeStatus, RtpPacket, TrackCodec, TrackKey, TrackKind};
use crate::record::{ActivityKind, ActivityState};

/// What `shangliang serve` can be told about programmes and recordings.
#[derive(Clone, Debug)]
pub struct ProgrammeSettings {
    /// Package live livestreams as LL-HLS and record them.
    pub enabled: bool,
    /// Recordings not written for this long are deleted (`None`: kept for ever).
    pub retention: Option<Duration>,
    /// Engine tuning (parts, segments, keyframe requests).
    pub engine: ProgrammeConfig,
    /// Playlist timing.
    pub playlist: PlaylistConfig,
}

impl Default for ProgrammeSettings {
    fn default() -> Self {
        Self { enabled: true, retention: None, engine: ProgrammeConfig::default(), playlist: PlaylistConfig::default() }
    }
}

/// The live window of one programme and the bytes it lists, as the HLS routes read it.
#[derive(Debug, Default)]
pub struct LiveSnapshot {
    /// The window (segments, parts, hint).
    pub window: LiveWindow,
    /// `window.render()`, once per change.
    pub playlist: Bytes,
    /// Init segments by epoch.
    pub inits: HashMap<u32, Bytes>,
    /// Segments in the window by msn.
    pub segments: HashMap<u64, Bytes>,
    /// Parts of the newest segments by (msn, part).
    pub parts: HashMap<(u64, u32), Bytes>,
    /// Who is on air, what is on stage.
    pub status: Option<ProgrammeStatus>,
    /// The recording's directory (older files are read from there).
    pub dir: PathBuf,
}

/// Inputs of a driver besides the tap.
#[derive(Debug)]
enum Msg {
    Audible(ParticipantId, bool),
    Turn(Option<ParticipantId>, bool),
    Pin(Option<ParticipantId>),
}

/// The floor as last told, per activity (a driver that starts later begins from it).
#[derive(Clone, Debug, Default)]
struct FloorCache {
    audible: HashMap<ParticipantId, bool>,
    turn: Option<(Option<ParticipantId>, bool)>,
    pin: Option<ParticipantId>,
}

/// A running programme.
#[derive(Clone)]
pub struct ProgrammeHandle {
    tx: mpsc::Sender<Msg>,
    /// The live window; `changed()` wakes on every update.
    pub live: watch::Receiver<Arc<LiveSnapshot>>,
}

struct Shared {
    hub: OnceLock<Weak<Hub>>,
    running: DashMap<ActivityId, ProgrammeHandle>,
    floor: DashMap<ActivityId, FloorCache>,
    /// Cluster mode: the programmes made on other nodes, relayed to this node's players.
    relay: Arc<super::hls::relay::Relay>,
}

/// The programme drivers of this node.
#[derive(Clone)]
pub struct Programmes {
    shared: Arc<Shared>,
}

impl Default for Programmes {
    fn default() -> Self {
        Self { shared: Arc::new(Shared { hub: OnceLock::new(), running: DashMap::new(), floor: DashMap::new(), relay: Arc::default() }) }
    }
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

impl Programmes {
    /// Ties the drivers to their hub, starts one per live livestream this node is home to, and
    /// the hourly retention sweep. Called once by [`Hub::start`].
    pub(crate) fn start(&self, hub: &Arc<Hub>) {
        let _ = self.shared.hub.set(Arc::downgrade(hub));
        if !hub.cfg.programme.enabled {
            return;
        }
        if let Ok(list) = hub.record.activities() {
            for a in list.into_iter().filter(|a| a.kind == ActivityKind::Livestream && a.state == ActivityState::Live) {
                let _ = self.ensure(&a.id);
            }
        }
        let weak = Arc::downgrade(hub);
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let Some(hub) = weak.upgrade() else { break };
                let (dir, retention) = (hub.cfg.data_dir.clone(), hub.cfg.programme.retention);
                drop(hub);
                let live: Vec<String> = me.shared.running.iter().map(|e| e.key().as_str().to_owned()).collect();
                let r = tokio::task::spawn_blocking(move || {
                    store::prune(&dir, now_us() / 1000, retention.map(|d| d.as_millis() as u64), &|a| live.iter().any(|l| l == a))
                })
                .await;
                match r {
                    Ok(Ok(removed)) if !removed.is_empty() => tracing::info!(?removed, "recordings past their retention removed"),
                    Ok(Err(e)) => tracing::warn!("recording retention sweep: {e}"),
                    _ => {}
                }
            }
        });
    }

    /// The running programme of `activity`, started if it is a live livestream this node is
    /// home to; `None` otherwise.
    pub fn ensure(&self, activity: &ActivityId) -> Option<ProgrammeHandle> {
        if let Some(h) = self.shared.running.get(activity).filter(|h| !h.tx.is_closed()) {
            return Some(h.clone());
        }
        let start = || {
            let hub = self.shared.hub.get()?.upgrade()?;
            if !hub.cfg.programme.enabled || hub.home_elsewhere(activity).is_some() {
                return None;
            }
            let a = hub.record.activity(activity).ok()??;
            (a.kind == ActivityKind::Livestream && a.state == ActivityState::Live).then_some(hub)
        };
        let Some(hub) = start() else {
            // Not (or no longer) live here: an ended programme still shows its last window.
            return self.get(activity);
        };
        let floor = self.shared.floor.get(activity).map(|f| f.clone()).unwrap_or_default();
        let mut entry = self.shared.running.entry(activity.clone()).or_insert_with(|| spawn_driver(&hub, activity, floor.clone()));
        if entry.tx.is_closed() {
            // The livestream ended and is live again: a new run of the same recording.
            *entry = spawn_driver(&hub, activity, floor);
        }
        Some(entry.clone())
    }

    /// The relay that serves this node's players the programmes of activities homed elsewhere.
    pub fn relay(&self) -> &Arc<super::hls::relay::Relay> {
        &self.shared.relay
    }

    /// The programme of `activity` if one ran on this node since the hub started (ended ones
    /// keep their last window, with `EXT-X-ENDLIST`).
    pub fn get(&self, activity: &ActivityId) -> Option<ProgrammeHandle> {
        self.shared.running.get(activity).map(|h| h.clone())
    }

    /// A moderator pins whose camera is on air (`None` unpins).
    pub fn pin(&self, activity: &ActivityId, who: Option<ParticipantId>) {
        self.shared.floor.entry(activity.clone()).or_default().pin = who.clone();
        self.send(activity, Msg::Pin(who));
    }

    fn send(&self, activity: &ActivityId, msg: Msg) {
        if let Some(h) = self.shared.running.get(activity)
            && let Err(mpsc::error::TrySendError::Full(m)) = h.tx.try_send(msg)
        {
            tracing::warn!(%activity, "programme driver busy; floor update {m:?} dropped");
        }
    }

    /// The floor hook of the programmes (composed with the SFU's by [`Tee`]).
    pub fn floor_hook(&self) -> Arc<dyn FloorHook> {
        Arc::new(ProgrammeFloor(self.clone()))
    }
}

/// The programme's side of the floor.
struct ProgrammeFloor(Programmes);

impl FloorHook for ProgrammeFloor {
    fn set_forwarding(&self, activity: &ActivityId, participant: &ParticipantId, audio: bool, _video: bool) {
        self.0.shared.floor.entry(activity.clone()).or_default().audible.insert(participant.clone(), audio);
        self.0.send(activity, Msg::Audible(participant.clone(), audio));
    }

    fn set_turn(&self, activity: &ActivityId, holder: Option<&ParticipantId>, open: bool) {
        let holder = holder.cloned();
        self.0.shared.floor.entry(activity.clone()).or_default().turn = Some((holder.clone(), open));
        self.0.send(activity, Msg::Turn(holder, open));
    }

    fn set_pin(&self, activity: &ActivityId, pin: Option<&ParticipantId>) {
        self.0.pin(activity, pin.cloned());
    }
}

/// Two floor hooks as one: the SFU's gates and the programme's choice follow the same calls.
pub struct Tee(pub Arc<dyn FloorHook>, pub Arc<dyn FloorHook>);

impl FloorHook for Tee {
    fn set_forwarding(&self, activity: &ActivityId, participant: &ParticipantId, audio: bool, video: bool) {
        self.0.set_forwarding(activity, participant, audio, video);
        self.1.set_forwarding(activity, participant, audio, video);
    }

    fn set_turn(&self, activity: &ActivityId, holder: Option<&ParticipantId>, open: bool) {
        self.0.set_turn(activity, holder, open);
        self.1.set_turn(activity, holder, open);
    }

    fn set_pin(&self, activity: &ActivityId, pin: Option<&ParticipantId>) {
        self.0.set_pin(activity, pin);
        self.1.set_pin(activity, pin);
    }

    fn banned(&self, activity: &ActivityId, participant: &ParticipantId) {
        self.0.banned(activity, participant);
        self.1.banned(activity, participant);
    }

    fn set_public(&self, activity: &ActivityId, participant: &ParticipantId, public: bool) {
        self.0.set_public(activity, participant, public);
        self.1.set_public(activity, participant, public);
    }
}

/// Store jobs, done in order by the programme's writer thread.
enum Job {
    Init(crate::programme::packager::InitOut),
    Part(crate::programme::packager::PartOut),
    Segment(crate::programme::packager::SegmentOut),
    End(u64),
}

/// Jobs waiting for the disk before parts are dropped (a stalled disk must not take memory).
const STORE_QUEUE: usize = 512;

fn spawn_driver(hub: &Arc<Hub>, activity: &ActivityId, floor: FloorCache) -> ProgrammeHandle {
    let dir = store::recording_dir(&hub.cfg.data_dir, activity.as_str());
    let settings = hub.cfg.programme.clone();
    let (tx, rx) = mpsc::channel(256);
    let (live_tx, live_rx) = watch::channel(Arc::new(LiveSnapshot { window: LiveWindow::new(settings.playlist.clone()), dir: dir.clone(), ..Default::default() }));
    let tap = hub.media.sfu.stage_tap(activity.as_str());
    let driver = ProgrammeDriver {
        activity: activity.clone(),
        hub: Arc::downgrade(hub),
        sfu: hub.media.sfu.clone(),
        settings,
        dir,
        live: live_tx,
        window: None,
        inits: HashMap::new(),
        segments: HashMap::new(),
        parts: HashMap::new(),
        status_dirty: true,
    };
    tokio::spawn(driver.run(tap, rx, floor));
    metrics::counter!("shangliang_programmes_started_total").increment(1);
    ProgrammeHandle { tx, live: live_rx }
}

struct ProgrammeDriver {
    activity: ActivityId,
    hub: Weak<Hub>,
    sfu: shangliang_sfu::Sfu,
    settings: ProgrammeSettings,
    dir: PathBuf,
    live: watch::Sender<Arc<LiveSnapshot>>,
    window: Option<LiveWindow>,
    inits: HashMap<u32, Bytes>,
    segments: HashMap<u64, Bytes>,
    parts: HashMap<(u64, u32), Bytes>,
    status_dirty: bool,
}

impl ProgrammeDriver {
    async fn run(mut self, mut tap: shangliang_sfu::StageTap, mut rx: mpsc::Receiver<Msg>, floor: FloorCache) {
        // Open the store (blocking I/O) and continue the recording's numbering.
        let dir = self.dir.clone();
        let opened = tokio::task::spawn_blocking(move || SegmentStore::open(&dir, now_us() / 1000)).await;
        let (store, rec) = match opened {
            Ok(Ok(x)) => (Some(x.0), x.1),
            Ok(Err(e)) => {
                tracing::error!(activity = %self.activity, dir = %self.dir.display(), "recording cannot be written ({e}); the programme runs without it");
                (None, Default::default())
            }
            Err(e) => {
                tracing::error!(activity = %self.activity, "store: {e}");
                (None, Default::default())
            }
        };
        let jobs = store.map(|s| spawn_writer(s, self.activity.clone()));
        // Instants from the tap become wall-clock microseconds through one fixed pair.
        let (base_instant, base_wall) = (Instant::now(), now_us());
        let wall = move |i: Instant| base_wall + i.saturating_duration_since(base_instant).as_micros() as u64;
        let now = || base_wall + base_instant.elapsed().as_micros() as u64;
        let mut p = Programme::new(self.settings.engine.clone(), now(), rec.next_msn(), rec.next_epoch());
        self.window = Some(LiveWindow::starting_at(self.settings.playlist.clone(), rec.next_msn()));
        for (who, audible) in floor.audible {
            p.handle_audible(who, audible, now());
        }
        if let Some((holder, open)) = floor.turn {
            p.handle_turn(holder, open, now());
        }
        if floor.pin.is_some() {
            p.handle_pin(floor.pin, now());
        }
        tracing::info!(activity = %self.activity, first_msn = rec.next_msn(), "programme started");
        let mut state_check = tokio::time::interval(Duration::from_secs(1));
        state_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ended = false;
        loop {
            let deadline = p.poll_timeout().map(|t| base_instant + Duration::from_micros(t.saturating_sub(base_wall)));
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = tap.recv() => match ev {
                    Some(ev) => {
                        self.handle_stage(&mut p, ev, &wall, now());
                        // Take what else is queued before publishing one snapshot.
                        for _ in 0..64 {
                            match tap.try_recv() {
                                Some(ev) => self.handle_stage(&mut p, ev, &wall, now()),
                                None => break,
                            }
                        }
                    }
                    None => break,
                },
                msg = rx.recv() => match msg {
                    Some(Msg::Audible(who, a)) => p.handle_audible(who, a, now()),
                    Some(Msg::Turn(h, open)) => p.handle_turn(h, open, now()),
                    Some(Msg::Pin(who)) => {
                        p.handle_pin(who, now());
                        // The status shows the pin even while nobody publishes (no on-air change).
                        self.status_dirty = true;
                    }
                    None => break,
                },
                _ = sleep => {}
                _ = state_check.tick() => {
                    let Some(hub) = self.hub.upgrade() else { break };
                    if hub.home_elsewhere(&self.activity).is_some() {
                        // Cluster: the activity's home is another node now; its programme is
                        // made there. Stop as a crash would (the store keeps whole segments).
                        tracing::info!(activity = %self.activity, "programme moved to another node");
                        break;
                    }
                    let live = hub.record.activity(&self.activity).ok().flatten().is_some_and(|a| a.state == ActivityState::Live);
                    if !live {
                        ended = true;
                    }
                }
            }
            let t = now();
            if deadline.is_some_and(|d| Instant::now() >= d) {
                p.handle_tick(t);
            }
            if ended {
                p.handle_end();
            }
            self.drain(&mut p, jobs.as_ref()).await;
            if ended {
                break;
            }
        }
        if let Some(w) = self.window.as_mut() {
            w.handle_end();
        }
        if ended && let Some(j) = &jobs {
            let _ = j.try_send(Job::End(now() / 1000));
        }
        self.status_dirty = true;
        self.publish(&p);
        tracing::info!(activity = %self.activity, ended, "programme stopped");
    }

    fn handle_stage(&mut self, p: &mut Programme, ev: StageEvent, wall: &impl Fn(Instant) -> u64, now: u64) {
        match ev {
            StageEvent::TrackAdded { track, participant, kind, codec } => {
                let kind = if kind == MediaKind::Audio { TrackKind::Audio } else { TrackKind::Video };
                p.handle_track_added(TrackKey(track.0), ParticipantId::new(participant), kind, TrackCodec::from_mime(&codec.mime_type), now);
                self.status_dirty = true;
            }
            StageEvent::Packet(pk) => p.handle_packet(
                TrackKey(pk.track.0),
                RtpPacket { seq: pk.seq, ts: pk.ts, marker: pk.marker, payload: pk.payload, arrival_us: wall(pk.arrival) },
                now,
            ),
            StageEvent::TrackRemoved { track, .. } => {
                p.handle_track_removed(TrackKey(track.0), now);
                self.status_dirty = true;
            }
            StageEvent::ActiveSpeaker { participant } => p.handle_active_speaker(ParticipantId::new(participant), now),
        }
    }

    async fn drain(&mut self, p: &mut Programme, jobs: Option<&std::sync::mpsc::SyncSender<Job>>) {
        let Some(window) = self.window.as_mut() else { return };
        let before = window.version();
        let keep_parts = self.settings.playlist.part_segments as u64 + 1;
        while let Some(out) = p.poll_output() {
            match out {
                Output::RequestKeyframe(who) => {
                    metrics::counter!("shangliang_programme_keyframe_requests_total").increment(1);
                    self.sfu.request_keyframe(self.activity.as_str(), who.as_str()).await;
                }
                Output::Init(init) => {
                    self.inits.insert(init.epoch, init.bytes.clone());
                    if let Some(j) = jobs {
                        let _ = j.try_send(Job::Init(init));
                    }
                }
                Output::Part(part) => {
                    window.handle_part(&part.segment, part.part.clone());
                    self.parts.insert((part.segment.msn, part.part.index), part.bytes.clone());
                    metrics::counter!("shangliang_hls_parts_total").increment(1);
                    if let Some(j) = jobs
                        && j.try_send(Job::Part(part)).is_err()
                    {
                        metrics::counter!("shangliang_recording_dropped_writes_total").increment(1);
                    }
                }
                Output::Segment(seg) => {
                    let msn = seg.entry.msn;
                    window.handle_segment(seg.entry.clone());
                    self.segments.insert(msn, seg.bytes.clone());
                    // Keep bytes only for what the window lists.
                    let oldest = window.segments().next().map_or(msn, |s| s.msn);
                    self.segments.retain(|m, _| *m >= oldest);
                    self.parts.retain(|(m, _), _| *m + keep_parts > msn);
                    if let Some(j) = jobs
                        && j.try_send(Job::Segment(seg)).is_err()
                    {
                        tracing::error!(activity = %self.activity, msn, "the disk is behind: segment not recorded");
                        metrics::counter!("shangliang_recording_dropped_writes_total").increment(1);
                    }
                }
                Output::OnAir(on) => {
                    tracing::info!(activity = %self.activity, video = ?on.video.as_ref().map(|p| p.as_str()), audio = ?on.audio.as_ref().map(|p| p.as_str()), "programme on air");
                    self.status_dirty = true;
                }
                Output::Unsupported { participant, mime, kind } => {
                    tracing::warn!(
                        activity = %self.activity, participant = participant.as_str(), %mime, ?kind,
                        "this track cannot go into the livestream programme without re-encoding; WebRTC viewers still get it"
                    );
                    metrics::counter!("shangliang_programme_unsupported_tracks_total").increment(1);
                    self.status_dirty = true;
                }
            }
        }
        let changed = window.version() != before;
        if changed || self.status_dirty {
            self.publish(p);
        }
    }

    fn publish(&mut self, p: &Programme) {
        let Some(window) = self.window.as_ref() else { return };
        self.status_dirty = false;
        let snap = LiveSnapshot {
            playlist: Bytes::from(window.render()),
            window: window.clone(),
            inits: self.inits.clone(),
            segments: self.segments.clone(),
            parts: self.parts.clone(),
            status: Some(p.status()),
            dir: self.dir.clone(),
        };
        self.live.send_replace(Arc::new(snap));
    }
}

fn spawn_writer(mut store: SegmentStore, activity: ActivityId) -> std::sync::mpsc::SyncSender<Job> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(STORE_QUEUE);
    let spawned = std::thread::Builder::new().name(format!("rec-{activity}")).spawn(move || {
        while let Ok(job) = rx.recv() {
            let r = match &job {
                Job::Init(i) => store.write_init(i),
                Job::Part(p) => store.write_part(p),
                Job::Segment(s) => store.write_segment(s),
                Job::End(at) => store.write_end(*at),
            };
            if let Err(e) = r {
                tracing::error!(%activity, dir = %store.dir().display(), "recording write failed: {e}");
                metrics::counter!("shangliang_recording_write_errors_total").increment(1);
            }
            if matches!(job, Job::End(_)) {
                break;
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the recording writer: {e}");
    }
    tx
}
