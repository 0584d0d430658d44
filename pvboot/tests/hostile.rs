//! Images that lie about their own size (issue 12): every count a disk
//! supplies is checked before it drives an allocation or a loop, and the
//! mount or read fails with one line naming the field. Each image is a real
//! mke2fs/mkfs.fat image with one field patched.

mod common;

use common::*;
use pvboot::fs::FsError;
use std::path::{Path, PathBuf};

/// A small ext2 image (1 KiB blocks) with a slow symlink (target over 60 bytes).
fn ext2_image(name: &str) -> PathBuf {
    let dir = scratch(name);
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f.txt"), b"hello\n").unwrap();
    std::fs::write(src.join("f".repeat(100)), b"hello\n").unwrap();
    std::os::unix::fs::symlink("f".repeat(100), src.join("slow")).unwrap();
    let img = dir.join("ext.img");
    run("mke2fs", &["-q", "-F", "-t", "ext2", "-b", "1024", "-d", src.to_str().unwrap(), img.to_str().unwrap(), "4M"]);
    img
}

fn mount_err(img: &Path) -> String {
    match pvboot::fs::mount(open_disk(img)) {
        Ok(_) => panic!("{}: mounted", img.display()),
        Err(e) => e.to_string(),
    }
}

/// Superblock field offsets (in the superblock at byte 1024).
const S_BLOCKS_COUNT: u64 = 0x04;
const S_FIRST_DATA_BLOCK: u64 = 0x14;
const S_LOG_BLOCK_SIZE: u64 = 0x18;
const S_BLOCKS_PER_GROUP: u64 = 0x20;
const S_INODES_PER_GROUP: u64 = 0x28;
const S_INODE_SIZE: u64 = 0x58;
const S_FEATURE_INCOMPAT: u64 = 0x60;
const S_DESC_SIZE: u64 = 0xFE;
const S_BLOCKS_COUNT_HI: u64 = 0x150;

fn patch_sb(img: &Path, field: u64, value: &[u8]) {
    write_at(img, 1024 + field, value);
}

#[test]
fn ext_geometry_fields_are_checked_against_the_device() {
    let img = ext2_image("ext-geometry");
    // The unpatched image mounts and reads.
    let fs = mount_whole(&img);
    assert_eq!(fs.read_file("/f.txt", 100).unwrap(), b"hello\n");
    drop(fs);
    let pristine = std::fs::read(&img).unwrap();
    let u32le = |v: u32| v.to_le_bytes().to_vec();
    let u16le = |v: u16| v.to_le_bytes().to_vec();
    // 64bit with a bad descriptor size: the feature flag and the size.
    let incompat = u32::from_le_bytes(pristine[1024 + 0x60..1024 + 0x64].try_into().unwrap());
    // (field named in the error, superblock patches as (offset, bytes))
    type Patches = Vec<(u64, Vec<u8>)>;
    let cases: Vec<(&str, Patches)> = vec![
        ("s_log_block_size", vec![(S_LOG_BLOCK_SIZE, u32le(7))]),
        ("s_log_block_size", vec![(S_LOG_BLOCK_SIZE, u32le(21))]),
        ("s_blocks_count", vec![(S_BLOCKS_COUNT, u32le(4097))]),
        // What issue 12's 2 GiB allocation came from: a count the device cannot hold.
        ("s_blocks_count", vec![(S_BLOCKS_COUNT_HI, u32le(1))]),
        ("s_first_data_block", vec![(S_FIRST_DATA_BLOCK, u32le(4096))]),
        ("s_blocks_per_group", vec![(S_BLOCKS_PER_GROUP, u32le(0))]),
        ("s_blocks_per_group", vec![(S_BLOCKS_PER_GROUP, u32le(8193))]),
        ("s_inodes_per_group", vec![(S_INODES_PER_GROUP, u32le(0))]),
        ("s_inodes_per_group", vec![(S_INODES_PER_GROUP, u32le(8193))]),
        ("s_inode_size", vec![(S_INODE_SIZE, u16le(100))]),
        ("s_inode_size", vec![(S_INODE_SIZE, u16le(2048))]),
        ("s_desc_size", vec![(S_FEATURE_INCOMPAT, u32le(incompat | 0x80)), (S_DESC_SIZE, u16le(48))]),
        // 4095 groups of 1024-byte descriptors: 4 MiB from block 2 on a 4 MiB disk.
        (
            "s_blocks_per_group",
            vec![(S_FEATURE_INCOMPAT, u32le(incompat | 0x80)), (S_DESC_SIZE, u16le(1024)), (S_BLOCKS_PER_GROUP, u32le(1))],
        ),
    ];
    for (field, patches) in cases {
        std::fs::write(&img, &pristine).unwrap();
        for (off, v) in &patches {
            patch_sb(&img, *off, v);
        }
        let e = mount_err(&img);
        assert!(e.starts_with(&format!("corrupt file system: ext: {field} ")), "{patches:x?}: {e}");
    }
}

#[test]
fn ext_block_group_count_is_capped() {
    // 307199 groups of one block each on a (sparse) 300 MiB disk: every
    // field fits the device, but ext4-view would hold and read a descriptor
    // per group.
    let img = ext2_image("ext-groups");
    std::fs::OpenOptions::new().write(true).open(&img).unwrap().set_len(300 << 20).unwrap();
    patch_sb(&img, S_BLOCKS_COUNT, &(300u32 << 10).to_le_bytes());
    patch_sb(&img, S_BLOCKS_PER_GROUP, &1u32.to_le_bytes());
    let e = mount_err(&img);
    assert!(e.starts_with("corrupt file system: ext: s_blocks_per_group 1 makes 307199 block groups"), "{e}");
}

/// Byte offset of `path`'s inode in `img`, from debugfs.
fn inode_offset(img: &Path, path: &str) -> u64 {
    let out = std::process::Command::new("debugfs").args(["-R", &format!("imap {path}"), img.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // "located at block 38, offset 0x0b00"
    let at = text.split("located at block ").nth(1).unwrap_or_else(|| panic!("debugfs imap: {text}"));
    let (block, rest) = at.split_once(", offset 0x").unwrap();
    let offset = u64::from_str_radix(rest.trim(), 16).unwrap();
    block.parse::<u64>().unwrap() * 1024 + offset
}

#[test]
fn ext_symlink_size_is_checked_before_reading_it() {
    let img = ext2_image("ext-symlink");
    let ino = inode_offset(&img, "/slow");
    let fs = mount_whole(&img);
    assert_eq!(fs.read_file("/slow", 100).unwrap(), b"hello\n");
    drop(fs);
    // i_size 3 GiB: ext4-view 1.0 would allocate that much to read the target.
    write_at(&img, ino + 4, &0xC000_0000u32.to_le_bytes());
    let fs = mount_whole(&img);
    for path in ["/slow", "/slow/x"] {
        let e = fs.lookup(path).unwrap_err().to_string();
        assert_eq!(e, "corrupt file system: ext: symlink i_size 3221225472 (targets are at most 4096 bytes)", "{path}");
    }
    let link = fs.lookup_nofollow("/slow").unwrap();
    assert!(matches!(fs.read_link(&link), Err(FsError::Corrupt(_))));
    assert_eq!(fs.read_file("/f.txt", 100).unwrap(), b"hello\n");
}

/// A FAT12 image holding /BIG.TXT, and the offset of its directory entry.
fn fat_image(name: &str) -> (PathBuf, u64) {
    let dir = scratch(name);
    let file = dir.join("BIG.TXT");
    std::fs::write(&file, b"big\n").unwrap();
    let img = dir.join("fat.img");
    run("mkfs.fat", &["-C", "-F", "12", img.to_str().unwrap(), "1024"]);
    run("mcopy", &["-i", img.to_str().unwrap(), file.to_str().unwrap(), "::/"]);
    let data = std::fs::read(&img).unwrap();
    let entry = data.windows(11).position(|w| w == b"BIG     TXT").unwrap() as u64;
    (img, entry)
}

#[test]
fn fat_total_sectors_must_fit_the_volume() {
    let (img, _) = fat_image("fat-total");
    let fs = mount_whole(&img);
    assert_eq!(fs.read_file("/big.txt", 100).unwrap(), b"big\n");
    drop(fs);
    // The disk ends 8 sectors before the BPB's total says.
    std::fs::OpenOptions::new().write(true).open(&img).unwrap().set_len((1 << 20) - 4096).unwrap();
    let e = pvboot::fs::fat::FatFs::open(open_disk(&img)).err().unwrap().to_string();
    assert_eq!(e, "corrupt file system: FAT: total sectors past the end of the volume");
}

#[test]
fn fat_file_size_must_fit_the_data_area() {
    let (img, entry) = fat_image("fat-size");
    // DIR_FileSize 4 GiB - 1 on a 1 MiB volume: reading at the end would walk
    // millions of chain links.
    write_at(&img, entry + 28, &u32::MAX.to_le_bytes());
    let fs = mount_whole(&img);
    let n = fs.lookup("/big.txt").unwrap();
    let mut b = [0u8; 16];
    let e = fs.read_at(&n, u64::from(u32::MAX) - 16, &mut b).unwrap_err();
    assert_eq!(e.to_string(), "corrupt file system: FAT: file size larger than the data area");
}
