//! Committees (政协 bodies) at three levels, each under its parent: a county committee under a
//! city committee, a city committee under the province's.
//!
//! The [`Directory`] is the whole tree, small (Shaanxi: 1 province, 10 cities plus Yangling,
//! about 107 counties and districts) and read on every authorisation, so the record loads it
//! once and the hub keeps it in memory; a change goes through [`Directory::handle_add`] and
//! then into the record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shangliang_signaling::{Org, OrgLevel};

use super::audit::AuditNote;
use super::roles::{Actor, StaffRole};
use super::error::AdminError;
use super::ids::CommitteeId;
use super::text;

/// Longest committee name, in characters (e.g. "西安市莲湖区政协委员会" is 11).
pub const MAX_COMMITTEE_NAME_CHARS: usize = 64;
/// Most committees of one platform. Far above one province's ~120; a bound, not a target.
pub const MAX_COMMITTEES: usize = 10_000;

/// The level of a committee (the same three as a token's `org.level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// 省
    Province,
    /// 市
    City,
    /// 县 (and districts, 区)
    County,
}

impl Level {
    /// The level a parent of this level must have (`None`: a province has no parent).
    pub fn parent_level(self) -> Option<Level> {
        match self {
            Level::Province => None,
            Level::City => Some(Level::Province),
            Level::County => Some(Level::City),
        }
    }

    /// The name in the API and the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Province => "province",
            Level::City => "city",
            Level::County => "county",
        }
    }
}

impl From<Level> for OrgLevel {
    fn from(l: Level) -> OrgLevel {
        match l {
            Level::Province => OrgLevel::Province,
            Level::City => OrgLevel::City,
            Level::County => OrgLevel::County,
        }
    }
}

impl From<OrgLevel> for Level {
    fn from(l: OrgLevel) -> Level {
        match l {
            OrgLevel::Province => Level::Province,
            OrgLevel::City => Level::City,
            OrgLevel::County => Level::County,
        }
    }
}

/// One committee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committee {
    /// Its id.
    pub id: CommitteeId,
    /// Its name, e.g. "陕西省政协".
    pub name: String,
    /// Its level.
    pub level: Level,
    /// The committee above it; `None` only for a province.
    pub parent: Option<CommitteeId>,
}

impl Committee {
    /// The organisation as a participant token carries it (`org` claim).
    pub fn org(&self) -> Org {
        Org { level: self.level.into(), name: self.name.clone() }
    }
}

/// Every committee of the platform, as a tree.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Directory {
    committees: BTreeMap<CommitteeId, Committee>,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a committee after checking its name, that its id is new, and that its parent
    /// exists and is one level up (a province has none). Returns the stored committee (its
    /// name normalised).
    pub fn handle_add(
        &mut self,
        id: CommitteeId,
        name: &str,
        level: Level,
        parent: Option<CommitteeId>,
    ) -> Result<&Committee, AdminError> {
        let name = text::line("name", name, MAX_COMMITTEE_NAME_CHARS)?;
        if self.committees.contains_key(&id) {
            return Err(AdminError::AlreadyExists("committee"));
        }
        if self.committees.len() >= MAX_COMMITTEES {
            return Err(AdminError::LimitReached("committees"));
        }
        match (level.parent_level(), &parent) {
            (None, None) => {}
            (None, Some(_)) => return Err(AdminError::BadParent("a province committee has no parent".into())),
            (Some(want), None) => {
                return Err(AdminError::BadParent(format!(
                    "a {} committee needs a {} committee as its parent",
                    level.as_str(),
                    want.as_str()
                )));
            }
            (Some(want), Some(p)) => {
                let p = self.committees.get(p).ok_or(AdminError::NoSuchCommittee)?;
                if p.level != want {
                    return Err(AdminError::BadParent(format!(
                        "a {} committee sits under a {} committee, not a {} one",
                        level.as_str(),
                        want.as_str(),
                        p.level.as_str()
                    )));
                }
            }
        }
        Ok(self.committees.entry(id.clone()).or_insert(Committee { id, name, level, parent }))
    }

    /// [`Directory::handle_add`] on behalf of `actor`: a province only by the operator (it
    /// founds a platform); a city or county by an organiser of its parent or of a committee
    /// above that (so a province sets up its cities and their counties, a city its counties).
    /// Returns the audit note of the creation.
    pub fn handle_create(
        &mut self,
        actor: &Actor,
        id: CommitteeId,
        name: &str,
        level: Level,
        parent: Option<CommitteeId>,
        now_ms: u64,
    ) -> Result<AuditNote, AdminError> {
        match (&parent, actor) {
            (None, Actor::Operator { .. }) => {}
            (None, Actor::Staff(_)) => return Err(AdminError::RoleForbidden),
            (Some(p), _) => {
                if !self.committees.contains_key(p) {
                    return Err(AdminError::NoSuchCommittee);
                }
                require_organiser_of(actor, p, self)?;
            }
        }
        let c = self.handle_add(id, name, level, parent)?;
        Ok(AuditNote::new(now_ms, actor.audit_name(), "committee_created", c.id.as_str(), c.level.as_str()))
    }

    /// One committee.
    pub fn get(&self, id: &CommitteeId) -> Option<&Committee> {
        self.committees.get(id)
    }

    /// All committees, by id.
    pub fn all(&self) -> impl Iterator<Item = &Committee> {
        self.committees.values()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.committees.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.committees.is_empty()
    }

    /// The committees above `id`, nearest first (at most two: city, province).
    pub fn ancestors(&self, id: &CommitteeId) -> Vec<&Committee> {
        let mut out = Vec::new();
        let mut at = self.committees.get(id).and_then(|c| c.parent.as_ref());
        // Bounded by the three levels (handle_add guarantees each parent is one level up).
        while let Some(p) = at.and_then(|p| self.committees.get(p)) {
            out.push(p);
            if out.len() >= 2 {
                break;
            }
            at = p.parent.as_ref();
        }
        out
    }

    /// Whether `upper` is above `lower` (a strict ancestor: a committee is not its own).
    pub fn is_above(&self, upper: &CommitteeId, lower: &CommitteeId) -> bool {
        self.ancestors(lower).iter().any(|c| &c.id == upper)
    }

    /// `id` and every committee below it.
    pub fn subtree(&self, id: &CommitteeId) -> Vec<&Committee> {
        self.committees.values().filter(|c| &c.id == id || self.is_above(id, &c.id)).collect()
    }
}

/// Whether `actor` may create activities for, or manage the staff accounts of, `committee`:
/// the operator; an organiser of that committee or of one above it (so the province sets up a
/// city's first organiser, a city its counties').
pub fn require_organiser_of(actor: &Actor, committee: &CommitteeId, directory: &Directory) -> Result<(), AdminError> {
    let s = match actor {
        Actor::Operator { .. } => return Ok(()),
        Actor::Staff(s) => s,
    };
    let related = &s.committee == committee || directory.is_above(&s.committee, committee);
    match (related, s.role) {
        (false, _) => Err(AdminError::CommitteeForbidden),
        (true, StaffRole::Moderator) => Err(AdminError::RoleForbidden),
        (true, StaffRole::Organiser) => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 陕西省政协 → 西安市政协 → 莲湖区政协, and 宝鸡市政协 beside Xi'an.
    pub(crate) fn shaanxi() -> Directory {
        let mut d = Directory::new();
        let id = |s: &str| CommitteeId::new(s).unwrap();
        d.handle_add(id("sn"), "陕西省政协", Level::Province, None).unwrap();
        d.handle_add(id("sn-xa"), "西安市政协", Level::City, Some(id("sn"))).unwrap();
        d.handle_add(id("sn-bj"), "宝鸡市政协", Level::City, Some(id("sn"))).unwrap();
        d.handle_add(id("sn-xa-lh"), "西安市莲湖区政协", Level::County, Some(id("sn-xa"))).unwrap();
        d
    }

    #[test]
    fn a_county_sits_under_a_city_and_a_city_under_the_province() {
        let d = shaanxi();
        let id = |s: &str| CommitteeId::new(s).unwrap();
        let up: Vec<&str> = d.ancestors(&id("sn-xa-lh")).iter().map(|c| c.id.as_str()).collect();
        assert_eq!(up, ["sn-xa", "sn"]);
        assert!(d.is_above(&id("sn"), &id("sn-xa-lh")));
        assert!(!d.is_above(&id("sn-bj"), &id("sn-xa-lh")));
        assert!(!d.is_above(&id("sn-xa"), &id("sn-xa")));
        assert_eq!(d.subtree(&id("sn-xa")).len(), 2);
        assert_eq!(d.get(&id("sn-xa")).unwrap().org().level, OrgLevel::City);
    }

    #[test]
    fn committees_are_created_under_their_parent_by_its_organisers() {
        use crate::admin::access::{StaffRole, tests::staff};
        let mut d = shaanxi();
        let id = |s: &str| CommitteeId::new(s).unwrap();
        let mut create = |who: &Actor, c: &str, level, parent: Option<&str>| {
            d.handle_create(who, id(c), "新委员会", level, parent.map(id), 0).map(|n| n.action)
        };
        assert_eq!(create(&staff("sn", StaffRole::Organiser), "sn-xa-ba", Level::County, Some("sn-xa")), Ok("committee_created"));
        assert_eq!(create(&staff("sn-xa", StaffRole::Organiser), "sn-xa-yt", Level::County, Some("sn-xa")), Ok("committee_created"));
        assert_eq!(create(&staff("sn-bj", StaffRole::Organiser), "sn-xa-x", Level::County, Some("sn-xa")), Err(AdminError::CommitteeForbidden));
        assert_eq!(create(&staff("sn", StaffRole::Moderator), "sn-yl", Level::City, Some("sn")), Err(AdminError::RoleForbidden));
        assert_eq!(create(&staff("sn", StaffRole::Organiser), "gs", Level::Province, None), Err(AdminError::RoleForbidden));
        assert_eq!(create(&Actor::Operator { name: "root".into() }, "gs", Level::Province, None), Ok("committee_created"));
    }

    #[test]
    fn a_committee_with_a_parent_of_the_wrong_level_is_refused() {
        let mut d = shaanxi();
        let id = |s: &str| CommitteeId::new(s).unwrap();
        let e = |r: Result<&Committee, AdminError>| r.unwrap_err().code();
        assert_eq!(e(d.handle_add(id("x1"), "某县", Level::County, Some(id("sn")))), "bad_parent");
        assert_eq!(e(d.handle_add(id("x2"), "某市", Level::City, None)), "bad_parent");
        assert_eq!(e(d.handle_add(id("x3"), "某省", Level::Province, Some(id("sn")))), "bad_parent");
        assert_eq!(e(d.handle_add(id("x4"), "某县", Level::County, Some(id("nope")))), "no_such_committee");
        assert_eq!(e(d.handle_add(id("sn"), "重复", Level::Province, None)), "already_exists");
        assert_eq!(e(d.handle_add(id("x5"), " ", Level::Province, None)), "invalid");
        assert_eq!(d.len(), 4);
    }
}
