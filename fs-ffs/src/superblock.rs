//! Finding, decoding and validating the superblock (`struct fs` in NetBSD's
//! sys/ufs/ffs/fs.h).
//!
//! Everything the rest of the crate computes from (block size, cylinder
//! group geometry, pointer width...) is checked here once, so the readers can
//! rely on power-of-two sizes and bounded shifts; what cannot be checked up
//! front (block numbers, inode numbers) is checked where it is used.

use crate::endian::{ByteOrder, Fields};
use crate::error::Error;

/// Superblock byte offsets tried, in NetBSD's SBLOCKSEARCH order: UFS2's
/// usual place, UFS1's usual place, floppies, and "piggy" disk labels.
pub(crate) const SBLOCKSEARCH: [u64; 4] = [65536, 8192, 0, 262_144];
/// Bytes read at each candidate location (SBLOCKSIZE).
pub(crate) const SBLOCKSIZE: usize = 8192;
/// Where the UFS2 superblock usually lives; an old-format UFS1 superblock
/// found here is the first backup of a 64K-block file system, not the primary.
const SBLOCK_UFS2: u64 = 65536;
/// `sizeof(struct fs)`: every field we use lies below this.
const SB_MIN_SIZE: usize = 1376;

/// Smallest and largest block sizes FFS allows (MINBSIZE, MAXBSIZE).
const MINBSIZE: u32 = 4096;
const MAXBSIZE: u32 = 65536;
/// Fragments are at least one disk sector (DEV_BSIZE).
const MINFSIZE: u32 = 512;
/// At most 8 fragments per block (MAXFRAG).
const MAXFRAG: u32 = 8;

const FS_UFS1_MAGIC: u32 = 0x0001_1954;
const FS_UFS2_MAGIC: u32 = 0x1954_0119;
const FS_UFS2EA_MAGIC: u32 = 0x1901_2038;
/// fs_old_flags bit: the 64-bit fields of the "new" (UFS2-era) layout are valid.
const FS_FLAGS_UPDATED: u8 = 0x80;
/// fs_old_inodefmt value of 4.4BSD inodes; smaller means 4.2BSD inodes.
const FS_44INODEFMT: i32 = 2;
/// fs_old_postblformat of 4.2BSD's static rotational tables.
const FS_42POSTBLFMT: i32 = -1;

/// Direct and indirect block pointers per inode (NDADDR, NIADDR).
pub(crate) const NDADDR: usize = 12;
pub(crate) const NIADDR: usize = 3;

// Byte offsets of struct fs fields.
const OFF_SBLKNO: usize = 8;
const OFF_IBLKNO: usize = 16;
const OFF_OLD_CGOFFSET: usize = 24;
const OFF_OLD_CGMASK: usize = 28;
const OFF_OLD_TIME: usize = 32;
const OFF_OLD_SIZE: usize = 36;
const OFF_NCG: usize = 44;
const OFF_BSIZE: usize = 48;
const OFF_FSIZE: usize = 52;
const OFF_FRAG: usize = 56;
const OFF_BMASK: usize = 72;
const OFF_FMASK: usize = 76;
const OFF_BSHIFT: usize = 80;
const OFF_FSHIFT: usize = 84;
const OFF_FRAGSHIFT: usize = 96;
const OFF_SBSIZE: usize = 104;
const OFF_NINDIR: usize = 116;
const OFF_INOPB: usize = 120;
const OFF_ID: usize = 144;
const OFF_IPG: usize = 184;
const OFF_FPG: usize = 188;
const OFF_OLD_FLAGS: usize = 211;
const OFF_FSMNT: usize = 212;
const OFF_VOLNAME: usize = 680;
const OFF_SBLOCKLOC: usize = 1000;
const OFF_TIME: usize = 1072;
const OFF_SIZE: usize = 1080;
const OFF_FLAGS: usize = 1312;
const OFF_MAXSYMLINKLEN: usize = 1320;
const OFF_OLD_INODEFMT: usize = 1324;
const OFF_OLD_POSTBLFORMAT: usize = 1356;
const OFF_MAGIC: usize = 1372;

/// Length of fs_fsmnt (MAXMNTLEN) and fs_volname (MAXVOLLEN).
const MAXMNTLEN: usize = 468;
const MAXVOLLEN: usize = 32;

/// Which FFS flavour an image is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Version {
    /// UFS1 (FFSv1): 128-byte inodes, 32-bit block pointers.
    Ufs1,
    /// UFS2 (FFSv2): 256-byte inodes, 64-bit block pointers.
    Ufs2,
    /// NetBSD 10's UFS2 with extended attributes: UFS2's inode layout under
    /// its own magic (FS_UFS2EA_MAGIC).
    Ufs2Ea,
}

/// A validated superblock, reduced to what the reader needs, in host units.
#[derive(Clone, Debug)]
pub(crate) struct Superblock {
    pub version: Version,
    pub order: ByteOrder,
    /// Byte offset the superblock was found at.
    pub location: u64,
    pub bsize: u32,
    pub fsize: u32,
    /// Fragments per block.
    pub frag: u32,
    pub bshift: u32,
    /// Number of cylinder groups.
    pub ncg: u32,
    /// Inodes per cylinder group.
    pub ipg: u32,
    /// Fragments per cylinder group.
    pub fpg: u64,
    /// Fragment offset of the inode table inside a cylinder group.
    pub iblkno: u64,
    /// UFS1 "rotating" cylinder group start (fs_old_cgoffset/fs_old_cgmask);
    /// 0 for UFS2 and for every file system newer than 4.3BSD.
    pub old_cgoffset: u64,
    pub old_cgmask: u32,
    /// File system size in fragments.
    pub size: u64,
    /// File system size in bytes (size * fsize), checked not to overflow.
    pub size_bytes: u64,
    /// Inodes per block.
    pub inopb: u32,
    /// Block pointers per indirect block.
    pub nindir: u32,
    /// Largest file size the block map can address (and the format allows).
    pub max_file_size: u64,
    /// Longest symlink stored inside the inode; 0 when there are no fast
    /// symlinks (4.2BSD format).
    pub maxsymlinklen: u32,
    /// Directory entries use the 4.2BSD layout (16-bit namlen, no d_type).
    pub old_dirfmt: bool,
    /// Inodes use the 4.2BSD layout (16-bit uid/gid at offset 4).
    pub old_inodefmt: bool,
    pub volname: [u8; MAXVOLLEN],
    pub fsmnt: [u8; MAXMNTLEN],
    pub id: [u32; 2],
    pub time: i64,
    pub flags: u32,
}

impl Superblock {
    /// Size in bytes of one on-disk inode.
    pub(crate) fn inode_size(&self) -> u32 {
        match self.version {
            Version::Ufs1 => 128,
            Version::Ufs2 | Version::Ufs2Ea => 256,
        }
    }

    /// Total number of inodes (ncg * ipg, checked to fit in 32 bits at parse time).
    pub(crate) fn inode_count(&self) -> u32 {
        self.ncg.saturating_mul(self.ipg)
    }

    /// Decodes the candidate superblock `buf` read from byte offset `loc`.
    ///
    /// `Ok(None)` means "no superblock here, keep searching" (no magic, or a
    /// backup copy); `Err` means the magic is there but the contents are not
    /// usable.
    pub(crate) fn parse(buf: &[u8], loc: u64) -> Result<Option<Superblock>, Error> {
        if buf.len() < SB_MIN_SIZE {
            return Ok(None);
        }
        let Some((version, order)) = detect_magic(buf) else {
            return Ok(None);
        };
        let f = Fields::new(buf, order);

        // Only UFS1 written by pre-UFS2 code lacks the 64-bit fields; NetBSD's
        // makefs and newfs set FS_FLAGS_UPDATED on the UFS1 they write.
        let old_layout = version == Version::Ufs1 && f.u8(OFF_OLD_FLAGS) & FS_FLAGS_UPDATED == 0;
        if old_layout {
            // fs_sblockloc is not defined there; the copy at 64K is cylinder
            // group 0's backup of a 64K-block file system.
            if loc == SBLOCK_UFS2 {
                return Ok(None);
            }
        } else if f.u64(OFF_SBLOCKLOC) != loc {
            // A backup superblock (e.g. cylinder group 0's copy), not the primary.
            return Ok(None);
        }

        let sbsize = f.i32(OFF_SBSIZE);
        if sbsize < SB_MIN_SIZE as i32 || sbsize > MAXBSIZE as i32 {
            return Err(Error::Corrupt("superblock size out of range"));
        }

        let bsize = pow2_field(f.i32(OFF_BSIZE), MINBSIZE, MAXBSIZE, "block size invalid")?;
        let fsize = pow2_field(f.i32(OFF_FSIZE), MINFSIZE, bsize, "fragment size invalid")?;
        let frag = bsize / fsize;
        if frag > MAXFRAG || f.i32(OFF_FRAG) != frag as i32 {
            return Err(Error::Corrupt("fragments per block inconsistent"));
        }
        let bshift = bsize.trailing_zeros();
        let fshift = fsize.trailing_zeros();
        // The derived fields must agree with the sizes: a mismatch means the
        // superblock is damaged, and the kernel would compute with them.
        if f.i32(OFF_BSHIFT) != bshift as i32
            || f.i32(OFF_FSHIFT) != fshift as i32
            || f.i32(OFF_FRAGSHIFT) != frag.trailing_zeros() as i32
            || f.i32(OFF_BMASK) != !(bsize as i32 - 1)
            || f.i32(OFF_FMASK) != !(fsize as i32 - 1)
        {
            return Err(Error::Corrupt(
                "block/fragment shifts or masks inconsistent",
            ));
        }

        let inode_size: u32 = if version == Version::Ufs1 { 128 } else { 256 };
        let ptr_size: u32 = if version == Version::Ufs1 { 4 } else { 8 };
        let inopb = bsize / inode_size;
        let nindir = bsize / ptr_size;
        if f.i32(OFF_INOPB) != inopb as i32 {
            return Err(Error::Corrupt("inodes per block inconsistent"));
        }
        if f.i32(OFF_NINDIR) != nindir as i32 {
            return Err(Error::Corrupt("pointers per indirect block inconsistent"));
        }

        let ncg = positive(f.i32(OFF_NCG), "no cylinder groups")?;
        let ipg = positive(f.i32(OFF_IPG), "no inodes per cylinder group")?;
        let fpg = u64::from(positive(f.i32(OFF_FPG), "no fragments per cylinder group")?);
        if ncg.checked_mul(ipg).is_none() {
            return Err(Error::Corrupt("too many inodes"));
        }
        let iblkno = u64::from(nonnegative(
            f.i32(OFF_IBLKNO),
            "inode table offset negative",
        )?);
        if f.i32(OFF_SBLKNO) < 0 {
            return Err(Error::Corrupt("superblock offset negative"));
        }
        // The inode table must fit in its cylinder group.
        let inode_frags = u64::from(ipg.div_ceil(inopb)) * u64::from(frag);
        if iblkno.checked_add(inode_frags).is_none_or(|end| end > fpg) {
            return Err(Error::Corrupt(
                "inode table does not fit in a cylinder group",
            ));
        }

        let (old_cgoffset, old_cgmask) = if version == Version::Ufs1 {
            let off = nonnegative(f.i32(OFF_OLD_CGOFFSET), "cylinder group offset negative")?;
            (u64::from(off), f.u32(OFF_OLD_CGMASK))
        } else {
            (0, 0)
        };

        let (size, time) = if old_layout {
            let s = nonnegative(f.i32(OFF_OLD_SIZE), "file system size negative")?;
            (u64::from(s), i64::from(f.i32(OFF_OLD_TIME)))
        } else {
            let s = f.i64(OFF_SIZE);
            if s < 0 {
                return Err(Error::Corrupt("file system size negative"));
            }
            (s as u64, f.i64(OFF_TIME))
        };
        if size == 0 {
            return Err(Error::Corrupt("file system size is zero"));
        }
        if u64::from(ncg)
            .checked_mul(fpg)
            .is_none_or(|total| size > total)
        {
            return Err(Error::Corrupt(
                "file system larger than its cylinder groups",
            ));
        }
        let size_bytes = size
            .checked_mul(u64::from(fsize))
            .ok_or(Error::Corrupt("file system size overflows"))?;

        // In 4.2BSD superblocks, fs_old_inodefmt and fs_maxsymlinklen lie in
        // the old rotational tables, whose unused entries are -1: that reads as
        // FS_42INODEFMT and "no fast symlinks", which is what such file
        // systems have.
        // The 4.2BSD rotational-table format predates 4.4BSD inodes, whatever
        // the table happens to hold at fs_old_inodefmt.
        let postbl42 = old_layout && f.i32(OFF_OLD_POSTBLFORMAT) == FS_42POSTBLFMT;
        let old_inodefmt =
            version == Version::Ufs1 && (postbl42 || f.i32(OFF_OLD_INODEFMT) < FS_44INODEFMT);
        let inline_max = (NDADDR + NIADDR) as u32 * ptr_size;
        let raw_maxsym = f.i32(OFF_MAXSYMLINKLEN);
        let maxsymlinklen = if old_inodefmt || raw_maxsym <= 0 {
            0
        } else if raw_maxsym as u32 > inline_max {
            return Err(Error::Corrupt("fast symlink length larger than the inode"));
        } else {
            raw_maxsym as u32
        };
        // Like NetBSD (IMNT_DTYPE iff um_maxsymlinklen > 0): file systems
        // without fast symlinks predate d_type too. UFS2 always has d_type.
        let old_dirfmt = version == Version::Ufs1 && maxsymlinklen == 0;

        let max_file_size = max_file_size(bsize, nindir, old_inodefmt);

        let mut volname = [0u8; MAXVOLLEN];
        copy_bytes(&mut volname, buf, OFF_VOLNAME);
        let mut fsmnt = [0u8; MAXMNTLEN];
        copy_bytes(&mut fsmnt, buf, OFF_FSMNT);
        let flags = if old_layout {
            u32::from(f.u8(OFF_OLD_FLAGS))
        } else {
            f.u32(OFF_FLAGS)
        };

        Ok(Some(Superblock {
            version,
            order,
            location: loc,
            bsize,
            fsize,
            frag,
            bshift,
            ncg,
            ipg,
            fpg,
            iblkno,
            old_cgoffset,
            old_cgmask,
            size,
            size_bytes,
            inopb,
            nindir,
            max_file_size,
            maxsymlinklen,
            old_dirfmt,
            old_inodefmt,
            volname,
            fsmnt,
            id: [f.u32(OFF_ID), f.u32(OFF_ID + 4)],
            time,
            flags,
        }))
    }

    /// Fragment address of the first fragment of cylinder group `cg`
    /// (NetBSD's cgstart()).
    pub(crate) fn cg_start(&self, cg: u32) -> Option<u64> {
        let base = u64::from(cg).checked_mul(self.fpg)?;
        if self.version != Version::Ufs1 {
            return Some(base);
        }
        // 4.2BSD staggered cylinder group metadata across platters.
        let rot = u64::from(cg & !self.old_cgmask);
        base.checked_add(self.old_cgoffset.checked_mul(rot)?)
    }
}

/// Recognises the three magics in either byte order.
fn detect_magic(buf: &[u8]) -> Option<(Version, ByteOrder)> {
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let version = match Fields::new(buf, order).u32(OFF_MAGIC) {
            FS_UFS1_MAGIC => Version::Ufs1,
            FS_UFS2_MAGIC => Version::Ufs2,
            FS_UFS2EA_MAGIC => Version::Ufs2Ea,
            _ => continue,
        };
        return Some((version, order));
    }
    None
}

/// Checks a size field is a power of two within `[min, max]`.
fn pow2_field(v: i32, min: u32, max: u32, what: &'static str) -> Result<u32, Error> {
    match u32::try_from(v) {
        Ok(v) if v.is_power_of_two() && v >= min && v <= max => Ok(v),
        _ => Err(Error::Corrupt(what)),
    }
}

fn positive(v: i32, what: &'static str) -> Result<u32, Error> {
    if v <= 0 {
        return Err(Error::Corrupt(what));
    }
    Ok(v as u32)
}

fn nonnegative(v: i32, what: &'static str) -> Result<u32, Error> {
    u32::try_from(v).map_err(|_| Error::Corrupt(what))
}

fn copy_bytes(dst: &mut [u8], src: &[u8], off: usize) {
    if let Some(s) = off.checked_add(dst.len()).and_then(|end| src.get(off..end)) {
        dst.copy_from_slice(s);
    }
}

/// Largest size the direct + single/double/triple indirect map can address,
/// capped by the format (4.2BSD: 2^39, like ffs_oldfscompat_read) and by
/// off_t.
fn max_file_size(bsize: u32, nindir: u32, old_inodefmt: bool) -> u64 {
    let n = u64::from(nindir);
    let blocks = (NDADDR as u64)
        .saturating_add(n)
        .saturating_add(n.saturating_mul(n))
        .saturating_add(n.saturating_mul(n).saturating_mul(n));
    let mut max = blocks.saturating_mul(u64::from(bsize)).min(i64::MAX as u64);
    if old_inodefmt {
        max = max.min(1 << 39);
    }
    max
}
