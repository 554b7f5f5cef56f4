//! STUB (compile-only; replaced by the real fan-out core on merge)
#![allow(missing_docs, unused)]
use bytes::Bytes;
use shangliang_signaling::*;
use std::time::Duration;
#[derive(Clone, Debug)] pub struct FanoutConfig { pub shards: usize, pub flush_interval: Duration, pub max_flush_interval: Duration, pub ring_capacity: usize, pub queue_frames: usize, pub lag_close_after: Duration, pub public_max_per_sec: u32 }
impl Default for FanoutConfig { fn default() -> Self { todo!() } }
#[derive(Clone)] pub struct Fanout;
pub struct TopicInfo { pub epoch: Epoch, pub last_seq: Seq, pub ring_first: Seq, pub subscribers: usize }
pub struct ConnHandle; pub struct ConnReceiver;
pub struct Subscribed { pub epoch: Epoch, pub offset: Seq, pub catch_up: CatchUp }
pub enum CatchUp { Live, Frames(Vec<Bytes>), FromRecord { from: Seq, to: Seq, then: Vec<Bytes> }, Reset { reason: ResetReason, frame: Bytes } }
pub enum Outbound { Frame(Bytes), Close { code: u16, reason: &'static str } }
#[derive(Debug, thiserror::Error)] pub enum FanoutError { #[error("x")] NoSuchTopic, #[error("x")] OutOfOrder { expected: Seq, got: Seq }, #[error("x")] TooManySubscriptions }
impl ConnReceiver { pub async fn recv(&mut self) -> Option<Outbound> { todo!() } pub fn try_recv(&mut self) -> Option<Outbound> { todo!() } }
impl Fanout {
    pub fn new(cfg: FanoutConfig) -> Fanout { todo!() }
    pub fn open_topic(&self, topic: ActivityId, epoch: Epoch, last_seq: Seq) { todo!() }
    pub fn topic_info(&self, topic: &ActivityId) -> Option<TopicInfo> { todo!() }
    pub fn publish(&self, topic: &ActivityId, item: Item, public: bool) -> Result<(), FanoutError> { todo!() }
    pub fn connect(&self, form: Form) -> (ConnHandle, ConnReceiver) { todo!() }
    pub fn subscribe(&self, conn: &ConnHandle, topic: &ActivityId, full_view: bool, resume: Option<Position>) -> Result<Subscribed, FanoutError> { todo!() }
    pub fn unsubscribe(&self, conn: &ConnHandle, topic: &ActivityId) { todo!() }
}
