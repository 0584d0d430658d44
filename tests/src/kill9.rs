//! Kill -9 durability trials: disk-check's `records` mode writes numbered,
//! checksummed records and acknowledges each one on the console only after
//! its flush completed; a trial kills `xenolith` with SIGKILL at a moment
//! drawn from its seed and checks that every acknowledged record is intact
//! in the image. Shared by tests/tests/disk.rs and `cargo xtask fuzz kill9`
//! (xtask/src/fuzz.rs); the record layout is examples/disk-check/src/records.rs's.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::service::Service;
use crate::{guest, root, write_cfg, xenolith};

/// Word 0 of every record unit ("XNLREC01").
const MAGIC: u64 = u64::from_le_bytes(*b"XNLREC01");
const UNIT: usize = 512;
/// The trial's disk: large enough that no trial fills it before its kill
/// (records average 16 units, a few hundred a second at most here).
pub const KILL9_IMAGE: u64 = 8 << 20;
/// No acknowledgement within this long is a hang (a boot takes 1 to 3 s).
const FIRST_ACK_LIMIT: Duration = Duration::from_secs(120);

/// The block paths a trial can take, picked by its seed: blkfront's
/// choices (persistent grants, indirect requests, flush or barrier) and
/// the record shapes (one unit, or up to 128 units: 16 pages, indirect
/// when offered, split into several requests when not).
pub const KILL9_VARIANTS: [(&str, &str); 6] = [
    ("default", "rec-max=32 group=4"),
    ("no-persistent", "persistent=0 rec-max=32 group=4"),
    ("no-indirect", "indirect=0 rec-max=128 group=2"),
    ("barrier", "barrier=1 rec-max=32 group=4"),
    ("barrier-no-persistent-no-indirect", "barrier=1 persistent=0 indirect=0 rec-max=128 group=8"),
    ("single-units", "rec-max=1 group=1"),
];

/// What one trial found.
#[derive(Debug, Default)]
pub struct Kill9Trial {
    /// The trial's seed.
    pub seed: u64,
    /// Its entry of [`KILL9_VARIANTS`].
    pub variant: &'static str,
    /// The disk was a loop device over the image (`phy:`), not the file.
    pub phy: bool,
    /// When the kill came: after the first acknowledgement (or after the
    /// start, for trials that kill during boot), in ms.
    pub delay_ms: u64,
    /// Whether the kill was timed from the start rather than the first ack.
    pub during_boot: bool,
    /// Records acknowledged (all checked).
    pub acked: u64,
    /// Bytes those records hold.
    pub acked_bytes: u64,
    /// Acknowledged records not intact in the image, each with why.
    pub lost: Vec<String>,
    /// Records past the last acknowledged one found whole (written, not yet acknowledged).
    pub unacked_whole: u64,
    /// Records past it found in part (torn by the kill, never acknowledged).
    pub unacked_torn: u64,
    /// How long the trial took.
    pub elapsed: Duration,
}

/// A loop device over an image (`losetup --find --show`), detached when dropped.
struct LoopDevice(std::path::PathBuf);

impl LoopDevice {
    fn attach(img: &Path) -> Result<LoopDevice, String> {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(img)
            .output()
            .map_err(|e| format!("losetup: {e} (loop-device trials need root and util-linux)"))?;
        if !out.status.success() {
            return Err(format!("losetup --find --show {}: {}", img.display(), String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(LoopDevice(String::from_utf8_lossy(&out.stdout).trim().into()))
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("--detach").arg(&self.0).status();
    }
}

/// SplitMix64 step (the trial's own randomness: kill delay, variant).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The unit `i` of record `n` of `units` units, as the guest writes it.
fn expected_unit(n: u64, seed: u64, i: u64, units: u64) -> [u64; UNIT / 8] {
    let mut w = [0u64; UNIT / 8];
    w[0] = MAGIC;
    w[1] = n;
    w[2] = seed;
    w[3] = (i << 32) | units;
    for (k, slot) in w.iter_mut().enumerate().take(UNIT / 8 - 1).skip(4) {
        *slot = (((n << 24) | (i << 8) | k as u64) ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    w[UNIT / 8 - 1] = w[..UNIT / 8 - 1].iter().fold(0xcbf2_9ce4_8422_2325, |h, x| (h ^ x).wrapping_mul(0x0000_0100_0000_01b3));
    w
}

fn unit_at(img: &[u8], lba: u64) -> Option<[u64; UNIT / 8]> {
    let at = usize::try_from(lba).ok()?.checked_mul(UNIT)?;
    let bytes = img.get(at..at + UNIT)?;
    let mut w = [0u64; UNIT / 8];
    for (slot, c) in w.iter_mut().zip(bytes.chunks_exact(8)) {
        *slot = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
    }
    Some(w)
}

/// Checks record `n` at `lba` (`units` long): `None` when intact, else why not.
fn check_record(img: &[u8], seed: u64, n: u64, lba: u64, units: u64) -> Option<String> {
    (0..units).find_map(|i| {
        let want = expected_unit(n, seed, i, units);
        match unit_at(img, lba + i) {
            Some(got) if got == want => None,
            Some(got) if got[0] != MAGIC => Some(format!("record {n}: unit {i} at sector {} was never written", lba + i)),
            Some(_) => Some(format!("record {n}: unit {i} at sector {} differs", lba + i)),
            None => Some(format!("record {n}: sector {} is past the image", lba + i)),
        }
    })
}

/// One trial with `seed` in `dir` (a fresh image there): boots disk-check
/// in `records` mode, kills xenolith with SIGKILL at a seeded moment, and
/// checks the image. Errors: the trial could not run as planned (no
/// acknowledgement in time, xenolith ended by itself); lost records are
/// not an error here but counted in the result.
pub fn kill9_trial(dir: &Path, seed: u64) -> Result<Kill9Trial, String> {
    trial(dir, seed, None)
}

/// [`kill9_trial`] with the domain in a host service (`xenolith create -c`
/// in `dir/run`): the service is what SIGKILL hits; then the stale socket
/// must be seen as no service, and the next `create` must start one.
pub fn kill9_service_trial(dir: &Path, seed: u64) -> Result<Kill9Trial, String> {
    let svc = Service::new(dir);
    svc.start();
    let t = trial(dir, seed, Some(&svc))?;
    let limit = Duration::from_secs(60);
    let list = svc.run(&["list"], limit);
    if list.code() != 1 || !list.stderr.contains("no xenolith service is running") {
        return Err(format!("seed {seed}: after the kill, `xenolith list` did not say that no service runs:\n{list}"));
    }
    let cfg = dir.join("kill9.cfg");
    let create = svc.run(&["create", "-p", &cfg.display().to_string()], limit);
    let listed = svc.run(&["list"], limit);
    let destroy = svc.run(&["destroy", "kill9"], limit);
    if create.code() != 0 || listed.stdout.lines().filter(|l| l.starts_with("kill9 ")).count() != 1 || destroy.code() != 0 {
        return Err(format!("seed {seed}: after the kill, `create` did not start a new service with the domain:\n{create}\n{listed}\n{destroy}"));
    }
    Ok(t)
}

fn trial(dir: &Path, seed: u64, svc: Option<&Service>) -> Result<Kill9Trial, String> {
    let start = Instant::now();
    let mut rng = seed;
    let (variant, words) = KILL9_VARIANTS[(next(&mut rng) % KILL9_VARIANTS.len() as u64) as usize];
    // One trial in eight is killed while the guest boots and connects
    // (0 to 3 s from the start), the rest 0 to 1.5 s after the first ack.
    let during_boot = next(&mut rng).is_multiple_of(8);
    let delay_ms = if during_boot { next(&mut rng) % 3000 } else { next(&mut rng) % 1500 };
    // Drawn last, so the draws above (and so each seed's variant and
    // moment) are what they were before loop devices were added.
    let phy = next(&mut rng).is_multiple_of(4);
    let img = dir.join("kill9.img");
    let _ = std::fs::remove_file(&img);
    let f = std::fs::File::create(&img).map_err(|e| format!("creating {}: {e}", img.display()))?;
    f.set_len(KILL9_IMAGE).map_err(|e| format!("sizing {}: {e}", img.display()))?;
    drop(f);
    // One trial in four serves a loop device over the image: blkback's
    // block-device path (`phy:`, its size and sector sizes read from the device).
    let loopdev = if phy { Some(LoopDevice::attach(&img)?) } else { None };
    let disk = match &loopdev {
        Some(l) => format!("phy:{}", l.0.display()),
        None => format!("file:{}", img.display()),
    };
    let text = format!(
        "# written by the kill -9 trials\nname = \"kill9\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\n\
         disk = [ '{disk},xvda,w' ]\nextra = \"records seed={seed} {words}\"\n",
        guest("disk-check").display()
    );
    let cfg = write_cfg(dir, "kill9.cfg", &text);
    let mut cmd = match svc {
        Some(svc) => svc.command(&["create", "-c", &cfg.display().to_string()]),
        None => {
            let mut c = Command::new(xenolith());
            c.args(["run", "-c"]).arg(&cfg).current_dir(root());
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn xenolith: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let (tx, rx) = mpsc::channel();
    let out_t = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let kill_at = if during_boot {
        Some(start + Duration::from_millis(delay_ms))
    } else {
        loop {
            match rx.recv_timeout(FIRST_ACK_LIMIT.saturating_sub(start.elapsed())) {
                Ok(l) => {
                    let first = l.starts_with("acked ");
                    lines.push(l);
                    if first {
                        break Some(Instant::now() + Duration::from_millis(delay_ms));
                    }
                }
                Err(_) => break None,
            }
        }
    };
    let Some(kill_at) = kill_at else {
        let _ = child.kill();
        let _ = child.wait();
        let stderr = err_t.join().unwrap_or_default();
        return Err(format!("seed {seed}: no record acknowledged within {FIRST_ACK_LIMIT:?} (or xenolith ended)\n{stderr}\n{}", lines.join("\n")));
    };
    std::thread::sleep(kill_at.saturating_duration_since(Instant::now()));
    let ended_early = child.try_wait().ok().flatten();
    // SIGKILL: nothing in xenolith runs on the way out, no flush, no close.
    let service_pid = svc.and_then(Service::pid);
    match service_pid {
        // SAFETY: kill with the service's pid, read from its lock file.
        Some(pid) => unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        },
        None => {
            let _ = child.kill();
        }
    }
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    // Lines printed before the kill are acknowledgements too: drain them all.
    let _ = out_t.join();
    lines.extend(rx.try_iter());
    let stderr = err_t.join().unwrap_or_default();
    if let Some(st) = ended_early {
        return Err(format!("seed {seed}: xenolith ended by itself before the kill ({st})\n{stderr}\n{}", lines.join("\n")));
    }
    use std::os::unix::process::ExitStatusExt;
    if let Some(pid) = service_pid {
        // The client saw its console end; the service is gone for good.
        let end = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() {
            if Instant::now() > end {
                return Err(format!("seed {seed}: the service {pid} outlived SIGKILL"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    } else if svc.is_some() {
        return Err(format!("seed {seed}: no service to kill\n{stderr}"));
    } else if status.signal() != Some(libc::SIGKILL) {
        return Err(format!("seed {seed}: xenolith ended with {status}, not SIGKILL\n{stderr}"));
    }
    // What the guest wrote is what the device holds now (for a loop
    // device, its own cache, before it is detached).
    let device = loopdev.as_ref().map_or(img.clone(), |l| l.0.clone());
    let image = std::fs::read(&device).map_err(|e| format!("reading {}: {e}", device.display()))?;
    drop(loopdev);
    let mut t = Kill9Trial { seed, variant, phy, delay_ms, during_boot, ..Default::default() };
    let mut next_lba = 0;
    let mut next_n = 0;
    for l in &lines {
        let Some(rest) = l.trim_end().strip_prefix("acked ") else { continue };
        let nums: Vec<u64> = rest.split(' ').filter_map(|w| w.parse().ok()).collect();
        let &[n, lba, units] = nums.as_slice() else {
            return Err(format!("seed {seed}: cannot read {l:?}"));
        };
        t.acked += 1;
        t.acked_bytes += units * UNIT as u64;
        if let Some(why) = check_record(&image, seed, n, lba, units) {
            t.lost.push(why);
        }
        next_lba = next_lba.max(lba + units);
        next_n = next_n.max(n + 1);
    }
    // Past the last acknowledgement: what the kill caught in flight. The
    // records there follow each other; their sizes are in their units.
    let mut lba = next_lba;
    let mut n = next_n;
    while let Some(first) = unit_at(&image, lba) {
        if first[0] != MAGIC || first[1] != n || first[2] != seed || first[3] >> 32 != 0 {
            break;
        }
        let units = first[3] & 0xffff_ffff;
        if units == 0 {
            break;
        }
        match check_record(&image, seed, n, lba, units) {
            None => t.unacked_whole += 1,
            Some(_) => t.unacked_torn += 1,
        }
        lba += units;
        n += 1;
    }
    t.elapsed = start.elapsed();
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image holding record 3 (5 units) at sector 2, as the guest writes it.
    fn image_with_record() -> Vec<u8> {
        let mut img = vec![0u8; 16 * UNIT];
        for i in 0..5 {
            let at = (2 + i as usize) * UNIT;
            for (w, out) in expected_unit(3, 77, i, 5).iter().zip(img[at..at + UNIT].chunks_exact_mut(8)) {
                out.copy_from_slice(&w.to_le_bytes());
            }
        }
        img
    }

    #[test]
    fn an_intact_record_passes_and_any_damage_is_caught() {
        let img = image_with_record();
        assert_eq!(check_record(&img, 77, 3, 2, 5), None);
        // Another seed or number, a unit torn, one never written, past the end.
        assert!(check_record(&img, 78, 3, 2, 5).is_some());
        assert!(check_record(&img, 77, 4, 2, 5).is_some());
        let mut torn = img.clone();
        torn[4 * UNIT + 100] ^= 1;
        assert!(check_record(&torn, 77, 3, 2, 5).unwrap().contains("unit 2 at sector 4 differs"));
        let mut unwritten = img.clone();
        unwritten[6 * UNIT..7 * UNIT].fill(0);
        assert!(check_record(&unwritten, 77, 3, 2, 5).unwrap().contains("never written"));
        assert!(check_record(&img, 77, 3, 16, 5).unwrap().contains("past the image"));
    }
}
