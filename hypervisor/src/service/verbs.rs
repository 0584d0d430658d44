//! xl's verbs as the service carries them out, with xl's output formats
//! and exit statuses (0, or 1 on any failure). The command line is parsed
//! twice with the same definitions: by the client, for usage errors, and
//! by the service, which acts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::host::{Found, Host, HostError, Managed};
use crate::toolstack::stop::Running;
use crate::xen::ShutdownReason;

/// A verb the host service carries out.
#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Create a domain from an xl.cfg file, in the host service (started
    /// if it is not running), and return once it runs.
    Create(CreateArgs),
    /// List the domains: Name ID Mem VCPUs State Time(s), as xl list.
    List(ListArgs),
    /// Attach to a domain's console (Ctrl-] detaches).
    Console(ConsoleArgs),
    /// Ask domains to shut down through control/shutdown, as xl shutdown.
    Shutdown(ShutdownArgs),
    /// Ask domains to reboot through control/shutdown, as xl reboot.
    Reboot(ShutdownArgs),
    /// Destroy a domain at once.
    Destroy(DomainArg),
    /// Pause a domain: its vCPUs stop, keeping their state.
    Pause(DomainArg),
    /// Unpause a paused domain.
    Unpause(DomainArg),
    /// Rename a domain.
    Rename(RenameArgs),
    /// Print the id of the domain with this name.
    Domid(NameArg),
    /// Print the name of the domain with this id.
    Domname(IdArg),
    /// List the vCPUs of domains (all without arguments).
    VcpuList(DomainsArg),
    /// Print facts about the host and the hypervisor, as xl info.
    Info,
    /// Print the service's log (xl dmesg shows Xen's).
    Dmesg(DmesgArgs),
}

/// `create [-c] [-p] [-n] CONFIG [KEY=VALUE ...]`
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Attach to the domain's console once it runs.
    #[arg(short = 'c')]
    pub console: bool,
    /// Leave the domain paused after it is created.
    #[arg(short = 'p')]
    pub paused: bool,
    /// Check the configuration and the kernel, print the domain, and exit
    /// (no service needed).
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// The xl.cfg file (xl.cfg(5) syntax; type = "pvh").
    pub config: PathBuf,
    /// Settings that override the file, in xl.cfg syntax: memory=64 'extra="quiet"'.
    #[arg(value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// `list [-l] [DOMAIN ...]`
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Long form: each domain's configuration, as JSON.
    #[arg(short = 'l', long)]
    pub long: bool,
    /// Only these domains.
    pub domains: Vec<String>,
}

/// `console [-t pv] DOMAIN`
#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// The console type; only pv exists for PVH guests.
    #[arg(short = 't', value_parser = ["pv"])]
    pub kind: Option<String>,
    /// Its name or id.
    pub domain: String,
}

/// `shutdown|reboot [-w] [-a] [DOMAIN]`
#[derive(Args, Debug)]
pub struct ShutdownArgs {
    /// Wait for the domain(s) to finish.
    #[arg(short = 'w', long = "wait")]
    pub wait: bool,
    /// Every domain.
    #[arg(short = 'a', long = "all", conflicts_with = "domain")]
    pub all: bool,
    /// Its name or id.
    #[arg(required_unless_present = "all")]
    pub domain: Option<String>,
}

/// One domain.
#[derive(Args, Debug)]
pub struct DomainArg {
    /// Its name or id.
    pub domain: String,
}

/// Domains.
#[derive(Args, Debug)]
pub struct DomainsArg {
    /// Their names or ids.
    pub domains: Vec<String>,
}

/// `rename DOMAIN NEW_NAME`
#[derive(Args, Debug)]
pub struct RenameArgs {
    /// Its name or id.
    pub domain: String,
    /// The new name.
    pub new_name: String,
}

/// A name.
#[derive(Args, Debug)]
pub struct NameArg {
    /// The domain's name.
    pub name: String,
}

/// An id.
#[derive(Args, Debug)]
pub struct IdArg {
    /// The domain's id.
    pub domid: u16,
}

/// `dmesg [-c]`
#[derive(Args, Debug)]
pub struct DmesgArgs {
    /// Clear the log after printing it.
    #[arg(short = 'c', long)]
    pub clear: bool,
}

/// A verb line as the service parses it.
#[derive(Parser, Debug)]
#[command(name = "xenolith", no_binary_name = true, disable_help_subcommand = true)]
pub struct VerbLine {
    /// The verb.
    #[command(subcommand)]
    pub verb: Verb,
}

/// What a verb printed, and what the connection does next.
#[derive(Default)]
pub struct Reply {
    /// Standard output.
    pub out: String,
    /// Standard error.
    pub err: String,
    /// Exit status.
    pub status: u8,
    /// Attach the client to this domain's console afterwards.
    pub attach: Option<Arc<Managed>>,
}

impl Reply {
    fn fail(mut self, msg: impl std::fmt::Display) -> Self {
        let _ = writeln!(self.err, "{msg}");
        self.status = 1;
        self
    }
}

/// Carries out `verb` for a client in `cwd`.
pub fn execute(host: &Arc<Host>, cwd: &Path, verb: Verb) -> Reply {
    let mut r = Reply::default();
    let found = |spec: &str| host.find(spec);
    match verb {
        Verb::Create(a) if a.dry_run => r.fail("create -n is checked by the client, not the service"),
        Verb::Create(a) => {
            let _ = writeln!(r.err, "Parsing config from {}", a.config.display());
            match host.create(cwd, &a.config, &a.overrides, a.paused) {
                Ok((m, _)) => {
                    if a.console {
                        r.attach = Some(m);
                    }
                    r
                }
                Err(e) => r.fail(e),
            }
        }
        Verb::List(a) => list(host, &a, r),
        Verb::Console(a) => match found(&a.domain) {
            Ok(Found::Live(m, _)) => {
                r.attach = Some(m);
                r
            }
            Ok(Found::Preserved(d)) => r.fail(format!("domain {d} has shut down: it has no console")),
            Err(e) => r.fail(e),
        },
        Verb::Shutdown(a) => request_shutdown(host, &a, "poweroff", r),
        Verb::Reboot(a) => request_shutdown(host, &a, "reboot", r),
        Verb::Destroy(a) => match found(&a.domain) {
            Ok(f) => {
                host.destroy(f);
                r
            }
            Err(e) => r.fail(e),
        },
        Verb::Pause(a) => with_running(host, &a.domain, r, |run| run.dom.pause()),
        Verb::Unpause(a) => with_running(host, &a.domain, r, |run| run.dom.unpause()),
        Verb::Rename(a) => rename(host, &a, r),
        Verb::Domid(a) => match host.registry.domid(&a.name) {
            Some(d) => {
                let _ = writeln!(r.out, "{d}");
                r
            }
            None => r.fail(format!("Can't get domid of domain name '{}', maybe this domain does not exist.", a.name)),
        },
        Verb::Domname(a) => match host.registry.name(a.domid) {
            Some(n) => {
                let _ = writeln!(r.out, "{n}");
                r
            }
            None => r.fail(format!("Can't get domain name of domain id '{}', maybe this domain does not exist.", a.domid)),
        },
        Verb::VcpuList(a) => vcpu_list(host, &a.domains, r),
        Verb::Info => {
            r.out = info(host);
            r
        }
        Verb::Dmesg(a) => {
            for line in super::dmesg::lines(a.clear) {
                let _ = writeln!(r.out, "{line}");
            }
            r
        }
    }
}

fn with_running(host: &Host, spec: &str, r: Reply, act: impl FnOnce(&Running)) -> Reply {
    match host.find(spec) {
        Ok(Found::Live(_, Some(run))) => {
            act(&run);
            r
        }
        Ok(_) => r.fail(format!("domain {spec} is not running")),
        Err(e) => r.fail(e),
    }
}

/// xl shutdown / reboot: writes `what` to each domain's control/shutdown,
/// which the guest acknowledges by clearing it and then acts on; with -w,
/// waits until each has stopped.
fn request_shutdown(host: &Host, a: &ShutdownArgs, what: &str, mut r: Reply) -> Reply {
    let targets: Vec<Running> = if a.all {
        host.live().into_iter().filter_map(|(_, run)| run).collect()
    } else {
        let spec = a.domain.as_deref().unwrap_or_default();
        match host.find(spec) {
            Ok(Found::Live(_, Some(run))) => vec![run],
            Ok(_) => return r.fail(format!("domain {spec} is not running")),
            Err(e) => return r.fail(e),
        }
    };
    for run in &targets {
        let domid = run.dom.info.domid;
        let _ = writeln!(r.err, "{} domain {domid}", if what == "reboot" { "Rebooting" } else { "Shutting down" });
        // PV control needs the guest's event callback (libxl's pvcontrol check).
        if run.dom.state().callback_vector.is_none() {
            return r.fail(format!("PV control interface not available: external graceful {what} not possible (domain {domid} has no Xen event callback); use `xenolith destroy`."));
        }
        if let Err(e) = host.xs.write(&format!("/local/domain/{domid}/control/shutdown"), what) {
            return r.fail(format!("cannot write control/shutdown of domain {domid}: {e}"));
        }
    }
    if a.wait {
        let _ = writeln!(r.err, "Waiting for {} domains", targets.len());
        for run in &targets {
            while !run.dom.is_stopped() {
                std::thread::sleep(Duration::from_millis(10));
            }
            let code = run.dom.shutdown_reason().map_or(255, |s| s.code());
            let _ = writeln!(r.err, "Domain {} has been shut down, reason code {code}", run.dom.info.domid);
        }
        let _ = writeln!(r.err, "All domains have been shut down");
    }
    r
}

fn rename(host: &Host, a: &RenameArgs, r: Reply) -> Reply {
    let domid = match host.find(&a.domain) {
        Ok(Found::Live(_, Some(run))) => run.dom.info.domid,
        Ok(Found::Preserved(d)) => d,
        Ok(Found::Live(..)) => return r.fail(format!("domain {} is restarting; try again", a.domain)),
        Err(e) => return r.fail(e),
    };
    if let Err(e) = host.registry.rename(domid, &a.new_name) {
        return r.fail(e);
    }
    // libxl__domain_rename: the name in the domain's and its /vm entry.
    let _ = host.xs.write(&format!("/local/domain/{domid}/name"), &a.new_name);
    if let Ok(vm) = host.xs.read_string(&format!("/local/domain/{domid}/vm")) {
        let _ = host.xs.write(&format!("{vm}/name"), &a.new_name);
    }
    r
}

/// One domain's row in `list` and `vcpu-list`.
struct Row {
    name: String,
    domid: u16,
    mem_mib: u64,
    vcpus_online: usize,
    /// r b p s c d, as xl list.
    state: [bool; 6],
    cpu: Duration,
    running: Option<Running>,
    managed: Option<Arc<Managed>>,
}

fn rows(host: &Host) -> Vec<Row> {
    let mut rows = Vec::new();
    for (m, run) in host.live() {
        let Some(run) = run else { continue };
        let dom = &run.dom;
        let st = dom.state();
        let up = st.vcpus.iter().filter(|v| v.up).count();
        let paused = dom.is_paused();
        let running = !paused && st.vcpus.iter().any(|v| v.up && !v.halted);
        let shut = st.shutdown.clone();
        drop(st);
        rows.push(Row {
            name: host.registry.name(dom.info.domid).unwrap_or_else(|| dom.info.name.clone()),
            domid: dom.info.domid,
            mem_mib: dom.physmap.tot_pages() * 4 / 1024,
            vcpus_online: up,
            state: [running, !running && !paused, paused, shut.is_some(), shut == Some(ShutdownReason::Crash), false],
            cpu: (0..dom.nr_vcpus()).map(|v| dom.vcpu_cpu_time(v)).sum(),
            managed: Some(m),
            running: Some(run),
        });
    }
    host.with_preserved(|kept| {
        for p in kept {
            rows.push(Row {
                name: p.lease.name(),
                domid: p.lease.domid(),
                mem_mib: p.memory_mib,
                vcpus_online: 0,
                state: [false, false, false, true, p.reason == ShutdownReason::Crash, false],
                cpu: Duration::ZERO,
                running: None,
                managed: None,
            });
        }
    });
    rows.sort_by_key(|r| r.domid);
    rows
}

/// Domain-0's row: the host itself (the service is its toolstack).
fn domain0() -> Row {
    Row {
        name: "Domain-0".into(),
        domid: 0,
        mem_mib: meminfo_kib("MemTotal:") / 1024,
        vcpus_online: host_cpus(),
        state: [true, false, false, false, false, false],
        cpu: process_cpu_time(),
        running: None,
        managed: None,
    }
}

fn state_letters(s: &[bool; 6]) -> String {
    s.iter().zip("rbpscd".chars()).map(|(&on, c)| if on { c } else { '-' }).collect()
}

fn wanted(rows: Vec<Row>, host: &Host, specs: &[String]) -> Result<Vec<Row>, HostError> {
    if specs.is_empty() {
        return Ok(rows);
    }
    let mut ids = Vec::new();
    for s in specs {
        ids.push(match host.find(s)? {
            Found::Live(_, Some(r)) => r.dom.info.domid,
            Found::Preserved(d) => d,
            Found::Live(..) => return Err(HostError::NoSuchDomain(s.clone())),
        });
    }
    Ok(rows.into_iter().filter(|r| ids.contains(&r.domid)).collect())
}

fn list(host: &Host, a: &ListArgs, mut r: Reply) -> Reply {
    let mut all = vec![domain0()];
    all.extend(rows(host));
    let rows = match wanted(all, host, &a.domains) {
        Ok(rows) => rows,
        Err(e) => return r.fail(e),
    };
    if a.long {
        r.out = long_list(&rows);
        return r;
    }
    r.out.push_str("Name                                        ID   Mem VCPUs\tState\tTime(s)\n");
    for row in &rows {
        let _ = writeln!(r.out, "{:<40} {:5} {:5} {:5}     {}  {:8.1}", row.name, row.domid, row.mem_mib, row.vcpus_online, state_letters(&row.state), row.cpu.as_secs_f64());
    }
    r
}

/// `list -l`: the domains and their configurations as JSON (xl's shape:
/// an array of {domid, config}).
fn long_list(rows: &[Row]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|row| {
            let config = match &row.managed {
                Some(m) => {
                    let c = &m.cfg;
                    let strings = |v: &[String]| format!("[{}]", v.iter().map(|s| json_string(s)).collect::<Vec<_>>().join(", "));
                    format!(
                        "{{\"c_info\": {{\"type\": \"pvh\", \"name\": {}}}, \"b_info\": {{\"max_vcpus\": {}, \"target_memkb\": {}, \"max_memkb\": {}, \"kernel\": {}, \"cmdline\": {}}}, \"disks\": {}, \"nics\": {}, \"on_poweroff\": \"{}\", \"on_reboot\": \"{}\", \"on_crash\": \"{}\", \"config_file\": {}}}",
                        json_string(&row.name),
                        c.max_vcpus.max(c.vcpus),
                        c.memory_mib * 1024,
                        c.maxmem_mib * 1024,
                        json_string(&c.kernel.display().to_string()),
                        json_string(c.cmdline.as_deref().unwrap_or("")),
                        strings(&c.disks),
                        strings(&c.vifs),
                        c.on_poweroff,
                        c.on_reboot,
                        c.on_crash,
                        json_string(&c.file)
                    )
                }
                None => format!("{{\"c_info\": {{\"name\": {}}}}}", json_string(&row.name)),
            };
            format!("    {{\n        \"domid\": {},\n        \"state\": \"{}\",\n        \"config\": {config}\n    }}", row.domid, state_letters(&row.state))
        })
        .collect();
    format!("[\n{}\n]\n", items.join(",\n"))
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn vcpu_list(host: &Host, specs: &[String], mut r: Reply) -> Reply {
    let mut all = vec![domain0()];
    all.extend(rows(host));
    let rows = match wanted(all, host, specs) {
        Ok(rows) => rows,
        Err(e) => return r.fail(e),
    };
    let _ = writeln!(r.out, "{:<32} {:>5} {:>5} {:>5} {:>5} {:>9} Affinity (Hard / Soft)", "Name", "ID", "VCPU", "CPU", "State", "Time(s)");
    for row in &rows {
        match &row.running {
            Some(run) => {
                let dom = &run.dom;
                let st = dom.state();
                for (id, v) in st.vcpus.iter().enumerate() {
                    let running = v.up && !v.halted && !dom.is_paused();
                    let letters = format!("{}{}{}", if running { 'r' } else { '-' }, if v.up && !running { 'b' } else { '-' }, if v.up { '-' } else { 'p' });
                    let cpu = if v.up { "any".to_owned() } else { "-".to_owned() };
                    let _ = writeln!(r.out, "{:<32} {:5} {:5} {:>5}   {}  {:9.1}  all / all", row.name, row.domid, id, cpu, letters, dom.vcpu_cpu_time(id).as_secs_f64());
                }
            }
            None if row.domid == 0 => {
                for id in 0..row.vcpus_online {
                    let _ = writeln!(r.out, "{:<32} {:5} {:5} {:5}   r--  {:9.1}  all / all", row.name, 0, id, id, 0.0);
                }
            }
            None => {}
        }
    }
    r
}

fn info(host: &Host) -> String {
    // SAFETY: uname fills a local struct.
    let uts = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        libc::uname(&mut u);
        u
    };
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let (major, minor) = crate::xen::XEN_VERSION;
    let live = host.live().len() + host.with_preserved(|p| p.len());
    let lines = [
        ("host", field(&uts.nodename)),
        ("release", field(&uts.release)),
        ("version", field(&uts.version)),
        ("machine", field(&uts.machine)),
        ("nr_cpus", host_cpus().to_string()),
        ("max_cpu_id", host_cpus().saturating_sub(1).to_string()),
        ("total_memory", (meminfo_kib("MemTotal:") / 1024).to_string()),
        ("free_memory", (meminfo_kib("MemAvailable:") / 1024).to_string()),
        ("nr_domains", live.to_string()),
        ("xen_major", major.to_string()),
        ("xen_minor", minor.to_string()),
        ("xen_extra", ".0".to_owned()),
        ("xen_version", format!("{major}.{minor}.0")),
        ("xen_caps", "hvm-3.0-x86_64".to_owned()),
        ("xen_scheduler", "linux (one KVM vCPU thread per vCPU)".to_owned()),
        ("xen_pagesize", "4096".to_owned()),
        ("virt_caps", format!("hvm{}", if Path::new("/dev/kvm").exists() { " (KVM)" } else { "" })),
        ("hypervisor", format!("xenolith {}", env!("CARGO_PKG_VERSION"))),
        ("uptime", format!("{} s", host.started.elapsed().as_secs())),
        ("xend_config_format", "4".to_owned()),
    ];
    lines.iter().map(|(k, v)| format!("{k:<23}: {v}\n")).collect()
}

fn host_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn meminfo_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())))
        .unwrap_or(0)
}

fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Parses a verb line the way both sides do; the error is clap's, for the client.
pub fn parse(args: &[String]) -> Result<Verb, clap::Error> {
    VerbLine::try_parse_from(args).map(|l| l.verb)
}
