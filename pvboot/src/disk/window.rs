//! A partition: a bounds-checked byte window over a device.

use super::{check_range, DiskError, ReadAt};

/// `len` bytes of `inner` starting at byte `start`; reads outside fail.
#[derive(Clone)]
pub struct Partition<R> {
    inner: R,
    start: u64,
    len: u64,
}

impl<R: ReadAt> Partition<R> {
    /// A window over `inner`; fails unless it lies wholly inside `inner`.
    pub fn new(inner: R, start: u64, len: u64) -> Result<Self, DiskError> {
        let size = inner.size();
        match start.checked_add(len) {
            Some(end) if end <= size => Ok(Partition { inner, start, len }),
            _ => Err(DiskError::OutOfRange { offset: start, len, size }),
        }
    }

    /// First byte of the window on the device.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The device under the window.
    pub fn inner(&self) -> &R {
        &self.inner
    }
}

impl<R: ReadAt> ReadAt for Partition<R> {
    fn size(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        check_range(offset, buf.len(), self.len)?;
        self.inner.read_at(self.start + offset, buf)
    }
}
