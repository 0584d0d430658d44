//! xenstored end to end: real guests (GRUB's PVH image, the project's hello
//! guest) under `xenolith run`, and Xen's real tools against the host
//! socket, unmodified: Debian's xenstore-utils (libxenstore 4.17) and
//! python3-pyxs, pointed at it with XENSTORED_PATH.
//!
//! Needs: /dev/kvm, grub-mkimage with grub-xen-bin's i386-xen_pvh modules,
//! xenstore-utils and python3-pyxs. A missing one fails the test with a
//! message saying what to install.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

mod common;

use common::{need, XENOLITH};

/// Guests run one at a time: the host has few cores and software KVM.
static GUESTS: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    GUESTS.lock().unwrap_or_else(|e| e.into_inner())
}

fn scratch(name: &str) -> PathBuf {
    common::scratch("xenstore", name)
}

/// A GRUB PVH image whose embedded config runs `script`.
fn grub_image(name: &str, script: &str, modules: &[&str]) -> PathBuf {
    common::grub_image(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("xenstore-grub"), name, "/boot/grub", script, modules)
}

/// GRUB that boots (reading device/vbd from xenstore over its ring) and
/// waits at its prompt.
fn grub_prompt() -> &'static Path {
    static IMG: OnceLock<PathBuf> = OnceLock::new();
    IMG.get_or_init(|| grub_image("prompt", "echo \"grub-pvh up\"\n", &["normal", "echo"]))
}

/// A guest that boots and powers off at once: the project's hello guest
/// if it has been built, else GRUB running `halt`.
fn short_lived_guest() -> PathBuf {
    let target = Path::new(XENOLITH).parent().and_then(Path::parent).unwrap().to_path_buf();
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for p in [target.join("x86_64-unknown-none/release/hello"), ws.join("target/guests/hello")] {
        if p.is_file() {
            return p;
        }
    }
    eprintln!("hello guest not built (cargo xtask build); using GRUB with `halt`");
    grub_image("halt", "echo \"grub-pvh halting\"\nhalt\n", &["echo", "halt"])
}

/// A running `xenolith run`, killed (and reaped) when dropped.
struct Xenolith {
    child: Child,
    run_dir: PathBuf,
    log: PathBuf,
    console: PathBuf,
}

impl Xenolith {
    /// Starts `xenolith -vvv create -c` on a configuration, its run
    /// directory (and so its socket) under `dir`.
    fn start(dir: &Path, tag: &str, kernel: &Path, extra: &str) -> Xenolith {
        let cfg = dir.join(format!("{tag}.cfg"));
        std::fs::write(&cfg, format!("name = \"{tag}\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 32\n{extra}", kernel.display())).unwrap();
        let (console, log) = (dir.join(format!("{tag}.console")), dir.join(format!("{tag}.log")));
        let run_dir = dir.join("run");
        let child = Command::new(XENOLITH)
            .args(["-vvv", "run", "-c"])
            .arg(&cfg)
            .env("XENOLITH_RUN_DIR", &run_dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&console).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn xenolith");
        Xenolith { child, run_dir, log, console }
    }

    /// The socket this xenolith serves, by `xenolith xenstore-path --pid`.
    fn socket(&self) -> PathBuf {
        let out = Command::new(XENOLITH)
            .args(["xenstore-path", "--pid", &self.child.id().to_string()])
            .env("XENOLITH_RUN_DIR", &self.run_dir)
            .output()
            .unwrap();
        assert!(out.status.success());
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    }

    fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned()
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Waits until `ok` holds, failing with the logs after `limit`.
    fn wait_for(&mut self, what: &str, limit: Duration, mut ok: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        loop {
            if ok(self) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("xenolith exited ({status}) before {what}\n--- console ---\n{}\n--- log ---\n{}", self.console(), self.log());
            }
            assert!(start.elapsed() < limit, "timed out waiting for {what}\n--- console ---\n{}\n--- log ---\n{}", self.console(), self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the domain's entries are in xenstore.
    fn wait_introduced(&mut self) -> PathBuf {
        let mut sock = PathBuf::new();
        self.wait_for("xenstore to serve domain 1", Duration::from_secs(30), |x| {
            sock = x.socket();
            sock.exists() && tool(&sock, "xenstore-read", &["/local/domain/1/domid"]).status.success()
        });
        sock
    }
}

impl Drop for Xenolith {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one of Xen's xenstore tools against `sock`.
fn tool(sock: &Path, name: &str, args: &[&str]) -> Output {
    need(name, "xenstore-utils");
    Command::new(name).args(args).env("XENSTORED_PATH", sock).output().unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Runs a tool and returns its stdout, failing on a non-zero status.
fn tool_ok(sock: &Path, name: &str, args: &[&str]) -> String {
    let out = tool(sock, name, args);
    assert!(out.status.success(), "{name} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a python3 script using pyxs against `sock`; returns its stdout.
fn pyxs(sock: &Path, script: &str) -> String {
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .env("XENSTORED_PATH", sock)
        .output()
        .expect("python3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("No module named 'pyxs'"), "pyxs is missing: apt-get install python3-pyxs");
    assert!(out.status.success(), "pyxs script failed:\n{err}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn grub_reads_xenstore_over_its_ring_and_tools_see_the_layout() {
    let _g = serial();
    let dir = scratch("layout");
    let mut x = Xenolith::start(&dir, "grubguest", grub_prompt(), "");
    let sock = x.wait_introduced();
    assert_eq!(sock, x.run_dir.join("xenstored/socket"), "the usual path");
    // GRUB prints its banner only after xenstore answered its XS_DIRECTORY.
    x.wait_for("GRUB's prompt", Duration::from_secs(90), |x| x.console().contains("grub>"));
    assert!(x.log().contains("DIRECTORY \"device/vbd\\0\""), "GRUB's request arrived over the ring\n{}", x.log());

    let ls = tool_ok(&sock, "xenstore-ls", &["/local/domain/1"]);
    for needle in [
        "name = \"grubguest\"",
        "domid = \"1\"",
        "target = \"32768\"",
        "static-max = \"32768\"",
        "ring-ref = \"1044471\"", // the console pfn, 0xfeff7
        "type = \"xenconsoled\"",
        "shutdown = \"\"",
        "feature-poweroff = \"\"",
    ] {
        assert!(ls.contains(needle), "xenstore-ls lacks {needle:?}:\n{ls}");
    }
    let vm = tool_ok(&sock, "xenstore-read", &["/local/domain/1/vm"]);
    assert!(vm.starts_with("/vm/"), "{vm}");
    assert_eq!(tool_ok(&sock, "xenstore-read", &[&format!("{}/name", vm.trim())]).trim(), "grubguest");
    // Permissions as libxl sets them.
    let perms = tool_ok(&sock, "xenstore-ls", &["-p", "/local/domain/1"]);
    let line = |key: &str| perms.lines().find(|l| l.trim_start().starts_with(&format!("{key} = "))).unwrap_or_default().to_owned();
    assert!(line("name").ends_with("(n0,r1)"), "{}", line("name"));
    assert!(line("data").ends_with("(n1)"), "{}", line("data"));
    assert!(line("shutdown").ends_with("(n1)"), "{}", line("shutdown"));
    assert_eq!(tool_ok(&sock, "xenstore-read", &["/local/domain/0/name"]).trim(), "Domain-0");
}

#[test]
fn xenstore_utils_round_trip_watch_and_chmod() {
    let _g = serial();
    let dir = scratch("utils");
    let mut x = Xenolith::start(&dir, "utils", grub_prompt(), "");
    let sock = x.wait_introduced();

    tool_ok(&sock, "xenstore-write", &["/local/domain/1/data/foo", "bar", "/tool/test/k", "v"]);
    assert_eq!(tool_ok(&sock, "xenstore-read", &["/local/domain/1/data/foo"]), "bar\n");
    assert_eq!(tool_ok(&sock, "xenstore-read", &["/tool/test/k"]), "v\n");
    let missing = tool(&sock, "xenstore-read", &["/local/domain/1/nope"]);
    assert!(!missing.status.success());
    assert_eq!(tool(&sock, "xenstore-exists", &["/tool/test/k"]).status.code(), Some(0));
    assert_eq!(tool_ok(&sock, "xenstore-list", &["/tool/test"]), "k\n");
    tool_ok(&sock, "xenstore-rm", &["/tool/test"]);
    assert_ne!(tool(&sock, "xenstore-exists", &["/tool/test/k"]).status.code(), Some(0));
    // Invalid paths are refused.
    assert!(!tool(&sock, "xenstore-write", &["/bad//path", "x"]).status.success());
    // A child list over the 4096-byte payload limit: libxenstore gets E2BIG
    // for XS_DIRECTORY and pages it with XS_DIRECTORY_PART.
    let names: Vec<String> = (0..300).map(|i| format!("/tool/big/child-number-{i:04}")).collect();
    let mut args: Vec<&str> = Vec::new();
    for n in &names {
        args.extend([n.as_str(), "v"]);
    }
    tool_ok(&sock, "xenstore-write", &args);
    let listed = tool_ok(&sock, "xenstore-list", &["/tool/big"]);
    assert_eq!(listed.lines().count(), 300);
    assert_eq!(listed.lines().last(), Some("child-number-0299"));

    // xenstore-watch sees the first firing, then a write.
    need("xenstore-watch", "xenstore-utils");
    let mut watch = Command::new("xenstore-watch")
        .args(["-n", "2", "/local/domain/1/data"])
        .env("XENSTORED_PATH", &sock)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Its first line (the firing on registration) says the watch is set.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10));
    tool_ok(&sock, "xenstore-write", &["/local/domain/1/data/w", "1"]);
    let second = rx.recv_timeout(Duration::from_secs(10));
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(first.as_deref(), Ok("/local/domain/1/data"));
    assert_eq!(second.as_deref(), Ok("/local/domain/1/data/w"));

    // chmod: owned by domain 0, no access for others; then readable by 1.
    tool_ok(&sock, "xenstore-chmod", &["/local/domain/1/data/foo", "n0"]);
    assert!(tool_ok(&sock, "xenstore-ls", &["-p", "/local/domain/1/data"]).lines().any(|l| l.starts_with("foo = \"bar\"") && l.ends_with("(n0)")));
    tool_ok(&sock, "xenstore-chmod", &["/local/domain/1/data/foo", "n0", "r1"]);
    let perms = pyxs(&sock, "from pyxs import Client\nwith Client() as c: print(c.get_perms(b'/local/domain/1/data/foo'))");
    assert_eq!(perms.trim(), "[b'n0', b'r1']");
    // Bad permission strings are refused.
    assert!(!tool(&sock, "xenstore-chmod", &["/local/domain/1/data/foo", "x0"]).status.success());
}

#[test]
fn pyxs_transactions_conflict_with_eagain() {
    let _g = serial();
    let dir = scratch("pyxs");
    let mut x = Xenolith::start(&dir, "pyxs", grub_prompt(), "");
    let sock = x.wait_introduced();
    let out = pyxs(
        &sock,
        r#"
from pyxs import Client
with Client() as a, Client() as b:
    a.write(b"/t/n", b"0")
    a.transaction(); b.transaction()
    a.write(b"/t/n", b"a"); b.write(b"/t/n", b"b")
    print("first", a.commit())
    print("second", b.commit())
    print("value", a.read(b"/t/n").decode())
    print("path", a.get_domain_path(1).decode())
    print("introduced", a.is_domain_introduced(1), a.is_domain_introduced(9))
    a.transaction(); a.write(b"/t/gone", b"x"); a.rollback()
    print("rolled back", a.exists(b"/t/gone"))
    with a.monitor() as m:
        m.watch(b"/t", b"tok")
        a.write(b"/t/x", b"1")
        it = m.wait()
        print("event", next(it).path.decode(), next(it).path.decode())
"#,
    );
    let want = "first True\nsecond False\nvalue a\npath /local/domain/1\nintroduced True False\nrolled back False\nevent /t /t/x\n";
    assert_eq!(out, want);
}

#[test]
fn special_watches_fire_as_the_domain_comes_and_goes() {
    let _g = serial();
    let dir = scratch("special");
    // Powers off at once and is restarted: introduce, shutdown, release, again.
    let mut x = Xenolith::start(&dir, "cycler", &short_lived_guest(), "on_poweroff = \"restart\"\n");
    x.wait_for("the socket", Duration::from_secs(30), |x| x.socket().exists());
    let sock = x.socket();
    let out = pyxs(
        &sock,
        r#"
import time
from pyxs import Client
with Client() as c:
    with c.monitor() as m:
        m.watch(b"@introduceDomain", b"i")
        m.watch(b"@releaseDomain", b"r")
        seen = []
        it = m.wait()
        deadline = time.time() + 60
        while time.time() < deadline and (seen.count(b"r") < 3 or seen.count(b"i") < 2):
            seen.append(next(it).token)
        print(seen.count(b"i") >= 2, seen.count(b"r") >= 3)
"#,
    );
    assert_eq!(out.trim(), "True True", "{}", x.log());
    // Each restart is a new domain with the next domid, as with xl.
    assert!(x.log().contains("domain cycler (1): poweroff -> restarted as domain 2"), "{}", x.log());
}

#[test]
fn a_second_xenolith_gets_its_own_socket() {
    let _g = serial();
    let dir = scratch("two");
    let mut a = Xenolith::start(&dir, "first", grub_prompt(), "");
    let sa = a.wait_introduced();
    let mut b = Xenolith::start(&dir, "second", grub_prompt(), "");
    let sb = b.wait_introduced();
    assert_eq!(sa, dir.join("run/xenstored/socket"));
    assert_eq!(sb, dir.join(format!("run/xenstored/socket.{}", b.child.id())));
    assert!(b.log().contains("served by another xenolith"), "{}", b.log());
    assert_eq!(tool_ok(&sa, "xenstore-read", &["/local/domain/1/name"]).trim(), "first");
    assert_eq!(tool_ok(&sb, "xenstore-read", &["/local/domain/1/name"]).trim(), "second");
    // Without --pid, the usual path.
    let out = Command::new(XENOLITH).arg("xenstore-path").env("XENOLITH_RUN_DIR", dir.join("run")).output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), sa.to_str().unwrap());
    // A stale socket (its xenolith killed) is taken over; a dead one's
    // per-pid socket is swept away.
    drop(a);
    drop(b);
    let mut c = Xenolith::start(&dir, "third", grub_prompt(), "");
    assert_eq!(c.wait_introduced(), sa);
    assert!(!sb.exists(), "{} left behind", sb.display());
}

/// Sends raw bytes; returns the reply's type and payload.
fn raw(s: &mut UnixStream, ty: u32, req_id: u32, tx: u32, payload: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut m = Vec::new();
    for w in [ty, req_id, tx, payload.len() as u32] {
        m.extend_from_slice(&w.to_le_bytes());
    }
    m.extend_from_slice(payload);
    s.write_all(&m).unwrap();
    let mut h = [0u8; 16];
    s.read_exact(&mut h).unwrap();
    let word = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
    let mut body = vec![0; word(12) as usize];
    s.read_exact(&mut body).unwrap();
    (word(0), word(4), body)
}

#[test]
fn hostile_socket_input_gets_errors_not_a_crash() {
    let _g = serial();
    let dir = scratch("hostile");
    let mut x = Xenolith::start(&dir, "hostile", grub_prompt(), "");
    let sock = x.wait_introduced();
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    const ERROR: u32 = 16;
    assert_eq!(raw(&mut s, 2, 7, 0, b"/local/domain/1/name\0"), (2, 7, b"hostile".to_vec()));
    assert_eq!(raw(&mut s, 2, 8, 0, b"/no//such\0"), (ERROR, 8, b"EINVAL\0".to_vec()));
    assert_eq!(raw(&mut s, 2, 9, 0, b"/local/domain/1/name"), (ERROR, 9, b"EINVAL\0".to_vec()), "no NUL");
    assert_eq!(raw(&mut s, 999, 10, 0, b""), (ERROR, 10, b"ENOSYS\0".to_vec()));
    assert_eq!(raw(&mut s, 2, 11, 12345, b"/\0"), (ERROR, 11, b"ENOENT\0".to_vec()), "unknown transaction");
    assert_eq!(raw(&mut s, 14, 12, 0, b"/local/domain/1/data\0r99999\0"), (ERROR, 12, b"EINVAL\0".to_vec()));
    assert_eq!(raw(&mut s, 1, 13, 0, &[b'a'; 4096]), (ERROR, 13, b"EINVAL\0".to_vec()), "a full-size payload is fine");
    // A payload over 4096 bytes: xenstored drops the connection.
    let mut h = Vec::new();
    for w in [2u32, 14, 0, 5000] {
        h.extend_from_slice(&w.to_le_bytes());
    }
    s.write_all(&h).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "connection closed");
    // The daemon and the guest carry on.
    assert_eq!(tool_ok(&sock, "xenstore-read", &["/local/domain/1/name"]).trim(), "hostile");
    let mut s2 = UnixStream::connect(&sock).unwrap();
    s2.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A header split across writes still works.
    let mut m = Vec::new();
    for w in [2u32, 1, 0, 6] {
        m.extend_from_slice(&w.to_le_bytes());
    }
    m.extend_from_slice(b"/tool\0");
    for chunk in m.chunks(3) {
        s2.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut h = [0u8; 16];
    s2.read_exact(&mut h).unwrap();
    assert_eq!(u32::from_le_bytes(h[0..4].try_into().unwrap()), 2);
    assert!(x.child.try_wait().unwrap().is_none(), "xenolith still running");
}
