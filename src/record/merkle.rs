//! The verifiable record: an append-only Merkle log per activity in the shape of Certificate
//! Transparency (RFC 6962 §2.1, RFC 9162 §2.1), and the hub's signed tree heads. Pure: no I/O
//! except [`LogKey::load_or_create`].
//!
//! # The tree
//! - leaf hash `SHA-256(0x00 ‖ leaf)`, node hash `SHA-256(0x01 ‖ left ‖ right)`, the root of
//!   the empty tree `SHA-256()`; a tree of `n > 1` leaves splits at the largest power of two
//!   below `n` (RFC 9162 §2.1.1). A log is a sequence of leaves, each one byte string:
//!   [`item_leaf`] for an item of the activity's topic, [`audit_leaf`] for a moderator's audit
//!   entry, in the order the record commits them (leaf index = position in that order, *not*
//!   the item's seq).
//! - Inclusion proofs (`PATH`, §2.1.3) and consistency proofs (`PROOF`, §2.1.4) are built for any
//!   tree size the log has had, not only the current one, so a proof can be given against any
//!   head that was ever published. Both are the RFC's byte-exact node lists, so any RFC 9162
//!   verifier checks them.
//!
//! # Two structures, for the two sides
//! - [`Frontier`] — what the record's writer keeps per activity: the roots of the perfect
//!   subtrees that make up the tree (one per set bit of the size, at most 64 hashes). Appending
//!   is O(log n) worst case, amortised O(1); the root is O(log n). It cannot prove anything;
//!   the leaves themselves are the record's rows.
//! - [`MerkleLog`] — what a prover keeps (`verify-record`, `export`, a proof endpoint): the
//!   hash of every *perfect* subtree (level 0 = leaf hashes), about `2n` hashes, 64 bytes a leaf.
//!   Nodes on the ragged right edge of an older or current tree are recomputed from perfect ones
//!   (O(log n) each), as transparency-dev's tile logs do; so a proof costs O(log² n) hashes.
//!
//! # Verification
//! [`verify_inclusion`] and [`verify_consistency`] delegate to the `ct-merkle` crate's panic-free
//! verifiers (RFC 6962 semantics, constant-time comparison), which we chose over our own code for
//! the step that decides. `ct-merkle` has no compact frontier and its in-memory tree proves only
//! against its current size, so building proofs is ours; [`reference`] transcribes the RFC's
//! definitions and verification algorithms literally, and the property tests and the fuzz
//! target check the two against each other.
//!
//! **A proof authenticates the root, not the size.** RFC 9162's algorithms accept a proof for a
//! size whose path has the same shape (leaf 0 of 3 leaves and of 4 leaves, say): the claimed head
//! `(4, root-of-3)` is then a head the log never had. The size is bound by the signature over the
//! head ([`SignedTreeHead`]); verify proofs only against signed heads.
//!
//! # Signed tree heads
//! The hub signs `(log id = activity, tree size, root, timestamp)` with Ed25519 in the canonical
//! encoding of [`SignedTreeHead::message`]; the key is a file outside the database
//! ([`LogKey::load_or_create`]). What a signature and a consistency proof against an earlier
//! published head catch, and what they cannot, is in `docs/architecture.md` ("The record's
//! threat model").

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2_v011::{Digest, Sha256};
use shangliang_signaling::{ActivityId, Seq};

use super::audit::AuditRow as AuditEntry;

/// A SHA-256 digest: a leaf hash, a node hash or a root.
pub type Hash = [u8; 32];

/// The largest tree size accepted anywhere (heads, proofs). `ct-merkle` works up to 2^63; a
/// consultation is many orders of magnitude below either.
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// The longest proof accepted before any hashing: an inclusion path has at most 62 nodes below
/// [`MAX_TREE_SIZE`], a consistency path at most 63.
pub const MAX_PROOF_NODES: usize = 64;

/// Why a proof, a head or a key was refused.
#[derive(Debug, thiserror::Error)]
pub enum MerkleError {
    /// The leaf index is not below the tree size.
    #[error("leaf {index} is not in a tree of {size} leaves")]
    IndexOutOfRange {
        /// The leaf index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A tree size beyond the log, beyond [`MAX_TREE_SIZE`], or an old size above the new one.
    #[error("tree size {0} is out of range")]
    SizeOutOfRange(u64),
    /// A proof longer than [`MAX_PROOF_NODES`] or of the wrong length for its sizes.
    #[error("the proof has the wrong number of nodes")]
    MalformedProof,
    /// The proof does not lead to the root(s): the leaf, a proof node or a root was altered.
    #[error("the proof does not match the tree head")]
    Mismatch,
    /// The signature over the tree head does not verify with the given public key.
    #[error("the tree head's signature does not verify")]
    BadSignature,
    /// A signed tree head of another encoding version.
    #[error("unsupported signed tree head version {0}")]
    UnsupportedVersion(u8),
    /// The signing key file could not be read, created or parsed, or is readable by others.
    #[error("record signing key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A public key that is not a valid Ed25519 point (or not 32 bytes of hex).
    #[error("not an Ed25519 public key")]
    BadPublicKey,
}

/// `SHA-256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    Sha256::new().chain_update([0x00]).chain_update(leaf).finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new().chain_update([0x01]).chain_update(left).chain_update(right).finalize().into()
}

/// The root of the empty tree, `SHA-256()` (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

// ---------------------------------------------------------------------------------------------
// Leaves

/// The first bytes of every leaf: the encoding and its version. A later encoding gets a new tag.
pub const LEAF_TAG: &[u8] = b"shangliang-leaf-v1";
/// Leaf kind byte after [`LEAF_TAG`]: an item of the topic.
pub const LEAF_ITEM: u8 = 0x01;
/// Leaf kind byte after [`LEAF_TAG`]: an audit entry.
pub const LEAF_AUDIT: u8 = 0x02;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_bytes(out, s.as_bytes());
        }
    }
}

/// The leaf of an item of `activity`'s topic:
///
/// ```text
/// "shangliang-leaf-v1" ‖ 0x01 ‖ str(activity) ‖ seq (u64 BE) ‖ public (0x00 | 0x01) ‖ bytes(body)
/// str(s) = bytes(UTF-8 of s);  bytes(b) = len(b) (u32 BE) ‖ b
/// ```
///
/// `body` is the item exactly as the record stores it in `items.body` (the MessagePack of seq,
/// ts and body from `signaling::encode_item`); `public` is the stored flag that decides whether
/// the public view shows it, which is not part of `body`. The other columns of the row (`ts_ms`,
/// `kind`, `author`) are copies of fields of `body`: a verifier compares them with the decoded
/// body rather than hashing them twice.
pub fn item_leaf(activity: &ActivityId, seq: Seq, public: bool, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEAF_TAG.len() + 18 + activity.as_str().len() + body.len());
    out.extend_from_slice(LEAF_TAG);
    out.push(LEAF_ITEM);
    put_bytes(&mut out, activity.as_str().as_bytes());
    out.extend_from_slice(&seq.0.to_be_bytes());
    out.push(u8::from(public));
    put_bytes(&mut out, body);
    out
}

/// The leaf of an audit entry, every stored column of its row:
///
/// ```text
/// "shangliang-leaf-v1" ‖ 0x02 ‖ str(activity) ‖ idx (u64 BE) ‖ ts_ms (u64 BE) ‖ str(actor)
///   ‖ str(action) ‖ opt(target) ‖ opt(detail) ‖ opt(reason) ‖ prev_hash (32) ‖ hash (32)
/// opt(None) = 0x00;  opt(Some(s)) = 0x01 ‖ str(s)
/// ```
///
/// The chain hashes are included so that the leaf covers the row as stored; the log does not
/// depend on the chain being kept.
pub fn audit_leaf(e: &AuditEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(LEAF_TAG);
    out.push(LEAF_AUDIT);
    put_bytes(&mut out, e.activity.as_str().as_bytes());
    out.extend_from_slice(&e.idx.to_be_bytes());
    out.extend_from_slice(&e.ts_ms.to_be_bytes());
    put_bytes(&mut out, e.actor.as_bytes());
    put_bytes(&mut out, e.action.as_bytes());
    put_opt(&mut out, e.target.as_deref());
    put_opt(&mut out, e.detail.as_deref());
    put_opt(&mut out, e.reason.as_deref());
    out.extend_from_slice(&e.prev_hash);
    out.extend_from_slice(&e.hash);
    out
}

// ---------------------------------------------------------------------------------------------
// Tree heads and proofs

/// A tree size and its root: what a signature covers together with the log id and a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    /// Number of leaves.
    pub size: u64,
    /// The Merkle tree hash of those leaves.
    #[serde(with = "hex_hash")]
    pub root: Hash,
}

impl TreeHead {
    /// The head of the empty log.
    pub fn empty() -> Self {
        TreeHead { size: 0, root: empty_root() }
    }
}

/// That the leaf at `index` is in the tree of `size` leaves: RFC 9162 `PATH(index, D[size])`,
/// the sibling nearest the leaf first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The leaf index (0-based).
    pub index: u64,
    /// The tree size the proof is for.
    pub size: u64,
    /// The audit path.
    #[serde(with = "hex_hashes")]
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// Checks the proof for `leaf` against `head` (whose size must be the proof's).
    pub fn verify(&self, head: &TreeHead, leaf: &[u8]) -> Result<(), MerkleError> {
        if self.size != head.size {
            return Err(MerkleError::SizeOutOfRange(self.size));
        }
        verify_inclusion(head, self.index, leaf, &self.path)
    }
}

/// That the tree of `new_size` leaves extends the tree of `old_size`: RFC 9162
/// `PROOF(old_size, D[new_size])`. Empty when `old_size` is 0 or equal to `new_size`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// The earlier size.
    pub old_size: u64,
    /// The later size.
    pub new_size: u64,
    /// The proof nodes.
    #[serde(with = "hex_hashes")]
    pub path: Vec<Hash>,
}

impl ConsistencyProof {
    /// Checks the proof between two heads (whose sizes must be the proof's).
    pub fn verify(&self, old: &TreeHead, new: &TreeHead) -> Result<(), MerkleError> {
        if self.old_size != old.size {
            return Err(MerkleError::SizeOutOfRange(self.old_size));
        }
        if self.new_size != new.size {
            return Err(MerkleError::SizeOutOfRange(self.new_size));
        }
        verify_consistency(old, new, &self.path)
    }
}

fn ct_root(head: &TreeHead) -> ct_merkle::RootHash<Sha256> {
    ct_merkle::RootHash::new(head.root.into(), head.size)
}

/// Checks that `leaf` is the leaf at `index` of the tree whose head is `head`, given its audit
/// path. Never panics. See the module docs: the head's size is authenticated by its signature.
pub fn verify_inclusion(head: &TreeHead, index: u64, leaf: &[u8], path: &[Hash]) -> Result<(), MerkleError> {
    if head.size == 0 || head.size > MAX_TREE_SIZE {
        return Err(MerkleError::SizeOutOfRange(head.size));
    }
    if index >= head.size {
        return Err(MerkleError::IndexOutOfRange { index, size: head.size });
    }
    if path.len() > MAX_PROOF_NODES {
        return Err(MerkleError::MalformedProof);
    }
    let proof = ct_merkle::InclusionProof::<Sha256>::try_from_bytes(path.concat())
        .map_err(|_| MerkleError::MalformedProof)?;
    ct_root(head).verify_inclusion(&leaf, index, &proof).map_err(|e| match e {
        ct_merkle::InclusionVerifError::MalformedProof => MerkleError::MalformedProof,
        ct_merkle::InclusionVerifError::IndexOutOfRange | ct_merkle::InclusionVerifError::TreeEmpty => {
            MerkleError::IndexOutOfRange { index, size: head.size }
        }
        ct_merkle::InclusionVerifError::IncorrectHash => MerkleError::Mismatch,
    })
}

/// Checks that `new` extends `old` (every leaf of `old` is in `new`, at the same place), given
/// the consistency proof. A proof from the empty tree or between equal sizes is empty and the
/// check is on the roots alone. Never panics.
pub fn verify_consistency(old: &TreeHead, new: &TreeHead, path: &[Hash]) -> Result<(), MerkleError> {
    if new.size > MAX_TREE_SIZE {
        return Err(MerkleError::SizeOutOfRange(new.size));
    }
    if old.size > new.size {
        return Err(MerkleError::SizeOutOfRange(old.size));
    }
    if path.len() > MAX_PROOF_NODES {
        return Err(MerkleError::MalformedProof);
    }
    if old.size == 0 {
        // Every tree extends the empty one; only the claimed empty root can be wrong.
        if !path.is_empty() {
            return Err(MerkleError::MalformedProof);
        }
        return if old.root == empty_root() { Ok(()) } else { Err(MerkleError::Mismatch) };
    }
    let proof = ct_merkle::ConsistencyProof::<Sha256>::try_from_bytes(path.concat())
        .map_err(|_| MerkleError::MalformedProof)?;
    ct_root(new).verify_consistency(&ct_root(old), &proof).map_err(|e| match e {
        ct_merkle::ConsistencyVerifError::VerificationFailure => MerkleError::Mismatch,
        ct_merkle::ConsistencyVerifError::MalformedProof => MerkleError::MalformedProof,
        _ => MerkleError::SizeOutOfRange(old.size),
    })
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

// ---------------------------------------------------------------------------------------------
// The writer's compact frontier

/// The compact state of a log: its size and the roots of the perfect subtrees it is made of,
/// largest (leftmost) first — one per set bit of the size. Enough to append and to compute the
/// root; nothing to prove with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frontier {
    size: u64,
    #[serde(with = "hex_hashes")]
    peaks: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier from stored parts (e.g. a checkpoint); refused unless there is one peak per
    /// set bit of `size`. The peaks cannot be checked against anything here: a writer that
    /// restarts from a checkpoint must compare the resulting root with its last signed head.
    pub fn from_parts(size: u64, peaks: Vec<Hash>) -> Result<Self, MerkleError> {
        if size > MAX_TREE_SIZE || peaks.len() != size.count_ones() as usize {
            return Err(MerkleError::SizeOutOfRange(size));
        }
        Ok(Frontier { size, peaks })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtree roots, largest first.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends a leaf; returns its index.
    pub fn push_leaf(&mut self, leaf: &[u8]) -> u64 {
        self.push_leaf_hash(leaf_hash(leaf))
    }

    /// Appends a leaf given its [`leaf_hash`]; returns its index.
    pub fn push_leaf_hash(&mut self, hash: Hash) -> u64 {
        let index = self.size;
        // Binary addition: each trailing one bit of the old size is a peak of the same height
        // as the carry, so they merge.
        let mut carry = hash;
        let mut n = self.size;
        while n & 1 == 1 {
            let left = self.peaks.pop().expect("one peak per set bit");
            carry = node_hash(&left, &carry);
            n >>= 1;
        }
        self.peaks.push(carry);
        self.size += 1;
        index
    }

    /// The root: the peaks folded from the right (`MTH` splits at the largest power of two, so
    /// the leftmost peak is the left child of the root, and so on down).
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        match peaks.next() {
            None => empty_root(),
            Some(last) => peaks.fold(*last, |acc, p| node_hash(p, &acc)),
        }
    }

    /// Size and root.
    pub fn head(&self) -> TreeHead {
        TreeHead { size: self.size, root: self.root() }
    }
}

// ---------------------------------------------------------------------------------------------
// The prover's log

/// Every perfect subtree hash of a log: `levels[k][i]` is the root of leaves
/// `i·2^k .. (i+1)·2^k`, so `levels[0]` holds the leaf hashes and `levels[k].len() == size >> k`.
/// Proves inclusion and consistency for any size up to the current one.
#[derive(Clone, Debug, Default)]
pub struct MerkleLog {
    levels: Vec<Vec<Hash>>,
}

impl MerkleLog {
    /// The empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A log of these leaves, in order.
    pub fn from_leaves<L: AsRef<[u8]>>(leaves: impl IntoIterator<Item = L>) -> Self {
        let mut log = Self::new();
        for l in leaves {
            log.push_leaf(l.as_ref());
        }
        log
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// No leaves yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a leaf; returns its index.
    pub fn push_leaf(&mut self, leaf: &[u8]) -> u64 {
        self.push_leaf_hash(leaf_hash(leaf))
    }

    /// Appends a leaf given its [`leaf_hash`]; returns its index. O(log n) worst case.
    pub fn push_leaf_hash(&mut self, hash: Hash) -> u64 {
        let index = self.len();
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(hash);
        let mut k = 0;
        while self.levels[k].len().is_multiple_of(2) {
            let n = self.levels[k].len();
            let parent = node_hash(&self.levels[k][n - 2], &self.levels[k][n - 1]);
            if self.levels.len() == k + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[k + 1].push(parent);
            k += 1;
        }
        index
    }

    /// The leaf hash at `index`.
    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(usize::try_from(index).ok()?).copied()
    }

    /// The head of the current tree.
    pub fn head(&self) -> TreeHead {
        TreeHead { size: self.len(), root: self.subtree(0, self.len()) }
    }

    /// The head the log had when it held `size` leaves.
    pub fn head_at(&self, size: u64) -> Result<TreeHead, MerkleError> {
        if size > self.len() {
            return Err(MerkleError::SizeOutOfRange(size));
        }
        Ok(TreeHead { size, root: self.subtree(0, size) })
    }

    /// The frontier at the current size (what a writer continues from).
    pub fn frontier(&self) -> Frontier {
        let size = self.len();
        let mut peaks = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for k in (0..64u32).rev() {
            if size & (1 << k) != 0 {
                peaks.push(self.levels[k as usize][(start >> k) as usize]);
                start += 1 << k;
            }
        }
        Frontier { size, peaks }
    }

    /// `MTH(D[lo:hi])` for a range the RFC's recursion reaches: `lo` a multiple of the largest
    /// power of two not above `hi - lo` rounded up, `hi <= len`. Perfect ranges are stored; the
    /// others split as `MTH` does.
    fn subtree(&self, lo: u64, hi: u64) -> Hash {
        let n = hi - lo;
        if n == 0 {
            return empty_root();
        }
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            let k = n.trailing_zeros() as usize;
            return self.levels[k][(lo >> k) as usize];
        }
        let k = split(n);
        node_hash(&self.subtree(lo, lo + k), &self.subtree(lo + k, hi))
    }

    /// `PATH(m, D[lo:hi])` of RFC 9162 §2.1.3.1 with absolute indices.
    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < lo + k {
            self.path(m, lo, lo + k, out);
            out.push(self.subtree(lo + k, hi));
        } else {
            self.path(m, lo + k, hi, out);
            out.push(self.subtree(lo, lo + k));
        }
    }

    /// `SUBPROOF(m - lo, D[lo:hi], b)` of RFC 9162 §2.1.4.1 with absolute indices.
    fn subproof(&self, m: u64, lo: u64, hi: u64, b: bool, out: &mut Vec<Hash>) {
        if m == hi {
            if !b {
                out.push(self.subtree(lo, hi));
            }
            return;
        }
        let k = split(hi - lo);
        if m <= lo + k {
            self.subproof(m, lo, lo + k, b, out);
            out.push(self.subtree(lo + k, hi));
        } else {
            self.subproof(m, lo + k, hi, false, out);
            out.push(self.subtree(lo, lo + k));
        }
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves (any size the log had).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof, MerkleError> {
        if size > self.len() {
            return Err(MerkleError::SizeOutOfRange(size));
        }
        if index >= size {
            return Err(MerkleError::IndexOutOfRange { index, size });
        }
        let mut path = Vec::new();
        self.path(index, 0, size, &mut path);
        Ok(InclusionProof { index, size, path })
    }

    /// The consistency proof from the tree of `old_size` leaves to the tree of `new_size`.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<ConsistencyProof, MerkleError> {
        if new_size > self.len() {
            return Err(MerkleError::SizeOutOfRange(new_size));
        }
        if old_size > new_size {
            return Err(MerkleError::SizeOutOfRange(old_size));
        }
        let mut path = Vec::new();
        if old_size > 0 && old_size < new_size {
            self.subproof(old_size, 0, new_size, true, &mut path);
        }
        Ok(ConsistencyProof { old_size, new_size, path })
    }
}

// ---------------------------------------------------------------------------------------------
// Signed tree heads and the signing key

/// The version of the signed tree head encoding this build writes.
pub const STH_VERSION: u8 = 1;
const STH_TAG: &[u8] = b"shangliang-sth";

/// A tree head signed by the hub: published on the tree-head endpoint and in every export, so
/// that a later copy of the record can be checked against it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    /// Encoding version ([`STH_VERSION`]).
    pub v: u8,
    /// The log: one per activity.
    pub log: ActivityId,
    /// Number of leaves.
    pub size: u64,
    /// The root.
    #[serde(with = "hex_hash")]
    pub root: Hash,
    /// When the hub signed it, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// Ed25519 signature over [`SignedTreeHead::message`].
    #[serde(with = "hex_sig")]
    pub sig: [u8; 64],
}

impl SignedTreeHead {
    /// The bytes that are signed (version 1):
    ///
    /// ```text
    /// "shangliang-sth" ‖ version (u8 = 1) ‖ str(log id) ‖ tree size (u64 BE) ‖ root (32)
    ///   ‖ timestamp_ms (u64 BE)          str(s) = len (u32 BE) ‖ UTF-8
    /// ```
    pub fn message(log: &ActivityId, head: &TreeHead, ts_ms: u64) -> Vec<u8> {
        let mut m = Vec::with_capacity(STH_TAG.len() + 1 + 4 + log.as_str().len() + 8 + 32 + 8);
        m.extend_from_slice(STH_TAG);
        m.push(STH_VERSION);
        put_bytes(&mut m, log.as_str().as_bytes());
        m.extend_from_slice(&head.size.to_be_bytes());
        m.extend_from_slice(&head.root);
        m.extend_from_slice(&ts_ms.to_be_bytes());
        m
    }

    /// The head it signs.
    pub fn head(&self) -> TreeHead {
        TreeHead { size: self.size, root: self.root }
    }

    /// Checks the signature with the hub's public key (strict Ed25519: no malleable signatures,
    /// no weak keys). Says nothing about the leaves: check proofs against [`Self::head`].
    pub fn verify(&self, key: &LogPublicKey) -> Result<(), MerkleError> {
        if self.v != STH_VERSION {
            return Err(MerkleError::UnsupportedVersion(self.v));
        }
        if self.size > MAX_TREE_SIZE {
            return Err(MerkleError::SizeOutOfRange(self.size));
        }
        let msg = Self::message(&self.log, &self.head(), self.ts_ms);
        key.0
            .verify_strict(&msg, &Signature::from_bytes(&self.sig))
            .map_err(|_| MerkleError::BadSignature)
    }
}

/// The hub's Ed25519 key for tree heads. It lives in a file, never in the database, so that
/// whoever can write the database cannot re-sign a rewritten log.
pub struct LogKey {
    key: SigningKey,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogKey({})", self.public())
    }
}

impl LogKey {
    /// Name of the key file in the data directory, unless the operator gives a path.
    pub const FILE_NAME: &'static str = "record-signing.key";

    /// `data_dir/record-signing.key`.
    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join(Self::FILE_NAME)
    }

    /// A key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        LogKey { key: SigningKey::from_bytes(seed) }
    }

    /// A new random key (not stored).
    pub fn generate() -> Self {
        Self::from_seed(&rand::random())
    }

    /// Loads the key at `path`, or creates it there (mode 0600, the seed as 64 hex digits) if
    /// there is none. A key file that group or others may read is refused, as ssh refuses one:
    /// a leaked key lets anyone sign a rewritten log. Writes the public key beside it
    /// (`<path>.pub`, hex) for the operator to publish.
    pub fn load_or_create(path: &Path) -> Result<Self, MerkleError> {
        let err = |reason: String| MerkleError::Key { path: path.to_owned(), reason };
        let key = match std::fs::read_to_string(path) {
            Ok(text) => {
                check_private(path).map_err(err)?;
                let mut seed = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut seed)
                    .map_err(|_| err("not 64 hex digits (an Ed25519 seed)".into()))?;
                Self::from_seed(&seed)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
                }
                let key = Self::generate();
                write_private(path, &format!("{}\n", hex::encode(key.key.to_bytes())))
                    .map_err(|e| err(e.to_string()))?;
                key
            }
            Err(e) => return Err(err(e.to_string())),
        };
        let public = public_path(path);
        let text = format!("{}\n", key.public());
        if std::fs::read_to_string(&public).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&public, text).map_err(|e| err(format!("{}: {e}", public.display())))?;
        }
        Ok(key)
    }

    /// The public key that verifies this key's heads.
    pub fn public(&self) -> LogPublicKey {
        LogPublicKey(self.key.verifying_key())
    }

    /// Signs `head` of `log` at `ts_ms`.
    pub fn sign(&self, log: &ActivityId, head: TreeHead, ts_ms: u64) -> SignedTreeHead {
        let sig = self.key.sign(&SignedTreeHead::message(log, &head, ts_ms));
        SignedTreeHead { v: STH_VERSION, log: log.clone(), size: head.size, root: head.root, ts_ms, sig: sig.to_bytes() }
    }
}

fn public_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".pub");
    path.with_file_name(name)
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_err(|e| e.to_string())?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!("mode {:o} lets group or others read it; chmod 600 it", mode & 0o777));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<(), String> {
    Ok(())
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// An Ed25519 public key that verifies tree heads; shown and parsed as 64 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogPublicKey(VerifyingKey);

impl LogPublicKey {
    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// From 32 bytes; refused unless they are a valid Ed25519 point.
    pub fn from_bytes(b: &[u8; 32]) -> Result<Self, MerkleError> {
        VerifyingKey::from_bytes(b).map(LogPublicKey).map_err(|_| MerkleError::BadPublicKey)
    }
}

impl std::fmt::Display for LogPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0.to_bytes()))
    }
}

impl std::str::FromStr for LogPublicKey {
    type Err = MerkleError;
    fn from_str(s: &str) -> Result<Self, MerkleError> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut b).map_err(|_| MerkleError::BadPublicKey)?;
        Self::from_bytes(&b)
    }
}

// ---------------------------------------------------------------------------------------------
// Hex forms for JSON (exports, the tree-head endpoint)

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut h = [0u8; 32];
        hex::decode_to_slice(text, &mut h).map_err(D::Error::custom)?;
        Ok(h)
    }
}

mod hex_hashes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(hs: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(hs.len()))?;
        for h in hs {
            seq.serialize_element(&hex::encode(h))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        if texts.len() > super::MAX_PROOF_NODES * 2 {
            return Err(D::Error::custom("too many hashes"));
        }
        texts
            .iter()
            .map(|t| {
                let mut h = [0u8; 32];
                hex::decode_to_slice(t, &mut h).map_err(D::Error::custom)?;
                Ok(h)
            })
            .collect()
    }
}

mod hex_sig {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(sig: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(sig))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let text = String::deserialize(d)?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(text, &mut sig).map_err(D::Error::custom)?;
        Ok(sig)
    }
}

// ---------------------------------------------------------------------------------------------
// The RFC, literally: a second opinion for tests and fuzzing

/// Literal transcriptions of RFC 9162 §2.1 — `MTH`, `PATH`, `PROOF` as recursive definitions
/// over the leaves, and the verification algorithms of §2.1.3.2 and §2.1.4.2 step by step — to
/// cross-check the production code (the log's proof builder and `ct-merkle`'s verifiers) in the
/// property tests and the fuzz target. Quadratic and unused on any request path.
#[doc(hidden)]
pub mod reference {
    use super::{Hash, empty_root, leaf_hash, node_hash, split};

    /// `MTH(D[n])`.
    pub fn mth(leaves: &[Vec<u8>]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// `PATH(m, D[n])`.
    pub fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split(n as u64) as usize;
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    /// `PROOF(m, D[n])` for `0 < m < n`; empty otherwise.
    pub fn proof(m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
        fn subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
            let n = d.len();
            if m == n {
                return if b { Vec::new() } else { vec![mth(d)] };
            }
            let k = split(n as u64) as usize;
            if m <= k {
                let mut p = subproof(m, &d[..k], b);
                p.push(mth(&d[k..]));
                p
            } else {
                let mut p = subproof(m - k, &d[k..], false);
                p.push(mth(&d[..k]));
                p
            }
        }
        if m == 0 || m >= leaves.len() { Vec::new() } else { subproof(m, leaves, true) }
    }

    /// RFC 9162 §2.1.3.2: verifying an inclusion proof.
    pub fn verify_inclusion(leaf_index: u64, tree_size: u64, hash: Hash, path: &[Hash], root: &Hash) -> bool {
        if leaf_index >= tree_size {
            return false;
        }
        let (mut fnn, mut sn) = (leaf_index, tree_size - 1);
        let mut r = hash;
        for p in path {
            if sn == 0 {
                return false;
            }
            if fnn & 1 == 1 || fnn == sn {
                r = node_hash(p, &r);
                if fnn & 1 == 0 {
                    while fnn & 1 == 0 && fnn != 0 {
                        fnn >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                r = node_hash(&r, p);
            }
            fnn >>= 1;
            sn >>= 1;
        }
        sn == 0 && r == *root
    }

    /// RFC 9162 §2.1.4.2: verifying consistency between two tree heads (`0 < first < second`;
    /// the caller handles the equal and empty cases, which have empty proofs).
    pub fn verify_consistency(first: u64, second: u64, first_hash: &Hash, second_hash: &Hash, path: &[Hash]) -> bool {
        if first == 0 || first >= second || path.is_empty() {
            return false;
        }
        let mut path: Vec<Hash> = path.to_vec();
        if first.is_power_of_two() {
            path.insert(0, *first_hash);
        }
        let (mut fnn, mut sn) = (first - 1, second - 1);
        while fnn & 1 == 1 {
            fnn >>= 1;
            sn >>= 1;
        }
        let (mut fr, mut sr) = (path[0], path[0]);
        for c in &path[1..] {
            if sn == 0 {
                return false;
            }
            if fnn & 1 == 1 || fnn == sn {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
                if fnn & 1 == 0 {
                    while fnn & 1 == 0 && fnn != 0 {
                        fnn >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                sr = node_hash(&sr, c);
            }
            fnn >>= 1;
            sn >>= 1;
        }
        fr == *first_hash && sr == *second_hash && sn == 0
    }
}

#[cfg(test)]
mod tests;
