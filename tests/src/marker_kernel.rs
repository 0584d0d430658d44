//! A tiny test kernel: an ELF32 that is both a PVH kernel (a PHYS32_ENTRY
//! note) and a multiboot 1 kernel, whose entry writes a marker line to the
//! debug port 0xE9 (the hypervisor's log) and halts with interrupts off (the
//! domain then ends). Its second PT_LOAD is filler of any size, so that it
//! exercises a boot loader's reading and decompression.

/// Where the kernel's code segment is loaded.
const CODE_PADDR: u32 = 0x10_0000;
/// Where its filler segment is loaded.
const DATA_PADDR: u32 = 0x20_0000;
/// File offsets of the code page and of the filler.
const CODE_OFF: usize = 0x1000;
const DATA_OFF: usize = 0x2000;

/// The entry code (32-bit, flat, paging off) that prints the NUL-terminated
/// string at `msg_addr`: `mov $0xe9,%dx; mov $msg,%esi; 1: lodsb;
/// test %al,%al; jz 2f; out %al,%dx; jmp 1b; 2: cli; hlt; jmp 2b`.
fn entry_code(msg_addr: u32) -> Vec<u8> {
    let mut c = vec![0x66, 0xBA, 0xE9, 0x00, 0xBE];
    c.extend_from_slice(&msg_addr.to_le_bytes());
    c.extend_from_slice(&[
        0xAC, 0x84, 0xC0, 0x74, 0x03, 0xEE, 0xEB, 0xF8, 0xFA, 0xF4, 0xEB, 0xFC,
    ]);
    c
}

/// Like [`marker_kernel`], but its final `hlt` runs with interrupts on
/// (`sti` instead of `cli`): with no event to wake it, the domain then
/// stays alive and idle until it is destroyed (for tests of how xenolith
/// stops).
pub fn idle_marker_kernel(total: usize, marker: &str) -> Vec<u8> {
    let mut f = marker_kernel(total, marker);
    // `cli; hlt; jmp` ends the entry code.
    let at = CODE_OFF + 0x10 + entry_code(0).len() - 4;
    assert_eq!(f[at], 0xFA, "the entry code ends with cli; hlt; jmp");
    f[at] = 0xFB;
    f
}

/// Like [`marker_kernel`], but it ends in `jmp .`: a vCPU that spins
/// forever, never exiting to the hypervisor (a noisy neighbour).
pub fn spinning_marker_kernel(total: usize, marker: &str) -> Vec<u8> {
    let mut f = marker_kernel(total, marker);
    let at = CODE_OFF + 0x10 + entry_code(0).len() - 4;
    assert_eq!(f[at..at + 4], [0xFA, 0xF4, 0xEB, 0xFC], "the entry code ends with cli; hlt; jmp");
    f[at..at + 4].copy_from_slice(&[0xEB, 0xFE, 0x90, 0x90]);
    f
}

/// The kernel file, `total` bytes (at least 8 KiB), printing `marker` (a
/// line of at most 150 bytes). The filler is pseudo-random nibbles: every
/// file-system block holds data, and compressors have work to do.
pub fn marker_kernel(total: usize, marker: &str) -> Vec<u8> {
    assert!(total > DATA_OFF && marker.len() <= 150);
    let mut f = vec![0u8; total];
    let put16 = |f: &mut [u8], o: usize, v: u16| f[o..o + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |f: &mut [u8], o: usize, v: u32| f[o..o + 4].copy_from_slice(&v.to_le_bytes());
    // ELF header: ELFCLASS32, little-endian, EV_CURRENT, ET_EXEC, EM_386.
    f[..7].copy_from_slice(b"\x7fELF\x01\x01\x01");
    put16(&mut f, 16, 2);
    put16(&mut f, 18, 3);
    put32(&mut f, 20, 1);
    let entry = CODE_PADDR + 0x10;
    put32(&mut f, 24, entry);
    put32(&mut f, 28, 52); // e_phoff
    put16(&mut f, 40, 52); // e_ehsize
    put16(&mut f, 42, 32); // e_phentsize
    put16(&mut f, 44, 3); // e_phnum
                          // Code page: multiboot header, entry code, marker, the PVH note.
    let (magic, flags) = (0x1BAD_B002u32, 0u32);
    put32(&mut f, CODE_OFF, magic);
    put32(&mut f, CODE_OFF + 4, flags);
    put32(
        &mut f,
        CODE_OFF + 8,
        0u32.wrapping_sub(magic).wrapping_sub(flags),
    );
    let msg_off = 0x40;
    let code = entry_code(CODE_PADDR + msg_off as u32);
    f[CODE_OFF + 0x10..][..code.len()].copy_from_slice(&code);
    let msg = format!("{marker}\n\0");
    f[CODE_OFF + msg_off..][..msg.len()].copy_from_slice(msg.as_bytes());
    let note = CODE_OFF + 0x100;
    put32(&mut f, note, 4); // namesz
    put32(&mut f, note + 4, 4); // descsz
    put32(&mut f, note + 8, 18); // XEN_ELFNOTE_PHYS32_ENTRY
    f[note + 12..note + 16].copy_from_slice(b"Xen\0");
    put32(&mut f, note + 16, entry);
    let mut x = 0x9E37_79B9u32;
    for b in &mut f[DATA_OFF..] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = (x >> 24) as u8 & 0x0F;
    }
    // Program headers: code, filler, note.
    let ph = |f: &mut [u8], i: usize, typ: u32, off: usize, paddr: u32, len: usize, flags: u32| {
        let o = 52 + i * 32;
        for (k, v) in [typ, off as u32, paddr, paddr, len as u32, len as u32, flags]
            .into_iter()
            .enumerate()
        {
            put32(f, o + 4 * k, v);
        }
        put32(f, o + 28, if typ == 4 { 4 } else { 0x1000 });
    };
    ph(&mut f, 0, 1, CODE_OFF, CODE_PADDR, 0x1000, 5);
    ph(&mut f, 1, 1, DATA_OFF, DATA_PADDR, total - DATA_OFF, 6);
    ph(&mut f, 2, 4, note, CODE_PADDR + 0x100, 20, 4);
    f
}

/// Makes a [`marker_kernel`] a multiboot-only kernel: its last program
/// header, the PVH note, is dropped (e_phnum 3 -> 2).
pub fn drop_pvh_note(kernel: &mut [u8]) {
    assert_eq!(kernel[44..46], [3, 0], "not a marker kernel");
    kernel[44] = 2;
}
