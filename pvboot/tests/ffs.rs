//! FFS images made by makefs (UFS1 and UFS2, both byte orders, several block sizes).

mod common;

use common::*;
use pvboot::fs::FsKind;

const FFS_CHECK: Check = Check { unix: true, extra: &[] };

fn ffs_image(name: &str, opts: &str, endian: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = scratch(name);
    let src = make_tree(&dir, TreeOpts { symlinks: true, big: 4 << 20, wide: 300, big_hole: true });
    let img = dir.join("ffs.img");
    run("makefs", &["-t", "ffs", "-B", endian, "-o", opts, img.to_str().unwrap(), src.to_str().unwrap()]);
    (img, src)
}

#[test]
fn ffs2_32k_4k() {
    let (img, src) = ffs_image("ffs2", "version=2,bsize=32768,fsize=4096", "le");
    let fs = mount_whole(&img);
    assert_eq!(fs.kind(), FsKind::Ffs2);
    compare_tree(&*fs, &src, FFS_CHECK);
    assert_eq!(fs.read_file("/dirlink/../../hello.txt", 1 << 20).unwrap(), b"hello, pvboot\n");
}

#[test]
fn ffs2_big_endian_16k() {
    let (img, src) = ffs_image("ffs2be", "version=2,bsize=16384,fsize=2048", "be");
    let fs = mount_whole(&img);
    assert_eq!(fs.kind(), FsKind::Ffs2);
    compare_tree(&*fs, &src, FFS_CHECK);
}

#[test]
fn ffs1_8k() {
    let (img, src) = ffs_image("ffs1", "version=1,bsize=8192,fsize=1024", "le");
    let fs = mount_whole(&img);
    assert_eq!(fs.kind(), FsKind::Ffs1);
    compare_tree(&*fs, &src, FFS_CHECK);
}
