//! A no_std reader for NetBSD and FreeBSD FFS (UFS1 and UFS2, both byte orders).
#![no_std]
