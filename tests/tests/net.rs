//! The network backend on the host side (issue 10): vif specs checked by
//! `create -n`, a missing bridge refused at create time, and a running
//! domain's TAP named vif<domid>.<devid>, attached to its bridge and up
//! (or up and unattached without one), gone once the domain ends; and the
//! whole path with guest-lib's netfront on the other side: net-echo's TCP
//! and UDP round trips and httpd's page and 1 MiB file, fetched by curl
//! from the bridge. Each test makes its own network namespace with `ip
//! netns` and a bridge in it, and deletes them (needs root, as the backend
//! needs CAP_NET_ADMIN).

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xenolith_tests::netns::Netns;
use xenolith_tests::*;

const LIMIT: Duration = Duration::from_secs(30);

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

    // xenstored's socket comes before the vifs: wait for the backend to set them up.
    let start = Instant::now();
    let on_bridge = loop {
        match (ns.link("vif1.0"), ns.link("free0")) {
            (Some(vif), Some(_)) if vif.contains("master xenbr0") && (vif.contains(",UP") || vif.contains("<UP")) => break vif,
            (vif, _) => assert!(start.elapsed() < LIMIT, "vif1.0 is not up on xenbr0 while the domain runs: {vif:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
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

/// A guest with one vif on `xenbr0` (which gets 10.0.0.1/24), started with
/// `extra`, until its console says `ready`; returns it running.
fn boot_net_guest(ns: &Netns, dir: &Path, guest_name: &str, extra: &str, ready: &str) -> Child {
    assert!(ns.ip(&["addr", "add", "10.0.0.1/24", "dev", "xenbr0"]).status.success());
    let text = format!(
        "name = \"{guest_name}\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\nextra = \"{extra}\"\nvif = [ 'bridge=xenbr0' ]\n",
        guest(guest_name).display()
    );
    let cfg = write_cfg(dir, "guest.cfg", &text);
    let log = dir.join("console.log");
    let mut cmd = ns.xenolith(dir, &["create", "--console-log"]);
    cmd.arg(&log).arg(&cfg).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn xenolith");
    let start = Instant::now();
    loop {
        let console = std::fs::read_to_string(&log).unwrap_or_default();
        if console.contains(ready) {
            return child;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("xenolith ended ({status}) before `{ready}`:\n{console}");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no `{ready}` in 120 s:\n{console}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut child: Child) {
    // SAFETY: kill with the pid of our own child (ip execs xenolith).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

#[test]
fn net_echo_round_trips_tcp_and_udp_through_our_netback() {
    let ns = Netns::new();
    let dir = scratch("net_echo");
    // Two queues (ring pairs, TAP queues), so the clients' flows spread.
    let child = boot_net_guest(&ns, &dir, "net-echo", "ip=10.0.0.2/24 gw=10.0.0.1 netfront.queues=2", "net-echo: listening on 10.0.0.2 tcp/7 udp/7");
    let console = std::fs::read_to_string(dir.join("console.log")).unwrap();
    assert!(console.contains(" queues=2 "), "two queues negotiated:\n{console}");
    let result = ns.inside(|| {
        use std::io::{Read, Write};
        // Three clients at once, each with its own payload (up to 96 KiB).
        let clients: Vec<_> = (1..=3u64)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut s = std::net::TcpStream::connect_timeout(&"10.0.0.2:7".parse().unwrap(), LIMIT).map_err(|e| e.to_string())?;
                    s.set_read_timeout(Some(LIMIT)).unwrap();
                    let data = image_bytes(32 * 1024 * i as usize, i);
                    let writer = {
                        let mut s = s.try_clone().unwrap();
                        let data = data.clone();
                        std::thread::spawn(move || s.write_all(&data))
                    };
                    let mut got = vec![0u8; data.len()];
                    s.read_exact(&mut got).map_err(|e| format!("client {i}: {e}"))?;
                    writer.join().unwrap().map_err(|e| e.to_string())?;
                    if got != data {
                        return Err(format!("client {i}: the echo differs"));
                    }
                    Ok::<usize, String>(got.len())
                })
            })
            .collect();
        let tcp: Result<Vec<usize>, String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        let mut echoed = 0;
        for i in 0..20u64 {
            // A socket (a port, a flow) each: flows hash to both queues.
            let udp = std::net::UdpSocket::bind("10.0.0.1:0").unwrap();
            udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let p = image_bytes(64 + 70 * i as usize, 100 + i);
            udp.send_to(&p, "10.0.0.2:7").unwrap();
            let mut buf = [0u8; 2048];
            if let Ok((n, _)) = udp.recv_from(&mut buf) {
                echoed += usize::from(buf[..n] == p[..]);
            }
        }
        (tcp, echoed)
    });
    // Powered off as xl shutdown does it, through control/shutdown
    // (written with xenstore-utils): net-echo prints its counters.
    let out = Command::new("xenstore-write")
        .env("XENSTORED_PATH", dir.join("run/xenstored/socket"))
        .args(["/local/domain/1/control/shutdown", "poweroff"])
        .output()
        .expect("xenstore-write");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = wait_exit(child, LIMIT);
    let (tcp, echoed) = result;
    assert_eq!(tcp.unwrap(), vec![32768, 65536, 98304]);
    assert!(echoed >= 19, "{echoed} of 20 UDP datagrams echoed");
    let console = std::fs::read_to_string(dir.join("console.log")).unwrap();
    assert_eq!(status, Some(0), "net-echo powered off:\n{console}");
    let per_queue = console.lines().find_map(|l| l.strip_prefix("net-echo: packets per queue (rx/tx): ")).unwrap_or_else(|| panic!("{console}"));
    let counts: Vec<u64> = per_queue.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    assert!(counts.len() == 4 && counts.iter().all(|&n| n > 0), "both queues carried packets both ways: {per_queue}");
}

/// Waits up to `limit` for `child` to end by itself; its exit code, or
/// `None` if it had to be killed.
fn wait_exit(mut child: Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(child);
    None
}

#[test]
fn curl_fetches_httpds_page_and_file_through_a_bridge() {
    let ns = Netns::new();
    let dir = scratch("net_httpd");
    let child = boot_net_guest(&ns, &dir, "httpd", "ip=10.0.0.2/24 gw=10.0.0.1 clients=20", "httpd: serving on http://10.0.0.2:80/");
    let curl = |args: &[&str]| {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.name, "curl", "-sS", "--max-time", "60"]).args(args);
        run_command(cmd, Duration::from_secs(90))
    };
    // 20 clients at once get the page.
    let mut args = vec!["-Z", "--parallel-max", "20"];
    args.extend(std::iter::repeat_n("http://10.0.0.2/", 20));
    let pages = curl(&args);
    // The file, checked byte for byte against the guest's formula.
    let big = dir.join("big.bin");
    let file = curl(&["-o", big.to_str().unwrap(), "http://10.0.0.2/big.bin"]);
    stop(child);
    assert_eq!(pages.code(), 0, "{pages}");
    assert_eq!(pages.stdout.matches("Hello from a Xenolith appliance domU").count(), 20, "{pages}");
    assert_eq!(file.code(), 0, "{file}");
    let bytes = std::fs::read(&big).unwrap();
    let want: Vec<u8> = (0..1usize << 20).map(|i| ((i as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8 ^ (i >> 12) as u8).collect();
    assert_eq!(bytes.len(), want.len());
    assert!(bytes == want, "big.bin differs from the guest's formula");
}
