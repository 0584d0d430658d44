//! The legacy `.lzma` ("LZMA alone") format, as `lzma -9` and Linux's `cmd_lzma` write it: a 13-byte
//! header (properties byte, u32 dictionary size, u64 uncompressed size or all ones for "unknown, ends
//! with an end marker"), then one LZMA stream, decoded by lzma-rust2's sans-I/O `LzmaStream`.
//! What follows the stream (Linux's 4-byte size) is ignored, as Linux's `decompress_unlzma.c` does.
//!
//! Also the driver every lzma-rust2 stream (this one and xz) runs under.

use alloc::vec;
use core::convert::Infallible;

use lzma_rust2::{Action, LzmaStream, Status, StreamResult};

use super::{Compression, DecompressError, Output, Sink};

const FORMAT: Compression = Compression::Lzma;

/// The largest dictionary (history window) a stream may declare, here and for xz: `xz -9`'s and
/// `lzma -9`'s 64 MiB. The window is allocated as the output grows, so it never holds more than
/// min(dictionary, output so far); streams declaring more are refused.
pub(super) const DICT_CAP: u32 = 64 << 20;
/// [`DICT_CAP`] plus the decoder's own tables, in KiB, as lzma-rust2 counts its memory.
pub(super) const MEM_LIMIT_KB: u32 = (DICT_CAP >> 10) + 1024;
/// The streaming decoders' output chunk.
const CHUNK: usize = 64 * 1024;

/// Maps an lzma-rust2 error to ours. `at_end` says whether all input had been handed over, which
/// tells a stream that ran out of input apart from a corrupt one.
pub(super) fn error<E>(format: Compression, e: lzma_rust2::Error, at_end: bool) -> DecompressError<E> {
    use lzma_rust2::Error as L;
    match e {
        L::Eof => DecompressError::Truncated { format },
        L::OutOfMemory(_) => DecompressError::Unsupported {
            format,
            what: "its dictionary (the decoder's window) does not fit in the memory left; the limit is 64 MiB",
        },
        L::Unsupported(what) => DecompressError::Unsupported { format, what },
        L::InvalidData(what) if at_end && what.contains("truncat") => DecompressError::Truncated { format },
        L::InvalidData(what) | L::InvalidInput(what) | L::Other(what) | L::WriteZero(what) => {
            DecompressError::Corrupt { format, what }
        }
        L::Interrupted => DecompressError::Corrupt { format, what: "interrupted" },
    }
}

/// Runs one stream (`process` is its `process` method) over `input` to its end, writing its
/// output to `out`; returns how many input bytes the stream took.
pub(super) fn stream_to<S: Sink>(
    format: Compression,
    input: &[u8],
    out: &mut Output<'_, S>,
    mut process: impl FnMut(&[u8], &mut [u8], Action) -> lzma_rust2::Result<StreamResult>,
) -> Result<usize, DecompressError<S::Error>> {
    let mut chunk = vec![0u8; CHUNK];
    let mut pos = 0;
    loop {
        let r = process(&input[pos..], &mut chunk, Action::Finish).map_err(|e| error(format, e, true))?;
        pos += r.bytes_consumed;
        out.put(&chunk[..r.bytes_produced])?;
        if r.status == Status::StreamEnd {
            return Ok(pos);
        }
        if r.bytes_consumed == 0 && r.bytes_produced == 0 {
            return Err(DecompressError::Truncated { format });
        }
    }
}

/// Runs one stream over `input` to its end, writing its output to the start of `out`; returns
/// (input bytes taken, output bytes written).
pub(super) fn stream_into(
    format: Compression,
    input: &[u8],
    out: &mut [u8],
    limit: u64,
    mut process: impl FnMut(&[u8], &mut [u8], Action) -> lzma_rust2::Result<StreamResult>,
) -> Result<(usize, usize), DecompressError<Infallible>> {
    let (mut pos, mut done) = (0, 0);
    loop {
        let room = &mut out[done..];
        let full = room.is_empty();
        // A full buffer still gets a one-byte probe: the stream may end here, or want more room.
        let mut probe = [0u8; 1];
        let dest = if full { &mut probe[..] } else { room };
        let r = process(&input[pos..], dest, Action::Finish).map_err(|e| error(format, e, true))?;
        pos += r.bytes_consumed;
        if full && r.bytes_produced > 0 {
            return Err(DecompressError::TooLarge { limit });
        }
        done += r.bytes_produced;
        if r.status == Status::StreamEnd {
            return Ok((pos, done));
        }
        if r.bytes_consumed == 0 && r.bytes_produced == 0 {
            return Err(DecompressError::Truncated { format });
        }
    }
}

/// The header's checks, ahead of the decoder: a sane properties byte.
fn check_header<E>(input: &[u8]) -> Result<(), DecompressError<E>> {
    let props = *input.first().ok_or(DecompressError::Truncated { format: FORMAT })?;
    // lc + lp + pb as one base-9/5 number (the LZMA SDK's encoding): at most 4 * 45 + 4 * 9 + 8.
    if props >= 9 * 5 * 5 {
        return Err(DecompressError::Corrupt { format: FORMAT, what: "invalid properties byte" });
    }
    Ok(())
}

fn decoder() -> LzmaStream {
    LzmaStream::new_mem_limit(MEM_LIMIT_KB, None)
}

/// Streams the `.lzma` file's output to `out`.
pub(super) fn stream<S: Sink>(input: &[u8], out: &mut Output<'_, S>) -> Result<(), DecompressError<S::Error>> {
    check_header(input)?;
    let mut dec = decoder();
    stream_to(FORMAT, input, out, |i, o, a| dec.process(i, o, a))?;
    Ok(())
}

/// Decodes the `.lzma` file into `out`.
pub(super) fn into(input: &[u8], out: &mut [u8]) -> Result<usize, DecompressError<Infallible>> {
    check_header(input)?;
    let limit = out.len() as u64;
    let mut dec = decoder();
    let (_, done) = stream_into(FORMAT, input, out, limit, |i, o, a| dec.process(i, o, a))?;
    Ok(done)
}
