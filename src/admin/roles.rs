//! Who acts on the organisers' side: staff roles, the signed-in [`Staff`] member or the
//! local operator ([`Actor`]), what a share gives another committee, and the levels of
//! [`Access`]. Values only; the rules that compute an actor's access are in [`super::access`].

use serde::{Deserialize, Serialize};

use super::ids::{CommitteeId, UserId};

/// A staff member's role in their committee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    /// 组织者: schedules activities, sets them up, invites people, archives them.
    Organiser,
    /// 主持人: runs sessions (open, pause, close, floor, questions, comments).
    Moderator,
}

impl StaffRole {
    /// The name in the API and the record.
    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Organiser => "organiser",
            StaffRole::Moderator => "moderator",
        }
    }
}

/// A signed-in staff member: what a verified staff session token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staff {
    /// Their account.
    pub user: UserId,
    /// Display name (for the audit log and the minutes).
    pub name: String,
    /// Their committee.
    pub committee: CommitteeId,
    /// Their role in it.
    pub role: StaffRole,
}

/// Whoever asks the organisers' side for something.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// A signed-in staff member.
    Staff(Staff),
    /// The local operator (the CLI, working on the data directory). `name` goes into the audit
    /// log (e.g. `cli:root`).
    Operator {
        /// Who, for the audit log.
        name: String,
    },
}

impl Actor {
    /// How the audit log names the actor: the user id, or `operator:<name>`.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::Staff(s) => s.user.to_string(),
            Actor::Operator { name } => format!("operator:{name}"),
        }
    }
}

/// What a share gives another committee on one activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Share {
    /// See the activity, its settings and minutes.
    See,
    /// Also moderate it (the console; session settings while it runs). Linked sub-venues.
    Moderate,
}

/// How far an actor may go with one activity; each level includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Nothing: the activity is not listed for them.
    None,
    /// Read it, its settings and minutes.
    See,
    /// Also take the moderator's console and change session settings while it runs.
    Moderate,
    /// Also open, pause, resume and close it.
    Run,
    /// Also create, edit, schedule, invite, share, archive and delete.
    Organise,
}

