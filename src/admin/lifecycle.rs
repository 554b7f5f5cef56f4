//! What an activity is and where it is in its life: the kinds, the five lifecycle states and
//! the actions between them (the diagram is in [`super::activity`]). A leaf module: the rules
//! of who may take an action are in [`super::access`], what a state allows in
//! [`super::activity::Activity::rules`].

use serde::{Deserialize, Serialize};

/// Room or livestream (the same names as the record's `kind` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// 视频会商室: members join with camera and microphone.
    Room,
    /// 网络协商议政直播: a stage of speakers watched by the public.
    Livestream,
}

impl ActivityKind {
    /// The name in the API and the record.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Room => "room",
            ActivityKind::Livestream => "livestream",
        }
    }
}

/// Where an activity is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleState {
    /// Announced, not started: a waiting page with a countdown.
    Scheduled,
    /// Live.
    Open,
    /// Live but on hold: nobody but the moderators is heard, no comments or questions.
    Paused,
    /// Over: read-only, the record exported, the replay linked.
    Closed,
    /// Closed and hidden from lists.
    Archived,
}

impl LifecycleState {
    /// The name in the API and the record.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleState::Scheduled => "scheduled",
            LifecycleState::Open => "open",
            LifecycleState::Paused => "paused",
            LifecycleState::Closed => "closed",
            LifecycleState::Archived => "archived",
        }
    }

    /// Whether the session runs (a moderation driver exists).
    pub fn is_live(self) -> bool {
        matches!(self, LifecycleState::Open | LifecycleState::Paused)
    }

    /// Whether nothing may change any more.
    pub fn is_read_only(self) -> bool {
        matches!(self, LifecycleState::Closed | LifecycleState::Archived)
    }

    /// Where `action` leads from this state, if the lifecycle allows it (`Some(None)`: the
    /// activity is removed). The time rule of `open` is checked by [`Activity::handle_transition`].
    pub fn after(self, action: LifecycleAction) -> Option<Option<LifecycleState>> {
        use LifecycleAction as A;
        use LifecycleState as S;
        Some(Some(match (self, action) {
            (S::Scheduled, A::Open) => S::Open,
            (S::Scheduled, A::Delete) => return Some(None),
            (S::Open, A::Pause) => S::Paused,
            (S::Paused, A::Resume) => S::Open,
            (S::Open | S::Paused, A::Close) => S::Closed,
            (S::Closed, A::Archive) => S::Archived,
            (S::Archived, A::Unarchive) => S::Closed,
            _ => return None,
        }))
    }
}

impl std::fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lifecycle request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleAction {
    /// scheduled → open.
    Open,
    /// open → paused.
    Pause,
    /// paused → open.
    Resume,
    /// open or paused → closed.
    Close,
    /// closed → archived.
    Archive,
    /// archived → closed.
    Unarchive,
    /// scheduled → removed (only before it ever opened).
    Delete,
}

impl LifecycleAction {
    /// Every action, for tables and tests.
    pub const ALL: [LifecycleAction; 7] = [
        LifecycleAction::Open,
        LifecycleAction::Pause,
        LifecycleAction::Resume,
        LifecycleAction::Close,
        LifecycleAction::Archive,
        LifecycleAction::Unarchive,
        LifecycleAction::Delete,
    ];

    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleAction::Open => "open",
            LifecycleAction::Pause => "pause",
            LifecycleAction::Resume => "resume",
            LifecycleAction::Close => "close",
            LifecycleAction::Archive => "archive",
            LifecycleAction::Unarchive => "unarchive",
            LifecycleAction::Delete => "delete",
        }
    }

    /// The audit log's action name.
    pub(crate) fn audit_action(self) -> &'static str {
        match self {
            LifecycleAction::Open => "activity_opened",
            LifecycleAction::Pause => "activity_paused",
            LifecycleAction::Resume => "activity_resumed",
            LifecycleAction::Close => "activity_closed",
            LifecycleAction::Archive => "activity_archived",
            LifecycleAction::Unarchive => "activity_unarchived",
            LifecycleAction::Delete => "activity_deleted",
        }
    }
}

impl std::fmt::Display for LifecycleAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

