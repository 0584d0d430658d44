//! The host's domains: who holds which domid and name. `create` takes a
//! [`Lease`] here for the domain it runs and gives it back when the domain
//! is gone, so a host running many domains never hands out an id or a
//! name twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The first id Xen reserves (DOMID_FIRST_RESERVED): guests get 1 to this minus 1.
pub const DOMID_FIRST_RESERVED: u16 = 0x7ff0;

/// Why no domid could be given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A live domain already has the name (xl refuses it the same way).
    #[error("domain with name \"{0}\" already exists")]
    NameTaken(String),
    /// No live domain has the id.
    #[error("domain {0} does not exist")]
    NoSuchDomain(u16),
    /// Every guest domid is in use.
    #[error("no free domain id: {} domains exist", DOMID_FIRST_RESERVED - 1)]
    Full,
}

#[derive(Default)]
struct Inner {
    /// Live domains: domid to name.
    live: BTreeMap<u16, String>,
    /// The last domid handed out (Xen's `rover`).
    last: u16,
}

/// The host's registry of live domains.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives domain `name` the next domid as Xen's createdomain does: the
    /// one after the last handed out (1, 2, ...), wrapping to 1 below
    /// [`DOMID_FIRST_RESERVED`] and skipping ids of domains that still
    /// exist. The lease gives it back when dropped.
    pub fn allocate(self: &Arc<Self>, name: &str) -> Result<Lease, RegistryError> {
        let mut inner = self.lock();
        if inner.live.values().any(|n| n == name) {
            return Err(RegistryError::NameTaken(name.to_owned()));
        }
        let mut domid = inner.last;
        for _ in 1..DOMID_FIRST_RESERVED {
            domid = if domid + 1 >= DOMID_FIRST_RESERVED { 1 } else { domid + 1 };
            if let std::collections::btree_map::Entry::Vacant(slot) = inner.live.entry(domid) {
                slot.insert(name.to_owned());
                inner.last = domid;
                return Ok(Lease { registry: self.clone(), domid });
            }
        }
        Err(RegistryError::Full)
    }

    /// The live domains, by domid.
    pub fn list(&self) -> Vec<(u16, String)> {
        self.lock().live.iter().map(|(&d, n)| (d, n.clone())).collect()
    }

    /// The name of live domain `domid`.
    pub fn name(&self, domid: u16) -> Option<String> {
        self.lock().live.get(&domid).cloned()
    }

    /// The domid of the live domain called `name`.
    pub fn domid(&self, name: &str) -> Option<u16> {
        self.lock().live.iter().find(|(_, n)| *n == name).map(|(&d, _)| d)
    }

    /// Renames live domain `domid` (xl rename): refused if another domain
    /// has the name.
    pub fn rename(&self, domid: u16, name: &str) -> Result<(), RegistryError> {
        let mut inner = self.lock();
        if inner.live.iter().any(|(&d, n)| n == name && d != domid) {
            return Err(RegistryError::NameTaken(name.to_owned()));
        }
        match inner.live.get_mut(&domid) {
            Some(n) => {
                *n = name.to_owned();
                Ok(())
            }
            None => Err(RegistryError::NoSuchDomain(domid)),
        }
    }
}

/// A live domain's hold on its domid and name.
pub struct Lease {
    registry: Arc<Registry>,
    domid: u16,
}

impl Lease {
    /// The domain's id.
    pub fn domid(&self) -> u16 {
        self.domid
    }

    /// The domain's name (it changes with [`Lease::rename`] and `xl rename`).
    pub fn name(&self) -> String {
        self.registry.name(self.domid).unwrap_or_default()
    }

    /// Renames the domain.
    pub fn rename(&self, name: &str) -> Result<(), RegistryError> {
        self.registry.rename(self.domid, name)
    }

    /// The registry the lease is from.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Gives the id back and takes the next one for the same name: what
    /// xl's restart does (the old domain is destroyed, a new one with the
    /// same name created), so a rebooted domain comes back with a new domid.
    pub fn renew(&mut self) -> Result<(), RegistryError> {
        let name = self.registry.lock().live.remove(&self.domid).unwrap_or_default();
        let next = self.registry.allocate(&name)?;
        self.domid = next.domid;
        // `next` is now this lease: forget it without giving the id back.
        std::mem::forget(next);
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.registry.lock().live.remove(&self.domid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewed_lease_has_the_next_id_and_keeps_the_name() {
        let r = Arc::new(Registry::default());
        let mut a = r.allocate("a").unwrap();
        let b = r.allocate("b").unwrap();
        a.renew().unwrap();
        assert_eq!((a.domid(), b.domid()), (3, 2));
        assert_eq!(r.list(), vec![(2, "b".to_owned()), (3, "a".to_owned())]);
        assert!(r.allocate("a").is_err(), "the name is still held");
        drop(a);
        assert_eq!(r.list(), vec![(2, "b".to_owned())]);
    }

    #[test]
    fn a_rename_frees_the_old_name_and_refuses_a_taken_one() {
        let r = Arc::new(Registry::default());
        let a = r.allocate("a").unwrap();
        let _b = r.allocate("b").unwrap();
        assert_eq!(a.rename("b"), Err(RegistryError::NameTaken("b".into())));
        a.rename("a-20261203T1213Z").unwrap();
        assert_eq!((a.name(), r.domid("a-20261203T1213Z")), ("a-20261203T1213Z".to_owned(), Some(1)));
        assert_eq!(r.allocate("a").unwrap().domid(), 3, "the old name is free again");
        assert_eq!(r.rename(9, "x"), Err(RegistryError::NoSuchDomain(9)));
    }

    #[test]
    fn domids_count_up_and_are_never_reused_while_the_domain_lives() {
        let r = Arc::new(Registry::default());
        let a = r.allocate("a").unwrap();
        let b = r.allocate("b").unwrap();
        assert_eq!((a.domid(), b.domid()), (1, 2), "1, 2, ... as on Xen");
        assert_eq!(r.allocate("a").err(), Some(RegistryError::NameTaken("a".into())));
        drop(a);
        // Xen moves on rather than going back to a freed id at once.
        let c = r.allocate("a").unwrap();
        assert_eq!(c.domid(), 3);
        assert_eq!(r.list(), vec![(2, "b".into()), (3, "a".into())]);
        // Past the last guest id it wraps to 1, skipping live domains.
        r.lock().last = DOMID_FIRST_RESERVED - 1;
        let d = r.allocate("d").unwrap();
        assert_eq!(d.domid(), 1);
        let e = r.allocate("e").unwrap();
        assert_eq!(e.domid(), 4, "2 and 3 are live");
    }

    #[test]
    fn a_full_host_refuses_rather_than_reusing() {
        let r = Arc::new(Registry::default());
        r.lock().live = (1..DOMID_FIRST_RESERVED).map(|d| (d, format!("d{d}"))).collect();
        assert_eq!(r.allocate("x").err(), Some(RegistryError::Full));
        r.lock().live.remove(&77);
        assert_eq!(r.allocate("x").unwrap().domid(), 77);
    }
}
