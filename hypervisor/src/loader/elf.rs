//! ELF parsing for PVH kernels: the loadable segments and the Xen
//! `XEN_ELFNOTE_PHYS32_ENTRY` note.
//!
//! Why a hand-written reader rather than a crate: we need very little of ELF
//! (the file header, program headers, section headers and note records),
//! for both ELF32 and ELF64, and every malformed field must become a precise
//! one-line error instead of a panic. linux-loader 0.14's ELF loader handles
//! ELF64 only and loads by its own rules (and treats a PVH note as optional);
//! `object`/`goblin` would parse for us but report malformed input in their
//! own generic terms, so we would re-validate every field anyway. The reader
//! below does all offset arithmetic with checked operations on `u64` and
//! slices with `get`, so no input can make it panic.
//!
//! What it checks, as Xen's libelf (xen/common/libelf) does for a PVH guest:
//! the magic, class (ELF32 or ELF64), little-endian data, an x86 machine,
//! program headers inside the file, PT_LOAD file bytes inside the file and
//! no larger than their memory size, and the PHYS32_ENTRY note (PT_NOTE
//! segments first, SHT_NOTE sections as a fallback, as libelf does).
//! Segments are loaded at their physical address (`p_paddr`), which is what
//! a PVH kernel links for; `p_vaddr` (e.g. Linux's 0xffffffff81000000) is
//! irrelevant. Layout checks that do not depend on the RAM size (overlaps,
//! the boot-info area, the entry point) are done here too, so a bad kernel
//! is refused before any VM exists.

use std::ops::Range;

use super::{BOOT_INFO_END, BOOT_INFO_START};

/// e_machine of 32-bit x86.
pub const EM_386: u16 = 3;
/// e_machine of x86-64.
pub const EM_X86_64: u16 = 62;

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ELFDATA2MSB: u8 = 2;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const SHT_NOTE: u32 = 7;
/// e_phnum value meaning "the real count is in section 0" (never used by kernels).
const PN_XNUM: u16 = 0xffff;

/// Why a file is not a loadable PVH kernel. Displays as one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// The file does not start with `\x7fELF`.
    #[error("not an ELF file (bad magic)")]
    BadMagic,
    /// EI_CLASS is neither ELF32 nor ELF64.
    #[error("unsupported ELF class {0} (expected 1 for ELF32 or 2 for ELF64)")]
    BadClass(u8),
    /// A big-endian file.
    #[error("big-endian ELF file (x86 kernels are little-endian)")]
    BigEndian,
    /// EI_DATA is neither little- nor big-endian.
    #[error("unknown ELF data encoding {0} (expected 1 for little-endian)")]
    BadEncoding(u8),
    /// Not an x86 kernel.
    #[error("ELF machine {0} is not x86 (expected EM_386 or EM_X86_64)")]
    WrongMachine(u16),
    /// A header field that makes no sense.
    #[error("bad ELF header: {0}")]
    BadHeader(String),
    /// Something the headers point at lies (partly) past the end of the file.
    #[error("truncated ELF file: {what} at [{start:#x}, {end:#x}) extends past its end ({len:#x} bytes)")]
    Truncated {
        /// What is cut off: "program headers", "segment 2", ...
        what: String,
        /// Its first byte's file offset.
        start: u64,
        /// Its end, or `u64::MAX` if that overflows.
        end: u64,
        /// The file's length.
        len: u64,
    },
    /// A program header that makes no sense.
    #[error("segment {index}: {problem}")]
    BadSegment {
        /// Its program header index.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// Nothing to load.
    #[error("no PT_LOAD segments: nothing to load")]
    NoSegments,
    /// The note a PVH kernel must have is absent.
    #[error("no XEN_ELFNOTE_PHYS32_ENTRY note: not a PVH kernel")]
    NoPvhNote,
    /// The PVH note is present but unusable.
    #[error("bad XEN_ELFNOTE_PHYS32_ENTRY note: {0}")]
    BadPvhNote(String),
    /// Two PT_LOAD segments share guest-physical bytes.
    #[error("segments {a} [{a_start:#x}, {a_end:#x}) and {b} [{b_start:#x}, {b_end:#x}) overlap")]
    Overlap {
        /// The lower segment's index.
        a: usize,
        /// Its start.
        a_start: u64,
        /// Its end.
        a_end: u64,
        /// The other segment's index.
        b: usize,
        /// Its start.
        b_start: u64,
        /// Its end.
        b_end: u64,
    },
    /// A segment covers part of the area the loader writes the boot info to.
    #[error(
        "segment {index} [{start:#x}, {end:#x}) overlaps the boot-info area \
         [{BOOT_INFO_START:#x}, {BOOT_INFO_END:#x})"
    )]
    OverlapsBootInfo {
        /// Its program header index.
        index: usize,
        /// Its start.
        start: u64,
        /// Its end.
        end: u64,
    },
    /// The PVH entry point is not in loaded memory.
    #[error("entry point {0:#x} is not inside any loaded segment")]
    EntryOutside(u32),
}

/// The ELF class of a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfClass {
    /// 32-bit ELF.
    Elf32,
    /// 64-bit ELF.
    Elf64,
}

/// One PT_LOAD segment of a kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Its program header index, for messages.
    pub index: usize,
    /// Where it goes in guest-physical memory (`p_paddr`).
    pub paddr: u64,
    /// Its size in memory (`p_memsz`); bytes past `filesz` are zeroed.
    pub memsz: u64,
    /// How many bytes come from the file (`p_filesz`).
    pub filesz: u64,
    /// Where those bytes are in the image.
    file: Range<usize>,
}

impl Segment {
    /// The guest-physical range it occupies.
    pub fn range(&self) -> Range<u64> {
        // parse() checked that this does not overflow.
        self.paddr..self.paddr + self.memsz
    }
}

/// A validated PVH kernel image, ready to load.
#[derive(Clone, Debug)]
pub struct PvhKernel {
    image: Vec<u8>,
    class: ElfClass,
    machine: u16,
    entry: u32,
    segments: Vec<Segment>,
}

/// Little-endian reads that fail instead of panicking.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn array<const N: usize>(&self, off: u64) -> Option<[u8; N]> {
        let off = usize::try_from(off).ok()?;
        self.0.get(off..off.checked_add(N)?)?.try_into().ok()
    }
    fn u16(&self, off: u64) -> Option<u16> {
        self.array(off).map(u16::from_le_bytes)
    }
    fn u32(&self, off: u64) -> Option<u32> {
        self.array(off).map(u32::from_le_bytes)
    }
    fn u64(&self, off: u64) -> Option<u64> {
        self.array(off).map(u64::from_le_bytes)
    }
    /// A word: 4 bytes in ELF32, 8 in ELF64.
    fn word(&self, class: ElfClass, off: u64) -> Option<u64> {
        match class {
            ElfClass::Elf32 => self.u32(off).map(u64::from),
            ElfClass::Elf64 => self.u64(off),
        }
    }
}

/// The fields we use of one program header.
struct Phdr {
    p_type: u32,
    offset: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

/// The fields we use of one section header.
struct Shdr {
    sh_type: u32,
    offset: u64,
    size: u64,
    align: u64,
}

impl PvhKernel {
    /// Parses and validates a kernel image (the whole file). The image is
    /// copied once, so the caller's buffer may be dropped.
    pub fn parse(image: &[u8]) -> Result<Self, ElfError> {
        let b = Bytes(image);
        let len = image.len() as u64;
        if image.get(..4) != Some(&ELF_MAGIC[..]) {
            return Err(ElfError::BadMagic);
        }
        let class = match image.get(EI_CLASS) {
            Some(&ELFCLASS32) => ElfClass::Elf32,
            Some(&ELFCLASS64) => ElfClass::Elf64,
            Some(&c) => return Err(ElfError::BadClass(c)),
            None => return Err(truncated("ELF header", 0, 16, len)),
        };
        match image.get(EI_DATA) {
            Some(&ELFDATA2LSB) => {}
            Some(&ELFDATA2MSB) => return Err(ElfError::BigEndian),
            Some(&d) => return Err(ElfError::BadEncoding(d)),
            None => return Err(truncated("ELF header", 0, 16, len)),
        }
        // (ehdr size, phentsize, shentsize, e_phoff, e_shoff, e_phentsize)
        let (ehsize, phentsize, shentsize, phoff_at, shoff_at, sizes_at) = match class {
            ElfClass::Elf32 => (52u64, 32u64, 40u64, 28, 32, 42),
            ElfClass::Elf64 => (64, 56, 64, 32, 40, 54),
        };
        if len < ehsize {
            return Err(truncated("ELF header", 0, ehsize, len));
        }
        let header = |off| b.u16(off).unwrap_or(0);
        let machine = header(18);
        if machine != EM_386 && machine != EM_X86_64 {
            return Err(ElfError::WrongMachine(machine));
        }
        let phoff = b.word(class, phoff_at).unwrap_or(0);
        let shoff = b.word(class, shoff_at).unwrap_or(0);
        let e_phentsize = u64::from(header(sizes_at));
        let phnum = header(sizes_at + 2);
        let e_shentsize = u64::from(header(sizes_at + 4));
        let shnum = u64::from(header(sizes_at + 6));

        if phnum == PN_XNUM {
            return Err(ElfError::BadHeader(
                "extended program header numbering (e_phnum 0xffff) is not supported".into(),
            ));
        }
        if phnum > 0 && e_phentsize != phentsize {
            return Err(ElfError::BadHeader(format!(
                "e_phentsize is {e_phentsize} (expected {phentsize})"
            )));
        }
        let phdrs = table(
            &b,
            "program headers",
            phoff,
            u64::from(phnum),
            phentsize,
            |off| Phdr {
                p_type: b.u32(off).unwrap_or(0),
                offset: b
                    .word(class, off + if class == ElfClass::Elf32 { 4 } else { 8 })
                    .unwrap_or(0),
                paddr: b
                    .word(class, off + if class == ElfClass::Elf32 { 12 } else { 24 })
                    .unwrap_or(0),
                filesz: b
                    .word(class, off + if class == ElfClass::Elf32 { 16 } else { 32 })
                    .unwrap_or(0),
                memsz: b
                    .word(class, off + if class == ElfClass::Elf32 { 20 } else { 40 })
                    .unwrap_or(0),
                align: b
                    .word(class, off + if class == ElfClass::Elf32 { 28 } else { 48 })
                    .unwrap_or(0),
            },
        )?;

        let mut segments = Vec::new();
        let mut entry = None;
        for (index, ph) in phdrs.iter().enumerate() {
            match ph.p_type {
                PT_LOAD => {
                    let file = file_range(&format!("segment {index}"), ph.offset, ph.filesz, len)?;
                    if ph.filesz > ph.memsz {
                        let problem = format!(
                            "file size {:#x} exceeds memory size {:#x}",
                            ph.filesz, ph.memsz
                        );
                        return Err(ElfError::BadSegment { index, problem });
                    }
                    if ph.paddr.checked_add(ph.memsz).is_none() {
                        let problem = format!(
                            "[{:#x}, +{:#x}) wraps past the top of memory",
                            ph.paddr, ph.memsz
                        );
                        return Err(ElfError::BadSegment { index, problem });
                    }
                    // Empty segments load nothing and cannot conflict.
                    if ph.memsz > 0 {
                        segments.push(Segment {
                            index,
                            paddr: ph.paddr,
                            memsz: ph.memsz,
                            filesz: ph.filesz,
                            file,
                        });
                    }
                }
                PT_NOTE if entry.is_none() => {
                    let notes =
                        file_range(&format!("note segment {index}"), ph.offset, ph.filesz, len)?;
                    entry = find_phys32_entry(&image[notes], ph.align)?;
                }
                _ => {}
            }
        }
        if entry.is_none() && shoff != 0 && shnum > 0 {
            // libelf's fallback: SHT_NOTE sections, for images whose notes
            // are not covered by a PT_NOTE segment.
            if e_shentsize != shentsize {
                return Err(ElfError::BadHeader(format!(
                    "e_shentsize is {e_shentsize} (expected {shentsize})"
                )));
            }
            let (off_at, size_at, align_at) = match class {
                ElfClass::Elf32 => (16, 20, 32),
                ElfClass::Elf64 => (24, 32, 48),
            };
            let shdrs = table(&b, "section headers", shoff, shnum, shentsize, |off| Shdr {
                sh_type: b.u32(off + 4).unwrap_or(0),
                offset: b.word(class, off + off_at).unwrap_or(0),
                size: b.word(class, off + size_at).unwrap_or(0),
                align: b.word(class, off + align_at).unwrap_or(0),
            })?;
            for (index, sh) in shdrs.iter().enumerate() {
                if sh.sh_type == SHT_NOTE {
                    let notes =
                        file_range(&format!("note section {index}"), sh.offset, sh.size, len)?;
                    entry = find_phys32_entry(&image[notes], sh.align)?;
                    if entry.is_some() {
                        break;
                    }
                }
            }
        }
        let entry = entry.ok_or(ElfError::NoPvhNote)?;
        if segments.is_empty() {
            return Err(ElfError::NoSegments);
        }

        check_layout(&mut segments, entry)?;
        Ok(PvhKernel {
            image: image.to_vec(),
            class,
            machine,
            entry,
            segments,
        })
    }

    /// The 32-bit physical entry point from XEN_ELFNOTE_PHYS32_ENTRY.
    pub fn entry(&self) -> u32 {
        self.entry
    }

    /// ELF32 or ELF64.
    pub fn class(&self) -> ElfClass {
        self.class
    }

    /// The e_machine field: [`EM_386`] or [`EM_X86_64`].
    pub fn machine(&self) -> u16 {
        self.machine
    }

    /// The non-empty PT_LOAD segments, sorted by address, not overlapping.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The bytes of `segment` that come from the file (`filesz` of them).
    pub fn file_bytes(&self, segment: &Segment) -> &[u8] {
        // parse() checked the range against this very image.
        self.image.get(segment.file.clone()).unwrap_or(&[])
    }
}

/// A one-line summary for logs: "ELF64 x86-64, entry 0x1000040, 3 segments in [0x1000000, 0x2a00000)".
impl std::fmt::Display for PvhKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let class = match self.class {
            ElfClass::Elf32 => "ELF32",
            ElfClass::Elf64 => "ELF64",
        };
        let machine = if self.machine == EM_X86_64 {
            "x86-64"
        } else {
            "i386"
        };
        // parse() guarantees at least one segment, sorted by address.
        let start = self.segments.first().map_or(0, |s| s.paddr);
        let end = self
            .segments
            .iter()
            .map(|s| s.range().end)
            .max()
            .unwrap_or(0);
        let n = self.segments.len();
        let plural = if n == 1 { "" } else { "s" };
        write!(
            f,
            "{class} {machine}, entry {:#x}, {n} segment{plural} in [{start:#x}, {end:#x})",
            self.entry
        )
    }
}

/// An [`ElfError::Truncated`] for `[start, end)`.
fn truncated(what: &str, start: u64, end: u64, len: u64) -> ElfError {
    ElfError::Truncated {
        what: what.to_owned(),
        start,
        end,
        len,
    }
}

/// `[offset, offset + size)` as a checked index range into a `len`-byte file.
fn file_range(what: &str, offset: u64, size: u64, len: u64) -> Result<Range<usize>, ElfError> {
    let end = offset.checked_add(size);
    match end {
        Some(end) if end <= len => {
            // Both fit in the file's length, which is a usize.
            Ok(offset as usize..end as usize)
        }
        _ => Err(truncated(what, offset, end.unwrap_or(u64::MAX), len)),
    }
}

/// Reads a table of `count` entries of `entsize` bytes at `offset`.
fn table<T>(
    b: &Bytes<'_>,
    what: &str,
    offset: u64,
    count: u64,
    entsize: u64,
    read: impl Fn(u64) -> T,
) -> Result<Vec<T>, ElfError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    // count < 2^16 and entsize <= 64, so the product cannot overflow.
    let size = count * entsize;
    file_range(what, offset, size, b.0.len() as u64)?;
    Ok((0..count).map(|i| read(offset + i * entsize)).collect())
}

/// Scans a block of note records for Xen's PHYS32_ENTRY. Records are padded
/// to 4 bytes, or 8 when the block says so (as the gABI and `object` do);
/// a record running past the block ends the scan, as in libelf.
fn find_phys32_entry(notes: &[u8], align: u64) -> Result<Option<u32>, ElfError> {
    let align = if align == 8 { 8 } else { 4 };
    let b = Bytes(notes);
    let len = notes.len() as u64;
    let pad = |x: u64| x.checked_add(align - 1).map(|x| x & !(align - 1));
    let mut pos = 0u64;
    while let (Some(namesz), Some(descsz), Some(n_type)) =
        (b.u32(pos), b.u32(pos + 4), b.u32(pos + 8))
    {
        let name_start = pos + 12;
        let Some(name_end) = name_start.checked_add(u64::from(namesz)) else {
            break;
        };
        let Some(desc_start) = pad(name_end) else {
            break;
        };
        let Some(desc_end) = desc_start.checked_add(u64::from(descsz)) else {
            break;
        };
        if desc_end > len {
            break;
        }
        // In range: checked just above.
        let name = &notes[name_start as usize..name_end as usize];
        let desc = &notes[desc_start as usize..desc_end as usize];
        let name = name.strip_suffix(b"\0").unwrap_or(name);
        if name == xen_abi::elfnote::OWNER && n_type == xen_abi::elfnote::PHYS32_ENTRY {
            // libelf reads numeric notes of 1, 2, 4 or 8 bytes; the entry
            // must fit in 32 bits since the vCPU starts in 32-bit mode.
            let value = match *desc {
                [a] => u64::from(a),
                [a, b] => u64::from(u16::from_le_bytes([a, b])),
                [a, b, c, d] => u64::from(u32::from_le_bytes([a, b, c, d])),
                [a, b, c, d, e, f, g, h] => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
                _ => {
                    return Err(ElfError::BadPvhNote(format!(
                        "{}-byte value (expected 4)",
                        desc.len()
                    )))
                }
            };
            let entry = u32::try_from(value).map_err(|_| {
                ElfError::BadPvhNote(format!("entry point {value:#x} is above 4 GiB"))
            })?;
            return Ok(Some(entry));
        }
        match pad(desc_end) {
            Some(next) => pos = next,
            None => break,
        }
    }
    Ok(None)
}

/// Sorts the segments and checks what needs no RAM size: no overlaps, none
/// over the boot-info area, and the entry point inside one of them.
fn check_layout(segments: &mut [Segment], entry: u32) -> Result<(), ElfError> {
    segments.sort_by_key(|s| s.paddr);
    for pair in segments.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.paddr < a.range().end {
            return Err(ElfError::Overlap {
                a: a.index,
                a_start: a.paddr,
                a_end: a.range().end,
                b: b.index,
                b_start: b.paddr,
                b_end: b.range().end,
            });
        }
    }
    for s in segments.iter() {
        let r = s.range();
        if r.start < BOOT_INFO_END && BOOT_INFO_START < r.end {
            return Err(ElfError::OverlapsBootInfo {
                index: s.index,
                start: r.start,
                end: r.end,
            });
        }
    }
    if !segments
        .iter()
        .any(|s| s.range().contains(&u64::from(entry)))
    {
        return Err(ElfError::EntryOutside(entry));
    }
    Ok(())
}

/// Hand-made ELF images for the loader's tests.
#[cfg(test)]
pub(crate) mod test_image {
    /// A PT_LOAD segment to put in an image.
    pub struct Load {
        /// p_paddr.
        pub paddr: u64,
        /// The file bytes.
        pub data: Vec<u8>,
        /// p_memsz.
        pub memsz: u64,
    }

    /// Where the image keeps its notes.
    pub enum Notes {
        /// In a PT_NOTE segment (after the PT_LOAD headers).
        Segment(Vec<u8>),
        /// Only in an SHT_NOTE section.
        Section(Vec<u8>),
        /// Nowhere.
        None,
    }

    /// One note record, padded to 4 bytes.
    pub fn note(name: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
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

    /// Xen's PHYS32_ENTRY note.
    pub fn pvh_note(entry: u32) -> Vec<u8> {
        note(b"Xen\0", 18, &entry.to_le_bytes())
    }

    /// The ELF header size.
    pub fn ehsize(elf64: bool) -> usize {
        if elf64 {
            64
        } else {
            52
        }
    }

    /// The program header size.
    pub fn phentsize(elf64: bool) -> usize {
        if elf64 {
            56
        } else {
            32
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

    /// Program header `i`'s file offset.
    pub fn phdr_at(elf64: bool, i: usize) -> usize {
        ehsize(elf64) + i * phentsize(elf64)
    }

    /// Builds an image: header, program headers (loads, then the PT_NOTE),
    /// the segment bytes, and section headers when notes are in a section.
    pub fn build(elf64: bool, loads: &[Load], notes: Notes) -> Vec<u8> {
        let nph = loads.len() + usize::from(matches!(notes, Notes::Segment(_)));
        let mut v = vec![0u8; ehsize(elf64) + nph * phentsize(elf64)];
        put(&mut v, 0, b"\x7fELF");
        v[4] = if elf64 { 2 } else { 1 };
        v[5] = 1;
        v[6] = 1;
        put(&mut v, 16, &2u16.to_le_bytes());
        put(
            &mut v,
            18,
            &(if elf64 { 62u16 } else { 3u16 }).to_le_bytes(),
        );
        put(&mut v, 20, &1u32.to_le_bytes());
        let (phoff_at, sizes_at) = if elf64 { (32, 52) } else { (28, 40) };
        word(&mut v, elf64, phoff_at, ehsize(elf64) as u64);
        put(&mut v, sizes_at, &(ehsize(elf64) as u16).to_le_bytes());
        put(
            &mut v,
            sizes_at + 2,
            &(phentsize(elf64) as u16).to_le_bytes(),
        );
        put(&mut v, sizes_at + 4, &(nph as u16).to_le_bytes());

        let phdr = |v: &mut Vec<u8>,
                    i: usize,
                    p_type: u32,
                    data: &[u8],
                    paddr: u64,
                    memsz: u64,
                    align: u64| {
            let offset = v.len().next_multiple_of(16);
            v.resize(offset, 0);
            v.extend_from_slice(data);
            let at = phdr_at(elf64, i);
            put(v, at, &p_type.to_le_bytes());
            let f = |o32: usize, o64: usize| at + if elf64 { o64 } else { o32 };
            word(v, elf64, f(4, 8), offset as u64);
            word(
                v,
                elf64,
                f(8, 16),
                paddr.wrapping_add(0xffff_ffff_8000_0000),
            );
            word(v, elf64, f(12, 24), paddr);
            word(v, elf64, f(16, 32), data.len() as u64);
            word(v, elf64, f(20, 40), memsz);
            word(v, elf64, f(28, 48), align);
        };
        for (i, l) in loads.iter().enumerate() {
            phdr(&mut v, i, 1, &l.data, l.paddr, l.memsz, 0x1000);
        }
        match notes {
            Notes::Segment(n) => phdr(&mut v, loads.len(), 4, &n, 0, n.len() as u64, 4),
            Notes::Section(n) => {
                let offset = v.len().next_multiple_of(16);
                v.resize(offset, 0);
                v.extend_from_slice(&n);
                let shoff = v.len().next_multiple_of(16);
                let shentsize = if elf64 { 64 } else { 40 };
                v.resize(shoff + 2 * shentsize, 0);
                let (shoff_at, sh_at) = if elf64 { (40, 58) } else { (32, 46) };
                word(&mut v, elf64, shoff_at, shoff as u64);
                put(&mut v, sh_at, &(shentsize as u16).to_le_bytes());
                put(&mut v, sh_at + 2, &2u16.to_le_bytes());
                // Section 0 is the null section; section 1 holds the notes.
                let at = shoff + shentsize;
                put(&mut v, at + 4, &7u32.to_le_bytes());
                let (o, s, a) = if elf64 { (24, 32, 48) } else { (16, 20, 32) };
                word(&mut v, elf64, at + o, offset as u64);
                word(&mut v, elf64, at + s, n.len() as u64);
                word(&mut v, elf64, at + a, 4);
            }
            Notes::None => {}
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::test_image::*;
    use super::*;

    fn load(paddr: u64, data: &[u8], memsz: u64) -> Load {
        Load {
            paddr,
            data: data.to_vec(),
            memsz,
        }
    }

    /// A kernel at 1 MiB: text, then data with bss.
    fn kernel(elf64: bool) -> Vec<u8> {
        build(
            elf64,
            &[
                load(0x10_0000, &[0x90; 0x30], 0x30),
                load(0x20_0000, &[1, 2, 3, 4], 0x2000),
            ],
            Notes::Segment([note(b"GNU\0", 3, &[0; 20]), pvh_note(0x10_0010)].concat()),
        )
    }

    #[test]
    fn parses_elf32_and_elf64() {
        for elf64 in [false, true] {
            let k = PvhKernel::parse(&kernel(elf64)).unwrap();
            assert_eq!(
                k.class(),
                if elf64 {
                    ElfClass::Elf64
                } else {
                    ElfClass::Elf32
                }
            );
            assert_eq!(k.machine(), if elf64 { EM_X86_64 } else { EM_386 });
            assert_eq!(k.entry(), 0x10_0010);
            let segs = k.segments();
            assert_eq!(segs.len(), 2);
            assert_eq!(
                (segs[0].index, segs[0].paddr, segs[0].memsz, segs[0].filesz),
                (0, 0x10_0000, 0x30, 0x30)
            );
            assert_eq!(
                (segs[1].index, segs[1].paddr, segs[1].memsz, segs[1].filesz),
                (1, 0x20_0000, 0x2000, 4)
            );
            assert_eq!(k.file_bytes(&segs[0]), &[0x90; 0x30]);
            assert_eq!(k.file_bytes(&segs[1]), &[1, 2, 3, 4]);
            assert_eq!(segs[1].range(), 0x20_0000..0x20_2000);
            let class = if elf64 { "ELF64 x86-64" } else { "ELF32 i386" };
            assert_eq!(
                k.to_string(),
                format!("{class}, entry 0x100010, 2 segments in [0x100000, 0x202000)")
            );
        }
    }

    #[test]
    fn note_in_section_only() {
        for elf64 in [false, true] {
            let img = build(
                elf64,
                &[load(0x10_0000, &[0; 16], 16)],
                Notes::Section(pvh_note(0x10_0004)),
            );
            assert_eq!(PvhKernel::parse(&img).unwrap().entry(), 0x10_0004);
        }
    }

    #[test]
    fn note_value_sizes() {
        let with_desc = |desc: &[u8]| {
            let img = build(
                true,
                &[load(0x10_0000, &[0; 16], 16)],
                Notes::Segment(note(b"Xen\0", 18, desc)),
            );
            PvhKernel::parse(&img)
        };
        assert_eq!(
            with_desc(&0x10_0008u64.to_le_bytes()).unwrap().entry(),
            0x10_0008
        );
        assert_eq!(
            with_desc(&0x1_0000_0000u64.to_le_bytes())
                .unwrap_err()
                .to_string(),
            "bad XEN_ELFNOTE_PHYS32_ENTRY note: entry point 0x100000000 is above 4 GiB"
        );
        assert_eq!(
            with_desc(&[0; 3]).unwrap_err().to_string(),
            "bad XEN_ELFNOTE_PHYS32_ENTRY note: 3-byte value (expected 4)"
        );
        // Owner without the NUL, and other Xen notes, are handled.
        let img = build(
            false,
            &[load(0x10_0000, &[0; 16], 16)],
            Notes::Segment(
                [
                    note(b"Xen", 6, b"linux\0"),
                    note(b"Xen", 18, &0x10_0002u32.to_le_bytes()),
                ]
                .concat(),
            ),
        );
        assert_eq!(PvhKernel::parse(&img).unwrap().entry(), 0x10_0002);
    }

    #[test]
    fn missing_or_foreign_notes() {
        let no_pvh = "no XEN_ELFNOTE_PHYS32_ENTRY note: not a PVH kernel";
        let img = build(true, &[load(0x10_0000, &[0; 16], 16)], Notes::None);
        assert_eq!(PvhKernel::parse(&img).unwrap_err().to_string(), no_pvh);
        // The right type under another owner, and Xen's ENTRY note, are not it.
        let img = build(
            true,
            &[load(0x10_0000, &[0; 16], 16)],
            Notes::Segment([note(b"Linux\0", 18, &[0; 4]), note(b"Xen\0", 1, &[0; 8])].concat()),
        );
        assert_eq!(PvhKernel::parse(&img).unwrap_err(), ElfError::NoPvhNote);
        // A truncated note record ends the scan.
        let mut n = pvh_note(0x10_0000);
        n.truncate(n.len() - 2);
        let img = build(true, &[load(0x10_0000, &[0; 16], 16)], Notes::Segment(n));
        assert_eq!(PvhKernel::parse(&img).unwrap_err(), ElfError::NoPvhNote);
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            PvhKernel::parse(b"").unwrap_err().to_string(),
            "not an ELF file (bad magic)"
        );
        assert_eq!(
            PvhKernel::parse(b"MZ\x90\0 not elf").unwrap_err(),
            ElfError::BadMagic
        );
        let good = kernel(true);
        let patched = |off: usize, bytes: &[u8]| {
            let mut v = good.clone();
            v[off..off + bytes.len()].copy_from_slice(bytes);
            PvhKernel::parse(&v).unwrap_err().to_string()
        };
        assert_eq!(
            patched(4, &[3]),
            "unsupported ELF class 3 (expected 1 for ELF32 or 2 for ELF64)"
        );
        assert_eq!(
            patched(5, &[2]),
            "big-endian ELF file (x86 kernels are little-endian)"
        );
        assert_eq!(
            patched(5, &[0]),
            "unknown ELF data encoding 0 (expected 1 for little-endian)"
        );
        assert_eq!(
            patched(18, &183u16.to_le_bytes()),
            "ELF machine 183 is not x86 (expected EM_386 or EM_X86_64)"
        );
        assert_eq!(
            patched(54, &32u16.to_le_bytes()),
            "bad ELF header: e_phentsize is 32 (expected 56)"
        );
        assert!(patched(56, &[0xff, 0xff]).contains("extended program header numbering"));
        // An ELF64 header cut short, and ELF32 as well.
        assert_eq!(
            PvhKernel::parse(&good[..40]).unwrap_err().to_string(),
            "truncated ELF file: ELF header at [0x0, 0x40) extends past its end (0x28 bytes)"
        );
        assert!(matches!(
            PvhKernel::parse(&kernel(false)[..51]),
            Err(ElfError::Truncated { .. })
        ));
        assert!(matches!(
            PvhKernel::parse(&good[..5]),
            Err(ElfError::Truncated { .. })
        ));
        // The program header table past the end of the file.
        assert_eq!(
            patched(32, &0xfff0u64.to_le_bytes()),
            "truncated ELF file: program headers at [0xfff0, 0x10098) extends past its end (0x168 bytes)"
        );
        assert!(patched(32, &u64::MAX.to_le_bytes())
            .contains("at [0xffffffffffffffff, 0xffffffffffffffff)"));
        // No program headers at all.
        assert_eq!(
            patched(56, &[0, 0]),
            "no XEN_ELFNOTE_PHYS32_ENTRY note: not a PVH kernel"
        );
    }

    #[test]
    fn segment_errors() {
        for elf64 in [false, true] {
            let good = kernel(elf64);
            let ph1 = phdr_at(elf64, 1);
            let (off, paddr, filesz, memsz) = if elf64 {
                (8, 24, 32, 40)
            } else {
                (4, 12, 16, 20)
            };
            let w = |v: &mut Vec<u8>, at: usize, x: u64| {
                if elf64 {
                    v[at..at + 8].copy_from_slice(&x.to_le_bytes());
                } else {
                    v[at..at + 4].copy_from_slice(&(x as u32).to_le_bytes());
                }
            };
            let patched = |at: usize, x: u64| {
                let mut v = good.clone();
                w(&mut v, ph1 + at, x);
                PvhKernel::parse(&v).unwrap_err()
            };
            assert!(
                patched(off, 0xffff_fff0)
                    .to_string()
                    .starts_with("truncated ELF file: segment 1 at [0xfffffff0, "),
                "{}",
                patched(off, 0xffff_fff0)
            );
            assert!(matches!(
                patched(filesz, 0x10_0000),
                ElfError::Truncated { .. }
            ));
            assert_eq!(
                patched(memsz, 2).to_string(),
                "segment 1: file size 0x4 exceeds memory size 0x2"
            );
            assert_eq!(
                patched(paddr, 0x10_0020).to_string(),
                "segments 0 [0x100000, 0x100030) and 1 [0x100020, 0x102020) overlap"
            );
            assert_eq!(
                patched(paddr, 0x8000).to_string(),
                "segment 1 [0x8000, 0xa000) overlaps the boot-info area [0x1000, 0x9000)"
            );
            if elf64 {
                assert!(patched(paddr, u64::MAX - 0x10)
                    .to_string()
                    .contains("segment 1: [0xffffffffffffffef, +0x2000) wraps"));
            }
        }
    }

    #[test]
    fn layout_errors() {
        let one = |loads: &[Load], entry: u32| {
            PvhKernel::parse(&build(false, loads, Notes::Segment(pvh_note(entry))))
                .map(|k| k.entry())
        };
        assert_eq!(
            one(&[load(0x10_0000, &[0; 16], 16)], 0x10_0010)
                .unwrap_err()
                .to_string(),
            "entry point 0x100010 is not inside any loaded segment"
        );
        // The entry may be in the zeroed part of a segment, though odd.
        assert_eq!(
            one(&[load(0x10_0000, &[0; 16], 32)], 0x10_0010),
            Ok(0x10_0010)
        );
        assert_eq!(
            one(&[], 0x10_0000).unwrap_err().to_string(),
            "no PT_LOAD segments: nothing to load"
        );
        // Empty segments are dropped rather than checked.
        assert_eq!(
            one(
                &[load(0x2000, &[], 0), load(0x10_0000, &[0; 16], 16)],
                0x10_0000
            ),
            Ok(0x10_0000)
        );
        // Below and right after the boot-info area is fine; touching it is not.
        assert!(one(
            &[load(0, &[0; 16], 0x1000), load(0x9000, &[0; 16], 16)],
            0x9000
        )
        .is_ok());
        assert!(one(&[load(0, &[0; 16], 0x1001)], 0).is_err());
        // Segments in program-header order need not be sorted.
        assert!(one(
            &[load(0x20_0000, &[0; 16], 16), load(0x10_0000, &[0; 16], 16)],
            0x20_0000
        )
        .is_ok());
    }

    #[test]
    fn truncated_note_and_section_tables() {
        // A PT_NOTE segment past the end of the file.
        let mut v = kernel(false);
        let ph2 = phdr_at(false, 2);
        v[ph2 + 4..ph2 + 8].copy_from_slice(&0xffff_0000u32.to_le_bytes());
        assert!(PvhKernel::parse(&v)
            .unwrap_err()
            .to_string()
            .contains("note segment 2 at [0xffff0000,"));
        // A section table past the end of the file (only read as a fallback).
        let mut v = build(
            true,
            &[load(0x10_0000, &[0; 16], 16)],
            Notes::Section(pvh_note(0x10_0000)),
        );
        v[40..48].copy_from_slice(&0xffff_0000u64.to_le_bytes());
        assert!(PvhKernel::parse(&v)
            .unwrap_err()
            .to_string()
            .contains("section headers at [0xffff0000,"));
        let mut v = build(
            true,
            &[load(0x10_0000, &[0; 16], 16)],
            Notes::Section(pvh_note(0x10_0000)),
        );
        v[58..60].copy_from_slice(&40u16.to_le_bytes());
        assert_eq!(
            PvhKernel::parse(&v).unwrap_err().to_string(),
            "bad ELF header: e_shentsize is 40 (expected 64)"
        );
    }

    /// xorshift64*: deterministic pseudo-random numbers without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn corrupted_images_never_panic() {
        let seeds = [
            kernel(false),
            kernel(true),
            build(
                true,
                &[load(0x10_0000, &[0; 16], 16)],
                Notes::Section(pvh_note(0x10_0000)),
            ),
        ];
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for round in 0..30_000 {
            let mut v = seeds[round % seeds.len()].clone();
            for _ in 0..1 + rng.next() % 6 {
                let at = (rng.next() as usize) % v.len();
                // Favour the headers, where the interesting fields are.
                let at = if rng.next().is_multiple_of(2) {
                    at % 200.min(v.len())
                } else {
                    at
                };
                v[at] = match rng.next() % 4 {
                    0 => 0,
                    1 => 0xff,
                    _ => rng.next() as u8,
                };
            }
            if rng.next().is_multiple_of(8) {
                v.truncate((rng.next() as usize) % (v.len() + 1));
            }
            if let Ok(k) = PvhKernel::parse(&v) {
                for s in k.segments() {
                    assert_eq!(k.file_bytes(s).len() as u64, s.filesz);
                }
            }
        }
    }
}
