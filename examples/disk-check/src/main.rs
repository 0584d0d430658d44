//! disk-check: reads its disk end to end through blkfront and prints the
//! SHA-256 of the contents, then writes a pattern to a scratch region,
//! flushes, reads it back and compares. On a read-only disk it reports the
//! refused write as an error line and exits cleanly with a distinct line.
//!
//! Command line (words, `key=value`):
//! - `disk=NAME`: `xvda` (default; else the first `device/vbd` entry), or a
//!   number;
//! - `scratch=OFFSET:LEN`: the scratch region in bytes (default: the last
//!   64 KiB), sector-aligned;
//! - `seed=N`: pattern seed (default 1);
//! - `hash-max=BYTES`: disks larger than this (default 16 MiB) are not
//!   hashed (hashing costs ~40 guest instructions per byte);
//! - `nowrite`: skip the write test;
//! - `persistent=0`, `indirect=N` (segments; 11 or less: none),
//!   `ring-order=N`: limit what blkfront negotiates;
//! - `unaligned`: read the scratch region back into a misaligned buffer
//!   (blkfront's bounce path) instead of a page-aligned one;
//! - `hold`: after the flush completes, print the marker and wait forever
//!   (a test then kills the hypervisor to check durability);
//! - `records` (with `rec-max=UNITS`, `group=N`): instead of the read and
//!   write checks, write numbered, checksummed records over the scratch
//!   region (default: the whole disk), flushing after each group and
//!   printing `acked N LBA K` only once its flush completed, then wait to
//!   be killed (see `records.rs`); `barrier=1` flushes with WRITE_BARRIER;
//! - `reopen`: after closing the disk (Closing -> Closed, grants ended,
//!   its event channel closed) and closing and binding VIRQ_TIMER again,
//!   open it once more as a next kernel would, negotiating less (a
//!   one-page ring, no persistent grants, no indirect requests), and read
//!   and hash it again: a boot loader's hand-off, in one guest;
//! - `abandon` (with `reopen`): leave the disk connected instead of closing
//!   it, as a kernel that crashed into the next one does; the second open
//!   then resets the device first (Closed, Initialising, as Linux's
//!   xenbus_reset_state does);
//! - `remap` (with `reopen`): before opening again, also redo what a next
//!   kernel redoes (PVH): move shared info and grant frame 0 to a hole and
//!   back, populate the frames they left, set the grant table, the upcall
//!   vector and the hypercall page up again (see `remap.rs`); a failed
//!   check ends the run as a crash.
//!
//! The pattern: the little-endian u64 at disk byte offset `o` (a multiple
//! of 8) is `((o / 8) ^ seed) * 0x9E3779B97F4A7C15` (wrapping).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code, unused_imports))]

extern crate alloc;

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::string::String;
use core::fmt::Write;
use core::time::Duration;

use guest_lib::blkdev::{BlkError, BlockDevice, ReadRequest};
use guest_lib::blkfront::{self, BlkFront, Config};
use guest_lib::{println, time, BootInfo};
use sha2::{Digest, Sha256};

#[cfg(target_os = "none")]
guest_lib::main!(disk_check);

#[cfg(target_os = "none")]
mod remap;

mod records;

/// Largest read issued at once (one indirect request of 256 pages).
const CHUNK: usize = 1 << 20;
/// Default scratch size: the last 64 KiB.
const SCRATCH: u64 = 64 * 1024;

/// The pattern word at disk byte offset `o` (see the module docs).
pub fn pattern_word(o: u64, seed: u64) -> u64 {
    ((o / 8) ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A zeroed, page-aligned buffer (so blkfront grants it in place).
struct PageBuf {
    ptr: *mut u8,
    len: usize,
}

impl PageBuf {
    fn new(len: usize) -> Option<PageBuf> {
        let layout = Layout::from_size_align(len.max(4096), 4096).ok()?;
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        (!ptr.is_null()).then_some(PageBuf { ptr, len })
    }
    fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` initialised bytes owned by this buffer.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, uniquely borrowed.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, Layout::from_size_align_unchecked(self.len.max(4096), 4096)) }
    }
}

struct Args<'a> {
    disk: Option<&'a str>,
    scratch: Option<(u64, u64)>,
    seed: u64,
    hash_max: u64,
    nowrite: bool,
    hold: bool,
    unaligned: bool,
    reopen: bool,
    abandon: bool,
    remap: bool,
    records: bool,
    rec_max: u64,
    group: u64,
    config: Config,
}

fn parse_args(cmdline: &str) -> Result<Args<'_>, String> {
    let mut a = Args {
        disk: None,
        scratch: None,
        seed: 1,
        hash_max: 16 << 20,
        nowrite: false,
        hold: false,
        unaligned: false,
        reopen: false,
        abandon: false,
        remap: false,
        records: false,
        rec_max: 32,
        group: 4,
        config: Config::default(),
    };
    let num = |k: &str, v: &str| guest_lib::boot::parse_number(v).ok_or_else(|| alloc::format!("bad number for {k}: {v}"));
    for w in cmdline.split_ascii_whitespace() {
        match w.split_once('=') {
            Some(("disk", v)) => a.disk = Some(v),
            Some(("seed", v)) => a.seed = num("seed", v)?,
            Some(("hash-max", v)) => a.hash_max = num("hash-max", v)?,
            Some(("rec-max", v)) => a.rec_max = num("rec-max", v)?,
            Some(("group", v)) => a.group = num("group", v)?,
            Some(("scratch", v)) => {
                let (o, l) = v.split_once(':').ok_or_else(|| String::from("scratch=OFFSET:LEN"))?;
                a.scratch = Some((num("scratch", o)?, num("scratch", l)?));
            }
            Some((k, v)) if a.config.set_option(k, v).map_err(|v| alloc::format!("bad number for {k}: {v}"))? => {}
            None if w == "nowrite" => a.nowrite = true,
            None if w == "unaligned" => a.unaligned = true,
            None if w == "hold" => a.hold = true,
            None if w == "reopen" => a.reopen = true,
            None if w == "remap" => a.remap = true,
            None if w == "abandon" => a.abandon = true,
            None if w == "records" => a.records = true,
            _ => {}
        }
    }
    Ok(a)
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn fail(what: &str) -> ! {
    println!("disk-check: FAILED: {what}");
    guest_lib::shutdown::crash()
}

fn disk_check(boot: &BootInfo) {
    let args = match parse_args(boot.cmdline()) {
        Ok(a) => a,
        Err(e) => fail(&e),
    };
    let name = match args.disk {
        Some(d) => String::from(d),
        None => match blkfront::list() {
            Ok(ids) if ids.iter().any(|i| i == "51712") || ids.is_empty() => String::from("xvda"),
            Ok(ids) => ids[0].clone(),
            Err(e) => fail(&alloc::format!("cannot list device/vbd: {e}")),
        },
    };
    let dev = open(&name, args.config);
    if args.records {
        let size = size_of(&dev);
        let plan = records::Plan {
            seed: args.seed,
            region: args.scratch.unwrap_or((0, size)),
            rec_max: args.rec_max,
            group: args.group,
        };
        records::run(&dev, &plan);
    }
    check_read(&dev, size_of(&dev), &args);
    if args.nowrite {
        println!("disk-check: write test skipped (nowrite)");
    } else {
        check_write(&dev, size_of(&dev), &args);
    }
    if args.reopen && args.abandon {
        // No Closing/Closed, no grant ended, the port left bound: what a
        // crashed kernel leaves behind (and a leak we accept here).
        println!("disk-check: abandoned {} without closing it", dev.nodename());
        core::mem::forget(dev);
    } else {
        close(&dev);
        drop(dev);
    }
    if args.reopen {
        match time::rebind() {
            Ok(port) => println!("disk-check: VIRQ_TIMER bound again on port {port}"),
            Err(e) => fail(&alloc::format!("cannot bind VIRQ_TIMER again: {e}")),
        }
        #[cfg(target_os = "none")]
        if args.remap {
            let failed = remap::run(boot);
            if failed > 0 {
                fail(&alloc::format!("{failed} remap checks failed"));
            }
            // The clock (pvclock in shared info) and the timer still work.
            let t = time::Instant::now();
            time::sleep(Duration::from_millis(20));
            let slept = t.elapsed();
            if slept < Duration::from_millis(20) {
                fail(&alloc::format!("slept {} us of 20 ms", slept.as_micros()));
            }
            println!("remap: ok timer after the moves ({} timer events so far)", time::timer_fired_count());
        }
        let again = Config {
            max_ring_order: 0,
            max_indirect_segments: 0,
            persistent_grants: false,
            ..args.config
        };
        let dev = open(&name, again);
        check_read(&dev, size_of(&dev), &args);
        close(&dev);
    }
    println!("disk-check: done");
}

fn size_of(dev: &BlkFront) -> u64 {
    let info = dev.info();
    info.sectors * info.sector_size as u64
}

/// Opens the disk and prints what was negotiated.
fn open(name: &str, config: Config) -> BlkFront {
    let start = time::Instant::now();
    let dev = match BlkFront::open(name, config) {
        Ok(d) => d,
        Err(e) => fail(&alloc::format!("cannot open {name}: {e}")),
    };
    let info = dev.info();
    println!(
        "disk-check: {name} ({}): {} bytes, {}-byte sectors, {}",
        dev.nodename(),
        size_of(&dev),
        info.sector_size,
        if info.read_only { "read-only" } else { "read-write" }
    );
    println!(
        "features: ring {} page(s) ({} slots), {} segments per request{}, persistent grants {}, flush {:?} (connected in {} ms)",
        1u32 << info.ring_order,
        info.ring_size,
        info.max_segments,
        if info.max_segments > 11 { " (indirect)" } else { "" },
        if info.persistent { "yes" } else { "no" },
        info.flush,
        start.elapsed().as_millis()
    );
    dev
}

fn close(dev: &BlkFront) {
    match dev.close() {
        Ok(()) => println!("disk-check: closed {}", dev.nodename()),
        Err(e) => println!("error: closing: {e}"),
    }
}

/// Reads the whole disk (hashing it if small enough).
fn check_read(dev: &BlkFront, size: u64, args: &Args<'_>) {
    if size > args.hash_max {
        println!("sha256: skipped (disk larger than hash-max={})", args.hash_max);
        return;
    }
    let ss = dev.sector_size() as u64;
    let chunk = (CHUNK as u64).min(size.max(ss)) as usize;
    let Some(mut buf) = PageBuf::new(chunk) else {
        fail("no memory for the read buffer")
    };
    let mut hasher = Sha256::new();
    let start = time::Instant::now();
    let mut read_time = Duration::ZERO;
    let mut off = 0u64;
    while off < size {
        let n = (size - off).min(chunk as u64) as usize;
        let t = time::Instant::now();
        if let Err(e) = dev.read_sectors(off / ss, &mut buf.as_mut()[..n]) {
            fail(&alloc::format!("read at byte {off}: {e}"));
        }
        read_time += t.elapsed();
        hasher.update(&buf.as_slice()[..n]);
        off += n as u64;
    }
    println!(
        "read: {size} bytes in {} ms (I/O {} ms)",
        start.elapsed().as_millis(),
        read_time.as_millis()
    );
    println!("sha256: {}", hex(&hasher.finalize()));
}

/// Writes the pattern to the scratch region, flushes, reads it back.
fn check_write(dev: &BlkFront, size: u64, args: &Args<'_>) {
    let ss = dev.sector_size() as u64;
    let (offset, len) = args
        .scratch
        .unwrap_or((size.saturating_sub(SCRATCH), SCRATCH.min(size)));
    if offset % ss != 0 || len % ss != 0 || len == 0 || offset.checked_add(len).is_none_or(|e| e > size) {
        fail(&alloc::format!(
            "scratch region {offset}:{len} is not whole sectors inside the disk"
        ));
    }
    let Some(mut buf) = PageBuf::new(len as usize) else {
        fail("no memory for the scratch buffer")
    };
    for (i, w) in buf.as_mut().chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&pattern_word(offset + i as u64 * 8, args.seed).to_le_bytes());
    }
    match dev.write_sectors(offset / ss, buf.as_slice()) {
        Ok(()) => println!("write: {len} bytes at offset {offset}"),
        Err(e @ BlkError::ReadOnly) => {
            println!("error: write refused: {e}");
            println!("disk-check: read-only disk, write test skipped");
            return;
        }
        Err(e) => fail(&alloc::format!("write at byte {offset}: {e}")),
    }
    match dev.flush() {
        Ok(()) => println!("flush: ok ({:?})", dev.info().flush),
        Err(e) => fail(&alloc::format!("flush: {e}")),
    }
    // The durability marker: everything above is acknowledged as durable.
    println!("disk-check: flushed");
    if args.hold {
        println!("disk-check: holding (kill me)");
        loop {
            time::sleep(Duration::from_secs(3600));
        }
    }
    // Read back as two ranges in one batch (both in flight together); with
    // `unaligned`, into a buffer one byte past a page boundary.
    let skew = usize::from(args.unaligned);
    let Some(mut back_buf) = PageBuf::new(len as usize + skew) else {
        fail("no memory for the verify buffer")
    };
    let back = &mut back_buf.as_mut()[skew..];
    let half = (len / ss / 2 * ss) as usize;
    let (a, b) = back.split_at_mut(half);
    let mut reqs = [
        ReadRequest {
            lba: offset / ss,
            buf: a,
        },
        ReadRequest {
            lba: (offset + half as u64) / ss,
            buf: b,
        },
    ];
    if let Err(e) = dev.read_many(&mut reqs) {
        fail(&alloc::format!("read back at byte {offset}: {e}"));
    }
    let back = &back_buf.as_slice()[skew..];
    // Word by word: every guest instruction is emulated here.
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
    let diff = buf
        .as_slice()
        .chunks_exact(8)
        .zip(back.chunks_exact(8))
        .position(|(a, b)| word(a) != word(b));
    match diff {
        None => println!(
            "verify: ok ({len} bytes at offset {offset}{})",
            if skew > 0 { ", unaligned" } else { "" }
        ),
        Some(i) => fail(&alloc::format!("verify: mismatch at byte {}", offset + i as u64 * 8)),
    }
}

/// On the host there is nothing to run: disk-check is a Xen guest.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("disk-check is a Xen PVH guest: build it with --target x86_64-unknown-none");
}
