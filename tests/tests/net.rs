//! The network backend on the host side (issue 10): vif specs checked by
//! `create -n`, a missing bridge refused at create time, and a running
//! domain's TAP named vif<domid>.<devid>, attached to its bridge and up
//! (or up and unattached without one), gone once the domain ends. Each
//! test makes its own network namespace with `ip netns` and a bridge in
//! it, and deletes them (needs root, as the backend needs CAP_NET_ADMIN).

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use xenolith_tests::*;

const LIMIT: Duration = Duration::from_secs(30);

/// A network namespace with a bridge `xenbr0`, deleted (with every
/// interface in it) when dropped.
struct Netns {
    name: String,
}

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().expect("run ip")
}

impl Netns {
    fn new() -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("xlnet-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let out = ip(&["netns", "add", &name]);
        assert!(out.status.success(), "ip netns add: {}", String::from_utf8_lossy(&out.stderr));
        let ns = Netns { name };
        for args in [&["link", "add", "xenbr0", "type", "bridge"][..], &["link", "set", "xenbr0", "up"], &["link", "set", "lo", "up"]] {
            let out = ns.ip(args);
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        ns
    }

    fn ip(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `ip -d link show dev NAME` in the namespace, or None if it does not exist.
    fn link(&self, name: &str) -> Option<String> {
        let out = self.ip(&["-d", "link", "show", "dev", name]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `xenolith ARGS` inside the namespace.
    fn xenolith(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(xenolith()).args(args);
        cmd.current_dir(root()).env("XENOLITH_RUN_DIR", dir.join("run"));
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A config for a domain that idles until destroyed, with `vifs`.
fn cfg(dir: &Path, vifs: &str) -> PathBuf {
    let kernel = dir.join("idle");
    std::fs::write(&kernel, idle_marker_kernel(16 * 1024, "idle marker")).unwrap();
    let text = format!("name = \"net\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 32\nvif = [ {vifs} ]\n", kernel.display());
    write_cfg(dir, "net.cfg", &text)
}

fn dry_run(ns: &Netns, dir: &Path, cfg: &Path) -> Run {
    let mut cmd = ns.xenolith(dir, &["create", "-n"]);
    cmd.arg(cfg);
    run_command(cmd, LIMIT)
}

#[test]
fn create_n_checks_vif_specs_and_the_bridge() {
    let ns = Netns::new();
    let dir = scratch("net_dry_run");
    let run = dry_run(&ns, &dir, &cfg(&dir, "'mac=00:16:3e:12:34:56,bridge=xenbr0', 'vifname=free0'"));
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("vifs: vif<domid>.0 (00:16:3e:12:34:56, bridge xenbr0), free0 (00:16:3e:"), "{run}");

    let run = dry_run(&ns, &dir, &cfg(&dir, "'bridge=nobr0'"));
    assert_eq!(run.code(), 1, "{run}");
    assert!(
        run.stderr.contains("net.cfg:5: vif: 'bridge=nobr0': bridge nobr0 does not exist (create it first, e.g. `ip link add nobr0 type bridge`)"),
        "{run}"
    );
    assert_eq!(run.stderr.trim().lines().count(), 1, "one line: {run}");

    for (spec, why) in [
        ("'mac=00:16:3e:12:34:56,colour=blue'", "net.cfg:5: vif: 'mac=00:16:3e:12:34:56,colour=blue': unknown parameter `colour=blue`"),
        ("'bridge=xenbr0,rate=10Mb/s'", "rate= (credit-based rate limiting) is not implemented"),
        ("'type=ioemu'", "Xenolith has no emulated NICs"),
        ("'backend=netdom'", "backend= (a driver domain) is not supported"),
        ("'script=/nonexistent/vif-x'", "script /nonexistent/vif-x is not an executable file"),
        ("'devid=1', 'devid=1'", "devid 1 is already used by another vif"),
    ] {
        let run = dry_run(&ns, &dir, &cfg(&dir, spec));
        assert_eq!(run.code(), 1, "{spec}: {run}");
        assert!(run.stderr.contains(why), "{spec}: {run}");
    }
}

fn wait_running(dir: &Path, child: &mut Child) {
    let start = Instant::now();
    while UnixStream::connect(dir.join("run/xenstored/socket")).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut e = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut e);
            panic!("xenolith ended before the domain ran: {status}\n{e}");
        }
        assert!(start.elapsed() < LIMIT, "the domain did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_running_domain_has_its_taps_up_and_on_the_bridge_until_it_ends() {
    let ns = Netns::new();
    let dir = scratch("net_running");
    let cfg = cfg(&dir, "'mac=00:16:3e:12:34:56,bridge=xenbr0', 'vifname=free0,mtu=1400'");
    let mut cmd = ns.xenolith(&dir, &["create", "--console-log"]);
    cmd.arg(dir.join("console.log")).arg(&cfg).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn xenolith");
    wait_running(&dir, &mut child);

    let on_bridge = ns.link("vif1.0").expect("vif1.0 exists while the domain runs");
    assert!(on_bridge.contains("master xenbr0"), "{on_bridge}");
    assert!(on_bridge.contains(",UP") || on_bridge.contains("<UP"), "{on_bridge}");
    assert!(on_bridge.contains("link/ether fe:ff:ff:ff:ff:ff"), "the host side's MAC, as vif-bridge sets it: {on_bridge}");
    assert!(on_bridge.contains("tun type tap"), "{on_bridge}");
    let free = ns.link("free0").expect("free0 exists");
    assert!(!free.contains("master"), "{free}");
    assert!(free.contains(",UP") || free.contains("<UP"), "{free}");
    assert!(free.contains("mtu 1400"), "{free}");

    // The backend's xenstore nodes, as a frontend finds them.
    let xs = |path: &str| {
        let out = Command::new("xenstore-read")
            .env("XENSTORED_PATH", dir.join("run/xenstored/socket"))
            .arg(path)
            .output()
            .expect("xenstore-read");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    if Command::new("xenstore-read").arg("--help").output().is_ok() {
        assert_eq!(xs("/local/domain/1/device/vif/0/mac"), "00:16:3e:12:34:56");
        assert_eq!(xs("/local/domain/0/backend/vif/1/0/state"), "2");
        assert_eq!(xs("/local/domain/0/backend/vif/1/0/feature-rx-copy"), "1");
        assert_eq!(xs("/local/domain/0/backend/vif/1/0/bridge"), "xenbr0");
    }

    // SAFETY: kill with the pid of our own child (ip execs xenolith).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < LIMIT, "xenolith did not end on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(143), "{status}");
    assert!(ns.link("vif1.0").is_none(), "vif1.0 is gone with the domain");
    assert!(ns.link("free0").is_none(), "free0 is gone with the domain");
    let bridge = ns.link("xenbr0").expect("the bridge stays");
    assert!(bridge.contains("bridge"), "{bridge}");
}

#[test]
fn a_missing_bridge_is_one_clear_error_at_create_time() {
    let ns = Netns::new();
    let dir = scratch("net_no_bridge");
    let cfg = cfg(&dir, "'bridge=xenbr0', 'bridge=nobr1'");
    let mut cmd = ns.xenolith(&dir, &["create", "--console-log"]);
    cmd.arg(dir.join("console.log")).arg(&cfg);
    let run = run_command(cmd, LIMIT);
    assert_eq!(run.code(), 1, "{run}");
    assert!(run.stderr.contains("vif: 'bridge=nobr1': bridge nobr1 does not exist"), "{run}");
    assert_eq!(run.stderr.trim().lines().count(), 1, "one line: {run}");
    assert!(ns.link("vif1.0").is_none(), "nothing is left behind");
}
