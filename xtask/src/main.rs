//! `cargo xtask`: builds that mix the host and the guest target, set-up,
//! tests, the demo and the benchmarks.
//!
//! - `cargo xtask build`: target/release/xenolith and the guests in target/guests/.
//! - `cargo xtask demo`: builds a demo disk and boots pvboot on it, console on the terminal.
//! - `cargo xtask test`: every test (unit, end-to-end, fuzz smoke runs).
//! - `cargo xtask bench`: every benchmark, each against a real peer.
//! - `cargo xtask fuzz [--seconds N]`: the fuzz targets.
//! - `cargo xtask test-xen [--verbose] [--no-build]`: the guests on Debian's
//!   real Xen 4.17 under QEMU (part of `test` unless XENOLITH_SKIP_XEN=1).
//! - `cargo xtask setup`: installs what the others need (also run by them).

mod bench;
mod demo;
mod fuzz;
mod setup;
mod xen;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The guests `cargo xtask build` produces, as (package, image name).
pub const GUESTS: &[&str] = &["hello", "abi-check", "disk-check", "disk-bench", "pvboot", "pv-kexec", "hostile", "net-echo", "httpd", "smp", "hcall-bench"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = &args[args.len().min(1)..];
    match args.first().map(String::as_str) {
        Some("setup") => setup::run(),
        Some("build") => {
            setup::run()?;
            build()
        }
        Some("demo") => {
            setup::run()?;
            build()?;
            demo::run()
        }
        Some("test") => {
            setup::run()?;
            build()?;
            test()
        }
        Some("bench") => {
            setup::run()?;
            build()?;
            bench::run(rest)
        }
        Some("fuzz") => fuzz::run(rest),
        Some("test-xen") => {
            setup::run()?;
            if !rest.iter().any(|a| a == "--no-build") {
                build()?;
            }
            xen::run(rest)
        }
        _ => bail!("usage: cargo xtask (setup|build|demo|test|test-xen|bench|fuzz)"),
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs a command in the workspace root, failing on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Builds the hypervisor CLI and every guest image.
pub fn build() -> Result<()> {
    run(cargo().args(["build", "--release", "-p", "xenolith"]))?;
    let mut guests = cargo();
    guests.args(["build", "--release", "--target", "x86_64-unknown-none"]);
    for g in GUESTS {
        guests.args(["-p", g]);
    }
    run(&mut guests)?;
    let out = root().join("target/guests");
    std::fs::create_dir_all(&out)?;
    for g in GUESTS {
        let built = target_dir().join("x86_64-unknown-none/release").join(g);
        std::fs::copy(&built, out.join(g))
            .with_context(|| format!("copying {}", built.display()))?;
    }
    println!(
        "built target/release/xenolith and {} guest(s) in target/guests/",
        GUESTS.len()
    );
    Ok(())
}

/// Where cargo builds: $CARGO_TARGET_DIR (relative to the root) or target/.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), |d| root().join(d))
}

fn test() -> Result<()> {
    run(cargo().args([
        "test",
        "--workspace",
        "--exclude",
        "hello",
        "--exclude",
        "abi-check",
        "--exclude",
        "guest-lib",
    ]))?;
    // guest-lib's host-testable parts.
    run(cargo().args(["test", "-p", "guest-lib", "--lib"]))?;
    fuzz::run(&["--seconds".into(), "5".into()])?;
    if std::env::var_os("XENOLITH_SKIP_XEN").is_some_and(|v| v == "1") {
        println!("test-xen skipped (XENOLITH_SKIP_XEN=1)");
    } else {
        xen::run(&[])?;
    }
    println!("all tests passed");
    Ok(())
}
