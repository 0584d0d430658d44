//! Guest memory: the one place the VMM touches guest RAM.
//!
//! Every access is bounds-checked by vm-memory against the regions that
//! exist; a guest-supplied address never becomes a raw pointer outside this
//! module. Shared words (event-channel bitmaps, ring indices) are reached as
//! atomics because the guest updates them concurrently.
//!
//! Besides the memory present at boot, pages placed after boot are backed
//! here as "extra" regions, so every accessor reaches them too: Xen-owned
//! pages a guest maps with XENMEM_add_to_physmap (shared info, grant-table
//! frames) and RAM it populates into holes (XENMEM_populate_physmap). Boot
//! pages the guest gave up (XENMEM_decrease_reservation, or a Xen page
//! placed over them) become holes: no accessor reaches them until they are
//! populated again. Backends move disk data straight between a
//! file and guest pages with [`GuestRam::read_from_file`] and
//! [`GuestRam::write_to_file`], without a bounce buffer.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};

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
    /// Pages mapped after boot over holes (see [`GuestRam::map_extra`]);
    /// looked up only when an address is not in `mem`, so RAM accesses cost
    /// nothing more.
    extra: RwLock<Vec<Arc<GuestMemoryMmap>>>,
    /// Whether `extra` is non-empty, checked without the lock.
    has_extra: AtomicBool,
    /// Extra regions taken out of the guest's view. They stay mapped until
    /// `self` is dropped, because references handed out by the atomic
    /// accessors live as long as `&self`; their pages are given back to the
    /// host (MADV_DONTNEED) and a region is used again when the guest
    /// populates the same range, so a guest that populates and gives back
    /// pages over and over does not make the host hold more.
    retired: Mutex<Vec<Arc<GuestMemoryMmap>>>,
    /// Which extra regions are RAM (populated), by start address; the
    /// others are Xen pages.
    extra_ram: RwLock<std::collections::BTreeSet<u64>>,
    /// Boot pages removed from the guest's view (page addresses).
    holes: RwLock<std::collections::BTreeSet<u64>>,
    /// Whether `holes` is non-empty, checked without the lock.
    has_holes: AtomicBool,
    /// Every hole ever made lies in [holes_lo, holes_hi): most accesses
    /// fall outside and never take the lock.
    holes_lo: AtomicU64,
    holes_hi: AtomicU64,
}

impl GuestRam {
    /// Maps anonymous memory for each `(start, size)` range.
    pub fn new(ranges: &[(u64, usize)]) -> std::io::Result<Self> {
        let ranges: Vec<_> = ranges.iter().map(|&(a, s)| (GuestAddress(a), s)).collect();
        let mem = GuestMemoryMmap::from_ranges(&ranges)
            .map_err(|e| std::io::Error::other(format!("cannot map guest memory: {e}")))?;
        Ok(Self {
            mem,
            extra: RwLock::new(Vec::new()),
            has_extra: AtomicBool::new(false),
            retired: Mutex::new(Vec::new()),
            extra_ram: RwLock::new(Default::default()),
            holes: RwLock::new(Default::default()),
            has_holes: AtomicBool::new(false),
            holes_lo: AtomicU64::new(u64::MAX),
            holes_hi: AtomicU64::new(0),
        })
    }

    /// The underlying vm-memory object (itself bounds-checked), for loaders
    /// written against vm-memory's `GuestMemory`. It holds the memory present
    /// at boot, not the extra regions mapped later.
    pub fn mmap(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// The boot-time regions as `(guest address, host address, size)`, for KVM slots.
    pub fn regions(&self) -> Vec<(u64, u64, u64)> {
        self.mem
            .iter()
            .map(|r| {
                let host = r.as_ptr() as u64;
                (r.start_addr().0, host, r.len())
            })
            .collect()
    }

    /// Whether `[addr, addr + len)` lies entirely in guest memory (boot
    /// memory or one extra region).
    pub fn contains(&self, addr: u64, len: usize) -> bool {
        len == 0 || self.in_boot(addr, len) || self.extra_at(addr, len).is_some()
    }

    /// Whether `[addr, addr + len)` is entirely the domain's RAM: boot
    /// memory (its RAM and special pages) not given up, or one populated
    /// region; not Xen-owned pages nor holes. Only RAM may be granted to a
    /// backend.
    pub fn is_ram(&self, addr: u64, len: usize) -> bool {
        if len == 0 || self.in_boot(addr, len) {
            return true;
        }
        match self.extra_at(addr, len) {
            Some(m) => m.iter().next().is_some_and(|r| self.extra_ram.read().unwrap_or_else(|e| e.into_inner()).contains(&r.start_addr().0)),
            None => false,
        }
    }

    /// Whether `[addr, addr + len)` is boot memory with no hole in it.
    fn in_boot(&self, addr: u64, len: usize) -> bool {
        self.mem.get_slice(GuestAddress(addr), len.max(1)).is_ok() && !self.overlaps_hole(addr, len)
    }

    /// Whether any page of `[addr, addr + len)` is a removed boot page.
    fn overlaps_hole(&self, addr: u64, len: usize) -> bool {
        if !self.has_holes.load(Ordering::Acquire) {
            return false;
        }
        let first = addr & !0xfff;
        let end = addr.saturating_add(len.max(1) as u64);
        if end <= self.holes_lo.load(Ordering::Acquire) || first >= self.holes_hi.load(Ordering::Acquire) {
            return false;
        }
        self.holes.read().unwrap_or_else(|e| e.into_inner()).range(first..end).next().is_some()
    }

    /// Whether the page at `addr` is boot memory (given up or not).
    pub fn is_boot_page(&self, addr: u64) -> bool {
        self.mem.get_slice(GuestAddress(addr & !0xfff), 4096).is_ok()
    }

    /// Whether the page at `addr` is a boot page the guest gave up.
    pub fn is_removed_boot_page(&self, addr: u64) -> bool {
        self.overlaps_hole(addr & !0xfff, 4096)
    }

    /// Takes the boot page at `addr` out of the guest's view (the caller
    /// removes it from KVM too). Returns false if it is not a present boot page.
    pub fn remove_boot_page(&self, addr: u64) -> bool {
        let page = addr & !0xfff;
        if !self.is_boot_page(page) {
            return false;
        }
        let mut holes = self.holes.write().unwrap_or_else(|e| e.into_inner());
        let added = holes.insert(page);
        self.holes_lo.fetch_min(page, Ordering::AcqRel);
        self.holes_hi.fetch_max(page + 4096, Ordering::AcqRel);
        self.has_holes.store(true, Ordering::Release);
        added
    }

    /// Gives a removed boot page back, zeroed (fresh RAM). Returns false if
    /// it was not removed.
    pub fn restore_boot_page(&self, addr: u64) -> bool {
        let page = addr & !0xfff;
        let mut holes = self.holes.write().unwrap_or_else(|e| e.into_inner());
        if !holes.remove(&page) {
            return false;
        }
        let _ = self.mem.write_slice(&[0u8; 4096], GuestAddress(page));
        self.has_holes.store(!holes.is_empty(), Ordering::Release);
        true
    }

    /// The host address backing boot page `addr` (for its KVM slot).
    pub fn boot_host_addr(&self, addr: u64) -> Option<u64> {
        let slice = self.mem.get_slice(GuestAddress(addr), 1).ok()?;
        Some(slice.ptr_guard().as_ptr() as u64)
    }

    /// The extra region holding `[addr, addr + len)`, if any.
    fn extra_at(&self, addr: u64, len: usize) -> Option<Arc<GuestMemoryMmap>> {
        if !self.has_extra.load(Ordering::Acquire) {
            return None;
        }
        let extra = self.extra.read().unwrap_or_else(|e| e.into_inner());
        extra.iter().find(|m| m.get_slice(GuestAddress(addr), len.max(1)).is_ok()).cloned()
    }

    /// Copies guest bytes into `buf`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len();
        let bad = || BadAddress { addr, len };
        if self.overlaps_hole(addr, len) {
            let extra = self.extra_at(addr, buf.len()).ok_or_else(bad)?;
            return extra.read_slice(buf, GuestAddress(addr)).map_err(|_| bad());
        }
        match self.mem.read_slice(buf, GuestAddress(addr)) {
            Ok(()) => Ok(()),
            Err(_) => {
                let extra = self.extra_at(addr, buf.len()).ok_or_else(bad)?;
                extra.read_slice(buf, GuestAddress(addr)).map_err(|_| bad())
            }
        }
    }

    /// Copies `buf` into guest memory.
    pub fn write(&self, addr: u64, buf: &[u8]) -> Result<()> {
        let bad = || BadAddress { addr, len: buf.len() };
        if self.overlaps_hole(addr, buf.len()) {
            let extra = self.extra_at(addr, buf.len()).ok_or_else(bad)?;
            return extra.write_slice(buf, GuestAddress(addr)).map_err(|_| bad());
        }
        match self.mem.write_slice(buf, GuestAddress(addr)) {
            Ok(()) => Ok(()),
            Err(_) => {
                let extra = self.extra_at(addr, buf.len()).ok_or_else(bad)?;
                extra.write_slice(buf, GuestAddress(addr)).map_err(|_| bad())
            }
        }
    }

    /// Copies `buf.len()` bytes out of a byte ring of `size` bytes (a power
    /// of two) at `ring`, starting at free-running index `idx` and wrapping
    /// to its start once: how console and xenstore rings are read.
    pub fn read_ring(&self, ring: u64, size: u32, idx: u32, buf: &mut [u8]) -> Result<()> {
        let (start, first) = ring_split(size, idx, buf.len());
        self.read(ring + start, &mut buf[..first])?;
        self.read(ring, &mut buf[first..])
    }

    /// Copies `data` into a byte ring (see [`GuestRam::read_ring`]).
    pub fn write_ring(&self, ring: u64, size: u32, idx: u32, data: &[u8]) -> Result<()> {
        let (start, first) = ring_split(size, idx, data.len());
        self.write(ring + start, &data[..first])?;
        self.write(ring, &data[first..])
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
        let bad = || BadAddress { addr, len };
        let extra;
        let boot = if self.overlaps_hole(addr, len) { Err(()) } else { self.mem.get_slice(GuestAddress(addr), len).map_err(|_| ()) };
        let slice = match boot {
            Ok(slice) => slice,
            Err(()) => {
                extra = self.extra_at(addr, len).ok_or_else(bad)?;
                extra.get_slice(GuestAddress(addr), len).map_err(|_| bad())?
            }
        };
        // get_atomic_ref checks alignment; the reference lives as long as the
        // mapping, which lives as long as `self`.
        let r: &T = slice.get_atomic_ref(0).map_err(|_| bad())?;
        // SAFETY: the slice points into `self.mem` or into an extra region;
        // both stay mapped until `self` is dropped (extra regions taken out
        // of the guest's view move to `retired`, never unmapped early), so
        // extending the borrow to `&self` is sound; the value is an atomic,
        // so concurrent guest writes are fine.
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

/// The most regions over holes a domain may have had mapped (in view or
/// retired): each is a host mapping, and a process has at most
/// vm.max_map_count (65530) of them, past which every mmap of the process
/// (the allocator's too) fails. Xen pages moving about and populated holes
/// take a few; a guest churning distinct frames is refused past this, as
/// Xen refuses memory it cannot find.
pub const MAX_EXTRA_REGIONS: usize = 4096;

/// Extra regions: Xen-owned pages placed in holes after boot.
impl GuestRam {
    /// Maps `len` bytes of fresh zeroed host memory at guest address `addr`,
    /// which must not overlap any memory present (boot pages given up are
    /// not present). `ram` says whether it is the domain's RAM (populated)
    /// or a Xen page. Returns the host address, for the caller to give KVM
    /// a memory slot for it.
    pub fn map_extra(&self, addr: u64, len: usize, ram: bool) -> std::io::Result<u64> {
        let end = addr.checked_add(len as u64).ok_or_else(|| std::io::Error::other("address overflow"))?;
        let overlaps = |m: &GuestMemoryMmap| m.iter().any(|r| r.start_addr().0 < end && addr < r.start_addr().0 + r.len());
        let boot_present = overlaps(&self.mem) && (addr..end).step_by(4096).any(|p| self.is_boot_page(p) && !self.is_removed_boot_page(p));
        let mut extra = self.extra.write().unwrap_or_else(|e| e.into_inner());
        if boot_present || extra.iter().any(|m| overlaps(m)) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("guest range [{addr:#x}, {end:#x}) is already backed"),
            ));
        }
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let same = |m: &GuestMemoryMmap| m.iter().next().is_some_and(|r| r.start_addr().0 == addr && r.len() == len as u64);
        let region = match retired.iter().position(|m| same(m)) {
            // Zero already: its pages were dropped when it was retired.
            Some(i) => retired.swap_remove(i),
            None => {
                if extra.len() + retired.len() >= MAX_EXTRA_REGIONS {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::OutOfMemory,
                        format!("cannot map {len:#x} bytes at {addr:#x}: the domain already has {MAX_EXTRA_REGIONS} regions over holes"),
                    ));
                }
                Arc::new(
                    GuestMemoryMmap::from_ranges(&[(GuestAddress(addr), len)])
                        .map_err(|e| std::io::Error::other(format!("cannot map {len:#x} bytes at {addr:#x}: {e}")))?,
                )
            }
        };
        drop(retired);
        let host = region.iter().next().map(|r| r.as_ptr() as u64).unwrap_or(0);
        extra.push(region);
        if ram {
            self.extra_ram.write().unwrap_or_else(|e| e.into_inner()).insert(addr);
        }
        self.has_extra.store(true, Ordering::Release);
        Ok(host)
    }

    /// Takes the extra region starting at `addr` out of the guest's view (the
    /// caller has removed its KVM slot first). Its memory stays mapped until
    /// `self` is dropped. Returns whether there was one.
    pub fn unmap_extra(&self, addr: u64) -> bool {
        let mut extra = self.extra.write().unwrap_or_else(|e| e.into_inner());
        let Some(i) = extra.iter().position(|m| m.iter().next().is_some_and(|r| r.start_addr().0 == addr)) else {
            return false;
        };
        let region = extra.remove(i);
        self.extra_ram.write().unwrap_or_else(|e| e.into_inner()).remove(&addr);
        self.has_extra.store(!extra.is_empty(), Ordering::Release);
        for r in region.iter() {
            // SAFETY: the range is this region's own private anonymous
            // mapping, which stays mapped (in `retired`); MADV_DONTNEED only
            // makes its pages read as zeros again, which every reader of
            // guest memory (volatile copies, atomics) tolerates.
            unsafe { libc::madvise(r.as_ptr().cast(), r.len() as usize, libc::MADV_DONTNEED) };
        }
        self.retired.lock().unwrap_or_else(|e| e.into_inner()).push(region);
        true
    }
}

/// Direct file I/O to and from guest pages.
impl GuestRam {
    /// Reads `file` at `offset` straight into the guest ranges `iov`
    /// (`(guest address, length)` pairs, filled in order) with preadv: the
    /// data lands in the guest's pages with no intermediate copy. Reading
    /// past the end of the file is an `UnexpectedEof` error.
    pub fn read_from_file(&self, file: &impl AsRawFd, offset: u64, iov: &[(u64, usize)]) -> std::io::Result<()> {
        self.file_io(file, offset, iov, false)
    }

    /// Writes the guest ranges `iov`, in order, to `file` at `offset` with pwritev.
    pub fn write_to_file(&self, file: &impl AsRawFd, offset: u64, iov: &[(u64, usize)]) -> std::io::Result<()> {
        self.file_io(file, offset, iov, true)
    }

    fn file_io(&self, file: &impl AsRawFd, mut offset: u64, iov: &[(u64, usize)], write: bool) -> std::io::Result<()> {
        let iov: Vec<(u64, usize)> = iov.iter().copied().filter(|&(_, len)| len > 0).collect();
        // Resolve every range first: a bad address fails the whole transfer
        // before any byte moves. Extra regions are held by Arc for the call.
        let bad = |addr: u64, len: usize| std::io::Error::new(std::io::ErrorKind::InvalidInput, BadAddress { addr, len });
        let mut extras = Vec::with_capacity(iov.len());
        for &(addr, len) in &iov {
            extras.push(if self.in_boot(addr, len) { None } else { Some(self.extra_at(addr, len).ok_or_else(|| bad(addr, len))?) });
        }
        let mut slices = Vec::with_capacity(iov.len());
        for (&(addr, len), extra) in iov.iter().zip(&extras) {
            let region: &GuestMemoryMmap = extra.as_deref().unwrap_or(&self.mem);
            slices.push(region.get_slice(GuestAddress(addr), len).map_err(|_| bad(addr, len))?);
        }
        let guards: Vec<_> = slices.iter().map(|s| s.ptr_guard_mut()).collect();
        let mut vecs: Vec<libc::iovec> =
            guards.iter().zip(&slices).map(|(g, s)| libc::iovec { iov_base: g.as_ptr().cast(), iov_len: s.len() }).collect();
        let fd = file.as_raw_fd();
        let mut first = 0usize;
        while first < vecs.len() {
            if vecs[first].iov_len == 0 {
                first += 1;
                continue;
            }
            let batch = &vecs[first..vecs.len().min(first + 1024)];
            let off = libc::off_t::try_from(offset).map_err(|_| std::io::Error::other("file offset too large"))?;
            // SAFETY: every iovec points into a live guest mapping (held by
            // `self` or `extras`, with `guards` alive) of exactly its length,
            // checked by get_slice above; the kernel only reads or writes
            // those bytes. The guest may change them concurrently, which is
            // the nature of shared memory and harmless to us (no Rust
            // reference to them exists).
            let n = unsafe {
                if write {
                    libc::pwritev(fd, batch.as_ptr(), batch.len() as libc::c_int, off)
                } else {
                    libc::preadv(fd, batch.as_ptr(), batch.len() as libc::c_int, off)
                }
            };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if n == 0 {
                return Err(std::io::Error::new(
                    if write { std::io::ErrorKind::WriteZero } else { std::io::ErrorKind::UnexpectedEof },
                    format!("{} stopped at file offset {offset}", if write { "write" } else { "read" }),
                ));
            }
            offset += n as u64;
            // Advance past what was transferred (short transfers resume mid-iovec).
            let mut left = n as usize;
            while left > 0 && first < vecs.len() {
                let v = &mut vecs[first];
                if left >= v.iov_len {
                    left -= v.iov_len;
                    v.iov_len = 0;
                    first += 1;
                } else {
                    // SAFETY: advancing within the same iovec's buffer.
                    v.iov_base = unsafe { v.iov_base.cast::<u8>().add(left) }.cast();
                    v.iov_len -= left;
                    left = 0;
                }
            }
        }
        drop(guards);
        Ok(())
    }
}

/// Where `len` bytes at free-running index `idx` of a `size`-byte ring
/// start, and how many of them fit before the wrap (`len` is at most `size`).
fn ring_split(size: u32, idx: u32, len: usize) -> (u64, usize) {
    debug_assert!(size.is_power_of_two() && len <= size as usize);
    let start = (idx & (size - 1)) as usize;
    (start as u64, len.min(size as usize - start))
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
    xen_abi::memory::MemoryReservation,
    xen_abi::event_channel::AllocUnbound,
    xen_abi::event_channel::BindInterdomain,
    xen_abi::event_channel::BindVirq,
    xen_abi::event_channel::BindIpi,
    xen_abi::event_channel::Status,
    xen_abi::sched::Shutdown,
    xen_abi::sched::Poll,
    xen_abi::vcpu::SetSingleshotTimer,
    xen_abi::vcpu::RegisterVcpuInfo,
    xen_abi::vcpu::VcpuHvmContext,
    xen_abi::shared_info::VcpuTimeInfo,
    xen_abi::version::FeatureInfo,
    xen_abi::grant_table::QuerySize,
    xen_abi::grant_table::SetupTable,
    xen_abi::grant_table::SetVersion,
    xen_abi::grant_table::GetVersion,
    xen_abi::grant_table::Copy,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_regions_are_reachable_and_retired() {
        let ram = GuestRam::new(&[(0, 0x2000)]).unwrap();
        assert!(ram.map_extra(0x1000, 0x1000, false).is_err(), "overlaps RAM");
        assert!(ram.map_extra(0x5000, 0x1000, false).unwrap() != 0);
        assert!(ram.map_extra(0x5000, 0x1000, false).is_err(), "already there");
        assert!(ram.contains(0x5000, 0x1000) && !ram.is_ram(0x5000, 1));
        ram.write_obj(0x5008, &7u64).unwrap();
        assert_eq!(ram.read_obj::<u64>(0x5008).unwrap(), 7);
        let a = ram.atomic_u64(0x5008).unwrap();
        assert!(ram.read(0x4ff8, &mut [0; 16]).is_err(), "no access across a hole");
        assert!(ram.unmap_extra(0x5000));
        assert!(!ram.unmap_extra(0x5000));
        assert!(!ram.contains(0x5000, 1));
        // A reference taken before stays valid (the mapping was retired),
        // its page given back to the host: it reads zero.
        assert_eq!(a.load(Ordering::SeqCst), 0);
        assert!(ram.map_extra(0x5000, 0x1000, true).is_ok(), "the address is free again");
        assert!(ram.is_ram(0x5000, 0x1000), "populated RAM");
        assert_eq!(ram.read_obj::<u64>(0x5008).unwrap(), 0, "fresh, zeroed");
        a.store(9, Ordering::SeqCst);
        assert_eq!(ram.read_obj::<u64>(0x5008).unwrap(), 9, "the retired region came back");
    }

    #[test]
    fn churning_holes_is_bounded() {
        let ram = GuestRam::new(&[(0, 0x2000)]).unwrap();
        // The same range over and over: one mapping, used again.
        for _ in 0..3 * MAX_EXTRA_REGIONS {
            ram.map_extra(0x10000, 0x1000, true).unwrap();
            ram.write_obj(0x10000, &1u64).unwrap();
            assert!(ram.unmap_extra(0x10000));
        }
        assert_eq!(ram.retired.lock().unwrap().len(), 1);
        // Distinct ranges: refused past the cap, never an abort.
        let mut mapped = 0;
        for i in 0..MAX_EXTRA_REGIONS as u64 + 10 {
            if ram.map_extra(0x100000 + i * 0x1000, 0x1000, true).is_ok() {
                mapped += 1;
                ram.unmap_extra(0x100000 + i * 0x1000);
            }
        }
        assert_eq!(mapped, MAX_EXTRA_REGIONS - 1, "the first region counts too");
    }

    #[test]
    fn removed_boot_pages_are_holes_until_restored() {
        let ram = GuestRam::new(&[(0, 0x4000)]).unwrap();
        ram.write_obj(0x1008, &9u64).unwrap();
        assert!(ram.remove_boot_page(0x1000));
        assert!(!ram.remove_boot_page(0x1000), "once");
        assert!(!ram.remove_boot_page(0x8000), "not boot memory");
        assert!(!ram.contains(0x1000, 1) && !ram.is_ram(0x1ff8, 8));
        assert!(ram.read_obj::<u64>(0x1008).is_err());
        assert!(ram.write_obj(0x1008, &1u64).is_err());
        assert!(ram.atomic_u64(0x1008).is_err());
        assert!(ram.read(0xff8, &mut [0; 16]).is_err(), "not across the hole");
        assert!(ram.is_ram(0x2000, 0x2000), "the rest stays");
        // A Xen page placed over the hole is reachable, but not RAM.
        ram.map_extra(0x1000, 0x1000, false).unwrap();
        ram.write_obj(0x1008, &5u64).unwrap();
        assert!(ram.contains(0x1000, 0x1000) && !ram.is_ram(0x1000, 1));
        assert!(ram.map_extra(0x2000, 0x1000, false).is_err(), "present boot page");
        assert!(ram.unmap_extra(0x1000));
        assert!(ram.restore_boot_page(0x1000));
        assert!(!ram.restore_boot_page(0x1000));
        assert_eq!(ram.read_obj::<u64>(0x1008).unwrap(), 0, "fresh RAM is zeroed");
        assert!(ram.is_ram(0, 0x4000));
    }

    #[test]
    fn file_io_goes_straight_to_guest_pages() {
        use std::io::Write;
        let ram = GuestRam::new(&[(0, 0x4000)]).unwrap();
        ram.map_extra(0x10000, 0x1000, false).unwrap();
        let path = std::env::temp_dir().join(format!("xenolith-memtest-{}", std::process::id()));
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&(0..8192u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        ram.read_from_file(&f, 100, &[(0x1000, 10), (0x3000, 0), (0x10000, 20)]).unwrap();
        let mut b = [0u8; 10];
        ram.read(0x1000, &mut b).unwrap();
        assert_eq!(b[0], 100);
        let mut c = [0u8; 20];
        ram.read(0x10000, &mut c).unwrap();
        assert_eq!(c[0], 110);
        assert!(ram.read_from_file(&f, 8190, &[(0, 4)]).is_err(), "past EOF");
        assert!(ram.read_from_file(&f, 0, &[(0x3ff0, 32)]).is_err(), "outside memory");
        ram.write(0x2000, b"hello").unwrap();
        ram.write_to_file(&f, 1, &[(0x2000, 5)]).unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(&data[1..6], b"hello");
        let _ = std::fs::remove_file(&path);
    }

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

    #[test]
    fn ring_copies_wrap_once() {
        let ram = GuestRam::new(&[(0, 0x1000)]).unwrap();
        // A 16-byte ring at 0x100, written from index u32::MAX - 2: wraps after 3 bytes.
        ram.write_ring(0x100, 16, u32::MAX - 2, b"abcdefg").unwrap();
        let mut raw = [0u8; 16];
        ram.read(0x100, &mut raw).unwrap();
        assert_eq!(&raw[13..], b"abc");
        assert_eq!(&raw[..4], b"defg");
        let mut back = [0u8; 7];
        ram.read_ring(0x100, 16, u32::MAX - 2, &mut back).unwrap();
        assert_eq!(&back, b"abcdefg");
        assert!(ram.read_ring(0xff8, 16, 0, &mut [0u8; 16]).is_err(), "past the end of RAM");
    }
}
