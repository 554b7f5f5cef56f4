//! Request and response types of the organisers' REST API to come, with their OpenAPI schemas
//! (`utoipa`). No routes here: the wiring step adds handlers that parse these, call the domain
//! and answer these, and registers them in an `#[derive(OpenApi)]` document whose components
//! are [`AdminApiDoc`]'s.
//!
//! Every refusal is answered as [`ErrorBody`] (`{"error": code, "message": …}`, the shape the
//! hub's `ApiError` already answers) with [`AdminError::status`] as the HTTP status.
//! Times are milliseconds since the Unix epoch (as everywhere in the protocol).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::access::{Access, Actor, Share, StaffRole};
use super::accounts::{NewAccount, StaffAccount};
use super::activity::{Activity, ActivityDraft, ActivityKind, ActivityPatch, LifecycleAction, LifecycleState, StateRules};
use super::committee::{Committee, Directory, Level};
use super::error::{AdminError, ERROR_CODES};
use super::ids::{CommitteeId, InvitationId, PersonId, UserId};
use super::invitations::{Invitation, InvitationStatus, InviteeRole, NewInvitee};
use super::settings::{
    ActivitySettings, CommentReview, Commenters, Discussion, LanguageTag, Overtime, SettingChange, SettingsPatch,
    StageLineup,
};

/// Every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The stable code ([`ERROR_CODES`]).
    #[schema(example = "committee_forbidden")]
    pub error: String,
    /// For people (English); may change between versions.
    pub message: String,
}

impl From<&AdminError> for ErrorBody {
    fn from(e: &AdminError) -> Self {
        ErrorBody { error: e.code().to_owned(), message: e.to_string() }
    }
}

/// An organisation as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrgView {
    /// Level.
    pub level: Level,
    /// Name.
    pub name: String,
}

/// A committee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommitteeView {
    /// Id.
    pub id: CommitteeId,
    /// Name.
    #[schema(example = "西安市政协")]
    pub name: String,
    /// Level.
    pub level: Level,
    /// The committee above (none for a province).
    pub parent: Option<CommitteeId>,
}

impl From<&Committee> for CommitteeView {
    fn from(c: &Committee) -> Self {
        CommitteeView { id: c.id.clone(), name: c.name.clone(), level: c.level, parent: c.parent.clone() }
    }
}

/// `POST /api/admin/committees`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCommitteeRequest {
    /// Id.
    pub id: CommitteeId,
    /// Name.
    pub name: String,
    /// Level.
    pub level: Level,
    /// Parent (a city's province, a county's city).
    #[serde(default)]
    pub parent: Option<CommitteeId>,
}

/// `POST /api/admin/activities`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateActivityRequest {
    /// An id of your choice; default: made by the hub.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "2024-09-20-urban-rural")]
    pub id: Option<String>,
    /// Title.
    #[schema(example = "推进城乡融合发展网络议政")]
    pub title: String,
    /// Topic (议题).
    #[schema(example = "以县城为重要载体推进城乡融合发展")]
    pub topic: String,
    /// Description (may be empty; line breaks allowed).
    #[serde(default)]
    pub description: String,
    /// Room or livestream.
    pub kind: ActivityKind,
    /// Organising committee; default: the signed-in organiser's.
    #[serde(default)]
    pub committee: Option<CommitteeId>,
    /// Scheduled start.
    pub scheduled_start_ms: u64,
    /// Planned end.
    pub planned_end_ms: u64,
    /// Settings other than the kind's defaults.
    #[serde(default)]
    pub settings: SettingsPatch,
}

impl CreateActivityRequest {
    /// The domain draft; `default_committee` is the signed-in staff member's.
    pub fn into_draft(self, default_committee: Option<&CommitteeId>) -> Result<ActivityDraft, AdminError> {
        let committee = self
            .committee
            .or_else(|| default_committee.cloned())
            .ok_or_else(|| AdminError::invalid("committee", "name the organising committee"))?;
        Ok(ActivityDraft {
            title: self.title,
            topic: self.topic,
            description: self.description,
            kind: self.kind,
            committee,
            scheduled_start_ms: self.scheduled_start_ms,
            planned_end_ms: self.planned_end_ms,
            settings: self.settings,
        })
    }
}

/// `PATCH /api/admin/activities/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateActivityRequest {
    /// New title.
    #[serde(default)]
    pub title: Option<String>,
    /// New topic.
    #[serde(default)]
    pub topic: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New start (only while scheduled).
    #[serde(default)]
    pub scheduled_start_ms: Option<u64>,
    /// New planned end.
    #[serde(default)]
    pub planned_end_ms: Option<u64>,
}

impl From<UpdateActivityRequest> for ActivityPatch {
    fn from(r: UpdateActivityRequest) -> Self {
        ActivityPatch {
            title: r.title,
            topic: r.topic,
            description: r.description,
            scheduled_start_ms: r.scheduled_start_ms,
            planned_end_ms: r.planned_end_ms,
        }
    }
}

/// `POST /api/admin/activities/{id}/transitions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// What to do.
    pub action: LifecycleAction,
    /// Why (kept in the audit log).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `PUT /api/admin/activities/{id}/shares`: share with a committee, or end the share (`null`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// The committee.
    pub committee: CommitteeId,
    /// What it gets; `null` ends the share.
    pub share: Option<Share>,
}

/// One share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShareView {
    /// The committee.
    pub committee: CommitteeId,
    /// What it has.
    pub share: Share,
}

/// An activity as the organisers' API shows it, for one actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActivityView {
    /// Id.
    #[schema(value_type = String)]
    pub id: shangliang_signaling::ActivityId,
    /// Title.
    pub title: String,
    /// Topic (议题).
    pub topic: String,
    /// Description.
    pub description: String,
    /// Room or livestream.
    pub kind: ActivityKind,
    /// Organising committee.
    pub committee: CommitteeView,
    /// Scheduled start.
    pub scheduled_start_ms: u64,
    /// Planned end.
    pub planned_end_ms: u64,
    /// Lifecycle state.
    pub state: LifecycleState,
    /// What the state allows now.
    pub rules: StateRules,
    /// Settings.
    pub settings: ActivitySettings,
    /// Committees it is shared with.
    pub shares: Vec<ShareView>,
    /// Scheduled at.
    pub created_ms: u64,
    /// Scheduled by.
    pub created_by: String,
    /// First opened at.
    pub opened_ms: Option<u64>,
    /// Closed at.
    pub closed_ms: Option<u64>,
    /// The caller's access.
    pub access: Access,
    /// The lifecycle actions the caller may take now.
    pub actions: Vec<LifecycleAction>,
}

impl ActivityView {
    /// The view of `a` for `actor` at `now_ms`.
    pub fn of(a: &Activity, actor: &Actor, directory: &Directory, now_ms: u64) -> Self {
        let committee = directory.get(a.committee()).map(CommitteeView::from).unwrap_or_else(|| CommitteeView {
            id: a.committee().clone(),
            name: a.committee().to_string(),
            level: a.level(),
            parent: None,
        });
        ActivityView {
            id: a.id().clone(),
            title: a.title().to_owned(),
            topic: a.topic().to_owned(),
            description: a.description().to_owned(),
            kind: a.kind(),
            committee,
            scheduled_start_ms: a.scheduled_start_ms(),
            planned_end_ms: a.planned_end_ms(),
            state: a.state(),
            rules: a.rules(now_ms),
            settings: a.settings().clone(),
            shares: a.shares().iter().map(|(c, s)| ShareView { committee: c.clone(), share: *s }).collect(),
            created_ms: a.created_ms(),
            created_by: a.created_by().to_owned(),
            opened_ms: a.opened_ms(),
            closed_ms: a.closed_ms(),
            access: a.access_of(actor, directory),
            actions: a.available_actions(actor, directory, now_ms),
        }
    }
}

/// `GET /api/admin/activities` query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityListQuery {
    /// Only this state.
    #[serde(default)]
    pub state: Option<LifecycleState>,
    /// Include archived activities.
    #[serde(default)]
    pub include_archived: bool,
    /// Only this committee's.
    #[serde(default)]
    pub committee: Option<CommitteeId>,
    /// Starting at or after.
    #[serde(default)]
    pub from_ms: Option<u64>,
    /// Starting before.
    #[serde(default)]
    pub to_ms: Option<u64>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// From the previous page's `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `GET /api/admin/activities`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActivityListResponse {
    /// By scheduled start.
    pub activities: Vec<ActivityView>,
    /// For the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// `PATCH /api/admin/activities/{id}/settings` answers this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SettingsResponse {
    /// The settings now.
    pub settings: ActivitySettings,
    /// What changed (and, if live, reached the session).
    pub changes: Vec<SettingChange>,
}

/// `POST /api/admin/activities/{id}/invitations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitationRequest {
    /// A member's platform id; omit for a guest without one.
    #[serde(default)]
    pub person: Option<PersonId>,
    /// Display name.
    #[schema(example = "王委员")]
    pub name: String,
    /// Member or guest.
    pub role: InviteeRole,
    /// A member's committee.
    #[serde(default)]
    pub committee: Option<CommitteeId>,
    /// A guest's affiliation.
    #[serde(default)]
    pub affiliation: Option<String>,
    /// Real-name verified by the organisers.
    #[serde(default)]
    pub verified: bool,
    /// Expiry; default one hour after the planned end.
    #[serde(default)]
    pub expires_ms: Option<u64>,
}

impl From<CreateInvitationRequest> for NewInvitee {
    fn from(r: CreateInvitationRequest) -> Self {
        NewInvitee {
            person: r.person,
            name: r.name,
            role: r.role,
            committee: r.committee,
            affiliation: r.affiliation,
            verified: r.verified,
        }
    }
}

/// An invitation as organisers see it (never with its link after creation: re-issue instead).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvitationView {
    /// Id.
    pub id: InvitationId,
    /// The person.
    pub person: PersonId,
    /// Display name.
    pub name: String,
    /// Member or guest.
    pub role: InviteeRole,
    /// Organisation.
    pub org: Option<OrgView>,
    /// A guest's affiliation.
    pub affiliation: Option<String>,
    /// Verified.
    pub verified: bool,
    /// Where it stands now.
    pub status: InvitationStatus,
    /// Issued at.
    pub issued_ms: u64,
    /// Issued by.
    pub issued_by: String,
    /// Expires at.
    pub expires_ms: u64,
    /// Revoked at.
    pub revoked_ms: Option<u64>,
    /// Times redeemed.
    pub uses: u32,
    /// First redeemed at.
    pub first_used_ms: Option<u64>,
    /// Last redeemed at.
    pub last_used_ms: Option<u64>,
}

impl InvitationView {
    /// The view of `i` at `now_ms`.
    pub fn of(i: &Invitation, now_ms: u64) -> Self {
        InvitationView {
            id: i.id.clone(),
            person: i.invitee.person.clone(),
            name: i.invitee.name.clone(),
            role: i.invitee.role,
            org: i.invitee.org.as_ref().map(|o| OrgView { level: o.level.into(), name: o.name.clone() }),
            affiliation: i.invitee.affiliation.clone(),
            verified: i.invitee.verified,
            status: i.status(now_ms),
            issued_ms: i.issued_ms,
            issued_by: i.issued_by.clone(),
            expires_ms: i.expires_ms,
            revoked_ms: i.revoked.as_ref().map(|r| r.at_ms),
            uses: i.uses,
            first_used_ms: i.first_used_ms,
            last_used_ms: i.last_used_ms,
        }
    }
}

/// `POST /api/admin/activities/{id}/invitations` answers this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedInvitation {
    /// The invitation.
    pub invitation: InvitationView,
    /// The join link's path and query (`/join/{activity}?invite={token}`), for the copy button.
    pub link: String,
}

/// `GET /api/admin/activities/{id}/invitations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvitationListResponse {
    /// By name.
    pub invitations: Vec<InvitationView>,
}

/// `POST /api/admin/activities/{id}/invitations/{inv}/revoke`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeInvitationRequest {
    /// Why (kept in the audit log).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/invitations/redeem` (public: the link is the credential).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// The `invite` parameter of the link.
    pub token: String,
}

/// A redeemed invitation: a participant token for the person.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RedeemResponse {
    /// The participant token (as `viewer-token` answers, for `auth`).
    pub token: String,
    /// The person (the token's subject).
    pub subject: PersonId,
    /// Display name.
    pub name: String,
    /// Member or guest.
    pub role: InviteeRole,
    /// The activity.
    #[schema(value_type = String)]
    pub activity: shangliang_signaling::ActivityId,
    /// Seconds the token is good for.
    pub expires_in: u64,
}

/// `POST /api/admin/users`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Sign-in name.
    #[schema(example = "zhang.wei")]
    pub username: String,
    /// Display name.
    pub name: String,
    /// Initial password.
    #[schema(format = Password, write_only)]
    pub password: String,
    /// Committee.
    pub committee: CommitteeId,
    /// Role.
    pub role: StaffRole,
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("username", &self.username)
            .field("committee", &self.committee)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl From<CreateUserRequest> for NewAccount {
    fn from(r: CreateUserRequest) -> Self {
        NewAccount { username: r.username, name: r.name, committee: r.committee, role: r.role, password: r.password }
    }
}

/// A staff account (never with its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: UserId,
    /// Sign-in name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Committee.
    pub committee: CommitteeId,
    /// Role.
    pub role: StaffRole,
    /// Disabled.
    pub disabled: bool,
    /// Created at.
    pub created_ms: u64,
}

impl From<&StaffAccount> for UserView {
    fn from(a: &StaffAccount) -> Self {
        UserView {
            id: a.id.clone(),
            username: a.username.as_str().to_owned(),
            name: a.name.clone(),
            committee: a.committee.clone(),
            role: a.role,
            disabled: a.disabled,
            created_ms: a.created_ms,
        }
    }
}

/// `POST /api/admin/sign-in`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// Sign-in name.
    pub username: String,
    /// Password.
    #[schema(format = Password, write_only)]
    pub password: String,
}

impl std::fmt::Debug for SignInRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInRequest").field("username", &self.username).finish_non_exhaustive()
    }
}

/// A signed-in session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignInResponse {
    /// The staff session token (`Authorization: Bearer …`).
    pub token: String,
    /// Seconds it is good for.
    pub expires_in: u64,
    /// Who.
    pub user: UserView,
}

/// The schemas of the organisers' API, for the OpenAPI document the wiring step serves at
/// `/api/openapi.json` (it adds the paths). `ERROR_CODES` go into [`ErrorBody`]'s description
/// there.
#[derive(OpenApi)]
#[openapi(components(schemas(
    ErrorBody,
    OrgView,
    CommitteeView,
    CreateCommitteeRequest,
    CreateActivityRequest,
    UpdateActivityRequest,
    TransitionRequest,
    ShareRequest,
    ShareView,
    ActivityView,
    ActivityListQuery,
    ActivityListResponse,
    SettingsResponse,
    CreateInvitationRequest,
    InvitationView,
    CreatedInvitation,
    InvitationListResponse,
    RevokeInvitationRequest,
    RedeemRequest,
    RedeemResponse,
    CreateUserRequest,
    UserView,
    SignInRequest,
    SignInResponse,
    ActivitySettings,
    SettingsPatch,
    SettingChange,
    Discussion,
    Overtime,
    CommentReview,
    Commenters,
    StageLineup,
    LanguageTag,
    ActivityKind,
    LifecycleState,
    LifecycleAction,
    StateRules,
    Access,
    Share,
    StaffRole,
    Level,
    InviteeRole,
    InvitationStatus,
    CommitteeId,
    PersonId,
    InvitationId,
    UserId,
)))]
pub struct AdminApiDoc;

/// The stable error codes, for the document's description of [`ErrorBody::error`].
pub fn error_codes() -> &'static [&'static str] {
    ERROR_CODES
}
