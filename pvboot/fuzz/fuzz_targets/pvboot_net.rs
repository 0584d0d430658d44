//! Network boot's protocol clients on what a hostile server sends: TFTP
//! datagrams and an HTTP response, cut at input-chosen boundaries.
//! Runs under pvboot's heap limit (common/heap.rs).
#![no_main]

#[path = "common/heap.rs"]
mod heap;

use libfuzzer_sys::fuzz_target;
use pvboot::net::http::{HttpError, Response};
use pvboot::net::tftp::{Download, Options, Step};

const MAX: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    if mode & 1 == 0 {
        // TFTP: [port][length, 2 bytes LE][datagram]...; the port's low bit
        // picks one of two, so the stranger case is reached.
        let (mut d, _) = Download::start("boot/kernel", Options { blksize: 512 << (mode >> 1 & 3), max_size: MAX }).unwrap();
        let mut delivered = 0u64;
        let mut rest = data;
        while let [port, lo, hi, tail @ ..] = rest {
            let (packet, tail) = tail.split_at(usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len()));
            rest = tail;
            match d.receive(69 + u16::from(*port & 1), packet) {
                Ok(Step::Data { bytes, .. }) => {
                    assert!(bytes.len() <= usize::from(d.blksize()));
                    delivered += bytes.len() as u64;
                }
                Ok(_) => {}
                Err(_) => return,
            }
            assert_eq!(delivered, d.received());
            assert!(delivered <= MAX);
        }
    } else {
        // HTTP: the response in pieces of input-chosen sizes.
        let mut r = Response::new(MAX);
        let mut body = 0u64;
        let step = usize::from(mode >> 1).max(1);
        for piece in data.chunks(step) {
            match r.feed(piece, &mut |b: &[u8]| -> Result<(), HttpError> {
                body += b.len() as u64;
                Ok(())
            }) {
                Ok(true) => {
                    if let Some(n) = r.content_length() {
                        assert_eq!(body, n);
                    }
                    break;
                }
                Ok(false) => {}
                Err(_) => return,
            }
            assert!(body <= MAX && body == r.received());
        }
        let _ = r.finish();
    }
});
