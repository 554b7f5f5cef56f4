//! Invitations, staff sessions and the OpenAPI-ready types of the organisers' domain: a link
//! is minted, redeemed, expires and is revoked; it never passes as a participant token; every
//! issue, revocation and use leaves an audit note; the API schemas are complete.

use shangliang::admin::activity::LifecycleAction as A;
use shangliang::admin::api::{AdminApiDoc, CreateActivityRequest, ErrorBody, error_codes};
use shangliang::admin::invitations::{InvitationStatus, InviteeRole, NewInvitee, Refusal, invited_people, redeem};
use shangliang::admin::{
    Activity, ActivityDraft, ActivityKind, Actor, AdminError, CommitteeId, Directory, InvitationBook, InvitationId,
    InvitationKeys, Level, PersonId, SettingsPatch, Staff, StaffRole, StaffTokens, UserId,
};
use shangliang::server::auth::TokenKeys;
use shangliang_signaling::{ActivityId, OrgLevel, Role};
use utoipa::OpenApi;

const T0: u64 = 1_726_790_400_000;
const MIN: u64 = 60_000;
const H: u64 = 3_600_000;
const START: u64 = T0 + 2 * H;
const END: u64 = T0 + 4 * H;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn cid(s: &str) -> CommitteeId {
    CommitteeId::new(s).unwrap()
}

fn directory() -> Directory {
    let mut d = Directory::new();
    d.handle_add(cid("sn"), "陕西省政协", Level::Province, None).unwrap();
    d.handle_add(cid("sn-xa"), "西安市政协", Level::City, Some(cid("sn"))).unwrap();
    d
}

fn staff(committee: &str, role: StaffRole) -> Actor {
    Actor::Staff(Staff {
        user: UserId::new(&format!("u-{committee}-{}", role.as_str())).unwrap(),
        name: "工作人员".into(),
        committee: cid(committee),
        role,
    })
}

fn organiser() -> Actor {
    staff("sn", StaffRole::Organiser)
}

fn activity(id: &str) -> Activity {
    let draft = ActivityDraft {
        title: "推进城乡融合发展网络议政".into(),
        topic: "城乡融合".into(),
        description: String::new(),
        kind: ActivityKind::Livestream,
        committee: cid("sn"),
        scheduled_start_ms: START,
        planned_end_ms: END,
        settings: SettingsPatch::default(),
    };
    Activity::handle_schedule(ActivityId::new(id).unwrap(), draft, &organiser(), &directory(), T0).unwrap().0
}

fn member(id: &str, name: &str) -> NewInvitee {
    NewInvitee {
        person: Some(PersonId::new(id).unwrap()),
        name: name.into(),
        role: InviteeRole::Member,
        committee: Some(cid("sn-xa")),
        affiliation: None,
        verified: true,
    }
}

fn guest(name: &str) -> NewInvitee {
    NewInvitee {
        person: None,
        name: name.into(),
        role: InviteeRole::Guest,
        committee: None,
        affiliation: Some("西北大学".into()),
        verified: false,
    }
}

#[test]
fn a_redeemed_invitation_admits_the_person_not_the_token() {
    let (d, keys) = (directory(), InvitationKeys::from_hub_secret(SECRET));
    let a = activity("sn-0920");
    let mut book = InvitationBook::new();
    let issued = book
        .handle_issue(&a, &organiser(), &d, member("m-1001", "王委员"), InvitationId::random(), None, &keys, T0)
        .unwrap();
    assert_eq!(issued.invitation.expires_ms, END + H, "an hour after the planned end by default");
    assert_eq!(issued.audit.action, "invitation_issued");
    assert_eq!(issued.audit.detail, "member:m-1001");

    // Redeemed while scheduled (the page waits), and again from a second device.
    let (pass, note) = redeem(&issued.link_token, &keys, book.revocations(), &a, T0 + MIN).unwrap();
    assert_eq!(pass.subject.as_str(), "m-1001");
    assert_eq!((pass.name.as_str(), pass.role, pass.verified), ("王委员", Role::Member, true));
    assert_eq!(pass.org.as_ref().map(|o| (o.level, o.name.as_str())), Some((OrgLevel::City, "西安市政协")));
    assert_eq!(pass.exp, (END + H) / 1000, "the pass ends with the invitation");
    assert_eq!((note.action, note.actor.as_str()), ("invitation_used", "m-1001"));
    book.handle_used(&pass.invitation, T0 + MIN);
    let (again, _) = redeem(&issued.link_token, &keys, book.revocations(), &a, START).unwrap();
    assert_eq!(again.subject, pass.subject, "same person, whichever device");
    book.handle_used(&again.invitation, START);
    let stored = book.get(&issued.invitation.id).unwrap();
    assert_eq!((stored.uses, stored.first_used_ms, stored.last_used_ms), (2, Some(T0 + MIN), Some(START)));
    // A long-lived invitation still gives a pass of 12 h at most (the client redeems again).
    let long = book
        .handle_issue(&a, &organiser(), &d, guest("李教授"), InvitationId::random(), Some(END + 72 * H), &keys, T0)
        .unwrap();
    let (pass, _) = redeem(&long.link_token, &keys, book.revocations(), &a, T0 + MIN).unwrap();
    assert_eq!(pass.exp, (T0 + MIN) / 1000 + 12 * 3600);
    assert_eq!(pass.role, Role::Guest);
}

#[test]
fn one_invitation_per_person_and_activity() {
    let (d, keys) = (directory(), InvitationKeys::from_hub_secret(SECRET));
    let a = activity("sn-0920");
    let mut book = InvitationBook::new();
    let first = book.handle_issue(&a, &organiser(), &d, member("m-1", "甲"), InvitationId::random(), None, &keys, T0).unwrap();
    let again = book.handle_issue(&a, &organiser(), &d, member("m-1", "甲"), InvitationId::random(), None, &keys, T0);
    assert_eq!(again.unwrap_err(), AdminError::AlreadyInvited);
    // Revoked, the person can be invited again (a re-issue); the old link stays dead.
    book.handle_revoke(&a, &organiser(), &d, &first.invitation.id, Some("换新链接"), T0).unwrap();
    let second = book.handle_issue(&a, &organiser(), &d, member("m-1", "甲"), InvitationId::random(), None, &keys, T0).unwrap();
    assert!(redeem(&first.link_token, &keys, book.revocations(), &a, T0).is_err());
    assert!(redeem(&second.link_token, &keys, book.revocations(), &a, T0).is_ok());
    // Guests without an id get a fresh one each.
    let g1 = book.handle_issue(&a, &organiser(), &d, guest("李教授"), InvitationId::random(), None, &keys, T0).unwrap();
    let g2 = book.handle_issue(&a, &organiser(), &d, guest("李教授"), InvitationId::random(), None, &keys, T0).unwrap();
    assert_ne!(g1.invitation.invitee.person, g2.invitation.invitee.person);
    assert!(g1.invitation.invitee.person.as_str().starts_with("g-"));
    // A member without an id cannot be invited.
    let mut anon = member("m-2", "乙");
    anon.person = None;
    assert_eq!(
        book.handle_issue(&a, &organiser(), &d, anon, InvitationId::random(), None, &keys, T0).unwrap_err().code(),
        "invalid"
    );
    // The minutes' list: each person once, the newest invitation's status.
    let people = invited_people(&book, T0);
    let m1: Vec<_> = people.iter().filter(|(p, _)| p.person.as_str() == "m-1").collect();
    assert_eq!(m1.len(), 1);
    assert_eq!(m1[0].1, InvitationStatus::Active);
}

#[test]
fn a_revoked_invitation_no_longer_admits_and_the_attempt_is_logged() {
    let (d, keys) = (directory(), InvitationKeys::from_hub_secret(SECRET));
    let a = activity("sn-0920");
    let mut book = InvitationBook::new();
    let issued = book.handle_issue(&a, &organiser(), &d, guest("李教授"), InvitationId::random(), None, &keys, T0).unwrap();
    let note = book.handle_revoke(&a, &organiser(), &d, &issued.invitation.id, Some("行程变更"), T0 + MIN).unwrap().unwrap();
    assert_eq!((note.action, note.reason.as_deref()), ("invitation_revoked", Some("行程变更")));
    assert_eq!(book.handle_revoke(&a, &organiser(), &d, &issued.invitation.id, None, T0 + MIN), Ok(None), "idempotent, logged once");
    assert_eq!(book.get(&issued.invitation.id).unwrap().status(T0), InvitationStatus::Revoked);
    let Refusal { error, audit } = redeem(&issued.link_token, &keys, book.revocations(), &a, T0 + 2 * MIN).unwrap_err();
    assert_eq!((error.code(), error.status()), ("invitation_revoked", 410));
    let audit = audit.expect("a genuine link's refused use is logged");
    assert_eq!((audit.action, audit.detail.as_str()), ("invitation_refused", "invitation_revoked"));
    // The revocation list survives a restart of the book from the record.
    let reloaded = InvitationBook::from_stored(book.all().cloned());
    assert!(reloaded.revocations().contains(&issued.invitation.id));
    // Only the owning committee's organisers revoke.
    let other = book.handle_issue(&a, &organiser(), &d, guest("赵"), InvitationId::random(), None, &keys, T0).unwrap();
    assert_eq!(
        book.handle_revoke(&a, &staff("sn-xa", StaffRole::Organiser), &d, &other.invitation.id, None, T0),
        Err(AdminError::CommitteeForbidden)
    );
    assert_eq!(
        book.handle_revoke(&a, &staff("sn", StaffRole::Moderator), &d, &other.invitation.id, None, T0),
        Err(AdminError::RoleForbidden)
    );
}

#[test]
fn an_invitation_expires_and_a_closed_activity_admits_nobody() {
    let (d, keys) = (directory(), InvitationKeys::from_hub_secret(SECRET));
    let mut a = activity("sn-0920");
    let mut book = InvitationBook::new();
    let short = book
        .handle_issue(&a, &organiser(), &d, member("m-1", "甲"), InvitationId::random(), Some(START + 999), &keys, T0)
        .unwrap();
    assert_eq!(short.invitation.expires_ms, START, "rounded down to the second");
    assert!(redeem(&short.link_token, &keys, book.revocations(), &a, START - 1).is_ok());
    let r = redeem(&short.link_token, &keys, book.revocations(), &a, START).unwrap_err();
    assert_eq!(r.error, AdminError::InvitationExpired);
    assert_eq!(r.audit.unwrap().detail, "invitation_expired");
    assert_eq!(book.get(&short.invitation.id).unwrap().status(START), InvitationStatus::Expired);
    // Expired, the person may be invited again.
    assert!(book.handle_issue(&a, &organiser(), &d, member("m-1", "甲"), InvitationId::random(), None, &keys, START).is_ok());

    // Expiry bounds.
    let bad = |exp| book.clone().handle_issue(&a, &organiser(), &d, member("m-9", "丙"), InvitationId::random(), Some(exp), &keys, T0);
    assert_eq!(bad(T0 + 4 * MIN).unwrap_err().code(), "invalid");
    assert_eq!(bad(END + 8 * 24 * H).unwrap_err().code(), "invalid");

    let long = book.handle_issue(&a, &organiser(), &d, member("m-2", "乙"), InvitationId::random(), None, &keys, T0).unwrap();
    for act in [A::Open, A::Close] {
        a.handle_transition(&organiser(), &d, act, None, START).unwrap();
    }
    let r = redeem(&long.link_token, &keys, book.revocations(), &a, START + MIN).unwrap_err();
    assert_eq!((r.error.code(), r.error.status()), ("activity_over", 410));
    assert_eq!(
        book.handle_issue(&a, &organiser(), &d, member("m-3", "丁"), InvitationId::random(), None, &keys, START).unwrap_err().code(),
        "read_only"
    );
}

#[test]
fn a_forged_or_misdirected_link_is_refused_without_growing_the_log() {
    let (d, keys) = (directory(), InvitationKeys::from_hub_secret(SECRET));
    let (a, b) = (activity("sn-0920"), activity("sn-0921"));
    let mut book = InvitationBook::new();
    let issued = book.handle_issue(&a, &organiser(), &d, member("m-1", "甲"), InvitationId::random(), None, &keys, T0).unwrap();
    let other_key = InvitationKeys::from_hub_secret(b"another secret, another secret!!");
    for (token, activity, keys) in [
        (issued.link_token.as_str(), &b, &keys),     // another activity
        (issued.link_token.as_str(), &a, &other_key), // another hub's secret
        ("not.a.token", &a, &keys),
    ] {
        let r = redeem(token, keys, book.revocations(), activity, T0).unwrap_err();
        assert_eq!(r, Refusal { error: AdminError::InvitationInvalid, audit: None });
    }
    // Another genuine link's payload spliced onto this link's signature.
    let other = book.handle_issue(&a, &organiser(), &d, member("m-2", "乙"), InvitationId::random(), None, &keys, T0).unwrap();
    let (mine, theirs): (Vec<&str>, Vec<&str>) = (issued.link_token.split('.').collect(), other.link_token.split('.').collect());
    let evil = format!("{}.{}.{}", mine[0], theirs[1], mine[2]);
    assert_eq!(redeem(&evil, &keys, book.revocations(), &a, T0).unwrap_err().error, AdminError::InvitationInvalid);
}

#[test]
fn an_invitation_link_never_passes_as_a_participant_token_nor_the_reverse() {
    let (d, keys) = (directory(), InvitationKeys::from_hub_secret(SECRET));
    let a = activity("sn-0920");
    let mut book = InvitationBook::new();
    let issued = book.handle_issue(&a, &organiser(), &d, member("m-1", "甲"), InvitationId::random(), None, &keys, T0).unwrap();
    let hub = TokenKeys::from_secret(SECRET);
    assert!(hub.verify(&issued.link_token).is_err(), "the hub's participant-token check refuses a link");
    let staff_tokens = StaffTokens::from_hub_secret(SECRET);
    assert!(staff_tokens.verify(&issued.link_token, T0).is_err(), "and so does the staff session check");
    let participant = hub.mint(&shangliang::server::auth::Claims {
        sub: "m-1".into(),
        name: "甲".into(),
        role: Role::Member,
        act: a.id().clone(),
        org: None,
        verified: true,
        iat: T0 / 1000,
        exp: END / 1000,
    });
    assert_eq!(redeem(&participant, &keys, book.revocations(), &a, T0).unwrap_err().error, AdminError::InvitationInvalid);
    let staff_token = staff_tokens.mint(
        &Staff { user: UserId::new("u-1").unwrap(), name: "x".into(), committee: cid("sn"), role: StaffRole::Organiser },
        3600,
        T0,
    );
    assert!(hub.verify(&staff_token).is_err(), "a staff session is no participant token");
    assert_eq!(redeem(&staff_token, &keys, book.revocations(), &a, T0).unwrap_err().error, AdminError::InvitationInvalid);
}

#[test]
fn only_the_owning_committees_organisers_invite() {
    let (d, keys) = (directory(), InvitationKeys::from_hub_secret(SECRET));
    let mut a = activity("sn-0920");
    // Even a committee invited to moderate does not invite.
    a.handle_share(&organiser(), &d, &cid("sn-xa"), Some(shangliang::admin::Share::Moderate), T0).unwrap();
    let mut book = InvitationBook::new();
    let by = |who: Actor, book: &mut InvitationBook| {
        book.handle_issue(&a, &who, &d, member("m-1", "甲"), InvitationId::random(), None, &keys, T0).map(|_| ()).unwrap_err()
    };
    assert_eq!(by(staff("sn-xa", StaffRole::Organiser), &mut book), AdminError::CommitteeForbidden);
    assert_eq!(by(staff("sn", StaffRole::Moderator), &mut book), AdminError::RoleForbidden);
    let e = book
        .handle_issue(&a, &organiser(), &d, NewInvitee { name: " ".into(), ..guest("x") }, InvitationId::random(), None, &keys, T0)
        .unwrap_err();
    assert_eq!(e, AdminError::Invalid { field: "name", problem: "must not be empty".into() });
    let e = book
        .handle_issue(&a, &organiser(), &d, NewInvitee { committee: Some(cid("sn-zz")), ..member("m-4", "戊") }, InvitationId::random(), None, &keys, T0)
        .unwrap_err();
    assert_eq!(e, AdminError::NoSuchCommittee);
}

#[test]
fn the_api_types_make_a_complete_openapi_document_with_one_error_shape() {
    let doc = serde_json::to_value(AdminApiDoc::openapi()).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ErrorBody",
        "CreateActivityRequest",
        "ActivityView",
        "ActivitySettings",
        "SettingsPatch",
        "TransitionRequest",
        "CreateInvitationRequest",
        "CreatedInvitation",
        "RedeemResponse",
        "CreateUserRequest",
        "SignInRequest",
        "SignInResponse",
        "LifecycleState",
        "StateRules",
    ] {
        assert!(schemas.contains_key(name), "{name} missing from {:?}", schemas.keys().collect::<Vec<_>>());
    }
    // Every schema a schema refers to is in the document.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling $ref to {name}");
    }
    let err = &schemas["ErrorBody"];
    let mut required: Vec<&str> = err["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    required.sort();
    assert_eq!(required, ["error", "message"]);
    let states: Vec<&str> = schemas["LifecycleState"]["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(states, ["scheduled", "open", "paused", "closed", "archived"]);
    assert_eq!(schemas["CreateUserRequest"]["properties"]["password"]["writeOnly"], true);

    let body = ErrorBody::from(&AdminError::CommitteeForbidden);
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        serde_json::json!({"error": "committee_forbidden", "message": "this activity belongs to another committee"})
    );
    assert!(error_codes().contains(&"committee_forbidden"));
}

#[test]
fn a_create_request_parses_as_the_console_sends_it_and_refuses_unknown_fields() {
    let req: CreateActivityRequest = serde_json::from_str(
        r#"{"title":"议政","topic":"城乡融合","kind":"livestream","scheduled_start_ms":1726797600000,
            "planned_end_ms":1726804800000,"settings":{"slow_mode_ms":0,"commenters":"verified"}}"#,
    )
    .unwrap();
    let draft = req.clone().into_draft(Some(&cid("sn"))).unwrap();
    assert_eq!(draft.committee, cid("sn"));
    assert_eq!(draft.settings.slow_mode_ms, Some(0));
    assert_eq!(req.into_draft(None).unwrap_err().code(), "invalid");
    assert!(serde_json::from_str::<CreateActivityRequest>(r#"{"title":"x","topic":"y","kind":"room","scheduled_start_ms":1,"planned_end_ms":2,"colour":"red"}"#).is_err());
    assert!(serde_json::from_str::<CreateActivityRequest>(r#"{"title":"x","topic":"y","kind":"stage","scheduled_start_ms":1,"planned_end_ms":2}"#).is_err());
}

/// Every variant, so a new one cannot be added without a code here (the match is exhaustive).
#[test]
fn every_error_has_a_distinct_stable_code_listed_for_the_document() {
    use shangliang::admin::LifecycleState;
    let all = [
        AdminError::Invalid { field: "f", problem: "p".into() },
        AdminError::BadSchedule("s".into()),
        AdminError::WeakPassword("w".into()),
        AdminError::NoSuchActivity,
        AdminError::NoSuchCommittee,
        AdminError::NoSuchUser,
        AdminError::NoSuchInvitation,
        AdminError::AlreadyExists("x"),
        AdminError::BadParent("p".into()),
        AdminError::BadTransition { action: A::Open, state: LifecycleState::Closed },
        AdminError::TooEarly { opens_from_ms: 1 },
        AdminError::ReadOnly(LifecycleState::Closed),
        AdminError::LockedWhileLive("title"),
        AdminError::CommitteeForbidden,
        AdminError::RoleForbidden,
        AdminError::BadCredentials,
        AdminError::AccountDisabled,
        AdminError::Unauthenticated("u".into()),
        AdminError::AlreadyInvited,
        AdminError::InvitationInvalid,
        AdminError::InvitationExpired,
        AdminError::InvitationRevoked,
        AdminError::ActivityOver,
        AdminError::LimitReached("l"),
        AdminError::Hashing("h".into()),
    ];
    for e in &all {
        // Exhaustive on purpose: a new variant fails to compile until it is listed above.
        match e {
            AdminError::Invalid { .. }
            | AdminError::BadSchedule(_)
            | AdminError::WeakPassword(_)
            | AdminError::NoSuchActivity
            | AdminError::NoSuchCommittee
            | AdminError::NoSuchUser
            | AdminError::NoSuchInvitation
            | AdminError::AlreadyExists(_)
            | AdminError::BadParent(_)
            | AdminError::BadTransition { .. }
            | AdminError::TooEarly { .. }
            | AdminError::ReadOnly(_)
            | AdminError::LockedWhileLive(_)
            | AdminError::CommitteeForbidden
            | AdminError::RoleForbidden
            | AdminError::BadCredentials
            | AdminError::AccountDisabled
            | AdminError::Unauthenticated(_)
            | AdminError::AlreadyInvited
            | AdminError::InvitationInvalid
            | AdminError::InvitationExpired
            | AdminError::InvitationRevoked
            | AdminError::ActivityOver
            | AdminError::LimitReached(_)
            | AdminError::Hashing(_) => {}
        }
        assert!((400..600).contains(&e.status()));
        assert!(e.code().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{}", e.code());
    }
    let codes: Vec<&str> = all.iter().map(AdminError::code).collect();
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), codes.len(), "codes are distinct");
    assert_eq!(codes, error_codes(), "ERROR_CODES lists every code, in order");
}
