//! The LZ4 legacy frame, as `lz4 -l` and Linux's `cmd_lz4` write it and Linux's
//! `lib/decompress_unlz4.c` reads it: the magic 0x184C2102 (little-endian), then blocks of
//! [u32 LE compressed size][LZ4 block (lz4_flex)], each independent and at most 8 MiB decoded.
//!
//! The format has no end marker. The data ends where the input does, at a zero size (padding), or
//! at a size field with nothing after it (the 4-byte uncompressed size Linux appends); a size equal
//! to the magic starts another frame, as in Linux's reader. A block cut short is [`Truncated`];
//! a cut exactly between blocks cannot be told from a shorter file (as with `lz4 -d`).
//!
//! [`Truncated`]: super::DecompressError::Truncated

use alloc::vec;
use core::convert::Infallible;

use lz4_flex::block::{decompress_into as lz4_block, DecompressError as BlockError};

use super::{le32, Compression, DecompressError, Output, Sink};

const FORMAT: Compression = Compression::Lz4Legacy;
const MAGIC: u32 = 0x184c_2102;
/// The largest decoded block of the legacy frame.
const BLOCK_MAX: usize = 8 << 20;
/// LZ4_compressBound(8 MiB): the largest compressed block.
const BLOCK_IN_MAX: usize = BLOCK_MAX + BLOCK_MAX / 255 + 16;

fn corrupt<E>(what: &'static str) -> DecompressError<E> {
    DecompressError::Corrupt { format: FORMAT, what }
}

/// The next block after position `at`: (its data's range in `input`), or `None` at the end.
fn next_block<E>(input: &[u8], mut at: usize) -> Result<Option<(usize, usize)>, DecompressError<E>> {
    loop {
        let Some(size) = le32(input, at) else { return Ok(None) };
        let start = at + 4;
        if size == MAGIC {
            at = start;
            continue;
        }
        let rest = input.len() - start;
        if size == 0 || rest == 0 {
            return Ok(None);
        }
        let size = size as usize;
        if size > BLOCK_IN_MAX {
            return Err(corrupt("block size over the 8 MiB limit"));
        }
        if size > rest {
            return Err(DecompressError::Truncated { format: FORMAT });
        }
        return Ok(Some((start, start + size)));
    }
}

fn check_magic<E>(input: &[u8]) -> Result<(), DecompressError<E>> {
    match le32(input, 0) {
        Some(MAGIC) => Ok(()),
        Some(_) => Err(corrupt("bad magic")),
        None => Err(DecompressError::Truncated { format: FORMAT }),
    }
}

/// Decodes one block into `dest` (at most [`BLOCK_MAX`] long); `dest_is_limit` says whether `dest`
/// was cut short by the caller's limit rather than the format's, to name the error.
fn block<E>(data: &[u8], dest: &mut [u8], dest_is_limit: bool, limit: u64) -> Result<usize, DecompressError<E>> {
    lz4_block(data, dest).map_err(|e| match e {
        BlockError::OutputTooSmall { .. } if dest_is_limit => DecompressError::TooLarge { limit },
        BlockError::OutputTooSmall { .. } => corrupt("block decodes to more than 8 MiB"),
        BlockError::LiteralOutOfBounds | BlockError::ExpectedAnotherByte => corrupt("block ends inside a sequence"),
        BlockError::OffsetZero | BlockError::OffsetOutOfBounds => corrupt("match distance out of range"),
        _ => corrupt("invalid block"),
    })
}

/// Streams every block's output to `out`, through a buffer of min(8 MiB, limit + 1) bytes.
pub(super) fn stream<S: Sink>(input: &[u8], out: &mut Output<'_, S>) -> Result<(), DecompressError<S::Error>> {
    check_magic(input)?;
    let mut buf = vec![0u8; BLOCK_MAX.min(usize::try_from(out.limit).unwrap_or(usize::MAX).saturating_add(1))];
    let mut at = 4;
    while let Some((start, end)) = next_block(input, at)? {
        let room = usize::try_from(out.limit - out.written).unwrap_or(usize::MAX);
        let dest_len = buf.len().min(room);
        let n = block(&input[start..end], &mut buf[..dest_len], dest_len < BLOCK_MAX, out.limit)?;
        out.put(&buf[..n])?;
        at = end;
    }
    Ok(())
}

/// Decodes every block straight into its place in `out`.
pub(super) fn into(input: &[u8], out: &mut [u8]) -> Result<usize, DecompressError<Infallible>> {
    check_magic(input)?;
    let limit = out.len() as u64;
    let (mut at, mut done) = (4, 0);
    while let Some((start, end)) = next_block(input, at)? {
        let room = out.len() - done;
        let dest_len = room.min(BLOCK_MAX);
        done += block(&input[start..end], &mut out[done..done + dest_len], dest_len < BLOCK_MAX, limit)?;
        at = end;
    }
    Ok(done)
}
