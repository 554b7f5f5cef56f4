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

pub use super::committee::require_organiser_of;
use super::committee::Directory;
use super::error::AdminError;
use super::ids::CommitteeId;
use super::lifecycle::LifecycleAction;
pub use super::roles::{Access, Actor, Share, Staff, StaffRole};

impl LifecycleAction {
    /// The access it needs: running the session is the moderators' job; archiving and
    /// deleting are the organisers'.
    pub fn needs(self) -> Access {
        match self {
            LifecycleAction::Open | LifecycleAction::Pause | LifecycleAction::Resume | LifecycleAction::Close => {
                Access::Run
            }
            LifecycleAction::Archive | LifecycleAction::Unarchive | LifecycleAction::Delete => Access::Organise,
        }
    }

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
    use crate::admin::ids::UserId;

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
