//! [`AdminStore`] in the record's SQLite file: tables of their own (`admin_*`), versioned by
//! their own table `admin_schema` (the record's `PRAGMA user_version` belongs to the record's
//! migrations), one connection of their own behind a mutex.
//!
//! Why not through the record's writer thread: the writer is the sequencer of items (group
//! commit, seq assignment, the Merkle log); organiser actions are a few writes an hour that
//! need no sequencing with items, and SQLite serialises the two writers itself (WAL, a busy
//! timeout of 5 s, `BEGIN IMMEDIATE`). The CLI opens the same tables while a hub runs, which
//! is what lets `shangliang activity create` reach a running hub.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shangliang_signaling::ActivityId;

use crate::admin::accounts::StaffAccount;
use crate::admin::invitations::Invitation;
use crate::admin::{Activity, AuditNote, Committee, InvitationId};
use crate::record::RecordError;
use crate::record::admin::{AdminStore, StoredNote};

/// Migration `i` brings `admin_schema.version` from `i` to `i + 1`. Append-only.
const MIGRATIONS: &[&str] = &[r#"
    CREATE TABLE admin_committees (
        id          TEXT PRIMARY KEY NOT NULL,
        level       TEXT NOT NULL,              -- 'province' | 'city' | 'county'
        parent      TEXT REFERENCES admin_committees(id),
        doc         TEXT NOT NULL               -- the domain's Committee as JSON
    ) STRICT;
    CREATE TABLE admin_activities (
        id          TEXT PRIMARY KEY NOT NULL,  -- also the record's activities.id
        committee   TEXT NOT NULL REFERENCES admin_committees(id),
        state       TEXT NOT NULL,              -- scheduled | open | paused | closed | archived
        start_ms    INTEGER NOT NULL,
        doc         TEXT NOT NULL               -- the domain's Activity (settings included)
    ) STRICT;
    CREATE INDEX admin_activities_by_committee ON admin_activities(committee);
    CREATE TABLE admin_accounts (
        id          TEXT PRIMARY KEY NOT NULL,
        username    TEXT NOT NULL UNIQUE,
        committee   TEXT NOT NULL REFERENCES admin_committees(id),
        doc         TEXT NOT NULL               -- StaffAccount, the argon2id PHC string in it
    ) STRICT;
    CREATE TABLE admin_invitations (
        id          TEXT PRIMARY KEY NOT NULL,
        activity    TEXT NOT NULL,
        person      TEXT NOT NULL,
        doc         TEXT NOT NULL
    ) STRICT;
    CREATE INDEX admin_invitations_by_activity ON admin_invitations(activity);
    CREATE TABLE admin_notes (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        scope       TEXT NOT NULL,              -- activity id or 'committee:<id>'
        at_ms       INTEGER NOT NULL,
        actor       TEXT NOT NULL,
        action      TEXT NOT NULL,
        target      TEXT NOT NULL,
        detail      TEXT NOT NULL,
        reason      TEXT
    ) STRICT;
    CREATE INDEX admin_notes_by_scope ON admin_notes(scope, seq);
"#];

/// The organisers' tables of a SQLite record file.
pub struct SqliteAdminStore {
    conn: Mutex<Connection>,
}

fn corrupt(e: impl std::fmt::Display) -> RecordError {
    RecordError::Corrupt(e.to_string())
}

fn to_json(v: &impl Serialize) -> Result<String, RecordError> {
    serde_json::to_string(v).map_err(corrupt)
}

fn from_json<T: DeserializeOwned>(s: String) -> Result<T, RecordError> {
    serde_json::from_str(&s).map_err(corrupt)
}

fn insert_notes(tx: &rusqlite::Transaction<'_>, scope: &str, notes: &[AuditNote]) -> Result<(), RecordError> {
    let mut st = tx.prepare_cached(
        "INSERT INTO admin_notes (scope, at_ms, actor, action, target, detail, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for n in notes {
        st.execute(params![scope, n.at_ms as i64, n.actor, n.action, n.target, n.detail, n.reason])?;
    }
    Ok(())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl SqliteAdminStore {
    /// Opens (and migrates) the organisers' tables in the SQLite file at `path`, creating it
    /// if needed.
    pub fn open(path: &Path) -> Result<SqliteAdminStore, RecordError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Ok(SqliteAdminStore { conn: Mutex::new(conn) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, RecordError>) -> Result<T, RecordError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }

    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, RecordError>) -> Result<T, RecordError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    fn docs<T: DeserializeOwned>(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<T>, RecordError> {
        self.with(|c| {
            let mut st = c.prepare_cached(sql)?;
            let rows = st.query_map(p, |r| r.get::<_, String>(0))?;
            rows.map(|r| from_json(r?)).collect()
        })
    }

    fn doc<T: DeserializeOwned>(&self, sql: &str, p: impl rusqlite::Params) -> Result<Option<T>, RecordError> {
        let s: Option<String> = self.with(|c| Ok(c.prepare_cached(sql)?.query_row(p, |r| r.get(0)).optional()?))?;
        s.map(from_json).transpose()
    }
}

fn migrate(conn: &mut Connection) -> Result<(), RecordError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS admin_schema (version INTEGER NOT NULL) STRICT;")?;
    let v: Option<i64> = tx.query_row("SELECT version FROM admin_schema", [], |r| r.get(0)).optional()?;
    let v = v.unwrap_or_else(|| {
        let _ = tx.execute("INSERT INTO admin_schema (version) VALUES (0)", []);
        0
    }) as usize;
    if v > MIGRATIONS.len() {
        return Err(RecordError::Corrupt(format!(
            "the organisers' tables are at version {v}, newer than this program ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(v) {
        tx.execute_batch(m)?;
        tx.execute("UPDATE admin_schema SET version = ?1", [i as i64 + 1])?;
    }
    tx.commit()?;
    Ok(())
}

impl AdminStore for SqliteAdminStore {
    fn committees(&self) -> Result<Vec<Committee>, RecordError> {
        self.docs("SELECT doc FROM admin_committees ORDER BY rowid", [])
    }

    fn insert_committee(&self, c: &Committee, note: &AuditNote) -> Result<bool, RecordError> {
        self.write(|tx| {
            let n = tx.execute(
                "INSERT OR IGNORE INTO admin_committees (id, level, parent, doc) VALUES (?1, ?2, ?3, ?4)",
                params![c.id.as_str(), c.level.as_str(), c.parent.as_ref().map(|p| p.as_str()), to_json(c)?],
            )?;
            if n == 1 {
                insert_notes(tx, &super::super::admin::committee_scope(&c.id), std::slice::from_ref(note))?;
            }
            Ok(n == 1)
        })
    }

    fn activities(&self) -> Result<Vec<Activity>, RecordError> {
        self.docs("SELECT doc FROM admin_activities ORDER BY rowid", [])
    }

    fn activity(&self, id: &ActivityId) -> Result<Option<Activity>, RecordError> {
        self.doc("SELECT doc FROM admin_activities WHERE id = ?1", [id.as_str()])
    }

    fn insert_activity(&self, a: &Activity, notes: &[AuditNote]) -> Result<bool, RecordError> {
        self.write(|tx| {
            let n = tx.execute(
                "INSERT OR IGNORE INTO admin_activities (id, committee, state, start_ms, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![a.id().as_str(), a.committee().as_str(), a.state().as_str(), a.scheduled_start_ms() as i64, to_json(a)?],
            )?;
            if n == 1 {
                insert_notes(tx, a.id().as_str(), notes)?;
            }
            Ok(n == 1)
        })
    }

    fn update_activity(&self, expected: &Activity, next: &Activity, notes: &[AuditNote]) -> Result<bool, RecordError> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE admin_activities SET state = ?2, start_ms = ?3, doc = ?4 WHERE id = ?1 AND doc = ?5",
                params![next.id().as_str(), next.state().as_str(), next.scheduled_start_ms() as i64, to_json(next)?, to_json(expected)?],
            )?;
            if n == 1 {
                insert_notes(tx, next.id().as_str(), notes)?;
            }
            Ok(n == 1)
        })
    }

    fn delete_activity(&self, id: &ActivityId, notes: &[AuditNote]) -> Result<bool, RecordError> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM admin_activities WHERE id = ?1", [id.as_str()])?;
            tx.execute("DELETE FROM admin_invitations WHERE activity = ?1", [id.as_str()])?;
            if n == 1 {
                insert_notes(tx, id.as_str(), notes)?;
            }
            Ok(n == 1)
        })
    }

    fn accounts(&self) -> Result<Vec<StaffAccount>, RecordError> {
        self.docs("SELECT doc FROM admin_accounts ORDER BY rowid", [])
    }

    fn account_by_username(&self, username: &str) -> Result<Option<StaffAccount>, RecordError> {
        self.doc("SELECT doc FROM admin_accounts WHERE username = ?1", [username])
    }

    fn insert_account(&self, a: &StaffAccount, note: &AuditNote) -> Result<bool, RecordError> {
        self.write(|tx| {
            let r = tx.execute(
                "INSERT INTO admin_accounts (id, username, committee, doc) VALUES (?1, ?2, ?3, ?4)",
                params![a.id.as_str(), a.username.as_str(), a.committee.as_str(), to_json(a)?],
            );
            match r {
                Ok(_) => {
                    insert_notes(tx, &super::super::admin::committee_scope(&a.committee), std::slice::from_ref(note))?;
                    Ok(true)
                }
                Err(e) if is_unique_violation(&e) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn update_account(&self, a: &StaffAccount, notes: &[AuditNote]) -> Result<(), RecordError> {
        self.write(|tx| {
            tx.execute("UPDATE admin_accounts SET doc = ?2 WHERE id = ?1", params![a.id.as_str(), to_json(a)?])?;
            insert_notes(tx, &super::super::admin::committee_scope(&a.committee), notes)
        })
    }

    fn invitations(&self, activity: &ActivityId) -> Result<Vec<Invitation>, RecordError> {
        self.docs("SELECT doc FROM admin_invitations WHERE activity = ?1 ORDER BY id", [activity.as_str()])
    }

    fn invitation(&self, id: &InvitationId) -> Result<Option<Invitation>, RecordError> {
        self.doc("SELECT doc FROM admin_invitations WHERE id = ?1", [id.as_str()])
    }

    fn put_invitations(&self, activity: &ActivityId, invitations: &[&Invitation], notes: &[AuditNote]) -> Result<(), RecordError> {
        self.write(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO admin_invitations (id, activity, person, doc) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
            )?;
            for i in invitations {
                st.execute(params![i.id.as_str(), i.activity.as_str(), i.invitee.person.as_str(), to_json(i)?])?;
            }
            insert_notes(tx, activity.as_str(), notes)
        })
    }

    fn notes(&self, scope: &str) -> Result<Vec<StoredNote>, RecordError> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, scope, at_ms, actor, action, target, detail, reason FROM admin_notes WHERE scope = ?1 ORDER BY seq",
            )?;
            let rows = st.query_map([scope], |r| {
                Ok(StoredNote {
                    seq: r.get::<_, i64>(0)? as u64,
                    scope: r.get(1)?,
                    at_ms: r.get::<_, i64>(2)? as u64,
                    actor: r.get(3)?,
                    action: r.get(4)?,
                    target: r.get(5)?,
                    detail: r.get(6)?,
                    reason: r.get(7)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}
