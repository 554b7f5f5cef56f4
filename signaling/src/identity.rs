//! Who someone is in an activity: the role a token grants, the organisation, and the author of
//! an item as every reader sees it. Shared by the topic messages ([`crate::ServerMsg`]) and the
//! moderation part of the protocol ([`crate::consult`]), which therefore do not depend on each
//! other for it.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::ids::ParticipantId;

/// The role a token grants in an activity, from most to least powerful.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, TS)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Chairs the session: floor, questions, comment moderation.
    Moderator,
    /// A member of the consultation body.
    Member,
    /// An invited expert.
    Guest,
    /// The public.
    Viewer,
}

impl Role {
    /// Whether this role sees everything in a topic, held comments included.
    pub fn is_moderator(self) -> bool {
        matches!(self, Role::Moderator)
    }

    /// The role's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Moderator => "moderator",
            Role::Member => "member",
            Role::Guest => "guest",
            Role::Viewer => "viewer",
        }
    }
}

/// Level of an organisation of the consultation body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum OrgLevel {
    /// 省
    Province,
    /// 市
    City,
    /// 县
    County,
}

/// The organisation a participant belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Org {
    /// Province, city or county.
    pub level: OrgLevel,
    /// Its name, e.g. "陕西省政协".
    pub name: String,
}

/// Who wrote an item, as every reader of the topic sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Author {
    /// Stable pseudonymous id of the identity (the token's subject).
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Role in the activity.
    pub role: Role,
    /// Whether the identity is verified (real-name) by the organisers.
    #[serde(default)]
    pub verified: bool,
}

