//! bzip2, decoded here: no maintained no_std bzip2 decoder without unsafe exists (bzip2-rs needs std;
//! libbz2-rs-sys offers only its unsafe C interface). Written from bzip2 1.0.8's decoder
//! (decompress.c, huffman.c, bzlib.c's un-RLE) and Joe Tsai's "BZip2 Format Specification";
//! checked against `bzip2` in the tests and fuzzed.
//!
//! A stream is "BZh" + the block-size digit (1..9, in 100 000-byte units), blocks, and an end
//! marker with the CRC of all block CRCs. A block (48-bit magic 0x314159265359) holds its CRC, the
//! Burrows-Wheeler origin pointer, the symbols in use, 2..6 Huffman tables and their selectors
//! (one per 50 symbols), then the Huffman-coded move-to-front/run-length (RUNA/RUNB) symbols. Its
//! output is the inverse BWT of those bytes, run-length decoded once more (4 equal bytes and a
//! count). Streams follow one another as `bzip2 -d` reads them; anything else after the last is
//! ignored (Linux appends the 4-byte size; `bzip2 -d` ignores trailing garbage with a warning).
//!
//! Memory: 4 bytes per block byte (3.6 MB at level 9) plus a 64 KiB output buffer.

use alloc::vec::Vec;

use super::{Compression, DecompressError};

const FORMAT: Compression = Compression::Bzip2;
const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
const END_MAGIC: u64 = 0x1772_4538_5090;
/// The longest Huffman code bzip2 writes.
const MAX_CODE_LEN: usize = 20;
/// 256 byte values + RUNA/RUNB - 1 + end of block.
const MAX_ALPHA: usize = 258;
/// bzip2 1.0.8 reads any number of selectors but keeps this many (BZ_MAX_SELECTORS).
const MAX_SELECTORS: usize = 18002;
/// The block output's chunk handed on at a time.
const CHUNK: usize = 64 * 1024;

/// CRC-32 as bzip2 computes it (MSB-first).
const CRC: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_BZIP2);

fn corrupt<E>(what: &'static str) -> DecompressError<E> {
    DecompressError::Corrupt { format: FORMAT, what }
}

/// Reads the input MSB-first, as bzip2 writes it.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    n: u32,
}

impl Bits<'_> {
    /// The next `k` (<= 32) bits.
    fn get<E>(&mut self, k: u32) -> Result<u32, DecompressError<E>> {
        while self.n < k {
            let b = *self.data.get(self.pos).ok_or(DecompressError::Truncated { format: FORMAT })?;
            self.pos += 1;
            self.buf = self.buf << 8 | u64::from(b);
            self.n += 8;
        }
        self.n -= k;
        Ok(((self.buf >> self.n) & ((1u64 << k) - 1)) as u32)
    }

    fn bit<E>(&mut self) -> Result<bool, DecompressError<E>> {
        Ok(self.get(1)? == 1)
    }

    fn u48<E>(&mut self) -> Result<u64, DecompressError<E>> {
        Ok(u64::from(self.get(24)?) << 24 | u64::from(self.get(24)?))
    }

    /// Where the next whole byte starts, once the bits left in the current byte are dropped.
    fn byte_pos(&self) -> usize {
        self.pos - (self.n / 8) as usize
    }
}

/// A canonical Huffman decoding table, as bzip2's `BZ2_hbCreateDecodeTables` builds it: codes of
/// length `l` are the values up to `limit[l]`, and `perm[code - base[l]]` is the symbol.
struct Huffman {
    limit: [i32; MAX_CODE_LEN + 2],
    base: [i32; MAX_CODE_LEN + 2],
    perm: [u16; MAX_ALPHA],
    min_len: u32,
    symbols: usize,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Self {
        let min_len = lengths.iter().copied().min().unwrap_or(1);
        let max_len = lengths.iter().copied().max().unwrap_or(1);
        let mut h = Huffman {
            limit: [-1; MAX_CODE_LEN + 2],
            base: [0; MAX_CODE_LEN + 2],
            perm: [0; MAX_ALPHA],
            min_len: u32::from(min_len),
            symbols: lengths.len(),
        };
        let mut pp = 0;
        for len in min_len..=max_len {
            for (sym, _) in lengths.iter().enumerate().filter(|(_, &l)| l == len) {
                h.perm[pp] = sym as u16;
                pp += 1;
            }
        }
        // base[l + 1] counts the codes of length l; summed, base[l] is how many are shorter.
        let mut count = [0i32; MAX_CODE_LEN + 2];
        for &l in lengths {
            count[usize::from(l) + 1] += 1;
        }
        for i in 1..count.len() {
            count[i] += count[i - 1];
        }
        let mut code = 0i32;
        for l in usize::from(min_len)..=usize::from(max_len) {
            code += count[l + 1] - count[l];
            h.limit[l] = code - 1;
            code <<= 1;
        }
        #[allow(clippy::needless_range_loop)] // base, limit and count are indexed by length alike
        for l in usize::from(min_len) + 1..=usize::from(max_len) {
            h.base[l] = ((h.limit[l - 1] + 1) << 1) - count[l];
        }
        h.base[usize::from(min_len)] = count[usize::from(min_len)];
        h
    }

    fn decode<E>(&self, bits: &mut Bits<'_>) -> Result<usize, DecompressError<E>> {
        let mut len = self.min_len as usize;
        let mut code = bits.get(self.min_len)? as i32;
        while code > self.limit[len] {
            len += 1;
            if len > MAX_CODE_LEN {
                return Err(corrupt("invalid Huffman code"));
            }
            code = code << 1 | bits.get(1)? as i32;
        }
        let index = code - self.base[len];
        if index < 0 || index as usize >= self.symbols {
            return Err(corrupt("invalid Huffman code"));
        }
        Ok(usize::from(self.perm[index as usize]))
    }
}

/// The Huffman-coded symbols of a block: each run of 50 uses the table its selector names.
struct Symbols<'a> {
    selectors: &'a [u8],
    huffman: &'a [Huffman],
    group: usize,
    left: usize,
    table: usize,
}

impl Symbols<'_> {
    fn next<E>(&mut self, bits: &mut Bits<'_>) -> Result<usize, DecompressError<E>> {
        if self.left == 0 {
            let &t = self.selectors.get(self.group).ok_or_else(|| corrupt("more symbols than selectors"))?;
            self.group += 1;
            self.left = 50;
            self.table = usize::from(t);
        }
        self.left -= 1;
        self.huffman[self.table].decode(bits)
    }
}

/// Decodes every stream of `input`, handing the output to `put` in order.
pub(super) fn decode<E>(input: &[u8], mut put: impl FnMut(&[u8]) -> Result<(), DecompressError<E>>) -> Result<(), DecompressError<E>> {
    let mut start = 0;
    let mut tt: Vec<u32> = Vec::new();
    let mut out = Vec::with_capacity(CHUNK);
    loop {
        let header = input.get(start..start + 4).ok_or(DecompressError::Truncated { format: FORMAT })?;
        if &header[..3] != b"BZh" {
            return Err(corrupt("bad magic"));
        }
        let level = header[3].wrapping_sub(b'0');
        if !(1..=9).contains(&level) {
            return Err(corrupt("bad block size"));
        }
        let block_max = usize::from(level) * 100_000;
        let mut bits = Bits { data: input, pos: start + 4, buf: 0, n: 0 };
        let mut combined = 0u32;
        loop {
            match bits.u48()? {
                BLOCK_MAGIC => {
                    let crc = block(&mut bits, block_max, &mut tt, &mut out, &mut put)?;
                    combined = combined.rotate_left(1) ^ crc;
                }
                END_MAGIC => {
                    if bits.get(32)? != combined {
                        return Err(corrupt("stream CRC mismatch"));
                    }
                    break;
                }
                _ => return Err(corrupt("bad block magic")),
            }
        }
        start = bits.byte_pos();
        // Another stream, or the end (what follows is ignored).
        let next = input.get(start..start + 4);
        if !next.is_some_and(|h| h.starts_with(b"BZh") && (b'1'..=b'9').contains(&h[3])) {
            return Ok(());
        }
    }
}

/// Decodes one block (after its magic); returns its CRC.
fn block<E>(
    bits: &mut Bits<'_>,
    block_max: usize,
    tt: &mut Vec<u32>,
    out: &mut Vec<u8>,
    put: &mut impl FnMut(&[u8]) -> Result<(), DecompressError<E>>,
) -> Result<u32, DecompressError<E>> {
    let want_crc = bits.get(32)?;
    if bits.bit()? {
        return Err(DecompressError::Unsupported { format: FORMAT, what: "randomised block (bzip2 before 0.9.5)" });
    }
    let orig_ptr = bits.get(24)? as usize;

    // The byte values in use, as a 16 x 16 bitmap.
    let mut seq_to_unseq = [0u8; 256];
    let mut in_use = 0;
    let groups = bits.get(16)?;
    for i in 0..16 {
        if groups & (0x8000 >> i) != 0 {
            let set = bits.get(16)?;
            for j in 0..16 {
                if set & (0x8000 >> j) != 0 {
                    seq_to_unseq[in_use] = (i * 16 + j) as u8;
                    in_use += 1;
                }
            }
        }
    }
    if in_use == 0 {
        return Err(corrupt("block uses no symbols"));
    }
    let alpha = in_use + 2;

    let tables = bits.get(3)? as usize;
    if !(2..=6).contains(&tables) {
        return Err(corrupt("bad number of Huffman tables"));
    }
    let selectors_count = bits.get(15)? as usize;
    if selectors_count == 0 {
        return Err(corrupt("no selectors"));
    }
    // Selectors: unary-coded, move-to-front transformed table numbers.
    let mut mtf_tables: Vec<u8> = (0..tables as u8).collect();
    let mut selectors = Vec::with_capacity(selectors_count.min(MAX_SELECTORS));
    for _ in 0..selectors_count {
        let mut j = 0;
        while bits.bit()? {
            j += 1;
            if j >= tables {
                return Err(corrupt("bad selector"));
            }
        }
        if selectors.len() < MAX_SELECTORS {
            let t = mtf_tables[j];
            mtf_tables.copy_within(0..j, 1);
            mtf_tables[0] = t;
            selectors.push(t);
        }
    }
    // Code lengths: a 5-bit start, then per symbol a delta coded as 1x bit pairs, ended by a 0 bit.
    let mut huffman = Vec::with_capacity(tables);
    let mut lengths = [0u8; MAX_ALPHA];
    for _ in 0..tables {
        let mut len = bits.get(5)? as i32;
        for l in lengths.iter_mut().take(alpha) {
            loop {
                if !(1..=MAX_CODE_LEN as i32).contains(&len) {
                    return Err(corrupt("bad Huffman code length"));
                }
                if !bits.bit()? {
                    break;
                }
                len += if bits.bit()? { -1 } else { 1 };
            }
            *l = len as u8;
        }
        huffman.push(Huffman::new(&lengths[..alpha]));
    }

    // The move-to-front / run-length symbols, 50 per selector.
    let end_of_block = in_use + 1;
    let mut mtf: [u8; 256] = core::array::from_fn(|i| i as u8);
    let mut counts = [0u32; 256];
    tt.clear();
    tt.reserve(block_max);
    let mut symbols = Symbols { selectors: &selectors, huffman: &huffman, group: 0, left: 0, table: 0 };
    let mut sym = symbols.next(bits)?;
    loop {
        if sym <= 1 {
            // RUNA (0) / RUNB (1): a bijective base-2 run length of the front byte.
            let (mut run, mut weight) = (0usize, 1usize);
            while sym <= 1 {
                run += weight << sym;
                weight <<= 1;
                if weight > 2 * 1024 * 1024 {
                    return Err(corrupt("run too long"));
                }
                sym = symbols.next(bits)?;
            }
            let byte = seq_to_unseq[usize::from(mtf[0])];
            if tt.len() + run > block_max {
                return Err(corrupt("block longer than its stated size"));
            }
            counts[usize::from(byte)] += run as u32;
            tt.resize(tt.len() + run, u32::from(byte));
            continue;
        }
        if sym == end_of_block {
            break;
        }
        // Symbol s > 1 is move-to-front position s - 1.
        let pos = sym - 1;
        let v = mtf[pos];
        mtf.copy_within(0..pos, 1);
        mtf[0] = v;
        let byte = seq_to_unseq[usize::from(v)];
        if tt.len() >= block_max {
            return Err(corrupt("block longer than its stated size"));
        }
        counts[usize::from(byte)] += 1;
        tt.push(u32::from(byte));
        sym = symbols.next(bits)?;
    }
    if orig_ptr >= tt.len() {
        return Err(corrupt("origin pointer past the block's end"));
    }

    // Inverse BWT: link each position to the next, in tt's upper 24 bits.
    let mut next = [0u32; 256];
    let mut sum = 0u32;
    for (n, c) in next.iter_mut().zip(counts) {
        *n = sum;
        sum += c;
    }
    for i in 0..tt.len() {
        let b = (tt[i] & 0xff) as usize;
        tt[next[b] as usize] |= (i as u32) << 8;
        next[b] += 1;
    }

    // Undo the initial run-length coding while walking the links: after 4 equal bytes comes a
    // count of further copies.
    let mut digest = CRC.digest();
    let mut pos = tt[orig_ptr] >> 8;
    let (mut last, mut same) = (0u8, 0u32);
    out.clear();
    for _ in 0..tt.len() {
        let entry = tt[pos as usize];
        let ch = entry as u8;
        pos = entry >> 8;
        if same == 4 {
            out.resize(out.len() + usize::from(ch), last);
            same = 0;
        } else {
            if same > 0 && ch == last {
                same += 1;
            } else {
                same = 1;
                last = ch;
            }
            out.push(ch);
        }
        if out.len() >= CHUNK {
            digest.update(out);
            put(out)?;
            out.clear();
        }
    }
    digest.update(out);
    put(out)?;
    out.clear();
    if digest.finalize() != want_crc {
        return Err(corrupt("block CRC mismatch"));
    }
    Ok(want_crc)
}
