//! The guest's page tables, walked in user space: how hypercall buffers
//! (guest-virtual addresses) become guest-physical ones.
//!
//! KVM_TRANSLATE does the same walk in the kernel, but as a vCPU ioctl it
//! loads and puts the vCPU around it, which costs more than the walk: on a
//! software KVM backend one call took about 6.5 us, half a trapped exit, for
//! every page of every hypercall argument. The control registers come with
//! the exit (KVM_CAP_SYNC_REGS, SREGS) and the tables are read through
//! [`GuestRam`], so every step is bounds-checked and a table outside guest
//! memory ends the walk as "not mapped".
//!
//! The walk is KVM_TRANSLATE's: presence and the reserved bits that do not
//! depend on the CPU's address width are checked, access rights are not (a
//! hypercall reads and writes as the guest kernel); it sets no accessed bits.

use super::memory::GuestRam;

const CR0_PG: u64 = 1 << 31;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

const PRESENT: u64 = 1 << 0;
const PAGE_SIZE_BIT: u64 = 1 << 7;
const NX: u64 = 1 << 63;
/// Bits 51:12 of a 64-bit (PAE or long-mode) entry: the next table or the page.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The control registers that say how the guest translates addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Paging {
    /// CR0 (PG: paging on).
    pub cr0: u64,
    /// CR3: the top-level table.
    pub cr3: u64,
    /// CR4 (PSE, PAE, LA57).
    pub cr4: u64,
    /// EFER (LMA: long mode active; NXE: bit 63 of entries is NX, not reserved).
    pub efer: u64,
}

impl Paging {
    /// From a vCPU's special registers.
    pub fn from_sregs(s: &kvm_bindings::kvm_sregs) -> Self {
        Paging { cr0: s.cr0, cr3: s.cr3, cr4: s.cr4, efer: s.efer }
    }

    /// The guest-physical address of `gva`, or None when it is not mapped
    /// (a non-present entry, a reserved bit set, or a table that is not in
    /// guest memory).
    pub fn translate(&self, ram: &GuestRam, gva: u64) -> Option<u64> {
        if self.cr0 & CR0_PG == 0 {
            return Some(gva);
        }
        if self.efer & EFER_LMA != 0 {
            let levels = if self.cr4 & CR4_LA57 != 0 { 5 } else { 4 };
            self.walk64(ram, self.cr3 & ADDR_MASK, levels, gva)
        } else if self.cr4 & CR4_PAE != 0 {
            // PAE: four PDPTEs at CR3 (32-byte aligned), then a PD and a PT.
            let pdpte: u64 = ram.read_obj((self.cr3 & 0xffff_ffe0) + 8 * ((gva >> 30) & 3)).ok()?;
            // In a PDPTE the bits beside P, PWT and PCD, and those above
            // the address, are reserved.
            if pdpte & PRESENT == 0 || pdpte & (0x1e6 | !ADDR_MASK & !0xfff) != 0 {
                return None;
            }
            self.walk64(ram, pdpte & ADDR_MASK, 2, gva)
        } else {
            self.walk32(ram, gva as u32)
        }
    }

    /// A 64-bit-entry walk from the table at `table`, `levels` levels above
    /// the 4 KiB pages (5 or 4 in long mode, 2 below a PAE PDPTE).
    fn walk64(&self, ram: &GuestRam, mut table: u64, levels: u32, gva: u64) -> Option<u64> {
        let nx_reserved = self.efer & EFER_NXE == 0;
        for level in (1..=levels).rev() {
            let shift = 12 + 9 * (level - 1);
            let entry: u64 = ram.read_obj(table + 8 * ((gva >> shift) & 0x1ff)).ok()?;
            // Bits 62:52 are the guest's own (software bits, protection
            // keys); address bits past RAM fail in the next read.
            if entry & PRESENT == 0 || (nx_reserved && entry & NX != 0) {
                return None;
            }
            if level == 1 {
                return Some((entry & ADDR_MASK) | (gva & 0xfff));
            }
            if entry & PAGE_SIZE_BIT != 0 {
                // A 2 MiB (level 2) or 1 GiB (level 3) page; larger ones do
                // not exist (PS is reserved in a PML4E and PML5E). Bit 12
                // is the page's PAT bit; the bits between it and the
                // page's address are reserved.
                if level > 3 {
                    return None;
                }
                let page_mask = (1u64 << shift) - 1;
                if entry & ADDR_MASK & page_mask & !(1 << 12) != 0 {
                    return None;
                }
                return Some((entry & ADDR_MASK & !page_mask) | (gva & page_mask));
            }
            table = entry & ADDR_MASK;
        }
        None
    }

    /// The 32-bit two-level walk (no PAE), with 4 MiB pages under CR4.PSE
    /// (PSE-36: bits 20:13 of the entry are address bits 39:32).
    fn walk32(&self, ram: &GuestRam, gva: u32) -> Option<u64> {
        let pde: u32 = ram.read_obj((self.cr3 & 0xffff_f000) + 4 * u64::from(gva >> 22)).ok()?;
        if pde & PRESENT as u32 == 0 {
            return None;
        }
        if pde & PAGE_SIZE_BIT as u32 != 0 && self.cr4 & CR4_PSE != 0 {
            // Bit 21 is reserved in a 4 MiB PDE.
            if pde & (1 << 21) != 0 {
                return None;
            }
            let base = u64::from(pde & 0xffc0_0000) | (u64::from((pde >> 13) & 0xff) << 32);
            return Some(base | u64::from(gva & 0x3f_ffff));
        }
        let pte: u32 = ram.read_obj(u64::from(pde & 0xffff_f000) + 4 * u64::from((gva >> 12) & 0x3ff)).ok()?;
        if pte & PRESENT as u32 == 0 {
            return None;
        }
        Some(u64::from(pte & 0xffff_f000) | u64::from(gva & 0xfff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn ram() -> GuestRam {
        GuestRam::new(&[(0, 16 << 20)]).unwrap()
    }

    fn put(ram: &GuestRam, addr: u64, entry: u64) {
        ram.write_obj(addr, &entry).unwrap();
    }

    fn long_mode(cr3: u64) -> Paging {
        Paging { cr0: CR0_PG | 1, cr3, cr4: CR4_PAE, efer: EFER_LMA | EFER_NXE | (1 << 8) }
    }

    #[test]
    fn paging_off_is_the_identity() {
        let p = Paging::default();
        assert_eq!(p.translate(&ram(), 0x1234_5678), Some(0x1234_5678));
    }

    #[test]
    fn four_level_walk_with_4k_2m_and_1g_pages() {
        let ram = ram();
        // PML4 at 1 MiB; entry 0 -> PDPT at 1 MiB + 4K.
        put(&ram, MIB, (MIB + 0x1000) | 3);
        // PDPT[0] -> PD; PDPT[1] is a 1 GiB page at 0 (only its first
        // 16 MiB exist, which is all we read).
        put(&ram, MIB + 0x1000, (MIB + 0x2000) | 3);
        put(&ram, MIB + 0x1000 + 8, PAGE_SIZE_BIT | 3);
        // PD[0] -> PT; PD[1] a 2 MiB page at 4 MiB.
        put(&ram, MIB + 0x2000, (MIB + 0x3000) | 3);
        put(&ram, MIB + 0x2000 + 8, (4 * MIB) | PAGE_SIZE_BIT | 3);
        // PT[5] -> 0x7000, NX set (fine with EFER.NXE).
        put(&ram, MIB + 0x3000 + 5 * 8, 0x7000 | NX | 3);
        let p = long_mode(MIB);
        assert_eq!(p.translate(&ram, 0x5123), Some(0x7123));
        assert_eq!(p.translate(&ram, 0x6000), None, "PT[6] is not present");
        assert_eq!(p.translate(&ram, 2 * MIB + 0x345), Some(4 * MIB + 0x345));
        assert_eq!(p.translate(&ram, (1 << 30) + 0xabcde), Some(0xabcde));
        assert_eq!(p.translate(&ram, 2 << 30), None, "PDPT[2] is not present");
        assert_eq!(p.translate(&ram, 1 << 39), None, "PML4[1] is not present");
        // Without EFER.NXE, bit 63 is reserved.
        let no_nx = Paging { efer: EFER_LMA, ..p };
        assert_eq!(no_nx.translate(&ram, 0x5123), None);
        // A reserved bit inside a 2 MiB page's address field.
        put(&ram, MIB + 0x2000 + 8, (4 * MIB) | (1 << 13) | PAGE_SIZE_BIT | 3);
        assert_eq!(p.translate(&ram, 2 * MIB), None);
        // PS in a PML4E is reserved.
        put(&ram, MIB, (MIB + 0x1000) | PAGE_SIZE_BIT | 3);
        assert_eq!(p.translate(&ram, 0x5123), None);
    }

    #[test]
    fn tables_outside_guest_memory_are_not_mapped() {
        let ram = ram();
        put(&ram, MIB, (1 << 40) | 3);
        put(&ram, MIB + 8, 0x000f_ffff_ffff_f000 | 3);
        let p = long_mode(MIB);
        assert_eq!(p.translate(&ram, 0), None);
        assert_eq!(p.translate(&ram, 1 << 39), None);
        // CR3 itself past the end of memory.
        assert_eq!(long_mode(0x000f_ffff_ffff_f000).translate(&ram, 0), None);
        assert_eq!(long_mode(u64::MAX).translate(&ram, u64::MAX), None);
    }

    #[test]
    fn five_level_walk() {
        let ram = ram();
        put(&ram, MIB, (MIB + 0x1000) | 3); // PML5[0]
        put(&ram, MIB + 0x1000, (MIB + 0x2000) | 3); // PML4[0]
        put(&ram, MIB + 0x2000, (MIB + 0x3000) | 3); // PDPT[0]
        put(&ram, MIB + 0x3000, (6 * MIB) | PAGE_SIZE_BIT | 3); // PD[0]: 2 MiB
        let p = Paging { cr4: CR4_PAE | CR4_LA57, ..long_mode(MIB) };
        assert_eq!(p.translate(&ram, 0x1234), Some(6 * MIB + 0x1234));
        assert_eq!(long_mode(MIB).translate(&ram, 0x1234), None, "read as four levels, the walk ends in an empty PT");
    }

    #[test]
    fn pae_walk() {
        let ram = ram();
        // PDPTEs at 1 MiB + 0x20 (32-byte aligned); PDPTE[1] -> PD.
        put(&ram, MIB + 0x20 + 8, (MIB + 0x1000) | 1);
        put(&ram, MIB + 0x1000, (MIB + 0x2000) | 3); // PD[0] -> PT
        put(&ram, MIB + 0x1000 + 8, (8 * MIB) | PAGE_SIZE_BIT | 3); // PD[1]: 2 MiB
        put(&ram, MIB + 0x2000 + 8, 0x9000 | 3); // PT[1]
        let p = Paging { cr0: CR0_PG | 1, cr3: MIB + 0x20, cr4: CR4_PAE, efer: 0 };
        assert_eq!(p.translate(&ram, (1 << 30) + 0x1abc), Some(0x9abc));
        assert_eq!(p.translate(&ram, (1 << 30) + 2 * MIB + 5), Some(8 * MIB + 5));
        assert_eq!(p.translate(&ram, 0), None, "PDPTE[0] is not present");
        // A reserved bit in a PDPTE (bit 1, RW, is reserved there).
        put(&ram, MIB + 0x20 + 8, (MIB + 0x1000) | 3);
        assert_eq!(p.translate(&ram, 1 << 30), None);
    }

    #[test]
    fn two_level_walk_with_4m_pages() {
        let ram = ram();
        let pd = 2 * MIB;
        ram.write_obj(pd, &((3 * MIB as u32) | 3)).unwrap(); // PDE[0] -> PT
        ram.write_obj(3 * MIB + 4 * 2, &(0x5000u32 | 3)).unwrap(); // PT[2]
        ram.write_obj(pd + 4, &((8 * MIB as u32) | PAGE_SIZE_BIT as u32 | 3)).unwrap(); // PDE[1]: 4 MiB
        let p = Paging { cr0: CR0_PG | 1, cr3: pd, cr4: CR4_PSE, efer: 0 };
        assert_eq!(p.translate(&ram, 0x2010), Some(0x5010));
        assert_eq!(p.translate(&ram, 4 * MIB + 0x12345), Some(8 * MIB + 0x12345));
        assert_eq!(p.translate(&ram, 0x3000), None);
        // Without CR4.PSE the PS bit is ignored: PDE[1] points to a PT at 8 MiB.
        ram.write_obj(8 * MIB, &(0x6000u32 | 1)).unwrap();
        let no_pse = Paging { cr4: 0, ..p };
        assert_eq!(no_pse.translate(&ram, 4 * MIB + 0x12), Some(0x6012));
        // The upper 32 bits of a compat address do not reach the walk.
        assert_eq!(p.translate(&ram, (1 << 32) | 0x2010), Some(0x5010));
    }
}
