use super::*;
use proptest::prelude::*;

fn hd(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn h(s: &str) -> Hash {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).unwrap();
    out
}

fn hs(s: &str) -> Vec<Hash> {
    hd(s).chunks(32).map(|c| c.try_into().unwrap()).collect()
}

/// The leaves, perfect-subtree hashes and roots of the reference tree of transparency-dev/merkle
/// (`testonly/constants.go`), which CT implementations test against.
const LEAVES: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
const LEVEL1: [&str; 4] = [
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
];

fn reference_leaves() -> Vec<Vec<u8>> {
    LEAVES.iter().map(|l| hd(l)).collect()
}

#[test]
fn the_log_reproduces_the_ct_reference_tree() {
    let leaves = reference_leaves();
    let mut log = MerkleLog::new();
    let mut frontier = Frontier::new();
    assert_eq!(log.head(), TreeHead { size: 0, root: h(ROOTS[0]) });
    assert_eq!(frontier.root(), h(ROOTS[0]));
    for (i, l) in leaves.iter().enumerate() {
        assert_eq!(log.push_leaf(l), i as u64);
        assert_eq!(frontier.push_leaf(l), i as u64);
        assert_eq!(log.head().root, h(ROOTS[i + 1]), "root of {} leaves", i + 1);
        assert_eq!(frontier.head(), log.head());
    }
    for (size, root) in ROOTS.iter().enumerate() {
        assert_eq!(log.head_at(size as u64).unwrap().root, h(root));
    }
    assert_eq!(log.levels[1], LEVEL1.map(h).to_vec());
}

#[test]
fn proofs_match_the_ct_reference_vectors() {
    // Vectors of transparency-dev/merkle `testonly/reference_test.go` (also in ct-merkle).
    let log = MerkleLog::from_leaves(reference_leaves());
    let inclusion: [(u64, u64, &str); 7] = [
        (0, 1, ""),
        (0, 2, "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        (1, 2, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        (2, 3, "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        (
            1,
            5,
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d\
             5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e\
             bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
        (
            0,
            8,
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7\
             5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e\
             6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
        (
            5,
            8,
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b\
             ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0\
             d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ];
    for (index, size, expected) in inclusion {
        let p = log.inclusion_proof(index, size).unwrap();
        assert_eq!(p.path, hs(expected), "PATH({index}, D[{size}])");
        p.verify(&log.head_at(size).unwrap(), &reference_leaves()[index as usize]).unwrap();
    }
    let consistency: [(u64, u64, &str); 4] = [
        (1, 1, ""),
        (
            1,
            8,
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7\
             5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e\
             6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
        (
            2,
            5,
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e\
             bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
        (
            6,
            8,
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a\
             ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0\
             d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ];
    for (m, n, expected) in consistency {
        let p = log.consistency_proof(m, n).unwrap();
        assert_eq!(p.path, hs(expected), "PROOF({m}, D[{n}])");
        p.verify(&log.head_at(m).unwrap(), &log.head_at(n).unwrap()).unwrap();
    }
}

fn numbered_leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
}

#[test]
fn every_proof_equals_the_rfc_definition_for_every_size_up_to_40() {
    let leaves = numbered_leaves(40);
    let log = MerkleLog::from_leaves(&leaves);
    let mut frontier = Frontier::new();
    for n in 0..=40usize {
        let head = log.head_at(n as u64).unwrap();
        assert_eq!(head.root, reference::mth(&leaves[..n]), "MTH(D[{n}])");
        assert_eq!(frontier.head(), head);
        assert_eq!(MerkleLog::from_leaves(&leaves[..n]).frontier(), frontier);
        for m in 0..n {
            let p = log.inclusion_proof(m as u64, n as u64).unwrap();
            assert_eq!(p.path, reference::path(m, &leaves[..n]), "PATH({m}, D[{n}])");
            assert!(reference::verify_inclusion(m as u64, n as u64, leaf_hash(&leaves[m]), &p.path, &head.root));
            p.verify(&head, &leaves[m]).unwrap();
        }
        for m in 0..=n {
            let old = log.head_at(m as u64).unwrap();
            let p = log.consistency_proof(m as u64, n as u64).unwrap();
            assert_eq!(p.path, reference::proof(m, &leaves[..n]), "PROOF({m}, D[{n}])");
            p.verify(&old, &head).unwrap();
            if m > 0 && m < n {
                assert!(reference::verify_consistency(m as u64, n as u64, &old.root, &head.root, &p.path));
            }
        }
        if n < 40 {
            frontier.push_leaf(&leaves[n]);
        }
    }
}

#[test]
fn proofs_at_the_current_size_equal_ct_merkle_s_own() {
    let leaves = numbered_leaves(37);
    let mut tree = ct_merkle::mem_backed_tree::MemoryBackedTree::<Sha256, Vec<u8>>::new();
    let mut log = MerkleLog::new();
    for l in &leaves {
        tree.push(l.clone());
        log.push_leaf(l);
        let n = log.len();
        assert_eq!(tree.root().as_bytes().as_slice(), log.head().root.as_slice());
        for i in 0..n {
            let theirs = tree.prove_inclusion(i as usize);
            assert_eq!(theirs.as_bytes(), log.inclusion_proof(i, n).unwrap().path.concat());
        }
        for m in 1..=n {
            let theirs = tree.prove_consistency((n - m) as usize);
            assert_eq!(theirs.as_bytes(), log.consistency_proof(m, n).unwrap().path.concat());
        }
    }
}

#[test]
fn out_of_range_requests_are_refused_not_panicked() {
    let log = MerkleLog::from_leaves(numbered_leaves(5));
    assert!(matches!(log.inclusion_proof(5, 5), Err(MerkleError::IndexOutOfRange { .. })));
    assert!(matches!(log.inclusion_proof(0, 6), Err(MerkleError::SizeOutOfRange(6))));
    assert!(matches!(log.consistency_proof(4, 3), Err(MerkleError::SizeOutOfRange(4))));
    assert!(matches!(log.consistency_proof(1, 6), Err(MerkleError::SizeOutOfRange(6))));
    assert!(matches!(log.head_at(6), Err(MerkleError::SizeOutOfRange(6))));
    let head = log.head();
    let huge = TreeHead { size: u64::MAX, root: head.root };
    assert!(verify_inclusion(&huge, u64::MAX - 1, b"x", &[]).is_err());
    assert!(verify_consistency(&huge, &huge, &[]).is_err());
    assert!(verify_inclusion(&TreeHead::empty(), 0, b"x", &[]).is_err());
    assert!(verify_inclusion(&head, 0, b"leaf 0", &vec![[0; 32]; MAX_PROOF_NODES + 1]).is_err());
    // The empty tree is a prefix of every tree, with an empty proof and the true empty root.
    assert!(verify_consistency(&TreeHead::empty(), &head, &[]).is_ok());
    assert!(verify_consistency(&TreeHead { size: 0, root: [1; 32] }, &head, &[]).is_err());
    assert!(verify_consistency(&TreeHead::empty(), &head, &[[0; 32]]).is_err());
    assert!(Frontier::from_parts(3, vec![[0; 32]]).is_err());
    assert!(Frontier::from_parts(3, vec![[0; 32]; 2]).is_ok());
}

fn flip(bytes: &mut [u8], at: usize, bit: u8) {
    let i = at % bytes.len();
    bytes[i] ^= 1 << (bit % 8);
}

/// A log that extends `leaves` to at least `size` leaves with other leaves (to ask what root a
/// changed size really has).
fn extended(leaves: &[Vec<u8>], size: u64) -> MerkleLog {
    let mut log = MerkleLog::from_leaves(leaves);
    while log.len() < size {
        log.push_leaf(format!("later {}", log.len()).as_bytes());
    }
    log
}

#[derive(Clone, Debug)]
enum InclusionTamper {
    Leaf(usize, u8),
    ProofNode(usize, usize, u8),
    Root(usize, u8),
    Index(u64),
    Size(u64),
}

#[derive(Clone, Debug)]
enum ConsistencyTamper {
    ProofNode(usize, usize, u8),
    OldRoot(usize, u8),
    NewRoot(usize, u8),
    OldSize(u64),
    NewSize(u64),
}

#[derive(Clone, Debug)]
enum Rewrite {
    Edit(usize, usize, u8),
    Delete(usize),
    Swap(usize, usize),
    Truncate(usize),
}

fn leaves_strategy(max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 1..max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_leaf_s_inclusion_proof_verifies_for_every_tree_size_it_is_in(
        leaves in leaves_strategy(80), pick in any::<prop::sample::Index>()
    ) {
        let log = MerkleLog::from_leaves(&leaves);
        let i = pick.index(leaves.len());
        for size in i as u64 + 1..=log.len() {
            let head = log.head_at(size).unwrap();
            let p = log.inclusion_proof(i as u64, size).unwrap();
            prop_assert!(p.verify(&head, &leaves[i]).is_ok());
            prop_assert!(reference::verify_inclusion(i as u64, size, leaf_hash(&leaves[i]), &p.path, &head.root));
        }
    }

    #[test]
    fn consistency_verifies_for_every_earlier_size(leaves in leaves_strategy(80)) {
        let log = MerkleLog::from_leaves(&leaves);
        let n = log.len();
        let new = log.head();
        for m in 0..=n {
            let old = log.head_at(m).unwrap();
            let p = log.consistency_proof(m, n).unwrap();
            prop_assert!(p.verify(&old, &new).is_ok(), "{} -> {}", m, n);
        }
    }

    #[test]
    fn a_changed_leaf_proof_node_index_or_root_fails_inclusion_and_a_changed_size_is_no_real_head(
        leaves in leaves_strategy(64),
        pick in any::<prop::sample::Index>(),
        t in prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(a, b)| InclusionTamper::Leaf(a, b)),
            (any::<usize>(), any::<usize>(), any::<u8>()).prop_map(|(n, a, b)| InclusionTamper::ProofNode(n, a, b)),
            (any::<usize>(), any::<u8>()).prop_map(|(a, b)| InclusionTamper::Root(a, b)),
            (0u64..70).prop_map(InclusionTamper::Index),
            (0u64..130).prop_map(InclusionTamper::Size),
        ],
    ) {
        let log = MerkleLog::from_leaves(&leaves);
        let i = pick.index(leaves.len());
        let (mut leaf, mut head) = (leaves[i].clone(), log.head());
        let mut p = log.inclusion_proof(i as u64, log.len()).unwrap();
        match t {
            InclusionTamper::Leaf(at, bit) => {
                if leaf.is_empty() { leaf.push(1 << (bit % 8)) } else { flip(&mut leaf, at, bit) }
            }
            InclusionTamper::ProofNode(n, at, bit) => {
                prop_assume!(!p.path.is_empty());
                let k = n % p.path.len();
                flip(&mut p.path[k], at, bit);
            }
            InclusionTamper::Root(at, bit) => flip(&mut head.root, at, bit),
            InclusionTamper::Index(j) => {
                // Moving the claim to an equal leaf elsewhere is no lie.
                prop_assume!(j != i as u64 && leaves.get(j as usize) != Some(&leaves[i]));
                p.index = j;
            }
            InclusionTamper::Size(s) => {
                prop_assume!(s != head.size);
                head.size = s;
                p.size = s;
            }
        }
        let verdict = p.verify(&head, &leaf);
        let reference = head.size > 0
            && reference::verify_inclusion(p.index, head.size, leaf_hash(&leaf), &p.path, &head.root);
        prop_assert_eq!(verdict.is_ok(), reference, "ct-merkle and RFC 9162 disagree");
        match t {
            InclusionTamper::Size(s) if verdict.is_ok() => {
                // The RFC accepts a path of the same shape for another size; the head it then
                // "proves" is not the log's head at that size. Signatures bind the size.
                prop_assert_ne!(extended(&leaves, s).head_at(s).unwrap().root, head.root);
            }
            _ => prop_assert!(verdict.is_err(), "tampered proof verified: {:?}", t),
        }
    }

    #[test]
    fn a_changed_proof_node_or_root_fails_consistency_and_a_changed_size_is_no_real_head(
        leaves in leaves_strategy(64),
        pick in any::<prop::sample::Index>(),
        t in prop_oneof![
            (any::<usize>(), any::<usize>(), any::<u8>()).prop_map(|(n, a, b)| ConsistencyTamper::ProofNode(n, a, b)),
            (any::<usize>(), any::<u8>()).prop_map(|(a, b)| ConsistencyTamper::OldRoot(a, b)),
            (any::<usize>(), any::<u8>()).prop_map(|(a, b)| ConsistencyTamper::NewRoot(a, b)),
            (0u64..70).prop_map(ConsistencyTamper::OldSize),
            (0u64..130).prop_map(ConsistencyTamper::NewSize),
        ],
    ) {
        let log = MerkleLog::from_leaves(&leaves);
        let n = log.len();
        let m = pick.index(n as usize + 1) as u64;
        let (mut old, mut new) = (log.head_at(m).unwrap(), log.head());
        let mut p = log.consistency_proof(m, n).unwrap();
        match t {
            ConsistencyTamper::ProofNode(k, at, bit) => {
                prop_assume!(!p.path.is_empty());
                let k = k % p.path.len();
                flip(&mut p.path[k], at, bit);
            }
            ConsistencyTamper::OldRoot(at, bit) => flip(&mut old.root, at, bit),
            ConsistencyTamper::NewRoot(at, bit) => {
                // With m = 0 the new root is not checked by a consistency proof at all (every
                // tree extends the empty one): that head's own signature covers it.
                prop_assume!(m > 0);
                flip(&mut new.root, at, bit)
            }
            ConsistencyTamper::OldSize(s) => {
                prop_assume!(s != m);
                old.size = s;
                p.old_size = s;
            }
            ConsistencyTamper::NewSize(s) => {
                prop_assume!(s != n);
                new.size = s;
                p.new_size = s;
            }
        }
        let verdict = p.verify(&old, &new);
        if old.size > 0 && old.size < new.size {
            let reference = reference::verify_consistency(old.size, new.size, &old.root, &new.root, &p.path);
            prop_assert_eq!(verdict.is_ok(), reference, "ct-merkle and RFC 9162 disagree");
        }
        match t {
            ConsistencyTamper::OldSize(s) | ConsistencyTamper::NewSize(s) if verdict.is_ok() => {
                let real = extended(&leaves, s).head_at(s).unwrap().root;
                let claimed = if matches!(t, ConsistencyTamper::OldSize(_)) { old.root } else { new.root };
                prop_assert_ne!(real, claimed, "a changed size verified as a real head");
            }
            _ => prop_assert!(verdict.is_err(), "tampered proof verified: {:?}", t),
        }
    }

    #[test]
    fn a_log_rebuilt_after_editing_deleting_reordering_or_truncating_fails_against_an_earlier_head(
        leaves in leaves_strategy(48),
        earlier in any::<prop::sample::Index>(),
        rewrite in prop_oneof![
            (any::<usize>(), any::<usize>(), any::<u8>()).prop_map(|(i, a, b)| Rewrite::Edit(i, a, b)),
            any::<usize>().prop_map(Rewrite::Delete),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Rewrite::Swap(a, b)),
            any::<usize>().prop_map(Rewrite::Truncate),
        ],
        appended in 0usize..6,
    ) {
        // A head published when the log had m leaves (in the minutes, say) ...
        let m = earlier.index(leaves.len()) + 1;
        let published = MerkleLog::from_leaves(&leaves).head_at(m as u64).unwrap();
        // ... then someone with the database rewrites one of those m leaves, rebuilds the whole
        // tree (and would re-sign it with a stolen key), and appends new leaves after it.
        let mut forged = leaves.clone();
        match rewrite {
            Rewrite::Edit(i, at, bit) => {
                let l = &mut forged[i % m];
                if l.is_empty() { l.push(1 << (bit % 8)) } else { flip(l, at, bit) }
            }
            Rewrite::Delete(i) => { forged.remove(i % m); }
            Rewrite::Swap(a, b) => {
                let (a, b) = (a % m, b % leaves.len());
                prop_assume!(forged[a] != forged[b]);
                forged.swap(a, b);
            }
            Rewrite::Truncate(t) => forged.truncate(t % m),
        }
        for k in 0..appended {
            forged.push(format!("appended {k}").into_bytes());
        }
        prop_assume!(forged.get(..m) != Some(&leaves[..m]));
        let log = MerkleLog::from_leaves(&forged);
        let head = log.head();
        // The forger's best proof is the honest proof of their own tree; it cannot pass.
        let best = log.consistency_proof(published.size.min(head.size), head.size).unwrap();
        prop_assert!(verify_consistency(&published, &head, &best.path).is_err());
        // Nor can any rewritten row be proven to be where it now stands in the published head.
        for i in 0..m.min(forged.len()) {
            if forged[i] != leaves[i] {
                let p = log.inclusion_proof(i as u64, (m as u64).min(log.len())).unwrap();
                prop_assert!(verify_inclusion(&published, i as u64, &forged[i], &p.path).is_err());
            }
        }
    }

    #[test]
    fn any_changed_byte_of_a_signed_head_fails_its_signature(
        seed in any::<[u8; 32]>(), size in 0u64..1_000_000, root in any::<[u8; 32]>(), ts in any::<u64>(),
        field in 0usize..5, at in any::<usize>(), bit in any::<u8>(),
    ) {
        let key = LogKey::from_seed(&seed);
        let log = ActivityId::new("demo").unwrap();
        let sth = key.sign(&log, TreeHead { size, root }, ts);
        prop_assert!(sth.verify(&key.public()).is_ok());
        let mut bad = sth.clone();
        match field {
            0 => bad.log = ActivityId::new("demo2").unwrap(),
            1 => bad.size ^= 1 << (at % 40),
            2 => flip(&mut bad.root, at, bit),
            3 => bad.ts_ms ^= 1 << (at % 64),
            _ => flip(&mut bad.sig, at, bit),
        }
        prop_assert!(bad.verify(&key.public()).is_err());
        let other = LogKey::from_seed(&seed.map(|b| b ^ 0x5a));
        prop_assert!(sth.verify(&other.public()).is_err());
    }
}

#[test]
fn a_signed_head_round_trips_through_json_and_other_versions_are_refused() {
    let key = LogKey::generate();
    let log = MerkleLog::from_leaves(numbered_leaves(3));
    let sth = key.sign(&ActivityId::new("demo").unwrap(), log.head(), 1_700_000_000_000);
    let json = serde_json::to_string(&sth).unwrap();
    assert!(json.contains(&format!("\"root\":\"{}\"", hex::encode(log.head().root))), "{json}");
    let back: SignedTreeHead = serde_json::from_str(&json).unwrap();
    assert_eq!(back, sth);
    back.verify(&key.public()).unwrap();
    let mut v2 = sth.clone();
    v2.v = 2;
    assert!(matches!(v2.verify(&key.public()), Err(MerkleError::UnsupportedVersion(2))));
    assert!(serde_json::from_str::<SignedTreeHead>(&json.replace("\"demo\"", "\"de mo\"")).is_err());
    let p = log.inclusion_proof(1, 3).unwrap();
    let back: InclusionProof = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
    let f = log.frontier();
    let back: Frontier = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
    assert_eq!(back, f);
}

#[test]
fn the_key_file_is_created_private_reloaded_and_refused_when_others_may_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = LogKey::default_path(&dir.path().join("data"));
    let key = LogKey::load_or_create(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = LogKey::load_or_create(&path).unwrap();
    assert_eq!(again.public(), key.public());
    let published: LogPublicKey = std::fs::read_to_string(path.with_file_name("record-signing.key.pub"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(published, key.public());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = LogKey::load_or_create(&path).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, "not a key\n").unwrap();
    assert!(LogKey::load_or_create(&path).is_err());
    assert!("zz".parse::<LogPublicKey>().is_err());
}

fn entry() -> AuditEntry {
    AuditEntry {
        activity: ActivityId::new("demo").unwrap(),
        idx: 3,
        ts_ms: 1_700_000_000_123,
        actor: "moderator:主持人".into(),
        action: "hide_comment".into(),
        target: Some("#12".into()),
        detail: None,
        reason: Some("广告".into()),
        prev_hash: [7; 32],
        hash: [9; 32],
    }
}

#[test]
fn every_field_of_an_item_or_audit_entry_changes_its_leaf() {
    let a = ActivityId::new("demo").unwrap();
    let base = item_leaf(&a, Seq(5), true, b"\x83body");
    assert!(base.starts_with(LEAF_TAG));
    for other in [
        item_leaf(&ActivityId::new("demo2").unwrap(), Seq(5), true, b"\x83body"),
        item_leaf(&a, Seq(6), true, b"\x83body"),
        item_leaf(&a, Seq(5), false, b"\x83body"),
        item_leaf(&a, Seq(5), true, b"\x83bodz"),
    ] {
        assert_ne!(other, base);
    }
    let e = entry();
    let leaf = audit_leaf(&e);
    let edits: [fn(&mut AuditEntry); 10] = [
        |e| e.activity = ActivityId::new("demo2").unwrap(),
        |e| e.idx += 1,
        |e| e.ts_ms += 1,
        |e| e.actor.push('x'),
        |e| e.action.push('x'),
        |e| e.target = None,
        |e| e.detail = Some(String::new()),
        |e| e.reason = Some("换了理由".into()),
        |e| e.prev_hash[0] ^= 1,
        |e| e.hash[31] ^= 1,
    ];
    for edit in edits {
        let mut changed = e.clone();
        edit(&mut changed);
        assert_ne!(audit_leaf(&changed), leaf, "{changed:?}");
    }
    // Field boundaries are unambiguous: moving a character from one string to the next changes
    // the leaf, and an item leaf never equals an audit leaf (the kind byte).
    let mut ab = e.clone();
    ab.actor = "ab".into();
    ab.action = "c".into();
    let mut a_bc = e.clone();
    a_bc.actor = "a".into();
    a_bc.action = "bc".into();
    assert_ne!(audit_leaf(&ab), audit_leaf(&a_bc));
    assert_ne!(base[LEAF_TAG.len()], leaf[LEAF_TAG.len()]);
}
