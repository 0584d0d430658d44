//! A hostile guest's xenstore ring: arbitrary request bytes and arbitrary
//! ring indices. xenstored must answer, refuse or drop the connection, never
//! panic or touch memory outside the ring page.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use xen_abi::xenstore as xs;
use xenolith::vstate::memory::GuestRam;
use xenolith::xenstore::daemon::State;
use xenolith::xenstore::{GuestRing, Quota};

const RING: u64 = 0x1000;

fuzz_target!(|data: &[u8]| {
    let ram = Arc::new(GuestRam::new(&[(0, 0x3000)]).unwrap());
    let ring = Arc::new(GuestRing::new(ram.clone(), RING, || {}).unwrap());
    let mut st = State::new(Quota::default());
    if st.introduce(1, Some(ring)).is_err() {
        return;
    }
    let Some(&conn) = st.rings().first() else { return };
    let mut prod = 0u32;
    // Each chunk: one flag byte, then up to 255 request bytes.
    let mut rest = data;
    while let Some((&flag, tail)) = rest.split_first() {
        let n = usize::from(flag & 0x7f).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        for (i, b) in chunk.iter().enumerate() {
            let at = (prod as usize + i) % xs::XENSTORE_RING_SIZE as usize;
            ram.write(RING + xs::REQ as u64 + at as u64, &[*b]).unwrap();
        }
        prod = prod.wrapping_add(n as u32);
        if flag & 0x80 != 0 && chunk.len() >= 4 {
            // A guest that lies about its producer index.
            prod = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        ram.write_obj(RING + xs::REQ_PROD as u64, &prod).unwrap();
        st.pump_ring(conn);
    }
});
