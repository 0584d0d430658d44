//! pv-kexec: the test guest of guest-lib's classic PV hand-off
//! (`guest_lib::arch::pv::kexec`), until pvboot drives it.
//!
//! Run as a 64-bit PV domain (linked at 128 MiB, like pvboot) with the next
//! PV kernel's ELF image as its module (xl.cfg `ramdisk`). It loads it with
//! pvboot's kernel loader (`pvboot::kernel`) into the RAM below its image,
//! prints one line, and hands its own command line on. With
//! `pv-kexec.initrd=OFFSET` on its command line the module is the kernel
//! followed, from OFFSET, by an initrd, which the hand-off passes on;
//! `pv-kexec.mapped-module` passes it by virtual address even to a kernel
//! that could take a frame number.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
guest_lib::main!(
    pv_kexec,
    heap = guest_lib::heap::Placement::above_image(48 << 20)
);

#[cfg(target_os = "none")]
fn pv_kexec(boot: &guest_lib::BootInfo) {
    use guest_lib::arch::pv::kexec;
    use guest_lib::boot::PhysRange;
    use guest_lib::println;

    if !guest_lib::arch::x86_64::is_pv() {
        println!("pv-kexec: error: needs a classic PV domain (type = \"pv\")");
        guest_lib::shutdown::crash();
    }
    let Some(module) = boot.modules().first() else {
        println!("pv-kexec: error: no kernel given (xl.cfg ramdisk = ...)");
        guest_lib::shutdown::crash();
    };
    // `pv-kexec.initrd=OFFSET`: the module holds the kernel, then from
    // OFFSET (a page multiple) an initrd for it. The word is not handed on.
    let mut initrd_at = None;
    let mut mapped_module = false;
    let mut rest = alloc::string::String::new();
    for w in boot.cmdline().split_ascii_whitespace() {
        match w.strip_prefix("pv-kexec.initrd=") {
            Some(v) => initrd_at = guest_lib::boot::parse_number(v),
            None if w == "pv-kexec.mapped-module" => mapped_module = true,
            None => {
                if !rest.is_empty() {
                    rest.push(' ');
                }
                rest.push_str(w);
            }
        }
    }
    let data = module.data();
    let (kernel_bytes, initrd) = match initrd_at {
        Some(at) if at % 4096 == 0 && at < module.size => {
            let initrd = PhysRange {
                start: module.paddr + at,
                end: module.paddr + module.size,
            };
            (&data[..at as usize], Some(initrd))
        }
        Some(at) => {
            println!(
                "pv-kexec: error: initrd offset {at:#x} is not a page inside the {}-byte module",
                module.size
            );
            guest_lib::shutdown::crash();
        }
        None => (data, None),
    };
    let limit = guest_lib::arch::image_range().start;
    let kernel = match load::load(kernel_bytes, limit) {
        // pv-kexec.mapped-module: hand the module over mapped, by virtual
        // address, as for a kernel without XEN_ELFNOTE_MOD_START_PFN (Linux
        // takes both), so that the hand-off moves it after the kernel.
        Ok(k) if mapped_module => kexec::PvKernel {
            mod_start_pfn: false,
            ..k
        },
        Ok(k) => k,
        Err(e) => {
            println!("pv-kexec: error: {e}");
            guest_lib::shutdown::crash();
        }
    };
    println!(
        "pv-kexec: loaded {} bytes of kernel at {:#x}..{:#x}, VIRT_BASE {:#x}, entry {:#x}, hypercall page {:?}, MOD_START_PFN {}; initrd {:?}",
        kernel_bytes.len(),
        kernel.image.start,
        kernel.image.end,
        kernel.virt_base,
        kernel.entry,
        kernel.hypercall_page,
        kernel.mod_start_pfn,
        initrd.map(|r| (r.start, r.end - r.start))
    );
    let modules = initrd.as_slice();
    let Err(e) = kexec::kexec_pv(&kernel, modules, &rest);
    println!("pv-kexec: error: hand-off failed: {e}");
    guest_lib::shutdown::crash();
}

#[cfg(target_os = "none")]
mod load {
    use alloc::format;
    use alloc::vec;
    use core::ops::Range;

    use guest_lib::arch::pv::kexec::PvKernel;
    use guest_lib::boot::PhysRange;
    use pvboot::kernel::{self, BootMode, EntryPoint, KernelError, Limits, Memory};

    /// RAM below this guest's image, reached through the 1:1 map.
    struct LowRam {
        end: u64,
    }

    impl Memory for LowRam {
        fn slice_mut(&mut self, paddr: u64, len: usize) -> Result<&mut [u8], KernelError> {
            let end = paddr.checked_add(len as u64);
            if paddr < 1 << 20 || end.is_none_or(|e| e > self.end) {
                return Err(KernelError::Memory {
                    range: paddr..paddr.saturating_add(len as u64),
                    reason: format!("outside [0x100000, {:#x})", self.end),
                });
            }
            // SAFETY: [paddr, paddr + len) is RAM below this guest's image,
            // in the 1:1 map; the heap lies above the image (main! asks for
            // it) and nothing else of this guest lives there. The loader
            // holds one such slice at a time (it borrows `self` mutably).
            Ok(unsafe { core::slice::from_raw_parts_mut(paddr as *mut u8, len) })
        }
    }

    /// Loads `elf` with pvboot's kernel loader into [1 MiB, limit).
    pub fn load(mut elf: &[u8], limit: u64) -> Result<PvKernel, alloc::string::String> {
        let image = guest_lib::arch::image_range();
        // One allowed range (a list of ranges), not the numbers in it.
        #[allow(clippy::single_range_in_vec_init)]
        let allowed = vec![(1 << 20)..limit];
        let limits = Limits::new(allowed, limit).reserve(image.start..image.end, "pv-kexec");
        let loaded = kernel::load(&mut elf, &mut LowRam { end: limit }, &limits, BootMode::Pv)
            .map_err(|e| format!("{e}"))?;
        let EntryPoint::Pv(info) = &loaded.entry else {
            return Err(format!("{} is not a PV kernel", loaded.description));
        };
        if info.class != kernel::elf::Class::Elf64 {
            return Err("a 32-bit PV kernel (Xen runs 64-bit PV guests only)".into());
        }
        let start = loaded
            .ranges
            .iter()
            .map(|r: &Range<u64>| r.start)
            .min()
            .unwrap_or(0);
        Ok(PvKernel {
            virt_base: info.virt_base,
            image: PhysRange {
                start: start & !0xfff,
                end: loaded.end(),
            },
            entry: info.entry,
            hypercall_page: info.hypercall_page,
            mod_start_pfn: info.mod_start_pfn,
        })
    }
}

/// On the host there is nothing to run.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pv-kexec is a Xen PV guest: build it with --target x86_64-unknown-none");
}
