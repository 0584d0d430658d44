//! The PV console: a shared ring page (io/console.h) plus an event channel,
//! and the `print!`/`println!` macros.
//!
//! The guest produces into `out` (advancing `out_prod`) and consumes from
//! `in` (advancing `in_cons`); the backend (xenconsoled, or our hypervisor)
//! does the opposite. Indices run freely and wrap at 2^32; a position is
//! `index & (ring size - 1)`. Data is written before the producer index
//! (release) and read after it (acquire); each `print!` notifies the backend
//! once, at its end.
//!
//! Before the ring is set up (early boot, or not on Xen) output goes to I/O
//! port 0xE9, which real Xen logs for PVH guests (guest_loglvl=all), our
//! hypervisor prints to stderr and QEMU's `-debugcon` shows. Xen refuses
//! CONSOLEIO_write from a domU, so that is never used.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use xen_abi::console::{self as xc, IN_RING_SIZE, OUT_RING_SIZE};
use xen_abi::event_channel::Port;

use crate::arch::cpu;
use crate::hypercall::Errno;
use crate::sync::IrqMutex;
use crate::{evtchn, sched, time};

/// The debug port real Xen, our hypervisor and QEMU's debugcon print.
pub const DEBUG_PORT: u16 = 0xE9;
/// How long output may wait for ring space, or a flush for the backend.
pub const BACKEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Free bytes in a ring of `size` given its consumer and producer indices.
/// A corrupt pair (more than `size` apart) counts as full.
pub fn ring_free(cons: u32, prod: u32, size: u32) -> u32 {
    size.saturating_sub(prod.wrapping_sub(cons))
}

/// Bytes ready to consume, or `None` if the indices are more than `size`
/// apart (a corrupt ring).
pub fn ring_used(cons: u32, prod: u32, size: u32) -> Option<u32> {
    let n = prod.wrapping_sub(cons);
    (n <= size).then_some(n)
}

/// Splits `len` bytes at free-running index `idx` of a power-of-two ring
/// into (position, first part, second part after wrapping to 0).
pub fn ring_split(idx: u32, len: u32, size: u32) -> (usize, usize, usize) {
    debug_assert!(size.is_power_of_two() && len <= size);
    let pos = idx & (size - 1);
    let first = len.min(size - pos);
    (pos as usize, first as usize, (len - first) as usize)
}

/// The console page, reached only through the methods below.
struct Ring {
    page: *mut u8,
}

// SAFETY: the page is a fixed guest-physical page; the pointer is only
// dereferenced under the console lock.
unsafe impl Send for Ring {}

impl Ring {
    /// # Safety
    /// `offset` must be one of the xen-abi index offsets (u32, aligned).
    unsafe fn index(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: in the page and aligned (caller); shared with the backend,
        // hence atomic.
        unsafe { &*self.page.add(offset).cast::<AtomicU32>() }
    }

    fn out_cons(&self) -> u32 {
        // SAFETY: a xen-abi index offset.
        unsafe { self.index(xc::OUT_CONS) }.load(Ordering::Acquire)
    }
    fn out_prod(&self) -> u32 {
        // SAFETY: a xen-abi index offset.
        unsafe { self.index(xc::OUT_PROD) }.load(Ordering::Relaxed)
    }
    fn in_cons(&self) -> u32 {
        // SAFETY: a xen-abi index offset.
        unsafe { self.index(xc::IN_CONS) }.load(Ordering::Relaxed)
    }
    fn in_prod(&self) -> u32 {
        // SAFETY: a xen-abi index offset.
        unsafe { self.index(xc::IN_PROD) }.load(Ordering::Acquire)
    }

    /// Copies as much of `bytes` as fits into `out` and publishes it.
    fn push(&mut self, bytes: &[u8]) -> usize {
        let prod = self.out_prod();
        let n = ring_free(self.out_cons(), prod, OUT_RING_SIZE).min(bytes.len() as u32);
        if n == 0 {
            return 0;
        }
        let (pos, first, second) = ring_split(prod, n, OUT_RING_SIZE);
        // SAFETY: `pos + first <= OUT_RING_SIZE` and `second <= pos`, so both
        // copies stay inside the output array; the backend does not read
        // these bytes until it sees the new producer index.
        unsafe {
            let out = self.page.add(xc::OUTPUT);
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), out.add(pos), first);
            core::ptr::copy_nonoverlapping(bytes.as_ptr().add(first), out, second);
            // Release: the data is visible before the index.
            self.index(xc::OUT_PROD)
                .store(prod.wrapping_add(n), Ordering::Release);
        }
        n as usize
    }

    /// Takes up to `buf.len()` input bytes.
    fn pull(&mut self, buf: &mut [u8]) -> usize {
        let cons = self.in_cons();
        let prod = self.in_prod();
        let Some(avail) = ring_used(cons, prod, IN_RING_SIZE) else {
            // A corrupt ring: drop what is there rather than read garbage.
            // SAFETY: a xen-abi index offset.
            unsafe { self.index(xc::IN_CONS) }.store(prod, Ordering::Release);
            return 0;
        };
        let n = avail.min(buf.len() as u32);
        let (pos, first, second) = ring_split(cons, n, IN_RING_SIZE);
        // SAFETY: as in `push`, inside the input array; the bytes up to
        // `in_prod` (acquired) are the backend's finished writes.
        unsafe {
            let inp = self.page.add(xc::INPUT);
            core::ptr::copy_nonoverlapping(inp.add(pos), buf.as_mut_ptr(), first);
            core::ptr::copy_nonoverlapping(inp, buf.as_mut_ptr().add(first), second);
            // Release: the bytes are read before the backend may reuse them.
            self.index(xc::IN_CONS)
                .store(cons.wrapping_add(n), Ordering::Release);
        }
        n as usize
    }
}

/// The PV console.
struct Console {
    ring: Ring,
    port: Port,
    /// The backend did not drain the ring within [`BACKEND_TIMEOUT`]: later
    /// output is dropped when the ring is full instead of waiting again.
    stalled: bool,
    /// Bytes written since the last notification.
    unsent: bool,
}

impl Console {
    fn notify(&mut self) {
        if self.unsent {
            self.unsent = false;
            let _ = evtchn::send(self.port);
        }
    }

    /// Writes everything, waiting (bounded) for the backend when full.
    fn write_all(&mut self, mut bytes: &[u8]) {
        let mut deadline = None;
        while !bytes.is_empty() {
            let n = self.ring.push(bytes);
            if n > 0 {
                self.unsent = true;
                self.stalled = false;
                bytes = &bytes[n..];
                continue;
            }
            if self.stalled {
                return;
            }
            // Full: tell the backend and give it the CPU. The console lock
            // masks interrupts, so yield rather than halt.
            self.notify();
            let now = time::now_ns();
            let until = *deadline.get_or_insert(now + BACKEND_TIMEOUT.as_nanos() as u64);
            if now >= until {
                self.stalled = true;
                return;
            }
            sched::yield_now();
        }
    }

    fn drained(&self) -> bool {
        self.ring.out_cons() == self.ring.out_prod()
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_all(s.as_bytes());
        Ok(())
    }
}

static CONSOLE: IrqMutex<Option<Console>> = IrqMutex::new(None);

/// Output through port 0xE9 (each byte is a VM exit: early boot only).
struct DebugPort;

impl Write for DebugPort {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            // SAFETY: port 0xE9 is a debug sink with no other effect.
            unsafe { cpu::outb(DEBUG_PORT, b) };
        }
        Ok(())
    }
}

/// Why the console could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleError {
    /// An HVM param or event-channel call failed.
    Hypercall(Errno),
    /// The console page is missing or outside the identity map.
    BadPage(u64),
}

impl From<Errno> for ConsoleError {
    fn from(e: Errno) -> Self {
        ConsoleError::Hypercall(e)
    }
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsoleError::Hypercall(e) => write!(f, "hypercall failed: {e}"),
            ConsoleError::BadPage(pfn) => write!(f, "console page frame {pfn:#x} is not usable"),
        }
    }
}

/// Finds the console ring the toolstack set up ([`crate::arch::console_ring`]:
/// HVM params for PVH, start_info for PV) and switches output to it.
pub fn init() -> Result<(), ConsoleError> {
    let ring = crate::arch::console_ring()?;
    let page = ring.addr;
    if page == 0
        || page % xen_abi::PAGE_SIZE as u64 != 0
        || page.saturating_add(xen_abi::PAGE_SIZE as u64) > crate::arch::mapped_limit()
    {
        return Err(ConsoleError::BadPage(page >> xen_abi::PAGE_SHIFT));
    }
    // SAFETY: the page is the console ring Xen named, mapped (checked),
    // reserved in the memory map so nothing else uses it.
    unsafe { attach(page, ring.port) }
}

/// Switches output to the console ring at `page` (an address in the 1:1
/// map) with event channel `port`.
///
/// # Safety
/// `page` must be the identity-mapped console page, used for nothing else.
pub unsafe fn attach(page: u64, port: Port) -> Result<(), ConsoleError> {
    *CONSOLE.lock() = Some(Console {
        ring: Ring {
            page: page as *mut u8,
        },
        port,
        stalled: false,
        unsent: false,
    });
    evtchn::bind(port, on_event, 0)?;
    Ok(())
}

/// Whether output goes to the PV console (else to port 0xE9).
pub fn is_ring_attached() -> bool {
    CONSOLE.lock().is_some()
}

/// Called with input for the console, from the event handler.
pub type InputHandler = fn(&[u8]);
static INPUT_HANDLER: IrqMutex<Option<InputHandler>> = IrqMutex::new(None);

/// Has `handler` called (in interrupt context) with console input as it
/// arrives. Without one, input waits in the ring for [`read`].
pub fn set_input_handler(handler: Option<InputHandler>) {
    *INPUT_HANDLER.lock() = handler;
}

fn on_event(_port: Port, _ctx: usize) {
    let Some(handler) = *INPUT_HANDLER.lock() else {
        return;
    };
    let mut buf = [0u8; 64];
    loop {
        let n = read(&mut buf);
        if n == 0 {
            break;
        }
        // Called without the console lock, so the handler may print.
        handler(&buf[..n]);
    }
}

/// Reads available console input without blocking; returns the count.
pub fn read(buf: &mut [u8]) -> usize {
    let mut guard = CONSOLE.lock();
    let Some(c) = guard.as_mut() else { return 0 };
    let n = c.ring.pull(buf);
    if n > 0 {
        // The backend may be waiting for room in the input ring.
        c.unsent = true;
        c.notify();
    }
    n
}

/// Writes raw bytes to the console.
pub fn write_bytes(bytes: &[u8]) {
    let mut guard = CONSOLE.lock();
    match guard.as_mut() {
        Some(c) => {
            c.write_all(bytes);
            c.notify();
        }
        None => {
            for &b in bytes {
                // SAFETY: port 0xE9 is a debug sink with no other effect.
                unsafe { cpu::outb(DEBUG_PORT, b) };
            }
        }
    }
}

/// Implementation of `print!`: one lock, one notification per call.
#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut guard = CONSOLE.lock();
    match guard.as_mut() {
        Some(c) => {
            let _ = c.write_fmt(args);
            c.notify();
        }
        None => {
            let _ = DebugPort.write_fmt(args);
        }
    }
}

/// Writes to port 0xE9 only (early boot, or diagnosing the console itself).
pub fn early_print(args: fmt::Arguments<'_>) {
    let _ = DebugPort.write_fmt(args);
}

/// Prints from a context that may have interrupted a console writer
/// (panic, exception): takes the lock even if held, and also copies the
/// text to port 0xE9 so it reaches the hypervisor log whatever happens.
pub fn emergency_print(args: fmt::Arguments<'_>) {
    let mut guard = match CONSOLE.try_lock() {
        Some(g) => g,
        // SAFETY: the caller is about to crash the domain; the interrupted
        // writer never resumes.
        None => unsafe { CONSOLE.force_lock() },
    };
    if let Some(c) = guard.as_mut() {
        let _ = c.write_fmt(args);
        c.notify();
    }
    drop(guard);
    early_print(args);
}

/// Waits until the backend has read all output, for at most `timeout` of
/// system time. Returns whether it did.
pub fn flush(timeout: Duration) -> bool {
    let deadline = time::now_ns().saturating_add(timeout.as_nanos() as u64);
    loop {
        {
            let mut guard = CONSOLE.lock();
            let Some(c) = guard.as_mut() else { return true };
            if c.drained() {
                return true;
            }
            c.unsent = true;
            c.notify();
        }
        let now = time::now_ns();
        if now >= deadline {
            return false;
        }
        if cpu::interrupts_enabled() {
            // Halts until the backend's notification or 1 ms, whichever first.
            time::sleep_until((now + 1_000_000).min(deadline));
        } else {
            sched::yield_now();
        }
    }
}

/// Prints to the console, like `std::print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the console, like `std::println!`.
#[macro_export]
macro_rules! println {
    () => { $crate::console::_print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_wraps_at_2_pow_32() {
        assert_eq!(ring_free(0, 0, 2048), 2048);
        assert_eq!(ring_free(0, 2048, 2048), 0);
        assert_eq!(ring_free(10, 20, 2048), 2038);
        assert_eq!(ring_free(u32::MAX - 5, 10, 2048), 2048 - 16);
        // Corrupt: producer more than a ring ahead, or behind.
        assert_eq!(ring_free(0, 5000, 2048), 0);
        assert_eq!(ring_free(10, 5, 2048), 0);
    }

    #[test]
    fn used_detects_corruption() {
        assert_eq!(ring_used(5, 5, 1024), Some(0));
        assert_eq!(ring_used(u32::MAX, 3, 1024), Some(4));
        assert_eq!(ring_used(0, 1024, 1024), Some(1024));
        assert_eq!(ring_used(0, 1025, 1024), None);
    }

    #[test]
    fn split_wraps() {
        assert_eq!(ring_split(0, 10, 2048), (0, 10, 0));
        assert_eq!(ring_split(2040, 10, 2048), (2040, 8, 2));
        assert_eq!(ring_split(4096 + 2047, 2, 2048), (2047, 1, 1));
        assert_eq!(ring_split(u32::MAX, 2, 1024), (1023, 1, 1));
    }

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    #[test]
    fn push_and_pull_through_a_page() {
        let mut page = Box::new(Page([0; 4096]));
        let mut ring = Ring {
            page: page.0.as_mut_ptr(),
        };
        // Start near the wrap point of the output ring.
        // SAFETY: offsets from xen-abi, page is ours.
        unsafe {
            ring.index(xc::OUT_PROD).store(2040, Ordering::Relaxed);
            ring.index(xc::OUT_CONS).store(2040, Ordering::Relaxed);
        }
        assert_eq!(ring.push(b"0123456789"), 10);
        assert_eq!(ring.out_prod(), 2050);
        assert_eq!(&page.0[xc::OUTPUT + 2040..xc::OUTPUT + 2048], b"01234567");
        assert_eq!(&page.0[xc::OUTPUT..xc::OUTPUT + 2], b"89");
        let mut ring = Ring {
            page: page.0.as_mut_ptr(),
        };
        // Fill: only 2038 more bytes fit.
        assert_eq!(ring.push(&[b'x'; 4000]), 2038);
        assert_eq!(ring.push(b"y"), 0);

        // Input: the backend put "hi" at the wrap point.
        page.0[xc::INPUT + 1023] = b'h';
        page.0[xc::INPUT] = b'i';
        let mut ring = Ring {
            page: page.0.as_mut_ptr(),
        };
        // SAFETY: as above.
        unsafe {
            ring.index(xc::IN_CONS).store(1023, Ordering::Relaxed);
            ring.index(xc::IN_PROD).store(1025, Ordering::Relaxed);
        }
        let mut buf = [0u8; 8];
        assert_eq!(ring.pull(&mut buf), 2);
        assert_eq!(&buf[..2], b"hi");
        assert_eq!(ring.in_cons(), 1025);
        assert_eq!(ring.pull(&mut buf), 0);
    }
}
