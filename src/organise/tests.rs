//! The organisers' side over a real SQLite record file: what is stored survives a reopen, the
//! record follows the lifecycle, every change has its note.

use std::sync::Arc;

use super::*;
use crate::admin::accounts::NewAccount;
use crate::admin::invitations::InviteeRole;
use crate::admin::{ActivityKind, StaffRole};
use crate::record::sqlite::admin::SqliteAdminStore;
use crate::record::sqlite::{RecordOptions, SqliteRecord};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const HOUR: u64 = 3_600_000;

fn open(dir: &Path) -> Organisers {
    let path = dir.join("shangliang.sqlite3");
    let record = SqliteRecord::open(&path, RecordOptions::default(), Box::new(|_, _, _| {})).unwrap();
    let store = SqliteAdminStore::open(&path).unwrap();
    Organisers::new(Arc::new(store), Arc::new(record), SECRET, HashParams::TEST).unwrap()
}

fn operator() -> Actor {
    Actor::Operator { name: "test".into() }
}

fn cid(s: &str) -> CommitteeId {
    CommitteeId::new(s).unwrap()
}

/// Province `sn` with city `sn-xa`, an organiser in each; returns their actors.
fn shaanxi(o: &Organisers) -> (Actor, Actor) {
    o.add_committee(&operator(), cid("sn"), "陕西省政协", Level::Province, None).unwrap();
    o.add_committee(&operator(), cid("sn-xa"), "西安市政协", Level::City, Some(cid("sn"))).unwrap();
    let mut actors = Vec::new();
    for (user, committee) in [("prov.org", "sn"), ("xian.org", "sn-xa")] {
        o.add_user(
            &operator(),
            NewAccount {
                username: user.into(),
                name: user.into(),
                committee: cid(committee),
                role: StaffRole::Organiser,
                password: "correct horse battery".into(),
            },
        )
        .unwrap();
        let (token, _, _) = o.sign_in(user, "correct horse battery").unwrap();
        actors.push(Actor::Staff(o.authenticate(&token).unwrap()));
    }
    let city = actors.pop().unwrap();
    (actors.pop().unwrap(), city)
}

fn draft(committee: &str) -> ActivityDraft {
    let start = now_ms() + HOUR / 2;
    ActivityDraft {
        title: "推进城乡融合发展".into(),
        topic: "以县城为重要载体".into(),
        description: String::new(),
        kind: ActivityKind::Livestream,
        committee: cid(committee),
        scheduled_start_ms: start,
        planned_end_ms: start + 2 * HOUR,
        settings: SettingsPatch::default(),
    }
}

#[tokio::test]
async fn a_scheduled_activity_is_in_the_record_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = ActivityId::new("urban-rural").unwrap();
    {
        let o = open(dir.path());
        let (prov, _) = shaanxi(&o);
        let a = o.schedule(&prov, Some(id.clone()), draft("sn")).await.unwrap();
        assert_eq!(a.state(), LifecycleState::Scheduled);
        let r = o.record.activity(&id).unwrap().expect("created in the record too");
        assert_eq!((r.state, r.title.as_str()), (ActivityState::Scheduled, "推进城乡融合发展"));
    }
    let o = open(dir.path());
    let (a, d) = o.get(&operator(), &id).unwrap();
    assert_eq!(a.committee(), &cid("sn"));
    assert_eq!(d.len(), 2, "the committees are stored");
    assert_eq!(o.store.accounts().unwrap().len(), 2, "the accounts are stored");
    let notes = o.notes(&operator(), &id).unwrap();
    assert_eq!(notes.iter().map(|n| n.action.as_str()).collect::<Vec<_>>(), ["activity_scheduled"]);
}

#[tokio::test]
async fn the_record_follows_the_lifecycle_and_every_step_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path());
    let (prov, _) = shaanxi(&o);
    let a = o.schedule(&prov, None, draft("sn")).await.unwrap();
    let id = a.id().clone();
    let state = |o: &Organisers| o.record.activity(&id).unwrap().unwrap().state;
    for (action, lifecycle, record) in [
        (LifecycleAction::Open, LifecycleState::Open, ActivityState::Live),
        (LifecycleAction::Pause, LifecycleState::Paused, ActivityState::Live),
        (LifecycleAction::Resume, LifecycleState::Open, ActivityState::Live),
        (LifecycleAction::Close, LifecycleState::Closed, ActivityState::Ended),
        (LifecycleAction::Archive, LifecycleState::Archived, ActivityState::Ended),
    ] {
        let done = o.transition(&prov, &id, action, None).await.unwrap();
        assert_eq!(done.activity.unwrap().state(), lifecycle, "{action}");
        assert_eq!(o.store.activity(&id).unwrap().unwrap().state(), lifecycle, "{action}: stored");
        assert_eq!(state(&o), record, "{action}: the record's state");
    }
    let err = o.transition(&prov, &id, LifecycleAction::Open, None).await.err().unwrap();
    assert_eq!(err.code(), "bad_transition");
    let err = o.update(&prov, &id, &ActivityPatch { title: Some("x".into()), ..Default::default() }).err().unwrap();
    assert_eq!(err.code(), "read_only", "archived is read-only");
    let actions: Vec<String> = o.notes(&prov, &id).unwrap().into_iter().map(|n| n.action).collect();
    assert_eq!(
        actions,
        ["activity_scheduled", "activity_opened", "activity_paused", "activity_resumed", "activity_closed", "activity_archived"]
    );
}

#[tokio::test]
async fn a_city_organiser_cannot_see_or_run_a_province_activity() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path());
    let (prov, city) = shaanxi(&o);
    let a = o.schedule(&prov, None, draft("sn")).await.unwrap();
    assert_eq!(o.get(&city, a.id()).err().unwrap().code(), "committee_forbidden");
    let e = o.transition(&city, a.id(), LifecycleAction::Open, None).await.err().unwrap();
    assert_eq!((e.code(), e.status()), ("committee_forbidden", 403));
    assert_eq!(o.store.activity(a.id()).unwrap().unwrap().state(), LifecycleState::Scheduled, "nothing changed");
    let e = o.schedule(&city, None, draft("sn")).await.err().unwrap();
    assert_eq!(e.code(), "committee_forbidden", "nor schedule for the province");
    assert!(o.list(&city, &ListFilter::default()).unwrap().0.is_empty());
    assert_eq!(o.list(&prov, &ListFilter::default()).unwrap().0.len(), 1);
}

#[tokio::test]
async fn deleting_before_the_start_removes_the_activity_and_its_invitations() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path());
    let (prov, _) = shaanxi(&o);
    let a = o.schedule(&prov, None, draft("sn")).await.unwrap();
    let guest = NewInvitee { person: None, name: "李教授".into(), role: InviteeRole::Guest, committee: None, affiliation: None, verified: true };
    o.invite(&prov, a.id(), guest, None).unwrap();
    let done = o.transition(&prov, a.id(), LifecycleAction::Delete, None).await.unwrap();
    assert!(done.activity.is_none());
    assert!(o.store.activity(a.id()).unwrap().is_none());
    assert!(o.store.invitations(a.id()).unwrap().is_empty());
    assert_eq!(o.record.activity(a.id()).unwrap().unwrap().state, ActivityState::Ended, "the record keeps it, ended");
    let actions: Vec<String> = o.store.notes(a.id().as_str()).unwrap().into_iter().map(|n| n.action).collect();
    assert_eq!(actions, ["activity_scheduled", "invitation_issued", "activity_deleted"]);
}

#[tokio::test]
async fn an_invitation_admits_its_person_until_it_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path());
    let (prov, _) = shaanxi(&o);
    let a = o.schedule(&prov, None, draft("sn")).await.unwrap();
    let member = NewInvitee {
        person: Some(crate::admin::PersonId::new("m-wang").unwrap()),
        name: "王委员".into(),
        role: InviteeRole::Member,
        committee: Some(cid("sn-xa")),
        affiliation: None,
        verified: true,
    };
    let issued = o.invite(&prov, a.id(), member.clone(), None).unwrap();
    assert_eq!(o.invite(&prov, a.id(), member, None).err().unwrap().code(), "already_invited");
    let pass = o.redeem(&issued.link_token).unwrap();
    assert_eq!((pass.subject.as_str(), &pass.activity), ("m-wang", a.id()));
    let pass2 = o.redeem(&issued.link_token).unwrap();
    assert_eq!(pass2.subject, pass.subject, "attendance is by person: the same subject from every device");
    assert_eq!(o.store.invitation(&issued.invitation.id).unwrap().unwrap().uses, 2);
    o.revoke(&prov, a.id(), &issued.invitation.id, Some("wrong person")).unwrap();
    assert_eq!(o.redeem(&issued.link_token).err().unwrap().code(), "invitation_revoked");
    assert_eq!(o.redeem("not.a.token").err().unwrap().code(), "invitation_invalid");
    let actions: Vec<String> = o.store.notes(a.id().as_str()).unwrap().into_iter().map(|n| n.action).collect();
    assert_eq!(actions[0..2], ["activity_scheduled", "invitation_issued"]);
    assert!(actions.contains(&"invitation_revoked".to_owned()), "{actions:?}");
    assert_eq!(actions.iter().filter(|a| a.contains("used") || a.contains("redeem")).count(), 3, "{actions:?}: two uses and one refused use");
}

#[tokio::test]
async fn a_concurrent_change_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path());
    let (prov, _) = shaanxi(&o);
    let a = o.schedule(&prov, None, draft("sn")).await.unwrap();
    let stale = o.store.activity(a.id()).unwrap().unwrap();
    o.update(&prov, a.id(), &ActivityPatch { title: Some("新标题".into()), ..Default::default() }).unwrap();
    let mut other = stale.clone();
    other.handle_update(&prov, &o.directory().unwrap(), &ActivityPatch { topic: Some("新议题".into()), ..Default::default() }, now_ms()).unwrap();
    assert!(!o.store.update_activity(&stale, &other, &[]).unwrap(), "a write from a stale read is refused");
    assert_eq!(o.store.activity(a.id()).unwrap().unwrap().title(), "新标题");
}

#[test]
fn signing_in_refuses_a_wrong_password_and_a_forged_session() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let _g = rt.enter();
    let o = open(dir.path());
    shaanxi(&o);
    assert_eq!(o.sign_in("prov.org", "wrong password!!").err().unwrap().code(), "bad_credentials");
    assert_eq!(o.sign_in("nobody", "correct horse battery").err().unwrap().code(), "bad_credentials");
    assert_eq!(o.authenticate("x.y.z").err().unwrap().code(), "unauthenticated");
    let other = Organisers::new(o.store.clone(), o.record.clone(), b"another secret of 32 bytes......", HashParams::TEST).unwrap();
    let (token, _, _) = other.sign_in("prov.org", "correct horse battery").unwrap();
    assert_eq!(o.authenticate(&token).err().unwrap().code(), "unauthenticated", "signed with another hub's key");
}
