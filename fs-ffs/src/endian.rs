//! Byte-order-aware field access for on-disk structures.

/// Byte order of the on-disk structures, detected from the superblock magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Little endian (x86, arm, most NetBSD/FreeBSD ports).
    Little,
    /// Big endian (sparc64, powerpc, m68k...; also `makefs -B be`).
    Big,
}

/// A view of on-disk bytes decoded in the file system's byte order.
///
/// Reads past the end of the slice return 0: callers only read fields of
/// buffers whose length they have already checked, so this never hides
/// corruption, and it keeps the decoders free of panicking index operations.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    data: &'a [u8],
    order: ByteOrder,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(data: &'a [u8], order: ByteOrder) -> Self {
        Fields { data, order }
    }

    fn array<const N: usize>(&self, off: usize) -> [u8; N] {
        off.checked_add(N)
            .and_then(|end| self.data.get(off..end))
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .unwrap_or([0; N])
    }

    pub(crate) fn u8(&self, off: usize) -> u8 {
        self.data.get(off).copied().unwrap_or(0)
    }

    pub(crate) fn u16(&self, off: usize) -> u16 {
        let a = self.array::<2>(off);
        match self.order {
            ByteOrder::Little => u16::from_le_bytes(a),
            ByteOrder::Big => u16::from_be_bytes(a),
        }
    }

    pub(crate) fn u32(&self, off: usize) -> u32 {
        let a = self.array::<4>(off);
        match self.order {
            ByteOrder::Little => u32::from_le_bytes(a),
            ByteOrder::Big => u32::from_be_bytes(a),
        }
    }

    pub(crate) fn i32(&self, off: usize) -> i32 {
        self.u32(off) as i32
    }

    pub(crate) fn u64(&self, off: usize) -> u64 {
        let a = self.array::<8>(off);
        match self.order {
            ByteOrder::Little => u64::from_le_bytes(a),
            ByteOrder::Big => u64::from_be_bytes(a),
        }
    }

    pub(crate) fn i64(&self, off: usize) -> i64 {
        self.u64(off) as i64
    }
}
