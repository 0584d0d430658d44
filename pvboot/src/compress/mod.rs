//! Compressed kernels and modules: the seven formats Linux and NetBSD ship, detected by magic.
//!
//! [`detect`] names the format from the first bytes of a file; [`decompress`] streams the output to
//! a [`Sink`] in order, in chunks, refusing to produce more than `max_out` bytes; [`decompress_into`]
//! decodes in one call into a contiguous buffer that is also the decoder's dictionary where the
//! decoder allows it (no window allocation).
//!
//! Every decoder treats what follows the compressed stream as the real tools do: Linux appends the
//! uncompressed size (4 bytes) after its gzip, lzma, lz4 and lzo payloads, and `gzip -d`, `xz -d`
//! accept concatenated members / streams (both decoded here) and zero padding.
//!
//! | format | decoder | memory, [`decompress`] | memory, [`decompress_into`] |
//! |--------|---------|------------------------|-----------------------------|
//! | gzip   | miniz_oxide's inflate core | 11 KiB state + 32 KiB window | 11 KiB state (`out` is the window) |
//! | xz     | lzma-rust2 `XzStream` (LZMA2, BCJ, CRC-32/64, SHA-256) | window of min(dictionary, output so far) + 64 KiB chunk; dictionaries over 64 MiB refused | the same window (the crate keeps its own) |
//! | lzma   | lzma-rust2 `LzmaStream` | as xz | as xz |
//! | zstd   | ruzstd `FrameDecoder` | the declared window, reserved when a frame starts, + ~0.5 MiB; windows over 32 MiB (half the heap) refused | the same |
//! | bzip2  | here ([`bzip2`](self) module, by hand) | 4 bytes per block byte (3.6 MB at -9) + 64 KiB | the same |
//! | lz4    | lz4_flex block decoder | min(8 MiB, `max_out`) block buffer | none (blocks decode in place) |
//! | lzo    | here ([`lzo::lzo1x`], by hand) | 256 KiB block buffer | none (blocks decode in place) |
//!
//! Cost: host instructions per MiB of output (callgrind, `examples/decompress_cost.rs`, a
//! 3.7 MB real ELF, `/usr/bin/git`, compressed as Linux compresses kernels), which the guest pays
//! at about 1 us each under the emulating KVM:
//!
//! | format (as compressed)                               | file      | `decompress_into` | `decompress` |
//! |------------------------------------------------------|-----------|-------------------|--------------|
//! | lz4 (`lz4 -l -9`)                                    | 2 049 882 | 6.2 M             | 6.2 M        |
//! | lzo (`lzop -9`)                                      | 1 954 014 | 15.9 M            | 17.0 M       |
//! | gzip (`gzip -9`)                                     | 1 811 656 | 29.9 M            | 31.1 M       |
//! | zstd (`zstd --ultra -22`)                            | 1 584 547 | 70.2 M            | 70.2 M       |
//! | lzma (`lzma -9`)                                     | 1 501 497 | 145 M             | 146 M        |
//! | xz (`xz --check=crc32 --x86 --lzma2=dict=32MiB`)     | 1 385 208 | 148 M             | 149 M        |
//! | bzip2 (`bzip2 -9`)                                   | 1 624 183 | 154 M             | 160 M        |
//!
//! (lzma-rust2's `optimization` feature, its unsafe fast paths, saves only 2%; xz4rust, the other
//! no_std xz decoder, measured 150 M.)
//!
//! Corrupt input gives one [`DecompressError`] naming the format and what was wrong; no decoder
//! panics, loops or allocates on an unchecked size taken from the input.

use core::convert::Infallible;
use core::fmt;

mod bzip2;
mod gzip;
mod lz4;
mod lzma;
pub mod lzo;
mod xz;
mod zstd;

/// A compression format of a kernel or module file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// gzip (RFC 1952), possibly several members; NetBSD's `netbsd-*.gz` and Linux's `vmlinuz`.
    Gzip,
    /// xz (.xz container, LZMA2, optional BCJ filters), possibly several streams.
    Xz,
    /// Zstandard frames (RFC 8878), possibly several, skippable frames ignored.
    Zstd,
    /// bzip2 (`BZh` + level), possibly several streams.
    Bzip2,
    /// LZ4 legacy frame (`lz4 -l`, what Linux writes).
    Lz4Legacy,
    /// The lzop file format holding LZO1X blocks.
    Lzo,
    /// The legacy `.lzma` ("LZMA alone") format.
    Lzma,
}

impl Compression {
    /// Every format, in the order [`detect`] tries them.
    pub const ALL: [Compression; 7] = [
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
        Compression::Bzip2,
        Compression::Lz4Legacy,
        Compression::Lzo,
        Compression::Lzma,
    ];

    /// The format's usual name, as its tool calls it: "gzip", "xz", "zstd", "bzip2", "lz4", "lzo", "lzma".
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Lz4Legacy => "lz4",
            Compression::Lzo => "lzo",
            Compression::Lzma => "lzma",
        }
    }

    /// The magic bytes a file in this format starts with.
    pub fn magic(self) -> &'static [u8] {
        match self {
            Compression::Gzip => &[0x1f, 0x8b],
            Compression::Xz => &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
            Compression::Zstd => &[0x28, 0xb5, 0x2f, 0xfd],
            Compression::Bzip2 => b"BZh",
            Compression::Lz4Legacy => &[0x02, 0x21, 0x4c, 0x18],
            Compression::Lzo => &[0x89, b'L', b'Z', b'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a],
            // Properties byte 0x5d (lc=3, lp=0, pb=2, what every lzma tool writes) and the low two
            // bytes of a dictionary size that is a multiple of 64 KiB (as Linux's own detection).
            Compression::Lzma => &[0x5d, 0x00, 0x00],
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The format whose magic `head` (the first bytes of a file) starts with, if any.
///
/// bzip2 also needs its block-size digit (`BZh1`..`BZh9`) to count.
pub fn detect(head: &[u8]) -> Option<Compression> {
    Compression::ALL.into_iter().find(|c| {
        head.starts_with(c.magic())
            && (*c != Compression::Bzip2 || head.get(3).is_some_and(|d| (b'1'..=b'9').contains(d)))
    })
}

/// Where decoded bytes go: called with the output in order, in chunks of any size.
pub trait Sink {
    /// Why the sink could not take more.
    type Error;
    /// Takes the next `data.len()` bytes of output.
    fn write(&mut self, data: &[u8]) -> Result<(), Self::Error>;
}

impl Sink for alloc::vec::Vec<u8> {
    type Error = Infallible;
    fn write(&mut self, data: &[u8]) -> Result<(), Infallible> {
        self.extend_from_slice(data);
        Ok(())
    }
}

/// A [`Sink`] filling a caller's slice from the start; it refuses bytes past the slice's end.
#[derive(Debug)]
pub struct SliceSink<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> SliceSink<'a> {
    /// A writer that fills `buf` from its first byte.
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceSink { buf, len: 0 }
    }

    /// How many bytes have been written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A [`SliceSink`] was given more bytes than its slice holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceFull {
    /// The slice's length.
    pub capacity: usize,
}

impl fmt::Display for SliceFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "output buffer of {} bytes is full", self.capacity)
    }
}

impl Sink for SliceSink<'_> {
    type Error = SliceFull;
    fn write(&mut self, data: &[u8]) -> Result<(), SliceFull> {
        let capacity = self.buf.len();
        let dest = self
            .buf
            .get_mut(self.len..)
            .and_then(|rest| rest.get_mut(..data.len()))
            .ok_or(SliceFull { capacity })?;
        dest.copy_from_slice(data);
        self.len += data.len();
        Ok(())
    }
}

/// Why decompression stopped. `E` is the sink's error type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecompressError<E> {
    /// The compressed data is invalid (a bad header, code, distance or checksum).
    Corrupt {
        /// The format being decoded.
        format: Compression,
        /// What was wrong, in a few words.
        what: &'static str,
    },
    /// The output would exceed the caller's limit (`max_out`, or the buffer's size).
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The input ended before the compressed stream did.
    Truncated {
        /// The format being decoded.
        format: Compression,
    },
    /// Valid data using a feature this decoder does not support (or a memory need over its cap).
    Unsupported {
        /// The format being decoded.
        format: Compression,
        /// The feature, in a few words.
        what: &'static str,
    },
    /// The sink refused the output.
    Sink(E),
}

impl<E: fmt::Display> fmt::Display for DecompressError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecompressError::Corrupt { format, what } => write!(f, "corrupt {format} data: {what}"),
            DecompressError::TooLarge { limit } => {
                write!(f, "decompressed data larger than the limit of {limit} bytes")
            }
            DecompressError::Truncated { format } => write!(f, "truncated {format} data"),
            DecompressError::Unsupported { format, what } => write!(f, "unsupported {format} data: {what}"),
            DecompressError::Sink(e) => write!(f, "writing decompressed data: {e}"),
        }
    }
}

/// The counting, limit-enforcing front of a caller's sink that every streaming decoder writes to.
struct Output<'s, S: Sink> {
    sink: &'s mut S,
    written: u64,
    limit: u64,
}

impl<S: Sink> Output<'_, S> {
    /// Passes `data` on, or refuses it whole if it would pass the limit.
    fn put(&mut self, data: &[u8]) -> Result<(), DecompressError<S::Error>> {
        let total = self.written.saturating_add(data.len() as u64);
        if total > self.limit {
            return Err(DecompressError::TooLarge { limit: self.limit });
        }
        if !data.is_empty() {
            self.sink.write(data).map_err(DecompressError::Sink)?;
        }
        self.written = total;
        Ok(())
    }
}

/// Decodes `input` (a whole file in format `c`) and writes the output to `sink` in order; returns
/// the output's length. Fails with [`DecompressError::TooLarge`] before writing past `max_out`.
pub fn decompress<S: Sink>(
    c: Compression,
    input: &[u8],
    sink: &mut S,
    max_out: u64,
) -> Result<u64, DecompressError<S::Error>> {
    let mut out = Output { sink, written: 0, limit: max_out };
    match c {
        Compression::Gzip => gzip::stream(input, &mut out)?,
        Compression::Xz => xz::stream(input, &mut out)?,
        Compression::Lzma => lzma::stream(input, &mut out)?,
        Compression::Zstd => zstd::stream(input, &mut out)?,
        Compression::Lz4Legacy => lz4::stream(input, &mut out)?,
        Compression::Lzo => lzo::stream(input, &mut out)?,
        Compression::Bzip2 => bzip2::decode(input, |data| out.put(data))?,
    }
    Ok(out.written)
}

/// Decodes `input` (a whole file in format `c`) into `out` in one call, using `out` itself as the
/// dictionary; returns the output's length. Fails with [`DecompressError::TooLarge`] (limit =
/// `out.len()`) when the output does not fit.
pub fn decompress_into(c: Compression, input: &[u8], out: &mut [u8]) -> Result<usize, DecompressError<Infallible>> {
    match c {
        Compression::Gzip => gzip::into(input, out),
        Compression::Xz => xz::into(input, out),
        Compression::Lzma => lzma::into(input, out),
        Compression::Zstd => zstd::into(input, out),
        Compression::Lz4Legacy => lz4::into(input, out),
        Compression::Lzo => lzo::into(input, out),
        Compression::Bzip2 => {
            let limit = out.len() as u64;
            let mut done = 0;
            bzip2::decode(input, |data| {
                let dest = out.get_mut(done..done + data.len()).ok_or(DecompressError::TooLarge { limit })?;
                dest.copy_from_slice(data);
                done += data.len();
                Ok(())
            })?;
            Ok(done)
        }
    }
}

/// Little-endian u32 at `at`, if `data` holds it.
fn le32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// Big-endian u32 at `at`, if `data` holds it.
fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// CRC-32 (IEEE, as gzip, xz and lzop use it), table-driven 16 bytes at a time.
const CRC32: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_magic_and_nothing_else() {
        for c in Compression::ALL {
            let mut head = alloc::vec::Vec::from(c.magic());
            head.extend_from_slice(b"9\0\0\0");
            assert_eq!(detect(&head), Some(c), "{c}");
            assert_eq!(detect(&head[..c.magic().len() - 1]), None, "{c} short");
        }
        assert_eq!(detect(b"BZh0"), None);
        assert_eq!(detect(b"\x7fELF"), None);
        assert_eq!(detect(b""), None);
    }

    #[test]
    fn slice_sink_refuses_past_its_end() {
        let mut buf = [0u8; 4];
        let mut s = SliceSink::new(&mut buf);
        assert_eq!(s.write(b"abc"), Ok(()));
        assert_eq!(s.write(b"de"), Err(SliceFull { capacity: 4 }));
        assert_eq!(s.write(b"d"), Ok(()));
        assert_eq!(s.written(), b"abcd");
    }
}
