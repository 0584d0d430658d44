//! The host service end to end: many domains in one `xenolith daemon`,
//! driven by xl's verbs, seen by Xen's own xenstore client, and nothing
//! left behind.

use std::path::Path;
use std::time::{Duration, Instant};

use xenolith_tests::netns::Netns;
use xenolith_tests::service::{Census, Service};
use xenolith_tests::{guest, scratch, write_cfg};

const LIMIT: Duration = Duration::from_secs(120);

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
    let dir = scratch("service-verbs");
    let svc = Service::new(&dir);
    svc.start();
    let cfg = waiting_cfg(&dir, "v.cfg", "vcpus = 2\nmaxvcpus = 3\n");
    svc.ok(&["create", "-p", cfg.to_str().unwrap()]);
    let state = |s: &Service| s.list()[0].4.clone();
    assert_eq!(state(&svc), "--p---", "created paused");
    svc.ok(&["unpause", "waiting"]);
    svc.console_exchange("waiting", "x\n", "hello: typed: x", LIMIT);
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
    let dir = scratch("service-kill9");
    for seed in [11u64, 12] {
        let t = xenolith_tests::kill9_service_trial(&dir, seed).unwrap_or_else(|e| panic!("{e}"));
        assert!(t.acked > 0, "seed {seed}: nothing acknowledged: {t:?}");
        assert!(t.lost.is_empty(), "seed {seed}: acknowledged records lost: {:?}", t.lost);
    }
}
