//! `shangliang export` and `verify-record`: an activity's stored session record (the summary
//! the driver writes, the audit chain) read back from either store and rendered or checked.

use std::sync::Arc;

use shangliang_signaling::ActivityId;
use shangliang_signaling::consult::AuditEntry;

use crate::record::merkle::{LogKey, LogPublicKey, SignedTreeHead};
use crate::record::postgres::PgRecord;
use crate::record::proof::{LogDump, LogVerified};
use crate::record::sqlite::{RecordOptions, SqliteRecord};
use crate::record::Record;

/// Formats of `shangliang export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The whole session summary as JSON.
    Json,
    /// Tables as CSV sections.
    Csv,
    /// Markdown that reads as minutes.
    Markdown,
}

/// Where `export` and `verify-record` read a session record.
#[derive(Debug, Clone)]
pub enum RecordSource {
    /// A single hub's data directory (its SQLite file).
    Dir(std::path::PathBuf),
    /// A cluster's PostgreSQL database (connection string), and where to look for the
    /// activity's recording: a cluster keeps recordings in the data directory of each
    /// activity's home node, not in the database (`export` on that node names it).
    Database(String, Option<std::path::PathBuf>),
}

/// A stored session record: the summary (JSON, audit head), if any, the audit log, the latest
/// signed tree head and the Merkle log's rows.
struct StoredRecord {
    /// The activity as the record lists it (title, creation time).
    activity: crate::record::Activity,
    summary: Option<(String, String)>,
    audit: Vec<AuditEntry>,
    head: Option<SignedTreeHead>,
    log: Result<LogDump, crate::record::RecordError>,
}

/// The stored record of `activity`.
fn read_record(source: &RecordSource, activity: &ActivityId) -> anyhow::Result<StoredRecord> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let nothing = || Box::new(|_: &ActivityId, _: &shangliang_signaling::Item, _: bool| {});
        let record: Arc<dyn Record> = match source {
            RecordSource::Dir(data_dir) => {
                let path = data_dir.join("shangliang.sqlite3");
                anyhow::ensure!(path.exists(), "no record at {}", path.display());
                // Reading appends nothing, so nothing is signed: a throwaway key, never the
                // hub's key file (which this must not create).
                let opts = RecordOptions { key: Some(Arc::new(LogKey::generate())), ..RecordOptions::default() };
                Arc::new(SqliteRecord::open(&path, opts, nothing())?)
            }
            RecordSource::Database(url, _) => Arc::new(PgRecord::connect(url, nothing()).await?),
        };
        let Some(listed) = record.activity(activity)? else {
            anyhow::bail!("no activity {activity} in the record");
        };
        Ok(StoredRecord {
            activity: listed,
            summary: record.summary(activity).await?,
            audit: record.audit_log(activity).await?,
            head: record.tree_head(activity).await?,
            log: record.log_dump(activity).await,
        })
    })
}

/// A signed tree head as JSON with the public key that verifies it (what the tree-head endpoint
/// answers and every export carries).
pub fn head_json(head: &SignedTreeHead, key: Option<&LogPublicKey>) -> serde_json::Value {
    let mut v = serde_json::to_value(head).expect("a head serialises");
    if let (Some(key), Some(o)) = (key, v.as_object_mut()) {
        o.insert("public_key".into(), serde_json::Value::String(key.to_string()));
    }
    v
}

/// Reads a head published earlier from the text of a file: a signed head as JSON (as the
/// tree-head endpoint gives it), a JSON export (its `tree_head`), or Markdown minutes (the one
/// line of JSON in their "signed record head" section).
pub fn parse_published_head(text: &str) -> anyhow::Result<SignedTreeHead> {
    let from_value = |v: serde_json::Value| -> Option<SignedTreeHead> {
        let v = v.get("tree_head").cloned().unwrap_or(v);
        serde_json::from_value(v).ok()
    };
    if let Some(h) = serde_json::from_str(text).ok().and_then(from_value) {
        return Ok(h);
    }
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{') && l.contains("\"sig\""))
        .find_map(|l| serde_json::from_str(l).ok().and_then(from_value))
        .ok_or_else(|| anyhow::anyhow!("no signed tree head in it (JSON with v, log, size, root, ts_ms, sig)"))
}

/// The stored session record of `activity` in `format` (what `shangliang export` prints).
pub fn export_record(
    source: &RecordSource,
    activity: &ActivityId,
    format: ExportFormat,
) -> anyhow::Result<String> {
    export_with_key(source, activity, format, None)
}

/// [`export_record`], with the public key of the record's signing key to print beside its
/// signed tree head (the hub's `record-signing.key.pub`).
pub fn export_with_key(
    source: &RecordSource,
    activity: &ActivityId,
    format: ExportFormat,
    key: Option<&LogPublicKey>,
) -> anyhow::Result<String> {
    let stored = read_record(source, activity)?;
    // An activity nobody has joined yet has no stored summary: its minutes are empty, not an
    // error (an unknown activity is one, in `read_record`).
    let json = match stored.summary {
        Some((json, _head)) => json,
        None => {
            let config = crate::consult::ConsultationConfig { title: stored.activity.title.clone(), ..Default::default() };
            let fresh = crate::consult::Consultation::new(activity.clone(), config, stored.activity.created_ms);
            fresh.summary(stored.activity.created_ms).to_json()
        }
    };
    let summary: crate::consult::SessionSummary = serde_json::from_str(&json)?;
    let head = stored.head.as_ref().map(|h| head_json(h, key));
    // The consensus part (polls, statements, groups), stored beside the session's fields.
    let consensus = match serde_json::from_str::<serde_json::Value>(&json)?["consensus"].take() {
        serde_json::Value::Null => None,
        v => Some(v),
    };
    // A recorded livestream: the record names its recording (programme/replay.rs).
    let recording = recording_info(source, activity, &summary)?;
    // The organisers' part (issue 14): committee, topic, invited people and their attendance.
    let organisers = organisers_minutes(source, activity, &summary)?;
    Ok(match format {
        ExportFormat::Json => {
            let mut v: serde_json::Value = serde_json::from_str(&summary.to_json())?;
            if let (Some(head), Some(o)) = (head, v.as_object_mut()) {
                o.insert("tree_head".into(), head);
            }
            if let (Some(r), Some(o)) = (&recording, v.as_object_mut()) {
                o.insert("recording".into(), serde_json::to_value(r)?);
            }
            if let (Some(c), Some(o)) = (consensus, v.as_object_mut()) {
                o.insert("consensus".into(), c);
            }
            if let (Some(m), Some(o)) = (&organisers, v.as_object_mut()) {
                o.insert("organisers".into(), serde_json::to_value(m)?);
            }
            serde_json::to_string_pretty(&v)?
        }
        ExportFormat::Csv => {
            let mut out = summary.to_csv();
            if let Some(r) = &recording {
                out.push_str(&summary.recording_csv(r));
            }
            if let Some(h) = &stored.head {
                out.push_str(&format!(
                    "\n# tree_head\nlog,size,root,ts_ms,sig,public_key\n{},{},{},{},{},{}\n",
                    h.log,
                    h.size,
                    hex::encode(h.root),
                    h.ts_ms,
                    hex::encode(h.sig),
                    key.map(|k| k.to_string()).unwrap_or_default()
                ));
            }
            out
        }
        ExportFormat::Markdown => {
            let mut out = summary.to_markdown();
            if let Some(m) = &organisers {
                out = m.insert_into(&out);
            }
            if let Some(c) = consensus {
                let c: crate::consensus::ConsensusSummary = serde_json::from_value(c)?;
                out.push('\n');
                out.push_str(&c.to_markdown());
            }
            if let Some(r) = &recording {
                out.push_str(&summary.recording_markdown(r));
            }
            if let Some(head) = head {
                out.push_str(&format!(
                    "\n## 记录签名 / Signed record head\n\nThe hub's signed Merkle tree head of this record when it was exported. Keep it: `shangliang verify-record --head FILE` later proves the record still extends it.\n\n```json\n{head}\n```\n"
                ));
            }
            out
        }
    })
}

/// The recording of `activity` in the data directory (`recordings/{activity}/index.jsonl`), if
/// any. A cluster's recordings lie in the data directory of each activity's home node, not in
/// the database: exporting from `--database` names the recording when the data directory given
/// beside it (the home node's) holds it.
fn recording_info(source: &RecordSource, activity: &ActivityId, summary: &crate::consult::SessionSummary) -> anyhow::Result<Option<crate::programme::replay::RecordingInfo>> {
    let (RecordSource::Dir(data_dir) | RecordSource::Database(_, Some(data_dir))) = source else { return Ok(None) };
    let rec = crate::programme::store::Recording::read(&crate::programme::store::recording_dir(data_dir, activity.as_str()))?;
    let turns = crate::server::hls::replay::turns(summary);
    Ok(crate::programme::replay::RecordingInfo::new(activity.as_str(), &rec.segments, rec.ended, &turns))
}

/// The organisers' part of the minutes from the organisers' tables beside the record (SQLite:
/// the same file; a cluster's database has none yet), if they manage `activity`.
fn organisers_minutes(source: &RecordSource, activity: &ActivityId, summary: &crate::consult::SessionSummary) -> anyhow::Result<Option<crate::organise::minutes::OrganisersMinutes>> {
    let RecordSource::Dir(data_dir) = source else { return Ok(None) };
    let store = crate::record::sqlite::admin::SqliteAdminStore::open(&data_dir.join("shangliang.sqlite3"))?;
    Ok(crate::organise::minutes_of(&store, activity, Some(summary))?)
}

/// What `verify-record` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Audit entries checked.
    pub entries: usize,
    /// The chain's last hash.
    pub head: String,
    /// Entries logged after the stored summary's head (the summary is written a moment after
    /// the entries; a crash in between leaves a few).
    pub after_stored_head: usize,
    /// What the Merkle log check established (`None`: not checked, `--chain-only`).
    pub log: Option<LogVerified>,
}

/// Checks the audit chain of `activity` as stored in SQLite: every link, and that the head
/// stored with the summary is on the chain (entries removed from the end are caught there).
/// `Err` names the first broken entry (its `idx` in the `audit_log` table).
///
/// Then the Merkle log: the tree recomputed from every item and audit row must give the root of
/// every signed head in `tree_heads` (verified with `key`), and extend `published`, a head
/// published earlier, if given ([`crate::record::proof::verify_log`]).
pub fn verify_record(
    source: &RecordSource,
    activity: &ActivityId,
    key: Option<&LogPublicKey>,
    published: Option<&SignedTreeHead>,
) -> anyhow::Result<Verified> {
    let StoredRecord { summary, audit: entries, log, .. } = read_record(source, activity)?;
    if let Err(b) = crate::consult::verify(&entries) {
        let e = &entries[b.index];
        anyhow::bail!(
            "audit log of {activity} is broken at entry idx {} ({} by {} at {} ms): it was altered, removed or reordered",
            b.index + 1,
            e.action,
            e.actor,
            e.at_ms
        );
    }
    let head = entries
        .last()
        .map_or_else(|| hex::encode([0u8; 32]), |e| e.hash.clone());
    let mut after_stored_head = 0;
    if let Some((_, stored)) = summary {
        let genesis = hex::encode([0u8; 32]);
        let pos = if stored == genesis {
            Some(0)
        } else {
            entries.iter().position(|e| e.hash == stored).map(|i| i + 1)
        };
        match pos {
            Some(p) => after_stored_head = entries.len() - p,
            None => anyhow::bail!(
                "audit log of {activity} does not reach the stored head {stored}: entries were removed from the end (idx {} is the last left)",
                entries.len()
            ),
        }
    }
    // Without a key (`verify-record --chain-only`, e.g. PostgreSQL, which keeps no log yet) only
    // the chain above is checked, and the caller says so.
    let log = match key {
        Some(key) => Some(crate::record::proof::verify_log(activity, &log?, key, published)?),
        None => None,
    };
    Ok(Verified {
        entries: entries.len(),
        head,
        after_stored_head,
        log,
    })
}
