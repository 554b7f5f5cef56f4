//! One [`Consultation`] per activity: the single object the server drives.
//!
//! It owns the floor, the questions, the comment policy, the audit log and attendance. Every
//! input carries the caller's [`Grants`] and `now_ms`; it is authorised ([`authorize_in`]),
//! applied, appended to the audit log when a moderator did it, and its consequences are queued
//! as [`Addressed`] events for the server to deliver.
//!
//! ```text
//! // the activity's driver task owns `c: Consultation`
//! loop {
//!     select! {
//!         input = rx.recv() => match input {            // from websocket sessions
//!             Join(g)             => c.handle_join(&g, now_ms())?,
//!             Post(g, topic, text) => match c.handle_post_comment(&g, &topic, &text, now_ms()) { .. }
//!             GrantFloor(g, t, l) => c.handle_grant_floor(&g, t, l, now_ms())?,
//!             ..
//!         },
//!         _ = sleep_until(c.poll_timeout()) => c.handle_tick(now_ms()),
//!     }
//!     while let Some(out) = c.poll_event() { deliver(out.audience, out.event) }
//!     // the SFU's floor hook: c.may_speak(&participant)
//! }
//! ```
//!
//! Comments take two steps because the record numbers the items of a topic as it commits them:
//! [`Consultation::handle_post_comment`] decides (topic, text, rate limit, the moderators'
//! rules), the server appends the comment to the record, and once it is durable
//! [`Consultation::handle_comment_committed`] tells the policy its seq.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use shangliang_signaling::consult::AudienceCounts;
use shangliang_signaling::{ActivityId, Org, OrgLevel, Role, Seq};

use super::audit::{AuditEntry, AuditLog, BrokenLink};
use super::comments::{
    CommentCounts, CommentDecision, CommentModes, CommentPolicy, HeldComment, HiddenComment,
    PolicyChange,
};
use super::floor::{Floor, FloorMode, GrantTarget, Turn, TurnEnd};
use super::session::{Changed, SessionSettings};
use super::grants::{Action, ConsultError, Grants, authorize_in};
use super::ids::{ParticipantId, QuestionId};
use super::questions::{Question, QuestionState, Questions};
use super::rate::Rate;
use super::text::normalize_line;
use super::votes::{Ballot, NetBlock, VoteRules};
pub use shangliang_signaling::consult::{ConsultEvent, QuestionOp, FloorSnapshot, PresentRow, Snapshot};

/// Who an outbound event is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", content = "id", rename_all = "snake_case")]
pub enum Audience {
    /// Everyone connected to the activity.
    Everyone,
    /// Moderators only (full views: pending questions, anonymous askers, audit entries).
    Moderators,
    /// Everyone but the moderators (public views).
    NonModerators,
    /// One participant (e.g. the asker of a pending question).
    Participant(ParticipantId),
}

/// An event addressed to an audience: what the state machine asks the server to deliver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addressed {
    /// Who gets it.
    pub audience: Audience,
    /// The event.
    pub event: ConsultEvent,
}

/// How an activity starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsultationConfig {
    /// Title for the minutes.
    pub title: String,
    /// Initial floor mode.
    pub floor_mode: FloorMode,
    /// Time limit of a turn when the moderator gives none.
    pub default_turn_ms: u64,
    /// Whether questions wait for review.
    pub question_review: bool,
}

impl Default for ConsultationConfig {
    fn default() -> Self {
        ConsultationConfig {
            title: String::new(),
            floor_mode: FloorMode::Chaired,
            default_turn_ms: 3 * 60_000,
            question_review: true,
        }
    }
}

/// One stretch of presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// When the first connection joined.
    pub joined_at_ms: u64,
    /// When the last connection left (`None`: still present).
    pub left_at_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Attendee {
    name: String,
    role: Role,
    org: Option<Org>,
    connections: u32,
    spans: Vec<Span>,
}

/// Aggregate attendance of the public (viewers are counted, not listed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewerStats {
    /// Distinct viewer identities that joined.
    pub distinct: u64,
    /// Most viewers present at once.
    pub peak: u64,
    /// Viewers present now.
    pub current: u64,
}

/// The state machine of one activity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Consultation {
    activity: ActivityId,
    config: ConsultationConfig,
    created_at_ms: u64,
    floor: Floor,
    questions: Questions,
    comments: CommentPolicy,
    /// Restored from the stored audit log, not from a checkpoint.
    #[serde(skip)]
    audit: AuditLog,
    people: BTreeMap<ParticipantId, Attendee>,
    /// Connections per viewer. Not in a checkpoint (it grows with the audience); after a
    /// restore the nodes announce their connections again.
    #[serde(skip)]
    viewer_conns: HashMap<ParticipantId, u32>,
    /// Viewers ever seen, for the distinct count. Not in a checkpoint (it grows with the
    /// audience): after a restore a returning viewer is counted again in `distinct`.
    #[serde(skip)]
    viewers_seen: HashSet<ParticipantId>,
    /// The organisation level of present viewers whose token names one (for the live counts).
    /// Not in a checkpoint, like `viewer_conns`.
    #[serde(skip)]
    viewer_levels: HashMap<ParticipantId, OrgLevel>,
    viewer_stats: ViewerStats,
    last_seq: Option<Seq>,
    /// The organisers' stage line-up: `None` every member and guest may raise a hand and be
    /// granted the floor; `Some` only these (see [`Consultation::handle_session_settings`]).
    #[serde(default)]
    lineup: Option<Vec<ParticipantId>>,
    /// After a restore: until when connections may be announced again before the people
    /// still counted absent are taken as gone (spans closed, floor released).
    #[serde(skip)]
    rejoin_until: Option<u64>,
    #[serde(skip)]
    events: VecDeque<Addressed>,
    /// A livestream (its public sees only who is on air); set by the driver from the record.
    #[serde(default)]
    livestream: bool,
    /// Granted 上台, in order of the grant (kept across a restart: it is in the checkpoint).
    #[serde(default)]
    stage: Vec<ParticipantId>,
    /// The camera a moderator pinned on the programme (audited here, applied by the programme).
    #[serde(default)]
    programme_pin: Option<ParticipantId>,
    /// The stage lists last announced (`ConsultEvent::Stage`), to announce only changes.
    #[serde(skip)]
    announced_stage: Option<(Vec<ParticipantId>, Vec<ParticipantId>)>,
}

/// After a restore, how long members have to be announced again (by their node, or by
/// reconnecting) before they are taken as gone.
pub const REJOIN_GRACE_MS: u64 = 10_000;

impl Consultation {
    /// A new activity.
    pub fn new(activity: ActivityId, config: ConsultationConfig, now_ms: u64) -> Self {
        Consultation {
            floor: Floor::new(config.floor_mode),
            questions: Questions::new(config.question_review),
            activity,
            config,
            created_at_ms: now_ms,
            comments: CommentPolicy::new(),
            audit: AuditLog::new(),
            people: BTreeMap::new(),
            viewer_conns: HashMap::new(),
            viewers_seen: HashSet::new(),
            viewer_levels: HashMap::new(),
            viewer_stats: ViewerStats::default(),
            last_seq: None,
            lineup: None,
            rejoin_until: None,
            events: VecDeque::new(),
            livestream: false,
            stage: Vec::new(),
            programme_pin: None,
            announced_stage: None,
        }
    }

    /// Whether the activity is a livestream (the driver reads its kind from the record). Only
    /// a livestream has a stage: in a room [`Consultation::on_air`] is empty and `set_stage` is
    /// refused.
    pub fn set_livestream(&mut self, livestream: bool) {
        self.livestream = livestream;
        self.flush();
    }

    /// The camera a moderator pinned on the programme, as audited here.
    pub fn programme_pin(&self) -> Option<&ParticipantId> {
        self.programme_pin.as_ref()
    }

    /// Granted 上台, in order of the grant.
    pub fn stage(&self) -> &[ParticipantId] {
        &self.stage
    }

    /// Who may reach the public of a livestream now: on the stage, holding the floor, or
    /// pinned on the programme — each a moderator's decision to put them on air. Sorted; empty
    /// in a room. The media plane forwards nobody else to WHEP viewers and the programme.
    pub fn on_air(&self) -> Vec<ParticipantId> {
        if !self.livestream {
            return Vec::new();
        }
        let mut v: Vec<ParticipantId> = self.stage.iter().chain(self.floor.holder()).chain(self.programme_pin.as_ref()).cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    /// Whether `who` is on air (see [`Consultation::on_air`]).
    pub fn is_on_air(&self, who: &ParticipantId) -> bool {
        self.livestream && (self.stage.contains(who) || self.floor.holder() == Some(who) || self.programme_pin.as_ref() == Some(who))
    }

    /// The activity.
    pub fn activity(&self) -> &ActivityId {
        &self.activity
    }

    /// The floor (read only).
    pub fn floor(&self) -> &Floor {
        &self.floor
    }

    /// The questions (read only).
    pub fn questions(&self) -> &Questions {
        &self.questions
    }

    /// The comment policy (read only).
    pub fn comments(&self) -> &CommentPolicy {
        &self.comments
    }

    /// The state to continue from after a restart, or on another node when the activity's
    /// home moves (JSON): everything but the audit log (stored entry by entry, restored with
    /// [`Consultation::handle_restore_audit`]), events not yet delivered, and what grows with
    /// the audience (viewer connections, viewers seen, recent comment texts), so its size does
    /// not depend on how many watch.
    pub fn checkpoint(&self) -> String {
        serde_json::to_string(self).expect("the state machine serializes")
    }

    /// A state machine continued from a [`Consultation::checkpoint`], with an empty audit log.
    ///
    /// Nobody counts as connected afterwards: the connections that still exist are announced
    /// again with [`Consultation::handle_join`] (in a cluster each node re-announces its own
    /// when an activity's home moves; after a restart clients reconnect). Members, guests and
    /// moderators keep their open presence span and a speaker keeps the floor if they are
    /// announced within [`REJOIN_GRACE_MS`] of `now_ms`; whoever is not is taken as gone then
    /// (span closed at that moment, floor released). The viewer count restarts from zero and
    /// climbs back as viewers are announced.
    pub fn restore(json: &str, now_ms: u64) -> Result<Self, serde_json::Error> {
        let mut c: Consultation = serde_json::from_str(json)?;
        for a in c.people.values_mut() {
            a.connections = 0;
        }
        c.viewer_stats.current = 0;
        c.rejoin_until = Some(now_ms + REJOIN_GRACE_MS);
        c.questions.rebuild_vote_counts();
        Ok(c)
    }

    /// Continues the audit log stored in the record (after a restart), so new moderator
    /// actions chain onto it. Only for a fresh state machine: refused (and nothing changes) if
    /// this one has logged anything already, or if the entries do not verify.
    pub fn handle_restore_audit(&mut self, entries: Vec<AuditEntry>) -> Result<(), BrokenLink> {
        if !self.audit.entries().is_empty() {
            return Err(BrokenLink { index: 0 });
        }
        self.audit = AuditLog::resume(entries)?;
        Ok(())
    }

    /// Logs a moderator action taken in another part of the activity (its polls and
    /// statements, `crate::consensus`) into this activity's one audit chain. The caller has
    /// authorised it.
    pub fn handle_log_action(&mut self, g: &Grants, now_ms: u64, action: &str, target: &str, detail: &str) {
        self.log(g, now_ms, action, target, detail, None);
    }

    /// Logs an action the organisers took (a lifecycle step, a changed setting; issue 14) into
    /// this activity's one audit chain, with its reason. The caller has authorised it.
    pub fn handle_log_note(&mut self, g: &Grants, now_ms: u64, action: &str, target: &str, detail: &str, reason: Option<&str>) {
        self.log(g, now_ms, action, target, detail, reason);
    }

    /// The audit log (read only).
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The next event to deliver.
    pub fn poll_event(&mut self) -> Option<Addressed> {
        self.events.pop_front()
    }

    /// When [`Consultation::handle_tick`] must run at the latest.
    pub fn poll_timeout(&self) -> Option<u64> {
        match (self.floor.poll_timeout(), self.rejoin_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether `who` is heard now: present, and allowed by the floor. The SFU's floor hook.
    pub fn may_speak(&self, who: &ParticipantId) -> bool {
        self.people
            .get(who)
            .is_some_and(|a| a.connections > 0 && self.floor.may_speak(who, a.role))
    }

    /// Whether `who` (member, guest, moderator) is present.
    pub fn is_present(&self, who: &ParticipantId) -> bool {
        self.people.get(who).is_some_and(|a| a.connections > 0)
    }

    // ---- attendance -------------------------------------------------------------------

    /// A connection of `g` joined. Several connections of one identity count once.
    pub fn handle_join(&mut self, g: &Grants, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::Join)?;
        if g.role == Role::Viewer {
            let n = self.viewer_conns.entry(g.subject.clone()).or_default();
            *n += 1;
            if *n == 1 {
                if let Some(org) = &g.org {
                    self.viewer_levels.insert(g.subject.clone(), org.level);
                }
                self.viewer_stats.current += 1;
                self.viewer_stats.peak = self.viewer_stats.peak.max(self.viewer_stats.current);
            }
            if self.viewers_seen.insert(g.subject.clone()) {
                self.viewer_stats.distinct += 1;
            }
            return Ok(());
        }
        let a = self
            .people
            .entry(g.subject.clone())
            .or_insert_with(|| Attendee {
                name: g.name.clone(),
                role: g.role,
                org: g.org.clone(),
                connections: 0,
                spans: Vec::new(),
            });
        a.name.clone_from(&g.name);
        a.role = g.role;
        a.org.clone_from(&g.org);
        a.connections += 1;
        if a.connections == 1 {
            // After a restore the span of someone still connected is open: it continues.
            if a.spans.last().is_none_or(|s| s.left_at_ms.is_some()) {
                a.spans.push(Span {
                    joined_at_ms: now_ms,
                    left_at_ms: None,
                });
            }
            self.push(
                Audience::Everyone,
                ConsultEvent::Presence {
                    participant: g.subject.clone(),
                    name: g.name.clone(),
                    role: g.role,
                    present: true,
                },
            );
        }
        Ok(())
    }

    /// Who is present now, counted by identity: what the live counts push (the driver sends
    /// them at most every [`shangliang_signaling::consult::AUDIENCE_INTERVAL_MS`], when changed).
    pub fn audience(&self) -> AudienceCounts {
        let mut counts = AudienceCounts { viewers: self.viewer_stats.current, ..AudienceCounts::default() };
        for level in self.viewer_levels.values() {
            *counts.by_level.of_mut(*level) += 1;
        }
        for a in self.people.values().filter(|a| a.connections > 0) {
            counts.participants += 1;
            if let Some(org) = &a.org {
                *counts.by_level.of_mut(org.level) += 1;
            }
        }
        counts
    }

    /// A connection of `who` closed. When the last one closes, their hand is lowered and their
    /// turn at the floor ends.
    pub fn handle_leave(&mut self, who: &ParticipantId, now_ms: u64) {
        if let Some(n) = self.viewer_conns.get_mut(who) {
            *n -= 1;
            if *n == 0 {
                self.viewer_conns.remove(who);
                self.viewer_levels.remove(who);
                self.viewer_stats.current -= 1;
            }
            return;
        }
        let Some(a) = self.people.get_mut(who) else {
            return;
        };
        if a.connections == 0 {
            return;
        }
        a.connections -= 1;
        if a.connections > 0 {
            return;
        }
        if let Some(s) = a.spans.last_mut() {
            s.left_at_ms = Some(now_ms.max(s.joined_at_ms));
        }
        let (name, role) = (a.name.clone(), a.role);
        self.push(
            Audience::Everyone,
            ConsultEvent::Presence {
                participant: who.clone(),
                name,
                role,
                present: false,
            },
        );
        self.floor.handle_left(who, now_ms);
        self.flush();
    }

    // ---- the floor --------------------------------------------------------------------

    /// `g` raises their hand (members and guests who are present and in good standing).
    pub fn handle_raise_hand(&mut self, g: &Grants, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::RaiseHand)?;
        if self.comments.modes().paused {
            return Err(ConsultError::Paused);
        }
        if !self.is_present(&g.subject) || !self.in_lineup(&g.subject, g.role) {
            return Err(ConsultError::NotEligible(g.subject.clone()));
        }
        self.comments.check_standing(&g.subject, g.role, now_ms)?;
        self.floor.handle_raise_hand(&g.subject, now_ms);
        self.flush();
        Ok(())
    }

    /// Lowers a hand: one's own (`target` `None` or oneself), or, for a moderator, anyone's.
    pub fn handle_lower_hand(
        &mut self,
        g: &Grants,
        target: Option<&ParticipantId>,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        match target {
            Some(t) if *t != g.subject => {
                authorize_in(g, &self.activity, Action::LowerHandOf)?;
                if self.floor.handle_lower_hand(t, now_ms) {
                    self.log(g, now_ms, "hand_lowered", t.as_str(), "", None);
                }
            }
            _ => {
                authorize_in(g, &self.activity, Action::LowerOwnHand)?;
                self.floor.handle_lower_hand(&g.subject, now_ms);
            }
        }
        self.flush();
        Ok(())
    }

    /// A moderator gives the floor to the next hand or a named participant who is present,
    /// for `limit_ms` (default: the configured turn length). An open turn ends as revoked.
    pub fn handle_grant_floor(
        &mut self,
        g: &Grants,
        target: GrantTarget,
        limit_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<ParticipantId, ConsultError> {
        authorize_in(g, &self.activity, Action::GrantFloor)?;
        if self.comments.modes().paused {
            return Err(ConsultError::Paused);
        }
        if let GrantTarget::Participant(p) = &target {
            let eligible = self
                .people
                .get(p)
                .is_some_and(|a| a.connections > 0 && a.role != Role::Viewer && self.in_lineup(p, a.role));
            if !eligible {
                return Err(ConsultError::NotEligible(p.clone()));
            }
        }
        let limit = limit_ms.unwrap_or(self.config.default_turn_ms);
        let holder = self
            .floor
            .handle_grant(&target, limit, Some(&g.subject), now_ms)?;
        self.log(
            g,
            now_ms,
            "floor_granted",
            holder.as_str(),
            &format!("limit={limit}ms"),
            None,
        );
        self.flush();
        Ok(holder)
    }

    /// A moderator gives the speaker `extra_ms` more.
    pub fn handle_extend_floor(
        &mut self,
        g: &Grants,
        extra_ms: u64,
        now_ms: u64,
    ) -> Result<u64, ConsultError> {
        authorize_in(g, &self.activity, Action::ExtendFloor)?;
        let deadline = self.floor.handle_extend(extra_ms, now_ms)?;
        let holder = self.floor.holder().cloned().expect("extended an open turn");
        self.log(
            g,
            now_ms,
            "floor_extended",
            holder.as_str(),
            &format!("+{extra_ms}ms"),
            None,
        );
        self.flush();
        Ok(deadline)
    }

    /// A moderator takes the floor back.
    pub fn handle_revoke_floor(
        &mut self,
        g: &Grants,
        reason: Option<&str>,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::RevokeFloor)?;
        let reason = reason
            .map(|r| normalize_line(r, shangliang_signaling::limits::MAX_REASON_CHARS))
            .transpose()?;
        let holder = self.floor.handle_revoke(now_ms)?;
        self.log(
            g,
            now_ms,
            "floor_revoked",
            holder.as_str(),
            "",
            reason.as_deref(),
        );
        self.flush();
        Ok(())
    }

    /// The holder gives the floor up.
    pub fn handle_yield_floor(&mut self, g: &Grants, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::YieldFloor)?;
        self.floor.handle_yield(&g.subject, now_ms)?;
        self.flush();
        Ok(())
    }

    /// A moderator sets chaired or open mode.
    pub fn handle_set_floor_mode(
        &mut self,
        g: &Grants,
        mode: FloorMode,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::SetFloorMode)?;
        if self.floor.handle_set_mode(mode, now_ms) {
            let m = match mode {
                FloorMode::Chaired => "chaired",
                FloorMode::Open => "open",
            };
            self.log(g, now_ms, "floor_mode_set", "", m, None);
        }
        self.flush();
        Ok(())
    }

    /// A moderator turns auto-advance on (each turn `limit_ms`) or off.
    pub fn handle_set_auto_advance(
        &mut self,
        g: &Grants,
        limit_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::SetFloorMode)?;
        self.floor.handle_set_auto_advance(limit_ms)?;
        let target = limit_ms.map_or_else(|| "off".to_owned(), |l| format!("{l}ms"));
        self.log(g, now_ms, "floor_auto_advance_set", "", &target, None);
        Ok(())
    }

    /// A moderator mutes everyone but the moderators.
    pub fn handle_mute_all(&mut self, g: &Grants, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::MuteAll)?;
        self.floor.handle_mute_all(now_ms);
        self.log(g, now_ms, "muted_all", "", "", None);
        self.flush();
        Ok(())
    }

    /// A moderator pins whose camera the livestream programme shows (`None`: the floor decides
    /// again). The pin itself lives in the programme (the server hands it over through
    /// `FloorHook::set_pin` once this succeeded); here it is authorised (floor control) and
    /// audited. Only someone who could be given the floor can be pinned: a member, guest or
    /// moderator who has joined the session (present now or not; viewers never).
    pub fn handle_pin_programme(
        &mut self,
        g: &Grants,
        participant: Option<&ParticipantId>,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::GrantFloor)?;
        if let Some(p) = participant {
            let eligible = self.people.get(p).is_some_and(|a| a.role != Role::Viewer);
            if !eligible {
                return Err(ConsultError::NotEligible(p.clone()));
            }
        }
        match participant {
            Some(p) => self.log(g, now_ms, "programme_pinned", p.as_str(), "", None),
            None => self.log(g, now_ms, "programme_unpinned", "", "", None),
        }
        self.programme_pin = participant.cloned();
        self.flush();
        Ok(())
    }

    /// A moderator puts `who` on the livestream's stage (上台, `on`) or takes them off (下台):
    /// whether their camera and microphone may reach the public. A participant need not be
    /// present (the chair may seat a speaker before they arrive) but may not be a viewer.
    /// 下台 of the floor holder also ends their turn (revoked), so they leave the public stream
    /// at once. Audited `stage_granted` / `stage_revoked` when something changed.
    pub fn handle_set_stage(
        &mut self,
        g: &Grants,
        who: &ParticipantId,
        on: bool,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::GrantFloor)?;
        if !self.livestream || self.role_of(who) == Some(Role::Viewer) {
            return Err(ConsultError::NotEligible(who.clone()));
        }
        let was = self.stage.contains(who);
        if on && !was {
            self.stage.push(who.clone());
            self.log(g, now_ms, "stage_granted", who.as_str(), "", None);
        }
        if !on {
            if was {
                self.stage.retain(|p| p != who);
                self.log(g, now_ms, "stage_revoked", who.as_str(), "", None);
            }
            if self.floor.holder() == Some(who) {
                let holder = self.floor.handle_revoke(now_ms)?;
                self.log(g, now_ms, "floor_revoked", holder.as_str(), "", Some("下台"));
            }
            if self.programme_pin.as_ref() == Some(who) {
                self.programme_pin = None;
                self.log(g, now_ms, "programme_unpinned", "", "", Some("下台"));
            }
        }
        self.flush();
        Ok(())
    }

    /// The hub stops gracefully (SIGTERM): everyone still present leaves now — their spans
    /// close at `now_ms`, a turn at the floor ends as `left`, no viewer is counted present — so
    /// the minutes do not show people "在场" (present) in a session that ended. Connections that
    /// join afterwards (the process is going away) open new spans as usual.
    pub fn handle_shutdown(&mut self, now_ms: u64) {
        self.rejoin_until = None;
        let present: Vec<ParticipantId> = self
            .people
            .iter()
            .filter(|(_, a)| a.connections > 0 || a.spans.last().is_some_and(|s| s.left_at_ms.is_none()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in present {
            // One connection left, then the ordinary leave closes the span and the floor.
            if let Some(a) = self.people.get_mut(&id) {
                a.connections = 1;
            }
            self.handle_leave(&id, now_ms);
        }
        self.viewer_conns.clear();
        self.viewer_stats.current = 0;
        self.flush();
    }

    /// Time passes: ends an expired turn (and auto-advances).
    pub fn handle_tick(&mut self, now_ms: u64) {
        if self.rejoin_until.is_some_and(|t| t <= now_ms) {
            self.rejoin_until = None;
            let gone: Vec<ParticipantId> = self
                .people
                .iter()
                .filter(|(_, a)| a.connections == 0 && a.spans.last().is_some_and(|s| s.left_at_ms.is_none()))
                .map(|(id, _)| id.clone())
                .collect();
            for id in gone {
                // Counted once more so the ordinary leave closes the span and the floor.
                if let Some(a) = self.people.get_mut(&id) {
                    a.connections = 1;
                }
                self.handle_leave(&id, now_ms);
            }
        }
        self.floor.handle_tick(now_ms);
        self.flush();
    }

    // ---- questions --------------------------------------------------------------------

    /// `g` submits a question (moderators' questions skip review).
    pub fn handle_submit_question(
        &mut self,
        g: &Grants,
        text: &str,
        anonymous: bool,
        now_ms: u64,
    ) -> Result<QuestionId, ConsultError> {
        authorize_in(g, &self.activity, Action::SubmitQuestion)?;
        if !g.role.is_moderator() {
            let m = self.comments.modes();
            if m.paused {
                return Err(ConsultError::Paused);
            }
            if m.questions_closed {
                return Err(ConsultError::InteractionClosed("questions"));
            }
        }
        self.comments.check_standing(&g.subject, g.role, now_ms)?;
        let id = self.questions.handle_submit(
            g.author(),
            text,
            anonymous,
            g.role.is_moderator(),
            now_ms,
        )?;
        self.flush();
        Ok(id)
    }

    /// `g` upvotes (`up`) or withdraws their vote, from the address block `from` (the
    /// server's client address; `super::votes`: anonymous votes are capped per block).
    pub fn handle_vote_question(
        &mut self,
        g: &Grants,
        from: Option<NetBlock>,
        id: QuestionId,
        up: bool,
        now_ms: u64,
    ) -> Result<usize, ConsultError> {
        authorize_in(g, &self.activity, Action::VoteQuestion)?;
        if self.comments.modes().paused && !g.role.is_moderator() {
            return Err(ConsultError::Paused);
        }
        self.comments.check_standing(&g.subject, g.role, now_ms)?;
        let n = if up {
            self.questions.handle_vote(&g.subject, Ballot::of(g, from), id, now_ms)?
        } else {
            self.questions.handle_unvote(&g.subject, id)?
        };
        self.flush();
        Ok(n)
    }

    /// A moderator moves a question.
    pub fn handle_moderate_question(
        &mut self,
        g: &Grants,
        id: QuestionId,
        op: QuestionOp,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::ModerateQuestion)?;
        let by = &g.subject;
        let (action, reason) = match &op {
            QuestionOp::Publish => {
                self.questions.handle_publish(id, by, now_ms)?;
                ("question_published", None)
            }
            QuestionOp::Reject { reason } => {
                self.questions
                    .handle_reject(id, by, reason.as_deref(), now_ms)?;
                (
                    "question_rejected",
                    self.questions.get(id).and_then(|q| q.reason.clone()),
                )
            }
            QuestionOp::Stage => {
                self.questions.handle_stage(id, by, now_ms)?;
                ("question_staged", None)
            }
            QuestionOp::Answer { by: answerer } => {
                let answerer = answerer.clone().or_else(|| self.floor.holder().cloned());
                self.questions.handle_answer(id, answerer, by, now_ms)?;
                ("question_answered", None)
            }
            QuestionOp::Dismiss { reason } => {
                self.questions
                    .handle_dismiss(id, by, reason.as_deref(), now_ms)?;
                (
                    "question_dismissed",
                    self.questions.get(id).and_then(|q| q.reason.clone()),
                )
            }
            QuestionOp::Pin => {
                self.questions.handle_pin(id, true)?;
                ("question_pinned", None)
            }
            QuestionOp::Unpin => {
                self.questions.handle_pin(id, false)?;
                ("question_unpinned", None)
            }
        };
        self.log(g, now_ms, action, &id.to_string(), "", reason.as_deref());
        self.flush();
        Ok(())
    }

    /// A moderator turns question review on or off.
    pub fn handle_set_question_review(
        &mut self,
        g: &Grants,
        review: bool,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::ModerateQuestion)?;
        self.questions.set_review(review);
        self.log(
            g,
            now_ms,
            "question_review_set",
            "",
            if review { "on" } else { "off" },
            None,
        );
        Ok(())
    }

    // ---- comments ---------------------------------------------------------------------

    /// Decides on a comment posted to `topic`. On `Accept`/`Hold` the server stores it, gets
    /// its seq and calls [`Consultation::handle_comment_committed`].
    pub fn handle_post_comment(
        &mut self,
        g: &Grants,
        topic: &ActivityId,
        raw_text: &str,
        now_ms: u64,
    ) -> CommentDecision {
        if let Err(e) = authorize_in(g, &self.activity, Action::PostComment) {
            return CommentDecision::Refuse(e);
        }
        self.comments.handle_post(g, topic, raw_text, now_ms)
    }

    /// Sets the limits on anonymous question votes (`super::votes`). Not part of a checkpoint:
    /// the server sets it after `new` and `restore`.
    pub fn set_vote_rules(&mut self, rules: VoteRules) {
        self.questions.set_vote_rules(rules);
    }

    /// Limits each identity to `per_minute` comments (with a small burst; moderators are never
    /// limited). Not part of a checkpoint: the server sets it after `new` and `restore`.
    pub fn set_comment_rate(&mut self, per_minute: u32) {
        self.comments.set_rate(Some(Rate::per_minute(per_minute)));
    }

    /// The comment decided on was stored under `seq` (`held` after a `Hold`).
    pub fn handle_comment_committed(
        &mut self,
        seq: Seq,
        g: &Grants,
        text: String,
        held: bool,
        now_ms: u64,
    ) {
        self.last_seq = self.last_seq.max(Some(seq));
        self.comments
            .handle_committed(seq, g.author(), text, held, now_ms);
        if let Some(c) = held.then(|| self.comments.held_comment(seq)).flatten() {
            let event = ConsultEvent::CommentHeld { comment: c.clone() };
            self.push(Audience::Moderators, event.clone());
            self.push(Audience::Participant(g.subject.clone()), event);
        }
    }

    /// The topic's last sequence number, for comments not posted through this object (so a
    /// moderator can still hide them).
    pub fn handle_topic_seq(&mut self, seq: Seq) {
        self.last_seq = self.last_seq.max(Some(seq));
    }

    /// A moderator approves a held comment.
    pub fn handle_approve_comment(
        &mut self,
        g: &Grants,
        seq: Seq,
        now_ms: u64,
    ) -> Result<HeldComment, ConsultError> {
        authorize_in(g, &self.activity, Action::ModerateComment)?;
        let c = self.comments.handle_approve(seq)?;
        self.log(g, now_ms, "comment_approved", &format!("#{seq}"), "", None);
        self.push(Audience::Everyone, ConsultEvent::CommentApproved { seq });
        Ok(c)
    }

    /// A moderator rejects a held comment, with a reason: it never becomes public. The server
    /// appends a `hide` item for it (the moderators' view drops it), as for a hide.
    pub fn handle_reject_comment(
        &mut self,
        g: &Grants,
        seq: Seq,
        reason: &str,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::ModerateComment)?;
        let rejected = self.comments.handle_reject(seq, reason, &g.subject, now_ms)?;
        let (reason, author) = (rejected.reason.clone(), rejected.author.clone());
        self.log(g, now_ms, "comment_rejected", &format!("#{seq}"), "", Some(&reason));
        self.push(Audience::Moderators, ConsultEvent::CommentRejected { seq });
        if let Some(a) = author {
            self.push(Audience::Participant(a.id), ConsultEvent::CommentRejected { seq });
        }
        Ok(())
    }

    /// A moderator approves every held comment (oldest first); the server appends a public
    /// copy of each. One audit entry (`comment_approved_all`, `count=N`).
    pub fn handle_approve_all_held(
        &mut self,
        g: &Grants,
        now_ms: u64,
    ) -> Result<Vec<HeldComment>, ConsultError> {
        authorize_in(g, &self.activity, Action::ModerateComment)?;
        let seqs: Vec<Seq> = self.comments.held().map(|c| c.seq).collect();
        let mut approved = Vec::with_capacity(seqs.len());
        for seq in seqs {
            approved.push(self.comments.handle_approve(seq)?);
            self.push(Audience::Everyone, ConsultEvent::CommentApproved { seq });
        }
        self.log(g, now_ms, "comment_approved_all", "", &format!("count={}", approved.len()), None);
        Ok(approved)
    }

    /// A moderator hides a comment, with a reason.
    pub fn handle_hide_comment(
        &mut self,
        g: &Grants,
        seq: Seq,
        reason: &str,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::ModerateComment)?;
        let reason = self
            .comments
            .handle_hide(seq, reason, &g.subject, self.last_seq, now_ms)?
            .reason
            .clone();
        self.log(
            g,
            now_ms,
            "comment_hidden",
            &format!("#{seq}"),
            "",
            Some(&reason),
        );
        self.push(Audience::Everyone, ConsultEvent::CommentHidden { seq });
        Ok(())
    }

    /// A moderator changes a comment mode or keyword list.
    pub fn handle_set_comment_policy(
        &mut self,
        g: &Grants,
        change: PolicyChange,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::SetCommentPolicy)?;
        self.comments.handle_change(&change)?;
        let target = match &change {
            PolicyChange::Review(b) => format!("review={b}"),
            PolicyChange::SlowMode(ms) => format!(
                "slow_mode={}",
                ms.map_or("off".into(), |m| format!("{m}ms"))
            ),
            PolicyChange::VerifiedOnly(b) => format!("verified_only={b}"),
            PolicyChange::Lockdown(b) => format!("lockdown={b}"),
            PolicyChange::BlockWords(_) => {
                format!("block_words={}", self.comments.block_words().join("|"))
            }
            PolicyChange::HoldWords(_) => {
                format!("hold_words={}", self.comments.hold_words().join("|"))
            }
        };
        let (setting, value) = target.split_once('=').expect("setting=value");
        self.log(g, now_ms, "comment_policy_set", setting, value, None);
        if !matches!(
            change,
            PolicyChange::BlockWords(_) | PolicyChange::HoldWords(_)
        ) {
            // Keyword lists are not announced: telling the public what is filtered helps evade it.
            let modes = self.comments.modes().clone();
            self.push(Audience::Everyone, ConsultEvent::CommentModes { modes });
        }
        Ok(())
    }

    /// Reconciles the session with what the organisers set ([`SessionSettings`], the whole
    /// desired state): applies every difference, announces what clients show
    /// (`comment_modes`; the floor's `mode_changed`, `muted_all`, `hands_changed`) and answers
    /// which fields changed. Logs nothing itself: the driver appends the organisers' own notes
    /// (who changed which setting, who paused) to this activity's hash chain, one per change.
    ///
    /// Pausing mutes everyone but the moderators (the open turn ends as revoked, the floor is
    /// chaired) and refuses comments, questions, votes and hands of everyone else with
    /// [`ConsultError::Paused`]; raised hands stay raised. Resuming restores the floor mode the
    /// settings say. A stage line-up that leaves someone out lowers their raised hand (an open
    /// turn stays with the moderator's decision).
    pub fn handle_session_settings(
        &mut self,
        g: &Grants,
        s: &SessionSettings,
        now_ms: u64,
    ) -> Result<Vec<Changed>, ConsultError> {
        authorize_in(g, &self.activity, Action::SetCommentPolicy)?;
        if s.default_turn_ms == 0 || s.slow_mode_ms == Some(0) {
            return Err(ConsultError::BadTimeLimit);
        }
        let mut changed: Vec<Changed> = Vec::new();
        let modes_before = self.comments.modes().clone();
        let floor_mode_before = self.floor.mode();
        if s.paused != modes_before.paused {
            if s.paused {
                self.floor.handle_mute_all(now_ms);
            }
            changed.push("paused");
        }
        // A pause's mute-all already makes the floor chaired: compare with the mode before it.
        let mode = if s.paused { FloorMode::Chaired } else { s.floor_mode };
        self.floor.handle_set_mode(mode, now_ms);
        if self.floor.mode() != floor_mode_before {
            changed.push("floor_mode");
        }
        if self.config.default_turn_ms != s.default_turn_ms {
            self.config.default_turn_ms = s.default_turn_ms;
            changed.push("default_turn_ms");
        }
        if self.floor.handle_set_overtime(s.overtime) {
            changed.push("overtime");
        }
        let auto = s.auto_advance.then_some(s.default_turn_ms);
        if self.floor.auto_advance() != auto {
            self.floor.handle_set_auto_advance(auto)?;
            changed.push("auto_advance");
        }
        if self.questions.review() != s.question_review {
            self.questions.set_review(s.question_review);
            changed.push("question_review");
        }
        let words = (self.comments.block_words().to_vec(), self.comments.hold_words().to_vec());
        for change in [
            PolicyChange::Review(s.review),
            PolicyChange::SlowMode(s.slow_mode_ms),
            PolicyChange::VerifiedOnly(s.verified_only),
            PolicyChange::Lockdown(s.lockdown),
            PolicyChange::BlockWords(s.block_words.clone()),
            PolicyChange::HoldWords(s.hold_words.clone()),
        ] {
            self.comments.handle_change(&change)?;
        }
        self.comments.set_session(s.paused, !s.comments_open, !s.questions_open);
        let m = self.comments.modes().clone();
        for (field, differs) in [
            ("review", m.review != modes_before.review),
            ("slow_mode_ms", m.slow_mode_ms != modes_before.slow_mode_ms),
            ("verified_only", m.verified_only != modes_before.verified_only),
            ("lockdown", m.lockdown != modes_before.lockdown),
            ("comments_open", m.comments_closed != modes_before.comments_closed),
            ("questions_open", m.questions_closed != modes_before.questions_closed),
            ("block_words", self.comments.block_words() != words.0.as_slice()),
            ("hold_words", self.comments.hold_words() != words.1.as_slice()),
        ] {
            if differs {
                changed.push(field);
            }
        }
        if m != modes_before {
            self.push(Audience::Everyone, ConsultEvent::CommentModes { modes: m });
        }
        if self.lineup != s.stage {
            self.lineup.clone_from(&s.stage);
            let off: Vec<ParticipantId> = self
                .floor
                .hands()
                .iter()
                .filter(|h| {
                    let role = self.people.get(*h).map_or(Role::Member, |a| a.role);
                    !self.in_lineup(h, role)
                })
                .cloned()
                .collect();
            for h in off {
                self.floor.handle_lower_hand(&h, now_ms);
            }
            changed.push("stage");
        }
        self.flush();
        Ok(changed)
    }

    /// Whether the stage line-up lets `who` (in `role`) raise a hand and hold the floor.
    fn in_lineup(&self, who: &ParticipantId, role: Role) -> bool {
        role.is_moderator() || self.lineup.as_ref().is_none_or(|list| list.contains(who))
    }

    /// The stage line-up (`None`: every member and guest).
    pub fn lineup(&self) -> Option<&[ParticipantId]> {
        self.lineup.as_deref()
    }

    /// The limit of a grant that names none, ms.
    pub fn default_turn_ms(&self) -> u64 {
        self.config.default_turn_ms
    }

    fn role_of(&self, who: &ParticipantId) -> Option<Role> {
        self.people
            .get(who)
            .map(|a| a.role)
            .or_else(|| self.viewers_seen.contains(who).then_some(Role::Viewer))
    }

    /// A moderator times `who` out until `until_ms` (no comments, questions, votes or hands).
    pub fn handle_timeout(
        &mut self,
        g: &Grants,
        who: &ParticipantId,
        until_ms: u64,
        reason: &str,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::Discipline)?;
        self.comments.handle_timeout(
            who,
            self.role_of(who),
            until_ms,
            reason,
            &g.subject,
            now_ms,
        )?;
        let reason = normalize_line(reason, shangliang_signaling::limits::MAX_REASON_CHARS)?;
        self.log(
            g,
            now_ms,
            "participant_timed_out",
            who.as_str(),
            &format!("until={until_ms}"),
            Some(&reason),
        );
        self.sanction_consequences(who, now_ms);
        Ok(())
    }

    /// A moderator bans `who` from taking part (they may still watch).
    pub fn handle_ban(
        &mut self,
        g: &Grants,
        who: &ParticipantId,
        reason: &str,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::Discipline)?;
        self.comments
            .handle_ban(who, self.role_of(who), reason, &g.subject, now_ms)?;
        let reason = normalize_line(reason, shangliang_signaling::limits::MAX_REASON_CHARS)?;
        self.log(
            g,
            now_ms,
            "participant_banned",
            who.as_str(),
            "",
            Some(&reason),
        );
        self.sanction_consequences(who, now_ms);
        Ok(())
    }

    /// A moderator lifts a ban or timeout.
    pub fn handle_unban(
        &mut self,
        g: &Grants,
        who: &ParticipantId,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::Discipline)?;
        if self.comments.handle_unban(who) {
            self.log(g, now_ms, "participant_unbanned", who.as_str(), "", None);
        }
        Ok(())
    }

    fn sanction_consequences(&mut self, who: &ParticipantId, now_ms: u64) {
        // A sanctioned participant loses their place in the queue; the floor stays with the
        // moderator's separate decision (revoke) so nobody is cut off by a side effect.
        self.floor.handle_lower_hand(who, now_ms);
        self.flush();
    }

    // ---- internals --------------------------------------------------------------------

    fn push(&mut self, audience: Audience, event: ConsultEvent) {
        self.events.push_back(Addressed { audience, event });
    }

    fn log(
        &mut self,
        g: &Grants,
        now_ms: u64,
        action: &str,
        target: &str,
        detail: &str,
        reason: Option<&str>,
    ) {
        let entry = self
            .audit
            .append(now_ms, &g.subject, action, target, detail, reason)
            .clone();
        self.push(Audience::Moderators, ConsultEvent::Audit { entry });
    }

    /// Turns what the parts queued into outbound events.
    fn flush(&mut self) {
        while let Some(ev) = self.floor.poll_event() {
            self.push(Audience::Everyone, ConsultEvent::Floor(ev));
        }
        if self.livestream {
            let now = (self.stage.clone(), self.on_air());
            // Nothing announced yet reads as an empty stage: a session that never had anyone on
            // it sends no `stage` event (the state snapshot carries the lists anyway).
            let before = self.announced_stage.as_ref().map_or((&[][..], &[][..]), |(s, a)| (&s[..], &a[..]));
            if before != (&now.0[..], &now.1[..]) {
                self.announced_stage = Some(now.clone());
                let (stage, on_air) = now;
                self.push(Audience::Everyone, ConsultEvent::Stage { stage, on_air });
            }
        }
        let mut changed: Vec<QuestionId> = Vec::new();
        while let Some(id) = self.questions.poll_changed() {
            if !changed.contains(&id) {
                changed.push(id);
            }
        }
        for id in changed {
            let Some(q) = self.questions.get(id) else {
                continue;
            };
            let (full, public, state, asker) =
                (q.view(true), q.view(false), q.state, q.asker.id.clone());
            self.push(
                Audience::Moderators,
                ConsultEvent::Question {
                    question: full.clone(),
                },
            );
            match state {
                QuestionState::Pending | QuestionState::Rejected => {
                    // Only the asker and the moderators know of it.
                    self.push(
                        Audience::Participant(asker),
                        ConsultEvent::Question { question: full },
                    );
                }
                _ => self.push(
                    Audience::NonModerators,
                    ConsultEvent::Question { question: public },
                ),
            }
        }
    }

    // ---- the record -------------------------------------------------------------------

    /// What a client that just joined (or reconnected) needs to draw the room: the floor,
    /// the questions it may see, the comment modes and who is present. Moderators get full
    /// question views (pending ones and anonymous askers included); others get public views
    /// plus their own pending or rejected questions.
    pub fn snapshot(&self, g: &Grants) -> Result<Snapshot, ConsultError> {
        authorize_in(g, &self.activity, Action::Join)?;
        let full = g.role.is_moderator();
        let questions = self
            .questions
            .all()
            .filter(|q| {
                full || q.state.is_public()
                    || q.state == QuestionState::Dismissed
                    || q.asker.id == g.subject
            })
            .map(|q| q.view(full || q.asker.id == g.subject))
            .collect();
        let present = self
            .people
            .iter()
            .filter(|(_, a)| a.connections > 0)
            .map(|(id, a)| PresentRow {
                id: id.clone(),
                name: a.name.clone(),
                role: a.role,
            })
            .collect();
        Ok(Snapshot {
            floor: FloorSnapshot {
                mode: self.floor.mode(),
                hands: self.floor.hands().to_vec(),
                holder: self.floor.holder().cloned(),
                granted_at_ms: self.floor.current().map(|t| t.granted_at_ms),
                deadline_ms: self.floor.current().map(Turn::deadline_ms),
            },
            questions,
            on_stage: self.questions.on_stage().map(|q| q.id),
            pinned: self.questions.pinned().iter().map(|q| q.id).collect(),
            comment_modes: self.comments.modes().clone(),
            present,
            viewers: self.viewer_stats.current,
            held: self
                .comments
                .held()
                .filter(|c| full || c.author.id == g.subject)
                .cloned()
                .collect(),
            stage: if self.livestream { self.stage.clone() } else { Vec::new() },
            on_air: self.on_air(),
            livestream: self.livestream,
        })
    }

    /// Everything the session record keeps. The server checks [`Action::ReadRecord`] before
    /// handing it out: it names the askers of anonymous questions.
    pub fn summary(&self, now_ms: u64) -> SessionSummary {
        let name_of = |p: &ParticipantId| {
            self.people
                .get(p)
                .map(|a| a.name.clone())
                .unwrap_or_else(|| p.to_string())
        };
        let participants = self
            .people
            .iter()
            .map(|(id, a)| AttendanceRow {
                id: id.clone(),
                name: a.name.clone(),
                role: a.role,
                org: a.org.clone(),
                spans: a.spans.clone(),
                present_ms: a
                    .spans
                    .iter()
                    .map(|s| {
                        s.left_at_ms
                            .unwrap_or(now_ms)
                            .saturating_sub(s.joined_at_ms)
                    })
                    .sum(),
            })
            .collect();
        let turns = self
            .floor
            .turns()
            .map(|t| TurnRow {
                holder: t.holder.clone(),
                holder_name: name_of(&t.holder),
                granted_by: t.granted_by.clone(),
                granted_at_ms: t.granted_at_ms,
                ended_at_ms: t.ended_at_ms,
                allotted_ms: t.allotted_ms,
                extended_ms: t.extended_ms,
                spoken_ms: t.spoken_ms(now_ms),
                overtime_ms: t.overtime_ms(now_ms),
                end: t.end,
            })
            .collect();
        let mut sanctions: Vec<SanctionRow> = self
            .comments
            .sanctions()
            .map(|(who, s)| SanctionRow {
                participant: who.clone(),
                until_ms: s.until_ms,
                by: s.by.clone(),
                reason: s.reason.clone(),
                at_ms: s.at_ms,
            })
            .collect();
        sanctions.sort_by(|a, b| (a.at_ms, &a.participant).cmp(&(b.at_ms, &b.participant)));
        SessionSummary {
            activity: self.activity.clone(),
            title: self.config.title.clone(),
            created_at_ms: self.created_at_ms,
            generated_at_ms: now_ms,
            participants,
            viewers: self.viewer_stats,
            turns,
            questions: self.questions.all().cloned().collect(),
            comments: self.comments.counts().clone(),
            comment_modes: self.comments.modes().clone(),
            held_comments: self.comments.held().count() as u64,
            hidden_comments: self.comments.hidden().cloned().collect(),
            sanctions,
            audit: self.audit.entries().to_vec(),
            audit_head: self.audit.head(),
        }
    }
}

/// Attendance of one member, guest or moderator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttendanceRow {
    /// Who.
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Organisation.
    pub org: Option<Org>,
    /// Stretches of presence.
    pub spans: Vec<Span>,
    /// Total time present.
    pub present_ms: u64,
}

/// One turn at the floor, for the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnRow {
    /// Who spoke.
    pub holder: ParticipantId,
    /// Their name.
    pub holder_name: String,
    /// The moderator who granted it (`None`: auto-advance).
    pub granted_by: Option<ParticipantId>,
    /// Start.
    pub granted_at_ms: u64,
    /// End (`None`: still speaking).
    pub ended_at_ms: Option<u64>,
    /// The limit first given.
    pub allotted_ms: u64,
    /// Extensions.
    pub extended_ms: u64,
    /// Time held.
    pub spoken_ms: u64,
    /// Time held beyond the first limit.
    pub overtime_ms: u64,
    /// How it ended.
    pub end: Option<TurnEnd>,
}

/// A ban or timeout, for the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SanctionRow {
    /// Who.
    pub participant: ParticipantId,
    /// Until (`None`: ban).
    pub until_ms: Option<u64>,
    /// By which moderator.
    pub by: ParticipantId,
    /// Why.
    pub reason: String,
    /// When.
    pub at_ms: u64,
}

/// The session record of one activity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The activity.
    pub activity: ActivityId,
    /// Its title.
    pub title: String,
    /// When the state machine was created.
    pub created_at_ms: u64,
    /// When this summary was made.
    pub generated_at_ms: u64,
    /// Members, guests and moderators.
    pub participants: Vec<AttendanceRow>,
    /// The public, counted.
    pub viewers: ViewerStats,
    /// Turns at the floor, in order.
    pub turns: Vec<TurnRow>,
    /// Every question with its fate (askers of anonymous questions included).
    pub questions: Vec<Question>,
    /// Comment counts.
    pub comments: CommentCounts,
    /// Comment modes at the end.
    pub comment_modes: CommentModes,
    /// Comments still awaiting review.
    pub held_comments: u64,
    /// Hidden comments with reasons and, where known, originals.
    pub hidden_comments: Vec<HiddenComment>,
    /// Bans and timeouts imposed (and not lifted).
    pub sanctions: Vec<SanctionRow>,
    /// The audit log.
    pub audit: Vec<AuditEntry>,
    /// The hash of its last entry.
    pub audit_head: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consult::FloorEvent;
    use crate::consult::audit::verify_head;
    use crate::consult::grants::tests::grants;
    use proptest::prelude::*;
    use shangliang_signaling::OrgLevel;

    const T0: u64 = 1_726_833_600_000; // 2024-09-20 20:00 Beijing time

    fn setup() -> (Consultation, Grants, Grants, Grants, Grants) {
        let mut c = Consultation::new(
            ActivityId::new("act-1").unwrap(),
            ConsultationConfig {
                title: "城乡融合发展网络协商".into(),
                ..Default::default()
            },
            T0,
        );
        let m = grants("chair", Role::Moderator);
        let mut a = grants("wang", Role::Member);
        a.name = "王委员".into();
        a.org = Some(Org {
            level: OrgLevel::City,
            name: "西安市政协".into(),
        });
        let b = grants("li", Role::Guest);
        let v = grants("viewer1", Role::Viewer);
        for g in [&m, &a, &b, &v] {
            c.handle_join(g, T0).unwrap();
        }
        drain(&mut c);
        (c, m, a, b, v)
    }

    fn drain(c: &mut Consultation) -> Vec<Addressed> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    #[test]
    fn the_stage_is_the_chairs_audited_and_survives_a_checkpoint() {
        let (mut c, m, a, b, v) = setup();
        // A room has no stage.
        assert_eq!(c.handle_set_stage(&m, &a.subject, true, T0), Err(ConsultError::NotEligible(a.subject.clone())));
        assert!(c.on_air().is_empty());
        c.set_livestream(true);
        drain(&mut c);
        assert_eq!(c.handle_set_stage(&a, &a.subject, true, T0), Err(ConsultError::Forbidden));
        assert_eq!(c.handle_set_stage(&m, &v.subject, true, T0), Err(ConsultError::NotEligible(v.subject.clone())));
        assert!(!c.is_on_air(&a.subject));
        c.handle_set_stage(&m, &a.subject, true, T0 + 1).unwrap();
        let events = drain(&mut c);
        assert!(events.iter().any(|e| e.audience == Audience::Everyone
            && e.event == ConsultEvent::Stage { stage: vec![a.subject.clone()], on_air: vec![a.subject.clone()] }));
        assert_eq!(c.audit().entries().last().unwrap().action, "stage_granted");
        // Granting twice changes nothing and logs nothing.
        let logged = c.audit().entries().len();
        c.handle_set_stage(&m, &a.subject, true, T0 + 2).unwrap();
        assert_eq!(c.audit().entries().len(), logged);
        assert!(drain(&mut c).is_empty());
        // The floor holder is on air too.
        c.handle_grant_floor(&m, GrantTarget::Participant(b.subject.clone()), None, T0 + 3).unwrap();
        assert!(c.is_on_air(&b.subject));
        let mut both = vec![a.subject.clone(), b.subject.clone()];
        both.sort();
        assert_eq!(c.on_air(), both);
        // A restart: the stage and the snapshot a reconnecting member gets are the same.
        let mut d = Consultation::restore(&c.checkpoint(), T0 + 4).unwrap();
        d.set_livestream(true);
        d.handle_join(&a, T0 + 5).unwrap();
        let snap = d.snapshot(&a).unwrap();
        assert_eq!(snap.stage, vec![a.subject.clone()]);
        assert!(snap.livestream && snap.on_air.contains(&a.subject));
        // 下台 of the floor holder ends the turn: off the public stream at once.
        c.handle_set_stage(&m, &b.subject, false, T0 + 6).unwrap();
        assert_eq!(c.floor().holder(), None);
        assert_eq!(c.on_air(), vec![a.subject.clone()]);
        c.handle_set_stage(&m, &a.subject, false, T0 + 7).unwrap();
        assert!(c.on_air().is_empty());
        assert_eq!(c.audit().entries().last().unwrap().action, "stage_revoked");
    }

    #[test]
    fn a_graceful_shutdown_closes_every_open_attendance_span_and_the_turn_at_the_floor() {
        let (mut c, m, a, _b, v) = setup();
        c.handle_join(&a, T0 + 5).unwrap(); // a second connection of one member
        c.handle_raise_hand(&a, T0 + 10).unwrap();
        c.handle_grant_floor(&m, GrantTarget::NextHand, Some(60_000), T0 + 20).unwrap();
        let end = T0 + 30_000;
        c.handle_shutdown(end);
        let events = drain(&mut c);
        let s = c.summary(end);
        assert_eq!(s.participants.len(), 3);
        for p in &s.participants {
            assert_eq!(p.spans.last().and_then(|sp| sp.left_at_ms), Some(end), "{p:?}");
        }
        assert_eq!(s.turns.last().map(|t| (t.end, t.ended_at_ms)), Some((Some(TurnEnd::Left), Some(end))));
        assert_eq!((s.viewers.current, s.viewers.distinct), (0, 1));
        assert!(events.iter().any(|e| matches!(&e.event, ConsultEvent::Presence { present: false, .. })));
        assert!(!c.is_present(&a.subject) && !c.may_speak(&a.subject));
        // A late leave of a connection that was open changes nothing.
        c.handle_leave(&a.subject, end + 1);
        c.handle_leave(&v.subject, end + 1);
        assert_eq!(c.summary(end + 2).participants, s.participants);
        assert_eq!(c.summary(end + 2).viewers.current, 0);
    }

    #[test]
    fn live_counts_count_identities_and_their_organisation_levels() {
        let (mut c, m, a, _b, v) = setup();
        let counts = c.audience();
        assert_eq!((counts.viewers, counts.participants), (1, 3));
        assert_eq!(counts.by_level, shangliang_signaling::consult::LevelCounts { city: 1, ..Default::default() });
        // A second connection of the same viewer counts once; a county viewer counts under county.
        c.handle_join(&v, T0).unwrap();
        let mut county = grants("viewer2", Role::Viewer);
        county.org = Some(Org { level: OrgLevel::County, name: "长安区政协".into() });
        c.handle_join(&county, T0).unwrap();
        let counts = c.audience();
        assert_eq!((counts.viewers, counts.by_level.county, counts.by_level.city), (2, 1, 1));
        // Leaving: the county viewer and the city member go, the chair's count is unchanged.
        c.handle_leave(&county.subject, T0 + 1);
        c.handle_leave(&a.subject, T0 + 1);
        let counts = c.audience();
        assert_eq!((counts.viewers, counts.participants), (1, 2));
        assert_eq!(counts.by_level, Default::default());
        assert!(c.is_present(&m.subject));
    }

    #[test]
    fn viewer_cannot_grant_the_floor() {
        let (mut c, _m, a, _b, v) = setup();
        let r = c.handle_grant_floor(&v, GrantTarget::Participant(a.subject.clone()), None, T0);
        assert_eq!(r, Err(ConsultError::Forbidden));
        assert_eq!(c.handle_raise_hand(&v, T0), Err(ConsultError::Forbidden));
        assert!(c.audit().entries().is_empty());
        assert!(drain(&mut c).is_empty());
    }

    #[test]
    fn grants_for_another_activity_are_refused() {
        let (mut c, mut m, ..) = setup();
        m.activity = ActivityId::new("other").unwrap();
        assert_eq!(c.handle_mute_all(&m, T0), Err(ConsultError::WrongActivity));
        let d = c.handle_post_comment(&m, &m.activity.clone(), "hi", T0);
        assert_eq!(d, CommentDecision::Refuse(ConsultError::WrongActivity));
    }

    #[test]
    fn member_without_floor_is_not_heard_in_chaired_mode() {
        let (mut c, m, a, b, v) = setup();
        assert!(c.may_speak(&m.subject));
        assert!(!c.may_speak(&a.subject));
        c.handle_grant_floor(
            &m,
            GrantTarget::Participant(a.subject.clone()),
            Some(60_000),
            T0,
        )
        .unwrap();
        assert!(c.may_speak(&a.subject));
        assert!(!c.may_speak(&b.subject));
        assert!(!c.may_speak(&v.subject));
        c.handle_set_floor_mode(&m, FloorMode::Open, T0).unwrap();
        assert!(c.may_speak(&b.subject));
        // Absent participants are never heard.
        c.handle_leave(&b.subject, T0 + 1);
        assert!(!c.may_speak(&b.subject));
    }

    #[test]
    fn floor_expires_and_next_hand_gets_it() {
        let (mut c, m, a, b, _) = setup();
        c.handle_set_auto_advance(&m, Some(120_000), T0).unwrap();
        c.handle_raise_hand(&a, T0 + 1).unwrap();
        c.handle_raise_hand(&b, T0 + 2).unwrap();
        assert_eq!(
            c.handle_grant_floor(&m, GrantTarget::NextHand, Some(60_000), T0 + 3),
            Ok(a.subject.clone())
        );
        assert_eq!(c.poll_timeout(), Some(T0 + 60_003));
        drain(&mut c);
        c.handle_tick(T0 + 60_003);
        assert_eq!(c.floor().holder(), Some(&b.subject));
        let evs: Vec<ConsultEvent> = drain(&mut c).into_iter().map(|o| o.event).collect();
        assert!(matches!(
            &evs[0],
            ConsultEvent::Floor(FloorEvent::FloorEnded {
                end: TurnEnd::Expired,
                ..
            })
        ));
        assert!(evs.iter().any(|e| matches!(e, ConsultEvent::Floor(FloorEvent::FloorGranted { holder, .. }) if *holder == b.subject)));
    }

    #[test]
    fn floor_goes_only_to_present_non_viewers() {
        let (mut c, m, _a, _b, v) = setup();
        let ghost = ParticipantId::new("ghost");
        assert_eq!(
            c.handle_grant_floor(&m, GrantTarget::Participant(ghost.clone()), None, T0),
            Err(ConsultError::NotEligible(ghost))
        );
        assert_eq!(
            c.handle_grant_floor(&m, GrantTarget::Participant(v.subject.clone()), None, T0),
            Err(ConsultError::NotEligible(v.subject.clone()))
        );
        assert_eq!(
            c.handle_grant_floor(&m, GrantTarget::NextHand, None, T0),
            Err(ConsultError::NoHands)
        );
    }

    #[test]
    fn holder_who_leaves_loses_the_floor_and_hands_follow_presence() {
        let (mut c, m, a, b, _) = setup();
        c.handle_raise_hand(&b, T0).unwrap();
        c.handle_grant_floor(&m, GrantTarget::Participant(a.subject.clone()), None, T0)
            .unwrap();
        c.handle_leave(&a.subject, T0 + 5_000);
        c.handle_leave(&b.subject, T0 + 5_000);
        assert_eq!(c.floor().holder(), None);
        assert!(c.floor().hands().is_empty());
        assert_eq!(c.floor().past_turns()[0].end, Some(TurnEnd::Left));
        assert_eq!(
            c.handle_raise_hand(&b, T0 + 6_000),
            Err(ConsultError::NotEligible(b.subject.clone()))
        );
    }

    #[test]
    fn two_connections_of_one_identity_attend_once() {
        let (mut c, _m, a, _b, v) = setup();
        c.handle_join(&a, T0 + 10).unwrap();
        c.handle_join(&v, T0 + 10).unwrap();
        c.handle_leave(&a.subject, T0 + 20);
        assert!(c.is_present(&a.subject));
        c.handle_leave(&a.subject, T0 + 30);
        assert!(!c.is_present(&a.subject));
        let s = c.summary(T0 + 40);
        let row = s.participants.iter().find(|p| p.id == a.subject).unwrap();
        assert_eq!(
            row.spans,
            vec![Span {
                joined_at_ms: T0,
                left_at_ms: Some(T0 + 30)
            }]
        );
        assert_eq!(row.present_ms, 30);
        assert_eq!(
            s.viewers,
            ViewerStats {
                distinct: 1,
                peak: 1,
                current: 1
            }
        );
        c.handle_leave(&v.subject, T0 + 50);
        c.handle_leave(&v.subject, T0 + 50);
        assert_eq!(c.summary(T0 + 60).viewers.current, 0);
    }

    #[test]
    fn anonymous_question_hides_asker_from_viewers_not_moderators() {
        let (mut c, m, _a, _b, v) = setup();
        c.handle_set_question_review(&m, false, T0).unwrap();
        drain(&mut c);
        let id = c
            .handle_submit_question(&v, "农村养老怎么保障？", true, T0)
            .unwrap();
        let out = drain(&mut c);
        let to_mods = out
            .iter()
            .find(|o| o.audience == Audience::Moderators)
            .unwrap();
        let to_public = out
            .iter()
            .find(|o| o.audience == Audience::NonModerators)
            .unwrap();
        let ConsultEvent::Question { question: full } = &to_mods.event else {
            panic!()
        };
        let ConsultEvent::Question { question: public } = &to_public.event else {
            panic!()
        };
        assert_eq!(full.asker.as_ref().unwrap().id, "viewer1");
        assert_eq!(public.asker, None);
        assert_eq!(public.id, id);
        assert!(
            !serde_json::to_string(&to_public)
                .unwrap()
                .contains("viewer1")
        );
    }

    #[test]
    fn pending_question_reaches_only_moderators_and_its_asker() {
        let (mut c, m, _a, _b, v) = setup();
        let id = c.handle_submit_question(&v, "q", false, T0).unwrap();
        let audiences: Vec<Audience> = drain(&mut c).into_iter().map(|o| o.audience).collect();
        assert_eq!(
            audiences,
            vec![
                Audience::Moderators,
                Audience::Participant(v.subject.clone())
            ]
        );
        assert_eq!(
            c.handle_vote_question(&v, None, id, true, T0),
            Err(ConsultError::NoSuchQuestion(id))
        );
        c.handle_moderate_question(&m, id, QuestionOp::Publish, T0 + 1)
            .unwrap();
        assert_eq!(c.handle_vote_question(&v, None, id, true, T0 + 2), Ok(1));
        assert_eq!(
            c.handle_vote_question(&v, None, id, true, T0 + 3),
            Err(ConsultError::AlreadyVoted)
        );
    }

    #[test]
    fn answered_question_defaults_to_the_floor_holder() {
        let (mut c, m, a, _b, v) = setup();
        let id = c.handle_submit_question(&v, "q", false, T0).unwrap();
        c.handle_moderate_question(&m, id, QuestionOp::Publish, T0)
            .unwrap();
        c.handle_moderate_question(&m, id, QuestionOp::Stage, T0)
            .unwrap();
        c.handle_grant_floor(&m, GrantTarget::Participant(a.subject.clone()), None, T0)
            .unwrap();
        c.handle_moderate_question(&m, id, QuestionOp::Answer { by: None }, T0 + 90_000)
            .unwrap();
        let q = c.questions().get(id).unwrap();
        assert_eq!(q.state, QuestionState::Answered);
        assert_eq!(q.answer.as_ref().unwrap().by.as_ref(), Some(&a.subject));
        let actions: Vec<&str> = c
            .audit()
            .entries()
            .iter()
            .map(|e| e.action.as_str())
            .collect();
        assert_eq!(
            actions,
            [
                "question_published",
                "question_staged",
                "floor_granted",
                "question_answered"
            ]
        );
    }

    #[test]
    fn a_checkpoint_continues_floor_questions_and_review_queue() {
        let (mut c, m, a, b, v) = setup();
        c.handle_set_comment_policy(&m, PolicyChange::Review(true), T0).unwrap();
        let CommentDecision::Hold { text, .. } = c.handle_post_comment(&v, &v.activity.clone(), "待审评论", T0) else {
            panic!("held")
        };
        c.handle_comment_committed(Seq(1), &v, text, true, T0);
        let q = c.handle_submit_question(&v, "问题一", false, T0).unwrap();
        c.handle_raise_hand(&a, T0).unwrap();
        c.handle_grant_floor(&m, GrantTarget::NextHand, Some(60_000), T0 + 1).unwrap();
        drain(&mut c);
        let before = c.snapshot(&m).unwrap();

        let t = T0 + 2;
        let mut d = Consultation::restore(&c.checkpoint(), t).unwrap();
        assert!(d.audit().entries().is_empty(), "the audit log is restored from the record");
        // The connections are announced again (by their nodes, or by reconnecting).
        for g in [&m, &a, &b, &v] {
            d.handle_join(g, t + 1).unwrap();
        }
        drain(&mut d);
        assert_eq!(d.snapshot(&m).unwrap(), before, "the same state once everyone is back");
        assert!(d.may_speak(&a.subject));
        assert!(d.questions.get(q).is_some());
        d.handle_approve_comment(&m, Seq(1), t + 2).unwrap();
        assert_eq!(d.handle_approve_comment(&m, Seq(1), t + 3), Err(ConsultError::NotHeld(Seq(1))));
        let spans = d.summary(t + 4).participants;
        let wang = spans.iter().find(|p| p.id == a.subject).unwrap();
        assert_eq!(wang.spans.len(), 1, "presence continues across the restore: {wang:?}");
    }

    #[test]
    fn the_checkpoint_does_not_grow_with_the_audience() {
        let (mut c, _m, _a, _b, v) = setup();
        let small = c.checkpoint().len();
        for i in 0..10_000 {
            let g = grants(&format!("viewer-{i}"), Role::Viewer);
            c.handle_join(&g, T0).unwrap();
            let text = format!("第{i}条评论");
            if let CommentDecision::Accept { text, .. } = c.handle_post_comment(&v, &v.activity.clone(), &text, T0) {
                c.handle_comment_committed(Seq(i + 1), &v, text, false, T0);
            }
        }
        let big = c.checkpoint().len();
        assert!(big < small + 1_000, "{small} bytes with 1 viewer, {big} with 10,001 and 10,000 comments");
        let d = Consultation::restore(&c.checkpoint(), T0 + 1).unwrap();
        assert_eq!(d.viewer_stats.distinct, 10_001, "the counts survive, the lists do not");
    }

    #[test]
    fn after_a_restore_whoever_is_not_announced_again_within_the_grace_is_gone() {
        let (mut c, m, a, _b, v) = setup();
        c.handle_raise_hand(&a, T0).unwrap();
        c.handle_grant_floor(&m, GrantTarget::NextHand, Some(600_000), T0 + 1).unwrap();
        drain(&mut c);
        let t = T0 + 10;
        let mut d = Consultation::restore(&c.checkpoint(), t).unwrap();
        assert_eq!(d.poll_timeout(), Some(t + REJOIN_GRACE_MS), "the grace is a deadline");
        d.handle_join(&m, t + 5).unwrap();
        d.handle_join(&v, t + 5).unwrap();
        // Within the grace the speaker keeps the floor (not heard while not connected).
        d.handle_tick(t + REJOIN_GRACE_MS - 1);
        assert_eq!(d.snapshot(&m).unwrap().floor.holder, Some(a.subject.clone()));
        assert!(!d.may_speak(&a.subject));
        d.handle_tick(t + REJOIN_GRACE_MS);
        let s = d.snapshot(&m).unwrap();
        assert_eq!(s.floor.holder, None, "the speaker did not come back");
        assert_eq!(s.present.iter().map(|p| p.id.clone()).collect::<Vec<_>>(), vec![m.subject.clone()]);
        assert_eq!(s.viewers, 1);
        let minutes = d.summary(t + REJOIN_GRACE_MS + 1);
        let wang = minutes.participants.iter().find(|p| p.id == a.subject).unwrap();
        assert_eq!(wang.spans.last().unwrap().left_at_ms, Some(t + REJOIN_GRACE_MS));
        assert_eq!(minutes.turns.len(), 1);
    }

    #[test]
    fn held_comment_is_not_public_until_approved() {
        let (mut c, m, _a, _b, v) = setup();
        c.handle_set_comment_policy(&m, PolicyChange::Review(true), T0)
            .unwrap();
        let d = c.handle_post_comment(&v, &v.activity.clone(), "希望多开几条公交", T0);
        let CommentDecision::Hold { text, .. } = d else {
            panic!("{d:?}")
        };
        c.handle_comment_committed(Seq(1), &v, text, true, T0);
        drain(&mut c);
        assert_eq!(
            c.handle_approve_comment(&v, Seq(1), T0),
            Err(ConsultError::Forbidden)
        );
        c.handle_approve_comment(&m, Seq(1), T0 + 1).unwrap();
        let out = drain(&mut c);
        assert!(out.iter().any(|o| o.audience == Audience::Everyone
            && o.event == ConsultEvent::CommentApproved { seq: Seq(1) }));
    }

    #[test]
    fn timed_out_viewer_can_post_after_timeout_but_not_during() {
        let (mut c, m, _a, _b, v) = setup();
        c.handle_timeout(&m, &v.subject, T0 + 60_000, "刷屏", T0)
            .unwrap();
        assert_eq!(
            c.handle_post_comment(&v, &v.activity.clone(), "x", T0 + 1),
            CommentDecision::Refuse(ConsultError::TimedOut {
                until_ms: T0 + 60_000
            })
        );
        assert_eq!(
            c.handle_submit_question(&v, "x", false, T0 + 1),
            Err(ConsultError::TimedOut {
                until_ms: T0 + 60_000
            })
        );
        assert!(matches!(
            c.handle_post_comment(&v, &v.activity.clone(), "x", T0 + 60_000),
            CommentDecision::Accept { .. }
        ));
        assert_eq!(
            c.handle_timeout(&m, &m.subject, T0 + 1, "x", T0),
            Err(ConsultError::CannotDisciplineModerator)
        );
    }

    #[test]
    fn hidden_comment_is_recorded_with_reason_and_original() {
        let (mut c, m, _a, _b, v) = setup();
        let CommentDecision::Accept { text, .. } = c.handle_post_comment(&v, &v.activity.clone(), "原话 | 带竖线", T0)
        else {
            panic!()
        };
        c.handle_comment_committed(Seq(1), &v, text, false, T0);
        c.handle_hide_comment(&m, Seq(1), "人身攻击", T0 + 5)
            .unwrap();
        assert_eq!(
            c.handle_hide_comment(&m, Seq(1), "x", T0 + 6),
            Err(ConsultError::AlreadyHidden(Seq(1)))
        );
        let s = c.summary(T0 + 10);
        assert_eq!(s.hidden_comments[0].text.as_deref(), Some("原话 | 带竖线"));
        assert_eq!(s.hidden_comments[0].reason, "人身攻击");
        assert!(s.to_markdown().contains("原话 \\| 带竖线"));
    }

    #[test]
    fn record_renders_minutes_csv_and_json_and_hides_anonymous_askers_when_handed_on() {
        let (mut c, m, a, b, v) = setup();
        c.handle_raise_hand(&a, T0).unwrap();
        c.handle_grant_floor(&m, GrantTarget::NextHand, Some(60_000), T0 + 1_000)
            .unwrap();
        c.handle_extend_floor(&m, 30_000, T0 + 50_000).unwrap();
        c.handle_yield_floor(&a, T0 + 81_000).unwrap();
        c.handle_grant_floor(
            &m,
            GrantTarget::Participant(b.subject.clone()),
            Some(60_000),
            T0 + 90_000,
        )
        .unwrap();
        c.handle_tick(T0 + 150_000);
        let q = c
            .handle_submit_question(&v, "城乡融合怎么推进？", true, T0 + 100_000)
            .unwrap();
        c.handle_moderate_question(&m, q, QuestionOp::Publish, T0 + 100_500)
            .unwrap();
        c.handle_moderate_question(
            &m,
            q,
            QuestionOp::Answer {
                by: Some(a.subject.clone()),
            },
            T0 + 160_000,
        )
        .unwrap();
        c.handle_leave(&a.subject, T0 + 200_000);
        let s = c.summary(T0 + 300_000);
        assert_eq!(s.turns.len(), 2);
        assert_eq!(
            (
                s.turns[0].spoken_ms,
                s.turns[0].overtime_ms,
                s.turns[0].extended_ms
            ),
            (80_000, 20_000, 30_000)
        );
        assert_eq!(s.turns[1].end, Some(TurnEnd::Expired));
        let md = s.to_markdown();
        for needle in [
            "# 城乡融合发展网络协商 — 会议纪要 (Minutes)",
            "## 二、发言记录 (Floor turns)",
            "| 1 | 王委员 | 20:00:01 | 20:01:21 | 1:20 | 1:00 | 0:30 | 0:20 | 交还 (yielded) |",
            "匿名 (anonymous)",
            "已回答 (answered)",
            "西安市政协（市级）",
            "校验通过 (chain verified)",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        assert!(!md.contains("VIEWER1") && !md.contains("viewer1"), "{md}");
        let csv = s.to_csv();
        assert!(csv.starts_with(
            "section,ref,participant,name,role,start_ms,end_ms,duration_ms,status,detail\n"
        ));
        assert!(csv.contains("\nturn,1,wang,王委员,,"));
        assert!(!csv.contains("viewer1"), "{csv}");
        let json = s.to_json();
        assert!(
            json.contains("\"viewer1\""),
            "the full record keeps the asker"
        );
        let back: SessionSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(verify_head(&back.audit, &back.audit_head), Ok(()));
    }

    #[test]
    fn snapshot_shows_each_role_what_it_may_see() {
        let (mut c, m, a, _b, v) = setup();
        let v2 = grants("viewer2", Role::Viewer);
        let mine = c.handle_submit_question(&v, "我的问题", true, T0).unwrap();
        let other = c
            .handle_submit_question(&v2, "别人的问题", false, T0)
            .unwrap();
        let anon = c
            .handle_submit_question(&v2, "匿名的问题", true, T0)
            .unwrap();
        c.handle_moderate_question(&m, anon, QuestionOp::Publish, T0)
            .unwrap();
        c.handle_raise_hand(&a, T0).unwrap();
        let sv = c.snapshot(&v).unwrap();
        let ids: Vec<QuestionId> = sv.questions.iter().map(|q| q.id).collect();
        assert_eq!(
            ids,
            vec![mine, anon],
            "own pending question and published ones only"
        );
        assert_eq!(
            sv.questions[0].asker.as_ref().unwrap().id,
            "viewer1",
            "one sees oneself"
        );
        assert_eq!(sv.questions[1].asker, None);
        assert_eq!(sv.floor.hands, vec![a.subject.clone()]);
        assert_eq!(sv.viewers, 1);
        let sm = c.snapshot(&m).unwrap();
        assert_eq!(sm.questions.len(), 3);
        assert!(sm.questions.iter().all(|q| q.asker.is_some()));
        let _ = other;
    }

    #[test]
    fn events_have_a_stable_json_shape() {
        let out = Addressed {
            audience: Audience::Everyone,
            event: ConsultEvent::Floor(FloorEvent::HandsChanged {
                hands: vec![ParticipantId::new("a")],
            }),
        };
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"audience":{"to":"everyone"},"event":{"t":"floor","k":"hands_changed","hands":["a"]}}"#
        );
        let back: Addressed = serde_json::from_str(&serde_json::to_string(&out).unwrap()).unwrap();
        assert_eq!(back, out);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Raise(u8),
        Lower(u8, u8),
        Grant(u8, Option<u8>),
        Extend,
        Revoke,
        Yield(u8),
        Mode(bool),
        Auto(bool),
        MuteAll,
        Leave(u8),
        Join(u8),
        Ask(u8, bool),
        Vote(u8, u8, bool),
        Moderate(u8, u8, u8),
        Post(u8),
        Hide(u8, u8),
        Approve(u8, u8),
        Policy(u8, u8),
        Timeout(u8, u8),
        Ban(u8, u8),
        Advance(u16),
    }

    /// Actors are drawn mostly from the moderators (0, 1) for moderator actions, so that
    /// most of them succeed and the state gets deep; a third of the time anyone tries.
    fn op() -> impl Strategy<Value = Op> {
        let i = || 0u8..6;
        let m = || prop_oneof![2 => 0u8..2, 1 => 0u8..6];
        prop_oneof![
            3 => (2u8..5).prop_map(Op::Raise),
            1 => (m(), i()).prop_map(|(a, b)| Op::Lower(a, b)),
            3 => (m(), proptest::option::of(i())).prop_map(|(a, b)| Op::Grant(a, b)),
            1 => Just(Op::Extend),
            1 => Just(Op::Revoke),
            2 => i().prop_map(Op::Yield),
            1 => any::<bool>().prop_map(Op::Mode),
            1 => any::<bool>().prop_map(Op::Auto),
            1 => Just(Op::MuteAll),
            1 => i().prop_map(Op::Leave),
            1 => i().prop_map(Op::Join),
            2 => (i(), any::<bool>()).prop_map(|(a, b)| Op::Ask(a, b)),
            2 => (i(), 1u8..5, any::<bool>()).prop_map(|(a, b, c)| Op::Vote(a, b, c)),
            3 => (m(), 1u8..5, 0u8..7).prop_map(|(a, b, c)| Op::Moderate(a, b, c)),
            4 => i().prop_map(Op::Post),
            2 => (m(), 1u8..8).prop_map(|(a, b)| Op::Hide(a, b)),
            2 => (m(), 1u8..8).prop_map(|(a, b)| Op::Approve(a, b)),
            2 => (m(), 0u8..6).prop_map(|(a, b)| Op::Policy(a, b)),
            1 => (m(), i()).prop_map(|(a, b)| Op::Timeout(a, b)),
            1 => (m(), i()).prop_map(|(a, b)| Op::Ban(a, b)),
            3 => (0u16..3000).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
        #[test]
        fn session_invariants_hold_and_the_audit_chain_verifies(
            ops in proptest::collection::vec(op(), 0..100),
            tamper in (0u8..6, any::<usize>(), any::<usize>()),
            question_review in any::<bool>(),
        ) {
            // Six identities: two moderators, two members, a guest and a viewer.
            let roles = [Role::Moderator, Role::Moderator, Role::Member, Role::Member, Role::Guest, Role::Viewer];
            let gs: Vec<Grants> = roles.iter().enumerate().map(|(i, r)| grants(&format!("p{i}"), *r)).collect();
            let mut c = Consultation::new(ActivityId::new("act-1").unwrap(), ConsultationConfig { question_review, ..Default::default() }, 0);
            for g in &gs { c.handle_join(g, 0).unwrap(); }
            let mut now = 0u64;
            let mut seq = 0u64;
            let mut audited_ok = 0usize;
            for o in ops {
                let before = c.audit().entries().len();
                let ok = match o {
                    Op::Raise(i) => c.handle_raise_hand(&gs[i as usize], now).is_ok(),
                    Op::Lower(i, t) => c.handle_lower_hand(&gs[i as usize], Some(&gs[t as usize].subject), now).is_ok(),
                    Op::Grant(i, t) => {
                        let target = t.map_or(GrantTarget::NextHand, |t| GrantTarget::Participant(gs[t as usize].subject.clone()));
                        c.handle_grant_floor(&gs[i as usize], target, Some(1_000), now).is_ok()
                    }
                    Op::Extend => c.handle_extend_floor(&gs[0], 500, now).is_ok(),
                    Op::Revoke => c.handle_revoke_floor(&gs[1], Some("时间到"), now).is_ok(),
                    Op::Yield(i) => c.handle_yield_floor(&gs[i as usize], now).is_ok(),
                    Op::Mode(open) => c.handle_set_floor_mode(&gs[0], if open { FloorMode::Open } else { FloorMode::Chaired }, now).is_ok(),
                    Op::Auto(on) => c.handle_set_auto_advance(&gs[0], on.then_some(700), now).is_ok(),
                    Op::MuteAll => c.handle_mute_all(&gs[1], now).is_ok(),
                    Op::Leave(i) => { c.handle_leave(&gs[i as usize].subject, now); false }
                    Op::Join(i) => { c.handle_join(&gs[i as usize], now).unwrap(); false }
                    Op::Ask(i, anon) => { let _ = c.handle_submit_question(&gs[i as usize], "问题", anon, now); false }
                    Op::Vote(i, q, up) => { let _ = c.handle_vote_question(&gs[i as usize], None, QuestionId(q as u64), up, now); false }
                    Op::Moderate(i, q, k) => {
                        let op = match k {
                            0 => QuestionOp::Publish,
                            1 => QuestionOp::Reject { reason: Some("重复".into()) },
                            2 => QuestionOp::Stage,
                            3 => QuestionOp::Answer { by: None },
                            4 => QuestionOp::Dismiss { reason: None },
                            5 => QuestionOp::Pin,
                            _ => QuestionOp::Unpin,
                        };
                        c.handle_moderate_question(&gs[i as usize], QuestionId(q as u64), op, now).is_ok()
                    }
                    Op::Post(i) => {
                        let g = &gs[i as usize];
                        match c.handle_post_comment(g, &gs[0].activity, "评论", now) {
                            CommentDecision::Accept { text, .. } => { seq += 1; c.handle_comment_committed(Seq(seq), g, text, false, now); }
                            CommentDecision::Hold { text, .. } => { seq += 1; c.handle_comment_committed(Seq(seq), g, text, true, now); }
                            CommentDecision::Refuse(_) => {}
                        }
                        false
                    }
                    Op::Hide(i, s) => c.handle_hide_comment(&gs[i as usize], Seq(s as u64), "不当", now).is_ok(),
                    Op::Approve(i, s) => c.handle_approve_comment(&gs[i as usize], Seq(s as u64), now).is_ok(),
                    Op::Policy(i, k) => {
                        let ch = match k {
                            0 => PolicyChange::Review(true),
                            1 => PolicyChange::Review(false),
                            2 => PolicyChange::SlowMode(Some(1_000)),
                            3 => PolicyChange::Lockdown(true),
                            4 => PolicyChange::VerifiedOnly(true),
                            _ => PolicyChange::HoldWords(vec!["评".into()]),
                        };
                        c.handle_set_comment_policy(&gs[i as usize], ch, now).is_ok()
                    }
                    Op::Timeout(i, t) => c.handle_timeout(&gs[i as usize], &gs[t as usize].subject.clone(), now + 2_000, "刷屏", now).is_ok(),
                    Op::Ban(i, t) => c.handle_ban(&gs[i as usize], &gs[t as usize].subject.clone(), "辱骂", now).is_ok(),
                    Op::Advance(ms) => { now += ms as u64; c.handle_tick(now); false }
                };
                let after = c.audit().entries().len();
                // Only moderators' successful actions are logged, each exactly once (a
                // successful action that changed nothing, like lowering a lowered hand, may log nothing).
                prop_assert!(after - before <= 1);
                if after > before {
                    prop_assert!(ok);
                    prop_assert!(c.audit().entries()[before].actor == gs[0].subject || c.audit().entries()[before].actor == gs[1].subject);
                    audited_ok += 1;
                }
                // Every outbound event serializes.
                for out in std::iter::from_fn(|| c.poll_event()) {
                    prop_assert!(serde_json::to_vec(&out).is_ok());
                    if let ConsultEvent::Question { question } = &out.event
                        && out.audience == Audience::NonModerators
                        && question.anonymous
                    {
                        prop_assert!(question.asker.is_none());
                    }
                }
                // At most one holder, who is present; only the holder (and moderators) heard when chaired.
                let speakers: Vec<&Grants> = gs.iter().filter(|g| c.may_speak(&g.subject) && !g.role.is_moderator()).collect();
                if c.floor().mode() == FloorMode::Chaired {
                    prop_assert!(speakers.len() <= 1);
                    if let Some(s) = speakers.first() { prop_assert_eq!(c.floor().holder(), Some(&s.subject)); }
                }
                if let Some(h) = c.floor().holder() { prop_assert!(c.is_present(h)); }
                prop_assert!(c.floor().turns().filter(|t| t.end.is_none()).count() <= 1);
            }
            let s = c.summary(now);
            prop_assert_eq!(s.audit.len(), audited_ok);
            prop_assert_eq!(verify_head(&s.audit, &s.audit_head), Ok(()));
            // Any single edit, removal or swap of the log this session produced is caught.
            if !s.audit.is_empty() {
                let n = s.audit.len();
                let mut e = s.audit.clone();
                let (i, j) = (tamper.1 % n, tamper.2 % n);
                match tamper.0 {
                    0 => e[i].at_ms ^= 1,
                    1 => e[i].target.push('x'),
                    2 => e[i].reason = Some(format!("{:?}x", e[i].reason)),
                    3 => e[i].actor = ParticipantId::new("someone-else"),
                    4 => { e.remove(i); }
                    _ => e.swap(i, j),
                }
                if tamper.0 < 5 || i != j {
                    prop_assert!(verify_head(&e, &s.audit_head).is_err());
                }
            }
            for q in &s.questions { prop_assert_eq!(q.view(false).votes as usize, q.voters.len()); }
            let _ = (s.to_markdown(), s.to_csv(), s.to_json());
        }
    }
}
