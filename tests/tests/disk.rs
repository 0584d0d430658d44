//! The block path end to end: the disk-check guest reads its disk through
//! blkfront (grant tables, xenstore, xenbus) from the hypervisor's blkback,
//! hashes it, writes and flushes a pattern, and the host checks the image.
//!

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use xenolith_tests::*;

/// Hashing 256 KiB in the guest costs ~15 million emulated instructions.
const LIMIT: Duration = Duration::from_secs(180);
const IMAGE: usize = 256 * 1024;
const SCRATCH: u64 = 64 * 1024;

/// disk-check's pattern word at byte offset `o` (see its module docs).
fn pattern_word(o: u64, seed: u64) -> u64 {
    ((o / 8) ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn expect_pattern(img: &[u8], offset: u64, len: u64, seed: u64) {
    for i in (0..len).step_by(8) {
        let at = (offset + i) as usize;
        let got = u64::from_le_bytes(img[at..at + 8].try_into().unwrap());
        assert_eq!(got, pattern_word(offset + i, seed), "pattern differs at byte {at}");
    }
}

fn cfg(dir: &Path, img: &Path, mode: &str, extra: &str) -> PathBuf {
    let text = format!(
        "# written by the disk test\nname = \"disk-check\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\n\
         disk = [ 'file:{},xvda,{mode}' ]\nextra = \"{extra}\"\n",
        guest("disk-check").display(),
        img.display()
    );
    write_cfg(dir, "disk.cfg", &text)
}

/// Boots disk-check with `cfg` and waits for it to end.
fn boot(cfg: &Path) -> Run {
    xenolith_run(&["run", "-c", cfg.to_str().unwrap()], LIMIT)
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("run sha256sum");
    assert!(out.status.success(), "sha256sum failed");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn the_guest_hashes_its_disk_as_the_host_does() {
    let dir = scratch("disk_sha256");
    let img = dir.join("disk.img");
    std::fs::write(&img, image_bytes(IMAGE, 7)).unwrap();
    let want = sha256sum(&img);
    // nowrite: the image must stay what was hashed.
    let run = boot(&cfg(&dir, &img, "w", "nowrite"));
    assert_eq!(run.code(), 0, "{run}");
    assert!(
        run.stdout
            .contains(&format!("{IMAGE} bytes, 512-byte sectors, read-write")),
        "{run}"
    );
    let got = run
        .stdout
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("sha256: ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no sha256 line\n{run}"));
    assert_eq!(got, want, "{run}");
    assert!(run.stdout.contains("disk-check: closed device/vbd/51712"), "{run}");
    assert!(run.stdout.contains("disk-check: done"), "{run}");
    assert_eq!(sha256sum(&img), want, "the image changed");
}

#[test]
fn a_disk_closed_and_opened_again_after_the_domain_was_remapped_reads_the_same() {
    let dir = scratch("disk_reopen");
    let img = dir.join("disk.img");
    std::fs::write(&img, image_bytes(IMAGE, 23)).unwrap();
    let want = sha256sum(&img);
    // The guest does what a boot loader and the kernel after it do: close
    // the disk (Closing -> Closed, grants ended, port closed), close and
    // rebind VIRQ_TIMER, move shared info and grant frame 0 to a hole and
    // back (populating the frames they leave), set the grant table, upcall
    // vector and hypercall page up again, then open the disk afresh with
    // other features.
    let run = boot(&cfg(&dir, &img, "w", "nowrite reopen remap"));
    assert_eq!(run.code(), 0, "{run}");
    let remap: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("remap: ")).collect();
    assert!(remap.iter().all(|l| l.starts_with("remap: ok ")), "{run}");
    for step in [
        "shared info moves to a hole above RAM",
        "the frame it left is a hole (reads all ones)",
        "populate_physmap fills that hole with RAM",
        "grant frame 0 moves to the hole with its entries",
        "the domain holds as many pages as before",
        "hypercall page written again elsewhere",
        "timer after the moves",
    ] {
        assert!(remap.iter().any(|l| l.contains(step)), "missing {step:?}\n{run}");
    }
    let hashes: Vec<&str> = run.stdout.lines().filter_map(|l| l.trim_end().strip_prefix("sha256: ")).collect();
    assert_eq!(hashes, [want.as_str(), want.as_str()], "{run}");
    let features: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("features: ")).collect();
    assert_eq!(features.len(), 2, "{run}");
    assert!(features[0].contains("ring 4 page(s) (128 slots), 256 segments per request (indirect), persistent grants yes"), "{run}");
    assert!(features[1].contains("ring 1 page(s) (32 slots), 11 segments per request, persistent grants no"), "{run}");
    assert!(run.stdout.contains("disk-check: VIRQ_TIMER bound again on port"), "{run}");
    assert_eq!(run.stdout.matches("disk-check: closed device/vbd/51712").count(), 2, "{run}");
    assert!(run.stdout.contains("disk-check: done"), "{run}");
}

#[test]
fn a_disk_left_connected_by_a_crashed_kernel_is_reset_and_read_again() {
    let dir = scratch("disk_abandon");
    let img = dir.join("disk.img");
    std::fs::write(&img, image_bytes(IMAGE, 29)).unwrap();
    let want = sha256sum(&img);
    // The first "kernel" leaves the disk connected (ring, persistent grants,
    // port); the next one finds the backend Connected, resets the device
    // (Closed, Initialising) and connects afresh.
    let run = boot(&cfg(&dir, &img, "w", "nowrite reopen abandon"));
    assert_eq!(run.code(), 0, "{run}");
    let hashes: Vec<&str> = run.stdout.lines().filter_map(|l| l.trim_end().strip_prefix("sha256: ")).collect();
    assert_eq!(hashes, [want.as_str(), want.as_str()], "{run}");
    assert!(run.stdout.contains("disk-check: abandoned device/vbd/51712 without closing it"), "{run}");
    assert_eq!(run.stdout.matches("disk-check: closed device/vbd/51712").count(), 1, "{run}");
    assert!(run.stdout.contains("disk-check: done"), "{run}");
}

#[test]
fn the_written_pattern_is_on_the_image_after_the_domain_ends() {
    let dir = scratch("disk_pattern");
    let img = dir.join("disk.img");
    let orig = image_bytes(IMAGE, 11);
    std::fs::write(&img, &orig).unwrap();
    // The default region (the last 64 KiB) and a named one.
    let run = boot(&cfg(&dir, &img, "w", "hash-max=0 seed=0x1234"));
    assert_eq!(run.code(), 0, "{run}");
    for line in [
        "features: ring 4 page(s) (128 slots), 256 segments per request (indirect), persistent grants yes",
        "write: 65536 bytes at offset 196608",
        "flush: ok",
        "verify: ok",
        "disk-check: done",
    ] {
        assert!(run.stdout.contains(line), "missing {line:?}\n{run}");
    }
    let after = std::fs::read(&img).unwrap();
    expect_pattern(&after, IMAGE as u64 - SCRATCH, SCRATCH, 0x1234);
    assert_eq!(
        &after[..IMAGE - SCRATCH as usize],
        &orig[..IMAGE - SCRATCH as usize],
        "outside the scratch region"
    );

    let run = boot(&cfg(&dir, &img, "w", "hash-max=0 seed=5 scratch=4096:12288"));
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("write: 12288 bytes at offset 4096"), "{run}");
    expect_pattern(&std::fs::read(&img).unwrap(), 4096, 12288, 5);
}

#[test]
fn limited_negotiation_still_moves_the_data() {
    // One-page ring, direct requests of 11 segments (so a 256 KiB write is
    // six requests in flight together), one-shot grants, and a misaligned
    // read-back buffer (the bounce path).
    let dir = scratch("disk_limited");
    let img = dir.join("disk.img");
    std::fs::write(&img, image_bytes(IMAGE, 13)).unwrap();
    let extra = format!("hash-max=0 seed=77 scratch=0:{IMAGE} persistent=0 indirect=0 ring-order=0 unaligned");
    let run = boot(&cfg(&dir, &img, "w", &extra));
    assert_eq!(run.code(), 0, "{run}");
    assert!(
        run.stdout
            .contains("features: ring 1 page(s) (32 slots), 11 segments per request, persistent grants no"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains(&format!("verify: ok ({IMAGE} bytes at offset 0, unaligned)")),
        "{run}"
    );
    expect_pattern(&std::fs::read(&img).unwrap(), 0, IMAGE as u64, 77);
}

#[test]
fn data_acknowledged_after_a_flush_survives_kill_9_of_the_hypervisor() {
    let dir = scratch("disk_kill9");
    let img = dir.join("disk.img");
    std::fs::write(&img, image_bytes(IMAGE, 3)).unwrap();
    let cfg = cfg(&dir, &img, "w", "hash-max=0 seed=99 hold");
    let mut child = Command::new(xenolith())
        .args(["run", "-c"])
        .arg(&cfg)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn xenolith");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let flushed = loop {
        match rx.recv_timeout(LIMIT) {
            Ok(l) if l.trim_end() == "disk-check: flushed" => break true,
            Ok(l) => seen.push(l),
            Err(_) => break false,
        }
    };
    // SIGKILL: no chance to flush or close anything on the way out.
    child.kill().expect("kill -9 xenolith");
    let status = child.wait().unwrap();
    assert!(flushed, "no flush marker before the limit\n{}", seen.join("\n"));
    assert!(!status.success(), "xenolith was killed: {status}");
    expect_pattern(&std::fs::read(&img).unwrap(), IMAGE as u64 - SCRATCH, SCRATCH, 99);
}

#[test]
fn a_read_only_disk_refuses_writes_and_the_guest_says_so() {
    let dir = scratch("disk_readonly");
    let img = dir.join("disk.img");
    let orig = image_bytes(IMAGE, 5);
    std::fs::write(&img, &orig).unwrap();
    let run = boot(&cfg(&dir, &img, "r", "hash-max=0"));
    assert_eq!(run.code(), 0, "a refused write is reported, not a crash\n{run}");
    assert!(run.stdout.contains("read-only"), "{run}");
    assert!(
        run.stdout.contains("error: write refused: device is read-only"),
        "{run}"
    );
    assert!(
        run.stdout.contains("disk-check: read-only disk, write test skipped"),
        "{run}"
    );
    assert!(!run.stdout.contains("disk-check: flushed"), "{run}");
    assert_eq!(std::fs::read(&img).unwrap(), orig, "the image changed");
}

/// Seeds whose trials take the `barrier-no-persistent-no-indirect`,
/// `no-indirect` and `no-persistent` paths, each killed after its first
/// ack; the first two on a loop device (`phy:`), the last on the file.
const KILL9_TEST_SEEDS: [u64; 3] = [2, 6, 13];

/// The kill -9 trials of `cargo xtask fuzz kill9` (tests/src/kill9.rs),
/// three seeds' worth: every record acknowledged after its flush is intact
/// after SIGKILL, whatever the block path (the seeds pick three variants).
#[test]
fn records_acknowledged_before_a_kill_9_are_all_intact() {
    let dir = scratch("disk_kill9_records");
    let mut acked = 0;
    let mut variants = Vec::new();
    let mut phy = Vec::new();
    for seed in KILL9_TEST_SEEDS {
        let t = kill9_trial(&dir, seed).unwrap_or_else(|e| panic!("{e}"));
        assert!(t.lost.is_empty(), "seed {seed} ({}): acknowledged records lost: {:?}", t.variant, t.lost);
        acked += t.acked;
        variants.push(t.variant);
        phy.push(t.phy);
    }
    assert_eq!(phy, [true, true, false], "the seeds should use a loop device, then the file");
    variants.dedup();
    assert!(acked > 0, "no record was acknowledged: the trials checked nothing");
    assert_eq!(variants.len(), KILL9_TEST_SEEDS.len(), "the seeds should take different paths: {variants:?}");
}
