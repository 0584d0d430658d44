//! The hand-made hostile and careless cases of issue 9 as one table: bad
//! configurations and kernels, files that are not files, oversized inputs,
//! usage errors and settings Xenolith cannot honour. Each case is a
//! `xenolith` command line with the files it names, and what it must give:
//! the documented exit code, one `xenolith...:` line that says what and
//! where, never a panic, a signal or a hang. Run by tests/tests/hand_made.rs
//! and `cargo xtask fuzz hand-made` (which also counts the cases that need
//! more than a command line: damaged file-system images, signals on a
//! terminal, pvboot's hostile images), docs/reliability.md.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{guest, marker_kernel, run_command, write_cfg, xenolith, Run};

/// Far more than any case needs: a FIFO used to hang until it.
pub const HAND_MADE_LIMIT: Duration = Duration::from_secs(20);

/// What a case must give.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Exit 1 and exactly one stderr line starting with `prefix` that
    /// mentions every needle (compared without case), nothing on stdout.
    Error {
        /// `xenolith:` or `xenolith fstest:`.
        prefix: &'static str,
        /// What the line must name.
        needles: Vec<String>,
    },
    /// A usage error: exit 1 (never 2, which means "crashed"), the usage
    /// on stderr, nothing on stdout.
    Usage,
    /// Exit 0 within the given time.
    Success(Duration),
}

/// One hand-made case.
#[derive(Clone, Debug)]
pub struct Case {
    /// What it tries, in a few words.
    pub name: String,
    /// The arguments after `xenolith`.
    pub args: Vec<OsString>,
    /// What it must give.
    pub expect: Expect,
}

fn error(prefix: &'static str, needles: &[&str]) -> Expect {
    Expect::Error { prefix, needles: needles.iter().map(|s| (*s).to_owned()).collect() }
}

fn args(words: &[&OsStr]) -> Vec<OsString> {
    words.iter().map(|w| w.to_os_string()).collect()
}

fn mkfifo(path: &Path) -> PathBuf {
    let _ = std::fs::remove_file(path);
    let ok = Command::new("mkfifo").arg(path).status().is_ok_and(|s| s.success());
    assert!(ok, "mkfifo {}", path.display());
    path.to_owned()
}

/// Every case, with the files they name written into `dir`. Needs
/// target/guests/hello (`cargo xtask build`) and mkfifo.
pub fn hand_made_cases(dir: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name: &str, argv: Vec<OsString>, expect: Expect| cases.push(Case { name: name.to_owned(), args: argv, expect });
    let create_c = |cfg: &Path| args(&[OsStr::new("run"), OsStr::new("-c"), cfg.as_os_str()]);
    let dry = |cfg: &Path| args(&[OsStr::new("run"), OsStr::new("-n"), cfg.as_os_str()]);
    let hello = guest("hello");
    let marker = dir.join("marker");
    std::fs::write(&marker, marker_kernel(16 * 1024, "hand-made marker")).unwrap();
    let kcfg = |file: &str, kernel: &Path, memory: u32, more: &str| {
        write_cfg(dir, file, &format!("name = \"k\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = {memory}\n{more}", kernel.display()))
    };

    // --- bad configurations and kernels (were tests/tests/bad_input.rs) ---
    add("a missing config file", create_c(&dir.join("nope.cfg")), error("xenolith:", &["nope.cfg"]));
    let c = write_cfg(dir, "syntax.cfg", "name = \"x\"\ntype = \"pvh\"\nkernel = \"unterminated\n");
    add("a syntax error names the file and line", create_c(&c), error("xenolith:", &["syntax.cfg:3"]));
    let c = write_cfg(dir, "value.cfg", &format!("name = \"x\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = \"lots\"\n", hello.display()));
    add("a wrong value names the file, line and key", create_c(&c), error("xenolith:", &["value.cfg:4", "memory"]));
    for ty in ["pv", "hvm"] {
        let c = write_cfg(dir, &format!("type-{ty}.cfg"), &format!("name = \"x\"\ntype = \"{ty}\"\nkernel = \"{}\"\n", hello.display()));
        add(&format!("type = {ty} is refused"), create_c(&c), error("xenolith:", &["type", ty]));
    }
    let k = dir.join("not-elf");
    std::fs::write(&k, b"#!/bin/sh\necho not a kernel\n").unwrap();
    add("a kernel that is not ELF", create_c(&kcfg("not-elf.cfg", &k, 64, "")), error("xenolith:", &["ELF"]));
    // A host executable is a fine ELF64 with no Xen notes.
    add("an ELF without a PVH note", create_c(&kcfg("no-note.cfg", &xenolith(), 64, "")), error("xenolith:", &["PHYS32_ENTRY"]));
    let k = dir.join("truncated");
    let bytes = std::fs::read(&hello).unwrap();
    std::fs::write(&k, &bytes[..bytes.len().min(200)]).unwrap();
    add("a truncated kernel", create_c(&kcfg("truncated.cfg", &k, 64, "")), error("xenolith:", &[]));
    add("a kernel that does not fit in RAM", create_c(&kcfg("small.cfg", &hello, 1, "")), error("xenolith:", &["RAM"]));

    // --- files that are not files, oversized inputs (were tests/tests/cli_input.rs) ---
    let create = |more: &[&OsStr]| {
        let mut a = vec![OsString::from("run")];
        a.extend(more.iter().map(|w| w.to_os_string()));
        a
    };
    let fifo_cfg = mkfifo(&dir.join("fifo.cfg"));
    add("a config that is a FIFO", create(&[fifo_cfg.as_os_str()]), error("xenolith:", &["config file", "fifo.cfg", "is a FIFO, not a regular file"]));
    add("a config that is /dev/zero", create(&[OsStr::new("/dev/zero")]), error("xenolith:", &["config file /dev/zero is a character device"]));
    add("a config that is a directory", create(&[dir.as_os_str()]), error("xenolith:", &["is a directory"]));
    let fifo_kernel = mkfifo(&dir.join("kernel.fifo"));
    let log = dir.join("console.log");
    for (i, kernel) in [fifo_kernel.as_path(), Path::new("/dev/zero")].into_iter().enumerate() {
        let c = kcfg(&format!("kernel-{i}.cfg"), kernel, 32, "");
        let shown = kernel.display().to_string();
        // The dry run and the real one read the kernel the same way.
        add(&format!("a kernel that is {shown} (dry run)"), create(&[OsStr::new("-n"), c.as_os_str()]), error("xenolith:", &["kernel", &shown, "not a regular file"]));
        add(
            &format!("a kernel that is {shown}"),
            create(&[OsStr::new("--console-log"), log.as_os_str(), c.as_os_str()]),
            error("xenolith:", &["kernel", &shown, "not a regular file"]),
        );
    }
    let fifo_ramdisk = mkfifo(&dir.join("ramdisk.fifo"));
    for (i, ramdisk) in [fifo_ramdisk.as_path(), Path::new("/dev/zero")].into_iter().enumerate() {
        let c = kcfg(&format!("ramdisk-{i}.cfg"), &marker, 32, &format!("ramdisk = \"{}\"\n", ramdisk.display()));
        let shown = ramdisk.display().to_string();
        add(&format!("a ramdisk that is {shown}"), create(&[OsStr::new("-n"), c.as_os_str()]), error("xenolith:", &["ramdisk", &shown, "not a regular file"]));
    }
    // Sparse: 33 MiB that takes no room, for a 32 MiB domain.
    let big = dir.join("big-ramdisk");
    std::fs::File::create(&big).unwrap().set_len(33 << 20).unwrap();
    let c = kcfg("big-ramdisk.cfg", &marker, 32, &format!("ramdisk = \"{}\"\n", big.display()));
    add("a ramdisk larger than memory, before it is read", create(&[OsStr::new("-n"), c.as_os_str()]), error("xenolith:", &["ramdisk", "too large", "34603008 bytes"]));
    let fifo_disk = mkfifo(&dir.join("disk.fifo"));
    for (i, spec) in [format!("file:{},xvda,r", fifo_disk.display()), "phy:/dev/zero,xvda,r".to_owned()].into_iter().enumerate() {
        let c = kcfg(&format!("disk-{i}.cfg"), &marker, 32, &format!("disk = [ '{spec}' ]\n"));
        add(
            &format!("a read-only disk {spec}"),
            create(&[OsStr::new("--console-log"), log.as_os_str(), c.as_os_str()]),
            error("xenolith:", &["not a regular file or a block device"]),
        );
    }
    let fifo_image = mkfifo(&dir.join("image.fifo"));
    for image in [fifo_image.as_os_str(), OsStr::new("/dev/zero")] {
        let shown = image.to_string_lossy().into_owned();
        add(
            &format!("an fstest image that is {shown}"),
            args(&[OsStr::new("fstest"), image, OsStr::new("probe")]),
            error("xenolith fstest:", &[&shown, "not a regular file or a block device"]),
        );
    }
    let filler = "extra += \"0123456789abcdef\"\n".repeat(40_000);
    let c = kcfg("huge.cfg", &marker, 32, &format!("extra = \"\"\n{filler}"));
    add("a config over 1 MiB", create(&[OsStr::new("-n"), c.as_os_str()]), error("xenolith:", &["config file", "too large", "1048576"]));
    // Just under 1 MiB of `+=` (to a key xl ignores): 2.7 MB of them took
    // 16 s when each append copied the whole value; linear is milliseconds.
    let filler = format!("notes += \"{}\"\n", "x".repeat(40)).repeat(20_000);
    let c = kcfg("appends.cfg", &marker, 32, &filler);
    add("a config of 20,000 appends parses in linear time", create(&[OsStr::new("-n"), c.as_os_str()]), Expect::Success(Duration::from_millis(1500)));
    let good = kcfg("good.cfg", &marker, 32, "");
    let bad_utf8 = OsStr::from_bytes(b"extra=\"\xff\"");
    add("no config", args(&[OsStr::new("run")]), Expect::Usage);
    add("no command", Vec::new(), Expect::Usage);
    add("an unknown option", create(&[OsStr::new("--frobnicate"), good.as_os_str()]), Expect::Usage);
    add("an empty --console-log", create(&[OsStr::new("--console-log"), OsStr::new(""), good.as_os_str()]), Expect::Usage);
    add("a non-UTF-8 override", create(&[OsStr::new("-n"), good.as_os_str(), bad_utf8]), Expect::Usage);
    for help in ["--help", "--version"] {
        add(&format!("{help} exits 0"), args(&[OsStr::new(help)]), Expect::Success(HAND_MADE_LIMIT));
    }

    // --- settings that cannot be honoured, the dry run (were in tests/tests/careless_input.rs) ---
    let careless = |file: &str, extra: &str| {
        write_cfg(dir, file, &format!("name = \"careless\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 16\n{extra}", marker.display()))
    };
    let c = careless("nul.cfg", "extra = \"quiet\\x00loud\"\n");
    add("a NUL in extra= names the config, line and key", dry(&c), error("xenolith:", &["nul.cfg:5: extra: contains a NUL byte at byte 5", "quiet\\0loud"]));
    let img = dir.join("disk.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    let odd = dir.join("odd.img");
    std::fs::write(&odd, vec![0u8; 1000]).unwrap();
    let refused = [
        ("a missing disk image", format!("disk = ['{}/missing.img,raw,xvda,w']\n", dir.display()), "missing.img"),
        ("a bad vdev", format!("disk = ['{},raw,vda,w']\n", img.display()), "invalid vdev `vda`"),
        ("a disk not a whole number of sectors", format!("disk = ['{},raw,xvda,w']\n", odd.display()), "not a multiple of 512-byte sectors"),
        ("an unknown vif key", "vif = ['mac=00:16:3e:00:00:01,colour=blue']\n".to_owned(), "unknown parameter `colour=blue`"),
        ("a missing bridge", "vif = ['bridge=nosuchbr9']\n".to_owned(), "bridge nosuchbr9 does not exist"),
        ("on_crash = preserve", "on_crash = \"preserve\"\n".to_owned(), "on_crash: preserve: not supported by `xenolith run`"),
        ("on_crash = coredump-destroy", "on_crash = \"coredump-destroy\"\n".to_owned(), "on_crash: coredump-destroy: not supported"),
        ("on_watchdog = preserve", "on_watchdog = \"preserve\"\n".to_owned(), "on_watchdog: preserve: not supported by `xenolith run`"),
    ];
    for (i, (what, extra, needle)) in refused.iter().enumerate() {
        let file = format!("dry-{i}.cfg");
        let c = careless(&file, extra);
        add(&format!("the dry run refuses {what}"), dry(&c), error("xenolith:", &[&format!("{file}:5"), needle]));
    }
    let c = careless("dry-good.cfg", &format!("disk = ['{},raw,xvda,w']\n", img.display()));
    add("the dry run passes a good disk", dry(&c), Expect::Success(HAND_MADE_LIMIT));
    cases
}

/// Checks what `case` gave: `Err` says how it misbehaved.
pub fn check_case(case: &Case, run: &Run, took: Duration) -> Result<(), String> {
    if run.stderr.contains("panicked") || run.stderr.contains("RUST_BACKTRACE") {
        return Err("panicked".into());
    }
    let Some(code) = run.status.code() else {
        return Err(format!("ended by a signal: {}", run.status));
    };
    match &case.expect {
        Expect::Error { prefix, needles } => {
            if code != 1 {
                return Err(format!("exit {code}, not 1"));
            }
            let lines: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with(prefix)).collect();
            let [line] = lines.as_slice() else {
                return Err(format!("{} lines start with {prefix:?}, not one", lines.len()));
            };
            let lower = line.to_lowercase();
            if let Some(n) = needles.iter().find(|n| !lower.contains(&n.to_lowercase())) {
                return Err(format!("the error does not mention {n:?}: {line}"));
            }
            if !run.stdout.is_empty() {
                return Err("wrote to stdout".into());
            }
        }
        Expect::Usage => {
            if code != 1 {
                return Err(format!("exit {code}, not 1"));
            }
            if !run.stdout.is_empty() || run.stderr.is_empty() {
                return Err("the usage should go to stderr, nothing to stdout".into());
            }
        }
        Expect::Success(within) => {
            if code != 0 {
                return Err(format!("exit {code}, not 0"));
            }
            if took > *within {
                return Err(format!("took {took:?}, more than {within:?}"));
            }
        }
    }
    Ok(())
}

/// Runs every case in `dir` (xenolith's run directory inside it): how many
/// there were, and the misbehaving ones with why. A case that hangs past
/// [`HAND_MADE_LIMIT`] is killed and counted.
pub fn run_hand_made(dir: &Path) -> (usize, Vec<(String, String)>) {
    let cases = hand_made_cases(dir);
    let mut bad = Vec::new();
    for case in &cases {
        let mut cmd = Command::new(xenolith());
        cmd.args(&case.args).env("XENOLITH_RUN_DIR", dir.join("run")).env_remove("XENOLITH_NO_SECCOMP");
        let start = Instant::now();
        // run_command panics on a hang (after killing the process): that is a misbehaving case.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_command(cmd, HAND_MADE_LIMIT)));
        let verdict = match run {
            Ok(run) => check_case(case, &run, start.elapsed()).map_err(|why| format!("{why}\n{run}")),
            Err(_) => Err(format!("did not finish within {HAND_MADE_LIMIT:?}")),
        };
        if let Err(why) = verdict {
            bad.push((case.name.clone(), why));
        }
    }
    (cases.len(), bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn run(code: i32, stdout: &str, stderr: &str) -> Run {
        Run { status: std::process::ExitStatus::from_raw(code << 8), stdout: stdout.into(), stderr: stderr.into() }
    }

    #[test]
    fn the_checker_catches_each_way_to_misbehave() {
        let case = Case { name: "x".into(), args: Vec::new(), expect: error("xenolith:", &["disk.img"]) };
        let t = Duration::ZERO;
        assert_eq!(check_case(&case, &run(1, "", "xenolith: cannot open Disk.img\n"), t), Ok(()));
        assert!(check_case(&case, &run(2, "", "xenolith: cannot open disk.img\n"), t).unwrap_err().contains("exit 2"));
        assert!(check_case(&case, &run(1, "", "xenolith: a\nxenolith: disk.img\n"), t).unwrap_err().contains("2 lines"));
        assert!(check_case(&case, &run(1, "", "xenolith: cannot open it\n"), t).unwrap_err().contains("does not mention"));
        assert!(check_case(&case, &run(1, "", "thread 'main' panicked at x\nxenolith: disk.img\n"), t).unwrap_err().contains("panicked"));
        let killed = Run { status: std::process::ExitStatus::from_raw(libc::SIGSEGV), stdout: String::new(), stderr: String::new() };
        assert!(check_case(&case, &killed, t).unwrap_err().contains("signal"));
        let usage = Case { expect: Expect::Usage, ..case.clone() };
        assert_eq!(check_case(&usage, &run(1, "", "Usage: xenolith ...\n"), t), Ok(()));
        assert!(check_case(&usage, &run(2, "", "Usage\n"), t).is_err());
        let quick = Case { expect: Expect::Success(Duration::from_millis(10)), ..case };
        assert!(check_case(&quick, &run(0, "", ""), Duration::from_millis(20)).unwrap_err().contains("took"));
    }
}
