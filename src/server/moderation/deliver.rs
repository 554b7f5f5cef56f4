//! Where a moderation event goes on this node: a topic's subscribers through the fan-out
//! (everyone, moderators, the public), or one participant's connections through their inboxes.
//! Used by the home's driver for its own connections and by the relay for events other homes
//! publish.

use std::sync::Arc;

use shangliang_signaling::{ActivityId, ServerMsg};

use crate::consult::{Audience, ConsultEvent};
use crate::fanout::{Fanout, Views};
use crate::server::inbox::Inboxes;

/// This node's connections, as moderation reaches them.
#[derive(Clone)]
pub struct Outlets {
    /// The topics' subscribers.
    pub fanout: Fanout,
    /// One participant's connections.
    pub inboxes: Arc<Inboxes>,
}

impl Outlets {
    /// Delivers `event` to this node's connections of `activity` that `to` names.
    pub fn deliver(&self, activity: &ActivityId, to: Audience, event: ConsultEvent) {
        let msg = ServerMsg::Event {
            topic: activity.clone(),
            event,
        };
        let views = match to {
            Audience::Everyone => Views::All,
            Audience::Moderators => Views::Full,
            Audience::NonModerators => Views::Public,
            Audience::Participant(id) => {
                self.inboxes.send_to(activity, &id, &msg);
                return;
            }
        };
        if let Err(e) = self.fanout.broadcast(activity, views, &msg) {
            tracing::warn!(%activity, "event not broadcast: {e}");
        }
    }

    /// Delivers a `consensus` event (polls, statements, groups; already JSON) to this node's
    /// connections of `activity` that `to` names: one broadcast, encoded once per form.
    pub fn deliver_consensus(&self, activity: &ActivityId, to: Audience, event: serde_json::Value) {
        let msg = ServerMsg::Consensus { topic: activity.clone(), event };
        let views = match to {
            Audience::Everyone => Views::All,
            Audience::Moderators => Views::Full,
            Audience::NonModerators => Views::Public,
            Audience::Participant(id) => {
                self.inboxes.send_to(activity, &id, &msg);
                return;
            }
        };
        metrics::counter!("shangliang_consensus_events_total").increment(1);
        if let Err(e) = self.fanout.broadcast(activity, views, &msg) {
            tracing::warn!(%activity, "consensus event not broadcast: {e}");
        }
    }
}
