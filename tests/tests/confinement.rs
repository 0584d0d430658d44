//! Confinement (issue 9, docs/threat-model.md): every thread of a running
//! `xenolith run` runs under a seccomp filter with no_new_privs (the
//! main one from the end of the first boot's set-up, keeping only
//! CAP_NET_ADMIN for the vif's TAPs; the others with no capability), a
//! restart rebuilds the domain under the main thread's filter, a forbidden
//! call kills the process with SIGSYS and a line
//! naming the thread and the call, `--no-seccomp` turns the filters off,
//! and each disk image is open once, with the access its entry gives. The
//! domain has a vif too (its TAP lives in a network namespace of the run's
//! own, made with `unshare --net`), so its net-control and net-io threads
//! are checked with the others.

use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xenolith_tests::*;

const LIMIT: Duration = Duration::from_secs(30);

/// A config whose domain idles until destroyed, with a writable and a
/// read-only disk and a vif (the guest never connects them, but their
/// backend threads run).
fn idle_cfg(dir: &Path) -> PathBuf {
    let kernel = dir.join("idle");
    std::fs::write(&kernel, idle_marker_kernel(16 * 1024, "idle marker")).unwrap();
    for img in ["rw.img", "ro.img"] {
        std::fs::write(dir.join(img), vec![0u8; 1 << 20]).unwrap();
    }
    let text = format!(
        "name = \"jail\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 32\ndisk = [ 'file:{},xvda,w', 'file:{},xvdb,r' ]\nvif = [ 'mac=00:16:3e:00:00:09' ]\n",
        kernel.display(),
        dir.join("rw.img").display(),
        dir.join("ro.img").display()
    );
    write_cfg(dir, "idle.cfg", &text)
}

/// `xenolith run -c` on the idle domain (stdin a pipe, so the console
/// input thread runs too), with `extra_args` before the config and `env`.
fn spawn(dir: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Child {
    let cfg = idle_cfg(dir);
    // unshare execs xenolith: the child's pid is xenolith's.
    let mut cmd = Command::new("unshare");
    cmd.arg("--net").arg("--").arg(xenolith());
    cmd.current_dir(root()).env("XENOLITH_RUN_DIR", dir.join("run")).env_remove("XENOLITH_NO_SECCOMP");
    cmd.args(["run", "-c"]).args(extra_args).arg(&cfg);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd.spawn().expect("spawn xenolith")
}

/// Waits until the domain runs (xenstored serves its socket).
fn wait_running(dir: &Path, child: &mut Child) {
    let start = Instant::now();
    while UnixStream::connect(dir.join("run/xenstored/socket")).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("xenolith ended before the domain ran: {status}\n{}", stderr_of(child));
        }
        assert!(start.elapsed() < LIMIT, "the domain did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut s);
    }
    s
}

/// Ends the run with SIGTERM and checks it ended the orderly way (143).
fn stop(mut child: Child) {
    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < LIMIT, "xenolith did not end on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(143), "{status}\n{}", stderr_of(&mut child));
}

/// A field of /proc/PID/task/TID/status ("Seccomp", "NoNewPrivs").
fn status_field(task: &Path, field: &str) -> String {
    let text = std::fs::read_to_string(task.join("status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no {field} in {}", task.display()))
}

/// (tid, comm, Seccomp, NoNewPrivs) of every thread of `pid`.
fn threads(pid: u32) -> Vec<(u32, String, String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = e.unwrap().path();
        let tid: u32 = task.file_name().unwrap().to_str().unwrap().parse().unwrap();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default().trim().to_owned();
        out.push((tid, comm, status_field(&task, "Seccomp"), status_field(&task, "NoNewPrivs")));
    }
    out.sort();
    out
}

/// A thread's effective and bounding capability sets (CapEff, CapBnd), as numbers.
fn caps(pid: u32, tid: u32) -> (u64, u64) {
    let task = PathBuf::from(format!("/proc/{pid}/task/{tid}"));
    let num = |f: &str| u64::from_str_radix(&status_field(&task, f), 16).unwrap();
    (num("CapEff"), num("CapBnd"))
}

/// CAP_NET_ADMIN's bit.
const CAP_NET_ADMIN: u64 = 1 << 12;

#[test]
fn every_thread_is_filtered_and_drops_its_capabilities() {
    let dir = scratch("confinement_filtered");
    let mut child = spawn(&dir, &[], &[]);
    wait_running(&dir, &mut child);
    let pid = child.id();
    // main, signals, xenstored, console input, timer, vCPU, per disk a
    // control thread and its 4 workers, and the vif's control and I/O
    // threads; wait for the last ones to confine
    // themselves (a thread is unfiltered between its start and confine()).
    let confined = |t: &(u32, String, String, String)| t.1.starts_with("kvm-") || t.2 == "2";
    let start = Instant::now();
    let mut all = threads(pid);
    while !(all.len() >= 18 && all.iter().all(confined)) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
        all = threads(pid);
    }
    let names: Vec<&str> = all.iter().map(|t| t.1.as_str()).collect();
    for want in ["signals", "xenstored", "blk51712", "blk51712-io0", "blk51728", "blk51728-io0", "vif0", "vif0-io"] {
        assert!(names.contains(&want), "no {want} thread in {all:?}");
    }
    assert!(all.len() >= 18, "{all:?}");
    for (tid, comm, seccomp, nnp) in &all {
        if comm.starts_with("kvm-") {
            // KVM's own worker (kvm-nx-lpage-recovery), a kernel thread.
            continue;
        }
        assert_eq!(seccomp, "2", "thread {tid} ({comm}) runs without a filter: {all:?}");
        assert_eq!(nnp, "1", "thread {tid} ({comm}) lacks no_new_privs: {all:?}");
        let (eff, bnd) = caps(pid, *tid);
        if *tid == pid {
            // The domain has a vif: a reboot makes its TAP again. Nothing else.
            assert_eq!(eff, CAP_NET_ADMIN, "the main thread keeps only CAP_NET_ADMIN: {eff:#x}");
            assert_eq!(bnd, CAP_NET_ADMIN, "nor can anything it runs gain more: {bnd:#x}");
        } else {
            assert_eq!(eff, 0, "thread {tid} ({comm}) keeps capabilities {eff:#x}");
        }
    }
    stop(child);
}

/// Only what xenolith opened is open: an inherited descriptor is closed.
#[test]
fn inherited_descriptors_are_closed() {
    let dir = scratch("confinement_fds");
    std::fs::write(dir.join("parent-secret"), "not the guest's").unwrap();
    let leaked = std::fs::File::open(dir.join("parent-secret")).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&leaked);
    // SAFETY: clears FD_CLOEXEC on our own descriptor, so the child inherits it.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
    let mut child = spawn(&dir, &[], &[]);
    wait_running(&dir, &mut child);
    let pid = child.id();
    let open: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    let theirs = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap().display().to_string();
    assert!(!open.contains(&theirs), "{theirs} was inherited: {open:?}");
    stop(child);
    drop(leaked);
}

/// Each image is open once: read-only for `r`, read-write for `w`.
#[test]
fn each_image_is_open_once_with_the_access_of_its_entry() {
    let dir = scratch("confinement_images");
    let mut child = spawn(&dir, &[], &[]);
    wait_running(&dir, &mut child);
    let pid = child.id();
    let mut seen: Vec<(String, u32)> = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let fd = e.unwrap().path();
        let Ok(target) = std::fs::read_link(&fd) else { continue };
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name == "rw.img" || name == "ro.img" {
            let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().unwrap().to_str().unwrap())).unwrap();
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).unwrap().trim();
            seen.push((name, u32::from_str_radix(flags, 8).unwrap()));
        }
    }
    seen.sort();
    let modes: Vec<(&str, u32)> = seen.iter().map(|(n, f)| (n.as_str(), f & libc::O_ACCMODE as u32)).collect();
    assert_eq!(modes, [("ro.img", libc::O_RDONLY as u32), ("rw.img", libc::O_RDWR as u32)], "{seen:?}");
    stop(child);
}

/// `XENOLITH_SECCOMP_PROBE=KIND` makes that thread try socket(AF_INET)
/// once confined: the process must die of SIGSYS, naming the thread and
/// the call, before the guest does anything.
#[test]
fn a_forbidden_call_in_any_confined_thread_kills_the_process_with_sigsys() {
    for kind in ["signals", "xenstored", "console-input", "blk-control", "blk-io", "net-control", "net-io", "timer", "vcpu", "main"] {
        let dir = scratch(&format!("confinement_probe_{kind}"));
        let mut child = spawn(&dir, &[], &[("XENOLITH_SECCOMP_PROBE", kind)]);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > LIMIT {
                let _ = child.kill();
                panic!("{kind}: a forbidden call did not kill xenolith");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = stderr_of(&mut child);
        assert_eq!(status.signal(), Some(libc::SIGSYS), "{kind}: {status}\n{stderr}");
        let line = format!("xenolith: seccomp: the {kind} thread made forbidden system call {}", libc::SYS_socket);
        assert!(stderr.contains(&line), "{kind}: no {line:?} in\n{stderr}");
        assert!(stderr.contains("--no-seccomp"), "{stderr}");
    }
}

/// The escape hatch: with --no-seccomp no thread is filtered, and the probe
/// merely opens and closes a socket.
#[test]
fn no_seccomp_runs_unfiltered() {
    let dir = scratch("confinement_off");
    let mut child = spawn(&dir, &["--no-seccomp"], &[("XENOLITH_SECCOMP_PROBE", "xenstored")]);
    wait_running(&dir, &mut child);
    let all = threads(child.id());
    assert!(all.iter().all(|t| t.2 == "0"), "{all:?}");
    stop(child);
}

/// A domain with a disk and a vif whose guest stops at once, with
/// on_poweroff = "restart": every restart rebuilds the VM, its disk
/// backend and its vif's TAP under the main thread's filter, with only
/// CAP_NET_ADMIN left (on_reboot and on_crash take the same path), and the
/// run ends the orderly way when restarts stop (exit 0, no seccomp line).
#[test]
fn restarts_rebuild_the_domain_under_the_main_filter() {
    let dir = scratch("confinement_restart");
    let kernel = dir.join("stops");
    std::fs::write(&kernel, marker_kernel(16 * 1024, "restart marker")).unwrap();
    std::fs::write(dir.join("rw.img"), vec![0u8; 1 << 20]).unwrap();
    let text = format!(
        "name = \"restart\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 32\non_poweroff = \"restart\"\n\
         disk = [ 'file:{},xvda,w' ]\nvif = [ 'mac=00:16:3e:00:00:0a' ]\n",
        kernel.display(),
        dir.join("rw.img").display()
    );
    let cfg = write_cfg(&dir, "restart.cfg", &text);
    let mut cmd = Command::new("unshare");
    cmd.arg("--net").arg("--").arg(xenolith());
    cmd.env("XENOLITH_RUN_DIR", dir.join("run")).env_remove("XENOLITH_NO_SECCOMP");
    cmd.args(["run", "--console-log"]).arg(dir.join("console.log")).arg(&cfg);
    let run = run_command(cmd, Duration::from_secs(60));
    assert_eq!(run.status.code(), Some(0), "{run}");
    assert!(!run.stderr.contains("seccomp:"), "{run}");
    assert!(run.stderr.contains("not restarting it again"), "{run}");
    assert_eq!(run.stderr.matches("restart marker").count(), 6, "the first run and 5 restarts\n{run}");
    assert!(!dir.join("run/xenstored/socket").exists(), "the socket was removed under the filter");
}

/// A vif with `script=`: the main thread forks and executes it, so it stays
/// unfiltered (the script would inherit the filter), but from the end of
/// the first boot's set-up it runs with no_new_privs and CAP_NET_ADMIN
/// alone, which is what a hotplug script needs: every script run after
/// the first one sees exactly that and can still bring the TAP up.
#[test]
fn vif_scripts_run_with_only_cap_net_admin_after_the_first_boot() {
    let dir = scratch("confinement_script");
    let kernel = dir.join("stops");
    std::fs::write(&kernel, marker_kernel(16 * 1024, "script marker")).unwrap();
    let log = dir.join("script.log");
    let script = dir.join("vif-test");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\nprintf '%s %s ' \"$1\" \"$vif\" >> {log}\n\
             grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t\\n' '  ' >> {log}\necho >> {log}\n\
             if [ \"$1\" = online ]; then ip link set dev \"$vif\" up; fi\n",
            log = log.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let text = format!(
        "name = \"script\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 32\non_poweroff = \"restart\"\nvif = [ 'mac=00:16:3e:00:00:0b,script={}' ]\n",
        kernel.display(),
        script.display()
    );
    let cfg = write_cfg(&dir, "script.cfg", &text);
    let mut cmd = Command::new("unshare");
    cmd.arg("--net").arg("--").arg(xenolith());
    cmd.env("XENOLITH_RUN_DIR", dir.join("run")).env_remove("XENOLITH_NO_SECCOMP");
    cmd.args(["run", "--console-log"]).arg(dir.join("console.log")).arg(&cfg);
    let run = run_command(cmd, Duration::from_secs(60));
    assert_eq!(run.status.code(), Some(0), "{run}");
    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_owned).collect();
    // online and offline for the first run and 5 restarts.
    assert_eq!(lines.len(), 12, "{lines:?}\n{run}");
    assert!(lines[0].starts_with("online vif1.0 "), "{lines:?}");
    for l in &lines[1..] {
        assert!(l.contains("CapEff: 0000000000001000 "), "after set-up, CAP_NET_ADMIN alone: {l}");
        assert!(l.contains("NoNewPrivs: 1 "), "{l}");
        assert!(l.contains("Seccomp: 0 "), "scripts are not filtered: {l}");
    }
}
