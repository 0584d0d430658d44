//! Network benchmark: guests behind our netback against the host's own TCP
//! path over a veth pair, measured the same way in the same run.
//!
//! Three network namespaces: `xlbench-guest` has the bridge xenbr0
//! (10.0.0.1/24) with the domains' vifs on it; `xlbench-peer` (10.9.0.1)
//! and `xlbench-far` (10.9.0.2) hold the two ends of a veth pair, so the
//! host peer's traffic crosses the veth rather than loopback.
//!
//! - HTTP: examples/httpd (10.0.0.2) against Python's http.server in
//!   `xlbench-far` serving a file of the same size; curl fetches the 1 MiB
//!   file repeatedly (guest -> host throughput) and the small page
//!   repeatedly on one connection (requests/s).
//! - TCP: examples/net-echo (10.0.0.3) serves discard (port 9) and a
//!   chargen-like source (port 19); a plain TCP client here, on a thread
//!   inside `xlbench-guest`, sends [`TCP_MIB`] MiB into discard (host ->
//!   guest) and reads as much from chargen (guest -> host, checked against
//!   RFC 864's pattern). The peer is `iperf3 -c` (and `-R`) from
//!   `xlbench-peer` to `iperf3 -s` in `xlbench-far`, read from `-J`.
//! - The backend's busy share: CPU time of the vif's I/O thread (`vif0-io`,
//!   from /proc/PID/task/TID/schedstat) over each transfer's wall time.
//! - Guest instructions per received and per sent MiB: three net-echo
//!   domains single-stepped from start to poweroff
//!   (XENOLITH_COUNT_INSTRUCTIONS=all, net-echo `stop-after=2`), one moving
//!   [`COUNT_BASE`] bytes each way, one [`COUNT_EXTRA`] more received, one
//!   as much more sent; the differences over the bytes net-echo counted.
//!
//! Ratios are ours over the host's.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::root;

const GUEST_NS: &str = "xlbench-guest";
const PEER_NS: &str = "xlbench-peer";
const FAR_NS: &str = "xlbench-far";
const BIG_RUNS: usize = 3;
const PAGE_RUNS: usize = 200;
/// MiB moved each way by the TCP throughput runs (the guest moves about
/// 0.1 MiB/s on a software KVM, so a few MiB keep the run short).
const TCP_MIB: usize = 2;
/// How long each iperf3 run lasts, in seconds.
const IPERF_SECONDS: u32 = 3;
/// Bytes moved each way by the base instruction-counting run.
const COUNT_BASE: usize = 64 << 10;
/// Bytes the other two counting runs move more, one received, one sent.
const COUNT_EXTRA: usize = 256 << 10;
/// Longest a single-stepped domain may take (one boots in about 40 s).
const COUNT_LIMIT: Duration = Duration::from_secs(600);
/// The chargen port's pattern length: 95 lines of 72 characters and CRLF.
const CHARGEN_PERIOD: usize = 95 * 74;

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("run ip")?;
    if !out.status.success() {
        bail!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The three namespaces, deleted (with everything in them) when dropped.
struct Namespaces;

impl Namespaces {
    fn new() -> Result<Namespaces> {
        for ns in [GUEST_NS, PEER_NS, FAR_NS] {
            let _ = ip(&["netns", "del", ns]);
            ip(&["netns", "add", ns])?;
        }
        let n = Namespaces;
        ip(&["-n", GUEST_NS, "link", "add", "xenbr0", "type", "bridge"])?;
        ip(&["-n", GUEST_NS, "addr", "add", "10.0.0.1/24", "dev", "xenbr0"])?;
        ip(&["-n", GUEST_NS, "link", "set", "xenbr0", "up"])?;
        ip(&["-n", PEER_NS, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", FAR_NS])?;
        ip(&["-n", PEER_NS, "addr", "add", "10.9.0.1/24", "dev", "veth0"])?;
        ip(&["-n", FAR_NS, "addr", "add", "10.9.0.2/24", "dev", "veth1"])?;
        for (ns, dev) in [(PEER_NS, "veth0"), (PEER_NS, "lo"), (FAR_NS, "veth1"), (FAR_NS, "lo")] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(n)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [GUEST_NS, PEER_NS, FAR_NS] {
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

/// A domain started by `xenolith run` inside [`GUEST_NS`]: its console
/// and its hypervisor log go to files.
struct Domain {
    child: Running,
    console: PathBuf,
    log: PathBuf,
}

impl Domain {
    /// Starts `kernel` (a guest in target/guests) as domain `name` with a vif
    /// named `name` on xenbr0; `env` adds environment (bench probes).
    fn start(dir: &Path, name: &str, kernel: &str, extra: &str, env: &[(&str, &str)]) -> Result<Domain> {
        let cfg = dir.join(format!("{name}.cfg"));
        std::fs::write(
            &cfg,
            format!(
                "name = \"{name}\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\nextra = \"{extra}\"\nvif = [ 'bridge=xenbr0,vifname={name}' ]\n",
                root().join("target/guests").join(kernel).display()
            ),
        )?;
        let console = dir.join(format!("{name}.console"));
        let log = dir.join(format!("{name}.log"));
        let _ = std::fs::remove_file(&console);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", GUEST_NS])
            .arg(root().join("target/release/xenolith"))
            .args(["-v", "run", "--console-log"])
            .arg(&console)
            .arg(&cfg)
            // Each xenolith process has its own xenstored socket.
            .env("XENOLITH_RUN_DIR", dir.join(format!("run-{name}")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = Running(cmd.spawn().context("xenolith run")?);
        Ok(Domain { child, console, log })
    }

    fn console(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the console shows `needle`.
    fn wait_console(&mut self, needle: &str, limit: Duration) -> Result<()> {
        let start = Instant::now();
        while !self.console().contains(needle) {
            if let Some(status) = self.child.0.try_wait()? {
                bail!("the domain ended ({status}) before '{needle}':\n{}\n{}", self.console(), self.log());
            }
            if start.elapsed() > limit {
                bail!("no '{needle}' within {limit:?}:\n{}\n{}", self.console(), self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Waits for the domain to power off by itself.
    fn wait_exit(&mut self, limit: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.0.try_wait()? {
                ensure!(status.success(), "the domain exited with {status}:\n{}\n{}", self.console(), self.log());
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!("the domain did not power off within {limit:?}:\n{}\n{}", self.console(), self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// CPU time so far of the netback's vif I/O threads (named
    /// `vif<devid>-io`), in ns, from each thread's schedstat.
    fn io_thread_ns(&self) -> Result<u64> {
        // `ip netns exec` execs xenolith, so the child is xenolith itself.
        let tasks = PathBuf::from(format!("/proc/{}/task", self.child.0.id()));
        let mut total = None;
        for t in std::fs::read_dir(&tasks).with_context(|| format!("{}", tasks.display()))? {
            let t = t?.path();
            let comm = std::fs::read_to_string(t.join("comm")).unwrap_or_default();
            let comm = comm.trim();
            if comm.starts_with("vif") && comm.ends_with("-io") {
                let stat = std::fs::read_to_string(t.join("schedstat"))?;
                let ns: u64 = stat.split_whitespace().next().unwrap_or("").parse().context("schedstat")?;
                total = Some(total.unwrap_or(0) + ns);
            }
        }
        total.with_context(|| format!("no vif*-io thread under {}", tasks.display()))
    }
}

/// Runs `f` on a thread inside namespace `ns`, so std's sockets opened
/// there use that namespace's interfaces.
fn inside<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(move || {
            let file = std::fs::File::open(&path).with_context(|| path.clone())?;
            // SAFETY: setns on an fd we own; it changes only this thread's namespace.
            let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            ensure!(rc == 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|_| bail!("the thread in {ns} panicked"))
    })
}

/// Connects to `addr:port`, retrying for a while (a listening socket may be
/// re-armed a moment after the previous connection closed).
fn connect(addr: Ipv4Addr, port: u16) -> Result<TcpStream> {
    let to = SocketAddr::from((addr, port));
    let start = Instant::now();
    loop {
        match TcpStream::connect_timeout(&to, Duration::from_secs(10)) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(600)))?;
                s.set_write_timeout(Some(Duration::from_secs(600)))?;
                return Ok(s);
            }
            Err(e) if start.elapsed() > Duration::from_secs(30) => bail!("connect {to}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Sends `bytes` into the discard service at `addr`; returns the seconds
/// from connecting to the guest's close, which comes after it took the last
/// byte (its FIN follows our FIN, which follows the data).
fn send_discard(addr: Ipv4Addr, bytes: usize) -> Result<f64> {
    let start = Instant::now();
    let mut s = connect(addr, 9)?;
    let buf = vec![0xa5u8; 64 << 10];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len());
        s.write_all(&buf[..n]).context("write to discard")?;
        left -= n;
    }
    s.shutdown(Shutdown::Write)?;
    let mut back = [0u8; 64];
    let n = s.read(&mut back).context("discard's close")?;
    ensure!(n == 0, "discard sent {n} bytes");
    Ok(start.elapsed().as_secs_f64())
}

/// RFC 864's byte at offset `i` of the stream: 95 lines of 72 printable
/// characters, each line starting one character further along.
fn chargen_byte(i: usize) -> u8 {
    let (line, col) = ((i % CHARGEN_PERIOD) / 74, (i % CHARGEN_PERIOD) % 74);
    match col {
        72 => b'\r',
        73 => b'\n',
        _ => b' ' + ((line + col) % 95) as u8,
    }
}

/// Reads `bytes` from the chargen service at `addr`, checking each against
/// the pattern, and closes; returns the seconds from connecting to the last
/// byte.
fn read_chargen(addr: Ipv4Addr, bytes: usize) -> Result<f64> {
    let start = Instant::now();
    let mut s = connect(addr, 19)?;
    let mut buf = vec![0u8; 64 << 10];
    let mut got = 0;
    while got < bytes {
        let n = s.read(&mut buf).context("read from chargen")?;
        ensure!(n > 0, "chargen closed after {got} bytes");
        if let Some(bad) = (0..n).find(|&i| buf[i] != chargen_byte(got + i)) {
            bail!("chargen byte {} is {:#x}, not the pattern's {:#x}", got + bad, buf[bad], chargen_byte(got + bad));
        }
        got += n;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(s);
    Ok(secs)
}

/// iperf3 from [`PEER_NS`] to the server in [`FAR_NS`] (`-R`: the server
/// sends), in MiB/s at the receiver, from its JSON report.
fn iperf3(reverse: bool) -> Result<f64> {
    let start = Instant::now();
    loop {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", PEER_NS, "iperf3", "-c", "10.9.0.2", "-J", "-t"])
            .arg(IPERF_SECONDS.to_string());
        if reverse {
            cmd.arg("-R");
        }
        let out = cmd.output().context("cannot run iperf3 (cargo xtask setup installs it)")?;
        let json = String::from_utf8_lossy(&out.stdout);
        // iperf3 3.12 exits 0 with `-J` even when it could not connect; its
        // report then has an "error" member.
        if out.status.success() && !json.contains("\"error\"") {
            return json_bits_per_second(&json, "sum_received").map(|b| b / 8.0 / (1 << 20) as f64);
        }
        // The server may not be listening yet.
        if start.elapsed() > Duration::from_secs(20) {
            bail!("iperf3 failed: {json}{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `bits_per_second` of the object named `key` in iperf3's `-J` output.
fn json_bits_per_second(json: &str, key: &str) -> Result<f64> {
    let at = json.find(&format!("\"{key}\"")).with_context(|| format!("no {key} in iperf3's report"))?;
    let rest = &json[at..];
    let end = rest.find('}').unwrap_or(rest.len());
    let field = rest[..end]
        .split_once("\"bits_per_second\":")
        .with_context(|| format!("no bits_per_second in {key}"))?
        .1;
    let number: String = field
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        .collect();
    number.parse().with_context(|| format!("bad bits_per_second '{number}'"))
}

/// The number before `what` in `line` (net-echo's "(N bytes discarded, M generated)").
fn number_before(line: &str, what: &str) -> Result<u64> {
    let at = line.find(what).with_context(|| format!("no '{what}' in '{line}'"))?;
    let n = line[..at].trim_end().rsplit([' ', '(']).next().unwrap_or("");
    n.parse().with_context(|| format!("bad number before '{what}' in '{line}'"))
}

/// One single-stepped net-echo domain: instructions from start to poweroff,
/// and the bytes it took in and sent out on discard and chargen.
struct Counted {
    instructions: u64,
    discarded: u64,
    generated: u64,
    seconds: f64,
}

fn count(dir: &Path, index: usize, rx: usize, tx: usize) -> Result<Counted> {
    let addr = Ipv4Addr::new(10, 0, 0, 11 + index as u8);
    let name = format!("xlbcount{index}");
    let start = Instant::now();
    let mut d = Domain::start(
        dir,
        &name,
        "net-echo",
        &format!("ip={addr}/24 gw=10.0.0.1 stop-after=2"),
        &[("XENOLITH_COUNT_INSTRUCTIONS", "all")],
    )?;
    d.wait_console("net-echo: discard tcp/9", COUNT_LIMIT)?;
    inside(GUEST_NS, || {
        send_discard(addr, rx)?;
        read_chargen(addr, tx)
    })?;
    d.wait_exit(COUNT_LIMIT)?;
    let log = d.log();
    let instructions = log
        .lines()
        .find_map(|l| l.split("xenolith-bench: instructions-before-output=").nth(1))
        .context("no instruction count (single-stepping unavailable?)")?
        .trim()
        .parse()?;
    let console = d.console();
    let line = console
        .lines()
        .find(|l| l.starts_with("net-echo: stopping:"))
        .with_context(|| format!("no counters from net-echo:\n{console}"))?;
    Ok(Counted {
        instructions,
        discarded: number_before(line, "bytes discarded")?,
        generated: number_before(line, "generated)")?,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Instructions per MiB between two counted runs, over the bytes they differ by.
fn per_mib(base: &Counted, more: &Counted, bytes: impl Fn(&Counted) -> u64) -> Result<u64> {
    let (b, m) = (bytes(base), bytes(more));
    ensure!(m > b && more.instructions > base.instructions, "the larger run moved {m} bytes in {} instructions, the base {b} in {}", more.instructions, base.instructions);
    Ok(((more.instructions - base.instructions) as f64 * (1 << 20) as f64 / (m - b) as f64) as u64)
}

/// Runs the benchmark; returns the report.
pub fn run() -> Result<String> {
    let _ns = Namespaces::new()?;
    let dir = root().join("target/bench/net");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("big.bin"), vec![0x5au8; 1 << 20])?;
    std::fs::write(dir.join("index.html"), "<!DOCTYPE html>\n<html><body><h1>peer</h1></body></html>\n")?;

    // HTTP.
    let (guest_mib_s, host_mib_s, guest_rps, host_rps, backend_kind) = {
        let _peer = Running(
            Command::new("ip")
                .args(["netns", "exec", FAR_NS, "python3", "-m", "http.server", "--bind", "10.9.0.2", "--directory"])
                .arg(&dir)
                .arg("80")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("python3 http.server")?,
        );
        let httpd = Domain::start(&dir, "xlbhttpd", "httpd", "ip=10.0.0.2/24 gw=10.0.0.1", &[])?;
        wait_for(GUEST_NS, "http://10.0.0.2/", Duration::from_secs(120))?;
        wait_for(PEER_NS, "http://10.9.0.2/", Duration::from_secs(30))?;
        let big = |host: &str| vec![format!("http://{host}/big.bin"); BIG_RUNS];
        let page = |host: &str| vec![format!("http://{host}/"); PAGE_RUNS];
        let mib = BIG_RUNS as f64;
        (
            mib / curl(GUEST_NS, &big("10.0.0.2"))?,
            mib / curl(PEER_NS, &big("10.9.0.2"))?,
            PAGE_RUNS as f64 / curl(GUEST_NS, &page("10.0.0.2"))?,
            PAGE_RUNS as f64 / curl(PEER_NS, &page("10.9.0.2"))?,
            super::kvm_backend(&httpd.log()),
        )
    };

    // TCP throughput and the backend's busy share.
    let echo_addr = Ipv4Addr::new(10, 0, 0, 3);
    let bytes = TCP_MIB << 20;
    let (to_guest, from_guest, busy_rx, busy_tx) = {
        let mut echo = Domain::start(&dir, "xlbecho", "net-echo", &format!("ip={echo_addr}/24 gw=10.0.0.1"), &[])?;
        echo.wait_console("net-echo: discard tcp/9", Duration::from_secs(120))?;
        // A short first exchange: ARP and the first connection are not measured.
        inside(GUEST_NS, || send_discard(echo_addr, 1024))?;
        let cpu0 = echo.io_thread_ns()?;
        let rx_s = inside(GUEST_NS, || send_discard(echo_addr, bytes))?;
        let cpu1 = echo.io_thread_ns()?;
        let tx_s = inside(GUEST_NS, || read_chargen(echo_addr, bytes))?;
        let cpu2 = echo.io_thread_ns()?;
        (
            TCP_MIB as f64 / rx_s,
            TCP_MIB as f64 / tx_s,
            (cpu1 - cpu0) as f64 / 1e9 / rx_s,
            (cpu2 - cpu1) as f64 / 1e9 / tx_s,
        )
    };
    let (iperf_fwd, iperf_rev) = {
        let _server = Running(
            Command::new("ip")
                .args(["netns", "exec", FAR_NS, "iperf3", "-s", "-B", "10.9.0.2"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot run iperf3 (cargo xtask setup installs it)")?,
        );
        (iperf3(false)?, iperf3(true)?)
    };

    // Guest instructions: three single-stepped domains at once (the counts
    // do not depend on timing).
    let plan = [(COUNT_BASE, COUNT_BASE), (COUNT_BASE + COUNT_EXTRA, COUNT_BASE), (COUNT_BASE, COUNT_BASE + COUNT_EXTRA)];
    let counted = std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .iter()
            .enumerate()
            .map(|(i, &(rx, tx))| {
                let dir = &dir;
                s.spawn(move || count(dir, i, rx, tx))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("a counting run panicked")))
            .collect::<Result<Vec<_>>>()
    });
    let instructions = match counted {
        Ok(c) => {
            let rx = per_mib(&c[0], &c[1], |c| c.discarded)?;
            let tx = per_mib(&c[0], &c[2], |c| c.generated)?;
            let longest = c.iter().map(|c| c.seconds).fold(0.0, f64::max);
            format!(
                "{rx} per received MiB ({:.1} per byte), {tx} per sent MiB ({:.1} per byte); domain start to poweroff: {} (base run), the three single-stepped runs took {longest:.0} s\n",
                rx as f64 / (1 << 20) as f64,
                tx as f64 / (1 << 20) as f64,
                c[0].instructions
            )
        }
        Err(e) => format!("not counted: {e:#}\n"),
    };

    let mut r = String::new();
    r += &format!("KVM backend: {backend_kind}\n");
    r += "cargo xtask bench net: our netback (TAP on a bridge) against a veth pair between two namespaces, in the same run\n";
    r += "HTTP: examples/httpd against Python's http.server, curl in both\n";
    r += &format!("- guest -> host, {BIG_RUNS} x 1 MiB on one connection: httpd {guest_mib_s:.2} MiB/s, host peer {host_mib_s:.1} MiB/s, ratio {:.4}\n", guest_mib_s / host_mib_s);
    r += &format!("- requests/s, {PAGE_RUNS} page requests on one connection: httpd {guest_rps:.1}, host peer {host_rps:.1}, ratio {:.3}\n", guest_rps / host_rps);
    r += &format!("TCP: examples/net-echo's discard (port 9) and chargen (port 19) with a plain TCP client, against iperf3 -c ({IPERF_SECONDS} s, -R for the reverse) over the veth pair\n");
    r += &format!("- host -> guest, {TCP_MIB} MiB into discard: guest {to_guest:.3} MiB/s, iperf3 {iperf_fwd:.0} MiB/s, ratio {:.6}\n", to_guest / iperf_fwd);
    r += &format!("- guest -> host, {TCP_MIB} MiB from chargen: guest {from_guest:.3} MiB/s, iperf3 -R {iperf_rev:.0} MiB/s, ratio {:.6}\n", from_guest / iperf_rev);
    r += &format!(
        "- netback I/O thread (vif0-io) CPU time over the transfer's wall time: {:.1}% host -> guest, {:.1}% guest -> host\n",
        busy_rx * 100.0,
        busy_tx * 100.0
    );
    r += &format!(
        "guest instructions (single-stepped, start to poweroff; differences of runs moving {} KiB each way and {} KiB more one way): {instructions}",
        COUNT_BASE >> 10,
        COUNT_EXTRA >> 10
    );
    Ok(r)
}
