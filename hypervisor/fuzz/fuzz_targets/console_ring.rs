//! A hostile guest's console ring: arbitrary ring bytes and indices, a ring
//! page that may lie partly or wholly outside guest memory, and host input
//! arriving at any time. The backend drains what is valid and gives up on
//! a corrupt ring, never panicking, reading or writing past the ring, or
//! holding unbounded input. Checked: a valid output ring is drained
//! completely; input never overfills the input ring.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use xen_abi::console::*;
use xenolith::backends::console::{Console, Sink};
use xenolith::vstate::memory::GuestRam;
use xenolith::xen::domain::DomainInfo;
use xenolith::xen::time::Clock;
use xenolith::xen::Domain;

const RAM: u64 = 0x4000;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else { return };
    // In memory, straddling its end, or outside it.
    let ring = [0x1000, RAM - 0x800, RAM - 2, 0x10_0000][usize::from(flags & 3)];
    let inside = ring + 4096 <= RAM;
    let ram = Arc::new(GuestRam::new(&[(0, RAM as usize)]).unwrap());
    let info = DomainInfo { domid: 1, name: "fuzz".into(), memmap: Vec::new(), pages: RAM >> 12, max_pages: RAM >> 12 };
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
    let dom = Domain::new(info, ram.clone(), Clock::new(1_000_000, 0));
    let console = Console::new(ring, Sink::File(null));
    let idx = |off: usize| -> u32 { ram.read_obj(ring + off as u64).unwrap() };
    // Once the backend has seen corrupt indices it stops serving the ring.
    let mut corrupt = false;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 4 {
            0 => {
                // Ring bytes.
                let Some((b, tail)) = rest.split_first_chunk::<3>() else { break };
                rest = tail;
                let at = u64::from(u16::from_le_bytes([b[0], b[1]]) % 4096);
                let n = usize::from(b[2]).min(rest.len()).min((4096 - at) as usize);
                let _ = ram.write(ring + at, &rest[..n]);
                rest = &rest[n..];
            }
            1 => {
                // One index, any value.
                let Some((b, tail)) = rest.split_first_chunk::<5>() else { break };
                rest = tail;
                let off = [IN_CONS, IN_PROD, OUT_CONS, OUT_PROD][usize::from(b[0] & 3)];
                let _ = ram.write_obj(ring + off as u64, &u32::from_le_bytes([b[1], b[2], b[3], b[4]]));
            }
            2 => {
                // The guest notifies.
                let valid = inside && idx(OUT_PROD).wrapping_sub(idx(OUT_CONS)) <= OUT_RING_SIZE && idx(IN_PROD).wrapping_sub(idx(IN_CONS)) <= IN_RING_SIZE;
                corrupt |= !valid;
                console.on_guest_event(&dom);
                if !corrupt {
                    assert_eq!(idx(OUT_CONS), idx(OUT_PROD), "valid output left in the ring");
                    assert!(idx(IN_PROD).wrapping_sub(idx(IN_CONS)) <= IN_RING_SIZE, "input ring overfilled");
                }
            }
            _ => {
                // Someone types.
                let n = usize::from(op >> 2).min(rest.len());
                let valid = inside && idx(IN_PROD).wrapping_sub(idx(IN_CONS)) <= IN_RING_SIZE;
                corrupt |= !valid;
                console.input(&dom, &rest[..n]);
                rest = &rest[n..];
                if !corrupt {
                    assert!(idx(IN_PROD).wrapping_sub(idx(IN_CONS)) <= IN_RING_SIZE, "input ring overfilled");
                }
            }
        }
    }
    console.flush(&dom);
});
