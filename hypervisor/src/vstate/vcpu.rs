//! A vCPU: PVH entry state, the KVM_RUN loop, and exits handed to the layer
//! above through [`ExitHandler`].

use kvm_bindings::{kvm_regs, kvm_segment, Msrs, kvm_msr_entry};
use xen_abi::vcpu::VcpuHvmX86_64;
use kvm_ioctls::{SyncReg, VcpuExit, VcpuFd};

use super::kvm_ext;
use super::memory::GuestRam;
use super::paging::Paging;

/// An error that stops the vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// A KVM ioctl failed.
    #[error("KVM {what} failed: {err}")]
    Kvm {
        /// Which operation.
        what: &'static str,
        /// The error.
        #[source]
        err: kvm_ioctls::Error,
    },
    /// Something the host's KVM could not set up.
    #[error("{0}")]
    Setup(#[from] std::io::Error),
}

fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VcpuError {
    move |err| VcpuError::Kvm { what, err }
}

/// Why the guest cannot go on: the layer above turns it into a crash.
#[derive(Debug)]
pub enum GuestFault {
    /// KVM could not emulate an instruction (KVM_EXIT_INTERNAL_ERROR).
    EmulationFailure {
        /// The guest instruction pointer.
        rip: u64,
    },
    /// A triple fault (KVM_EXIT_SHUTDOWN).
    TripleFault {
        /// The guest instruction pointer.
        rip: u64,
    },
    /// KVM refused to enter the guest.
    FailEntry(u64),
}

impl std::fmt::Display for GuestFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestFault::EmulationFailure { rip } => write!(
                f,
                "KVM could not emulate the instruction at RIP {rip:#x}; \
                 guests must not use SSE/AVX/x87 or instructions this KVM backend lacks"
            ),
            GuestFault::TripleFault { rip } => write!(f, "triple fault at RIP {rip:#x}"),
            GuestFault::FailEntry(reason) => write!(f, "KVM failed to enter the guest (reason {reason:#x})"),
        }
    }
}

/// The general-purpose registers of a vCPU (KVM's layout).
pub use kvm_bindings::kvm_regs as Regs;

/// What the hypercall layer reads of the calling vCPU: its registers, its
/// mode, and translations through its page tables. [`Cpu`] is the real
/// one; `xen::guest_access::FlatCpu` a stand-in with no KVM behind it, for
/// tests and the hypercall fuzz target.
pub trait GuestCpu {
    /// General-purpose registers.
    fn regs(&self) -> Regs;
    /// Whether the guest calls with the 64-bit ABI.
    fn long_mode(&self) -> bool;
    /// Translates a guest-virtual address (`None`: not mapped).
    fn translate(&self, gva: u64) -> Option<u64>;
    /// The vCPU's id (0 for the boot vCPU).
    fn vcpu_id(&self) -> u32;
}

impl GuestCpu for Cpu<'_> {
    fn regs(&self) -> Regs {
        Cpu::regs(self)
    }
    fn long_mode(&self) -> bool {
        Cpu::long_mode(self)
    }
    fn translate(&self, gva: u64) -> Option<u64> {
        Cpu::translate(self, gva)
    }
    fn vcpu_id(&self) -> u32 {
        self.id
    }
}

/// The registers of a stopped vCPU, as the layer above sees them.
///
/// Nothing here makes an ioctl: registers, general and special, come with
/// the exit in the kvm_run page (KVM_CAP_SYNC_REGS), RAX goes back the same
/// way, and addresses are translated by walking the guest's page tables in
/// `ram` ([`Paging`]).
pub struct Cpu<'a> {
    fd: &'a mut VcpuFd,
    ram: &'a GuestRam,
    long_mode: bool,
    id: u32,
    /// Translations made through this view, for the exit profile.
    translations: std::cell::Cell<u32>,
    /// Whether registers are to be written back on the next entry.
    regs_written: bool,
}

impl<'a> Cpu<'a> {
    fn new(fd: &'a mut VcpuFd, ram: &'a GuestRam, long_mode: bool, id: u32) -> Self {
        Cpu { fd, ram, long_mode, id, translations: std::cell::Cell::new(0), regs_written: false }
    }
}

impl Cpu<'_> {
    /// General-purpose registers (valid through KVM_CAP_SYNC_REGS on every exit).
    pub fn regs(&self) -> kvm_regs {
        self.fd.sync_regs().regs
    }

    /// Sets RAX, the return value of a hypercall.
    pub fn set_rax(&mut self, value: u64) {
        self.fd.sync_regs_mut().regs.rax = value;
        self.fd.set_sync_dirty_reg(SyncReg::Register);
        self.regs_written = true;
    }

    /// Whether the guest was in 64-bit mode when it last set up hypercalls.
    pub fn long_mode(&self) -> bool {
        self.long_mode
    }

    /// Translates a guest-virtual address through the guest's page tables.
    pub fn translate(&self, gva: u64) -> Option<u64> {
        self.translations.set(self.translations.get() + 1);
        Paging::from_sregs(&self.fd.sync_regs().sregs).translate(self.ram, gva)
    }

    /// Re-reads the guest's mode from its segment state.
    pub fn refresh_mode(&mut self) {
        let s = &self.fd.sync_regs().sregs;
        self.long_mode = s.efer & EFER_LMA != 0 && s.cs.l != 0;
    }
}

/// What the vCPU asks of the layer above (the Xen ABI emulation).
pub trait ExitHandler {
    /// The guest wrote `data` to I/O port `port`.
    fn io_out(&self, cpu: &mut Cpu<'_>, port: u16, data: &[u8]);
    /// The guest reads I/O port `port` into `data`.
    fn io_in(&self, port: u16, data: &mut [u8]);
    /// The guest touched physical memory that is not RAM.
    fn mmio(&self, addr: u64, data: &mut [u8], write: bool);
    /// The guest wrote a trapped MSR; false injects #GP.
    fn wrmsr(&self, cpu: &mut Cpu<'_>, index: u32, value: u64) -> bool;
    /// The guest read a trapped MSR; None injects #GP.
    fn rdmsr(&self, index: u32) -> Option<u64>;
    /// The vector to inject into vCPU `vcpu` now, if an upcall is pending.
    fn pending_vector(&self, vcpu: u32) -> Option<u8>;
    /// vCPU `vcpu` halted: block until there is work. With interrupts off
    /// nothing can wake it (Xen takes that vCPU down).
    fn halt(&self, vcpu: u32, interrupts_on: bool);
    /// Whether vCPU `vcpu` must leave its run loop (the domain shut down,
    /// or the vCPU was taken down).
    fn should_stop(&self, vcpu: u32) -> bool;
    /// The guest cannot go on.
    fn fault(&self, fault: GuestFault);
    /// Whether single-step instruction counting (if on) should end now.
    fn counting_done(&self) -> bool {
        false
    }
    /// What a write of `data` to `port` is, as the exit profile
    /// (XENOLITH_EXIT_PROFILE) names it; asked after the write was handled,
    /// and only while profiling.
    fn out_label(&self, _cpu: &Cpu<'_>, port: u16, _data: &[u8]) -> String {
        format!("out {port:#x}")
    }
}

/// Benchmark probes, switched on by environment variables so that normal
/// runs pay nothing for them.
#[derive(Default)]
pub struct Probes {
    /// CLOCK_MONOTONIC ns at which the benchmark started the process
    /// (XENOLITH_BENCH_T0): the first guest entry is reported against it.
    pub t0_ns: Option<u64>,
    /// Count guest instructions by single-stepping (XENOLITH_COUNT_INSTRUCTIONS)
    /// until the handler says `counting_done`.
    pub count_instructions: bool,
    /// With XENOLITH_COUNT_INSTRUCTIONS=all: count until the domain stops
    /// instead (a boot loader prints long before the work being measured).
    pub count_until_stop: bool,
    /// Print CLOCK_MONOTONIC at the first guest entry (XENOLITH_BENCH_STAMP),
    /// for a benchmark that stamps its request in another process.
    pub stamp_entry: bool,
    /// Time every exit by kind (XENOLITH_EXIT_PROFILE) and print the
    /// [`ExitProfile`] when the vCPU's loop ends.
    pub exit_profile: bool,
}

impl Probes {
    /// Reads the probes from the environment.
    pub fn from_env() -> Self {
        Probes {
            t0_ns: std::env::var("XENOLITH_BENCH_T0").ok().and_then(|v| v.parse().ok()),
            count_instructions: std::env::var_os("XENOLITH_COUNT_INSTRUCTIONS").is_some(),
            count_until_stop: std::env::var_os("XENOLITH_COUNT_INSTRUCTIONS").is_some_and(|v| v == "all"),
            stamp_entry: std::env::var_os(STAMP_ENV).is_some(),
            exit_profile: std::env::var_os("XENOLITH_EXIT_PROFILE").is_some(),
        }
    }
}

/// Where one vCPU's exits spend their time on the host side, by kind of
/// exit (for `cargo xtask bench hypercall`): how many, and the nanoseconds
/// of the three legs of each round trip, summed, and the translations the
/// handler made. Printed, one
/// `xenolith-bench: exit ...` line per kind, when the vCPU's loop ends.
pub struct ExitProfile {
    vcpu: u32,
    kinds: Vec<(String, ExitStats)>,
}

/// The sums for one kind of exit.
#[derive(Default)]
struct ExitStats {
    exits: u64,
    /// In KVM_RUN: the entry, the guest's run up to this exit, and the
    /// exit back to user space.
    run_ns: u64,
    /// In the [`ExitHandler`] call.
    handle_ns: u64,
    /// After the handler, before the next KVM_RUN: the stop check and
    /// upcall injection of the run loop.
    reenter_ns: u64,
    /// Guest-virtual addresses the handler translated (see [`Cpu`]).
    translations: u64,
    /// Exits after which the registers were written back.
    regs_written: u64,
}

impl ExitProfile {
    /// A guest's labels are few (hypercall numbers and sub-ops, ports), but
    /// it chooses them: past this many kinds the rest are counted as one.
    const MAX_KINDS: usize = 64;

    fn new(vcpu: u32) -> Self {
        ExitProfile { vcpu, kinds: Vec::new() }
    }

    /// The index of `label`'s sums.
    fn kind(&mut self, label: &str) -> usize {
        if let Some(i) = self.kinds.iter().position(|(l, _)| l == label) {
            return i;
        }
        let label = if self.kinds.len() < Self::MAX_KINDS { label } else { "other" };
        if let Some(i) = self.kinds.iter().position(|(l, _)| l == label) {
            return i;
        }
        self.kinds.push((label.to_string(), ExitStats::default()));
        self.kinds.len() - 1
    }
}

impl Drop for ExitProfile {
    fn drop(&mut self) {
        for (label, s) in &self.kinds {
            let n = s.exits.max(1);
            eprintln!(
                "xenolith-bench: exit vcpu={} kind=\"{label}\" exits={} run_ns={} handle_ns={} reenter_ns={} translations_per_exit={:.2} regs_written={}",
                self.vcpu,
                s.exits,
                s.run_ns / n,
                s.handle_ns / n,
                s.reenter_ns / n,
                s.translations as f64 / n as f64,
                s.regs_written,
            );
        }
    }
}

/// The environment variable that makes the host service's vCPUs, and the
/// clients that ask it for domains, print CLOCK_MONOTONIC stamps.
pub const STAMP_ENV: &str = "XENOLITH_BENCH_STAMP";

/// CLOCK_MONOTONIC in nanoseconds (comparable across processes).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A vCPU ready to run.
pub struct Vcpu {
    fd: VcpuFd,
    /// Its id, as created (KVM's and Xen's vCPU number).
    id: u32,
    long_mode: bool,
    /// Whether [`Vcpu::prepare_thread`] ran.
    kick_ready: bool,
}

const EFER_LMA: u64 = 1 << 10;

/// Flat segments over all of memory: 32-bit protected-mode ones (the PVH
/// entry: code 0x10, data 0x18, TSS 0x20) or long-mode ones (Xen's
/// VCPU_HVM_MODE_64B: code 0xa9b, data 0xc93), with a busy TSS.
fn set_flat_segments(sregs: &mut kvm_bindings::kvm_sregs, long_mode: bool) {
    let code = kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: if long_mode { 0x08 } else { 0x10 },
        type_: 0xb, // execute/read, accessed
        present: 1,
        dpl: 0,
        db: u8::from(!long_mode),
        s: 1,
        l: u8::from(long_mode),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    let data = kvm_segment { selector: code.selector + 8, type_: 0x3, db: 1, l: 0, ..code };
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = kvm_segment { selector: code.selector + 16, type_: 0xb, s: 0, l: 0, db: 0, g: 0, limit: 0x67, ..code };
}

impl Vcpu {
    /// Wraps vCPU `id`, created as `fd`.
    pub fn new(id: u32, fd: VcpuFd) -> Self {
        Self { fd, id, long_mode: false, kick_ready: false }
    }

    /// Installs the CPUID table.
    pub fn set_cpuid(&self, cpuid: &kvm_bindings::CpuId) -> Result<(), VcpuError> {
        self.fd.set_cpuid2(cpuid).map_err(kvm("KVM_SET_CPUID2"))
    }

    /// The TSC frequency KVM gives the guest, in kHz.
    pub fn tsc_khz(&self) -> Result<u32, VcpuError> {
        self.fd.get_tsc_khz().map_err(kvm("KVM_GET_TSC_KHZ"))
    }

    /// Reads the guest's TSC (IA32_TSC).
    pub fn guest_tsc(&self) -> Result<u64, VcpuError> {
        let mut msrs = Msrs::from_entries(&[kvm_msr_entry { index: 0x10, ..Default::default() }])
            .expect("one MSR fits");
        self.fd.get_msrs(&mut msrs).map_err(kvm("KVM_GET_MSRS"))?;
        Ok(msrs.as_slice()[0].data)
    }

    /// Sets the PVH entry state (docs/misc/pvh.pandoc): 32-bit protected mode,
    /// paging off, flat segments, EBX = start info, at `entry`.
    pub fn set_pvh_entry(&mut self, entry: u32, start_info: u32) -> Result<(), VcpuError> {
        let mut sregs = self.fd.get_sregs().map_err(kvm("KVM_GET_SREGS"))?;
        set_flat_segments(&mut sregs, false);
        sregs.cr0 = 0x11; // PE | ET
        sregs.cr4 = 0;
        sregs.efer = 0;
        self.fd.set_sregs(&sregs).map_err(kvm("KVM_SET_SREGS"))?;
        let regs = kvm_regs { rip: entry.into(), rbx: start_info.into(), rflags: 0x2, ..Default::default() };
        self.fd.set_regs(&regs).map_err(kvm("KVM_SET_REGS"))?;
        self.long_mode = false;
        Ok(())
    }

    /// Sets a 64-bit start (a secondary vCPU the guest brought up with
    /// VCPUOP_initialise, VCPU_HVM_MODE_64B): flat long-mode segments as
    /// Xen's `arch_set_info_hvm_guest` sets them, no GDT or IDT, and
    /// `start`'s registers.
    pub fn set_long_mode_start(&mut self, start: &VcpuHvmX86_64) -> Result<(), VcpuError> {
        let mut sregs = self.fd.get_sregs().map_err(kvm("KVM_GET_SREGS"))?;
        set_flat_segments(&mut sregs, true);
        sregs.gdt = kvm_bindings::kvm_dtable::default();
        sregs.idt = kvm_bindings::kvm_dtable::default();
        sregs.cr0 = start.cr0;
        sregs.cr3 = start.cr3;
        sregs.cr4 = start.cr4;
        sregs.efer = start.efer | EFER_LMA;
        self.fd.set_sregs(&sregs).map_err(kvm("KVM_SET_SREGS"))?;
        let r = start;
        let regs = kvm_regs {
            rax: r.rax,
            rcx: r.rcx,
            rdx: r.rdx,
            rbx: r.rbx,
            rsp: r.rsp,
            rbp: r.rbp,
            rsi: r.rsi,
            rdi: r.rdi,
            rip: r.rip,
            rflags: r.rflags | 0x2,
            ..Default::default()
        };
        self.fd.set_regs(&regs).map_err(kvm("KVM_SET_REGS"))?;
        self.long_mode = true;
        Ok(())
    }

    /// Prepares the calling thread to run this vCPU (the kick signal's
    /// handler and KVM's signal mask), before the thread is confined.
    pub fn prepare_thread(&mut self) -> Result<(), VcpuError> {
        if !self.kick_ready {
            kvm_ext::setup_kick(&self.fd)?;
            self.kick_ready = true;
        }
        Ok(())
    }

    /// Runs the guest, whose memory is `ram`, until `handler` says stop.
    /// Runs on the vCPU's own thread.
    pub fn run(&mut self, ram: &GuestRam, handler: &dyn ExitHandler, probes: &Probes) -> Result<(), VcpuError> {
        self.prepare_thread()?;
        // Every exit brings the registers the handlers read (general ones
        // for hypercall arguments, special ones for the mode and page
        // walks) in the kvm_run page, which costs nothing measurable on
        // the exit, where a KVM_GET_SREGS or KVM_TRANSLATE ioctl costs
        // half an exit (`cargo xtask bench hypercall`).
        self.fd.set_sync_valid_reg(SyncReg::Register);
        self.fd.set_sync_valid_reg(SyncReg::SystemRegister);
        let mut counted: Option<u64> = None;
        if probes.count_instructions {
            self.single_step(true)?;
            counted = Some(0);
        }
        if let Some(t0) = probes.t0_ns {
            eprintln!("xenolith-bench: first-entry-us={}", monotonic_ns().saturating_sub(t0) / 1000);
        }
        if probes.stamp_entry {
            eprintln!("xenolith-bench: first-entry-ns={}", monotonic_ns());
        }
        let mut profile = probes.exit_profile.then(|| ExitProfile::new(self.id));
        // The last exit's kind and when its handler returned, so that the
        // loop's work before the next entry is charged to it.
        let mut last: Option<(usize, u64)> = None;
        loop {
            if let Some(n) = counted {
                let stopping = handler.should_stop(self.id);
                if stopping || (!probes.count_until_stop && handler.counting_done()) {
                    self.single_step(false)?;
                    eprintln!("xenolith-bench: instructions-before-output={n}");
                    counted = None;
                }
            }
            if handler.should_stop(self.id) {
                return Ok(());
            }
            self.inject(handler)?;
            let entered = if profile.is_some() { monotonic_ns() } else { 0 };
            if let (Some(p), Some((kind, handled))) = (profile.as_mut(), last.take()) {
                p.kinds[kind].1.reenter_ns += entered.saturating_sub(handled);
            }
            let exit = match self.fd.run() {
                Ok(exit) => exit,
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    kvm_ext::consume_kick();
                    continue;
                }
                Err(e) => return Err(VcpuError::Kvm { what: "KVM_RUN", err: e }),
            };
            let exited = if profile.is_some() { monotonic_ns() } else { 0 };
            // What the profile needs to know of this exit, once handled:
            // its label (an OUT's is the handler's to give), the translations
            // made and whether registers go back.
            let mut out_exit: Option<(u16, [u8; 8], usize, u32, bool)> = None;
            let label: &str = match exit {
                VcpuExit::IoOut(port, data) => {
                    let mut buf = [0u8; 8];
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    let mut cpu = Cpu::new(&mut self.fd, ram, self.long_mode, self.id);
                    handler.io_out(&mut cpu, port, &buf[..n]);
                    out_exit = Some((port, buf, n, cpu.translations.get(), cpu.regs_written));
                    "out"
                }
                VcpuExit::IoIn(port, data) => {
                    handler.io_in(port, data);
                    "in"
                }
                VcpuExit::MmioRead(addr, data) => {
                    handler.mmio(addr, data, false);
                    "mmio"
                }
                VcpuExit::MmioWrite(addr, data) => {
                    let mut buf = [0u8; 8];
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    handler.mmio(addr, &mut buf[..n], true);
                    "mmio"
                }
                VcpuExit::X86Wrmsr(exit) => {
                    let (index, value) = (exit.index, exit.data);
                    let error = exit.error as *mut u8;
                    let mut cpu = Cpu::new(&mut self.fd, ram, self.long_mode, self.id);
                    cpu.refresh_mode();
                    let ok = handler.wrmsr(&mut cpu, index, value);
                    self.long_mode = cpu.long_mode;
                    // SAFETY: `error` points into the kvm_run page, which
                    // stays mapped; the exit's borrow ended above only because
                    // `cpu` needed the fd.
                    unsafe { *error = u8::from(!ok) };
                    "wrmsr"
                }
                VcpuExit::X86Rdmsr(exit) => {
                    match handler.rdmsr(exit.index) {
                        Some(v) => {
                            *exit.data = v;
                            *exit.error = 0;
                        }
                        None => *exit.error = 1,
                    }
                    "rdmsr"
                }
                VcpuExit::Hlt => {
                    let interrupts_on = self.fd.sync_regs().regs.rflags & (1 << 9) != 0;
                    handler.halt(self.id, interrupts_on);
                    "hlt"
                }
                VcpuExit::Debug(_) => {
                    if let Some(n) = counted.as_mut() {
                        *n += 1;
                    }
                    "debug"
                }
                VcpuExit::IrqWindowOpen => "interrupt window",
                VcpuExit::Intr => "signal",
                VcpuExit::Shutdown => {
                    let rip = self.fd.sync_regs().regs.rip;
                    handler.fault(GuestFault::TripleFault { rip });
                    "shutdown"
                }
                VcpuExit::InternalError => {
                    let rip = self.fd.sync_regs().regs.rip;
                    handler.fault(GuestFault::EmulationFailure { rip });
                    "internal error"
                }
                VcpuExit::FailEntry(reason, _) => {
                    handler.fault(GuestFault::FailEntry(reason));
                    "fail entry"
                }
                other => {
                    log::warn!("unexpected vCPU exit {other:?}; stopping the guest");
                    handler.fault(GuestFault::FailEntry(0));
                    "other"
                }
            };
            if let Some(p) = profile.as_mut() {
                let handled = monotonic_ns();
                let (kind, translations, regs_written) = match out_exit {
                    Some((port, buf, n, translations, regs_written)) => {
                        let cpu = Cpu::new(&mut self.fd, ram, self.long_mode, self.id);
                        (p.kind(&handler.out_label(&cpu, port, &buf[..n])), translations, regs_written)
                    }
                    None => (p.kind(label), 0, false),
                };
                let s = &mut p.kinds[kind].1;
                s.exits += 1;
                s.run_ns += exited.saturating_sub(entered);
                s.handle_ns += handled.saturating_sub(exited);
                s.translations += u64::from(translations);
                s.regs_written += u64::from(regs_written);
                last = Some((kind, handled));
            }
        }
    }

    fn single_step(&self, on: bool) -> Result<(), VcpuError> {
        let dbg = kvm_bindings::kvm_guest_debug {
            control: if on { kvm_bindings::KVM_GUESTDBG_ENABLE | kvm_bindings::KVM_GUESTDBG_SINGLESTEP } else { 0 },
            ..Default::default()
        };
        self.fd.set_guest_debug(&dbg).map_err(kvm("KVM_SET_GUEST_DEBUG"))
    }

    /// Injects the pending upcall vector when the guest can take it, or asks
    /// KVM to exit as soon as it can (Xen's level-triggered callback vector).
    fn inject(&mut self, handler: &dyn ExitHandler) -> Result<(), VcpuError> {
        let Some(vector) = handler.pending_vector(self.id) else {
            self.fd.get_kvm_run().request_interrupt_window = 0;
            return Ok(());
        };
        let run = self.fd.get_kvm_run();
        if run.ready_for_interrupt_injection != 0 && run.if_flag != 0 {
            run.request_interrupt_window = 0;
            log::trace!("injecting vector {vector:#x}");
            kvm_ext::interrupt(&self.fd, vector)?;
        } else {
            run.request_interrupt_window = 1;
        }
        Ok(())
    }
}
