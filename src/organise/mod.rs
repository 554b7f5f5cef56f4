//! The organisers' side wired to storage: [`Organisers`] runs the pure domain
//! ([`crate::admin`]) over the [`AdminStore`] and mirrors what the hub must know into the
//! [`Record`] (an activity scheduled here is created in the record in state `scheduled`, so
//! `GET /api/activities`, tokens, the websocket `sub` and the media join know it; `open` makes
//! it `live`, `close` makes it `ended`). The REST API ([`crate::server::http::admin`]) and the
//! CLI ([`cli`]) both go through it, so they cannot disagree about a rule.
//!
//! Each call: read the current value, let the domain decide (authorisation, rules), store the
//! result with its audit notes in one transaction; a concurrent change between read and store
//! is detected (compare-and-swap on the stored document) and the call is tried again, a few
//! times at most.

pub mod cli;
pub mod gate;
pub mod minutes;

use std::path::Path;
use std::sync::Arc;

use shangliang_signaling::ActivityId;

use crate::admin::accounts::{NewAccount, StaffAccount, handle_add_account, sign_in};
use crate::admin::activity::{ListFilter, SettingsOutcome, list};
use crate::admin::invitations::{InvitationBook, Issued, NewInvitee, ParticipantPass, Refusal, redeem};
use crate::admin::{
    Activity, ActivityDraft, ActivityPatch, Actor, AdminError, Committee, Directory, HashParams, InvitationId,
    InvitationKeys, Level, LifecycleAction, LifecycleState, PasswordHasher, SettingsPatch, Staff, StaffTokens,
    Transition, UserId,
};
use crate::admin::CommitteeId;
use crate::record::admin::{AdminStore, StoredNote, committee_scope};
use crate::record::{ActivityKind as RecordKind, ActivityState, Record, RecordError};

/// How often a call retries after a concurrent change of the same activity.
const RETRIES: usize = 5;

/// What can go wrong: a refusal of the domain (stable code, HTTP status), or storage.
#[derive(Debug, thiserror::Error)]
pub enum OrganiseError {
    /// The domain refused (see [`AdminError::code`]).
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The record or the organisers' tables failed.
    #[error("the record is unavailable: {0}")]
    Record(#[from] RecordError),
    /// Changed by someone else meanwhile, [`RETRIES`] times in a row.
    #[error("the activity changed meanwhile; try again")]
    Conflict,
}

impl OrganiseError {
    /// The stable code (the domain's, `unavailable` or `conflict`).
    pub fn code(&self) -> &'static str {
        match self {
            OrganiseError::Admin(e) => e.code(),
            OrganiseError::Record(_) => "unavailable",
            OrganiseError::Conflict => "conflict",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            OrganiseError::Admin(e) => e.status(),
            OrganiseError::Record(_) => 503,
            OrganiseError::Conflict => 409,
        }
    }
}

/// The error codes beyond [`AdminError`]'s, for the OpenAPI document.
pub const EXTRA_ERROR_CODES: &[&str] = &["unavailable", "conflict", "not_found", "bad_request"];

type Result<T> = std::result::Result<T, OrganiseError>;

/// The record's state for a lifecycle state.
pub fn record_state(s: LifecycleState) -> ActivityState {
    match s {
        LifecycleState::Scheduled => ActivityState::Scheduled,
        LifecycleState::Open | LifecycleState::Paused => ActivityState::Live,
        LifecycleState::Closed | LifecycleState::Archived => ActivityState::Ended,
    }
}

fn record_kind(k: crate::admin::ActivityKind) -> RecordKind {
    match k {
        crate::admin::ActivityKind::Room => RecordKind::Room,
        crate::admin::ActivityKind::Livestream => RecordKind::Livestream,
    }
}

/// Now, ms since the Unix epoch.
pub fn now_ms() -> u64 {
    crate::record::now_ms()
}

/// Reads the hub secret (`<data-dir>/secret.key`, hex, made by the hub's token keys on first
/// use) that the staff and invitation keys are derived from.
pub fn hub_secret(data_dir: &Path) -> std::io::Result<Vec<u8>> {
    // Creates it if missing, exactly as the hub does.
    crate::server::auth::TokenKeys::load_or_create(data_dir)?;
    let hex_secret = std::fs::read_to_string(data_dir.join("secret.key"))?;
    hex::decode(hex_secret.trim()).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The organisers' side of one hub (or one CLI invocation).
#[derive(Clone)]
pub struct Organisers {
    store: Arc<dyn AdminStore>,
    record: Arc<dyn Record>,
    hasher: Arc<PasswordHasher>,
    staff_tokens: StaffTokens,
    invitation_keys: Arc<InvitationKeys>,
}

/// A lifecycle action carried out: the transition (its effects for the hub) and the activity
/// after it (`None`: deleted).
pub struct Done {
    /// What the domain decided.
    pub transition: Transition,
    /// The activity now.
    pub activity: Option<Activity>,
}

impl Organisers {
    /// Over `store` and `record`, with keys derived from the hub `secret`.
    pub fn new(store: Arc<dyn AdminStore>, record: Arc<dyn Record>, secret: &[u8], params: HashParams) -> Result<Self> {
        Ok(Organisers {
            store,
            record,
            hasher: Arc::new(PasswordHasher::new(params)?),
            staff_tokens: StaffTokens::from_hub_secret(secret),
            invitation_keys: Arc::new(InvitationKeys::from_hub_secret(secret)),
        })
    }

    /// Over the organisers' tables in `<data_dir>/shangliang.sqlite3` (the SQLite record's
    /// file), keys from the hub secret, production argon2 parameters.
    pub fn open_sqlite(data_dir: &Path, record: Arc<dyn Record>) -> std::result::Result<Self, RecordError> {
        let store = crate::record::sqlite::admin::SqliteAdminStore::open(&data_dir.join("shangliang.sqlite3"))?;
        let secret = hub_secret(data_dir).map_err(|e| RecordError::Unavailable(format!("hub secret: {e}")))?;
        Organisers::new(Arc::new(store), record, &secret, HashParams::PRODUCTION)
            .map_err(|e| RecordError::Unavailable(e.to_string()))
    }

    /// The store (for tests and the CLI's listings).
    pub fn store(&self) -> &Arc<dyn AdminStore> {
        &self.store
    }

    /// The committees, as a tree (parents are stored before their children).
    pub fn directory(&self) -> Result<Directory> {
        directory_of(self.store.as_ref())
    }

    /// Adds a committee (a province only by the operator; see [`Directory::handle_create`]).
    pub fn add_committee(&self, actor: &Actor, id: CommitteeId, name: &str, level: Level, parent: Option<CommitteeId>) -> Result<Committee> {
        let mut d = self.directory()?;
        let note = d.handle_create(actor, id.clone(), name, level, parent, now_ms())?;
        let c = d.get(&id).cloned().ok_or(AdminError::NoSuchCommittee)?;
        if !self.store.insert_committee(&c, &note)? {
            return Err(AdminError::AlreadyExists("committee").into());
        }
        Ok(c)
    }

    /// Adds a staff account.
    pub fn add_user(&self, actor: &Actor, req: NewAccount) -> Result<StaffAccount> {
        let d = self.directory()?;
        let (account, note) = handle_add_account(actor, &d, req, &self.hasher, UserId::random(), now_ms())?;
        if !self.store.insert_account(&account, &note)? {
            return Err(AdminError::AlreadyExists("user").into());
        }
        Ok(account)
    }

    /// Signs in with user name and password: a staff session token and the account.
    pub fn sign_in(&self, username: &str, password: &str) -> Result<(String, u64, StaffAccount)> {
        let account = self.store.account_by_username(username)?;
        let s = sign_in(account.as_ref(), password, &self.hasher)?;
        let mut account = account.ok_or(AdminError::BadCredentials)?;
        if s.rehash {
            account.password_hash = Some(self.hasher.hash(password)?);
            self.store.update_account(&account, &[])?;
        }
        let ttl = crate::admin::signing::STAFF_SESSION_SECS;
        Ok((self.staff_tokens.mint(&s.staff, ttl, now_ms()), ttl, account))
    }

    /// The staff member a session token is for, if the account still exists and is enabled.
    pub fn authenticate(&self, token: &str) -> Result<Staff> {
        let staff = self.staff_tokens.verify(token, now_ms())?;
        let account = self.store.accounts()?.into_iter().find(|a| a.id == staff.user);
        match account {
            Some(a) if a.disabled => Err(AdminError::AccountDisabled.into()),
            Some(a) => Ok(a.staff()),
            None => Err(AdminError::Unauthenticated("the account no longer exists".into()).into()),
        }
    }

    /// Schedules an activity: stored here, and created in the record as `scheduled`.
    pub async fn schedule(&self, actor: &Actor, id: Option<ActivityId>, draft: ActivityDraft) -> Result<Activity> {
        let id = match id {
            Some(id) => id,
            None => ActivityId::new(&format!("a-{}", hex::encode(rand::random::<[u8; 8]>())))
                .map_err(|e| AdminError::Invalid { field: "id", problem: e.to_string() })?,
        };
        let d = self.directory()?;
        let (a, note) = Activity::handle_schedule(id.clone(), draft, actor, &d, now_ms())?;
        if self.store.activity(&id)?.is_some() || self.record.activity(&id)?.is_some() {
            return Err(AdminError::AlreadyExists("activity").into());
        }
        match self.record.create_activity(id.clone(), a.title(), record_kind(a.kind()), ActivityState::Scheduled).await {
            Ok(_) => {}
            Err(RecordError::AlreadyExists(_)) => return Err(AdminError::AlreadyExists("activity").into()),
            Err(e) => return Err(e.into()),
        }
        if !self.store.insert_activity(&a, &[note])? {
            return Err(AdminError::AlreadyExists("activity").into());
        }
        Ok(a)
    }

    /// One activity, if `actor` may see it (an activity of another committee is answered as
    /// forbidden, not as missing: the organisers know the committees' activities exist).
    pub fn get(&self, actor: &Actor, id: &ActivityId) -> Result<(Activity, Directory)> {
        let d = self.directory()?;
        let a = self.store.activity(id)?.ok_or(AdminError::NoSuchActivity)?;
        a.check_access(actor, &d, crate::admin::Access::See)?;
        Ok((a, d))
    }

    /// The activities `actor` may see, by start.
    pub fn list(&self, actor: &Actor, filter: &ListFilter) -> Result<(Vec<Activity>, Directory)> {
        let d = self.directory()?;
        let all = self.store.activities()?;
        let out = list(&all, actor, &d, filter).into_iter().cloned().collect();
        Ok((out, d))
    }

    /// Reads, changes with `f`, stores with the notes `f` returns; retried on a concurrent
    /// change.
    fn change<T>(&self, id: &ActivityId, mut f: impl FnMut(&mut Activity, &Directory) -> std::result::Result<(T, Vec<crate::admin::AuditNote>), AdminError>) -> Result<(T, Activity)> {
        for _ in 0..RETRIES {
            let d = self.directory()?;
            let before = self.store.activity(id)?.ok_or(AdminError::NoSuchActivity)?;
            let mut a = before.clone();
            let (out, notes) = f(&mut a, &d)?;
            if self.store.update_activity(&before, &a, &notes)? {
                return Ok((out, a));
            }
        }
        Err(OrganiseError::Conflict)
    }

    /// Changes title, topic, description or times.
    pub fn update(&self, actor: &Actor, id: &ActivityId, patch: &ActivityPatch) -> Result<Activity> {
        Ok(self.change(id, |a, d| Ok(((), a.handle_update(actor, d, patch, now_ms())?)))?.1)
    }

    /// Changes settings; the outcome says what a running session must be told.
    pub fn settings(&self, actor: &Actor, id: &ActivityId, patch: &SettingsPatch) -> Result<(SettingsOutcome, Activity)> {
        self.change(id, |a, d| {
            let o = a.handle_settings(actor, d, patch, now_ms())?;
            let notes = o.audit.clone();
            Ok((o, notes))
        })
    }

    /// A lifecycle action; the record's state follows (`open` → live, `close` → ended). A
    /// deleted activity stays in the record as `ended` with no items (the record has no
    /// deletion yet).
    pub async fn transition(&self, actor: &Actor, id: &ActivityId, action: LifecycleAction, reason: Option<&str>) -> Result<Done> {
        let done = if action == LifecycleAction::Delete {
            let d = self.directory()?;
            let mut a = self.store.activity(id)?.ok_or(AdminError::NoSuchActivity)?;
            let t = a.handle_transition(actor, &d, action, reason, now_ms())?;
            if !self.store.delete_activity(id, std::slice::from_ref(&t.audit))? {
                return Err(OrganiseError::Conflict);
            }
            Done { transition: t, activity: None }
        } else {
            let (t, a) = self.change(id, |a, d| {
                let t = a.handle_transition(actor, d, action, reason, now_ms())?;
                let note = t.audit.clone();
                Ok((t, vec![note]))
            })?;
            Done { transition: t, activity: Some(a) }
        };
        let state = done.activity.as_ref().map_or(ActivityState::Ended, |a| record_state(a.state()));
        let current = self.record.activity(id)?.map(|a| a.state);
        if current != Some(state) {
            match self.record.set_activity_state(id, state).await {
                Ok(()) | Err(RecordError::NoSuchActivity(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }

    /// The invitations of an activity (organisers of its committee).
    pub fn invitations(&self, actor: &Actor, id: &ActivityId) -> Result<Vec<crate::admin::invitations::Invitation>> {
        let (a, d) = self.get(actor, id)?;
        a.check_access(actor, &d, crate::admin::Access::Organise)?;
        Ok(self.store.invitations(id)?)
    }

    /// Invites a person; answers the invitation and its signed link token.
    pub fn invite(&self, actor: &Actor, id: &ActivityId, invitee: NewInvitee, expires_ms: Option<u64>) -> Result<Issued> {
        let d = self.directory()?;
        let a = self.store.activity(id)?.ok_or(AdminError::NoSuchActivity)?;
        let mut book = InvitationBook::from_stored(self.store.invitations(id)?);
        let issued = book.handle_issue(&a, actor, &d, invitee, InvitationId::random(), expires_ms, &self.invitation_keys, now_ms())?;
        self.store.put_invitations(id, &[&issued.invitation], std::slice::from_ref(&issued.audit))?;
        Ok(issued)
    }

    /// Revokes an invitation (revoking twice changes nothing).
    pub fn revoke(&self, actor: &Actor, id: &ActivityId, invitation: &InvitationId, reason: Option<&str>) -> Result<crate::admin::invitations::Invitation> {
        let d = self.directory()?;
        let a = self.store.activity(id)?.ok_or(AdminError::NoSuchActivity)?;
        let mut book = InvitationBook::from_stored(self.store.invitations(id)?);
        let note = book.handle_revoke(&a, actor, &d, invitation, reason, now_ms())?;
        let inv = book.get(invitation).cloned().ok_or(AdminError::NoSuchInvitation)?;
        if let Some(note) = note {
            self.store.put_invitations(id, &[&inv], &[note])?;
        }
        Ok(inv)
    }

    /// Redeems an invitation link: the pass a participant token is minted from (subject = the
    /// person). The use is counted and logged; a refused use of a genuine link is logged too.
    pub fn redeem(&self, token: &str) -> Result<ParticipantPass> {
        let claims_activity = self.invitation_keys.activity_of(token).ok_or(AdminError::InvitationInvalid)?;
        let a = self.store.activity(&claims_activity)?.ok_or(AdminError::InvitationInvalid)?;
        let mut book = InvitationBook::from_stored(self.store.invitations(a.id())?);
        let now = now_ms();
        match redeem(token, &self.invitation_keys, book.revocations(), &a, now) {
            Ok((pass, note)) => {
                book.handle_used(&pass.invitation, now);
                let inv = book.get(&pass.invitation).cloned().ok_or(AdminError::InvitationInvalid)?;
                self.store.put_invitations(a.id(), &[&inv], &[note])?;
                Ok(pass)
            }
            Err(Refusal { error, audit }) => {
                if let Some(note) = audit {
                    self.store.put_invitations(a.id(), &[], &[*note])?;
                }
                Err(error.into())
            }
        }
    }

    /// The organisers' notes of an activity, oldest first (organisers and moderators who may
    /// see it).
    pub fn notes(&self, actor: &Actor, id: &ActivityId) -> Result<Vec<StoredNote>> {
        self.get(actor, id)?;
        Ok(self.store.notes(id.as_str())?)
    }

    /// A committee's notes (its creation, its accounts).
    pub fn committee_notes(&self, id: &CommitteeId) -> Result<Vec<StoredNote>> {
        Ok(self.store.notes(&committee_scope(id))?)
    }
}

/// The committees of `store` as a tree (parents are stored before their children).
pub fn directory_of(store: &dyn AdminStore) -> Result<Directory> {
    let mut d = Directory::new();
    for c in store.committees()? {
        d.handle_add(c.id, &c.name, c.level, c.parent)?;
    }
    Ok(d)
}

/// The organisers' part of an activity's minutes, if the organisers manage it (`None` for the
/// demo activities): committee, topic, the invited people and their attendance in `summary`.
pub fn minutes_of(store: &dyn AdminStore, id: &ActivityId, summary: Option<&crate::consult::SessionSummary>) -> Result<Option<minutes::OrganisersMinutes>> {
    let Some(a) = store.activity(id)? else { return Ok(None) };
    let d = directory_of(store)?;
    let invitations = store.invitations(id)?;
    Ok(Some(minutes::OrganisersMinutes::of(&a, &d, &invitations, summary)))
}

impl crate::server::moderation::SessionSource for Organisers {
    fn session_settings(&self, activity: &ActivityId) -> Option<crate::consult::SessionSettings> {
        match self.store.activity(activity) {
            Ok(a) => a.map(|a| a.session_settings()),
            Err(e) => {
                tracing::error!(%activity, "the organisers' settings cannot be read: {e}");
                None
            }
        }
    }
}

/// The grants under which an organiser's change reaches a running session and is logged in
/// its hash chain: a moderator of the activity named `staff:<user>` (the subject the
/// moderator console's token has too) or `operator:<name>`.
pub fn organiser_grants(actor: &Actor, activity: &ActivityId) -> crate::consult::Grants {
    let (subject, name) = match actor {
        Actor::Staff(s) => (format!("staff:{}", s.user), s.name.clone()),
        Actor::Operator { name } => (format!("operator:{name}"), name.clone()),
    };
    crate::consult::Grants {
        subject: crate::consult::ParticipantId::new(subject),
        name,
        role: shangliang_signaling::Role::Moderator,
        org: None,
        verified: true,
        activity: activity.clone(),
    }
}

/// An organisers' note in the shape the moderation driver appends to the hash chain.
pub fn chain_note(n: &crate::admin::AuditNote) -> crate::server::moderation::OrganiserNote {
    crate::server::moderation::OrganiserNote {
        action: n.action.to_owned(),
        target: n.target.clone(),
        detail: n.detail.clone(),
        reason: n.reason.clone(),
    }
}

#[cfg(test)]
mod tests;
