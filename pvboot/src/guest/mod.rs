//! The pvboot guest's main flow: read the command line, connect the disks,
//! decide what to boot, boot it; on failure, say why in one line and try
//! the next thing.

pub mod chain;
pub mod disks;
pub mod net;
pub mod ram;
pub mod sources;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use guest_lib::shutdown::Reason;
use guest_lib::{console, println, time, xenstore, BootInfo};
use pvboot::config::cmdline::NetBoot;
use pvboot::config::{self, cmdline, Menu};
use pvboot::disk::BlockDevice as _;
use pvboot::ui::disks::{DiskShell, ShellDisk};
use pvboot::ui::{Boot, Output, Stop, Terminal, Ui};

use self::chain::fmt_ms;
use self::disks::DiskHandle;
use self::net::BootServer;
use self::sources::{Found, Sources};

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

/// The PV console and pvclock as the UI's terminal; `xl shutdown` and `xl
/// reboot` reach the menu through the watch on control/shutdown.
struct GuestTerminal {
    shutdown: guest_lib::xenbus::ShutdownWatch,
}

impl Output for GuestTerminal {
    fn write(&mut self, bytes: &[u8]) {
        console::write_bytes(bytes);
    }
}

impl Terminal for GuestTerminal {
    fn read_byte(&mut self, timeout_ms: Option<u64>) -> Option<u8> {
        let deadline = timeout_ms.map_or(u64::MAX, |t| time::now_ns().saturating_add(t.saturating_mul(1_000_000)));
        let mut byte = [0u8];
        let store_events = xenstore::events_seen();
        // Console input raises the console's event channel, which ends the
        // halt; so does xenstored's (a watch event, maybe a shutdown request).
        let mut got = false;
        xenstore::wait_until(deadline, || {
            got = console::read(&mut byte) == 1;
            got || xenstore::events_seen() != store_events
        });
        got.then_some(byte[0])
    }

    fn now_ms(&mut self) -> u64 {
        time::now_ns() / 1_000_000
    }

    fn stop_requested(&mut self) -> Option<Stop> {
        match self.shutdown.requested()? {
            Reason::Poweroff => Some(Stop::Poweroff),
            Reason::Reboot => Some(Stop::Reboot),
            Reason::Crash => None,
        }
    }
}

/// The config: `config=` if given, else the first of
/// [`config::CONFIG_PATHS`] on the `root=` volume, else on each disk's
/// first file system in turn, else (when the domain has a vif) on the boot
/// server DHCP names. When booting from the network, the server's config
/// comes first. Returns the menu and the device it came from.
fn read_config(src: &mut Sources, ov: &cmdline::Overrides) -> (Menu, Option<String>) {
    let read = |f: &Found, path: &str| -> Option<Menu> {
        let bytes = f.fs.read_file(path, CONFIG_MAX).ok()?;
        println!("pvboot: reading {path} on {}", f.name);
        Some(Menu::parse(path, &bytes))
    };
    if let Some(file) = &ov.config {
        match chain::volume_for(src, src.net.as_ref().map(|n| n.device.as_str()), ov.root.as_ref(), file) {
            Ok(f) => match f.fs.read_file(&file.path, CONFIG_MAX) {
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
    if let (Some(server), Some(f)) = (&src.net, src.server()) {
        if let Some(menu) = server.config_paths().iter().find_map(|p| read(&f, p)) {
            return (menu, Some(f.device));
        }
    }
    let mut volumes: Vec<Found> = Vec::new();
    match &ov.root {
        Some(config::RootSpec::Device(d)) => match src.open_device(d) {
            Ok(f) => volumes.push(f),
            Err(e) => println!("pvboot: root={d}: {e}"),
        },
        _ => {
            for i in 0..src.disks.len() {
                match src.open_device(&format!("(hd{i})")) {
                    Ok(f) => volumes.push(f),
                    Err(e) => println!("pvboot: {}: {e}", src.disks[i].name),
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
    let looked = if names.is_empty() { String::from("any disk") } else { names.join(", ") };
    match &src.net {
        Some(n) => println!("pvboot: no config file ({}) on {} or {}", config::CONFIG_PATHS.join(", "), looked, n.fs.base()),
        None => println!("pvboot: no config file ({}) on {looked}", config::CONFIG_PATHS.join(", ")),
    }
    // No bootable disk: the network, if the domain has one, as a PXE ROM
    // would go on to.
    if src.net.is_none() && !matches!(guest_lib::netfront::list().as_deref(), Ok([]) | Err(_)) {
        println!("pvboot: trying the network");
        if start_network(src, &NetBoot::Dhcp, &ov.net_words) {
            return read_config(src, ov);
        }
    }
    (Menu::default(), None)
}

/// Starts the boot server into `src`, or says in one line why not.
fn start_network(src: &mut Sources, spec: &NetBoot, net_words: &str) -> bool {
    match BootServer::start(spec, net_words) {
        Ok(server) => {
            src.net = Some(server);
            true
        }
        Err(e) => {
            println!("pvboot: network boot: {e}");
            false
        }
    }
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
    let mut src = Sources { disks: disks::discover(), net: None };
    timing.disks = time::now_ns();
    for d in &src.disks {
        println!("pvboot: disk {}: {} MiB", d.name, d.cache.device().sector_count().saturating_mul(u64::from(d.cache.sector_size())) >> 20);
    }
    if let Some(spec) = &ov.netboot {
        start_network(&mut src, spec, &ov.net_words);
    }
    let (mut menu, config_device) = match ov.kernel_menu() {
        // A kernel= without a device is on the boot server when there is one.
        Some(m) => (m, src.net.as_ref().map(|n| n.device.clone())),
        None => read_config(&mut src, &ov),
    };
    if ov.kernel.is_none() {
        ov.apply(&mut menu);
    }
    timing.found = time::now_ns();
    let mut ui = Ui::from_menu(menu);
    let shell_disks: Vec<ShellDisk<DiskHandle>> =
        src.disks.iter().map(|d| ShellDisk { disk: d.cache.clone(), sector_size: d.cache.sector_size() }).collect();
    let mut shell = DiskShell::new(shell_disks, config_device.clone());
    let mut term = GuestTerminal { shutdown: guest_lib::xenbus::ShutdownWatch::new() };
    loop {
        let (entry, device) = match ui.run(&mut term, &mut shell) {
            Boot::Entry { entry, .. } => (entry, config_device.as_deref()),
            Boot::Custom(entry) => (entry, config_device.as_deref()),
            Boot::Stop(stop) => {
                // As a kernel would: the backends see the devices closed.
                src.close();
                match stop {
                    Stop::Poweroff => println!("pvboot: powering off, as the toolstack asked"),
                    Stop::Reboot => println!("pvboot: rebooting, as the toolstack asked"),
                }
                guest_lib::shutdown::shutdown(if stop == Stop::Reboot { Reason::Reboot } else { Reason::Poweroff });
            }
        };
        // The UI shows why, on one line, and brings the menu back.
        let why = chain::boot_entry(boot, &src, device, &entry, &mut timing);
        let now = term.now_ms();
        ui.boot_failed(&why, now, &mut term);
    }
}
