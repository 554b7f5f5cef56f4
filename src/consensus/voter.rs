//! Who votes: identity tiers, organisation levels and the interner that turns a token subject
//! into a dense row number of the vote matrix.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use shangliang_signaling::{OrgLevel, Role};

use super::error::ConsensusError;
use crate::consult::{Grants, ParticipantId};

/// How much the organisers know about an identity. Tallies are given per tier, and the opinion
/// groups can be restricted to some tiers: anonymous viewer tokens are cheap to obtain (the hub
/// hands them out), so they are where sybils would come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Invited identities: members of the consultation body, guests and staff (role member,
    /// guest or moderator).
    Member,
    /// A public viewer whose real name the organisers verified.
    Verified,
    /// A public viewer nobody vouched for.
    Anonymous,
}

impl Tier {
    /// All tiers, in the order tallies list them.
    pub const ALL: [Tier; 3] = [Tier::Member, Tier::Verified, Tier::Anonymous];

    /// The tier a token grants.
    pub fn of(g: &Grants) -> Tier {
        match g.role {
            Role::Moderator | Role::Member | Role::Guest => Tier::Member,
            Role::Viewer if g.verified => Tier::Verified,
            Role::Viewer => Tier::Anonymous,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The tier's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Member => "member",
            Tier::Verified => "verified",
            Tier::Anonymous => "anonymous",
        }
    }
}

/// A set of tiers (which identities count toward the opinion groups).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierSet {
    /// Members, guests and staff.
    pub member: bool,
    /// Verified viewers.
    pub verified: bool,
    /// Anonymous viewers.
    pub anonymous: bool,
}

impl TierSet {
    /// Every tier.
    pub const ALL: TierSet = TierSet { member: true, verified: true, anonymous: true };

    /// Whether `t` is in the set.
    pub fn contains(self, t: Tier) -> bool {
        match t {
            Tier::Member => self.member,
            Tier::Verified => self.verified,
            Tier::Anonymous => self.anonymous,
        }
    }
}

impl Default for TierSet {
    fn default() -> Self {
        TierSet::ALL
    }
}

/// The organisation levels, in the order tallies list them.
pub(crate) const LEVELS: [OrgLevel; 3] = [OrgLevel::Province, OrgLevel::City, OrgLevel::County];

pub(crate) fn level_index(l: OrgLevel) -> usize {
    match l {
        OrgLevel::Province => 0,
        OrgLevel::City => 1,
        OrgLevel::County => 2,
    }
}

/// One identity as the core counts it: its row, and what its token said when it voted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Voter {
    pub row: u32,
    pub tier: Tier,
    pub level: Option<OrgLevel>,
}

/// Token subjects to dense row numbers, in order of first appearance. Rows are never reused,
/// so a row number means the same identity for the whole activity (opinion groups of
/// successive recomputes are matched through it).
#[derive(Debug, Default, Clone)]
pub(crate) struct Participants {
    rows: HashMap<ParticipantId, u32>,
    ids: Vec<ParticipantId>,
}

impl Participants {
    /// Most identities one activity counts (polls and statements together): ten times the
    /// audience the hub is built for; beyond it a flood of fresh tokens costs memory, not votes.
    pub const MAX: usize = 1_000_000;

    pub fn row(&self, id: &ParticipantId) -> Option<u32> {
        self.rows.get(id).copied()
    }

    pub fn id(&self, row: u32) -> &ParticipantId {
        &self.ids[row as usize]
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The voter for `g`, giving the subject a row on first sight.
    pub fn voter(&mut self, g: &Grants) -> Result<Voter, ConsensusError> {
        let row = match self.rows.get(&g.subject) {
            Some(r) => *r,
            None => {
                if self.ids.len() >= Self::MAX {
                    return Err(ConsensusError::TooManyParticipants(Self::MAX));
                }
                let r = self.ids.len() as u32;
                self.rows.insert(g.subject.clone(), r);
                self.ids.push(g.subject.clone());
                r
            }
        };
        Ok(Voter { row, tier: Tier::of(g), level: g.org.as_ref().map(|o| o.level) })
    }
}
