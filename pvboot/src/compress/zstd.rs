//! Zstandard (RFC 8878): frames, decoded by ruzstd's `FrameDecoder` a bounded number of bytes at a
//! time, their XXH64-based content checksum verified when present. Frames follow one another;
//! skippable frames are skipped; anything else after a frame ends the data, as Linux's
//! `decompress_unzstd.c` stops after its frame (and its build appends the 4-byte size).
//!
//! ruzstd keeps the frame's window (its last `window` bytes of output) in its own buffer, and
//! reserves all of it when a frame starts, whatever the output's size: memory is the declared
//! window plus a few blocks of 128 KiB. Frames declaring a window over [`WINDOW_CAP`] (half of
//! pvboot's heap, which also holds the compressed input) are refused with that reason rather than
//! left to fail the allocation; each frame gets a fresh decoder, so two windows are never held.

use alloc::format;
use alloc::vec;
use core::convert::Infallible;

use ruzstd::decoding::errors::FrameDecoderError;
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use ruzstd::io::Read;

use super::{le32, Compression, DecompressError, Output, Sink};

const FORMAT: Compression = Compression::Zstd;
/// The largest window a frame may declare: half of pvboot's heap (32 MiB). `zstd -19` declares at
/// most 8 MiB; `zstd --ultra -22` declares 128 MiB on a pipe (Linux's `cmd_zstd22`) but no more
/// than the content on a file, so such kernels boot only when compressed from a file.
pub const WINDOW_CAP: u64 = crate::HEAP_MAX / 2;
/// How much output each decoding step aims at before it is handed on.
const CHUNK: usize = 256 * 1024;

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
            Some(0xfd2f_b528) => return Ok(Some(at)),
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

/// Decodes every frame of `input`, handing each piece of output to `put` in order.
fn frames<E>(input: &[u8], mut put: impl FnMut(&[u8]) -> Result<(), DecompressError<E>>) -> Result<(), DecompressError<E>> {
    let mut chunk = vec![0u8; CHUNK];
    let Some(mut pos) = next_frame(input, 0)? else {
        return Err(if input.len() < 4 {
            DecompressError::Truncated { format: FORMAT }
        } else {
            DecompressError::Corrupt { format: FORMAT, what: "bad magic" }
        });
    };
    loop {
        let mut src = &input[pos..];
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
        pos = input.len() - src.len();
        match next_frame(input, pos)? {
            Some(next) => pos = next,
            None => return Ok(()),
        }
    }
}

/// Streams every frame's output to `out`.
pub(super) fn stream<S: Sink>(input: &[u8], out: &mut Output<'_, S>) -> Result<(), DecompressError<S::Error>> {
    frames(input, |data| out.put(data))
}

/// Decodes every frame into `out`.
pub(super) fn into(input: &[u8], out: &mut [u8]) -> Result<usize, DecompressError<Infallible>> {
    let limit = out.len() as u64;
    let mut done = 0;
    frames(input, |data| {
        let dest = out.get_mut(done..done + data.len()).ok_or(DecompressError::TooLarge { limit })?;
        dest.copy_from_slice(data);
        done += data.len();
        Ok(())
    })?;
    Ok(done)
}
