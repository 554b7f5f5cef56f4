//! The shangliang SFU (placeholder; see issue 3).
