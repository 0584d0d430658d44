//! Boots Xen with dom0 under qemu-system-x86_64 (TCG: no KVM needed) and
//! captures the serial console, where Xen, dom0 and the cases all print.
//!
//! The machine is the one the design notes found to work (real-xen.md):
//! `+svm,+npt` because Debian's Xen has no shadow paging (PVH guests need
//! HAP), `+rdrand` so dom0's entropy is ready at once (xl create is 6x
//! faster). Xen is the `-kernel` (multiboot); dom0's kernel and initramfs
//! are its modules (`-initrd "kernel args,initrd"`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Xen's command line: serial console, a fixed 1 GiB single-vCPU dom0, no
/// boot-time scrubbing (slow under TCG), and every guest's debug output.
const XEN_CMDLINE: &str = "console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=1 bootscrub=0 guest_loglvl=all";
/// dom0 Linux: console on Xen's console (hence the serial port), warnings only.
const DOM0_CMDLINE: &str = "console=hvc0 earlyprintk=xen loglevel=4";
/// After dom0 says it is done, Xen reboots and QEMU (-no-reboot) exits.
const EXIT_GRACE: Duration = Duration::from_secs(20);

/// How a boot ended.
pub struct Boot {
    /// The whole serial log.
    pub log: String,
    /// None if dom0 finished; else why the run was cut short.
    pub cut_short: Option<String>,
    pub elapsed: Duration,
}

/// Boots `xen` with `vmlinux` and `initrd` as multiboot modules; each serial
/// line goes to `log_path` and to `on_line`. QEMU is killed after `limit`.
pub fn boot(
    xen: &Path,
    vmlinux: &Path,
    initrd: &Path,
    log_path: &Path,
    limit: Duration,
    mut on_line: impl FnMut(&str),
) -> Result<Boot> {
    let modules = format!("{} {DOM0_CMDLINE},{}", vmlinux.display(), initrd.display());
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "pc",
            "-accel",
            "tcg",
            "-cpu",
            "qemu64,+svm,+npt,+rdrand",
            "-m",
            "2048",
            "-smp",
            "2",
        ])
        .args([
            "-no-reboot",
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(xen)
        .args(["-append", XEN_CMDLINE, "-initrd", &modules])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start qemu-system-x86_64 (Debian package qemu-system-x86)")?;

    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(|l| l.ok()) {
            if tx
                .send(
                    String::from_utf8_lossy(&line)
                        .trim_end_matches('\r')
                        .to_owned(),
                )
                .is_err()
            {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });

    let mut file = std::fs::File::create(log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let start = Instant::now();
    let mut log = String::new();
    let mut done_at = None;
    let mut cut_short = None;
    loop {
        let deadline = done_at.map_or(limit, |d: Duration| (d + EXIT_GRACE).min(limit));
        let left = deadline.saturating_sub(start.elapsed());
        match rx.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(line) => {
                writeln!(file, "{line}")?;
                on_line(&line);
                if line.starts_with("@@xt done") {
                    done_at = Some(start.elapsed());
                }
                log.push_str(&line);
                log.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break, // QEMU exited
            Err(mpsc::RecvTimeoutError::Timeout) if start.elapsed() < deadline => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if done_at.is_none() {
                    cut_short = Some(format!(
                        "QEMU killed after the {} s time limit",
                        limit.as_secs()
                    ));
                }
                break;
            }
        }
    }
    // Only the QEMU started here, by its own handle.
    let _ = child.kill();
    let status = child.wait()?;
    let _ = reader.join();
    let qemu_err = err_reader.join().unwrap_or_default();
    if done_at.is_none() && cut_short.is_none() {
        cut_short = Some(format!(
            "QEMU exited ({status}) before dom0 finished{}",
            if qemu_err.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", qemu_err.trim())
            }
        ));
    }
    Ok(Boot {
        log,
        cut_short,
        elapsed: start.elapsed(),
    })
}
