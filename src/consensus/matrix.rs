//! The sparse agree/disagree/pass matrix: one row per identity, one column per statement.
//!
//! **Compact.** A row is a sorted `Vec<u16>`; each entry packs the statement's column (high 14
//! bits) and the vote (low 2 bits), so a vote costs 2 bytes and a row 32 bytes plus its votes.
//! 100,000 identities × 200 statements with 5 % voted (1 M votes) is about 8 MB.
//!
//! **Cheap snapshots.** Rows live in chunks of [`CHUNK_ROWS`] behind `Arc`s. A
//! [`MatrixSnapshot`] clones the `Arc`s (about 100 for 100,000 rows), so the driver hands the
//! recompute a frozen matrix in microseconds and keeps taking votes; the first vote into a chunk
//! that a snapshot still holds copies that chunk (copy-on-write, `Arc::make_mut`). While a
//! recompute runs, the live matrix therefore costs at most one extra copy of itself.

use std::sync::Arc;

use super::statements::Vote;
use super::voter::Tier;

/// Rows per copy-on-write chunk: small enough that a vote during a recompute copies little,
/// large enough that a snapshot clones few `Arc`s.
pub const CHUNK_ROWS: usize = 1024;

/// Most statement columns the packing allows (14 bits).
pub const MAX_COLUMNS: usize = 1 << 14;

// Every statement an activity may hold has a column (checked here so `statements` needs
// nothing from the matrix).
const _: () = assert!(super::statements::MAX_STATEMENTS <= MAX_COLUMNS);

const AGREE: u16 = 1;
const DISAGREE: u16 = 2;
const PASS: u16 = 3;

fn pack(col: usize, v: Vote) -> u16 {
    debug_assert!(col < MAX_COLUMNS);
    ((col as u16) << 2)
        | match v {
            Vote::Agree => AGREE,
            Vote::Disagree => DISAGREE,
            Vote::Pass => PASS,
        }
}

/// A packed entry's column.
pub(crate) fn col(e: u16) -> usize {
    (e >> 2) as usize
}

/// A packed entry's vote.
pub(crate) fn vote(e: u16) -> Vote {
    match e & 3 {
        AGREE => Vote::Agree,
        DISAGREE => Vote::Disagree,
        _ => Vote::Pass,
    }
}

/// A packed entry's value for the geometry: agree +1, disagree −1, pass 0 (Pol.is uses the
/// opposite signs; the sign does not change the geometry).
pub(crate) fn value(e: u16) -> i32 {
    match e & 3 {
        AGREE => 1,
        DISAGREE => -1,
        _ => 0,
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Row {
    /// The identity's tier when it last voted.
    pub tier: Tier,
    /// Packed entries, sorted by column.
    pub votes: Vec<u16>,
}

impl Default for Row {
    fn default() -> Self {
        Row { tier: Tier::Anonymous, votes: Vec::new() }
    }
}

#[derive(Clone, Debug, Default)]
struct Chunk {
    rows: Vec<Row>,
}

/// The live matrix, owned by the activity's driver.
#[derive(Clone, Debug, Default)]
pub struct VoteMatrix {
    chunks: Vec<Arc<Chunk>>,
    rows: usize,
    votes: u64,
}

impl VoteMatrix {
    /// An empty matrix.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows (identities that have a row; rows are created on an identity's first vote and
    /// filled up to its row number).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Votes standing (a changed vote counts once).
    pub fn votes(&self) -> u64 {
        self.votes
    }

    /// The vote of `row` on column `col`.
    pub(crate) fn get(&self, row: u32, col: usize) -> Option<Vote> {
        let r = self.row(row)?;
        r.votes.binary_search_by_key(&col, |e| self::col(*e)).ok().map(|i| vote(r.votes[i]))
    }

    pub(crate) fn row(&self, row: u32) -> Option<&Row> {
        let row = row as usize;
        if row >= self.rows {
            return None;
        }
        self.chunks[row / CHUNK_ROWS].rows.get(row % CHUNK_ROWS)
    }

    /// Sets the vote of `row` on `col`; returns the vote it replaced.
    pub(crate) fn set(&mut self, row: u32, tier: Tier, col: usize, v: Vote) -> Option<Vote> {
        let row = row as usize;
        let (c, off) = (row / CHUNK_ROWS, row % CHUNK_ROWS);
        while self.chunks.len() <= c {
            self.chunks.push(Arc::new(Chunk::default()));
        }
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        if chunk.rows.len() <= off {
            chunk.rows.resize_with(off + 1, Row::default);
        }
        self.rows = self.rows.max(row + 1);
        let r = &mut chunk.rows[off];
        r.tier = tier;
        let e = pack(col, v);
        match r.votes.binary_search_by_key(&col, |x| self::col(*x)) {
            Ok(i) => {
                let old = vote(r.votes[i]);
                r.votes[i] = e;
                Some(old)
            }
            Err(i) => {
                r.votes.insert(i, e);
                self.votes += 1;
                None
            }
        }
    }

    /// A frozen copy for a recompute, in O(rows / [`CHUNK_ROWS`]).
    pub fn snapshot(&self) -> MatrixSnapshot {
        MatrixSnapshot { chunks: self.chunks.clone(), rows: self.rows, votes: self.votes }
    }

    /// Heap bytes held by the rows (allocations counted at their capacity, allocator overhead
    /// not counted): what the docs' memory estimate is checked against.
    pub fn heap_bytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| {
                c.rows.capacity() * std::mem::size_of::<Row>()
                    + c.rows.iter().map(|r| r.votes.capacity() * 2).sum::<usize>()
            })
            .sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Arc<Chunk>>()
    }
}

/// A frozen matrix: what a recompute reads on its own thread while the driver keeps voting.
#[derive(Clone, Debug, Default)]
pub struct MatrixSnapshot {
    chunks: Vec<Arc<Chunk>>,
    rows: usize,
    votes: u64,
}

impl MatrixSnapshot {
    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Votes.
    pub fn votes(&self) -> u64 {
        self.votes
    }

    /// Every row in row order: (row, tier, packed entries).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, Tier, &[u16])> + '_ {
        self.chunks.iter().enumerate().flat_map(|(c, chunk)| {
            chunk
                .rows
                .iter()
                .enumerate()
                .map(move |(i, r)| ((c * CHUNK_ROWS + i) as u32, r.tier, r.votes.as_slice()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_vote_replaces_the_old_one() {
        let mut m = VoteMatrix::new();
        assert_eq!(m.set(3, Tier::Verified, 7, Vote::Agree), None);
        assert_eq!(m.set(3, Tier::Verified, 2, Vote::Pass), None);
        assert_eq!(m.set(3, Tier::Verified, 7, Vote::Disagree), Some(Vote::Agree));
        assert_eq!(m.get(3, 7), Some(Vote::Disagree));
        assert_eq!(m.get(3, 2), Some(Vote::Pass));
        assert_eq!(m.get(0, 7), None);
        assert_eq!((m.rows(), m.votes()), (4, 2));
        let cols: Vec<usize> = m.row(3).unwrap().votes.iter().map(|e| col(*e)).collect();
        assert_eq!(cols, vec![2, 7]);
    }

    #[test]
    fn a_snapshot_does_not_see_later_votes() {
        let mut m = VoteMatrix::new();
        for r in 0..3000u32 {
            m.set(r, Tier::Anonymous, (r % 5) as usize, Vote::Agree);
        }
        let snap = m.snapshot();
        m.set(5, Tier::Anonymous, 9, Vote::Disagree);
        m.set(2500, Tier::Anonymous, 0, Vote::Disagree);
        m.set(4000, Tier::Member, 1, Vote::Pass);
        assert_eq!((snap.rows(), snap.votes()), (3000, 3000));
        let row5: Vec<u16> = snap.iter().find(|(r, _, _)| *r == 5).unwrap().2.to_vec();
        assert_eq!(row5, vec![pack(0, Vote::Agree)]);
        let row2500 = snap.iter().find(|(r, _, _)| *r == 2500).unwrap().2.to_vec();
        assert_eq!(row2500, vec![pack(0, Vote::Agree)]);
        assert_eq!(m.get(2500, 0), Some(Vote::Disagree));
        assert_eq!(m.rows(), 4001);
        assert_eq!(snap.iter().count(), 3000);
    }
}
