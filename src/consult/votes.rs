//! Votes that count people (issue 12): which upvotes of a question count, and how.
//!
//! An anonymous viewer token costs nothing — the hub hands one to anyone who asks — so a
//! vote is only as good as the identity behind it. Every vote carries a [`Ballot`]: the
//! [`VoteTier`] of the token (what the organisers know about the voter) and, for anonymous
//! voters, the [`NetBlock`] it came from (the IPv4 /24 or IPv6 /64 of the client address;
//! behind a trusted proxy the address the proxy forwarded).
//!
//! The rule ([`VoteGate`], pure: time is an argument, no sockets):
//! - **verified and member votes always count** (one per identity, as before): a verified
//!   viewer's real name is known to the organisers, members, guests and staff were invited;
//! - **anonymous votes are limited per address block**: at most
//!   [`VoteRules::per_question_per_block`] standing anonymous votes on one question from one
//!   block (a vote withdrawn frees its place), and at most [`VoteRules::per_block_per_minute`]
//!   anonymous votes a minute from one block over all questions (GCRA, [`super::rate`]).
//!   Votes past either limit are refused (`vote_capped`, `rate_limited`), not silently dropped:
//!   the voter is told, and the count a viewer sees is the count the record keeps.
//! - the minutes show every question's votes by tier, so the organisers see how much of a
//!   count rests on anonymous tokens.
//!
//! Why blocks and not addresses: one client easily holds several addresses of one /24 (a
//! home router's IPv4 neighbours, a cloud host's secondary addresses) and an IPv6 host usually
//! gets a whole /64. The price is that many real people behind one carrier-grade NAT share one
//! block's allowance; verified tokens are the way past it. See `docs/protocol.md` §votes.
//!
//! ```text
//! up:   ballot = Ballot::of(grants, block)            // tier from the token, block from the edge
//!       gate.handle_vote(&ballot, question, now)?      // Member/Verified: Ok; Anonymous: caps
//!       questions.handle_vote(voter, ballot, question)
//! down: ballot = questions.handle_unvote(voter, question)?
//!       gate.handle_unvote(&ballot, question)          // its place is free again
//! ```

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use shangliang_signaling::Role;

use super::grants::{ConsultError, Grants};
use super::ids::QuestionId;
use super::rate::{Rate, RateLimiter};

/// How much the organisers know about a voter (the same classes as the consensus part's
/// tallies, `crate::consensus::Tier`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteTier {
    /// A viewer whose real name the organisers verified (`verified` in the token).
    Verified,
    /// An invited identity: a member of the consultation body, a guest or staff (role member,
    /// guest or moderator).
    Member,
    /// A public viewer nobody vouched for.
    Anonymous,
}

impl VoteTier {
    /// Every tier, in the order the minutes list them.
    pub const ALL: [VoteTier; 3] = [VoteTier::Verified, VoteTier::Member, VoteTier::Anonymous];

    /// The tier a token grants: the role first (an invited member counts as a member whether
    /// or not the token says verified), then the verified flag.
    pub fn of(g: &Grants) -> VoteTier {
        match g.role {
            Role::Moderator | Role::Member | Role::Guest => VoteTier::Member,
            Role::Viewer if g.verified => VoteTier::Verified,
            Role::Viewer => VoteTier::Anonymous,
        }
    }

    /// Its name in the record and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            VoteTier::Verified => "verified",
            VoteTier::Member => "member",
            VoteTier::Anonymous => "anonymous",
        }
    }
}

/// The address block a vote came from: the /24 of an IPv4 address, the /64 of an IPv6 one (an
/// IPv4-mapped IPv6 address counts as IPv4). Stored as text (`203.0.113.0/24`): the record
/// keeps the block of an anonymous vote, never the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct NetBlock(IpNet);

impl NetBlock {
    /// Prefix length of an IPv4 block.
    pub const V4_PREFIX: u8 = 24;
    /// Prefix length of an IPv6 block.
    pub const V6_PREFIX: u8 = 64;

    /// The block of `ip`.
    pub fn of(ip: IpAddr) -> NetBlock {
        let net = match ip.to_canonical() {
            ip @ IpAddr::V4(_) => IpNet::new(ip, Self::V4_PREFIX),
            ip @ IpAddr::V6(_) => IpNet::new(ip, Self::V6_PREFIX),
        };
        NetBlock(net.expect("prefix within the address length").trunc())
    }

    /// The block's first address.
    pub fn network(&self) -> IpAddr {
        self.0.network()
    }

    /// Whether `ip` is in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl std::fmt::Display for NetBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<NetBlock> for String {
    fn from(b: NetBlock) -> String {
        b.to_string()
    }
}

impl TryFrom<String> for NetBlock {
    type Error = String;
    fn try_from(s: String) -> Result<NetBlock, String> {
        let net: IpNet = s.parse().map_err(|e| format!("{s}: {e}"))?;
        let block = NetBlock::of(net.addr());
        if block.0 != net {
            return Err(format!("{s} is not a /24 (IPv4) or /64 (IPv6) block"));
        }
        Ok(block)
    }
}

/// How one vote counts: who the voter is to the organisers, and for an anonymous voter where
/// the vote came from (`None`: the address was not known — such votes share one allowance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    /// The voter's tier when the vote was cast. `None` only in records written before tiers
    /// were kept (their votes were stored as bare identities).
    pub tier: Option<VoteTier>,
    /// Anonymous votes: the voter's address block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<NetBlock>,
}

impl Ballot {
    /// The ballot of `g` voting from `block`. The block is kept only for anonymous votes:
    /// nothing else needs it, and the record keeps no more about people than it needs.
    pub fn of(g: &Grants, block: Option<NetBlock>) -> Ballot {
        let tier = VoteTier::of(g);
        Ballot { tier: Some(tier), block: if tier == VoteTier::Anonymous { block } else { None } }
    }

    fn is_anonymous(&self) -> bool {
        self.tier == Some(VoteTier::Anonymous)
    }
}

/// The limits on anonymous votes (`shangliang serve --anonymous-votes-per-question-per-block`,
/// `--anonymous-votes-per-minute-per-block`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteRules {
    /// Most standing anonymous votes on one question from one address block. Default 10.
    pub per_question_per_block: u32,
    /// Most anonymous votes a minute from one address block, over all questions, sustained;
    /// a burst may use one question's whole allowance at once ([`VoteRules::rate`]). Default 30.
    pub per_block_per_minute: u32,
}

impl VoteRules {
    /// The per-block rate: `per_block_per_minute` sustained, bursts up to
    /// `per_question_per_block` (a room of people voting for the question on stage at once
    /// fills its place on that question, no more).
    pub fn rate(&self) -> Rate {
        let n = self.per_block_per_minute.max(1);
        Rate { interval_ms: (60_000 / u64::from(n)).max(1), burst: n.min(self.per_question_per_block).max(1) }
    }
}

impl Default for VoteRules {
    fn default() -> Self {
        VoteRules { per_question_per_block: 10, per_block_per_minute: 30 }
    }
}

/// The vote rule of one activity (module docs): counts the standing anonymous votes per
/// (question, block) and rate-limits anonymous votes per block. Not part of a checkpoint: the
/// counts are rebuilt from the questions' ballots ([`VoteGate::rebuild`]); the rate state
/// starts afresh after a restart, as the comments' does.
#[derive(Clone, Debug)]
pub struct VoteGate {
    rules: VoteRules,
    standing: HashMap<(QuestionId, Option<NetBlock>), u32>,
    rate: RateLimiter<Option<NetBlock>>,
}

impl Default for VoteGate {
    fn default() -> Self {
        VoteGate::new(VoteRules::default())
    }
}

impl VoteGate {
    /// A gate with `rules` and no votes.
    pub fn new(rules: VoteRules) -> VoteGate {
        let mut rate = RateLimiter::default();
        rate.set_rate(Some(rules.rate()));
        VoteGate { rules, standing: HashMap::new(), rate }
    }

    /// The rules in force.
    pub fn rules(&self) -> VoteRules {
        self.rules
    }

    /// Changes the rules; the votes already counted stay.
    pub fn set_rules(&mut self, rules: VoteRules) {
        self.rules = rules;
        self.rate.set_rate(Some(rules.rate()));
    }

    /// Standing anonymous votes on `q` from `block`.
    pub fn standing(&self, q: QuestionId, block: Option<NetBlock>) -> u32 {
        self.standing.get(&(q, block)).copied().unwrap_or(0)
    }

    /// A vote with `ballot` on `q` at `now_ms`: `Ok` (and counted) if it may count. The
    /// caller has checked that the voter has not voted on `q` already.
    pub fn handle_vote(&mut self, ballot: &Ballot, q: QuestionId, now_ms: u64) -> Result<(), ConsultError> {
        if !ballot.is_anonymous() {
            return Ok(());
        }
        let key = (q, ballot.block);
        let cap = self.rules.per_question_per_block;
        if self.standing.get(&key).copied().unwrap_or(0) >= cap {
            return Err(ConsultError::VoteCapped { cap });
        }
        self.rate
            .handle_post(&ballot.block, now_ms)
            .map_err(|retry_after_ms| ConsultError::VotesRateLimited { retry_after_ms })?;
        *self.standing.entry(key).or_insert(0) += 1;
        Ok(())
    }

    /// A vote with `ballot` on `q` was withdrawn.
    pub fn handle_unvote(&mut self, ballot: &Ballot, q: QuestionId) {
        if !ballot.is_anonymous() {
            return;
        }
        if let Some(n) = self.standing.get_mut(&(q, ballot.block)) {
            *n -= 1;
            if *n == 0 {
                self.standing.remove(&(q, ballot.block));
            }
        }
    }

    /// Counts the standing votes again from `ballots` (question, ballot), after a restore.
    pub fn rebuild<'a>(&mut self, ballots: impl Iterator<Item = (QuestionId, &'a Ballot)>) {
        self.standing.clear();
        for (q, b) in ballots.filter(|(_, b)| b.is_anonymous()) {
            *self.standing.entry((q, b.block)).or_insert(0) += 1;
        }
    }
}

/// A question's votes by tier, for the minutes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierCounts {
    /// Votes of verified viewers.
    pub verified: u64,
    /// Votes of members, guests and staff.
    pub member: u64,
    /// Votes of anonymous viewers.
    pub anonymous: u64,
    /// Votes stored before tiers were kept (older records).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unrecorded: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl TierCounts {
    /// The counts of `ballots`.
    pub fn of<'a>(ballots: impl Iterator<Item = &'a Ballot>) -> TierCounts {
        let mut t = TierCounts::default();
        for b in ballots {
            match b.tier {
                Some(VoteTier::Verified) => t.verified += 1,
                Some(VoteTier::Member) => t.member += 1,
                Some(VoteTier::Anonymous) => t.anonymous += 1,
                None => t.unrecorded += 1,
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consult::grants::tests::grants;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn anon(block: &str) -> Ballot {
        Ballot { tier: Some(VoteTier::Anonymous), block: Some(NetBlock::of(ip(block))) }
    }

    #[test]
    fn blocks_are_the_ipv4_slash_24_and_the_ipv6_slash_64() {
        assert_eq!(NetBlock::of(ip("203.0.113.7")).to_string(), "203.0.113.0/24");
        assert_eq!(NetBlock::of(ip("203.0.113.7")), NetBlock::of(ip("203.0.113.250")));
        assert_ne!(NetBlock::of(ip("203.0.113.7")), NetBlock::of(ip("203.0.114.7")));
        assert_eq!(NetBlock::of(ip("2001:db8:1:2:aaaa::1")).to_string(), "2001:db8:1:2::/64");
        assert_eq!(NetBlock::of(ip("2001:db8:1:2:aaaa::1")), NetBlock::of(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(NetBlock::of(ip("2001:db8:1:2::1")), NetBlock::of(ip("2001:db8:1:3::1")));
        assert_eq!(NetBlock::of(ip("::ffff:198.51.100.9")), NetBlock::of(ip("198.51.100.1")), "IPv4-mapped counts as IPv4");
        let b = NetBlock::of(ip("198.51.100.9"));
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"198.51.100.0/24\"");
        assert_eq!(serde_json::from_str::<NetBlock>("\"198.51.100.0/24\"").unwrap(), b);
        assert!(serde_json::from_str::<NetBlock>("\"198.51.100.9/32\"").is_err(), "only whole blocks");
        assert!(b.contains(ip("198.51.100.200")) && !b.contains(ip("198.51.101.1")));
    }

    #[test]
    fn tiers_come_from_the_role_then_the_verified_flag() {
        let mut v = grants("v", Role::Viewer);
        assert_eq!(VoteTier::of(&v), VoteTier::Anonymous);
        v.verified = true;
        assert_eq!(VoteTier::of(&v), VoteTier::Verified);
        for r in [Role::Member, Role::Guest, Role::Moderator] {
            assert_eq!(VoteTier::of(&grants("m", r)), VoteTier::Member);
        }
        let b = NetBlock::of(ip("10.1.2.3"));
        assert_eq!(Ballot::of(&grants("m", Role::Member), Some(b)).block, None, "only anonymous ballots keep a block");
        assert_eq!(Ballot::of(&grants("v", Role::Viewer), Some(b)).block, Some(b));
    }

    #[test]
    fn anonymous_votes_from_one_block_are_capped_per_question_and_a_withdrawal_frees_a_place() {
        let mut g = VoteGate::new(VoteRules { per_question_per_block: 3, per_block_per_minute: 1000 });
        let (q1, q2) = (QuestionId(1), QuestionId(2));
        for host in ["10.0.0.2", "10.0.0.3", "10.0.0.4"] {
            g.handle_vote(&anon(host), q1, 0).unwrap();
        }
        assert_eq!(g.handle_vote(&anon("10.0.0.77"), q1, 0), Err(ConsultError::VoteCapped { cap: 3 }));
        // (Later: the block's burst of 3 is spent.)
        g.handle_vote(&anon("10.0.0.77"), q2, 10_000).expect("another question has its own cap");
        g.handle_vote(&anon("10.0.1.2"), q1, 10_000).expect("another block has its own cap");
        let verified = Ballot { tier: Some(VoteTier::Verified), block: None };
        let member = Ballot { tier: Some(VoteTier::Member), block: None };
        for _ in 0..100 {
            g.handle_vote(&verified, q1, 0).expect("verified votes are not capped");
            g.handle_vote(&member, q1, 0).expect("member votes are not capped");
        }
        g.handle_unvote(&anon("10.0.0.3"), q1);
        assert_eq!(g.standing(q1, Some(NetBlock::of(ip("10.0.0.9")))), 2);
        g.handle_vote(&anon("10.0.0.99"), q1, 20_000).expect("the withdrawn vote's place is free");
    }

    #[test]
    fn anonymous_votes_from_one_block_are_rate_limited_over_all_questions() {
        let rules = VoteRules { per_question_per_block: 4, per_block_per_minute: 6 };
        let mut g = VoteGate::new(rules);
        let burst = rules.rate().burst;
        assert_eq!(rules.rate(), Rate { interval_ms: 10_000, burst: 4 }, "bursts of one question's allowance");
        for q in 0..burst {
            g.handle_vote(&anon("10.0.0.2"), QuestionId(q.into()), 0).unwrap();
        }
        assert!(matches!(g.handle_vote(&anon("10.0.0.3"), QuestionId(99), 0), Err(ConsultError::VotesRateLimited { retry_after_ms: 10_000 })));
        g.handle_vote(&anon("10.0.9.3"), QuestionId(99), 0).expect("another block");
        g.handle_vote(&anon("10.0.0.3"), QuestionId(99), 10_000).expect("after one interval");
    }

    #[test]
    fn votes_without_a_known_address_share_one_allowance() {
        let mut g = VoteGate::new(VoteRules { per_question_per_block: 2, per_block_per_minute: 1000 });
        let unknown = Ballot { tier: Some(VoteTier::Anonymous), block: None };
        g.handle_vote(&unknown, QuestionId(1), 0).unwrap();
        g.handle_vote(&unknown, QuestionId(1), 0).unwrap();
        assert_eq!(g.handle_vote(&unknown, QuestionId(1), 0), Err(ConsultError::VoteCapped { cap: 2 }));
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// (voter, question): the voter's tier and block are fixed by its number.
        Vote(u8, u8),
        Unvote(u8, u8),
        Wait(u16),
    }

    /// Voter `v`: tiers cycle anonymous, anonymous, verified, member; blocks 0..3 (and unknown).
    fn ballot_of(v: u8) -> Ballot {
        let tier = [VoteTier::Anonymous, VoteTier::Anonymous, VoteTier::Verified, VoteTier::Member][v as usize % 4];
        let block = match v % 5 {
            4 => None,
            b => Some(NetBlock::of(IpAddr::from([10, 0, b, v]))),
        };
        Ballot { tier: Some(tier), block: if tier == VoteTier::Anonymous { block } else { None } }
    }

    proptest! {
        /// Whatever the order of votes, withdrawals and waits: standing anonymous votes per
        /// (question, block) never exceed the cap, votes of verified and member identities are
        /// never refused, a refusal of an anonymous vote is explained by its cap or its rate,
        /// and the gate's counts equal a recount of the standing ballots (also after a rebuild).
        #[test]
        fn the_gate_caps_anonymous_blocks_and_never_refuses_vouched_for_voters(
            cap in 1u32..5,
            per_minute in 1u32..120,
            ops in proptest::collection::vec(prop_oneof![
                ((0u8..40), (0u8..3)).prop_map(|(v, q)| Op::Vote(v, q)),
                ((0u8..40), (0u8..3)).prop_map(|(v, q)| Op::Unvote(v, q)),
                (0u16..20_000).prop_map(Op::Wait),
            ], 0..300),
        ) {
            let mut g = VoteGate::new(VoteRules { per_question_per_block: cap, per_block_per_minute: per_minute });
            let mut standing: std::collections::BTreeMap<(u8, u8), Ballot> = Default::default();
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Vote(v, q) => {
                        if standing.contains_key(&(v, q)) { continue; }
                        let b = ballot_of(v);
                        match g.handle_vote(&b, QuestionId(q.into()), now) {
                            Ok(()) => { standing.insert((v, q), b); }
                            Err(ConsultError::VoteCapped { .. }) => {
                                prop_assert!(b.is_anonymous());
                                let same = standing.iter().filter(|((_, qq), sb)| *qq == q && sb.is_anonymous() && sb.block == b.block).count();
                                prop_assert_eq!(same as u32, cap);
                            }
                            Err(ConsultError::VotesRateLimited { retry_after_ms }) => {
                                prop_assert!(b.is_anonymous());
                                prop_assert!(retry_after_ms > 0);
                            }
                            Err(e) => prop_assert!(false, "unexpected {e:?}"),
                        }
                    }
                    Op::Unvote(v, q) => {
                        if let Some(b) = standing.remove(&(v, q)) { g.handle_unvote(&b, QuestionId(q.into())); }
                    }
                    Op::Wait(ms) => now += u64::from(ms),
                }
                let mut recount: HashMap<(QuestionId, Option<NetBlock>), u32> = HashMap::new();
                for ((_, q), b) in standing.iter().filter(|(_, b)| b.is_anonymous()) {
                    *recount.entry((QuestionId((*q).into()), b.block)).or_insert(0) += 1;
                }
                for (k, n) in &recount {
                    prop_assert!(*n <= cap, "{k:?} holds {n} > {cap}");
                    prop_assert_eq!(g.standing(k.0, k.1), *n);
                }
                prop_assert_eq!(g.standing.len(), recount.len());
            }
            let mut rebuilt = VoteGate::new(g.rules());
            rebuilt.rebuild(standing.iter().map(|((_, q), b)| (QuestionId((*q).into()), b)));
            prop_assert_eq!(&rebuilt.standing, &g.standing);
        }
    }
}
