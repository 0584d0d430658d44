//! Guest memory: the one place the VMM touches guest RAM.
//!
//! Every access is bounds-checked by vm-memory against the regions that
//! exist; a guest-supplied address never becomes a raw pointer outside this
//! module. Shared words (event-channel bitmaps, ring indices) are reached as
//! atomics because the guest updates them concurrently.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, VolatileMemory,
};

/// An access outside guest memory or a misaligned atomic.
#[derive(Debug, thiserror::Error)]
#[error("guest address {addr:#x} (+{len:#x}) is not accessible")]
pub struct BadAddress {
    /// The guest-physical address asked for.
    pub addr: u64,
    /// The length asked for.
    pub len: usize,
}

/// Result of a guest memory access.
pub type Result<T> = std::result::Result<T, BadAddress>;

/// The guest's physical memory.
pub struct GuestRam {
    mem: GuestMemoryMmap,
}

impl GuestRam {
    /// Maps anonymous memory for each `(start, size)` range.
    pub fn new(ranges: &[(u64, usize)]) -> std::io::Result<Self> {
        let ranges: Vec<_> = ranges.iter().map(|&(a, s)| (GuestAddress(a), s)).collect();
        let mem = GuestMemoryMmap::from_ranges(&ranges)
            .map_err(|e| std::io::Error::other(format!("cannot map guest memory: {e}")))?;
        Ok(Self { mem })
    }

    /// The underlying vm-memory object (itself bounds-checked), for loaders
    /// written against vm-memory's `GuestMemory`.
    pub fn mmap(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// The regions as `(guest address, host address, size)`, for KVM slots.
    pub fn regions(&self) -> Vec<(u64, u64, u64)> {
        self.mem
            .iter()
            .map(|r| {
                let host = r.as_ptr() as u64;
                (r.start_addr().0, host, r.len())
            })
            .collect()
    }

    /// Whether `[addr, addr + len)` lies entirely in guest memory.
    pub fn contains(&self, addr: u64, len: usize) -> bool {
        len == 0 || self.mem.get_slice(GuestAddress(addr), len).is_ok()
    }

    /// Copies guest bytes into `buf`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.mem
            .read_slice(buf, GuestAddress(addr))
            .map_err(|_| BadAddress { addr, len: buf.len() })
    }

    /// Copies `buf` into guest memory.
    pub fn write(&self, addr: u64, buf: &[u8]) -> Result<()> {
        self.mem
            .write_slice(buf, GuestAddress(addr))
            .map_err(|_| BadAddress { addr, len: buf.len() })
    }

    /// Fills guest bytes with zeros.
    pub fn zero(&self, addr: u64, len: usize) -> Result<()> {
        const ZEROS: [u8; 4096] = [0; 4096];
        if !self.contains(addr, len) {
            return Err(BadAddress { addr, len });
        }
        let mut done = 0;
        while done < len {
            let n = (len - done).min(ZEROS.len());
            self.write(addr + done as u64, &ZEROS[..n])?;
            done += n;
        }
        Ok(())
    }

    /// Reads a plain-data value (a repr(C) struct of integers).
    pub fn read_obj<T: Pod>(&self, addr: u64) -> Result<T> {
        let mut value = T::zeroed();
        self.read(addr, value.as_bytes_mut())?;
        Ok(value)
    }

    /// Writes a plain-data value.
    pub fn write_obj<T: Pod>(&self, addr: u64, value: &T) -> Result<()> {
        self.write(addr, value.as_bytes())
    }

    /// The 8-bit word at `addr`, shared with the guest.
    pub fn atomic_u8(&self, addr: u64) -> Result<&AtomicU8> {
        self.atomic(addr)
    }

    /// The aligned 32-bit word at `addr`, shared with the guest.
    pub fn atomic_u32(&self, addr: u64) -> Result<&AtomicU32> {
        self.atomic(addr)
    }

    /// The aligned 64-bit word at `addr`, shared with the guest.
    pub fn atomic_u64(&self, addr: u64) -> Result<&AtomicU64> {
        self.atomic(addr)
    }

    fn atomic<T: vm_memory::AtomicInteger>(&self, addr: u64) -> Result<&T> {
        let len = std::mem::size_of::<T>();
        let bad = BadAddress { addr, len };
        let slice = self.mem.get_slice(GuestAddress(addr), len).map_err(|_| bad)?;
        // get_atomic_ref checks alignment; the reference lives as long as the
        // mapping, which lives as long as `self`.
        let r: &T = slice.get_atomic_ref(0).map_err(|_| BadAddress { addr, len })?;
        // SAFETY: the slice borrows `self.mem`, and the mapping it points into
        // is only unmapped when `self` is dropped, so extending the borrow to
        // `&self` is sound; the value is an atomic, so concurrent guest
        // writes are fine.
        Ok(unsafe { &*(r as *const T) })
    }

    /// Sets `bit` in the 64-bit word at `addr`; returns whether it was set before.
    pub fn test_and_set_bit(&self, addr: u64, bit: u32) -> Result<bool> {
        let mask = 1u64 << (bit % 64);
        Ok(self.atomic_u64(addr)?.fetch_or(mask, Ordering::SeqCst) & mask != 0)
    }

    /// Clears `bit` in the 64-bit word at `addr`; returns whether it was set before.
    pub fn test_and_clear_bit(&self, addr: u64, bit: u32) -> Result<bool> {
        let mask = 1u64 << (bit % 64);
        Ok(self.atomic_u64(addr)?.fetch_and(!mask, Ordering::SeqCst) & mask != 0)
    }

    /// Whether `bit` is set in the 64-bit word at `addr`.
    pub fn test_bit(&self, addr: u64, bit: u32) -> Result<bool> {
        Ok(self.atomic_u64(addr)?.load(Ordering::SeqCst) & (1u64 << (bit % 64)) != 0)
    }
}

/// Plain data: any bit pattern is a valid value and there is no padding
/// that matters, so it can be copied to and from guest bytes.
///
/// # Safety
/// Implementors must be `repr(C)` structs of integers (or integers).
pub unsafe trait Pod: Copy + 'static {
    /// The all-zero value.
    fn zeroed() -> Self {
        // SAFETY: all-zero is a valid value of a Pod type (trait contract).
        unsafe { std::mem::zeroed() }
    }
    /// The value's bytes.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: Pod types are plain integers; viewing them as bytes is sound.
        unsafe { std::slice::from_raw_parts(self as *const Self as *const u8, std::mem::size_of::<Self>()) }
    }
    /// The value's bytes, writable.
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: any byte pattern is a valid Pod value (trait contract).
        unsafe { std::slice::from_raw_parts_mut(self as *mut Self as *mut u8, std::mem::size_of::<Self>()) }
    }
}

macro_rules! pod {
    ($($t:ty),* $(,)?) => { $(
        // SAFETY: an integer or a repr(C) struct of integers from xen-abi.
        unsafe impl Pod for $t {}
    )* };
}
pod!(
    u8, u16, u32, u64, i64,
    xen_abi::hvm::HvmStartInfo,
    xen_abi::hvm::HvmMemmapEntry,
    xen_abi::hvm::HvmModlistEntry,
    xen_abi::hvm::HvmParam,
    xen_abi::memory::AddToPhysmap,
    xen_abi::memory::MemoryMap,
    xen_abi::event_channel::AllocUnbound,
    xen_abi::event_channel::BindInterdomain,
    xen_abi::event_channel::BindVirq,
    xen_abi::event_channel::BindIpi,
    xen_abi::event_channel::Status,
    xen_abi::sched::Shutdown,
    xen_abi::sched::Poll,
    xen_abi::vcpu::SetSingleshotTimer,
    xen_abi::vcpu::RegisterVcpuInfo,
    xen_abi::shared_info::VcpuTimeInfo,
    xen_abi::version::FeatureInfo,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_are_bounds_checked() {
        let ram = GuestRam::new(&[(0, 0x2000)]).unwrap();
        assert!(ram.write(0x1ff8, &[1; 8]).is_ok());
        assert!(ram.write(0x1ffc, &[1; 8]).is_err());
        assert!(ram.read_obj::<u64>(0x2000).is_err());
        assert!(ram.atomic_u64(0x1004).is_err(), "misaligned atomic refused");
        assert!(!ram.test_and_set_bit(0x1000, 3).unwrap());
        assert!(ram.test_and_set_bit(0x1000, 3).unwrap());
        assert!(ram.test_and_clear_bit(0x1000, 3).unwrap());
        assert!(!ram.test_bit(0x1000, 3).unwrap());
    }
}
