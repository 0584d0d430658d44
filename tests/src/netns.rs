//! Network namespaces for the network tests: each test gets its own, with
//! its own bridge, so tests run in parallel and leave nothing behind.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{root, xenolith};

/// A network namespace with a bridge `xenbr0`, deleted (with every
/// interface in it) when dropped.
pub struct Netns {
    /// Its name (`ip netns` list).
    pub name: String,
}

/// Runs `ip ARGS` in the host's namespace.
pub fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().expect("run ip")
}

// Making one creates a namespace: not a default value.
#[allow(clippy::new_without_default)]
impl Netns {
    /// A fresh namespace with `lo` and the bridge `xenbr0` up.
    pub fn new() -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("xlnet-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let out = ip(&["netns", "add", &name]);
        assert!(out.status.success(), "ip netns add: {}", String::from_utf8_lossy(&out.stderr));
        let ns = Netns { name };
        for args in [&["link", "add", "xenbr0", "type", "bridge"][..], &["link", "set", "xenbr0", "up"], &["link", "set", "lo", "up"]] {
            let out = ns.ip(args);
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        ns
    }

    /// Runs `ip ARGS` in the namespace.
    pub fn ip(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `ip -d link show dev NAME` in the namespace, or None if it does not exist.
    pub fn link(&self, name: &str) -> Option<String> {
        let out = self.ip(&["-d", "link", "show", "dev", name]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `f` on a thread inside the namespace: std's sockets opened
    /// there talk over the namespace's bridge.
    pub fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn_inside(f).join().expect("the thread in the namespace")
    }

    /// Starts `f` on a thread inside the namespace, without waiting for it.
    pub fn spawn_inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("the namespace's file");
            // SAFETY: setns on an fd we own; it changes only this thread's namespace.
            let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }

    /// `PROGRAM` run inside the namespace (through `ip netns exec`).
    pub fn exec(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// `xenolith ARGS` inside the namespace.
    pub fn xenolith(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(xenolith()).args(args);
        cmd.current_dir(root()).env("XENOLITH_RUN_DIR", dir.join("run"));
        cmd
    }
}

/// A server process the test started, stopped when dropped: SIGTERM (so
/// that xenolith cleans up as it does for the user), SIGKILL after 10 s.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill with the pid of our own child (`ip netns exec` execs it).
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while matches!(self.0.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}
