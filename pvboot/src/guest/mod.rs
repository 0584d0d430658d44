//! The pvboot guest's main flow: read the command line, connect the disks,
//! decide what to boot, boot it; on failure, say why in one line and try
//! the next thing.

pub mod chain;
pub mod disks;
pub mod ram;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use guest_lib::{console, println, time, xenstore, BootInfo};
use pvboot::config::{self, cmdline, Menu};
use pvboot::disk::BlockDevice as _;
use pvboot::ui::disks::{DiskShell, ShellDisk};
use pvboot::ui::{Boot, Output, Terminal, Ui};

use self::chain::fmt_ms;
use self::disks::{Disk, DiskHandle};

pub use pvboot::HEAP_MAX;

/// Config files larger than this are not read (the parser refuses more).
const CONFIG_MAX: u64 = config::MAX_CONFIG_BYTES as u64;

/// Moments of one boot, as pvclock system time (on our hypervisor: ns
/// since the domain started; on Xen: since the host booted, so only the
/// differences mean something there).
#[derive(Debug, Default, Clone, Copy)]
pub struct Timing {
    /// pvboot's main was entered.
    pub main: u64,
    /// The disks were connected.
    pub disks: u64,
    /// The config was read (or the kernel= file found).
    pub found: u64,
    /// The kernel was loaded.
    pub loaded: u64,
    /// How long loading the kernel took.
    pub load_ns: u64,
    /// Everything was ready for the hand-off.
    pub handoff: u64,
    /// Bytes read into place (kernel file and modules).
    pub bytes: u64,
}

impl Timing {
    /// One line for benchmarks: every moment in ms of system time, and the
    /// load rate.
    pub fn print(&self) {
        let load_ns = self.load_ns.max(1);
        let kib_s = self.bytes.saturating_mul(1_000_000_000) / load_ns / 1024;
        println!(
            "pvboot: timing (ms of system time): main {} disks {} config {} kernel loaded {} hand-off {}; {} bytes loaded in {} ms ({} KiB/s)",
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

/// The PV console and pvclock as the UI's terminal.
struct GuestTerminal;

impl Output for GuestTerminal {
    fn write(&mut self, bytes: &[u8]) {
        console::write_bytes(bytes);
    }
}

impl Terminal for GuestTerminal {
    fn read_byte(&mut self, timeout_ms: Option<u64>) -> Option<u8> {
        let deadline = timeout_ms.map_or(u64::MAX, |t| time::now_ns().saturating_add(t.saturating_mul(1_000_000)));
        let mut byte = [0u8];
        // Console input raises the console's event channel, which ends the halt.
        xenstore::wait_until(deadline, || console::read(&mut byte) == 1).then_some(byte[0])
    }

    fn now_ms(&mut self) -> u64 {
        time::now_ns() / 1_000_000
    }
}

/// The config: `config=` if given, else the first of
/// [`config::CONFIG_PATHS`] on the `root=` volume, else on each disk's
/// first file system in turn. Returns the menu and the device it came from.
fn read_config(disks: &[Disk], ov: &cmdline::Overrides) -> (Menu, Option<String>) {
    let read = |f: &disks::Found, path: &str| -> Option<Menu> {
        let bytes = f.volume.fs.read_file(path, CONFIG_MAX).ok()?;
        println!("pvboot: reading {path} on {}", f.name);
        Some(Menu::parse(path, &bytes))
    };
    if let Some(file) = &ov.config {
        match chain::volume_for(disks, None, ov.root.as_ref(), file) {
            Ok(f) => match f.volume.fs.read_file(&file.path, CONFIG_MAX) {
                Ok(bytes) => {
                    println!("pvboot: reading {} on {}", file.path, f.name);
                    return (Menu::parse(&file.path, &bytes), Some(f.device));
                }
                Err(e) => println!("pvboot: config {file}: {e}"),
            },
            Err(e) => println!("pvboot: config {file}: {e}"),
        }
        return (Menu::default(), None);
    }
    let mut volumes: Vec<disks::Found> = Vec::new();
    match &ov.root {
        Some(config::RootSpec::Device(d)) => match disks::open_device(disks, d) {
            Ok(f) => volumes.push(f),
            Err(e) => println!("pvboot: root={d}: {e}"),
        },
        _ => {
            for i in 0..disks.len() {
                match disks::open_device(disks, &format!("(hd{i})")) {
                    Ok(f) => volumes.push(f),
                    Err(e) => println!("pvboot: {}: {e}", disks[i].name),
                }
            }
        }
    }
    for f in &volumes {
        for path in config::CONFIG_PATHS {
            if let Some(menu) = read(f, path) {
                return (menu, Some(f.device.clone()));
            }
        }
    }
    let names: Vec<&str> = volumes.iter().map(|f| f.name.as_str()).collect();
    println!("pvboot: no config file ({}) on {}", config::CONFIG_PATHS.join(", "), if names.is_empty() { String::from("any disk") } else { names.join(", ") });
    (Menu::default(), None)
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
    let ov = cmdline::parse(boot.cmdline());
    let disks = disks::discover();
    timing.disks = time::now_ns();
    for d in &disks {
        println!("pvboot: disk {}: {} MiB", d.name, d.cache.device().sector_count().saturating_mul(u64::from(d.cache.sector_size())) >> 20);
    }
    let (mut menu, config_device) = match ov.kernel_menu() {
        Some(m) => (m, None),
        None => read_config(&disks, &ov),
    };
    if ov.kernel.is_none() {
        ov.apply(&mut menu);
    }
    timing.found = time::now_ns();
    let mut ui = Ui::from_menu(menu);
    let shell_disks: Vec<ShellDisk<DiskHandle>> =
        disks.iter().map(|d| ShellDisk { disk: d.cache.clone(), sector_size: d.cache.sector_size() }).collect();
    let mut shell = DiskShell::new(shell_disks, config_device.clone());
    let mut term = GuestTerminal;
    loop {
        let (entry, device) = match ui.run(&mut term, &mut shell) {
            Boot::Entry { entry, .. } => (entry, config_device.as_deref()),
            Boot::Custom(entry) => (entry, config_device.as_deref()),
        };
        // The UI shows why, on one line, and brings the menu back.
        let why = chain::boot_entry(boot, &disks, device, &entry, &mut timing);
        let now = term.now_ms();
        ui.boot_failed(&why, now, &mut term);
    }
}
