//! The pvboot guest's main flow: read the command line, connect the disks,
//! decide what to boot, boot it; on failure, say why in one line and try
//! the next thing.

pub mod chain;
pub mod disks;
pub mod ram;

use alloc::string::String;
use alloc::vec::Vec;

use guest_lib::{println, shutdown, time, BootInfo};
use pvboot::bootargs::BootArgs;
use pvboot::disk::BlockDevice as _;

use self::chain::{fmt_ms, Entry};

/// The most heap pvboot takes (above its image): file-system caches,
/// config files, the boot information it builds.
pub const HEAP_MAX: u64 = 48 << 20;

/// Moments of one boot, as pvclock system time (on our hypervisor: ns
/// since the domain started; on Xen: since the host booted, so only the
/// differences mean something there).
#[derive(Debug, Default, Clone, Copy)]
pub struct Timing {
    /// pvboot's main was entered.
    pub main: u64,
    /// The disks were connected.
    pub disks: u64,
    /// The kernel file was found (config read).
    pub found: u64,
    /// The kernel was loaded.
    pub loaded: u64,
    /// Everything was ready for the hand-off.
    pub handoff: u64,
    /// Bytes read into place (kernel file and modules).
    pub bytes: u64,
}

impl Timing {
    /// One line for benchmarks: every moment in ms of system time, and the
    /// load rate.
    pub fn print(&self) {
        let load_ns = self.loaded.saturating_sub(self.found).max(1);
        let kib_s = self.bytes.saturating_mul(1_000_000_000) / load_ns / 1024;
        println!(
            "pvboot: timing (ms of system time): main {} disks {} config/kernel found {} kernel loaded {} hand-off {}; {} bytes loaded in {} ms ({} KiB/s)",
            fmt_ms(self.main),
            fmt_ms(self.disks),
            fmt_ms(self.found),
            fmt_ms(self.loaded),
            fmt_ms(self.handoff),
            self.bytes,
            fmt_ms(load_ns),
            kib_s
        );
    }
}

/// The entries to try, in order, from the command line.
fn entries(args: &BootArgs) -> Vec<Entry> {
    let Some(kernel) = &args.kernel else { return Vec::new() };
    alloc::vec![Entry {
        title: String::from("kernel= from the command line"),
        root: args.root.clone(),
        kernel: kernel.clone(),
        args: args.append.clone(),
        modules: args.modules.clone(),
    }]
}

/// pvboot's main.
pub fn run(boot: &'static BootInfo) {
    let mut timing = Timing { main: time::now_ns(), ..Default::default() };
    let image = guest_lib::arch::image_range();
    let heap = guest_lib::heap::range();
    println!(
        "pvboot: {} MiB RAM; pvboot at [{:#x}, {:#x}), heap [{:#x}, {:#x}); command line \"{}\"",
        (boot.total_ram() + (1 << 19)) >> 20,
        image.start,
        image.end,
        heap.map_or(0, |h| h.start),
        heap.map_or(0, |h| h.end),
        boot.cmdline()
    );
    let args = match BootArgs::parse(boot.cmdline()) {
        Ok(a) => a,
        Err(e) => {
            println!("pvboot: command line: {e}");
            BootArgs::default()
        }
    };
    let disks = disks::discover();
    timing.disks = time::now_ns();
    for d in &disks {
        println!("pvboot: disk {}: {} MiB", d.name, d.cache.device().sector_count().saturating_mul(u64::from(d.cache.sector_size())) >> 20);
    }
    let entries = entries(&args);
    if entries.is_empty() {
        println!("pvboot: nothing to boot: no kernel= on the command line");
    }
    for e in &entries {
        let why = chain::boot_entry(boot, &disks, e, &mut timing);
        println!("pvboot: {}: {why}", e.title);
    }
    println!("pvboot: no entry could be booted; stopping the domain");
    for d in &disks {
        let _ = d.close();
    }
    guest_lib::console::flush(core::time::Duration::from_secs(1));
    shutdown::crash()
}

