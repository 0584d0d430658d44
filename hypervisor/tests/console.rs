//! The PV console both ways, against a real peer: GRUB's PVH image reads
//! what is typed on `xenolith run -c`'s standard input through the
//! console ring, runs it, and its output comes back on standard output.
//!
//! Needs /dev/kvm and grub-mkimage with the i386-xen_pvh modules.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

mod common;

use common::XENOLITH;

/// A guest console driven like a terminal: wait for text, then type.
struct Terminal {
    child: Child,
    output: Receiver<Vec<u8>>,
    seen: String,
}

impl Terminal {
    fn start(cmd: &mut Command) -> Terminal {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut out = child.stdout.take().unwrap();
        let (tx, output) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Terminal { child, output, seen: String::new() }
    }

    /// Reads output until `text` has appeared `count` times in all.
    fn expect(&mut self, text: &str, count: usize, limit: Duration) {
        let end = Instant::now() + limit;
        while self.seen.matches(text).count() < count {
            let left = end.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no {text:?} (x{count}) within {limit:?}; console so far:\n{}", self.seen);
                }
            }
        }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\r").unwrap();
        stdin.flush().unwrap();
    }
}

#[test]
fn typed_commands_reach_the_guest_and_its_answers_come_back() {
    let dir = common::scratch("console", "typed");
    let grub = common::grub_image(&dir, "grub", "/boot/grub", "", &["normal", "echo", "halt"]);
    let cfg = dir.join("grub.cfg");
    std::fs::write(&cfg, format!("name = \"console-test\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\n", grub.display())).unwrap();
    let mut term = Terminal::start(Command::new(XENOLITH).args(["run", "-c"]).arg(&cfg).env("XENOLITH_RUN_DIR", &dir));
    let limit = Duration::from_secs(60);
    term.expect("grub> ", 1, limit);
    term.type_line("echo typed-on-the-host-7431");
    // GRUB echoes each key between cursor escapes, so the whole word only
    // appears in the command's output.
    term.expect("typed-on-the-host-7431", 1, limit);
    term.expect("grub> ", 2, limit);
    term.type_line("halt");
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(s) = term.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "halt did not end the domain; console:\n{}", term.seen);
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "halt powers the domain off; console:\n{}", term.seen);
}
