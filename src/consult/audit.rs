//! The append-only, hash-chained audit log of moderator actions.
//!
//! Entry `i` carries `hash_i = SHA-256(canonical(entry_i))`, where the canonical form starts
//! with `hash_{i-1}` (32 zero bytes for the first entry). Altering, removing or reordering any
//! entry breaks the link at or after it, which [`verify`] reports. Removing entries **from the
//! end** leaves a valid shorter chain: that is detected only against a head kept elsewhere
//! (the record stores the head; [`verify_head`] checks it).
//!
//! Canonical form (version 1), so the chain can be checked without this code:
//!
//! ```text
//! "shangliang-audit-v1" || prev_hash (32 bytes) || index (u64 BE) || at_ms (u64 BE)
//!   || str(actor) || str(action) || str(target) || str(detail) || opt(reason)
//! str(s) = len(s) as u32 BE || UTF-8 bytes
//! opt(None) = 0x00;  opt(Some(s)) = 0x01 || str(s)
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::ParticipantId;
pub use shangliang_signaling::consult::{AuditEntry};

/// The first entry whose link does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("audit log broken at entry {index}")]
pub struct BrokenLink {
    /// Index (position in the slice) of the first bad entry; equal to the length when only the
    /// head check failed.
    pub index: usize,
}

const GENESIS: [u8; 32] = [0; 32];

fn put_str(h: &mut Sha256, s: &str) {
    h.update((s.len() as u32).to_be_bytes());
    h.update(s.as_bytes());
}

/// The hash of `e`'s content (not its `prev_hash`/`hash` text) chained after `prev`.
fn entry_hash(prev: &[u8; 32], e: &AuditEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"shangliang-audit-v1");
    h.update(prev);
    h.update(e.index.to_be_bytes());
    h.update(e.at_ms.to_be_bytes());
    put_str(&mut h, e.actor.as_str());
    put_str(&mut h, &e.action);
    put_str(&mut h, &e.target);
    put_str(&mut h, &e.detail);
    match &e.reason {
        None => h.update([0u8]),
        Some(r) => {
            h.update([1u8]);
            put_str(&mut h, r);
        }
    }
    h.finalize().into()
}

/// The log itself: append only.
#[derive(Clone, Debug, Default)]
pub struct AuditLog {
    entries: Vec<AuditEntry>,
    head: [u8; 32],
}

impl AuditLog {
    /// An empty log.
    pub fn new() -> Self {
        AuditLog {
            entries: Vec::new(),
            head: GENESIS,
        }
    }

    /// A log that continues `entries` (e.g. read back from the record after a restart), so
    /// new entries chain onto the stored ones. Refused if the entries do not verify.
    pub fn resume(entries: Vec<AuditEntry>) -> Result<Self, BrokenLink> {
        verify(&entries)?;
        let mut head = GENESIS;
        if let Some(last) = entries.last() {
            hex::decode_to_slice(&last.hash, &mut head).map_err(|_| BrokenLink { index: entries.len() - 1 })?;
        }
        Ok(AuditLog { entries, head })
    }

    /// Appends an entry and returns it.
    pub fn append(
        &mut self,
        at_ms: u64,
        actor: &ParticipantId,
        action: &str,
        target: &str,
        detail: &str,
        reason: Option<&str>,
    ) -> &AuditEntry {
        let mut e = AuditEntry {
            index: self.entries.len() as u64,
            at_ms,
            actor: actor.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_owned(),
            reason: reason.map(str::to_owned),
            prev_hash: hex::encode(self.head),
            hash: String::new(),
        };
        let hash = entry_hash(&self.head, &e);
        e.hash = hex::encode(hash);
        self.entries.push(e);
        self.head = hash;
        self.entries.last().expect("just pushed")
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[AuditEntry] {
        &self.entries
    }

    /// Hex hash of the last entry (64 zeros when empty): store it apart from the entries.
    pub fn head(&self) -> String {
        hex::encode(self.head)
    }
}

/// Checks every link of `entries`; returns the first broken one.
pub fn verify(entries: &[AuditEntry]) -> Result<(), BrokenLink> {
    let mut prev = GENESIS;
    for (i, e) in entries.iter().enumerate() {
        let broken = BrokenLink { index: i };
        if e.index != i as u64 || e.prev_hash != hex::encode(prev) {
            return Err(broken);
        }
        let h = entry_hash(&prev, e);
        if e.hash != hex::encode(h) {
            return Err(broken);
        }
        prev = h;
    }
    Ok(())
}

/// [`verify`], and that the chain ends at `head` (detects entries removed from the end).
pub fn verify_head(entries: &[AuditEntry], head: &str) -> Result<(), BrokenLink> {
    verify(entries)?;
    let last = entries
        .last()
        .map_or_else(|| hex::encode(GENESIS), |e| e.hash.clone());
    if last == head {
        Ok(())
    } else {
        Err(BrokenLink {
            index: entries.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn log_of(n: usize) -> AuditLog {
        let mut log = AuditLog::new();
        for i in 0..n {
            let reason = (i % 2 == 0).then(|| format!("理由{i}"));
            log.append(
                i as u64 * 10,
                &ParticipantId::new(format!("m{}", i % 3)),
                "comment_hidden",
                &format!("#{i}"),
                if i % 3 == 0 { "" } else { "detail" },
                reason.as_deref(),
            );
        }
        log
    }

    #[test]
    fn untouched_log_verifies_and_edited_log_does_not() {
        let log = log_of(5);
        assert_eq!(verify(log.entries()), Ok(()));
        assert_eq!(verify_head(log.entries(), &log.head()), Ok(()));
        let mut e = log.entries().to_vec();
        e[2].reason = Some("换了理由".into());
        assert_eq!(verify(&e), Err(BrokenLink { index: 2 }));
    }

    #[test]
    fn a_resumed_log_chains_onto_the_stored_entries() {
        let stored = log_of(3);
        let mut log = AuditLog::resume(stored.entries().to_vec()).unwrap();
        assert_eq!(log.head(), stored.head());
        log.append(99, &ParticipantId::new("m"), "floor_granted", "wang", "", None);
        assert_eq!(log.entries().len(), 4);
        assert_eq!(verify(log.entries()), Ok(()));
        let mut bad = stored.entries().to_vec();
        bad[1].action = "edited".into();
        assert_eq!(AuditLog::resume(bad).err(), Some(BrokenLink { index: 1 }));
    }

    #[test]
    fn truncation_is_caught_by_the_head_only() {
        let log = log_of(4);
        let e = &log.entries()[..3];
        assert_eq!(verify(e), Ok(()));
        assert_eq!(verify_head(e, &log.head()), Err(BrokenLink { index: 3 }));
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        // "ab"+"c" and "a"+"bc" must not hash alike.
        let p = ParticipantId::new("m");
        let mut a = AuditLog::new();
        a.append(0, &p, "ab", "c", "", None);
        let mut b = AuditLog::new();
        b.append(0, &p, "a", "bc", "", None);
        assert_ne!(a.head(), b.head());
        let mut c = AuditLog::new();
        c.append(0, &p, "a", "b", "c", None);
        let mut d = AuditLog::new();
        d.append(0, &p, "a", "bc", "", None);
        assert_ne!(c.head(), d.head());
    }

    #[derive(Clone, Debug)]
    enum Tamper {
        Edit(usize, u8),
        Remove(usize),
        Swap(usize, usize),
    }

    proptest! {
        #[test]
        fn audit_chain_verifies_and_fails_after_any_single_tamper(
            n in 1usize..12,
            t in prop_oneof![
                ((0usize..12), (0u8..7)).prop_map(|(i, f)| Tamper::Edit(i, f)),
                (0usize..12).prop_map(Tamper::Remove),
                ((0usize..12), (0usize..12)).prop_map(|(a, b)| Tamper::Swap(a, b)),
            ],
        ) {
            let log = log_of(n);
            prop_assert_eq!(verify(log.entries()), Ok(()));
            let mut e = log.entries().to_vec();
            match t {
                Tamper::Edit(i, f) => {
                    let x = &mut e[i % n];
                    match f {
                        0 => x.at_ms += 1,
                        1 => x.actor = ParticipantId::new(format!("{}x", x.actor)),
                        2 => x.action.push('x'),
                        3 => x.target.push('x'),
                        6 => x.detail.push('x'),
                        4 => x.reason = match x.reason.take() { Some(_) => None, None => Some(String::new()) },
                        _ => x.index += 1,
                    }
                }
                Tamper::Remove(i) => { e.remove(i % n); }
                Tamper::Swap(a, b) => {
                    let (a, b) = (a % n, b % n);
                    prop_assume!(a != b);
                    e.swap(a, b);
                }
            }
            // Any change is caught by the chain alone, at the first touched entry, except
            // removing the last entry, which only the head catches.
            prop_assert!(verify_head(&e, &log.head()).is_err());
            let first = match t {
                Tamper::Edit(i, _) | Tamper::Remove(i) => i % n,
                Tamper::Swap(a, b) => (a % n).min(b % n),
            };
            if matches!(t, Tamper::Remove(i) if i % n == n - 1) {
                prop_assert_eq!(verify(&e), Ok(()));
                prop_assert_eq!(verify_head(&e, &log.head()), Err(BrokenLink { index: n - 1 }));
            } else {
                prop_assert_eq!(verify(&e), Err(BrokenLink { index: first }));
            }
        }
    }
}
