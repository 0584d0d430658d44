//! The PV console ring (io/console.h) and the console_io hypercall.

/// CONSOLEIO_write: write `count` bytes from a guest buffer to Xen's console.
pub const CONSOLEIO_WRITE: u32 = 0;
/// CONSOLEIO_read: read from Xen's console (dom0 only).
pub const CONSOLEIO_READ: u32 = 1;

/// Size of the input (backend to guest) ring.
pub const IN_RING_SIZE: u32 = 1024;
/// Size of the output (guest to backend) ring.
pub const OUT_RING_SIZE: u32 = 2048;

/// struct xencons_interface: the shared console page.
///
/// Indices are free-running; a position is `index % ring size`.
#[repr(C)]
pub struct XenconsInterface {
    /// Bytes from the backend to the guest.
    pub input: [u8; IN_RING_SIZE as usize],
    /// Bytes from the guest to the backend.
    pub output: [u8; OUT_RING_SIZE as usize],
    /// Next input byte the guest will consume.
    pub in_cons: u32,
    /// Next input byte the backend will produce.
    pub in_prod: u32,
    /// Next output byte the backend will consume.
    pub out_cons: u32,
    /// Next output byte the guest will produce.
    pub out_prod: u32,
}
crate::assert_size!(XenconsInterface, 3088);

/// Byte offset of `in_cons` in the console page.
pub const IN_CONS: usize = core::mem::offset_of!(XenconsInterface, in_cons);
/// Byte offset of `in_prod` in the console page.
pub const IN_PROD: usize = core::mem::offset_of!(XenconsInterface, in_prod);
/// Byte offset of `out_cons` in the console page.
pub const OUT_CONS: usize = core::mem::offset_of!(XenconsInterface, out_cons);
/// Byte offset of `out_prod` in the console page.
pub const OUT_PROD: usize = core::mem::offset_of!(XenconsInterface, out_prod);
/// Byte offset of the output ring in the console page.
pub const OUTPUT: usize = core::mem::offset_of!(XenconsInterface, output);
/// Byte offset of the input ring in the console page.
pub const INPUT: usize = core::mem::offset_of!(XenconsInterface, input);
