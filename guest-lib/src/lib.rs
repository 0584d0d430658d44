//! Xenolith's no_std library OS for Xen PVH (and PV) guests.
#![no_std]
