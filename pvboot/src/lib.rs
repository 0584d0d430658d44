//! The pvgrub replacement: disk, partition, file-system, boot-config and kernel-image code, plus the guest that uses it.
//!
//! - [`compress`]: compressed kernels and modules (gzip, xz, zstd, bzip2, lz4, lzo, lzma), detected by magic.
//! - [`disk`]: the block-device trait, the shared metadata cache and partition windows.
//! - [`partition`]: MBR, GPT and BSD disklabel tables, partition names and selectors.
//! - [`config`]: menu.lst, boot.cfg and grub.cfg into one menu model, and the domain command line.
//! - [`fs`]: the read-only file-system trait with FAT, ext2/3/4 and FFS behind it, and probing.
//! - [`volume`]: from a disk and an optional selector to a mounted file system.
//! - [`ui`]: the console menu, line editor and command prompt.
//! - [`kernel`]: kernel images (ELF PVH/PV) loaded straight into guest memory.
//! - [`nextboot`]: module placement and the multiboot 1 information for the next kernel.
//! - [`net`]: URLs, and TFTP and HTTP clients for network boot.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

include!("heap_size.rs");
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod compress;
pub mod config;
pub mod disk;
pub mod fs;
pub mod kernel;
pub mod net;
pub mod nextboot;
pub mod partition;
pub mod ui;
pub mod volume;
