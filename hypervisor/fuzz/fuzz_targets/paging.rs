//! A guest's page tables, walked as a hypercall's buffer is translated
//! (vstate::paging): the control registers and 64 KiB of guest memory,
//! page tables and all, come from the input, then addresses from the rest
//! of it are translated. Checked: no panic; with paging off a translation
//! is the address itself, with paging on it keeps the address's offset in
//! its 4 KiB page. (A translation may name a page past RAM: refusing that
//! is the caller's, whose `GuestRam` access then fails.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenolith::vstate::memory::GuestRam;
use xenolith::vstate::paging::Paging;

const RAM: usize = 0x10000;

fuzz_target!(|data: &[u8]| {
    if data.len() < 32 {
        return;
    }
    let word = |i: usize| u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().unwrap());
    // The mode bits mostly from their own byte, so that every mode is
    // reached; CR3 mostly inside the small RAM.
    let mode = data[0];
    let p = Paging {
        cr0: if mode & 1 != 0 { 1 << 31 | 1 } else { word(0) & !(1 << 31) },
        cr3: if mode & 2 != 0 { word(1) % RAM as u64 } else { word(1) },
        cr4: (word(2) & !0x1030) | if mode & 4 != 0 { 1 << 5 } else { 0 } | if mode & 8 != 0 { 1 << 4 } else { 0 } | if mode & 16 != 0 { 1 << 12 } else { 0 },
        efer: (word(3) & !0xc00) | if mode & 32 != 0 { 1 << 10 } else { 0 } | if mode & 64 != 0 { 1 << 11 } else { 0 },
    };
    let ram = GuestRam::new(&[(0, RAM)]).unwrap();
    let rest = &data[32..];
    let (tables, addrs) = rest.split_at(rest.len().min(RAM));
    ram.write(0, tables).unwrap();
    // A few addresses per input: the shared seeds are large, and more
    // of the same tables adds little.
    for a in addrs.chunks(8).take(64) {
        let mut b = [0u8; 8];
        b[..a.len()].copy_from_slice(a);
        let gva = u64::from_le_bytes(b);
        if let Some(gpa) = p.translate(&ram, gva) {
            if p.cr0 & (1 << 31) == 0 {
                assert_eq!(gpa, gva, "paging off is the identity");
            } else {
                assert_eq!(gpa & 0xfff, gva & 0xfff, "a translation keeps the offset in the page");
            }
        }
    }
});
