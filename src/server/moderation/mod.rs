//! Moderation on this node: one driver per activity owns its `Consultation` (the floor,
//! questions, comment policy, audit log), and sessions reach it through the [`Registry`] — on
//! one node directly, in a cluster through a router to the activity's home node.
//!
//! ```text
//! registry.rs  which driver (or router) a session talks to; starts drivers on first use
//! driver.rs    the driver task: owns the state machine, decides posts, appends, delivers events
//! persist.rs   its writer of audit entries and summaries (in order, retried)
//! relay.rs     cluster mode: routers to the home node, the relay server, events to other nodes
//! msg.rs       what a driver takes (DriverMsg, PostReply) and the LocalDrivers seam
//! deliver.rs   where an event goes on this node (fan-out views, one participant's inboxes)
//! floor.rs     the FloorHook into the media plane
//! export.rs    `shangliang export` and `verify-record`
//! consensus.rs the driver's consensus part: polls, statements, opinion groups (`crate::consensus`)
//! ```
//! Imports point one way: registry → driver → (persist, relay) and relay → (msg, deliver);
//! the relay reaches the drivers through the `LocalDrivers` trait, not the registry.

pub mod consensus;
mod consensus_wire;
mod deliver;
mod driver;
pub mod export;
mod floor;
mod msg;
mod persist;
mod registry;
mod relay;
#[cfg(test)]
mod tests;

pub use deliver::Outlets;
pub use floor::{FloorHook, NoFloorHook};
pub use msg::{Acked, DriverMsg, LocalDrivers, OrganiseReply, OrganiserNote, PostAnswer, PostReply, SessionSource, WireError};
pub use registry::Registry;
pub use relay::{RELAY_TIMEOUT, start as start_relay};
