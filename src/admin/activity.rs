//! Activities as a resource: what an organiser schedules, its lifecycle, and what each state
//! allows.
//!
//! ```text
//!              open (from 1 h before the start)   pause
//!  scheduled ─────────────────────────────────▶ open ◀──────▶ paused
//!     │                                          │   resume     │
//!     │ delete (only before it ever opened)      └─── close ────┘
//!     ▼                                                │
//!  (removed)                                        closed ◀──── unarchive ──┐
//!                                                      └────── archive ─────▶ archived
//! ```
//!
//! | state | public page | joins | comments, questions, hands | editable | record |
//! |---|---|---|---|---|---|
//! | scheduled | waiting page with a countdown to the start | no (invitations redeem, the page waits) | no | everything | — |
//! | open | live | yes | when the organiser has them open (settings) | settings, planned end | being written |
//! | paused | live, "paused" | yes | no; everyone but moderators muted | settings, planned end | being written |
//! | closed | replay | no | no | nothing (read-only) | exported (minutes), replay linked |
//! | archived | not listed (reachable by id) | no | no | nothing | as closed |
//!
//! Every change is a method that takes the [`Actor`], the committee [`Directory`] and `now_ms`,
//! authorises it ([`super::access`]), checks the lifecycle, and returns what happened as values:
//! a [`Transition`] with its [`Effect`]s for the hub to carry out, and [`AuditNote`]s for the
//! activity's audit log. Nothing here does I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::access::{Access, Actor, Share, access, require, require_own_organiser};
pub use super::audit::AuditNote;
use super::committee::{Directory, Level};
use super::error::AdminError;
use super::ids::CommitteeId;
pub use super::lifecycle::{ActivityKind, LifecycleAction, LifecycleState};
use super::settings::{ActivitySettings, MissingInput, SessionInput, SettingChange, SettingsPatch};
use super::text;
use crate::consult::{Command, ConsultationConfig};
use shangliang_signaling::ActivityId;

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 100;
/// Longest topic (议题), in characters.
pub const MAX_TOPIC_CHARS: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
/// Most lines of a description.
pub const MAX_DESCRIPTION_LINES: usize = 200;
/// Shortest planned duration: 5 min.
pub const MIN_DURATION_MS: u64 = 5 * 60_000;
/// Longest planned duration: 24 h (a session of several days is several activities).
pub const MAX_DURATION_MS: u64 = 24 * 3_600_000;
/// Furthest ahead an activity may be scheduled: 400 days.
pub const MAX_LEAD_MS: u64 = 400 * 86_400_000;
/// How long before its scheduled start an activity may be opened (members test their camera
/// and microphone in the last hour); earlier is [`AdminError::TooEarly`].
pub const OPEN_EARLY_MS: u64 = 3_600_000;
/// Most committees one activity may be shared with (a province session with every county of
/// the province as a sub-venue is about 110).
pub const MAX_SHARES: usize = 200;

/// What an organiser fills in to schedule an activity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityDraft {
    /// Title, 1 to [`MAX_TITLE_CHARS`] characters.
    pub title: String,
    /// The topic under consultation (议题), 1 to [`MAX_TOPIC_CHARS`] characters.
    pub topic: String,
    /// Description (multi-line, may be empty), at most [`MAX_DESCRIPTION_CHARS`].
    pub description: String,
    /// Room or livestream.
    pub kind: ActivityKind,
    /// The organising committee.
    pub committee: CommitteeId,
    /// Scheduled start, ms since the Unix epoch; not in the past.
    pub scheduled_start_ms: u64,
    /// Planned end, ms; [`MIN_DURATION_MS`] to [`MAX_DURATION_MS`] after the start.
    pub planned_end_ms: u64,
    /// Settings different from the kind's defaults.
    pub settings: SettingsPatch,
}

/// A change of an activity's resource fields; a missing field stays as it is. The organising
/// committee and the kind do not change (schedule a new activity instead).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityPatch {
    /// New title.
    pub title: Option<String>,
    /// New topic.
    pub topic: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New start (only while scheduled).
    pub scheduled_start_ms: Option<u64>,
    /// New planned end (also while live: a session that runs long).
    pub planned_end_ms: Option<u64>,
}

/// What the hub must do after a transition (decisions as values, STYLE habit 12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Start the moderation driver with this config, then feed it these inputs (as the actor);
    /// the public page switches from the countdown to the live page.
    StartSession {
        /// The state machine's config.
        config: ConsultationConfig,
        /// Inputs that bring it to the activity's settings.
        inputs: Vec<SessionInput>,
    },
    /// Feed the running session these inputs (pause: mute all and stop interaction; resume:
    /// interaction as the settings say).
    SessionInputs(Vec<SessionInput>),
    /// Stop the driver after a final summary; store the minutes (the record's export) and
    /// the signed tree head with it; close every connection with "activity closed".
    EndSession,
    /// The replay page, from now on linked from the activity.
    LinkReplay {
        /// Its path, `/replay/{id}`.
        path: String,
    },
    /// Leave it out of lists (still reachable by id).
    HideFromLists,
    /// List it again.
    ShowInLists,
    /// Remove the activity and its invitations from the record (nothing was recorded yet).
    Remove,
}

/// The result of a lifecycle action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// What was done.
    pub action: LifecycleAction,
    /// From where.
    pub from: LifecycleState,
    /// To where; `None`: removed (the caller drops the activity).
    pub to: Option<LifecycleState>,
    /// What the hub must do.
    pub effects: Vec<Effect>,
    /// For the audit log.
    pub audit: AuditNote,
}

/// What the activity's state allows now, for the pages and the console.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateRules {
    /// Show the waiting page (scheduled).
    pub waiting_page: bool,
    /// Until the scheduled start, ms (scheduled only; 0 once due: "starting soon").
    pub countdown_ms: Option<u64>,
    /// Participants and the public may join the live session (open, paused).
    pub may_join: bool,
    /// Comments are accepted now (open, and the settings have them open).
    pub comments_open: bool,
    /// Questions are accepted now (open, and the settings have them open).
    pub questions_open: bool,
    /// Hands may be raised (open).
    pub hands_open: bool,
    /// Title, topic, description and start may change (scheduled).
    pub details_editable: bool,
    /// Settings and the planned end may change (scheduled, open, paused).
    pub settings_editable: bool,
    /// Invitations may be issued and redeemed (scheduled, open, paused).
    pub invitations_open: bool,
    /// Nothing may change (closed, archived).
    pub read_only: bool,
    /// The minutes are final and exported (closed, archived).
    pub record_exported: bool,
    /// The replay page (closed, archived).
    pub replay_path: Option<String>,
    /// Listed (everything but archived).
    pub listed: bool,
}

/// One activity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    id: ActivityId,
    title: String,
    topic: String,
    description: String,
    kind: ActivityKind,
    committee: CommitteeId,
    level: Level,
    scheduled_start_ms: u64,
    planned_end_ms: u64,
    state: LifecycleState,
    settings: ActivitySettings,
    shares: BTreeMap<CommitteeId, Share>,
    created_ms: u64,
    created_by: String,
    opened_ms: Option<u64>,
    closed_ms: Option<u64>,
}

fn check_schedule(start: u64, end: u64, now_ms: u64, start_changed: bool) -> Result<(), AdminError> {
    if start_changed && start < now_ms {
        return Err(AdminError::BadSchedule("the start is in the past".into()));
    }
    if start_changed && start > now_ms.saturating_add(MAX_LEAD_MS) {
        return Err(AdminError::BadSchedule(format!("the start is more than {} days ahead", MAX_LEAD_MS / 86_400_000)));
    }
    if end <= start {
        return Err(AdminError::BadSchedule("the planned end is not after the start".into()));
    }
    let d = end - start;
    if !(MIN_DURATION_MS..=MAX_DURATION_MS).contains(&d) {
        return Err(AdminError::BadSchedule(format!(
            "it must last {} min to {} h",
            MIN_DURATION_MS / 60_000,
            MAX_DURATION_MS / 3_600_000
        )));
    }
    Ok(())
}

impl Activity {
    /// Schedules a new activity (state `scheduled`) from a draft: the actor must be an
    /// organiser of the draft's committee (or the operator); every field is validated; the
    /// start may not be in the past.
    pub fn handle_schedule(
        id: ActivityId,
        draft: ActivityDraft,
        actor: &Actor,
        directory: &Directory,
        now_ms: u64,
    ) -> Result<(Activity, AuditNote), AdminError> {
        let committee = directory.get(&draft.committee).ok_or(AdminError::NoSuchCommittee)?;
        require_own_organiser(actor, &draft.committee)?;
        let title = text::line("title", &draft.title, MAX_TITLE_CHARS)?;
        let topic = text::line("topic", &draft.topic, MAX_TOPIC_CHARS)?;
        let description =
            text::block("description", &draft.description, MAX_DESCRIPTION_CHARS, MAX_DESCRIPTION_LINES)?;
        check_schedule(draft.scheduled_start_ms, draft.planned_end_ms, now_ms, true)?;
        let (settings, _) = ActivitySettings::defaults_for(draft.kind).with_patch(&draft.settings)?;
        let audit = AuditNote::new(now_ms, actor.audit_name(), "activity_scheduled", id.as_str(), draft.kind.as_str());
        Ok((
            Activity {
                id,
                title,
                topic,
                description,
                kind: draft.kind,
                committee: committee.id.clone(),
                level: committee.level,
                scheduled_start_ms: draft.scheduled_start_ms,
                planned_end_ms: draft.planned_end_ms,
                state: LifecycleState::Scheduled,
                settings,
                shares: BTreeMap::new(),
                created_ms: now_ms,
                created_by: actor.audit_name(),
                opened_ms: None,
                closed_ms: None,
            },
            audit,
        ))
    }

    /// The id.
    pub fn id(&self) -> &ActivityId {
        &self.id
    }
    /// The title.
    pub fn title(&self) -> &str {
        &self.title
    }
    /// The topic (议题).
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// The description.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// Room or livestream.
    pub fn kind(&self) -> ActivityKind {
        self.kind
    }
    /// The organising committee.
    pub fn committee(&self) -> &CommitteeId {
        &self.committee
    }
    /// The organising committee's level (kept with the activity for lists by level).
    pub fn level(&self) -> Level {
        self.level
    }
    /// Scheduled start, ms.
    pub fn scheduled_start_ms(&self) -> u64 {
        self.scheduled_start_ms
    }
    /// Planned end, ms.
    pub fn planned_end_ms(&self) -> u64 {
        self.planned_end_ms
    }
    /// The lifecycle state.
    pub fn state(&self) -> LifecycleState {
        self.state
    }
    /// The settings.
    pub fn settings(&self) -> &ActivitySettings {
        &self.settings
    }
    /// The committees it is shared with.
    pub fn shares(&self) -> &BTreeMap<CommitteeId, Share> {
        &self.shares
    }
    /// When it was scheduled, ms.
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }
    /// Who scheduled it ([`Actor::audit_name`]).
    pub fn created_by(&self) -> &str {
        &self.created_by
    }
    /// When it first opened.
    pub fn opened_ms(&self) -> Option<u64> {
        self.opened_ms
    }
    /// When it closed.
    pub fn closed_ms(&self) -> Option<u64> {
        self.closed_ms
    }

    /// The state its running session must be in (settings, and paused or not), for the
    /// moderation driver.
    pub fn session_settings(&self) -> crate::consult::SessionSettings {
        self.settings.session_settings(self.state == LifecycleState::Paused)
    }

    /// The access `actor` has to it.
    pub fn access_of(&self, actor: &Actor, directory: &Directory) -> Access {
        access(actor, &self.committee, &self.shares, directory)
    }

    /// Refuses unless `actor` has `need` on this activity (the committee rule, see
    /// [`super::access`]).
    pub fn check_access(&self, actor: &Actor, directory: &Directory, need: Access) -> Result<Access, AdminError> {
        require(actor, &self.committee, &self.shares, directory, need)
    }

    /// What the state allows at `now_ms`.
    pub fn rules(&self, now_ms: u64) -> StateRules {
        use LifecycleState as S;
        let s = self.state;
        StateRules {
            waiting_page: s == S::Scheduled,
            countdown_ms: (s == S::Scheduled).then(|| self.scheduled_start_ms.saturating_sub(now_ms)),
            may_join: s.is_live(),
            comments_open: s == S::Open && self.settings.comments_open,
            questions_open: s == S::Open && self.settings.questions_open,
            hands_open: s == S::Open,
            details_editable: s == S::Scheduled,
            settings_editable: !s.is_read_only(),
            invitations_open: !s.is_read_only(),
            read_only: s.is_read_only(),
            record_exported: s.is_read_only(),
            replay_path: s.is_read_only().then(|| self.replay_path()),
            listed: s != S::Archived,
        }
    }

    /// The replay page's path.
    pub fn replay_path(&self) -> String {
        format!("/replay/{}", self.id)
    }

    /// The lifecycle actions `actor` may take now (the console's buttons). `open` is listed
    /// from [`OPEN_EARLY_MS`] before the start.
    pub fn available_actions(&self, actor: &Actor, directory: &Directory, now_ms: u64) -> Vec<LifecycleAction> {
        let have = self.access_of(actor, directory);
        LifecycleAction::ALL
            .into_iter()
            .filter(|a| have >= a.needs() && self.state.after(*a).is_some())
            .filter(|a| *a != LifecycleAction::Open || now_ms >= self.opens_from_ms())
            .collect()
    }

    /// The earliest time it may be opened.
    pub fn opens_from_ms(&self) -> u64 {
        self.scheduled_start_ms.saturating_sub(OPEN_EARLY_MS)
    }

    /// Runs a lifecycle action: authorised by committee and role ([`LifecycleAction::needs`]),
    /// then checked against the state (and, for `open`, the time). On success the state has
    /// changed (except for `delete`: see [`Transition::to`]).
    pub fn handle_transition(
        &mut self,
        actor: &Actor,
        directory: &Directory,
        action: LifecycleAction,
        reason: Option<&str>,
        now_ms: u64,
    ) -> Result<Transition, AdminError> {
        self.check_access(actor, directory, action.needs())?;
        let from = self.state;
        let to = from.after(action).ok_or(AdminError::BadTransition { action, state: from })?;
        if action == LifecycleAction::Open && now_ms < self.opens_from_ms() {
            return Err(AdminError::TooEarly { opens_from_ms: self.opens_from_ms() });
        }
        let reason = reason
            .map(|r| text::line("reason", r, shangliang_signaling::limits::MAX_REASON_CHARS))
            .transpose()?;
        let effects = match action {
            LifecycleAction::Open => {
                let (config, inputs) = self.settings.session_start(&self.title);
                vec![Effect::StartSession { config, inputs }]
            }
            LifecycleAction::Pause => vec![Effect::SessionInputs(vec![
                SessionInput::Command(Command::MuteAll),
                SessionInput::Missing(MissingInput::SetInteraction { comments: false, questions: false }),
                SessionInput::Missing(MissingInput::SetHands { open: false }),
            ])],
            LifecycleAction::Resume => vec![Effect::SessionInputs(vec![
                SessionInput::Missing(MissingInput::SetInteraction {
                    comments: self.settings.comments_open,
                    questions: self.settings.questions_open,
                }),
                SessionInput::Missing(MissingInput::SetHands { open: true }),
            ])],
            LifecycleAction::Close => vec![Effect::EndSession, Effect::LinkReplay { path: self.replay_path() }],
            LifecycleAction::Archive => vec![Effect::HideFromLists],
            LifecycleAction::Unarchive => vec![Effect::ShowInLists],
            LifecycleAction::Delete => vec![Effect::Remove],
        };
        if let Some(s) = to {
            self.state = s;
        }
        if action == LifecycleAction::Open {
            self.opened_ms = Some(now_ms);
        }
        if action == LifecycleAction::Close {
            self.closed_ms = Some(now_ms);
        }
        let detail = format!("{}->{}", from, to.map_or("removed", LifecycleState::as_str));
        let mut audit = AuditNote::new(now_ms, actor.audit_name(), action.audit_action(), self.id.as_str(), detail);
        audit.reason = reason;
        Ok(Transition { action, from, to, effects, audit })
    }

    /// Changes title, topic, description, start or planned end. Organisers only. Closed and
    /// archived activities are read-only; once open, only the planned end may change (it must
    /// stay in the future). Returns one audit note per changed field.
    pub fn handle_update(
        &mut self,
        actor: &Actor,
        directory: &Directory,
        patch: &ActivityPatch,
        now_ms: u64,
    ) -> Result<Vec<AuditNote>, AdminError> {
        self.check_access(actor, directory, Access::Organise)?;
        if self.state.is_read_only() {
            return Err(AdminError::ReadOnly(self.state));
        }
        if self.state.is_live() {
            let locked = [
                ("title", patch.title.is_some()),
                ("topic", patch.topic.is_some()),
                ("description", patch.description.is_some()),
                ("scheduled_start_ms", patch.scheduled_start_ms.is_some()),
            ];
            if let Some((field, _)) = locked.iter().find(|(_, set)| *set) {
                return Err(AdminError::LockedWhileLive(field));
            }
        }
        let title = patch.title.as_deref().map(|t| text::line("title", t, MAX_TITLE_CHARS)).transpose()?;
        let topic = patch.topic.as_deref().map(|t| text::line("topic", t, MAX_TOPIC_CHARS)).transpose()?;
        let description = patch
            .description
            .as_deref()
            .map(|d| text::block("description", d, MAX_DESCRIPTION_CHARS, MAX_DESCRIPTION_LINES))
            .transpose()?;
        let start = patch.scheduled_start_ms.unwrap_or(self.scheduled_start_ms);
        let end = patch.planned_end_ms.unwrap_or(self.planned_end_ms);
        check_schedule(start, end, now_ms, start != self.scheduled_start_ms)?;
        if end != self.planned_end_ms && end <= now_ms {
            return Err(AdminError::BadSchedule("the planned end is in the past".into()));
        }
        let who = actor.audit_name();
        let mut notes = Vec::new();
        let mut note = |field: &str, value: String| {
            notes.push(AuditNote::new(now_ms, who.clone(), "activity_updated", field, value));
        };
        if let Some(t) = title.filter(|t| *t != self.title) {
            note("title", t.clone());
            self.title = t;
        }
        if let Some(t) = topic.filter(|t| *t != self.topic) {
            note("topic", t.clone());
            self.topic = t;
        }
        if let Some(d) = description.filter(|d| *d != self.description) {
            note("description", format!("{} characters", d.chars().count()));
            self.description = d;
        }
        if start != self.scheduled_start_ms {
            note("scheduled_start_ms", start.to_string());
            self.scheduled_start_ms = start;
        }
        if end != self.planned_end_ms {
            note("planned_end_ms", end.to_string());
            self.planned_end_ms = end;
        }
        Ok(notes)
    }

    /// Changes settings. Before the session: organisers. While it runs: organisers, and
    /// moderators (own committee or a committee invited to moderate) for everything but the
    /// stage line-up and languages. Never once closed. Returns the changes, what the running
    /// session must be told (empty unless live), and one audit note per changed setting.
    pub fn handle_settings(
        &mut self,
        actor: &Actor,
        directory: &Directory,
        patch: &SettingsPatch,
        now_ms: u64,
    ) -> Result<SettingsOutcome, AdminError> {
        let need = if self.state.is_live() && patch.is_session_only() { Access::Moderate } else { Access::Organise };
        self.check_access(actor, directory, need)?;
        if self.state.is_read_only() {
            return Err(AdminError::ReadOnly(self.state));
        }
        let (next, changes) = self.settings.with_patch(patch)?;
        let session = if self.state.is_live() {
            changes.iter().flat_map(|c| c.session_inputs(&next)).collect()
        } else {
            Vec::new()
        };
        let who = actor.audit_name();
        let audit = changes
            .iter()
            .map(|c| {
                // The new value as JSON, a bare string without its quotes (`off`, not `"off"`).
                let value = serde_json::to_value(c).ok().and_then(|v| {
                    v.get("value").map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                });
                AuditNote::new(now_ms, who.clone(), "settings_changed", c.field(), value.unwrap_or_default())
            })
            .collect();
        self.settings = next;
        Ok(SettingsOutcome { changes, session, audit })
    }

    /// Shares the activity with another committee (`Some`), or ends a share (`None`).
    /// Organisers of the owning committee only; not once read-only.
    pub fn handle_share(
        &mut self,
        actor: &Actor,
        directory: &Directory,
        committee: &CommitteeId,
        share: Option<Share>,
        now_ms: u64,
    ) -> Result<AuditNote, AdminError> {
        self.check_access(actor, directory, Access::Organise)?;
        if self.state.is_read_only() {
            return Err(AdminError::ReadOnly(self.state));
        }
        if directory.get(committee).is_none() {
            return Err(AdminError::NoSuchCommittee);
        }
        if committee == &self.committee {
            return Err(AdminError::invalid("committee", "the organising committee has the activity already"));
        }
        let detail = match share {
            Some(s) => {
                if !self.shares.contains_key(committee) && self.shares.len() >= MAX_SHARES {
                    return Err(AdminError::LimitReached("shares"));
                }
                self.shares.insert(committee.clone(), s);
                match s {
                    Share::See => "see",
                    Share::Moderate => "moderate",
                }
            }
            None => {
                self.shares.remove(committee);
                "none"
            }
        };
        Ok(AuditNote::new(now_ms, actor.audit_name(), "activity_shared", committee.as_str(), detail))
    }

    /// Links a sub-venue (分会场): a committee below the organiser's (a city or county under
    /// the province; a county under its city) whose room joins this activity's floor. Its
    /// staff get `moderate` (they run their room; the floor and hand queue are shared).
    pub fn handle_link_sub_venue(
        &mut self,
        actor: &Actor,
        directory: &Directory,
        committee: &CommitteeId,
        now_ms: u64,
    ) -> Result<AuditNote, AdminError> {
        self.check_access(actor, directory, Access::Organise)?;
        if directory.get(committee).is_some() && !directory.is_above(&self.committee, committee) {
            return Err(AdminError::invalid("committee", "a sub-venue is a committee below the organiser's"));
        }
        let mut note = self.handle_share(actor, directory, committee, Some(Share::Moderate), now_ms)?;
        note.action = "sub_venue_linked";
        Ok(note)
    }

    /// The sub-venues and other committees invited to moderate.
    pub fn moderating_committees(&self) -> impl Iterator<Item = &CommitteeId> {
        self.shares.iter().filter(|(_, s)| **s == Share::Moderate).map(|(c, _)| c)
    }
}

/// The result of a settings change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsOutcome {
    /// What changed.
    pub changes: Vec<SettingChange>,
    /// What the running session must be told (empty when it is not live).
    pub session: Vec<SessionInput>,
    /// For the audit log, one per change.
    pub audit: Vec<AuditNote>,
}

/// Which activities a list shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter {
    /// Only these states (empty: all but archived, unless `include_archived`).
    pub states: Vec<LifecycleState>,
    /// Include archived ones when `states` is empty.
    pub include_archived: bool,
    /// Only this committee's.
    pub committee: Option<CommitteeId>,
    /// Only those starting at or after this time (ms).
    pub from_ms: Option<u64>,
    /// Only those starting before this time (ms).
    pub to_ms: Option<u64>,
}

/// The activities `actor` may see that match `filter`, by scheduled start (then id).
pub fn list<'a>(
    activities: impl IntoIterator<Item = &'a Activity>,
    actor: &Actor,
    directory: &Directory,
    filter: &ListFilter,
) -> Vec<&'a Activity> {
    let mut out: Vec<&Activity> = activities
        .into_iter()
        .filter(|a| a.access_of(actor, directory) >= Access::See)
        .filter(|a| {
            if filter.states.is_empty() {
                filter.include_archived || a.state != LifecycleState::Archived
            } else {
                filter.states.contains(&a.state)
            }
        })
        .filter(|a| filter.committee.as_ref().is_none_or(|c| c == &a.committee))
        .filter(|a| filter.from_ms.is_none_or(|t| a.scheduled_start_ms >= t))
        .filter(|a| filter.to_ms.is_none_or(|t| a.scheduled_start_ms < t))
        .collect();
    out.sort_by(|a, b| (a.scheduled_start_ms, &a.id).cmp(&(b.scheduled_start_ms, &b.id)));
    out
}
