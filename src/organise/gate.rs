//! The lifecycle at the hub's door: a moderation driver asks [`SessionGate::refusal`] before
//! it takes a comment or a command, so nothing is posted, asked or moderated in an activity
//! that is not live (a scheduled one shows its waiting page; a closed one is read-only).
//! Watching, subscribing and reading the state are not gated.
//!
//! While live, the record's state is read at most once per [`RECHECK`] per driver (the comment
//! path must not query SQLite per comment), so a comment may still be taken up to that long
//! after the organisers closed the activity; before it opens, every attempt reads it again, so
//! the first comment after `open` is taken. A change made over the organisers' REST API reaches the
//! driver at once (`DriverMsg::Organise`), which forgets its cached state, so a close takes effect
//! for the next comment. Paused is `live` in the record: the pause itself is the session's
//! (`Consultation::handle_session_settings`), which refuses with `paused`.

use std::time::{Duration, Instant};

use shangliang_signaling::{ActivityId, ErrorCode};

use crate::record::{ActivityState, Record};

/// How long a driver trusts the state it read.
pub const RECHECK: Duration = Duration::from_secs(1);

/// What a state refuses, if anything (`None`: an activity the record does not know, which the
/// driver would not run anyway).
pub fn refusal_for(state: Option<ActivityState>) -> Option<(ErrorCode, String)> {
    match state? {
        ActivityState::Live => None,
        ActivityState::Scheduled => Some((ErrorCode::NotAllowed, "the activity has not opened yet".into())),
        ActivityState::Ended => Some((ErrorCode::NotAllowed, "the activity is closed; it is read-only".into())),
    }
}

/// One driver's cached view of its activity's state.
#[derive(Debug, Default)]
pub struct SessionGate {
    checked: Option<(Instant, Option<ActivityState>)>,
}

impl SessionGate {
    /// Forgets the state read: the next attempt reads it again (the organisers just changed
    /// it, e.g. closed the activity, and told the driver).
    pub fn invalidate(&mut self) {
        self.checked = None;
    }

    /// Why a comment or command must be refused now, if it must.
    pub fn refusal(&mut self, record: &dyn Record, activity: &ActivityId, now: Instant) -> Option<(ErrorCode, String)> {
        // Only "live" is trusted for a while: an activity that opens takes comments at once.
        if let Some((at, Some(ActivityState::Live))) = self.checked
            && now.duration_since(at) < RECHECK
        {
            return None;
        }
        let state = record.activity(activity).ok().flatten().map(|a| a.state);
        self.checked = Some((now, state));
        refusal_for(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_live_activity_takes_comments_and_commands() {
        assert_eq!(refusal_for(Some(ActivityState::Live)), None);
        assert_eq!(refusal_for(Some(ActivityState::Scheduled)).unwrap().0, ErrorCode::NotAllowed);
        assert!(refusal_for(Some(ActivityState::Ended)).unwrap().1.contains("read-only"));
        assert_eq!(refusal_for(None), None);
    }
}
