//! The hypercall benchmark guest (`cargo xtask bench hypercall`): times,
//! with the pvclock, the cheapest trapped exit against hypercall round
//! trips, so that what a hypercall costs beyond the exit itself shows.
//!
//! Cases, each `calls=N` times (default 1000) in a loop, all of them again
//! in each of `rounds=R` rounds (default 5) so that a noisy host spreads
//! over every case alike; one line per case and round,
//! `hcall-bench: CASE NS ns`:
//! - `loop`: the loop below with a `nop` where the others exit: what the
//!   four guest instructions around the exit cost (the calibration that
//!   turns the other cases' guest-side differences into instructions).
//! - `bare-exit`: the same loop writing to port 0x80, which the hypervisor
//!   ignores: one trapped exit with no work behind it.
//! - `inline-xen_version`: the same loop writing the hypercall number to
//!   the port the hypercall page's stubs use, with XENVER_version's
//!   arguments in place: a full hypercall with exactly the guest
//!   instructions of `bare-exit`, so the difference is host work only.
//! - `xen_version`, `evtchn_send`, `sched_yield`: guest-lib's calls through
//!   the hypercall page, as every guest makes them (XENVER_version;
//!   EVTCHNOP_send on a port of our own that is unbound, which Xen accepts
//!   and drops after reading the argument from guest memory; SCHEDOP_yield).
//!
//! The first three need our hypervisor's stubs (`mov eax, NR; out PORT,
//! eax; ret`); under another hypervisor (real Xen, whose stubs are VMCALL
//! or SYSCALL) they are left out and the guest only times the calls.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

use guest_lib::{println, time, BootInfo};

#[cfg(target_os = "none")]
guest_lib::main!(bench);

/// The port the hypervisor ignores without a word (the PC's POST/delay port).
const IDLE_PORT: u16 = 0x80;

/// Reads `key=N` from the command line.
fn arg(boot: &BootInfo, key: &str, default: u64) -> u64 {
    boot.cmdline()
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(guest_lib::boot::parse_number)
        .unwrap_or(default)
}

/// Runs every case `rounds` times, interleaved, then powers off (by returning).
fn bench(boot: &BootInfo) {
    let calls = arg(boot, "calls", 1000).max(1);
    let rounds = arg(boot, "rounds", 5).max(1);
    let port = our_hypercall_port();
    match port {
        Some(p) => println!("hcall-bench: {calls} calls per case, {rounds} rounds; hypercall stubs write port {p:#x}"),
        None => println!("hcall-bench: {calls} calls per case, {rounds} rounds; the hypercall stubs are not ours: exit cases left out"),
    }
    let unbound = guest_lib::evtchn::alloc_unbound(guest_lib::xen_abi::DOMID_SELF);
    if let Err(e) = unbound {
        println!("hcall-bench: EVTCHNOP_alloc_unbound failed ({e:?}): evtchn_send left out");
    }
    for _ in 0..rounds {
        report("loop", calls, || exit_loop(None, 0, calls));
        if let Some(p) = port {
            report("bare-exit", calls, || exit_loop(Some(IDLE_PORT), 0, calls));
            report("inline-xen_version", calls, || exit_loop(Some(p), XEN_VERSION, calls));
        }
        report("xen_version", calls, || {
            for _ in 0..calls {
                let _ = guest_lib::hypercall::version();
            }
        });
        if let Ok(p) = unbound {
            report("evtchn_send", calls, || {
                for _ in 0..calls {
                    let _ = guest_lib::evtchn::send(p);
                }
            });
        }
        report("sched_yield", calls, || {
            for _ in 0..calls {
                guest_lib::sched::yield_now();
            }
        });
    }
    if let Ok(p) = unbound {
        let _ = guest_lib::evtchn::close(p);
    }
    println!("hcall-bench: done");
}

/// xen_version's hypercall number: the stub `our_hypercall_port` reads,
/// and what the inline case writes to the port.
const XEN_VERSION: u32 = guest_lib::xen_abi::hypercall::XEN_VERSION;

/// Runs `f` (which makes `calls` calls) and prints the time per call.
fn report(case: &str, calls: u64, f: impl FnOnce()) {
    let start = time::now_ns();
    f();
    let ns = (time::now_ns() - start) / calls;
    println!("hcall-bench: {case} {ns} ns");
}

/// The port our hypervisor's xen_version stub writes, if the stub is ours
/// (`b8 imm32` `e7 port` `c3`).
#[cfg(target_os = "none")]
fn our_hypercall_port() -> Option<u16> {
    if !guest_lib::hypercall::ready() {
        return None;
    }
    let stub = guest_lib::hypercall::page_addr()
        + u64::from(XEN_VERSION) * guest_lib::xen_abi::hypercall::STUB_SIZE as u64;
    let mut b = [0u8; 8];
    for (i, byte) in b.iter_mut().enumerate() {
        // SAFETY: the hypercall page is ours, mapped and readable (the
        // identity map covers it); the stub is 32 bytes long.
        *byte = unsafe { core::ptr::read_volatile((stub + i as u64) as *const u8) };
    }
    let ours = b[0] == 0xb8 && b[1..5] == XEN_VERSION.to_le_bytes() && b[5] == 0xe7 && b[7] == 0xc3;
    ours.then_some(u16::from(b[6]))
}

#[cfg(not(target_os = "none"))]
fn our_hypercall_port() -> Option<u16> {
    None
}

/// `calls` iterations of `mov eax, nr; out dx, eax` (or a `nop` in place of
/// the `out` when `port` is None), `dec rcx; jnz`: four instructions, so
/// every case times the same guest code. With RDI = RSI = 0 a write of
/// XEN_VERSION to the hypercall port is XENVER_version.
fn exit_loop(port: Option<u16>, nr: u32, calls: u64) {
    // SAFETY: the loop touches only the registers declared below; an `out`
    // to the idle port is ignored, and to the hypercall port with these
    // arguments it is XENVER_version, which reads and writes no memory and
    // only sets RAX.
    unsafe {
        match port {
            Some(port) => core::arch::asm!(
                "2:",
                "mov eax, {nr:e}",
                "out dx, eax",
                "dec rcx",
                "jnz 2b",
                nr = in(reg) nr,
                in("dx") port,
                inout("rcx") calls => _,
                inout("rdi") 0u64 => _,
                inout("rsi") 0u64 => _,
                out("rax") _,
                options(nostack),
            ),
            None => core::arch::asm!(
                "2:",
                "mov eax, {nr:e}",
                "nop",
                "dec rcx",
                "jnz 2b",
                nr = in(reg) nr,
                inout("rcx") calls => _,
                out("rax") _,
                options(nostack, nomem),
            ),
        }
    }
}

/// On the host there is nothing to run: hcall-bench is a Xen guest.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hcall-bench is a Xen PVH guest: build it with --target x86_64-unknown-none");
}
