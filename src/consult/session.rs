//! One [`Consultation`] per activity: the single object the server drives.
//!
//! It owns the floor, the questions, the comment policy, the audit log and attendance. Every
//! input carries the caller's [`Grants`] and `now_ms`; it is authorised ([`authorize_in`]),
//! applied, appended to the audit log when a moderator did it, and its consequences are queued
//! as [`Outbound`] events for the server to deliver.
//!
//! ```text
//! // the activity's driver task owns `c: Consultation`
//! loop {
//!     select! {
//!         input = rx.recv() => match input {            // from websocket sessions
//!             Join(g)             => c.handle_join(&g, now_ms())?,
//!             Post(g, text)       => match c.handle_post_comment(&g, &text, now_ms()) { .. }
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
//! Comments take two steps because the fan-out core assigns the sequence number:
//! [`Consultation::handle_post_comment`] decides, the server stores and publishes, then
//! [`Consultation::handle_comment_committed`] tells the policy the seq.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use shangliang_signaling::{ActivityId, Org, Role, Seq};

use super::audit::{AuditEntry, AuditLog};
use super::comments::{CommentCounts, CommentDecision, CommentModes, CommentPolicy, HeldComment, HiddenComment, PolicyChange};
use super::floor::{Floor, FloorEvent, FloorMode, GrantTarget, TurnEnd};
use super::grants::{Action, ConsultError, Grants, authorize_in};
use super::ids::{ParticipantId, QuestionId};
use super::questions::{Question, QuestionState, QuestionView, Questions};
use super::text::normalize_line;

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

/// An event the server delivers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ConsultEvent {
    /// A floor event (`k` says which).
    Floor(FloorEvent),
    /// A question is new or changed; the view fits the audience.
    Question {
        /// The question as this audience sees it.
        question: QuestionView,
    },
    /// A held comment was approved: put it into the public view.
    CommentApproved {
        /// Its sequence number.
        seq: Seq,
    },
    /// A comment was hidden: take it out of every view (`ItemBody::Hide` in the topic).
    CommentHidden {
        /// Its sequence number.
        seq: Seq,
    },
    /// The comment modes changed (clients show "slow mode 10 s", "review on" ...).
    CommentModes {
        /// The modes now.
        modes: CommentModes,
    },
    /// A member, guest or moderator came or went (viewers are only counted).
    Presence {
        /// Who.
        participant: ParticipantId,
        /// Display name.
        name: String,
        /// Role.
        role: Role,
        /// Whether present now.
        present: bool,
    },
    /// A moderator action was logged (for other moderators' consoles).
    Audit {
        /// The entry.
        entry: AuditEntry,
    },
}

/// An event and who gets it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound {
    /// Who.
    pub audience: Audience,
    /// What.
    pub event: ConsultEvent,
}

/// A moderator's decision on a question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum QuestionOp {
    /// pending → published.
    Publish,
    /// pending → rejected.
    Reject {
        /// Why (kept in the record).
        reason: Option<String>,
    },
    /// published → on stage (the previous one returns to published).
    Stage,
    /// → answered; `by` defaults to the floor holder.
    Answer {
        /// Who answered.
        by: Option<ParticipantId>,
    },
    /// → dismissed.
    Dismiss {
        /// Why.
        reason: Option<String>,
    },
    /// Pin.
    Pin,
    /// Unpin.
    Unpin,
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

#[derive(Clone, Debug)]
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
#[derive(Debug, Clone)]
pub struct Consultation {
    activity: ActivityId,
    config: ConsultationConfig,
    created_at_ms: u64,
    floor: Floor,
    questions: Questions,
    comments: CommentPolicy,
    audit: AuditLog,
    people: BTreeMap<ParticipantId, Attendee>,
    viewer_conns: HashMap<ParticipantId, u32>,
    viewers_seen: HashSet<ParticipantId>,
    viewer_stats: ViewerStats,
    last_seq: Option<Seq>,
    events: VecDeque<Outbound>,
}

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
            viewer_stats: ViewerStats::default(),
            last_seq: None,
            events: VecDeque::new(),
        }
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

    /// The audit log (read only).
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The next event to deliver.
    pub fn poll_event(&mut self) -> Option<Outbound> {
        self.events.pop_front()
    }

    /// When [`Consultation::handle_tick`] must run at the latest.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.floor.poll_timeout()
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
                self.viewer_stats.current += 1;
                self.viewer_stats.peak = self.viewer_stats.peak.max(self.viewer_stats.current);
            }
            if self.viewers_seen.insert(g.subject.clone()) {
                self.viewer_stats.distinct += 1;
            }
            return Ok(());
        }
        let a = self.people.entry(g.subject.clone()).or_insert_with(|| Attendee {
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
            a.spans.push(Span { joined_at_ms: now_ms, left_at_ms: None });
            self.push(Audience::Everyone, ConsultEvent::Presence {
                participant: g.subject.clone(),
                name: g.name.clone(),
                role: g.role,
                present: true,
            });
        }
        Ok(())
    }

    /// A connection of `who` closed. When the last one closes, their hand is lowered and their
    /// turn at the floor ends.
    pub fn handle_leave(&mut self, who: &ParticipantId, now_ms: u64) {
        if let Some(n) = self.viewer_conns.get_mut(who) {
            *n -= 1;
            if *n == 0 {
                self.viewer_conns.remove(who);
                self.viewer_stats.current -= 1;
            }
            return;
        }
        let Some(a) = self.people.get_mut(who) else { return };
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
        self.push(Audience::Everyone, ConsultEvent::Presence { participant: who.clone(), name, role, present: false });
        self.floor.handle_left(who, now_ms);
        self.flush();
    }

    // ---- the floor --------------------------------------------------------------------

    /// `g` raises their hand (members and guests who are present and in good standing).
    pub fn handle_raise_hand(&mut self, g: &Grants, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::RaiseHand)?;
        if !self.is_present(&g.subject) {
            return Err(ConsultError::NotEligible(g.subject.clone()));
        }
        self.comments.check_standing(&g.subject, g.role, now_ms)?;
        self.floor.handle_raise_hand(&g.subject, now_ms);
        self.flush();
        Ok(())
    }

    /// Lowers a hand: one's own (`target` `None` or oneself), or, for a moderator, anyone's.
    pub fn handle_lower_hand(&mut self, g: &Grants, target: Option<&ParticipantId>, now_ms: u64) -> Result<(), ConsultError> {
        match target {
            Some(t) if *t != g.subject => {
                authorize_in(g, &self.activity, Action::LowerHandOf)?;
                if self.floor.handle_lower_hand(t, now_ms) {
                    self.log(g, now_ms, "hand_lowered", t.as_str(), None);
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
        if let GrantTarget::Participant(p) = &target {
            let eligible = self.people.get(p).is_some_and(|a| a.connections > 0 && a.role != Role::Viewer);
            if !eligible {
                return Err(ConsultError::NotEligible(p.clone()));
            }
        }
        let limit = limit_ms.unwrap_or(self.config.default_turn_ms);
        let holder = self.floor.handle_grant(&target, limit, Some(&g.subject), now_ms)?;
        self.log(g, now_ms, "floor_granted", &format!("{holder} {limit}ms"), None);
        self.flush();
        Ok(holder)
    }

    /// A moderator gives the speaker `extra_ms` more.
    pub fn handle_extend_floor(&mut self, g: &Grants, extra_ms: u64, now_ms: u64) -> Result<u64, ConsultError> {
        authorize_in(g, &self.activity, Action::ExtendFloor)?;
        let deadline = self.floor.handle_extend(extra_ms, now_ms)?;
        let holder = self.floor.holder().cloned().expect("extended an open turn");
        self.log(g, now_ms, "floor_extended", &format!("{holder} +{extra_ms}ms"), None);
        self.flush();
        Ok(deadline)
    }

    /// A moderator takes the floor back.
    pub fn handle_revoke_floor(&mut self, g: &Grants, reason: Option<&str>, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::RevokeFloor)?;
        let reason = reason.map(|r| normalize_line(r, shangliang_signaling::limits::MAX_REASON_CHARS)).transpose()?;
        let holder = self.floor.handle_revoke(now_ms)?;
        self.log(g, now_ms, "floor_revoked", holder.as_str(), reason.as_deref());
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
    pub fn handle_set_floor_mode(&mut self, g: &Grants, mode: FloorMode, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::SetFloorMode)?;
        if self.floor.handle_set_mode(mode, now_ms) {
            let m = match mode {
                FloorMode::Chaired => "chaired",
                FloorMode::Open => "open",
            };
            self.log(g, now_ms, "floor_mode_set", m, None);
        }
        self.flush();
        Ok(())
    }

    /// A moderator turns auto-advance on (each turn `limit_ms`) or off.
    pub fn handle_set_auto_advance(&mut self, g: &Grants, limit_ms: Option<u64>, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::SetFloorMode)?;
        self.floor.handle_set_auto_advance(limit_ms)?;
        let target = limit_ms.map_or_else(|| "off".to_owned(), |l| format!("{l}ms"));
        self.log(g, now_ms, "floor_auto_advance_set", &target, None);
        Ok(())
    }

    /// A moderator mutes everyone but the moderators.
    pub fn handle_mute_all(&mut self, g: &Grants, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::MuteAll)?;
        self.floor.handle_mute_all(now_ms);
        self.log(g, now_ms, "muted_all", "", None);
        self.flush();
        Ok(())
    }

    /// Time passes: ends an expired turn (and auto-advances).
    pub fn handle_tick(&mut self, now_ms: u64) {
        self.floor.handle_tick(now_ms);
        self.flush();
    }

    // ---- questions --------------------------------------------------------------------

    /// `g` submits a question (moderators' questions skip review).
    pub fn handle_submit_question(&mut self, g: &Grants, text: &str, anonymous: bool, now_ms: u64) -> Result<QuestionId, ConsultError> {
        authorize_in(g, &self.activity, Action::SubmitQuestion)?;
        self.comments.check_standing(&g.subject, g.role, now_ms)?;
        let id = self.questions.handle_submit(g.author(), text, anonymous, g.role.is_moderator(), now_ms)?;
        self.flush();
        Ok(id)
    }

    /// `g` upvotes (`up`) or withdraws their vote.
    pub fn handle_vote_question(&mut self, g: &Grants, id: QuestionId, up: bool, now_ms: u64) -> Result<usize, ConsultError> {
        authorize_in(g, &self.activity, Action::VoteQuestion)?;
        self.comments.check_standing(&g.subject, g.role, now_ms)?;
        let n = if up {
            self.questions.handle_vote(&g.subject, id)?
        } else {
            self.questions.handle_unvote(&g.subject, id)?
        };
        self.flush();
        Ok(n)
    }

    /// A moderator moves a question.
    pub fn handle_moderate_question(&mut self, g: &Grants, id: QuestionId, op: QuestionOp, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::ModerateQuestion)?;
        let by = &g.subject;
        let (action, reason) = match &op {
            QuestionOp::Publish => {
                self.questions.handle_publish(id, by, now_ms)?;
                ("question_published", None)
            }
            QuestionOp::Reject { reason } => {
                self.questions.handle_reject(id, by, reason.as_deref(), now_ms)?;
                ("question_rejected", self.questions.get(id).and_then(|q| q.reason.clone()))
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
                self.questions.handle_dismiss(id, by, reason.as_deref(), now_ms)?;
                ("question_dismissed", self.questions.get(id).and_then(|q| q.reason.clone()))
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
        self.log(g, now_ms, action, &id.to_string(), reason.as_deref());
        self.flush();
        Ok(())
    }

    /// A moderator turns question review on or off.
    pub fn handle_set_question_review(&mut self, g: &Grants, review: bool, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::ModerateQuestion)?;
        self.questions.set_review(review);
        self.log(g, now_ms, "question_review_set", if review { "on" } else { "off" }, None);
        Ok(())
    }

    // ---- comments ---------------------------------------------------------------------

    /// Decides on a posted comment. On `Accept`/`Hold` the server stores it, gets its seq and
    /// calls [`Consultation::handle_comment_committed`].
    pub fn handle_post_comment(&mut self, g: &Grants, raw_text: &str, now_ms: u64) -> CommentDecision {
        if let Err(e) = authorize_in(g, &self.activity, Action::PostComment) {
            return CommentDecision::Refuse(e);
        }
        self.comments.handle_post(g, raw_text, now_ms)
    }

    /// The comment decided on was stored under `seq` (`held` after a `Hold`).
    pub fn handle_comment_committed(&mut self, seq: Seq, g: &Grants, text: String, held: bool, now_ms: u64) {
        self.last_seq = self.last_seq.max(Some(seq));
        self.comments.handle_committed(seq, g.author(), text, held, now_ms);
    }

    /// The topic's last sequence number, for comments not posted through this object (so a
    /// moderator can still hide them).
    pub fn handle_topic_seq(&mut self, seq: Seq) {
        self.last_seq = self.last_seq.max(Some(seq));
    }

    /// A moderator approves a held comment.
    pub fn handle_approve_comment(&mut self, g: &Grants, seq: Seq, now_ms: u64) -> Result<HeldComment, ConsultError> {
        authorize_in(g, &self.activity, Action::ModerateComment)?;
        let c = self.comments.handle_approve(seq)?;
        self.log(g, now_ms, "comment_approved", &format!("#{seq}"), None);
        self.push(Audience::Everyone, ConsultEvent::CommentApproved { seq });
        Ok(c)
    }

    /// A moderator hides a comment, with a reason.
    pub fn handle_hide_comment(&mut self, g: &Grants, seq: Seq, reason: &str, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::ModerateComment)?;
        let reason = self.comments.handle_hide(seq, reason, &g.subject, self.last_seq, now_ms)?.reason.clone();
        self.log(g, now_ms, "comment_hidden", &format!("#{seq}"), Some(&reason));
        self.push(Audience::Everyone, ConsultEvent::CommentHidden { seq });
        Ok(())
    }

    /// A moderator changes a comment mode or keyword list.
    pub fn handle_set_comment_policy(&mut self, g: &Grants, change: PolicyChange, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::SetCommentPolicy)?;
        self.comments.handle_change(&change)?;
        let target = match &change {
            PolicyChange::Review(b) => format!("review={b}"),
            PolicyChange::SlowMode(ms) => format!("slow_mode={}", ms.map_or("off".into(), |m| format!("{m}ms"))),
            PolicyChange::VerifiedOnly(b) => format!("verified_only={b}"),
            PolicyChange::Lockdown(b) => format!("lockdown={b}"),
            PolicyChange::BlockWords(_) => format!("block_words={}", self.comments.block_words().join("|")),
            PolicyChange::HoldWords(_) => format!("hold_words={}", self.comments.hold_words().join("|")),
        };
        self.log(g, now_ms, "comment_policy_set", &target, None);
        if !matches!(change, PolicyChange::BlockWords(_) | PolicyChange::HoldWords(_)) {
            // Keyword lists are not announced: telling the public what is filtered helps evade it.
            let modes = self.comments.modes().clone();
            self.push(Audience::Everyone, ConsultEvent::CommentModes { modes });
        }
        Ok(())
    }

    fn role_of(&self, who: &ParticipantId) -> Option<Role> {
        self.people.get(who).map(|a| a.role).or_else(|| self.viewers_seen.contains(who).then_some(Role::Viewer))
    }

    /// A moderator times `who` out until `until_ms` (no comments, questions, votes or hands).
    pub fn handle_timeout(&mut self, g: &Grants, who: &ParticipantId, until_ms: u64, reason: &str, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::Discipline)?;
        self.comments.handle_timeout(who, self.role_of(who), until_ms, reason, &g.subject, now_ms)?;
        let reason = normalize_line(reason, shangliang_signaling::limits::MAX_REASON_CHARS)?;
        self.log(g, now_ms, "participant_timed_out", &format!("{who} until {until_ms}"), Some(&reason));
        self.sanction_consequences(who, now_ms);
        Ok(())
    }

    /// A moderator bans `who` from taking part (they may still watch).
    pub fn handle_ban(&mut self, g: &Grants, who: &ParticipantId, reason: &str, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::Discipline)?;
        self.comments.handle_ban(who, self.role_of(who), reason, &g.subject, now_ms)?;
        let reason = normalize_line(reason, shangliang_signaling::limits::MAX_REASON_CHARS)?;
        self.log(g, now_ms, "participant_banned", who.as_str(), Some(&reason));
        self.sanction_consequences(who, now_ms);
        Ok(())
    }

    /// A moderator lifts a ban or timeout.
    pub fn handle_unban(&mut self, g: &Grants, who: &ParticipantId, now_ms: u64) -> Result<(), ConsultError> {
        authorize_in(g, &self.activity, Action::Discipline)?;
        if self.comments.handle_unban(who) {
            self.log(g, now_ms, "participant_unbanned", who.as_str(), None);
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
        self.events.push_back(Outbound { audience, event });
    }

    fn log(&mut self, g: &Grants, now_ms: u64, action: &str, target: &str, reason: Option<&str>) {
        let entry = self.audit.append(now_ms, &g.subject, action, target, reason).clone();
        self.push(Audience::Moderators, ConsultEvent::Audit { entry });
    }

    /// Turns what the parts queued into outbound events.
    fn flush(&mut self) {
        while let Some(ev) = self.floor.poll_event() {
            self.push(Audience::Everyone, ConsultEvent::Floor(ev));
        }
        let mut changed: Vec<QuestionId> = Vec::new();
        while let Some(id) = self.questions.poll_changed() {
            if !changed.contains(&id) {
                changed.push(id);
            }
        }
        for id in changed {
            let Some(q) = self.questions.get(id) else { continue };
            let (full, public, state, asker) = (q.view(true), q.view(false), q.state, q.asker.id.clone());
            self.push(Audience::Moderators, ConsultEvent::Question { question: full.clone() });
            match state {
                QuestionState::Pending | QuestionState::Rejected => {
                    // Only the asker and the moderators know of it.
                    self.push(Audience::Participant(ParticipantId(asker)), ConsultEvent::Question { question: full });
                }
                _ => self.push(Audience::NonModerators, ConsultEvent::Question { question: public }),
            }
        }
    }

    // ---- the record -------------------------------------------------------------------

    /// Everything the session record keeps. The server checks [`Action::ReadRecord`] before
    /// handing it out: it names the askers of anonymous questions.
    pub fn summary(&self, now_ms: u64) -> SessionSummary {
        let name_of = |p: &ParticipantId| self.people.get(p).map(|a| a.name.clone()).unwrap_or_else(|| p.to_string());
        let participants = self
            .people
            .iter()
            .map(|(id, a)| AttendanceRow {
                id: id.clone(),
                name: a.name.clone(),
                role: a.role,
                org: a.org.clone(),
                spans: a.spans.clone(),
                present_ms: a.spans.iter().map(|s| s.left_at_ms.unwrap_or(now_ms).saturating_sub(s.joined_at_ms)).sum(),
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
