//! What runs on real Xen and what it must show: each example guest in each
//! boot mode it supports, with the assertions the tests on our hypervisor
//! make (tests/tests/hello.rs).

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::cpio::Archive;
use super::elf;
use super::fetch::Stage;
use super::report::Outcome;

/// How Xen boots the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// type = "pvh": entered at XEN_ELFNOTE_PHYS32_ENTRY.
    Pvh,
    /// type = "pv": classic 64-bit PV, entered at XEN_ELFNOTE_ENTRY.
    Pv,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Pvh => "pvh",
            Mode::Pv => "pv",
        })
    }
}

/// libxl_shutdown_reason, as xl logs it ("reason code N").
pub const REASONS: &[&str] = &[
    "poweroff",
    "reboot",
    "suspend",
    "crash",
    "watchdog",
    "soft_reset",
];

/// What a check found in a finished case.
#[derive(Default)]
pub struct Findings {
    /// One message per thing that is wrong.
    pub bad: Vec<String>,
    /// Facts worth showing on the PASS line (e.g. a measured time).
    pub notes: Vec<String>,
}

type Check = fn(&Case, &Outcome) -> Findings;

/// One `xl create` in dom0.
pub struct Case {
    /// What the report calls it, e.g. "hello" or "hello-panic".
    pub label: String,
    pub mode: Mode,
    /// The guest image on the host.
    pub image: PathBuf,
    pub extra: String,
    pub memory_mib: u32,
    /// xl.cfg `vcpus`.
    pub vcpus: u32,
    /// A disk image on the host (attached as xvda) and its sha256.
    pub disk: Option<(PathBuf, String)>,
    /// A file on the host given as the domain's module (xl.cfg `ramdisk`).
    pub ramdisk: Option<PathBuf>,
    /// xl vif specs (the network cases: on dom0's bridge xenbr0).
    pub vifs: Vec<String>,
    /// Other guest images the case needs in dom0's /guests (which dom0's
    /// HTTP server serves, for pvboot's network boot).
    pub served: Vec<PathBuf>,
    /// A dom0 shell script run while the domain runs; the domain is then
    /// asked to power off (`xl shutdown`). Its output is the "client"
    /// section of the outcome.
    pub client: Option<String>,
    /// How long dom0 waits for the domain to stop.
    pub timeout_secs: u32,
    /// The shutdown reason expected (one of REASONS).
    pub reason: &'static str,
    pub check: Check,
    /// Position in the run (names the case's folder in dom0).
    pub index: usize,
}

/// A guest/mode pair that does not run, and why.
pub struct Skipped {
    pub label: String,
    pub mode: Mode,
    pub why: String,
}

impl Case {
    /// "hello pvh".
    pub fn name(&self) -> String {
        format!("{} {}", self.label, self.mode)
    }

    /// The folder under /cases in dom0 (sorted order is run order).
    pub fn dir_name(&self) -> String {
        format!("{:02}-{}-{}", self.index, self.label, self.mode)
    }

    pub fn domain_name(&self) -> String {
        format!("{}-{}", self.label, self.mode)
    }

    fn image_inside(&self) -> String {
        format!(
            "/guests/{}",
            self.image.file_name().unwrap_or_default().to_string_lossy()
        )
    }

    fn ramdisk_inside(&self) -> Option<String> {
        let host = self.ramdisk.as_ref()?;
        Some(format!(
            "/guests/{}",
            host.file_name().unwrap_or_default().to_string_lossy()
        ))
    }

    fn disk_inside(&self) -> Option<String> {
        let (host, _) = self.disk.as_ref()?;
        Some(format!(
            "/disks/{}",
            host.file_name().unwrap_or_default().to_string_lossy()
        ))
    }

    /// Files to put into dom0, as (host path, path inside without the leading /).
    pub fn files(&self) -> Vec<(PathBuf, String)> {
        let mut v = vec![(self.image.clone(), self.image_inside()[1..].to_owned())];
        if let (Some((host, _)), Some(inside)) = (&self.disk, self.disk_inside()) {
            v.push((host.clone(), inside[1..].to_owned()));
        }
        if let (Some(host), Some(inside)) = (&self.ramdisk, self.ramdisk_inside()) {
            v.push((host.clone(), inside[1..].to_owned()));
        }
        for host in &self.served {
            v.push((host.clone(), format!("guests/{}", host.file_name().unwrap_or_default().to_string_lossy())));
        }
        v
    }

    pub fn xl_cfg(&self) -> String {
        let mut cfg = format!(
            "# {} (written by cargo xtask test-xen)\nname = \"{}\"\ntype = \"{}\"\nkernel = \"{}\"\nmemory = {}\n",
            self.name(),
            self.domain_name(),
            self.mode,
            self.image_inside(),
            self.memory_mib
        );
        if self.vcpus != 1 {
            cfg += &format!("vcpus = {}\n", self.vcpus);
        }
        if !self.extra.is_empty() {
            cfg += &format!("extra = \"{}\"\n", self.extra);
        }
        if let Some(ramdisk) = self.ramdisk_inside() {
            cfg += &format!("ramdisk = \"{ramdisk}\"\n");
        }
        if let Some(disk) = self.disk_inside() {
            cfg += &format!("disk = [ 'file:{disk},xvda,w' ]\n");
        }
        if !self.vifs.is_empty() {
            let specs: Vec<String> = self.vifs.iter().map(|v| format!("'{v}'")).collect();
            cfg += &format!("vif = [ {} ]\n", specs.join(", "));
        }
        cfg += "on_poweroff = \"preserve\"\non_reboot = \"preserve\"\non_crash = \"preserve\"\n";
        cfg
    }
}

/// Every case for `guests` (image paths in target/guests), plus the modes
/// that cannot run and why. `scratch` receives generated disk images;
/// `stage` has Debian's kernel (the PV hand-off starts it) and busybox (for
/// its initrd). `only` keeps the cases whose name contains one of its words.
pub fn plan(
    guests: &[PathBuf],
    scratch: &Path,
    stage: &Stage,
    only: &[String],
) -> Result<(Vec<Case>, Vec<Skipped>)> {
    let mut cases = Vec::new();
    let mut skipped = Vec::new();
    for image in guests {
        let name = image
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let notes = elf::xen_notes(
            &std::fs::read(image).with_context(|| format!("reading {}", image.display()))?,
        )
        .with_context(|| format!("reading the ELF notes of {}", image.display()))?;
        for mode in [Mode::Pvh, Mode::Pv] {
            match mode_support(&notes, mode).and_then(|()| guest_mode_support(&name, mode)) {
                Ok(()) => cases.extend(guest_cases(&name, image, mode, scratch, guests, stage)?),
                Err(why) => skipped.push(Skipped {
                    label: name.clone(),
                    mode,
                    why,
                }),
            }
        }
    }
    if !only.is_empty() {
        cases.retain(|c| {
            only.iter()
                .any(|w| c.name().contains(w.as_str()) || c.dir_name().contains(w.as_str()))
        });
    }
    for (i, c) in cases.iter_mut().enumerate() {
        c.index = i + 1;
    }
    Ok((cases, skipped))
}

/// Whether the image's notes let Xen boot it in `mode`.
fn mode_support(notes: &[u32], mode: Mode) -> Result<(), String> {
    let has = |t| notes.contains(&t);
    match mode {
        Mode::Pvh if has(elf::PHYS32_ENTRY) => Ok(()),
        Mode::Pvh => Err("guest has no PVH entry (no XEN_ELFNOTE_PHYS32_ENTRY note)".into()),
        Mode::Pv if has(elf::ENTRY) && has(elf::HYPERCALL_PAGE) => Ok(()),
        Mode::Pv => Err("guest has no PV entry (no XEN_ELFNOTE_ENTRY/HYPERCALL_PAGE notes)".into()),
    }
}

/// Modes a guest does not run in by design.
fn guest_mode_support(name: &str, mode: Mode) -> Result<(), String> {
    match (name, mode) {
        ("pv-kexec", Mode::Pvh) => Err("pv-kexec tests the classic PV hand-off only".into()),
        // It attacks Xenolith's hypervisor (tests/tests/hostile.rs); on real
        // Xen it would only show Xen killing it.
        ("hostile", _) => Err("hostile attacks Xenolith's hypervisor, not Xen".into()),
        _ => Ok(()),
    }
}

fn case(
    label: &str,
    image: &Path,
    mode: Mode,
    extra: &str,
    reason: &'static str,
    check: Check,
) -> Case {
    Case {
        label: label.to_owned(),
        mode,
        image: image.to_owned(),
        extra: extra.to_owned(),
        memory_mib: 64,
        vcpus: 1,
        disk: None,
        ramdisk: None,
        vifs: Vec::new(),
        served: Vec::new(),
        client: None,
        timeout_secs: 30,
        reason,
        check,
        index: 0,
    }
}

fn guest_cases(
    name: &str,
    image: &Path,
    mode: Mode,
    scratch: &Path,
    guests: &[PathBuf],
    stage: &Stage,
) -> Result<Vec<Case>> {
    Ok(match name {
        "pv-kexec" => {
            // It lives at 128 MiB, as pvboot does: 256 MiB of RAM.
            let hello = guests
                .iter()
                .find(|g| g.file_name().is_some_and(|n| n == "hello"))
                .context("pv-kexec needs the hello guest")?;
            let mut c = case(
                "pv-kexec-hello",
                image,
                mode,
                "SOME TEXT",
                "poweroff",
                check_kexec_hello,
            );
            c.memory_mib = 256;
            c.ramdisk = Some(hello.clone());
            let (module, offset) = linux_with_initrd(stage, scratch)?;
            let mut l = case(
                "pv-kexec-linux",
                image,
                mode,
                &format!("pv-kexec.initrd={offset:#x} {LINUX_CMDLINE}"),
                "poweroff",
                check_kexec_linux,
            );
            l.memory_mib = 256;
            l.ramdisk = Some(module);
            l.timeout_secs = 180;
            // The same, with the initrd handed over mapped (moved after the
            // kernel, mod_start a virtual address).
            let mut m = case(
                "pv-kexec-linux-mapped",
                image,
                mode,
                &format!("pv-kexec.initrd={offset:#x} pv-kexec.mapped-module {LINUX_CMDLINE}"),
                "poweroff",
                check_kexec_linux,
            );
            m.memory_mib = 256;
            m.ramdisk = l.ramdisk.clone();
            m.timeout_secs = 180;
            vec![c, l, m]
        }
        "pvboot" => {
            let served = |name: &str| -> Result<PathBuf> {
                guests.iter().find(|g| g.file_name().is_some_and(|n| n == name)).cloned().with_context(|| format!("pvboot's network boot needs the {name} guest"))
            };
            // pvboot lives at 128 MiB: 256 MiB of RAM. Its disk: an ext4
            // file system with hello, Debian's Linux and an initrd, and a
            // grub.cfg naming both (hello first, the default).
            let disk = pvboot_disk(stage, guests, scratch)?;
            // disk-check through pvboot: its own small disk (it hashes the
            // whole disk, then writes the last 64 KiB), one per mode.
            let mut d = case(
                "pvboot-disk-check",
                image,
                mode,
                "",
                "poweroff",
                check_pvboot_disk,
            );
            d.memory_mib = 256;
            d.disk = Some(disk_check_disk(
                guests,
                &scratch.join(format!("pvboot-disk-check-{mode}.img")),
            )?);
            let mut h = case(
                "pvboot-hello",
                image,
                mode,
                "",
                "poweroff",
                check_pvboot_hello,
            );
            h.memory_mib = 256;
            h.disk = Some((disk.clone(), String::new()));
            let mut l = case(
                "pvboot-linux",
                image,
                mode,
                "entry=linux",
                "poweroff",
                check_pvboot_linux,
            );
            l.memory_mib = 256;
            l.disk = Some((disk.clone(), String::new()));
            l.timeout_secs = 180;
            // The menu waiting for a choice (timeout=-1) until `xl
            // shutdown` (run by init.sh once the client's wait is over).
            let mut s = case("pvboot-shutdown", image, mode, "timeout=-1", "poweroff", check_pvboot_shutdown);
            s.memory_mib = 256;
            s.disk = Some((disk, String::new()));
            s.client = Some("sleep 6\n".into());
            s.timeout_secs = 60;
            // Network boot behind Linux's netback: no disk; hello fetched
            // from dom0's HTTP server (init.sh serves /guests), the vif
            // closed before the hand-off.
            let ip = match mode {
                Mode::Pvh => PVBOOT_NET_PVH_IP,
                Mode::Pv => PVBOOT_NET_PV_IP,
            };
            let mut n = case(
                "pvboot-netboot",
                image,
                mode,
                &format!("ip={ip}/24 netboot=http://10.0.0.1/ kernel=/hello -- {PVBOOT_HELLO_ARGS}"),
                "poweroff",
                check_pvboot_netboot,
            );
            n.memory_mib = 256;
            n.vifs = vec!["bridge=xenbr0".into()];
            n.served = vec![served("hello")?];
            n.timeout_secs = 120;
            // The vif handed over: pvboot closes it before the hand-off,
            // net-echo (fetched the same way) connects it again and
            // answers dom0's netcheck.
            let ip = match mode {
                Mode::Pvh => PVBOOT_ECHO_PVH_IP,
                Mode::Pv => PVBOOT_ECHO_PV_IP,
            };
            let mut e = case(
                "pvboot-netboot-echo",
                image,
                mode,
                &format!("ip={ip}/24 netboot=http://10.0.0.1/ kernel=/net-echo -- ip={ip}/24 gw=10.0.0.1"),
                "poweroff",
                check_pvboot_netboot_echo,
            );
            e.memory_mib = 256;
            e.vifs = vec!["bridge=xenbr0".into()];
            e.served = vec![served("net-echo")?];
            e.client = Some(format!("netcheck {ip} 7 4 50\n"));
            e.timeout_secs = 180;
            vec![h, d, l, s, n, e]
        }
        "hello" => vec![
            case("hello", image, mode, "SOME TEXT", "poweroff", check_hello),
            case(
                "hello-panic",
                image,
                mode,
                "please panic now",
                "crash",
                check_panic,
            ),
        ],
        "abi-check" => {
            let mut c = case("abi-check", image, mode, "", "poweroff", check_abi);
            c.memory_mib = 32;
            vec![c]
        }
        "disk-check" => {
            let mut c = case("disk-check", image, mode, "", "poweroff", check_disk);
            // One image per case: disk-check writes to its disk.
            c.disk = Some(disk_image(&scratch.join(format!("disk-check-{mode}.img")))?);
            // A hand-off in one guest: close the disk, rebind the timer,
            // (PVH) move shared info and a grant frame away and back, open
            // the disk again with other features and hash it again.
            let mut h = case(
                "disk-check-handoff",
                image,
                mode,
                "nowrite reopen remap",
                "poweroff",
                check_handoff,
            );
            h.disk = Some(disk_image(
                &scratch.join(format!("disk-check-handoff-{mode}.img")),
            )?);
            h.timeout_secs = 60;
            // A kernel that crashed into the next one: the disk is left
            // connected, and the second open resets it first.
            let mut a = case("disk-check-abandon", image, mode, "nowrite reopen abandon", "poweroff", check_handoff);
            a.disk = Some(disk_image(&scratch.join(format!("disk-check-abandon-{mode}.img")))?);
            a.timeout_secs = 60;
            vec![c, h, a]
        }
        "disk-bench" => {
            // A short run of both phases against Linux's blkback.
            let mut c = case(
                "disk-bench",
                image,
                mode,
                "seq rand reads=64",
                "poweroff",
                check_bench,
            );
            c.disk = Some(disk_image(&scratch.join(format!("disk-bench-{mode}.img")))?);
            vec![c]
        }
        "net-echo" => {
            // Behind Linux's netback on dom0's bridge, with a static
            // address of its own per mode (dom0's ARP cache must not hold
            // the other mode's MAC for it): 4 TCP clients at once, then 50
            // UDP datagrams, random payloads, from dom0.
            let ip = match mode {
                Mode::Pvh => NET_ECHO_PVH_IP,
                Mode::Pv => NET_ECHO_PV_IP,
            };
            let mut c = case("net-echo", image, mode, &format!("ip={ip}/24 gw=10.0.0.1 port=7"), "poweroff", check_net_echo);
            c.vifs = vec!["bridge=xenbr0".into()];
            c.client = Some(format!("netcheck {ip} 7 4 50\n"));
            c.timeout_secs = 120;
            // The same with feature-gso-tcpv4: dom0 sends large TCP
            // segments over several rx slots with a GSO extra-info slot.
            let ip = match mode {
                Mode::Pvh => NET_ECHO_GSO_PVH_IP,
                Mode::Pv => NET_ECHO_GSO_PV_IP,
            };
            let mut g = case("net-echo-gso", image, mode, &format!("ip={ip}/24 gw=10.0.0.1 netfront.gso=1 netfront.queues=2"), "poweroff", check_net_echo);
            g.vifs = c.vifs.clone();
            g.client = Some(format!("netcheck {ip} 7 4 50\n"));
            g.timeout_secs = 120;
            vec![c, g]
        }
        "httpd" => {
            let ip = match mode {
                Mode::Pvh => HTTPD_PVH_IP,
                Mode::Pv => HTTPD_PV_IP,
            };
            let extra = match std::env::var("XENOLITH_HTTPD_DEBUG") {
                Ok(_) => format!("ip={ip}/24 gw=10.0.0.1 debug"),
                Err(_) => format!("ip={ip}/24 gw=10.0.0.1"),
            };
            let mut c = case("httpd", image, mode, &extra, "poweroff", check_httpd);
            c.vifs = vec!["bridge=xenbr0".into()];
            c.client = Some(httpd_client(ip, &httpd_big_sha256(scratch)?));
            c.timeout_secs = 240;
            vec![c]
        }
        "smp" => {
            // Jobs long enough (a few hundred ms under QEMU) that Xen's
            // wake-up of vCPU 1 comes well before vCPU 0's job ends.
            let mut c = case("smp", image, mode, "rounds=50000000", "poweroff", check_smp);
            c.vcpus = SMP_VCPUS;
            vec![c]
        }
        // A guest without its own assertions must at least boot and power off.
        _ => vec![case(name, image, mode, "", "poweroff", |_, _| {
            Findings::default()
        })],
    })
}

/// vCPUs the smp case gives its domain.
const SMP_VCPUS: u32 = 2;

/// smp: every vCPU came up and ran its own job with the right checksum, and
/// under PVH each ran on a CPU with its own APIC ID; how long the jobs ran
/// at once is shown.
fn check_smp(case: &Case, out: &Outcome) -> Findings {
    let mut f = Findings::default();
    let lines: Vec<&str> = out.console.lines().map(str::trim).collect();
    let online = format!("smp: {} vCPU(s) online", case.vcpus);
    match lines.iter().find(|l| l.starts_with("smp: ") && l.contains("online")) {
        Some(l) if l.starts_with(&online) => f.notes.push((*l).to_owned()),
        Some(l) => f.bad.push(format!("expected \"{online}\", the guest said \"{l}\"")),
        None => f.bad.push("no \"smp: N vCPU(s) online\" line".into()),
    }
    let mut apic_ids = Vec::new();
    for vcpu in 0..case.vcpus {
        let prefix = format!("smp: vcpu {vcpu} (APIC ID ");
        match lines.iter().find(|l| l.starts_with(&prefix)) {
            Some(l) if l.contains("WRONG") => f.bad.push(format!("wrong result: {l}")),
            Some(l) => {
                apic_ids.push(l[prefix.len()..].split(')').next().unwrap_or("").to_owned());
                f.notes.push(l.split(": ").nth(1).unwrap_or(l).to_owned());
            }
            None => f.bad.push(format!("no report from vCPU {vcpu}")),
        }
    }
    apic_ids.sort();
    apic_ids.dedup();
    // A PV guest's CPUID shows Xen's made-up APIC ID; PVH's is per vCPU.
    if case.mode == Mode::Pvh && apic_ids.len() != case.vcpus as usize {
        f.bad.push(format!("the jobs ran on {} distinct APIC IDs, not {}", apic_ids.len(), case.vcpus));
    }
    let at_once = lines
        .iter()
        .find_map(|l| l.strip_prefix("smp: all ")?.split(" at once for ").nth(1)?.strip_suffix(" us")?.parse::<u64>().ok());
    // Reported, not required: how Xen under QEMU schedules the vCPUs is
    // not ours to decide (tests/smp.rs requires the overlap under our
    // hypervisor); that every vCPU came up and ran its job is required.
    match at_once {
        Some(0) => f.notes.push("the jobs did not overlap this time".into()),
        Some(us) => f.notes.push(format!("all jobs ran at once for {us} us")),
        None => f.bad.push("no \"smp: all N jobs ran at once\" line".into()),
    }
    if !lines.iter().any(|l| l.starts_with("smp: done")) {
        f.bad.push("no \"smp: done\" line".into());
    }
    f
}

/// net-echo's addresses on dom0's bridge (dom0 is 10.0.0.1).
const NET_ECHO_PVH_IP: &str = "10.0.0.2";
const NET_ECHO_PV_IP: &str = "10.0.0.3";

const NET_ECHO_GSO_PVH_IP: &str = "10.0.0.4";
const NET_ECHO_GSO_PV_IP: &str = "10.0.0.5";
/// httpd's addresses.
const HTTPD_PVH_IP: &str = "10.0.0.6";
const HTTPD_PV_IP: &str = "10.0.0.7";
/// pvboot's addresses when it boots from the network.
const PVBOOT_NET_PVH_IP: &str = "10.0.0.8";
const PVBOOT_NET_PV_IP: &str = "10.0.0.9";
/// pvboot's, then net-echo's, when pvboot boots net-echo from the network.
const PVBOOT_ECHO_PVH_IP: &str = "10.0.0.10";
const PVBOOT_ECHO_PV_IP: &str = "10.0.0.11";
/// Clients fetching /big.bin at once.
const HTTPD_CLIENTS: usize = 3;

/// Byte `i` of httpd's /big.bin (examples/httpd's `big_byte`).
fn httpd_big_byte(i: usize) -> u8 {
    ((i as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8 ^ (i >> 12) as u8
}

/// sha256 of httpd's 1 MiB /big.bin, made here from the formula (into
/// `scratch`) and summed by sha256sum.
fn httpd_big_sha256(scratch: &Path) -> Result<String> {
    let path = scratch.join("httpd-big.bin");
    let data: Vec<u8> = (0..1 << 20).map(httpd_big_byte).collect();
    std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
    let out = std::process::Command::new("sha256sum").arg(&path).output().context("running sha256sum")?;
    let sha = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned();
    anyhow::ensure!(sha.len() == 64, "sha256sum {} printed no checksum", path.display());
    Ok(sha)
}

/// dom0's side of the httpd case: the page, /big.bin by several clients
/// at once (sha256 of each), then two requests on one connection.
fn httpd_client(ip: &str, sha: &str) -> String {
    format!(
        r#"i=0
until wget -q -O /tmp/page.html http://{ip}/ 2>/dev/null; do
    i=$((i+1)); [ $i -gt 120 ] && {{ echo "httpd-check: FAIL no page within 60 s"; exit 1; }}; sleep 0.5
done
echo "httpd-check: page $(wc -c < /tmp/page.html) bytes after $i tries"
grep -q "Hello from a Xenolith appliance" /tmp/page.html || echo "httpd-check: FAIL the page is not httpd's"
t0=$(cut -d' ' -f1 /proc/uptime)
for k in $(seq {HTTPD_CLIENTS}); do (wget -q -O - http://{ip}/big.bin | sha256sum > /tmp/big.$k) & done
wait
t1=$(cut -d' ' -f1 /proc/uptime)
for k in $(seq {HTTPD_CLIENTS}); do
    sum=$(cut -d' ' -f1 /tmp/big.$k)
    if [ "$sum" = "{sha}" ]; then echo "httpd-check: big.bin $k sha256 ok"; else echo "httpd-check: FAIL big.bin $k sha256 $sum, want {sha}"; fi
done
echo "httpd-check: {HTTPD_CLIENTS} clients fetched 1 MiB each from $t0 to $t1 s"
printf 'GET / HTTP/1.1
Host: x

GET /big.bin HTTP/1.1
Host: x
Connection: close

' | timeout 60 nc {ip} 80 > /tmp/ka
echo "httpd-check: keep-alive $(grep -a -c 'HTTP/1.1 200 OK' /tmp/ka) responses, $(wc -c < /tmp/ka) bytes on one connection"
"#
    )
}

/// httpd: served the page; every client's /big.bin had the right sum;
/// two requests were answered on one connection; the vif was closed.
fn check_httpd(case: &Case, out: &Outcome) -> Findings {
    let mut f = Findings::default();
    let ip = if case.mode == Mode::Pvh { HTTPD_PVH_IP } else { HTTPD_PV_IP };
    let want = format!("httpd: serving on http://{ip}:80/");
    if !out.console.lines().any(|l| l.trim_end() == want) {
        f.bad.push(format!("no line {want:?} on the console"));
    }
    f.bad.extend(out.console.lines().filter(|l| l.starts_with("httpd: error")).map(|l| format!("httpd says {:?}", l.trim_end())));
    f.bad.extend(out.client.lines().filter(|l| l.contains("FAIL")).map(|l| l.trim_end().to_owned()));
    let ok = out.client.lines().filter(|l| l.starts_with("httpd-check: big.bin") && l.trim_end().ends_with("sha256 ok")).count();
    if ok != HTTPD_CLIENTS {
        f.bad.push(format!("{ok} of {HTTPD_CLIENTS} clients got /big.bin with the right sha256"));
    }
    match out.client.lines().find_map(|l| l.strip_prefix("httpd-check: keep-alive ")) {
        Some(l) if l.starts_with("2 responses") => f.notes.push(format!("keep-alive {}", l.trim_end())),
        Some(l) => f.bad.push(format!("keep-alive: {}", l.trim_end())),
        None => f.bad.push("no keep-alive line from dom0".into()),
    }
    if let Some(l) = out.client.lines().find_map(|l| l.strip_prefix("httpd-check: ") .filter(|l| l.contains("clients fetched"))) {
        f.notes.push(l.trim_end().to_owned());
    }
    if !out.console.lines().any(|l| l.trim_end() == "httpd: vif closed") {
        f.bad.push("httpd did not close its vif (no \"httpd: vif closed\")".into());
    }
    f
}

/// net-echo: it listened on its address, dom0's netcheck got every TCP and
/// UDP echo back, and it closed its vif when asked to power off.
fn check_net_echo(case: &Case, out: &Outcome) -> Findings {
    let mut f = Findings::default();
    // The guest's address: its last `ip=A.B.C.D/N` word.
    let ip = case.extra.split_whitespace().filter_map(|w| w.strip_prefix("ip=")).next_back().and_then(|v| v.split('/').next()).unwrap_or("?");
    let want = format!("net-echo: listening on {ip} tcp/7 udp/7");
    if !out.console.lines().any(|l| l.trim_end() == want) {
        f.bad.push(format!("no line {want:?} on the console"));
    }
    f.bad.extend(out.console.lines().filter(|l| l.starts_with("net-echo: error")).map(|l| format!("net-echo says {:?}", l.trim_end())));
    f.bad.extend(out.client.lines().filter(|l| l.contains("FAIL")).map(|l| l.trim_end().to_owned()));
    for want in ["netcheck: tcp ok", "netcheck: udp ok"] {
        match out.client.lines().find(|l| l.starts_with(want)) {
            Some(l) => f.notes.push(l.trim_start_matches("netcheck: ").trim_end().to_owned()),
            None => f.bad.push(format!("dom0's netcheck printed no {want:?} line")),
        }
    }
    if let Some(l) = out.console.lines().find(|l| l.contains(" mac ") && l.starts_with("net-echo: device/vif")) {
        f.notes.push(l.trim_start_matches("net-echo: ").trim_end().to_owned());
    }
    if let Some(l) = out.console.lines().find_map(|l| l.strip_prefix("net-echo: stopping: ")) {
        f.notes.push(l.trim_end().to_owned());
    }
    // With netfront.queues=2 both of Linux's netback queues carry packets.
    if case.extra.contains("netfront.queues=2") {
        match out.console.lines().find_map(|l| l.strip_prefix("net-echo: packets per queue (rx/tx): ")) {
            Some(l) => {
                let counts: Vec<u64> = l.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
                if counts.len() == 4 && counts.iter().all(|&n| n > 0) {
                    f.notes.push(format!("packets per queue (rx/tx): {}", l.trim_end()));
                } else {
                    f.bad.push(format!("two queues wanted, both used both ways: {}", l.trim_end()));
                }
            }
            None => f.bad.push("no \"net-echo: packets per queue\" line".into()),
        }
    }
    if !out.console.lines().any(|l| l.trim_end() == "net-echo: vif closed") {
        f.bad.push("net-echo did not close its vif (no \"net-echo: vif closed\")".into());
    }
    f
}

/// hello: greeting, command line, memory, a pvclock sleep of about 100 ms.
fn check_hello(case: &Case, out: &Outcome) -> Findings {
    hello_findings(out, &case.extra, case.memory_mib)
}

/// hello's lines: the greeting, `cmdline` and `memory_mib` echoed, a
/// pvclock sleep of about 100 ms.
fn hello_findings(out: &Outcome, cmdline: &str, memory_mib: u32) -> Findings {
    let console = &out.console;
    let mut f = Findings::default();
    let bad = &mut f.bad;
    for want in [
        "Hello from Xenolith!".to_owned(),
        format!("command line: {cmdline}"),
        format!("memory: {memory_mib} MiB"),
    ] {
        if !console.lines().any(|l| l.trim_end() == want) {
            bad.push(format!("no line {want:?} on the console"));
        }
    }
    let measured = console.lines().find_map(|l| {
        l.strip_prefix("slept 100 ms (measured ")?
            .trim_end()
            .strip_suffix(" ms)")
    });
    match measured.map(|m| m.trim().parse::<f64>()) {
        None => bad.push("no \"slept 100 ms (measured X ms)\" line on the console".into()),
        Some(Err(_)) => bad.push(format!(
            "bad duration in the sleep line: {:?}",
            measured.unwrap_or_default()
        )),
        Some(Ok(ms)) if !(100.0..500.0).contains(&ms) => bad.push(format!(
            "pvclock sleep measured {ms} ms, not within [100, 500)"
        )),
        Some(Ok(ms)) => f.notes.push(format!("slept 100 ms, measured {ms} ms")),
    }
    f
}

/// Debian's Linux after the PV hand-off: its console on the PV console
/// ring from the start.
const LINUX_CMDLINE: &str = "console=hvc0 earlyprintk=xen";

/// What the initrd's /init prints before it powers the domain off.
const INITRD_LINE: &str = "pv-kexec initrd: /init runs";

/// pv-kexec's module for Linux: Debian's vmlinux, padded to a page, then an
/// initrd (busybox and an /init that prints [`INITRD_LINE`] and powers off).
/// Returns the file and the initrd's offset in it.
fn linux_with_initrd(stage: &Stage, scratch: &Path) -> Result<(PathBuf, u64)> {
    let mut image = std::fs::read(&stage.vmlinux)
        .with_context(|| format!("reading {}", stage.vmlinux.display()))?;
    image.resize(image.len().next_multiple_of(4096), 0);
    let offset = image.len() as u64;
    image.extend(initrd(stage)?);
    let path = scratch.join("linux-and-initrd.img");
    std::fs::write(&path, &image).with_context(|| format!("writing {}", path.display()))?;
    Ok((path, offset))
}

/// An initrd for Linux (newc cpio): busybox and an /init that prints
/// [`INITRD_LINE`] and powers the domain off.
fn initrd(stage: &Stage) -> Result<Vec<u8>> {
    let mut initrd = Archive::default();
    let busybox = stage.root.join("bin/busybox");
    initrd.file(
        "bin/busybox",
        0o755,
        &std::fs::read(&busybox).with_context(|| format!("reading {}", busybox.display()))?,
    );
    initrd.symlink("bin/sh", "busybox");
    initrd.file(
        "init",
        0o755,
        format!("#!/bin/sh\n/bin/busybox echo \"{INITRD_LINE}\"\n/bin/busybox poweroff -f\n")
            .as_bytes(),
    );
    Ok(initrd.finish())
}

/// The hand-off guest said what it loaded, with hello's own numbers.
fn kexec_line(out: &Outcome, f: &mut Findings) {
    match out
        .console
        .lines()
        .find(|l| l.starts_with("pv-kexec: loaded "))
    {
        Some(l) => f
            .notes
            .push(l.trim_end().trim_start_matches("pv-kexec: ").to_owned()),
        None => f.bad.push(
            "no \"pv-kexec: loaded ...\" line: the hand-off guest did not get as far as loading"
                .into(),
        ),
    }
    f.bad.extend(
        out.console
            .lines()
            .filter(|l| l.starts_with("pv-kexec: error"))
            .map(|l| format!("pv-kexec says {:?}", l.trim_end())),
    );
}

/// hello's command line in the pvboot disk's grub.cfg.
const PVBOOT_HELLO_ARGS: &str = "SOME TEXT";

/// The pvboot disk: ext4 (mke2fs -d) with /boot/hello, /boot/vmlinuz (Debian's
/// kernel, the bzImage it installs), /boot/initrd.cpio and /boot/grub/grub.cfg.
fn pvboot_disk(stage: &Stage, guests: &[PathBuf], scratch: &Path) -> Result<PathBuf> {
    let hello = guests
        .iter()
        .find(|g| g.file_name().is_some_and(|n| n == "hello"))
        .context("pvboot's cases need the hello guest")?;
    let root = scratch.join("pvboot-disk");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    let boot = root.join("boot");
    std::fs::create_dir_all(boot.join("grub"))?;
    std::fs::copy(hello, boot.join("hello"))?;
    // The bzImage as Debian installs it (an xz payload): pvboot unpacks it.
    let vmlinuz = stage.root.join(format!("boot/vmlinuz-{}", stage.kernel_release));
    std::fs::copy(&vmlinuz, boot.join("vmlinuz"))
        .with_context(|| format!("copying {}", vmlinuz.display()))?;
    std::fs::write(boot.join("initrd.cpio"), initrd(stage)?)?;
    std::fs::write(
        boot.join("grub/grub.cfg"),
        format!(
            "set default=0\nset timeout=0\n\nmenuentry \"hello\" {{\n    linux /boot/hello {PVBOOT_HELLO_ARGS}\n}}\n\n\
             menuentry \"linux\" {{\n    linux /boot/vmlinuz {LINUX_CMDLINE}\n    initrd /boot/initrd.cpio\n}}\n"
        ),
    )?;
    let used: u64 = ["hello", "vmlinuz", "initrd.cpio"]
        .iter()
        .map(|f| {
            std::fs::metadata(boot.join(f))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum();
    let image = scratch.join("pvboot-disk.img");
    mke2fs(&root, &image, (used >> 20) + 16)?;
    Ok(image)
}

/// An 8 MiB ext4 disk with /boot/disk-check and a grub.cfg booting it,
/// and the image's sha256 (disk-check prints the disk's).
fn disk_check_disk(guests: &[PathBuf], image: &Path) -> Result<(PathBuf, String)> {
    let guest = guests
        .iter()
        .find(|g| g.file_name().is_some_and(|n| n == "disk-check"))
        .context("pvboot's cases need the disk-check guest")?;
    let root = image.with_extension("d");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    std::fs::create_dir_all(root.join("boot/grub"))?;
    std::fs::copy(guest, root.join("boot/disk-check"))?;
    std::fs::write(
        root.join("boot/grub/grub.cfg"),
        "set timeout=0\nmenuentry \"disk-check\" {\n    linux /boot/disk-check\n}\n",
    )?;
    mke2fs(&root, image, 8)?;
    let out = std::process::Command::new("sha256sum")
        .arg(image)
        .output()
        .context("running sha256sum")?;
    let sha = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(
        sha.len() == 64,
        "sha256sum {} printed no checksum",
        image.display()
    );
    Ok((image.to_owned(), sha))
}

/// `mke2fs -d root`: an ext4 image of `mib` MiB holding the folder `root`.
fn mke2fs(root: &Path, image: &Path, mib: u64) -> Result<()> {
    let _ = std::fs::remove_file(image);
    let out = std::process::Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "pvboot-test", "-d"])
        .arg(root)
        .arg(image)
        .arg(format!("{mib}M"))
        .output()
        .context("running mke2fs (Debian package e2fsprogs)")?;
    anyhow::ensure!(
        out.status.success(),
        "mke2fs failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// disk-check booted by pvboot: its own checks, and pvboot's line.
fn check_pvboot_disk(case: &Case, out: &Outcome) -> Findings {
    let mut f = check_disk(case, out);
    pvboot_line(out, &mut f);
    f
}

/// pvboot booting hello from its disk's grub.cfg: pvboot said what it
/// boots, and hello shows its grub.cfg arguments and the domain's memory.
fn check_pvboot_hello(case: &Case, out: &Outcome) -> Findings {
    let mut f = hello_findings(out, PVBOOT_HELLO_ARGS, case.memory_mib);
    pvboot_line(out, &mut f);
    f
}

/// pvboot's menu waiting for a choice, ended by `xl shutdown`: pvboot said
/// so and booted nothing.
fn check_pvboot_shutdown(_case: &Case, out: &Outcome) -> Findings {
    let mut f = Findings::default();
    match out.console.lines().find(|l| l.starts_with("pvboot: powering off, as the toolstack asked")) {
        Some(l) => f.notes.push(l.trim_end().to_owned()),
        None => f.bad.push("no \"pvboot: powering off, as the toolstack asked\" line".into()),
    }
    if out.console.lines().any(|l| l.starts_with("pvboot: booting")) {
        f.bad.push("pvboot booted a kernel instead of waiting".into());
    }
    f
}

/// pvboot booting hello from dom0's HTTP server, then hello's own lines.
fn check_pvboot_netboot(case: &Case, out: &Outcome) -> Findings {
    let mut f = hello_findings(out, PVBOOT_HELLO_ARGS, case.memory_mib);
    pvboot_line(out, &mut f);
    if !out.console.lines().any(|l| l.starts_with("pvboot: booting /hello from http://10.0.0.1/")) {
        f.bad.push("pvboot did not boot /hello from http://10.0.0.1/".into());
    }
    if let Some(l) = out.console.lines().find(|l| l.starts_with("pvboot: timing")) {
        f.notes.push(l.trim_end().to_owned());
    }
    f
}

/// pvboot booting net-echo from dom0's HTTP server; net-echo then passes
/// what the net-echo case checks, on the vif pvboot used.
fn check_pvboot_netboot_echo(case: &Case, out: &Outcome) -> Findings {
    let mut f = check_net_echo(case, out);
    pvboot_line(out, &mut f);
    if !out.console.lines().any(|l| l.starts_with("pvboot: booting /net-echo from http://10.0.0.1/")) {
        f.bad.push("pvboot did not boot /net-echo from http://10.0.0.1/".into());
    }
    f
}

/// pvboot booting Linux with its initrd (grub.cfg entry "linux").
fn check_pvboot_linux(case: &Case, out: &Outcome) -> Findings {
    let mut f = Findings::default();
    pvboot_line(out, &mut f);
    if !out.console.lines().any(|l| l.starts_with("pvboot: booting /boot/vmlinuz") && l.contains("bzImage")) {
        f.bad.push("pvboot did not boot /boot/vmlinuz as a bzImage".into());
    }
    linux_findings(out, case.mode, &mut f);
    f
}

/// pvboot's "booting" line (kept as a note), and no error line of its.
fn pvboot_line(out: &Outcome, f: &mut Findings) {
    match out
        .console
        .lines()
        .find(|l| l.starts_with("pvboot: booting "))
    {
        Some(l) => f.notes.push(l.trim_end().to_owned()),
        None => f
            .bad
            .push("no \"pvboot: booting ...\" line: pvboot did not get to a hand-off".into()),
    }
}

/// pv-kexec starting hello: hello's lines with hello's command line (handed
/// on) and the domain's whole memory.
fn check_kexec_hello(case: &Case, out: &Outcome) -> Findings {
    let mut f = check_hello(case, out);
    kexec_line(out, &mut f);
    f
}

/// pv-kexec starting Linux: Linux's first console lines, its command line.
fn check_kexec_linux(case: &Case, out: &Outcome) -> Findings {
    let mut f = Findings::default();
    kexec_line(out, &mut f);
    linux_findings(out, case.mode, &mut f);
    f
}

/// Debian's Linux booted with [`LINUX_CMDLINE`] and the initrd of
/// [`initrd`]: it ran in `mode`, saw the domain's memory, found the
/// initrd the boot loader passed and ran its /init.
fn linux_findings(out: &Outcome, mode: Mode, f: &mut Findings) {
    // A PVH Linux prints its early lines with earlyprintk=xen to Xen's
    // debug port, so they are in `xl dmesg` as "(dN) ..."; hvc0 then
    // carries the rest (a PV Linux has its console from the start).
    let xen_lines = out.xen.lines().filter_map(|l| l.trim_start().strip_prefix("(d")?.split_once(") ").map(|(_, t)| t));
    let lines: Vec<&str> = out.console.lines().chain(xen_lines).map(str::trim_end).collect();
    match lines.iter().find(|l| l.contains("Linux version ")) {
        Some(l) => f.notes.push(l.trim().chars().take(60).collect()),
        None => f
            .bad
            .push("no \"Linux version\" line: Linux printed nothing".into()),
    }
    let want = format!("Command line: {LINUX_CMDLINE}");
    if !lines.iter().any(|l| l.ends_with(&want)) {
        f.bad
            .push(format!("no line ending {want:?} on the console or in xl dmesg"));
    }
    let booted = match mode {
        Mode::Pv => "Hypervisor detected: Xen PV",
        Mode::Pvh => "Booting kernel on Xen PVH",
    };
    for want in [
        booted,
        "Memory: ",
        "Trying to unpack rootfs image as initramfs",
        "Freeing initrd memory",
        "Run /init as init process",
        INITRD_LINE,
    ] {
        if !lines.iter().any(|l| l.contains(want)) {
            f.bad.push(format!("no line with {want:?} on the console or in xl dmesg"));
        }
    }
}

/// hello with "panic" on its command line: the panic message reaches the
/// console (a line other than the echoed command line).
fn check_panic(_: &Case, out: &Outcome) -> Findings {
    match out
        .console
        .lines()
        .find(|l| l.contains("panic") && !l.starts_with("command line:"))
    {
        Some(l) => Findings {
            notes: vec![format!("console: {:?}", l.trim())],
            ..Default::default()
        },
        None => Findings {
            bad: vec!["the panic message did not reach the console".into()],
            ..Default::default()
        },
    }
}

/// abi-check: every bad hypercall got Xen's errno (tests/tests/abi.rs).
fn check_abi(_: &Case, out: &Outcome) -> Findings {
    let mut bad: Vec<String> = out
        .console
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .map(|l| format!("abi-check says {l:?}"))
        .collect();
    match out.console.lines().find(|l| l.starts_with("abi-check: ")) {
        None => bad.push("no \"abi-check: N passed, M failed\" summary on the console".into()),
        Some(summary) => {
            let passed: u32 = summary
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if !summary.trim_end().ends_with(" 0 failed") || passed < 20 {
                bad.push(format!(
                    "summary {summary:?}: want at least 20 passed and 0 failed"
                ));
            }
        }
    }
    Findings {
        bad,
        ..Default::default()
    }
}

/// disk-bench: both phases ran and it said so.
fn check_bench(_: &Case, out: &Outcome) -> Findings {
    let mut f = Findings::default();
    let lines: Vec<&str> = out.console.lines().map(str::trim_end).collect();
    for phase in [
        "disk-bench: connected-ns=",
        "disk-bench: seq bytes=",
        "disk-bench: rand reads=64 ",
    ] {
        match lines.iter().find(|l| l.starts_with(phase)) {
            Some(l) => f.notes.push((*l).to_string()),
            None => f
                .bad
                .push(format!("no line starting {phase:?} on the console")),
        }
    }
    f.bad.extend(
        lines
            .iter()
            .filter(|l| l.contains("FAILED"))
            .map(|l| format!("disk-bench says {l:?}")),
    );
    if !lines.contains(&"disk-bench: done") {
        f.bad
            .push("no line \"disk-bench: done\" on the console".into());
    }
    f
}

/// disk-check: the sha256 it prints is the host's sha256 of the image (it
/// hashes before its write test), the write test verifies, and it finishes.
fn check_disk(case: &Case, out: &Outcome) -> Findings {
    let mut f = Findings::default();
    let lines: Vec<&str> = out.console.lines().map(str::trim_end).collect();
    match (
        &case.disk,
        lines.iter().find_map(|l| l.strip_prefix("sha256: ")),
    ) {
        (Some((_, want)), Some(got)) if got.eq_ignore_ascii_case(want) => f
            .notes
            .push(format!("sha256 {} matches the host's", &want[..16])),
        (Some((_, want)), Some(got)) => f.bad.push(format!(
            "disk sha256 {got}, but the host's sha256 of the image is {want}"
        )),
        (_, None) => f.bad.push("no \"sha256: HEX\" line on the console".into()),
        (None, _) => f.bad.push("no disk image".into()),
    }
    f.bad.extend(
        lines
            .iter()
            .filter(|l| l.starts_with("error:") || l.contains("FAILED"))
            .map(|l| format!("disk-check says {l:?}")),
    );
    if !lines.contains(&"disk-check: done") {
        f.bad
            .push("no line \"disk-check: done\" on the console".into());
    }
    if !lines.iter().any(|l| l.starts_with("verify: ok")) {
        f.bad
            .push("no \"verify: ok\" line (write test) on the console".into());
    }
    f
}

/// disk-check reopen (remap or abandon): both hashes are the host's, every
/// remap check passed (PVH) or was skipped (PV), and it finishes.
fn check_handoff(case: &Case, out: &Outcome) -> Findings {
    let mut f = Findings::default();
    let lines: Vec<&str> = out.console.lines().map(str::trim_end).collect();
    let hashes: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("sha256: "))
        .collect();
    match &case.disk {
        Some((_, want))
            if hashes.len() == 2 && hashes.iter().all(|h| h.eq_ignore_ascii_case(want)) =>
        {
            f.notes
                .push(format!("both sha256 {} match the host's", &want[..16]))
        }
        Some((_, want)) => f.bad.push(format!(
            "sha256 lines {hashes:?}, want twice the host's {want}"
        )),
        None => f.bad.push("no disk image".into()),
    }
    if case.extra.contains("remap") {
        let remap: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with("remap: ")).collect();
        let passed = remap.iter().filter(|l| l.starts_with("remap: ok ")).count();
        match case.mode {
            Mode::Pv if remap.iter().any(|l| l.starts_with("remap: skipped")) => f.notes.push("remap skipped (PV)".into()),
            _ if passed >= 17 && passed == remap.len() => f.notes.push(format!("{passed} remap checks passed")),
            _ => f.bad.extend(remap.iter().filter(|l| !l.starts_with("remap: ok ")).map(|l| format!("disk-check says {l:?}"))),
        }
        if passed < 17 && case.mode != Mode::Pv {
            f.bad.push(format!("only {passed} \"remap: ok\" lines, want 17"));
        }
    }
    if case.extra.contains("abandon") && !lines.iter().any(|l| l.starts_with("disk-check: abandoned ")) {
        f.bad.push("no \"disk-check: abandoned\" line: the first device was closed".into());
    }
    f.bad.extend(
        lines
            .iter()
            .filter(|l| l.starts_with("error:") || l.contains("FAILED"))
            .map(|l| format!("disk-check says {l:?}")),
    );
    if !lines.contains(&"disk-check: done") {
        f.bad
            .push("no line \"disk-check: done\" on the console".into());
    }
    f
}

/// A deterministic 1 MiB image (xorshift bytes) and its sha256. Written
/// afresh each run: disk-check writes its scratch region.
fn disk_image(path: &Path) -> Result<(PathBuf, String)> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, &data)?;
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .context("running sha256sum")?;
    let sha = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(
        sha.len() == 64,
        "sha256sum {} printed no checksum",
        path.display()
    );
    Ok((path.to_owned(), sha))
}
