//! Comment policy: what happens to a posted live comment, and the moderation of comments. The
//! one place a post is decided: the topic, the text, the rate and the moderators' rules.
//!
//! Two steps, because the sequence number comes from the record, which numbers the items of a
//! topic as it commits them:
//!
//! ```text
//! let decision = policy.handle_post(&grants, topic, raw_text, now_ms);  // Accept / Hold / Refuse
//! // server: the record stores it and gives it its Seq (held ones go to moderators only)
//! policy.handle_committed(seq, author, text, held, now_ms);      // now approve/hide know it
//! policy.handle_approve(seq, ..) / handle_hide(seq, ..)          // moderator actions
//! ```
//!
//! Order of checks: the topic must be the activity the token is for; then, for a
//! non-moderator: ban → timeout → lockdown → verified-only → text normalisation → the
//! per-identity rate limit ([`super::rate`]) → blocked words → slow mode → review (review mode
//! 先审后发 or a hold word). Moderators bypass every rule but the topic and text normalisation;
//! members bypass review and hold words (the body trusts its own members) but not blocked
//! words, the rate limit or slow mode. A text refused as invalid does not use up the rate; one
//! refused for a blocked word or by slow mode does (it was an attempt to post).
//!
//! Keyword matching is a case-insensitive substring match on the NFKC form of the normalised
//! text (so full-width `ＡＢＣ` matches `abc`).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use shangliang_signaling::{
    ActivityId, Author, Role, Seq, limits::MAX_REASON_CHARS, limits::MAX_TEXT_CHARS,
};
use unicode_normalization::UnicodeNormalization;

use super::grants::{ConsultError, Grants};
use super::ids::ParticipantId;
use super::rate::{Rate, RateLimiter};
use super::text::normalize_line;
pub use shangliang_signaling::consult::{CommentModes, PolicyChange, HeldComment};

/// Why a comment is held for review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// Review mode is on: every comment of the public waits for a moderator.
    Review,
    /// The text contains a word on the hold list.
    Keyword(String),
}

/// What to do with a posted comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommentDecision {
    /// Store it and publish it; `text` is the normalised text to store.
    Accept {
        /// Whether it goes into the public view at once. Always `true` from this policy today:
        /// a comment that must not be public yet is a [`CommentDecision::Hold`]. The field is
        /// kept so the server's code path does not change when a policy adds another case.
        public: bool,
        /// The normalised text.
        text: String,
    },
    /// Store it, show it to moderators only until one approves it.
    Hold {
        /// Why.
        reason: HoldReason,
        /// The normalised text.
        text: String,
    },
    /// Do not store it.
    Refuse(ConsultError),
}

/// A comment a moderator hid. The original stays in the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HiddenComment {
    /// Its sequence number.
    pub seq: Seq,
    /// Who wrote it, if still known here (see [`CommentPolicy`] on retention).
    pub author: Option<Author>,
    /// The original text, if still known here.
    pub text: Option<String>,
    /// Why it was hidden.
    pub reason: String,
    /// The moderator who hid it.
    pub by: ParticipantId,
    /// When.
    pub at_ms: u64,
}

/// A ban or timeout in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sanction {
    /// Until when (ms); `None` for a ban.
    pub until_ms: Option<u64>,
    /// The moderator.
    pub by: ParticipantId,
    /// Why.
    pub reason: String,
    /// When it was imposed.
    pub at_ms: u64,
}

/// Counts for the record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentCounts {
    /// Comments accepted and published at once.
    pub accepted: u64,
    /// Comments held for review.
    pub held: u64,
    /// Held comments a moderator approved.
    pub approved: u64,
    /// Comments hidden by a moderator (rejected held comments included).
    pub hidden: u64,
    /// Held comments a moderator rejected.
    #[serde(default)]
    pub rejected: u64,
    /// Refusals by [`ConsultError::code`].
    pub refused: BTreeMap<String, u64>,
}

/// The comment policy of one activity.
///
/// Retention: held comments are kept until approved or hidden; the author and text of other
/// committed comments are kept for the latest [`CommentPolicy::RECENT`] only (the durable
/// record holds them all), so that a hidden comment's original can be put in the summary.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CommentPolicy {
    modes: CommentModes,
    block_words: Vec<String>,
    hold_words: Vec<String>,
    last_post_ms: HashMap<ParticipantId, u64>,
    sanctions: HashMap<ParticipantId, Sanction>,
    held: BTreeMap<Seq, HeldComment>,
    /// Not in a checkpoint (up to [`Self::RECENT`] texts): a comment hidden after a restore
    /// is recorded without its original text (the item itself is in the record).
    #[serde(skip)]
    recent: BTreeMap<Seq, (Author, String)>,
    hidden: BTreeMap<Seq, HiddenComment>,
    counts: CommentCounts,
    /// Not in a checkpoint: it grows with the posting audience and is set by the server (see
    /// [`CommentPolicy::set_rate`]); after a restore everyone starts with a full allowance.
    #[serde(skip)]
    rate: RateLimiter,
}

fn match_key(s: &str) -> String {
    s.nfkc().collect::<String>().to_lowercase()
}

impl CommentPolicy {
    /// How many recent committed comments are kept in memory.
    pub const RECENT: usize = 10_000;

    /// A policy with everything off.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current modes.
    pub fn modes(&self) -> &CommentModes {
        &self.modes
    }

    /// Blocked words (normalised).
    pub fn block_words(&self) -> &[String] {
        &self.block_words
    }

    /// Hold words (normalised).
    pub fn hold_words(&self) -> &[String] {
        &self.hold_words
    }

    /// Comments awaiting review, oldest first.
    pub fn held(&self) -> impl Iterator<Item = &HeldComment> {
        self.held.values()
    }

    /// The held comment `seq`, if it is held.
    pub fn held_comment(&self, seq: Seq) -> Option<&HeldComment> {
        self.held.get(&seq)
    }

    /// Hidden comments in sequence order.
    pub fn hidden(&self) -> impl Iterator<Item = &HiddenComment> {
        self.hidden.values()
    }

    /// Whether the comment `seq` is hidden.
    pub fn is_hidden(&self, seq: Seq) -> bool {
        self.hidden.contains_key(&seq)
    }

    /// Counts for the record.
    pub fn counts(&self) -> &CommentCounts {
        &self.counts
    }

    /// Bans and timeouts (timeouts may have run out).
    pub fn sanctions(&self) -> impl Iterator<Item = (&ParticipantId, &Sanction)> {
        self.sanctions.iter()
    }

    /// Whether `who` may take part now (comments, questions, votes): not banned, not timed out.
    pub fn check_standing(
        &self,
        who: &ParticipantId,
        role: Role,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        if role.is_moderator() {
            return Ok(());
        }
        match self.sanctions.get(who) {
            Some(Sanction { until_ms: None, .. }) => Err(ConsultError::Banned),
            Some(Sanction {
                until_ms: Some(t), ..
            }) if now_ms < *t => Err(ConsultError::TimedOut { until_ms: *t }),
            _ => Ok(()),
        }
    }

    /// Sets the per-identity rate limit (`None`: none). Moderators are never limited.
    pub fn set_rate(&mut self, rate: Option<Rate>) {
        self.rate.set_rate(rate);
    }

    /// The rate limit in force.
    pub fn rate(&self) -> Option<Rate> {
        self.rate.rate()
    }

    /// Decides what happens to a comment posted to `topic`. Refusals are counted here;
    /// accepted and held comments are counted when committed.
    pub fn handle_post(
        &mut self,
        g: &Grants,
        topic: &ActivityId,
        raw_text: &str,
        now_ms: u64,
    ) -> CommentDecision {
        match self.decide(g, topic, raw_text, now_ms) {
            Ok(d) => {
                if !g.role.is_moderator() {
                    self.last_post_ms.insert(g.subject.clone(), now_ms);
                }
                d
            }
            Err(e) => {
                *self.counts.refused.entry(e.code().to_owned()).or_default() += 1;
                CommentDecision::Refuse(e)
            }
        }
    }

    fn decide(
        &mut self,
        g: &Grants,
        topic: &ActivityId,
        raw_text: &str,
        now_ms: u64,
    ) -> Result<CommentDecision, ConsultError> {
        if *topic != g.activity {
            return Err(ConsultError::WrongActivity);
        }
        let role = g.role;
        if role.is_moderator() {
            let text = normalize_line(raw_text, MAX_TEXT_CHARS)?;
            return Ok(CommentDecision::Accept { public: true, text });
        }
        if self.modes.paused {
            return Err(ConsultError::Paused);
        }
        if self.modes.comments_closed {
            return Err(ConsultError::InteractionClosed("comments"));
        }
        self.check_standing(&g.subject, role, now_ms)?;
        if self.modes.lockdown && role == Role::Viewer {
            return Err(ConsultError::Lockdown);
        }
        if self.modes.verified_only && !g.verified {
            return Err(ConsultError::VerifiedOnly);
        }
        let text = normalize_line(raw_text, MAX_TEXT_CHARS)?;
        self.rate
            .handle_post(&g.subject, now_ms)
            .map_err(|retry_after_ms| ConsultError::RateLimited { retry_after_ms })?;
        let key = match_key(&text);
        if self.block_words.iter().any(|w| key.contains(w.as_str())) {
            return Err(ConsultError::Blocked);
        }
        if let (Some(interval), Some(last)) =
            (self.modes.slow_mode_ms, self.last_post_ms.get(&g.subject))
        {
            let next = last.saturating_add(interval);
            if now_ms < next {
                return Err(ConsultError::SlowMode {
                    retry_after_ms: next - now_ms,
                });
            }
        }
        if role != Role::Member {
            if let Some(w) = self.hold_words.iter().find(|w| key.contains(w.as_str())) {
                return Ok(CommentDecision::Hold {
                    reason: HoldReason::Keyword(w.clone()),
                    text,
                });
            }
            if self.modes.review {
                return Ok(CommentDecision::Hold {
                    reason: HoldReason::Review,
                    text,
                });
            }
        }
        Ok(CommentDecision::Accept { public: true, text })
    }

    /// The server stored the comment under `seq` (after an `Accept` or `Hold`).
    pub fn handle_committed(
        &mut self,
        seq: Seq,
        author: Author,
        text: String,
        held: bool,
        now_ms: u64,
    ) {
        if held {
            self.counts.held += 1;
            self.held.insert(
                seq,
                HeldComment {
                    seq,
                    author,
                    text,
                    at_ms: now_ms,
                },
            );
        } else {
            self.counts.accepted += 1;
            self.recent.insert(seq, (author, text));
            while self.recent.len() > Self::RECENT {
                self.recent.pop_first();
            }
        }
    }

    /// A moderator approves a held comment; it becomes public.
    pub fn handle_approve(&mut self, seq: Seq) -> Result<HeldComment, ConsultError> {
        let c = self.held.remove(&seq).ok_or(ConsultError::NotHeld(seq))?;
        self.counts.approved += 1;
        self.recent.insert(seq, (c.author.clone(), c.text.clone()));
        while self.recent.len() > Self::RECENT {
            self.recent.pop_first();
        }
        Ok(c)
    }

    /// A moderator hides a comment (public or held). `max_seq` is the topic's last sequence
    /// number: a comment older than what is kept here can still be hidden, its original being
    /// in the durable record.
    pub fn handle_hide(
        &mut self,
        seq: Seq,
        reason: &str,
        by: &ParticipantId,
        max_seq: Option<Seq>,
        now_ms: u64,
    ) -> Result<&HiddenComment, ConsultError> {
        let reason = normalize_line(reason, MAX_REASON_CHARS)?;
        if self.hidden.contains_key(&seq) {
            return Err(ConsultError::AlreadyHidden(seq));
        }
        let original = if let Some(h) = self.held.remove(&seq) {
            Some((h.author, h.text))
        } else {
            self.recent.get(&seq).cloned()
        };
        let known = original.is_some() || max_seq.is_some_and(|m| seq.0 >= 1 && seq <= m);
        if !known {
            return Err(ConsultError::NoSuchComment(seq));
        }
        let (author, text) = original.unzip();
        self.counts.hidden += 1;
        let h = HiddenComment {
            seq,
            author,
            text,
            reason,
            by: by.clone(),
            at_ms: now_ms,
        };
        Ok(self.hidden.entry(seq).or_insert(h))
    }

    /// A moderator rejects a held comment: it is hidden (with the reason, its original kept
    /// for the record) without ever having been public. `NotHeld` unless it is held.
    pub fn handle_reject(
        &mut self,
        seq: Seq,
        reason: &str,
        by: &ParticipantId,
        now_ms: u64,
    ) -> Result<&HiddenComment, ConsultError> {
        if !self.held.contains_key(&seq) {
            return Err(ConsultError::NotHeld(seq));
        }
        // Check the reason before anything changes.
        normalize_line(reason, MAX_REASON_CHARS)?;
        self.counts.rejected += 1;
        self.handle_hide(seq, reason, by, None, now_ms)
    }

    /// Applies a moderator's change.
    pub fn handle_change(&mut self, change: &PolicyChange) -> Result<(), ConsultError> {
        match change {
            PolicyChange::Review(on) => self.modes.review = *on,
            PolicyChange::SlowMode(ms) => {
                if *ms == Some(0) {
                    return Err(ConsultError::BadTimeLimit);
                }
                self.modes.slow_mode_ms = *ms;
            }
            PolicyChange::VerifiedOnly(on) => self.modes.verified_only = *on,
            PolicyChange::Lockdown(on) => self.modes.lockdown = *on,
            PolicyChange::BlockWords(ws) => self.block_words = Self::words(ws)?,
            PolicyChange::HoldWords(ws) => self.hold_words = Self::words(ws)?,
        }
        Ok(())
    }

    /// The organisers' switches (pause, comments and questions open), which moderators'
    /// policy changes do not touch; returns whether anything changed.
    pub fn set_session(&mut self, paused: bool, comments_closed: bool, questions_closed: bool) -> bool {
        let before = (self.modes.paused, self.modes.comments_closed, self.modes.questions_closed);
        self.modes.paused = paused;
        self.modes.comments_closed = comments_closed;
        self.modes.questions_closed = questions_closed;
        before != (paused, comments_closed, questions_closed)
    }

    fn words(ws: &[String]) -> Result<Vec<String>, ConsultError> {
        let mut out = Vec::with_capacity(ws.len());
        for w in ws {
            let k = match_key(&normalize_line(w, MAX_REASON_CHARS)?);
            if !out.contains(&k) {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// Times `who` out until `until_ms`. Moderators cannot be disciplined.
    pub fn handle_timeout(
        &mut self,
        who: &ParticipantId,
        role: Option<Role>,
        until_ms: u64,
        reason: &str,
        by: &ParticipantId,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        self.sanction(who, role, Some(until_ms), reason, by, now_ms)
    }

    /// Bans `who` from the activity until unbanned.
    pub fn handle_ban(
        &mut self,
        who: &ParticipantId,
        role: Option<Role>,
        reason: &str,
        by: &ParticipantId,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        self.sanction(who, role, None, reason, by, now_ms)
    }

    /// Lifts a ban or timeout; returns whether there was one.
    pub fn handle_unban(&mut self, who: &ParticipantId) -> bool {
        self.sanctions.remove(who).is_some()
    }

    fn sanction(
        &mut self,
        who: &ParticipantId,
        role: Option<Role>,
        until_ms: Option<u64>,
        reason: &str,
        by: &ParticipantId,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        if role.is_some_and(Role::is_moderator) {
            return Err(ConsultError::CannotDisciplineModerator);
        }
        if until_ms.is_some_and(|t| t <= now_ms) {
            return Err(ConsultError::BadTimeLimit);
        }
        let reason = normalize_line(reason, MAX_REASON_CHARS)?;
        self.sanctions.insert(
            who.clone(),
            Sanction {
                until_ms,
                by: by.clone(),
                reason,
                at_ms: now_ms,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consult::grants::tests::grants;

    fn topic() -> ActivityId {
        ActivityId::new("act-1").unwrap()
    }

    fn text_of(d: &CommentDecision) -> &str {
        match d {
            CommentDecision::Accept { text, .. } | CommentDecision::Hold { text, .. } => text,
            CommentDecision::Refuse(e) => panic!("refused: {e}"),
        }
    }

    #[test]
    fn comment_is_accepted_and_normalised() {
        let mut p = CommentPolicy::new();
        let d = p.handle_post(&grants("v", Role::Viewer), &topic(), "  好  ", 0);
        assert_eq!(
            d,
            CommentDecision::Accept {
                public: true,
                text: "好".into()
            }
        );
        let d = p.handle_post(&grants("v2", Role::Viewer), &topic(), " \n ", 0);
        assert_eq!(
            d.clone(),
            CommentDecision::Refuse(ConsultError::Text(crate::consult::text::TextError::Empty))
        );
        assert_eq!(p.counts().refused.get("text_empty"), Some(&1));
    }

    #[test]
    fn held_comment_is_not_public_until_approved() {
        let mut p = CommentPolicy::new();
        p.handle_change(&PolicyChange::Review(true)).unwrap();
        let v = grants("v", Role::Viewer);
        let d = p.handle_post(&v, &topic(), "建议增加公交线路", 0);
        assert_eq!(
            d,
            CommentDecision::Hold {
                reason: HoldReason::Review,
                text: "建议增加公交线路".into()
            }
        );
        p.handle_committed(Seq(1), v.author(), text_of(&d).into(), true, 0);
        assert_eq!(p.held().count(), 1);
        assert_eq!(p.handle_approve(Seq(1)).unwrap().text, "建议增加公交线路");
        assert_eq!(p.held().count(), 0);
        assert_eq!(p.handle_approve(Seq(1)), Err(ConsultError::NotHeld(Seq(1))));
        assert_eq!((p.counts().held, p.counts().approved), (1, 1));
    }

    #[test]
    fn a_rejected_comment_leaves_the_queue_hidden_with_its_reason_and_cannot_be_approved() {
        let mut p = CommentPolicy::new();
        p.handle_change(&PolicyChange::Review(true)).unwrap();
        let v = grants("v", Role::Viewer);
        let m = ParticipantId::new("m");
        p.handle_committed(Seq(1), v.author(), "待审".into(), true, 0);
        p.handle_committed(Seq(2), v.author(), "公开".into(), false, 0);
        assert_eq!(p.handle_reject(Seq(2), "x", &m, 1), Err(ConsultError::NotHeld(Seq(2))), "only held comments are rejected");
        assert!(p.handle_reject(Seq(1), " ", &m, 1).is_err(), "an empty reason is refused");
        assert_eq!(p.held().count(), 1, "a refused rejection changes nothing");
        let h = p.handle_reject(Seq(1), "与议题无关", &m, 2).unwrap();
        assert_eq!((h.text.as_deref(), h.reason.as_str()), (Some("待审"), "与议题无关"));
        assert_eq!(p.held().count(), 0);
        assert!(p.is_hidden(Seq(1)));
        assert_eq!(p.handle_approve(Seq(1)), Err(ConsultError::NotHeld(Seq(1))));
        assert_eq!((p.counts().rejected, p.counts().hidden, p.counts().approved), (1, 1, 0));
    }

    #[test]
    fn members_and_moderators_bypass_review() {
        let mut p = CommentPolicy::new();
        p.handle_change(&PolicyChange::Review(true)).unwrap();
        p.handle_change(&PolicyChange::HoldWords(vec!["拆迁".into()]))
            .unwrap();
        for role in [Role::Member, Role::Moderator] {
            let d = p.handle_post(&grants("x", role), &topic(), "关于拆迁补偿", 0);
            assert!(
                matches!(d, CommentDecision::Accept { public: true, .. }),
                "{role:?}: {d:?}"
            );
        }
        let d = p.handle_post(&grants("g", Role::Guest), &topic(), "关于拆迁补偿", 0);
        assert_eq!(
            d,
            CommentDecision::Hold {
                reason: HoldReason::Keyword("拆迁".into()),
                text: "关于拆迁补偿".into()
            }
        );
    }

    #[test]
    fn blocked_word_is_refused_case_insensitively_and_full_width() {
        let mut p = CommentPolicy::new();
        p.handle_change(&PolicyChange::BlockWords(vec!["SpAm".into()]))
            .unwrap();
        let v = grants("v", Role::Viewer);
        assert_eq!(
            p.handle_post(&v, &topic(), "buy SPAM now", 0),
            CommentDecision::Refuse(ConsultError::Blocked)
        );
        assert_eq!(
            p.handle_post(&v, &topic(), "ｓｐａｍ", 0),
            CommentDecision::Refuse(ConsultError::Blocked)
        );
        assert!(matches!(
            p.handle_post(&v, &topic(), "spa m", 0),
            CommentDecision::Accept { .. }
        ));
    }

    #[test]
    fn slow_mode_spaces_one_identitys_comments() {
        let mut p = CommentPolicy::new();
        p.handle_change(&PolicyChange::SlowMode(Some(10_000)))
            .unwrap();
        let v = grants("v", Role::Viewer);
        assert!(matches!(
            p.handle_post(&v, &topic(), "a", 1_000),
            CommentDecision::Accept { .. }
        ));
        assert_eq!(
            p.handle_post(&v, &topic(), "b", 4_000),
            CommentDecision::Refuse(ConsultError::SlowMode {
                retry_after_ms: 7_000
            })
        );
        assert!(matches!(
            p.handle_post(&grants("w", Role::Viewer), &topic(), "c", 4_000),
            CommentDecision::Accept { .. }
        ));
        assert!(matches!(
            p.handle_post(&v, &topic(), "d", 11_000),
            CommentDecision::Accept { .. }
        ));
    }

    #[test]
    fn lockdown_leaves_only_members_guests_and_moderators() {
        let mut p = CommentPolicy::new();
        p.handle_change(&PolicyChange::Lockdown(true)).unwrap();
        assert_eq!(
            p.handle_post(&grants("v", Role::Viewer), &topic(), "a", 0),
            CommentDecision::Refuse(ConsultError::Lockdown)
        );
        for role in [Role::Member, Role::Guest, Role::Moderator] {
            assert!(matches!(
                p.handle_post(&grants("x", role), &topic(), "a", 0),
                CommentDecision::Accept { .. }
            ));
        }
    }

    #[test]
    fn verified_only_refuses_unverified() {
        let mut p = CommentPolicy::new();
        p.handle_change(&PolicyChange::VerifiedOnly(true)).unwrap();
        let mut v = grants("v", Role::Viewer);
        assert_eq!(
            p.handle_post(&v, &topic(), "a", 0),
            CommentDecision::Refuse(ConsultError::VerifiedOnly)
        );
        v.verified = true;
        assert!(matches!(
            p.handle_post(&v, &topic(), "a", 0),
            CommentDecision::Accept { .. }
        ));
    }

    #[test]
    fn timed_out_viewer_can_post_after_timeout() {
        let mut p = CommentPolicy::new();
        let v = grants("v", Role::Viewer);
        p.handle_timeout(
            &v.subject,
            Some(Role::Viewer),
            60_000,
            "刷屏",
            &ParticipantId::new("m"),
            0,
        )
        .unwrap();
        assert_eq!(
            p.handle_post(&v, &topic(), "a", 59_999),
            CommentDecision::Refuse(ConsultError::TimedOut { until_ms: 60_000 })
        );
        assert!(matches!(
            p.handle_post(&v, &topic(), "a", 60_000),
            CommentDecision::Accept { .. }
        ));
    }

    #[test]
    fn banned_viewer_cannot_post_until_unbanned_and_moderators_cannot_be_banned() {
        let mut p = CommentPolicy::new();
        let v = grants("v", Role::Viewer);
        let m = ParticipantId::new("m");
        p.handle_ban(&v.subject, Some(Role::Viewer), "辱骂", &m, 0)
            .unwrap();
        assert_eq!(
            p.handle_post(&v, &topic(), "a", u64::MAX),
            CommentDecision::Refuse(ConsultError::Banned)
        );
        assert!(p.handle_unban(&v.subject));
        assert!(matches!(
            p.handle_post(&v, &topic(), "a", 1),
            CommentDecision::Accept { .. }
        ));
        assert_eq!(
            p.handle_ban(&m, Some(Role::Moderator), "x", &m, 0),
            Err(ConsultError::CannotDisciplineModerator)
        );
    }

    #[test]
    fn hidden_comment_keeps_its_original_and_reason() {
        let mut p = CommentPolicy::new();
        let v = grants("v", Role::Viewer);
        p.handle_committed(Seq(7), v.author(), "原话".into(), false, 0);
        let m = ParticipantId::new("m");
        let h = p
            .handle_hide(Seq(7), "人身攻击", &m, Some(Seq(7)), 5)
            .unwrap()
            .clone();
        assert_eq!(
            (h.text.as_deref(), h.reason.as_str(), h.by.as_str()),
            (Some("原话"), "人身攻击", "m")
        );
        assert_eq!(
            p.handle_hide(Seq(7), "again", &m, Some(Seq(7)), 6),
            Err(ConsultError::AlreadyHidden(Seq(7)))
        );
        assert_eq!(
            p.handle_hide(Seq(8), "x", &m, Some(Seq(7)), 6),
            Err(ConsultError::NoSuchComment(Seq(8)))
        );
        // Older than what is kept in memory, but within the topic: hidden without the original.
        let h = p.handle_hide(Seq(3), "x", &m, Some(Seq(7)), 6).unwrap();
        assert_eq!(h.text, None);
        assert!(p.is_hidden(Seq(3)));
    }

    #[test]
    fn a_post_to_another_topic_is_refused_for_every_role() {
        let mut p = CommentPolicy::new();
        let other = ActivityId::new("other").unwrap();
        for role in [Role::Moderator, Role::Member, Role::Viewer] {
            assert_eq!(
                p.handle_post(&grants("x", role), &other, "好", 0),
                CommentDecision::Refuse(ConsultError::WrongActivity)
            );
        }
    }

    #[test]
    fn the_rate_limit_is_per_identity_and_spares_moderators() {
        let mut p = CommentPolicy::new();
        p.set_rate(Some(Rate::per_minute(3)));
        let v = grants("v", Role::Viewer);
        for i in 0..3 {
            assert!(matches!(p.handle_post(&v, &topic(), &format!("{i}"), 0), CommentDecision::Accept { .. }));
        }
        assert_eq!(
            p.handle_post(&v, &topic(), "again", 1_000),
            CommentDecision::Refuse(ConsultError::RateLimited { retry_after_ms: 19_000 })
        );
        assert_eq!(ConsultError::RateLimited { retry_after_ms: 1 }.wire_code(), shangliang_signaling::ErrorCode::RateLimited);
        assert!(matches!(p.handle_post(&v, &topic(), "later", 20_000), CommentDecision::Accept { .. }));
        assert!(matches!(p.handle_post(&grants("w", Role::Viewer), &topic(), "另一个人", 1_000), CommentDecision::Accept { .. }));
        let m = grants("m", Role::Moderator);
        for i in 0..10 {
            assert!(matches!(p.handle_post(&m, &topic(), &format!("{i}"), 0), CommentDecision::Accept { .. }));
        }
        assert_eq!(p.counts().refused.get("rate_limited"), Some(&1));
    }

    #[test]
    fn an_invalid_text_does_not_use_up_the_rate_but_a_blocked_one_does() {
        let mut p = CommentPolicy::new();
        p.set_rate(Some(Rate::per_minute(1)));
        p.handle_change(&PolicyChange::BlockWords(vec!["spam".into()])).unwrap();
        let v = grants("v", Role::Viewer);
        assert!(matches!(p.handle_post(&v, &topic(), "  ", 0), CommentDecision::Refuse(ConsultError::Text(_))));
        assert_eq!(p.handle_post(&v, &topic(), "spam", 0), CommentDecision::Refuse(ConsultError::Blocked));
        assert!(matches!(p.handle_post(&v, &topic(), "好", 0), CommentDecision::Refuse(ConsultError::RateLimited { .. })));
    }
}
