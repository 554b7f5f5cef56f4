//! Typed identifiers of the consensus domain (STYLE habit 5): a poll, a statement or a group is
//! never a bare integer across module boundaries.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! numbered_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u32);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

numbered_id!(
    /// A poll of one activity, numbered from 1 in order of creation.
    PollId
);
numbered_id!(
    /// A statement of one activity, numbered from 1 in order of creation. Its column in the
    /// vote matrix is `id - 1`.
    StatementId
);
numbered_id!(
    /// An opinion group. A recompute gives each new group the id of the previous group that
    /// most of its members were in, so the live map does not relabel its groups every few
    /// seconds; a group with no predecessor gets the next unused id.
    GroupId
);

impl StatementId {
    /// The statement's column in the vote matrix.
    pub(crate) fn index(self) -> usize {
        self.0 as usize - 1
    }

    /// The statement of a matrix column.
    pub(crate) fn from_index(i: usize) -> StatementId {
        StatementId(i as u32 + 1)
    }
}
