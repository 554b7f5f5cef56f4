//! Which node is an activity's *home* (its moderation and video room): rendezvous (highest random
//! weight) hashing of the activity id over a node list — in practice the alive nodes, see
//! [`super::members`].
//!
//! Every node computes the same answer from the same list with no coordination; removing a
//! node moves only the rooms it owned, adding one moves only the rooms it now wins. The weight
//! is the first 8 bytes of SHA-256(node URL ‖ 0x00 ‖ activity id): stable across builds,
//! platforms and Rust versions (unlike `std`'s hasher).

use sha2::{Digest, Sha256};
use shangliang_signaling::{ActivityId, NodeId};

fn weight(node: &NodeId, activity: &ActivityId) -> u64 {
    let mut h = Sha256::new();
    h.update(node.as_str().as_bytes());
    h.update([0u8]);
    h.update(activity.as_str().as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The home of `activity` among `nodes` (base URLs such as `http://10.0.0.5:8080`): the node
/// that runs its moderation and hosts its video room; `None` if `nodes` is empty. Ties
/// (practically impossible) go to the smaller URL, so the answer never depends on the list's
/// order.
pub fn home_node<'a>(activity: &ActivityId, nodes: &'a [NodeId]) -> Option<&'a NodeId> {
    nodes
        .iter()
        .map(|n| (weight(n, activity), std::cmp::Reverse(n)))
        .max()
        .map(|(_, std::cmp::Reverse(n))| n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn nodes(n: usize) -> Vec<NodeId> {
        (1..=n)
            .map(|i| NodeId::from(format!("http://127.0.0.1:{}", 8080 + i)))
            .collect()
    }

    fn act(i: usize) -> ActivityId {
        ActivityId::new(&format!("room-{i}")).unwrap()
    }

    #[test]
    fn every_node_agrees_whatever_the_order_of_the_list() {
        let a = nodes(6);
        let mut b = a.clone();
        b.reverse();
        for i in 0..200 {
            assert_eq!(home_node(&act(i), &a), home_node(&act(i), &b));
        }
    }

    #[test]
    fn no_nodes_no_owner_and_one_node_owns_all() {
        assert_eq!(home_node(&act(1), &[]), None);
        let one = nodes(1);
        assert_eq!(home_node(&act(1), &one), Some(&one[0]));
    }

    #[test]
    fn rooms_spread_over_the_nodes() {
        let list = nodes(6);
        let mut count: HashMap<&NodeId, usize> = HashMap::new();
        for i in 0..6000 {
            *count
                .entry(home_node(&act(i), &list).unwrap())
                .or_default() += 1;
        }
        assert_eq!(count.len(), 6);
        for (node, n) in count {
            assert!((700..1300).contains(&n), "{node} owns {n} of 6000 rooms");
        }
    }

    #[test]
    fn removing_a_node_moves_only_its_rooms() {
        let all = nodes(6);
        let fewer: Vec<NodeId> = all
            .iter()
            .filter(|n| !n.as_str().ends_with("8083"))
            .cloned()
            .collect();
        for i in 0..1000 {
            let before = home_node(&act(i), &all).unwrap();
            let after = home_node(&act(i), &fewer).unwrap();
            if !before.as_str().ends_with("8083") {
                assert_eq!(before, after, "activity {i} moved though its home stayed");
            }
        }
    }
}
