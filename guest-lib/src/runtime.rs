//! The start-up sequence and the [`main!`](crate::main) macro.
//!
//! After the arch entry (long mode, IDT or PV trap table loaded, interrupts
//! off), `start` brings the hypervisor interface up in dependency order,
//! enables interrupts, runs the application's main, and powers off when it
//! returns. The order is the same in both boot modes; only `arch` calls
//! differ. Hypercalls made, in order (PVH on Xen):
//!
//! 1. WRMSR to the hypercall MSR (not a hypercall: installs the page);
//! 2. `memory_op(XENMEM_memory_map)`, only if the start info has no map;
//! 3. `memory_op(XENMEM_add_to_physmap, shared_info)`;
//! 4. `hvm_op(set_param CALLBACK_IRQ = vector)`;
//! 5. `hvm_op(get_param CONSOLE_PFN)`, `hvm_op(get_param CONSOLE_EVTCHN)`;
//! 6. `event_channel_op(unmask)` for the console port;
//! 7. `event_channel_op(bind_virq VIRQ_TIMER)`, `event_channel_op(unmask)`.
//!
//! Classic PV (after the entry's own calls, see `arch::x86_64::pv`):
//! `xen_version`; `mmu_update` batches mapping the rest of RAM;
//! `update_va_mapping` of the shared info frame; `event_channel_op(unmask)`
//! for the console port; bind and unmask VIRQ_TIMER; `xen_version` when an
//! upcall is already pending as interrupts are enabled.

/// How the guest was entered.
#[derive(Clone, Copy, Debug)]
pub enum BootMode {
    /// PVH: 32-bit entry with EBX = `hvm_start_info`.
    Pvh {
        /// Physical address of `hvm_start_info`.
        start_info_paddr: u64,
    },
    /// Classic 64-bit PV: entry with RSI = `start_info`.
    Pv {
        /// The start info, as the arch entry read it.
        start_info: crate::boot::PvStartInfo,
        /// The end of Xen's bootstrap elements (its boot stack top).
        bootstrap_end: u64,
    },
}

/// Defines the guest's entry point: `guest_lib::main!(my_main)` with
/// `fn my_main(boot: &guest_lib::BootInfo)`. Returning from it powers the domain off.
///
/// `guest_lib::main!(my_main, heap = guest_lib::heap::Placement::above_image(48 << 20))`
/// also says where the heap goes ([`crate::heap::Placement`]; the default
/// is [`Placement::DEFAULT`](crate::heap::Placement::DEFAULT)).
#[macro_export]
macro_rules! main {
    ($main:path) => {
        $crate::main!($main, heap = $crate::heap::Placement::DEFAULT);
    };
    ($main:path, heap = $placement:expr) => {
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub fn __xenolith_main(boot: &'static $crate::BootInfo) {
            let f: fn(&'static $crate::BootInfo) = $main;
            f(boot)
        }

        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub static __xenolith_heap_placement: $crate::heap::Placement = $placement;
    };
}

#[cfg(target_os = "none")]
pub use imp::start;

#[cfg(target_os = "none")]
mod imp {
    use core::cell::UnsafeCell;

    use log::LevelFilter;
    use xen_abi::memory::{MemoryMap, E820_ENTRY_SIZE, XENMEM_MEMORY_MAP};

    use super::BootMode;
    use crate::arch::{self, cpu};
    use crate::boot::BootInfo;
    use crate::{console, heap, hypercall, logger, shared_info, shutdown, time};

    unsafe extern "Rust" {
        /// Defined by the application through `guest_lib::main!`.
        fn __xenolith_main(boot: &'static BootInfo);
        /// Defined by the application through `guest_lib::main!`.
        static __xenolith_heap_placement: heap::Placement;
    }

    struct BootCell(UnsafeCell<BootInfo>);
    // SAFETY: written only by `start`, before anything else can read it.
    unsafe impl Sync for BootCell {}
    static BOOT: BootCell = BootCell(UnsafeCell::new(BootInfo::EMPTY));

    /// E820 entries asked of XENMEM_memory_map when the start info has none.
    const E820_MAX: usize = crate::boot::MAX_MEMMAP;

    macro_rules! early {
        ($($arg:tt)*) => { console::early_print(format_args!($($arg)*)) };
    }

    fn fatal(what: &str, err: &dyn core::fmt::Display) -> ! {
        console::emergency_print(format_args!("xenolith: {what}: {err}\n"));
        shutdown::crash()
    }

    /// Without Xen (e.g. bare QEMU `-kernel`): say so on port 0xE9, with
    /// what the start info holds (proof that entry, long mode, the IDT and
    /// boot parsing work), then end the run.
    fn not_on_xen(mode: BootMode) -> ! {
        early!("xenolith: not running on Xen (no XenVMMXenVMM CPUID signature); halting\n");
        let BootMode::Pvh { start_info_paddr } = mode else {
            // A PV entry means Xen built the domain: cannot happen.
            cpu::halt_forever()
        };
        match BootInfo::from_hvm_start_info(&arch::IdentityMem, start_info_paddr) {
            Ok(b) => early!(
                "xenolith: start info v{} at {:#x}: command line \"{}\", {} KiB RAM in {} ranges, {} modules\n",
                b.start_info_version(),
                start_info_paddr,
                b.cmdline(),
                b.total_ram() >> 10,
                b.memory_map().len(),
                b.modules().len()
            ),
            Err(e) => early!("xenolith: {e}\n"),
        }
        shutdown::exit_without_xen(shutdown::Reason::Crash);
        cpu::halt_forever()
    }

    /// Brings the guest up and runs the application. Called by the arch
    /// entry with interrupts disabled and the IDT (or PV trap table) loaded.
    pub fn start(mode: BootMode) -> ! {
        let xen = match mode {
            BootMode::Pvh { .. } => hypercall::init(),
            BootMode::Pv { .. } => Some(hypercall::init_prefilled()),
        };
        let Some(xen) = xen else { not_on_xen(mode) };

        // SAFETY: this is the only writer, single-threaded, interrupts off,
        // and no shared reference to BOOT exists before the line below.
        let boot = unsafe { &mut *BOOT.0.get() };
        match mode {
            BootMode::Pvh { start_info_paddr } => {
                if let Err(e) = boot.parse_hvm_start_info(&arch::IdentityMem, start_info_paddr) {
                    fatal("bad hvm_start_info", &e);
                }
            }
            BootMode::Pv {
                start_info,
                bootstrap_end,
            } => boot.parse_pv_start_info(&arch::IdentityMem, &start_info, bootstrap_end),
        }
        if boot.memory_map().is_empty() {
            let mut raw = [0u8; E820_MAX * E820_ENTRY_SIZE];
            let mut arg = MemoryMap {
                nr_entries: E820_MAX as u32,
                pad: 0,
                buffer: raw.as_mut_ptr() as u64,
            };
            // SAFETY: XENMEM_memory_map writes at most nr_entries 20-byte
            // entries into `raw`, which has room for them.
            match unsafe { hypercall::memory_op(XENMEM_MEMORY_MAP, &mut arg) } {
                Ok(_) => boot.set_e820(&raw, arg.nr_entries as usize),
                Err(e) => fatal("no memory map (XENMEM_memory_map)", &e),
            }
        }
        let mapped = arch::map_ram(boot);
        let boot: &'static BootInfo = boot;

        if let Err(e) = shared_info::init() {
            fatal("cannot map shared info", &e);
        }
        if let Err(e) = arch::init_event_delivery() {
            fatal("cannot route event upcalls (HVM_PARAM_CALLBACK_IRQ)", &e);
        }
        if let Err(e) = console::init() {
            early!("xenolith: no PV console ({e}); printing to port 0xE9\n");
        }
        // SAFETY: `guest_lib::main!` defines the symbol with this type; it
        // is an immutable static.
        let placement = unsafe { __xenolith_heap_placement };
        let heap = heap::init(boot, placement);
        logger::init(logger::level_from_cmdline(boot.cmdline()).unwrap_or(LevelFilter::Info));
        if let Err(e) = time::init() {
            fatal("cannot bind VIRQ_TIMER", &e);
        }
        cpu::enable_interrupts();

        log::debug!(
            "xenolith: Xen {}.{} ({:?}, CPUID base {:#x}), start info v{}",
            xen.major,
            xen.minor,
            arch::mode(),
            xen.base,
            boot.start_info_version()
        );
        match heap {
            Some(h) => log::debug!(
                "xenolith: heap {:#x}..{:#x}, 1:1 map 0..{mapped:#x}",
                h.start,
                h.end
            ),
            None => log::warn!("xenolith: no free RAM for a heap"),
        }
        let w = boot.warnings();
        if w != Default::default() {
            log::warn!("xenolith: boot info problems: {w:?}");
        }

        // SAFETY: the symbol is defined by `guest_lib::main!` with exactly
        // this signature.
        unsafe { __xenolith_main(boot) };
        shutdown::poweroff()
    }
}
