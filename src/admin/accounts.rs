//! Staff accounts (organisers and moderators of a committee) and how they sign in.
//!
//! **Local accounts** are the embedded default: a user name and an argon2id password hash (PHC
//! string, `$argon2id$v=19$m=…,t=…,p=…$salt$hash`) in the record. The parameters live in the
//! hash, so a hash made with other parameters still verifies and [`SignIn::rehash`] says when
//! to replace it.
//!
//! **Parameters for this machine** ([`HashParams::PRODUCTION`]): m = 19 MiB, t = 2, p = 1, the
//! OWASP password-storage recommendation for argon2id. p = 1 because the hub has two cores and
//! a sign-in must not take both from the live sessions; the REST edge runs hashes on the
//! blocking pool behind a semaphore of 2, so sign-ins can cost at most 2 × 19 MiB and one core
//! each at a time, and are rate-limited per address and per user name. (Their duration is to
//! be measured on a quiet machine; see `docs/performance.md`.) Tests use
//! [`HashParams::TEST`] (8 KiB, t = 1), argon2's minimum, so they stay fast.
//!
//! **OpenID Connect** (what real deployments use, against the platform's identity provider) is
//! not implemented. The crate would be `openidconnect` (authorization-code flow with PKCE,
//! ID-token validation, discovery). An account would then carry an [`ExternalIdentity`]
//! (issuer, subject) instead of a password hash; committee and role come from the account
//! record matched by (issuer, subject), or, if the provider is trusted for it, from a claim
//! (e.g. `groups: ["sn-xa:organiser"]`) mapped by a configured table; a first sign-in without
//! a matching account is refused, not auto-provisioned. After either sign-in the hub issues the
//! same staff session token ([`super::signing::StaffTokens`]).

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use super::access::{Actor, Staff, StaffRole, require_organiser_of};
use super::activity::AuditNote;
use super::committee::Directory;
use super::error::AdminError;
use super::ids::{CommitteeId, UserId};
use super::text;

/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password, in bytes (argon2 takes any length; this bounds the work an attacker can
/// make one request cost).
pub const MAX_PASSWORD_BYTES: usize = 256;
/// User names: 3 to 32 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub const MAX_USERNAME_LEN: usize = 32;

/// A user name, lower case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// Lower-cases and checks a user name.
    pub fn new(s: &str) -> Result<Self, AdminError> {
        let s = s.trim().to_ascii_lowercase();
        let ok = (3..=MAX_USERNAME_LEN).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && s.as_bytes()[0].is_ascii_alphanumeric();
        if ok {
            Ok(Username(s))
        } else {
            Err(AdminError::invalid("username", "3 to 32 of a-z 0-9 . _ -, starting with a letter or digit"))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = AdminError;
    fn try_from(s: String) -> Result<Self, AdminError> {
        Self::new(&s)
    }
}

impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}

/// An identity at an OpenID Connect provider (for the option described in the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalIdentity {
    /// The provider's issuer URL.
    pub issuer: String,
    /// The subject at that provider.
    pub subject: String,
}

/// A staff account as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffAccount {
    /// Its id (the staff token's subject, the audit log's actor).
    pub id: UserId,
    /// Sign-in name.
    pub username: Username,
    /// Display name.
    pub name: String,
    /// Committee.
    pub committee: CommitteeId,
    /// Role in it.
    pub role: StaffRole,
    /// Argon2id PHC string; `None` for an account that signs in through OpenID Connect only.
    pub password_hash: Option<String>,
    /// An OpenID Connect identity, if linked.
    pub external: Option<ExternalIdentity>,
    /// A disabled account cannot sign in and its sessions stop working.
    pub disabled: bool,
    /// When it was created, ms.
    pub created_ms: u64,
}

impl StaffAccount {
    /// The principal a signed-in session of this account acts as.
    pub fn staff(&self) -> Staff {
        Staff { user: self.id.clone(), name: self.name.clone(), committee: self.committee.clone(), role: self.role }
    }
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes (parallelism).
    pub p: u32,
}

impl HashParams {
    /// For this 2-core machine (see the module docs): 19 MiB, t = 2, p = 1.
    pub const PRODUCTION: HashParams = HashParams { m_kib: 19 * 1024, t: 2, p: 1 };
    /// For tests: argon2's minimum (8 KiB, t = 1, p = 1). Never for real accounts.
    pub const TEST: HashParams = HashParams { m_kib: 8, t: 1, p: 1 };
}

/// Hashes and verifies passwords with one set of parameters.
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    /// A hash of a random password, verified against when the user does not exist, so an
    /// unknown user name takes as long as a wrong password.
    dummy: String,
}

impl PasswordHasher {
    /// A hasher with `params`.
    pub fn new(params: HashParams) -> Result<Self, AdminError> {
        let p = Params::new(params.m_kib, params.t, params.p, None).map_err(|e| AdminError::Hashing(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, p);
        let mut h = PasswordHasher { argon2, dummy: String::new() };
        let random: [u8; 16] = rand::random();
        h.dummy = h.hash_with_salt(&hex::encode(random), rand::random())?;
        Ok(h)
    }

    /// The PHC string of `password` with `salt` (16 random bytes from the caller).
    pub fn hash_with_salt(&self, password: &str, salt: [u8; 16]) -> Result<String, AdminError> {
        let salt = SaltString::encode_b64(&salt).map_err(|e| AdminError::Hashing(e.to_string()))?;
        self.argon2
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AdminError::Hashing(e.to_string()))
    }

    /// The PHC string of `password` with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<String, AdminError> {
        self.hash_with_salt(password, rand::random())
    }

    /// Whether `password` matches `phc` (with the parameters written in `phc`). A malformed
    /// hash does not match.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        if password.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        PasswordHash::new(phc).is_ok_and(|h| self.argon2.verify_password(password.as_bytes(), &h).is_ok())
    }

    /// Whether `phc` was made with parameters other than this hasher's (or another algorithm).
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(h) = PasswordHash::new(phc) else { return true };
        let ours = self.argon2.params();
        let param = |name: &str| h.params.get_decimal(name);
        h.algorithm.as_str() != "argon2id"
            || param("m") != Some(ours.m_cost())
            || param("t") != Some(ours.t_cost())
            || param("p") != Some(ours.p_cost())
    }
}

/// Refuses a password that is too short, too long, or the user name.
pub fn check_password(password: &str, username: &Username) -> Result<(), AdminError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AdminError::WeakPassword(format!("at most {MAX_PASSWORD_BYTES} bytes")));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AdminError::WeakPassword(format!("at least {MIN_PASSWORD_CHARS} characters")));
    }
    if password.trim().eq_ignore_ascii_case(username.as_str()) {
        return Err(AdminError::WeakPassword("must not be the user name".into()));
    }
    Ok(())
}

/// What an organiser fills in to add a staff account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    /// Sign-in name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Committee.
    pub committee: CommitteeId,
    /// Role.
    pub role: StaffRole,
    /// Initial password (the person changes it at first sign-in: the wiring's job).
    pub password: String,
}

/// Adds a staff account: the actor must be an organiser of the committee or of one above it
/// (or the operator). The caller checks that the user name is free in the record (it answers
/// [`AdminError::AlreadyExists`]).
pub fn handle_add_account(
    actor: &Actor,
    directory: &Directory,
    req: NewAccount,
    hasher: &PasswordHasher,
    id: UserId,
    now_ms: u64,
) -> Result<(StaffAccount, AuditNote), AdminError> {
    if directory.get(&req.committee).is_none() {
        return Err(AdminError::NoSuchCommittee);
    }
    require_organiser_of(actor, &req.committee, directory)?;
    let username = Username::new(&req.username)?;
    let name = text::line("name", &req.name, shangliang_signaling::limits::MAX_NAME_CHARS)?;
    check_password(&req.password, &username)?;
    let hash = hasher.hash(&req.password)?;
    let note = AuditNote::new(
        now_ms,
        actor.audit_name(),
        "user_added",
        id.as_str(),
        format!("{}:{}@{}", username.as_str(), req.role.as_str(), req.committee),
    );
    Ok((
        StaffAccount {
            id,
            username,
            name,
            committee: req.committee,
            role: req.role,
            password_hash: Some(hash),
            external: None,
            disabled: false,
            created_ms: now_ms,
        },
        note,
    ))
}

/// A successful sign-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignIn {
    /// Who signed in.
    pub staff: Staff,
    /// The stored hash was made with other parameters: store `hasher.hash(password)` instead.
    pub rehash: bool,
}

/// Checks a sign-in against the account found by user name (`None`: no such user). Unknown
/// user and wrong password are one error and cost one hash each.
pub fn sign_in(account: Option<&StaffAccount>, password: &str, hasher: &PasswordHasher) -> Result<SignIn, AdminError> {
    let stored = account.and_then(|a| a.password_hash.as_deref());
    let ok = hasher.verify(password, stored.unwrap_or(&hasher.dummy));
    match account {
        Some(a) if ok && stored.is_some() => {
            if a.disabled {
                return Err(AdminError::AccountDisabled);
            }
            Ok(SignIn { staff: a.staff(), rehash: hasher.needs_rehash(stored.unwrap_or_default()) })
        }
        _ => Err(AdminError::BadCredentials),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::access::tests::staff;
    use crate::admin::committee::tests::shaanxi;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(HashParams::TEST).unwrap()
    }

    fn account(h: &PasswordHasher) -> StaffAccount {
        let (a, note) = handle_add_account(
            &Actor::Operator { name: "root".into() },
            &shaanxi(),
            NewAccount {
                username: "Zhang.Wei".into(),
                name: "张伟".into(),
                committee: CommitteeId::new("sn-xa").unwrap(),
                role: StaffRole::Organiser,
                password: "correct horse battery".into(),
            },
            h,
            UserId::new("u-zw").unwrap(),
            5,
        )
        .unwrap();
        assert_eq!(note.action, "user_added");
        a
    }

    #[test]
    fn a_password_verifies_against_its_argon2id_hash_and_a_wrong_one_does_not() {
        let h = hasher();
        let phc = h.hash_with_salt("correct horse battery", [7; 16]).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(h.verify("correct horse battery", &phc));
        assert!(!h.verify("correct horse batterY", &phc));
        assert!(!h.verify("correct horse battery", "not a hash"));
        assert_ne!(h.hash("same").unwrap(), h.hash("same").unwrap(), "salts differ");
    }

    #[test]
    fn a_hash_made_with_other_parameters_verifies_and_asks_for_a_rehash() {
        let old = PasswordHasher::new(HashParams { m_kib: 16, t: 1, p: 1 }).unwrap();
        let phc = old.hash("correct horse battery").unwrap();
        let h = hasher();
        assert!(h.verify("correct horse battery", &phc));
        assert!(h.needs_rehash(&phc));
        assert!(!h.needs_rehash(&h.hash("x").unwrap()));
    }

    #[test]
    fn sign_in_tells_neither_unknown_user_nor_wrong_password_apart() {
        let h = hasher();
        let mut a = account(&h);
        assert_eq!(a.username.as_str(), "zhang.wei");
        let ok = sign_in(Some(&a), "correct horse battery", &h).unwrap();
        assert_eq!(ok.staff.committee.as_str(), "sn-xa");
        assert!(!ok.rehash);
        assert_eq!(sign_in(Some(&a), "wrong password!", &h), Err(AdminError::BadCredentials));
        assert_eq!(sign_in(None, "correct horse battery", &h), Err(AdminError::BadCredentials));
        a.disabled = true;
        assert_eq!(sign_in(Some(&a), "correct horse battery", &h), Err(AdminError::AccountDisabled));
        assert_eq!(sign_in(Some(&a), "wrong password!", &h), Err(AdminError::BadCredentials));
        a.password_hash = None;
        a.disabled = false;
        assert_eq!(sign_in(Some(&a), "correct horse battery", &h), Err(AdminError::BadCredentials));
    }

    #[test]
    fn weak_passwords_bad_user_names_and_strangers_are_refused() {
        let h = hasher();
        let d = shaanxi();
        let req = |username: &str, password: &str| NewAccount {
            username: username.into(),
            name: "李".into(),
            committee: CommitteeId::new("sn-xa-lh").unwrap(),
            role: StaffRole::Moderator,
            password: password.into(),
        };
        let add = |who: &Actor, r: NewAccount| {
            handle_add_account(who, &d, r, &h, UserId::new("u-x").unwrap(), 0).map(|_| ()).unwrap_err().code()
        };
        let op = Actor::Operator { name: "root".into() };
        assert_eq!(add(&op, req("li", "long enough pw")), "invalid");
        assert_eq!(add(&op, req("-li", "long enough pw")), "invalid");
        assert_eq!(add(&op, req("li.si", "short")), "weak_password");
        assert_eq!(add(&op, req("lisi.lisi", "LISI.LISI ")), "weak_password");
        assert_eq!(add(&op, req("li.si", &"x".repeat(MAX_PASSWORD_BYTES + 1))), "weak_password");
        assert_eq!(add(&staff("sn-bj", StaffRole::Organiser), req("li.si", "long enough pw")), "committee_forbidden");
        assert_eq!(add(&staff("sn-xa", StaffRole::Moderator), req("li.si", "long enough pw")), "role_forbidden");
        assert!(handle_add_account(&staff("sn", StaffRole::Organiser), &d, req("li.si", "long enough pw"), &h, UserId::random(), 0).is_ok());
    }
}
