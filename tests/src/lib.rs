//! Helpers for Xenolith's end-to-end tests: they run the real `xenolith`
//! binary on real guest images, built beforehand by `cargo xtask build`.

mod hand_made;
mod hostile;
mod kill9;
mod marker_kernel;
pub mod netns;
pub mod service;
pub use hand_made::{check_case, hand_made_cases, run_hand_made, Case, Expect, HAND_MADE_LIMIT};
pub use hostile::*;
pub use kill9::{kill9_service_trial, kill9_trial, Kill9Trial, KILL9_IMAGE, KILL9_VARIANTS};
pub use marker_kernel::{drop_pvh_note, idle_marker_kernel, marker_kernel, spinning_marker_kernel};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace").to_path_buf()
}

/// The hypervisor CLI, built by `cargo xtask build` (or `$XENOLITH_TEST_BIN`,
/// to run the tests against another build).
pub fn xenolith() -> PathBuf {
    let p = std::env::var_os("XENOLITH_TEST_BIN").map_or_else(|| root().join("target/release/xenolith"), PathBuf::from);
    assert!(p.exists(), "{} is missing: run `cargo xtask build` (or `cargo xtask test`)", p.display());
    p
}

/// A guest image from target/guests/ (or from the folder `$XENOLITH_TEST_GUESTS`).
pub fn guest(name: &str) -> PathBuf {
    let dir = std::env::var_os("XENOLITH_TEST_GUESTS").map_or_else(|| root().join("target/guests"), PathBuf::from);
    let p = dir.join(name);
    assert!(p.exists(), "{} is missing: run `cargo xtask build` (or `cargo xtask test`)", p.display());
    p
}

/// A fresh scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = root().join("target/test-scratch").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// What a finished `xenolith` run left behind.
pub struct Run {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout (the guest's console with -c).
    pub stdout: String,
    /// Everything it wrote to stderr (errors, logs).
    pub stderr: String,
}

impl Run {
    /// The exit code (panics if killed by a signal).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| panic!("xenolith was killed: {}\nstderr:\n{}", self.status, self.stderr))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Runs `xenolith ARGS`, killing it after `limit`.
pub fn xenolith_run(args: &[&str], limit: Duration) -> Run {
    let mut cmd = Command::new(xenolith());
    cmd.args(args);
    run_command(cmd, limit)
}

/// Runs `cmd` (a `xenolith` command with its arguments and environment)
/// from the workspace root with stdin closed, killing it after `limit`.
pub fn run_command(mut cmd: Command, limit: Duration) -> Run {
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut child = cmd
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn xenolith");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let s = child.wait().expect("wait");
            let stdout = String::from_utf8_lossy(&out_t.join().unwrap()).into_owned();
            let stderr = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
            panic!("xenolith {args:?} did not finish within {limit:?}\n{}", Run { status: s, stdout, stderr });
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        status,
        stdout: String::from_utf8_lossy(&out_t.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
    }
}

/// Asks domain 1 of the xenolith run whose `XENOLITH_RUN_DIR` is
/// `run_dir` to `what` (poweroff, reboot) as xl does, by writing its
/// control/shutdown with xenstore-utils' xenstore-write.
pub fn request_shutdown(run_dir: &Path, what: &str) {
    request_shutdown_of(run_dir, 1, what);
}

/// [`request_shutdown`] for domain `domid` (a restarted domain has a new one).
pub fn request_shutdown_of(run_dir: &Path, domid: u16, what: &str) {
    let out = Command::new("xenstore-write")
        .env("XENSTORED_PATH", run_dir.join("xenstored/socket"))
        .args([&format!("/local/domain/{domid}/control/shutdown"), what])
        .output()
        .expect("xenstore-write");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Writes an xl.cfg into `dir` and returns its path.
pub fn write_cfg(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p
}

/// A finished run with its resource use.
pub struct Measured {
    /// What the run left behind.
    pub run: Run,
    /// The process's peak resident set (ru_maxrss), in KiB.
    pub max_rss_kib: u64,
    /// How long it ran.
    pub elapsed: Duration,
}

/// Runs `cmd` as [`run_command`] does (from the workspace root, stdin
/// closed, killed after `limit`), and also measures the process's own peak
/// RSS: it is reaped with wait4, whose rusage covers that child alone
/// (RUSAGE_CHILDREN would be the maximum over every child this test ran).
pub fn run_measured(cmd: Command, limit: Duration) -> Measured {
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let (m, killed) = run_measured_within(cmd, limit);
    assert!(!killed, "xenolith {args:?} did not finish within {limit:?}\n{}", m.run);
    m
}

/// [`run_measured`] without the panic: true when the run was killed
/// after `limit` (a hang), for callers that report rather than assert.
// The child is reaped by wait4 below, not by Child::wait (which would lose its rusage).
#[allow(clippy::zombie_processes)]
pub fn run_measured_within(mut cmd: Command, limit: Duration) -> (Measured, bool) {
    use std::os::unix::process::ExitStatusExt;
    let mut child = cmd
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn xenolith");
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let mut killed = false;
    let (raw, usage) = loop {
        let mut status = 0;
        // SAFETY: rusage is plain data, fully written by wait4 when it returns the pid.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our child, not reaped yet (std's Child is never waited on here).
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break (status, usage);
        }
        assert!(r == 0, "wait4: {}", std::io::Error::last_os_error());
        if !killed && start.elapsed() > limit {
            // SAFETY: our child, not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let run = Run {
        status: ExitStatus::from_raw(raw),
        stdout: String::from_utf8_lossy(&out_t.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
    };
    // Linux gives ru_maxrss in KiB.
    (Measured { run, max_rss_kib: usage.ru_maxrss as u64, elapsed }, killed)
}
