//! The pvgrub replacement: disk, partition, file-system, boot-config and kernel-image code, plus the guest that uses it.
#![no_std]
