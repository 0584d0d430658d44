//! pvboot booting from the network (issue 10): a domain with a vif and no
//! disk fetches its config and kernel from real servers on a bridge in
//! the test's own network namespace, Debian's tftpd-hpa, Python's
//! http.server, and dnsmasq as the DHCP server naming the boot server and
//! file, then boots hello as from a disk.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use xenolith_tests::netns::{Netns, Server};
use xenolith_tests::*;

const LIMIT: Duration = Duration::from_secs(180);

/// `dir/tftp` with `files` in it (paths relative to the server's root).
fn serve_dir(dir: &Path, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let root = dir.join("srv");
    for (path, bytes) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    root
}

/// Waits until something listens on `port` in the namespace.
fn wait_listening(ns: &Netns, proto: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ns.exec("ss").args([if proto == "udp" { "-lnu" } else { "-lnt" }]).output().expect("ss");
        if String::from_utf8_lossy(&out.stdout).contains(&format!(":{port} ")) {
            return;
        }
        assert!(Instant::now() < deadline, "nothing listens on {proto}/{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// tftpd-hpa on 10.0.0.1:69 in the namespace, serving `root` (chrooted).
fn tftpd(ns: &Netns, root: &Path) -> Server {
    let child = ns
        .exec("/usr/sbin/in.tftpd")
        .args(["--foreground", "--secure", "--user", "root", "--address", "10.0.0.1:69"])
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("in.tftpd (Debian's tftpd-hpa; `cargo xtask setup` installs it)");
    let server = Server(child);
    wait_listening(ns, "udp", 69);
    server
}

/// Python's http.server on 10.0.0.1:`port` in the namespace, serving `root`.
fn http_server(ns: &Netns, root: &Path, port: u16) -> Server {
    let child = ns
        .exec("python3")
        .args(["-m", "http.server", "--bind", "10.0.0.1", "--directory"])
        .arg(root)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let server = Server(child);
    wait_listening(ns, "tcp", port);
    server
}

/// The namespace's bridge gets 10.0.0.1/24: the servers' side.
fn address_bridge(ns: &Netns) {
    let out = ns.ip(&["addr", "add", "10.0.0.1/24", "dev", "xenbr0"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// pvboot with one vif on the bridge, no disk, `extra` on its command
/// line, run to its end with its console captured.
fn boot_pvboot(ns: &Netns, dir: &Path, extra: &str) -> Run {
    let text = format!(
        "name = \"netboot\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 256\nextra = \"{extra}\"\nvif = [ 'bridge=xenbr0' ]\n",
        guest("pvboot").display()
    );
    let cfg = write_cfg(dir, "netboot.cfg", &text);
    let mut cmd = ns.xenolith(dir, &["run", "-c"]);
    cmd.arg(&cfg);
    let run = run_command(cmd, LIMIT);
    // For the log: how fast the kernel came.
    for line in run.stdout.lines().filter(|l| l.starts_with("pvboot: timing")) {
        eprintln!("{line}");
    }
    run
}

fn at(run: &Run, needle: &str) -> usize {
    run.stdout.find(needle).unwrap_or_else(|| panic!("missing {needle:?}\n{run}"))
}

fn hello() -> Vec<u8> {
    std::fs::read(guest("hello")).expect("target/guests/hello: run cargo xtask build")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip").arg("-9c").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("gzip");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// menu.lst and the kernel from tftpd-hpa, under the directory the URL
/// names, with a static address. (Classic PV is run on real Xen, by
/// test-xen: our hypervisor runs PVH guests.)
#[test]
fn pvboot_boots_hello_from_tftpd_hpa() {
    let ns = Netns::new();
    let dir = scratch("netboot_tftp");
    address_bridge(&ns);
    let menu = "default 0\ntimeout 0\ntitle hello over TFTP\nkernel /boot/hello from tftp\n";
    let root = serve_dir(&dir, &[("pxe/boot/hello", hello()), ("pxe/boot/grub/menu.lst", menu.as_bytes().to_vec())]);
    let _tftpd = tftpd(&ns, &root);
    let run = boot_pvboot(&ns, &dir, "ip=10.0.0.2/24 netboot=tftp://10.0.0.1/pxe/ -- and more");
    assert_eq!(run.code(), 0, "{run}");
    let address = at(&run, "pvboot: address 10.0.0.2/24");
    let reading = at(&run, "pvboot: reading /boot/grub/menu.lst on tftp://10.0.0.1/pxe/");
    let booting = at(&run, "pvboot: booting /boot/hello from tftp://10.0.0.1/pxe/");
    let hello = at(&run, "Hello from Xenolith!");
    assert!(address < reading && reading < booting && booting < hello, "{run}");
    assert!(run.stdout.contains("command line: from tftp and more"), "{run}");
}

/// grub.cfg and a gzip-compressed kernel from Python's http.server, the
/// config named by the URL.
#[test]
fn pvboot_boots_hello_from_an_http_server() {
    let ns = Netns::new();
    let dir = scratch("netboot_http");
    address_bridge(&ns);
    let grub = "set default=0\nset timeout=0\nmenuentry 'hello over HTTP' {\n  linux /boot/hello.gz from http\n}\n";
    let root = serve_dir(&dir, &[("boot/hello.gz", gzip(&hello())), ("boot/grub/grub.cfg", grub.as_bytes().to_vec())]);
    let _http = http_server(&ns, &root, 8080);
    let run = boot_pvboot(&ns, &dir, "ip=10.0.0.2/24 gw=10.0.0.1 netboot=http://10.0.0.1:8080/boot/grub/grub.cfg");
    assert_eq!(run.code(), 0, "{run}");
    let reading = at(&run, "pvboot: reading /boot/grub/grub.cfg on http://10.0.0.1:8080/");
    let booting = at(&run, "pvboot: booting /boot/hello.gz from http://10.0.0.1:8080/");
    let hello = at(&run, "Hello from Xenolith!");
    assert!(reading < booting && booting < hello, "{run}");
    assert!(run.stdout.contains("gzip"), "the kernel was decompressed\n{run}");
    assert!(run.stdout.contains("command line: from http"), "{run}");
}

/// No disk and no `netboot`: pvboot goes to the network as a PXE ROM
/// does; dnsmasq gives the address and names the server and boot.cfg
/// (BOOTP's siaddr and file), tftpd-hpa serves them.
#[test]
fn without_a_bootable_disk_pvboot_asks_dhcp_and_boots_what_it_names() {
    let ns = Netns::new();
    let dir = scratch("netboot_dhcp");
    address_bridge(&ns);
    let cfg = "menu=Hello over DHCP:boot /boot/hello from dhcp\ndefault=1\ntimeout=0\n";
    let root = serve_dir(&dir, &[("boot/hello", hello()), ("netboot/boot.cfg", cfg.as_bytes().to_vec())]);
    let _tftpd = tftpd(&ns, &root);
    let child = ns
        .exec("dnsmasq")
        .args(["--no-daemon", "--port=0", "--interface=xenbr0", "--bind-interfaces", "--dhcp-range=10.0.0.50,10.0.0.59,255.255.255.0,1h"])
        .arg("--dhcp-boot=/netboot/boot.cfg,,10.0.0.1")
        .arg(format!("--dhcp-leasefile={}", dir.join("leases").display()))
        .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq (dnsmasq-base; `cargo xtask setup` installs it)");
    let _dnsmasq = Server(child);
    wait_listening(&ns, "udp", 67);
    let run = boot_pvboot(&ns, &dir, "");
    assert_eq!(run.code(), 0, "{run}");
    let fallback = at(&run, "pvboot: trying the network");
    let lease = at(&run, "pvboot: address 10.0.0.5");
    assert!(run.stdout.contains("boot server tftp://10.0.0.1/, config /netboot/boot.cfg"), "{run}");
    let booting = at(&run, "pvboot: booting /boot/hello from tftp://10.0.0.1/");
    let hello = at(&run, "Hello from Xenolith!");
    assert!(fallback < lease && lease < booting && booting < hello, "{run}");
    assert!(run.stdout.contains("command line: from dhcp"), "{run}");
}

/// pvboot closes the vif before the hand-off, and the kernel it booted
/// from the network connects it again: net-echo, fetched over HTTP,
/// answers on the same vif.
#[test]
fn a_net_booted_kernel_gets_the_vif_pvboot_used() {
    let ns = Netns::new();
    let dir = scratch("netboot_handover");
    address_bridge(&ns);
    let echo = std::fs::read(guest("net-echo")).expect("target/guests/net-echo");
    let root = serve_dir(&dir, &[("net-echo", echo)]);
    let _http = http_server(&ns, &root, 80);
    let text = format!(
        "name = \"handover\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 256\n\
         extra = \"ip=10.0.0.2/24 netboot=http://10.0.0.1/ kernel=/net-echo -- ip=10.0.0.2/24\"\nvif = [ 'bridge=xenbr0' ]\n",
        guest("pvboot").display()
    );
    let cfg = write_cfg(&dir, "handover.cfg", &text);
    let log = dir.join("console.log");
    let mut cmd = ns.xenolith(&dir, &["run", "--console-log"]);
    cmd.arg(&log).arg(&cfg).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let xenolith = Server(cmd.spawn().expect("spawn xenolith"));
    let start = Instant::now();
    let console = loop {
        let console = std::fs::read_to_string(&log).unwrap_or_default();
        if console.contains("net-echo: listening on 10.0.0.2 tcp/7") {
            break console;
        }
        assert!(start.elapsed() < LIMIT, "net-echo did not come up:\n{console}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(console.contains("pvboot: booting /net-echo from http://10.0.0.1/"), "{console}");
    let echoed = ns.inside(|| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect_timeout(&"10.0.0.2:7".parse().unwrap(), Duration::from_secs(30)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        s.write_all(&data).map_err(|e| e.to_string())?;
        let mut got = vec![0u8; data.len()];
        s.read_exact(&mut got).map_err(|e| e.to_string())?;
        Ok::<bool, String>(got == data)
    });
    drop(xenolith);
    assert_eq!(echoed, Ok(true), "{}", std::fs::read_to_string(&log).unwrap_or_default());
}
