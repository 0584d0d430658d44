//! Compressed ELF kernels, decompressed straight into place.
//!
//! A compressed kernel (a whole file in gzip, xz, ..., or a bzImage's
//! payload) is read into one heap buffer and decompressed once. The
//! decompressed ELF passes through an [`ElfRouter`]: the headers go to a
//! small buffer, and every later byte goes, by its file offset, to its
//! segment's final guest-physical address (or nowhere), so no kernel byte is
//! copied twice. When every PT_LOAD has the same `paddr - offset` and the
//! whole decompressed file fits at that base within the limits, the file is
//! decompressed in one call into that contiguous destination instead
//! ([`Decompressor::decompress_into`]: no dictionary allocation, the output
//! is its own window).
//!
//! The decompressors are pvboot::compress's, behind [`Decompressor`] so
//! tests can feed the router their own streams (`decompress` to a [`Sink`]
//! in order, `decompress_into` a slice).
//!
//! PV kernels need their notes before any segment can be placed (the
//! destination is `p_paddr - ELF_PADDR_OFFSET`), and Linux keeps its notes
//! inside its text: for PV, a first pass decompresses only up to the end of
//! the last note segment. ELF files whose Xen notes are only in sections
//! (section headers come last) are decompressed into a heap buffer and
//! loaded from there.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::elf::{self, Header, Placed, ProgramHeader, XenNotes, MAX_NOTE_BYTES};
use super::{multiboot, zero, BootMode, EntryPoint, KernelError, Limits, Loaded, Memory};

pub use crate::compress::Sink;
use crate::compress::{self, Compression, DecompressError};

/// Why a [`Decompressor`] stopped: the sink's error, or a one-line reason.
#[derive(Debug)]
pub enum DecodeError<E> {
    /// The sink refused the output (or asked to stop).
    Sink(E),
    /// The data is corrupt, truncated, too large or unsupported.
    Failed(String),
}

/// A decompressor for one format: [`Compression`] (pvboot::compress), or
/// a test's own.
pub trait Decompressor {
    /// Its name for messages: "gzip".
    fn name(&self) -> &'static str;
    /// Decodes all of `input` to `sink` in order; at most `max_out` bytes.
    fn decompress<S: Sink>(&self, input: &[u8], sink: &mut S, max_out: u64) -> Result<u64, DecodeError<S::Error>>;
    /// Decodes all of `input` into `out`, which is also the decoder's window; returns the length.
    fn decompress_into(&self, input: &[u8], out: &mut [u8]) -> Result<usize, String>;
}

/// The one line a decoder's own failure reads as ("corrupt gzip data: bad block type").
fn failure<E>(e: DecompressError<E>) -> DecodeError<E> {
    let line = match e {
        DecompressError::Sink(e) => return DecodeError::Sink(e),
        DecompressError::Corrupt { format, what } => format!("corrupt {format} data: {what}"),
        DecompressError::TooLarge { limit } => format!("decompressed data larger than the limit of {limit} bytes"),
        DecompressError::Truncated { format } => format!("truncated {format} data"),
        DecompressError::Unsupported { format, what } => format!("unsupported {format} data: {what}"),
    };
    DecodeError::Failed(line)
}

impl Decompressor for Compression {
    fn name(&self) -> &'static str {
        Compression::name(*self)
    }

    fn decompress<S: Sink>(&self, input: &[u8], sink: &mut S, max_out: u64) -> Result<u64, DecodeError<S::Error>> {
        compress::decompress(*self, input, sink, max_out).map_err(failure)
    }

    fn decompress_into(&self, input: &[u8], out: &mut [u8]) -> Result<usize, String> {
        compress::decompress_into(*self, input, out).map_err(|e| match failure(e) {
            DecodeError::Failed(line) => line,
            DecodeError::Sink(never) => match never {},
        })
    }
}

/// The "compression" of data stored as is: the identity, for tests and for
/// kernels whose payload is not compressed.
#[derive(Clone, Copy, Debug)]
pub struct Stored;

impl Decompressor for Stored {
    fn name(&self) -> &'static str {
        "uncompressed"
    }

    fn decompress<S: Sink>(&self, input: &[u8], sink: &mut S, max_out: u64) -> Result<u64, DecodeError<S::Error>> {
        if input.len() as u64 > max_out {
            return Err(DecodeError::Failed(format!("{} bytes exceed the limit of {max_out}", input.len())));
        }
        // Odd-sized chunks, as real decoders produce.
        for chunk in input.chunks(4093) {
            sink.write(chunk).map_err(DecodeError::Sink)?;
        }
        Ok(input.len() as u64)
    }

    fn decompress_into(&self, input: &[u8], out: &mut [u8]) -> Result<usize, String> {
        let capacity = out.len();
        let dest =
            out.get_mut(..input.len()).ok_or_else(|| format!("{} bytes do not fit in {capacity}", input.len()))?;
        dest.copy_from_slice(input);
        Ok(input.len())
    }
}

/// Most bytes of a decompressed stream held before its program headers are
/// complete; an ELF whose program header table ends later cannot be streamed.
pub const HEADER_CAP: usize = 64 * 1024;
/// Bytes at the start of the stream always kept (the multiboot header search area).
const HEAD_KEEP: usize = 8192;
/// Most note bytes captured from a stream in all.
const MAX_STREAM_NOTE_BYTES: usize = 256 * 1024;

/// Why the router stopped taking data.
#[derive(Debug)]
pub enum RouteStop {
    /// The notes pass has seen every note byte; the rest is not needed.
    NotesComplete,
    /// The stream cannot be loaded.
    Failed(KernelError),
}

/// A note segment being captured from the stream.
struct NoteCapture {
    offset: u64,
    len: u64,
    align: u64,
    bytes: Vec<u8>,
}

/// What the router knows once the program headers have passed.
struct Routes {
    header: Header,
    phdrs: Vec<ProgramHeader>,
    /// Segments with file bytes, in file order.
    by_offset: Vec<Placed>,
    /// All non-empty segments, in address order.
    segments: Vec<Placed>,
    next: usize,
    notes: Vec<NoteCapture>,
    notes_end: u64,
}

/// Routes a decompressed ELF stream: headers to a small buffer, segment
/// bytes to their final addresses in [`Memory`], note bytes to small
/// buffers, everything else nowhere. See the module docs.
pub struct ElfRouter<'a> {
    /// None for the notes-only pass.
    mem: Option<&'a mut dyn Memory>,
    limits: &'a Limits,
    mode: BootMode,
    /// The notes (from the notes pass), which fix PV destinations.
    notes: Option<XenNotes>,
    pos: u64,
    head: Vec<u8>,
    routes: Option<Routes>,
}

impl<'a> ElfRouter<'a> {
    /// A router loading into `mem`. For [`BootMode::Pv`], `notes` must be
    /// the notes a [`ElfRouter::notes_only`] pass found.
    pub fn new(mem: &'a mut dyn Memory, limits: &'a Limits, mode: BootMode, notes: Option<XenNotes>) -> Self {
        ElfRouter { mem: Some(mem), limits, mode, notes, pos: 0, head: Vec::new(), routes: None }
    }

    /// A router that only collects the notes, and stops the stream
    /// ([`RouteStop::NotesComplete`]) once they have passed.
    pub fn notes_only(limits: &'a Limits) -> Self {
        ElfRouter { mem: None, limits, mode: BootMode::Pvh, notes: None, pos: 0, head: Vec::new(), routes: None }
    }

    /// Bytes seen so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The first bytes of the stream (up to 8 KiB, or to the end of the program headers).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// How many head bytes to hold before the headers can be parsed.
    fn head_target(&self) -> Result<usize, KernelError> {
        if self.head.len() < 64 {
            return Ok(HEAD_KEEP);
        }
        let header = elf::parse_header(&self.head)?;
        let end = header.phdr_range().end;
        if end > HEADER_CAP as u64 {
            return Err(KernelError::Unsupported(format!(
                "the program headers end at {end:#x}, after the first {HEADER_CAP:#x} bytes: \
                 pvboot cannot stream a compressed ELF whose program headers come after its data"
            )));
        }
        Ok(HEAD_KEEP.max(end as usize))
    }

    /// Parses the headers in `head` and decides every route.
    fn set_up(&mut self) -> Result<(), KernelError> {
        let header = elf::parse_header(&self.head)?;
        let r = header.phdr_range();
        let table = self.head.get(r.start as usize..r.end as usize).ok_or_else(|| {
            KernelError::Malformed(format!(
                "program headers at [{:#x}, {:#x}) extend past the end of the {:#x}-byte stream",
                r.start,
                r.end,
                self.head.len()
            ))
        })?;
        let phdrs = elf::decode_program_headers(&header, table);
        elf::check_loads(&phdrs, u64::MAX)?;
        let mut notes = Vec::new();
        let mut note_bytes = 0usize;
        for ph in phdrs.iter().filter(|p| p.p_type == 4) {
            if ph.filesz > MAX_NOTE_BYTES || ph.offset.checked_add(ph.filesz).is_none() {
                return Err(KernelError::Malformed(format!(
                    "note segment {} is {:#x} bytes (pvboot reads at most {MAX_NOTE_BYTES:#x})",
                    ph.index, ph.filesz
                )));
            }
            note_bytes += ph.filesz as usize;
            if note_bytes > MAX_STREAM_NOTE_BYTES {
                return Err(KernelError::Malformed(format!(
                    "the note segments hold more than {MAX_STREAM_NOTE_BYTES:#x} bytes"
                )));
            }
            notes.push(NoteCapture {
                offset: ph.offset,
                len: ph.filesz,
                align: ph.align,
                bytes: Vec::with_capacity(ph.filesz as usize),
            });
        }
        let notes_end = notes.iter().map(|n| n.offset + n.len).max().unwrap_or(0);
        let (segments, by_offset) = if self.mem.is_some() {
            let shift = match (self.mode, &self.notes) {
                (BootMode::Pvh, _) => 0,
                (BootMode::Pv, Some(notes)) => elf::entry_for(&header, &phdrs, notes, &Ok(None), self.mode)?.1,
                (BootMode::Pv, None) => {
                    return Err(KernelError::Unsupported("a PV kernel is streamed after a notes pass".into()))
                }
            };
            let segments = elf::place_segments(&phdrs, shift)?;
            let plan = elf::Plan { entry: EntryPoint::Pvh { entry32: 0 }, segments, description: String::new() };
            plan.check(self.limits)?;
            let mut by_offset: Vec<Placed> = plan.segments.iter().filter(|s| s.filesz > 0).cloned().collect();
            by_offset.sort_by_key(|s| s.offset);
            for pair in by_offset.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                if b.offset < a.offset + a.filesz {
                    return Err(KernelError::Unsupported(format!(
                        "segments {} and {} share file bytes at [{:#x}, {:#x}): pvboot cannot stream such an ELF",
                        a.index,
                        b.index,
                        b.offset,
                        (a.offset + a.filesz).min(b.offset + b.filesz)
                    )));
                }
            }
            (plan.segments, by_offset)
        } else {
            (Vec::new(), Vec::new())
        };
        self.routes = Some(Routes { header, phdrs, by_offset, segments, next: 0, notes, notes_end });
        Ok(())
    }

    /// Sends `data`, the stream bytes at `self.pos`, where they belong.
    fn route(&mut self, data: &[u8]) -> Result<(), RouteStop> {
        let Some(routes) = self.routes.as_mut() else { return Ok(()) };
        let (start, end) = (self.pos, self.pos + data.len() as u64);
        for n in &mut routes.notes {
            let (a, b) = (start.max(n.offset), end.min(n.offset + n.len));
            if a < b {
                n.bytes.extend_from_slice(&data[(a - start) as usize..(b - start) as usize]);
            }
        }
        if let Some(mem) = self.mem.as_deref_mut() {
            while let Some(s) = routes.by_offset.get(routes.next) {
                let s_end = s.offset + s.filesz;
                if s_end <= start {
                    routes.next += 1;
                    continue;
                }
                if s.offset >= end {
                    break;
                }
                let (a, b) = (start.max(s.offset), end.min(s_end));
                let dest = mem.slice_mut(s.dest + (a - s.offset), (b - a) as usize).map_err(RouteStop::Failed)?;
                dest.copy_from_slice(&data[(a - start) as usize..(b - start) as usize]);
                if b < s_end {
                    break;
                }
                routes.next += 1;
            }
        }
        self.pos = end;
        if self.mem.is_none() && end >= routes.notes_end {
            return Err(RouteStop::NotesComplete);
        }
        Ok(())
    }

    /// Takes the next bytes of the stream.
    fn take(&mut self, mut data: &[u8]) -> Result<(), RouteStop> {
        if self.routes.is_none() {
            loop {
                let target = self.head_target().map_err(RouteStop::Failed)?;
                if self.head.len() >= target {
                    break;
                }
                if data.is_empty() {
                    return Ok(());
                }
                let n = (target - self.head.len()).min(data.len());
                self.head.extend_from_slice(&data[..n]);
                data = &data[n..];
            }
            self.flush_head()?;
        }
        self.route(data)
    }

    /// With the headers complete: decides the routes and routes the held bytes.
    fn flush_head(&mut self) -> Result<(), RouteStop> {
        self.set_up().map_err(RouteStop::Failed)?;
        let head = core::mem::take(&mut self.head);
        self.pos = 0;
        let r = self.route(&head);
        self.head = head;
        r
    }

    /// The notes found in the stream's note segments, once they have passed.
    pub fn notes(&self) -> XenNotes {
        let mut notes = XenNotes::default();
        let mut found = 0;
        for n in self.routes.iter().flat_map(|r| &r.notes) {
            found += elf::parse_notes(&n.bytes, n.align, &mut notes);
        }
        if found > 0 {
            notes.source = elf::NoteSource::Segments;
        }
        notes
    }

    /// Ends the stream: checks it held every segment, zeroes each bss, reads
    /// the notes and says how to enter the kernel. Returns `Ok(None)` when the
    /// Xen notes are not in note segments (the caller loads the whole file).
    pub fn finish(mut self) -> Result<Option<Loaded>, KernelError> {
        if self.routes.is_none() {
            // A stream shorter than the head buffer.
            match self.flush_head() {
                Ok(()) | Err(RouteStop::NotesComplete) => {}
                Err(RouteStop::Failed(e)) => return Err(e),
            }
        }
        let notes = self.notes();
        let (Some(routes), Some(mem)) = (self.routes.as_ref(), self.mem.as_deref_mut()) else {
            return Err(KernelError::Unsupported("finish() on a notes-only router".into()));
        };
        for s in &routes.by_offset {
            if s.offset + s.filesz > self.pos {
                return Err(KernelError::Malformed(format!(
                    "the decompressed ELF ends at {:#x}, inside segment {} at [{:#x}, {:#x})",
                    self.pos,
                    s.index,
                    s.offset,
                    s.offset + s.filesz
                )));
            }
        }
        let notes = match self.mode {
            BootMode::Pvh => notes,
            BootMode::Pv => self.notes.clone().unwrap_or(notes),
        };
        if notes.source == elf::NoteSource::None && routes.header.shnum > 0 {
            return Ok(None);
        }
        let multiboot = multiboot::find(&self.head);
        let (entry, _, description) = elf::entry_for(&routes.header, &routes.phdrs, &notes, &multiboot, self.mode)?;
        elf::check_entry(&entry, &routes.segments)?;
        for s in &routes.segments {
            zero(mem, s.dest + s.filesz, s.memsz - s.filesz)?;
        }
        Ok(Some(Loaded { entry, ranges: routes.segments.iter().map(Placed::range).collect(), description }))
    }
}

impl Sink for ElfRouter<'_> {
    type Error = RouteStop;

    fn write(&mut self, data: &[u8]) -> Result<(), RouteStop> {
        self.take(data)
    }
}

/// Collects the first bytes of a stream and stops it.
struct Prefix {
    bytes: Vec<u8>,
    cap: usize,
}

impl Sink for Prefix {
    type Error = ();

    fn write(&mut self, data: &[u8]) -> Result<(), ()> {
        let n = (self.cap - self.bytes.len()).min(data.len());
        self.bytes.extend_from_slice(&data[..n]);
        if self.bytes.len() == self.cap {
            Err(())
        } else {
            Ok(())
        }
    }
}

/// A decoder's failure: its line names the format and what was wrong.
fn decode_failed(_: &impl Decompressor, e: String) -> KernelError {
    KernelError::Malformed(e)
}

/// Loads a compressed ELF kernel held in `input`. `size_hint` is the
/// decompressed size when the container says it (a bzImage's or gzip's
/// trailer); it enables the contiguous fast path.
pub fn load_compressed<D: Decompressor>(
    d: &D,
    input: &[u8],
    mem: &mut dyn Memory,
    limits: &Limits,
    mode: BootMode,
    size_hint: Option<u64>,
) -> Result<Loaded, KernelError> {
    // The hint is the size Linux places the kernel by (a bzImage's appended size, gzip's ISIZE),
    // and the fast path already holds the output to it; bounding every pass by it also lets a
    // decoder size its buffers to it (zstd's window: Linux's zstd -22 kernels declare 128 MiB).
    let max_out = size_hint.map_or(limits.max_bytes, |s| s.min(limits.max_bytes));
    // The headers, from a short prefix of the output.
    let mut prefix = Prefix { bytes: Vec::new(), cap: HEADER_CAP };
    match d.decompress(input, &mut prefix, max_out) {
        Ok(_) | Err(DecodeError::Sink(())) => {}
        Err(DecodeError::Failed(e)) => return Err(decode_failed(d, e)),
    }
    if !prefix.bytes.starts_with(elf::MAGIC) {
        if matches!(multiboot::find(&prefix.bytes), Ok(Some(_))) {
            return load_whole(d, input, mem, limits, mode, max_out);
        }
        let what = super::describe_magic(&prefix.bytes);
        return Err(KernelError::UnknownFormat(format!("decompressed {} data {what}", d.name())));
    }
    // PV: the notes first.
    let notes = match mode {
        BootMode::Pvh => None,
        BootMode::Pv => {
            let mut pass = ElfRouter::notes_only(limits);
            match d.decompress(input, &mut pass, max_out) {
                Ok(_) | Err(DecodeError::Sink(RouteStop::NotesComplete)) => {}
                Err(DecodeError::Sink(RouteStop::Failed(e))) => return Err(e),
                Err(DecodeError::Failed(e)) => return Err(decode_failed(d, e)),
            }
            let notes = pass.notes();
            if notes.source == elf::NoteSource::None {
                // Perhaps in sections or __xen_guest, which come last: load from a whole copy.
                return load_whole(d, input, mem, limits, mode, max_out);
            }
            Some(notes)
        }
    };
    if let Some(size) = size_hint {
        if let Some(loaded) = contiguous(d, input, mem, limits, mode, notes.as_ref(), &prefix.bytes, size)? {
            return Ok(loaded);
        }
    }
    let mut router = ElfRouter::new(mem, limits, mode, notes);
    match d.decompress(input, &mut router, max_out) {
        Ok(_) => {}
        Err(DecodeError::Sink(RouteStop::Failed(e))) => return Err(e),
        Err(DecodeError::Sink(RouteStop::NotesComplete)) => unreachable_stop()?,
        Err(DecodeError::Failed(e)) => return Err(decode_failed(d, e)),
    }
    match router.finish()? {
        Some(loaded) => Ok(loaded),
        None => load_whole(d, input, mem, limits, mode, max_out),
    }
}

/// Decompresses the whole file into a heap buffer and loads it from there:
/// for ELF files whose Xen notes are only in sections, read last. At most `max_out` bytes.
fn load_whole<D: Decompressor>(
    d: &D,
    input: &[u8],
    mem: &mut dyn Memory,
    limits: &Limits,
    mode: BootMode,
    max_out: u64,
) -> Result<Loaded, KernelError> {
    struct Whole(Vec<u8>);
    impl Sink for Whole {
        type Error = core::convert::Infallible;
        fn write(&mut self, data: &[u8]) -> Result<(), Self::Error> {
            self.0.extend_from_slice(data);
            Ok(())
        }
    }
    let mut whole = Whole(Vec::new());
    d.decompress(input, &mut whole, max_out).map_err(|e| match e {
        DecodeError::Failed(e) => decode_failed(d, e),
        DecodeError::Sink(never) => match never {},
    })?;
    super::load_uncompressed(&mut &whole.0[..], mem, limits, mode)
}

/// A loading router never asks to stop early.
fn unreachable_stop() -> Result<(), KernelError> {
    Err(KernelError::Unsupported("internal: the loading pass stopped early".into()))
}

/// The fast path: every PT_LOAD at the same `paddr - offset` and the whole
/// decompressed file (`size` bytes) fitting at that base within the limits.
/// Returns `Ok(None)` when the path does not apply.
#[allow(clippy::too_many_arguments)]
fn contiguous<D: Decompressor>(
    d: &D,
    input: &[u8],
    mem: &mut dyn Memory,
    limits: &Limits,
    mode: BootMode,
    notes: Option<&XenNotes>,
    head: &[u8],
    size: u64,
) -> Result<Option<Loaded>, KernelError> {
    let Ok(header) = elf::parse_header(head) else { return Ok(None) };
    let r = header.phdr_range();
    let Some(table) = head.get(r.start as usize..r.end as usize) else { return Ok(None) };
    let phdrs = elf::decode_program_headers(&header, table);
    elf::check_loads(&phdrs, size)?;
    let shift = match (mode, notes) {
        (BootMode::Pv, Some(n)) => elf::entry_for(&header, &phdrs, n, &Ok(None), mode)?.1,
        _ => 0,
    };
    let segments = elf::place_segments(&phdrs, shift)?;
    let mut bases = segments.iter().filter(|s| s.filesz > 0).map(|s| s.dest.wrapping_sub(s.offset));
    let Some(base) = bases.next() else { return Ok(None) };
    if bases.any(|b| b != base) || base.checked_add(size).is_none() || size > limits.max_bytes {
        return Ok(None);
    }
    let whole = base..base + size;
    if limits.check("decompressed kernel", &whole).is_err() {
        return Ok(None);
    }
    let plan = elf::Plan { entry: EntryPoint::Pvh { entry32: 0 }, segments, description: String::new() };
    plan.check(limits)?;
    let out = mem.slice_mut(base, size as usize)?;
    let n = d.decompress_into(input, out).map_err(|e| decode_failed(d, e))? as u64;
    let end = plan.segments.iter().map(|s| s.offset + s.filesz).max().unwrap_or(0);
    if n < end {
        return Err(KernelError::Malformed(format!(
            "the decompressed ELF ends at {n:#x}, before its segments do ({end:#x})"
        )));
    }
    // The notes, from where the file put them in memory.
    let notes = match notes {
        Some(n) => n.clone(),
        None => {
            let mut notes = XenNotes::default();
            let mut found = 0;
            for ph in phdrs.iter().filter(|p| p.p_type == 4) {
                if ph.filesz > MAX_NOTE_BYTES || ph.offset.saturating_add(ph.filesz) > n {
                    continue;
                }
                let mut block = vec![0u8; ph.filesz as usize];
                block.copy_from_slice(mem.slice_mut(base + ph.offset, ph.filesz as usize)?);
                found += elf::parse_notes(&block, ph.align, &mut notes);
            }
            if found == 0 {
                // Notes only in sections: the whole file is in memory; load from a copy.
                let mut whole = vec![0u8; n as usize];
                whole.copy_from_slice(mem.slice_mut(base, n as usize)?);
                return elf::load(&mut &whole[..], mem, limits, mode).map(Some);
            }
            notes.source = elf::NoteSource::Segments;
            notes
        }
    };
    let (entry, _, description) = elf::entry_for(&header, &phdrs, &notes, &multiboot::find(head), mode)?;
    elf::check_entry(&entry, &plan.segments)?;
    // Bytes between and after the segments held other parts of the file: zero every bss.
    for s in &plan.segments {
        zero(mem, s.dest + s.filesz, s.memsz - s.filesz)?;
    }
    Ok(Some(Loaded { entry, ranges: plan.ranges(), description }))
}
