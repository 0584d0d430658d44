//! Network benchmark: the appliance domU (examples/httpd) behind our
//! netback, against a host HTTP server over a veth pair, measured the same
//! way in the same run.
//!
//! Two network namespaces: `xlbench-guest` has the bridge xenbr0
//! (10.0.0.1/24) with the domain's vif on it (httpd at 10.0.0.2);
//! `xlbench-peer` has a veth pair (10.9.0.1 <-> 10.9.0.2) and Python's
//! http.server on the far end serving a file of the same size. curl, in
//! each namespace, fetches the 1 MiB file repeatedly (guest -> host
//! throughput) and the small page repeatedly on one connection
//! (requests/s). Ratios are ours over the host's.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::root;

const GUEST_NS: &str = "xlbench-guest";
const PEER_NS: &str = "xlbench-peer";
const BIG_RUNS: usize = 5;
const PAGE_RUNS: usize = 200;

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("run ip")?;
    if !out.status.success() {
        bail!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The two namespaces, deleted (with everything in them) when dropped.
struct Namespaces;

impl Namespaces {
    fn new() -> Result<Namespaces> {
        for ns in [GUEST_NS, PEER_NS] {
            let _ = ip(&["netns", "del", ns]);
            ip(&["netns", "add", ns])?;
        }
        let n = Namespaces;
        ip(&["-n", GUEST_NS, "link", "add", "xenbr0", "type", "bridge"])?;
        ip(&["-n", GUEST_NS, "addr", "add", "10.0.0.1/24", "dev", "xenbr0"])?;
        ip(&["-n", GUEST_NS, "link", "set", "xenbr0", "up"])?;
        ip(&["-n", PEER_NS, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1"])?;
        ip(&["-n", PEER_NS, "addr", "add", "10.9.0.1/24", "dev", "veth0"])?;
        ip(&["-n", PEER_NS, "addr", "add", "10.9.0.2/24", "dev", "veth1"])?;
        for dev in ["veth0", "veth1", "lo"] {
            ip(&["-n", PEER_NS, "link", "set", dev, "up"])?;
        }
        Ok(n)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [GUEST_NS, PEER_NS] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Seconds curl takes, in `ns`, to fetch `urls` (one connection where the
/// server keeps it alive: httpd does; Python's http.server speaks HTTP/1.0
/// and closes, so the peer's requests/s include a connection each).
fn curl(ns: &str, urls: &[String]) -> Result<f64> {
    let start = Instant::now();
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sS", "--fail", "--max-time", "600"])
        .args(urls.iter().flat_map(|u| ["-o", "/dev/null", u.as_str()]))
        .output()
        .context("run curl")?;
    if !out.status.success() {
        bail!("curl in {ns}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(start.elapsed().as_secs_f64())
}

fn wait_for(ns: &str, url: &str, limit: Duration) -> Result<()> {
    let start = Instant::now();
    while curl(ns, &[url.to_string()]).is_err() {
        if start.elapsed() > limit {
            bail!("{url} did not answer within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Runs the benchmark; returns the report.
pub fn run() -> Result<String> {
    let _ns = Namespaces::new()?;
    let dir = root().join("target/bench/net");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("big.bin"), vec![0x5au8; 1 << 20])?;
    std::fs::write(dir.join("index.html"), "<!DOCTYPE html>\n<html><body><h1>peer</h1></body></html>\n")?;
    let _peer = Running(
        Command::new("ip")
            .args(["netns", "exec", PEER_NS, "python3", "-m", "http.server", "--bind", "10.9.0.2", "--directory"])
            .arg(&dir)
            .arg("80")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("python3 http.server")?,
    );
    let cfg = dir.join("httpd.cfg");
    std::fs::write(
        &cfg,
        format!(
            "name = \"httpd-bench\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\nextra = \"ip=10.0.0.2/24 gw=10.0.0.1\"\nvif = [ 'bridge=xenbr0' ]\n",
            root().join("target/guests/httpd").display()
        ),
    )?;
    let _guest = Running(
        Command::new("ip")
            .args(["netns", "exec", GUEST_NS])
            .arg(root().join("target/release/xenolith"))
            .args(["create", "--console-log"])
            .arg(dir.join("console.log"))
            .arg(&cfg)
            .env("XENOLITH_RUN_DIR", dir.join("run"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("xenolith create")?,
    );
    wait_for(GUEST_NS, "http://10.0.0.2/", Duration::from_secs(120))?;
    wait_for(PEER_NS, "http://10.9.0.2/", Duration::from_secs(30))?;

    let big = |host: &str| vec![format!("http://{host}/big.bin"); BIG_RUNS];
    let page = |host: &str| vec![format!("http://{host}/"); PAGE_RUNS];
    let mib = BIG_RUNS as f64;
    let guest_mib_s = mib / curl(GUEST_NS, &big("10.0.0.2"))?;
    let host_mib_s = mib / curl(PEER_NS, &big("10.9.0.2"))?;
    let guest_rps = PAGE_RUNS as f64 / curl(GUEST_NS, &page("10.0.0.2"))?;
    let host_rps = PAGE_RUNS as f64 / curl(PEER_NS, &page("10.9.0.2"))?;
    let mut r = String::new();
    r += "cargo xtask bench net: examples/httpd behind our netback (TAP on a bridge) against Python's http.server over a veth pair, curl in both\n";
    r += &format!("guest -> host, {BIG_RUNS} x 1 MiB on one connection: httpd {guest_mib_s:.2} MiB/s, host peer {host_mib_s:.1} MiB/s, ratio {:.4}\n", guest_mib_s / host_mib_s);
    r += &format!("requests/s, {PAGE_RUNS} page requests on one connection: httpd {guest_rps:.1}, host peer {host_rps:.1}, ratio {:.3}\n", guest_rps / host_rps);
    Ok(r)
}
