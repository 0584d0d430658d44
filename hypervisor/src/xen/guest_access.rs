//! copy_from_guest / copy_to_guest: hypercall buffers are guest-virtual
//! addresses, translated page by page through the guest's page tables.

use xen_abi::errno::EFAULT;

use crate::vstate::memory::{GuestRam, Pod};
use crate::vstate::vcpu::{GuestCpu, Regs};

/// The calling vCPU's view of guest memory for one hypercall.
pub struct GuestView<'a, 'b> {
    /// Guest RAM.
    pub ram: &'a GuestRam,
    /// The calling vCPU (for translation and mode).
    pub cpu: &'a (dyn GuestCpu + 'b),
}

/// A vCPU with no KVM behind it: given registers, a mode, and an identity
/// map of the addresses below `mapped` (what a PVH guest's early page
/// tables give). For unit tests and the hypercall fuzz target.
#[derive(Clone, Debug, Default)]
pub struct FlatCpu {
    /// The registers a hypercall reads its number's arguments from.
    pub regs: Regs,
    /// 64-bit (true) or compat (false) calling convention.
    pub long_mode: bool,
    /// Virtual addresses below this translate to themselves; the rest are unmapped.
    pub mapped: u64,
    /// The top page of the address space (as a kernel's fixmap) maps to
    /// this guest-physical page, if set: where an argument's field offset
    /// could wrap past 2^64.
    pub top_page: Option<u64>,
    /// The calling vCPU's id.
    pub vcpu_id: u32,
}

impl GuestCpu for FlatCpu {
    fn regs(&self) -> Regs {
        self.regs
    }
    fn long_mode(&self) -> bool {
        self.long_mode
    }
    fn translate(&self, gva: u64) -> Option<u64> {
        const TOP: u64 = !0xfff;
        match self.top_page {
            Some(page) if gva >= TOP => Some(page + (gva - TOP)),
            _ => (gva < self.mapped).then_some(gva),
        }
    }
    fn vcpu_id(&self) -> u32 {
        self.vcpu_id
    }
}

impl GuestView<'_, '_> {
    /// Applies `f` to each (guest-physical address, offset in buffer, length) piece of a buffer.
    fn for_each_page(&self, gva: u64, len: usize, mut f: impl FnMut(u64, usize, usize) -> bool) -> Result<(), i64> {
        let mut done = 0usize;
        while done < len {
            let va = gva.checked_add(done as u64).ok_or(EFAULT)?;
            let in_page = (4096 - (va & 0xfff)) as usize;
            let n = in_page.min(len - done);
            let pa = self.cpu.translate(va).ok_or(EFAULT)?;
            if !f(pa, done, n) {
                return Err(EFAULT);
            }
            done += n;
        }
        Ok(())
    }

    /// Copies guest bytes at `gva` into `buf`; -EFAULT if any page is unmapped.
    pub fn read(&self, gva: u64, buf: &mut [u8]) -> Result<(), i64> {
        let len = buf.len();
        self.for_each_page(gva, len, |pa, off, n| self.ram.read(pa, &mut buf[off..off + n]).is_ok())
    }

    /// Copies `buf` to the guest at `gva`.
    pub fn write(&self, gva: u64, buf: &[u8]) -> Result<(), i64> {
        self.for_each_page(gva, buf.len(), |pa, off, n| self.ram.write(pa, &buf[off..off + n]).is_ok())
    }

    /// Reads a hypercall argument structure.
    pub fn read_obj<T: Pod>(&self, gva: u64) -> Result<T, i64> {
        let mut v = T::zeroed();
        self.read(gva, v.as_bytes_mut())?;
        Ok(v)
    }

    /// Reads the structure at `gva + off`: -EFAULT when the sum wraps (a
    /// guest may map the top page of the address space, so an argument
    /// there plus a field offset must not overflow).
    pub fn read_obj_at<T: Pod>(&self, gva: u64, off: u64) -> Result<T, i64> {
        self.read_obj(gva.checked_add(off).ok_or(EFAULT)?)
    }

    /// Writes `v` at `gva + off`; -EFAULT when the sum wraps.
    pub fn write_obj_at<T: Pod>(&self, gva: u64, off: u64, v: &T) -> Result<(), i64> {
        self.write_obj(gva.checked_add(off).ok_or(EFAULT)?, v)
    }

    /// Writes a hypercall argument structure back.
    pub fn write_obj<T: Pod>(&self, gva: u64, v: &T) -> Result<(), i64> {
        self.write(gva, v.as_bytes())
    }

    /// Whether the caller uses the 32-bit (compat) ABI.
    pub fn compat(&self) -> bool {
        !self.cpu.long_mode()
    }
}
