//! xz (the .xz file format 1.2.1): streams of blocks holding LZMA2 data, optionally behind one
//! BCJ filter (Linux builds x86 kernels with `--x86 --lzma2=dict=32MiB --check=crc32`), each block
//! checked (CRC-32, CRC-64 or SHA-256), decoded by lzma-rust2's sans-I/O `XzStream`.
//!
//! Streams follow one another with stream padding (zero bytes, a multiple of four) between them,
//! as `xz -d` reads them. After the last stream anything else is ignored, as Linux's own
//! decompressor does with the 4-byte size its `cmd_xzkern` appends.

use core::convert::Infallible;

use lzma_rust2::XzStream;

use super::lzma::{stream_into, stream_to, MEM_LIMIT_KB};
use super::{Compression, DecompressError, Output, Sink};

const FORMAT: Compression = Compression::Xz;

fn decoder() -> XzStream {
    // One stream per decoder: this module finds the next stream itself, so that trailing bytes
    // after the last one are not an error.
    XzStream::new_mem_limit(false, MEM_LIMIT_KB)
}

/// Where the next stream starts after one that ended at `at`, if one does: skips stream padding.
fn next_stream(input: &[u8], at: usize) -> Option<usize> {
    let rest = &input[at..];
    let zeros = rest.iter().take_while(|&&b| b == 0).count();
    (zeros % 4 == 0 && rest[zeros..].starts_with(FORMAT.magic())).then_some(at + zeros)
}

/// Streams every xz stream's output to `out`.
pub(super) fn stream<S: Sink>(input: &[u8], out: &mut Output<'_, S>) -> Result<(), DecompressError<S::Error>> {
    let mut pos = 0;
    loop {
        let mut dec = decoder();
        pos += stream_to(FORMAT, &input[pos..], out, |i, o, a| dec.process(i, o, a))?;
        match next_stream(input, pos) {
            Some(next) => pos = next,
            None => return Ok(()),
        }
    }
}

/// Decodes every xz stream into `out`.
pub(super) fn into(input: &[u8], out: &mut [u8]) -> Result<usize, DecompressError<Infallible>> {
    let limit = out.len() as u64;
    let (mut pos, mut done) = (0, 0);
    loop {
        let mut dec = decoder();
        let (used, made) = stream_into(FORMAT, &input[pos..], &mut out[done..], limit, |i, o, a| dec.process(i, o, a))?;
        pos += used;
        done += made;
        match next_stream(input, pos) {
            Some(next) => pos = next,
            None => return Ok(done),
        }
    }
}
