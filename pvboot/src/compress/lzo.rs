//! The lzop file format holding LZO1X blocks, as `lzop -9` and Linux's `cmd_lzo` write it and
//! Linux's `lib/decompress_unlzo.c` reads it.
//!
//! File (lzop 1.04's `read_header`, all fields big-endian): the magic, version, library version,
//! [version needed to extract, if version >= 0x0940], method (1..3: LZO1X), [level, if >= 0x0940],
//! flags, [filter, if F_H_FILTER], mode, mtime low, [mtime high, if >= 0x0940], name length and
//! name, header checksum (Adler-32, or CRC-32 with F_H_CRC32), [extra field, if F_H_EXTRA_FIELD].
//! Then blocks: [u32 decoded length (0 ends the file)][u32 stored length][decoded data's Adler-32
//! and/or CRC-32, per F_ADLER32_D / F_CRC32_D][stored data's, per F_ADLER32_C / F_CRC32_C, only
//! when stored < decoded][data]; stored == decoded means the data is stored uncompressed. Blocks
//! are independent and at most 256 KiB decoded (lzop's block size, Linux's `LZO_BLOCK_SIZE`).
//! Every checksum present is verified (Linux skips them; lzop checks them). What follows the end
//! block (Linux's 4-byte size) is ignored.
//!
//! No maintained no_std LZO1X decoder under the project's licence exists (the `lzo1x` crate is
//! GPL-2.0), so [`lzo1x`] is written here from the format description in Linux's
//! Documentation/staging/lzo.rst, checked against lzop's output in the tests and fuzzed.

use alloc::vec;
use core::convert::Infallible;

use super::{be32, Compression, DecompressError, Output, Sink, CRC32};

const FORMAT: Compression = Compression::Lzo;
const MAGIC: [u8; 9] = [0x89, b'L', b'Z', b'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a];
/// lzop's block size, the largest decoded block Linux accepts.
const BLOCK_MAX: usize = 256 * 1024;

// lzop's header flags.
const F_ADLER32_D: u32 = 0x0001;
const F_ADLER32_C: u32 = 0x0002;
const F_H_EXTRA_FIELD: u32 = 0x0040;
const F_CRC32_D: u32 = 0x0100;
const F_CRC32_C: u32 = 0x0200;
const F_MULTIPART: u32 = 0x0400;
const F_H_FILTER: u32 = 0x0800;
const F_H_CRC32: u32 = 0x1000;
/// Bits lzop defines: the flags above and others (F_MASK), the OS and the character set.
const F_KNOWN: u32 = 0x0000_3fff | 0xff00_0000 | 0x00f0_0000;

fn corrupt<E>(what: &'static str) -> DecompressError<E> {
    DecompressError::Corrupt { format: FORMAT, what }
}

fn truncated<E>() -> DecompressError<E> {
    DecompressError::Truncated { format: FORMAT }
}

/// A cursor over the file, every read checked against its end.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes<E>(&mut self, n: usize) -> Result<&'a [u8], DecompressError<E>> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(truncated)?;
        let b = &self.data[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn u8<E>(&mut self) -> Result<u8, DecompressError<E>> {
        Ok(self.bytes(1)?[0])
    }

    fn u16<E>(&mut self) -> Result<u16, DecompressError<E>> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32<E>(&mut self) -> Result<u32, DecompressError<E>> {
        let at = self.pos;
        self.bytes(4)?;
        Ok(be32(self.data, at).unwrap_or(0))
    }
}

/// Reads the file header; returns the flags and leaves `r` at the first block.
fn header<E>(r: &mut Reader<'_>) -> Result<u32, DecompressError<E>> {
    let magic = r.bytes(MAGIC.len())?;
    if magic != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let start = r.pos;
    let version = r.u16()?;
    if version < 0x0900 {
        return Err(DecompressError::Unsupported { format: FORMAT, what: "lzop file version before 0.90" });
    }
    r.u16()?; // library version
    if version >= 0x0940 {
        r.u16()?; // version needed to extract
    }
    let method = r.u8()?;
    if !(1..=3).contains(&method) {
        return Err(DecompressError::Unsupported { format: FORMAT, what: "method other than LZO1X" });
    }
    if version >= 0x0940 {
        r.u8()?; // level
    }
    let flags = r.u32()?;
    if flags & !F_KNOWN != 0 {
        return Err(corrupt("reserved header flags set"));
    }
    if flags & (F_H_FILTER | F_MULTIPART) != 0 {
        return Err(DecompressError::Unsupported { format: FORMAT, what: "filters or multi-part files" });
    }
    r.bytes(if version >= 0x0940 { 12 } else { 8 })?; // mode, mtime low [, mtime high]
    let name_len = r.u8()?;
    r.bytes(usize::from(name_len))?;
    let covered = &r.data[start..r.pos];
    let sum = if flags & F_H_CRC32 != 0 { CRC32.checksum(covered) } else { adler2::adler32_slice(covered) };
    if r.u32()? != sum {
        return Err(corrupt("header checksum mismatch"));
    }
    if flags & F_H_EXTRA_FIELD != 0 {
        let len = r.u32()? as usize;
        r.bytes(len)?;
        r.u32()?; // its checksum
    }
    Ok(flags)
}

/// One block: its decoded length, its data and the checksums to verify.
struct Block<'a> {
    decoded_len: usize,
    data: &'a [u8],
    sums: [Option<u32>; 4], // decoded Adler-32, decoded CRC-32, stored Adler-32, stored CRC-32
}

/// Reads the next block's header and data, or `None` at the end block.
fn next_block<'a, E>(r: &mut Reader<'a>, flags: u32) -> Result<Option<Block<'a>>, DecompressError<E>> {
    let decoded_len = r.u32()? as usize;
    if decoded_len == 0 {
        return Ok(None);
    }
    let stored_len = r.u32()? as usize;
    if decoded_len > BLOCK_MAX {
        return Err(corrupt("block longer than 256 KiB"));
    }
    if stored_len > decoded_len || stored_len == 0 {
        return Err(corrupt("bad stored block length"));
    }
    let mut sums = [None; 4];
    let compressed = stored_len < decoded_len;
    for (i, (flag, present)) in
        [(F_ADLER32_D, true), (F_CRC32_D, true), (F_ADLER32_C, compressed), (F_CRC32_C, compressed)].into_iter().enumerate()
    {
        if present && flags & flag != 0 {
            sums[i] = Some(r.u32()?);
        }
    }
    Ok(Some(Block { decoded_len, data: r.bytes(stored_len)?, sums }))
}

/// Decodes `block` into `dest` (exactly its decoded length) and verifies its checksums.
fn decode_block<E>(block: &Block<'_>, dest: &mut [u8]) -> Result<(), DecompressError<E>> {
    let [d_adler, d_crc, c_adler, c_crc] = block.sums;
    if c_adler.is_some_and(|s| s != adler2::adler32_slice(block.data)) || c_crc.is_some_and(|s| s != CRC32.checksum(block.data)) {
        return Err(corrupt("compressed block checksum mismatch"));
    }
    if block.data.len() == dest.len() {
        dest.copy_from_slice(block.data);
    } else {
        lzo1x(block.data, dest).map_err(corrupt)?;
    }
    if d_adler.is_some_and(|s| s != adler2::adler32_slice(dest)) || d_crc.is_some_and(|s| s != CRC32.checksum(dest)) {
        return Err(corrupt("block checksum mismatch"));
    }
    Ok(())
}

/// Streams every block's output to `out` through a 256 KiB buffer.
pub(super) fn stream<S: Sink>(input: &[u8], out: &mut Output<'_, S>) -> Result<(), DecompressError<S::Error>> {
    let mut r = Reader { data: input, pos: 0 };
    let flags = header(&mut r)?;
    let mut buf = vec![0u8; BLOCK_MAX];
    while let Some(block) = next_block(&mut r, flags)? {
        if block.decoded_len as u64 > out.limit - out.written {
            return Err(DecompressError::TooLarge { limit: out.limit });
        }
        let dest = &mut buf[..block.decoded_len];
        decode_block(&block, dest)?;
        out.put(dest)?;
    }
    Ok(())
}

/// Decodes every block straight into its place in `out`.
pub(super) fn into(input: &[u8], out: &mut [u8]) -> Result<usize, DecompressError<Infallible>> {
    let mut r = Reader { data: input, pos: 0 };
    let flags = header(&mut r)?;
    let limit = out.len() as u64;
    let mut done = 0;
    while let Some(block) = next_block(&mut r, flags)? {
        let dest = out.get_mut(done..done + block.decoded_len).ok_or(DecompressError::TooLarge { limit })?;
        decode_block(&block, dest)?;
        done += block.decoded_len;
    }
    Ok(done)
}

/// Decodes one LZO1X block (Linux's Documentation/staging/lzo.rst, version 0 streams: what lzop
/// and the kernel's compressor write) into exactly `dest`. The block must end with the end
/// instruction (0x11 0x00 0x00) right at the end of `src`, having filled `dest`.
pub fn lzo1x(src: &[u8], dest: &mut [u8]) -> Result<(), &'static str> {
    let mut d = Lzo1x { src, ip: 0, dest, op: 0 };
    // How many literals the previous instruction copied: 0, 1..3, or 4 for "4 or more"; it
    // selects what instructions 0..15 mean.
    let mut state;
    let first = d.byte()?;
    if first > 17 {
        // A first byte of 18..255 is a literal run of 1..238 bytes.
        let n = usize::from(first - 17);
        d.literals(n)?;
        state = n.min(4);
    } else {
        d.ip = 0;
        state = 0;
    }
    loop {
        let t = d.byte()?;
        let (len, dist, next);
        match t {
            0..=15 if state == 0 => {
                // Literal run of 4 or more.
                let n = if t == 0 { 15 + d.long_length()? } else { usize::from(t) } + 3;
                d.literals(n)?;
                state = 4;
                continue;
            }
            0..=15 => {
                // After 1..3 literals: 2 bytes from within 1 KiB; after 4 or more: 3 bytes from 2..3 KiB.
                let h = usize::from(d.byte()?);
                let base = if state == 4 { 2049 } else { 1 };
                len = if state == 4 { 3 } else { 2 };
                dist = (h << 2) + usize::from((t >> 2) & 3) + base;
                next = t & 3;
            }
            16..=31 => {
                let n = if t & 7 == 0 { 7 + d.long_length()? } else { usize::from(t & 7) };
                let le = d.le16()?;
                let far = (usize::from(t & 8) << 11) + usize::from(le >> 2);
                if far == 0 {
                    // The end instruction: 0x11 0x00 0x00.
                    if n != 1 || le != 0 {
                        return Err("bad end instruction");
                    }
                    return d.finish();
                }
                len = n + 2;
                dist = far + 16384;
                next = (le & 3) as u8;
            }
            32..=63 => {
                let n = if t & 31 == 0 { 31 + d.long_length()? } else { usize::from(t & 31) };
                let le = d.le16()?;
                len = n + 2;
                dist = usize::from(le >> 2) + 1;
                next = (le & 3) as u8;
            }
            64..=255 => {
                let h = usize::from(d.byte()?);
                len = usize::from(t >> 5) + 1;
                dist = (h << 3) + usize::from((t >> 2) & 7) + 1;
                next = t & 3;
            }
        }
        d.copy_match(dist, len)?;
        // Every match carries 0..3 literals to copy after it.
        d.literals(usize::from(next))?;
        state = usize::from(next);
    }
}

/// The LZO1X decoder's cursors.
struct Lzo1x<'a> {
    src: &'a [u8],
    ip: usize,
    dest: &'a mut [u8],
    op: usize,
}

impl Lzo1x<'_> {
    fn byte(&mut self) -> Result<u8, &'static str> {
        let b = *self.src.get(self.ip).ok_or("block ends inside an instruction")?;
        self.ip += 1;
        Ok(b)
    }

    fn le16(&mut self) -> Result<u16, &'static str> {
        Ok(u16::from(self.byte()?) | u16::from(self.byte()?) << 8)
    }

    /// The extension of a length field that was zero: 255 per zero byte, plus the final non-zero
    /// byte. Each zero byte stands for 255 output bytes, so the run cannot outgrow the input.
    fn long_length(&mut self) -> Result<usize, &'static str> {
        let mut n = 0usize;
        loop {
            match self.byte()? {
                0 => n += 255,
                b => return Ok(n + usize::from(b)),
            }
        }
    }

    fn literals(&mut self, n: usize) -> Result<(), &'static str> {
        let from = self.src.get(self.ip..self.ip + n).ok_or("literal run past the block's end")?;
        let to = self.dest.get_mut(self.op..self.op + n).ok_or("block decodes past its stated size")?;
        to.copy_from_slice(from);
        self.ip += n;
        self.op += n;
        Ok(())
    }

    fn copy_match(&mut self, dist: usize, len: usize) -> Result<(), &'static str> {
        if dist > self.op {
            return Err("match distance before the block's start");
        }
        let end = self.op.checked_add(len).filter(|&e| e <= self.dest.len()).ok_or("block decodes past its stated size")?;
        let from = self.op - dist;
        if dist >= len {
            self.dest.copy_within(from..from + len, self.op);
        } else {
            // Overlapping: each byte may be one this copy just wrote (a run).
            for i in 0..len {
                self.dest[self.op + i] = self.dest[from + i];
            }
        }
        self.op = end;
        Ok(())
    }

    fn finish(&self) -> Result<(), &'static str> {
        if self.ip != self.src.len() {
            return Err("data after the end instruction");
        }
        if self.op != self.dest.len() {
            return Err("block decodes short of its stated size");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::lzo1x;

    #[test]
    fn decodes_literals_match_and_end() {
        // lzop -9 of "hello hello hello hello": 6 literals, a 17-byte match at distance 6, end.
        let src = [0x17, b'h', b'e', b'l', b'l', b'o', b' ', 0x2f, 0x14, 0x00, 0x11, 0x00, 0x00];
        let mut out = [0u8; 23];
        assert_eq!(lzo1x(&src, &mut out), Ok(()));
        assert_eq!(&out, b"hello hello hello hello");
        let mut short = [0u8; 22];
        assert!(lzo1x(&src, &mut short).is_err());
        let mut long = [0u8; 24];
        assert!(lzo1x(&src, &mut long).is_err());
        assert!(lzo1x(&src[..12], &mut out).is_err());
    }

    #[test]
    fn long_zero_run_lengths_are_bounded_by_the_input() {
        // A literal run whose length field is a run of zero bytes never reaching its end.
        let mut src = alloc::vec![0x00u8; 10_000];
        src[0] = 0x00;
        let mut out = [0u8; 64];
        assert!(lzo1x(&src, &mut out).is_err());
    }
}
