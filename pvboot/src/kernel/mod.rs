//! Kernel images: recognise a kernel, check where it would land, and load
//! its segments straight to their final guest-physical addresses.
//!
//! Formats: ELF32/ELF64 with `XEN_ELFNOTE_PHYS32_ENTRY` (PVH), ELF with the
//! Xen PV notes or a legacy `__xen_guest` section (PV), as Xen's libelf
//! reads them ([`elf`]).
//!
//! Two small traits keep this code free of `unsafe` and of any particular
//! environment: [`Image`] is where the kernel's bytes come from (a byte
//! slice, or a file on a pvboot file system through [`FileImage`]), and
//! [`Memory`] is the guest-physical memory they go to (raw RAM in the pvboot
//! guest, a `Vec` in host tests ([`VecMemory`]), guest RAM in the
//! hypervisor). Every segment is read from the image directly into the slice
//! of memory it occupies, so no byte is copied twice.
//!
//! Every size and count read from an image is checked before it drives an
//! allocation or a loop; bad input gives one [`KernelError`] line.

pub mod bzimage;
pub mod elf;
pub mod multiboot;
pub mod stream;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use crate::fs::{FileSystem, FileType, Node};

pub use elf::PvInfo;

/// Guest-physical memory the loader writes into.
pub trait Memory {
    /// The `len` bytes at guest-physical `paddr`, for writing. Fails (with
    /// [`KernelError::Memory`]) when the range is not backed.
    fn slice_mut(&mut self, paddr: u64, len: usize) -> Result<&mut [u8], KernelError>;
}

/// A kernel image to read from.
pub trait Image {
    /// Its size in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset`; reading past the end is an error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), KernelError>;
}

impl Image for &[u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), KernelError> {
        let bytes = usize::try_from(offset)
            .ok()
            .and_then(|start| self.get(start..start.checked_add(buf.len())?))
            .ok_or_else(|| past_end(offset, buf.len(), self.len() as u64))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// A read of `[offset, offset + len)` in a `size`-byte image.
fn past_end(offset: u64, len: usize, size: u64) -> KernelError {
    KernelError::Malformed(format!("read of {} at {offset:#x} is past the end of the {size:#x}-byte image", len))
}

/// A regular file on a pvboot file system, read in place.
pub struct FileImage<'a> {
    fs: &'a dyn FileSystem,
    node: Node,
}

impl<'a> FileImage<'a> {
    /// Opens `path` (following symlinks); it must be a regular file.
    pub fn open(fs: &'a dyn FileSystem, path: &str) -> Result<Self, KernelError> {
        let node = fs.lookup(path).map_err(|e| KernelError::Read(format!("{path}: {e}")))?;
        Self::new(fs, node)
    }

    /// An image over an already resolved file.
    pub fn new(fs: &'a dyn FileSystem, node: Node) -> Result<Self, KernelError> {
        if node.meta.kind != FileType::File {
            return Err(KernelError::Read(format!("{}: not a regular file", node.path)));
        }
        Ok(FileImage { fs, node })
    }
}

impl Image for FileImage<'_> {
    fn size(&self) -> u64 {
        self.node.meta.size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), KernelError> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.size()) {
            return Err(past_end(offset, buf.len(), self.size()));
        }
        let n = self
            .fs
            .read_at(&self.node, offset, buf)
            .map_err(|e| KernelError::Read(format!("{}: {e}", self.node.path)))?;
        if n != buf.len() {
            return Err(KernelError::Read(format!(
                "{}: short read ({n} of {} bytes at {offset:#x})",
                self.node.path,
                buf.len()
            )));
        }
        Ok(())
    }
}

/// Guest memory as one `Vec` covering `[base, base + len)`: for host tests,
/// fuzzing and tools.
#[derive(Clone, Debug)]
pub struct VecMemory {
    /// The guest-physical address of `bytes[0]`.
    pub base: u64,
    /// The memory.
    pub bytes: Vec<u8>,
}

impl VecMemory {
    /// `len` bytes of memory at `base`, filled with `fill`.
    pub fn new(base: u64, len: usize, fill: u8) -> Self {
        VecMemory { base, bytes: vec![fill; len] }
    }

    /// The bytes at `[paddr, paddr + len)`, if inside.
    pub fn get(&self, paddr: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(paddr.checked_sub(self.base)?).ok()?;
        self.bytes.get(start..start.checked_add(len)?)
    }
}

impl Memory for VecMemory {
    fn slice_mut(&mut self, paddr: u64, len: usize) -> Result<&mut [u8], KernelError> {
        let (base, size) = (self.base, self.bytes.len() as u64);
        paddr
            .checked_sub(base)
            .and_then(|off| usize::try_from(off).ok())
            .and_then(|start| self.bytes.get_mut(start..start.checked_add(len)?))
            .ok_or_else(|| KernelError::Memory {
                range: paddr..paddr.saturating_add(len as u64),
                reason: format!("outside the memory at [{base:#x}, {:#x})", base.saturating_add(size)),
            })
    }
}

/// A guest-physical range the kernel must not touch, with a name for errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserved {
    /// The range.
    pub range: Range<u64>,
    /// What is there ("pvboot", "boot info").
    pub name: &'static str,
}

/// Where a kernel may land and how big it may be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Guest-physical ranges segments may occupy; each segment must lie
    /// within one of them.
    pub allowed: Vec<Range<u64>>,
    /// The most bytes a kernel may occupy in memory (the sum of its segment
    /// sizes), and the largest compressed image read into a buffer.
    pub max_bytes: u64,
    /// Ranges named in errors when a segment reaches into them (pvboot's
    /// image and heap); they should lie outside `allowed` too.
    pub reserved: Vec<Reserved>,
}

impl Limits {
    /// Limits with `allowed` ranges, a size cap and nothing reserved by name.
    pub fn new(allowed: Vec<Range<u64>>, max_bytes: u64) -> Self {
        Limits { allowed, max_bytes, reserved: Vec::new() }
    }

    /// Adds a named reserved range.
    pub fn reserve(mut self, range: Range<u64>, name: &'static str) -> Self {
        self.reserved.push(Reserved { range, name });
        self
    }

    /// Checks that `range` (named `what` in errors) may be written.
    pub fn check(&self, what: &str, range: &Range<u64>) -> Result<(), KernelError> {
        if let Some(r) = self.reserved.iter().find(|r| range.start < r.range.end && r.range.start < range.end) {
            return Err(KernelError::Placement(format!(
                "{what} {} overlaps {} {}",
                hex_range(range),
                r.name,
                hex_range(&r.range)
            )));
        }
        if !self.allowed.iter().any(|a| a.start <= range.start && range.end <= a.end) {
            let allowed: Vec<String> = self.allowed.iter().map(hex_range).collect();
            return Err(KernelError::Placement(format!(
                "{what} {} is outside the RAM kernels may use ({})",
                hex_range(range),
                if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") }
            )));
        }
        Ok(())
    }
}

/// `[0x100000, 0x200000)`.
pub(crate) fn hex_range(r: &Range<u64>) -> String {
    format!("[{:#x}, {:#x})", r.start, r.end)
}

/// Which boot ABI the kernel is to be entered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootMode {
    /// PVH: 32-bit protected mode at a physical entry point.
    Pvh,
    /// Classic PV: the Xen PV notes' virtual entry point.
    Pv,
}

/// How to enter a loaded kernel.
// One per boot: boxing the PV variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryPoint {
    /// PVH: `XEN_ELFNOTE_PHYS32_ENTRY`, entered in 32-bit protected mode
    /// with paging off and EBX = the hvm_start_info address.
    Pvh {
        /// The physical entry point.
        entry32: u32,
    },
    /// Classic PV: what the domain builder needs (virtual addresses).
    Pv(PvInfo),
    /// A multiboot 1 kernel, entered as multiboot says (EAX = 0x2BADB002,
    /// EBX = the multiboot info) in 32-bit protected mode.
    Multiboot1 {
        /// The physical entry point.
        entry32: u32,
    },
}

/// What [`load`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// How to enter the kernel.
    pub entry: EntryPoint,
    /// The guest-physical ranges written (file bytes and zeroed bss), in
    /// address order.
    pub ranges: Vec<Range<u64>>,
    /// What was loaded, for messages: "ELF64 PVH", "ELF32 PV".
    pub description: String,
}

impl Loaded {
    /// The end of the highest range written (0 if none).
    pub fn end(&self) -> u64 {
        self.ranges.iter().map(|r| r.end).max().unwrap_or(0)
    }
}

/// Why a kernel cannot be loaded. Displays as one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// Reading the image failed (disk or file system).
    Read(String),
    /// Guest memory refused a range.
    Memory {
        /// The range asked for.
        range: Range<u64>,
        /// Why.
        reason: String,
    },
    /// Not a kernel format pvboot knows.
    UnknownFormat(String),
    /// A known format, but malformed: what is wrong.
    Malformed(String),
    /// Well-formed, but not bootable the way asked (wrong mode, unsupported feature).
    Unsupported(String),
    /// A segment would land somewhere it must not.
    Placement(String),
    /// Larger than [`Limits::max_bytes`].
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Read(s) => write!(f, "read error: {s}"),
            KernelError::Memory { range, reason } => {
                write!(f, "cannot write guest memory {}: {reason}", hex_range(range))
            }
            KernelError::UnknownFormat(s) => write!(f, "unknown kernel format: {s}"),
            KernelError::Malformed(s) => write!(f, "corrupt kernel: {s}"),
            KernelError::Unsupported(s) => write!(f, "{s}"),
            KernelError::Placement(s) => write!(f, "{s}"),
            KernelError::TooLarge { what, size, max } => {
                write!(f, "{what} is {size:#x} bytes; at most {max:#x} allowed")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for KernelError {}

/// The ELF inside a kernel file that is wholly in memory (a host tool's
/// view: the hypervisor's loader): the file itself, a bzImage's payload, or
/// the file or payload decompressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpacked<'a> {
    /// The ELF file's bytes.
    pub elf: alloc::borrow::Cow<'a, [u8]>,
    /// The container it came out of: "bzImage 2.15".
    pub container: Option<String>,
    /// The compression it was in: "gzip".
    pub compression: Option<&'static str>,
}

impl Unpacked<'_> {
    /// The full description for a load's `description` (e.g. "ELF64 PVH"):
    /// "bzImage 2.15, ELF64 PVH (xz)".
    pub fn describe(&self, elf: &str) -> String {
        let mut s = String::new();
        if let Some(c) = &self.container {
            s.push_str(c);
            s.push_str(", ");
        }
        s.push_str(elf);
        if let Some(c) = self.compression {
            s.push_str(&format!(" ({c})"));
        }
        s
    }
}

/// Finds the ELF in `file`: as is, inside a bzImage, or decompressed (by
/// the decompressor `detect` names from the first bytes; at most
/// `max_bytes` of output).
pub fn unpack<D: stream::Decompressor>(
    file: &[u8],
    max_bytes: u64,
    detect: impl Fn(&[u8]) -> Option<D>,
) -> Result<Unpacked<'_>, KernelError> {
    let decompress = |d: &D, input: &[u8]| -> Result<Vec<u8>, KernelError> {
        struct Out(Vec<u8>);
        impl stream::Sink for Out {
            type Error = core::convert::Infallible;
            fn write(&mut self, data: &[u8]) -> Result<(), Self::Error> {
                self.0.extend_from_slice(data);
                Ok(())
            }
        }
        let mut out = Out(Vec::new());
        d.decompress(input, &mut out, max_bytes).map_err(|e| match e {
            stream::DecodeError::Failed(e) => KernelError::Malformed(e),
            stream::DecodeError::Sink(never) => match never {},
        })?;
        Ok(out.0)
    };
    let head = &file[..file.len().min(HEAD_BYTES)];
    if head.starts_with(elf::MAGIC) || multiboot::find(head).is_ok_and(|m| m.is_some()) {
        return Ok(Unpacked { elf: file.into(), container: None, compression: None });
    }
    if bzimage::is_bzimage(head) {
        let bz = bzimage::parse(head, file.len() as u64)?;
        let name = format!("bzImage {}.{:02}", bz.version >> 8, bz.version & 0xff);
        // parse() checked the range against the file's length.
        let payload = &file[bz.payload.start as usize..bz.payload.end as usize];
        if payload.starts_with(elf::MAGIC) {
            return Ok(Unpacked { elf: payload.into(), container: Some(name), compression: None });
        }
        let Some(d) = detect(payload) else {
            return Err(KernelError::UnknownFormat(format!("{name} payload {}", describe_magic(payload))));
        };
        let elf = decompress(&d, payload)?.into();
        return Ok(Unpacked { elf, container: Some(name), compression: Some(d.name()) });
    }
    if let Some(d) = detect(head) {
        return Ok(Unpacked { elf: decompress(&d, file)?.into(), container: None, compression: Some(d.name()) });
    }
    Err(KernelError::UnknownFormat(describe_magic(head)))
}

/// How many bytes of an image are read to recognise its format.
pub const HEAD_BYTES: usize = 8192;

/// Recognises `image`, checks it against `mode` and `limits`, loads it into
/// `mem` and says how to enter it: an ELF kernel (PVH, PV or multiboot), a
/// multiboot kernel with load addresses, or a bzImage, any of them
/// compressed in a format pvboot::compress reads. For an uncompressed image
/// nothing is written before every check that needs no image data has
/// passed.
pub fn load(
    image: &mut dyn Image,
    mem: &mut dyn Memory,
    limits: &Limits,
    mode: BootMode,
) -> Result<Loaded, KernelError> {
    load_with(image, mem, limits, mode, crate::compress::detect)
}

/// [`load`], with `detect` naming the decompressor for a compressed file or
/// bzImage payload from its first bytes (tests give their own). A compressed image is read into
/// one heap buffer (at most [`Limits::max_bytes`]) and decompressed into
/// place ([`stream`]); the contiguous fast path may use allowed RAM past the
/// kernel's own ranges as scratch.
pub fn load_with<D: stream::Decompressor>(
    image: &mut dyn Image,
    mem: &mut dyn Memory,
    limits: &Limits,
    mode: BootMode,
    detect: impl Fn(&[u8]) -> Option<D>,
) -> Result<Loaded, KernelError> {
    let size = image.size();
    let head_len = usize::try_from(size).unwrap_or(HEAD_BYTES).min(HEAD_BYTES);
    let mut head = vec![0u8; head_len];
    image.read_at(0, &mut head)?;
    if head.starts_with(elf::MAGIC) {
        return elf::load(image, mem, limits, mode);
    }
    if bzimage::is_bzimage(&head) {
        let bz = bzimage::parse(&head, size)?;
        let name = format!("bzImage {}.{:02}", bz.version >> 8, bz.version & 0xff);
        let mut payload = SubImage::new(image, bz.payload.clone());
        let mut phead = [0u8; 16];
        let n = payload.size().min(16) as usize;
        payload.read_at(0, &mut phead[..n])?;
        let phead = &phead[..n];
        let loaded = if phead.starts_with(elf::MAGIC) {
            elf::load(&mut payload, mem, limits, mode)?
        } else if let Some(d) = detect(phead) {
            let bytes = read_whole(&mut payload, limits, "bzImage payload")?;
            let hint = bzimage::uncompressed_size(&bytes);
            let mut loaded = stream::load_compressed(&d, &bytes, mem, limits, mode, hint)?;
            loaded.description = format!("{} ({})", loaded.description, d.name());
            loaded
        } else {
            return Err(KernelError::UnknownFormat(format!("{name} payload {}", describe_magic(phead))));
        };
        return Ok(Loaded { description: format!("{name}, {}", loaded.description), ..loaded });
    }
    if let Some(d) = detect(&head) {
        let bytes = read_whole(image, limits, "compressed kernel")?;
        // gzip's trailer holds the size (mod 4 GiB); other formats' do not.
        let hint = if d.name() == "gzip" { bzimage::uncompressed_size(&bytes) } else { None };
        let mut loaded = stream::load_compressed(&d, &bytes, mem, limits, mode, hint)?;
        loaded.description = format!("{} ({})", loaded.description, d.name());
        return Ok(loaded);
    }
    load_multiboot_kludge(image, &head, mem, limits, mode)
}

/// Loads an uncompressed kernel: ELF, or a multiboot kernel with the a.out kludge.
pub fn load_uncompressed(
    image: &mut dyn Image,
    mem: &mut dyn Memory,
    limits: &Limits,
    mode: BootMode,
) -> Result<Loaded, KernelError> {
    let head_len = usize::try_from(image.size()).unwrap_or(HEAD_BYTES).min(HEAD_BYTES);
    let mut head = vec![0u8; head_len];
    image.read_at(0, &mut head)?;
    if head.starts_with(elf::MAGIC) {
        return elf::load(image, mem, limits, mode);
    }
    load_multiboot_kludge(image, &head, mem, limits, mode)
}

/// A non-ELF file whose multiboot header gives the load addresses; under
/// PVH only (multiboot is a 32-bit physical-mode protocol).
fn load_multiboot_kludge(
    image: &mut dyn Image,
    head: &[u8],
    mem: &mut dyn Memory,
    limits: &Limits,
    mode: BootMode,
) -> Result<Loaded, KernelError> {
    let Some(mb) = multiboot::find(head)? else {
        return Err(KernelError::UnknownFormat(describe_magic(head)));
    };
    let Some(k) = &mb.kludge else {
        return Err(KernelError::Unsupported(
            "a multiboot kernel that is not ELF must give its load addresses (flag 16)".into(),
        ));
    };
    if mode != BootMode::Pvh {
        return Err(KernelError::Unsupported("a multiboot kernel boots under PVH, not PV".into()));
    }
    let segment = multiboot::kludge_segment(&mb, k, image.size())?;
    let plan = elf::Plan {
        entry: EntryPoint::Multiboot1 { entry32: k.entry_addr },
        segments: vec![segment],
        description: "multiboot (a.out kludge)".into(),
    };
    plan.check(limits)?;
    for s in &plan.segments {
        read_into(image, s.offset, mem, s.dest, s.filesz)?;
        zero(mem, s.dest + s.filesz, s.memsz - s.filesz)?;
    }
    Ok(plan.loaded())
}

/// Reads a whole image into a heap buffer of at most `limits.max_bytes`.
fn read_whole(image: &mut dyn Image, limits: &Limits, what: &'static str) -> Result<Vec<u8>, KernelError> {
    let size = image.size();
    if size > limits.max_bytes {
        return Err(KernelError::TooLarge { what, size, max: limits.max_bytes });
    }
    let len = usize::try_from(size).map_err(|_| KernelError::TooLarge { what, size, max: limits.max_bytes })?;
    let mut bytes = vec![0u8; len];
    image.read_at(0, &mut bytes)?;
    Ok(bytes)
}

/// A byte range of another image (a bzImage's payload), read in place.
pub struct SubImage<'a> {
    inner: &'a mut dyn Image,
    range: Range<u64>,
}

impl<'a> SubImage<'a> {
    /// The bytes `range` of `inner` (clamped to its size).
    pub fn new(inner: &'a mut dyn Image, range: Range<u64>) -> Self {
        let end = range.end.min(inner.size());
        SubImage { inner, range: range.start.min(end)..end }
    }
}

impl Image for SubImage<'_> {
    fn size(&self) -> u64 {
        self.range.end - self.range.start
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), KernelError> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.size()) {
            return Err(past_end(offset, buf.len(), self.size()));
        }
        self.inner.read_at(self.range.start + offset, buf)
    }
}

/// "starts with 4d 5a 90 00" for an unknown image.
fn describe_magic(head: &[u8]) -> String {
    if head.is_empty() {
        return "the file is empty".to_string();
    }
    let bytes: Vec<String> = head.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("starts with {} (not ELF, a bzImage, multiboot or a known compression)", bytes.join(" "))
}

/// Writes zeros over `[paddr, paddr + len)`, a bounded chunk at a time so an
/// implementation of [`Memory`] never has to produce a huge slice.
pub(crate) fn zero(mem: &mut dyn Memory, paddr: u64, len: u64) -> Result<(), KernelError> {
    const CHUNK: u64 = 1 << 20;
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK) as usize;
        mem.slice_mut(paddr + done, n)?.fill(0);
        done += n as u64;
    }
    Ok(())
}

/// Reads `len` image bytes at `offset` straight into memory at `paddr`,
/// a bounded chunk at a time (one read per chunk; large chunks keep disk
/// requests large).
pub(crate) fn read_into(
    image: &mut dyn Image,
    offset: u64,
    mem: &mut dyn Memory,
    paddr: u64,
    len: u64,
) -> Result<(), KernelError> {
    const CHUNK: u64 = 16 << 20;
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK) as usize;
        image.read_at(offset + done, mem.slice_mut(paddr + done, n)?)?;
        done += n as u64;
    }
    Ok(())
}

/// A boxed image over owned bytes (for images decompressed or read whole).
impl Image for Box<[u8]> {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), KernelError> {
        (&self[..]).read_at(offset, buf)
    }
}
