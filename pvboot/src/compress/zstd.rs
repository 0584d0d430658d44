//! Zstandard (RFC 8878): frames, decoded by ruzstd's `FrameDecoder` a bounded number of bytes at a
//! time, their XXH64-based content checksum verified when present. Frames follow one another;
//! skippable frames are skipped; anything else after a frame ends the data, as Linux's
//! `decompress_unzstd.c` stops after its frame (and its build appends the 4-byte size).
//!
//! ruzstd keeps the frame's window (its last `window` bytes of output) in its own buffer, and
//! reserves all of it when a frame starts, whatever the output's size: memory is the declared
//! window plus a few blocks of 128 KiB. A match never reaches further back than the frame's own
//! output, so a frame needs no more window than its content: when the frame declares its content
//! size (Frame_Content_Size), or the caller's limit bounds the output (a kernel payload's known
//! size, the buffer of [`into`]), ruzstd is shown the frame header with a Window_Descriptor
//! lowered to that size (never below 128 KiB, the largest block, since Block_Maximum_Size follows
//! the window). `zstd --ultra -22` on a pipe, as Linux compresses x86 kernels, declares 128 MiB
//! and no content size; the bzImage's appended size bounds it. A Single_Segment frame (its window
//! is its content size) with more content than the caller takes is refused before ruzstd reserves
//! anything. Frames whose window is still over
//! [`WINDOW_CAP`] (half of pvboot's heap, which also holds the compressed input) are refused
//! with that reason rather than left to fail the allocation; each frame gets a fresh decoder, so
//! two windows are never held.

use alloc::format;
use alloc::vec;
use core::convert::Infallible;

use ruzstd::decoding::errors::FrameDecoderError;
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use ruzstd::io::Read;

use super::{le32, Compression, DecompressError, Output, Sink};

const FORMAT: Compression = Compression::Zstd;
/// The largest window ruzstd may reserve for a frame: half of pvboot's heap (32 MiB). It applies
/// to the window after lowering to the content size or output limit, so `zstd --ultra -22` on a
/// pipe (Linux's `cmd_zstd22`, 128 MiB declared) decodes when its output is known to be smaller.
pub const WINDOW_CAP: u64 = crate::HEAP_MAX / 2;
/// How much output each decoding step aims at before it is handed on.
const CHUNK: usize = 256 * 1024;
/// The largest block (RFC 8878 3.1.1.2.4); Block_Maximum_Size is the smaller of it and the
/// window, so a lowered window stays at least this large for blocks sized to the declared one.
const MAX_BLOCK: u64 = 128 * 1024;
/// A frame's magic number, little-endian.
const MAGIC: u32 = 0xfd2f_b528;

/// The Window_Size a Window_Descriptor byte stands for (RFC 8878 3.1.1.1.2).
fn window_size(descriptor: u8) -> u64 {
    let base = 1u64 << (10 + (descriptor >> 3));
    base + base / 8 * u64::from(descriptor & 7)
}

/// What a frame header says about the memory its frame needs.
struct Header {
    /// Window_Descriptor, absent in Single_Segment frames (their window is their content size).
    descriptor: Option<u8>,
    /// Frame_Content_Size, when the header gives it.
    content: Option<u64>,
}

/// Reads the header of the frame starting `frame` (magic already checked); `None` when it is too
/// short to read (ruzstd reports that).
fn header(frame: &[u8]) -> Option<Header> {
    let fhd = *frame.get(4)?;
    let single = fhd & 0x20 != 0;
    let descriptor = if single { None } else { Some(*frame.get(5)?) };
    // Dictionary_ID then Frame_Content_Size follow; an FCS flag of 0 means a 1-byte field in a
    // Single_Segment frame and none otherwise.
    let dict_len = [0usize, 1, 2, 4][usize::from(fhd & 3)];
    let fcs_len = match fhd >> 6 {
        0 if single => 1,
        flag => [0usize, 2, 4, 8][usize::from(flag)],
    };
    let at = 5 + usize::from(!single) + dict_len;
    let content = match frame.get(at..at + fcs_len) {
        Some(field) if fcs_len > 0 => {
            let mut v = [0u8; 8];
            v[..fcs_len].copy_from_slice(field);
            // A 2-byte field is stored minus 256.
            Some(u64::from_le_bytes(v) + if fcs_len == 2 { 256 } else { 0 })
        }
        Some(_) => None,
        None => return None,
    };
    Some(Header { descriptor, content })
}

/// The Window_Descriptor to show ruzstd for a frame with header `h`, when the declared one is
/// larger than the frame can use: at most `room` bytes may come out (the caller's limit), and no
/// more than Frame_Content_Size when the header gives it. `None` leaves the header as it is:
/// Single_Segment frames, and windows no larger than needed.
fn lowered_window(h: &Header, room: u64) -> Option<u8> {
    let declared = window_size(h.descriptor?);
    let need = h.content.map_or(room, |c| c.min(room)).max(MAX_BLOCK);
    if declared <= need {
        return None;
    }
    // Descriptor values order window sizes (exponent, then mantissa): take the first that fits.
    (0..=u8::MAX).find(|&d| window_size(d) >= need).filter(|&d| window_size(d) < declared)
}

/// The frame as ruzstd reads it: `head` (the frame's first six bytes, its Window_Descriptor
/// perhaps lowered) and then the rest of the input.
struct Patched<'a> {
    head: [u8; 6],
    /// How much of `head` was read.
    taken: usize,
    rest: &'a [u8],
}

impl Read for Patched<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ruzstd::io::Error> {
        if self.taken < self.head.len() {
            let n = buf.len().min(self.head.len() - self.taken);
            buf[..n].copy_from_slice(&self.head[self.taken..self.taken + n]);
            self.taken += n;
            return Ok(n);
        }
        self.rest.read(buf)
    }
}

/// A reader for the frame at the start of `frame` whose window is no larger than `room` bytes
/// of output (or its content size) need.
fn patched(frame: &[u8], room: u64) -> Patched<'_> {
    let lowered = header(frame).and_then(|h| lowered_window(&h, room));
    match (lowered, frame.get(..6)) {
        (Some(descriptor), Some(first)) => {
            let mut head = [0u8; 6];
            head.copy_from_slice(first);
            head[5] = descriptor;
            Patched { head, taken: 0, rest: &frame[6..] }
        }
        _ => Patched { head: [0; 6], taken: 6, rest: frame },
    }
}

fn error<E>(e: FrameDecoderError) -> DecompressError<E> {
    // ruzstd reports running out of input as an I/O end-of-file deep inside its error chain.
    if format!("{e:?}").contains("Eof") {
        return DecompressError::Truncated { format: FORMAT };
    }
    let what = match e {
        FrameDecoderError::WindowSizeTooBig { .. } => {
            return DecompressError::Unsupported { format: FORMAT, what: "window larger than 32 MiB (half of pvboot's heap)" }
        }
        FrameDecoderError::DictNotProvided { .. } => {
            return DecompressError::Unsupported { format: FORMAT, what: "frame needs a dictionary" }
        }
        FrameDecoderError::ReadFrameHeaderError(_)
        | FrameDecoderError::FrameHeaderError(_)
        | FrameDecoderError::FailedToInitialize(_) => "invalid frame header",
        FrameDecoderError::FailedToReadBlockHeader(_) => "invalid block header",
        FrameDecoderError::FailedToReadBlockBody(_) => "invalid block data",
        FrameDecoderError::FailedToReadChecksum(_) => "unreadable checksum",
        _ => "invalid data",
    };
    DecompressError::Corrupt { format: FORMAT, what }
}

/// Skippable frames' magics: 0x184D2A50 to 0x184D2A5F, little-endian.
fn is_skippable(magic: u32) -> bool {
    magic & 0xffff_fff0 == 0x184d_2a50
}

/// Where the next frame starts at or after `at`, skipping skippable frames; `None` when the data
/// ends there (the input ends, or bytes that are no frame follow).
fn next_frame<E>(input: &[u8], mut at: usize) -> Result<Option<usize>, DecompressError<E>> {
    loop {
        match le32(input, at) {
            Some(MAGIC) => return Ok(Some(at)),
            Some(m) if is_skippable(m) => {
                let len = le32(input, at + 4).ok_or(DecompressError::Truncated { format: FORMAT })?;
                at = at
                    .checked_add(8 + len as usize)
                    .filter(|&end| end <= input.len())
                    .ok_or(DecompressError::Truncated { format: FORMAT })?;
            }
            _ => return Ok(None),
        }
    }
}

/// Decodes every frame of `input`, handing each piece of output to `put` in order; `limit` is the
/// most output `put` takes in all (it refuses more), which bounds each frame's window.
fn frames<E>(
    input: &[u8],
    limit: u64,
    mut put: impl FnMut(&[u8]) -> Result<(), DecompressError<E>>,
) -> Result<(), DecompressError<E>> {
    let mut chunk = vec![0u8; CHUNK];
    let Some(mut pos) = next_frame(input, 0)? else {
        return Err(if input.len() < 4 {
            DecompressError::Truncated { format: FORMAT }
        } else {
            DecompressError::Corrupt { format: FORMAT, what: "bad magic" }
        });
    };
    let mut total = 0u64;
    loop {
        let room = limit.saturating_sub(total);
        // A Single_Segment frame's window is its whole content: one larger than the caller takes
        // is refused before ruzstd reserves it (its output would pass the limit, or its size
        // would not match).
        if let Some(Header { descriptor: None, content: Some(content) }) = header(&input[pos..]) {
            if content > room {
                return Err(DecompressError::TooLarge { limit });
            }
        }
        let mut src = patched(&input[pos..], room);
        let mut dec = FrameDecoder::new();
        dec.set_max_window_size(WINDOW_CAP);
        dec.reset(&mut src).map_err(error)?;
        let mut produced = 0u64;
        loop {
            let finished = dec.decode_blocks(&mut src, BlockDecodingStrategy::UptoBytes(CHUNK)).map_err(error)?;
            loop {
                let n = dec.read(&mut chunk).map_err(|_| DecompressError::Corrupt { format: FORMAT, what: "invalid data" })?;
                if n == 0 {
                    break;
                }
                produced += n as u64;
                total += n as u64;
                put(&chunk[..n])?;
            }
            if finished {
                break;
            }
        }
        if let Some(want) = dec.get_checksum_from_data() {
            if dec.get_calculated_checksum() != Some(want) {
                return Err(DecompressError::Corrupt { format: FORMAT, what: "content checksum mismatch" });
            }
        }
        let declared = dec.content_size();
        if declared != 0 && declared != produced {
            return Err(DecompressError::Corrupt { format: FORMAT, what: "content size mismatch" });
        }
        pos = input.len() - src.rest.len();
        match next_frame(input, pos)? {
            Some(next) => pos = next,
            None => return Ok(()),
        }
    }
}

/// Streams every frame's output to `out`.
pub(super) fn stream<S: Sink>(input: &[u8], out: &mut Output<'_, S>) -> Result<(), DecompressError<S::Error>> {
    let room = out.limit.saturating_sub(out.written);
    frames(input, room, |data| out.put(data))
}

/// Decodes every frame into `out`.
pub(super) fn into(input: &[u8], out: &mut [u8]) -> Result<usize, DecompressError<Infallible>> {
    let limit = out.len() as u64;
    let mut done = 0;
    frames(input, limit, |data| {
        let dest = out.get_mut(done..done + data.len()).ok_or(DecompressError::TooLarge { limit })?;
        dest.copy_from_slice(data);
        done += data.len();
        Ok(())
    })?;
    Ok(done)
}
