//! Who may do what: staff roles, the committee rule, and the access an actor has to one
//! activity.
//!
//! **The committee rule.** A committee sees and runs only its own activities, unless the owning
//! committee invited it (a share, see [`Share`]). Two deliberate exceptions, both read-only
//! or narrower than ownership:
//! - A committee **above** the owner (the province over a city's or county's activity, a city
//!   over its counties') **sees** them: lists them, reads them, their settings and minutes. It
//!   does not run, moderate, edit or invite: CPPCC committees of different levels stand in a
//!   guidance relation (指导关系), not a command one, so a superior body follows the work of
//!   the bodies below it (the 109 activities are counted platform-wide) but does not take
//!   over their sessions. To moderate one it must be invited like anyone else.
//! - A committee the owner **shared** the activity with gets what the share says: `see`, or
//!   `moderate` (take the moderator's console; change the session settings while it runs).
//!   Linked sub-venues (分会场) are shares with `moderate`. A share never gives lifecycle
//!   control or invitations: those stay with the owner.
//!
//! Within the owning committee an **organiser** may do everything; a **moderator** runs the
//! session (open, pause, resume, close, moderate, change session settings) but does not create,
//! edit, schedule, invite, archive or delete.
//!
//! The CLI acts as the [`Actor::Operator`]: whoever can write the hub's data directory owns the
//! platform anyway, so it passes every committee and role check (never the lifecycle's rules)
//! and is named in the audit log as such.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::committee::Directory;
use super::error::AdminError;
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

/// The access `actor` has to an activity owned by `owner` and shared as `shares`.
pub fn access(
    actor: &Actor,
    owner: &CommitteeId,
    shares: &BTreeMap<CommitteeId, Share>,
    directory: &Directory,
) -> Access {
    let staff = match actor {
        Actor::Operator { .. } => return Access::Organise,
        Actor::Staff(s) => s,
    };
    if &staff.committee == owner {
        return match staff.role {
            StaffRole::Organiser => Access::Organise,
            StaffRole::Moderator => Access::Run,
        };
    }
    let shared = match shares.get(&staff.committee) {
        Some(Share::Moderate) => Access::Moderate,
        Some(Share::See) => Access::See,
        None => Access::None,
    };
    let above = if directory.is_above(&staff.committee, owner) { Access::See } else { Access::None };
    shared.max(above)
}

/// Refuses unless `actor` has at least `need`: [`AdminError::RoleForbidden`] when the actor is
/// staff of the owning committee (their role is what falls short), otherwise
/// [`AdminError::CommitteeForbidden`].
pub fn require(
    actor: &Actor,
    owner: &CommitteeId,
    shares: &BTreeMap<CommitteeId, Share>,
    directory: &Directory,
    need: Access,
) -> Result<Access, AdminError> {
    let have = access(actor, owner, shares, directory);
    if have >= need {
        return Ok(have);
    }
    match actor {
        Actor::Staff(s) if &s.committee == owner => Err(AdminError::RoleForbidden),
        _ => Err(AdminError::CommitteeForbidden),
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

/// Whether `actor` may create activities **owned by** `committee`: only its own organisers and
/// the operator. (A province organiser may set up a city's accounts, but the city schedules its
/// own activities.)
pub fn require_own_organiser(actor: &Actor, committee: &CommitteeId) -> Result<(), AdminError> {
    match actor {
        Actor::Operator { .. } => Ok(()),
        Actor::Staff(s) if &s.committee != committee => Err(AdminError::CommitteeForbidden),
        Actor::Staff(s) if s.role != StaffRole::Organiser => Err(AdminError::RoleForbidden),
        Actor::Staff(_) => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::admin::committee::tests::shaanxi;

    pub(crate) fn staff(committee: &str, role: StaffRole) -> Actor {
        Actor::Staff(Staff {
            user: UserId::new(&format!("u-{committee}-{}", role.as_str())).unwrap(),
            name: format!("{committee} {}", role.as_str()),
            committee: CommitteeId::new(committee).unwrap(),
            role,
        })
    }

    fn cid(s: &str) -> CommitteeId {
        CommitteeId::new(s).unwrap()
    }

    #[test]
    fn owners_organise_superiors_see_and_strangers_get_nothing() {
        let d = shaanxi();
        let none = BTreeMap::new();
        let a = |who: &Actor, owner: &str| access(who, &cid(owner), &none, &d);
        assert_eq!(a(&staff("sn-xa", StaffRole::Organiser), "sn-xa"), Access::Organise);
        assert_eq!(a(&staff("sn-xa", StaffRole::Moderator), "sn-xa"), Access::Run);
        assert_eq!(a(&staff("sn", StaffRole::Organiser), "sn-xa-lh"), Access::See);
        assert_eq!(a(&staff("sn-xa", StaffRole::Moderator), "sn-xa-lh"), Access::See);
        assert_eq!(a(&staff("sn-xa", StaffRole::Organiser), "sn"), Access::None, "a city does not see the province's");
        assert_eq!(a(&staff("sn-bj", StaffRole::Organiser), "sn-xa-lh"), Access::None, "nor a sibling city's county");
        assert_eq!(a(&Actor::Operator { name: "root".into() }, "sn"), Access::Organise);
    }

    #[test]
    fn a_city_invited_to_moderate_a_province_session_moderates_but_does_not_run_it() {
        let d = shaanxi();
        let shares = BTreeMap::from([(cid("sn-xa"), Share::Moderate)]);
        let city = staff("sn-xa", StaffRole::Organiser);
        assert_eq!(access(&city, &cid("sn"), &shares, &d), Access::Moderate);
        assert_eq!(require(&city, &cid("sn"), &shares, &d, Access::Run), Err(AdminError::CommitteeForbidden));
        assert_eq!(
            require(&staff("sn", StaffRole::Moderator), &cid("sn"), &shares, &d, Access::Organise),
            Err(AdminError::RoleForbidden)
        );
    }

    #[test]
    fn accounts_of_a_committee_are_managed_by_its_organisers_and_those_above() {
        let d = shaanxi();
        let c = cid("sn-xa-lh");
        assert_eq!(require_organiser_of(&staff("sn", StaffRole::Organiser), &c, &d), Ok(()));
        assert_eq!(require_organiser_of(&staff("sn-xa-lh", StaffRole::Organiser), &c, &d), Ok(()));
        assert_eq!(require_organiser_of(&staff("sn-xa", StaffRole::Moderator), &c, &d), Err(AdminError::RoleForbidden));
        assert_eq!(require_organiser_of(&staff("sn-bj", StaffRole::Organiser), &c, &d), Err(AdminError::CommitteeForbidden));
        assert_eq!(require_organiser_of(&staff("sn-xa-lh", StaffRole::Organiser), &cid("sn-xa"), &d), Err(AdminError::CommitteeForbidden));
        assert_eq!(require_own_organiser(&staff("sn", StaffRole::Organiser), &c), Err(AdminError::CommitteeForbidden));
    }
}
