//! `cargo xtask bench netboot`: pvboot fetching a kernel over the network
//! (TFTP from tftpd-hpa, HTTP from Python's http.server) through our
//! netback, against curl fetching the same file from the same servers
//! over a veth pair, in the same run.
//!
//! Two namespaces: `guest` holds the bridge with the domain's TAP and one
//! end of a veth pair (and the bridge address 10.0.0.3, curl's side);
//! `server` holds the other end, 10.0.0.1, with both servers. So the
//! guest's bytes and curl's cross the same veth; the guest's also cross
//! netback, netfront, smoltcp and pvboot's clients.
//!
//! Measured: pvboot's own figure (`N bytes loaded in T ms`, from the
//! first byte requested to the kernel in place) and curl's
//! `time_total`; the ratio is guest MiB/s over curl's.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xenolith_tests::netns::{Netns, Server};

/// The kernel fetched: the boot-loader bench's marker kernel, 4 MiB.
const KERNEL_BYTES: usize = 4 << 20;
/// What the kernel writes to port 0xE9 once entered.
const MARKER: &str = "xenolith-bench: netboot kernel entered";
/// One boot's time limit (about 100 KiB/s here: every guest instruction is emulated).
const RUN_LIMIT: Duration = Duration::from_secs(300);

fn check(out: std::process::Output, what: &str) -> Result<()> {
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// curl's seconds for `url`, fetched from the guest namespace.
fn curl(ns: &Netns, url: &str) -> Result<f64> {
    let out = ns.exec("curl").args(["-sS", "--fail", "--max-time", "120", "-o", "/dev/null", "-w", "%{time_total}", url]).output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    check(out, &format!("curl {url}"))?;
    text.trim().parse().with_context(|| format!("curl's time_total {text:?}"))
}

/// pvboot with `extra`, until the kernel's marker: pvboot's bytes and
/// milliseconds for the load, and the seconds from spawn to the marker.
fn boot(ns: &Netns, dir: &Path, extra: &str) -> Result<(u64, f64, f64)> {
    let root = crate::root();
    let cfg = dir.join("netboot.cfg");
    std::fs::write(
        &cfg,
        format!(
            "name = \"netboot-bench\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 256\nextra = \"{extra}\"\nvif = [ 'bridge=xenbr0' ]\n",
            root.join("target/guests/pvboot").display()
        ),
    )?;
    let mut cmd = ns.xenolith(dir, &["run", "-c"]);
    cmd.arg(&cfg).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = Server(cmd.spawn().context("spawning xenolith")?);
    let console = Arc::new(Mutex::new(String::new()));
    let stdout = child.0.stdout.take().context("stdout")?;
    let stderr = child.0.stderr.take().context("stderr")?;
    let c = console.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut c = c.lock().unwrap();
            c.push_str(&line);
            c.push('\n');
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(MARKER) {
                let _ = tx.send(());
            }
        }
    });
    let entered = rx.recv_timeout(RUN_LIMIT).map(|()| start.elapsed().as_secs_f64());
    // The console's last lines come before the marker; give the reader a moment.
    std::thread::sleep(Duration::from_millis(200));
    drop(child);
    let console = console.lock().unwrap().clone();
    let Ok(entered) = entered else { bail!("no kernel marker within {RUN_LIMIT:?}:\n{console}") };
    let timing = console.lines().find(|l| l.starts_with("pvboot: timing")).with_context(|| format!("no timing line:\n{console}"))?;
    let field = |after: &str| -> Option<&str> { timing.split(after).nth(1)?.split_whitespace().next() };
    let bytes: u64 = field("; ").and_then(|v| v.parse().ok()).context("bytes")?;
    let ms: f64 = field("bytes loaded in ").and_then(|v| v.parse().ok()).context("ms")?;
    Ok((bytes, ms, entered))
}

fn mib_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / secs.max(1e-9)
}

/// Runs the benchmark and returns its report.
pub fn run() -> Result<String> {
    let dir = crate::root().join("target/bench/netboot");
    let _ = std::fs::remove_dir_all(&dir);
    let srv = dir.join("srv");
    std::fs::create_dir_all(&srv)?;
    std::fs::write(srv.join("kernel"), xenolith_tests::marker_kernel(KERNEL_BYTES, MARKER))?;

    let guest = Netns::new();
    let server = Netns::new();
    check(
        Command::new("ip").args(["link", "add", "nb0", "netns", &guest.name, "type", "veth", "peer", "name", "nb1", "netns", &server.name]).output()?,
        "veth pair",
    )?;
    for (ns, args) in [
        (&guest, &["link", "set", "nb0", "master", "xenbr0", "up"][..]),
        (&guest, &["addr", "add", "10.0.0.3/24", "dev", "xenbr0"]),
        (&server, &["addr", "add", "10.0.0.1/24", "dev", "nb1"]),
        (&server, &["link", "set", "nb1", "up"]),
    ] {
        check(ns.ip(args), &format!("ip {args:?}"))?;
    }
    let spawn = |mut c: Command| -> Result<Server> { Ok(Server(c.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?)) };
    let mut tftpd = server.exec("/usr/sbin/in.tftpd");
    tftpd.args(["--foreground", "--secure", "--user", "root", "--address", "10.0.0.1:69"]).arg(&srv);
    let _tftpd = spawn(tftpd)?;
    let mut http = server.exec("python3");
    http.args(["-m", "http.server", "--bind", "10.0.0.1", "--directory"]).arg(&srv).arg("8080");
    let _http = spawn(http)?;
    std::thread::sleep(Duration::from_secs(1));

    let mut r = String::new();
    r += &format!(
        "cargo xtask bench netboot: pvboot fetching a {} MiB kernel through our netback against curl over a veth pair, same servers, same run\n",
        KERNEL_BYTES >> 20
    );
    r += "protocol  pvboot MiB/s (load ms)  curl MiB/s (s)   ratio   spawn to kernel (s)\n";
    for (name, url, extra) in [
        ("tftp", "tftp://10.0.0.1/kernel", "ip=10.0.0.2/24 netboot=tftp://10.0.0.1/ kernel=/kernel"),
        ("http", "http://10.0.0.1:8080/kernel", "ip=10.0.0.2/24 netboot=http://10.0.0.1:8080/ kernel=/kernel"),
    ] {
        let host_s = curl(&guest, url)?;
        let (bytes, ms, entered) = boot(&guest, &dir, extra)?;
        if bytes != KERNEL_BYTES as u64 {
            bail!("pvboot loaded {bytes} bytes, the kernel has {KERNEL_BYTES}");
        }
        let (g, h) = (mib_s(bytes, ms / 1000.0), mib_s(KERNEL_BYTES as u64, host_s));
        r += &format!("{name:<9} {g:>8.3} ({ms:>9.0})      {h:>8.1} ({host_s:.3})  {:>7.4}   {entered:.1}\n", g / h);
    }
    Ok(r)
}
