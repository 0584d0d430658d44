//! hostile: a guest that attacks every interface the hypervisor exposes
//! (issue 9), driven by a seed so that a run can be repeated exactly.
//!
//! Command line (words): `seed=N` (default 1), `rounds=N` (default 1; each
//! class does its work this many times), `only=CLASS[,CLASS...]` (run only
//! those classes, for debugging a seed), `churn=N` (passes of the memory
//! class's populate/give-back churn over 256 frames, each round; default 8).
//!
//! Classes, in the order they run (an attack that may leave an interface
//! unusable comes after every class that needs it):
//! - `hypercall`: every hypercall number (0..128 through the page, some
//!   past it) with random and boundary arguments: pointers into the
//!   hypercall page, holes, past the end of RAM, non-canonical, unaligned
//!   and page-crossing buffers, huge counts, negative values;
//! - `memory`: populate/decrease/add_to_physmap on holes and impossible
//!   frames, huge extent counts and orders, memory maps of any size;
//! - `gnttab`: GNTTABOP_copy / map / query_size / setup_table with bogus
//!   references, domains, frames, offsets and counts; copies through the
//!   guest's own grants (read-only, sub-page, transitive, to holes);
//! - `evtchn`: send storms, binding every port until failure, closing
//!   ports never allocated, bogus VIRQs and vCPUs, unmask and reset misuse,
//!   SCHEDOP_poll with bad port lists;
//! - `xenstore`: deep paths, large values, node floods, thousands of
//!   watches, transactions left open, every message type (and unknown ones);
//! - `blk-xenbus`: ring-ref, event-channel, ring order and protocol
//!   nonsense in xenstore before connecting;
//! - `blk-ring`: a hand-made blkfront: requests with bogus segment counts,
//!   sectors and grants, indirect requests with bogus pages, requests
//!   rewritten while the backend reads them (the double fetch of XSA-155),
//!   grants changed or ended while in use, producer indices far past the
//!   ring;
//! - `net-xenbus`: a vif's ring references, event channels, queue counts,
//!   rx-copy and feature nodes set to nonsense before connecting (skipped,
//!   with a line saying so, when the guest has no vif);
//! - `net-ring`: a hand-made netfront: malformed tx packets (bogus and
//!   foreign grants, buffers past their page, chains too long or never
//!   ending, bad extra-info slots, sizes 0 and 65535), slots rewritten and
//!   grants revoked while the backend reads them, rx requests with bogus
//!   grants, producer indices past both rings; each connection ends with
//!   an abuse that disables the vif, and the next must connect again;
//! - `xs-ring`: bad message types and lengths written straight into the
//!   xenstore ring, then indices past the ring (xenstore is not used after);
//! - `console`: huge writes through the ring and CONSOLEIO_write;
//!   then `hostile: seed N done` is printed, and last `console-ring`: the
//!   console ring's indices past the ring (which ends the console, as
//!   xenconsoled does; its summary goes to the debug port), and the guest
//!   powers off.
//!
//! Each class prints `hostile: seed N class NAME: C calls, errors E` (an
//! error is any call the hypervisor refused, which is what most of them
//! should be). The guest may be crashed or destroyed by the hypervisor: the
//! test checks the hypervisor, not the guest.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code, unused_imports))]

extern crate alloc;

mod blk;
mod console;
mod front;
mod hypercalls;
mod net;
mod raw;
mod xs;

use alloc::string::String;
use alloc::vec::Vec;

use guest_lib::{println, BootInfo};

#[cfg(target_os = "none")]
guest_lib::main!(hostile);

/// SplitMix64: small, fast and good enough to drive attacks; a seed
/// reproduces a run exactly.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (the same seed always gives the same stream).
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6a09_e667_f3bc_c908)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.bits() % n.max(1)
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A "boundary or random" 64-bit value: the values that break
    /// arithmetic more often than random ones do.
    pub fn wild(&mut self) -> u64 {
        match self.below(12) {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => i64::MIN as u64,
            4 => i64::MAX as u64,
            5 => u64::from(u32::MAX),
            6 => 0x8000_0000,
            7 => 0x7fff_ffff,
            8 => (-(self.below(40) as i64) - 1) as u64,
            9 => 1 << self.below(64),
            10 => self.below(4096),
            _ => self.bits(),
        }
    }
}

/// One attack class's counts.
pub struct Tally {
    name: &'static str,
    /// Calls (hypercalls, requests, ring operations) made.
    pub calls: u64,
    /// Of those, how many the hypervisor refused or that failed.
    pub errors: u64,
    /// Anything else worth printing (`key value` pairs).
    pub notes: Vec<(&'static str, u64)>,
    /// When the class started (system time, ns).
    start_ns: u64,
    /// Time spent, when the class measures it itself (interleaved classes).
    pub busy_ns: Option<u64>,
}

impl Tally {
    /// An empty tally for class `name`.
    pub fn new(name: &'static str) -> Tally {
        Tally {
            name,
            calls: 0,
            errors: 0,
            notes: Vec::new(),
            start_ns: guest_lib::time::now_ns(),
            busy_ns: None,
        }
    }

    /// Counts a hypercall result (negative: an error).
    pub fn rc(&mut self, rc: i64) -> i64 {
        self.calls += 1;
        if rc < 0 {
            self.errors += 1;
        }
        rc
    }

    /// Counts an outcome: `ok` false is an error.
    pub fn ok(&mut self, ok: bool) -> bool {
        self.calls += 1;
        if !ok {
            self.errors += 1;
        }
        ok
    }

    /// Adds `n` to note `key`.
    pub fn note(&mut self, key: &'static str, n: u64) {
        match self.notes.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v += n,
            None => self.notes.push((key, n)),
        }
    }

    /// The class's line.
    pub fn line(&self, seed: u64) -> String {
        let mut s = alloc::format!(
            "hostile: seed {seed} class {}: {} calls, errors {}",
            self.name,
            self.calls,
            self.errors
        );
        for (k, v) in &self.notes {
            s.push_str(&alloc::format!(", {k} {v}"));
        }
        let ns = self
            .busy_ns
            .unwrap_or_else(|| guest_lib::time::now_ns().saturating_sub(self.start_ns));
        s.push_str(&alloc::format!(", {} ms", ns / 1_000_000));
        s
    }
}

/// What every class needs.
pub struct Ctx {
    /// The run's generator.
    pub rng: Rng,
    /// The seed (for the lines printed).
    pub seed: u64,
    /// How many times each class repeats its work.
    pub rounds: u64,
    /// The end of RAM (first address past it).
    pub ram_end: u64,
    /// Four pages the guest may lose: hypercalls write through pointers to it.
    pub scratch: raw::Page,
    /// Passes of the memory class's populate/give-back churn (`churn=N`).
    pub churn: u64,
}

fn arg<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn hostile(boot: &BootInfo) {
    let cmdline = boot.cmdline();
    let seed = arg(cmdline, "seed")
        .and_then(guest_lib::boot::parse_number)
        .unwrap_or(1);
    let rounds = arg(cmdline, "rounds")
        .and_then(guest_lib::boot::parse_number)
        .unwrap_or(1)
        .clamp(1, 1000);
    let only = arg(cmdline, "only");
    let wants = |class: &str| only.is_none_or(|o| o.split(',').any(|c| c == class));
    println!(
        "hostile: seed {seed} rounds {rounds} ram_end {:#x}",
        boot.ram_end()
    );
    let mut cx = Ctx {
        rng: Rng::new(seed),
        seed,
        rounds,
        ram_end: boot.ram_end(),
        scratch: raw::Page::alloc(4),
        churn: arg(cmdline, "churn")
            .and_then(guest_lib::boot::parse_number)
            .unwrap_or(8),
    };
    let report = |t: Tally| println!("{}", t.line(seed));
    if wants("hypercall") {
        report(hypercalls::every_hypercall(&mut cx));
    }
    if wants("memory") {
        report(hypercalls::memory(&mut cx));
    }
    if wants("gnttab") {
        report(hypercalls::gnttab(&mut cx));
    }
    if wants("evtchn") {
        report(hypercalls::evtchn(&mut cx));
    }
    if wants("xenstore") {
        report(xs::api(&mut cx));
    }
    if wants("blk-xenbus") || wants("blk-ring") {
        for t in blk::attack(&mut cx, wants("blk-xenbus"), wants("blk-ring")) {
            report(t);
        }
    }
    if wants("net-xenbus") || wants("net-ring") {
        match net::attack(&mut cx, wants("net-xenbus"), wants("net-ring")) {
            Some(tallies) => tallies.into_iter().for_each(report),
            None => println!("hostile: seed {seed} net classes skipped: no vif"),
        }
    }
    if wants("xs-ring") {
        report(xs::ring(&mut cx));
    }
    if wants("console") {
        report(console::flood(&mut cx));
    }
    println!("hostile: seed {seed} done");
    guest_lib::console::flush(core::time::Duration::from_secs(2));
    if wants("console-ring") {
        console::ring_indices(&mut cx);
    }
}

/// On the host there is nothing to run: hostile is a Xen guest.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hostile is a Xen PVH guest: build it with --target x86_64-unknown-none");
}
