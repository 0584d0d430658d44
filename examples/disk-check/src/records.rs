//! `records`: numbered, checksummed records written one group at a time,
//! each group flushed, and every record of a group acknowledged on the
//! console only after its flush completed. The host kills the hypervisor
//! with SIGKILL at a random moment and checks that every acknowledged
//! record is intact in the image (tests/src/kill9.rs, `cargo xtask fuzz
//! kill9`, docs/reliability.md).
//!
//! Layout: records follow each other from the start of the scratch region
//! (default: the whole disk), record `n` taking `k` 512-byte units (1 to
//! `rec-max`), until the next one would pass the region's end. Every unit
//! is 64 little-endian u64 words:
//!
//! | word | value |
//! |---|---|
//! | 0 | [`MAGIC`] |
//! | 1 | the record number `n` |
//! | 2 | the seed |
//! | 3 | `(unit index i << 32) \| k` |
//! | 4..=62 | `(((n << 24) \| (i << 8) \| w) ^ seed) * 0x9E3779B97F4A7C15` (wrapping; `w` the word index) |
//! | 63 | [`checksum`] of words 0..=62 |
//!
//! Record sizes and group sizes come from SplitMix64 of the seed, so a
//! seed replays the same writes. After each flush the guest prints
//! `acked N LBA K` for each record of the group (`LBA` in 512-byte
//! sectors), and `records: region full after N records` when it stops,
//! then waits to be killed.

use core::time::Duration;

use guest_lib::blkdev::BlockDevice;
use guest_lib::blkfront::BlkFront;
use guest_lib::{println, time};

use crate::{fail, PageBuf};

/// Word 0 of every unit: "XNLREC01" read as little-endian bytes.
pub const MAGIC: u64 = u64::from_le_bytes(*b"XNLREC01");
/// Bytes in a unit (and the only sector size this mode writes to).
const UNIT: usize = 512;
const WORDS: usize = UNIT / 8;

/// What `records` was asked for.
pub struct Plan {
    /// Seed of the record and group sizes and of the contents.
    pub seed: u64,
    /// The region in bytes: offset and length.
    pub region: (u64, u64),
    /// Largest record, in units (`rec-max=`, default 32).
    pub rec_max: u64,
    /// Largest group of records per flush (`group=`, default 4).
    pub group: u64,
}

/// FNV-1a over words instead of bytes: one multiply per word (a byte-wise
/// hash would cost 8 times the emulated instructions).
pub fn checksum(words: &[u64]) -> u64 {
    words.iter().fold(0xcbf2_9ce4_8422_2325, |h, w| (h ^ w).wrapping_mul(0x0000_0100_0000_01b3))
}

/// SplitMix64 step.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `units` units of `buf` with record `n`.
fn fill(buf: &mut [u8], n: u64, seed: u64, units: u64) {
    let mut words = [0u64; WORDS];
    for i in 0..units {
        words[0] = MAGIC;
        words[1] = n;
        words[2] = seed;
        words[3] = (i << 32) | units;
        for (w, slot) in words.iter_mut().enumerate().take(WORDS - 1).skip(4) {
            *slot = (((n << 24) | (i << 8) | w as u64) ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        words[WORDS - 1] = checksum(&words[..WORDS - 1]);
        let at = i as usize * UNIT;
        for (w, out) in words.iter().zip(buf[at..at + UNIT].chunks_exact_mut(8)) {
            out.copy_from_slice(&w.to_le_bytes());
        }
    }
}

/// Writes records until the region is full, then holds.
pub fn run(dev: &BlkFront, plan: &Plan) -> ! {
    if dev.sector_size() as usize != UNIT {
        fail("records: only 512-byte sectors");
    }
    let (offset, len) = plan.region;
    let size = dev.sector_count() * UNIT as u64;
    let whole = offset % UNIT as u64 == 0 && len % UNIT as u64 == 0 && offset.checked_add(len).is_some_and(|e| e <= size);
    if !whole || plan.rec_max == 0 || plan.group == 0 {
        fail("records: the region must be whole sectors inside the disk, rec-max and group non-zero");
    }
    let Some(mut buf) = PageBuf::new(plan.rec_max as usize * UNIT) else {
        fail("records: no memory for the record buffer")
    };
    println!(
        "records: seed {} region {offset}:{len} rec-max {} group {} flush {:?}",
        plan.seed,
        plan.rec_max,
        plan.group,
        dev.info().flush
    );
    let mut rng = plan.seed;
    let end = (offset + len) / UNIT as u64;
    let (mut lba, mut n) = (offset / UNIT as u64, 0u64);
    let mut group = [(0u64, 0u64, 0u64); 64];
    loop {
        let want = (1 + next(&mut rng) % plan.group).min(group.len() as u64) as usize;
        let mut got = 0;
        while got < want {
            let units = 1 + next(&mut rng) % plan.rec_max;
            if lba + units > end {
                break;
            }
            fill(buf.as_mut(), n, plan.seed, units);
            if let Err(e) = dev.write_sectors(lba, &buf.as_slice()[..units as usize * UNIT]) {
                fail(&alloc::format!("records: write of record {n} at sector {lba}: {e}"));
            }
            group[got] = (n, lba, units);
            got += 1;
            lba += units;
            n += 1;
        }
        if got == 0 {
            break;
        }
        if let Err(e) = dev.flush() {
            fail(&alloc::format!("records: flush after record {}: {e}", n - 1));
        }
        // Only now are these records durable: acknowledge them.
        for &(n, lba, units) in &group[..got] {
            println!("acked {n} {lba} {units}");
        }
    }
    println!("records: region full after {n} records");
    loop {
        time::sleep(Duration::from_secs(3600));
    }
}
