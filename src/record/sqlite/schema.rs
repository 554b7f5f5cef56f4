//! The SQLite schema, its versioned migrations, and how connections are opened.
//!
//! The schema version lives in `PRAGMA user_version`: migration `i` (0-based) takes the file
//! from version `i` to `i + 1` inside one transaction, so a crash mid-migration leaves the
//! previous version intact. Migrations are append-only: never edit one that has shipped.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::RecordError;

/// Migration `i` brings `user_version` from `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: activities, their items, the moderators' audit log.
    r#"
    CREATE TABLE activities (
        id          TEXT PRIMARY KEY NOT NULL,
        title       TEXT NOT NULL,
        kind        TEXT NOT NULL,              -- 'room' | 'livestream'
        state       TEXT NOT NULL,              -- 'scheduled' | 'live' | 'ended'
        epoch       INTEGER NOT NULL,           -- 1 ..= 2^31 - 1
        created_ms  INTEGER NOT NULL
    ) STRICT;

    -- One row per item of an activity's topic. `body` is the item (seq, ts and body) encoded
    -- once as MessagePack by `signaling::encode_item`; the other columns are copies of a few
    -- of its fields for queries and exports without decoding.
    CREATE TABLE items (
        activity    TEXT NOT NULL REFERENCES activities(id),
        seq         INTEGER NOT NULL,           -- 1, 2, 3 ... without gaps per activity
        ts_ms       INTEGER NOT NULL,
        kind        TEXT NOT NULL,              -- the item's `k`: 'comment' | 'hide' ...
        author      TEXT,                       -- author id for comments, else NULL
        public      INTEGER NOT NULL,           -- 1 if the public view may show it
        body        BLOB NOT NULL,
        PRIMARY KEY (activity, seq)
    ) STRICT, WITHOUT ROWID;

    -- Append-only, hash-chained log of moderator actions; `idx` counts from 1 per activity and
    -- the first entry's prev_hash is 32 zero bytes.
    CREATE TABLE audit_log (
        activity    TEXT NOT NULL REFERENCES activities(id),
        idx         INTEGER NOT NULL,
        ts_ms       INTEGER NOT NULL,
        actor       TEXT NOT NULL,
        action      TEXT NOT NULL,
        target      TEXT,
        reason      TEXT,
        prev_hash   BLOB NOT NULL,
        hash        BLOB NOT NULL,
        PRIMARY KEY (activity, idx)
    ) STRICT, WITHOUT ROWID;
    "#,
    // 2: the parameters of an audit entry (part of its hash), and the latest session summary
    // of each activity (what `export` writes) with the audit chain head it was made at.
    r#"
    ALTER TABLE audit_log ADD COLUMN detail TEXT;
    CREATE TABLE summaries (
        activity    TEXT PRIMARY KEY REFERENCES activities(id),
        json        TEXT NOT NULL,
        audit_head  TEXT NOT NULL,
        updated_ms  INTEGER NOT NULL
    ) STRICT;
    "#,
    // 3: the moderation state machine's checkpoint (JSON) with the summary, so a restarted
    // hub, or the node an activity's home moves to, continues where it was.
    r#"
    ALTER TABLE summaries ADD COLUMN state TEXT;
    "#,
    // 4: the Merkle log (`record::proof`): which item or audit entry each leaf is, in the order
    // they were committed, with its leaf hash; and the hub's signed tree heads with the
    // frontier's peaks at that size. Rows that predate it are logged by `backfill_log` in the
    // same transaction (items and audit entries merged by time).
    r#"
    CREATE TABLE log_leaves (
        activity    TEXT NOT NULL REFERENCES activities(id),
        leaf        INTEGER NOT NULL,           -- 0, 1, 2 ... without gaps per activity
        item_seq    INTEGER,                    -- the item's seq, or NULL
        audit_idx   INTEGER,                    -- the audit entry's idx, or NULL
        hash        BLOB NOT NULL,              -- SHA-256(0x00 || leaf bytes)
        PRIMARY KEY (activity, leaf),
        CHECK ((item_seq IS NULL) <> (audit_idx IS NULL))
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE tree_heads (
        activity    TEXT NOT NULL REFERENCES activities(id),
        size        INTEGER NOT NULL,
        root        BLOB NOT NULL,
        ts_ms       INTEGER NOT NULL,
        sig         BLOB NOT NULL,              -- Ed25519 over merkle::SignedTreeHead::message
        peaks       BLOB NOT NULL,              -- the frontier's peaks, 32 bytes each
        PRIMARY KEY (activity, size)
    ) STRICT, WITHOUT ROWID;
    "#,
];

/// The migration after which rows that predate the Merkle log are logged.
const LOG_MIGRATION: usize = 3;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Opens (creating if needed) the write connection: WAL, `synchronous=FULL`, schema migrated.
pub(super) fn open_writer(path: &Path) -> Result<Connection, RecordError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(RecordError::Unavailable(format!(
            "{} cannot use WAL (journal_mode is {mode})",
            path.display()
        )));
    }
    // FULL in WAL mode: every COMMIT fsyncs the WAL, so a commit survives power loss, not
    // only a process crash. NORMAL would only sync at checkpoints.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens a read connection to a file whose schema [`open_writer`] has made current.
pub(super) fn open_reader(path: &Path) -> Result<Connection, RecordError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // A read connection never writes; say so, so that a bug cannot race the writer.
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), RecordError> {
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(RecordError::Unavailable(format!(
            "the record's schema version {version} is newer than this build's {SCHEMA_VERSION}"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if i == LOG_MIGRATION {
            super::log::backfill(&tx)?;
        }
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_bring_a_new_file_to_the_current_version_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite");
        for _ in 0..2 {
            let conn = open_writer(&path).unwrap();
            let v: u32 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(v, SCHEMA_VERSION);
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            let sync: i64 = conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!(sync, 2, "synchronous=FULL");
        }
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite");
        drop(open_writer(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        assert!(matches!(
            open_writer(&path),
            Err(RecordError::Unavailable(_))
        ));
    }
}
