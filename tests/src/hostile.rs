//! Running the hostile guest (examples/hostile) and judging what the
//! hypervisor did with it: shared by tests/tests/hostile.rs and the long
//! campaign of `cargo xtask fuzz` (xtask/src/fuzz.rs).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::netns::Netns;
use crate::{guest, run_measured_within, write_cfg, xenolith, Measured};

/// Peak RSS allowed to one `xenolith run` of the hostile guest. A guest
/// may touch all of its 64 MiB of RAM (all of it then resident), populate
/// up to libxl's slack of 1 MiB more, and make xenstored hold what its
/// quotas allow (1000 nodes of up to 4 KiB, 128 watches, 10 transactions
/// of snapshots: a few MiB); the hypervisor itself (code, thread stacks,
/// heap) takes 5 to 8 MiB (measured with hello and hostile). 112 MiB
/// leaves room for all of that and catches any growth a guest drives that
/// its RAM and quotas do not bound.
pub const HOSTILE_RSS_LIMIT_KIB: u64 = 112 * 1024;

/// The guest's RAM in the hostile runs, MiB.
pub const HOSTILE_MEMORY_MIB: u32 = 64;

/// `xenolith run` exit codes a domain's end may give (README): 0
/// poweroff, 2 crashed, 3 rebooted, 4 otherwise. 1 (an error in xenolith)
/// and deaths by signal are failures.
pub const DOMAIN_OUTCOMES: [i32; 4] = [0, 2, 3, 4];

/// Text on xenolith's stderr that means the hypervisor, not the guest,
/// went wrong: a panic, its seccomp filter firing.
pub const HYPERVISOR_FAILURES: [&str; 3] = ["panicked", "seccomp:", "RUST_BACKTRACE"];

/// An xl.cfg for `kernel` (a guest in target/guests) with `img` as its
/// writable xvda.
pub fn guest_cfg(dir: &Path, name: &str, kernel: &str, img: &Path, extra: &str) -> PathBuf {
    let text = format!(
        "# written by the hostile-guest runner\nname = \"{name}\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = {HOSTILE_MEMORY_MIB}\n\
         on_reboot = \"destroy\"\ndisk = [ 'file:{},xvda,w' ]\nextra = \"{extra}\"\n",
        guest(kernel).display(),
        img.display()
    );
    write_cfg(dir, &format!("{name}.cfg"), &text)
}

/// Deterministic, non-repeating bytes.
pub fn image_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs the hostile guest with `seed`, `rounds` and `more` words on its
/// command line (`only=...`, `churn=N`) on a fresh 1 MiB disk of its own in
/// `dir` (it writes and discards at random); true if it had to be killed
/// after `limit`. With `net`, the guest also gets a vif on that
/// namespace's bridge, so its net classes attack the netback too.
pub fn run_hostile(
    dir: &Path,
    seed: u64,
    rounds: u64,
    more: &str,
    limit: Duration,
    net: Option<&Netns>,
) -> (Measured, bool) {
    let disk = dir.join(format!("hostile-{seed}.img"));
    std::fs::write(&disk, image_bytes(1 << 20, seed)).expect("write the hostile guest's disk");
    let cfg = guest_cfg(
        dir,
        "hostile",
        "hostile",
        &disk,
        &format!("seed={seed} rounds={rounds} {more}"),
    );
    let cmd = match net {
        Some(ns) => {
            let text = std::fs::read_to_string(&cfg).expect("the config just written");
            std::fs::write(&cfg, format!("{text}vif = [ 'bridge=xenbr0' ]\n")).expect("write the config");
            let mut cmd = ns.xenolith(dir, &["run", "-c"]);
            cmd.arg(&cfg);
            cmd
        }
        None => {
            let mut cmd = Command::new(xenolith());
            cmd.args(["run", "-c"]).arg(&cfg);
            cmd
        }
    };
    let r = run_measured_within(cmd, limit);
    let _ = std::fs::remove_file(&disk);
    r
}

/// What the hypervisor must have done with a hostile run, whatever the
/// guest's fate: finished in time, no signal, a domain outcome as exit
/// code, no panic or seccomp kill on stderr, peak RSS under the bound.
pub fn check_hostile(seed: u64, m: &Measured, killed: bool) -> Result<(), String> {
    let run = &m.run;
    if killed {
        return Err(format!(
            "seed {seed}: xenolith did not finish in time (a hang)"
        ));
    }
    if let Some(sig) = run.status.signal() {
        return Err(format!("seed {seed}: xenolith died of signal {sig}"));
    }
    let code = run.status.code().unwrap_or(-1);
    if !DOMAIN_OUTCOMES.contains(&code) {
        return Err(format!(
            "seed {seed}: exit code {code} is not a domain outcome"
        ));
    }
    if let Some(bad) = HYPERVISOR_FAILURES
        .iter()
        .find(|b| run.stderr.contains(**b))
    {
        return Err(format!("seed {seed}: {bad:?} on stderr"));
    }
    if m.max_rss_kib >= HOSTILE_RSS_LIMIT_KIB {
        return Err(format!(
            "seed {seed}: peak RSS {} KiB, over {HOSTILE_RSS_LIMIT_KIB} KiB",
            m.max_rss_kib
        ));
    }
    Ok(())
}

/// The guest's own summary lines (`hostile: ...`).
pub fn hostile_lines(run_stdout: &str) -> Vec<&str> {
    run_stdout
        .lines()
        .filter(|l| l.starts_with("hostile: "))
        .collect()
}
