//! Helpers shared by the hypervisor's end-to-end tests: scratch folders,
//! tool checks, and GRUB's PVH image, a real Xen guest used as a peer.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `xenolith` binary under test.
pub const XENOLITH: &str = env!("CARGO_BIN_EXE_xenolith");

/// Where GRUB keeps its i386-xen_pvh modules (Debian's grub-xen-bin).
pub const GRUB_MODULES: &str = "/usr/lib/grub/i386-xen_pvh";

/// A fresh folder `area/name` under the test target directory.
pub fn scratch(area: &str, name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(area).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Fails the test with an install hint when `tool` is not on PATH.
pub fn need(tool: &str, package: &str) {
    let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(found, "{tool} is missing: apt-get install {package}");
}

/// GRUB's PVH image `dir/name.elf` with `script` as its embedded
/// configuration (prefix `prefix`) and `modules` built in.
pub fn grub_image(dir: &Path, name: &str, prefix: &str, script: &str, modules: &[&str]) -> PathBuf {
    need("grub-mkimage", "grub-common grub-xen-bin");
    assert!(
        Path::new(GRUB_MODULES).is_dir(),
        "{GRUB_MODULES} is missing: apt-get install grub-xen-bin (cargo xtask setup)"
    );
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join(format!("{name}.cfg"));
    let img = dir.join(format!("{name}.elf"));
    std::fs::write(&cfg, script).unwrap();
    let out = Command::new("grub-mkimage")
        .args(["-O", "i386-xen_pvh", "-o"])
        .arg(&img)
        .args(["-p", prefix, "-c"])
        .arg(&cfg)
        .args(modules)
        .output()
        .unwrap_or_else(|e| panic!("grub-mkimage: {e}"));
    assert!(out.status.success(), "grub-mkimage: {}", String::from_utf8_lossy(&out.stderr));
    img
}

/// What a finished command left behind.
pub struct Run {
    /// Exit code; None when it was killed or timed out.
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `cmd` (stdout and stderr captured; stdin as the caller set it, and
/// fed `input` if piped) and fails the test if it outlives `limit`.
pub fn run(cmd: &mut Command, input: &[u8], limit: std::time::Duration) -> Run {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
            // Keep stdin open: closing it is not what a terminal user does.
            std::thread::sleep(std::time::Duration::from_secs(3600));
        });
    }
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
    let r = Run { code: status.and_then(|s| s.code()), stdout, stderr };
    assert!(status.is_some(), "timed out after {limit:?}\n{r}");
    r
}
