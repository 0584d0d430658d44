//! Reading the serial log: dom0's init (xtask/xen/init.sh) frames each case
//! with "@@xt" marker lines. This module collects each case's outcome,
//! judges it and prints PASS/FAIL lines with the evidence for failures.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::cases::{Case, Skipped, REASONS};

const MARK: &str = "@@xt ";

/// What dom0 reported about one case.
#[derive(Default, Debug)]
pub struct Outcome {
    /// dom0 uptime (s) when `xl create` started and when xl returned.
    pub began: Option<f64>,
    pub xl_done: Option<f64>,
    /// xl's exit status (124: dom0's timeout killed it).
    pub xl_exit: Option<i32>,
    /// The state column of `xl list` if xl failed (e.g. "-b----": blocked).
    pub state: String,
    /// Sections: xl's output, the guest console, Xen's log, dom0's kernel
    /// log, and the guest's registers (xenctx) if it did not stop.
    pub xl: String,
    pub console: String,
    /// What the case's dom0-side program printed (network cases).
    pub client: String,
    pub xen: String,
    pub dom0: String,
    pub vcpu: String,
    /// The "end" marker was seen.
    pub ended: bool,
}

impl Outcome {
    /// The shutdown reason xl logged ("Domain N has shut down, reason code R").
    pub fn reason(&self) -> Option<&'static str> {
        let code = self.xl.lines().find_map(|l| {
            l.split_once("has shut down, reason code ")?
                .1
                .split_whitespace()
                .next()?
                .parse::<usize>()
                .ok()
        })?;
        Some(REASONS.get(code).copied().unwrap_or("unknown"))
    }
}

/// Everything the serial log says.
#[derive(Default, Debug)]
pub struct Serial {
    pub dom0_ready: Option<f64>,
    pub dom0_failed: Option<String>,
    pub done: Option<f64>,
    pub cases: HashMap<String, Outcome>,
}

/// Splits the serial log into per-case outcomes.
pub fn parse(log: &str) -> Serial {
    let mut s = Serial::default();
    let mut section: Option<(String, String)> = None;
    for line in log.lines().map(|l| l.trim_end_matches('\r')) {
        let Some(rest) = line.strip_prefix(MARK) else {
            if let Some((id, name)) = &section {
                // Xen may print on the same serial line while dom0 dumps a
                // section; only the "xen" section is Xen's own.
                if name == "xen" || !line.starts_with("(XEN) ") {
                    let o = s.cases.entry(id.clone()).or_default();
                    let text = match name.as_str() {
                        "xl" => &mut o.xl,
                        "console" => &mut o.console,
                        "client" => &mut o.client,
                        "xen" => &mut o.xen,
                        "vcpu" => &mut o.vcpu,
                        _ => &mut o.dom0,
                    };
                    text.push_str(line);
                    text.push('\n');
                }
            }
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| words.get(i).and_then(|w| w.parse::<f64>().ok());
        match words.as_slice() {
            ["dom0-ready", ..] => s.dom0_ready = num(1),
            ["dom0-failed", what @ ..] => s.dom0_failed = Some(what.join(" ")),
            ["done", ..] => s.done = num(1),
            ["case", id, "section", name, "begin"] => {
                section = Some((id.to_string(), name.to_string()))
            }
            ["case", _, "section", _, "end"] => section = None,
            ["case", id, event, ..] => {
                let o = s.cases.entry(id.to_string()).or_default();
                match *event {
                    "begin" => o.began = num(3),
                    "xl-exit" => {
                        o.xl_exit = words.get(3).and_then(|w| w.parse().ok());
                        o.xl_done = num(4);
                    }
                    "state" => o.state = words.get(3).unwrap_or(&"").to_string(),
                    "end" => o.ended = true,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    s
}

/// Judges `case`; `Ok(summary)` or `Err(what is wrong)`.
fn judge(
    case: &Case,
    out: Option<&Outcome>,
    serial: &Serial,
    why_stopped: &str,
) -> Result<String, Vec<String>> {
    let Some(out) = out.filter(|o| o.ended) else {
        let why = match (&serial.dom0_failed, serial.dom0_ready) {
            (Some(f), _) => format!("dom0 failed to start: {f}"),
            (None, None) => format!("dom0 never became ready ({why_stopped})"),
            (None, Some(_)) => format!("the case did not finish ({why_stopped})"),
        };
        return Err(vec![why]);
    };
    let mut bad = Vec::new();
    match out.xl_exit {
        Some(0) => {}
        Some(124) | Some(143) => bad.push(format!(
            "the domain did not stop within {} s (xl list state {:?}: r running, b blocked, p paused)",
            case.timeout_secs, out.state
        )),
        Some(rc) => bad.push(format!("xl create failed (exit {rc})")),
        None => bad.push("xl create did not report".into()),
    }
    let reason = out.reason();
    match reason {
        Some(r) if r == case.reason => {}
        Some(r) => bad.push(format!(
            "shut down with reason {r}, expected {}",
            case.reason
        )),
        None if out.xl_exit == Some(0) => bad.push("xl logged no shutdown reason".into()),
        None => {}
    }
    let mut notes = Vec::new();
    if !out.console.trim().is_empty() {
        let found = (case.check)(case, out);
        bad.extend(found.bad);
        notes = found.notes;
    }
    if !bad.is_empty() {
        return Err(bad);
    }
    // blkfront recovers from a lost event by notifying again after 1 s;
    // a pass that needed it says so, so lost events are not hidden.
    let renotified = out.console.lines().filter(|l| l.contains("notifying the backend again")).count();
    if renotified > 0 {
        notes.push(format!("{renotified} lost event(s) recovered by blkfront's re-notification"));
    }
    if let (Some(a), Some(b)) = (out.began, out.xl_done) {
        notes.insert(0, format!("{:.1} s in xl create", b - a));
    }
    let reason = reason.unwrap_or_default();
    Ok(if notes.is_empty() {
        reason.to_owned()
    } else {
        format!("{reason} ({})", notes.join("; "))
    })
}

/// The line without terminal escape sequences and control characters
/// (GRUB, for one, paints its console with colours).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI: ESC [ parameters final-byte; other escapes: ESC + one char.
                if chars.next_if_eq(&'[').is_some() {
                    while chars.next().is_some_and(|c| !c.is_ascii_alphabetic()) {}
                } else {
                    chars.next();
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Xen's per-domain save/restore chatter at creation, which explains nothing.
fn noise(line: &str) -> bool {
    line.contains(" save: ")
        || (line.contains("HVM") && line.contains(" restore: "))
        || line.contains("xl.conf")
        || line.trim().is_empty()
}

/// The lines that explain a failure: xl's errors, Xen's log for the domain,
/// the guest console, dom0's kernel messages (and the guest's registers if
/// it did not stop). A case that never finished has none of these: the end
/// of the serial log is shown instead, once (`tail` is taken).
fn evidence(out: Option<&Outcome>, tail: &mut Option<String>) -> String {
    let mut e = String::new();
    let Some(out) = out.filter(|o| o.ended) else {
        match tail.take() {
            Some(t) => {
                let _ = writeln!(e, "    last lines of the serial log:");
                for l in t.lines() {
                    let _ = writeln!(e, "      | {}", plain(l));
                }
            }
            None => e.push_str("    (serial log shown above)\n"),
        }
        return e;
    };
    let nonblank =
        |text: &str| -> Vec<String> { text.lines().filter(|l| !noise(l)).map(plain).collect() };
    let blocks = [
        (
            "xl",
            out.xl
                .lines()
                .filter(|l| !l.contains(": detail: ") && !noise(l))
                .map(plain)
                .collect(),
        ),
        ("Xen (xl dmesg)", nonblank(&out.xen)),
        ("guest console", nonblank(&out.console)),
        ("dom0 kernel", nonblank(&out.dom0)),
        ("guest vCPU (xenctx)", nonblank(&out.vcpu)),
    ];
    for (name, lines) in blocks {
        if lines.is_empty() && name.ends_with("(xenctx)") {
            continue;
        } else if lines.is_empty() {
            let _ = writeln!(e, "    {name}: (nothing)");
            continue;
        }
        let _ = writeln!(e, "    {name}:");
        for l in lines.iter().rev().take(40).rev() {
            let _ = writeln!(e, "      | {l}");
        }
    }
    e
}

/// Prints the verdicts; returns the number of failures.
pub fn print(
    cases: &[Case],
    skipped: &[Skipped],
    serial: &Serial,
    log: &str,
    why_stopped: &str,
    out_dir: &Path,
) -> Result<usize> {
    let mut tail = {
        let lines: Vec<&str> = log.lines().filter(|l| !noise(l)).collect();
        Some(lines[lines.len().saturating_sub(30)..].join("\n"))
    };
    let mut failures = 0;
    for case in cases {
        let out = serial.cases.get(&case.dir_name());
        save(case, out, out_dir)?;
        match judge(case, out, serial, why_stopped) {
            Ok(summary) => println!("PASS {}: {summary}", case.name()),
            Err(bad) => {
                failures += 1;
                println!("FAIL {}: {}", case.name(), bad.join("; "));
                print!("{}", evidence(out, &mut tail));
                println!("    logs: {}", out_dir.join(case.dir_name()).display());
            }
        }
    }
    for s in skipped {
        println!("SKIP {} {}: {}", s.label, s.mode, s.why);
    }
    Ok(failures)
}

/// Keeps each case's sections as files for a closer look.
fn save(case: &Case, out: Option<&Outcome>, out_dir: &Path) -> Result<()> {
    let dir = out_dir.join(case.dir_name());
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("xl.cfg"), case.xl_cfg())?;
    if let Some(o) = out {
        for (file, text) in [
            ("xl.log", &o.xl),
            ("console.log", &o.console),
            ("xen.log", &o.xen),
            ("dom0.log", &o.dom0),
            ("vcpu.log", &o.vcpu),
        ] {
            std::fs::write(dir.join(file), text)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
(XEN) Xen version 4.17
@@xt dom0-ready 6.18
@@xt case 01-hello-pvh begin 6.30
(XEN) HVM d1v0 save: CPU
@@xt case 01-hello-pvh xl-exit 0 7.41
@@xt case 01-hello-pvh state ---s--
@@xt case 01-hello-pvh section xl begin
Domain 1 has shut down, reason code 3 0x3
@@xt case 01-hello-pvh section xl end
@@xt case 01-hello-pvh section console begin
Hello from Xenolith!
(XEN) interleaved
@@xt case 01-hello-pvh section console end
@@xt case 01-hello-pvh section xen begin
(XEN) (d1) panic
@@xt case 01-hello-pvh section xen end
@@xt case 01-hello-pvh end
@@xt done 11.76
";

    #[test]
    fn markers_become_outcomes() {
        let s = parse(LOG);
        assert_eq!(s.dom0_ready, Some(6.18));
        assert_eq!(s.done, Some(11.76));
        let o = &s.cases["01-hello-pvh"];
        assert!(o.ended);
        assert_eq!((o.xl_exit, o.state.as_str()), (Some(0), "---s--"));
        assert_eq!(o.reason(), Some("crash"));
        assert_eq!(o.console, "Hello from Xenolith!\n");
        assert_eq!(o.xen, "(XEN) (d1) panic\n");
        assert_eq!((o.began, o.xl_done), (Some(6.30), Some(7.41)));
    }

    #[test]
    fn escapes_and_controls_are_dropped() {
        assert_eq!(
            plain("\x1b[30m\x1b[47mWelcome\x1b[1;1H to GRUB!\r\x07"),
            "Welcome to GRUB!"
        );
        assert_eq!(plain("a\tb"), "a\tb");
    }

    #[test]
    fn a_cut_off_log_leaves_the_case_unfinished() {
        let s = parse(&LOG[..LOG.find("section console").unwrap()]);
        assert!(!s.cases["01-hello-pvh"].ended);
        assert_eq!(s.done, None);
    }
}
