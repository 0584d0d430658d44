//! The host service in tests: a run directory of its own (so tests run in
//! parallel), verbs run against it, what it holds counted, and the service
//! stopped when the test ends.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::{root, run_command, xenolith, Run};

/// A host service for one test, started by the first verb; SIGTERM (then
/// SIGKILL) when dropped, so no service outlives its test.
pub struct Service {
    /// Its run directory (`XENOLITH_RUN_DIR`).
    pub run_dir: PathBuf,
    /// Where the domains' console logs go.
    pub log_dir: PathBuf,
    /// The network namespace its verbs (and so the service) run in, if any.
    pub netns: Option<String>,
}

impl Service {
    /// A service whose run directory is `dir/run`, in the host's network namespace.
    pub fn new(dir: &Path) -> Service {
        Service { run_dir: dir.join("run"), log_dir: dir.join("logs"), netns: None }
    }

    /// A service whose verbs run in `ns` (its vifs' TAPs go there).
    pub fn in_netns(dir: &Path, ns: &Netns) -> Service {
        Service { run_dir: dir.join("run"), log_dir: dir.join("logs"), netns: Some(ns.name.clone()) }
    }

    /// `xenolith ARGS` against this service, from the workspace root.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(xenolith());
                c
            }
            None => Command::new(xenolith()),
        };
        cmd.args(args).current_dir(root()).env("XENOLITH_RUN_DIR", &self.run_dir);
        cmd
    }

    /// Starts the service explicitly (the verbs would start it with the
    /// default log directory), with its console logs in [`Service::log_dir`].
    pub fn start(&self) {
        std::fs::create_dir_all(&self.run_dir).unwrap();
        let log = std::fs::File::create(self.run_dir.join("daemon.log")).unwrap();
        let mut cmd = self.command(&["daemon", "-v", "--log-dir", self.log_dir.to_str().unwrap()]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        // Reaped by a thread (the test stops it through its pid file), which
        // notes how it ended in its log: a death by signal shows there.
        let mut child = cmd.spawn().expect("spawn xenolith daemon");
        let log_path = self.run_dir.join("daemon.log");
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                if let Ok(mut log) = std::fs::OpenOptions::new().append(true).open(&log_path) {
                    let _ = writeln!(log, "[test] the service ended: {status}");
                }
            }
        });
        let end = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(self.run_dir.join("control")).is_err() {
            assert!(Instant::now() < end, "the service did not listen within 10 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Runs a verb, killing it after `limit`.
    pub fn run(&self, args: &[&str], limit: Duration) -> Run {
        run_command(self.command(args), limit)
    }

    /// Runs a verb that must succeed; returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args, Duration::from_secs(120));
        assert_eq!(run.code(), 0, "xenolith {args:?} failed\n{run}\n--- service log ---\n{}", self.log());
        run.stdout
    }

    /// The service's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("daemon.log")).unwrap_or_default()
    }

    /// The running service's pid, from its lock file.
    pub fn pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.run_dir.join("daemon.lock")).ok()?.trim().parse().ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// The domains `list` shows (Domain-0 left out): name, id, memory, vCPUs, state.
    pub fn list(&self) -> Vec<(String, u16, u64, u32, String)> {
        self.ok(&["list"])
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 6 && f[0] != "Domain-0").then(|| (f[0].to_owned(), f[1].parse().unwrap(), f[2].parse().unwrap(), f[3].parse().unwrap(), f[4].to_owned()))
            })
            .collect()
    }

    /// Attaches to `domain`'s console, types `text`, waits until the output
    /// holds `expect`, then detaches with Ctrl-]; returns the output seen.
    pub fn console_exchange(&self, domain: &str, text: &str, expect: &str, limit: Duration) -> String {
        let mut child = self.command(&["console", domain]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn console");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        stdin.write_all(text.as_bytes()).unwrap();
        let end = Instant::now() + limit;
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains(expect) {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => seen.extend(bytes),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("console {domain}: no {expect:?} within {limit:?}; saw:\n{}", String::from_utf8_lossy(&seen));
                }
            }
        }
        stdin.write_all(b"\x1d").unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "console {domain} after Ctrl-]: {status}");
        String::from_utf8_lossy(&seen).into_owned()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let Some(pid) = self.pid() else { return };
        // SAFETY: kill with a pid read from the service's own lock file.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(15);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; a no-op if it is gone.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

/// What a service process holds: counted before domains are created and
/// after they are gone, which must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Census {
    /// Its threads.
    pub threads: usize,
    /// Its open file descriptors.
    pub fds: usize,
    /// Of those, sockets.
    pub sockets: usize,
    /// TAP devices in its network namespace.
    pub taps: usize,
    /// xenstore nodes (xenstore-ls -f through its socket, a real client).
    pub xenstore_nodes: usize,
}

impl Census {
    /// Counts what service `pid` (running verbs through `svc`) holds.
    pub fn of(svc: &Service, pid: u32) -> Census {
        let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok()).map(|p| p.display().to_string()).collect())
            .unwrap_or_default();
        let taps = {
            let mut ip = match &svc.netns {
                Some(ns) => {
                    let mut c = Command::new("ip");
                    c.args(["-n", ns]);
                    c
                }
                None => Command::new("ip"),
            };
            let out = ip.args(["-o", "link", "show", "type", "tun"]).output().expect("ip link");
            String::from_utf8_lossy(&out.stdout).lines().count()
        };
        let ls = Command::new("xenstore-ls").arg("-f").env("XENSTORED_PATH", svc.run_dir.join("xenstored/socket")).output().expect("xenstore-ls");
        assert!(ls.status.success(), "xenstore-ls: {}", String::from_utf8_lossy(&ls.stderr));
        Census {
            threads: std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0),
            fds: fds.len(),
            sockets: fds.iter().filter(|l| l.starts_with("socket:")).count(),
            taps,
            xenstore_nodes: String::from_utf8_lossy(&ls.stdout).lines().count(),
        }
    }
}
