//! disk-bench: the guest side of `cargo xtask bench block`.
//!
//! Opens its disk through blkfront, prints the pvclock system time at which
//! `BlkFront::open` returned (on Xenolith system time is 0 when the domain
//! is created, so this is "domain start to Connected"; on Xen it counts from
//! the host's boot), then runs the phases its
//! command line names, timing each with pvclock. Data is never touched by
//! the guest: no hashing, no copying, no checking (every guest instruction
//! is emulated on a software KVM backend; the benchmark measures the
//! driver, not a consumer of the data).
//!
//! Command line (words, `key=value`):
//! - `disk=NAME`: the disk (default `xvda`);
//! - `seq`: read the whole disk front to back into one reused, page-aligned
//!   buffer of `chunk=BYTES` (default 4 MiB) per `read_sectors` call.
//!   blkfront cuts a call into indirect requests of up to 256 pages (1 MiB)
//!   and keeps them in flight together; 4 MiB is 1024 pages, which is what
//!   blkfront's persistent-grant cache holds, so every page is granted once
//!   (on the first chunk) and its reference reused for the rest of the disk;
//! - `seq-bytes=BYTES`: read only the first BYTES of the disk in `seq`;
//! - `rand`: `reads=N` (default 4096) 4 KiB reads at pseudo-random 4 KiB
//!   aligned offsets (xorshift64, `seed=N`), `qd=N` (default 32) per
//!   `read_many` call, so `qd` requests are in flight together. They land
//!   in the first `qd` pages of the same reused buffer (already granted);
//! - `quiet`: print nothing until every phase is done (the hypervisor's
//!   instruction counter, XENOLITH_COUNT_INSTRUCTIONS, stops at the first
//!   console output, so a quiet run counts boot + open + the phases);
//! - `persistent=0`, `indirect=N`, `ring-order=N`: limit what blkfront
//!   negotiates (for comparisons).
//!
//! Output lines (parsed by xtask/src/bench/block.rs):
//! - `disk-bench: connected-ns=T sectors=S sector-size=B ring-order=O
//!   ring-slots=R segments=G persistent=P`
//! - `disk-bench: seq bytes=N ns=T calls=C`
//! - `disk-bench: rand reads=N qd=Q ns=T`
//! - `disk-bench: done` (or `disk-bench: FAILED: ...`)
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code, unused_imports))]

extern crate alloc;

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use guest_lib::blkdev::{BlockDevice, ReadRequest};
use guest_lib::blkfront::{BlkFront, Config};
use guest_lib::{println, time, BootInfo};

#[cfg(target_os = "none")]
guest_lib::main!(disk_bench);

const PAGE: usize = 4096;

struct Args<'a> {
    disk: &'a str,
    seq: bool,
    seq_bytes: Option<u64>,
    chunk: usize,
    rand: bool,
    reads: u64,
    qd: usize,
    seed: u64,
    quiet: bool,
    config: Config,
}

fn parse_args(cmdline: &str) -> Result<Args<'_>, String> {
    let mut a = Args {
        disk: "xvda",
        seq: false,
        seq_bytes: None,
        chunk: 4 << 20,
        rand: false,
        reads: 4096,
        qd: 32,
        seed: 1,
        quiet: false,
        config: Config::default(),
    };
    let num = |k: &str, v: &str| guest_lib::boot::parse_number(v).ok_or_else(|| alloc::format!("bad number for {k}: {v}"));
    for w in cmdline.split_ascii_whitespace() {
        match w.split_once('=') {
            Some(("disk", v)) => a.disk = v,
            Some(("seq-bytes", v)) => a.seq_bytes = Some(num("seq-bytes", v)?),
            Some(("chunk", v)) => a.chunk = num("chunk", v)? as usize,
            Some(("reads", v)) => a.reads = num("reads", v)?,
            Some(("qd", v)) => a.qd = num("qd", v)? as usize,
            Some(("seed", v)) => a.seed = num("seed", v)?,
            Some((k, v)) if a.config.set_option(k, v).map_err(|v| alloc::format!("bad number for {k}: {v}"))? => {}
            None if w == "seq" => a.seq = true,
            None if w == "rand" => a.rand = true,
            None if w == "quiet" => a.quiet = true,
            _ => {}
        }
    }
    if a.chunk == 0 || !a.chunk.is_multiple_of(PAGE) || a.qd == 0 {
        return Err(String::from("chunk must be a non-zero multiple of 4096, qd non-zero"));
    }
    Ok(a)
}

/// Output, printed at once or (`quiet`) kept until the end.
struct Out {
    quiet: bool,
    kept: String,
}

impl Out {
    fn line(&mut self, s: &str) {
        if self.quiet {
            self.kept.push_str(s);
            self.kept.push('\n');
        } else {
            println!("{s}");
        }
    }
}

fn fail(out: &mut Out, what: &str) -> ! {
    if !out.kept.is_empty() {
        guest_lib::print!("{}", out.kept);
    }
    println!("disk-bench: FAILED: {what}");
    guest_lib::shutdown::crash()
}

fn disk_bench(boot: &BootInfo) {
    let mut out = Out {
        quiet: false,
        kept: String::new(),
    };
    let args = match parse_args(boot.cmdline()) {
        Ok(a) => a,
        Err(e) => fail(&mut out, &e),
    };
    out.quiet = args.quiet;
    let dev = match BlkFront::open(args.disk, args.config) {
        Ok(d) => d,
        Err(e) => fail(&mut out, &alloc::format!("cannot open {}: {e}", args.disk)),
    };
    let connected_ns = time::now_ns();
    let info = dev.info();
    let mut line = String::new();
    let _ = write!(
        line,
        "disk-bench: connected-ns={connected_ns} sectors={} sector-size={} ring-order={} ring-slots={} segments={} persistent={}",
        info.sectors,
        info.sector_size,
        info.ring_order,
        info.ring_size,
        info.max_segments,
        u8::from(info.persistent)
    );
    out.line(&line);

    // One buffer for both phases: its pages are granted once.
    let len = args.chunk.max(args.qd * PAGE);
    let buf = match Layout::from_size_align(len, PAGE) {
        // SAFETY: non-zero size; the memory is never freed (the guest
        // powers off after the benchmark, and the backend may hold grants).
        Ok(l) => unsafe { alloc_zeroed(l) },
        Err(_) => core::ptr::null_mut(),
    };
    if buf.is_null() {
        fail(&mut out, "no memory for the buffer");
    }
    // SAFETY: `len` zeroed bytes owned by this function from here on.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf, len) };

    let ss = info.sector_size as u64;
    let size = info.sectors * ss;
    if args.seq {
        let total = args.seq_bytes.map_or(size, |b| b.min(size)) / ss * ss;
        let chunk = args.chunk as u64;
        let mut calls = 0u64;
        let start = time::now_ns();
        let mut off = 0u64;
        while off < total {
            let n = (total - off).min(chunk) as usize;
            if let Err(e) = dev.read_sectors(off / ss, &mut buf[..n]) {
                fail(&mut out, &alloc::format!("read at byte {off}: {e}"));
            }
            calls += 1;
            off += n as u64;
        }
        let ns = time::now_ns() - start;
        line.clear();
        let _ = write!(line, "disk-bench: seq bytes={total} ns={ns} calls={calls}");
        out.line(&line);
    }
    if args.rand {
        let blocks = size / PAGE as u64;
        if blocks == 0 {
            fail(&mut out, "disk smaller than 4 KiB");
        }
        let per_block = PAGE as u64 / ss;
        let mut x = args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let start = time::now_ns();
        let mut left = args.reads;
        while left > 0 {
            let n = left.min(args.qd as u64) as usize;
            let mut reqs = Vec::with_capacity(n);
            for page in buf.chunks_exact_mut(PAGE).take(n) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                reqs.push(ReadRequest {
                    lba: (x % blocks) * per_block,
                    buf: page,
                });
            }
            if let Err(e) = dev.read_many(&mut reqs) {
                fail(&mut out, &alloc::format!("random read: {e}"));
            }
            left -= n as u64;
        }
        let ns = time::now_ns() - start;
        line.clear();
        let _ = write!(line, "disk-bench: rand reads={} qd={} ns={ns}", args.reads, args.qd);
        out.line(&line);
    }
    if let Err(e) = dev.close() {
        line.clear();
        let _ = write!(line, "disk-bench: close: {e}");
        out.line(&line);
    }
    out.line("disk-bench: done");
    if out.quiet {
        guest_lib::print!("{}", out.kept);
    }
}

/// On the host there is nothing to run: disk-bench is a Xen guest.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("disk-bench is a Xen PVH guest: build it with --target x86_64-unknown-none");
}
