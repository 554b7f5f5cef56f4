//! The `shangliang` command line.
fn main() {}
