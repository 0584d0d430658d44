//! xenstore: floods through the client (deep paths, large values, many
//! nodes, thousands of watches, transactions left open, every message
//! type), then garbage written straight into the ring.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use guest_lib::xen_abi::xenstore as x;
use guest_lib::xenstore::{self, Tx, XsError};

use crate::raw::Page;
use crate::{Ctx, Tally};

fn count<T>(t: &mut Tally, r: Result<T, XsError>) -> Option<T> {
    t.calls += 1;
    match r {
        Ok(v) => Some(v),
        Err(XsError::Timeout) => {
            t.errors += 1;
            t.note("timeouts", 1);
            None
        }
        Err(_) => {
            t.errors += 1;
            None
        }
    }
}

/// The client-side floods.
pub fn api(cx: &mut Ctx) -> Tally {
    let mut t = Tally::new("xenstore");
    // Relative paths are under our own /local/domain/N.
    let base = String::from("data/hostile");
    for _ in 0..cx.rounds {
        // Deep paths, up to and past the length limits.
        for depth in [8usize, 64, 500, 1000, 1600] {
            let mut p = base.clone();
            for _ in 0..depth {
                p.push_str("/d");
            }
            count(&mut t, xenstore::write(Tx::NONE, &p, "deep"));
            count(&mut t, xenstore::read(Tx::NONE, &p));
        }
        // Large values: at and past the payload limit, and non-UTF-8.
        for len in [1000usize, 2048, 4000, 4095, 4096, 5000] {
            let v: Vec<u8> = (0..len)
                .map(|i| (i as u8) ^ (cx.rng.bits() as u8))
                .collect();
            count(
                &mut t,
                xenstore::write_bytes(Tx::NONE, &format!("{base}/big"), &v),
            );
        }
        count(&mut t, xenstore::rm(Tx::NONE, &base));
        // A node flood until the quota says no.
        let mut made = 0;
        for i in 0..1200 {
            if count(
                &mut t,
                xenstore::write(Tx::NONE, &format!("{base}/n{i}"), "x"),
            )
            .is_some()
            {
                made += 1;
            } else if i > made + 20 {
                break;
            }
        }
        t.note("nodes", made);
        // Thousands of watches (raw XS_WATCH: the client's Watch type would
        // unwatch on drop), on paths that exist, do not, and are special.
        let mut watches = 0;
        for i in 0..2000 {
            let path = match i % 4 {
                0 => format!("{base}/n{}", i % 50),
                1 => format!("w{i}"),
                2 => String::from("@introduceDomain"),
                _ => format!("/local/domain/0/w{i}"),
            };
            let token = format!("t{i}");
            if count(
                &mut t,
                xenstore::request(
                    x::XS_WATCH,
                    Tx::NONE,
                    &[cstr(&path).as_slice(), cstr(&token).as_slice()],
                ),
            )
            .is_some()
            {
                watches += 1;
            } else if i > watches + 50 {
                break;
            }
        }
        t.note("watches", watches);
        // Events for all of them.
        for i in 0..50 {
            count(
                &mut t,
                xenstore::write(Tx::NONE, &format!("{base}/n{i}"), "y"),
            );
        }
        // Transactions left open.
        let mut open = 0;
        for _ in 0..50 {
            if count(&mut t, xenstore::transaction_start()).is_some() {
                open += 1;
            }
        }
        t.note("transactions", open);
        // Every message type, with random payloads, plus unknown types and
        // transaction ids that do not exist.
        for _ in 0..200 {
            let ty = match cx.rng.below(4) {
                0 => cx.rng.below(u64::from(x::XS_TYPE_COUNT) + 4) as u32,
                1 => cx.rng.pick(&[
                    x::XS_INVALID,
                    0xfffe,
                    u32::MAX,
                    1 << 16,
                    x::XS_ERROR,
                    x::XS_WATCH_EVENT,
                ]),
                _ => cx.rng.pick(&[
                    x::XS_CONTROL,
                    x::XS_INTRODUCE,
                    x::XS_RELEASE,
                    x::XS_SET_TARGET,
                    x::XS_RESUME,
                    x::XS_SET_PERMS,
                    x::XS_GET_PERMS,
                    x::XS_SET_QUOTA,
                    x::XS_DIRECTORY_PART,
                    x::XS_RESET_WATCHES,
                ]),
            };
            // XS_RESET_WATCHES would undo the flood above; XS_TRANSACTION_END
            // and XS_UNWATCH are exercised with bogus ids below.
            if ty == x::XS_RESET_WATCHES && !cx.rng.one_in(20) {
                continue;
            }
            let parts: Vec<Vec<u8>> = (0..cx.rng.below(4))
                .map(|_| match cx.rng.below(4) {
                    0 => cstr(&base),
                    1 => (0..cx.rng.below(64)).map(|_| cx.rng.bits() as u8).collect(),
                    2 => cstr(&format!("{}", cx.rng.wild() as i64)),
                    _ => Vec::new(),
                })
                .collect();
            let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let tx = Tx(if cx.rng.one_in(4) {
                cx.rng.bits() as u32
            } else {
                0
            });
            count(&mut t, xenstore::request(ty, tx, &parts));
        }
        // Clean up what would make the block class fail (quota).
        count(&mut t, xenstore::rm(Tx::NONE, &base));
        count(&mut t, xenstore::reset_watches());
    }
    t
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = Vec::from(s.as_bytes());
    v.push(0);
    v
}

/// Garbage straight into the ring: headers with bad types and lengths, a
/// half message, then indices past the ring. xenstore is not used after
/// this (the connection may be dropped or marked broken, as C xenstored
/// does).
pub fn ring(cx: &mut Ctx) -> Tally {
    let mut t = Tally::new("xs-ring");
    let Ok(r) = guest_lib::arch::xenstore_ring() else {
        t.ok(false);
        return t;
    };
    // SAFETY: the store ring page the toolstack gave us; guest-lib's client
    // is idle (no request outstanding) and is not used again.
    let page = unsafe { Page::at(r.addr) };
    let ring = x::XENSTORE_RING_SIZE;
    let send = |t: &mut Tally, bytes: &[u8]| {
        let prod = page.u32(x::REQ_PROD);
        let cons = page.u32(x::REQ_CONS);
        let room = ring - prod.wrapping_sub(cons).min(ring);
        let n = (bytes.len() as u32).min(room);
        for (i, b) in bytes[..n as usize].iter().enumerate() {
            let at = x::REQ + x::mask_idx(prod.wrapping_add(i as u32));
            page.write(at, &[*b]);
        }
        page.set_u32(x::REQ_PROD, prod.wrapping_add(n));
        t.rc(call_send(r.port));
    };
    for _ in 0..cx.rounds {
        for _ in 0..20 {
            let ty = cx.rng.pick(&[
                x::XS_INVALID,
                99,
                u32::MAX,
                x::XS_WATCH_EVENT,
                x::XS_ERROR,
                x::XS_READ,
            ]);
            let any = cx.rng.bits() as u32;
            let len = cx.rng.pick(&[0u32, 1, 4096, 4097, 5000, u32::MAX, any]);
            let mut hdr = Vec::new();
            for w in [ty, cx.rng.bits() as u32, cx.rng.bits() as u32, len] {
                hdr.extend_from_slice(&w.to_le_bytes());
            }
            let body: Vec<u8> = (0..cx.rng.below(64)).map(|_| cx.rng.bits() as u8).collect();
            hdr.extend_from_slice(&body);
            send(&mut t, &hdr);
            guest_lib::sched::yield_now();
        }
        // Indices past the ring: request producer far ahead, response
        // consumer ahead of the producer.
        for _ in 0..10 {
            let cons = page.u32(x::REQ_CONS);
            page.set_u32(
                x::REQ_PROD,
                cons.wrapping_add(cx.rng.pick(&[ring + 1, 5000, u32::MAX, 1 << 31])),
            );
            let rp = page.u32(x::RSP_PROD);
            page.set_u32(
                x::RSP_CONS,
                rp.wrapping_add(cx.rng.pick(&[1u32, 2000, u32::MAX])),
            );
            t.rc(call_send(r.port));
            guest_lib::sched::yield_now();
        }
    }
    t.note("connection", u64::from(page.u32(x::CONNECTION)));
    t.note("error", u64::from(page.u32(x::ERROR)));
    t
}

fn call_send(port: u32) -> i64 {
    match guest_lib::evtchn::send(port) {
        Ok(()) => 0,
        Err(e) => -e.0,
    }
}
