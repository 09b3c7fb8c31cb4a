//! Which node of a server a session talks to: a server may be several nodes of one
//! cluster (gateways on one Redis), given as a list of URLs, and the session moves to
//! the next when the one it is on is down.
//!
//! [`Failover`] is a pure strategy object like [`crate::backoff::Backoff`]: it never
//! sleeps and never touches the network. The session actor tells it when a link went
//! live ([`Failover::on_live`]) and when one was lost ([`Failover::on_lost`]); it
//! answers which node comes next and whether to try it at once. The one home of that
//! rule: `pulsectl --server A --server B` and the desktop's saved server with several
//! URLs both use it through [`crate::session::SessionConfig::nodes`].
//!
//! Invariants:
//! - with one node it never moves: the session's backoff alone applies;
//! - with several, a lost link moves to the next node (in order, wrapping round);
//!   the move is tried at once ([`Next::Now`]) as long as not every node was tried
//!   since the last one that went live, and after a whole round without a live node
//!   it waits the backoff's delay first ([`Next::AfterBackoff`]), so a cluster that
//!   is all down sees no retry storm, only the backoff's capped, jittered delays;
//! - a link that went live (socket or polling) starts a new round.

use url::Url;

/// What follows a lost link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Stay on this node (the only one) and wait the backoff's delay.
    Stay,
    /// Another node is now active: connect to it at once.
    Now,
    /// Another node is now active, but every node failed since the last live link:
    /// wait the backoff's delay first.
    AfterBackoff,
}

/// The nodes of one server and which one is active. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    nodes: Vec<Url>,
    active: usize,
    /// Nodes tried since the last live link, the active one included.
    tried: usize,
}

impl Failover {
    /// `first`, then `others` in order (duplicates of an earlier URL are dropped).
    pub fn new(first: Url, others: &[Url]) -> Failover {
        let mut nodes = vec![first];
        for u in others {
            if !nodes.contains(u) {
                nodes.push(u.clone());
            }
        }
        Failover {
            nodes,
            active: 0,
            tried: 1,
        }
    }

    /// The node to talk to now.
    pub fn active(&self) -> &Url {
        &self.nodes[self.active]
    }

    /// Every node, in the order they are tried.
    pub fn nodes(&self) -> &[Url] {
        &self.nodes
    }

    /// A link to the active node went live: a new round starts from it.
    pub fn on_live(&mut self) {
        self.tried = 1;
    }

    /// The link to the active node was lost (or never came up).
    pub fn on_lost(&mut self) -> Next {
        let n = self.nodes.len();
        if n <= 1 {
            return Next::Stay;
        }
        self.active = (self.active + 1) % n;
        if self.tried < n {
            self.tried += 1;
            Next::Now
        } else {
            self.tried = 1;
            Next::AfterBackoff
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(port: u16) -> Url {
        format!("http://127.0.0.1:{port}").parse().unwrap()
    }

    #[test]
    fn one_node_never_moves() {
        let mut f = Failover::new(url(1), &[]);
        for _ in 0..3 {
            assert_eq!(f.on_lost(), Next::Stay);
            assert_eq!(f.active(), &url(1));
        }
        let mut same = Failover::new(url(1), &[url(1)]);
        assert_eq!(same.nodes().len(), 1, "a repeated URL is one node");
        assert_eq!(same.on_lost(), Next::Stay);
    }

    #[test]
    fn moves_at_once_until_every_node_was_tried_then_waits() {
        let mut f = Failover::new(url(1), &[url(2), url(3)]);
        assert_eq!((f.on_lost(), f.active()), (Next::Now, &url(2)));
        assert_eq!((f.on_lost(), f.active()), (Next::Now, &url(3)));
        // A whole round without a live node: the next move waits.
        assert_eq!((f.on_lost(), f.active()), (Next::AfterBackoff, &url(1)));
        assert_eq!((f.on_lost(), f.active()), (Next::Now, &url(2)));
        assert_eq!((f.on_lost(), f.active()), (Next::Now, &url(3)));
        assert_eq!((f.on_lost(), f.active()), (Next::AfterBackoff, &url(1)));
    }

    #[test]
    fn a_live_link_starts_a_new_round() {
        let mut f = Failover::new(url(1), &[url(2)]);
        assert_eq!(f.on_lost(), Next::Now);
        f.on_live();
        // Node 2 went live and then died: node 1 is tried at once.
        assert_eq!((f.on_lost(), f.active()), (Next::Now, &url(1)));
        assert_eq!((f.on_lost(), f.active()), (Next::AfterBackoff, &url(2)));
        f.on_live();
        assert_eq!(f.on_lost(), Next::Now);
    }
}
