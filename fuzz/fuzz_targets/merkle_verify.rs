//! The Merkle log's verifiers on arbitrary proofs and heads: they never panic, they never accept
//! anything but a genuine proof, and ct-merkle's verifier (the one the hub uses) agrees with a
//! literal transcription of RFC 9162 §2.1.3.2 / §2.1.4.2 on every input.
#![no_main]
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use shangliang::record::merkle::{
    self, Hash, MAX_PROOF_NODES, MAX_TREE_SIZE, MerkleLog, TreeHead, leaf_hash, reference,
};

fn leaves(u: &mut Unstructured) -> Result<Vec<Vec<u8>>> {
    let n = u.int_in_range(1..=48)?;
    (0..n)
        .map(|_| {
            let len = u.int_in_range(0..=8)?;
            Ok(u.bytes(len)?.to_vec())
        })
        .collect()
}

fn path(u: &mut Unstructured) -> Result<Vec<Hash>> {
    let n = u.int_in_range(0..=(MAX_PROOF_NODES + 4))?;
    (0..n).map(|_| u.arbitrary::<Hash>()).collect()
}

/// A size: mostly small (in or near the log), sometimes anything.
fn size(u: &mut Unstructured, n: u64) -> Result<u64> {
    Ok(if u.ratio(7, 8)? { u.int_in_range(0..=n + 3)? } else { u.arbitrary()? })
}

/// A root: mostly a real root of the log at some size, sometimes anything.
fn root(u: &mut Unstructured, log: &MerkleLog) -> Result<Hash> {
    Ok(if u.ratio(3, 4)? { log.head_at(u.int_in_range(0..=log.len())?).unwrap().root } else { u.arbitrary()? })
}

/// The sizes whose root is `root`.
fn real_sizes(log: &MerkleLog, root: &Hash) -> Vec<u64> {
    (0..=log.len()).filter(|&s| log.head_at(s).unwrap().root == *root).collect()
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let leaves = leaves(&mut u)?;
    let log = MerkleLog::from_leaves(&leaves);
    let n = log.len();
    if u.arbitrary::<bool>()? {
        // Inclusion. Start from a genuine proof or from nothing, then let the fuzzer edit.
        let mut head = TreeHead { size: size(&mut u, n)?, root: root(&mut u, &log)? };
        let mut index = u.int_in_range(0..=n + 2)?;
        let mut leaf = leaves.get(index as usize).cloned().unwrap_or_default();
        let mut p = if u.arbitrary()? { path(&mut u)? } else { Vec::new() };
        if u.arbitrary()? && index < n {
            let s = u.int_in_range(index + 1..=n)?;
            head = log.head_at(s).unwrap();
            p = log.inclusion_proof(index, s).unwrap().path;
        }
        match u.int_in_range(0..=5)? {
            0 => {
                let len = u.int_in_range(0..=8)?;
                leaf = u.bytes(len)?.to_vec();
            }
            1 if !p.is_empty() => {
                let k = u.choose_index(p.len())?;
                p[k][u.choose_index(32)?] ^= 1 << u.int_in_range(0..=7)?;
            }
            2 => head.root[u.choose_index(32)?] ^= 1 << u.int_in_range(0..=7)?,
            3 => index = u.arbitrary()?,
            4 => head.size = size(&mut u, n)?,
            _ => {}
        }
        let verdict = merkle::verify_inclusion(&head, index, &leaf, &p);
        if head.size > 0 && head.size <= MAX_TREE_SIZE && p.len() <= MAX_PROOF_NODES {
            let rfc = reference::verify_inclusion(index, head.size, leaf_hash(&leaf), &p, &head.root);
            assert_eq!(verdict.is_ok(), rfc, "ct-merkle and RFC 9162 disagree on {head:?} {index} {p:?}");
        }
        if verdict.is_ok() {
            // Genuine: the root is a real head of the log, the leaf is at `index` there, and the
            // path is that head's path. (The claimed size may be another of the same shape: the
            // signature binds the size, see the module docs.)
            let genuine = real_sizes(&log, &head.root).into_iter().any(|s| {
                index < s
                    && log.leaf_hash(index) == Some(leaf_hash(&leaf))
                    && log.inclusion_proof(index, s).unwrap().path == p
            });
            assert!(genuine, "accepted a forged inclusion proof: {head:?} {index} {leaf:?} {p:?}");
        }
    } else {
        // Consistency.
        let mut old = TreeHead { size: size(&mut u, n)?, root: root(&mut u, &log)? };
        let mut new = TreeHead { size: size(&mut u, n)?, root: root(&mut u, &log)? };
        let mut p = if u.arbitrary()? { path(&mut u)? } else { Vec::new() };
        if u.arbitrary()? {
            let b = u.int_in_range(0..=n)?;
            let a = u.int_in_range(0..=b)?;
            (old, new) = (log.head_at(a).unwrap(), log.head_at(b).unwrap());
            p = log.consistency_proof(a, b).unwrap().path;
        }
        match u.int_in_range(0..=5)? {
            0 if !p.is_empty() => {
                let k = u.choose_index(p.len())?;
                p[k][u.choose_index(32)?] ^= 1 << u.int_in_range(0..=7)?;
            }
            1 => old.root[u.choose_index(32)?] ^= 1 << u.int_in_range(0..=7)?,
            2 => new.root[u.choose_index(32)?] ^= 1 << u.int_in_range(0..=7)?,
            3 => old.size = size(&mut u, n)?,
            4 => new.size = size(&mut u, n)?,
            _ => {}
        }
        let verdict = merkle::verify_consistency(&old, &new, &p);
        if old.size > 0 && old.size < new.size && new.size <= MAX_TREE_SIZE && p.len() <= MAX_PROOF_NODES {
            let rfc = reference::verify_consistency(old.size, new.size, &old.root, &new.root, &p);
            assert_eq!(verdict.is_ok(), rfc, "ct-merkle and RFC 9162 disagree on {old:?} {new:?} {p:?}");
        }
        if verdict.is_ok() {
            if old.size == 0 {
                assert!(p.is_empty() && old.root == merkle::empty_root(), "empty-tree consistency");
            } else if old == new {
                // A head is consistent with itself, real or not (its signature says if it is).
                assert!(p.is_empty());
            } else {
                let genuine = real_sizes(&log, &old.root).into_iter().any(|a| {
                    real_sizes(&log, &new.root)
                        .into_iter()
                        .any(|b| a <= b && log.consistency_proof(a, b).unwrap().path == p)
                });
                assert!(genuine, "accepted a forged consistency proof: {old:?} {new:?} {p:?}");
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
