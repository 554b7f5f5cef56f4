//! Cross-node delivery in cluster mode (`serve --nats ... --database postgres://...`); a single
//! node needs none of it.
//!
//! - [`cluster`]: each node publishes the items its record committed on NATS; every node puts
//!   what it receives back in seq order ([`sequencer`]) and feeds its fan-out; gaps (a lost NATS
//!   message, a NATS outage, a node killed between commit and publish) are read back from the
//!   record. The record (PostgreSQL, see `crate::record::postgres`) is where items are
//!   sequenced and stored; this module only moves notifications.
//! - [`members`]: which nodes are alive (NATS heartbeats), and so which node is an activity's
//!   home ([`home`]).

pub mod cluster;
pub mod home;
pub mod members;
pub mod sequencer;

pub use cluster::{Cluster, ClusterConfig, ClusterHealth};
pub use home::home_node;
