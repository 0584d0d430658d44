//! ELF kernels: the loadable segments and the Xen notes, read as Xen's
//! libelf reads them (xen/common/libelf/libelf-dominfo.c).
//!
//! - PVH: `XEN_ELFNOTE_PHYS32_ENTRY`; segments load at `p_paddr`.
//! - PV: the notes `ENTRY`, `VIRT_BASE`, `PADDR_OFFSET`, `HYPERCALL_PAGE`,
//!   `LOADER`, `GUEST_OS`, `XEN_VERSION`, `FEATURES`, ... or, for old
//!   kernels, the legacy `__xen_guest` section string
//!   (`GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0x...`). Segments load at
//!   pseudo-physical `p_paddr - PADDR_OFFSET`, which is where libelf puts
//!   them (virtual `p_paddr + VIRT_BASE - PADDR_OFFSET`, and the PV
//!   initial mapping maps `VIRT_BASE` to pseudo-physical 0).
//!
//! Notes come from PT_NOTE segments; if those hold no Xen note, from
//! SHT_NOTE sections; if none, from the `__xen_guest` section (libelf's
//! order). Only fixed-size headers are read whole; tables and notes are
//! read through [`Image::read_at`] after their size is checked against a
//! small cap, so a hostile count never drives an allocation.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use xen_abi::elfnote;
use xen_abi::features as xenfeat;

use super::{hex_range, multiboot, read_into, zero, BootMode, EntryPoint, Image, KernelError, Limits, Loaded, Memory};

/// The ELF magic, `\x7fELF`.
pub const MAGIC: &[u8] = b"\x7fELF";
/// e_machine of 32-bit x86.
pub const EM_386: u16 = 3;
/// e_machine of x86-64.
pub const EM_X86_64: u16 = 62;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const SHT_NOTE: u32 = 7;
/// e_phnum / e_shstrndx escape values for extended numbering (kernels never use it).
const PN_XNUM: u16 = 0xffff;

/// Most program headers read (kernels have about 5).
pub const MAX_PHDRS: u16 = 128;
/// Most section headers read, for the note fallback (vmlinux has about 80).
pub const MAX_SECTIONS: u16 = 1024;
/// Largest note segment or section read.
pub const MAX_NOTE_BYTES: u64 = 64 * 1024;
/// Largest section-name table read (for `__xen_guest`).
pub const MAX_SHSTRTAB_BYTES: u64 = 64 * 1024;
/// Longest `__xen_guest` string read.
pub const MAX_GUEST_INFO_BYTES: u64 = 4096;
/// Longest string note kept (libelf keeps 16 bytes; be generous).
const MAX_NOTE_STRING: usize = 128;

/// ELF32 or ELF64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// 32-bit ELF.
    Elf32,
    /// 64-bit ELF.
    Elf64,
}

impl Class {
    /// "ELF32" or "ELF64".
    pub fn name(self) -> &'static str {
        match self {
            Class::Elf32 => "ELF32",
            Class::Elf64 => "ELF64",
        }
    }
}

/// The fields of the ELF file header pvboot uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// ELF32 or ELF64.
    pub class: Class,
    /// [`EM_386`] or [`EM_X86_64`].
    pub machine: u16,
    /// e_entry (virtual).
    pub entry: u64,
    /// Program header table offset.
    pub phoff: u64,
    /// Program header count (at most [`MAX_PHDRS`]).
    pub phnum: u16,
    /// Section header table offset.
    pub shoff: u64,
    /// Section header count as written (checked only when the table is read).
    pub shnum: u16,
    /// e_shentsize as written.
    pub shentsize: u16,
    /// Index of the section-name table.
    pub shstrndx: u16,
}

impl Header {
    /// The size of one program header in this class.
    pub fn phentsize(&self) -> u64 {
        match self.class {
            Class::Elf32 => 32,
            Class::Elf64 => 56,
        }
    }

    fn shentsize_expected(&self) -> u64 {
        match self.class {
            Class::Elf32 => 40,
            Class::Elf64 => 64,
        }
    }

    /// The file range of the program header table.
    pub fn phdr_range(&self) -> Range<u64> {
        // phnum <= MAX_PHDRS, so the size is small; the sum saturates.
        self.phoff..self.phoff.saturating_add(u64::from(self.phnum) * self.phentsize())
    }
}

/// One program header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramHeader {
    /// Its index in the table, for messages.
    pub index: usize,
    /// p_type.
    pub p_type: u32,
    /// p_offset.
    pub offset: u64,
    /// p_vaddr.
    pub vaddr: u64,
    /// p_paddr.
    pub paddr: u64,
    /// p_filesz.
    pub filesz: u64,
    /// p_memsz.
    pub memsz: u64,
    /// p_align.
    pub align: u64,
}

/// Little-endian reads of a header buffer that fail instead of panicking.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn array<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        self.0.get(off..off.checked_add(N)?)?.try_into().ok()
    }
    fn u16(&self, off: usize) -> u16 {
        self.array(off).map_or(0, u16::from_le_bytes)
    }
    fn u32(&self, off: usize) -> u32 {
        self.array(off).map_or(0, u32::from_le_bytes)
    }
    fn u64(&self, off: usize) -> u64 {
        self.array(off).map_or(0, u64::from_le_bytes)
    }
    /// A class-sized word.
    fn word(&self, class: Class, off32: usize, off64: usize) -> u64 {
        match class {
            Class::Elf32 => u64::from(self.u32(off32)),
            Class::Elf64 => self.u64(off64),
        }
    }
}

fn malformed(s: String) -> KernelError {
    KernelError::Malformed(s)
}

/// Parses the ELF file header from the first bytes of an image.
pub fn parse_header(head: &[u8]) -> Result<Header, KernelError> {
    if !head.starts_with(MAGIC) {
        return Err(KernelError::UnknownFormat("not an ELF file (bad magic)".into()));
    }
    let class = match head.get(4) {
        Some(1) => Class::Elf32,
        Some(2) => Class::Elf64,
        Some(&c) => return Err(malformed(format!("unsupported ELF class {c} (expected 1 for ELF32 or 2 for ELF64)"))),
        None => return Err(malformed("ELF header is cut short".into())),
    };
    match head.get(5) {
        Some(1) => {}
        Some(2) => return Err(KernelError::Unsupported("big-endian ELF file (x86 kernels are little-endian)".into())),
        Some(&d) => return Err(malformed(format!("unknown ELF data encoding {d} (expected 1 for little-endian)"))),
        None => return Err(malformed("ELF header is cut short".into())),
    }
    let ehsize = match class {
        Class::Elf32 => 52,
        Class::Elf64 => 64,
    };
    if head.len() < ehsize {
        return Err(malformed(format!("ELF header is cut short: {} of {ehsize} bytes", head.len())));
    }
    let b = Bytes(head);
    let machine = b.u16(18);
    if machine != EM_386 && machine != EM_X86_64 {
        return Err(KernelError::Unsupported(format!(
            "ELF machine {machine} is not x86 (expected EM_386 or EM_X86_64)"
        )));
    }
    // Offsets of e_phentsize..e_shstrndx: 42.. in ELF32, 54.. in ELF64.
    let sizes = if class == Class::Elf32 { 42 } else { 54 };
    let header = Header {
        class,
        machine,
        entry: b.word(class, 24, 24),
        phoff: b.word(class, 28, 32),
        shoff: b.word(class, 32, 40),
        phnum: b.u16(sizes + 2),
        shentsize: b.u16(sizes + 4),
        shnum: b.u16(sizes + 6),
        shstrndx: b.u16(sizes + 8),
    };
    let phentsize = b.u16(sizes);
    if header.phnum == PN_XNUM {
        return Err(KernelError::Unsupported(
            "extended program header numbering (e_phnum 0xffff) is not supported".into(),
        ));
    }
    if header.phnum > MAX_PHDRS {
        return Err(malformed(format!(
            "e_phnum is {} (pvboot reads at most {MAX_PHDRS} program headers)",
            header.phnum
        )));
    }
    if header.phnum > 0 && u64::from(phentsize) != header.phentsize() {
        return Err(malformed(format!("e_phentsize is {phentsize} (expected {})", header.phentsize())));
    }
    Ok(header)
}

/// Checks that `[offset, offset + size)` lies in an image of `image_size` bytes.
fn in_file(what: &str, offset: u64, size: u64, image_size: u64) -> Result<(), KernelError> {
    match offset.checked_add(size) {
        Some(end) if end <= image_size => Ok(()),
        end => Err(malformed(format!(
            "{what} at [{offset:#x}, {:#x}) extends past the end of the file ({image_size:#x} bytes)",
            end.unwrap_or(u64::MAX)
        ))),
    }
}

/// Decodes one program header from its bytes.
fn decode_phdr(class: Class, index: usize, e: &[u8]) -> ProgramHeader {
    let b = Bytes(e);
    ProgramHeader {
        index,
        p_type: b.u32(0),
        offset: b.word(class, 4, 8),
        vaddr: b.word(class, 8, 16),
        paddr: b.word(class, 12, 24),
        filesz: b.word(class, 16, 32),
        memsz: b.word(class, 20, 40),
        align: b.word(class, 28, 48),
    }
}

/// Decodes the program header table from its bytes (`header.phnum` entries).
pub fn decode_program_headers(header: &Header, table: &[u8]) -> Vec<ProgramHeader> {
    let size = header.phentsize() as usize;
    table
        .chunks_exact(size)
        .take(usize::from(header.phnum))
        .enumerate()
        .map(|(i, e)| decode_phdr(header.class, i, e))
        .collect()
}

/// Reads the program header table (bounded by [`MAX_PHDRS`]).
pub fn read_program_headers(image: &mut dyn Image, header: &Header) -> Result<Vec<ProgramHeader>, KernelError> {
    let r = header.phdr_range();
    in_file("program headers", header.phoff, r.end - r.start, image.size())?;
    let mut table = vec![0u8; (r.end - r.start) as usize];
    image.read_at(header.phoff, &mut table)?;
    Ok(decode_program_headers(header, &table))
}

/// Where the Xen notes were found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NoteSource {
    /// No Xen notes at all.
    #[default]
    None,
    /// PT_NOTE segments.
    Segments,
    /// SHT_NOTE sections (no PT_NOTE held a Xen note).
    Sections,
    /// The legacy `__xen_guest` section string.
    LegacyGuestInfo,
}

/// Every Xen note value libelf reads, as found (`None` = absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XenNotes {
    /// Where they came from.
    pub source: NoteSource,
    /// XEN_ELFNOTE_PHYS32_ENTRY.
    pub phys32_entry: Option<u64>,
    /// XEN_ELFNOTE_ENTRY (or VIRT_ENTRY).
    pub entry: Option<u64>,
    /// XEN_ELFNOTE_HYPERCALL_PAGE (a virtual address).
    pub hypercall_page: Option<u64>,
    /// XEN_ELFNOTE_VIRT_BASE.
    pub virt_base: Option<u64>,
    /// XEN_ELFNOTE_PADDR_OFFSET (ELF_PADDR_OFFSET).
    pub paddr_offset: Option<u64>,
    /// XEN_ELFNOTE_INIT_P2M: where the kernel wants the initial p2m list mapped.
    pub init_p2m: Option<u64>,
    /// XEN_ELFNOTE_HV_START_LOW (32-bit PV).
    pub hv_start_low: Option<u64>,
    /// XEN_ELFNOTE_MOD_START_PFN: modules may be given as a PFN, unmapped.
    pub mod_start_pfn: bool,
    /// XEN_ELFNOTE_SUSPEND_CANCEL.
    pub suspend_cancel: bool,
    /// XEN_ELFNOTE_BSD_SYMTAB "yes": the kernel wants its symbols loaded after it.
    pub bsd_symtab: bool,
    /// XEN_ELFNOTE_LOADER ("generic").
    pub loader: String,
    /// XEN_ELFNOTE_GUEST_OS ("linux", "NetBSD", ...).
    pub guest_os: String,
    /// XEN_ELFNOTE_GUEST_VERSION.
    pub guest_version: String,
    /// XEN_ELFNOTE_XEN_VERSION ("xen-3.0").
    pub xen_version: String,
    /// XEN_ELFNOTE_PAE_MODE ("yes", "bimodal", "yes[extended-cr3]").
    pub pae_mode: String,
    /// XEN_ELFNOTE_FEATURES: "feature|!required_feature|...".
    pub features: String,
    /// XEN_ELFNOTE_SUPPORTED_FEATURES: a XENFEAT_* bitmap.
    pub supported_features: u32,
    /// The first PV note whose value could not be read, if any.
    pub problem: Option<String>,
    /// Why the PHYS32_ENTRY note could not be read, if it could not.
    pub pvh_problem: Option<String>,
}

impl XenNotes {
    /// Whether any PV note (or the legacy string) is present.
    pub fn has_pv(&self) -> bool {
        self.source == NoteSource::LegacyGuestInfo
            || self.entry.is_some()
            || self.virt_base.is_some()
            || self.hypercall_page.is_some()
            || !self.loader.is_empty()
            || !self.guest_os.is_empty()
            || !self.xen_version.is_empty()
    }
}

/// A note descriptor as a C string (up to the first NUL, bounded).
fn note_string(desc: &[u8]) -> String {
    let s = desc.split(|&b| b == 0).next().unwrap_or(&[]);
    printable(&String::from_utf8_lossy(&s[..s.len().min(MAX_NOTE_STRING)]))
}

/// `s` with control characters replaced by `?`, at most [`MAX_NOTE_STRING`]
/// characters: note strings end up in one-line messages.
fn printable(s: &str) -> String {
    s.chars().take(MAX_NOTE_STRING).map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// A numeric note: 1, 2, 4 or 8 little-endian bytes, as libelf reads them.
fn note_number(desc: &[u8]) -> Option<u64> {
    Some(match *desc {
        [a] => u64::from(a),
        [a, b] => u64::from(u16::from_le_bytes([a, b])),
        [a, b, c, d] => u64::from(u32::from_le_bytes([a, b, c, d])),
        [a, b, c, d, e, f, g, h] => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
        _ => return None,
    })
}

/// The name libelf gives a note type, for messages.
fn note_name(n_type: u32) -> &'static str {
    match n_type {
        elfnote::ENTRY => "XEN_ELFNOTE_ENTRY",
        elfnote::HYPERCALL_PAGE => "XEN_ELFNOTE_HYPERCALL_PAGE",
        elfnote::VIRT_BASE => "XEN_ELFNOTE_VIRT_BASE",
        elfnote::PADDR_OFFSET => "XEN_ELFNOTE_PADDR_OFFSET",
        elfnote::HV_START_LOW => "XEN_ELFNOTE_HV_START_LOW",
        elfnote::INIT_P2M => "XEN_ELFNOTE_INIT_P2M",
        elfnote::MOD_START_PFN => "XEN_ELFNOTE_MOD_START_PFN",
        elfnote::SUSPEND_CANCEL => "XEN_ELFNOTE_SUSPEND_CANCEL",
        elfnote::SUPPORTED_FEATURES => "XEN_ELFNOTE_SUPPORTED_FEATURES",
        elfnote::PHYS32_ENTRY => "XEN_ELFNOTE_PHYS32_ENTRY",
        _ => "Xen note",
    }
}

/// Scans a block of note records, storing every Xen note in `notes`;
/// returns how many Xen notes there were. Records are padded to 4 bytes,
/// or 8 when the block is 8-aligned (as the gABI allows); a record running
/// past the block ends the scan, as in libelf.
pub fn parse_notes(block: &[u8], align: u64, notes: &mut XenNotes) -> usize {
    let align: usize = if align == 8 { 8 } else { 4 };
    let pad = |x: usize| x.checked_add(align - 1).map(|x| x & !(align - 1));
    let b = Bytes(block);
    let mut pos = 0usize;
    let mut found = 0;
    while pos.checked_add(12).is_some_and(|end| end <= block.len()) {
        let (namesz, descsz, n_type) = (b.u32(pos) as usize, b.u32(pos + 4) as usize, b.u32(pos + 8));
        let name_start = pos + 12;
        let Some(name_end) = name_start.checked_add(namesz) else { break };
        let Some(desc_start) = pad(name_end) else { break };
        let Some(desc_end) = desc_start.checked_add(descsz) else { break };
        let (Some(name), Some(desc)) = (block.get(name_start..name_end), block.get(desc_start..desc_end)) else {
            break;
        };
        if name.strip_suffix(b"\0").unwrap_or(name) == elfnote::OWNER {
            found += 1;
            store_note(n_type, desc, notes);
        }
        match pad(desc_end) {
            Some(next) => pos = next,
            None => break,
        }
    }
    found
}

fn store_note(n_type: u32, desc: &[u8], n: &mut XenNotes) {
    let number = |slot: &mut Option<u64>, problem: &mut Option<String>| match note_number(desc) {
        Some(v) => *slot = Some(v),
        None => {
            problem.get_or_insert_with(|| {
                format!("bad {} note: {}-byte value (expected 1, 2, 4 or 8)", note_name(n_type), desc.len())
            });
        }
    };
    match n_type {
        elfnote::ENTRY => number(&mut n.entry, &mut n.problem),
        elfnote::HYPERCALL_PAGE => number(&mut n.hypercall_page, &mut n.problem),
        elfnote::VIRT_BASE => number(&mut n.virt_base, &mut n.problem),
        elfnote::PADDR_OFFSET => number(&mut n.paddr_offset, &mut n.problem),
        elfnote::INIT_P2M => number(&mut n.init_p2m, &mut n.problem),
        elfnote::HV_START_LOW => number(&mut n.hv_start_low, &mut n.problem),
        elfnote::PHYS32_ENTRY => match note_number(desc) {
            Some(v) => n.phys32_entry = Some(v),
            None => {
                n.pvh_problem =
                    Some(format!("bad XEN_ELFNOTE_PHYS32_ENTRY note: {}-byte value (expected 4)", desc.len()))
            }
        },
        elfnote::MOD_START_PFN => n.mod_start_pfn = note_number(desc).is_some_and(|v| v != 0),
        elfnote::SUSPEND_CANCEL => n.suspend_cancel = note_number(desc).is_some_and(|v| v != 0),
        elfnote::SUPPORTED_FEATURES => {
            n.supported_features |= desc.get(..4).map_or(0, |d| u32::from_le_bytes([d[0], d[1], d[2], d[3]]))
        }
        elfnote::LOADER => n.loader = note_string(desc),
        elfnote::GUEST_OS => n.guest_os = note_string(desc),
        elfnote::GUEST_VERSION => n.guest_version = note_string(desc),
        elfnote::XEN_VERSION => n.xen_version = note_string(desc),
        elfnote::PAE_MODE => n.pae_mode = note_string(desc),
        elfnote::FEATURES => n.features = note_string(desc),
        elfnote::BSD_SYMTAB => n.bsd_symtab = note_string(desc) == "yes",
        _ => {}
    }
}

/// `strtoull(s, NULL, 0)`: 0x-prefixed hex, 0-prefixed octal, else decimal,
/// stopping at the first character that is not a digit (0 if none).
fn strtoull0(s: &str) -> u64 {
    let s = s.trim_start();
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    let mut v: u64 = 0;
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else { break };
        v = v.wrapping_mul(u64::from(radix)).wrapping_add(u64::from(d));
    }
    v
}

/// Parses the legacy `__xen_guest` string, `NAME=VALUE,NAME=VALUE,...`,
/// as libelf's elf_xen_parse_guest_info does.
pub fn parse_guest_info(info: &str, n: &mut XenNotes) {
    n.source = NoteSource::LegacyGuestInfo;
    let mut hypercall_page = None;
    for item in info.split('\0').next().unwrap_or("").split(',') {
        let (name, value) = item.split_once('=').unwrap_or((item, ""));
        let value_string = || printable(value);
        match name {
            "LOADER" => n.loader = value_string(),
            "GUEST_OS" => n.guest_os = value_string(),
            "GUEST_VER" => n.guest_version = value_string(),
            "XEN_VER" => n.xen_version = value_string(),
            "PAE" => n.pae_mode = value_string(),
            "BSD_SYMTAB" => n.bsd_symtab = true,
            "VIRT_BASE" => n.virt_base = Some(strtoull0(value)),
            "VIRT_ENTRY" => n.entry = Some(strtoull0(value)),
            "ELF_PADDR_OFFSET" => n.paddr_offset = Some(strtoull0(value)),
            // A page number relative to VIRT_BASE, wherever that appears.
            "HYPERCALL_PAGE" => hypercall_page = Some(strtoull0(value)),
            "FEATURES" => n.features = value_string(),
            _ => {}
        }
    }
    if let Some(page) = hypercall_page {
        n.hypercall_page = Some((page << 12).wrapping_add(n.virt_base.unwrap_or(0)));
    }
}

/// Reads a bounded block of the file for notes.
fn read_block(image: &mut dyn Image, what: &str, offset: u64, size: u64, cap: u64) -> Result<Vec<u8>, KernelError> {
    in_file(what, offset, size, image.size())?;
    if size > cap {
        return Err(malformed(format!("{what} is {size:#x} bytes (pvboot reads at most {cap:#x})")));
    }
    let mut block = vec![0u8; size as usize];
    image.read_at(offset, &mut block)?;
    Ok(block)
}

/// One section header's fields.
struct SectionHeader {
    name: u32,
    sh_type: u32,
    offset: u64,
    size: u64,
    align: u64,
}

/// Reads the section header table (only for the note fallbacks).
fn read_section_headers(image: &mut dyn Image, header: &Header) -> Result<Vec<SectionHeader>, KernelError> {
    if header.shoff == 0 || header.shnum == 0 {
        return Ok(Vec::new());
    }
    if header.shnum > MAX_SECTIONS {
        return Err(malformed(format!(
            "e_shnum is {} (pvboot reads at most {MAX_SECTIONS} section headers)",
            header.shnum
        )));
    }
    let entsize = header.shentsize_expected();
    if u64::from(header.shentsize) != entsize {
        return Err(malformed(format!("e_shentsize is {} (expected {entsize})", header.shentsize)));
    }
    let table = read_block(
        image,
        "section headers",
        header.shoff,
        u64::from(header.shnum) * entsize,
        u64::from(MAX_SECTIONS) * 64,
    )?;
    let class = header.class;
    Ok(table
        .chunks_exact(entsize as usize)
        .map(|e| {
            let b = Bytes(e);
            SectionHeader {
                name: b.u32(0),
                sh_type: b.u32(4),
                offset: b.word(class, 16, 24),
                size: b.word(class, 20, 32),
                align: b.word(class, 32, 48),
            }
        })
        .collect())
}

/// Finds the Xen notes as libelf does: PT_NOTE segments, then SHT_NOTE
/// sections, then the `__xen_guest` section.
pub fn read_notes(image: &mut dyn Image, header: &Header, phdrs: &[ProgramHeader]) -> Result<XenNotes, KernelError> {
    let mut notes = XenNotes::default();
    let mut found = 0;
    for ph in phdrs.iter().filter(|p| p.p_type == PT_NOTE) {
        let what = format!("note segment {}", ph.index);
        let block = read_block(image, &what, ph.offset, ph.filesz, MAX_NOTE_BYTES)?;
        found += parse_notes(&block, ph.align, &mut notes);
    }
    if found > 0 {
        notes.source = NoteSource::Segments;
        return Ok(notes);
    }
    let sections = read_section_headers(image, header)?;
    for (i, sh) in sections.iter().enumerate().filter(|(_, s)| s.sh_type == SHT_NOTE) {
        let block = read_block(image, &format!("note section {i}"), sh.offset, sh.size, MAX_NOTE_BYTES)?;
        found += parse_notes(&block, sh.align, &mut notes);
    }
    if found > 0 {
        notes.source = NoteSource::Sections;
        return Ok(notes);
    }
    // The legacy string, found by section name.
    let Some(names) = sections.get(usize::from(header.shstrndx)) else {
        return Ok(notes);
    };
    let names = read_block(image, "section name table", names.offset, names.size, MAX_SHSTRTAB_BYTES)?;
    let name_of = |s: &SectionHeader| {
        let start = s.name as usize;
        names.get(start..).and_then(|n| n.split(|&b| b == 0).next())
    };
    if let Some(guest) = sections.iter().find(|s| name_of(s) == Some(b"__xen_guest")) {
        let size = guest.size.min(MAX_GUEST_INFO_BYTES);
        let block = read_block(image, "__xen_guest section", guest.offset, size, MAX_GUEST_INFO_BYTES)?;
        parse_guest_info(&String::from_utf8_lossy(&block), &mut notes);
    }
    Ok(notes)
}

/// What a classic PV domain builder needs to know about a kernel: every
/// value xg_dom_x86.c and libelf take from the notes, with libelf's defaults
/// and derived addresses filled in. Addresses are virtual unless named
/// otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvInfo {
    /// ELF32 (32-bit PAE PV) or ELF64.
    pub class: Class,
    /// The virtual entry point (XEN_ELFNOTE_ENTRY, else e_entry).
    pub entry: u64,
    /// VIRT_BASE: the virtual address of pseudo-physical 0.
    pub virt_base: u64,
    /// ELF_PADDR_OFFSET (defaulted as libelf does).
    pub paddr_offset: u64,
    /// The kernel's first virtual address (libelf's virt_kstart).
    pub virt_kstart: u64,
    /// The end of the kernel's virtual range (virt_kend).
    pub virt_kend: u64,
    /// Where the hypervisor writes the hypercall page, if asked.
    pub hypercall_page: Option<u64>,
    /// XEN_ELFNOTE_INIT_P2M: where to map the initial p2m list, if asked.
    pub init_p2m: Option<u64>,
    /// XEN_ELFNOTE_HV_START_LOW.
    pub hv_start_low: Option<u64>,
    /// Modules may be passed unmapped, by PFN (SIF_MOD_START_PFN).
    pub mod_start_pfn: bool,
    /// The kernel wants its symbol table loaded after it (BSD_SYMTAB);
    /// pvboot does not load it.
    pub bsd_symtab: bool,
    /// XEN_ELFNOTE_SUSPEND_CANCEL.
    pub suspend_cancel: bool,
    /// LOADER ("generic").
    pub loader: String,
    /// GUEST_OS.
    pub guest_os: String,
    /// GUEST_VERSION.
    pub guest_version: String,
    /// XEN_VERSION ("xen-3.0").
    pub xen_version: String,
    /// PAE_MODE, as written.
    pub pae_mode: String,
    /// XENFEAT_* bits the kernel supports.
    pub features_supported: u32,
    /// XENFEAT_* bits the kernel requires (`!name` in FEATURES).
    pub features_required: u32,
    /// The notes came from a legacy `__xen_guest` section.
    pub legacy_guest_info: bool,
}

/// The XENFEAT names libelf knows (elf_xen_feature_names).
const FEATURE_NAMES: &[(&str, u32)] = &[
    ("writable_page_tables", xenfeat::WRITABLE_PAGE_TABLES),
    ("writable_descriptor_tables", xenfeat::WRITABLE_DESCRIPTOR_TABLES),
    ("auto_translated_physmap", xenfeat::AUTO_TRANSLATED_PHYSMAP),
    ("supervisor_mode_kernel", xenfeat::SUPERVISOR_MODE_KERNEL),
    ("pae_pgdir_above_4gb", xenfeat::PAE_PGDIR_ABOVE_4GB),
    ("hvm_callback_vector", xenfeat::HVM_CALLBACK_VECTOR),
    ("dom0", xenfeat::DOM0),
];

/// Parses a FEATURES string into (supported, required) bitmaps, as
/// elf_xen_parse_features: unknown features are ignored unless required.
pub fn parse_features(features: &str) -> Result<(u32, u32), KernelError> {
    let (mut supported, mut required) = (0u32, 0u32);
    for f in features.split('|').filter(|f| !f.is_empty()) {
        let (name, req) = match f.strip_prefix('!') {
            Some(n) => (n, true),
            None => (f, false),
        };
        match FEATURE_NAMES.iter().find(|(n, _)| *n == name) {
            Some(&(_, bit)) => {
                supported |= 1 << bit;
                if req {
                    required |= 1 << bit;
                }
            }
            None if req => {
                return Err(KernelError::Unsupported(format!(
                    "the kernel requires Xen feature \"{name}\", which pvboot does not know"
                )))
            }
            None => {}
        }
    }
    Ok((supported, required))
}

/// A PT_LOAD segment and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The program header index.
    pub index: usize,
    /// Where its file bytes are.
    pub offset: u64,
    /// How many bytes come from the file.
    pub filesz: u64,
    /// Its size in memory (the rest is zeroed).
    pub memsz: u64,
    /// Its guest-physical destination.
    pub dest: u64,
}

impl Placed {
    /// The guest-physical range it occupies.
    pub fn range(&self) -> Range<u64> {
        // plan() checked that this does not overflow.
        self.dest..self.dest + self.memsz
    }
}

/// Everything [`load_plan`] decided: where each segment goes and the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// How to enter the kernel.
    pub entry: EntryPoint,
    /// The non-empty PT_LOAD segments, in address order, not overlapping.
    pub segments: Vec<Placed>,
    /// "ELF64 PVH".
    pub description: String,
}

/// The PV view of a kernel: libelf's elf_xen_note_check and
/// elf_xen_addr_calc_check.
fn pv_info(header: &Header, notes: &XenNotes, pstart: u64, pend: u64) -> Result<PvInfo, KernelError> {
    let unsupported = |s: String| Err(KernelError::Unsupported(s));
    if notes.source == NoteSource::None || !notes.has_pv() {
        let hint = if notes.phys32_entry.is_some() { " (it has a PVH entry: boot it as PVH)" } else { "" };
        return unsupported(format!("not a PV kernel: no Xen PV notes or __xen_guest section{hint}"));
    }
    if let Some(p) = &notes.problem {
        return Err(malformed(p.clone()));
    }
    let starts = |s: &str, p: &str| s.starts_with(p);
    if !starts(&notes.loader, "generic") && !starts(&notes.guest_os, "linux") {
        return unsupported(format!(
            "not a PV kernel for a generic loader: LOADER \"{}\", GUEST_OS \"{}\" (Xen loads only LOADER=generic or GUEST_OS=linux)",
            notes.loader, notes.guest_os
        ));
    }
    if !starts(&notes.xen_version, "xen-3.0") {
        return unsupported(format!(
            "the kernel is built for Xen interface \"{}\" (expected \"xen-3.0\")",
            notes.xen_version
        ));
    }
    let (mut features_supported, features_required) = parse_features(&notes.features)?;
    features_supported |= notes.supported_features;
    if features_required & (1 << xenfeat::DOM0) != 0 {
        return unsupported("the kernel requires the dom0 feature: it cannot run as a domU".into());
    }
    if notes.paddr_offset.is_some() && notes.virt_base.is_none() {
        return Err(malformed("ELF_PADDR_OFFSET is set but VIRT_BASE is not".into()));
    }
    let virt_base = notes.virt_base.unwrap_or(0);
    // Notes default the offset to 0; the legacy string to VIRT_BASE.
    let paddr_offset = notes.paddr_offset.unwrap_or(match notes.source {
        NoteSource::LegacyGuestInfo => virt_base,
        _ => 0,
    });
    let virt_offset = virt_base.wrapping_sub(paddr_offset);
    let virt_kstart = pstart.wrapping_add(virt_offset);
    let virt_kend = pend.wrapping_add(virt_offset);
    let entry = notes.entry.unwrap_or(header.entry);
    if virt_kstart > virt_kend || entry < virt_kstart || entry > virt_kend || virt_base > virt_kstart {
        return Err(malformed(format!(
            "PV addresses out of bounds: entry {entry:#x}, kernel [{virt_kstart:#x}, {virt_kend:#x}), VIRT_BASE {virt_base:#x}"
        )));
    }
    if let Some(p2m) = notes.init_p2m.filter(|p| (virt_kstart..virt_kend).contains(p)) {
        return Err(malformed(format!(
            "XEN_ELFNOTE_INIT_P2M {p2m:#x} lies inside the kernel [{virt_kstart:#x}, {virt_kend:#x})"
        )));
    }
    Ok(PvInfo {
        class: header.class,
        entry,
        virt_base,
        paddr_offset,
        virt_kstart,
        virt_kend,
        hypercall_page: notes.hypercall_page,
        init_p2m: notes.init_p2m,
        hv_start_low: notes.hv_start_low,
        mod_start_pfn: notes.mod_start_pfn,
        bsd_symtab: notes.bsd_symtab,
        suspend_cancel: notes.suspend_cancel,
        loader: notes.loader.clone(),
        guest_os: notes.guest_os.clone(),
        guest_version: notes.guest_version.clone(),
        xen_version: notes.xen_version.clone(),
        pae_mode: notes.pae_mode.clone(),
        features_supported,
        features_required,
        legacy_guest_info: notes.source == NoteSource::LegacyGuestInfo,
    })
}

/// Checks the PT_LOAD headers against the file (`image_size` bytes) and
/// themselves: file bytes inside the file, no more file than memory.
pub fn check_loads(phdrs: &[ProgramHeader], image_size: u64) -> Result<(), KernelError> {
    for ph in phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        in_file(&format!("segment {}", ph.index), ph.offset, ph.filesz, image_size)?;
        if ph.filesz > ph.memsz {
            return Err(malformed(format!(
                "segment {}: file size {:#x} exceeds memory size {:#x}",
                ph.index, ph.filesz, ph.memsz
            )));
        }
    }
    Ok(())
}

/// How the kernel is entered in `mode`, by its notes; also the amount
/// subtracted from `p_paddr` to get each segment's destination (PV's
/// ELF_PADDR_OFFSET, 0 for PVH) and a description ("ELF64 PVH").
pub fn entry_for(
    header: &Header,
    phdrs: &[ProgramHeader],
    notes: &XenNotes,
    multiboot: &Result<Option<multiboot::Header>, KernelError>,
    mode: BootMode,
) -> Result<(EntryPoint, u64, String), KernelError> {
    let loads = || phdrs.iter().filter(|p| p.p_type == PT_LOAD);
    Ok(match mode {
        BootMode::Pvh => match notes.phys32_entry {
            Some(e) => {
                let e = u32::try_from(e).map_err(|_| {
                    malformed(format!("bad XEN_ELFNOTE_PHYS32_ENTRY note: entry point {e:#x} is above 4 GiB"))
                })?;
                (EntryPoint::Pvh { entry32: e }, 0, format!("{} PVH", header.class.name()))
            }
            None => {
                if let Some(p) = &notes.pvh_problem {
                    return Err(malformed(p.clone()));
                }
                // No PVH note: a multiboot kernel is entered at its ELF entry.
                if multiboot.clone()?.is_some() {
                    let entry32 = u32::try_from(header.entry).map_err(|_| {
                        malformed(format!("multiboot ELF entry point {:#x} is above 4 GiB", header.entry))
                    })?;
                    return Ok((EntryPoint::Multiboot1 { entry32 }, 0, format!("{} multiboot", header.class.name())));
                }
                let hint = if notes.has_pv() { " (a PV-only kernel: boot it as PV)" } else { "" };
                return Err(KernelError::Unsupported(format!(
                    "not a PVH kernel: no XEN_ELFNOTE_PHYS32_ENTRY note{hint}"
                )));
            }
        },
        BootMode::Pv => {
            // libelf's pstart/pend: the p_paddr span of the loadable segments.
            let pstart = loads().map(|p| p.paddr).min().unwrap_or(0);
            let pend = loads().map(|p| p.paddr.saturating_add(p.memsz)).max().unwrap_or(0);
            let info = pv_info(header, notes, pstart, pend)?;
            let legacy = if info.legacy_guest_info { " (__xen_guest)" } else { "" };
            let description = format!("{} PV{legacy}", header.class.name());
            let shift = info.paddr_offset;
            (EntryPoint::Pv(info), shift, description)
        }
    })
}

/// The non-empty PT_LOAD segments at `p_paddr - shift`, in address order;
/// fails if one wraps or two overlap.
pub fn place_segments(phdrs: &[ProgramHeader], shift: u64) -> Result<Vec<Placed>, KernelError> {
    let mut segments = Vec::new();
    for ph in phdrs.iter().filter(|p| p.p_type == PT_LOAD && p.memsz > 0) {
        let dest = ph.paddr.checked_sub(shift).ok_or_else(|| {
            malformed(format!("segment {}: p_paddr {:#x} is below ELF_PADDR_OFFSET {shift:#x}", ph.index, ph.paddr))
        })?;
        if dest.checked_add(ph.memsz).is_none() {
            return Err(malformed(format!(
                "segment {}: [{dest:#x}, +{:#x}) wraps past the top of memory",
                ph.index, ph.memsz
            )));
        }
        segments.push(Placed { index: ph.index, offset: ph.offset, filesz: ph.filesz, memsz: ph.memsz, dest });
    }
    if segments.is_empty() {
        return Err(malformed("no PT_LOAD segments: nothing to load".into()));
    }
    segments.sort_by_key(|s| s.dest);
    for pair in segments.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.dest < a.range().end {
            return Err(malformed(format!(
                "segments {} {} and {} {} overlap",
                a.index,
                hex_range(&a.range()),
                b.index,
                hex_range(&b.range())
            )));
        }
    }
    Ok(segments)
}

/// Checks that a physical entry point lies in a loaded segment.
pub fn check_entry(entry: &EntryPoint, segments: &[Placed]) -> Result<(), KernelError> {
    if let EntryPoint::Pvh { entry32 } | EntryPoint::Multiboot1 { entry32 } = *entry {
        if !segments.iter().any(|s| s.range().contains(&u64::from(entry32))) {
            return Err(malformed(format!("entry point {entry32:#x} is not inside any loaded segment")));
        }
    }
    Ok(())
}

/// Decides where every segment goes and how the kernel is entered in
/// `mode`, checking the segments against the file size, each other and the
/// entry point. `image_size` bounds the file offsets.
pub fn load_plan(
    header: &Header,
    phdrs: &[ProgramHeader],
    notes: &XenNotes,
    multiboot: &Result<Option<multiboot::Header>, KernelError>,
    image_size: u64,
    mode: BootMode,
) -> Result<Plan, KernelError> {
    check_loads(phdrs, image_size)?;
    let (entry, shift, description) = entry_for(header, phdrs, notes, multiboot, mode)?;
    let segments = place_segments(phdrs, shift)?;
    check_entry(&entry, &segments)?;
    Ok(Plan { entry, segments, description })
}

impl Plan {
    /// Checks every segment against `limits`: the allowed ranges, the
    /// reserved ones, and the total size.
    pub fn check(&self, limits: &Limits) -> Result<(), KernelError> {
        let total = self.segments.iter().fold(0u64, |t, s| t.saturating_add(s.memsz));
        if total > limits.max_bytes {
            return Err(KernelError::TooLarge { what: "the kernel in memory", size: total, max: limits.max_bytes });
        }
        for s in &self.segments {
            limits.check(&format!("kernel segment {}", s.index), &s.range())?;
        }
        Ok(())
    }

    /// The guest-physical ranges the segments occupy, in address order.
    pub fn ranges(&self) -> Vec<Range<u64>> {
        self.segments.iter().map(Placed::range).collect()
    }

    /// What [`super::load`] reports after loading this plan.
    pub fn loaded(&self) -> Loaded {
        Loaded { entry: self.entry.clone(), ranges: self.ranges(), description: self.description.clone() }
    }
}

/// Reads the headers and notes of an ELF image and plans its load in `mode`
/// (no memory touched).
pub fn inspect(image: &mut dyn Image, mode: BootMode) -> Result<Plan, KernelError> {
    let head_len = image.size().min(multiboot::SEARCH_BYTES as u64) as usize;
    let mut head = vec![0u8; head_len];
    image.read_at(0, &mut head)?;
    let header = parse_header(&head)?;
    let phdrs = read_program_headers(image, &header)?;
    let notes = read_notes(image, &header, &phdrs)?;
    load_plan(&header, &phdrs, &notes, &multiboot::find(&head), image.size(), mode)
}

/// Loads an uncompressed ELF image: every check first, then each segment's
/// file bytes read straight into place and its bss zeroed.
pub fn load(
    image: &mut dyn Image,
    mem: &mut dyn Memory,
    limits: &Limits,
    mode: BootMode,
) -> Result<Loaded, KernelError> {
    let plan = inspect(image, mode)?;
    plan.check(limits)?;
    for s in &plan.segments {
        read_into(image, s.offset, mem, s.dest, s.filesz)?;
        zero(mem, s.dest + s.filesz, s.memsz - s.filesz)?;
    }
    Ok(plan.loaded())
}

impl core::fmt::Display for Plan {
    /// "ELF64 PVH, entry 0x100040, 2 segments in [0x100000, 0x230000)".
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let entry = match &self.entry {
            EntryPoint::Pvh { entry32 } | EntryPoint::Multiboot1 { entry32 } => u64::from(*entry32),
            EntryPoint::Pv(info) => info.entry,
        };
        let start = self.segments.first().map_or(0, |s| s.dest);
        let end = self.segments.iter().map(|s| s.range().end).max().unwrap_or(0);
        let n = self.segments.len();
        write!(
            f,
            "{}, entry {entry:#x}, {n} segment{} in [{start:#x}, {end:#x})",
            self.description,
            if n == 1 { "" } else { "s" }
        )
    }
}
