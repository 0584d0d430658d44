//! Domains through the host service (part of `cargo xtask bench boot`):
//! how long `xenolith create` takes from the client's request to the new
//! domain's first guest instruction, with the service already holding
//! xenstored and its KVM state; then 100 domains in one service, with the
//! cost of each and the service's memory per domain.
//!
//! The client stamps its request and the service's vCPU stamps its first
//! entry (both CLOCK_MONOTONIC, `XENOLITH_BENCH_STAMP`), so the time is
//! the service's work alone; the client process's own start is reported
//! beside it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::boot::{first_write_image, median, monotonic_ns, xenolith};
use crate::root;

/// Start-up samples.
const RUNS: usize = 20;
/// Domains in the many-domains run.
const MANY: usize = 100;
const STAMP: &str = "XENOLITH_BENCH_STAMP";

/// The service, stopped with SIGTERM (every domain destroyed) when dropped.
struct Service {
    child: Child,
    run_dir: std::path::PathBuf,
}

impl Service {
    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = xenolith();
        c.args(args).env("XENOLITH_RUN_DIR", &self.run_dir);
        c
    }

    fn ok(&self, args: &[&str]) -> Result<std::process::Output> {
        let out = self.command(args).stdin(Stdio::null()).output()?;
        if !out.status.success() {
            bail!("xenolith {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(out)
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())))
            .unwrap_or(0)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: kill with our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Starts the service in `dir`; returns it and the channel of its vCPUs'
/// first-entry stamps.
fn start(dir: &Path) -> Result<(Service, mpsc::Receiver<u64>)> {
    let run_dir = dir.join("run");
    let mut child = xenolith()
        .args(["daemon", "--log-dir"])
        .arg(dir.join("logs"))
        .env("XENOLITH_RUN_DIR", &run_dir)
        .env(STAMP, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("xenolith daemon")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(ns) = line.strip_prefix("xenolith-bench: first-entry-ns=").and_then(|v| v.parse().ok()) {
                if tx.send(ns).is_err() {
                    return;
                }
            }
        }
    });
    let svc = Service { child, run_dir };
    let end = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(svc.run_dir.join("control")).is_err() {
        if Instant::now() > end {
            bail!("the service did not listen within 10 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok((svc, rx))
}

fn cfg(dir: &Path, name: &str, image: &Path) -> Result<std::path::PathBuf> {
    let cfg = dir.join(format!("{name}.cfg"));
    std::fs::write(&cfg, format!("name = \"{name}\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\n", image.display()))?;
    Ok(cfg)
}

/// The report's paragraph.
pub fn report() -> Result<String> {
    let dir = root().join("target/bench/service");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (first_write, idle) = (dir.join("first-write.elf"), dir.join("idle.elf"));
    std::fs::write(&first_write, first_write_image(false))?;
    std::fs::write(&idle, first_write_image(true))?;
    let (svc, entries) = start(&dir)?;

    // Start-up: the domain runs its first instructions and ends by itself.
    let one_cfg = cfg(&dir, "first-write", &first_write)?;
    let (mut request_to_entry, mut spawn_to_entry) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        let spawned = monotonic_ns();
        let out = svc.command(&["create", one_cfg.to_str().unwrap_or_default(), &format!("name=\"fw{i}\"")]).env(STAMP, "1").stdin(Stdio::null()).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!("create: {stderr}");
        }
        let request: u64 = stderr.lines().find_map(|l| l.strip_prefix("xenolith-bench: request-ns=")?.parse().ok()).context("no request stamp")?;
        let entry = entries.recv_timeout(Duration::from_secs(10)).context("no first-entry stamp from the service")?;
        request_to_entry.push(entry.saturating_sub(request) as f64 / 1e6);
        spawn_to_entry.push(entry.saturating_sub(spawned) as f64 / 1e6);
    }

    // Many domains: each idles once started (sti; hlt), until destroyed.
    let idle_cfg = cfg(&dir, "idle", &idle)?;
    let rss_before = svc.rss_kib();
    let mut creates = Vec::new();
    let all = Instant::now();
    for i in 0..MANY {
        let t = Instant::now();
        svc.ok(&["create", idle_cfg.to_str().unwrap_or_default(), &format!("name=\"idle{i}\"")])?;
        creates.push(t.elapsed().as_secs_f64() * 1e3);
        let _ = entries.recv_timeout(Duration::from_secs(10));
    }
    let all = all.elapsed().as_secs_f64();
    let listed = String::from_utf8_lossy(&svc.ok(&["list"])?.stdout).lines().filter(|l| l.starts_with("idle")).count();
    if listed != MANY {
        bail!("{listed} of {MANY} domains listed");
    }
    let rss_after = svc.rss_kib();
    let threads = std::fs::read_dir(format!("/proc/{}/task", svc.child.id())).map(|d| d.count()).unwrap_or(0);
    let stop = Instant::now();
    drop(svc);
    let stop = stop.elapsed().as_secs_f64();

    Ok(format!(
        "through the host service (`xenolith daemon` running, xenstored in it), median of {RUNS} `xenolith create`s of the same minimal image:\n\
         - client's request to first guest instruction: {:.2} ms\n\
         - client spawn to first guest instruction:     {:.2} ms\n\
         {MANY} domains in one service (the minimal image idling, memory = 64 each):\n\
         - create, median per domain (client spawn to return): {:.2} ms; all {MANY}: {all:.2} s\n\
         - service memory (RSS) per domain: {:.0} KiB ({} MiB with none, {} MiB with {MANY}); {threads} threads\n\
         - SIGTERM, every domain destroyed and the service gone: {stop:.2} s\n",
        median(request_to_entry),
        median(spawn_to_entry),
        median(creates),
        rss_after.saturating_sub(rss_before) as f64 / MANY as f64,
        rss_before / 1024,
        rss_after / 1024,
    ))
}
