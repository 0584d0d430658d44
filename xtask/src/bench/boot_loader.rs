//! Boot-loader benchmark: pvboot against GRUB's i386-xen_pvh image (pvgrub2)
//! loading the same 32 MiB kernel file from the same FFSv2 32K/4K disk on
//! the same hypervisor, in the same run.
//!
//! - The kernel (`kernel32`): `xenolith_tests::marker_kernel`, an ELF32
//!   that is a multiboot 1 and a PVH kernel whose entry writes a marker line
//!   to the debug port 0xE9 and halts with interrupts off (our hypervisor
//!   then powers the domain off), with 32 MiB of filler in a second PT_LOAD.
//!   pvboot boots it as PVH, GRUB as multiboot (`multiboot` + `boot`): both
//!   read all 32 MiB.
//! - Measured: domain start (process spawn) to the marker line on the
//!   hypervisor's stderr, i.e. to the first instruction of the chain-loaded
//!   kernel; median of [`PVBOOT_RUNS`] pvboot runs, one GRUB run (it takes
//!   tens of seconds on a software KVM).
//! - Also: blkback's request count and average size for pvboot (from `-v`),
//!   and pvboot's guest instructions per MiB loaded, single-stepped up to
//!   the kernel's entry with 2 and 3 MiB kernels (difference / size
//!   difference).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::root;

/// Size of the benchmark kernel file.
const KERNEL_BYTES: usize = 32 << 20;
/// The two kernels whose instruction counts differ by the cost of reading
/// the difference (single-stepping the 32 MiB one would take an hour here).
const SMALL_KERNEL_BYTES: usize = 2 << 20;
const COUNTED_KERNEL_BYTES: usize = 3 << 20;
/// The hypervisor's line with the count (XENOLITH_COUNT_INSTRUCTIONS).
const INSTRUCTIONS_LINE: &str = "xenolith-bench: instructions-before-output=";
/// pvboot runs (the median is reported).
const PVBOOT_RUNS: usize = 3;
/// Longest a run may take (GRUB reads at ~0.4 MB/s here).
const RUN_LIMIT: Duration = Duration::from_secs(600);
/// Longest a single-stepped run may take (a 2 MiB kernel takes about 5 minutes).
const COUNT_LIMIT: Duration = Duration::from_secs(1200);
/// What the kernel writes to port 0xE9 on entry.
const MARKER: &str = "xenolith-bench: kernel entered";
/// An FFSv2 32K/4K image holding `kernel` as /kernel32 and pvboot's config.
fn disk(dir: &Path, name: &str, kernel_bytes: usize) -> Result<PathBuf> {
    let tree = dir.join(format!("{name}.d"));
    let _ = fs::remove_dir_all(&tree);
    fs::create_dir_all(tree.join("boot/grub"))?;
    fs::write(
        tree.join("kernel32"),
        xenolith_tests::marker_kernel(kernel_bytes, MARKER),
    )?;
    fs::write(
        tree.join("boot/grub/menu.lst"),
        "default 0\ntimeout 0\ntitle bench kernel\nkernel /kernel32\n",
    )?;
    let img = dir.join(format!("{name}.img"));
    let _ = fs::remove_file(&img);
    let out = Command::new("makefs")
        .args([
            "-t",
            "ffs",
            "-o",
            "version=2,bsize=32768,fsize=4096",
            "-M",
            &format!("{}", kernel_bytes + (8 << 20)),
        ])
        .arg(&img)
        .arg(&tree)
        .output()
        .context("cannot run makefs (cargo xtask setup installs it)")?;
    ensure!(
        out.status.success(),
        "makefs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(img)
}

/// GRUB's PVH image with an embedded script that loads /kernel32 as multiboot and boots it
/// (`gfxpayload=text`: without it GRUB 2.06 on xen_pvh stops at "no suitable video mode found").
fn grub(dir: &Path) -> Result<PathBuf> {
    let script = dir.join("grub-bench.cfg");
    fs::write(
        &script,
        "insmod ufs2\ninsmod multiboot\nset gfxpayload=text\nmultiboot (xen/xvda)/kernel32\nboot\n",
    )?;
    let img = dir.join("grub-bench.elf");
    let out = Command::new("grub-mkimage")
        .args(["-O", "i386-xen_pvh", "-o"])
        .arg(&img)
        .args(["-p", "(memdisk)/boot/grub", "-c"])
        .arg(&script)
        .args(["ufs2", "multiboot", "normal", "echo"])
        .output()
        .context(
            "cannot run grub-mkimage (cargo xtask setup installs grub-common and grub-xen-bin)",
        )?;
    ensure!(
        out.status.success(),
        "grub-mkimage failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(img)
}

fn write_cfg(dir: &Path, name: &str, kernel: &Path, disk: &Path, extra: &str) -> Result<PathBuf> {
    let cfg = dir.join(format!("{name}.cfg"));
    fs::write(
        &cfg,
        format!(
            "name = \"{name}\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 256\ndisk = [ 'file:{},xvda,r' ]\nextra = \"{extra}\"\n",
            kernel.display(),
            disk.display()
        ),
    )?;
    Ok(cfg)
}

/// One run: seconds from spawn to the marker, and the whole stderr.
fn run_to_marker(cfg: &Path, verbose: bool, env: &[(&str, &str)], limit: Duration) -> Result<(f64, String)> {
    let mut cmd = Command::new(root().join("target/release/xenolith"));
    if verbose {
        cmd.arg("-v");
    }
    cmd.args(["run", "-c"]).arg(cfg).current_dir(root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut marker = None;
    let mut err = String::new();
    loop {
        let Some(left) = limit.checked_sub(start.elapsed()) else {
            err.push_str(&format!("(stopped after {} s)\n", limit.as_secs()));
            let _ = child.kill();
            break;
        };
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if marker.is_none() && line.contains(MARKER) {
            marker = Some(start.elapsed().as_secs_f64());
        }
        err.push_str(&line);
        err.push('\n');
        // A single-stepped run's count is all that is wanted of it.
        if line.starts_with(INSTRUCTIONS_LINE) {
            let _ = child.kill();
            break;
        }
    }
    let _ = child.wait();
    let out = out_thread.join().unwrap_or_default().join("\n");
    match marker {
        Some(t) => Ok((t, err)),
        None => bail!("the kernel never ran ({}):\n{out}\n{err}", cfg.display()),
    }
}

fn field(text: &str, key: &str) -> Option<u64> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Guest instructions from domain start to the kernel's entry, single-stepped.
fn instructions(cfg: &Path) -> Result<Option<u64>> {
    // A run that reaches no count within the limit is reported as uncounted.
    let Ok((_, err)) = run_to_marker(cfg, false, &[("XENOLITH_COUNT_INSTRUCTIONS", "all")], COUNT_LIMIT) else {
        return Ok(None);
    };
    Ok(err
        .lines()
        .find_map(|l| l.strip_prefix(INSTRUCTIONS_LINE))
        .and_then(|n| n.trim().parse().ok()))
}

/// Runs the benchmark and returns its report.
pub fn run() -> Result<String> {
    let dir = root().join("target/bench/boot-loader");
    fs::create_dir_all(&dir)?;
    let pvboot = root().join("target/guests/pvboot");
    let big = disk(&dir, "ffs2-32k", KERNEL_BYTES)?;
    super::warm_page_cache(&big)?;

    let cfg = write_cfg(&dir, "pvboot-bench", &pvboot, &big, "")?;
    let mut times = Vec::new();
    let mut log = String::new();
    for i in 0..PVBOOT_RUNS {
        let (t, err) = run_to_marker(&cfg, i == 0, &[], RUN_LIMIT)?;
        times.push(t);
        if i == 0 {
            log = err;
        }
    }
    times.sort_by(f64::total_cmp);
    let pvboot_s = times[times.len() / 2];
    let backend = super::kvm_backend(&log);
    let blk = log
        .lines()
        .find(|l| l.contains("blkback ") && l.contains("requests="))
        .unwrap_or("");
    let (requests, avg) = (
        field(blk, "requests").unwrap_or(0),
        field(blk, "avg_request_bytes").unwrap_or(0),
    );

    let grub_img = grub(&dir)?;
    let grub_cfg = write_cfg(&dir, "grub-bench", &grub_img, &big, "")?;
    let (grub_s, _) = run_to_marker(&grub_cfg, false, &[], RUN_LIMIT)?;

    eprintln!("bench boot-loader: pvboot {pvboot_s:.2} s, GRUB {grub_s:.2} s; counting pvboot's instructions");
    let small = disk(&dir, "ffs2-32k-small", SMALL_KERNEL_BYTES)?;
    let small_cfg = write_cfg(&dir, "pvboot-bench-small", &pvboot, &small, "")?;
    let counted = disk(&dir, "ffs2-32k-counted", COUNTED_KERNEL_BYTES)?;
    let counted_cfg = write_cfg(&dir, "pvboot-bench-counted", &pvboot, &counted, "")?;
    let per_mib = match (instructions(&counted_cfg)?, instructions(&small_cfg)?) {
        (Some(b), Some(s)) if b > s => {
            let mib = (COUNTED_KERNEL_BYTES - SMALL_KERNEL_BYTES) as u64 >> 20;
            format!(
                "{} per MiB ({} for a {} MiB kernel, {} for {} MiB)",
                (b - s) / mib,
                b,
                COUNTED_KERNEL_BYTES >> 20,
                s,
                SMALL_KERNEL_BYTES >> 20
            )
        }
        _ => format!("not counted (single-stepping unavailable or over {} s)", COUNT_LIMIT.as_secs()),
    };
    let mib = KERNEL_BYTES as f64 / (1 << 20) as f64;
    Ok(format!(
        "KVM backend: {backend}\n\
         domain start to the first instruction of a 32 MiB kernel on FFSv2 32K/4K (memory = 256):\n\
         - pvboot (median of {PVBOOT_RUNS}): {pvboot_s:.2} s ({:.1} MB/s)\n\
         - GRUB 2 i386-xen_pvh, multiboot:   {grub_s:.2} s ({:.1} MB/s)\n\
         - pvboot is {:.1}x faster than GRUB\n\
         pvboot's reads: {requests} blkfront requests, average {} KiB\n\
         pvboot's guest instructions, domain start to hand-off: {per_mib}\n",
        mib * 1.048_576 / pvboot_s,
        mib * 1.048_576 / grub_s,
        grub_s / pvboot_s,
        avg / 1024
    ))
}
