//! Costs of the organisers' side that sit on a request path: a staff sign-in (argon2id verify
//! with the production parameters, beside the test parameters for the ratio) and the redemption
//! of an invitation link (HS256 verify + revocation-list lookup), which every invited member's
//! join goes through.
//!
//! Run: `cargo bench --bench admin`. Smoke (dev profile, each routine once): `cargo test --bench admin`.

use std::hint::black_box;

use criterion::Criterion;
use shangliang::admin::invitations::{InviteeRole, NewInvitee, redeem};
use shangliang::admin::{
    Activity, ActivityDraft, ActivityKind, Actor, CommitteeId, Directory, HashParams, InvitationBook, InvitationId,
    InvitationKeys, Level, PasswordHasher, PersonId, SettingsPatch,
};
use shangliang_signaling::ActivityId;

const T0: u64 = 1_726_790_400_000;

fn argon2(c: &mut Criterion) {
    let mut g = c.benchmark_group("argon2id");
    g.sample_size(10);
    for (name, params) in [("production", HashParams::PRODUCTION), ("test_params", HashParams::TEST)] {
        let h = PasswordHasher::new(params).unwrap();
        let phc = h.hash("correct horse battery").unwrap();
        g.bench_function(format!("verify/{name}"), |b| b.iter(|| black_box(h.verify("correct horse battery", &phc))));
    }
    g.finish();
}

fn invitation(c: &mut Criterion) {
    let cid = |s: &str| CommitteeId::new(s).unwrap();
    let mut d = Directory::new();
    d.handle_add(cid("sn"), "陕西省政协", Level::Province, None).unwrap();
    let op = Actor::Operator { name: "bench".into() };
    let draft = ActivityDraft {
        title: "议政".into(),
        topic: "城乡融合".into(),
        description: String::new(),
        kind: ActivityKind::Livestream,
        committee: cid("sn"),
        scheduled_start_ms: T0 + 3_600_000,
        planned_end_ms: T0 + 7_200_000,
        settings: SettingsPatch::default(),
    };
    let (a, _) = Activity::handle_schedule(ActivityId::new("bench").unwrap(), draft, &op, &d, T0).unwrap();
    let keys = InvitationKeys::from_hub_secret(b"0123456789abcdef0123456789abcdef");
    let mut book = InvitationBook::new();
    // A revocation list of 1,000 entries, as after a large re-issue.
    for i in 0..1_000 {
        let invitee = NewInvitee {
            person: Some(PersonId::new(&format!("m-{i}")).unwrap()),
            name: "委员".into(),
            role: InviteeRole::Member,
            committee: None,
            affiliation: None,
            verified: true,
        };
        let issued = book.handle_issue(&a, &op, &d, invitee, InvitationId::random(), None, &keys, T0).unwrap();
        book.handle_revoke(&a, &op, &d, &issued.invitation.id, None, T0).unwrap();
    }
    let invitee = NewInvitee {
        person: Some(PersonId::new("m-live").unwrap()),
        name: "王委员".into(),
        role: InviteeRole::Member,
        committee: None,
        affiliation: None,
        verified: true,
    };
    let issued = book.handle_issue(&a, &op, &d, invitee, InvitationId::random(), None, &keys, T0).unwrap();
    c.bench_function("invitation/redeem", |b| {
        b.iter(|| black_box(redeem(&issued.link_token, &keys, book.revocations(), &a, T0 + 1).is_ok()))
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    argon2(&mut c);
    invitation(&mut c);
    c.final_summary();
}
