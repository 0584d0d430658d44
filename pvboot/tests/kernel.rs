//! Kernel images: our own guests (hello carries both PVH and PV notes) in
//! both modes, as ELF64 and (through objcopy) ELF32, read from a byte slice
//! and from a file on an ext4 image; hand-made hostile ELFs; random
//! corruption.

// Limits and load results are lists of ranges, often of one.
#![allow(clippy::single_range_in_vec_init)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{mount_whole, run, scratch};
use pvboot::kernel::elf::{self, EM_386, EM_X86_64};
use pvboot::kernel::{load, BootMode, EntryPoint, FileImage, Image, KernelError, Limits, Loaded, VecMemory};

const MIB: u64 = 1 << 20;
/// What pvboot allows under PVH: [1 MiB, 128 MiB), with its own image and heap above.
const PVBOOT: std::ops::Range<u64> = 0x800_0000..0xb00_0000;

fn limits() -> Limits {
    Limits::new(vec![MIB..PVBOOT.start], 64 * MIB).reserve(PVBOOT, "pvboot")
}

/// A guest built by `cargo xtask build`.
fn guest(name: &str) -> PathBuf {
    let dir = std::env::var_os("XENOLITH_TEST_GUESTS")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target/guests"), PathBuf::from);
    let p = dir.join(name);
    assert!(p.exists(), "{} is missing: run `cargo xtask build`", p.display());
    p
}

fn tool_output(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The PT_LOAD segments as readelf sees them: (paddr, filesz, memsz).
fn readelf_loads(path: &Path) -> Vec<(u64, u64, u64)> {
    let out = tool_output("readelf", &["-lW", path.to_str().unwrap()]);
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    out.lines()
        .filter(|l| l.trim_start().starts_with("LOAD"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (hex(f[3]), hex(f[4]), hex(f[5]))
        })
        .collect()
}

/// A symbol's address as nm sees it.
fn symbol(path: &Path, name: &str) -> u64 {
    let out = tool_output("nm", &[path.to_str().unwrap()]);
    let line = out.lines().find(|l| l.ends_with(&format!(" {name}"))).unwrap_or_else(|| panic!("no {name}"));
    u64::from_str_radix(line.split_whitespace().next().unwrap(), 16).unwrap()
}

/// Checks that `mem` holds exactly what objcopy says the loaded image is:
/// file bytes in each segment, zeros in each bss, the fill byte elsewhere.
fn check_memory(path: &Path, mem: &VecMemory, loaded: &Loaded) {
    let dir = unique_scratch("kernel-bin");
    let bin = dir.join("flat.bin");
    run("objcopy", &["-O", "binary", path.to_str().unwrap(), bin.to_str().unwrap()]);
    let flat = std::fs::read(&bin).unwrap();
    let loads = readelf_loads(path);
    let base = loads.iter().map(|l| l.0).min().unwrap();
    let ranges: Vec<_> = loads.iter().filter(|l| l.2 > 0).map(|&(p, _, m)| p..p + m).collect();
    assert_eq!(loaded.ranges, ranges);
    for &(paddr, filesz, memsz) in &loads {
        let at = (paddr - base) as usize;
        assert_eq!(mem.get(paddr, filesz as usize).unwrap(), &flat[at..at + filesz as usize], "segment at {paddr:#x}");
        assert!(
            mem.get(paddr + filesz, (memsz - filesz) as usize).unwrap().iter().all(|&b| b == 0),
            "bss at {paddr:#x}"
        );
    }
    // Untouched: below, between and above the segments.
    let touched = |a: u64| ranges.iter().any(|r| r.contains(&a));
    let untouched = (mem.base..mem.base + mem.bytes.len() as u64).step_by(64).filter(|&a| !touched(a));
    for a in untouched {
        assert_eq!(mem.get(a, 1).unwrap(), [0xaa], "byte at {a:#x} was written");
    }
}

fn load_file(path: &Path, mode: BootMode) -> (Loaded, VecMemory) {
    let bytes = std::fs::read(path).unwrap();
    let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
    let loaded = load(&mut &bytes[..], &mut mem, &limits(), mode).unwrap();
    (loaded, mem)
}

/// A scratch directory no other test (running in parallel) uses.
fn unique_scratch(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    scratch(&format!("{name}-{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
}

fn hello32() -> PathBuf {
    let dir = unique_scratch("kernel-hello32");
    let out = dir.join("hello32");
    run("objcopy", &["-O", "elf32-i386", guest("hello").to_str().unwrap(), out.to_str().unwrap()]);
    out
}

#[test]
fn hello_as_pvh_elf64_and_elf32() {
    for (path, class) in [(guest("hello"), "ELF64"), (hello32(), "ELF32")] {
        let (loaded, mem) = load_file(&path, BootMode::Pvh);
        // pvh.rs's note points at the 32-bit entry stub, the ELF entry.
        let entry = symbol(&path, "pvh_start32") as u32;
        assert_eq!(loaded.entry, EntryPoint::Pvh { entry32: entry });
        assert_eq!(loaded.description, format!("{class} PVH"));
        check_memory(&path, &mem, &loaded);
    }
}

#[test]
fn hello_as_pv_elf64_and_elf32() {
    for (path, class) in [(guest("hello"), "ELF64"), (hello32(), "ELF32")] {
        let (loaded, mem) = load_file(&path, BootMode::Pv);
        let EntryPoint::Pv(info) = &loaded.entry else { panic!("{:?}", loaded.entry) };
        assert_eq!(info.entry, symbol(&path, "pv_start64"));
        assert_eq!(info.hypercall_page, Some(symbol(&path, "hypercall_page")));
        assert_eq!((info.virt_base, info.paddr_offset), (0, 0));
        assert_eq!(
            (info.guest_os.as_str(), info.loader.as_str(), info.xen_version.as_str()),
            ("Xenolith", "generic", "xen-3.0")
        );
        assert_eq!(info.virt_kstart, 0x10_0000);
        assert_eq!(info.virt_kend, loaded.end());
        assert!(!info.legacy_guest_info && !info.bsd_symtab && info.init_p2m.is_none());
        assert_eq!(loaded.description, format!("{class} PV"));
        check_memory(&path, &mem, &loaded);
    }
    assert_eq!(
        elf::inspect(&mut &std::fs::read(hello32()).unwrap()[..], BootMode::Pv).unwrap().to_string(),
        format!("ELF32 PV, entry {:#x}, 3 segments in [0x100000, 0x157088)", symbol(&guest("hello"), "pv_start64"))
            .replace("0x157088", &format!("{:#x}", load_file(&guest("hello"), BootMode::Pv).0.end()))
    );
}

/// The same kernel read in place from a file on an ext4 image.
#[test]
fn hello_from_a_file_system() {
    let dir = scratch("kernel-ext4");
    let src = dir.join("root");
    std::fs::create_dir_all(src.join("boot")).unwrap();
    std::fs::copy(guest("hello"), src.join("boot/hello")).unwrap();
    let img = dir.join("disk.img");
    run("mke2fs", &["-q", "-F", "-t", "ext4", "-d", src.to_str().unwrap(), img.to_str().unwrap(), "16M"]);
    let fs = mount_whole(&img);
    let mut file = FileImage::open(fs.as_ref(), "/boot/hello").unwrap();
    assert_eq!(file.size(), std::fs::metadata(guest("hello")).unwrap().len());
    let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
    let loaded = load(&mut file, &mut mem, &limits(), BootMode::Pvh).unwrap();
    check_memory(&guest("hello"), &mem, &loaded);
    assert_eq!(
        FileImage::open(fs.as_ref(), "/boot").err().unwrap().to_string(),
        "read error: /boot: not a regular file"
    );
    assert_eq!(
        FileImage::open(fs.as_ref(), "/boot/vmlinuz").err().unwrap().to_string(),
        "read error: /boot/vmlinuz: no such file or directory"
    );
}

#[test]
fn limits_name_the_range() {
    let bytes = std::fs::read(guest("hello")).unwrap();
    let last = *readelf_loads(&guest("hello")).last().unwrap();
    let (start, end) = (last.0, last.0 + last.2);
    let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
    // pvboot sitting right where the bss ends.
    let l = Limits::new(vec![MIB..end - 1], 64 * MIB).reserve(end - 1..end + MIB, "pvboot");
    assert_eq!(
        load(&mut &bytes[..], &mut mem, &l, BootMode::Pvh).unwrap_err().to_string(),
        format!("kernel segment 3 [{start:#x}, {end:#x}) overlaps pvboot [{:#x}, {:#x})", end - 1, end + MIB)
    );
    let l = Limits::new(vec![2 * MIB..128 * MIB], 64 * MIB);
    assert_eq!(
        load(&mut &bytes[..], &mut mem, &l, BootMode::Pv).unwrap_err().to_string(),
        "kernel segment 1 [0x100000, 0x10d05f) is outside the RAM kernels may use ([0x200000, 0x8000000))"
            .replace("0x10d05f", &format!("{:#x}", 0x10_0000 + readelf_loads(&guest("hello"))[0].2))
    );
    let l = Limits::new(vec![MIB..128 * MIB], 0x1000);
    assert!(load(&mut &bytes[..], &mut mem, &l, BootMode::Pvh)
        .unwrap_err()
        .to_string()
        .starts_with("the kernel in memory is 0x"));
    // Nothing was written by the refused loads.
    assert!(mem.bytes.iter().all(|&b| b == 0xaa));
    // Memory that does not cover the kernel.
    let mut small = VecMemory::new(0, (MIB + 0x1000) as usize, 0xaa);
    assert_eq!(
        load(&mut &bytes[..], &mut small, &limits(), BootMode::Pvh).unwrap_err(),
        KernelError::Memory {
            range: 0x10_0000..0x10_0000 + readelf_loads(&guest("hello"))[0].1,
            reason: "outside the memory at [0x0, 0x101000)".into()
        }
    );
}

// ---------------------------------------------------------------------------
// Hand-made images.

/// A segment to put in an image.
#[derive(Clone)]
struct Seg {
    p_type: u32,
    paddr: u64,
    vaddr: u64,
    data: Vec<u8>,
    memsz: u64,
    align: u64,
}

fn load_seg(paddr: u64, data: &[u8], memsz: u64) -> Seg {
    Seg {
        p_type: 1,
        paddr,
        vaddr: paddr.wrapping_add(0xffff_ffff_8000_0000),
        data: data.to_vec(),
        memsz,
        align: 0x1000,
    }
}

fn note_seg(notes: Vec<u8>) -> Seg {
    let len = notes.len() as u64;
    Seg { p_type: 4, paddr: 0, vaddr: 0, data: notes, memsz: len, align: 4 }
}

/// One note record, padded to 4 bytes.
fn note(name: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(name.len() as u32).to_le_bytes());
    v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    v.extend_from_slice(&n_type.to_le_bytes());
    v.extend_from_slice(name);
    v.resize(v.len().next_multiple_of(4), 0);
    v.extend_from_slice(desc);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

fn xen(n_type: u32, desc: &[u8]) -> Vec<u8> {
    note(b"Xen\0", n_type, desc)
}

fn pvh_note(entry: u32) -> Vec<u8> {
    xen(18, &entry.to_le_bytes())
}

/// The PV notes of a Linux-like kernel at `virt_base`.
fn pv_notes(virt_base: u64, entry: u64, extra: &[Vec<u8>]) -> Vec<u8> {
    let mut v = [
        xen(6, b"linux\0"),
        xen(5, b"xen-3.0\0"),
        xen(3, &virt_base.to_le_bytes()),
        xen(4, &0u64.to_le_bytes()),
        xen(1, &entry.to_le_bytes()),
        xen(2, &(virt_base + 0x10_1000).to_le_bytes()),
    ]
    .concat();
    for e in extra {
        v.extend_from_slice(e);
    }
    v
}

/// An ELF image: header, program headers, segment bytes, then optional
/// sections (each note block as an SHT_NOTE section, the legacy string as
/// `__xen_guest`, and the name table).
struct Elf {
    elf64: bool,
    entry: u64,
    segs: Vec<Seg>,
    note_sections: Vec<Vec<u8>>,
    guest_info: Option<String>,
}

impl Elf {
    fn new(elf64: bool, segs: Vec<Seg>) -> Self {
        Elf { elf64, entry: 0, segs, note_sections: vec![], guest_info: None }
    }

    fn ehsize(&self) -> usize {
        if self.elf64 {
            64
        } else {
            52
        }
    }

    fn phentsize(&self) -> usize {
        if self.elf64 {
            56
        } else {
            32
        }
    }

    fn phdr_at(&self, i: usize) -> usize {
        self.ehsize() + i * self.phentsize()
    }

    fn build(&self) -> Vec<u8> {
        let e64 = self.elf64;
        let mut v = vec![0u8; self.phdr_at(self.segs.len())];
        put(&mut v, 0, b"\x7fELF");
        v[4] = if e64 { 2 } else { 1 };
        v[5] = 1;
        v[6] = 1;
        put(&mut v, 16, &2u16.to_le_bytes());
        put(&mut v, 18, &(if e64 { EM_X86_64 } else { EM_386 }).to_le_bytes());
        put(&mut v, 20, &1u32.to_le_bytes());
        word(&mut v, e64, 24, self.entry);
        let (phoff_at, sizes_at) = if e64 { (32, 52) } else { (28, 40) };
        word(&mut v, e64, phoff_at, self.ehsize() as u64);
        put(&mut v, sizes_at, &(self.ehsize() as u16).to_le_bytes());
        put(&mut v, sizes_at + 2, &(self.phentsize() as u16).to_le_bytes());
        put(&mut v, sizes_at + 4, &(self.segs.len() as u16).to_le_bytes());
        for (i, s) in self.segs.iter().enumerate() {
            let offset = v.len().next_multiple_of(16);
            v.resize(offset, 0);
            v.extend_from_slice(&s.data);
            let at = self.phdr_at(i);
            put(&mut v, at, &s.p_type.to_le_bytes());
            let f = |o32: usize, o64: usize| at + if e64 { o64 } else { o32 };
            word(&mut v, e64, f(4, 8), offset as u64);
            word(&mut v, e64, f(8, 16), s.vaddr);
            word(&mut v, e64, f(12, 24), s.paddr);
            word(&mut v, e64, f(16, 32), s.data.len() as u64);
            word(&mut v, e64, f(20, 40), s.memsz);
            word(&mut v, e64, f(28, 48), s.align);
        }
        if self.note_sections.is_empty() && self.guest_info.is_none() {
            return v;
        }
        // (name, type, bytes)
        let mut sections: Vec<(&str, u32, Vec<u8>)> =
            self.note_sections.iter().map(|n| (".note.xen", 7u32, n.clone())).collect();
        if let Some(g) = &self.guest_info {
            let mut b = g.as_bytes().to_vec();
            b.push(0);
            sections.push(("__xen_guest", 1, b));
        }
        let mut names = vec![0u8];
        let mut name_at = vec![];
        for (n, _, _) in sections.iter().map(|s| (s.0, 0, 0)).chain([(".shstrtab", 0, 0)]) {
            name_at.push(names.len() as u32);
            names.extend_from_slice(n.as_bytes());
            names.push(0);
        }
        sections.push((".shstrtab", 3, names));
        let mut placed = vec![];
        for (_, _, bytes) in &sections {
            let offset = v.len().next_multiple_of(16);
            v.resize(offset, 0);
            v.extend_from_slice(bytes);
            placed.push(offset);
        }
        let shentsize = if e64 { 64 } else { 40 };
        let shoff = v.len().next_multiple_of(16);
        v.resize(shoff + (sections.len() + 1) * shentsize, 0);
        let (shoff_at, sh_at) = if e64 { (40, 58) } else { (32, 46) };
        word(&mut v, e64, shoff_at, shoff as u64);
        put(&mut v, sh_at, &(shentsize as u16).to_le_bytes());
        put(&mut v, sh_at + 2, &((sections.len() + 1) as u16).to_le_bytes());
        put(&mut v, sh_at + 4, &(sections.len() as u16).to_le_bytes());
        for (i, (_, sh_type, bytes)) in sections.iter().enumerate() {
            // Section 0 is the null section.
            let at = shoff + (i + 1) * shentsize;
            put(&mut v, at, &name_at[i].to_le_bytes());
            put(&mut v, at + 4, &sh_type.to_le_bytes());
            let (o, s, a) = if e64 { (24, 32, 48) } else { (16, 20, 32) };
            word(&mut v, e64, at + o, placed[i] as u64);
            word(&mut v, e64, at + s, bytes.len() as u64);
            word(&mut v, e64, at + a, 4);
        }
        v
    }
}

fn put(v: &mut [u8], off: usize, bytes: &[u8]) {
    v[off..off + bytes.len()].copy_from_slice(bytes);
}

fn word(v: &mut [u8], elf64: bool, off: usize, x: u64) {
    if elf64 {
        put(v, off, &x.to_le_bytes());
    } else {
        put(v, off, &(x as u32).to_le_bytes());
    }
}

/// A PVH kernel at 1 MiB: text, then data with bss at 2 MiB.
fn kernel(elf64: bool) -> Elf {
    Elf::new(
        elf64,
        vec![
            load_seg(0x10_0000, &[0x90; 0x30], 0x30),
            load_seg(0x20_0000, &[1, 2, 3, 4], 0x2000),
            note_seg([note(b"GNU\0", 3, &[0; 20]), pvh_note(0x10_0010)].concat()),
        ],
    )
}

fn try_load(image: &[u8], mode: BootMode) -> Result<(Loaded, VecMemory), KernelError> {
    let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
    let l = Limits::new(vec![MIB..4 * MIB], 4 * MIB);
    load(&mut &image[..], &mut mem, &l, mode).map(|loaded| (loaded, mem))
}

fn err(image: &[u8], mode: BootMode) -> String {
    try_load(image, mode).map(|(l, _)| l.description).unwrap_err().to_string()
}

#[test]
fn hand_made_pvh_elf32_and_elf64() {
    for elf64 in [false, true] {
        let (loaded, mem) = try_load(&kernel(elf64).build(), BootMode::Pvh).unwrap();
        assert_eq!(loaded.entry, EntryPoint::Pvh { entry32: 0x10_0010 });
        assert_eq!(loaded.ranges, [0x10_0000..0x10_0030, 0x20_0000..0x20_2000]);
        assert_eq!(mem.get(0x10_0000, 0x31).unwrap(), [[0x90; 0x30].as_slice(), &[0xaa]].concat());
        assert_eq!(mem.get(0x20_0000, 4).unwrap(), [1, 2, 3, 4]);
        assert!(mem.get(0x20_0004, 0x2000 - 4).unwrap().iter().all(|&b| b == 0));
        assert_eq!(mem.get(0x20_2000, 1).unwrap(), [0xaa]);
        let plan = elf::inspect(&mut &kernel(elf64).build()[..], BootMode::Pvh).unwrap();
        let class = if elf64 { "ELF64" } else { "ELF32" };
        assert_eq!(plan.to_string(), format!("{class} PVH, entry 0x100010, 2 segments in [0x100000, 0x202000)"));
    }
}

#[test]
fn notes_in_sections_only() {
    for elf64 in [false, true] {
        let mut k = Elf::new(elf64, vec![load_seg(0x10_0000, &[0; 16], 16)]);
        k.note_sections = vec![note(b"GNU\0", 1, &[0; 16]), pvh_note(0x10_0004)];
        let (loaded, _) = try_load(&k.build(), BootMode::Pvh).unwrap();
        assert_eq!(loaded.entry, EntryPoint::Pvh { entry32: 0x10_0004 });
    }
}

#[test]
fn note_values() {
    let with = |notes: Vec<u8>| Elf::new(true, vec![load_seg(0x10_0000, &[0; 16], 16), note_seg(notes)]).build();
    let entry = |image: Vec<u8>| try_load(&image, BootMode::Pvh).map(|(l, _)| l.entry);
    assert_eq!(entry(with(xen(18, &0x10_0008u64.to_le_bytes()))), Ok(EntryPoint::Pvh { entry32: 0x10_0008 }));
    assert_eq!(
        err(&with(xen(18, &0x1_0000_0000u64.to_le_bytes())), BootMode::Pvh),
        "corrupt kernel: bad XEN_ELFNOTE_PHYS32_ENTRY note: entry point 0x100000000 is above 4 GiB"
    );
    assert_eq!(
        err(&with(xen(18, &[0; 3])), BootMode::Pvh),
        "corrupt kernel: bad XEN_ELFNOTE_PHYS32_ENTRY note: 3-byte value (expected 4)"
    );
    // Owner without the NUL, and other Xen notes, are fine.
    assert_eq!(
        entry(with([note(b"Xen", 6, b"linux\0"), note(b"Xen", 18, &0x10_0002u32.to_le_bytes())].concat())),
        Ok(EntryPoint::Pvh { entry32: 0x10_0002 })
    );
    // The right type under another owner is not it.
    assert_eq!(
        err(&with([note(b"Linux\0", 18, &[0; 4]), xen(8, b"generic\0")].concat()), BootMode::Pvh),
        "not a PVH kernel: no XEN_ELFNOTE_PHYS32_ENTRY note (a PV-only kernel: boot it as PV)"
    );
    // A truncated record ends the scan.
    let mut n = pvh_note(0x10_0000);
    n.truncate(n.len() - 2);
    assert_eq!(err(&with(n), BootMode::Pvh), "not a PVH kernel: no XEN_ELFNOTE_PHYS32_ENTRY note");
    // Absurd name and descriptor sizes end the scan without reading anything.
    for (namesz, descsz) in [(u32::MAX, 4), (4, u32::MAX), (0x7fff_fff0, 0x7fff_fff0)] {
        let mut n = pvh_note(0x10_0000);
        n[..4].copy_from_slice(&namesz.to_le_bytes());
        n[4..8].copy_from_slice(&descsz.to_le_bytes());
        assert_eq!(err(&with(n), BootMode::Pvh), "not a PVH kernel: no XEN_ELFNOTE_PHYS32_ENTRY note");
    }
    // 8-aligned note blocks, as some linkers write them.
    let mut k = Elf::new(true, vec![load_seg(0x10_0000, &[0; 16], 16)]);
    // GUEST_OS "abc": its 4-byte value is padded to 8, so the next record is at 24, not 20.
    let mut n = Vec::new();
    for (n_type, desc) in [(6u32, *b"abc\0"), (18, 0x10_0008u32.to_le_bytes())] {
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&n_type.to_le_bytes());
        n.extend_from_slice(b"Xen\0");
        n.extend_from_slice(&desc);
        n.extend_from_slice(&[0; 4]);
    }
    let mut seg = note_seg(n);
    seg.align = 8;
    k.segs.push(seg);
    assert_eq!(entry(k.build()), Ok(EntryPoint::Pvh { entry32: 0x10_0008 }));
}

#[test]
fn header_errors() {
    let good = kernel(true).build();
    let patched = |off: usize, bytes: &[u8]| {
        let mut v = good.clone();
        v[off..off + bytes.len()].copy_from_slice(bytes);
        err(&v, BootMode::Pvh)
    };
    assert_eq!(err(b"", BootMode::Pvh), "unknown kernel format: the file is empty");
    assert_eq!(
        err(b"MZ\x90\0 not elf", BootMode::Pvh),
        "unknown kernel format: starts with 4d 5a 90 00 (not ELF, a bzImage, multiboot or a known compression)"
    );
    assert_eq!(patched(4, &[3]), "corrupt kernel: unsupported ELF class 3 (expected 1 for ELF32 or 2 for ELF64)");
    assert_eq!(patched(5, &[2]), "big-endian ELF file (x86 kernels are little-endian)");
    assert_eq!(patched(5, &[0]), "corrupt kernel: unknown ELF data encoding 0 (expected 1 for little-endian)");
    assert_eq!(patched(18, &183u16.to_le_bytes()), "ELF machine 183 is not x86 (expected EM_386 or EM_X86_64)");
    assert_eq!(patched(54, &32u16.to_le_bytes()), "corrupt kernel: e_phentsize is 32 (expected 56)");
    assert_eq!(patched(56, &[0xff, 0xff]), "extended program header numbering (e_phnum 0xffff) is not supported");
    // A huge e_phnum is refused before anything is read or allocated.
    assert_eq!(
        patched(56, &0x4000u16.to_le_bytes()),
        "corrupt kernel: e_phnum is 16384 (pvboot reads at most 128 program headers)"
    );
    assert_eq!(err(&good[..40], BootMode::Pvh), "corrupt kernel: ELF header is cut short: 40 of 64 bytes");
    assert_eq!(
        err(&kernel(false).build()[..51], BootMode::Pvh),
        "corrupt kernel: ELF header is cut short: 51 of 52 bytes"
    );
    assert_eq!(err(&good[..5], BootMode::Pvh), "corrupt kernel: ELF header is cut short");
    assert_eq!(
        patched(32, &0xfff0u64.to_le_bytes()),
        format!(
            "corrupt kernel: program headers at [0xfff0, 0x10098) extends past the end of the file ({:#x} bytes)",
            good.len()
        )
    );
    assert!(
        patched(32, &u64::MAX.to_le_bytes()).contains("program headers at [0xffffffffffffffff, 0xffffffffffffffff)")
    );
    assert_eq!(patched(56, &[0, 0]), "not a PVH kernel: no XEN_ELFNOTE_PHYS32_ENTRY note");
}

#[test]
fn segment_errors() {
    for elf64 in [false, true] {
        let k = kernel(elf64);
        let good = k.build();
        let ph1 = k.phdr_at(1);
        let (off, paddr, filesz, memsz) = if elf64 { (8, 24, 32, 40) } else { (4, 12, 16, 20) };
        let patched = |at: usize, x: u64| {
            let mut v = good.clone();
            word(&mut v, elf64, ph1 + at, x);
            err(&v, BootMode::Pvh)
        };
        assert!(
            patched(off, 0xffff_fff0).starts_with("corrupt kernel: segment 1 at [0xfffffff0, "),
            "{}",
            patched(off, 0xffff_fff0)
        );
        assert!(patched(filesz, 0x10_0000).contains("extends past the end of the file"));
        assert_eq!(patched(memsz, 2), "corrupt kernel: segment 1: file size 0x4 exceeds memory size 0x2");
        assert_eq!(
            patched(paddr, 0x10_0020),
            "corrupt kernel: segments 0 [0x100000, 0x100030) and 1 [0x100020, 0x102020) overlap"
        );
        assert_eq!(
            patched(paddr, 0x8000),
            "kernel segment 1 [0x8000, 0xa000) is outside the RAM kernels may use ([0x100000, 0x400000))"
        );
        if elf64 {
            assert_eq!(
                patched(paddr, u64::MAX - 0x10),
                "corrupt kernel: segment 1: [0xffffffffffffffef, +0x2000) wraps past the top of memory"
            );
            // A huge bss is refused by the limits, not by an allocation.
            assert_eq!(
                patched(memsz, 1 << 62),
                "the kernel in memory is 0x4000000000000030 bytes; at most 0x400000 allowed"
            );
        }
    }
    // No PT_LOAD at all; empty segments are skipped; unsorted segments are fine.
    let one = |segs: Vec<Seg>, entry: u32| {
        let mut segs = segs;
        segs.push(note_seg(pvh_note(entry)));
        try_load(&Elf::new(false, segs).build(), BootMode::Pvh).map(|(l, _)| l.ranges).map_err(|e| e.to_string())
    };
    assert_eq!(one(vec![], 0x10_0000).unwrap_err(), "corrupt kernel: no PT_LOAD segments: nothing to load");
    assert_eq!(
        one(vec![load_seg(0x10_0000, &[0; 16], 16)], 0x10_0010).unwrap_err(),
        "corrupt kernel: entry point 0x100010 is not inside any loaded segment"
    );
    assert_eq!(one(vec![load_seg(0x10_0000, &[0; 16], 32)], 0x10_0010), Ok(vec![0x10_0000..0x10_0020]));
    assert_eq!(
        one(vec![load_seg(0x2000, &[], 0), load_seg(0x10_0000, &[0; 16], 16)], 0x10_0000),
        Ok(vec![0x10_0000..0x10_0010])
    );
    assert_eq!(
        one(vec![load_seg(0x20_0000, &[0; 16], 16), load_seg(0x10_0000, &[0; 16], 16)], 0x20_0000),
        Ok(vec![0x10_0000..0x10_0010, 0x20_0000..0x20_0010])
    );
}

#[test]
fn absurd_note_and_section_sizes() {
    // A PT_NOTE past the end of the file, and one far larger than any kernel's.
    let k = kernel(false);
    let ph2 = k.phdr_at(2);
    let mut v = k.build();
    v[ph2 + 4..ph2 + 8].copy_from_slice(&0xffff_0000u32.to_le_bytes());
    assert!(err(&v, BootMode::Pvh).contains("note segment 2 at [0xffff0000,"));
    let mut k = Elf::new(true, vec![load_seg(0x10_0000, &[0; 16], 16), note_seg(vec![0; 0x2_0000])]);
    k.segs[1].data.extend_from_slice(&pvh_note(0x10_0000));
    assert_eq!(
        err(&k.build(), BootMode::Pvh),
        "corrupt kernel: note segment 1 is 0x20014 bytes (pvboot reads at most 0x10000)"
    );
    // Section tables: past the end, too many, the wrong entry size.
    let mut k = Elf::new(true, vec![load_seg(0x10_0000, &[0; 16], 16)]);
    k.note_sections = vec![pvh_note(0x10_0000)];
    let good = k.build();
    let patched = |off: usize, bytes: &[u8]| {
        let mut v = good.clone();
        v[off..off + bytes.len()].copy_from_slice(bytes);
        err(&v, BootMode::Pvh)
    };
    assert!(patched(40, &0xffff_0000u64.to_le_bytes()).contains("section headers at [0xffff0000,"));
    assert_eq!(
        patched(60, &0xfff0u16.to_le_bytes()),
        "corrupt kernel: e_shnum is 65520 (pvboot reads at most 1024 section headers)"
    );
    assert_eq!(patched(58, &40u16.to_le_bytes()), "corrupt kernel: e_shentsize is 40 (expected 64)");
}

#[test]
fn pv_kernels() {
    const KBASE: u64 = 0xffff_ffff_8000_0000;
    // A Linux-like layout: p_paddr physical, VIRT_BASE = __START_KERNEL_map.
    let linux = |extra: &[Vec<u8>]| {
        let mut k = Elf::new(
            true,
            vec![
                load_seg(0x20_0000, &[0xcc; 0x40], 0x40),
                load_seg(0x30_0000, &[5; 8], 0x1000),
                note_seg(pv_notes(KBASE, KBASE + 0x20_0010, extra)),
            ],
        );
        k.entry = KBASE + 0x20_0000;
        k.build()
    };
    let (loaded, mem) = try_load(
        &linux(&[
            xen(10, b"writable_page_tables|!pae_pgdir_above_4gb|no_such_thing\0"),
            xen(17, &0x100u32.to_le_bytes()),
        ]),
        BootMode::Pv,
    )
    .unwrap();
    let EntryPoint::Pv(info) = &loaded.entry else { panic!() };
    assert_eq!((info.entry, info.virt_base, info.paddr_offset), (KBASE + 0x20_0010, KBASE, 0));
    assert_eq!((info.virt_kstart, info.virt_kend), (KBASE + 0x20_0000, KBASE + 0x30_1000));
    assert_eq!(info.hypercall_page, Some(KBASE + 0x10_1000));
    assert_eq!((info.features_supported, info.features_required), (1 | 1 << 4 | 1 << 8, 1 << 4));
    assert_eq!(loaded.ranges, [0x20_0000..0x20_0040, 0x30_0000..0x30_1000]);
    assert_eq!(mem.get(0x20_0000, 0x40).unwrap(), [0xcc; 0x40]);
    assert_eq!(
        err(&linux(&[]), BootMode::Pvh),
        "not a PVH kernel: no XEN_ELFNOTE_PHYS32_ENTRY note (a PV-only kernel: boot it as PV)"
    );
    // libelf's checks.
    assert_eq!(
        err(&linux(&[xen(10, b"!dom0\0")]), BootMode::Pv),
        "the kernel requires the dom0 feature: it cannot run as a domU"
    );
    assert_eq!(
        err(&linux(&[xen(10, b"!fancy_new_thing\0")]), BootMode::Pv),
        "the kernel requires Xen feature \"fancy_new_thing\", which pvboot does not know"
    );
    assert_eq!(
        err(&linux(&[xen(6, b"Plan9\0")]), BootMode::Pv),
        "not a PV kernel for a generic loader: LOADER \"\", GUEST_OS \"Plan9\" (Xen loads only LOADER=generic or GUEST_OS=linux)"
    );
    assert_eq!(
        err(&linux(&[xen(5, b"xen-2.0\0")]), BootMode::Pv),
        "the kernel is built for Xen interface \"xen-2.0\" (expected \"xen-3.0\")"
    );
    assert_eq!(
        err(&linux(&[xen(1, &(KBASE + 0x40_0000).to_le_bytes())]), BootMode::Pv),
        "corrupt kernel: PV addresses out of bounds: entry 0xffffffff80400000, kernel [0xffffffff80200000, 0xffffffff80301000), VIRT_BASE 0xffffffff80000000"
    );
    assert_eq!(
        err(&linux(&[xen(15, &(KBASE + 0x20_0100).to_le_bytes())]), BootMode::Pv),
        "corrupt kernel: XEN_ELFNOTE_INIT_P2M 0xffffffff80200100 lies inside the kernel [0xffffffff80200000, 0xffffffff80301000)"
    );
    assert_eq!(
        err(&linux(&[xen(3, &[1, 2, 3])]), BootMode::Pv),
        "corrupt kernel: bad XEN_ELFNOTE_VIRT_BASE note: 3-byte value (expected 1, 2, 4 or 8)"
    );
    // A PVH-only kernel asked to boot as PV.
    assert_eq!(
        err(&kernel(true).build(), BootMode::Pv),
        "not a PV kernel: no Xen PV notes or __xen_guest section (it has a PVH entry: boot it as PVH)"
    );

    // PADDR_OFFSET: segments land at p_paddr - offset (old kernels linked p_paddr = vaddr).
    let mut k = Elf::new(
        true,
        vec![
            Seg { vaddr: KBASE + 0x10_0000, ..load_seg(KBASE + 0x10_0000, &[7; 16], 16) },
            note_seg(
                [
                    xen(8, b"generic\0"),
                    xen(5, b"xen-3.0\0"),
                    xen(3, &KBASE.to_le_bytes()),
                    xen(4, &KBASE.to_le_bytes()),
                    xen(1, &(KBASE + 0x10_0000).to_le_bytes()),
                ]
                .concat(),
            ),
        ],
    );
    let (loaded, mem) = try_load(&k.build(), BootMode::Pv).unwrap();
    assert_eq!(loaded.ranges, [0x10_0000..0x10_0010]);
    assert_eq!(mem.get(0x10_0000, 16).unwrap(), [7; 16]);
    // p_paddr below the offset.
    k.segs[0].paddr = 0x1000;
    assert_eq!(
        err(&k.build(), BootMode::Pv),
        "corrupt kernel: PV addresses out of bounds: entry 0xffffffff80100000, kernel [0x1000, 0x1010), VIRT_BASE 0xffffffff80000000"
    );
    // PADDR_OFFSET without VIRT_BASE.
    let k = Elf::new(
        true,
        vec![
            load_seg(0x10_0000, &[7; 16], 16),
            note_seg([xen(8, b"generic\0"), xen(5, b"xen-3.0\0"), xen(4, &0u64.to_le_bytes())].concat()),
        ],
    );
    assert_eq!(err(&k.build(), BootMode::Pv), "corrupt kernel: ELF_PADDR_OFFSET is set but VIRT_BASE is not");
}

/// The legacy `__xen_guest` string of old Linux and NetBSD kernels.
#[test]
fn legacy_xen_guest_section() {
    for elf64 in [false, true] {
        let base: u64 = if elf64 { 0xffff_ffff_8000_0000 } else { 0xc000_0000 };
        let mut k =
            Elf::new(elf64, vec![Seg { vaddr: base + 0x10_0000, ..load_seg(base + 0x10_0000, &[9; 32], 0x2000) }]);
        k.entry = base + 0x10_0000;
        k.guest_info = Some(format!(
            "GUEST_OS=NetBSD,GUEST_VER=10.0,XEN_VER=xen-3.0,LOADER=generic,VIRT_BASE={base:#x},\
             HYPERCALL_PAGE=0x101,BSD_SYMTAB,FEATURES=!writable_page_tables|pae_pgdir_above_4gb,PAE=yes"
        ));
        let (loaded, mem) = try_load(&k.build(), BootMode::Pv).unwrap();
        let EntryPoint::Pv(info) = &loaded.entry else { panic!() };
        // ELF_PADDR_OFFSET defaults to VIRT_BASE for the legacy string.
        assert_eq!((info.virt_base, info.paddr_offset, info.entry), (base, base, base + 0x10_0000));
        assert_eq!(info.hypercall_page, Some(base + 0x10_1000));
        assert!(info.legacy_guest_info && info.bsd_symtab);
        assert_eq!(
            (info.guest_os.as_str(), info.guest_version.as_str(), info.pae_mode.as_str()),
            ("NetBSD", "10.0", "yes")
        );
        assert_eq!((info.features_supported, info.features_required), (1 | 1 << 4, 1));
        assert_eq!(loaded.ranges, [0x10_0000..0x10_2000]);
        assert_eq!(mem.get(0x10_0000, 32).unwrap(), [9; 32]);
        assert_eq!(loaded.description, format!("ELF{} PV (__xen_guest)", if elf64 { 64 } else { 32 }));
        assert!(err(&k.build(), BootMode::Pvh).starts_with("not a PVH kernel"));
    }
    // Decimal and octal numbers, as strtoull(.., 0) reads them.
    let mut k = Elf::new(false, vec![load_seg(0x10_0008, &[9; 32], 32)]);
    k.entry = 0x10_0000;
    k.guest_info = Some("LOADER=generic,XEN_VER=xen-3.0,VIRT_BASE=0,ELF_PADDR_OFFSET=010,VIRT_ENTRY=1048584".into());
    let (loaded, _) = try_load(&k.build(), BootMode::Pv).unwrap();
    let EntryPoint::Pv(info) = &loaded.entry else { panic!() };
    assert_eq!((info.paddr_offset, info.entry), (8, 0x10_0008));
    assert_eq!(loaded.ranges, [0x10_0000..0x10_0020]);
}

/// xorshift64*: deterministic pseudo-random numbers.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Corrupted images (hello and the hand-made ones) give an error or a load
/// inside the limits, never a panic or a write outside them.
#[test]
fn corrupted_images_never_panic() {
    let mut legacy = Elf::new(false, vec![load_seg(0x10_0000, &[9; 32], 32)]);
    legacy.guest_info = Some("LOADER=generic,XEN_VER=xen-3.0,VIRT_BASE=0".into());
    let mut sections = Elf::new(true, vec![load_seg(0x10_0000, &[0; 16], 16)]);
    sections.note_sections = vec![pvh_note(0x10_0000)];
    let seeds = [
        kernel(false).build(),
        kernel(true).build(),
        legacy.build(),
        sections.build(),
        std::fs::read(guest("hello")).unwrap(),
    ];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let (mut ok, mut failed) = (0, 0);
    // 64 KiB below the allowed range, which must stay untouched.
    const BASE: u64 = MIB - 0x1_0000;
    let l = Limits::new(vec![MIB..MIB + 0x8_0000], 0x8_0000);
    let mut mem = VecMemory::new(BASE, 0x9_0000, 0xaa);
    for round in 0..20_000 {
        let mut v = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.next() % 6 {
            let at = (rng.next() as usize) % v.len();
            // Favour the headers, where the interesting fields are.
            let at = if rng.next().is_multiple_of(2) { at % 256.min(v.len()) } else { at };
            v[at] = match rng.next() % 4 {
                0 => 0,
                1 => 0xff,
                _ => rng.next() as u8,
            };
        }
        if rng.next().is_multiple_of(8) {
            v.truncate((rng.next() as usize) % (v.len() + 1));
        }
        let mode = if rng.next().is_multiple_of(2) { BootMode::Pvh } else { BootMode::Pv };
        match load(&mut &v[..], &mut mem, &l, mode) {
            Ok(loaded) => {
                ok += 1;
                assert!(loaded.ranges.iter().all(|r| MIB <= r.start && r.end <= MIB + 0x8_0000));
                assert!(mem.get(BASE, 0x1_0000).unwrap().iter().all(|&b| b == 0xaa));
            }
            Err(e) => {
                failed += 1;
                assert!(!e.to_string().contains('\n'), "{e}");
            }
        }
    }
    assert!(ok > 1000 && failed > 1000, "{ok} loaded, {failed} refused");
}

// ---------------------------------------------------------------------------
// Compressed kernels and bzImages.

use pvboot::compress::Compression;
use pvboot::kernel::load_with;
use pvboot::kernel::stream::{self, DecodeError, Decompressor, Sink, Stored};

/// The identity stream in chunks of `n` bytes.
struct Chunked(usize);

impl Decompressor for Chunked {
    fn name(&self) -> &'static str {
        "chunked"
    }

    fn decompress<S: Sink>(&self, input: &[u8], sink: &mut S, _max: u64) -> Result<u64, DecodeError<S::Error>> {
        for c in input.chunks(self.0) {
            sink.write(c).map_err(DecodeError::Sink)?;
        }
        Ok(input.len() as u64)
    }

    fn decompress_into(&self, input: &[u8], out: &mut [u8]) -> Result<usize, String> {
        Stored.decompress_into(input, out)
    }
}

fn gzip(path: &Path) -> Vec<u8> {
    let out = Command::new("gzip").args(["-9", "-n", "-c"]).arg(path).output().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn gzipped_hello_both_modes() {
    let gz = gzip(&guest("hello"));
    for mode in [BootMode::Pvh, BootMode::Pv] {
        let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
        // pvboot's limits: the file's base (0xff000) is below 1 MiB, so the router places each segment.
        let loaded = load(&mut &gz[..], &mut mem, &limits(), mode).unwrap();
        let (plain, _) = load_file(&guest("hello"), mode);
        assert_eq!(loaded.entry, plain.entry);
        let what = if mode == BootMode::Pvh { "PVH" } else { "PV" };
        assert_eq!(loaded.description, format!("ELF64 {what} (gzip)"));
        check_memory(&guest("hello"), &mem, &loaded);
    }
    // Without a decoder, the same file is an unknown format.
    let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
    assert_eq!(
        load_with(&mut &gz[..], &mut mem, &limits(), BootMode::Pvh, |_| None::<Stored>).unwrap_err().to_string(),
        "unknown kernel format: starts with 1f 8b 08 00 (not ELF, a bzImage, multiboot or a known compression)"
    );
}

/// When the whole decompressed file fits at `paddr - offset`, it is decoded
/// in one call into place; the bss is zeroed after.
#[test]
fn gzipped_hello_contiguous() {
    let gz = gzip(&guest("hello"));
    let l = Limits::new(vec![0x8_0000..PVBOOT.start], 64 * MIB);
    for mode in [BootMode::Pvh, BootMode::Pv] {
        let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
        let loaded = load(&mut &gz[..], &mut mem, &l, mode).unwrap();
        let flat = objcopy_binary(&guest("hello"));
        for &(paddr, filesz, memsz) in &readelf_loads(&guest("hello")) {
            let at = (paddr - 0x10_0000) as usize;
            assert_eq!(mem.get(paddr, filesz as usize).unwrap(), &flat[at..at + filesz as usize]);
            assert!(mem.get(paddr + filesz, (memsz - filesz) as usize).unwrap().iter().all(|&b| b == 0));
        }
        // The ELF header went to the scratch area below the kernel: proof of the one-call path.
        assert_eq!(mem.get(0xf_f000, 4).unwrap(), b"\x7fELF");
        assert_eq!(loaded.ranges, load_file(&guest("hello"), mode).0.ranges);
    }
}

fn objcopy_binary(path: &Path) -> Vec<u8> {
    let dir = unique_scratch("kernel-objcopy");
    let bin = dir.join("flat.bin");
    run("objcopy", &["-O", "binary", path.to_str().unwrap(), bin.to_str().unwrap()]);
    std::fs::read(bin).unwrap()
}

/// The router with the identity stream cut in every chunk size from 1 byte up.
#[test]
fn router_any_chunking() {
    let img = kernel(true).build();
    for n in [1, 2, 3, 7, 64, 100, 4093, 1 << 20] {
        let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
        let loaded = stream::load_compressed(&Chunked(n), &img, &mut mem, &limits(), BootMode::Pvh, None).unwrap();
        let (plain, plain_mem) = try_load(&img, BootMode::Pvh).unwrap();
        assert_eq!(loaded, plain, "chunk {n}");
        assert_eq!(mem.bytes, plain_mem.bytes, "chunk {n}");
    }
    // hello as PV through the identity: a notes pass, then the loading pass.
    let bytes = std::fs::read(guest("hello")).unwrap();
    let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
    let loaded = stream::load_compressed(&Stored, &bytes, &mut mem, &limits(), BootMode::Pv, None).unwrap();
    assert_eq!(loaded.entry, load_file(&guest("hello"), BootMode::Pv).0.entry);
    check_memory(&guest("hello"), &mem, &loaded);
}

#[test]
fn router_refuses_what_it_cannot_stream() {
    let stream_err = |img: &[u8], mode: BootMode| {
        let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
        let l = Limits::new(vec![MIB..4 * MIB], 4 * MIB);
        stream::load_compressed(&Chunked(1000), img, &mut mem, &l, mode, None).unwrap_err().to_string()
    };
    // Program headers after the data: moved to 0x20000 in a padded file.
    let mut img = kernel(true).build();
    let table = img[64..64 + 3 * 56].to_vec();
    img.resize(0x2_0000, 0);
    img.extend_from_slice(&table);
    img[32..40].copy_from_slice(&0x2_0000u64.to_le_bytes());
    assert_eq!(
        stream_err(&img, BootMode::Pvh),
        "the program headers end at 0x200a8, after the first 0x10000 bytes: \
         pvboot cannot stream a compressed ELF whose program headers come after its data"
    );
    // But read in place, the same file loads.
    assert!(try_load(&img, BootMode::Pvh).is_ok());
    // Two segments from the same file bytes.
    let k = kernel(true);
    let mut img = k.build();
    let (p0, p1) = (k.phdr_at(0), k.phdr_at(1));
    let off0 = img[p0 + 8..p0 + 16].to_vec();
    img[p1 + 8..p1 + 16].copy_from_slice(&off0);
    assert!(
        stream_err(&img, BootMode::Pvh).starts_with("segments 0 and 1 share file bytes at ["),
        "{}",
        stream_err(&img, BootMode::Pvh)
    );
    // A stream that ends inside a segment.
    let k = kernel(true);
    let img = k.build();
    let seg1 = u64::from_le_bytes(img[k.phdr_at(1) + 8..k.phdr_at(1) + 16].try_into().unwrap()) as usize;
    let cut = &img[..seg1 + 2];
    assert!(stream_err(cut, BootMode::Pvh).starts_with("corrupt kernel: the decompressed ELF ends at "));
    // Not an ELF inside.
    assert_eq!(
        stream_err(b"MZ not an ELF", BootMode::Pvh),
        "unknown kernel format: decompressed chunked data starts with 4d 5a 20 6e (not ELF, a bzImage, multiboot or a known compression)"
    );
    // Segments outside the limits are refused before any byte is written.
    let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
    let l = Limits::new(vec![2 * MIB..4 * MIB], 4 * MIB);
    assert!(stream::load_compressed(&Chunked(7), &kernel(true).build(), &mut mem, &l, BootMode::Pvh, None).is_err());
    assert!(mem.bytes.iter().all(|&b| b == 0xaa));
}

/// Notes only in sections, or in a legacy __xen_guest section, are read
/// last in the file: such kernels are decompressed whole, then loaded.
#[test]
fn streamed_kernels_with_notes_in_sections() {
    let mut k = Elf::new(true, vec![load_seg(0x10_0000, &[3; 16], 16)]);
    k.note_sections = vec![pvh_note(0x10_0004)];
    let img = k.build();
    let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
    let loaded = stream::load_compressed(&Chunked(5), &img, &mut mem, &limits(), BootMode::Pvh, None).unwrap();
    assert_eq!(loaded.entry, EntryPoint::Pvh { entry32: 0x10_0004 });
    assert_eq!(mem.get(0x10_0000, 16).unwrap(), [3; 16]);
    let mut k = Elf::new(false, vec![load_seg(0x10_0000, &[9; 32], 32)]);
    k.entry = 0x10_0000;
    k.guest_info = Some("LOADER=generic,XEN_VER=xen-3.0,VIRT_BASE=0,ELF_PADDR_OFFSET=0".into());
    let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
    let loaded = stream::load_compressed(&Chunked(5), &k.build(), &mut mem, &limits(), BootMode::Pv, None).unwrap();
    assert_eq!(loaded.description, "ELF32 PV (__xen_guest)");
}

/// A bzImage as Linux's build lays it out: boot sector, setup sectors with
/// the header, then the protected-mode code with the payload inside it.
fn bzimage(payload: &[u8], version: u16, setup_sects: u8) -> Vec<u8> {
    let sects = if setup_sects == 0 { 4 } else { setup_sects as usize };
    let protected = (sects + 1) * 512;
    let mut v = vec![0u8; protected];
    v[0x1f1] = setup_sects;
    v[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
    v[0x202..0x206].copy_from_slice(b"HdrS");
    v[0x206..0x208].copy_from_slice(&version.to_le_bytes());
    // The decompressor stub comes first in the protected-mode part.
    let stub = vec![0xf4u8; 0x3a1];
    v[0x248..0x24c].copy_from_slice(&(stub.len() as u32).to_le_bytes());
    v[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(&stub);
    v.extend_from_slice(payload);
    v.extend_from_slice(&[0xf4; 0x123]);
    v
}

/// Linux's x86 zstd kernels (`cmd_zstd22`): `zstd -22 --ultra` on a pipe (a 128 MiB window
/// descriptor and no content size, more window than pvboot's heap can hold) with the build's
/// 4-byte size appended, which bounds the window the decoder reserves.
#[test]
fn bzimage_zstd22_from_a_pipe() {
    use std::io::Write;
    let hello = std::fs::read(guest("hello")).unwrap();
    let mut child = Command::new("zstd")
        .args(["-22", "--ultra", "-q", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("zstd (install zstd)");
    child.stdin.take().unwrap().write_all(&hello).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let mut payload = out.stdout;
    assert_eq!((payload[4] >> 6, payload[5]), (0, 0x88), "no content size, a 128 MiB window");
    payload.extend_from_slice(&(hello.len() as u32).to_le_bytes());
    let img = bzimage(&payload, 0x20f, 4);
    for mode in [BootMode::Pvh, BootMode::Pv] {
        let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
        let loaded = load(&mut &img[..], &mut mem, &limits(), mode).unwrap();
        let (plain, _) = load_file(&guest("hello"), mode);
        assert_eq!(loaded.entry, plain.entry);
        assert!(loaded.description.ends_with("(zstd)"), "{}", loaded.description);
        check_memory(&guest("hello"), &mem, &loaded);
    }
}

#[test]
fn bzimages() {
    let hello = std::fs::read(guest("hello")).unwrap();
    let gz = gzip(&guest("hello"));
    for (payload, what) in [(&gz, " (gzip)"), (&hello, "")] {
        for setup_sects in [0, 27] {
            let img = bzimage(payload, 0x20f, setup_sects);
            for mode in [BootMode::Pvh, BootMode::Pv] {
                let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
                let loaded = load(&mut &img[..], &mut mem, &limits(), mode).unwrap();
                let (plain, _) = load_file(&guest("hello"), mode);
                assert_eq!(loaded.entry, plain.entry);
                let m = if mode == BootMode::Pvh { "PVH" } else { "PV" };
                assert_eq!(loaded.description, format!("bzImage 2.15, ELF64 {m}{what}"));
                check_memory(&guest("hello"), &mem, &loaded);
            }
        }
    }
    let e = |img: &[u8]| {
        let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
        load(&mut &img[..], &mut mem, &limits(), BootMode::Pvh).unwrap_err().to_string()
    };
    assert_eq!(e(&bzimage(&gz, 0x207, 4)), "Linux boot protocol 2.07 has no payload fields (2.08 or later needed)");
    let mut img = bzimage(&gz, 0x20f, 4);
    img[0x24c..0x250].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    assert_eq!(
        e(&img),
        format!(
            "corrupt kernel: bzImage payload at [0xda1, 0x7fff0da1) extends past the end of the file ({:#x} bytes)",
            img.len()
        )
    );
    assert_eq!(
        e(&bzimage(b"\x00\x01\x02\x03 unknown", 0x20f, 4)),
        "unknown kernel format: bzImage 2.15 payload starts with 00 01 02 03 (not ELF, a bzImage, multiboot or a known compression)"
    );
    // A corrupt payload: one line from the decoder.
    let mut bad = gz.clone();
    bad[40..60].fill(0xff);
    let line = e(&bzimage(&bad, 0x20f, 4));
    assert!(line.starts_with("corrupt kernel: ") && line.contains("gzip data"), "{line}");
    // The payload is read into memory whole, within max_bytes.
    let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
    let l = Limits::new(vec![MIB..PVBOOT.start], 0x1000);
    assert_eq!(
        load(&mut &bzimage(&gz, 0x20f, 4)[..], &mut mem, &l, BootMode::Pvh).unwrap_err(),
        KernelError::TooLarge { what: "bzImage payload", size: gz.len() as u64, max: 0x1000 }
    );
}

// ---------------------------------------------------------------------------
// Multiboot 1.

fn multiboot_header(flags: u32, fields: &[u32]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x1bad_b002u32, flags, 0u32.wrapping_sub(0x1bad_b002).wrapping_sub(flags)].iter().chain(fields) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

/// An ELF32 kernel at 1 MiB with a multiboot header in its text, no PVH note.
fn multiboot_elf(flags: u32, notes: Option<Vec<u8>>) -> Vec<u8> {
    let mut text = vec![0x90u8; 0x20];
    text.extend_from_slice(&multiboot_header(flags, &[]));
    text.resize(0x100, 0xf4);
    let mut segs = vec![load_seg(0x10_0000, &text, 0x1000)];
    segs.extend(notes.map(note_seg));
    let mut k = Elf::new(false, segs);
    k.entry = 0x10_0040;
    k.build()
}

#[test]
fn multiboot_elf_under_pvh() {
    let (loaded, mem) = try_load(&multiboot_elf(3, None), BootMode::Pvh).unwrap();
    assert_eq!(loaded.entry, EntryPoint::Multiboot1 { entry32: 0x10_0040 });
    assert_eq!(loaded.description, "ELF32 multiboot");
    assert_eq!(loaded.ranges, [0x10_0000..0x10_1000]);
    assert_eq!(mem.get(0x10_0020, 4).unwrap(), 0x1bad_b002u32.to_le_bytes());
    // A PVH note wins over the multiboot header.
    let (loaded, _) = try_load(&multiboot_elf(3, Some(pvh_note(0x10_0000))), BootMode::Pvh).unwrap();
    assert_eq!(loaded.entry, EntryPoint::Pvh { entry32: 0x10_0000 });
    // Multiboot is not PV.
    assert!(err(&multiboot_elf(3, None), BootMode::Pv).starts_with("not a PV kernel"));
    // A requirement pvboot does not know, and a bad checksum (then no header at all).
    assert_eq!(
        err(&multiboot_elf(1 << 5 | 3, None), BootMode::Pvh),
        "the multiboot header requires features 0x20 (flags 0x23) pvboot does not know"
    );
    let mut bad = multiboot_elf(3, None);
    let at = bad.windows(4).position(|w| w == 0x1bad_b002u32.to_le_bytes()).unwrap();
    bad[at + 8] ^= 1;
    assert_eq!(err(&bad, BootMode::Pvh), "not a PVH kernel: no XEN_ELFNOTE_PHYS32_ENTRY note");
    // The entry must be in the image.
    let mut far = multiboot_elf(3, None);
    far[24..28].copy_from_slice(&0x30_0000u32.to_le_bytes());
    assert_eq!(err(&far, BootMode::Pvh), "corrupt kernel: entry point 0x300000 is not inside any loaded segment");
}

/// A flat binary whose multiboot header gives the addresses (flag 16).
#[test]
fn multiboot_aout_kludge() {
    // The header at file offset 0x40 says it is loaded at 0x100040: the file loads at 0x100000.
    let image = |load_end: u32, bss_end: u32, entry: u32| {
        let mut v = vec![0x90u8; 0x40];
        v.extend_from_slice(&multiboot_header(1 << 16 | 2, &[0x10_0040, 0x10_0000, load_end, bss_end, entry]));
        v.resize(0x300, 0xcc);
        v
    };
    let (loaded, mem) = try_load(&image(0x10_0200, 0x10_2000, 0x10_0100), BootMode::Pvh).unwrap();
    assert_eq!(loaded.entry, EntryPoint::Multiboot1 { entry32: 0x10_0100 });
    assert_eq!(loaded.description, "multiboot (a.out kludge)");
    assert_eq!(loaded.ranges, [0x10_0000..0x10_2000]);
    assert_eq!(mem.get(0x10_0000, 0x200).unwrap(), &image(0x10_0200, 0x10_2000, 0x10_0100)[..0x200]);
    assert!(mem.get(0x10_0200, 0x1e00).unwrap().iter().all(|&b| b == 0));
    // load_end 0: the whole file; bss_end 0: no bss.
    let (loaded, _) = try_load(&image(0, 0, 0x10_0100), BootMode::Pvh).unwrap();
    assert_eq!(loaded.ranges, [0x10_0000..0x10_0300]);
    assert_eq!(
        err(&image(0x10_0200, 0x10_2000, 0x50_0000), BootMode::Pvh),
        "corrupt kernel: multiboot header: entry_addr 0x500000 is outside the loaded image"
    );
    assert_eq!(
        err(&image(0x10_1000, 0, 0x10_0100), BootMode::Pvh),
        "corrupt kernel: multiboot header: [load_addr, load_end_addr) needs file bytes [0x0, 0x1000); the file has 0x300"
    );
    assert_eq!(
        err(&image(0x10_0200, 0x10_0100, 0x10_0100), BootMode::Pvh),
        "corrupt kernel: multiboot header: bss_end_addr 0x100100 is below the end of the loaded data 0x100200"
    );
    assert_eq!(err(&image(0, 0, 0x10_0100), BootMode::Pv), "a multiboot kernel boots under PVH, not PV");
    // Without flag 16 a non-ELF file cannot be placed.
    let mut flat = vec![0u8; 0x40];
    flat.extend_from_slice(&multiboot_header(3, &[]));
    assert_eq!(err(&flat, BootMode::Pvh), "a multiboot kernel that is not ELF must give its load addresses (flag 16)");
}

/// Real images from Debian when present: `cargo xtask test-xen` downloads
/// them into target/xen-cache (xen.gz: an ELF32 multiboot kernel in gzip;
/// vmlinuz: a bzImage with an xz payload).
fn real_image(prefix: &str) -> Option<PathBuf> {
    let boot = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target/xen-cache/root/boot");
    let found = std::fs::read_dir(&boot).ok()?.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        name.starts_with(prefix) && !name.ends_with(".efi") && !name.ends_with(".config")
    });
    if found.is_none() {
        eprintln!("no {prefix}* in {}: run `cargo xtask test-xen` once to fetch Debian's images", boot.display());
    }
    found
}

#[test]
fn debian_xen_gz_is_multiboot() {
    let Some(path) = real_image("xen-") else { return };
    let gz = std::fs::read(&path).unwrap();
    let mut mem = VecMemory::new(0, 8 * MIB as usize, 0xaa);
    let loaded = load(&mut &gz[..], &mut mem, &limits(), BootMode::Pvh).unwrap();
    assert_eq!(loaded.entry, EntryPoint::Multiboot1 { entry32: 0x20_0000 });
    assert_eq!(loaded.description, "ELF32 multiboot (gzip)");
    // Against the image gunzipped by the real tool.
    let elf = Command::new("gzip").args(["-dc"]).arg(&path).output().unwrap().stdout;
    let (plain, plain_mem) = {
        let mut m = VecMemory::new(0, 8 * MIB as usize, 0xaa);
        (load(&mut &elf[..], &mut m, &limits(), BootMode::Pvh).unwrap(), m)
    };
    assert_eq!(loaded, Loaded { description: "ELF32 multiboot (gzip)".into(), ..plain });
    for r in &loaded.ranges {
        let len = (r.end - r.start) as usize;
        assert_eq!(mem.get(r.start, len), plain_mem.get(r.start, len));
    }
    assert!(err(&elf, BootMode::Pv).starts_with("not a PV kernel"));
}

/// Debian's own Linux bzImage (xz payload, 66 MB vmlinux with PVH and PV
/// notes), loaded both ways and through both the router and the contiguous path.
#[test]
fn debian_vmlinuz() {
    let Some(path) = real_image("vmlinuz-") else { return };
    let image = std::fs::read(&path).unwrap();
    // The payload's ELF, cut out with the real tools' help, loaded in place as the reference.
    let head = &image[..0x250];
    let bz = pvboot::kernel::bzimage::parse(head, image.len() as u64).unwrap();
    assert_eq!(bz.version, 0x20f);
    let payload = &image[bz.payload.start as usize..bz.payload.end as usize];
    let vmlinux = {
        use std::io::Write;
        let mut xz = Command::new("xz")
            .args(["-dc", "--single-stream"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = xz.stdin.take().unwrap();
        let input = payload.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = xz.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(out.status.success());
        out.stdout
    };
    assert_eq!(pvboot::kernel::bzimage::uncompressed_size(payload), Some(vmlinux.len() as u64));
    const RAM: usize = 128 << 20;
    for mode in [BootMode::Pvh, BootMode::Pv] {
        let mut reference = VecMemory::new(0, RAM, 0xaa);
        let l = Limits::new(vec![MIB..PVBOOT.start], 128 * MIB);
        let plain = load(&mut &vmlinux[..], &mut reference, &l, mode).unwrap();
        match (&plain.entry, mode) {
            (EntryPoint::Pvh { entry32 }, BootMode::Pvh) => assert!(*entry32 >= 0x100_0000),
            (EntryPoint::Pv(info), BootMode::Pv) => {
                assert_eq!(info.virt_base, 0xffff_ffff_8000_0000);
                assert_eq!(info.guest_os, "linux");
                // Linux 6.1.97+ has no hypercall page note any more; it does ask for its p2m list.
                assert_eq!(info.init_p2m, Some(0x80_0000_0000));
                assert!(info.features_required & 1 != 0, "!writable_page_tables");
            }
            other => panic!("{other:?}"),
        }
        // Through the router: the per-CPU segment's paddr - offset differs from the others'.
        {
            let l = Limits::new(vec![MIB..PVBOOT.start], 128 * MIB);
            let mut mem = VecMemory::new(0, RAM, 0xaa);
            let loaded = load(&mut &image[..], &mut mem, &l, mode).unwrap();
            assert_eq!(loaded.entry, plain.entry);
            assert_eq!(loaded.ranges, plain.ranges);
            assert_eq!(loaded.description, format!("bzImage 2.15, {} (xz)", plain.description));
            for r in &loaded.ranges {
                let len = (r.end - r.start) as usize;
                assert!(mem.get(r.start, len) == reference.get(r.start, len), "{r:x?} differs");
            }
        }
    }
}

/// hello compressed by each real tool, loaded both ways through pvboot::compress.
#[test]
fn hello_in_every_compression() {
    let hello = guest("hello");
    let dir = unique_scratch("kernel-compressed");
    let tools: [(&str, &[&str], Compression); 7] = [
        ("gzip", &["-9", "-n", "-c"], Compression::Gzip),
        ("xz", &["--check=crc32", "-c"], Compression::Xz),
        ("zstd", &["-19", "-q", "-c"], Compression::Zstd),
        ("bzip2", &["-9", "-c"], Compression::Bzip2),
        ("lz4", &["-l", "-9", "-c"], Compression::Lz4Legacy),
        ("lzop", &["-9", "-c"], Compression::Lzo),
        ("lzma", &["-9", "-c"], Compression::Lzma),
    ];
    for (tool, args, c) in tools {
        let out = Command::new(tool).args(args).arg(&hello).output().unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(out.status.success(), "{tool}");
        std::fs::write(dir.join(format!("hello.{tool}")), &out.stdout).unwrap();
        assert_eq!(pvboot::compress::detect(&out.stdout), Some(c), "{tool}");
        for mode in [BootMode::Pvh, BootMode::Pv] {
            let mut mem = VecMemory::new(0, 4 * MIB as usize, 0xaa);
            match load(&mut &out.stdout[..], &mut mem, &limits(), mode) {
                Ok(loaded) => {
                    let (plain, _) = load_file(&hello, mode);
                    assert_eq!(loaded.entry, plain.entry, "{tool}");
                    assert_eq!(loaded.description, format!("{} ({})", plain.description, c.name()));
                    check_memory(&hello, &mem, &loaded);
                }
                // A decoder not on this branch yet says so in one line.
                Err(e) => {
                    let line = e.to_string();
                    assert!(line.contains(c.name()) && line.contains("not built in"), "{tool}: {line}");
                }
            }
        }
    }
}

/// `unpack`, for host tools holding the whole file: the ELF as is, out of a
/// bzImage, or decompressed.
#[test]
fn unpack_finds_the_elf() {
    use pvboot::kernel::unpack;
    let hello = std::fs::read(guest("hello")).unwrap();
    let gz = gzip(&guest("hello"));
    let u = unpack(&hello, 64 * MIB, pvboot::compress::detect).unwrap();
    assert_eq!((&u.elf[..], u.container.as_deref(), u.compression), (&hello[..], None, None));
    let u = unpack(&gz, 64 * MIB, pvboot::compress::detect).unwrap();
    assert_eq!((&u.elf[..], u.compression), (&hello[..], Some("gzip")));
    assert_eq!(u.describe("ELF64 PVH"), "ELF64 PVH (gzip)");
    let bz = bzimage(&gz, 0x20f, 4);
    let u = unpack(&bz, 64 * MIB, pvboot::compress::detect).unwrap();
    assert_eq!(&u.elf[..], &hello[..]);
    assert_eq!(u.describe("ELF64 PVH"), "bzImage 2.15, ELF64 PVH (gzip)");
    let bz = bzimage(&hello, 0x20f, 4);
    assert_eq!(unpack(&bz, 64 * MIB, pvboot::compress::detect).unwrap().describe("x"), "bzImage 2.15, x");
    // The output cap holds, and garbage is one line.
    let e = unpack(&gz, 0x1000, pvboot::compress::detect).unwrap_err().to_string();
    assert!(e.contains("limit of 4096 bytes"), "{e}");
    assert_eq!(
        unpack(b"plain text", MIB, pvboot::compress::detect).unwrap_err().to_string(),
        "unknown kernel format: starts with 70 6c 61 69 (not ELF, a bzImage, multiboot or a known compression)"
    );
}
