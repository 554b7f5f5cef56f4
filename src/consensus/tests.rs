//! Behaviour of the whole core: the synthetic population, determinism, consensus rules,
//! routing, scheduling and the minutes' summary.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use shangliang_signaling::{ActivityId, Org, OrgLevel, Role, Seq};

use super::*;
use crate::consult::{Audience, Grants, ParticipantId, QuestionId};

fn grants(id: &str, role: Role, verified: bool) -> Grants {
    Grants {
        subject: ParticipantId::new(id),
        name: id.to_uppercase(),
        role,
        org: None,
        verified,
        activity: ActivityId::new("act-1").unwrap(),
    }
}
fn viewer(id: &str) -> Grants {
    grants(id, Role::Viewer, false)
}
fn moderator() -> Grants {
    grants("mod", Role::Moderator, true)
}
fn core() -> Consensus {
    Consensus::new(ActivityId::new("act-1").unwrap(), ConsensusConfig { seed: 7, ..Default::default() })
}
fn write(c: &mut Consensus, text: &str) -> StatementId {
    match c.handle_command(&moderator(), ModeratorCommand::WriteStatement { text: text.into() }, 0).unwrap() {
        CommandReply::StatementCreated { statement } => statement,
        r => panic!("{r:?}"),
    }
}
fn recompute(c: &mut Consensus, now_ms: u64) -> &GroupSummary {
    c.handle_command(&moderator(), ModeratorCommand::Recompute, now_ms).unwrap();
    let job = c.poll_recompute(now_ms).expect("a recompute is due");
    c.handle_groups(job.run(), now_ms);
    &c.report().unwrap().summary
}
fn unit(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Adjusted Rand index of two labelings of the same items (Hubert & Arabie).
fn adjusted_rand(a: &[u32], b: &[u32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut table: HashMap<(u32, u32), u64> = HashMap::new();
    let mut ra: HashMap<u32, u64> = HashMap::new();
    let mut rb: HashMap<u32, u64> = HashMap::new();
    for (x, y) in a.iter().zip(b) {
        *table.entry((*x, *y)).or_default() += 1;
        *ra.entry(*x).or_default() += 1;
        *rb.entry(*y).or_default() += 1;
    }
    let c2 = |n: u64| (n * n.saturating_sub(1)) as f64 / 2.0;
    let index: f64 = table.values().map(|n| c2(*n)).sum();
    let (sa, sb): (f64, f64) = (ra.values().map(|n| c2(*n)).sum(), rb.values().map(|n| c2(*n)).sum());
    let expected = sa * sb / c2(a.len() as u64);
    let max = (sa + sb) / 2.0;
    if max == expected { 1.0 } else { (index - expected) / (max - expected) }
}

/// How a planted group stands on a statement.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stance {
    Agree,
    Disagree,
}

/// (identity, planted group, its votes by statement index).
type Person = (String, u32, Vec<(usize, Vote)>);

/// A planted population: groups with known stances, noisy votes, uneven sizes.
struct Population {
    people: Vec<Person>,
    stances: Vec<Vec<Stance>>,
}

/// 3 groups of 500, 250 and 100 on 40 statements: 0–7 every group agrees, 8–11 every group
/// disagrees, 12–39 the groups split (each of the six patterns where not all three agree).
/// Each identity votes on a statement with probability 0.6; a vote follows the stance with
/// probability 0.75, goes the other way 0.15, passes 0.10.
fn planted(seed: u64, sizes: &[usize]) -> Population {
    use Stance::*;
    let patterns = [[Agree, Disagree, Disagree], [Disagree, Agree, Disagree], [Disagree, Disagree, Agree], [Agree, Agree, Disagree], [Agree, Disagree, Agree], [Disagree, Agree, Agree]];
    let mut stances = vec![Vec::new(); 3];
    for s in 0..40 {
        let p = match s {
            0..8 => [Agree; 3],
            8..12 => [Disagree; 3],
            _ => patterns[(s - 12) % 6],
        };
        for g in 0..3 {
            stances[g].push(p[g]);
        }
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut people = Vec::new();
    for (g, n) in sizes.iter().enumerate() {
        for i in 0..*n {
            let mut votes = Vec::new();
            for (s, st) in stances[g].iter().enumerate() {
                if unit(&mut rng) >= 0.6 {
                    continue;
                }
                let (with, against) = match st {
                    Agree => (Vote::Agree, Vote::Disagree),
                    Disagree => (Vote::Disagree, Vote::Agree),
                };
                let u = unit(&mut rng);
                votes.push((s, if u < 0.75 { with } else if u < 0.90 { against } else { Vote::Pass }));
            }
            people.push((format!("g{g}-{i}"), g as u32, votes));
        }
    }
    Population { people, stances }
}

fn load(c: &mut Consensus, pop: &Population) -> Vec<StatementId> {
    let ids: Vec<StatementId> = (0..pop.stances[0].len()).map(|s| write(c, &format!("statement {s}"))).collect();
    for (who, _, votes) in &pop.people {
        let g = viewer(who);
        for (s, v) in votes {
            c.handle_statement_vote(&g, ids[*s], *v, 1).unwrap();
        }
    }
    ids
}

#[test]
fn planted_opinion_groups_are_recovered_and_their_consensus_found() {
    let pop = planted(2024, &[500, 250, 100]);
    let mut c = core();
    let ids = load(&mut c, &pop);
    let summary = recompute(&mut c, 10_000).clone();
    assert_eq!(summary.groups.len(), 3, "silhouettes {:?}", summary.silhouettes);
    // Adjusted Rand index of the recovered groups against the planted ones.
    let found: HashMap<ParticipantId, GroupId> = c.memberships().into_iter().collect();
    let (mut planted_labels, mut found_labels) = (Vec::new(), Vec::new());
    for (who, g, _) in &pop.people {
        if let Some(f) = found.get(&ParticipantId::new(who.as_str())) {
            planted_labels.push(*g);
            found_labels.push(f.0);
        }
    }
    assert!(planted_labels.len() >= 840, "nearly everyone votes 7 times: {}", planted_labels.len());
    let ari = adjusted_rand(&planted_labels, &found_labels);
    assert!(ari >= 0.9, "adjusted Rand index {ari}");
    let mut sizes: Vec<u32> = summary.groups.iter().map(|g| g.size).collect();
    sizes.sort_unstable();
    assert!(sizes[0] >= 80 && sizes[2] <= 530, "{sizes:?}");

    // Every planted consensus statement is found; no planted split is called consensus.
    let agreed: Vec<StatementId> = summary.consensus.iter().map(|b| b.statement).collect();
    let rejected: Vec<StatementId> = summary.consensus_against.iter().map(|b| b.statement).collect();
    for (s, id) in ids.iter().enumerate().take(8) {
        assert!(agreed.contains(id), "statement {s} missing from {agreed:?}");
    }
    for (s, id) in ids.iter().enumerate().take(12).skip(8) {
        assert!(rejected.contains(id), "statement {s} missing from {rejected:?}");
    }
    assert_eq!((agreed.len(), rejected.len()), (8, 4));
    for b in &summary.consensus {
        assert!(b.min_share > 0.5 && b.score > 0.0 && b.score < 1.0);
    }
    // The divisive list holds only planted splits.
    assert!(!summary.divisive.is_empty());
    for d in &summary.divisive {
        assert!(d.statement.0 as usize > 12, "{d:?}");
    }
    // Each group stands for the statements of its planted stance: the top statement of each
    // group's repness is one where its planted stance differs from another group's.
    for g in &summary.groups {
        assert!(!g.repness.is_empty());
        let r = &g.repness[0];
        let s = r.statement.index();
        assert!(s >= 12, "{g:?}");
    }
}

#[test]
fn votes_from_one_group_alone_never_make_a_statement_consensus() {
    let pop = planted(99, &[500, 250, 100]);
    let mut c = core();
    let ids = load(&mut c, &pop);
    recompute(&mut c, 10_000);
    // Statement 12: planted group 0 agrees, groups 1 and 2 disagree. Every member of group 0
    // now agrees with it, and 2,000 new identities vote exactly as group 0 does on everything.
    let target = ids[12];
    for (who, g, _) in &pop.people {
        if *g == 0 {
            c.handle_statement_vote(&viewer(who), target, Vote::Agree, 2).unwrap();
        }
    }
    for i in 0..2_000 {
        let g = viewer(&format!("clone-{i}"));
        for (s, st) in pop.stances[0].iter().enumerate() {
            let v = if *st == Stance::Agree { Vote::Agree } else { Vote::Disagree };
            c.handle_statement_vote(&g, ids[s], v, 2).unwrap();
        }
    }
    let summary = recompute(&mut c, 20_000);
    assert!(!summary.consensus.iter().any(|b| b.statement == target), "{:?}", summary.consensus);
    let score = summary.scores.iter().find(|s| s.statement == target).unwrap();
    assert_eq!(score.consensus, None);
    // The planted consensus survives the flood.
    for (s, id) in ids.iter().enumerate().take(8) {
        assert!(summary.consensus.iter().any(|b| b.statement == *id), "statement {s}");
    }
}

#[test]
fn group_ids_stay_with_their_members_across_recomputes() {
    let pop = planted(5, &[300, 200, 100]);
    let mut c = core();
    let ids = load(&mut c, &pop);
    recompute(&mut c, 10_000);
    let first: HashMap<ParticipantId, GroupId> = c.memberships().into_iter().collect();
    // A few more votes, then a recompute.
    for (who, _, _) in pop.people.iter().take(50) {
        c.handle_statement_vote(&viewer(who), ids[3], Vote::Agree, 3).unwrap();
    }
    let s2 = recompute(&mut c, 20_000).clone();
    let second: HashMap<ParticipantId, GroupId> = c.memberships().into_iter().collect();
    let same = first.iter().filter(|(p, g)| second.get(*p) == Some(*g)).count();
    assert!(same as f64 >= 0.95 * first.len() as f64, "{same} of {}", first.len());
    assert!(s2.revision > 1);
    let mut gids: Vec<u32> = s2.groups.iter().map(|g| g.id.0).collect();
    gids.sort_unstable();
    assert_eq!(gids, vec![1, 2, 3]);
}

#[test]
fn you_are_here_gives_counted_and_uncounted_viewers_a_place() {
    let pop = planted(11, &[200, 100, 60]);
    let mut c = core();
    let ids = load(&mut c, &pop);
    let few = viewer("newcomer");
    c.handle_statement_vote(&few, ids[12], Vote::Agree, 5).unwrap();
    recompute(&mut c, 10_000);
    let counted = c.you_are_here(&ParticipantId::new(pop.people[0].0.as_str())).unwrap();
    assert!(counted.counted && counted.group.is_some());
    let newcomer = c.you_are_here(&few.subject).unwrap();
    assert!(!newcomer.counted, "one vote is not enough to be counted");
    assert!(newcomer.group.is_some(), "but the nearest group is named");
    assert!(c.you_are_here(&ParticipantId::new("nobody")).is_none());
}

#[test]
fn groups_can_be_restricted_to_verified_and_member_identities() {
    let pop = planted(3, &[200, 100, 60]);
    let mut c = core();
    load(&mut c, &pop);
    let all = recompute(&mut c, 10_000).counted;
    assert!(all >= 300);
    let tiers = TierSet { member: true, verified: true, anonymous: false };
    c.handle_command(&moderator(), ModeratorCommand::SetCountedTiers { tiers }, 11_000).unwrap();
    let only_verified = recompute(&mut c, 11_000);
    assert_eq!(only_verified.counted, 0, "every planted identity is anonymous");
    assert!(only_verified.groups.is_empty() && only_verified.consensus.is_empty());
}

#[test]
fn too_few_voters_give_no_groups_and_no_consensus() {
    let mut c = core();
    let s: Vec<StatementId> = (0..8).map(|i| write(&mut c, &format!("s{i}"))).collect();
    for i in 0..10 {
        for id in &s {
            c.handle_statement_vote(&viewer(&format!("v{i}")), *id, Vote::Agree, 1).unwrap();
        }
    }
    let summary = recompute(&mut c, 1_000);
    assert!(summary.groups.is_empty(), "15 counted identities are needed");
    assert!(summary.consensus.is_empty());
    assert_eq!(summary.scores.len(), 8);
}

/// Builds a core from (identity, statement, vote) triples in the given order and recomputes.
fn groups_from(votes: &[(u32, usize, Vote)], statements: usize, seed: u64) -> (Consensus, GroupSummary) {
    let mut c = Consensus::new(ActivityId::new("act-1").unwrap(), ConsensusConfig { seed, ..Default::default() });
    let ids: Vec<StatementId> = (0..statements).map(|s| write(&mut c, &format!("s{s}"))).collect();
    for (who, s, v) in votes {
        c.handle_statement_vote(&viewer(&format!("p{who}")), ids[*s], *v, 1).unwrap();
    }
    let summary = recompute(&mut c, 1_000).clone();
    (c, summary)
}

fn small_population() -> impl Strategy<Value = (Vec<(u32, usize, Vote)>, u64, Vec<u64>)> {
    (30u32..90, 10usize..16, any::<u64>()).prop_flat_map(|(n, s, seed)| {
        // Two or three planted camps; each identity votes on most statements, with noise.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let camps = 2 + (seed % 2) as u32;
        let mut votes = Vec::new();
        for p in 0..n {
            let camp = p % camps;
            for st in 0..s {
                if unit(&mut rng) < 0.15 {
                    continue;
                }
                let agrees = (st as u32 + camp).is_multiple_of(camps) || st < 2;
                let flip = unit(&mut rng) < 0.15;
                let v = if unit(&mut rng) < 0.1 { Vote::Pass } else if agrees != flip { Vote::Agree } else { Vote::Disagree };
                votes.push((p, st, v));
            }
        }
        let len = votes.len();
        (Just(votes), any::<u64>(), proptest::collection::vec(any::<u64>(), len..=len))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The same matrix and seed give the same groups, to the bit; and the order in which the
    /// votes arrived (and so the order identities got their rows) changes nothing that decides:
    /// memberships, group sizes, consensus and divisive lists.
    #[test]
    fn group_assignment_is_deterministic_for_a_matrix_and_seed((votes, seed, keys) in small_population()) {
        let (c1, s1) = groups_from(&votes, 16, seed);
        let (_, s2) = groups_from(&votes, 16, seed);
        prop_assert!(s1.groups.len() >= 2, "the camps form groups: {:?}", s1.silhouettes);
        prop_assert_eq!(&s1, &s2);
        let mut shuffled: Vec<((u32, usize, Vote), u64)> = votes.iter().copied().zip(keys).collect();
        shuffled.sort_by_key(|(_, k)| *k);
        let shuffled: Vec<(u32, usize, Vote)> = shuffled.into_iter().map(|(v, _)| v).collect();
        let (c3, s3) = groups_from(&shuffled, 16, seed);
        let m1: BTreeMap<ParticipantId, GroupId> = c1.memberships().into_iter().collect();
        let m3: BTreeMap<ParticipantId, GroupId> = c3.memberships().into_iter().collect();
        prop_assert_eq!(m1, m3);
        let sizes = |s: &GroupSummary| s.groups.iter().map(|g| (g.id, g.size)).collect::<Vec<_>>();
        prop_assert_eq!(sizes(&s1), sizes(&s3));
        prop_assert_eq!(&s1.consensus, &s3.consensus);
        prop_assert_eq!(&s1.consensus_against, &s3.consensus_against);
        prop_assert_eq!(&s1.divisive, &s3.divisive);
        prop_assert_eq!(&s1.silhouettes, &s3.silhouettes);
    }
}

fn counts_strategy(groups: std::ops::Range<usize>) -> impl Strategy<Value = Vec<VoteCounts>> {
    proptest::collection::vec((0u32..60, 0u32..60, 0u32..20).prop_map(|(agree, disagree, pass)| VoteCounts { agree, disagree, pass }), groups)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A statement that at least 60 % of every group agrees with (each having seen it enough)
    /// is consensus.
    #[test]
    fn agreed_by_sixty_percent_of_every_group_is_consensus(
        groups in proptest::collection::vec((5u32..400, 0.6f64..=1.0, 0.0f64..=1.0), 1..6),
    ) {
        let counts: Vec<VoteCounts> = groups.iter().map(|(seen, share, pass_part)| {
            let agree = (*seen as f64 * share).ceil() as u32;
            let rest = seen - agree;
            let pass = (rest as f64 * pass_part) as u32;
            VoteCounts { agree, disagree: rest - pass, pass }
        }).collect();
        prop_assert_eq!(consensus_side(&counts, 5, 0.5), Some(Side::Agree));
        // And its bridging score is never above the least enthusiastic group's probability.
        let least = counts.iter().map(|g| (g.agree as f64 + 1.0) / (g.seen() as f64 + 2.0)).fold(1.0, f64::min);
        prop_assert!(bridging_score(&counts, Side::Agree) <= least + 1e-12);
    }

    /// Agreed by one group only (the others, having seen it, without an agreeing majority) is
    /// not consensus, however large that group.
    #[test]
    fn agreed_by_one_group_only_is_not_consensus(
        mut counts in counts_strategy(2..6),
        pick in any::<proptest::sample::Index>(),
        big in 1u32..100_000,
    ) {
        let g = pick.index(counts.len());
        for (i, c) in counts.iter_mut().enumerate() {
            if i == g {
                *c = VoteCounts { agree: big + 5, disagree: 0, pass: 0 };
            } else if c.agree * 2 > c.seen() || c.seen() < 5 {
                c.disagree += c.agree + 5;
            }
        }
        prop_assert_ne!(consensus_side(&counts, 5, 0.5), Some(Side::Agree));
    }

    /// If some group h does not support a statement, votes of another group g alone never make
    /// it consensus (on either side), whatever they are.
    #[test]
    fn votes_of_one_group_never_make_consensus(
        counts in counts_strategy(2..6),
        pick in any::<(proptest::sample::Index, proptest::sample::Index)>(),
        added in (0u32..10_000, 0u32..10_000, 0u32..10_000),
    ) {
        let h = pick.0.index(counts.len());
        let g = (h + 1 + pick.1.index(counts.len() - 1)) % counts.len();
        prop_assume!(g != h);
        let mut after = counts.clone();
        after[g].agree += added.0;
        after[g].disagree += added.1;
        after[g].pass += added.2;
        for side in [Side::Agree, Side::Disagree] {
            let h_supports = |c: &VoteCounts| {
                let on = if side == Side::Agree { c.agree } else { c.disagree };
                c.seen() >= 5 && on as f64 > 0.5 * c.seen() as f64
            };
            if !h_supports(&counts[h]) {
                prop_assert_ne!(consensus_side(&after, 5, 0.5), Some(side));
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Vote { who: u8, statement: u8, vote: u8, verified: bool },
    Withdraw(u8),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A vote counts once per identity and statement: a changed vote replaces the old one, and
    /// every count (overall and per tier) equals the number of distinct identities whose
    /// standing vote it is, the tier being the identity's latest.
    #[test]
    fn a_vote_counts_once_per_identity_and_statement(ops in proptest::collection::vec(prop_oneof![
        8 => (0u8..10, 0u8..4, 0u8..3, any::<bool>()).prop_map(|(who, statement, vote, verified)| Op::Vote { who, statement, vote, verified }),
        1 => (0u8..4).prop_map(Op::Withdraw),
    ], 0..200)) {
        let mut c = core();
        let ids: Vec<StatementId> = (0..4).map(|i| write(&mut c, &format!("s{i}"))).collect();
        let mut standing: BTreeMap<(u8, u8), Vote> = BTreeMap::new();
        let mut tier: BTreeMap<u8, Tier> = BTreeMap::new();
        let mut withdrawn = [false; 4];
        for op in ops {
            match op {
                Op::Vote { who, statement, vote, verified } => {
                    let v = [Vote::Agree, Vote::Disagree, Vote::Pass][vote as usize];
                    let g = grants(&format!("p{who}"), Role::Viewer, verified);
                    let r = c.handle_statement_vote(&g, ids[statement as usize], v, 1);
                    if withdrawn[statement as usize] {
                        prop_assert_eq!(r, Err(ConsensusError::StatementWithdrawn(ids[statement as usize])));
                        continue;
                    }
                    let expected = match standing.insert((who, statement), v) {
                        None => VoteOutcome::New,
                        Some(old) if old == v => VoteOutcome::Unchanged,
                        Some(from) => VoteOutcome::Changed { from },
                    };
                    prop_assert_eq!(r, Ok(expected));
                    tier.insert(who, if verified { Tier::Verified } else { Tier::Anonymous });
                }
                Op::Withdraw(s) => {
                    let r = c.handle_command(&moderator(), ModeratorCommand::WithdrawStatement { statement: ids[s as usize] }, 1);
                    prop_assert_eq!(r.is_ok(), !withdrawn[s as usize]);
                    withdrawn[s as usize] = true;
                }
            }
            prop_assert_eq!(c.matrix().votes() as usize, standing.len());
            for (s, id) in ids.iter().enumerate() {
                let st = c.statements().get(*id).unwrap();
                for t in Tier::ALL {
                    let count = |want: Vote| standing.iter().filter(|((w, ss), v)| *ss as usize == s && **v == want && tier[w] == t).count() as u32;
                    let got = st.by_tier[t.index()];
                    prop_assert_eq!((got.agree, got.disagree, got.pass), (count(Vote::Agree), count(Vote::Disagree), count(Vote::Pass)));
                }
            }
            for ((w, s), v) in &standing {
                prop_assert_eq!(c.vote_of(&ParticipantId::new(format!("p{w}")), ids[*s as usize]), Some(*v));
            }
        }
    }
}

#[test]
fn only_moderators_prepare_and_only_this_activity_counts() {
    let mut c = core();
    let spec = PollSpec { question: "q".into(), kind: PollKind::Rating { min: 1, max: 5 }, changeable: true, results: ResultsVisibility::Live };
    for role in [Role::Member, Role::Guest, Role::Viewer] {
        let r = c.handle_command(&grants("x", role, true), ModeratorCommand::CreatePoll { spec: spec.clone() }, 0);
        assert_eq!(r, Err(ConsensusError::Forbidden));
    }
    let s = write(&mut c, "s");
    let mut other = viewer("v");
    other.activity = ActivityId::new("act-2").unwrap();
    assert_eq!(c.handle_statement_vote(&other, s, Vote::Agree, 0), Err(ConsensusError::WrongActivity));
    assert_eq!(c.handle_statement_vote(&viewer("v"), StatementId(9), Vote::Agree, 0), Err(ConsensusError::NoSuchStatement(StatementId(9))));
    assert_eq!(ConsensusError::Forbidden.code(), "forbidden");
}

#[test]
fn a_promoted_comment_keeps_its_seq_and_is_cited_in_the_summary() {
    let mut c = core();
    let m = moderator();
    let promote = ModeratorCommand::PromoteComment { seq: Seq(4211), at_ms: 1_700_000_123_000, text: "  城乡学校应当共享优质师资 ".into() };
    let r = c.handle_command(&m, promote.clone(), 10).unwrap();
    let CommandReply::StatementCreated { statement } = r else { panic!("{r:?}") };
    assert_eq!(c.handle_command(&m, promote, 11), Err(ConsensusError::AlreadyPromoted(statement)));
    let q = c.handle_command(&m, ModeratorCommand::PromoteQuestion { id: QuestionId(12), at_ms: 1_700_000_200_000, text: "问题".into() }, 12).unwrap();
    assert!(matches!(q, CommandReply::StatementCreated { .. }));
    let long = ModeratorCommand::WriteStatement { text: "长".repeat(141) };
    assert!(matches!(c.handle_command(&m, long, 13), Err(ConsensusError::Text(_))));
    let st = c.statements().get(statement).unwrap();
    assert_eq!(st.text, "城乡学校应当共享优质师资");
    assert_eq!(st.source, StatementSource::Comment { seq: Seq(4211), at_ms: 1_700_000_123_000 });
    // Every group agrees: it is cited in the minutes with its source.
    let pop = planted(8, &[200, 100, 60]);
    for (who, _, _) in &pop.people {
        c.handle_statement_vote(&viewer(who), statement, Vote::Agree, 20).unwrap();
    }
    let ids = load(&mut c, &pop);
    recompute(&mut c, 30_000);
    let summary = c.summary(40_000);
    let g = summary.groups.clone().expect("groups were computed");
    let cited = g.consensus.iter().find(|s| s.statement == statement).expect("cited as consensus");
    assert_eq!(cited.source, StatementSource::Comment { seq: Seq(4211), at_ms: 1_700_000_123_000 });
    assert_eq!(cited.counts.agree, 360);
    assert_eq!(cited.groups.len(), g.groups.len());
    assert!(g.consensus.len() <= 10);
    assert_eq!(summary.statements as usize, ids.len() + 2);
    let json = serde_json::to_string(&summary).unwrap();
    assert!(json.contains("\"seq\":4211"), "{json}");
}

#[test]
fn a_withdrawn_statement_takes_no_votes_and_counts_for_nothing() {
    let pop = planted(21, &[200, 100, 60]);
    let mut c = core();
    let ids = load(&mut c, &pop);
    c.handle_command(&moderator(), ModeratorCommand::WithdrawStatement { statement: ids[0] }, 5).unwrap();
    assert_eq!(c.handle_statement_vote(&viewer("late"), ids[0], Vote::Agree, 6), Err(ConsensusError::StatementWithdrawn(ids[0])));
    let summary = recompute(&mut c, 10_000);
    assert!(!summary.scores.iter().any(|s| s.statement == ids[0]));
    assert!(!summary.consensus.iter().any(|b| b.statement == ids[0]));
    assert_eq!(summary.statements, 39);
    for _ in 0..50 {
        assert!(!c.next_statements(&viewer("late"), 10).contains(&ids[0]));
    }
}

#[test]
fn recomputes_wait_for_votes_the_interval_and_the_previous_one() {
    let pop = planted(1, &[60, 40, 20]);
    let mut c = core();
    assert!(c.poll_recompute(0).is_none(), "nothing to compute");
    load(&mut c, &pop);
    let job = c.poll_recompute(1_000).expect("votes came in");
    assert!(c.poll_recompute(100_000).is_none(), "one at a time");
    // Votes during the recompute do not reach its snapshot.
    let before = job.snapshot.votes();
    c.handle_statement_vote(&viewer("during"), StatementId(1), Vote::Agree, 1_500).unwrap();
    assert_eq!(job.snapshot.votes(), before);
    let report = job.clone().run();
    assert_eq!(report.summary.votes, before);
    c.handle_groups(report, 2_000);
    let events: Vec<Outbound> = std::iter::from_fn(|| c.poll_event(2_000)).collect();
    assert!(events.iter().any(|o| o.audience == Audience::Everyone && matches!(o.event, ConsensusEvent::GroupMap { .. })));
    assert!(events.iter().any(|o| o.audience == Audience::Moderators && matches!(o.event, ConsensusEvent::GroupConsole { .. })));
    assert_eq!(c.poll_timeout(), Some(6_000), "the next recompute is due an interval after the last began");
    assert!(c.poll_recompute(5_999).is_none());
    let next = c.poll_recompute(6_000).expect("the vote during the recompute is pending");
    // A result older than the installed one is dropped.
    c.handle_groups(job.run(), 7_000);
    assert_eq!(c.report().unwrap().summary.revision, 1);
    c.handle_groups(next.run(), 7_000);
    assert_eq!(c.report().unwrap().summary.revision, 2);
    assert!(c.poll_recompute(100_000).is_none(), "no vote since");
}

#[test]
fn polls_reach_the_right_audience_and_tallies_are_coalesced() {
    let mut c = core();
    let m = moderator();
    let spec = PollSpec {
        question: "您支持哪个方案？".into(),
        kind: PollKind::SingleChoice { options: vec!["甲".into(), "乙".into()] },
        changeable: true,
        results: ResultsVisibility::AfterClose,
    };
    let CommandReply::PollCreated { poll } = c.handle_command(&m, ModeratorCommand::CreatePoll { spec }, 0).unwrap() else { panic!() };
    let first = c.poll_event(0).unwrap();
    assert_eq!(first.audience, Audience::Moderators, "a prepared poll is the moderators'");
    c.handle_command(&m, ModeratorCommand::LaunchPoll { poll, countdown_ms: Some(60_000) }, 1_000).unwrap();
    let events: Vec<Outbound> = std::iter::from_fn(|| c.poll_event(1_000)).collect();
    assert!(matches!(&events[0], Outbound { audience: Audience::Everyone, event: ConsensusEvent::PollChanged { poll: p } } if p.state == PollState::Open && p.closes_at_ms == Some(61_000)));
    assert!(matches!(&events[1], Outbound { audience: Audience::Moderators, event: ConsensusEvent::PollTally { .. } }), "results after close: moderators only");
    let mut member = grants("m1", Role::Member, true);
    member.org = Some(Org { level: OrgLevel::County, name: "某县政协".into() });
    for i in 0..300 {
        let g = if i == 0 { member.clone() } else { viewer(&format!("v{i}")) };
        c.handle_poll_answer(&g, poll, PollAnswer::Choice { option: (i % 2) as u8 }, 1_001 + i).unwrap();
    }
    assert!(c.poll_event(1_300).is_none(), "one tally per interval");
    let t = c.poll_event(1_500).unwrap();
    let ConsensusEvent::PollTally { tally } = t.event else { panic!() };
    assert_eq!((tally.voters, tally.counts.clone()), (300, vec![150, 150]));
    assert_eq!(tally.by_tier[0].voters, 1);
    assert_eq!(tally.by_level[0].part, OrgLevel::County);
    c.handle_tick(61_000);
    let events: Vec<Outbound> = std::iter::from_fn(|| c.poll_event(61_000)).collect();
    assert!(events.iter().any(|o| o.audience == Audience::Everyone && matches!(&o.event, ConsensusEvent::PollTally { tally } if tally.state == PollState::Closed)));
    let summary = c.summary(70_000);
    assert_eq!(summary.polls.len(), 1);
    assert_eq!((summary.polls[0].closed_at_ms, summary.polls[0].close_reason), (Some(61_000), Some(CloseReason::Countdown)));
    assert_eq!(summary.polls[0].tally.voters, 300);
}

#[test]
fn statement_counts_reach_moderators_in_batches() {
    let mut c = core();
    let s = write(&mut c, "s");
    let t = write(&mut c, "t");
    while c.poll_event(0).is_some() {}
    for i in 0..100 {
        c.handle_statement_vote(&viewer(&format!("v{i}")), s, Vote::Agree, 1).unwrap();
    }
    let out = c.poll_event(1).unwrap();
    assert_eq!(out.audience, Audience::Moderators);
    let ConsensusEvent::StatementCounts { counts, .. } = out.event else { panic!("{out:?}") };
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].counts.agree, 100);
    c.handle_statement_vote(&viewer("w"), t, Vote::Disagree, 2).unwrap();
    assert!(c.poll_event(500).is_none(), "the next batch waits for the interval");
    assert!(c.poll_timeout().is_some_and(|t| t <= 1_001));
    let ConsensusEvent::StatementCounts { counts, .. } = c.poll_event(1_001).unwrap().event else { panic!() };
    assert_eq!(counts.iter().map(|c| c.statement).collect::<Vec<_>>(), vec![t]);
}

#[test]
fn routing_skips_voted_statements_favours_new_ones_and_puts_the_featured_first() {
    let mut c = core();
    let old: Vec<StatementId> = (0..10).map(|i| write(&mut c, &format!("old {i}"))).collect();
    for i in 0..100 {
        for s in &old {
            c.handle_statement_vote(&viewer(&format!("v{i}")), *s, if i % 3 == 0 { Vote::Disagree } else { Vote::Agree }, 1).unwrap();
        }
    }
    let fresh = write(&mut c, "fresh");
    // A viewer who voted on everything old gets the fresh one only.
    assert_eq!(c.next_statements(&viewer("v1"), 5), vec![fresh]);
    // New viewers are mostly sent the statement nobody voted on yet.
    let firsts = (0..200).filter(|i| c.next_statements(&viewer(&format!("new{i}")), 1) == vec![fresh]).count();
    assert!(firsts > 100, "{firsts} of 200");
    // Deterministic for a seed, different between viewers.
    assert_eq!(c.next_statements(&viewer("new1"), 5), c.next_statements(&viewer("new1"), 5));
    let orders: std::collections::HashSet<Vec<StatementId>> = (0..20).map(|i| c.next_statements(&viewer(&format!("new{i}")), 5)).collect();
    assert!(orders.len() > 5);
    assert_eq!(c.next_statements(&viewer("new1"), 50).len(), 10, "at most 10 at a time");
    // Featured first for those who have not voted on it.
    c.handle_command(&moderator(), ModeratorCommand::FeatureStatement { statement: Some(old[4]) }, 2).unwrap();
    assert_eq!(c.next_statements(&viewer("new1"), 3)[0], old[4]);
    assert!(!c.next_statements(&viewer("v2"), 3).contains(&old[4]));
    assert!(std::iter::from_fn(|| c.poll_event(3)).any(|o| matches!(o.event, ConsensusEvent::Featured { statement: Some(s) } if s == old[4])));
    assert_eq!(c.handle_command(&moderator(), ModeratorCommand::FeatureStatement { statement: Some(StatementId(99)) }, 4), Err(ConsensusError::NoSuchStatement(StatementId(99))));
}

#[test]
fn routing_with_groups_never_offers_a_statement_the_viewer_voted_on() {
    let pop = planted(31, &[200, 150, 100]);
    let mut c = core();
    load(&mut c, &pop);
    recompute(&mut c, 10_000);
    c.handle_tick(20_000);
    // Every viewer is offered only statements it has not voted on.
    for (who, _, votes) in pop.people.iter().take(100) {
        let next = c.next_statements(&viewer(who), 5);
        for s in &next {
            assert!(!votes.iter().any(|(v, _)| StatementId::from_index(*v) == *s), "{who} voted on {s}");
        }
    }
}
