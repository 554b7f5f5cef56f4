//! Polls: single choice, multiple choice, rating and open word.
//!
//! Life of a poll:
//!
//! ```text
//! prepared ──launch (countdown d)──▶ open ──close, or the countdown ends (tick)──▶ closed
//! ```
//!
//! Moderators prepare polls before or during the session; viewers see a poll from its launch.
//! A launch may carry a countdown: the poll closes by itself when it ends
//! ([`Polls::handle_tick`]), and the moderator can close it earlier.
//!
//! **One answer per identity.** Each identity has at most one standing answer per poll. By
//! default (`changeable: true`) a viewer may change it while the poll is open, and the new
//! answer replaces the old one in every count; with `changeable: false` a second answer is
//! refused ([`ConsensusError::AlreadyAnswered`]). Either way every count equals the number of
//! distinct identities whose standing answer holds that choice.
//!
//! **Tallies by tier and organisation level.** Counts are kept per [`Tier`] and per
//! organisation level of the voter's token (when it carries one), at the tier and level the
//! token had when the answer was given.
//!
//! **Coalesced.** An answer only marks the poll dirty. [`Polls::poll_tally`] hands out a
//! poll's tally at most once per `interval_ms` (and at once when the poll opens or closes), so
//! the server publishes one message per poll per interval whatever the answer rate.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use shangliang_signaling::OrgLevel;

use super::error::ConsensusError;
use super::ids::PollId;
use super::voter::{LEVELS, Tier, Voter, level_index};
use super::words::{TOP_WORDS, WordCount, WordTable, normalize_word};
use crate::consult::ParticipantId;
use crate::consult::text::normalize_line;

/// Most polls per activity.
pub const MAX_POLLS: usize = 100;
/// Most options of a choice poll (a bit each in a 16-bit mask).
pub const MAX_OPTIONS: usize = 12;
/// Longest poll question, in characters.
pub const MAX_QUESTION_CHARS: usize = 200;
/// Longest option, in characters.
pub const MAX_OPTION_CHARS: usize = 80;
/// Most values of a rating scale (0–10 is the widest common scale).
pub const MAX_RATING_VALUES: usize = 11;
/// Most words per open-word answer.
pub const MAX_WORDS_PER_ANSWER: u8 = 3;
/// Shortest countdown.
pub const MIN_COUNTDOWN_MS: u64 = 5_000;
/// Longest countdown.
pub const MAX_COUNTDOWN_MS: u64 = 3_600_000;

const _: () = assert!(MAX_OPTIONS <= 16 && MAX_RATING_VALUES <= 16);

/// What is asked, and how it is answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PollKind {
    /// One option.
    SingleChoice {
        /// 2 to [`MAX_OPTIONS`] options.
        options: Vec<String>,
    },
    /// Up to `max_choices` options.
    MultipleChoice {
        /// 2 to [`MAX_OPTIONS`] options.
        options: Vec<String>,
        /// 1 to the number of options.
        max_choices: u8,
    },
    /// One value of `min..=max` (e.g. 1–5 stars, 0–10).
    Rating {
        /// Lowest value.
        min: i8,
        /// Highest value; at most [`MAX_RATING_VALUES`] values in all.
        max: i8,
    },
    /// A few words; the tally lists the most given ones.
    OpenWord {
        /// 1 to [`MAX_WORDS_PER_ANSWER`] words per answer.
        max_words: u8,
    },
}

impl PollKind {
    /// Counted buckets: options, or rating values; none for open word.
    pub fn buckets(&self) -> usize {
        match self {
            PollKind::SingleChoice { options } | PollKind::MultipleChoice { options, .. } => {
                options.len()
            }
            PollKind::Rating { min, max } => (*max as i32 - *min as i32 + 1) as usize,
            PollKind::OpenWord { .. } => 0,
        }
    }
}

/// When viewers see the results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultsVisibility {
    /// Live, while the poll is open.
    #[default]
    Live,
    /// Moderators see them live; everyone else when the poll closes (so the first answers do
    /// not steer the rest).
    AfterClose,
}

fn yes() -> bool {
    true
}

/// A poll as a moderator prepares it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollSpec {
    /// The question.
    pub question: String,
    /// How it is answered.
    #[serde(flatten)]
    pub kind: PollKind,
    /// Whether an identity may change its answer while the poll is open.
    #[serde(default = "yes")]
    pub changeable: bool,
    /// When viewers see the results.
    #[serde(default)]
    pub results: ResultsVisibility,
}

impl PollSpec {
    /// The spec with its texts normalised, or why it is malformed.
    fn validated(self) -> Result<PollSpec, ConsensusError> {
        let question = normalize_line(&self.question, MAX_QUESTION_CHARS)?;
        let options = |opts: Vec<String>| -> Result<Vec<String>, ConsensusError> {
            if opts.len() < 2 || opts.len() > MAX_OPTIONS {
                return Err(ConsensusError::InvalidPoll("a choice poll has 2 to 12 options"));
            }
            let opts = opts
                .iter()
                .map(|o| normalize_line(o, MAX_OPTION_CHARS))
                .collect::<Result<Vec<_>, _>>()?;
            for (i, o) in opts.iter().enumerate() {
                if opts[..i].contains(o) {
                    return Err(ConsensusError::InvalidPoll("two options have the same text"));
                }
            }
            Ok(opts)
        };
        let kind = match self.kind {
            PollKind::SingleChoice { options: o } => PollKind::SingleChoice { options: options(o)? },
            PollKind::MultipleChoice { options: o, max_choices } => {
                let o = options(o)?;
                if max_choices == 0 || max_choices as usize > o.len() {
                    return Err(ConsensusError::InvalidPoll(
                        "max_choices is between 1 and the number of options",
                    ));
                }
                PollKind::MultipleChoice { options: o, max_choices }
            }
            PollKind::Rating { min, max } => {
                let n = max as i32 - min as i32 + 1;
                if n < 2 || n as usize > MAX_RATING_VALUES {
                    return Err(ConsensusError::InvalidPoll("a rating scale has 2 to 11 values"));
                }
                PollKind::Rating { min, max }
            }
            PollKind::OpenWord { max_words } => {
                if max_words == 0 || max_words > MAX_WORDS_PER_ANSWER {
                    return Err(ConsensusError::InvalidPoll("an open-word poll takes 1 to 3 words"));
                }
                PollKind::OpenWord { max_words }
            }
        };
        Ok(PollSpec { question, kind, changeable: self.changeable, results: self.results })
    }
}

/// Where a poll stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollState {
    /// Prepared; only moderators see it.
    Prepared,
    /// Taking answers.
    Open,
    /// Closed; its final tally is in the minutes.
    Closed,
}

impl PollState {
    /// The state's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PollState::Prepared => "prepared",
            PollState::Open => "open",
            PollState::Closed => "closed",
        }
    }
}

/// Why a poll closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Its countdown ended.
    Countdown,
    /// A moderator closed it.
    Moderator,
}

/// A viewer's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "a", rename_all = "snake_case")]
pub enum PollAnswer {
    /// For a single-choice poll: the option's index.
    Choice {
        /// Index into the options.
        option: u8,
    },
    /// For a multiple-choice poll: the options' indices (duplicates count once).
    Choices {
        /// Indices into the options.
        options: Vec<u8>,
    },
    /// For a rating poll.
    Rating {
        /// A value of the scale.
        value: i8,
    },
    /// For an open-word poll.
    Words {
        /// 1 to `max_words` words.
        words: Vec<String>,
    },
}

/// What an answer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerOutcome {
    /// The identity's first answer.
    New,
    /// It replaced the identity's previous answer.
    Changed,
    /// The same as the standing answer; nothing changed.
    Unchanged,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum StoredValue {
    /// Buckets as bits (options or rating values).
    Mask(u16),
    /// Word ids, sorted and distinct.
    Words(Box<[u32]>),
}

#[derive(Clone, Debug)]
struct Stored {
    tier: Tier,
    level: Option<OrgLevel>,
    value: StoredValue,
}

#[derive(Clone, Debug, Default)]
struct Tally {
    by_tier: [Vec<u32>; 3],
    by_level: [Vec<u32>; 3],
    voters_tier: [u32; 3],
    voters_level: [u32; 3],
}

impl Tally {
    fn new(buckets: usize) -> Self {
        let z = || vec![0u32; buckets];
        Tally {
            by_tier: [z(), z(), z()],
            by_level: [z(), z(), z()],
            voters_tier: [0; 3],
            voters_level: [0; 3],
        }
    }
}

/// A poll with everything the record keeps about it.
#[derive(Clone, Debug)]
pub struct Poll {
    /// Its id.
    pub id: PollId,
    /// What is asked (normalised).
    pub spec: PollSpec,
    /// Where it stands.
    pub state: PollState,
    /// The moderator who prepared it.
    pub created_by: ParticipantId,
    /// When.
    pub created_at_ms: u64,
    /// When it was launched.
    pub opened_at_ms: Option<u64>,
    /// When its countdown ends, if it has one.
    pub closes_at_ms: Option<u64>,
    /// When it closed.
    pub closed_at_ms: Option<u64>,
    /// Why it closed.
    pub close_reason: Option<CloseReason>,
    answers: HashMap<u32, Stored>,
    tally: Tally,
    words: WordTable,
    revision: u64,
    dirty: bool,
    urgent: bool,
    last_published_ms: Option<u64>,
}

/// Counts of one tier or one organisation level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartTally<K> {
    /// The tier or level.
    pub part: K,
    /// Identities of it with a standing answer.
    pub voters: u32,
    /// Per bucket (option, or rating value from `min`).
    pub counts: Vec<u32>,
    /// Mean rating (rating polls with voters).
    pub mean: Option<f64>,
}

/// A poll's results at one moment: what the server publishes (coalesced) and the minutes print.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PollTally {
    /// The poll.
    pub poll: PollId,
    /// Increases with every change of an answer; a client keeps the highest it saw.
    pub revision: u64,
    /// When the tally was taken.
    pub at_ms: u64,
    /// The poll's state then.
    pub state: PollState,
    /// When its countdown ends.
    pub closes_at_ms: Option<u64>,
    /// Distinct identities with a standing answer.
    pub voters: u32,
    /// Per bucket: identities whose answer holds that option (or rating value from `min`).
    /// Empty for open word.
    pub counts: Vec<u32>,
    /// Mean rating.
    pub mean: Option<f64>,
    /// Per tier, all three in [`Tier::ALL`] order.
    pub by_tier: Vec<PartTally<Tier>>,
    /// Per organisation level, for levels with voters (tokens without an organisation count
    /// in no level).
    pub by_level: Vec<PartTally<OrgLevel>>,
    /// Open word: the most given words.
    pub words: Vec<WordCount>,
    /// Open word: entries beyond the table of distinct words.
    pub other_words: u32,
    /// Open word: words a moderator hid from the list (still counted).
    pub hidden_words: u32,
}

impl Poll {
    fn mean(&self, counts: &[u32], voters: u32) -> Option<f64> {
        match self.spec.kind {
            PollKind::Rating { min, .. } if voters > 0 => {
                let sum: f64 =
                    counts.iter().enumerate().map(|(i, c)| (min as f64 + i as f64) * *c as f64).sum();
                Some(sum / voters as f64)
            }
            _ => None,
        }
    }

    /// The poll's tally now.
    pub fn tally(&self, now_ms: u64) -> PollTally {
        let t = &self.tally;
        let buckets = self.spec.kind.buckets();
        let mut counts = vec![0u32; buckets];
        for tier in &t.by_tier {
            for (c, x) in counts.iter_mut().zip(tier) {
                *c += x;
            }
        }
        let voters = t.voters_tier.iter().sum();
        let by_tier = Tier::ALL
            .iter()
            .map(|tier| {
                let i = tier.index();
                PartTally {
                    part: *tier,
                    voters: t.voters_tier[i],
                    counts: t.by_tier[i].clone(),
                    mean: self.mean(&t.by_tier[i], t.voters_tier[i]),
                }
            })
            .collect();
        let by_level = LEVELS
            .iter()
            .enumerate()
            .filter(|(i, _)| t.voters_level[*i] > 0)
            .map(|(i, l)| PartTally {
                part: *l,
                voters: t.voters_level[i],
                counts: t.by_level[i].clone(),
                mean: self.mean(&t.by_level[i], t.voters_level[i]),
            })
            .collect();
        let (words, other_words) = match self.spec.kind {
            PollKind::OpenWord { .. } => self.words.top(TOP_WORDS),
            _ => (Vec::new(), 0),
        };
        PollTally {
            poll: self.id,
            revision: self.revision,
            at_ms: now_ms,
            state: self.state,
            closes_at_ms: self.closes_at_ms,
            voters,
            mean: self.mean(&counts, voters),
            counts,
            by_tier,
            by_level,
            words,
            other_words,
            hidden_words: self.words.hidden_count() as u32,
        }
    }

    /// The stored form of `answer`, or why it does not fit.
    fn store(&mut self, answer: PollAnswer) -> Result<StoredValue, ConsensusError> {
        use ConsensusError::InvalidAnswer;
        match (&self.spec.kind, answer) {
            (PollKind::SingleChoice { options }, PollAnswer::Choice { option }) => {
                if option as usize >= options.len() {
                    return Err(InvalidAnswer("no such option"));
                }
                Ok(StoredValue::Mask(1 << option))
            }
            (PollKind::MultipleChoice { options, max_choices }, PollAnswer::Choices { options: chosen }) => {
                let mut mask = 0u16;
                for o in chosen {
                    if o as usize >= options.len() {
                        return Err(InvalidAnswer("no such option"));
                    }
                    mask |= 1 << o;
                }
                if mask == 0 {
                    return Err(InvalidAnswer("choose at least one option"));
                }
                if mask.count_ones() > *max_choices as u32 {
                    return Err(InvalidAnswer("too many options chosen"));
                }
                Ok(StoredValue::Mask(mask))
            }
            (PollKind::Rating { min, max }, PollAnswer::Rating { value }) => {
                if value < *min || value > *max {
                    return Err(InvalidAnswer("the rating is outside the scale"));
                }
                Ok(StoredValue::Mask(1 << (value as i32 - *min as i32)))
            }
            (PollKind::OpenWord { max_words }, PollAnswer::Words { words }) => {
                if words.is_empty() {
                    return Err(InvalidAnswer("give at least one word"));
                }
                if words.len() > *max_words as usize {
                    return Err(InvalidAnswer("too many words"));
                }
                let normal = words.iter().map(|w| normalize_word(w)).collect::<Result<Vec<_>, _>>()?;
                let mut ids: Vec<u32> = normal.into_iter().map(|w| self.words.intern(w)).collect();
                ids.sort_unstable();
                ids.dedup();
                Ok(StoredValue::Words(ids.into_boxed_slice()))
            }
            _ => Err(InvalidAnswer("the answer is for another kind of poll")),
        }
    }

    fn apply(&mut self, s: &Stored, add: bool) {
        let t = &mut self.tally;
        let ti = s.tier.index();
        let li = s.level.map(level_index);
        let step = |x: &mut u32| if add { *x += 1 } else { *x -= 1 };
        step(&mut t.voters_tier[ti]);
        if let Some(li) = li {
            step(&mut t.voters_level[li]);
        }
        match &s.value {
            StoredValue::Mask(m) => {
                for b in 0..16 {
                    if m & (1 << b) != 0 {
                        step(&mut t.by_tier[ti][b]);
                        if let Some(li) = li {
                            step(&mut t.by_level[li][b]);
                        }
                    }
                }
            }
            StoredValue::Words(ids) => {
                for id in ids.iter() {
                    if add { self.words.add(*id) } else { self.words.remove(*id) }
                }
            }
        }
    }

    fn touch(&mut self) {
        self.revision += 1;
        self.dirty = true;
    }
}

/// The polls of one activity.
#[derive(Clone, Debug)]
pub struct Polls {
    items: Vec<Poll>,
    interval_ms: u64,
    changed: VecDeque<PollId>,
}

impl Polls {
    /// No polls; tallies go out at most once per `interval_ms` per poll.
    pub fn new(interval_ms: u64) -> Self {
        Polls { items: Vec::new(), interval_ms, changed: VecDeque::new() }
    }

    /// A poll by id.
    pub fn get(&self, id: PollId) -> Option<&Poll> {
        self.items.get((id.0 as usize).checked_sub(1)?)
    }

    /// All polls in order of creation.
    pub fn all(&self) -> &[Poll] {
        &self.items
    }

    fn get_mut(&mut self, id: PollId) -> Result<&mut Poll, ConsensusError> {
        (id.0 as usize)
            .checked_sub(1)
            .and_then(|i| self.items.get_mut(i))
            .ok_or(ConsensusError::NoSuchPoll(id))
    }

    fn in_state(&mut self, id: PollId, want: PollState, op: &'static str) -> Result<&mut Poll, ConsensusError> {
        let p = self.get_mut(id)?;
        if p.state != want {
            return Err(ConsensusError::BadPollState { id, state: p.state.as_str(), op });
        }
        Ok(p)
    }

    /// The id of the next poll whose state changed (created, launched, closed).
    pub fn poll_changed(&mut self) -> Option<PollId> {
        self.changed.pop_front()
    }

    /// Prepares a poll.
    pub fn handle_create(
        &mut self,
        spec: PollSpec,
        by: &ParticipantId,
        now_ms: u64,
    ) -> Result<PollId, ConsensusError> {
        if self.items.len() >= MAX_POLLS {
            return Err(ConsensusError::TooManyPolls(MAX_POLLS));
        }
        let spec = spec.validated()?;
        let id = PollId(self.items.len() as u32 + 1);
        let buckets = spec.kind.buckets();
        self.items.push(Poll {
            id,
            spec,
            state: PollState::Prepared,
            created_by: by.clone(),
            created_at_ms: now_ms,
            opened_at_ms: None,
            closes_at_ms: None,
            closed_at_ms: None,
            close_reason: None,
            answers: HashMap::new(),
            tally: Tally::new(buckets),
            words: WordTable::default(),
            revision: 0,
            dirty: false,
            urgent: false,
            last_published_ms: None,
        });
        self.changed.push_back(id);
        Ok(id)
    }

    /// Launches a prepared poll, with a countdown of `countdown_ms` if given.
    pub fn handle_launch(
        &mut self,
        id: PollId,
        countdown_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<(), ConsensusError> {
        if let Some(d) = countdown_ms
            && !(MIN_COUNTDOWN_MS..=MAX_COUNTDOWN_MS).contains(&d)
        {
            return Err(ConsensusError::BadDuration { min_ms: MIN_COUNTDOWN_MS, max_ms: MAX_COUNTDOWN_MS });
        }
        let p = self.in_state(id, PollState::Prepared, "launch")?;
        p.state = PollState::Open;
        p.opened_at_ms = Some(now_ms);
        p.closes_at_ms = countdown_ms.map(|d| now_ms + d);
        p.touch();
        p.urgent = true;
        self.changed.push_back(id);
        Ok(())
    }

    /// Closes an open poll.
    pub fn handle_close(&mut self, id: PollId, now_ms: u64) -> Result<(), ConsensusError> {
        self.in_state(id, PollState::Open, "close")?;
        self.close(id, CloseReason::Moderator, now_ms);
        Ok(())
    }

    fn close(&mut self, id: PollId, reason: CloseReason, now_ms: u64) {
        let p = &mut self.items[id.0 as usize - 1];
        p.state = PollState::Closed;
        p.closed_at_ms = Some(now_ms);
        p.close_reason = Some(reason);
        p.touch();
        p.urgent = true;
        self.changed.push_back(id);
    }

    /// Closes the polls whose countdown has ended.
    pub fn handle_tick(&mut self, now_ms: u64) {
        let due: Vec<PollId> = self
            .items
            .iter()
            .filter(|p| p.state == PollState::Open && p.closes_at_ms.is_some_and(|t| t <= now_ms))
            .map(|p| p.id)
            .collect();
        for id in due {
            self.close(id, CloseReason::Countdown, now_ms);
        }
    }

    /// Hides a word of an open-word poll from its published list. Returns whether anyone gave
    /// the word.
    pub fn handle_hide_word(&mut self, id: PollId, raw_word: &str) -> Result<bool, ConsensusError> {
        let p = self.get_mut(id)?;
        if !matches!(p.spec.kind, PollKind::OpenWord { .. }) {
            return Err(ConsensusError::InvalidPoll("only open-word polls have words"));
        }
        let word = normalize_word(raw_word)?;
        let known = p.words.hide(&word);
        if known {
            p.touch();
        }
        Ok(known)
    }

    /// Records `voter`'s answer to an open poll.
    pub(crate) fn handle_answer(
        &mut self,
        voter: Voter,
        id: PollId,
        answer: PollAnswer,
        now_ms: u64,
    ) -> Result<AnswerOutcome, ConsensusError> {
        let p = self.get_mut(id)?;
        match p.state {
            PollState::Open => {}
            // Not visible to voters yet: as if it did not exist.
            PollState::Prepared => return Err(ConsensusError::NoSuchPoll(id)),
            PollState::Closed => {
                return Err(ConsensusError::BadPollState { id, state: "closed", op: "answer" });
            }
        }
        // A countdown that ended closes the poll even if the tick is late.
        if p.closes_at_ms.is_some_and(|t| t <= now_ms) {
            self.close(id, CloseReason::Countdown, now_ms);
            return Err(ConsensusError::BadPollState { id, state: "closed", op: "answer" });
        }
        if !p.spec.changeable && p.answers.contains_key(&voter.row) {
            return Err(ConsensusError::AlreadyAnswered);
        }
        let value = p.store(answer)?;
        let new = Stored { tier: voter.tier, level: voter.level, value };
        let outcome = match p.answers.remove(&voter.row) {
            Some(old) if old.value == new.value => {
                p.answers.insert(voter.row, old);
                return Ok(AnswerOutcome::Unchanged);
            }
            Some(old) => {
                p.apply(&old, false);
                AnswerOutcome::Changed
            }
            None => AnswerOutcome::New,
        };
        p.apply(&new, true);
        p.answers.insert(voter.row, new);
        p.touch();
        Ok(outcome)
    }

    /// The next tally due: of a poll that changed since its last tally, and either just opened
    /// or closed or last published at least `interval_ms` ago. Call until `None`.
    pub fn poll_tally(&mut self, now_ms: u64) -> Option<PollTally> {
        let interval = self.interval_ms;
        let p = self.items.iter_mut().find(|p| {
            p.dirty && (p.urgent || p.last_published_ms.is_none_or(|t| now_ms >= t + interval))
        })?;
        p.dirty = false;
        p.urgent = false;
        p.last_published_ms = Some(now_ms);
        Some(p.tally(now_ms))
    }

    /// When [`Polls::poll_tally`] or [`Polls::handle_tick`] next has something to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.items
            .iter()
            .filter_map(|p| {
                let close = p.closes_at_ms.filter(|_| p.state == PollState::Open);
                let tally = p.dirty.then(|| {
                    if p.urgent { 0 } else { p.last_published_ms.map_or(0, |t| t + self.interval_ms) }
                });
                [close, tally].into_iter().flatten().min()
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn voter(row: u32, tier: Tier, level: Option<OrgLevel>) -> Voter {
        Voter { row, tier, level }
    }
    fn v(row: u32) -> Voter {
        voter(row, Tier::Anonymous, None)
    }
    fn m() -> ParticipantId {
        ParticipantId::new("mod")
    }
    fn single(n: usize) -> PollSpec {
        PollSpec {
            question: "哪项最急？".into(),
            kind: PollKind::SingleChoice { options: (0..n).map(|i| format!("选项{i}")).collect() },
            changeable: true,
            results: ResultsVisibility::Live,
        }
    }

    #[test]
    fn a_launched_poll_closes_when_its_countdown_ends() {
        let mut ps = Polls::new(500);
        let id = ps.handle_create(single(3), &m(), 0).unwrap();
        assert_eq!(ps.handle_answer(v(1), id, PollAnswer::Choice { option: 0 }, 1), Err(ConsensusError::NoSuchPoll(id)));
        ps.handle_launch(id, Some(30_000), 1_000).unwrap();
        assert_eq!(ps.get(id).unwrap().closes_at_ms, Some(31_000));
        assert_eq!(ps.poll_timeout(), Some(0), "the opening tally is due at once");
        assert_eq!(ps.poll_tally(1_000).unwrap().state, PollState::Open);
        assert_eq!(ps.poll_timeout(), Some(31_000));
        ps.handle_answer(v(1), id, PollAnswer::Choice { option: 2 }, 2_000).unwrap();
        ps.handle_tick(30_999);
        assert_eq!(ps.get(id).unwrap().state, PollState::Open);
        ps.handle_tick(31_000);
        let p = ps.get(id).unwrap();
        assert_eq!((p.state, p.close_reason), (PollState::Closed, Some(CloseReason::Countdown)));
        let last = ps.poll_tally(31_000).unwrap();
        assert_eq!((last.state, last.voters, last.counts.clone()), (PollState::Closed, 1, vec![0, 0, 1]));
        assert_eq!(
            ps.handle_answer(v(2), id, PollAnswer::Choice { option: 0 }, 31_001),
            Err(ConsensusError::BadPollState { id, state: "closed", op: "answer" })
        );
        let changed: Vec<PollId> = std::iter::from_fn(|| ps.poll_changed()).collect();
        assert_eq!(changed, vec![id, id, id], "created, launched, closed");
    }

    #[test]
    fn an_answer_after_the_countdown_is_refused_even_before_the_tick() {
        let mut ps = Polls::new(500);
        let id = ps.handle_create(single(2), &m(), 0).unwrap();
        ps.handle_launch(id, Some(5_000), 0).unwrap();
        assert!(ps.handle_answer(v(1), id, PollAnswer::Choice { option: 0 }, 5_000).is_err());
        assert_eq!(ps.get(id).unwrap().state, PollState::Closed);
        assert_eq!(ps.get(id).unwrap().tally(5_000).voters, 0);
    }

    #[test]
    fn bad_polls_and_countdowns_are_refused() {
        let mut ps = Polls::new(500);
        assert!(matches!(ps.handle_create(single(1), &m(), 0), Err(ConsensusError::InvalidPoll(_))));
        assert!(matches!(ps.handle_create(single(13), &m(), 0), Err(ConsensusError::InvalidPoll(_))));
        let mut dup = single(2);
        dup.kind = PollKind::SingleChoice { options: vec!["是".into(), " 是 ".into()] };
        assert!(matches!(ps.handle_create(dup, &m(), 0), Err(ConsensusError::InvalidPoll(_))));
        let rating = |min, max| PollSpec { kind: PollKind::Rating { min, max }, ..single(2) };
        assert!(ps.handle_create(rating(0, 10), &m(), 0).is_ok());
        assert!(ps.handle_create(rating(0, 11), &m(), 0).is_err());
        assert!(ps.handle_create(rating(3, 3), &m(), 0).is_err());
        let multi = |k| PollSpec { kind: PollKind::MultipleChoice { options: vec!["a".into(), "b".into()], max_choices: k }, ..single(2) };
        assert!(ps.handle_create(multi(0), &m(), 0).is_err());
        assert!(ps.handle_create(multi(3), &m(), 0).is_err());
        let empty_q = PollSpec { question: "  ".into(), ..single(2) };
        assert!(matches!(ps.handle_create(empty_q, &m(), 0), Err(ConsensusError::Text(_))));
        let id = ps.handle_create(single(2), &m(), 0).unwrap();
        assert!(matches!(ps.handle_launch(id, Some(1_000), 0), Err(ConsensusError::BadDuration { .. })));
        ps.handle_launch(id, None, 0).unwrap();
        assert!(matches!(ps.handle_launch(id, None, 0), Err(ConsensusError::BadPollState { .. })));
    }

    #[test]
    fn an_unchangeable_poll_takes_one_answer_per_identity() {
        let mut ps = Polls::new(500);
        let id = ps.handle_create(PollSpec { changeable: false, ..single(2) }, &m(), 0).unwrap();
        ps.handle_launch(id, None, 0).unwrap();
        assert_eq!(ps.handle_answer(v(1), id, PollAnswer::Choice { option: 0 }, 1), Ok(AnswerOutcome::New));
        assert_eq!(ps.handle_answer(v(1), id, PollAnswer::Choice { option: 1 }, 2), Err(ConsensusError::AlreadyAnswered));
        assert_eq!(ps.get(id).unwrap().tally(3).counts, vec![1, 0]);
    }

    #[test]
    fn answers_must_fit_the_poll() {
        let mut ps = Polls::new(500);
        let id = ps.handle_create(single(2), &m(), 0).unwrap();
        ps.handle_launch(id, None, 0).unwrap();
        let e = |a| ps.clone().handle_answer(v(1), id, a, 1);
        assert_eq!(e(PollAnswer::Choice { option: 2 }), Err(ConsensusError::InvalidAnswer("no such option")));
        assert!(matches!(e(PollAnswer::Rating { value: 1 }), Err(ConsensusError::InvalidAnswer(_))));
        let multi = ps.handle_create(PollSpec { kind: PollKind::MultipleChoice { options: vec!["a".into(), "b".into(), "c".into()], max_choices: 2 }, ..single(2) }, &m(), 0).unwrap();
        ps.handle_launch(multi, None, 0).unwrap();
        assert!(ps.handle_answer(v(1), multi, PollAnswer::Choices { options: vec![0, 1, 2] }, 1).is_err());
        assert!(ps.handle_answer(v(1), multi, PollAnswer::Choices { options: vec![] }, 1).is_err());
        assert_eq!(ps.handle_answer(v(1), multi, PollAnswer::Choices { options: vec![2, 0, 2] }, 1), Ok(AnswerOutcome::New));
        assert_eq!(ps.get(multi).unwrap().tally(2).counts, vec![1, 0, 1]);
    }

    #[test]
    fn rating_tallies_give_the_mean_by_tier_and_level() {
        let mut ps = Polls::new(500);
        let id = ps.handle_create(PollSpec { kind: PollKind::Rating { min: 1, max: 5 }, ..single(2) }, &m(), 0).unwrap();
        ps.handle_launch(id, None, 0).unwrap();
        ps.handle_answer(voter(1, Tier::Member, Some(OrgLevel::City)), id, PollAnswer::Rating { value: 5 }, 1).unwrap();
        ps.handle_answer(voter(2, Tier::Member, Some(OrgLevel::County)), id, PollAnswer::Rating { value: 3 }, 1).unwrap();
        ps.handle_answer(voter(3, Tier::Verified, None), id, PollAnswer::Rating { value: 1 }, 1).unwrap();
        let t = ps.get(id).unwrap().tally(2);
        assert_eq!(t.counts, vec![1, 0, 1, 0, 1]);
        assert_eq!(t.mean, Some(3.0));
        assert_eq!(t.by_tier[0].part, Tier::Member);
        assert_eq!((t.by_tier[0].voters, t.by_tier[0].mean), (2, Some(4.0)));
        assert_eq!((t.by_tier[2].voters, t.by_tier[2].mean), (0, None));
        let levels: Vec<(OrgLevel, u32)> = t.by_level.iter().map(|l| (l.part, l.voters)).collect();
        assert_eq!(levels, vec![(OrgLevel::City, 1), (OrgLevel::County, 1)]);
    }

    #[test]
    fn open_words_are_normalised_counted_once_per_identity_and_hideable() {
        let mut ps = Polls::new(500);
        let id = ps.handle_create(PollSpec { kind: PollKind::OpenWord { max_words: 3 }, ..single(2) }, &m(), 0).unwrap();
        ps.handle_launch(id, None, 0).unwrap();
        let words = |w: &[&str]| PollAnswer::Words { words: w.iter().map(|s| s.to_string()).collect() };
        ps.handle_answer(v(1), id, words(&["乡村振兴", "乡村振兴！", "教育"]), 1).unwrap();
        ps.handle_answer(v(2), id, words(&["#乡村振兴"]), 1).unwrap();
        ps.handle_answer(v(3), id, words(&["Ｅｄｕ"]), 1).unwrap();
        assert!(ps.handle_answer(v(4), id, words(&["a", "b", "c", "d"]), 1).is_err());
        assert!(ps.handle_answer(v(4), id, words(&["！"]), 1).is_err());
        let t = ps.get(id).unwrap().tally(2);
        let got: Vec<(&str, u32)> = t.words.iter().map(|w| (w.word.as_str(), w.count)).collect();
        assert_eq!(got, vec![("乡村振兴", 2), ("edu", 1), ("教育", 1)]);
        assert_eq!(t.voters, 3);
        // Changing an answer moves its words.
        assert_eq!(ps.handle_answer(v(2), id, words(&["教育"]), 3), Ok(AnswerOutcome::Changed));
        assert!(ps.handle_hide_word(id, "EDU").unwrap());
        let t = ps.get(id).unwrap().tally(4);
        let got: Vec<(&str, u32)> = t.words.iter().map(|w| (w.word.as_str(), w.count)).collect();
        assert_eq!(got, vec![("教育", 2), ("乡村振兴", 1)]);
        assert_eq!(t.hidden_words, 1);
    }

    #[test]
    fn tallies_are_coalesced_to_one_per_interval() {
        let mut ps = Polls::new(500);
        let id = ps.handle_create(single(2), &m(), 0).unwrap();
        ps.handle_launch(id, None, 0).unwrap();
        assert!(ps.poll_tally(0).is_some());
        for r in 0..1_000 {
            ps.handle_answer(v(r), id, PollAnswer::Choice { option: (r % 2) as u8 }, 10 + r as u64 / 10).unwrap();
            if let Some(t) = ps.poll_tally(10 + r as u64 / 10) {
                panic!("a tally {} ms after the last one: {t:?}", 10 + r / 10);
            }
        }
        assert_eq!(ps.poll_timeout(), Some(500));
        let t = ps.poll_tally(500).unwrap();
        assert_eq!((t.voters, t.counts.clone()), (1_000, vec![500, 500]));
        assert!(ps.poll_tally(500).is_none());
        assert!(ps.poll_tally(10_000).is_none(), "nothing changed");
        ps.handle_answer(v(0), id, PollAnswer::Choice { option: 0 }, 10_001).unwrap();
        assert!(ps.poll_tally(10_002).is_none(), "an unchanged answer is no change");
    }

    #[derive(Clone, Debug)]
    struct Op {
        voter: u32,
        tier: u8,
        level: u8,
        answer: u8,
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Every count equals the number of distinct identities whose standing answer holds it,
        /// overall, per tier and per level, however answers change.
        #[test]
        fn tallies_equal_the_count_of_distinct_voters(
            multi in any::<bool>(),
            ops in proptest::collection::vec((0u32..12, 0u8..3, 0u8..4, 0u8..32).prop_map(|(voter, tier, level, answer)| Op { voter, tier, level, answer }), 0..150),
        ) {
            let mut ps = Polls::new(500);
            let kind = if multi {
                PollKind::MultipleChoice { options: (0..5).map(|i| i.to_string()).collect(), max_choices: 5 }
            } else {
                PollKind::SingleChoice { options: (0..5).map(|i| i.to_string()).collect() }
            };
            let id = ps.handle_create(PollSpec { kind, ..single(2) }, &m(), 0).unwrap();
            ps.handle_launch(id, None, 0).unwrap();
            // Model: each voter's standing (tier, level, options).
            let mut model: HashMap<u32, (Tier, Option<OrgLevel>, Vec<u8>)> = HashMap::new();
            for op in ops {
                let tier = Tier::ALL[op.tier as usize];
                let level = LEVELS.get(op.level as usize).copied();
                let (answer, opts) = if multi {
                    let opts: Vec<u8> = (0..5).filter(|b| op.answer & (1 << b) != 0).collect();
                    (PollAnswer::Choices { options: opts.clone() }, opts)
                } else {
                    (PollAnswer::Choice { option: op.answer % 5 }, vec![op.answer % 5])
                };
                let r = ps.handle_answer(voter(op.voter, tier, level), id, answer, 1);
                match r {
                    Ok(AnswerOutcome::Unchanged) => prop_assert_eq!(&model[&op.voter].2, &opts),
                    Ok(_) => { model.insert(op.voter, (tier, level, opts)); }
                    Err(e) => prop_assert!(opts.is_empty(), "{e}"),
                }
                let t = ps.get(id).unwrap().tally(1);
                prop_assert_eq!(t.voters as usize, model.len());
                for b in 0..5u8 {
                    let expect = model.values().filter(|(_, _, o)| o.contains(&b)).count() as u32;
                    prop_assert_eq!(t.counts[b as usize], expect);
                    for pt in &t.by_tier {
                        let expect = model.values().filter(|(tt, _, o)| *tt == pt.part && o.contains(&b)).count() as u32;
                        prop_assert_eq!(pt.counts[b as usize], expect);
                    }
                    for pl in &t.by_level {
                        let expect = model.values().filter(|(_, l, o)| *l == Some(pl.part) && o.contains(&b)).count() as u32;
                        prop_assert_eq!(pl.counts[b as usize], expect);
                    }
                }
                let tier_sum: u32 = t.by_tier.iter().map(|p| p.voters).sum();
                prop_assert_eq!(tier_sum, t.voters);
            }
        }
    }
}
