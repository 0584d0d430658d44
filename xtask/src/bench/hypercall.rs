//! Hypercall benchmark: what one trapped hypercall costs against the
//! cheapest trapped exit, measured in the same run on the same KVM, and
//! where the difference goes.
//!
//! The guest (examples/hcall-bench) times, with its pvclock, loops of the
//! same four instructions that exit to an ignored port (the bare exit),
//! that make XENVER_version with no call through the hypercall page (so
//! any difference from the bare exit is the hypervisor's), and that do
//! nothing (the per-instruction cost of this KVM); then guest-lib's own
//! xen_version, EVTCHNOP_send and SCHEDOP_yield through the page. A second
//! run of the same guest with XENOLITH_EXIT_PROFILE splits each kind of
//! exit on the host side into KVM_RUN (entry, the guest's instructions up
//! to the exit, the exit), the handler, and the run loop's work before the
//! next entry, with the guest addresses the handler translated.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::root;

/// The `xenolith` verb that runs a domain in this process.
const RUN_VERB: &str = "run";
/// Plain (unprofiled) runs of the guest; each has `ROUNDS` rounds.
const RUNS: usize = 3;
/// Rounds of every case per run: the guest interleaves the cases, so a
/// noisy host weighs on all of them alike.
const ROUNDS: usize = 5;
/// Calls per case and round.
const CALLS: usize = 1000;

/// The cases the guest reports, in report order, with what each is.
const CASES: &[(&str, &str)] = &[
    ("loop", "loop of 4 instructions, no exit"),
    ("bare-exit", "bare exit (out to ignored port 0x80)"),
    ("inline-xen_version", "xen_version, same 4 instructions"),
    ("xen_version", "xen_version through guest-lib"),
    ("evtchn_send", "EVTCHNOP_send (unbound port)"),
    ("sched_yield", "SCHEDOP_yield"),
];

/// One xenolith run of the guest: its console and stderr.
fn run_guest(cfg: &std::path::Path, profile: bool) -> Result<(String, String)> {
    let mut cmd = Command::new(root().join("target/release/xenolith"));
    cmd.current_dir(root()).args(["-v", RUN_VERB, "-c"]).arg(cfg).stdin(Stdio::null());
    if profile {
        cmd.env("XENOLITH_EXIT_PROFILE", "1");
    }
    let out = cmd.output().context("running xenolith")?;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    if !out.status.success() {
        bail!("hcall-bench exited with {}:\n{stdout}{stderr}", out.status);
    }
    Ok((stdout, stderr))
}

/// The guest's `hcall-bench: CASE NS ns` lines, by case.
fn guest_times(console: &str, into: &mut BTreeMap<String, Vec<f64>>) {
    for line in console.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["hcall-bench:", case, ns, "ns"] = words.as_slice() {
            if let Ok(ns) = ns.parse::<f64>() {
                into.entry((*case).to_string()).or_default().push(ns / 1000.0);
            }
        }
    }
}

/// One kind of exit of the profiled run (the hypervisor's
/// `xenolith-bench: exit` lines; times are means in ns).
struct ExitKind {
    label: String,
    exits: u64,
    run_ns: u64,
    handle_ns: u64,
    reenter_ns: u64,
    translations: f64,
    regs_written: u64,
}

fn exit_kinds(stderr: &str) -> Vec<ExitKind> {
    let mut kinds = Vec::new();
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix("xenolith-bench: exit ") else { continue };
        let Some((label, fields)) = rest.split_once("kind=\"").and_then(|(_, r)| r.split_once('"')) else { continue };
        let field = |name: &str| -> Option<&str> {
            fields.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        };
        let num = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        kinds.push(ExitKind {
            label: label.to_string(),
            exits: num("exits"),
            run_ns: num("run_ns"),
            handle_ns: num("handle_ns"),
            reenter_ns: num("reenter_ns"),
            translations: field("translations_per_exit").and_then(|v| v.parse().ok()).unwrap_or(0.0),
            regs_written: num("regs_written"),
        });
    }
    kinds
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied()
}

/// The fastest round: on a shared host, other work only ever adds time.
fn best(v: &[f64]) -> Option<f64> {
    v.iter().copied().min_by(|a, b| a.total_cmp(b))
}

/// Runs the hypercall benchmark and returns its report.
pub fn run() -> Result<String> {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join("hcall-bench.cfg");
    std::fs::write(
        &cfg,
        format!(
            "name = \"hcall-bench\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\nextra = \"calls={CALLS} rounds={ROUNDS}\"\n",
            root().join("target/guests/hcall-bench").display()
        ),
    )?;
    let mut times = BTreeMap::new();
    let mut backend = String::from("unknown");
    for _ in 0..RUNS {
        let (console, stderr) = run_guest(&cfg, false)?;
        guest_times(&console, &mut times);
        backend = super::kvm_backend(&stderr);
    }
    let us = |case: &str| times.get(case).and_then(|v| median(v));
    let (Some(lp), Some(bare), Some(inline), Some(lib)) = (us("loop"), us("bare-exit"), us("inline-xen_version"), us("xen_version")) else {
        bail!("hcall-bench reported no times: {times:?}");
    };
    let per_insn = lp / 4.0;

    let mut r = String::new();
    writeln!(r, "KVM backend: {backend}")?;
    writeln!(r, "guest-timed (pvclock), us per call, median (best) of {} rounds of {CALLS} calls:", RUNS * ROUNDS)?;
    for (case, what) in CASES {
        let (Some(t), Some(b)) = (us(case), times.get(*case).and_then(|v| best(v))) else { continue };
        let note = match *case {
            "loop" => format!("  ({per_insn:.2} us per guest instruction)"),
            "bare-exit" => format!("  (the exit alone: {:.2})", bare - lp),
            "inline-xen_version" => format!("  ({:+.2} over the bare exit: host work)", inline - bare),
            "xen_version" => format!(
                "  ({:+.2} over inline: guest-lib and the page's stub, ~{:.0} instructions)",
                lib - inline,
                (lib - inline) / per_insn
            ),
            _ => String::new(),
        };
        writeln!(r, "- {what:<38} {t:>6.2} ({b:>5.2}){note}")?;
    }
    writeln!(r, "ratio hypercall / bare exit: {:.2} (xen_version, same guest code); {:.2} (through guest-lib)", inline / bare, lib / bare)?;

    let (_, stderr) = run_guest(&cfg, true)?;
    let mut kinds = exit_kinds(&stderr);
    kinds.retain(|k| k.label.starts_with("hypercall") || k.label == "out 0x80");
    kinds.sort_by_key(|k| std::cmp::Reverse(k.exits));
    if kinds.is_empty() {
        bail!("no exit profile from xenolith:\n{stderr}");
    }
    writeln!(r, "host side per exit (XENOLITH_EXIT_PROFILE run, mean ns; KVM_RUN includes the guest's instructions up to the exit):")?;
    writeln!(r, "  {:<34} {:>6} {:>8} {:>8} {:>9} {:>7} {:>7}", "kind", "exits", "KVM_RUN", "handler", "re-entry", "transl.", "regs wb")?;
    for k in kinds.iter().filter(|k| k.exits >= CALLS as u64) {
        writeln!(
            r,
            "  {:<34} {:>6} {:>8} {:>8} {:>9} {:>7.2} {:>7}",
            k.label, k.exits, k.run_ns, k.handle_ns, k.reenter_ns, k.translations, k.regs_written
        )?;
    }
    Ok(r)
}
