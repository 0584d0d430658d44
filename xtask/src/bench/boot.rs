//! Boot benchmark: how long `xenolith create` takes to reach the guest's
//! first instruction (the VMM's own start-up), hello's first console line and
//! its poweroff; how many instructions hello runs before it prints; and the
//! round trip of one trapped hypercall.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::root;

const RUNS: usize = 20;

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

struct Sample {
    first_entry_ms: f64,
    first_line_ms: f64,
    poweroff_ms: f64,
}

fn write_cfg(extra: &str) -> Result<std::path::PathBuf> {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join("hello-bench.cfg");
    std::fs::write(
        &cfg,
        format!("name = \"hello-bench\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\nextra = \"{extra}\"\n", root().join("target/guests/hello").display()),
    )?;
    Ok(cfg)
}

fn xenolith() -> Command {
    let mut c = Command::new(root().join("target/release/xenolith"));
    c.current_dir(root());
    c
}

fn one_run(cfg: &std::path::Path) -> Result<Sample> {
    let t0 = monotonic_ns();
    let start = Instant::now();
    let mut child = xenolith()
        .args(["create", "-c"])
        .arg(cfg)
        .env("XENOLITH_BENCH_T0", t0.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()?;
    let stderr = child.stderr.take().unwrap();
    let err_thread = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut first_line_ms = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let _ = line?;
        first_line_ms.get_or_insert(start.elapsed().as_secs_f64() * 1e3);
    }
    let status = child.wait()?;
    let poweroff_ms = start.elapsed().as_secs_f64() * 1e3;
    let errs = err_thread.join().unwrap();
    if !status.success() {
        bail!("hello exited with {status}: {}", errs.join("\n"));
    }
    let first_entry_us: f64 = errs
        .iter()
        .find_map(|l| l.strip_prefix("xenolith-bench: first-entry-us="))
        .context("no first-entry probe line")?
        .parse()?;
    Ok(Sample {
        first_entry_ms: first_entry_us / 1e3,
        first_line_ms: first_line_ms.context("no console output")?,
        poweroff_ms,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn probe_stderr(cfg: &std::path::Path, env: (&str, &str), args: &[&str]) -> Result<String> {
    let out = xenolith()
        .args(args)
        .args(["create", "-c"])
        .arg(cfg)
        .env(env.0, env.1)
        .stdin(Stdio::null())
        .output()?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Runs the boot benchmark and returns its report.
pub fn run() -> Result<String> {
    let cfg = write_cfg("bench")?;
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        samples.push(one_run(&cfg)?);
    }
    let entry = median(samples.iter().map(|s| s.first_entry_ms).collect());
    let line = median(samples.iter().map(|s| s.first_line_ms).collect());
    let off = median(samples.iter().map(|s| s.poweroff_ms).collect());

    let info = probe_stderr(&cfg, ("XENOLITH_COUNT_INSTRUCTIONS", "1"), &["-v"])?;
    let backend = super::kvm_backend(&info);
    let insns = info
        .lines()
        .find_map(|l| l.strip_prefix("xenolith-bench: instructions-before-output="))
        .map_or_else(
            || "not counted (single-step unavailable)".to_string(),
            str::to_string,
        );

    let hc_cfg = write_cfg("hypercall-bench")?;
    let hc = probe_stderr(&hc_cfg, ("XENOLITH_BENCH", "1"), &[])?;
    let hypercall = hc
        .lines()
        .find_map(|l| l.strip_prefix("hypercall round trip: "))
        .map_or_else(|| "not reported".to_string(), str::to_string);

    let report = format!(
        "KVM backend: {backend}\n\
         boot, median of {RUNS} runs of hello (memory = 64):\n\
         - start to first guest instruction: {entry:.2} ms (hypervisor start-up; Firecracker's VMM takes about 1.5 ms)\n\
         - start to first console line:      {line:.1} ms\n\
         - start to poweroff (process exit): {off:.1} ms\n\
         guest instructions before the first console line: {insns}\n\
         hypercall round trip (xen_version, timed by the guest with pvclock): {hypercall}\n"
    );
    Ok(report)
}
