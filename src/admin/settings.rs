//! The settings of one activity: their defaults, their limits, and how each one reaches the
//! moderation state machine ([`crate::consult::Consultation`]).
//!
//! An organiser sets them before the session; an organiser or moderator changes them during
//! it. A change is a [`SettingsPatch`]; [`ActivitySettings::with_patch`] validates the result
//! and returns what changed as [`SettingChange`]s, and [`SettingChange::session_inputs`] says
//! what the running session must be told, as values (STYLE habit 12):
//!
//! ```text
//! let (next, changes) = activity.settings.with_patch(&patch)?;     // pure, validated
//! for change in &changes {
//!     for input in change.session_inputs(&next) {
//!         match input {
//!             SessionInput::Command(cmd) => driver.send(moderator_grants_of(actor), cmd),
//!             SessionInput::Missing(m)   => /* consult has no such input yet: see below */,
//!             SessionInput::ClientOnly   => /* clients re-read the activity */,
//!         }
//!     }
//! }
//! ```
//!
//! A command is run with the moderator grants of the staff member who made the change, so the
//! session's hash-chained audit log names them (consult logs `floor_mode_set`,
//! `floor_auto_advance_set`, `question_review_set`, `comment_policy_set` already), and every
//! connected client gets the resulting event (`mode_changed`, `comment_modes`) at once.
//!
//! | setting | consult today | needs |
//! |---|---|---|
//! | `discussion` | `ConsultationConfig::floor_mode`; `Command::SetFloorMode` | — |
//! | `turn_ms` | `ConsultationConfig::default_turn_ms` at start only | an input to change the default turn during a session |
//! | `overtime` | the floor always takes a turn back at its deadline (= `hard`) | `grace` and `soft` rules in `Floor::handle_tick` |
//! | `auto_advance` | `Command::SetAutoAdvance { limit_ms }` | — (we send `turn_ms` as the limit) |
//! | `question_review` | `ConsultationConfig::question_review`; `Command::SetQuestionReview` | — |
//! | `comment_review` | `PolicyChange::Review` + `PolicyChange::HoldWords` | — |
//! | `slow_mode_ms` | `PolicyChange::SlowMode` | — |
//! | `commenters` | `PolicyChange::VerifiedOnly`, `PolicyChange::Lockdown` | — (members only = lockdown: members, guests, moderators) |
//! | `block_words`, `hold_words` | `PolicyChange::BlockWords`, `PolicyChange::HoldWords` | — |
//! | `comments_open`, `questions_open` | nothing: comments and questions are always accepted | an interaction switch checked before the comment policy and question submission |
//! | `stage` | any present member or guest may be granted the floor | the line-up checked by `handle_grant_floor` and `handle_raise_hand` |
//! | `languages` | nothing (not a moderation matter) | — clients read it from the activity |
//!
//! The lifecycle needs two more inputs there: pausing sends `Command::MuteAll` (exists) and
//! closes interaction and hands ([`MissingInput::SetInteraction`], [`MissingInput::SetHands`]);
//! resuming opens them again as the settings say.

use serde::{Deserialize, Serialize};

use super::lifecycle::ActivityKind;
use super::error::AdminError;
use super::ids::PersonId;
use super::text;
use crate::consult::{Command, ConsultationConfig, FloorMode, OvertimeRule, ParticipantId, PolicyChange, SessionSettings};

/// Shortest default turn: 30 s.
pub const MIN_TURN_MS: u64 = 30_000;
/// Longest default turn: 30 min (a keynote; a moderator can still extend a turn).
pub const MAX_TURN_MS: u64 = 30 * 60_000;
/// Longest overtime grace: 5 min.
pub const MAX_GRACE_MS: u64 = 5 * 60_000;
/// Slow mode interval bounds when on: 1 s to 10 min.
pub const MIN_SLOW_MODE_MS: u64 = 1_000;
/// See [`MIN_SLOW_MODE_MS`].
pub const MAX_SLOW_MODE_MS: u64 = 10 * 60_000;
/// Most words in one keyword list.
pub const MAX_WORDS: usize = 500;
/// Longest keyword, in characters.
pub const MAX_WORD_CHARS: usize = 32;
/// Most people in a stage line-up (a room holds at most 50 participants by default).
pub const MAX_STAGE: usize = 50;
/// Most languages of one activity.
pub const MAX_LANGUAGES: usize = 8;

/// Chaired or open discussion (the floor's mode at the start).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Discussion {
    /// 主持模式: only the floor holder and the moderators are heard.
    Chaired,
    /// 自由讨论: every member and guest is heard; the floor still orders turns.
    Open,
}

impl From<Discussion> for FloorMode {
    fn from(d: Discussion) -> FloorMode {
        match d {
            Discussion::Chaired => FloorMode::Chaired,
            Discussion::Open => FloorMode::Open,
        }
    }
}

/// What happens when a turn's time is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Overtime {
    /// The floor is taken back at the deadline (what the floor does today).
    Hard,
    /// The speaker is warned at the deadline and the floor is taken back `grace_ms` later.
    Grace {
        /// How long after the deadline, 1 ms to [`MAX_GRACE_MS`].
        grace_ms: u64,
    },
    /// Never taken back by the clock: the overtime is shown, the moderator decides.
    Soft,
}

/// How the public's comments are reviewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommentReview {
    /// 先发后审: published at once; moderators hide what must go. Hold words are not applied.
    Off,
    /// Published at once unless they contain a hold word, which holds them for review.
    Keywords,
    /// 先审后发: every comment of the public waits for a moderator (hold words too).
    All,
}

/// Who may post comments (moderators always may).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Commenters {
    /// Everyone watching, anonymous viewers included.
    Public,
    /// Only real-name verified identities.
    Verified,
    /// Only members, guests and moderators (the public watches and may still ask questions).
    MembersOnly,
}

/// Which members and guests may go on stage (be granted the floor, publish media).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "who", content = "people", rename_all = "snake_case")]
pub enum StageLineup {
    /// Every invited member and guest.
    AnyInvited,
    /// Only these people (members or guests), at most [`MAX_STAGE`]; empty: moderators only.
    Listed(Vec<PersonId>),
}

/// A BCP 47 language tag such as `zh-CN`, `en`, `zh-Hans-CN` (syntax checked, not the
/// registry: 1 to 8 subtags of 1 to 8 letters or digits, the first 2 or 3 letters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "zh-CN")]
pub struct LanguageTag(String);

impl LanguageTag {
    /// Checks the syntax.
    pub fn new(s: &str) -> Result<Self, AdminError> {
        let parts: Vec<&str> = s.split('-').collect();
        let ok = s.len() <= 35
            && parts.len() <= 8
            && (2..=3).contains(&parts[0].len())
            && parts[0].bytes().all(|b| b.is_ascii_alphabetic())
            && parts.iter().all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(AdminError::invalid("settings.languages", format!("{s:?} is not a language tag such as zh-CN")))
        }
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LanguageTag {
    type Error = AdminError;
    fn try_from(s: String) -> Result<Self, AdminError> {
        Self::new(&s)
    }
}

impl From<LanguageTag> for String {
    fn from(t: LanguageTag) -> String {
        t.0
    }
}

/// Everything an organiser sets per activity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActivitySettings {
    /// Chaired or open discussion.
    pub discussion: Discussion,
    /// Default length of a turn at the floor, ms ([`MIN_TURN_MS`]..=[`MAX_TURN_MS`]).
    pub turn_ms: u64,
    /// What happens when a turn's time is up.
    pub overtime: Overtime,
    /// When a turn ends, the next raised hand gets the floor for `turn_ms`.
    pub auto_advance: bool,
    /// Questions of the public wait for a moderator before they are published.
    pub question_review: bool,
    /// How comments of the public are reviewed.
    pub comment_review: CommentReview,
    /// Slow mode: least interval between two comments of one identity, ms; 0 is off.
    pub slow_mode_ms: u64,
    /// Who may post comments.
    pub commenters: Commenters,
    /// Comments are accepted while the activity is open (the organiser may close them, e.g.
    /// until the speeches are over).
    pub comments_open: bool,
    /// Questions are accepted while the activity is open.
    pub questions_open: bool,
    /// A comment holding one of these is refused (NFKC, case-insensitive substring).
    pub block_words: Vec<String>,
    /// A comment holding one of these waits for review (unless `comment_review` is `off`).
    pub hold_words: Vec<String>,
    /// Who may go on stage.
    pub stage: StageLineup,
    /// Languages of the session, the first the main one (captions, interpretation, UI).
    pub languages: Vec<LanguageTag>,
}

impl ActivitySettings {
    /// The defaults for a kind of activity.
    ///
    /// A livestream faces the public: chaired, 3-minute turns taken back on time, questions
    /// and comments reviewed first (先审后发, the norm for a public body's live comments),
    /// 10 s slow mode. A room is members among themselves: chaired, no comment review and
    /// comments by members only (the public does not watch a room).
    pub fn defaults_for(kind: ActivityKind) -> Self {
        let base = ActivitySettings {
            discussion: Discussion::Chaired,
            turn_ms: 3 * 60_000,
            overtime: Overtime::Hard,
            auto_advance: false,
            question_review: true,
            comment_review: CommentReview::All,
            slow_mode_ms: 10_000,
            commenters: Commenters::Public,
            comments_open: true,
            questions_open: true,
            block_words: Vec::new(),
            hold_words: Vec::new(),
            stage: StageLineup::AnyInvited,
            languages: vec![LanguageTag("zh-CN".into())],
        };
        match kind {
            ActivityKind::Livestream => base,
            ActivityKind::Room => ActivitySettings {
                comment_review: CommentReview::Off,
                slow_mode_ms: 0,
                commenters: Commenters::MembersOnly,
                ..base
            },
        }
    }

    /// Checks every field and returns the settings with keyword lists normalised (NFC,
    /// trimmed, duplicates dropped).
    pub fn validated(mut self) -> Result<Self, AdminError> {
        if !(MIN_TURN_MS..=MAX_TURN_MS).contains(&self.turn_ms) {
            return Err(AdminError::invalid(
                "settings.turn_ms",
                format!("{MIN_TURN_MS} to {MAX_TURN_MS} ms"),
            ));
        }
        if let Overtime::Grace { grace_ms } = self.overtime
            && !(1..=MAX_GRACE_MS).contains(&grace_ms)
        {
            return Err(AdminError::invalid("settings.overtime.grace_ms", format!("1 to {MAX_GRACE_MS} ms")));
        }
        if self.slow_mode_ms != 0 && !(MIN_SLOW_MODE_MS..=MAX_SLOW_MODE_MS).contains(&self.slow_mode_ms) {
            return Err(AdminError::invalid(
                "settings.slow_mode_ms",
                format!("0 (off) or {MIN_SLOW_MODE_MS} to {MAX_SLOW_MODE_MS} ms"),
            ));
        }
        self.block_words = words("settings.block_words", &self.block_words)?;
        self.hold_words = words("settings.hold_words", &self.hold_words)?;
        if let StageLineup::Listed(people) = &self.stage {
            if people.len() > MAX_STAGE {
                return Err(AdminError::invalid("settings.stage", format!("at most {MAX_STAGE} people")));
            }
            if has_duplicates(people) {
                return Err(AdminError::invalid("settings.stage", "a person is listed twice"));
            }
        }
        if self.languages.is_empty() || self.languages.len() > MAX_LANGUAGES {
            return Err(AdminError::invalid("settings.languages", format!("1 to {MAX_LANGUAGES} languages")));
        }
        if has_duplicates(&self.languages) {
            return Err(AdminError::invalid("settings.languages", "a language is listed twice"));
        }
        Ok(self)
    }

    /// These settings changed by `patch`, validated, and what changed (in field order;
    /// a field set to its current value is not a change).
    pub fn with_patch(&self, patch: &SettingsPatch) -> Result<(ActivitySettings, Vec<SettingChange>), AdminError> {
        let p = patch.clone();
        let next = ActivitySettings {
            discussion: p.discussion.unwrap_or(self.discussion),
            turn_ms: p.turn_ms.unwrap_or(self.turn_ms),
            overtime: p.overtime.unwrap_or(self.overtime),
            auto_advance: p.auto_advance.unwrap_or(self.auto_advance),
            question_review: p.question_review.unwrap_or(self.question_review),
            comment_review: p.comment_review.unwrap_or(self.comment_review),
            slow_mode_ms: p.slow_mode_ms.unwrap_or(self.slow_mode_ms),
            commenters: p.commenters.unwrap_or(self.commenters),
            comments_open: p.comments_open.unwrap_or(self.comments_open),
            questions_open: p.questions_open.unwrap_or(self.questions_open),
            block_words: p.block_words.unwrap_or_else(|| self.block_words.clone()),
            hold_words: p.hold_words.unwrap_or_else(|| self.hold_words.clone()),
            stage: p.stage.unwrap_or_else(|| self.stage.clone()),
            languages: p.languages.unwrap_or_else(|| self.languages.clone()),
        }
        .validated()?;
        let mut changes = Vec::new();
        let mut diff = |changed: bool, c: SettingChange| {
            if changed {
                changes.push(c);
            }
        };
        diff(next.discussion != self.discussion, SettingChange::Discussion(next.discussion));
        diff(next.turn_ms != self.turn_ms, SettingChange::TurnMs(next.turn_ms));
        diff(next.overtime != self.overtime, SettingChange::Overtime(next.overtime));
        diff(next.auto_advance != self.auto_advance, SettingChange::AutoAdvance(next.auto_advance));
        diff(next.question_review != self.question_review, SettingChange::QuestionReview(next.question_review));
        diff(next.comment_review != self.comment_review, SettingChange::CommentReview(next.comment_review));
        diff(next.slow_mode_ms != self.slow_mode_ms, SettingChange::SlowModeMs(next.slow_mode_ms));
        diff(next.commenters != self.commenters, SettingChange::Commenters(next.commenters));
        diff(next.comments_open != self.comments_open, SettingChange::CommentsOpen(next.comments_open));
        diff(next.questions_open != self.questions_open, SettingChange::QuestionsOpen(next.questions_open));
        diff(next.block_words != self.block_words, SettingChange::BlockWords(next.block_words.clone()));
        diff(next.hold_words != self.hold_words, SettingChange::HoldWords(next.hold_words.clone()));
        diff(next.stage != self.stage, SettingChange::Stage(next.stage.clone()));
        diff(next.languages != self.languages, SettingChange::Languages(next.languages.clone()));
        Ok((next, changes))
    }

    /// How a session of these settings starts: the state machine's config, then the inputs
    /// that bring it to these settings (comment policy, auto-advance, and those it lacks).
    pub fn session_start(&self, title: &str) -> (ConsultationConfig, Vec<SessionInput>) {
        let config = ConsultationConfig {
            title: title.to_owned(),
            floor_mode: self.discussion.into(),
            default_turn_ms: self.turn_ms,
            question_review: self.question_review,
        };
        // Everything consult does not take in its config, as the change from its own start
        // (comment policy all off, no auto-advance, hard overtime, interaction open, anyone on
        // stage). The discussion mode, turn and question review are in the config already.
        let mut inputs = Vec::new();
        let mut add = |c: SettingChange| inputs.extend(c.session_inputs(self));
        if self.auto_advance {
            add(SettingChange::AutoAdvance(true));
        }
        add(SettingChange::CommentReview(self.comment_review));
        if !self.block_words.is_empty() {
            add(SettingChange::BlockWords(self.block_words.clone()));
        }
        if self.slow_mode_ms != 0 {
            add(SettingChange::SlowModeMs(self.slow_mode_ms));
        }
        if self.commenters != Commenters::Public {
            add(SettingChange::Commenters(self.commenters));
        }
        if self.overtime != Overtime::Hard {
            add(SettingChange::Overtime(self.overtime));
        }
        if !(self.comments_open && self.questions_open) {
            add(SettingChange::CommentsOpen(self.comments_open));
        }
        if self.stage != StageLineup::AnyInvited {
            add(SettingChange::Stage(self.stage.clone()));
        }
        (config, inputs)
    }

    /// The whole state a running session must be in with these settings (`paused`: the
    /// activity is paused), for the moderation driver to reconcile with
    /// ([`crate::consult::Consultation::handle_session_settings`]). This is what the hub sends:
    /// after every change and when a driver starts; [`SettingChange::session_inputs`] remains
    /// the per-change description of the same mapping.
    pub fn session_settings(&self, paused: bool) -> SessionSettings {
        SessionSettings {
            floor_mode: self.discussion.into(),
            default_turn_ms: self.turn_ms,
            overtime: match self.overtime {
                Overtime::Hard => OvertimeRule::Hard,
                Overtime::Grace { grace_ms } => OvertimeRule::Grace { grace_ms },
                Overtime::Soft => OvertimeRule::Soft,
            },
            auto_advance: self.auto_advance,
            question_review: self.question_review,
            review: self.comment_review == CommentReview::All,
            slow_mode_ms: (self.slow_mode_ms != 0).then_some(self.slow_mode_ms),
            verified_only: self.commenters == Commenters::Verified,
            lockdown: self.commenters == Commenters::MembersOnly,
            block_words: self.block_words.clone(),
            hold_words: if self.comment_review == CommentReview::Off { Vec::new() } else { self.hold_words.clone() },
            comments_open: self.comments_open,
            questions_open: self.questions_open,
            stage: match &self.stage {
                StageLineup::AnyInvited => None,
                StageLineup::Listed(people) => {
                    Some(people.iter().map(|p| ParticipantId::new(p.as_str())).collect())
                }
            },
            paused,
        }
    }
}

fn words(field: &'static str, ws: &[String]) -> Result<Vec<String>, AdminError> {
    if ws.len() > MAX_WORDS {
        return Err(AdminError::invalid(field, format!("at most {MAX_WORDS} words")));
    }
    let mut out: Vec<String> = Vec::with_capacity(ws.len());
    for w in ws {
        let w = text::line(field, w, MAX_WORD_CHARS)?;
        if !out.contains(&w) {
            out.push(w);
        }
    }
    Ok(out)
}

fn has_duplicates<T: PartialEq>(xs: &[T]) -> bool {
    xs.iter().enumerate().any(|(i, x)| xs[..i].contains(x))
}

/// A change of some settings: every field is optional; a missing one stays as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// See [`ActivitySettings::discussion`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discussion: Option<Discussion>,
    /// See [`ActivitySettings::turn_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_ms: Option<u64>,
    /// See [`ActivitySettings::overtime`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overtime: Option<Overtime>,
    /// See [`ActivitySettings::auto_advance`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_advance: Option<bool>,
    /// See [`ActivitySettings::question_review`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_review: Option<bool>,
    /// See [`ActivitySettings::comment_review`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_review: Option<CommentReview>,
    /// See [`ActivitySettings::slow_mode_ms`] (0 turns it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_mode_ms: Option<u64>,
    /// See [`ActivitySettings::commenters`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commenters: Option<Commenters>,
    /// See [`ActivitySettings::comments_open`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments_open: Option<bool>,
    /// See [`ActivitySettings::questions_open`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub questions_open: Option<bool>,
    /// Replaces [`ActivitySettings::block_words`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_words: Option<Vec<String>>,
    /// Replaces [`ActivitySettings::hold_words`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_words: Option<Vec<String>>,
    /// Replaces [`ActivitySettings::stage`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<StageLineup>,
    /// Replaces [`ActivitySettings::languages`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<LanguageTag>>,
}

impl SettingsPatch {
    /// Whether it changes any of the settings the moderation state machine knows as session
    /// state (so a moderator, not only an organiser, may send it while the session runs).
    /// Everything but `languages` and `stage`, which shape who is invited on stage and what
    /// the clients show: those stay with the organiser.
    pub fn is_session_only(&self) -> bool {
        self.languages.is_none() && self.stage.is_none()
    }
}

/// One setting that changed, with its new value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "setting", content = "value", rename_all = "snake_case")]
pub enum SettingChange {
    /// [`ActivitySettings::discussion`].
    Discussion(Discussion),
    /// [`ActivitySettings::turn_ms`].
    TurnMs(u64),
    /// [`ActivitySettings::overtime`].
    Overtime(Overtime),
    /// [`ActivitySettings::auto_advance`].
    AutoAdvance(bool),
    /// [`ActivitySettings::question_review`].
    QuestionReview(bool),
    /// [`ActivitySettings::comment_review`].
    CommentReview(CommentReview),
    /// [`ActivitySettings::slow_mode_ms`].
    SlowModeMs(u64),
    /// [`ActivitySettings::commenters`].
    Commenters(Commenters),
    /// [`ActivitySettings::comments_open`].
    CommentsOpen(bool),
    /// [`ActivitySettings::questions_open`].
    QuestionsOpen(bool),
    /// [`ActivitySettings::block_words`].
    BlockWords(Vec<String>),
    /// [`ActivitySettings::hold_words`].
    HoldWords(Vec<String>),
    /// [`ActivitySettings::stage`].
    Stage(StageLineup),
    /// [`ActivitySettings::languages`].
    Languages(Vec<LanguageTag>),
}

impl SettingChange {
    /// The setting's field name (for the audit log: `settings_changed` with this target).
    pub fn field(&self) -> &'static str {
        match self {
            SettingChange::Discussion(_) => "discussion",
            SettingChange::TurnMs(_) => "turn_ms",
            SettingChange::Overtime(_) => "overtime",
            SettingChange::AutoAdvance(_) => "auto_advance",
            SettingChange::QuestionReview(_) => "question_review",
            SettingChange::CommentReview(_) => "comment_review",
            SettingChange::SlowModeMs(_) => "slow_mode_ms",
            SettingChange::Commenters(_) => "commenters",
            SettingChange::CommentsOpen(_) => "comments_open",
            SettingChange::QuestionsOpen(_) => "questions_open",
            SettingChange::BlockWords(_) => "block_words",
            SettingChange::HoldWords(_) => "hold_words",
            SettingChange::Stage(_) => "stage",
            SettingChange::Languages(_) => "languages",
        }
    }

    /// What a running session must be told so that it follows this change; `after` are the
    /// settings with the change applied (some inputs depend on other settings: auto-advance
    /// sends the turn length, hold words depend on the review mode).
    pub fn session_inputs(&self, after: &ActivitySettings) -> Vec<SessionInput> {
        use SessionInput::{ClientOnly, Command as Cmd, Missing};
        let policy = |change| Cmd(Command::SetCommentPolicy { change });
        let hold_words = || {
            if after.comment_review == CommentReview::Off { Vec::new() } else { after.hold_words.clone() }
        };
        match self {
            SettingChange::Discussion(d) => vec![Cmd(Command::SetFloorMode { mode: (*d).into() })],
            SettingChange::TurnMs(ms) => {
                let mut v = vec![Missing(MissingInput::SetDefaultTurn { turn_ms: *ms })];
                if after.auto_advance {
                    v.push(Cmd(Command::SetAutoAdvance { limit_ms: Some(*ms) }));
                }
                v
            }
            SettingChange::Overtime(o) => vec![Missing(MissingInput::SetOvertime(*o))],
            SettingChange::AutoAdvance(on) => {
                vec![Cmd(Command::SetAutoAdvance { limit_ms: on.then_some(after.turn_ms) })]
            }
            SettingChange::QuestionReview(on) => vec![Cmd(Command::SetQuestionReview { review: *on })],
            SettingChange::CommentReview(r) => vec![
                policy(PolicyChange::Review(*r == CommentReview::All)),
                policy(PolicyChange::HoldWords(hold_words())),
            ],
            SettingChange::HoldWords(_) => vec![policy(PolicyChange::HoldWords(hold_words()))],
            SettingChange::BlockWords(ws) => vec![policy(PolicyChange::BlockWords(ws.clone()))],
            SettingChange::SlowModeMs(ms) => {
                vec![policy(PolicyChange::SlowMode((*ms != 0).then_some(*ms)))]
            }
            SettingChange::Commenters(c) => vec![
                policy(PolicyChange::VerifiedOnly(*c == Commenters::Verified)),
                policy(PolicyChange::Lockdown(*c == Commenters::MembersOnly)),
            ],
            SettingChange::CommentsOpen(_) | SettingChange::QuestionsOpen(_) => {
                vec![Missing(MissingInput::SetInteraction {
                    comments: after.comments_open,
                    questions: after.questions_open,
                })]
            }
            SettingChange::Stage(s) => vec![Missing(MissingInput::SetStage(s.clone()))],
            SettingChange::Languages(_) => vec![ClientOnly],
        }
    }
}

/// What the running session must be told after a setting changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionInput {
    /// A command the moderation state machine has today; run it with the changing staff
    /// member's moderator grants so its audit log names them.
    Command(Command),
    /// An input the state machine does not have yet (the wiring step adds it to consult).
    Missing(MissingInput),
    /// Nothing for the state machine; clients re-read the activity.
    ClientOnly,
}

/// The inputs `consult` lacks for the settings it does not follow yet (see the module table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MissingInput {
    /// The turn length a grant without a limit gets.
    SetDefaultTurn {
        /// The new default.
        turn_ms: u64,
    },
    /// The overtime rule the floor's tick applies.
    SetOvertime(Overtime),
    /// Whether comments and questions are accepted now.
    SetInteraction {
        /// Comments.
        comments: bool,
        /// Questions.
        questions: bool,
    },
    /// Who may be granted the floor and raise a hand.
    SetStage(StageLineup),
    /// Whether hands may be raised (off while paused; raised hands stay raised).
    SetHands {
        /// Open or not.
        open: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> ActivitySettings {
        ActivitySettings::defaults_for(ActivityKind::Livestream)
    }

    #[test]
    fn defaults_of_both_kinds_are_valid() {
        for k in [ActivityKind::Livestream, ActivityKind::Room] {
            let d = ActivitySettings::defaults_for(k);
            assert_eq!(d.clone().validated().unwrap(), d);
        }
        assert_eq!(ActivitySettings::defaults_for(ActivityKind::Room).commenters, Commenters::MembersOnly);
        assert_eq!(live().comment_review, CommentReview::All);
    }

    #[test]
    fn out_of_range_settings_are_refused_naming_the_field() {
        let bad = |p: SettingsPatch| match live().with_patch(&p) {
            Err(AdminError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(bad(SettingsPatch { turn_ms: Some(MIN_TURN_MS - 1), ..Default::default() }), "settings.turn_ms");
        assert_eq!(bad(SettingsPatch { turn_ms: Some(MAX_TURN_MS + 1), ..Default::default() }), "settings.turn_ms");
        assert_eq!(bad(SettingsPatch { slow_mode_ms: Some(999), ..Default::default() }), "settings.slow_mode_ms");
        assert_eq!(
            bad(SettingsPatch { overtime: Some(Overtime::Grace { grace_ms: 0 }), ..Default::default() }),
            "settings.overtime.grace_ms"
        );
        assert_eq!(
            bad(SettingsPatch { block_words: Some(vec!["x".repeat(MAX_WORD_CHARS + 1)]), ..Default::default() }),
            "settings.block_words"
        );
        assert_eq!(
            bad(SettingsPatch { hold_words: Some(vec!["w".into(); MAX_WORDS + 1]), ..Default::default() }),
            "settings.hold_words"
        );
        assert_eq!(bad(SettingsPatch { hold_words: Some(vec![" ".into()]), ..Default::default() }), "settings.hold_words");
        let p = PersonId::new("m-1").unwrap();
        assert_eq!(
            bad(SettingsPatch { stage: Some(StageLineup::Listed(vec![p.clone(), p])), ..Default::default() }),
            "settings.stage"
        );
        let many: Vec<PersonId> = (0..=MAX_STAGE).map(|i| PersonId::new(&format!("m-{i}")).unwrap()).collect();
        assert_eq!(bad(SettingsPatch { stage: Some(StageLineup::Listed(many)), ..Default::default() }), "settings.stage");
        assert_eq!(bad(SettingsPatch { languages: Some(vec![]), ..Default::default() }), "settings.languages");
        assert!(LanguageTag::new("zh-Hans-CN").is_ok());
        for t in ["z", "中文", "zh_CN", "zh--CN", "1a", "zh-toolongsubtag"] {
            assert!(LanguageTag::new(t).is_err(), "{t}");
        }
        assert!(serde_json::from_str::<SettingsPatch>(r#"{"turn_ms":60000,"bogus":1}"#).is_err());
    }

    #[test]
    fn a_patch_reports_only_what_changed_and_keyword_lists_are_deduplicated() {
        let p = SettingsPatch {
            turn_ms: Some(live().turn_ms),
            slow_mode_ms: Some(0),
            hold_words: Some(vec![" 敏感 ".into(), "敏感".into()]),
            ..Default::default()
        };
        let (next, changes) = live().with_patch(&p).unwrap();
        assert_eq!(next.hold_words, ["敏感"]);
        assert_eq!(changes, [SettingChange::SlowModeMs(0), SettingChange::HoldWords(vec!["敏感".into()])]);
    }

    #[test]
    fn changes_map_onto_the_moderation_commands_consult_already_has() {
        let s = live();
        let (after, changes) = s
            .with_patch(&SettingsPatch {
                discussion: Some(Discussion::Open),
                commenters: Some(Commenters::Verified),
                comment_review: Some(CommentReview::Off),
                hold_words: Some(vec!["拆迁".into()]),
                ..Default::default()
            })
            .unwrap();
        let inputs: Vec<SessionInput> = changes.iter().flat_map(|c| c.session_inputs(&after)).collect();
        let policy = |change| SessionInput::Command(Command::SetCommentPolicy { change });
        assert_eq!(
            inputs,
            [
                SessionInput::Command(Command::SetFloorMode { mode: FloorMode::Open }),
                policy(PolicyChange::Review(false)),
                // Review off: hold words are not applied (先发后审).
                policy(PolicyChange::HoldWords(vec![])),
                policy(PolicyChange::VerifiedOnly(true)),
                policy(PolicyChange::Lockdown(false)),
                policy(PolicyChange::HoldWords(vec![])),
            ]
        );
        let (after, changes) = after
            .with_patch(&SettingsPatch { auto_advance: Some(true), comments_open: Some(false), ..Default::default() })
            .unwrap();
        let inputs: Vec<SessionInput> = changes.iter().flat_map(|c| c.session_inputs(&after)).collect();
        assert_eq!(
            inputs,
            [
                SessionInput::Command(Command::SetAutoAdvance { limit_ms: Some(after.turn_ms) }),
                SessionInput::Missing(MissingInput::SetInteraction { comments: false, questions: true }),
            ]
        );
    }

    #[test]
    fn a_session_starts_with_the_config_and_the_policy_of_its_settings() {
        let mut s = live();
        s.block_words = vec!["广告".into()];
        let (config, inputs) = s.session_start("城乡融合发展");
        assert_eq!(config.title, "城乡融合发展");
        assert_eq!(config.floor_mode, FloorMode::Chaired);
        assert_eq!(config.default_turn_ms, 180_000);
        assert!(config.question_review);
        let policy = |change| SessionInput::Command(Command::SetCommentPolicy { change });
        assert_eq!(
            inputs,
            [
                policy(PolicyChange::Review(true)),
                policy(PolicyChange::HoldWords(vec![])),
                policy(PolicyChange::BlockWords(vec!["广告".into()])),
                policy(PolicyChange::SlowMode(Some(10_000))),
            ]
        );
    }
}
