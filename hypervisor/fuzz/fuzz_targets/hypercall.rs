//! A hostile guest's hypercalls, without KVM: the dispatcher runs on a
//! domain with 256 KiB of RAM and a `FlatCpu` (registers from the input, an
//! identity map of the low 4 GiB and, for some calls, the top page of the
//! address space mapped to RAM; 64-bit or compat), as the vCPU thread
//! would run it. The input is a program: write bytes into guest memory, or
//! make a hypercall whose number and arguments come from the input, with
//! pointers aimed into RAM, just past it, or anywhere. Checked: no panic,
//! every call returns, the domain never holds more pages than its maximum,
//! and a console flood is cut at its rate limit.
//!
//! SCHEDOP_block and SCHEDOP_poll are not made: they wait for an event or
//! a timeout, which a single-threaded target has nobody to send.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use xen_abi::hvm::{HvmMemmapEntry, MEMMAP_TYPE_RAM};
use xen_abi::hypercall as nr;
use xenolith::vstate::memory::GuestRam;
use xenolith::xen::domain::DomainInfo;
use xenolith::xen::guest_access::{FlatCpu, GuestView};
use xenolith::xen::time::Clock;
use xenolith::xen::Domain;

const RAM: u64 = 0x40000;
/// Pages the domain may hold beyond its RAM (libxl's slack is 256).
const SLACK: u64 = 8;

/// An argument: small selectors aim pointers at interesting places.
fn arg(b: &[u8; 9]) -> u64 {
    let v = u64::from_le_bytes(b[1..].try_into().unwrap());
    match b[0] % 8 {
        0 => v % RAM,             // into RAM
        1 => RAM - (v % 64),      // straddling its end
        2 => RAM + (v % 0x10000), // just past it (a hole)
        3 => u64::MAX - (v % 64), // the top of the address space
        4 => v % 4096,            // a small number (counts, ports, commands)
        5 => v % 64,              // a sub-op
        _ => v,                   // anything
    }
}

fuzz_target!(|data: &[u8]| {
    let ram = Arc::new(GuestRam::new(&[(0, RAM as usize)]).unwrap());
    let info = DomainInfo {
        domid: 1,
        name: "fuzz".into(),
        memmap: vec![HvmMemmapEntry {
            addr: 0,
            size: RAM,
            kind: MEMMAP_TYPE_RAM,
            reserved: 0,
        }],
        pages: RAM >> 12,
        max_pages: (RAM >> 12) + SLACK,
    };
    let dom = Domain::new(info, ram.clone(), Clock::new(1_000_000, 0));
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        if op & 1 == 0 {
            // Guest memory: up to 64 bytes at a RAM offset.
            let Some((b, tail)) = rest.split_first_chunk::<3>() else {
                break;
            };
            rest = tail;
            let at = u64::from(u16::from_le_bytes([b[0], b[1]])) * 4 % RAM;
            let n = usize::from(b[2] % 64).min(rest.len());
            let _ = ram.write(at, &rest[..n]);
            rest = &rest[n..];
            continue;
        }
        // A hypercall: number, then five arguments.
        let Some((&n, tail)) = rest.split_first() else {
            break;
        };
        rest = tail;
        let mut a = [0u64; 5];
        for x in a.iter_mut() {
            let Some((b, tail)) = rest.split_first_chunk::<9>() else {
                break;
            };
            rest = tail;
            *x = arg(b);
        }
        let number = match n {
            0..=69 => u32::from(n),
            70..=127 => u32::from(n) * 3,
            _ => u32::MAX - u32::from(n),
        };
        let long_mode = op & 2 == 0;
        let cmd = if long_mode { a[0] } else { a[0] & 0xffff_ffff };
        if number == nr::SCHED_OP && matches!(cmd as u32, 1 | 3) {
            continue;
        }
        let mut cpu = FlatCpu {
            long_mode,
            mapped: 1 << 32,
            top_page: (op & 4 != 0).then_some(0x3000),
            ..Default::default()
        };
        let r = &mut cpu.regs;
        if long_mode {
            (r.rdi, r.rsi, r.rdx, r.r10, r.r8) = (a[0], a[1], a[2], a[3], a[4]);
        } else {
            (r.rbx, r.rcx, r.rdx, r.rsi, r.rdi) = (a[0], a[1], a[2], a[3], a[4]);
        }
        let view = GuestView {
            ram: &ram,
            cpu: &cpu,
        };
        let _ = xenolith::xen::hypercall::dispatch(&dom, &view, number);
        assert!(
            dom.physmap.tot_pages() <= dom.physmap.max_pages(),
            "over the domain's maximum"
        );
    }
});
