//! File-system labels and UUIDs (for grub.cfg `search --label/--fs-uuid`
//! and `root=UUID=`) on images made by mkfs.fat, mke2fs and makefs, checked
//! against what blkid reads from the same image.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use common::*;
use pvboot::config::{RootSpec, SearchBy};
use pvboot::fs::{uuid_matches, FileSystem};

/// `blkid -p -o export` of an image: LABEL, UUID, TYPE, ...
fn blkid(img: &Path) -> HashMap<String, String> {
    let out = Command::new("blkid").args(["-p", "-o", "export"]).arg(img).output().expect("blkid (util-linux) is installed");
    assert!(out.status.success(), "blkid {}: {}", img.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), unescape(v))))
        .collect()
}

/// Undoes `-o export`'s shell escaping (`PV\ BOOT`).
fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next().unwrap_or(c) } else { c });
    }
    out
}

fn search(by: SearchBy, value: &str) -> RootSpec {
    RootSpec::Search { by, value: value.to_string() }
}

/// The image's label and UUID match blkid's, and searches find it by them.
fn check_against_blkid(fs: &dyn FileSystem, img: &Path) {
    let b = blkid(img);
    assert_eq!(fs.label(), b.get("LABEL").cloned(), "label vs blkid {b:?}");
    assert_eq!(fs.uuid(), b.get("UUID").cloned(), "uuid vs blkid {b:?}");
    if let Some(l) = fs.label() {
        assert!(search(SearchBy::Label, &l).matches(fs));
        assert!(!search(SearchBy::Label, &format!("{l}x")).matches(fs));
    }
    if let Some(u) = fs.uuid() {
        assert!(search(SearchBy::FsUuid, &u.to_lowercase()).matches(fs), "GRUB ignores the case of UUIDs");
        assert!(search(SearchBy::FsUuid, &u.to_uppercase()).matches(fs));
        assert!(!search(SearchBy::FsUuid, "0000-0001").matches(fs));
    }
}

fn fat(name: &str, bits: &str, kib: &str, extra: &[&str]) -> (Box<dyn FileSystem>, std::path::PathBuf) {
    let dir = scratch(name);
    let img = dir.join("fat.img");
    let mut args = vec!["-C", "-F", bits, "-s", "1"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[img.to_str().unwrap(), kib]);
    run("mkfs.fat", &args);
    let f = dir.join("marker");
    std::fs::write(&f, b"x").unwrap();
    run("mcopy", &["-i", img.to_str().unwrap(), f.to_str().unwrap(), "::/MARKER"]);
    (mount_whole(&img), img)
}

#[test]
fn fat_labels_and_serials() {
    for (bits, kib) in [("12", "1024"), ("16", "8192"), ("32", "40000")] {
        let (fs, img) = fat(&format!("label-fat{bits}"), bits, kib, &["-n", "PV BOOT", "-i", "ABCD1234"]);
        assert_eq!(fs.label().as_deref(), Some("PV BOOT"), "FAT{bits}: inner blank kept, padding dropped");
        assert_eq!(fs.uuid().as_deref(), Some("ABCD-1234"), "FAT{bits}");
        check_against_blkid(&*fs, &img);
        assert!(search(SearchBy::File, "/marker").matches(&*fs), "FAT names are case-insensitive");
        assert!(!search(SearchBy::File, "/missing").matches(&*fs));
        assert!(!RootSpec::Device("(hd0,1)".into()).matches(&*fs));
    }
    // No -n: mkfs.fat writes "NO NAME" in the boot sector only, which is no label.
    let (fs, img) = fat("label-fat-none", "16", "8192", &["-i", "0000BEEF"]);
    assert_eq!(fs.label(), None);
    assert_eq!(fs.uuid().as_deref(), Some("0000-BEEF"));
    check_against_blkid(&*fs, &img);
}

/// The root directory's label entry wins over the boot sector's (mlabel
/// rewrites both; here the boot sector keeps the old one), as blkid decides.
#[test]
fn fat_root_directory_label_wins() {
    let (_, img) = fat("label-fat-root", "16", "8192", &["-n", "OLD", "-i", "12345678"]);
    let boot = std::fs::read(&img).unwrap()[..512].to_vec();
    run("mlabel", &["-i", img.to_str().unwrap(), "::NEW NAME"]);
    write_at(&img, 0, &boot);
    let fs = mount_whole(&img);
    assert_eq!(fs.label().as_deref(), Some("NEW NAME"));
    check_against_blkid(&*fs, &img);
}

#[test]
fn ext_labels_and_uuids() {
    let uuid = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
    for kind in ["ext2", "ext4"] {
        let dir = scratch(&format!("label-{kind}"));
        let img = dir.join("ext.img");
        run("mke2fs", &["-q", "-F", "-t", kind, "-L", "my-root", "-U", uuid, img.to_str().unwrap(), "4M"]);
        let fs = mount_whole(&img);
        assert_eq!(fs.label().as_deref(), Some("my-root"), "{kind}");
        assert_eq!(fs.uuid().as_deref(), Some(uuid), "{kind}");
        check_against_blkid(&*fs, &img);
        assert!(search(SearchBy::File, "/lost+found").matches(&*fs));
    }
    let dir = scratch("label-ext-none");
    let img = dir.join("ext.img");
    run("mke2fs", &["-q", "-F", "-t", "ext4", img.to_str().unwrap(), "4M"]);
    let fs = mount_whole(&img);
    assert_eq!(fs.label(), None);
    check_against_blkid(&*fs, &img);
}

/// Where makefs put the superblock (64K, 8K, 0 or 256K, as fs-ffs looks),
/// and its byte order.
fn ffs_superblock(img: &Path) -> (u64, bool) {
    let b = std::fs::read(img).unwrap();
    for off in [65536usize, 8192, 0, 262144] {
        let m = &b[off + 1372..off + 1376];
        for magic in [0x1954_0119u32, 0x0001_1954] {
            if m == magic.to_le_bytes() {
                return (off as u64, false);
            }
            if m == magic.to_be_bytes() {
                return (off as u64, true);
            }
        }
    }
    panic!("{}: no FFS superblock", img.display());
}

/// Offset of fs_volname in struct fs (NetBSD's ffs/fs.h; UFS2's volume name).
const FS_VOLNAME: u64 = 680;

#[test]
fn ffs_volume_names_and_ids() {
    for (version, endian) in [("2", "le"), ("2", "be"), ("1", "le")] {
        let dir = scratch(&format!("label-ffs{version}{endian}"));
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("boot")).unwrap();
        std::fs::write(src.join("boot/netbsd"), b"kernel").unwrap();
        let img = dir.join("ffs.img");
        run(
            "makefs",
            &["-t", "ffs", "-B", endian, "-o", &format!("version={version}"), "-s", "4m", img.to_str().unwrap(), src.to_str().unwrap()],
        );
        let fs = mount_whole(&img);
        assert_eq!(fs.label(), None, "makefs leaves fs_volname empty");
        let uuid = fs.uuid().expect("makefs sets fs_id (time, random)");
        assert_eq!(uuid.len(), 16);
        assert!(uuid.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{uuid}");
        assert!(search(SearchBy::File, "/boot/netbsd").matches(&*fs));
        // blkid reads only little-endian UFS here; GRUB's form is the same "%08x%08x".
        if endian == "le" {
            check_against_blkid(&*fs, &img);
        }
        drop(fs);
        // makefs (Debian's 20190105) has no label= option: write fs_volname
        // as FreeBSD's tunefs -L does. blkid reports it for UFS2.
        let (sb, _) = ffs_superblock(&img);
        write_at(&img, sb + FS_VOLNAME, b"netbsd-root\0");
        let fs = mount_whole(&img);
        assert_eq!(fs.label().as_deref(), Some("netbsd-root"));
        assert_eq!(fs.uuid().as_deref(), Some(uuid.as_str()));
        if version == "2" && endian == "le" {
            check_against_blkid(&*fs, &img);
        }
        assert!(search(SearchBy::Label, "netbsd-root").matches(&*fs));
    }
}

#[test]
fn uuid_comparison_ignores_case_only() {
    assert!(uuid_matches("ABCD-1234", "abcd-1234"));
    assert!(uuid_matches("1b4e28ba-2fa1-11d2-883f-0016d3cca427", "1B4E28BA-2FA1-11D2-883F-0016D3CCA427"));
    assert!(!uuid_matches("ABCD-1234", "ABCD1234"));
    assert!(!uuid_matches("ABCD-1234", "ABCD-12345"));
}
