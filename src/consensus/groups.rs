//! Opinion groups, what each group stands for, and what every group supports.
//!
//! One recompute ([`RecomputeJob::run`]) is a pure function of a matrix snapshot, the active
//! statements, the configuration, a seed and the previous report:
//!
//! 1. **Who counts**: identities whose tier is counted ([`GroupConfig::tiers`]) and who voted
//!    on at least `min(min_votes, statements)` active statements (Pol.is: 7).
//! 2. **Opinion space** ([`super::pca`]): the top two principal components of their votes;
//!    everyone with a vote gets a position ("you are here"), counted or not.
//! 3. **Groups** ([`super::cluster`]): k-means on a grid of the counted positions, 2 ≤ k ≤ 5
//!    chosen by silhouette and smoothed as Pol.is does (a new k must win `k_buffer` recomputes
//!    in a row); groups keep their ids across recomputes by overlap of members. When every
//!    counted position falls into one cell (everyone voted alike) there is a single group.
//! 4. **Per group and statement** the agree / disagree / pass counts of its members, from
//!    which come:
//!    - **repness** (Pol.is `repness.clj`): the statements a group agrees or disagrees with
//!      markedly more than the rest of the room;
//!    - **consensus** ([`consensus_side`]): statements that more than `majority` of *every*
//!      group agrees with (or disagrees with), each group having seen it at least
//!      `min_seen_per_group` times, ranked by the **bridging score** ([`bridging_score`],
//!      Pol.is's group-informed consensus: the product over groups of the smoothed agree
//!      probability). A group of 20 weighs as much as a group of 20,000: the rule and the
//!      product are over groups, not voters, so a large group cannot outvote a small one;
//!    - **divisive** statements ([`spread`]): the spread across groups (unweighted standard
//!      deviation) of the smoothed net agreement, highest first — what splits the room, for the
//!      moderator to bring to the floor.
//!
//! Everything that decides (who counts, positions, cells, groups, counts) is computed from
//! integers or from each participant's own row, so the outcome is a function of the set of
//! votes and the seed, whatever order identities first voted in. Only the display centres of
//! the groups (means of their members' positions) may differ in the last bit.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::cluster::{self, ClusterParams};
use super::ids::{GroupId, StatementId};
use super::matrix::{self, MatrixSnapshot};
use super::pca::{self, CoVotes};
use super::statements::VoteCounts;
use super::stats::{Z90, prop_test, smoothed, two_prop_test};
use super::voter::TierSet;

/// How opinion groups are computed. The defaults follow Pol.is where it has a value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupConfig {
    /// Votes an identity needs (or every statement, if fewer) to be counted (Pol.is: 7).
    pub min_votes: u32,
    /// Counted identities needed before groups are formed.
    pub min_participants: u32,
    /// Most groups (Pol.is: 5). At least 2 are tried.
    pub max_k: u32,
    /// Cells per axis of the clustering grid.
    pub grid: u32,
    /// k-means++ runs per k; the lowest inertia wins.
    pub restarts: u32,
    /// Recomputes in a row a new best k must win before the groups change number (Pol.is: 4).
    pub k_buffer: u32,
    /// Votes each group must have cast on a statement for it to be consensus or divisive.
    pub min_seen_per_group: u32,
    /// Share of a group's votes (passes included) that must agree — strictly more — for the
    /// group to support a statement.
    pub majority: f64,
    /// Least spread of net agreement across groups for a statement to be called divisive.
    pub min_spread: f64,
    /// Longest consensus and divisive lists.
    pub max_listed: u32,
    /// Most representative statements per group (Pol.is: 5).
    pub max_repness: u32,
    /// Which tiers count toward the groups (all by default; see the sybil note in
    /// `docs/architecture.md`).
    pub tiers: TierSet,
    /// Iteration cap of the principal components.
    pub pca_max_iter: u32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_votes: 7,
            min_participants: 15,
            max_k: 5,
            grid: 40,
            restarts: 4,
            k_buffer: 3,
            min_seen_per_group: 5,
            majority: 0.5,
            min_spread: 0.3,
            max_listed: 10,
            max_repness: 5,
            tiers: TierSet::ALL,
            pca_max_iter: 500,
        }
    }
}

/// Which way a group or the room leans on a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Agrees.
    Agree,
    /// Disagrees.
    Disagree,
}

/// One group's votes on a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupShare {
    /// The group.
    pub group: GroupId,
    /// Its members' votes.
    pub counts: VoteCounts,
}

/// A statement the group stands for (Pol.is repness).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Repness {
    /// The statement.
    pub statement: StatementId,
    /// Whether the group stands for it by agreeing or by disagreeing.
    pub side: Side,
    /// Smoothed share of the group on that side.
    pub share: f64,
    /// How much more likely the group is on that side than the rest of the room.
    pub ratio: f64,
    /// z of that difference.
    pub z: f64,
    /// The group's votes.
    pub counts: VoteCounts,
}

/// An opinion group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Its id (kept across recomputes; see [`GroupId`]).
    pub id: GroupId,
    /// Counted identities in it.
    pub size: u32,
    /// Mean position of its members in the opinion space (for the live map).
    pub centre: [f32; 2],
    /// The statements it stands for, agrees first.
    pub repness: Vec<Repness>,
}

/// A consensus statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bridging {
    /// The statement.
    pub statement: StatementId,
    /// Which way every group leans.
    pub side: Side,
    /// Product over groups of the smoothed probability of that side: 1 would be every member
    /// of every group, and it is low as soon as one group is lukewarm, however large the others.
    pub score: f64,
    /// The lowest raw share on that side among the groups.
    pub min_share: f64,
    /// Each group's votes.
    pub groups: Vec<GroupShare>,
}

/// A statement that splits the room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Divisive {
    /// The statement.
    pub statement: StatementId,
    /// Spread across groups of the net agreement (0 = every group alike; 1 = half the groups
    /// all agree and half all disagree).
    pub spread: f64,
    /// Each group's votes.
    pub groups: Vec<GroupShare>,
}

/// The scores of one active statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatementScore {
    /// The statement.
    pub statement: StatementId,
    /// Bridging score toward agreement ([`bridging_score`]).
    pub bridging: f64,
    /// Spread across groups, when at least two groups saw it enough.
    pub spread: Option<f64>,
    /// How far a lone agree vote on it moves a participant in the opinion space (Pol.is
    /// "comment extremity"): statements that separate people.
    pub extremity: f64,
    /// Whether it is consensus, and which way.
    pub consensus: Option<Side>,
}

/// The silhouette of one number of groups.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KScore {
    /// Number of groups.
    pub k: u32,
    /// Mean silhouette (−1..1; higher is better separated).
    pub silhouette: f64,
}

/// The result of a recompute that clients may see: the console shows all of it, the live map
/// [`GroupSummary::map`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Increases with every recompute.
    pub revision: u64,
    /// When the snapshot was taken.
    pub computed_at_ms: u64,
    /// Identities counted into groups.
    pub counted: u32,
    /// Identities with a position.
    pub projected: u32,
    /// Statements counted (active, with votes of counted identities).
    pub statements: u32,
    /// Votes in the snapshot.
    pub votes: u64,
    /// Variance along the two axes.
    pub variance: [f64; 2],
    /// Silhouette of each k tried.
    pub silhouettes: Vec<KScore>,
    /// The groups, by id.
    pub groups: Vec<Group>,
    /// Consensus toward agreement, best bridging score first.
    pub consensus: Vec<Bridging>,
    /// Consensus toward disagreement (every group rejects it).
    pub consensus_against: Vec<Bridging>,
    /// Divisive statements, most divisive first.
    pub divisive: Vec<Divisive>,
    /// Every active statement's scores, by id.
    pub scores: Vec<StatementScore>,
}

/// What every viewer's live map shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupMap {
    /// [`GroupSummary::revision`].
    pub revision: u64,
    /// When the snapshot was taken.
    pub computed_at_ms: u64,
    /// Identities counted.
    pub counted: u32,
    /// Groups: id, size and centre.
    pub groups: Vec<GroupMarker>,
    /// Consensus statements and their scores, best first.
    pub consensus: Vec<(StatementId, f64)>,
}

/// A group on the live map.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupMarker {
    /// The group.
    pub id: GroupId,
    /// Its size.
    pub size: u32,
    /// Its centre.
    pub centre: [f32; 2],
}

impl GroupSummary {
    /// The viewers' part.
    pub fn map(&self) -> GroupMap {
        GroupMap {
            revision: self.revision,
            computed_at_ms: self.computed_at_ms,
            counted: self.counted,
            groups: self.groups.iter().map(|g| GroupMarker { id: g.id, size: g.size, centre: g.centre }).collect(),
            consensus: self.consensus.iter().map(|b| (b.statement, b.score)).collect(),
        }
    }
}

/// Pol.is's k smoother.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct KSmoother {
    last_k: Option<usize>,
    last_count: u32,
    smoothed: Option<usize>,
}

impl KSmoother {
    fn next(self, this_k: usize, buffer: u32) -> KSmoother {
        let count = if self.last_k == Some(this_k) { self.last_count + 1 } else { 1 };
        let smoothed = if count >= buffer { this_k } else { self.smoothed.unwrap_or(this_k) };
        KSmoother { last_k: Some(this_k), last_count: count, smoothed: Some(smoothed) }
    }
}

const NO_GROUP: u8 = u8::MAX;

/// A recompute's full result: the summary, and per identity its position and group.
#[derive(Clone, Debug)]
pub struct GroupReport {
    /// What clients may see.
    pub summary: GroupSummary,
    /// By row: position, NaN when the identity has no counted vote.
    positions: Vec<[f32; 2]>,
    /// By row: index into `summary.groups`, or [`NO_GROUP`].
    membership: Vec<u8>,
    /// By statement index: its loading on the two axes (0 when not counted); warm start.
    axes: Vec<[f64; 2]>,
    /// By group index × statement index: the group's votes.
    group_counts: Vec<VoteCounts>,
    n_statements: usize,
    smoother: KSmoother,
    next_group_id: u32,
}

/// Where one identity stands on the map.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct YouAreHere {
    /// Position in the opinion space.
    pub at: [f32; 2],
    /// The identity's group, when it is counted; otherwise the nearest group.
    pub group: Option<GroupId>,
    /// Whether the identity is counted (enough votes, a counted tier).
    pub counted: bool,
}

impl GroupReport {
    /// Where the identity of `row` stands.
    pub(crate) fn you_are_here(&self, row: u32) -> Option<YouAreHere> {
        let at = *self.positions.get(row as usize)?;
        if at[0].is_nan() {
            return None;
        }
        let m = self.membership[row as usize];
        if m != NO_GROUP {
            return Some(YouAreHere { at, group: Some(self.summary.groups[m as usize].id), counted: true });
        }
        let centres: Vec<[f64; 2]> =
            self.summary.groups.iter().map(|g| [g.centre[0] as f64, g.centre[1] as f64]).collect();
        let group = (!centres.is_empty())
            .then(|| self.summary.groups[cluster::nearest([at[0] as f64, at[1] as f64], &centres)].id);
        Some(YouAreHere { at, group, counted: false })
    }

    /// The group index of `row`, when counted.
    pub(crate) fn group_index(&self, row: u32) -> Option<usize> {
        self.membership.get(row as usize).filter(|m| **m != NO_GROUP).map(|m| *m as usize)
    }

    /// Group `g`'s votes on the statement of index `s`.
    pub(crate) fn group_counts(&self, g: usize, s: usize) -> VoteCounts {
        if s < self.n_statements { self.group_counts[g * self.n_statements + s] } else { VoteCounts::default() }
    }

    /// Each group's votes on `statement`.
    pub fn shares(&self, statement: StatementId) -> Vec<GroupShare> {
        self.summary
            .groups
            .iter()
            .enumerate()
            .map(|(g, grp)| GroupShare { group: grp.id, counts: self.group_counts(g, statement.index()) })
            .collect()
    }

    /// The group of every counted identity, by row (for tests and the minutes' group sizes).
    pub fn memberships(&self) -> impl Iterator<Item = (u32, GroupId)> + '_ {
        self.membership
            .iter()
            .enumerate()
            .filter(|(_, m)| **m != NO_GROUP)
            .map(|(r, m)| (r as u32, self.summary.groups[*m as usize].id))
    }
}

/// Whether every group supports (or rejects) the statement: each has seen it at least
/// `min_seen` times and strictly more than `majority` of its votes, passes included, are on
/// that side. With no groups, nothing is consensus.
pub fn consensus_side(groups: &[VoteCounts], min_seen: u32, majority: f64) -> Option<Side> {
    if groups.is_empty() || groups.iter().any(|g| g.seen() < min_seen.max(1)) {
        return None;
    }
    let all = |f: fn(&VoteCounts) -> u32| groups.iter().all(|g| f(g) as f64 > majority * g.seen() as f64);
    if all(|g| g.agree) {
        Some(Side::Agree)
    } else if all(|g| g.disagree) {
        Some(Side::Disagree)
    } else {
        None
    }
}

/// Pol.is's group-informed consensus: Π over groups of (votes on `side` + 1) / (seen + 2).
pub fn bridging_score(groups: &[VoteCounts], side: Side) -> f64 {
    groups
        .iter()
        .map(|g| smoothed(if side == Side::Agree { g.agree } else { g.disagree }, g.seen()))
        .product()
}

/// Unweighted standard deviation across the groups that saw the statement at least `min_seen`
/// times of their smoothed net agreement (agree − disagree) / (seen + 2); `None` with fewer than
/// two such groups.
pub fn spread(groups: &[VoteCounts], min_seen: u32) -> Option<f64> {
    let nets: Vec<f64> = groups
        .iter()
        .filter(|g| g.seen() >= min_seen.max(1))
        .map(|g| (g.agree as f64 - g.disagree as f64) / (g.seen() as f64 + 2.0))
        .collect();
    if nets.len() < 2 {
        return None;
    }
    let mean = nets.iter().sum::<f64>() / nets.len() as f64;
    Some((nets.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / nets.len() as f64).sqrt())
}

/// A recompute to run off the driver: everything it needs, owned.
#[derive(Clone, Debug)]
pub struct RecomputeJob {
    /// The frozen matrix.
    pub snapshot: MatrixSnapshot,
    /// Which statement columns are active.
    pub active: Vec<bool>,
    /// How to compute.
    pub config: GroupConfig,
    /// The seed of every random choice.
    pub seed: u64,
    /// The revision the result will carry.
    pub revision: u64,
    /// When the snapshot was taken.
    pub now_ms: u64,
    /// The report it follows (warm start, group ids, k smoothing).
    pub previous: Option<Arc<GroupReport>>,
}

impl RecomputeJob {
    /// Runs the recompute. Pure and single-threaded: the server runs it on a blocking thread.
    pub fn run(self) -> GroupReport {
        compute(&self)
    }
}

fn compute(job: &RecomputeJob) -> GroupReport {
    let cfg = &job.config;
    let n_statements = job.active.len();
    let rows = job.snapshot.rows();
    let d_active = job.active.iter().filter(|a| **a).count();
    let need = cfg.min_votes.min(d_active as u32).max(1) as usize;
    let is_active = |e: u16| matrix::col(e) < n_statements && job.active[matrix::col(e)];

    // 1. Who counts, and which columns they voted on.
    let mut counted = vec![false; rows];
    let mut col_used = vec![false; n_statements];
    for (r, tier, votes) in job.snapshot.iter() {
        if !cfg.tiers.contains(tier) {
            continue;
        }
        let n = votes.iter().filter(|e| is_active(**e)).count();
        if n >= need {
            counted[r as usize] = true;
            for e in votes.iter().filter(|e| is_active(**e)) {
                col_used[matrix::col(*e)] = true;
            }
        }
    }
    let n_counted = counted.iter().filter(|c| **c).count();
    let mut col_of = vec![u32::MAX; n_statements];
    let mut cols: Vec<usize> = Vec::new();
    for (s, used) in col_used.iter().enumerate() {
        if *used {
            col_of[s] = cols.len() as u32;
            cols.push(s);
        }
    }
    let d = cols.len();
    let row_buf = |votes: &[u16], buf: &mut Vec<(u32, i8)>| {
        buf.clear();
        for e in votes {
            let c = matrix::col(*e);
            if c < n_statements && col_of[c] != u32::MAX {
                buf.push((col_of[c], matrix::value(*e) as i8));
            }
        }
    };

    let previous = job.previous.as_deref();
    let mut report = GroupReport {
        summary: GroupSummary {
            revision: job.revision,
            computed_at_ms: job.now_ms,
            counted: 0,
            projected: 0,
            statements: d as u32,
            votes: job.snapshot.votes(),
            variance: [0.0; 2],
            silhouettes: Vec::new(),
            groups: Vec::new(),
            consensus: Vec::new(),
            consensus_against: Vec::new(),
            divisive: Vec::new(),
            scores: Vec::new(),
        },
        positions: vec![[f32::NAN; 2]; rows],
        membership: vec![NO_GROUP; rows],
        axes: vec![[0.0; 2]; n_statements],
        group_counts: Vec::new(),
        n_statements,
        smoother: previous.map(|p| p.smoother).unwrap_or_default(),
        next_group_id: previous.map_or(1, |p| p.next_group_id),
    };
    let mut extremity = vec![0.0f64; n_statements];

    if n_counted >= cfg.min_participants.max(2) as usize && d >= 2 {
        // 2. Opinion space.
        let mut cv = CoVotes::new(d);
        let mut buf = Vec::new();
        for (r, _, votes) in job.snapshot.iter() {
            if counted[r as usize] {
                row_buf(votes, &mut buf);
                cv.add_row(&buf);
            }
        }
        let mean = cv.means();
        let cov = cv.covariance(&mean);
        let start = previous.map(|p| {
            let ax = |a: usize| cols.iter().map(|s| p.axes.get(*s).map_or(0.0, |x| x[a])).collect::<Vec<f64>>();
            [ax(0), ax(1)]
        });
        let start = start.filter(|s| s.iter().all(|v| v.iter().any(|x| *x != 0.0)));
        let comps = pca::top_two(&cov, d, start.as_ref(), job.seed, cfg.pca_max_iter, 1e-9);
        report.summary.variance = comps.variance;
        for (c, s) in cols.iter().enumerate() {
            report.axes[*s] = [comps.axes[0][c], comps.axes[1][c]];
            let norm = (comps.axes[0][c].powi(2) + comps.axes[1][c].powi(2)).sqrt();
            extremity[*s] = (1.0 - mean[c]).abs() * norm * (d as f64).sqrt();
        }
        let mut counted_points: Vec<[f64; 2]> = Vec::with_capacity(n_counted);
        let mut counted_rows: Vec<u32> = Vec::with_capacity(n_counted);
        let mut projected = 0u32;
        for (r, _, votes) in job.snapshot.iter() {
            row_buf(votes, &mut buf);
            if buf.is_empty() {
                continue;
            }
            let p = pca::project(&buf, &mean, &comps.axes, d);
            report.positions[r as usize] = [p[0] as f32, p[1] as f32];
            projected += 1;
            if counted[r as usize] {
                counted_points.push(p);
                counted_rows.push(r);
            }
        }
        report.summary.projected = projected;
        report.summary.counted = n_counted as u32;

        // 3. Groups.
        let params = ClusterParams {
            grid: cfg.grid.clamp(4, 200) as usize,
            max_k: cfg.max_k.clamp(2, 16) as usize,
            restarts: cfg.restarts.clamp(1, 32) as usize,
            max_iter: 100,
        };
        let (_grid, cells) = cluster::cells(&counted_points, params.grid);
        let cands = cluster::candidates(&cells, n_counted, &params, job.seed);
        report.summary.silhouettes =
            cands.iter().map(|(c, s)| KScore { k: c.k as u32, silhouette: *s }).collect();
        // Cluster centres and their weights (from the cells: independent of row order).
        let (centres, weights): (Vec<[f64; 2]>, Vec<f64>) = match cands
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.k.cmp(&a.0.k)))
        {
            Some((best, _)) => {
                report.smoother = report.smoother.next(best.k, cfg.k_buffer.max(1));
                let k = report.smoother.smoothed.unwrap_or(best.k);
                let chosen = cands.iter().find(|(c, _)| c.k == k).map_or(best, |(c, _)| c);
                let mut w = vec![0.0; chosen.k];
                for (a, c) in chosen.assign.iter().zip(&cells) {
                    w[*a as usize] += c.w;
                }
                (chosen.centres.clone(), w)
            }
            None => (vec![cells[0].at], vec![n_counted as f64]),
        };
        // Deterministic order: largest first, then by position.
        let mut order: Vec<usize> = (0..centres.len()).collect();
        order.sort_by(|a, b| {
            weights[*b]
                .total_cmp(&weights[*a])
                .then(centres[*a][0].total_cmp(&centres[*b][0]))
                .then(centres[*a][1].total_cmp(&centres[*b][1]))
        });
        let centres: Vec<[f64; 2]> = order.iter().map(|i| centres[*i]).collect();
        let k = centres.len();
        let mut member_of: Vec<usize> = Vec::with_capacity(n_counted);
        for p in &counted_points {
            member_of.push(cluster::nearest(*p, &centres));
        }
        // Group ids: the previous group that most members come from.
        let ids = relabel(previous, &counted_rows, &member_of, k, &mut report.next_group_id);
        // Output order: by id.
        let mut by_id: Vec<usize> = (0..k).collect();
        by_id.sort_by_key(|g| ids[*g]);
        let mut slot = vec![0usize; k];
        for (pos, g) in by_id.iter().enumerate() {
            slot[*g] = pos;
        }
        let mut sums = vec![[0.0f64; 2]; k];
        let mut sizes = vec![0u32; k];
        for ((r, g), p) in counted_rows.iter().zip(&member_of).zip(&counted_points) {
            let s = slot[*g];
            report.membership[*r as usize] = s as u8;
            sums[s][0] += p[0];
            sums[s][1] += p[1];
            sizes[s] += 1;
        }
        report.summary.groups = (0..k)
            .map(|s| Group {
                id: ids[by_id[s]],
                size: sizes[s],
                centre: if sizes[s] > 0 {
                    [(sums[s][0] / sizes[s] as f64) as f32, (sums[s][1] / sizes[s] as f64) as f32]
                } else {
                    [centres[by_id[s]][0] as f32, centres[by_id[s]][1] as f32]
                },
                repness: Vec::new(),
            })
            .collect();

        // 4. Each group's votes.
        report.group_counts = vec![VoteCounts::default(); k * n_statements];
        for (r, _, votes) in job.snapshot.iter() {
            let m = report.membership[r as usize];
            if m == NO_GROUP {
                continue;
            }
            for e in votes.iter().filter(|e| is_active(**e)) {
                report.group_counts[m as usize * n_statements + matrix::col(*e)].add(matrix::vote(*e));
            }
        }
    }

    // Scores, consensus, divisive, repness.
    let k = report.summary.groups.len();
    let mut consensus = Vec::new();
    let mut against = Vec::new();
    let mut divisive = Vec::new();
    for s in (0..n_statements).filter(|s| job.active[*s]) {
        let id = StatementId::from_index(s);
        let per: Vec<VoteCounts> = (0..k).map(|g| report.group_counts(g, s)).collect();
        let side = consensus_side(&per, cfg.min_seen_per_group, cfg.majority);
        let spread = spread(&per, cfg.min_seen_per_group);
        let shares = || report.shares(id);
        match side {
            Some(side) => {
                let min_share = per
                    .iter()
                    .map(|g| (if side == Side::Agree { g.agree } else { g.disagree }) as f64 / g.seen() as f64)
                    .fold(1.0, f64::min);
                let b = Bridging { statement: id, side, score: bridging_score(&per, side), min_share, groups: shares() };
                if side == Side::Agree { consensus.push(b) } else { against.push(b) }
            }
            None => {
                if let Some(sp) = spread.filter(|sp| *sp >= cfg.min_spread) {
                    divisive.push(Divisive { statement: id, spread: sp, groups: shares() });
                }
            }
        }
        report.summary.scores.push(StatementScore {
            statement: id,
            bridging: if k > 0 { bridging_score(&per, Side::Agree) } else { 0.0 },
            spread,
            extremity: extremity[s],
            consensus: side,
        });
    }
    let by_score = |a: &Bridging, b: &Bridging| b.score.total_cmp(&a.score).then(a.statement.cmp(&b.statement));
    consensus.sort_by(by_score);
    against.sort_by(by_score);
    divisive.sort_by(|a, b| b.spread.total_cmp(&a.spread).then(a.statement.cmp(&b.statement)));
    let max = cfg.max_listed as usize;
    consensus.truncate(max);
    against.truncate(max);
    divisive.truncate(max);
    report.summary.consensus = consensus;
    report.summary.consensus_against = against;
    report.summary.divisive = divisive;
    for g in 0..k {
        let reps = repness(&report, g, &job.active, cfg.max_repness as usize);
        report.summary.groups[g].repness = reps;
    }
    report
}

/// Ids for the new groups: greedy by overlap with the previous groups (largest overlap first);
/// groups with no predecessor get fresh ids.
fn relabel(
    previous: Option<&GroupReport>,
    rows: &[u32],
    member_of: &[usize],
    k: usize,
    next_id: &mut u32,
) -> Vec<GroupId> {
    let mut ids: Vec<Option<GroupId>> = vec![None; k];
    if let Some(p) = previous {
        let kp = p.summary.groups.len();
        let mut overlap = vec![0u32; k * kp.max(1)];
        for (r, g) in rows.iter().zip(member_of) {
            if let Some(pg) = p.group_index(*r) {
                overlap[g * kp + pg] += 1;
            }
        }
        let mut pairs: Vec<(u32, usize, usize)> = (0..k)
            .flat_map(|g| (0..kp).map(move |pg| (g, pg)))
            .map(|(g, pg)| (overlap[g * kp + pg], g, pg))
            .filter(|(o, _, _)| *o > 0)
            .collect();
        pairs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut taken = vec![false; kp];
        for (_, g, pg) in pairs {
            if ids[g].is_none() && !taken[pg] {
                ids[g] = Some(p.summary.groups[pg].id);
                taken[pg] = true;
            }
        }
    }
    ids.into_iter()
        .map(|id| {
            id.unwrap_or_else(|| {
                let id = GroupId(*next_id);
                *next_id += 1;
                id
            })
        })
        .collect()
}

/// Pol.is `conv-repness` + `select-rep-comments` for group `g`.
fn repness(report: &GroupReport, g: usize, active: &[bool], max: usize) -> Vec<Repness> {
    let k = report.summary.groups.len();
    struct Cand {
        rep: Repness,
        passes: bool,
        metric: f64,
        best_z: f64,
    }
    let mut cands: Vec<Cand> = Vec::new();
    for s in (0..report.n_statements).filter(|s| active[*s]) {
        let inn = report.group_counts(g, s);
        if inn.agree + inn.disagree == 0 {
            continue;
        }
        let mut rest = VoteCounts::default();
        for o in (0..k).filter(|o| *o != g) {
            let c = report.group_counts(o, s);
            rest.agree += c.agree;
            rest.disagree += c.disagree;
            rest.pass += c.pass;
        }
        let (ns, ns_rest) = (inn.seen(), rest.seen());
        let (pa, pd) = (smoothed(inn.agree, ns), smoothed(inn.disagree, ns));
        let (pat, pdt) = (prop_test(inn.agree, ns), prop_test(inn.disagree, ns));
        let ra = pa / smoothed(rest.agree, ns_rest);
        let rd = pd / smoothed(rest.disagree, ns_rest);
        let rat = two_prop_test(inn.agree, rest.agree, ns, ns_rest);
        let rdt = two_prop_test(inn.disagree, rest.disagree, ns, ns_rest);
        let passes = (rat > Z90 && pat > Z90) || (rdt > Z90 && pdt > Z90);
        let (side, share, ratio, z, pt) =
            if rat > rdt { (Side::Agree, pa, ra, rat, pat) } else { (Side::Disagree, pd, rd, rdt, pdt) };
        cands.push(Cand {
            rep: Repness { statement: StatementId::from_index(s), side, share, ratio, z, counts: inn },
            passes,
            metric: ratio * z * share * pt,
            best_z: rat.max(rdt),
        });
    }
    let mut sufficient: Vec<&Cand> = cands.iter().filter(|c| c.passes).collect();
    if sufficient.is_empty() {
        return cands
            .iter()
            .max_by(|a, b| a.best_z.total_cmp(&b.best_z).then(b.rep.statement.cmp(&a.rep.statement)))
            .map(|c| vec![c.rep.clone()])
            .unwrap_or_default();
    }
    sufficient.sort_by(|a, b| b.metric.total_cmp(&a.metric).then(a.rep.statement.cmp(&b.rep.statement)));
    sufficient.truncate(max);
    // Agrees before disagrees, as Pol.is shows them.
    let mut out: Vec<Repness> = sufficient.iter().filter(|c| c.rep.side == Side::Agree).map(|c| c.rep.clone()).collect();
    out.extend(sufficient.iter().filter(|c| c.rep.side == Side::Disagree).map(|c| c.rep.clone()));
    out
}
