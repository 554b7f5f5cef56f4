//! The question queue of a livestreamed deliberation.
//!
//! Life of a question:
//!
//! ```text
//! pending ──publish──▶ published ──stage──▶ on_stage ──answer──▶ answered
//!    │                  │    ▲  │              │
//!    └─reject─▶ rejected│    └──┼──(another     └──dismiss──▶ dismissed
//!                       │       │   is staged)
//!                       │       └─answer──▶ answered (answered without the stage)
//!                       └─dismiss──▶ dismissed
//! ```
//!
//! **One on stage at a time**: staging another question returns the previous one to
//! *published* (with its votes). It is not marked answered, because staging the next question
//! says nothing about whether the previous one got an answer; the moderator marks that
//! explicitly. Without review (`review = false`) a question is published on submission.
//!
//! Sans-I/O: inputs are `handle_*` with `now_ms`; the ids of changed questions are drained with
//! [`Questions::poll_changed`]; the session turns them into views for each audience.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Deserializer, Serialize};
use shangliang_signaling::{Author, limits::MAX_REASON_CHARS, limits::MAX_TEXT_CHARS};

use super::grants::ConsultError;
use super::ids::{ParticipantId, QuestionId};
use super::text::normalize_line;
use super::votes::{Ballot, TierCounts, VoteGate, VoteRules};
pub use shangliang_signaling::consult::{QuestionState, QuestionView};

/// Who answered a question, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Who gave the answer (usually the floor holder), if known.
    pub by: Option<ParticipantId>,
    /// The moderator who marked it answered.
    pub marked_by: ParticipantId,
    /// When.
    pub at_ms: u64,
}

/// A question with everything the record keeps about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Its id.
    pub id: QuestionId,
    /// Who asked it (always known to moderators and the record).
    pub asker: Author,
    /// Whether other viewers see the asker.
    pub anonymous: bool,
    /// The normalised text.
    pub text: String,
    /// When it was submitted.
    pub submitted_at_ms: u64,
    /// Where it stands.
    pub state: QuestionState,
    /// Identities that upvoted it, each with how its vote counts (tier, and for anonymous
    /// votes the address block; `super::votes`); the vote count is its size.
    #[serde(deserialize_with = "ballots_compat")]
    pub voters: BTreeMap<ParticipantId, Ballot>,
    /// Whether a moderator pinned it.
    pub pinned: bool,
    /// The moderator who last moved it (publish, reject, stage, dismiss), and when.
    pub decided_by: Option<ParticipantId>,
    /// When it was last moved.
    pub decided_at_ms: Option<u64>,
    /// The reason given for a rejection or dismissal.
    pub reason: Option<String>,
    /// When it was (last) put on stage.
    pub staged_at_ms: Option<u64>,
    /// Its answer, once answered.
    pub answer: Option<Answer>,
}

impl Question {
    /// The number of distinct identities that upvoted it.
    pub fn votes(&self) -> usize {
        self.voters.len()
    }

    /// Its votes by tier (the minutes show them).
    pub fn votes_by_tier(&self) -> TierCounts {
        TierCounts::of(self.voters.values())
    }

    /// What a reader sees: moderators (`full`) see the asker of an anonymous question; others
    /// do not.
    pub fn view(&self, full: bool) -> QuestionView {
        QuestionView {
            id: self.id,
            text: self.text.clone(),
            asker: (full || !self.anonymous).then(|| self.asker.clone()),
            anonymous: self.anonymous,
            state: self.state,
            votes: self.votes() as u64,
            pinned: self.pinned,
            submitted_at_ms: self.submitted_at_ms,
            answered_at_ms: self.answer.as_ref().map(|a| a.at_ms),
        }
    }
}

/// `voters` as stored: a map of ballots, or — in records written before votes had tiers — a
/// list of identities (their tier is then unrecorded).
fn ballots_compat<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<ParticipantId, Ballot>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Ballots(BTreeMap<ParticipantId, Ballot>),
        Bare(Vec<ParticipantId>),
    }
    Ok(match Stored::deserialize(d)? {
        Stored::Ballots(b) => b,
        Stored::Bare(ids) => ids.into_iter().map(|id| (id, Ballot { tier: None, block: None })).collect(),
    })
}

/// The questions of one activity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Questions {
    items: BTreeMap<QuestionId, Question>,
    next_id: u64,
    on_stage: Option<QuestionId>,
    /// Pinned questions in the order they were pinned.
    pins: Vec<QuestionId>,
    review: bool,
    #[serde(skip)]
    changed: VecDeque<QuestionId>,
    /// Which votes count (`super::votes`): rebuilt from the ballots after a restore.
    #[serde(skip)]
    gate: VoteGate,
}

impl Default for Questions {
    fn default() -> Self {
        Self::new(true)
    }
}

impl Questions {
    /// Most questions one identity may have waiting for review: a flood of questions would
    /// bury everyone else's in the moderators' queue.
    pub const MAX_PENDING_PER_ASKER: usize = 5;

    /// An empty queue; with `review`, questions wait for a moderator before anyone sees them.
    pub fn new(review: bool) -> Self {
        Questions {
            items: BTreeMap::new(),
            next_id: 1,
            on_stage: None,
            pins: Vec::new(),
            review,
            changed: VecDeque::new(),
            gate: VoteGate::default(),
        }
    }

    /// Sets the limits on anonymous votes (not part of a checkpoint: the server sets them).
    pub fn set_vote_rules(&mut self, rules: VoteRules) {
        self.gate.set_rules(rules);
    }

    /// The limits on anonymous votes in force.
    pub fn vote_rules(&self) -> VoteRules {
        self.gate.rules()
    }

    /// Counts the standing anonymous votes again from the ballots (after a restore).
    pub fn rebuild_vote_counts(&mut self) {
        let ballots = self.items.values().flat_map(|q| q.voters.values().map(move |b| (q.id, b)));
        self.gate.rebuild(ballots);
    }

    /// Whether questions wait for review.
    pub fn review(&self) -> bool {
        self.review
    }

    /// Turns review on or off (questions already pending stay pending).
    pub fn set_review(&mut self, review: bool) {
        self.review = review;
    }

    /// A question by id.
    pub fn get(&self, id: QuestionId) -> Option<&Question> {
        self.items.get(&id)
    }

    /// All questions in order of submission.
    pub fn all(&self) -> impl Iterator<Item = &Question> {
        self.items.values()
    }

    /// The question on stage.
    pub fn on_stage(&self) -> Option<&Question> {
        self.on_stage.and_then(|id| self.items.get(&id))
    }

    /// Published questions (not the one on stage), most votes first, then earliest first.
    pub fn published_by_votes(&self) -> Vec<&Question> {
        let mut v: Vec<&Question> = self
            .items
            .values()
            .filter(|q| q.state == QuestionState::Published)
            .collect();
        v.sort_by(|a, b| {
            b.votes()
                .cmp(&a.votes())
                .then(a.submitted_at_ms.cmp(&b.submitted_at_ms))
                .then(a.id.cmp(&b.id))
        });
        v
    }

    /// Pinned questions, in the order they were pinned.
    pub fn pinned(&self) -> Vec<&Question> {
        self.pins
            .iter()
            .filter_map(|id| self.items.get(id))
            .collect()
    }

    /// The id of the next changed question (to send its new view).
    pub fn poll_changed(&mut self) -> Option<QuestionId> {
        self.changed.pop_front()
    }

    /// Submits a question. `bypass_review` (moderators) publishes it at once.
    pub fn handle_submit(
        &mut self,
        asker: Author,
        raw_text: &str,
        anonymous: bool,
        bypass_review: bool,
        now_ms: u64,
    ) -> Result<QuestionId, ConsultError> {
        let text = normalize_line(raw_text, MAX_TEXT_CHARS)?;
        if self.review && !bypass_review {
            let waiting = self
                .items
                .values()
                .rev()
                .filter(|q| q.state == QuestionState::Pending && q.asker.id == asker.id)
                .take(Self::MAX_PENDING_PER_ASKER)
                .count();
            if waiting >= Self::MAX_PENDING_PER_ASKER {
                return Err(ConsultError::TooManyQuestions(waiting));
            }
        }
        let id = QuestionId(self.next_id);
        self.next_id += 1;
        let state = if self.review && !bypass_review {
            QuestionState::Pending
        } else {
            QuestionState::Published
        };
        self.items.insert(
            id,
            Question {
                id,
                asker,
                anonymous,
                text,
                submitted_at_ms: now_ms,
                state,
                voters: BTreeMap::new(),
                pinned: false,
                decided_by: None,
                decided_at_ms: None,
                reason: None,
                staged_at_ms: None,
                answer: None,
            },
        );
        self.changed.push_back(id);
        Ok(id)
    }

    /// Upvotes a published (or on-stage) question, once per identity, if the vote rule lets
    /// `ballot` count (`super::votes`: anonymous votes are capped per address block).
    pub fn handle_vote(
        &mut self,
        voter: &ParticipantId,
        ballot: Ballot,
        id: QuestionId,
        now_ms: u64,
    ) -> Result<usize, ConsultError> {
        let gate = &mut self.gate;
        let q = Self::votable(&mut self.items, id)?;
        if q.voters.contains_key(voter) {
            return Err(ConsultError::AlreadyVoted);
        }
        gate.handle_vote(&ballot, id, now_ms)?;
        q.voters.insert(voter.clone(), ballot);
        let n = q.votes();
        self.changed.push_back(id);
        Ok(n)
    }

    /// Withdraws an upvote (its place under the anonymous cap is free again).
    pub fn handle_unvote(
        &mut self,
        voter: &ParticipantId,
        id: QuestionId,
    ) -> Result<usize, ConsultError> {
        let q = Self::votable(&mut self.items, id)?;
        let Some(ballot) = q.voters.remove(voter) else {
            return Err(ConsultError::NotVoted);
        };
        let n = q.votes();
        self.gate.handle_unvote(&ballot, id);
        self.changed.push_back(id);
        Ok(n)
    }

    /// A moderator publishes a pending question.
    pub fn handle_publish(
        &mut self,
        id: QuestionId,
        by: &ParticipantId,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        self.transition(
            id,
            "publish",
            &[QuestionState::Pending],
            QuestionState::Published,
            by,
            now_ms,
        )?;
        Ok(())
    }

    /// A moderator rejects a pending question.
    pub fn handle_reject(
        &mut self,
        id: QuestionId,
        by: &ParticipantId,
        reason: Option<&str>,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        let reason = reason
            .map(|r| normalize_line(r, MAX_REASON_CHARS))
            .transpose()?;
        let q = self.transition(
            id,
            "reject",
            &[QuestionState::Pending],
            QuestionState::Rejected,
            by,
            now_ms,
        )?;
        q.reason = reason;
        Ok(())
    }

    /// A moderator puts a published question on stage. The question that was on stage returns
    /// to published; its id is returned.
    pub fn handle_stage(
        &mut self,
        id: QuestionId,
        by: &ParticipantId,
        now_ms: u64,
    ) -> Result<Option<QuestionId>, ConsultError> {
        self.check(id, "stage", &[QuestionState::Published])?;
        let previous = self.on_stage.take();
        if let Some(prev) = previous {
            let q = self.items.get_mut(&prev).expect("on-stage question exists");
            q.state = QuestionState::Published;
            self.changed.push_back(prev);
        }
        let q = self.transition(
            id,
            "stage",
            &[QuestionState::Published],
            QuestionState::OnStage,
            by,
            now_ms,
        )?;
        q.staged_at_ms = Some(now_ms);
        self.on_stage = Some(id);
        Ok(previous)
    }

    /// A moderator marks a published or on-stage question answered, by `answered_by`.
    pub fn handle_answer(
        &mut self,
        id: QuestionId,
        answered_by: Option<ParticipantId>,
        by: &ParticipantId,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        let from = [QuestionState::Published, QuestionState::OnStage];
        let q = self.transition(id, "answer", &from, QuestionState::Answered, by, now_ms)?;
        q.answer = Some(Answer {
            by: answered_by,
            marked_by: by.clone(),
            at_ms: now_ms,
        });
        self.leave_queue(id);
        Ok(())
    }

    /// A moderator takes a published or on-stage question off the queue unanswered.
    pub fn handle_dismiss(
        &mut self,
        id: QuestionId,
        by: &ParticipantId,
        reason: Option<&str>,
        now_ms: u64,
    ) -> Result<(), ConsultError> {
        let reason = reason
            .map(|r| normalize_line(r, MAX_REASON_CHARS))
            .transpose()?;
        let from = [QuestionState::Published, QuestionState::OnStage];
        let q = self.transition(id, "dismiss", &from, QuestionState::Dismissed, by, now_ms)?;
        q.reason = reason;
        self.leave_queue(id);
        Ok(())
    }

    /// A moderator pins or unpins a published or on-stage question.
    pub fn handle_pin(&mut self, id: QuestionId, pinned: bool) -> Result<(), ConsultError> {
        let op = if pinned { "pin" } else { "unpin" };
        self.check(id, op, &[QuestionState::Published, QuestionState::OnStage])?;
        let q = self.items.get_mut(&id).expect("checked");
        if q.pinned != pinned {
            q.pinned = pinned;
            if pinned {
                self.pins.push(id);
            } else {
                self.pins.retain(|p| *p != id);
            }
            self.changed.push_back(id);
        }
        Ok(())
    }

    fn leave_queue(&mut self, id: QuestionId) {
        if self.on_stage == Some(id) {
            self.on_stage = None;
        }
        if let Some(q) = self.items.get_mut(&id) {
            q.pinned = false;
        }
        self.pins.retain(|p| *p != id);
    }

    fn votable(items: &mut BTreeMap<QuestionId, Question>, id: QuestionId) -> Result<&mut Question, ConsultError> {
        let q = items
            .get_mut(&id)
            .ok_or(ConsultError::NoSuchQuestion(id))?;
        match q.state {
            QuestionState::Published | QuestionState::OnStage => Ok(q),
            // Not visible to voters: as if it did not exist.
            QuestionState::Pending | QuestionState::Rejected => {
                Err(ConsultError::NoSuchQuestion(id))
            }
            s => Err(ConsultError::BadQuestionState {
                id,
                state: s.as_str().into(),
                op: "vote".into(),
            }),
        }
    }

    fn check(&self, id: QuestionId, op: &str, from: &[QuestionState]) -> Result<(), ConsultError> {
        let q = self
            .items
            .get(&id)
            .ok_or(ConsultError::NoSuchQuestion(id))?;
        if from.contains(&q.state) {
            Ok(())
        } else {
            Err(ConsultError::BadQuestionState {
                id,
                state: q.state.as_str().into(),
                op: op.into(),
            })
        }
    }

    fn transition(
        &mut self,
        id: QuestionId,
        op: &str,
        from: &[QuestionState],
        to: QuestionState,
        by: &ParticipantId,
        now_ms: u64,
    ) -> Result<&mut Question, ConsultError> {
        self.check(id, op, from)?;
        self.changed.push_back(id);
        let q = self.items.get_mut(&id).expect("checked");
        q.state = to;
        q.decided_by = Some(by.clone());
        q.decided_at_ms = Some(now_ms);
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use shangliang_signaling::Role;

    fn author(id: &str) -> Author {
        Author {
            id: id.into(),
            name: id.to_uppercase(),
            role: Role::Viewer,
            verified: false,
        }
    }
    fn p(s: &str) -> ParticipantId {
        ParticipantId::new(s)
    }
    const M: &str = "mod";
    /// A member's ballot: never capped.
    const B: Ballot = Ballot { tier: Some(super::super::votes::VoteTier::Member), block: None };

    #[test]
    fn pending_question_is_published_by_a_moderator() {
        let mut qs = Questions::new(true);
        let id = qs
            .handle_submit(author("a"), "  城乡融合怎么推进？ ", false, false, 10)
            .unwrap();
        assert_eq!(qs.get(id).unwrap().state, QuestionState::Pending);
        assert_eq!(qs.get(id).unwrap().text, "城乡融合怎么推进？");
        assert_eq!(
            qs.handle_vote(&p("b"), B, id, 0),
            Err(ConsultError::NoSuchQuestion(id))
        );
        qs.handle_publish(id, &p(M), 20).unwrap();
        assert_eq!(qs.handle_vote(&p("b"), B, id, 0), Ok(1));
        assert!(matches!(
            qs.handle_publish(id, &p(M), 21),
            Err(ConsultError::BadQuestionState { .. })
        ));
    }

    #[test]
    fn an_asker_may_have_only_a_few_questions_waiting() {
        let mut qs = Questions::new(true);
        for _ in 0..Questions::MAX_PENDING_PER_ASKER {
            qs.handle_submit(author("a"), "q", false, false, 0).unwrap();
        }
        assert_eq!(
            qs.handle_submit(author("a"), "q", false, false, 0),
            Err(ConsultError::TooManyQuestions(5))
        );
        assert!(qs.handle_submit(author("b"), "q", false, false, 0).is_ok());
        qs.handle_publish(QuestionId(1), &p(M), 1).unwrap();
        assert!(qs.handle_submit(author("a"), "q", false, false, 0).is_ok());
    }

    #[test]
    fn upvote_once_per_identity_and_unvote() {
        let mut qs = Questions::new(false);
        let id = qs.handle_submit(author("a"), "q", false, false, 0).unwrap();
        assert_eq!(qs.handle_vote(&p("b"), B, id, 0), Ok(1));
        assert_eq!(qs.handle_vote(&p("b"), B, id, 0), Err(ConsultError::AlreadyVoted));
        assert_eq!(qs.handle_vote(&p("c"), B, id, 0), Ok(2));
        assert_eq!(qs.handle_unvote(&p("b"), id), Ok(1));
        assert_eq!(qs.handle_unvote(&p("b"), id), Err(ConsultError::NotVoted));
        assert_eq!(
            qs.handle_vote(&p("b"), B, QuestionId(99), 0),
            Err(ConsultError::NoSuchQuestion(QuestionId(99)))
        );
    }

    #[test]
    fn published_questions_order_by_votes_then_age() {
        let mut qs = Questions::new(false);
        let a = qs.handle_submit(author("a"), "a", false, false, 1).unwrap();
        let b = qs.handle_submit(author("b"), "b", false, false, 2).unwrap();
        let c = qs.handle_submit(author("c"), "c", false, false, 3).unwrap();
        qs.handle_vote(&p("x"), B, c, 0).unwrap();
        let order: Vec<_> = qs.published_by_votes().iter().map(|q| q.id).collect();
        assert_eq!(order, vec![c, a, b]);
    }

    #[test]
    fn staging_another_question_returns_the_previous_to_published() {
        let mut qs = Questions::new(false);
        let a = qs.handle_submit(author("a"), "a", false, false, 1).unwrap();
        let b = qs.handle_submit(author("b"), "b", false, false, 2).unwrap();
        assert_eq!(qs.handle_stage(a, &p(M), 3), Ok(None));
        assert_eq!(qs.handle_stage(b, &p(M), 4), Ok(Some(a)));
        assert_eq!(qs.get(a).unwrap().state, QuestionState::Published);
        assert_eq!(qs.on_stage().unwrap().id, b);
        qs.handle_answer(b, Some(p("member1")), &p(M), 5).unwrap();
        let ans = qs.get(b).unwrap().answer.clone().unwrap();
        assert_eq!((ans.by, ans.at_ms), (Some(p("member1")), 5));
        assert!(qs.on_stage().is_none());
        qs.handle_dismiss(a, &p(M), Some("重复"), 6).unwrap();
        assert_eq!(qs.get(a).unwrap().reason.as_deref(), Some("重复"));
        assert!(qs.published_by_votes().is_empty());
    }

    #[test]
    fn pinned_questions_keep_pin_order_and_unpin_on_answer() {
        let mut qs = Questions::new(false);
        let a = qs.handle_submit(author("a"), "a", false, false, 1).unwrap();
        let b = qs.handle_submit(author("b"), "b", false, false, 2).unwrap();
        qs.handle_pin(b, true).unwrap();
        qs.handle_pin(a, true).unwrap();
        assert_eq!(
            qs.pinned().iter().map(|q| q.id).collect::<Vec<_>>(),
            vec![b, a]
        );
        qs.handle_answer(b, None, &p(M), 3).unwrap();
        assert_eq!(
            qs.pinned().iter().map(|q| q.id).collect::<Vec<_>>(),
            vec![a]
        );
    }

    #[test]
    fn anonymous_question_hides_asker_from_viewers_not_moderators() {
        let mut qs = Questions::new(false);
        let id = qs
            .handle_submit(author("alice"), "q", true, false, 1)
            .unwrap();
        let q = qs.get(id).unwrap();
        assert_eq!(q.view(false).asker, None);
        assert!(q.view(false).anonymous);
        assert_eq!(q.view(true).asker.unwrap().id, "alice");
        let json = serde_json::to_string(&q.view(false)).unwrap();
        assert!(!json.contains("alice"), "{json}");
    }

    #[test]
    fn anonymous_votes_of_one_block_are_capped_and_tallied_by_tier() {
        use super::super::votes::{NetBlock, VoteTier};
        let mut qs = Questions::new(false);
        qs.set_vote_rules(VoteRules { per_question_per_block: 2, per_block_per_minute: 600 });
        let id = qs.handle_submit(author("a"), "q", false, false, 0).unwrap();
        let from = |host: u8| Ballot { tier: Some(VoteTier::Anonymous), block: Some(NetBlock::of([192, 0, 2, host].into())) };
        assert_eq!(qs.handle_vote(&p("v1"), from(1), id, 0), Ok(1));
        assert_eq!(qs.handle_vote(&p("v2"), from(2), id, 0), Ok(2));
        assert_eq!(qs.handle_vote(&p("v3"), from(3), id, 0), Err(ConsultError::VoteCapped { cap: 2 }));
        assert_eq!(qs.handle_vote(&p("v1"), from(1), id, 0), Err(ConsultError::AlreadyVoted), "a repeat is a repeat, not a cap");
        let verified = Ballot { tier: Some(VoteTier::Verified), block: None };
        assert_eq!(qs.handle_vote(&p("real"), verified, id, 0), Ok(3));
        assert_eq!(qs.handle_vote(&p("m"), B, id, 0), Ok(4));
        let t = qs.get(id).unwrap().votes_by_tier();
        assert_eq!((t.verified, t.member, t.anonymous, t.unrecorded), (1, 1, 2, 0));
        // A checkpoint and back: the cap still holds, a withdrawal frees a place.
        let mut back: Questions = serde_json::from_str(&serde_json::to_string(&qs).unwrap()).unwrap();
        back.set_vote_rules(qs.vote_rules());
        back.rebuild_vote_counts();
        assert_eq!(back.handle_vote(&p("v3"), from(3), id, 0), Err(ConsultError::VoteCapped { cap: 2 }));
        assert_eq!(back.handle_unvote(&p("v2"), id), Ok(3));
        assert_eq!(back.handle_vote(&p("v3"), from(3), id, 0), Ok(4));
    }

    #[test]
    fn votes_stored_as_bare_identities_still_read_with_an_unrecorded_tier() {
        let mut qs = Questions::new(false);
        let id = qs.handle_submit(author("a"), "q", false, false, 0).unwrap();
        let mut v = serde_json::to_value(qs.get(id).unwrap()).unwrap();
        v["voters"] = serde_json::json!(["x", "y"]);
        let old: Question = serde_json::from_value(v).unwrap();
        assert_eq!(old.votes(), 2);
        assert_eq!(old.votes_by_tier().unrecorded, 2);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Vote(u8, u8),
        Unvote(u8, u8),
        Stage(u8),
        Answer(u8),
        Dismiss(u8),
    }

    proptest! {
        #[test]
        fn vote_count_equals_distinct_voters(ops in proptest::collection::vec(prop_oneof![
            ((0u8..8), (0u8..3)).prop_map(|(v, q)| Op::Vote(v, q)),
            ((0u8..8), (0u8..3)).prop_map(|(v, q)| Op::Unvote(v, q)),
            (0u8..3).prop_map(Op::Stage),
            (0u8..3).prop_map(Op::Answer),
            (0u8..3).prop_map(Op::Dismiss),
        ], 0..100)) {
            let mut qs = Questions::new(false);
            let ids: Vec<QuestionId> = (0..3).map(|i| qs.handle_submit(author(&format!("a{i}")), "q", false, false, i).unwrap()).collect();
            // Model: the set of (voter, question) pairs whose vote stands.
            let mut model: BTreeSet<(u8, u8)> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Vote(v, q) => {
                        let r = qs.handle_vote(&p(&format!("v{v}")), B, ids[q as usize], 0);
                        if r.is_ok() { prop_assert!(model.insert((v, q))); }
                        if r == Err(ConsultError::AlreadyVoted) { prop_assert!(model.contains(&(v, q))); }
                    }
                    Op::Unvote(v, q) => {
                        let r = qs.handle_unvote(&p(&format!("v{v}")), ids[q as usize]);
                        if r.is_ok() { prop_assert!(model.remove(&(v, q))); }
                        if r == Err(ConsultError::NotVoted) { prop_assert!(!model.contains(&(v, q))); }
                    }
                    Op::Stage(q) => { let _ = qs.handle_stage(ids[q as usize], &p(M), 0); }
                    Op::Answer(q) => { let _ = qs.handle_answer(ids[q as usize], None, &p(M), 0); }
                    Op::Dismiss(q) => { let _ = qs.handle_dismiss(ids[q as usize], &p(M), None, 0); }
                }
                for (i, id) in ids.iter().enumerate() {
                    let q = qs.get(*id).unwrap();
                    let expected = model.iter().filter(|(_, qq)| *qq as usize == i).count();
                    prop_assert_eq!(q.votes(), expected);
                    prop_assert_eq!(q.view(false).votes as usize, q.voters.len());
                }
                prop_assert!(qs.all().filter(|q| q.state == QuestionState::OnStage).count() <= 1);
            }
        }
    }
}
