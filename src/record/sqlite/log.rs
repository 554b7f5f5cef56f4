//! The Merkle log in SQLite: `log_leaves` and `tree_heads` (schema migration 4; what they hold
//! is described in [`crate::record::proof`]). The writer appends a leaf for every item and
//! audit entry in the transaction that stores it, and signs heads in the same transactions
//! ([`super::writer`]); the readers dump the log for `verify-record` and serve the latest head.

use rusqlite::{Connection, OptionalExtension, params};
use shangliang_signaling::{ActivityId, Seq};

use super::read::{audit_row, get_u64, sql_int};
use crate::record::RecordError;
use crate::record::merkle::{self, Frontier, Hash, LogPublicKey, STH_VERSION, SignedTreeHead};
use crate::record::proof::{LeafRef, LeafRow, LogDump, RawItem};

/// The writer's view of one activity's log.
#[derive(Clone, Debug)]
pub(super) struct LogState {
    /// Every leaf so far.
    pub(super) frontier: Frontier,
    /// The size of the latest signed head.
    pub(super) signed: u64,
    /// When it was signed.
    pub(super) signed_ms: u64,
}

fn blob_hash(v: Vec<u8>, what: &str) -> Result<Hash, RecordError> {
    v.try_into()
        .map_err(|v: Vec<u8>| RecordError::Corrupt(format!("{what} of {} bytes, expected 32", v.len())))
}

/// The leaf bytes of what `what` refers to, recomputed from its row; `None` if the row is gone.
pub(super) fn leaf_bytes(conn: &Connection, activity: &ActivityId, what: LeafRef) -> Result<Option<Vec<u8>>, RecordError> {
    Ok(match what {
        LeafRef::Item(seq) => conn
            .prepare_cached("SELECT public, body FROM items WHERE activity = ?1 AND seq = ?2")?
            .query_row(params![activity.as_str(), sql_int(seq)], |r| Ok((r.get::<_, bool>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .optional()?
            .map(|(public, body)| merkle::item_leaf(activity, Seq(seq), public, &body)),
        LeafRef::Audit(idx) => audit_row(conn, activity, idx)?.map(|row| merkle::audit_leaf(&row)),
    })
}

/// Stores leaf `leaf` of `activity`'s log.
pub(super) fn insert_leaf(conn: &Connection, activity: &ActivityId, leaf: u64, what: LeafRef, hash: &Hash) -> rusqlite::Result<()> {
    let (seq, idx) = match what {
        LeafRef::Item(s) => (Some(sql_int(s)), None),
        LeafRef::Audit(i) => (None, Some(sql_int(i))),
    };
    conn.prepare_cached("INSERT INTO log_leaves (activity, leaf, item_seq, audit_idx, hash) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![activity.as_str(), sql_int(leaf), seq, idx, &hash[..]])?;
    Ok(())
}

/// Stores a signed head with the frontier it was made from.
pub(super) fn insert_head(conn: &Connection, sth: &SignedTreeHead, frontier: &Frontier) -> rusqlite::Result<()> {
    let peaks: Vec<u8> = frontier.peaks().concat();
    conn.prepare_cached(
        "INSERT OR REPLACE INTO tree_heads (activity, size, root, ts_ms, sig, peaks) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![sth.log.as_str(), sql_int(sth.size), &sth.root[..], sql_int(sth.ts_ms), &sth.sig[..], peaks])?;
    Ok(())
}

fn head_from_row(activity: &ActivityId, size: u64, root: Vec<u8>, ts_ms: u64, sig: Vec<u8>) -> Result<SignedTreeHead, RecordError> {
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|v: Vec<u8>| RecordError::Corrupt(format!("tree head signature of {} bytes, expected 64", v.len())))?;
    Ok(SignedTreeHead { v: STH_VERSION, log: activity.clone(), size, root: blob_hash(root, "tree head root")?, ts_ms, sig })
}

/// The latest signed head of `activity` and the frontier's peaks stored with it.
fn latest_with_peaks(conn: &Connection, activity: &ActivityId) -> Result<Option<(SignedTreeHead, Vec<u8>)>, RecordError> {
    let row = conn
        .prepare_cached("SELECT size, root, ts_ms, sig, peaks FROM tree_heads WHERE activity = ?1 ORDER BY size DESC LIMIT 1")?
        .query_row([activity.as_str()], |r| {
            Ok((get_u64(r, 0)?, r.get::<_, Vec<u8>>(1)?, get_u64(r, 2)?, r.get::<_, Vec<u8>>(3)?, r.get::<_, Vec<u8>>(4)?))
        })
        .optional()?;
    row.map(|(size, root, ts, sig, peaks)| Ok((head_from_row(activity, size, root, ts, sig)?, peaks))).transpose()
}

/// The latest signed head of `activity`, if it has one.
pub(super) fn latest_head(conn: &Connection, activity: &ActivityId) -> Result<Option<SignedTreeHead>, RecordError> {
    Ok(latest_with_peaks(conn, activity)?.map(|(h, _)| h))
}

/// Loads `activity`'s log for the writer: from the latest signed head (its signature checked
/// with `key`, its stored peaks against its root), then every leaf after it, recomputed from
/// the rows. `Err(Corrupt)` if the head does not verify or the leaves after it are not
/// numbered on from it: the writer then refuses to extend (and sign) a log someone altered.
pub(super) fn load(conn: &Connection, activity: &ActivityId, key: &LogPublicKey) -> Result<LogState, RecordError> {
    let corrupt = |s: String| RecordError::Corrupt(format!("the Merkle log of {activity} was altered: {s}; run verify-record"));
    let mut state = LogState { frontier: Frontier::new(), signed: 0, signed_ms: 0 };
    if let Some((sth, peaks)) = latest_with_peaks(conn, activity)? {
        sth.verify(key).map_err(|e| corrupt(format!("its latest tree head (size {}) {e}", sth.size)))?;
        let peaks: Vec<Hash> = peaks.chunks(32).map(|c| c.try_into().unwrap_or([0; 32])).collect();
        let frontier = Frontier::from_parts(sth.size, peaks).map_err(|e| corrupt(e.to_string()))?;
        if frontier.root() != sth.root {
            return Err(corrupt(format!("the peaks stored with the head of size {} do not give its root", sth.size)));
        }
        state = LogState { frontier, signed: sth.size, signed_ms: sth.ts_ms };
    }
    let mut stmt = conn.prepare_cached("SELECT leaf, item_seq, audit_idx FROM log_leaves WHERE activity = ?1 AND leaf >= ?2 ORDER BY leaf")?;
    let rows = stmt
        .query_map(params![activity.as_str(), sql_int(state.frontier.size())], |r| {
            Ok((get_u64(r, 0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, Option<i64>>(2)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (leaf, seq, idx) in rows {
        if leaf != state.frontier.size() {
            return Err(corrupt(format!("leaf {} is missing", state.frontier.size())));
        }
        let what = leaf_ref(seq, idx)?;
        let bytes = leaf_bytes(conn, activity, what)?.ok_or_else(|| corrupt(format!("the row of leaf {leaf} is gone")))?;
        state.frontier.push_leaf(&bytes);
    }
    Ok(state)
}

fn leaf_ref(seq: Option<i64>, idx: Option<i64>) -> Result<LeafRef, RecordError> {
    match (seq, idx) {
        (Some(s), None) => Ok(LeafRef::Item(s.max(0) as u64)),
        (None, Some(i)) => Ok(LeafRef::Audit(i.max(0) as u64)),
        _ => Err(RecordError::Corrupt("a log leaf that is neither an item nor an audit entry".into())),
    }
}

/// Logs every item and audit entry stored before the Merkle log existed (migration 4), per
/// activity merged by time (items first at equal times), so that the first head the hub signs
/// covers them too. It attests only to what the file held at the upgrade.
pub(super) fn backfill(conn: &Connection) -> Result<(), RecordError> {
    let ids: Vec<String> = conn.prepare("SELECT id FROM activities")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for id in ids {
        let activity = ActivityId::new(&id).map_err(|_| RecordError::Corrupt(format!("activity id {id:?}")))?;
        let mut order: Vec<(u64, LeafRef)> = Vec::new();
        for (table, key) in [("items", "seq"), ("audit_log", "idx")] {
            let sql = format!("SELECT ts_ms, {key} FROM {table} WHERE activity = ?1");
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map([&id], |r| Ok((get_u64(r, 0)?, get_u64(r, 1)?)))?;
            for row in rows {
                let (ts, k) = row?;
                order.push((ts, if table == "items" { LeafRef::Item(k) } else { LeafRef::Audit(k) }));
            }
        }
        order.sort();
        for (leaf, (_, what)) in order.into_iter().enumerate() {
            let bytes = leaf_bytes(conn, &activity, what)?.expect("the row was just read");
            insert_leaf(conn, &activity, leaf as u64, what, &merkle::leaf_hash(&bytes))?;
        }
    }
    Ok(())
}

/// Every row of `activity` the log covers, for `verify-record`.
pub(super) fn dump(conn: &Connection, activity: &ActivityId) -> Result<LogDump, RecordError> {
    let id = activity.as_str();
    let items = conn
        .prepare_cached("SELECT seq, ts_ms, public, body FROM items WHERE activity = ?1 ORDER BY seq")?
        .query_map([id], |r| Ok(RawItem { seq: get_u64(r, 0)?, ts_ms: get_u64(r, 1)?, public: r.get(2)?, body: r.get(3)? }))?
        .collect::<Result<Vec<_>, _>>()?;
    let audit = super::read::audit_log(conn, activity)?;
    let mut leaves = Vec::new();
    let mut stmt = conn.prepare_cached("SELECT leaf, item_seq, audit_idx, hash FROM log_leaves WHERE activity = ?1 ORDER BY leaf")?;
    let rows = stmt.query_map([id], |r| Ok((get_u64(r, 0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, Option<i64>>(2)?, r.get::<_, Vec<u8>>(3)?)))?;
    for row in rows {
        let (leaf, seq, idx, hash) = row?;
        leaves.push(LeafRow { leaf, what: leaf_ref(seq, idx)?, hash: blob_hash(hash, "leaf hash")? });
    }
    let mut heads = Vec::new();
    let mut stmt = conn.prepare_cached("SELECT size, root, ts_ms, sig FROM tree_heads WHERE activity = ?1 ORDER BY size")?;
    let rows = stmt.query_map([id], |r| Ok((get_u64(r, 0)?, r.get::<_, Vec<u8>>(1)?, get_u64(r, 2)?, r.get::<_, Vec<u8>>(3)?)))?;
    for row in rows {
        let (size, root, ts, sig) = row?;
        heads.push(head_from_row(activity, size, root, ts, sig)?);
    }
    Ok(LogDump { items, audit, leaves, heads })
}
