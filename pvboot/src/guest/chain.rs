//! Booting one entry: find its kernel, load it (and its modules) straight
//! into place, build what the next kernel is given, close everything and
//! jump.
//!
//! A kernel linked where pvboot itself runs (pvboot chain-loading a pvboot:
//! both at 128 MiB) is staged in free RAM above pvboot's heap and copied
//! over pvboot's image by the hand-off, with paging off, as the very last
//! thing before the jump (`guest_lib::handoff::FinalCopy`). Segments that
//! would reach pvboot's heap are refused ("overlaps pvboot"): the heap
//! holds the boot information and the copy stub until the jump.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use guest_lib::boot::BootInfo;
use guest_lib::handoff::{self, Abi, FinalCopy};
use guest_lib::{println, time};
use pvboot::config::{Entry, FileRef, RootSpec};
use pvboot::kernel::{self, BootMode, EntryPoint, FileImage, Image, Limits, Loaded};
use pvboot::nextboot::{self, MbModule, E820};

use super::sources::{Found, Sources};
use super::ram::{self, FreeRam};
use super::Timing;

/// The volume `file` is on: its own device, else the entry's root, else
/// the volume the config came from (`config_device`), else the first
/// volume that has it.
pub fn volume_for(src: &Sources, config_device: Option<&str>, root: Option<&RootSpec>, file: &FileRef) -> Result<Found, String> {
    if let Some(d) = &file.device {
        return src.open_device(d);
    }
    match root {
        Some(RootSpec::Device(d)) => src.open_device(d),
        Some(spec @ RootSpec::Search { value, .. }) => src
            .find(|fs| if spec.matches(fs) { Ok(()) } else { Err(String::from("no match")) })
            .map_err(|e| format!("search for {value}: {e}")),
        None => match config_device {
            Some(d) => src.open_device(d),
            None => src.find(|fs| fs.lookup(&file.path).map(drop).map_err(|e| format!("{e}"))),
        },
    }
}

/// A loaded module.
struct LoadedModule {
    range: Range<u64>,
    cmdline: String,
}

fn ms(ns: u64) -> String {
    format!("{}.{:03}", ns / 1_000_000, (ns / 1000) % 1000)
}

/// Tries to boot `entry` (files without a device or root are on
/// `config_device`). Returns only on failure, with the one line to print.
pub fn boot_entry(boot: &BootInfo, src: &Sources, config_device: Option<&str>, entry: &Entry, timing: &mut Timing) -> String {
    match try_boot(boot, src, config_device, entry, timing) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

fn try_boot(boot: &BootInfo, src: &Sources, config_device: Option<&str>, entry: &Entry, timing: &mut Timing) -> Result<Never, String> {
    let Some(kfile) = &entry.kernel else { return Err(String::from("the entry has no kernel")) };
    let path = kfile.path.as_str();
    let found = volume_for(src, config_device, entry.root.as_ref(), kfile).map_err(|e| format!("{kfile}: not found ({e})"))?;
    let fs = &*found.fs;
    if timing.found == 0 {
        timing.found = time::now_ns();
    }
    let load_start = time::now_ns();

    let pv = guest_lib::arch::mode() == guest_lib::arch::Mode::Pv;
    let mut ram = FreeRam::new(boot);
    let image_range = ram.image.clone();
    let heap = ram.heap.clone();
    // Kernels may use free RAM in [1 MiB, pvboot's image), and (PVH only)
    // pvboot's image itself through a staging area: a PV hand-off cannot
    // copy with paging off, and would need pvgrub's frame swapping.
    let mut allowed: Vec<Range<u64>> =
        ram.ranges().iter().filter(|r| r.start < image_range.start).map(|r| r.start..r.end.min(image_range.start)).collect();
    let staging = if pv { None } else { ram.take_top(image_range.end - image_range.start, heap.end) };
    if let Some(s) = &staging {
        allowed.push(image_range.clone());
        ram.stage(s.clone());
    }
    let max_bytes = allowed.iter().map(|r| r.end - r.start).sum();
    let limits = Limits::new(allowed, max_bytes).reserve(heap.clone(), "pvboot's heap");

    fs.lookup(path).map_err(|e| format!("{kfile} on {}: {e}", found.name))?;
    let mut image = FileImage::open(fs, path).map_err(|e| format!("{path} on {}: {e}", found.name))?;
    let size = image.size();
    let mode = if pv { BootMode::Pv } else { BootMode::Pvh };
    let loaded = kernel::load(&mut image, &mut ram, &limits, mode).map_err(|e| format!("{path} on {}: {e}", found.name))?;
    timing.loaded = time::now_ns();
    timing.load_ns = timing.loaded - load_start;
    timing.bytes = size;
    let (entry32, abi) = match &loaded.entry {
        EntryPoint::Pvh { entry32 } => (*entry32, Abi::Pvh),
        EntryPoint::Multiboot1 { entry32 } => (*entry32, Abi::Multiboot1),
        EntryPoint::Pv(info) => {
            drop(image);
            return boot_pv(src, config_device, entry, found, &loaded, info, &image_range, &mut ram, timing);
        }
    };

    // The final copy for anything staged over pvboot's image.
    let copy = staged_copy(&loaded, &image_range, staging.as_ref())?;

    // Modules: above the heap (top-down), else after the kernel.
    let modules = load_modules(src, config_device, entry, &loaded, &image_range, &mut ram)?;
    timing.bytes += modules.iter().map(|m| m.range.end - m.range.start).sum::<u64>();

    let cmdline = entry.args.trim();
    let info = match abi {
        Abi::Pvh => start_info(boot, &modules, cmdline)?,
        Abi::Multiboot1 => multiboot_info(boot, &modules, path, cmdline)?,
    };
    timing.handoff = time::now_ns();
    println!(
        "pvboot: booting {path} from {} ({}, entry {entry32:#x}{})",
        found.name,
        loaded.description,
        if copy.is_some() { ", staged over pvboot" } else { "" }
    );
    timing.print();

    // Close every disk and the network, then the rest of the domain's state.
    drop(found);
    src.close();
    let q = handoff::quiesce();
    if let Some(e) = q.reset_watches_failed {
        println!("pvboot: XS_RESET_WATCHES: {e}");
    }
    if let Some(e) = q.close_failed {
        println!("pvboot: closing an event channel: {e}");
    }
    // SAFETY: the disks are closed and the domain quiesced; the kernel is
    // loaded (or staged for `copy`) with its entry at `entry32`; `info` is
    // a never-freed heap block outside the kernel, its modules and `copy`'s
    // destination (which stays inside pvboot's image).
    unsafe { handoff::enter(boot, abi, entry32, info, copy) }
}

/// The classic PV hand-off (pvgrub 1's kexec): the kernel is loaded at its
/// pseudo-physical addresses; guest-lib builds its start_info, p2m list and
/// page tables below pvboot's image and switches to them.
#[allow(clippy::too_many_arguments)]
fn boot_pv(
    src: &Sources,
    config_device: Option<&str>,
    entry: &Entry,
    found: Found,
    loaded: &Loaded,
    info: &kernel::PvInfo,
    image_range: &Range<u64>,
    ram: &mut FreeRam,
    timing: &mut Timing,
) -> Result<Never, String> {
    use guest_lib::arch::pv::kexec::{prepare_pv, PvKernel};
    use guest_lib::boot::PhysRange;
    let path = entry.kernel.as_ref().map_or("", |k| k.path.as_str());
    if info.class != kernel::elf::Class::Elf64 {
        return Err(format!("{path}: a 32-bit PV kernel (Xen runs 64-bit PV guests only)"));
    }
    let start = loaded.ranges.iter().map(|r| r.start).min().unwrap_or(0);
    let next = PvKernel {
        virt_base: info.virt_base,
        image: PhysRange { start: start & !0xfff, end: loaded.end() },
        entry: info.entry,
        hypercall_page: info.hypercall_page,
        mod_start_pfn: info.mod_start_pfn,
    };
    let modules = load_modules(src, config_device, entry, loaded, image_range, ram)?;
    let ranges: Vec<PhysRange> = modules.iter().map(|m| PhysRange { start: m.range.start, end: m.range.end }).collect();
    let prepared = prepare_pv(&next, &ranges, entry.args.trim()).map_err(|e| format!("{path}: {e}"))?;
    timing.handoff = time::now_ns();
    println!("pvboot: booting {path} from {} ({}, entry {:#x}, PV)", found.name, loaded.description, info.entry);
    timing.print();
    drop(found);
    src.close();
    let q = handoff::quiesce();
    if let Some(e) = q.reset_watches_failed {
        println!("pvboot: XS_RESET_WATCHES: {e}");
    }
    prepared.enter()
}

/// The copy that moves staged segments over pvboot's image at the hand-off.
fn staged_copy(loaded: &Loaded, image: &Range<u64>, staging: Option<&Range<u64>>) -> Result<Option<FinalCopy>, String> {
    let inside: Vec<&Range<u64>> = loaded.ranges.iter().filter(|r| r.start < image.end && image.start < r.end).collect();
    let (Some(first), Some(staging)) = (inside.iter().map(|r| r.start).min(), staging) else {
        return Ok(None);
    };
    let last = inside.iter().map(|r| r.end).max().unwrap_or(first);
    let src = staging.start + (first - image.start);
    let to32 = |v: u64| u32::try_from(v).map_err(|_| String::from("staging area above 4 GiB"));
    Ok(Some(FinalCopy { src: to32(src)?, dst: to32(first)?, len: to32(last - first)? }))
}

fn load_modules(
    src: &Sources,
    config_device: Option<&str>,
    entry: &Entry,
    loaded: &Loaded,
    image: &Range<u64>,
    ram: &mut FreeRam,
) -> Result<Vec<LoadedModule>, String> {
    if entry.modules.is_empty() {
        return Ok(Vec::new());
    }
    // Volumes first (they own the file systems the images read through).
    let mut volumes = Vec::new();
    for m in &entry.modules {
        volumes.push(volume_for(src, config_device, entry.root.as_ref(), &m.file).map_err(|e| format!("module {}: {e}", m.file))?);
    }
    let mut images = Vec::new();
    for (m, v) in entry.modules.iter().zip(&volumes) {
        let img = FileImage::open(&*v.fs, &m.file.path).map_err(|e| format!("module {} on {}: {e}", m.file, v.name))?;
        let cmdline = if m.args.is_empty() { m.file.path.clone() } else { format!("{} {}", m.file.path, m.args) };
        images.push((img, cmdline));
    }
    let sizes: Vec<u64> = images.iter().map(|(i, _)| i.size()).collect();
    let high: Vec<Range<u64>> = ram.ranges().iter().filter(|r| r.start >= ram.heap.end).cloned().collect();
    let kernel_end = loaded.ranges.iter().filter(|r| r.end <= image.start).map(|r| r.end).max().unwrap_or(1 << 20);
    let placed = nextboot::place_modules(&high, kernel_end..image.start, &sizes).map_err(|e| format!("{e}"))?;
    let mut out = Vec::new();
    for ((mut img, cmdline), range) in images.into_iter().zip(placed) {
        let len = range.end - range.start;
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(16 << 20) as usize;
            let dst = kernel::Memory::slice_mut(ram, range.start + done, n).map_err(|e| format!("module {cmdline}: {e}"))?;
            img.read_at(done, dst).map_err(|e| format!("module {cmdline}: {e}"))?;
            done += n as u64;
        }
        // Written while still free (slice_mut hands out free RAM only), then kept.
        ram.take(range.clone());
        out.push(LoadedModule { range, cmdline });
    }
    Ok(out)
}

fn e820(boot: &BootInfo) -> Vec<E820> {
    boot.memory_map().iter().map(|r| E820 { addr: r.start, size: r.size, kind: u32::from(r.kind) }).collect()
}

/// The hvm_start_info (version 1) in a heap block: the domain's real
/// memory map, the modules, the command line, the RSDP if there is one.
fn start_info(boot: &BootInfo, modules: &[LoadedModule], cmdline: &str) -> Result<u32, String> {
    use xen_abi::hvm::HvmMemmapEntry;
    let memmap: Vec<HvmMemmapEntry> = e820(boot)
        .iter()
        .map(|e| HvmMemmapEntry { addr: e.addr, size: e.size, kind: e.kind, reserved: 0 })
        .collect();
    let mods: Vec<xen_abi::start_info::BootModule<'_>> = modules
        .iter()
        .map(|m| xen_abi::start_info::BootModule {
            paddr: m.range.start,
            size: m.range.end - m.range.start,
            cmdline: Some(m.cmdline.as_str()),
        })
        .collect();
    let area = xen_abi::start_info::HVM_START_INFO_SIZE
        + memmap.len() * xen_abi::start_info::MEMMAP_ENTRY_SIZE
        + mods.len() * xen_abi::start_info::MODLIST_ENTRY_SIZE
        + modules.iter().map(|m| m.cmdline.len() + 1).sum::<usize>()
        + cmdline.len()
        + 1;
    let (base, block) = ram::boot_block(area).ok_or("not enough memory for the start info")?;
    let layout = xen_abi::start_info::build_hvm(block, base, &memmap, &mods, Some(cmdline), boot.rsdp().unwrap_or(0))
        .map_err(|e| format!("start info: {e}"))?;
    u32::try_from(layout.start_info).map_err(|_| String::from("start info above 4 GiB"))
}

/// The multiboot 1 information in a heap block.
fn multiboot_info(boot: &BootInfo, modules: &[LoadedModule], path: &str, cmdline: &str) -> Result<u32, String> {
    let line = if cmdline.is_empty() { String::from(path) } else { format!("{path} {cmdline}") };
    let mods: Vec<MbModule> = modules.iter().map(|m| MbModule { range: m.range.clone(), cmdline: m.cmdline.clone() }).collect();
    let map = e820(boot);
    // Built twice: once to learn its size, once at its address.
    let size = nextboot::multiboot1_info(0, &map, &line, &mods).map_err(|e| format!("{path}: {e}"))?.len();
    let (base, block) = ram::boot_block(size).ok_or("not enough memory for the multiboot information")?;
    let bytes = nextboot::multiboot1_info(base, &map, &line, &mods).map_err(|e| format!("{path}: {e}"))?;
    block.copy_from_slice(&bytes);
    u32::try_from(base).map_err(|_| String::from("multiboot information above 4 GiB"))
}

/// Prints elapsed time lines (used by [`Timing::print`]).
pub fn fmt_ms(ns: u64) -> String {
    ms(ns)
}
