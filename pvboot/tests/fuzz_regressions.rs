//! Replays every input the fuzzers found (tests/fuzz-inputs/<target>/) through
//! the same target code (fuzz/fuzz_targets/common/targets.rs), under the same
//! 64 MiB heap limit (pvboot::HEAP_MAX) (fuzz/fuzz_targets/common/heap.rs, this binary's global
//! allocator): a regression panics, or aborts on the refused allocation. In
//! a release build each input must also finish within [`MAX_SECONDS`], so
//! that the inputs of timeout findings (pvboot_probe's looping FAT
//! directory) fail the test if their slow path comes back.
//!
//! One test, so the inputs run one after another and the heap count is
//! theirs alone.

#[path = "../fuzz/fuzz_targets/common/mod.rs"]
mod fuzz_common;

use std::path::Path;
use std::time::Instant;

use fuzz_common::targets;

/// Longest one input may take in a release build. The fuzz campaigns' timeout
/// is 10 s (libFuzzer's coverage instrumentation makes a run a few times
/// slower than here); these inputs take milliseconds, and the looping FAT
/// directories about 1 s each before their fix.
const MAX_SECONDS: f64 = 0.5;

/// A fuzz target's body.
type Target = fn(&[u8]);

/// Each fuzz target with a directory of saved inputs.
const TARGETS: [(&str, Target); 7] = [
    ("pvboot_ext", targets::ext),
    ("pvboot_fat", targets::fat),
    ("pvboot_probe", targets::probe),
    ("pvboot_mbr", targets::mbr),
    ("pvboot_gpt", targets::gpt),
    ("pvboot_disklabel", targets::disklabel),
    ("pvboot_zstd", |data| fuzz_common::decompress_both(pvboot::compress::Compression::Zstd, data)),
];

#[test]
fn replay_fuzz_findings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-inputs");
    let mut replayed = 0;
    for (target, run) in TARGETS {
        let dir = root.join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            eprint!("replaying {target} {}", f.display());
            let data = std::fs::read(&f).unwrap();
            let start = Instant::now();
            run(&data);
            let took = start.elapsed().as_secs_f64();
            eprintln!("  {:.1} ms", took * 1e3);
            assert!(
                cfg!(debug_assertions) || took < MAX_SECONDS,
                "{target} {}: {took:.1} s (at most {MAX_SECONDS} s)",
                f.display()
            );
            replayed += 1;
        }
    }
    // The directory holds the ext findings of issue 12 at least.
    assert!(replayed >= 2, "no fuzz inputs found under {}", root.display());
}
