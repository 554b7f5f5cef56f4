//! The read side's queries (the connections they run on are in `pool.rs`). Plain functions of a
//! `Connection`, so the writer (`log.rs`) shares them.

use rusqlite::{Connection, OptionalExtension, Row, params};
use shangliang_signaling::{ActivityId, Epoch, Item, Seq};

use crate::record::audit::{AuditHash, AuditRow};
use crate::record::{Activity, RecordError, StoredItem};

/// SQLite integers are i64; seqs, indexes and timestamps stay far below `i64::MAX`.
pub(super) fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Reads a non-negative integer column.
pub(super) fn get_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

const ACTIVITY_COLUMNS: &str = "id, title, kind, state, epoch, created_ms";

pub(super) fn activity_from_row(row: &Row<'_>) -> rusqlite::Result<Activity> {
    let id: String = row.get(0)?;
    let kind: String = row.get(2)?;
    let state: String = row.get(3)?;
    let bad = |what: &str, v: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown activity {what} {v:?}").into(),
        )
    };
    Ok(Activity {
        id: ActivityId::new(&id).map_err(|_| bad("id", &id))?,
        title: row.get(1)?,
        kind: kind.parse().map_err(|_| bad("kind", &kind))?,
        state: state.parse().map_err(|_| bad("state", &state))?,
        epoch: Epoch(row.get(4)?),
        created_ms: get_u64(row, 5)?,
    })
}

pub(super) fn activity(
    conn: &Connection,
    id: &ActivityId,
) -> Result<Option<Activity>, RecordError> {
    let sql = format!("SELECT {ACTIVITY_COLUMNS} FROM activities WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id.as_str()], activity_from_row)
        .optional()?)
}

pub(super) fn activities(conn: &Connection) -> Result<Vec<Activity>, RecordError> {
    let sql = format!("SELECT {ACTIVITY_COLUMNS} FROM activities ORDER BY created_ms, id");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([], activity_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The last stored seq of an activity, 0 if it has no items (or does not exist).
pub(super) fn head(conn: &Connection, id: &ActivityId) -> Result<Seq, RecordError> {
    // MAX over the primary key's prefix is one b-tree descent, not a scan.
    let seq = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM items WHERE activity = ?1")?
        .query_row([id.as_str()], |r| get_u64(r, 0))?;
    Ok(Seq(seq))
}

fn decode_item(blob: &[u8]) -> Result<Item, RecordError> {
    rmp_serde::from_slice(blob).map_err(|e| RecordError::Corrupt(format!("stored item: {e}")))
}

pub(super) fn items(
    conn: &Connection,
    id: &ActivityId,
    from: Seq,
    to: Seq,
    public_only: bool,
) -> Result<Vec<StoredItem>, RecordError> {
    let mut stmt = conn.prepare_cached(
        "SELECT public, body FROM items WHERE activity = ?1 AND seq BETWEEN ?2 AND ?3 \
         AND (public = 1 OR ?4 = 0) ORDER BY seq",
    )?;
    let mut rows = stmt.query(params![
        id.as_str(),
        sql_int(from.0),
        sql_int(to.0),
        public_only
    ])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let public: bool = row.get(0)?;
        let item = decode_item(row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?)?;
        out.push(StoredItem { item, public });
    }
    if public_only && !out.is_empty() {
        let hidden = hidden_after(conn, id, from)?;
        crate::record::tombstone_hidden(&mut out, &hidden);
    }
    Ok(out)
}

/// The seqs hidden by the hide items after `from` (a hide always comes after its target).
fn hidden_after(conn: &Connection, id: &ActivityId, from: Seq) -> Result<std::collections::HashSet<Seq>, RecordError> {
    let mut stmt = conn.prepare_cached("SELECT body FROM items WHERE activity = ?1 AND seq > ?2 AND kind = 'hide'")?;
    let mut rows = stmt.query(params![id.as_str(), sql_int(from.0)])?;
    let mut hidden = std::collections::HashSet::new();
    while let Some(row) = rows.next()? {
        let item = decode_item(row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?)?;
        if let shangliang_signaling::ItemBody::Hide { target } = item.body {
            hidden.insert(target);
        }
    }
    Ok(hidden)
}

fn hash_from_blob(v: Vec<u8>) -> rusqlite::Result<AuditHash> {
    v.try_into().map_err(|v: Vec<u8>| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            format!("audit hash of {} bytes, expected 32", v.len()).into(),
        )
    })
}

const AUDIT_COLUMNS: &str = "idx, ts_ms, actor, action, target, reason, prev_hash, hash, detail";

fn audit_from_row(id: &ActivityId, r: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        activity: id.clone(),
        idx: get_u64(r, 0)?,
        ts_ms: get_u64(r, 1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        target: r.get(4)?,
        reason: r.get(5)?,
        prev_hash: hash_from_blob(r.get(6)?)?,
        hash: hash_from_blob(r.get(7)?)?,
        detail: r.get(8)?,
    })
}

pub(super) fn audit_log(conn: &Connection, id: &ActivityId) -> Result<Vec<AuditRow>, RecordError> {
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE activity = ?1 ORDER BY idx");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([id.as_str()], |r| audit_from_row(id, r))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One audit row of an activity, by idx.
pub(super) fn audit_row(conn: &Connection, id: &ActivityId, idx: u64) -> Result<Option<AuditRow>, RecordError> {
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE activity = ?1 AND idx = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![id.as_str(), sql_int(idx)], |r| audit_from_row(id, r))
        .optional()?)
}

/// The last audit entry's `(idx, hash)` of an activity, if it has any.
pub(super) fn audit_head(
    conn: &Connection,
    id: &ActivityId,
) -> rusqlite::Result<Option<(u64, AuditHash)>> {
    conn.prepare_cached(
        "SELECT idx, hash FROM audit_log WHERE activity = ?1 ORDER BY idx DESC LIMIT 1",
    )?
    .query_row([id.as_str()], |r| {
        Ok((get_u64(r, 0)?, hash_from_blob(r.get(1)?)?))
    })
    .optional()
}

/// The stored moderation checkpoint of an activity, if any.
pub(super) fn checkpoint(conn: &Connection, id: &ActivityId) -> Result<Option<String>, RecordError> {
    Ok(conn
        .prepare_cached("SELECT state FROM summaries WHERE activity = ?1")?
        .query_row([id.as_str()], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// The stored summary JSON and audit head of an activity, if any.
pub(super) fn summary(conn: &Connection, id: &ActivityId) -> Result<Option<(String, String)>, RecordError> {
    Ok(conn
        .prepare_cached("SELECT json, audit_head FROM summaries WHERE activity = ?1")?
        .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}
