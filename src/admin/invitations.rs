//! Invitations of members and guests: one per person and activity, as signed links with an
//! expiry, revocable, every issue, revocation and use logged.
//!
//! ```text
//! // organiser:  POST …/invitations
//! let issued = book.handle_issue(&activity, &actor, &dir, invitee, InvitationId::random(), None, &keys, now_ms)?;
//! // send issued.link_token in a link: https://hub/join/{activity}?invite={token}
//! // the person opens it:  POST /api/invitations/redeem {token}
//! let (pass, note) = redeem(&token, &keys, book.revocations(), &activity, now_ms)?;
//! // the hub mints a participant token from `pass` (subject = the person) and logs `note`
//! book.handle_used(&pass.invitation, now_ms);
//! ```
//!
//! **The link** is a JWT signed with the invitation purpose key ([`super::signing`]) holding
//! the invitation id (`jti`), the activity, the person, their name, role and organisation, and
//! the expiry. So any node admits the bearer with no more than the signature, the clock and the
//! **revocation list** (the ids revoked before their expiry; small, kept in memory, pruned as
//! invitations expire): no record read on the path of a join.
//!
//! **Attendance is by person**: the participant token's subject is the [`PersonId`], so a
//! member who joins from a phone and a laptop is one attendee, and the minutes list invited
//! people by name with their presence (the session's attendance joined with the invitations).
//!
//! **Logging**: issue, revoke and every use are [`AuditNote`]s for the activity's audit log.
//! A refused use is logged only when the link's signature verified (expired or revoked link,
//! activity over): a forged link is the public's noise, counted in metrics, and must not be
//! able to grow the hash chain.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shangliang_signaling::{ActivityId, Org, Role, limits::MAX_NAME_CHARS};

use super::access::{Access, Actor};
use super::activity::{Activity, AuditNote};
use super::committee::Directory;
use super::error::AdminError;
use super::ids::{CommitteeId, InvitationId, PersonId};
use super::signing::{Expiring, PurposeKey, SignError};
use super::text;

/// By default an invitation expires this long after the activity's planned end.
pub const DEFAULT_GRACE_MS: u64 = 3_600_000;
/// An invitation may expire at most this long after the planned end.
pub const MAX_AFTER_END_MS: u64 = 7 * 86_400_000;
/// An invitation must be good for at least this long from its issue.
pub const MIN_VALIDITY_MS: u64 = 5 * 60_000;
/// A participant token from a redeemed invitation lasts at most this long (the client redeems
/// the link again on its next visit).
pub const PASS_TTL_MS: u64 = 12 * 3_600_000;
/// Most invitations (revoked ones included) of one activity.
pub const MAX_INVITATIONS: usize = 5_000;
/// Longest guest affiliation (e.g. "西北大学经济管理学院"), in characters.
pub const MAX_AFFILIATION_CHARS: usize = 64;

/// Whom an invitation is for: a member (委员) or a guest (invited expert).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InviteeRole {
    /// A member of a committee.
    Member,
    /// An invited guest or expert.
    Guest,
}

impl From<InviteeRole> for Role {
    fn from(r: InviteeRole) -> Role {
        match r {
            InviteeRole::Member => Role::Member,
            InviteeRole::Guest => Role::Guest,
        }
    }
}

/// What an organiser fills in to invite someone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInvitee {
    /// The person's id: a member's platform id; `None` for a guest without one (a fresh
    /// `g-…` id is made).
    pub person: Option<PersonId>,
    /// Display name.
    pub name: String,
    /// Member or guest.
    pub role: InviteeRole,
    /// The member's committee (their `org` in the session).
    pub committee: Option<CommitteeId>,
    /// A guest's affiliation, for the minutes.
    pub affiliation: Option<String>,
    /// The organisers verified the identity (real name).
    pub verified: bool,
}

/// The person an invitation is for, validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitee {
    /// Their id (the participant token's subject).
    pub person: PersonId,
    /// Display name.
    pub name: String,
    /// Member or guest.
    pub role: InviteeRole,
    /// Their organisation (a member's committee).
    pub org: Option<Org>,
    /// A guest's affiliation.
    pub affiliation: Option<String>,
    /// Verified by the organisers.
    pub verified: bool,
}

/// A revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When.
    pub at_ms: u64,
    /// By whom ([`Actor::audit_name`]).
    pub by: String,
    /// Why.
    pub reason: Option<String>,
}

/// Where an invitation stands at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    /// Good.
    Active,
    /// Revoked by an organiser.
    Revoked,
    /// Past its expiry.
    Expired,
}

/// One invitation as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// Its id (`jti` of the link).
    pub id: InvitationId,
    /// The activity.
    pub activity: ActivityId,
    /// The person.
    pub invitee: Invitee,
    /// Issued at, ms.
    pub issued_ms: u64,
    /// Expires at, ms (a multiple of 1000: the link's `exp` is in seconds).
    pub expires_ms: u64,
    /// By whom.
    pub issued_by: String,
    /// Revoked, if so.
    pub revoked: Option<Revocation>,
    /// How often it was redeemed.
    pub uses: u32,
    /// First redemption, ms.
    pub first_used_ms: Option<u64>,
    /// Last redemption, ms.
    pub last_used_ms: Option<u64>,
}

impl Invitation {
    /// Its status at `now_ms`.
    pub fn status(&self, now_ms: u64) -> InvitationStatus {
        if self.revoked.is_some() {
            InvitationStatus::Revoked
        } else if now_ms >= self.expires_ms {
            InvitationStatus::Expired
        } else {
            InvitationStatus::Active
        }
    }
}

/// The claims of an invitation link (`aud` = `invitation`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationClaims {
    /// The invitation.
    pub jti: InvitationId,
    /// The activity.
    pub act: ActivityId,
    /// The person.
    pub sub: PersonId,
    /// Display name.
    pub name: String,
    /// Member or guest.
    pub role: InviteeRole,
    /// Organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<Org>,
    /// Verified.
    #[serde(default)]
    pub verified: bool,
    /// Purpose, always `invitation`.
    pub aud: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expiry, Unix seconds.
    pub exp: u64,
}

impl Expiring for InvitationClaims {
    fn exp_s(&self) -> u64 {
        self.exp
    }
}

/// Signs and checks invitation links.
#[derive(Clone)]
pub struct InvitationKeys {
    key: PurposeKey,
}

impl InvitationKeys {
    /// Keys derived from the hub secret (see [`super::signing`]).
    pub fn from_hub_secret(secret: &[u8]) -> Self {
        InvitationKeys { key: PurposeKey::derive(secret, "invitation") }
    }

    /// The activity a genuine link (signature verified, expiry not checked) is for: where to
    /// look up the invitations [`redeem`] checks it against. `None` for a forged link.
    pub fn activity_of(&self, token: &str) -> Option<ActivityId> {
        self.key.verify::<InvitationClaims>(token, 0).ok().map(|c| c.act)
    }

    fn mint(&self, inv: &Invitation) -> String {
        self.key.mint(&InvitationClaims {
            jti: inv.id.clone(),
            act: inv.activity.clone(),
            sub: inv.invitee.person.clone(),
            name: inv.invitee.name.clone(),
            role: inv.invitee.role,
            org: inv.invitee.org.clone(),
            verified: inv.invitee.verified,
            aud: self.key.purpose().to_owned(),
            iat: inv.issued_ms / 1000,
            exp: inv.expires_ms / 1000,
        })
    }
}

/// Invitation ids revoked before their expiry, checked at every redemption.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// Id → the invitation's expiry (ms), so entries can be pruned once the link is dead anyway.
    revoked: BTreeMap<InvitationId, u64>,
}

impl RevocationList {
    /// Adds an id.
    pub fn insert(&mut self, id: InvitationId, expires_ms: u64) {
        self.revoked.insert(id, expires_ms);
    }

    /// Whether an id is revoked.
    pub fn contains(&self, id: &InvitationId) -> bool {
        self.revoked.contains_key(id)
    }

    /// Drops entries whose invitations have expired (their links fail on expiry already).
    pub fn prune(&mut self, now_ms: u64) {
        self.revoked.retain(|_, exp| *exp > now_ms);
    }

    /// How many ids it holds.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }
}

/// A newly issued invitation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// The stored invitation.
    pub invitation: Invitation,
    /// The signed link token (the `invite` parameter of the join link).
    pub link_token: String,
    /// For the audit log.
    pub audit: AuditNote,
}

/// What a redeemed invitation admits: the participant token's claims, subject = the person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantPass {
    /// The invitation redeemed.
    pub invitation: InvitationId,
    /// The person (the token's `sub`).
    pub subject: PersonId,
    /// Display name.
    pub name: String,
    /// Member or guest.
    pub role: Role,
    /// The activity.
    pub activity: ActivityId,
    /// Organisation.
    pub org: Option<Org>,
    /// Verified.
    pub verified: bool,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expiry, Unix seconds: the invitation's, or [`PASS_TTL_MS`] from now if sooner.
    pub exp: u64,
}

/// The invitations of one activity.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InvitationBook {
    invitations: BTreeMap<InvitationId, Invitation>,
    revocations: RevocationList,
}

impl InvitationBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// The book of stored invitations (after a restart), its revocation list rebuilt.
    pub fn from_stored(invitations: impl IntoIterator<Item = Invitation>) -> Self {
        let mut b = Self::new();
        for inv in invitations {
            if inv.revoked.is_some() {
                b.revocations.insert(inv.id.clone(), inv.expires_ms);
            }
            b.invitations.insert(inv.id.clone(), inv);
        }
        b
    }

    /// One invitation.
    pub fn get(&self, id: &InvitationId) -> Option<&Invitation> {
        self.invitations.get(id)
    }

    /// All invitations, by id.
    pub fn all(&self) -> impl Iterator<Item = &Invitation> {
        self.invitations.values()
    }

    /// The revocation list to check redemptions against.
    pub fn revocations(&self) -> &RevocationList {
        &self.revocations
    }

    /// The person's active invitation, if any.
    pub fn active_for(&self, person: &PersonId, now_ms: u64) -> Option<&Invitation> {
        self.invitations
            .values()
            .find(|i| &i.invitee.person == person && i.status(now_ms) == InvitationStatus::Active)
    }

    /// Issues an invitation to `activity`: organisers of the owning committee only (a share
    /// does not give invitations); not once the activity is closed; one active invitation per
    /// person. `expires_ms` defaults to [`DEFAULT_GRACE_MS`] after the planned end, must leave
    /// at least [`MIN_VALIDITY_MS`], and may not pass [`MAX_AFTER_END_MS`] after the end. It is
    /// rounded down to a whole second (the link's `exp`).
    #[allow(clippy::too_many_arguments)]
    pub fn handle_issue(
        &mut self,
        activity: &Activity,
        actor: &Actor,
        directory: &Directory,
        invitee: NewInvitee,
        id: InvitationId,
        expires_ms: Option<u64>,
        keys: &InvitationKeys,
        now_ms: u64,
    ) -> Result<Issued, AdminError> {
        activity.check_access(actor, directory, Access::Organise)?;
        if !activity.rules(now_ms).invitations_open {
            return Err(AdminError::ReadOnly(activity.state()));
        }
        let invitee = self.validate_invitee(invitee, directory)?;
        if self.active_for(&invitee.person, now_ms).is_some() {
            return Err(AdminError::AlreadyInvited);
        }
        if self.invitations.len() >= MAX_INVITATIONS {
            return Err(AdminError::LimitReached("invitations"));
        }
        let end = activity.planned_end_ms();
        let expires_ms = expires_ms.unwrap_or(end.saturating_add(DEFAULT_GRACE_MS)) / 1000 * 1000;
        if expires_ms < now_ms.saturating_add(MIN_VALIDITY_MS) {
            return Err(AdminError::invalid("expires_ms", "must be at least 5 minutes from now"));
        }
        if expires_ms > end.saturating_add(MAX_AFTER_END_MS) {
            return Err(AdminError::invalid("expires_ms", "at most 7 days after the planned end"));
        }
        if self.invitations.contains_key(&id) {
            return Err(AdminError::AlreadyExists("invitation"));
        }
        let inv = Invitation {
            id: id.clone(),
            activity: activity.id().clone(),
            invitee,
            issued_ms: now_ms,
            expires_ms,
            issued_by: actor.audit_name(),
            revoked: None,
            uses: 0,
            first_used_ms: None,
            last_used_ms: None,
        };
        let link_token = keys.mint(&inv);
        let audit = AuditNote::new(
            now_ms,
            actor.audit_name(),
            "invitation_issued",
            id.as_str(),
            format!("{}:{}", inv.invitee.role_str(), inv.invitee.person),
        );
        self.invitations.insert(id, inv.clone());
        Ok(Issued { invitation: inv, link_token, audit })
    }

    fn validate_invitee(&self, n: NewInvitee, directory: &Directory) -> Result<Invitee, AdminError> {
        let name = text::line("name", &n.name, MAX_NAME_CHARS)?;
        let affiliation =
            n.affiliation.as_deref().map(|a| text::line("affiliation", a, MAX_AFFILIATION_CHARS)).transpose()?;
        let org = match &n.committee {
            Some(c) => Some(directory.get(c).ok_or(AdminError::NoSuchCommittee)?.org()),
            None => None,
        };
        let person = match (n.person, n.role) {
            (Some(p), _) => p,
            (None, InviteeRole::Guest) => PersonId::random_guest(),
            (None, InviteeRole::Member) => {
                return Err(AdminError::invalid("person", "a member is invited by their member id"));
            }
        };
        Ok(Invitee { person, name, role: n.role, org, affiliation, verified: n.verified })
    }

    /// Revokes an invitation (organisers of the owning committee; in any state). Revoking a
    /// revoked one changes nothing and logs nothing (`Ok(None)`).
    pub fn handle_revoke(
        &mut self,
        activity: &Activity,
        actor: &Actor,
        directory: &Directory,
        id: &InvitationId,
        reason: Option<&str>,
        now_ms: u64,
    ) -> Result<Option<AuditNote>, AdminError> {
        activity.check_access(actor, directory, Access::Organise)?;
        let reason = reason
            .map(|r| text::line("reason", r, shangliang_signaling::limits::MAX_REASON_CHARS))
            .transpose()?;
        let inv = self.invitations.get_mut(id).ok_or(AdminError::NoSuchInvitation)?;
        if inv.revoked.is_some() {
            return Ok(None);
        }
        inv.revoked = Some(Revocation { at_ms: now_ms, by: actor.audit_name(), reason: reason.clone() });
        self.revocations.insert(id.clone(), inv.expires_ms);
        let mut note = AuditNote::new(now_ms, actor.audit_name(), "invitation_revoked", id.as_str(), inv.invitee.person.as_str());
        note.reason = reason;
        Ok(Some(note))
    }

    /// Counts a redemption (after [`redeem`] admitted it).
    pub fn handle_used(&mut self, id: &InvitationId, now_ms: u64) {
        if let Some(inv) = self.invitations.get_mut(id) {
            inv.uses = inv.uses.saturating_add(1);
            inv.first_used_ms.get_or_insert(now_ms);
            inv.last_used_ms = Some(now_ms);
        }
    }
}

impl Invitee {
    fn role_str(&self) -> &'static str {
        match self.role {
            InviteeRole::Member => "member",
            InviteeRole::Guest => "guest",
        }
    }
}

/// A refused redemption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub error: AdminError,
    /// For the audit log, when the link was genuine (see the module docs).
    pub audit: Option<Box<AuditNote>>,
}

fn refusal(error: AdminError, audit: Option<AuditNote>) -> Refusal {
    Refusal { error, audit: audit.map(Box::new) }
}

/// Redeems an invitation link for `activity` at `now_ms`: checks the signature and purpose,
/// the activity, the expiry, the revocation list, and that the activity is not over. Admits
/// while scheduled (the page waits with its countdown), open and paused.
pub fn redeem(
    token: &str,
    keys: &InvitationKeys,
    revoked: &RevocationList,
    activity: &Activity,
    now_ms: u64,
) -> Result<(ParticipantPass, AuditNote), Refusal> {
    let c: InvitationClaims = match keys.key.verify(token, now_ms) {
        Ok(c) => c,
        Err(SignError::Invalid) => return Err(refusal(AdminError::InvitationInvalid, None)),
        Err(SignError::Expired) => {
            // Signed by us, so its claims are genuine: decode them again for the log entry.
            let c: Option<InvitationClaims> = keys.key.verify(token, 0).ok();
            let note = c.filter(|c| &c.act == activity.id()).map(|c| refused(&c, "invitation_expired", now_ms));
            return Err(refusal(AdminError::InvitationExpired, note));
        }
    };
    if &c.act != activity.id() {
        return Err(refusal(AdminError::InvitationInvalid, None));
    }
    if revoked.contains(&c.jti) {
        return Err(refusal(AdminError::InvitationRevoked, Some(refused(&c, "invitation_revoked", now_ms))));
    }
    if activity.state().is_read_only() {
        return Err(refusal(AdminError::ActivityOver, Some(refused(&c, "activity_over", now_ms))));
    }
    let iat = now_ms / 1000;
    let pass = ParticipantPass {
        invitation: c.jti.clone(),
        subject: c.sub.clone(),
        name: c.name.clone(),
        role: c.role.into(),
        activity: c.act.clone(),
        org: c.org.clone(),
        verified: c.verified,
        iat,
        exp: c.exp.min(iat + PASS_TTL_MS / 1000),
    };
    let note = AuditNote::new(now_ms, c.sub.to_string(), "invitation_used", c.jti.as_str(), "");
    Ok((pass, note))
}

fn refused(c: &InvitationClaims, code: &str, now_ms: u64) -> AuditNote {
    AuditNote::new(now_ms, c.sub.to_string(), "invitation_refused", c.jti.as_str(), code)
}

/// The invited people of an activity for the minutes, by name: each person once, with the
/// status of their best invitation (an active one over an expired one over a revoked one; the
/// newest among equals), so a re-issued invitation supersedes the revoked one it replaced.
/// The wiring joins it with the session's attendance rows by subject (= person).
pub fn invited_people(book: &InvitationBook, now_ms: u64) -> Vec<(&Invitee, InvitationStatus)> {
    let rank = |s: InvitationStatus| match s {
        InvitationStatus::Active => 2,
        InvitationStatus::Expired => 1,
        InvitationStatus::Revoked => 0,
    };
    let mut best: BTreeMap<&PersonId, &Invitation> = BTreeMap::new();
    for inv in book.all() {
        let key = |i: &Invitation| (rank(i.status(now_ms)), i.issued_ms);
        best.entry(&inv.invitee.person)
            .and_modify(|b| {
                if key(inv) > key(b) {
                    *b = inv;
                }
            })
            .or_insert(inv);
    }
    let mut out: Vec<(&Invitee, InvitationStatus)> =
        best.into_values().map(|i| (&i.invitee, i.status(now_ms))).collect();
    out.sort_by(|a, b| (&a.0.name, &a.0.person).cmp(&(&b.0.name, &b.0.person)));
    out
}
