//! Linux bzImage: the real-mode setup header and, after the setup sectors,
//! the protected-mode part holding the payload, a compressed vmlinux ELF
//! (Documentation/arch/x86/boot.rst). Xen's domain builder loads the
//! payload's ELF, not the bzImage's own decompressor
//! (tools/libs/guest/xg_dom_bzimageloader.c); so does pvboot.

use alloc::format;
use core::ops::Range;

use super::KernelError;

/// Offset of `setup_sects` (u8; 0 means 4).
const SETUP_SECTS: usize = 0x1f1;
/// Offset of the "HdrS" magic.
const HEADER: usize = 0x202;
/// Offset of the boot protocol version (u16).
const VERSION: usize = 0x206;
/// Offset of `payload_offset` (u32, protocol 2.08+).
const PAYLOAD_OFFSET: usize = 0x248;
/// Offset of `payload_length` (u32).
const PAYLOAD_LENGTH: usize = 0x24c;
/// The first protocol version with the payload fields.
pub const MIN_VERSION: u16 = 0x208;

/// Where a bzImage keeps its kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BzImage {
    /// The boot protocol version (0x20f for Linux 6.x).
    pub version: u16,
    /// The payload's file range.
    pub payload: Range<u64>,
}

/// Whether `head` (the first bytes of a file) has a Linux setup header.
pub fn is_bzimage(head: &[u8]) -> bool {
    head.get(HEADER..HEADER + 4) == Some(b"HdrS")
}

fn u32_at(head: &[u8], at: usize) -> u32 {
    head.get(at..at + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads the setup header from `head` (at least the first 0x250 bytes of a
/// file of `size` bytes) and finds the payload.
pub fn parse(head: &[u8], size: u64) -> Result<BzImage, KernelError> {
    if !is_bzimage(head) {
        return Err(KernelError::UnknownFormat("no Linux setup header (\"HdrS\" at 0x202)".into()));
    }
    if head.len() < PAYLOAD_LENGTH + 4 {
        return Err(KernelError::Malformed(format!("bzImage is cut short: {:#x} bytes", head.len())));
    }
    let version = u16::from_le_bytes([head[VERSION], head[VERSION + 1]]);
    if version < MIN_VERSION {
        return Err(KernelError::Unsupported(format!(
            "Linux boot protocol {}.{:02} has no payload fields (2.08 or later needed)",
            version >> 8,
            version & 0xff
        )));
    }
    let setup_sects = match head[SETUP_SECTS] {
        0 => 4,
        n => u64::from(n),
    };
    // The protected-mode code follows the boot sector and the setup sectors.
    let protected = (setup_sects + 1) * 512;
    let start = protected + u64::from(u32_at(head, PAYLOAD_OFFSET));
    let len = u64::from(u32_at(head, PAYLOAD_LENGTH));
    let end = start + len;
    if end > size {
        return Err(KernelError::Malformed(format!(
            "bzImage payload at [{start:#x}, {end:#x}) extends past the end of the file ({size:#x} bytes)"
        )));
    }
    if len < 4 {
        return Err(KernelError::Malformed(format!("bzImage payload is {len} bytes long")));
    }
    Ok(BzImage { version, payload: start..end })
}

/// The payload's decompressed size: its last 4 bytes, as every compressor
/// Linux builds with leaves it (gzip's ISIZE, or appended by the build).
pub fn uncompressed_size(payload: &[u8]) -> Option<u64> {
    let t = payload.len().checked_sub(4)?;
    Some(u64::from(u32_at(payload, t)))
}
