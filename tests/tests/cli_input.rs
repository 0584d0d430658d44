//! Hostile or careless input on the command line (issue 9): files that are
//! not files (a FIFO blocked `open` forever, /dev/zero grew the process to
//! gigabytes), huge configs, usage errors. Each gets one clear line and
//! exit 1, quickly, before any guest runs; no guest image is needed.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use xenolith_tests::*;

/// Far more than any of these needs; a FIFO used to hang until it.
const LIMIT: Duration = Duration::from_secs(20);

fn mkfifo(path: &Path) -> PathBuf {
    let ok = Command::new("mkfifo").arg(path).status().expect("run mkfifo").success();
    assert!(ok, "mkfifo {}", path.display());
    path.to_owned()
}

/// `xenolith ARGS` with its xenstored socket in `dir` (not /run/xenolith).
fn xenolith_in(dir: &Path, args: &[&OsStr]) -> Run {
    let mut cmd = Command::new(xenolith());
    cmd.args(args).env("XENOLITH_RUN_DIR", dir.join("run"));
    run_command(cmd, LIMIT)
}

fn create(dir: &Path, args: &[&str]) -> Run {
    let mut all = vec![OsStr::new("create")];
    all.extend(args.iter().map(OsStr::new));
    xenolith_in(dir, &all)
}

/// Exit 1 (never 2: that means "crashed"), one line starting `prefix`
/// that mentions every needle, no panic.
fn assert_error(run: &Run, prefix: &str, needles: &[&str]) {
    assert_eq!(run.code(), 1, "{run}");
    let lines: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(lines.len(), 1, "one error line\n{run}");
    for n in needles {
        assert!(lines[0].contains(n), "the error should mention {n:?}\n{run}");
    }
    assert!(!run.stderr.contains("panicked"), "{run}");
}

/// A config for a tiny kernel that halts at once, plus `more` lines.
fn cfg(dir: &Path, kernel: &Path, more: &str) -> String {
    let cfg = format!("name = \"in\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 32\n{more}", kernel.display());
    write_cfg(dir, "in.cfg", &cfg).display().to_string()
}

fn marker(dir: &Path) -> PathBuf {
    let k = dir.join("marker");
    std::fs::write(&k, marker_kernel(16 * 1024, "cli-input marker")).unwrap();
    k
}

#[test]
fn a_config_that_is_not_a_regular_file_is_refused() {
    let dir = scratch("cli_input_config");
    let fifo = mkfifo(&dir.join("fifo.cfg"));
    let run = create(&dir, &[fifo.to_str().unwrap()]);
    assert_error(&run, "xenolith:", &["config file", "fifo.cfg", "is a FIFO, not a regular file"]);
    let run = create(&dir, &["/dev/zero"]);
    assert_error(&run, "xenolith:", &["config file /dev/zero is a character device"]);
    let run = create(&dir, &[dir.to_str().unwrap()]);
    assert_error(&run, "xenolith:", &["is a directory"]);
}

#[test]
fn a_kernel_that_is_not_a_regular_file_is_refused() {
    let dir = scratch("cli_input_kernel");
    let fifo = mkfifo(&dir.join("kernel.fifo"));
    for kernel in [fifo.as_path(), Path::new("/dev/zero")] {
        let c = cfg(&dir, kernel, "");
        let log = dir.join("console.log");
        // The dry run and the real one read the kernel the same way.
        for args in [vec!["-n", &c], vec!["--console-log", log.to_str().unwrap(), &c]] {
            let run = create(&dir, &args);
            assert_error(&run, "xenolith:", &["kernel", &kernel.display().to_string(), "not a regular file"]);
        }
    }
}

#[test]
fn a_ramdisk_that_is_not_a_regular_file_is_refused() {
    let dir = scratch("cli_input_ramdisk");
    let kernel = marker(&dir);
    let fifo = mkfifo(&dir.join("ramdisk.fifo"));
    for ramdisk in [fifo.as_path(), Path::new("/dev/zero")] {
        let c = cfg(&dir, &kernel, &format!("ramdisk = \"{}\"\n", ramdisk.display()));
        let run = create(&dir, &["-n", &c]);
        assert_error(&run, "xenolith:", &["ramdisk", &ramdisk.display().to_string(), "not a regular file"]);
    }
}

#[test]
fn a_ramdisk_larger_than_memory_is_refused_before_it_is_read() {
    let dir = scratch("cli_input_big_ramdisk");
    let kernel = marker(&dir);
    let ramdisk = dir.join("ramdisk");
    // Sparse: 33 MiB that takes no room, for a 32 MiB domain.
    std::fs::File::create(&ramdisk).unwrap().set_len(33 << 20).unwrap();
    let c = cfg(&dir, &kernel, &format!("ramdisk = \"{}\"\n", ramdisk.display()));
    let run = create(&dir, &["-n", &c]);
    assert_error(&run, "xenolith:", &["ramdisk", "too large", "34603008 bytes"]);
}

#[test]
fn a_read_only_disk_that_is_a_fifo_is_refused() {
    let dir = scratch("cli_input_disk");
    let kernel = marker(&dir);
    let fifo = mkfifo(&dir.join("disk.fifo"));
    for spec in [format!("file:{},xvda,r", fifo.display()), "phy:/dev/zero,xvda,r".to_owned()] {
        let c = cfg(&dir, &kernel, &format!("disk = [ '{spec}' ]\n"));
        let log = dir.join("console.log");
        let run = create(&dir, &["--console-log", log.to_str().unwrap(), &c]);
        assert_error(&run, "xenolith:", &["not a regular file or a block device"]);
    }
}

#[test]
fn an_fstest_image_that_is_a_fifo_is_refused() {
    let dir = scratch("cli_input_fstest");
    let fifo = mkfifo(&dir.join("image.fifo"));
    for image in [fifo.to_str().unwrap(), "/dev/zero"] {
        let run = xenolith_in(&dir, &[OsStr::new("fstest"), OsStr::new(image), OsStr::new("probe")]);
        assert_error(&run, "xenolith fstest:", &[image, "not a regular file or a block device"]);
    }
}

#[test]
fn a_config_over_1_mib_is_refused() {
    let dir = scratch("cli_input_huge_config");
    let kernel = marker(&dir);
    let filler = "extra += \"0123456789abcdef\"\n".repeat(40_000);
    let c = cfg(&dir, &kernel, &format!("extra = \"\"\n{filler}"));
    let run = create(&dir, &["-n", &c]);
    assert_error(&run, "xenolith:", &["config file", "too large", "1048576"]);
}

#[test]
fn a_config_of_many_appends_parses_quickly() {
    // Just under 1 MiB of `+=` (to a key xl ignores: `extra` would make a
    // command line too long to boot): 2.7 MB of them took 16 s when each
    // append copied the whole value.
    let dir = scratch("cli_input_appends");
    let kernel = marker(&dir);
    let filler = format!("notes += \"{}\"\n", "x".repeat(40)).repeat(20_000);
    let c = cfg(&dir, &kernel, &filler);
    let start = Instant::now();
    let run = create(&dir, &["-n", &c]);
    assert_eq!(run.code(), 0, "{run}");
    // Linear: milliseconds; copying the value on each append: 8 GB moved.
    assert!(start.elapsed() < Duration::from_millis(1500), "took {:?}", start.elapsed());
}

#[test]
fn usage_errors_exit_1_not_2() {
    let dir = scratch("cli_input_usage");
    let kernel = marker(&dir);
    let c = cfg(&dir, &kernel, "");
    let bad_utf8 = OsStr::from_bytes(b"extra=\"\xff\"");
    let cases: [(&str, Vec<&OsStr>); 5] = [
        ("no config", vec![OsStr::new("create")]),
        ("no command", vec![]),
        ("unknown option", vec![OsStr::new("create"), OsStr::new("--frobnicate"), OsStr::new(&c)]),
        ("empty --console-log", vec![OsStr::new("create"), OsStr::new("--console-log"), OsStr::new(""), OsStr::new(&c)]),
        ("non-UTF-8 override", vec![OsStr::new("create"), OsStr::new("-n"), OsStr::new(&c), bad_utf8]),
    ];
    for (what, args) in cases {
        let run = xenolith_in(&dir, &args);
        assert_eq!(run.code(), 1, "{what}: {run}");
        assert!(run.stdout.is_empty() && !run.stderr.is_empty(), "{what}: the usage goes to stderr: {run}");
    }
    for help in ["--help", "--version"] {
        let run = xenolith_in(&dir, &[OsStr::new(help)]);
        assert_eq!(run.code(), 0, "{help}: {run}");
    }
    let run = xenolith_in(&dir, &[OsStr::new("--help")]);
    assert!(run.stdout.contains("Exit status"), "the help describes exit codes: {run}");
}
