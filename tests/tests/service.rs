//! The host service end to end: many domains in one `xenolith daemon`,
//! driven by xl's verbs, seen by Xen's own xenstore client, and nothing
//! left behind.

use std::path::Path;
use std::time::{Duration, Instant};

use xenolith_tests::netns::Netns;
use xenolith_tests::service::{Census, Service};
use xenolith_tests::{guest, guest_cfg, image_bytes, scratch, spinning_marker_kernel, write_cfg};

const LIMIT: Duration = Duration::from_secs(120);

/// The tests here run one at a time: the neighbour test times domains, and
/// the others would be its noise.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// hello in its `wait` mode: up until the toolstack asks it to stop.
fn waiting_cfg(dir: &Path, file: &str, more: &str) -> std::path::PathBuf {
    let text = format!("name = \"waiting\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 32\nextra = \"wait\"\n{more}", guest("hello").display());
    write_cfg(dir, file, &text)
}

/// Waits until `what` holds, polling.
fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn twenty_domains_are_created_at_once_listed_reached_stopped_and_leave_nothing_behind() {
    let _serial = one_at_a_time();
    let dir = scratch("service-twenty");
    let ns = Netns::new();
    let svc = Service::in_netns(&dir, &ns);
    svc.start();
    let pid = svc.pid().expect("the service runs");
    // Settled: the start-up probe's connection closed.
    svc.ok(&["list"]);
    std::thread::sleep(Duration::from_millis(200));
    let before = Census::of(&svc, pid);

    // Every fourth domain has a vif on the namespace's bridge: a TAP each.
    let plain = waiting_cfg(&dir, "plain.cfg", "");
    let with_vif = waiting_cfg(&dir, "vif.cfg", "vif = [ 'bridge=xenbr0' ]\n");
    let mut script = String::from("set -e\n");
    for i in 1..=20 {
        let cfg = if i % 4 == 0 { &with_vif } else { &plain };
        script.push_str(&format!("XENOLITH_RUN_DIR={} {} create {} 'name=\"d{i}\"' &\n", svc.run_dir.display(), xenolith_tests::xenolith().display(), cfg.display()));
    }
    // `wait PID` for each, so one failed create fails the script.
    script = script.replace(" &\n", " & pids=\"$pids $!\"\n");
    script.push_str("for p in $pids; do wait $p; done\n");
    let script_path = dir.join("create-20.sh");
    std::fs::write(&script_path, &script).unwrap();
    let started = Instant::now();
    let out = ns.exec("sh").arg(&script_path).current_dir(xenolith_tests::root()).output().unwrap();
    assert!(out.status.success(), "the script failed: {}\n{}", String::from_utf8_lossy(&out.stderr), svc.log());
    eprintln!("20 concurrent creates took {:?}", started.elapsed());

    let domains = svc.list();
    assert_eq!(domains.len(), 20, "{domains:?}");
    let mut ids: Vec<u16> = domains.iter().map(|d| d.1).collect();
    ids.sort();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>(), "domids 1 to 20, as Xen hands them out");
    for (name, _, mem, vcpus, state) in &domains {
        assert!(name.starts_with('d'), "{name}");
        assert_eq!((*mem, *vcpus), (32, 1), "{name}");
        assert!(state == "r-----" || state == "-b----", "{name}: {state}");
    }
    assert_eq!(Census::of(&svc, pid).taps, 5, "a TAP per vif");

    // Each console: the output kept since boot, then an echo of what is typed.
    for i in 1..=20 {
        let seen = svc.console_exchange(&format!("d{i}"), &format!("hi d{i}\n"), &format!("hello: typed: hi d{i}"), LIMIT);
        assert!(seen.contains("Hello from Xenolith!"), "d{i}'s boot output was kept: {seen}");
    }

    // Half shut down cooperatively, half destroyed, all at once.
    let threads: Vec<_> = (1..=20u16)
        .map(|i| {
            let args: Vec<String> = if i % 2 == 1 { vec!["shutdown".into(), "-w".into(), format!("d{i}")] } else { vec!["destroy".into(), format!("d{i}")] };
            let cmd = svc.command(&args.iter().map(String::as_str).collect::<Vec<_>>());
            std::thread::spawn(move || (i, xenolith_tests::run_command(cmd, LIMIT)))
        })
        .collect();
    for t in threads {
        let (i, run) = t.join().unwrap();
        assert_eq!(run.code(), 0, "d{i}: {run}");
        if i % 2 == 1 {
            assert!(run.stderr.contains("has been shut down, reason code 0"), "d{i}: {run}");
        }
    }
    assert!(svc.list().is_empty());
    for i in (1..=20).step_by(2) {
        let log = std::fs::read_to_string(svc.log_dir.join(format!("guest-d{i}.log"))).unwrap();
        assert!(log.contains("hello: poweroff requested"), "d{i} acknowledged the shutdown itself:\n{log}");
    }
    // Threads and descriptors go as each domain's last thread ends.
    let mut after = Census::of(&svc, pid);
    let end = Instant::now() + Duration::from_secs(10);
    while after != before {
        assert!(Instant::now() < end, "the census did not return to where it was:\nbefore {before:?}\nafter  {after:?}\n{}", svc.log());
        std::thread::sleep(Duration::from_millis(100));
        after = Census::of(&svc, pid);
    }
    eprintln!("census before and after: {before:?}");
}

#[test]
fn reboot_restarts_with_a_new_domid_and_rename_restart_keeps_the_old_one() {
    let _serial = one_at_a_time();
    let dir = scratch("service-reboot");
    let svc = Service::new(&dir);
    svc.start();
    let img = dir.join("disk.img");
    std::fs::write(&img, vec![0x5a; 1 << 20]).unwrap();
    let cfg = waiting_cfg(&dir, "r.cfg", &format!("on_reboot = 'restart'\ndisk = [ 'file:{},xvda,w' ]\n", img.display()));
    svc.ok(&["create", cfg.to_str().unwrap()]);
    assert_eq!(svc.ok(&["domid", "waiting"]).trim(), "1");
    // Once the guest watches control/shutdown (xl's requests need PV drivers).
    svc.console_exchange("waiting", "up?\n", "hello: typed: up?", LIMIT);
    let run = svc.run(&["reboot", "-w", "waiting"], LIMIT);
    assert!(run.code() == 0 && run.stderr.contains("Domain 1 has been shut down, reason code 1"), "{run}");
    eventually(LIMIT, "the domain is back", || svc.list().iter().any(|d| d.0 == "waiting" && d.1 == 2));
    // As xl: a new domain, with its disk (the same image) attached again.
    let xs = |path: &str| {
        let out = std::process::Command::new("xenstore-read").arg(path).env("XENSTORED_PATH", svc.run_dir.join("xenstored/socket")).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(xs("/local/domain/0/backend/vbd/2/51712/params"), img.display().to_string());
    assert_eq!(xs("/local/domain/2/name"), "waiting");
    svc.console_exchange("waiting", "still here\n", "hello: typed: still here", LIMIT);
    assert_eq!(std::fs::read(&img).unwrap(), vec![0x5a; 1 << 20], "the disk is intact");

    // rename, then rename-restart: the old domain stays (renamed, shut down).
    svc.ok(&["rename", "waiting", "kept"]);
    assert_eq!(svc.ok(&["domname", "2"]).trim(), "kept");
    assert_eq!(xs("/local/domain/2/name"), "kept");
    svc.ok(&["destroy", "kept"]);
    let cfg = waiting_cfg(&dir, "rr.cfg", "on_reboot = 'rename-restart'\non_poweroff = 'preserve'\n");
    svc.ok(&["create", cfg.to_str().unwrap()]);
    svc.console_exchange("waiting", "up?\n", "hello: typed: up?", LIMIT);
    svc.ok(&["reboot", "-w", "waiting"]);
    eventually(LIMIT, "a new domain 4 with the name", || svc.list().iter().any(|d| d.0 == "waiting" && d.1 == 4));
    let domains = svc.list();
    let old = domains.iter().find(|d| d.1 == 3).unwrap_or_else(|| panic!("{domains:?}"));
    assert!(old.0.starts_with("waiting-") && old.0.ends_with('Z') && old.4 == "---s--", "{old:?}");
    assert!(svc.run(&["create", cfg.to_str().unwrap()], LIMIT).stderr.contains("already exists"), "a duplicate name is refused");
    svc.ok(&["destroy", "3"]);
    // preserve on poweroff: it stays listed until destroyed (renamed as
    // domain 3 was: the two would clash within the same minute).
    svc.console_exchange("waiting", "up?\n", "hello: typed: up?", LIMIT);
    svc.ok(&["shutdown", "-w", "waiting"]);
    eventually(LIMIT, "domain 4 kept", || svc.list().iter().any(|d| d.1 == 4 && d.4 == "---s--"));
    svc.ok(&["destroy", "4"]);
    assert!(svc.list().is_empty());
}

#[test]
fn pause_unpause_vcpu_list_info_and_dmesg_answer_as_xl() {
    let _serial = one_at_a_time();
    let dir = scratch("service-verbs");
    let svc = Service::new(&dir);
    svc.start();
    let cfg = waiting_cfg(&dir, "v.cfg", "vcpus = 2\nmaxvcpus = 3\n");
    svc.ok(&["create", "-p", cfg.to_str().unwrap()]);
    let state = |s: &Service| s.list()[0].4.clone();
    assert_eq!(state(&svc), "--p---", "created paused");
    svc.ok(&["unpause", "waiting"]);
    svc.console_exchange("waiting", "x\n", "hello: typed: x", LIMIT);
    // Every thread that touches guest data runs under its seccomp filter:
    // all but the accept loop, the spare-VM maker and client connections.
    let pid = svc.pid().unwrap();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default().trim().to_owned();
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let filtered = status.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Seccomp:", "2"]);
        assert!(filtered || ["xenolith", "spare-vm", "control"].contains(&name.as_str()), "thread {name} runs unfiltered:\n{status}");
    }
    svc.ok(&["pause", "1"]);
    assert_eq!(state(&svc), "--p---");
    svc.ok(&["unpause", "1"]);
    let vcpus = svc.ok(&["vcpu-list", "waiting"]);
    let rows: Vec<&str> = vcpus.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "maxvcpus rows:\n{vcpus}");
    assert!(rows[2].contains("--p"), "vCPU 2 is offline:\n{vcpus}");
    let info = svc.ok(&["info"]);
    assert!(info.contains("xen_version            : 4.17") && info.contains("nr_cpus"), "{info}");
    assert!(svc.ok(&["dmesg"]).contains("listening on"));
    let missing = svc.run(&["destroy", "nosuch"], LIMIT);
    assert_eq!(missing.code(), 1, "{missing}");
    assert!(missing.stderr.contains("nosuch is an invalid domain identifier"), "{missing}");
    let list_l = svc.ok(&["list", "-l", "waiting"]);
    assert!(list_l.contains("\"domid\": 1") && list_l.contains("\"max_vcpus\": 3"), "{list_l}");
    svc.ok(&["shutdown", "-a", "-w"]);
    assert!(svc.list().is_empty());
}

#[test]
fn a_killed_service_loses_no_flushed_data_and_the_next_start_works() {
    let _serial = one_at_a_time();
    let dir = scratch("service-kill9");
    for seed in [11u64, 12] {
        let t = xenolith_tests::kill9_service_trial(&dir, seed).unwrap_or_else(|e| panic!("{e}"));
        assert!(t.acked > 0, "seed {seed}: nothing acknowledged: {t:?}");
        assert!(t.lost.is_empty(), "seed {seed}: acknowledged records lost: {:?}", t.lost);
    }
}

/// The victims' runs: hello (its timer and console) and disk-check (xenstore,
/// grants, blkback, the shared xenstored) under `create -c`, each to its
/// end; returns their wall time and the output lines that must not change.
fn run_victims(svc: &Service, hello: &Path, disk: &Path) -> (Duration, Vec<String>) {
    let start = Instant::now();
    let mut lines = Vec::new();
    for cfg in [hello, disk] {
        let run = svc.run(&["create", "-c", cfg.to_str().unwrap()], LIMIT);
        assert_eq!(run.code(), 0, "{run}");
        lines.extend(run.stdout.lines().filter(|l| l.starts_with("Hello") || l.starts_with("memory:") || l.starts_with("sha256:") || l.starts_with("disk-check: done")).map(str::to_owned));
    }
    (start.elapsed(), lines)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn a_spinning_crashing_or_hostile_neighbour_does_not_slow_or_stop_the_others() {
    let _serial = one_at_a_time();
    let dir = scratch("service-noisy");
    let svc = Service::new(&dir);
    svc.start();
    // Small: hashing costs the guest about 40 instructions a byte.
    let img = dir.join("victim.img");
    std::fs::write(&img, image_bytes(16 << 10, 7)).unwrap();
    let hello = write_cfg(&dir, "hello.cfg", &format!("name = \"victim-hello\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 32\n", guest("hello").display()));
    let disk = write_cfg(&dir, "disk.cfg", &format!("name = \"victim-disk\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\ndisk = [ 'file:{},xvda,r' ]\n", guest("disk-check").display(), img.display()));
    const ROUNDS: usize = 3;
    let (_, expected) = run_victims(&svc, &hello, &disk);
    assert_eq!(expected.len(), 4, "{expected:?}");

    let spinner = dir.join("spinner");
    std::fs::write(&spinner, spinning_marker_kernel(16 * 1024, "spinning")).unwrap();
    let hostile_img = dir.join("hostile.img");
    std::fs::write(&hostile_img, image_bytes(1 << 20, 3)).unwrap();
    let noisy = [
        ("spinning", format!("name = \"noisy\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 32\n", spinner.display())),
        ("crashing", format!("name = \"noisy\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 32\nextra = \"panic\"\non_crash = \"restart\"\n", guest("hello").display())),
        ("hostile", std::fs::read_to_string(guest_cfg(&dir, "noisy", "hostile", &hostile_img, "seed=3 rounds=1")).unwrap()),
    ];
    for (what, text) in noisy {
        let cfg = write_cfg(&dir, &format!("{what}.cfg"), &text);
        // Alone and beside the neighbour in turn, so that load from outside
        // the test weighs on both.
        let (mut alone, mut beside) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            alone.push(run_victims(&svc, &hello, &disk).0);
            svc.ok(&["create", cfg.to_str().unwrap()]);
            let (took, lines) = run_victims(&svc, &hello, &disk);
            assert_eq!(lines, expected, "with a {what} neighbour");
            beside.push(took);
            // The crashing one may have given up restarting by now, the
            // hostile one finished: destroy whatever is left.
            let _ = svc.run(&["destroy", "noisy"], LIMIT);
        }
        let (alone, beside) = (median(alone), median(beside));
        eprintln!("victims alone {alone:?}, beside a {what} domain {beside:?} ({:.2}x)", beside.as_secs_f64() / alone.as_secs_f64());
        // Each domain has its own threads and the host has two cores: a
        // neighbour takes one, the victims keep the other.
        assert!(beside <= alone.mul_f64(1.5) + Duration::from_millis(300), "beside a {what} domain the victims took {beside:?} against {alone:?} alone");
    }
    assert!(!svc.log().contains("panicked"), "{}", svc.log());
}
