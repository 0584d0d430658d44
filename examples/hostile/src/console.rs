//! The console: huge writes through the ring and through CONSOLEIO_write,
//! then (last of all) the ring's indices past the ring.

use alloc::vec::Vec;

use guest_lib::xen_abi::{console as c, hypercall as nr};

use crate::raw::{call, Page};
use crate::{Ctx, Tally};

/// Huge writes: the ring path (as a chatty guest would) and CONSOLEIO_write
/// with huge, negative and bad-pointer counts.
pub fn flood(cx: &mut Ctx) -> Tally {
    let mut t = Tally::new("console");
    for _ in 0..cx.rounds {
        // 32 KiB of output, with control characters and escape sequences.
        let line: Vec<u8> = (0..255u8)
            .map(|b| if b == b'\n' { b'.' } else { b })
            .chain(*b"\x1b[2J\x1b]0;title\x07\r\n")
            .collect();
        for _ in 0..(32 * 1024 / line.len()) {
            guest_lib::console::write_bytes(&line);
            t.calls += 1;
        }
        guest_lib::console::write_bytes(b"\x1b[0m\r\n");
        for _ in 0..200 {
            let count = match cx.rng.below(4) {
                0 => cx.rng.wild(),
                1 => 1 << 30,
                2 => u64::MAX,
                _ => cx.rng.below(64 * 1024),
            };
            let buf = match cx.rng.below(3) {
                0 => cx.scratch.addr(),
                1 => cx.ram_end - cx.rng.below(64),
                _ => cx.rng.wild(),
            };
            // Write only: CONSOLEIO_read into a random buffer would overwrite
            // our memory (where Xen allows it; Xenolith refuses it).
            let cmd = if cx.rng.one_in(8) {
                cx.rng.wild() & !1
            } else {
                u64::from(c::CONSOLEIO_WRITE)
            };
            t.rc(call(
                nr::CONSOLE_IO,
                [
                    cmd,
                    count.min(if buf == cx.scratch.addr() {
                        16 * 1024
                    } else {
                        u64::MAX
                    }),
                    buf,
                    0,
                    0,
                ],
            ));
        }
    }
    t
}

/// The console ring's indices past the ring: output producer far ahead of
/// the consumer, input consumer past the producer. The backend disables the
/// console (as xenconsoled does), so the summary goes to the debug port.
pub fn ring_indices(cx: &mut Ctx) {
    let Ok(ring) = guest_lib::arch::console_ring() else {
        return;
    };
    // SAFETY: the console ring page the toolstack gave us; guest-lib's
    // console has flushed and is not used again (only the debug port).
    let page = unsafe { Page::at(ring.addr) };
    let mut t = Tally::new("console-ring");
    for _ in 0..cx.rounds * 10 {
        let cons = page.u32(c::OUT_CONS);
        page.set_u32(
            c::OUT_PROD,
            cons.wrapping_add(
                cx.rng
                    .pick(&[c::OUT_RING_SIZE + 1, 1 << 20, u32::MAX, 0x8000_0000]),
            ),
        );
        let ip = page.u32(c::IN_PROD);
        page.set_u32(
            c::IN_CONS,
            ip.wrapping_add(cx.rng.pick(&[1u32, 5000, u32::MAX])),
        );
        t.rc(guest_lib::evtchn::send(ring.port).map_or_else(|e| -e.0, |()| 0));
        guest_lib::sched::yield_now();
    }
    let line = alloc::format!("{}\n", t.line(cx.seed));
    // CONSOLEIO_write goes to the hypervisor's own log (stderr here).
    call(
        nr::CONSOLE_IO,
        [
            u64::from(c::CONSOLEIO_WRITE),
            line.len() as u64,
            line.as_ptr() as u64,
            0,
            0,
        ],
    );
}
