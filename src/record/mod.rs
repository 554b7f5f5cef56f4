//! STUB (compile-only; replaced by the real record on merge)
#![allow(missing_docs, unused)]
use shangliang_signaling::*;
use std::path::Path;
#[derive(Clone, Debug, serde::Serialize)] pub struct Activity { pub id: ActivityId, pub title: String, pub kind: ActivityKind, pub state: ActivityState, pub epoch: Epoch, pub created_ms: u64 }
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)] #[serde(rename_all="snake_case")] pub enum ActivityKind { Room, Livestream }
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)] #[serde(rename_all="snake_case")] pub enum ActivityState { Scheduled, Live, Ended }
pub struct RecordOptions { pub max_batch: usize, pub read_connections: usize }
impl Default for RecordOptions { fn default() -> Self { todo!() } }
pub type CommitHook = Box<dyn Fn(&ActivityId, &Item, bool) + Send + 'static>;
#[derive(Debug, thiserror::Error)] pub enum RecordError { #[error("x")] AlreadyExists, #[error("x")] Unavailable(String), #[error("x")] Overloaded }
#[derive(Clone)] pub struct Record;
impl Record {
    pub fn open_sqlite(path: &Path, opts: RecordOptions, on_commit: CommitHook) -> Result<Record, RecordError> { todo!() }
    pub fn create_activity(&self, id: ActivityId, title: &str, kind: ActivityKind, state: ActivityState) -> Result<Activity, RecordError> { todo!() }
    pub fn activities(&self) -> Result<Vec<Activity>, RecordError> { todo!() }
    pub fn activity(&self, id: &ActivityId) -> Result<Option<Activity>, RecordError> { todo!() }
    pub fn head(&self, id: &ActivityId) -> Result<Seq, RecordError> { todo!() }
    pub async fn append(&self, activity: &ActivityId, body: ItemBody, public: bool) -> Result<Item, RecordError> { todo!() }
    pub async fn items(&self, activity: &ActivityId, from: Seq, to: Seq, public_only: bool) -> Result<Vec<Item>, RecordError> { todo!() }
    pub async fn latest(&self, activity: &ActivityId, n: usize, public_only: bool) -> Result<Vec<Item>, RecordError> { todo!() }
}
