//! Transactions, with C xenstored's conflict rule: a transaction sees a
//! snapshot of every node it touches (copied on first access), and its
//! commit fails with EAGAIN if any node it read or wrote has changed in
//! the main tree since (compared by generation count). Watches for its
//! changes fire only when it commits.

use std::collections::HashMap;

use xen_abi::DomId;

use super::perms::Perms;
use super::quota::Quota;
use super::store::{Fired, Node, Tree};
use super::XsError;

/// What a transaction knows about one node it touched.
#[derive(Clone, Debug)]
pub(super) struct TxEntry {
    /// The node as the transaction sees it (None: absent or deleted).
    pub node: Option<Node>,
    /// The main tree's generation of the node at first access (None: absent).
    pub seen: Option<u64>,
    /// The transaction changed the node.
    pub modified: bool,
    /// A watch event is due at commit; `Some(true)` for an exact-match one.
    pub fire: Option<bool>,
    /// The node's permissions at first access, for watch permission checks
    /// of a node the transaction deletes.
    pub orig_perms: Option<Perms>,
}

/// An open transaction.
#[derive(Debug)]
pub struct Transaction {
    /// Its id on its connection (never 0).
    pub id: u32,
    pub(super) entries: HashMap<String, TxEntry>,
    /// Paths in first-access order, so commits apply and fire in order.
    pub(super) order: Vec<String>,
    /// Change in nodes owned, per domain, if the transaction commits.
    pub(super) entry_delta: HashMap<DomId, isize>,
    /// A node was created (only then are node quotas checked at commit).
    pub(super) node_created: bool,
    /// An operation failed half-way; the transaction can only be aborted.
    pub(super) failed: bool,
}

impl Transaction {
    /// A transaction with nothing touched yet.
    pub fn new(id: u32) -> Self {
        Transaction { id, entries: HashMap::new(), order: Vec::new(), entry_delta: HashMap::new(), node_created: false, failed: false }
    }

    /// How many nodes it has touched (limited by quota-trans-nodes).
    pub fn touched(&self) -> usize {
        self.order.len()
    }

    /// Records the first access to `path`, copying the main tree's node.
    pub(super) fn record(&mut self, tree: &Tree, path: &str) {
        if self.entries.contains_key(path) {
            return;
        }
        let node = tree.get(path).cloned();
        let seen = node.as_ref().map(|n| n.generation);
        let orig_perms = node.as_ref().map(|n| n.perms.clone());
        self.entries.insert(path.to_owned(), TxEntry { node, seen, modified: false, fire: None, orig_perms });
        self.order.push(path.to_owned());
    }

    /// Commits into `tree`: EAGAIN if anything it touched changed meanwhile,
    /// ENOSPC if the result would break the caller's node quota. Returns
    /// the watch events its changes cause.
    pub fn commit(self, tree: &mut Tree, quota: &Quota, privileged: bool) -> Result<Vec<Fired>, XsError> {
        if self.failed {
            // C xenstored answers a failed transaction's commit with ENOMEM.
            return Err(XsError::NoMem);
        }
        for path in &self.order {
            let e = &self.entries[path];
            if tree.get(path).map(|n| n.generation) != e.seen {
                return Err(XsError::Again);
            }
        }
        if self.node_created && !privileged {
            for (&dom, &delta) in &self.entry_delta {
                if tree.owned(dom) as isize + delta > quota.nodes as isize {
                    return Err(XsError::NoSpc);
                }
            }
        }
        let mut fired = Vec::new();
        let mut entries = self.entries;
        for path in &self.order {
            let Some(e) = entries.remove(path) else { continue };
            if e.modified {
                match e.node {
                    Some(node) => tree.put(path.clone(), node),
                    None => {
                        tree.remove(path);
                    }
                }
            }
            if let Some(exact) = e.fire {
                let mut perms: Vec<Perms> = tree.get(path).map(|n| n.perms.clone()).into_iter().collect();
                perms.extend(e.orig_perms);
                if path != "/" {
                    perms.extend(tree.get(super::path::parent(path)).map(|n| n.perms.clone()));
                }
                fired.push(Fired { path: path.clone(), exact, perms });
            }
        }
        Ok(fired)
    }
}
