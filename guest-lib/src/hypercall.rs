//! Finding Xen and calling it.
//!
//! Xen announces itself in CPUID leaves 0x40000000 + 0x100·n with the
//! signature "XenVMMXenVMM". Leaf base+2 names an MSR; writing a page's
//! physical address to it makes Xen fill that page with one 32-byte stub per
//! hypercall (VMCALL/VMMCALL on Xen, port I/O on our hypervisor: a guest
//! that calls through the page works on both, a hard-coded VMCALL does not).
//! A hypercall is a `call` to `hypercall_page + nr * 32` with arguments in
//! RDI, RSI, RDX, R10, R8 and the result in RAX.
//!
//! This is the crate's main `unsafe` module. Its invariants:
//! - the hypercall page is a 4 KiB-aligned page of our executable image,
//!   reserved for Xen to write (`.text.hypercall_page`), identity-mapped;
//! - no stub is called before [`init`] has registered the page, or (PV)
//!   `init_prefilled` has noted that the domain builder filled it ([`ready`]);
//! - every argument pointer handed to Xen points to a live object of the
//!   layout Xen expects for that command (the xen-abi types), for the
//!   duration of the call. The typed wrappers below guarantee it.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use xen_abi::{cpuid as xcpuid, errno, hypercall as nr};

use crate::arch::cpu;

/// A negative errno returned by a hypercall.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i64);

impl Errno {
    /// Converts a raw return value: negative is an error, else the value.
    #[inline]
    pub fn check(ret: i64) -> Result<u64, Errno> {
        if ret < 0 {
            Err(Errno(-ret))
        } else {
            Ok(ret as u64)
        }
    }

    /// The symbolic name (EINVAL...) when known.
    pub fn name(self) -> &'static str {
        match self.0 {
            errno::EPERM => "EPERM",
            errno::ENOENT => "ENOENT",
            errno::ESRCH => "ESRCH",
            errno::EIO => "EIO",
            errno::E2BIG => "E2BIG",
            errno::EAGAIN => "EAGAIN",
            errno::ENOMEM => "ENOMEM",
            errno::EACCES => "EACCES",
            errno::EFAULT => "EFAULT",
            errno::EBUSY => "EBUSY",
            errno::EEXIST => "EEXIST",
            errno::ENODEV => "ENODEV",
            errno::EINVAL => "EINVAL",
            errno::ENOSPC => "ENOSPC",
            errno::ERANGE => "ERANGE",
            errno::ENOSYS => "ENOSYS",
            errno::ETIME => "ETIME",
            errno::EOPNOTSUPP => "EOPNOTSUPP",
            _ => "errno",
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (-{})", self.name(), self.0)
    }
}

/// What the Xen CPUID leaves told us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCpuid {
    /// The base leaf (0x40000000, or 0x40000100 when Viridian comes first).
    pub base: u32,
    /// Xen's major version.
    pub major: u16,
    /// Xen's minor version.
    pub minor: u16,
    /// The hypercall-page MSR.
    pub msr: u32,
}

/// Searches the hypervisor CPUID leaves for Xen's signature.
pub fn detect() -> Option<XenCpuid> {
    let mut base = xcpuid::FIRST_LEAF;
    while base <= xcpuid::LAST_BASE {
        let r = cpu::cpuid(base, 0);
        if r.ebx == xcpuid::SIGNATURE_EBX
            && r.ecx == xcpuid::SIGNATURE_ECX
            && r.edx == xcpuid::SIGNATURE_EDX
            && r.eax >= base + 2
        {
            let version = cpu::cpuid(base + 1, 0).eax;
            let msr = cpu::cpuid(base + 2, 0).ebx;
            return Some(XenCpuid {
                base,
                major: (version >> 16) as u16,
                minor: version as u16,
                msr,
            });
        }
        base += xcpuid::LEAF_STEP;
    }
    None
}

static READY: AtomicBool = AtomicBool::new(false);

/// Whether the hypercall page is installed (we run on Xen).
#[inline]
pub fn ready() -> bool {
    READY.load(Ordering::Acquire)
}

#[cfg(target_os = "none")]
mod page {
    // The page Xen fills. It starts as UD2s so that a call before `init`
    // faults with a clear report instead of running garbage.
    core::arch::global_asm!(
        r#"
        .section .text.hypercall_page, "ax"
        .balign 4096
        .globl hypercall_page
    hypercall_page:
        .rept 2048
        ud2
        .endr
        "#,
        options(att_syntax)
    );

    unsafe extern "C" {
        pub static hypercall_page: [u8; 4096];
    }

    /// The physical (= virtual, identity map) address of the page.
    pub fn addr() -> u64 {
        (&raw const hypercall_page) as u64
    }
}

/// Where the hypercall page is (its physical address = identity-mapped
/// virtual address): a kernel handing the domain over may need it.
#[cfg(target_os = "none")]
pub fn page_addr() -> u64 {
    page::addr()
}

/// Finds Xen and installs the hypercall page. Returns what CPUID said, or
/// `None` when not running on Xen (then no hypercall may be made).
#[cfg(target_os = "none")]
pub fn init() -> Option<XenCpuid> {
    let xen = detect()?;
    // SAFETY: the MSR is the one Xen named; the page is ours, aligned, in
    // an executable section and reserved for Xen to overwrite (see above).
    unsafe { cpu::wrmsr(xen.msr, page::addr()) };
    READY.store(true, Ordering::Release);
    Some(xen)
}

/// Host builds never run on Xen.
#[cfg(not(target_os = "none"))]
pub fn init() -> Option<XenCpuid> {
    None
}

/// Classic PV: the domain builder already filled the hypercall page (the
/// XEN_ELFNOTE_HYPERCALL_PAGE note names it) with SYSCALL stubs, and a PV
/// guest need not see Xen's CPUID leaves (CPUID is not intercepted without
/// CPUID faulting) nor may it write MSRs. So only mark the page ready, then
/// ask XENVER_version. Idempotent.
#[cfg(target_os = "none")]
pub fn init_prefilled() -> XenCpuid {
    READY.store(true, Ordering::Release);
    let (major, minor) = version().unwrap_or((0, 0));
    XenCpuid {
        base: 0,
        major,
        minor,
        msr: 0,
    }
}

/// Raw hypercall with up to five arguments.
///
/// # Safety
/// [`ready`] must be true, and the arguments must be valid for hypercall
/// `nr` (pointers to live, correctly laid-out objects Xen may read/write).
#[cfg(target_os = "none")]
#[inline]
pub unsafe fn hypercall5(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    debug_assert!(nr < nr::MAX);
    let entry = page::addr() + nr as u64 * xen_abi::hypercall::STUB_SIZE as u64;
    let ret: i64;
    // SAFETY: forwarded to the caller. Xen may clobber the argument
    // registers (debug builds poison them); a PV `syscall` stub would also
    // clobber RCX and R11, so all of these are declared clobbered.
    unsafe {
        core::arch::asm!(
            "call {entry}",
            entry = in(reg) entry,
            lateout("rax") ret,
            inout("rdi") a1 => _,
            inout("rsi") a2 => _,
            inout("rdx") a3 => _,
            inout("r10") a4 => _,
            inout("r8") a5 => _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// Raw, unchecked hypercall of any number, for hostile tests of a
/// hypervisor (examples/hostile): numbers inside the page go through their
/// stub; a number past the page's 128 stubs cannot, so it is made by
/// entering stub 0 after its `mov eax, imm32` (5 bytes) with EAX already
/// set: the rest of a Xen HVM stub (VMCALL, or our `out`) takes the number
/// from EAX. If stub 0 does not start with that `mov` (classic PV's stubs,
/// say) a number past the page returns -ENOSYS without a call.
///
/// # Safety
/// As for [`hypercall5`]: [`ready`] must be true, and whatever the call
/// does with the arguments (writes through pointers, moving or freeing
/// pages, shutting down) is the caller's to survive.
#[cfg(target_os = "none")]
pub unsafe fn hypercall_any(nr: u32, a: [u64; 5]) -> i64 {
    if nr < nr::MAX {
        // SAFETY: forwarded to the caller.
        return unsafe { hypercall5(nr, a[0], a[1], a[2], a[3], a[4]) };
    }
    // SAFETY: the page is ours and readable (see the module invariants).
    let first = unsafe { core::ptr::read_volatile(page::addr() as *const u8) };
    if first != 0xb8 {
        return -errno::ENOSYS;
    }
    let entry = page::addr() + 5;
    let ret: i64;
    // SAFETY: forwarded to the caller; entry is inside stub 0, after its
    // `mov eax, imm32`, and the stub ends with `ret`. Clobbers as in
    // `hypercall5`.
    unsafe {
        core::arch::asm!(
            "call {entry}",
            entry = in(reg) entry,
            inout("rax") u64::from(nr) => ret,
            inout("rdi") a[0] => _,
            inout("rsi") a[1] => _,
            inout("rdx") a[2] => _,
            inout("r10") a[3] => _,
            inout("r8") a[4] => _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// Host builds: every hypercall fails with -ENOSYS.
///
/// # Safety
/// Always safe on the host; unsafe to match the guest signature.
#[cfg(not(target_os = "none"))]
pub unsafe fn hypercall5(_nr: u32, _a1: u64, _a2: u64, _a3: u64, _a4: u64, _a5: u64) -> i64 {
    -errno::ENOSYS
}

/// Defines `hypercallN`: a raw hypercall that loads only the argument
/// registers it uses. Xen ignores the rest (Linux's wrappers leave them as
/// they are too), and on a host whose KVM emulates every instruction each
/// load saved is a microsecond. The unused ones are still declared
/// clobbered, as Xen may poison them. Host builds go through
/// [`hypercall5`], which fails.
macro_rules! hypercall_n {
    ($(#[$doc:meta])* $name:ident($($arg:ident => $reg:tt),*); unused $($unused:tt),*) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// As for [`hypercall5`].
        #[cfg(target_os = "none")]
        #[inline]
        pub unsafe fn $name(nr: u32 $(, $arg: u64)*) -> i64 {
            debug_assert!(nr < nr::MAX);
            let entry = page::addr() + nr as u64 * xen_abi::hypercall::STUB_SIZE as u64;
            let ret: i64;
            // SAFETY: forwarded to the caller; clobbers as in `hypercall5`.
            unsafe {
                core::arch::asm!(
                    "call {entry}",
                    entry = in(reg) entry,
                    lateout("rax") ret,
                    $(inout($reg) $arg => _,)*
                    $(lateout($unused) _,)*
                    lateout("rcx") _,
                    lateout("r11") _,
                );
            }
            ret
        }

        $(#[$doc])*
        ///
        /// # Safety
        /// Always safe on the host; unsafe to match the guest signature.
        #[cfg(not(target_os = "none"))]
        #[inline]
        pub unsafe fn $name(nr: u32 $(, $arg: u64)*) -> i64 {
            let a = [$($arg,)* 0, 0, 0, 0, 0];
            // SAFETY: the host build never calls anything.
            unsafe { hypercall5(nr, a[0], a[1], a[2], a[3], a[4]) }
        }
    };
}

hypercall_n!(
    /// Raw hypercall with no argument. See [`hypercall5`].
    hypercall0(); unused "rdi", "rsi", "rdx", "r10", "r8"
);
hypercall_n!(
    /// Raw hypercall with one argument. See [`hypercall5`].
    hypercall1(a1 => "rdi"); unused "rsi", "rdx", "r10", "r8"
);
hypercall_n!(
    /// Raw hypercall with two arguments. See [`hypercall5`].
    hypercall2(a1 => "rdi", a2 => "rsi"); unused "rdx", "r10", "r8"
);
hypercall_n!(
    /// Raw hypercall with three arguments. See [`hypercall5`].
    hypercall3(a1 => "rdi", a2 => "rsi", a3 => "rdx"); unused "r10", "r8"
);
hypercall_n!(
    /// Raw hypercall with four arguments. See [`hypercall5`].
    hypercall4(a1 => "rdi", a2 => "rsi", a3 => "rdx", a4 => "r10"); unused "r8"
);

/// Fails with ENOSYS instead of calling when Xen was not found, so code
/// that runs before or without Xen cannot jump into the UD2 page.
#[inline]
fn guarded(f: impl FnOnce() -> i64) -> Result<u64, Errno> {
    if !ready() {
        return Err(Errno(errno::ENOSYS));
    }
    Errno::check(f())
}

/// `memory_op(cmd, arg)`.
///
/// # Safety
/// `arg` must be the structure `cmd` expects, and whatever that command
/// does to the physical address space (e.g. placing a Xen page over a
/// guest frame) must not invalidate memory Rust still uses.
pub unsafe fn memory_op<T>(cmd: u32, arg: &mut T) -> Result<u64, Errno> {
    // SAFETY: `arg` is live for the call; its type is the caller's promise.
    guarded(|| unsafe { hypercall2(nr::MEMORY_OP, cmd as u64, arg as *mut T as u64) })
}

/// `event_channel_op(cmd, arg)` with one of the xen_abi::event_channel types.
///
/// # Safety
/// `arg` must be the structure `cmd` expects.
pub unsafe fn event_channel_op<T>(cmd: u32, arg: &mut T) -> Result<u64, Errno> {
    // SAFETY: `arg` is live for the call; its type is the caller's promise.
    guarded(|| unsafe { hypercall2(nr::EVENT_CHANNEL_OP, cmd as u64, arg as *mut T as u64) })
}

/// `sched_op(cmd, arg)`.
///
/// # Safety
/// `arg` must be the structure `cmd` expects.
pub unsafe fn sched_op<T>(cmd: u32, arg: &mut T) -> Result<u64, Errno> {
    // SAFETY: `arg` is live for the call; its type is the caller's promise.
    guarded(|| unsafe { hypercall2(nr::SCHED_OP, cmd as u64, arg as *mut T as u64) })
}

/// `vcpu_op(cmd, vcpu, arg)`.
///
/// # Safety
/// `arg` must be the structure `cmd` expects.
pub unsafe fn vcpu_op<T>(cmd: u32, vcpu: u32, arg: &mut T) -> Result<u64, Errno> {
    // SAFETY: `arg` is live for the call; its type is the caller's promise.
    guarded(|| unsafe { hypercall3(nr::VCPU_OP, cmd as u64, vcpu as u64, arg as *mut T as u64) })
}

/// `xen_version(cmd, arg)`.
///
/// # Safety
/// `arg` must be the buffer or structure `cmd` expects.
pub unsafe fn xen_version<T>(cmd: u32, arg: &mut T) -> Result<u64, Errno> {
    // SAFETY: `arg` is live for the call; its type is the caller's promise.
    guarded(|| unsafe { hypercall2(nr::XEN_VERSION, cmd as u64, arg as *mut T as u64) })
}

/// The Xen version as (major, minor): XENVER_version, which needs no buffer.
#[inline]
pub fn version() -> Result<(u16, u16), Errno> {
    // SAFETY: XENVER_version reads and writes no guest memory.
    let v = guarded(|| unsafe {
        hypercall2(nr::XEN_VERSION, xen_abi::version::XENVER_VERSION.into(), 0)
    })?;
    Ok(((v >> 16) as u16, v as u16))
}

/// Reads an HVM parameter of this domain (HVMOP_get_param).
pub fn hvm_get_param(index: u32) -> Result<u64, Errno> {
    use xen_abi::hvm::{HvmParam, HVMOP_GET_PARAM};
    let mut p = HvmParam {
        domid: xen_abi::DOMID_SELF,
        pad: 0,
        index,
        value: 0,
    };
    // SAFETY: HVMOP_get_param takes a xen_hvm_param, which `p` is.
    guarded(|| unsafe {
        hypercall2(
            nr::HVM_OP,
            HVMOP_GET_PARAM as u64,
            &mut p as *mut HvmParam as u64,
        )
    })?;
    Ok(p.value)
}

/// Writes an HVM parameter of this domain (HVMOP_set_param).
///
/// # Safety
/// Some parameters change how Xen writes into guest memory or delivers
/// interrupts (e.g. CALLBACK_IRQ needs an IDT gate for its vector).
pub unsafe fn hvm_set_param(index: u32, value: u64) -> Result<(), Errno> {
    use xen_abi::hvm::{HvmParam, HVMOP_SET_PARAM};
    let mut p = HvmParam {
        domid: xen_abi::DOMID_SELF,
        pad: 0,
        index,
        value,
    };
    // SAFETY: HVMOP_set_param takes a xen_hvm_param, which `p` is.
    guarded(|| unsafe {
        hypercall2(
            nr::HVM_OP,
            HVMOP_SET_PARAM as u64,
            &mut p as *mut HvmParam as u64,
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_check() {
        assert_eq!(Errno::check(5), Ok(5));
        assert_eq!(Errno::check(-22), Err(Errno(errno::EINVAL)));
        assert_eq!(format!("{}", Errno(errno::EINVAL)), "EINVAL (-22)");
    }

    #[test]
    fn host_has_no_hypercalls() {
        assert!(!ready());
        assert_eq!(hvm_get_param(0), Err(Errno(errno::ENOSYS)));
    }
}
