//! Moderation on this node: one driver per activity owns its `Consultation` (the floor,
//! questions, comment policy, audit log), and sessions reach it through the [`Registry`] — on
//! one node directly, in a cluster through a router to the activity's home node.
//!
//! ```text
//! registry.rs  which driver (or router) a session talks to; starts drivers on first use
//! driver.rs    the driver task: owns the state machine, persists, delivers events
//! relay.rs     cluster mode: routers to the home node, the relay server, events to other nodes
//! msg.rs       what a driver takes (DriverMsg) and the LocalDrivers seam the relay uses
//! deliver.rs   where an event goes on this node (fan-out views, one participant's inboxes)
//! floor.rs     the FloorHook into the media plane
//! export.rs    `shangliang export` and `verify-record`
//! ```
//! Imports point one way: registry → (driver, relay) → (msg, deliver, floor).

mod deliver;
mod driver;
pub mod export;
mod floor;
mod msg;
mod registry;
mod relay;

pub use deliver::Outlets;
pub use floor::{FloorHook, NoFloorHook};
pub use msg::{DriverMsg, LocalDrivers, PostDecision, WireError};
pub use registry::Registry;
pub use relay::{RELAY_TIMEOUT, start as start_relay};
