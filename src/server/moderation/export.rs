//! `shangliang export` and `verify-record`: an activity's stored session record (the summary
//! the driver writes, the audit chain) read back from either store and rendered or checked.

use std::sync::Arc;

use shangliang_signaling::ActivityId;
use shangliang_signaling::consult::AuditEntry;

use crate::record::postgres::PgRecord;
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
    /// A cluster's PostgreSQL database (connection string).
    Database(String),
}

/// A stored session record: the summary (JSON, audit head), if any, and the audit log.
type StoredRecord = (Option<(String, String)>, Vec<AuditEntry>);

/// The stored summary (JSON, audit head) and audit log of `activity`.
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
                Arc::new(SqliteRecord::open(&path, RecordOptions::default(), nothing())?)
            }
            RecordSource::Database(url) => Arc::new(PgRecord::connect(url, nothing()).await?),
        };
        Ok((record.summary(activity).await?, record.audit_log(activity).await?))
    })
}

/// The stored session record of `activity` in `format` (what `shangliang export` prints).
pub fn export_record(
    source: &RecordSource,
    activity: &ActivityId,
    format: ExportFormat,
) -> anyhow::Result<String> {
    let (summary, _) = read_record(source, activity)?;
    let (json, _head) =
        summary.ok_or_else(|| anyhow::anyhow!("no session record for activity {activity}"))?;
    let summary: crate::consult::SessionSummary = serde_json::from_str(&json)?;
    Ok(match format {
        ExportFormat::Json => summary.to_json(),
        ExportFormat::Csv => summary.to_csv(),
        ExportFormat::Markdown => summary.to_markdown(),
    })
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
}

/// Checks the audit chain of `activity` as stored in SQLite: every link, and that the head
/// stored with the summary is on the chain (entries removed from the end are caught there).
/// `Err` names the first broken entry (its `idx` in the `audit_log` table).
pub fn verify_record(source: &RecordSource, activity: &ActivityId) -> anyhow::Result<Verified> {
    let (summary, entries) = read_record(source, activity)?;
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
    Ok(Verified {
        entries: entries.len(),
        head,
        after_stored_head,
    })
}
