//! The frontend's shared ring pages: mapped through the checked grant path
//! (`xen::gnttab`), held while connected, and read through `GuestRam`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use xen_abi::ring::RingMemory;
use xen_abi::PAGE_SIZE;

use super::xenbus::ConnectError;
use crate::vstate::memory::GuestRam;
use crate::xen::gnttab::MappedGrant;
use crate::xen::Domain;

/// Ring memory over the guest pages the frontend granted for its ring,
/// reached through `GuestRam`. The pages were checked to be guest memory
/// when mapped, so accesses cannot fail; if one did, reads give zeros.
pub struct GuestRingPages {
    ram: Arc<GuestRam>,
    pages: Vec<u64>,
}

impl GuestRingPages {
    /// Ring memory over `pages` (guest addresses, ring order).
    pub fn new(ram: Arc<GuestRam>, pages: Vec<u64>) -> Self {
        GuestRingPages { ram, pages }
    }

    /// Ring memory over the pages of `grants`, in order.
    pub fn over(ram: Arc<GuestRam>, grants: &[MappedGrant]) -> Self {
        GuestRingPages::new(ram, grants.iter().map(MappedGrant::gpa).collect())
    }

    /// Splits a ring byte range into per-page pieces `(gpa, start, len)`.
    fn pieces(&self, offset: usize, len: usize, mut f: impl FnMut(u64, usize, usize)) {
        let mut done = 0;
        while done < len {
            let at = offset + done;
            let (page, in_page) = (at / PAGE_SIZE, at % PAGE_SIZE);
            let n = (PAGE_SIZE - in_page).min(len - done);
            match self.pages.get(page) {
                Some(&gpa) => f(gpa + in_page as u64, done, n),
                None => return,
            }
            done += n;
        }
    }
}

impl RingMemory for GuestRingPages {
    fn load_index(&self, offset: usize) -> u32 {
        self.ram
            .atomic_u32(self.pages[0] + offset as u64)
            .map_or(0, |a| a.load(Ordering::Acquire))
    }

    fn store_index(&self, offset: usize, value: u32) {
        if let Ok(a) = self.ram.atomic_u32(self.pages[0] + offset as u64) {
            a.store(value, Ordering::Release);
        }
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        let len = buf.len();
        self.pieces(offset, len, |gpa, at, n| {
            if self.ram.read(gpa, &mut buf[at..at + n]).is_err() {
                buf[at..at + n].fill(0);
            }
        });
    }

    fn write(&self, offset: usize, buf: &[u8]) {
        self.pieces(offset, buf.len(), |gpa, at, n| {
            let _ = self.ram.write(gpa, &buf[at..at + n]);
        });
    }
}

/// Maps the ring pages `refs` (writable, as a backend maps a ring) or
/// none: on a bad grant, the ones already mapped are released and the
/// error names the node (`ring-ref{index}` style, from `name`).
pub fn map_ring(
    dom: &Domain,
    refs: &[u32],
    name: impl Fn(usize) -> String,
) -> Result<Vec<MappedGrant>, ConnectError> {
    let mut grants = Vec::with_capacity(refs.len());
    for (index, &gref) in refs.iter().enumerate() {
        match dom.gnttab.map(&dom.ram, gref, true, 0) {
            Ok(m) => grants.push(m),
            Err(err) => {
                unmap_all(dom, grants);
                return Err(ConnectError::RingGrant {
                    node: name(index),
                    gref,
                    err,
                });
            }
        }
    }
    Ok(grants)
}

/// Releases mapped grants.
pub fn unmap_all(dom: &Domain, grants: impl IntoIterator<Item = MappedGrant>) {
    for m in grants {
        dom.gnttab.unmap(&dom.ram, m);
    }
}
