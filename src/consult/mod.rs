//! The consultation domain as sans-I/O state machines: no tokio, no I/O; time comes in as an
//! argument. The server feeds inputs (`handle_*`) and sends what comes out (`poll_*`).

pub mod audit;
pub mod comments;
pub mod floor;
pub mod grants;
pub mod ids;
pub mod minutes;
pub mod questions;
pub mod session;
pub mod text;
