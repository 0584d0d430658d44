//! `cargo xtask test-xen`: the example guests on real Xen.
//!
//! Debian bookworm's Xen 4.17 and a Debian Linux 6.1 dom0 boot under
//! qemu-system-x86_64 with TCG (no KVM needed). dom0 runs every case (each
//! guest in each boot mode its ELF notes offer, with its variants) one after
//! the other with `xl create`, prints each one's shutdown reason, console
//! and logs on the serial port, and reboots. One boot serves the whole suite.
//!
//! - [`fetch`]: Debian's packages, downloaded once into target/xen-cache/.
//! - [`initramfs`] (with [`cpio`]): dom0's system and the cases.
//! - [`cases`] (with [`elf`]): what runs and what it must print.
//! - [`qemu`]: the boot, bounded in time.
//! - [`report`]: PASS/FAIL per case, with the Xen, dom0 and console lines
//!   that explain a failure.
//!
//! Options: `--verbose` (echo the serial console), `--no-build` (use the
//! images already in target/guests), `--timeout SECS` (the whole QEMU run;
//! default 5 minutes, more if the cases' own limits add up to more),
//! `--only NAME` (repeatable: only the cases whose name, e.g. "hello pv",
//! or folder, e.g. "03-hello-pv", contains NAME). Logs go
//! to target/xen-test/.

mod cases;
mod cpio;
mod elf;
mod fetch;
mod initramfs;
mod qemu;
mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Command-line options.
struct Options {
    verbose: bool,
    /// Run only the cases whose name contains one of these (--only).
    only: Vec<String>,
    /// The whole QEMU run; by default [`default_limit`].
    timeout: Option<Duration>,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        verbose: false,
        only: Vec::new(),
        timeout: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--verbose" | "-v" => o.verbose = true,
            "--no-build" => {} // main.rs skips `cargo xtask build`
            "--only" => o.only.push(it.next().context("--only needs part of a case name")?.clone()),
            "--timeout" => {
                let secs = it.next().context("--timeout needs a number of seconds")?;
                o.timeout = Some(Duration::from_secs(secs.parse().context("--timeout needs a number of seconds")?));
            }
            _ => bail!("usage: cargo xtask test-xen [--verbose] [--no-build] [--timeout SECS] [--only NAME]..."),
        }
    }
    Ok(o)
}

/// Runs the suite on the guests in target/guests/ (`cargo xtask build`).
pub fn run(args: &[String]) -> Result<()> {
    let opts = options(args)?;
    let target = crate::root().join("target");
    let out_dir = target.join("xen-test");
    std::fs::create_dir_all(&out_dir)?;

    let t = Instant::now();
    let stage = fetch::stage(&target.join("xen-cache"))?;
    println!(
        "test-xen: {} with dom0 {} (packages ready in {:.1} s)",
        stage.versions.join(", "),
        stage.kernel_release,
        t.elapsed().as_secs_f64()
    );

    let guests = guest_images()?;
    let (cases, skipped) = cases::plan(&guests, &out_dir, &stage, &opts.only)?;
    if cases.is_empty() {
        bail!(
            "no guest can run on Xen: {}",
            skipped
                .iter()
                .map(|s| format!("{} {}: {}", s.label, s.mode, s.why))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let initrd = out_dir.join("initrd.cpio");
    let mut archive = initramfs::dom0(&stage)?;
    archive.extend(initramfs::cases(&cases)?);
    std::fs::write(&initrd, archive)?;

    println!(
        "test-xen: booting Xen under QEMU (TCG) for {} case(s): {}",
        cases.len(),
        cases
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let serial_log = out_dir.join("serial.log");
    let limit = opts.timeout.unwrap_or_else(|| default_limit(&cases));
    let boot = qemu::boot(
        &stage.xen,
        &stage.vmlinux,
        &initrd,
        &serial_log,
        limit,
        |line| progress(line, opts.verbose),
    )?;
    let serial = report::parse(&boot.log);
    let why_stopped = boot
        .cut_short
        .clone()
        .unwrap_or_else(|| "dom0 finished".into());
    println!(
        "test-xen: QEMU ran {:.1} s; serial log in {}",
        boot.elapsed.as_secs_f64(),
        serial_log.display()
    );
    let failures = report::print(&cases, &skipped, &serial, &boot.log, &why_stopped, &out_dir)?;
    if failures > 0 {
        bail!(
            "test-xen: {failures} of {} case(s) failed on real Xen",
            cases.len()
        );
    }
    if let Some(why) = boot.cut_short {
        bail!("test-xen: every case passed but the run did not end cleanly: {why}");
    }
    println!("test-xen: all {} case(s) passed on Xen", cases.len());
    Ok(())
}

/// Five minutes, or enough for every case to use its whole time limit
/// after a slow dom0 boot.
fn default_limit(cases: &[cases::Case]) -> Duration {
    let worst: u64 = 60
        + cases
            .iter()
            .map(|c| u64::from(c.timeout_secs) + 10)
            .sum::<u64>();
    Duration::from_secs(worst.max(300))
}

/// The built images of crate::GUESTS.
fn guest_images() -> Result<Vec<PathBuf>> {
    let dir = crate::root().join("target/guests");
    crate::GUESTS
        .iter()
        .map(|g| {
            let p = dir.join(g);
            if p.exists() {
                Ok(p)
            } else {
                bail!("{} is missing: run `cargo xtask build`", p.display())
            }
        })
        .collect()
}

/// Short progress lines (or the whole console with --verbose).
fn progress(line: &str, verbose: bool) {
    if verbose {
        println!("  | {line}");
        return;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["@@xt", "dom0-ready", t] => println!("test-xen: dom0 ready at {t} s"),
        ["@@xt", "dom0-failed", ..] => println!("test-xen: {line}"),
        ["@@xt", "case", id, "xl-exit", rc, _] => {
            println!("test-xen: {id}: xl create returned {rc}")
        }
        _ => {}
    }
}
