//! Checking a stored record against its Merkle log and signed tree heads: what `verify-record`
//! runs. Pure: the record hands over a [`LogDump`] (every row of the activity's items, audit
//! log, log leaves and tree heads, as stored) and [`verify_log`] recomputes the tree from the
//! rows and compares it with the signed heads, and with a head published earlier if one is
//! given.
//!
//! # What is stored (both backends)
//! - `log_leaves (activity, leaf, item_seq | audit_idx, hash)`: the log's order. Leaf `i` is the
//!   item or audit entry the record committed `i`-th (0-based); `hash` is its RFC 6962 leaf
//!   hash as computed when it was appended. The leaf *bytes* are not stored: they are
//!   recomputed from the row ([`merkle::item_leaf`], [`merkle::audit_leaf`]), so a row that
//!   was edited no longer gives its logged hash.
//! - `tree_heads (activity, size, root, ts_ms, sig, peaks)`: the signed heads
//!   ([`merkle::SignedTreeHead`]) with the frontier's peaks at that size, from which the writer
//!   continues after a restart without rereading the log (the peaks are checked against the
//!   signed root, so they cannot be forged).
//!
//! Every table can be rewritten by whoever can write the database; the signature cannot. So
//! the verdict rests on the signed roots, and the stored leaf hashes only serve to name *which*
//! row was edited.

use std::collections::BTreeMap;

use shangliang_signaling::{ActivityId, Item, ItemBody};

use super::audit::AuditRow;
use super::merkle::{self, Hash, LogPublicKey, MerkleLog, SignedTreeHead};

/// What a leaf of the log is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LeafRef {
    /// The item of this seq.
    Item(u64),
    /// The audit entry of this idx (from 1).
    Audit(u64),
}

/// One row of `log_leaves`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafRow {
    /// The leaf index, from 0.
    pub leaf: u64,
    /// What it logs.
    pub what: LeafRef,
    /// Its leaf hash as computed when it was appended.
    pub hash: Hash,
}

/// One row of `items`, undecoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawItem {
    /// The seq column.
    pub seq: u64,
    /// The timestamp column (a copy of the body's).
    pub ts_ms: u64,
    /// Whether the public view may show it.
    pub public: bool,
    /// The item as stored (MessagePack of seq, ts and body).
    pub body: Vec<u8>,
}

/// Every row of an activity's record that the log covers, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogDump {
    /// `items`, by seq.
    pub items: Vec<RawItem>,
    /// `audit_log`, by idx.
    pub audit: Vec<AuditRow>,
    /// `log_leaves`, by leaf.
    pub leaves: Vec<LeafRow>,
    /// `tree_heads`, by size.
    pub heads: Vec<SignedTreeHead>,
}

/// What [`verify_log`] established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogVerified {
    /// Leaves in the log (items + audit entries).
    pub leaves: u64,
    /// Items among them.
    pub items: u64,
    /// The latest signed head, checked (`None` only for an empty log).
    pub head: Option<SignedTreeHead>,
    /// Leaves appended after the latest signed head (signed within seconds; a crash can leave
    /// a few unsigned).
    pub unsigned: u64,
    /// The head published earlier that the record was checked to extend, if one was given.
    pub published: Option<SignedTreeHead>,
}

/// The record does not match its log: what is wrong, in words for the operator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Tampered(pub String);

fn describe(what: LeafRef, dump: &LogDump, items: &BTreeMap<u64, &RawItem>) -> String {
    match what {
        LeafRef::Item(seq) => {
            let kind = items
                .get(&seq)
                .and_then(|r| rmp_serde::from_slice::<Item>(&r.body).ok())
                .map_or("item", |i| match i.body {
                    ItemBody::Comment { .. } => "comment",
                    ItemBody::Hide { .. } => "hide",
                });
            format!("{kind} seq {seq}")
        }
        LeafRef::Audit(idx) => match dump.audit.iter().find(|a| a.idx == idx) {
            Some(a) => format!("audit entry idx {idx} ({} by {})", a.action, a.actor),
            None => format!("audit entry idx {idx}"),
        },
    }
}

fn ms(ts_ms: u64) -> String {
    format!("at {ts_ms} ms since 1970")
}

/// Checks `dump` (the record of `activity`) against its signed heads, verified with `key`, and
/// against `published`, a head published earlier, if given. `Err` names the first thing found
/// wrong: a missing or renumbered row, a row edited after it was logged, a truncated tail, a
/// head that does not verify, a record that does not extend the published head.
pub fn verify_log(
    activity: &ActivityId,
    dump: &LogDump,
    key: &LogPublicKey,
    published: Option<&SignedTreeHead>,
) -> Result<LogVerified, Tampered> {
    let bad = |s: String| Err(Tampered(format!("record of {activity}: {s}")));

    // 1. The heads are the hub's.
    for h in dump.heads.iter().chain(published) {
        if h.log != *activity {
            return bad(format!("a tree head of size {} is for another log ({})", h.size, h.log));
        }
        if let Err(e) = h.verify(key) {
            return bad(format!(
                "the tree head of size {} signed {} does not verify with public key {key}: {e} (tree_heads was altered, or this is not the hub's key)",
                h.size,
                ms(h.ts_ms)
            ));
        }
    }

    // 2. The rows are complete and numbered as they were written.
    let mut items = BTreeMap::new();
    for (n, r) in dump.items.iter().enumerate() {
        let expected = n as u64 + 1;
        if r.seq != expected {
            return bad(format!(
                "item seq {expected} is missing from the items table (seq {} follows {}): it was deleted",
                r.seq,
                expected - 1
            ));
        }
        let item: Item = rmp_serde::from_slice(&r.body)
            .map_err(|e| Tampered(format!("record of {activity}: item seq {} cannot be decoded: {e}", r.seq)))?;
        if item.seq.0 != r.seq || item.ts != r.ts_ms {
            return bad(format!(
                "the item in row seq {} says seq {} at {} ms: items were renumbered or edited",
                r.seq, item.seq, item.ts
            ));
        }
        items.insert(r.seq, r);
    }
    for (n, a) in dump.audit.iter().enumerate() {
        let expected = n as u64 + 1;
        if a.idx != expected {
            return bad(format!(
                "audit entry idx {expected} is missing from audit_log (idx {} follows {}): it was deleted",
                a.idx,
                expected - 1
            ));
        }
    }

    // 3. Every row is in the log once, and every leaf has its row.
    let mut leaves: Vec<Vec<u8>> = Vec::with_capacity(dump.leaves.len());
    let mut seen = std::collections::HashSet::new();
    for (n, l) in dump.leaves.iter().enumerate() {
        if l.leaf != n as u64 {
            return bad(format!("leaf {n} is missing from log_leaves (leaf {} follows)", l.leaf));
        }
        if !seen.insert(l.what) {
            return bad(format!("leaf {n} logs {} a second time", describe(l.what, dump, &items)));
        }
        let bytes = match l.what {
            LeafRef::Item(seq) => match items.get(&seq) {
                Some(r) => merkle::item_leaf(activity, shangliang_signaling::Seq(seq), r.public, &r.body),
                None => {
                    return bad(format!(
                        "leaf {n} logs item seq {seq}, which is not in the items table: it was deleted (the last seq left is {})",
                        dump.items.len()
                    ));
                }
            },
            LeafRef::Audit(idx) => match dump.audit.get((idx as usize).wrapping_sub(1)).filter(|a| a.idx == idx) {
                Some(a) => merkle::audit_leaf(a),
                None => {
                    return bad(format!(
                        "leaf {n} logs audit entry idx {idx}, which is not in audit_log: it was deleted or the log renumbered (the last idx left is {})",
                        dump.audit.len()
                    ));
                }
            },
        };
        leaves.push(bytes);
    }
    for r in &dump.items {
        if !seen.contains(&LeafRef::Item(r.seq)) {
            return bad(format!("{} is not in the log: it was added to the items table afterwards", describe(LeafRef::Item(r.seq), dump, &items)));
        }
    }
    for a in &dump.audit {
        if !seen.contains(&LeafRef::Audit(a.idx)) {
            return bad(format!("{} is not in the log: it was added to audit_log afterwards", describe(LeafRef::Audit(a.idx), dump, &items)));
        }
    }

    // 4. The tree of the rows has every signed root.
    let log = MerkleLog::from_leaves(&leaves);
    let size = log.len();
    let Some(latest) = dump.heads.last().cloned() else {
        if size == 0 && published.is_none_or(|p| p.size == 0) {
            return Ok(LogVerified { leaves: 0, items: 0, head: None, unsigned: 0, published: published.cloned() });
        }
        return bad(format!(
            "the log holds {size} leaves but tree_heads has no signed head: the signed heads were deleted"
        ));
    };
    let mut logged = MerkleLog::new();
    for l in &dump.leaves {
        logged.push_leaf_hash(l.hash);
    }
    for h in &dump.heads {
        if h.size > size {
            return bad(format!(
                "the log holds {size} leaves but the head signed {} covers {}: {} were removed from the end",
                ms(h.ts_ms),
                h.size,
                h.size - size
            ));
        }
        let root = log.head_at(h.size).map_err(|e| Tampered(e.to_string()))?.root;
        if root != h.root {
            // Name the row if the logged leaf hashes still give the signed root.
            let stored_ok = logged.head_at(h.size).is_ok_and(|t| t.root == h.root);
            if stored_ok {
                for (n, l) in dump.leaves.iter().enumerate().take(h.size as usize) {
                    if merkle::leaf_hash(&leaves[n]) != l.hash {
                        return bad(format!(
                            "{} (leaf {n}) was edited after it was logged: its row no longer matches the head signed {}",
                            describe(l.what, dump, &items),
                            ms(h.ts_ms)
                        ));
                    }
                }
            }
            return bad(format!(
                "the rows do not give the root of the head signed {} (size {}): rows were edited, deleted or reordered and log_leaves rewritten to match",
                ms(h.ts_ms),
                h.size
            ));
        }
    }
    // Every leaf under the latest head, proven by the RFC 9162 verifier (ct-merkle).
    let head = latest.head();
    for (n, leaf) in leaves.iter().enumerate().take(head.size as usize) {
        let proof = log.inclusion_proof(n as u64, head.size).map_err(|e| Tampered(e.to_string()))?;
        if let Err(e) = proof.verify(&head, leaf) {
            return bad(format!("{} (leaf {n}) is not included in the latest head: {e}", describe(dump.leaves[n].what, dump, &items)));
        }
    }

    // 5. The record extends the head published earlier.
    if let Some(p) = published {
        if p.size > size {
            return bad(format!(
                "the log holds {size} leaves, fewer than the {} of the head published from it {}: entries were removed since",
                p.size,
                ms(p.ts_ms)
            ));
        }
        let proof = log.consistency_proof(p.size, size).map_err(|e| Tampered(e.to_string()))?;
        if let Err(e) = proof.verify(&p.head(), &log.head()) {
            return bad(format!(
                "the log is not an extension of the head published {} (size {}): {e}; what was published then was rewritten",
                ms(p.ts_ms),
                p.size
            ));
        }
        if latest.size < p.size {
            return bad(format!(
                "the latest signed head (size {}) is older than the head published {} (size {}): signed heads were deleted",
                latest.size,
                ms(p.ts_ms),
                p.size
            ));
        }
    }

    Ok(LogVerified {
        leaves: size,
        items: dump.items.len() as u64,
        unsigned: size - latest.size,
        head: Some(latest),
        published: published.cloned(),
    })
}
