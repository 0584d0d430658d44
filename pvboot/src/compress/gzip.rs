//! gzip (RFC 1952): members of a header, a DEFLATE stream (RFC 1951, decoded by miniz_oxide's
//! inflate core) and a CRC-32 + size trailer. Members follow one another as `gzip -d` reads them;
//! anything after the last member that is not another member's magic is ignored, as `gzip -d`
//! ("trailing garbage ignored") and Linux's `decompress_inflate.c` do.

use alloc::boxed::Box;
use alloc::vec;
use core::convert::Infallible;

use miniz_oxide::inflate::core::inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
use miniz_oxide::inflate::core::{decompress, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

use super::{le32, Compression, DecompressError, Output, Sink, CRC32};

const FORMAT: Compression = Compression::Gzip;
/// DEFLATE's largest distance: the streaming decoder's window (a power of two, as miniz needs).
const WINDOW: usize = 32 * 1024;

// RFC 1952 2.3.1 header flags.
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const FRESERVED: u8 = 0xe0;

fn corrupt<E>(what: &'static str) -> DecompressError<E> {
    DecompressError::Corrupt { format: FORMAT, what }
}

fn truncated<E>() -> DecompressError<E> {
    DecompressError::Truncated { format: FORMAT }
}

/// Parses the member header at `at`; returns where its DEFLATE data starts.
fn header<E>(input: &[u8], at: usize) -> Result<usize, DecompressError<E>> {
    let fixed = input.get(at..at + 10).ok_or_else(truncated)?;
    if fixed[..2] != [0x1f, 0x8b] {
        return Err(corrupt("bad magic"));
    }
    if fixed[2] != 8 {
        return Err(DecompressError::Unsupported { format: FORMAT, what: "compression method other than deflate" });
    }
    let flags = fixed[3];
    if flags & FRESERVED != 0 {
        return Err(DecompressError::Unsupported { format: FORMAT, what: "reserved header flags set" });
    }
    let mut pos = at + 10;
    if flags & FEXTRA != 0 {
        let xlen = input.get(pos..pos + 2).ok_or_else(truncated)?;
        pos += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = input.get(pos..).ok_or_else(truncated)?;
            pos += rest.iter().position(|&b| b == 0).ok_or_else(truncated)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    if pos > input.len() {
        return Err(truncated());
    }
    Ok(pos)
}

/// Checks the trailer at `at` against the member's CRC-32 and size (mod 2^32).
fn trailer<E>(input: &[u8], at: usize, crc: u32, size: u32) -> Result<(), DecompressError<E>> {
    let (want_crc, want_size) = (le32(input, at).ok_or_else(truncated)?, le32(input, at + 4).ok_or_else(truncated)?);
    if want_crc != crc {
        return Err(corrupt("CRC-32 mismatch"));
    }
    if want_size != size {
        return Err(corrupt("size mismatch"));
    }
    Ok(())
}

/// Whether another member starts at `at` (else the rest is padding or garbage, ignored).
fn another_member(input: &[u8], at: usize) -> bool {
    input.get(at..).is_some_and(|rest| rest.starts_with(&[0x1f, 0x8b]))
}

fn inflate_error<E>(status: TINFLStatus) -> DecompressError<E> {
    match status {
        TINFLStatus::FailedCannotMakeProgress | TINFLStatus::NeedsMoreInput => truncated(),
        _ => corrupt("invalid deflate data"),
    }
}

/// Streams every member to `out` through a 32 KiB window.
pub(super) fn stream<S: Sink>(input: &[u8], out: &mut Output<'_, S>) -> Result<(), DecompressError<S::Error>> {
    let mut state = Box::<DecompressorOxide>::default();
    let mut window = vec![0u8; WINDOW];
    let mut pos = 0;
    loop {
        pos = header(input, pos)?;
        state.init();
        let mut crc = CRC32.digest();
        let mut size = 0u32;
        let mut wpos = 0;
        loop {
            let (status, used, made) = decompress(&mut state, &input[pos..], &mut window, wpos, 0);
            pos += used;
            let chunk = &window[wpos..wpos + made];
            crc.update(chunk);
            size = size.wrapping_add(made as u32);
            out.put(chunk)?;
            wpos = (wpos + made) & (WINDOW - 1);
            match status {
                TINFLStatus::Done => break,
                // The window is full: go round (it cannot be full without having produced bytes).
                TINFLStatus::HasMoreOutput if made > 0 => {}
                other => return Err(inflate_error(other)),
            }
        }
        trailer(input, pos, crc.finalize(), size)?;
        pos += 8;
        if !another_member(input, pos) {
            return Ok(());
        }
    }
}

/// Decodes every member into `out`, which is also the window.
pub(super) fn into(input: &[u8], out: &mut [u8]) -> Result<usize, DecompressError<Infallible>> {
    let mut state = Box::<DecompressorOxide>::default();
    let limit = out.len() as u64;
    let (mut pos, mut done) = (0, 0);
    loop {
        pos = header(input, pos)?;
        state.init();
        let member = &mut out[done..];
        let (status, used, made) =
            decompress(&mut state, &input[pos..], member, 0, TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF);
        pos += used;
        match status {
            TINFLStatus::Done => {}
            TINFLStatus::HasMoreOutput => return Err(DecompressError::TooLarge { limit }),
            other => return Err(inflate_error(other)),
        }
        trailer(input, pos, CRC32.checksum(&member[..made]), made as u32)?;
        pos += 8;
        done += made;
        if !another_member(input, pos) {
            return Ok(done);
        }
    }
}
