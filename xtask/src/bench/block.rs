//! Block benchmark: blkfront (guest) over blkback (this hypervisor) against
//! the host reading the same image file with fio, in the same run.
//!
//! - The image: `target/bench/block.img`, 256 MiB of pseudo-random bytes,
//!   made once and reused; read once before measuring so the page cache is
//!   hot for guest and host alike (blkback reads it buffered, like fio
//!   `--direct=0`).
//! - Sequential: the disk-bench guest reads the whole disk, 4 MiB per
//!   `read_sectors` call into one reused page-aligned buffer (blkfront cuts
//!   it into 1 MiB indirect requests, kept in flight together), never
//!   touching the data, timed with pvclock. Host: `fio --rw=read --bs=1M`.
//! - Random: disk-bench issues 4 KiB reads at pseudo-random offsets, 32 per
//!   `read_many` call (32 in flight), timed with pvclock. Host: `fio
//!   --rw=randread --bs=4k --iodepth=32` with io_uring (else libaio, else
//!   psync; the report says which).
//! - Each phase runs in its own domain, so blkback's counters (printed at
//!   domain end with -v: requests, average request size, max and
//!   time-weighted average requests in flight, busy time) are per phase.
//! - Each guest reports the pvclock system time (0 at domain creation) at
//!   which `BlkFront::open` returned: domain start to Connected.
//! - Guest instructions per request are counted by single-stepping
//!   (XENOLITH_COUNT_INSTRUCTIONS counts until the first console output;
//!   disk-bench `quiet` prints nothing until its I/O is done), as the
//!   difference between two runs that differ only in the number of
//!   requests.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::root;

/// Size of the image.
const IMG_BYTES: u64 = 256 << 20;
/// Random reads in the guest.
const RAND_READS: u64 = 8192;
/// Requests in flight for random reads.
const QD: usize = 32;
/// Sequential chunk per `read_sectors` call in the guest.
const SEQ_CHUNK: u64 = 4 << 20;
/// Longest a guest run may take.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// The image, made once with xorshift64 data.
fn image(dir: &Path) -> Result<PathBuf> {
    let img = dir.join("block.img");
    if fs::metadata(&img)
        .map(|m| m.len() == IMG_BYTES)
        .unwrap_or(false)
    {
        return Ok(img);
    }
    let tmp = dir.join("block.img.tmp");
    let mut f = File::create(&tmp)?;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..IMG_BYTES >> 20 {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf)?;
    }
    f.sync_all()?;
    fs::rename(&tmp, &img)?;
    Ok(img)
}

/// Reads the whole file (page cache warm-up).
fn write_cfg(dir: &Path, name: &str, img: &Path, extra: &str) -> Result<PathBuf> {
    let cfg = dir.join(format!("{name}.cfg"));
    fs::write(
        &cfg,
        format!(
            "name = \"{name}\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\ndisk = [ 'file:{},xvda,r' ]\nextra = \"{extra}\"\n",
            root().join("target/guests/disk-bench").display(),
            img.display()
        ),
    )?;
    Ok(cfg)
}

/// What one domain printed (console on stdout, hypervisor log on stderr).
struct Run {
    stdout: String,
    stderr: String,
}

impl Run {
    fn lines(&self) -> impl Iterator<Item = &str> {
        self.stdout.lines().chain(self.stderr.lines())
    }

    /// The disk-bench line starting with `prefix` (after "disk-bench: ").
    fn guest(&self, prefix: &str) -> Result<&str> {
        let want = format!("disk-bench: {prefix}");
        self.stdout
            .lines()
            .find(|l| l.starts_with(&want))
            .with_context(|| {
                format!(
                    "no '{want}' line from the guest:\n{}{}",
                    self.stdout, self.stderr
                )
            })
    }

    /// blkback's counters line (logged at domain end with -v).
    fn blkback(&self) -> Result<&str> {
        self.stderr
            .lines()
            .find(|l| l.contains("blkback ") && l.contains("requests="))
            .with_context(|| format!("no blkback counters in the log:\n{}", self.stderr))
    }
}

/// Runs a domain to its end (killed after [`RUN_LIMIT`]).
fn boot(cfg: &Path, verbose: bool, env: &[(&str, &str)]) -> Result<Run> {
    let mut cmd = Command::new(root().join("target/release/xenolith"));
    if verbose {
        cmd.arg("-v");
    }
    cmd.args(["run", "-c"]).arg(cfg).current_dir(root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start target/release/xenolith")?;
    let collect = |r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            BufReader::new(r)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
                .join("\n")
        })
    };
    let out = collect(Box::new(child.stdout.take().expect("piped")));
    let err = collect(Box::new(child.stderr.take().expect("piped")));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{} did not finish within {RUN_LIMIT:?}", cfg.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = Run {
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    if !status.success() || run.stdout.contains("FAILED") {
        bail!(
            "{} exited with {status}:\n{}\n{}",
            cfg.display(),
            run.stdout,
            run.stderr
        );
    }
    Ok(run)
}

/// The number after `key=` in `line`.
fn field(line: &str, key: &str) -> Result<u64> {
    let pat = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&pat))
        .with_context(|| format!("no {key}= in '{line}'"))?
        .parse()
        .with_context(|| format!("bad {key}= in '{line}'"))
}

/// blkback's view of one phase.
struct Backend {
    requests: u64,
    avg_bytes: u64,
    max_in_flight: u64,
    avg_in_flight: String,
    busy_us: u64,
    notifications: u64,
}

fn backend(run: &Run) -> Result<Backend> {
    let l = run.blkback()?;
    let avg_in_flight = l
        .split_whitespace()
        .find_map(|w| w.strip_prefix("avg_in_flight="))
        .context("no avg_in_flight= in the blkback line (rebuild target/release/xenolith)")?
        .to_string();
    Ok(Backend {
        requests: field(l, "requests")?,
        avg_bytes: field(l, "avg_request_bytes")?,
        max_in_flight: field(l, "max_in_flight")?,
        avg_in_flight,
        busy_us: field(l, "busy_us")?,
        notifications: field(l, "notifications")?,
    })
}

impl Backend {
    fn line(&self, phase_ns: u64) -> String {
        format!(
            "- blkback: {} requests, average {} bytes ({} KiB) per request; in flight: max {}, average {} while busy; busy {:.1}% of the phase; {} notifications\n",
            self.requests,
            self.avg_bytes,
            self.avg_bytes / 1024,
            self.max_in_flight,
            self.avg_in_flight,
            self.busy_us as f64 * 1e3 / phase_ns.max(1) as f64 * 100.0,
            self.notifications
        )
    }
}

/// One fio job's result (terse v3: field 6 is read bandwidth in KiB/s,
/// field 7 read IOPS).
struct Fio {
    engine: &'static str,
    kib_s: f64,
    iops: f64,
}

fn fio(img: &Path, engines: &[&'static str], args: &[&str]) -> Result<Fio> {
    let mut last = String::new();
    for &engine in engines {
        let out = Command::new("fio")
            // --invalidate=0: fio would otherwise drop the file's page cache
            // first, and the guest's reads are page-cache hot.
            .args([
                "--name=bench",
                "--readonly",
                "--direct=0",
                "--invalidate=0",
                "--output-format=terse",
                "--terse-version=3",
            ])
            .arg(format!("--filename={}", img.display()))
            .arg(format!("--ioengine={engine}"))
            .args(args)
            .output()
            .context("cannot run fio (cargo xtask setup installs it)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.starts_with("3;"));
        match line {
            Some(l) if out.status.success() => {
                let f: Vec<&str> = l.split(';').collect();
                ensure!(f.len() > 8 && f[4] == "0", "fio reported an error: {l}");
                return Ok(Fio {
                    engine,
                    kib_s: f[6].parse()?,
                    iops: f[7].parse()?,
                });
            }
            _ => last = format!("{}{}", text, String::from_utf8_lossy(&out.stderr)),
        }
    }
    bail!("fio failed with every engine ({engines:?}): {last}")
}

/// Guest instructions counted by single-stepping, or `None` when the
/// hypervisor could not count.
fn count(dir: &Path, img: &Path, name: &str, extra: &str) -> Result<Option<u64>> {
    let cfg = write_cfg(dir, name, img, &format!("quiet {extra}"))?;
    let run = boot(&cfg, false, &[("XENOLITH_COUNT_INSTRUCTIONS", "1")])?;
    let n = run
        .lines()
        .find_map(|l| l.strip_prefix("xenolith-bench: instructions-before-output="))
        .map(|n| n.trim().parse::<u64>().context("bad instruction count"))
        .transpose();
    n
}

fn mb_s(bytes: u64, ns: u64) -> f64 {
    bytes as f64 * 1e3 / ns.max(1) as f64
}

/// Runs the block benchmark and returns its report.
pub fn run() -> Result<String> {
    let dir = root().join("target/bench");
    fs::create_dir_all(&dir)?;
    let img = image(&dir)?;
    super::warm_page_cache(&img)?;

    // Guest, sequential.
    let cfg = write_cfg(&dir, "block-seq", &img, &format!("seq chunk={SEQ_CHUNK}"))?;
    let seq = boot(&cfg, true, &[])?;
    let backend_kind = super::kvm_backend(&seq.stderr);
    let seq_conn = field(seq.guest("connected-ns=")?, "connected-ns")?;
    let seq_line = seq.guest("seq ")?;
    let (seq_bytes, seq_ns) = (field(seq_line, "bytes")?, field(seq_line, "ns")?);
    ensure!(
        seq_bytes == IMG_BYTES,
        "the guest read {seq_bytes} bytes, not the whole image"
    );
    let seq_be = backend(&seq)?;
    ensure!(
        seq_be.avg_bytes >= 512 * 1024,
        "blkfront averaged {} bytes per request (wanted >= 512 KiB): indirect segments not in use?",
        seq_be.avg_bytes
    );
    let features = seq
        .guest("connected-ns=")?
        .split_whitespace()
        .skip(2)
        .collect::<Vec<_>>()
        .join(" ");

    // Guest, random.
    let cfg = write_cfg(
        &dir,
        "block-rand",
        &img,
        &format!("rand reads={RAND_READS} qd={QD}"),
    )?;
    let rand = boot(&cfg, true, &[])?;
    let rand_conn = field(rand.guest("connected-ns=")?, "connected-ns")?;
    let rand_line = rand.guest("rand ")?;
    let rand_ns = field(rand_line, "ns")?;
    let rand_be = backend(&rand)?;
    let guest_iops = RAND_READS as f64 * 1e9 / rand_ns.max(1) as f64;

    // Host, same file, page cache hot.
    super::warm_page_cache(&img)?;
    let host_seq = fio(&img, &["psync"], &["--rw=read", "--bs=1M", "--loops=8"])?;
    let host_rand = fio(
        &img,
        &["io_uring", "libaio", "psync"],
        &[
            "--rw=randread",
            "--bs=4k",
            "--iodepth=32",
            "--time_based",
            "--runtime=3",
            "--norandommap",
            "--randrepeat=1",
        ],
    )?;
    let host_mb_s = host_seq.kib_s * 1024.0 / 1e6;
    let guest_mb_s = mb_s(seq_bytes, seq_ns);

    // Guest instructions per request: differences of single-stepped runs
    // (a 1 MiB chunk keeps the first, granting pass short). Single-stepping
    // costs tens of us per instruction here, so the four runs go in parallel
    // (the counts do not depend on timing).
    let extras = [
        "seq chunk=1048576 seq-bytes=1048576".to_string(),
        "seq chunk=1048576 seq-bytes=2097152".to_string(),
        format!("rand reads={QD} qd={QD}"),
        format!("rand reads={} qd={QD}", 2 * QD),
    ];
    let counts = std::thread::scope(|s| {
        let handles: Vec<_> = extras
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let (dir, img) = (&dir, &img);
                s.spawn(move || count(dir, img, &format!("block-count{i}"), e))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Ok(None)))
            .collect::<Result<Vec<_>>>()
    })?;
    let (seq_a, seq_b, rand_a, rand_b) = (counts[0], counts[1], counts[2], counts[3]);
    let per_mib = match (seq_a, seq_b) {
        (Some(a), Some(b)) if b > a => {
            let n = b - a;
            format!("{n} per 1 MiB request ({} per 4 KiB page)", n / 256)
        }
        _ => "not counted (single-step unavailable)".into(),
    };
    let per_rand = match (rand_a, rand_b) {
        (Some(a), Some(b)) if b > a => format!("{} per 4 KiB random read", (b - a) / QD as u64),
        _ => "not counted".into(),
    };

    let report = format!(
        "KVM backend: {backend_kind}\n\
         image: target/bench/block.img, {} MiB pseudo-random, read-only, host page cache hot\n\
         blkfront negotiated: {features}\n\
         domain start to blkfront Connected (guest pvclock when BlkFront::open returns): {:.1} ms (seq run), {:.1} ms (rand run)\n\
         sequential read of the whole disk ({} MiB per read_sectors call into one reused buffer, data untouched):\n\
         - guest: {} MiB in {:.2} s = {guest_mb_s:.1} MB/s\n\
         - host:  fio --rw=read --bs=1M --direct=0 --invalidate=0 (psync, 8 passes) = {host_mb_s:.0} MB/s\n\
         - ratio guest/host: {:.4}\n\
         {}\
         4 KiB random reads, queue depth {QD} (read_many of {QD} requests), {RAND_READS} reads:\n\
         - guest: {:.2} s = {guest_iops:.0} IOPS\n\
         - host:  fio --rw=randread --bs=4k --iodepth={QD} --ioengine={} --direct=0 --invalidate=0 (3 s) = {:.0} IOPS\n\
         - ratio guest/host: {:.4}\n\
         {}\
         guest instructions (single-stepped, difference of two runs): {per_mib}; {per_rand}\n",
        IMG_BYTES >> 20,
        seq_conn as f64 / 1e6,
        rand_conn as f64 / 1e6,
        SEQ_CHUNK >> 20,
        seq_bytes >> 20,
        seq_ns as f64 / 1e9,
        guest_mb_s / host_mb_s,
        seq_be.line(seq_ns),
        rand_ns as f64 / 1e9,
        host_rand.engine,
        host_rand.iops,
        guest_iops / host_rand.iops,
        rand_be.line(rand_ns),
    );
    Ok(report)
}
