//! pv-kexec: the test guest of guest-lib's classic PV hand-off
//! (`guest_lib::arch::pv::kexec`), until pvboot drives it.
//!
//! Run as a 64-bit PV domain (linked at 128 MiB, like pvboot) with the next
//! PV kernel's ELF image as its module (xl.cfg `ramdisk`). It copies the
//! ELF's PT_LOAD segments to their pseudo-physical addresses (p_paddr -
//! PADDR_OFFSET, as libelf computes them) with a minimal loop that exists
//! only here (pvboot's kernel loader replaces it), reads the Xen notes the
//! hand-off needs, prints one line, and hands its own command line on.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

#[cfg(target_os = "none")]
guest_lib::main!(pv_kexec);

#[cfg(target_os = "none")]
fn pv_kexec(boot: &guest_lib::BootInfo) {
    use guest_lib::arch::pv::kexec;
    use guest_lib::println;

    if !guest_lib::arch::x86_64::is_pv() {
        println!("pv-kexec: error: needs a classic PV domain (type = \"pv\")");
        guest_lib::shutdown::crash();
    }
    let Some(module) = boot.modules().first() else {
        println!("pv-kexec: error: no kernel given (xl.cfg ramdisk = ...)");
        guest_lib::shutdown::crash();
    };
    let limit = guest_lib::arch::image_range().start;
    let kernel = match load::load(module.data(), limit) {
        Ok(k) => k,
        Err(e) => {
            println!("pv-kexec: error: {e}");
            guest_lib::shutdown::crash();
        }
    };
    println!(
        "pv-kexec: loaded {} bytes of kernel at {:#x}..{:#x}, VIRT_BASE {:#x}, entry {:#x}, hypercall page {:?}, MOD_START_PFN {}",
        module.size,
        kernel.image.start,
        kernel.image.end,
        kernel.virt_base,
        kernel.entry,
        kernel.hypercall_page,
        kernel.mod_start_pfn
    );
    let Err(e) = kexec::kexec_pv(&kernel, &[], boot.cmdline());
    println!("pv-kexec: error: hand-off failed: {e}");
    guest_lib::shutdown::crash();
}

#[cfg(target_os = "none")]
mod load {
    use guest_lib::arch::pv::kexec::PvKernel;
    use guest_lib::boot::PhysRange;
    use guest_lib::xen_abi::elfnote;

    fn u16_at(b: &[u8], o: usize) -> Option<u64> {
        Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?) as u64)
    }
    fn u32_at(b: &[u8], o: usize) -> Option<u64> {
        Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?) as u64)
    }
    fn u64_at(b: &[u8], o: usize) -> Option<u64> {
        Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
    }

    /// One program header: (type, offset, paddr, filesz, memsz).
    fn phdrs(elf: &[u8]) -> Option<impl Iterator<Item = Option<(u64, u64, u64, u64, u64)>> + '_> {
        let (phoff, phentsize, phnum) =
            (u64_at(elf, 0x20)?, u16_at(elf, 0x36)?, u16_at(elf, 0x38)?);
        Some((0..phnum).map(move |i| {
            let p = usize::try_from(phoff.checked_add(i * phentsize)?).ok()?;
            Some((
                u32_at(elf, p)?,
                u64_at(elf, p + 8)?,
                u64_at(elf, p + 24)?,
                u64_at(elf, p + 32)?,
                u64_at(elf, p + 40)?,
            ))
        }))
    }

    /// The Xen notes' numeric values, by note type.
    fn notes(elf: &[u8]) -> Option<[Option<u64>; 32]> {
        let mut v = [None; 32];
        for ph in phdrs(elf)? {
            let (ty, off, _, filesz, _) = ph?;
            if ty != 4 {
                continue;
            }
            let seg = elf
                .get(usize::try_from(off).ok()?..usize::try_from(off.checked_add(filesz)?).ok()?)?;
            let mut at = 0usize;
            while at + 12 <= seg.len() {
                let (namesz, descsz, nty) = (
                    u32_at(seg, at)? as usize,
                    u32_at(seg, at + 4)? as usize,
                    u32_at(seg, at + 8)?,
                );
                let name = seg.get(at + 12..at + 12 + namesz)?;
                let desc_at = at + 12 + namesz.next_multiple_of(4);
                let desc = seg.get(desc_at..desc_at + descsz)?;
                if name.strip_suffix(b"\0") == Some(elfnote::OWNER) && (nty as usize) < v.len() {
                    v[nty as usize] = match descsz {
                        8 => u64_at(desc, 0),
                        4 => u32_at(desc, 0),
                        _ => None,
                    };
                }
                at = desc_at + descsz.next_multiple_of(4);
            }
        }
        Some(v)
    }

    /// Copies the PT_LOAD segments of `elf` to their pseudo-physical places,
    /// which must lie in [1 MiB, limit).
    pub fn load(elf: &[u8], limit: u64) -> Result<PvKernel, &'static str> {
        if elf.get(..5) != Some(b"\x7fELF\x02") {
            return Err("the module is not a 64-bit ELF image");
        }
        let notes = notes(elf).ok_or("bad program headers or notes")?;
        let note = |t: u32| notes[t as usize];
        let virt_base = note(elfnote::VIRT_BASE).ok_or("no XEN_ELFNOTE_VIRT_BASE")?;
        let entry = note(elfnote::ENTRY).ok_or("no XEN_ELFNOTE_ENTRY")?;
        let paddr_offset = note(elfnote::PADDR_OFFSET).unwrap_or(0);
        let mut image = PhysRange {
            start: u64::MAX,
            end: 0,
        };
        for ph in phdrs(elf).ok_or("bad program headers")? {
            let (ty, off, paddr, filesz, memsz) = ph.ok_or("bad program header")?;
            if ty != 1 || memsz == 0 {
                continue;
            }
            let dst = paddr.wrapping_sub(paddr_offset);
            let end = dst.checked_add(memsz).ok_or("segment wraps")?;
            if dst < 1 << 20 || end > limit || filesz > memsz {
                return Err("a segment is outside [1 MiB, 128 MiB)");
            }
            let src = usize::try_from(off)
                .ok()
                .and_then(|o| elf.get(o..o.checked_add(usize::try_from(filesz).ok()?)?))
                .ok_or("a segment is outside the file")?;
            // SAFETY: [dst, end) is RAM below this guest's image, in the 1:1
            // map; guest-lib's heap keeps out of it (the image is linked
            // above 1 MiB) and nothing else of this guest lives there.
            let to = unsafe { core::slice::from_raw_parts_mut(dst as *mut u8, memsz as usize) };
            let (data, bss) = to.split_at_mut(src.len());
            data.copy_from_slice(src);
            bss.fill(0);
            image.start = image.start.min(dst & !0xfff);
            image.end = image.end.max(end);
        }
        if image.end == 0 {
            return Err("no PT_LOAD segment");
        }
        Ok(PvKernel {
            virt_base,
            image,
            entry,
            hypercall_page: note(elfnote::HYPERCALL_PAGE),
            mod_start_pfn: note(elfnote::MOD_START_PFN).is_some_and(|v| v != 0),
        })
    }
}

/// On the host there is nothing to run.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pv-kexec is a Xen PV guest: build it with --target x86_64-unknown-none");
}
