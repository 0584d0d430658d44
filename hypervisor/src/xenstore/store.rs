//! The tree: nodes with values, permissions, ordered children and
//! generation counts, and the node operations of the protocol (read,
//! write, mkdir, rm, directory, permissions) with C xenstored's rules for
//! permissions, node creation, quotas, and which watch events fire.
//!
//! Operations run through an [`Op`], which works on the main tree or
//! inside a [`Transaction`]; it collects the watch events to send.

use std::collections::HashMap;

use xen_abi::xenstore::XENSTORE_PAYLOAD_MAX;
use xen_abi::DomId;

use super::path;
use super::perms::{self, Access, Perms};
use super::quota::{node_record_size, Quota};
use super::transaction::{Transaction, TxEntry};
use super::XsError;

/// One node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Its value (binary; usually short ASCII).
    pub value: Vec<u8>,
    /// Its permissions.
    pub perms: Perms,
    /// Its children's names, in creation order (as C xenstored lists them).
    pub children: Vec<String>,
    /// The generation count of its last change.
    pub generation: u64,
}

impl Node {
    fn new(perms: Perms) -> Self {
        Node { value: Vec::new(), perms, children: Vec::new(), generation: 0 }
    }

    /// The children as the DIRECTORY payload: each name then a NUL.
    pub fn children_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.children_len());
        for c in &self.children {
            out.extend_from_slice(c.as_bytes());
            out.push(0);
        }
        out
    }

    fn children_len(&self) -> usize {
        self.children.iter().map(|c| c.len() + 1).sum()
    }

    /// Its size as C xenstored stores it, which quota-max-entry-size limits.
    pub fn record_size(&self) -> usize {
        node_record_size(self.perms.entries().len(), self.value.len(), self.children_len())
    }
}

/// The main tree.
#[derive(Debug)]
pub struct Tree {
    nodes: HashMap<String, Node>,
    generation: u64,
    /// Nodes owned per domain (for quota-nb-entry-per-domain).
    owned: HashMap<DomId, usize>,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// The tree C xenstored starts with: `/tool/xenstored`, owned by
    /// domain 0 with no access for anyone else.
    pub fn new() -> Self {
        let mut t = Tree { nodes: HashMap::new(), generation: 0, owned: HashMap::new() };
        let perms = Perms::owned(0, Access::None);
        let mut root = Node::new(perms.clone());
        root.children.push("tool".into());
        let mut tool = Node::new(perms.clone());
        tool.children.push("xenstored".into());
        t.put("/".into(), root);
        t.put("/tool".into(), tool);
        t.put("/tool/xenstored".into(), Node::new(perms));
        t
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree has no nodes (never true once created: "/" exists).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Nodes owned by `domid`.
    pub fn owned(&self, domid: DomId) -> usize {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    /// A fresh generation count (every change gets a unique one).
    pub(super) fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Stores a node under a fresh generation, keeping ownership counts.
    pub(super) fn put(&mut self, path: String, mut node: Node) {
        node.generation = self.next_generation();
        *self.owned.entry(node.perms.owner()).or_default() += 1;
        if let Some(old) = self.nodes.insert(path, node) {
            self.disown(old.perms.owner());
        }
    }

    /// Removes a node (not its children), keeping ownership counts.
    pub(super) fn remove(&mut self, path: &str) -> Option<Node> {
        let old = self.nodes.remove(path)?;
        self.disown(old.perms.owner());
        Some(old)
    }

    fn disown(&mut self, domid: DomId) {
        if let Some(n) = self.owned.get_mut(&domid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.owned.remove(&domid);
            }
        }
    }

    /// Every path, for checks and dumps.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }
}

/// Who is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller's domain.
    pub domid: DomId,
    /// Domain 0 (and host tools and backends acting as it): no
    /// permission checks and no quotas.
    pub privileged: bool,
}

impl Caller {
    /// Domain 0.
    pub const DOM0: Caller = Caller { domid: 0, privileged: true };

    /// A guest domain.
    pub fn guest(domid: DomId) -> Self {
        Caller { domid, privileged: domid == 0 }
    }
}

/// A change that may fire watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    /// The changed node.
    pub path: String,
    /// Only watches on exactly this path match (a descendant removed with
    /// its ancestor); otherwise watches on the path or any ancestor match.
    pub exact: bool,
    /// Permissions that let a watcher see the event if any of them grants
    /// it read access: the node's, its old ones, its parent's.
    pub perms: Vec<Perms>,
}

/// One operation's access to the tree, directly or in a transaction.
pub struct Op<'a> {
    tree: &'a mut Tree,
    tx: Option<&'a mut Transaction>,
    caller: Caller,
    quota: &'a Quota,
    /// Watch events the operation caused (none inside a transaction: they
    /// wait for its commit).
    pub fired: Vec<Fired>,
}

impl<'a> Op<'a> {
    /// An operation by `caller`, in `tx` if given.
    pub fn new(tree: &'a mut Tree, tx: Option<&'a mut Transaction>, caller: Caller, quota: &'a Quota) -> Self {
        Op { tree, tx, caller, quota, fired: Vec::new() }
    }

    // --- node access: the view of the tree this operation has ---

    fn get(&mut self, path: &str) -> Result<Option<Node>, XsError> {
        match self.tx.as_deref_mut() {
            None => Ok(self.tree.get(path).cloned()),
            Some(tx) => {
                if !tx.entries.contains_key(path) {
                    if !self.caller.privileged && tx.touched() >= self.quota.trans_nodes {
                        tx.failed = true;
                        return Err(XsError::NoSpc);
                    }
                    tx.record(self.tree, path);
                }
                Ok(tx.entries[path].node.clone())
            }
        }
    }

    fn put(&mut self, path: &str, mut node: Node) -> Result<(), XsError> {
        if self.tx.is_none() {
            self.tree.put(path.to_owned(), node);
            return Ok(());
        }
        self.get(path)?;
        node.generation = self.tree.next_generation();
        let Some(tx) = self.tx.as_deref_mut() else { return Ok(()) };
        let e: &mut TxEntry = tx.entries.get_mut(path).ok_or(XsError::Io)?;
        let old_owner = e.node.as_ref().map(|n| n.perms.owner());
        let new_owner = node.perms.owner();
        e.node = Some(node);
        e.modified = true;
        if old_owner != Some(new_owner) {
            if let Some(o) = old_owner {
                *tx.entry_delta.entry(o).or_default() -= 1;
            }
            *tx.entry_delta.entry(new_owner).or_default() += 1;
        }
        Ok(())
    }

    fn del(&mut self, path: &str) -> Result<(), XsError> {
        if self.tx.is_none() {
            self.tree.remove(path);
            return Ok(());
        }
        self.get(path)?;
        let Some(tx) = self.tx.as_deref_mut() else { return Ok(()) };
        let e = tx.entries.get_mut(path).ok_or(XsError::Io)?;
        if let Some(old) = e.node.take() {
            *tx.entry_delta.entry(old.perms.owner()).or_default() -= 1;
        }
        e.modified = true;
        Ok(())
    }

    fn fire(&mut self, path: &str, exact: bool, node_perms: Option<Perms>, old_perms: Option<Perms>) -> Result<(), XsError> {
        if let Some(tx) = self.tx.as_deref_mut() {
            // Queued in the transaction: a non-exact event replaces an exact one.
            let e = tx.entries.get_mut(path).ok_or(XsError::Io)?;
            e.fire = Some(match e.fire {
                Some(prev) => prev && exact,
                None => exact,
            });
            return Ok(());
        }
        let mut perms: Vec<Perms> = node_perms.into_iter().chain(old_perms).collect();
        if path != "/" {
            perms.extend(self.tree.get(path::parent(path)).map(|n| n.perms.clone()));
        }
        self.fired.push(Fired { path: path.to_owned(), exact, perms });
        Ok(())
    }

    fn access(&self, perms: &Perms) -> u8 {
        perms.access_for(self.caller.domid, self.caller.privileged)
    }

    fn check_size(&self, node: &Node) -> Result<(), XsError> {
        if !self.caller.privileged && node.record_size() >= self.quota.node_size {
            return Err(XsError::NoSpc);
        }
        Ok(())
    }

    /// C's get_node: the node if the caller has `need` on it. A missing
    /// node is ENOENT only if the nearest existing ancestor would let the
    /// caller know (shares a bit of `need`), otherwise EACCES, so a
    /// guest cannot probe for nodes it may not see.
    fn get_node(&mut self, p: &str, need: u8) -> Result<Node, XsError> {
        if !path::is_valid(p, self.quota.path_len) {
            return Err(XsError::Inval);
        }
        let err = match self.get(p)? {
            Some(node) if self.access(&node.perms) & need == need => return Ok(node),
            Some(_) => XsError::Acces,
            None => XsError::NoEnt,
        };
        let mut at = p;
        while at != "/" {
            at = path::parent(at);
            if let Some(anc) = self.get(at)? {
                return Err(if self.access(&anc.perms) & need != 0 { err } else { XsError::Acces });
            }
        }
        Err(XsError::Acces)
    }

    // --- the protocol's node operations (paths are absolute here) ---

    /// XS_READ.
    pub fn read(&mut self, p: &str) -> Result<Vec<u8>, XsError> {
        Ok(self.get_node(p, perms::READ)?.value)
    }

    /// XS_DIRECTORY: the child list as sent on the wire.
    pub fn directory(&mut self, p: &str) -> Result<Vec<u8>, XsError> {
        Ok(self.get_node(p, perms::READ)?.children_wire())
    }

    /// XS_DIRECTORY_PART: `<gencnt>|` then the children from byte `offset`
    /// of the list, as many as fit in a payload, with a final empty string
    /// once the list is complete.
    pub fn directory_part(&mut self, p: &str, offset: usize) -> Result<Vec<u8>, XsError> {
        let node = self.get_node(p, perms::READ)?;
        let all = node.children_wire();
        let mut out = node.generation.to_string().into_bytes();
        out.push(0);
        if offset >= all.len() {
            out.push(0);
            return Ok(out);
        }
        let max = XENSTORE_PAYLOAD_MAX as usize - out.len() - 1;
        let mut len = 0;
        let mut rest = &all[offset..];
        // Whole names only; offsets that fall inside a name are the client's business.
        while let Some(end) = rest.iter().position(|&b| b == 0) {
            if len + end >= max {
                break;
            }
            len += end + 1;
            rest = &rest[end + 1..];
        }
        out.extend_from_slice(&all[offset..offset + len]);
        if offset + len == all.len() {
            out.push(0);
        }
        Ok(out)
    }

    /// XS_GET_PERMS.
    pub fn get_perms(&mut self, p: &str) -> Result<Perms, XsError> {
        Ok(self.get_node(p, perms::READ)?.perms)
    }

    /// XS_WRITE: sets the value, creating the node and missing parents.
    pub fn write(&mut self, p: &str, value: &[u8]) -> Result<(), XsError> {
        match self.get_node(p, perms::WRITE) {
            Ok(mut node) => {
                node.value = value.to_vec();
                self.check_size(&node)?;
                let perms = node.perms.clone();
                self.put(p, node)?;
                self.fire(p, false, Some(perms), None)
            }
            Err(XsError::NoEnt) => {
                let perms = self.create(p, value)?;
                self.fire(p, false, Some(perms), None)
            }
            Err(e) => Err(e),
        }
    }

    /// XS_MKDIR: creates the node and missing parents if it is absent.
    pub fn mkdir(&mut self, p: &str) -> Result<(), XsError> {
        match self.get_node(p, perms::WRITE) {
            Ok(_) => Ok(()),
            Err(XsError::NoEnt) => {
                let perms = self.create(p, &[])?;
                self.fire(p, false, Some(perms), None)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates `p` and its missing ancestors (C's create_node): each new
    /// node inherits its parent's permissions, and one an unprivileged
    /// domain creates is owned by it. Checks every quota before changing
    /// anything. Returns the new node's permissions.
    fn create(&mut self, p: &str, value: &[u8]) -> Result<Perms, XsError> {
        let mut missing = vec![p.to_owned()];
        let (anc_path, mut anc) = loop {
            let Some(last) = missing.last() else { return Err(XsError::Io) };
            if last == "/" {
                return Err(XsError::Io); // the root always exists
            }
            let up = path::parent(last).to_owned();
            match self.get(&up)? {
                Some(node) => break (up, node),
                None => missing.push(up),
            }
        };
        missing.reverse(); // top-down
        if !self.caller.privileged {
            let delta = self.tx.as_deref().and_then(|t| t.entry_delta.get(&self.caller.domid)).copied().unwrap_or(0);
            let owned = self.tree.owned(self.caller.domid) as isize + delta;
            if owned + missing.len() as isize > self.quota.nodes as isize {
                return Err(XsError::NoSpc);
            }
        }
        // Build the chain, then check sizes, then write.
        anc.children.push(path::basename(&missing[0]).to_owned());
        let mut chain = Vec::with_capacity(missing.len());
        let mut perms = anc.perms.clone();
        for (i, name) in missing.iter().enumerate() {
            if !self.caller.privileged {
                perms.set_owner(self.caller.domid);
            }
            let mut node = Node::new(perms.clone());
            match missing.get(i + 1) {
                Some(next) => node.children.push(path::basename(next).to_owned()),
                None => node.value = value.to_vec(),
            }
            chain.push((name.clone(), node));
            perms = chain[i].1.perms.clone();
        }
        self.check_size(&anc)?;
        for (_, node) in &chain {
            self.check_size(node)?;
        }
        if let Some(tx) = self.tx.as_deref_mut() {
            tx.node_created = true;
        }
        let final_perms = perms;
        for (name, node) in chain.into_iter().rev() {
            self.put(&name, node)?;
        }
        self.put(&anc_path, anc)?;
        Ok(final_perms)
    }

    /// XS_RM: removes the node and everything below it. Removing a missing
    /// node is fine if its parent exists.
    pub fn rm(&mut self, p: &str) -> Result<(), XsError> {
        match self.get_node(p, perms::WRITE) {
            Ok(_) => {}
            Err(XsError::NoEnt) => {
                return match self.get(path::parent(p))? {
                    Some(_) => Ok(()),
                    None => Err(XsError::NoEnt),
                };
            }
            Err(e) => return Err(e),
        }
        if p == "/" {
            return Err(XsError::Inval);
        }
        self.remove_subtree(p)
    }

    /// Removes `p` and its subtree without permission checks, firing an
    /// event for each removed node (children first; exact-match events for
    /// the descendants, as C xenstored's delnode_sub does).
    pub(super) fn remove_subtree(&mut self, p: &str) -> Result<(), XsError> {
        let parent_path = path::parent(p).to_owned();
        let Some(mut parent) = self.get(&parent_path)? else { return Err(XsError::Inval) };
        // Collect the subtree first, so a failure leaves nothing half-removed.
        let mut order = Vec::new();
        let mut stack = vec![(p.to_owned(), false)];
        while let Some((at, expanded)) = stack.pop() {
            let Some(node) = self.get(&at)? else { continue };
            if expanded {
                order.push((at, node.perms));
            } else {
                stack.push((at.clone(), true));
                for c in node.children.iter().rev() {
                    stack.push((path::join(&at, c), false));
                }
            }
        }
        for (at, perms) in order {
            self.del(&at)?;
            let exact = at != p;
            self.fire(&at, exact, Some(perms), None)?;
        }
        let base = path::basename(p);
        parent.children.retain(|c| c != base);
        self.put(&parent_path, parent)
    }

    /// XS_SET_PERMS on a node: needs write and ownership; an unprivileged
    /// owner may not give the node away.
    pub fn set_perms(&mut self, p: &str, new: Perms) -> Result<(), XsError> {
        if !self.caller.privileged && new.entries().len() > self.quota.perms {
            return Err(XsError::NoSpc);
        }
        let mut node = self.get_node(p, perms::WRITE | perms::OWNER)?;
        if !self.caller.privileged && new.owner() != node.perms.owner() {
            return Err(XsError::Perm);
        }
        let old = std::mem::replace(&mut node.perms, new.clone());
        self.check_size(&node)?;
        self.put(p, node)?;
        self.fire(p, false, Some(new), Some(old))
    }

    /// Whether `p` exists in this view (no permission check).
    pub fn exists(&mut self, p: &str) -> Result<bool, XsError> {
        Ok(self.get(p)?.is_some())
    }

    /// What a domain leaves behind when it goes away (C's
    /// domain_tree_remove): the nodes it owns go, with their subtrees, and
    /// its entries in other nodes' permissions are dropped, so a later
    /// domain with the same id inherits nothing.
    pub fn forget_domain(&mut self, domid: DomId) -> Result<(), XsError> {
        let mut owned = Vec::new();
        let mut stack = vec!["/".to_owned()];
        while let Some(at) = stack.pop() {
            let Some(node) = self.get(&at)? else { continue };
            if at != "/" && node.perms.owner() == domid {
                owned.push(at);
                continue; // its subtree goes with it
            }
            if node.perms.entries()[1..].iter().any(|e| e.domid == domid) {
                let mut n = node.clone();
                n.perms.forget(domid);
                self.put(&at, n)?;
            }
            for c in node.children.iter().rev() {
                stack.push(path::join(&at, c));
            }
        }
        for p in owned {
            if self.get(&p)?.is_some() {
                self.remove_subtree(&p)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::perms::Perm;

    fn op<'a>(t: &'a mut Tree, q: &'a Quota, c: Caller) -> Op<'a> {
        Op::new(t, None, c, q)
    }

    fn paths_fired(o: &Op<'_>) -> Vec<(String, bool)> {
        o.fired.iter().map(|f| (f.path.clone(), f.exact)).collect()
    }

    #[test]
    fn write_creates_parents_and_lists_children_in_order() {
        let (mut t, q) = (Tree::new(), Quota::default());
        let mut o = op(&mut t, &q, Caller::DOM0);
        o.write("/a/b/c", b"1").unwrap();
        o.write("/a/b/a", b"2").unwrap();
        assert_eq!(o.read("/a/b/c").unwrap(), b"1");
        assert_eq!(o.read("/a/b").unwrap(), b"");
        assert_eq!(o.directory("/a/b").unwrap(), b"c\0a\0");
        assert_eq!(o.directory("/").unwrap(), b"tool\0a\0");
        assert_eq!(o.read("/nope"), Err(XsError::NoEnt));
        assert_eq!(o.read("/bad//path"), Err(XsError::Inval));
        o.mkdir("/a/b/c").unwrap();
        assert_eq!(o.read("/a/b/c").unwrap(), b"1", "mkdir leaves a value alone");
        assert_eq!(paths_fired(&o), vec![("/a/b/c".into(), false), ("/a/b/a".into(), false)]);
    }

    #[test]
    fn rm_removes_subtree_and_fires_children_exactly() {
        let (mut t, q) = (Tree::new(), Quota::default());
        let n = t.len();
        let mut o = op(&mut t, &q, Caller::DOM0);
        o.write("/a/b/c", b"1").unwrap();
        o.write("/a/d", b"2").unwrap();
        o.fired.clear();
        o.rm("/a").unwrap();
        let mut fired = paths_fired(&o);
        fired.sort();
        assert_eq!(fired, vec![("/a".into(), false), ("/a/b".into(), true), ("/a/b/c".into(), true), ("/a/d".into(), true)]);
        assert_eq!(o.read("/a"), Err(XsError::NoEnt));
        o.rm("/a").unwrap(); // gone, parent exists: fine
        assert_eq!(o.rm("/x/y"), Err(XsError::NoEnt)); // parent missing too
        assert_eq!(o.rm("/"), Err(XsError::Inval));
        drop(o);
        assert_eq!(t.len(), n);
        assert_eq!(t.owned(0), n);
    }

    #[test]
    fn permissions_as_xenstore_txt() {
        let (mut t, q) = (Tree::new(), Quota::default());
        let mut o = op(&mut t, &q, Caller::DOM0);
        o.write("/local/domain/1/secret", b"s").unwrap();
        o.set_perms("/local/domain/1/secret", Perms::owned(0, Access::None)).unwrap();
        o.write("/local/domain/1/open", b"o").unwrap();
        o.set_perms("/local/domain/1", Perms::new(vec![Perm::new(0, Access::None), Perm::new(1, Access::Read)]).unwrap()).unwrap();
        o.set_perms("/local/domain/1/open", Perms::new(vec![Perm::new(0, Access::None), Perm::new(1, Access::Both)]).unwrap()).unwrap();
        drop(o);
        let mut g = op(&mut t, &q, Caller::guest(1));
        assert_eq!(g.read("/local/domain/1/secret"), Err(XsError::Acces));
        assert_eq!(g.write("/local/domain/1/secret", b"x"), Err(XsError::Acces));
        assert_eq!(g.read("/local/domain/1/open").unwrap(), b"o");
        g.write("/local/domain/1/open", b"p").unwrap();
        // May read the parent: a missing child is ENOENT...
        assert_eq!(g.read("/local/domain/1/missing"), Err(XsError::NoEnt));
        // ...but may not write there, and may not learn about /tool.
        assert_eq!(g.write("/local/domain/1/new", b"x"), Err(XsError::Acces));
        assert_eq!(g.read("/tool/missing"), Err(XsError::Acces));
        assert_eq!(g.read("/tool"), Err(XsError::Acces));
        // Not the owner: cannot change permissions.
        assert_eq!(g.set_perms("/local/domain/1/open", Perms::owned(1, Access::None)), Err(XsError::Acces));
        // Domain 2 sees nothing.
        let mut h = op(&mut t, &q, Caller::guest(2));
        assert_eq!(h.read("/local/domain/1/open"), Err(XsError::Acces));
    }

    #[test]
    fn created_nodes_inherit_and_are_owned_by_their_creator() {
        let (mut t, q) = (Tree::new(), Quota::default());
        let mut o = op(&mut t, &q, Caller::DOM0);
        o.mkdir("/local/domain/1/data").unwrap();
        o.set_perms("/local/domain/1/data", Perms::new(vec![Perm::new(1, Access::None)]).unwrap()).unwrap();
        o.mkdir("/shared").unwrap();
        o.set_perms("/shared", Perms::new(vec![Perm::new(0, Access::Read), Perm::new(1, Access::Write)]).unwrap()).unwrap();
        drop(o);
        let mut g = op(&mut t, &q, Caller::guest(1));
        g.write("/local/domain/1/data/x/y", b"v").unwrap();
        assert_eq!(g.get_perms("/local/domain/1/data/x/y").unwrap().to_string(), "n1");
        g.write("/shared/mine", b"v").unwrap();
        // Inherits "r0 w1" and becomes the creator's: "r1 w1".
        assert_eq!(g.get_perms("/shared/mine").unwrap().to_string(), "r1 w1");
        // An owner may change the access but not give the node away.
        g.set_perms("/shared/mine", Perms::owned(1, Access::Read)).unwrap();
        assert_eq!(g.set_perms("/shared/mine", Perms::owned(2, Access::Read)), Err(XsError::Perm));
        drop(g);
        assert_eq!(t.owned(1), 4); // data (given to 1 by dom0), x, y, mine
    }

    #[test]
    fn node_quotas() {
        let (mut t, mut q) = (Tree::new(), Quota::default());
        q.nodes = 5;
        let mut o = op(&mut t, &q, Caller::DOM0);
        o.mkdir("/local/domain/1").unwrap();
        o.set_perms("/local/domain/1", Perms::owned(1, Access::None)).unwrap();
        drop(o);
        let mut g = op(&mut t, &q, Caller::guest(1));
        for i in 0..4 {
            g.write(&format!("/local/domain/1/n{i}"), b"").unwrap();
        }
        assert_eq!(g.write("/local/domain/1/n4", b""), Err(XsError::NoSpc));
        assert_eq!(g.write("/local/domain/1/n0", &[b'x'; 2016]), Err(XsError::NoSpc), "entry size");
        g.write("/local/domain/1/n0", &[b'x'; 2015]).unwrap(); // 24 + 8 + 2015 < 2048
        let six = Perms::new((0..6).map(|d| Perm::new(d, Access::Read)).collect()).unwrap();
        let six = Perms::new([Perm::new(1, Access::None)].into_iter().chain(six.entries()[1..].iter().copied()).collect()).unwrap();
        assert_eq!(g.set_perms("/local/domain/1/n0", six), Err(XsError::NoSpc), "perms per node");
        g.rm("/local/domain/1/n3").unwrap();
        g.write("/local/domain/1/n4", b"").unwrap();
        // Domain 0 is not limited.
        let mut o = op(&mut t, &q, Caller::DOM0);
        o.write("/local/domain/1/big", &[b'x'; 4000]).unwrap();
    }

    #[test]
    fn directory_part_pages_long_lists() {
        let (mut t, q) = (Tree::new(), Quota::default());
        let mut o = op(&mut t, &q, Caller::DOM0);
        for i in 0..600 {
            o.mkdir(&format!("/d/child-{i:04}")).unwrap();
        }
        let full = o.directory("/d").unwrap();
        assert!(full.len() > 4096);
        let mut got = Vec::new();
        let mut gen = None;
        loop {
            let part = o.directory_part("/d", got.len()).unwrap();
            assert!(part.len() <= 4096);
            let nul = part.iter().position(|&b| b == 0).unwrap();
            let g = std::str::from_utf8(&part[..nul]).unwrap().to_owned();
            assert!(gen.get_or_insert(g.clone()) == &g);
            let body = &part[nul + 1..];
            if body.ends_with(b"\0\0") || body == b"\0" {
                got.extend_from_slice(&body[..body.len() - 1]);
                break;
            }
            got.extend_from_slice(body);
        }
        assert_eq!(got, full);
    }

    #[test]
    fn forgetting_a_domain_removes_what_it_owns() {
        let (mut t, q) = (Tree::new(), Quota::default());
        let mut o = op(&mut t, &q, Caller::DOM0);
        o.mkdir("/local/domain/3/data").unwrap();
        o.set_perms("/local/domain/3/data", Perms::owned(3, Access::None)).unwrap();
        o.write("/local/domain/3/data/k", b"v").unwrap();
        o.mkdir("/other").unwrap();
        o.set_perms("/other", Perms::new(vec![Perm::new(0, Access::None), Perm::new(3, Access::Both)]).unwrap()).unwrap();
        o.fired.clear();
        o.forget_domain(3).unwrap();
        assert_eq!(o.read("/local/domain/3/data"), Err(XsError::NoEnt));
        assert_eq!(o.get_perms("/other").unwrap().to_string(), "n0");
        assert!(o.fired.iter().any(|f| f.path == "/local/domain/3/data"));
        drop(o);
        assert_eq!(t.owned(3), 0);
    }
}
