//! pvboot end to end: the pvboot guest (memory = 256) finds a kernel on
//! the domain's own disk (FFSv2, ext4, FAT32 images made by makefs, mke2fs
//! and mkfs.fat + mcopy), through `kernel=`, menu.lst, boot.cfg or
//! grub.cfg, loads it and hands the domain over to it; the kernel's lines
//! follow pvboot's on the console. Also: clear one-line errors for a
//! missing and a corrupt kernel (then the menu again), menu.lst's
//! fallback, grub.cfg's search by label and UUID, pvboot chain-loading
//! pvboot, GRUB's PVH image chain-loaded and reading its own grub.cfg, and
//! disk-check booted through pvboot reading a disk pvboot had open.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use xenolith_tests::*;

/// disk-check hashes its disk in the guest (~15 million emulated
/// instructions for 256 KiB); the others take a few seconds.
const LIMIT: Duration = Duration::from_secs(180);

/// Runs a disk tool, failing the test with its output if it fails.
fn tool(cmd: &str, args: &[&str], dir: Option<&Path>) {
    let mut c = Command::new(cmd);
    c.args(args);
    if let Some(d) = dir {
        c.current_dir(d);
    }
    let out = c.output().unwrap_or_else(|e| panic!("{cmd}: {e} (cargo xtask setup installs it)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Clone, Copy, Debug)]
enum Fs {
    /// FFSv2 with 16K blocks and 2K fragments (makefs's and newfs's default).
    Ffs2B16k,
    /// FFSv2 with 32K blocks and 4K fragments (the HOWTO's other size).
    Ffs2B32k,
    Ext4,
    Fat32,
}

/// A tree holding `files` (path inside the tree, contents), made into a
/// disk image of the given file system.
fn disk(dir: &Path, fs: Fs, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let tree = dir.join("tree");
    let _ = std::fs::remove_dir_all(&tree);
    for (path, bytes) in files {
        let p = tree.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
    }
    let img = dir.join("disk.img");
    let _ = std::fs::remove_file(&img);
    let (t, i) = (tree.to_str().unwrap(), img.to_str().unwrap());
    match fs {
        Fs::Ffs2B16k => tool("makefs", &["-t", "ffs", "-o", "version=2,bsize=16384,fsize=2048", "-M", "16m", i, t], None),
        Fs::Ffs2B32k => tool("makefs", &["-t", "ffs", "-o", "version=2,bsize=32768,fsize=4096", "-M", "16m", i, t], None),
        Fs::Ext4 => tool("mke2fs", &["-q", "-F", "-t", "ext4", "-d", t, i, "16M"], None),
        Fs::Fat32 => {
            tool("mkfs.fat", &["-C", "-F", "32", "-s", "8", i, "300000"], None);
            let mut args = vec!["-s", "-i", i];
            let names: Vec<String> = std::fs::read_dir(&tree)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            args.extend(names.iter().map(String::as_str));
            args.push("::/");
            tool("mcopy", &args, Some(&tree));
        }
    }
    img
}

/// An xl.cfg starting pvboot with `disks` (xl disk specs) and `extra`.
fn cfg(dir: &Path, disks: &[String], extra: &str) -> PathBuf {
    let text = format!(
        "# written by the pvboot test\nname = \"pvboot-test\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 256\n\
         disk = [ {} ]\nextra = \"{extra}\"\n",
        guest("pvboot").display(),
        disks.iter().map(|d| format!("'{d}'")).collect::<Vec<_>>().join(", ")
    );
    write_cfg(dir, "pvboot.cfg", &text)
}

fn boot(cfg: &Path) -> Run {
    xenolith_run(&["run", "-c", cfg.to_str().unwrap()], LIMIT)
}

/// pvboot under `xenolith run -c` with a console to type on: stdin is a
/// pipe (forwarded to the guest's console), stdout read as it comes.
struct Console {
    child: Child,
    stdin: ChildStdin,
    rx: mpsc::Receiver<Vec<u8>>,
    /// Everything printed so far.
    text: String,
    /// Where the next `expect` starts looking.
    seen: usize,
}

impl Console {
    fn start(cfg: &Path) -> Console {
        let run_dir = cfg.parent().unwrap().join("run");
        let mut child = Command::new(xenolith())
            .args(["run", "-c", cfg.to_str().unwrap()])
            .current_dir(root())
            .env("XENOLITH_RUN_DIR", &run_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn xenolith");
        let stdin = child.stdin.take().unwrap();
        let mut out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Console { child, stdin, rx, text: String::new(), seen: 0 }
    }

    /// Reads until the output after the last match shows `needle` (the
    /// prompt has no newline: matching is on bytes, not lines).
    fn expect(&mut self, needle: &str) -> &mut Console {
        let start = Instant::now();
        loop {
            if let Some(i) = self.text[self.seen..].find(needle) {
                self.seen += i + needle.len();
                return self;
            }
            if start.elapsed() > LIMIT {
                panic!("no {needle:?} on the console:\n{}", self.text);
            }
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(bytes) => self.text.push_str(&String::from_utf8_lossy(&bytes)),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("xenolith ended before {needle:?}:\n{}", self.text),
            }
        }
    }

    /// Types `keys` on the console.
    fn send(&mut self, keys: &str) -> &mut Console {
        self.stdin.write_all(keys.as_bytes()).and_then(|()| self.stdin.flush()).expect("console input");
        self
    }

    /// Output arriving within `quiet` (nothing is expected to happen).
    fn idle(&mut self, quiet: Duration) -> &str {
        let from = self.text.len();
        let start = Instant::now();
        while let Some(left) = quiet.checked_sub(start.elapsed()) {
            if let Ok(bytes) = self.rx.recv_timeout(left) {
                self.text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        &self.text[from..]
    }

    /// Waits for xenolith to end by itself (the domain shut down).
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(start.elapsed() < LIMIT, "the domain did not end:\n{}", self.text);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the domain and returns the whole console output.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        while let Ok(bytes) = self.rx.try_recv() {
            self.text.push_str(&String::from_utf8_lossy(&bytes));
        }
        self.text
    }
}

/// Runs pvboot until its console shows `until`, then a moment more (the
/// menu drawn again), and stops it: for runs that end at a menu.
fn boot_until(cfg: &Path, until: &str) -> String {
    let mut console = Console::start(cfg);
    console.expect(until).idle(Duration::from_millis(500));
    console.stop()
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(guest(name)).unwrap()
}

/// Position of `needle` in the console output, or a failure showing the run.
fn at(run: &Run, needle: &str) -> usize {
    run.stdout.find(needle).unwrap_or_else(|| panic!("missing {needle:?}\n{run}"))
}

fn boots_hello_from(fs: Fs) {
    let dir = scratch(&format!("pvboot_hello_{fs:?}").to_lowercase());
    let img = disk(&dir, fs, &[("boot/hello", read("hello"))]);
    let run = boot(&cfg(&dir, &[format!("file:{},xvda,r", img.display())], "kernel=/boot/hello -- from pvboot"));
    assert_eq!(run.code(), 0, "{run}");
    let booting = at(&run, "pvboot: booting /boot/hello from xvda");
    let timing = at(&run, "pvboot: timing (ms of system time):");
    let hello = at(&run, "Hello from Xenolith!");
    assert!(booting < timing && timing < hello, "pvboot's lines come first\n{run}");
    assert!(run.stdout.contains("command line: from pvboot"), "{run}");
    assert!(run.stdout.contains("memory: 256 MiB"), "{run}");
}

#[test]
fn boots_hello_from_ffs2_16k_2k() {
    boots_hello_from(Fs::Ffs2B16k);
}

#[test]
fn boots_hello_from_ffs2_32k_4k() {
    boots_hello_from(Fs::Ffs2B32k);
}

#[test]
fn boots_hello_from_ext4() {
    boots_hello_from(Fs::Ext4);
}

#[test]
fn boots_hello_from_fat32() {
    boots_hello_from(Fs::Fat32);
}

#[test]
fn a_missing_kernel_is_one_clear_line_then_the_menu() {
    let dir = scratch("pvboot_missing");
    let img = disk(&dir, Fs::Ffs2B16k, &[("boot/hello", read("hello"))]);
    let out = boot_until(&cfg(&dir, &[format!("file:{},xvda,r", img.display())], "kernel=/boot/nope"), "Error booting");
    let err = out
        .find("Error booting 'kernel=/boot/nope': /boot/nope: not found (xvda (ffs2): no such file or directory)\r\n")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(out.matches("/boot/nope: not found").count(), 1, "one line\n{out}");
    assert!(out[err..].contains("c opens a prompt."), "the menu is shown again\n{out}");
    assert!(!out.contains("panic"), "{out}");
}

#[test]
fn a_corrupt_kernel_is_one_clear_line_then_the_menu() {
    let dir = scratch("pvboot_corrupt");
    // hello with its program headers cut off, and a file that is no kernel.
    let mut cut = read("hello");
    cut.truncate(100);
    let img = disk(&dir, Fs::Ffs2B16k, &[("boot/cut", cut), ("boot/text", b"not a kernel at all\n".to_vec())]);
    let disks = [format!("file:{},xvda,r", img.display())];
    let out = boot_until(&cfg(&dir, &disks, "kernel=/boot/cut"), "Error booting");
    let line = out.lines().find(|l| l.contains("/boot/cut on xvda (ffs2):")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("corrupt kernel: program headers"), "{line}\n{out}");
    let out = boot_until(&cfg(&dir, &disks, "kernel=/boot/text"), "Error booting");
    assert!(
        out.contains("/boot/text on xvda (ffs2): unknown kernel format: starts with 6e 6f 74 20 (not ELF"),
        "{out}"
    );
}

/// Each config syntax, on its own file system, boots hello with the
/// entry's arguments plus the command line's `--` words.
fn boots_hello_through(fs: Fs, config_path: &str, config: &str) {
    let dir = scratch(&format!("pvboot_cfg_{fs:?}_{}", config_path.replace('/', "_")).to_lowercase());
    let img = disk(&dir, fs, &[("boot/hello", read("hello")), (config_path.trim_start_matches('/'), config.as_bytes().to_vec())]);
    let run = boot(&cfg(&dir, &[format!("file:{},xvda,r", img.display())], "-- and more"));
    assert_eq!(run.code(), 0, "{run}");
    let reading = at(&run, &format!("pvboot: reading {config_path} on xvda"));
    let hello = at(&run, "Hello from Xenolith!");
    assert!(reading < hello, "{run}");
    assert!(run.stdout.contains("command line: from the config and more"), "{run}");
}

#[test]
fn boots_hello_through_menu_lst_on_ffs2() {
    boots_hello_through(
        Fs::Ffs2B16k,
        "/boot/grub/menu.lst",
        "default 0\ntimeout 0\ntitle hello\nkernel /boot/hello from the config\n",
    );
}

#[test]
fn boots_hello_through_boot_cfg_on_fat32() {
    boots_hello_through(Fs::Fat32, "/boot.cfg", "menu=Hello:boot /boot/hello from the config\ndefault=1\ntimeout=0\n");
}

#[test]
fn boots_hello_through_grub_cfg_on_ext4() {
    boots_hello_through(
        Fs::Ext4,
        "/boot/grub/grub.cfg",
        "set default=0\nset timeout=0\nmenuentry 'hello' {\n  linux /boot/hello from the config\n}\n",
    );
}

/// menu.lst's default names a missing kernel: one line, then `fallback`.
#[test]
fn a_failing_default_falls_back() {
    let dir = scratch("pvboot_fallback");
    let menu = "default 0\nfallback 1\ntimeout 0\ntitle broken\nkernel /boot/gone\ntitle hello\nkernel /boot/hello fell back\n";
    let img = disk(&dir, Fs::Ffs2B16k, &[("boot/hello", read("hello")), ("boot/grub/menu.lst", menu.as_bytes().to_vec())]);
    let run = boot(&cfg(&dir, &[format!("file:{},xvda,r", img.display())], ""));
    assert_eq!(run.code(), 0, "{run}");
    let err = at(&run, "Error booting 'broken': /boot/gone on xvda (ffs2): no such file or directory");
    let hello = at(&run, "command line: fell back");
    assert!(err < hello, "{run}");
}

/// pvboot (at 128 MiB) loads a pvboot linked at 128 MiB: the second one is
/// staged above the first's heap and copied into place by the hand-off,
/// then it connects the disk again and boots hello.
#[test]
fn pvboot_chain_loads_pvboot_which_boots_hello() {
    let dir = scratch("pvboot_twice");
    let img = disk(&dir, Fs::Ffs2B16k, &[("boot/hello", read("hello")), ("boot/pvboot", read("pvboot"))]);
    let run = boot(&cfg(
        &dir,
        &[format!("file:{},xvda,r", img.display())],
        "kernel=/boot/pvboot -- kernel=/boot/hello -- twice",
    ));
    assert_eq!(run.code(), 0, "{run}");
    let first = at(&run, "pvboot: booting /boot/pvboot from xvda (ffs2) (ELF64 PVH, entry 0x8000000, staged over pvboot)");
    let second = at(&run, "command line \"kernel=/boot/hello -- twice\"");
    let hello = at(&run, "command line: twice");
    assert!(first < second && second < hello, "{run}");
}

/// disk-check, booted through pvboot, reads a second disk pvboot had
/// connected and closed: blkback accepts the reconnect.
#[test]
fn disk_check_through_pvboot_reads_its_disk() {
    let dir = scratch("pvboot_disk_check");
    let img = disk(&dir, Fs::Ffs2B16k, &[("boot/disk-check", read("disk-check"))]);
    let data = dir.join("data.img");
    let bytes: Vec<u8> = (0..256 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(&data, &bytes).unwrap();
    let out = Command::new("sha256sum").arg(&data).output().unwrap();
    let want = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_owned();
    let run = boot(&cfg(
        &dir,
        &[format!("file:{},xvda,r", img.display()), format!("file:{},xvdb,r", data.display())],
        "kernel=/boot/disk-check -- disk=xvdb nowrite",
    ));
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("pvboot: disk xvdb"), "pvboot connected xvdb too\n{run}");
    let got = run
        .stdout
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("sha256: ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no sha256 line\n{run}"));
    assert_eq!(got, want, "{run}");
    assert!(run.stdout.contains("disk-check: done"), "{run}");
}

/// grub.cfg's `search --label --set=root` (and `--fs-uuid`) picks the file
/// system by its label or UUID: the config is on xvda, the kernels on an
/// ext4 xvdb that mke2fs labelled; a search that matches nothing is one
/// clear line, then the menu.
#[test]
fn grub_cfg_search_by_label_and_uuid_finds_the_kernel_disk() {
    let dir = scratch("pvboot_search");
    let cfgdir = dir.join("cfg");
    std::fs::create_dir_all(&cfgdir).unwrap();
    let uuid = "0b5f3c1e-7d2a-4c44-9f0e-2b1a6c3d4e5f";
    let grub = format!(
        "set default=1\nset timeout=0\n\
         menuentry 'nowhere' {{\n  search --no-floppy --label --set=root NOSUCHLABEL\n  linux /boot/hello wrong\n}}\n\
         menuentry 'by label' {{\n  search --no-floppy --label --set=root KERNELS\n  linux /boot/hello found by label\n}}\n\
         menuentry 'by uuid' {{\n  search --no-floppy --fs-uuid --set=root {}\n  linux /boot/hello found by uuid\n}}\n",
        uuid.to_uppercase()
    );
    let cfg_img = disk(&cfgdir, Fs::Ffs2B16k, &[("boot/grub/grub.cfg", grub.into_bytes())]);
    let tree = dir.join("kernels");
    std::fs::create_dir_all(tree.join("boot")).unwrap();
    std::fs::write(tree.join("boot/hello"), read("hello")).unwrap();
    let kimg = dir.join("kernels.img");
    let _ = std::fs::remove_file(&kimg);
    tool("mke2fs", &["-q", "-F", "-t", "ext4", "-L", "KERNELS", "-U", uuid, "-d", tree.to_str().unwrap(), kimg.to_str().unwrap(), "16M"], None);
    let disks = [format!("file:{},xvda,r", cfg_img.display()), format!("file:{},xvdb,r", kimg.display())];
    let run = boot(&cfg(&dir, &disks, ""));
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("command line: found by label"), "{run}");
    let run = boot(&cfg(&dir, &disks, "entry=3"));
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("command line: found by uuid"), "{run}");
    let screen = boot_until(&cfg(&dir, &disks, "entry=1"), "Error booting");
    assert!(screen.contains("search for NOSUCHLABEL: xvda (ffs2): no match; xvdb (ext4): no match"), "{screen}");
}

/// A real PVH kernel nobody here wrote: pvboot chain-loads GRUB's
/// i386-xen_pvh image (grub-mkimage, Debian's grub-xen-bin) from the disk
/// (menu.lst, which pvboot reads first), and that GRUB, with its prefix on
/// the same disk, reads its own grub.cfg there and prints from it. GRUB's
/// blkfront connects to the disk pvboot closed: the backend serves the
/// next kernel's frontend again.
#[test]
fn pvboot_chain_loads_grub_which_reads_its_own_grub_cfg() {
    let dir = scratch("pvboot_grub");
    let grub = dir.join("grub.elf");
    let out = Command::new("grub-mkimage")
        .args(["-O", "i386-xen_pvh", "-o"])
        .arg(&grub)
        .args(["-p", "(xen/xvda)/boot/grub", "ext2", "normal", "echo", "halt"])
        .output()
        .expect("grub-mkimage (cargo xtask setup installs grub-common and grub-xen-bin)");
    assert!(out.status.success(), "grub-mkimage: {}", String::from_utf8_lossy(&out.stderr));
    let menu = "default 0\ntimeout 0\ntitle GRUB 2\nkernel /boot/grub.elf\n";
    let grub_cfg = "echo \"grub-peer: GRUB read its own grub.cfg from xvda\"\nhalt\n";
    let img = disk(
        &dir,
        Fs::Ext4,
        &[
            ("boot/grub.elf", std::fs::read(&grub).unwrap()),
            ("boot/grub/menu.lst", menu.as_bytes().to_vec()),
            ("boot/grub/grub.cfg", grub_cfg.as_bytes().to_vec()),
        ],
    );
    let run = boot(&cfg(&dir, &[format!("file:{},xvda,r", img.display())], ""));
    assert_eq!(run.code(), 0, "GRUB's halt powers the domain off\n{run}");
    let booting = at(&run, "pvboot: booting /boot/grub.elf from xvda (ext4)");
    let grub_line = at(&run, "grub-peer: GRUB read its own grub.cfg from xvda");
    assert!(booting < grub_line, "{run}");
}

/// What the test kernel writes to the debug port when it runs.
const TINY_MARKER: &str = "pvboot-test: tiny kernel entered";

/// Kernels compressed by the real tools, each format in turn: pvboot
/// detects the format, decompresses into place and enters the kernel.
#[test]
fn boots_kernels_compressed_in_every_format() {
    let dir = scratch("pvboot_compressed");
    let kernel = dir.join("tiny");
    std::fs::write(&kernel, marker_kernel(40 * 1024, TINY_MARKER)).unwrap();
    let tools: [(&str, &[&str]); 7] = [
        ("gz", &["gzip", "-9", "-c"]),
        ("xz", &["xz", "--check=crc32", "-c"]),
        ("zst", &["zstd", "-q", "-c"]),
        ("bz2", &["bzip2", "-c"]),
        ("lz4", &["lz4", "-l", "-q", "-c"]),
        ("lzo", &["lzop", "-c"]),
        ("lzma", &["lzma", "-c"]),
    ];
    let mut files = Vec::new();
    for (ext, cmd) in tools {
        let out = Command::new(cmd[0])
            .args(&cmd[1..])
            .arg(&kernel)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", cmd[0]));
        assert!(out.status.success(), "{cmd:?} failed");
        files.push((format!("boot/tiny.{ext}"), out.stdout));
    }
    let listed: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let img = disk(&dir, Fs::Ffs2B32k, &listed);
    for (path, _) in &files {
        let run = boot(&cfg(
            &dir,
            &[format!("file:{},xvda,r", img.display())],
            &format!("kernel=/{path}"),
        ));
        assert!(
            run.stdout
                .contains(&format!("pvboot: booting /{path} from xvda (ffs2)")),
            "{run}"
        );
        assert!(
            run.stderr.contains(TINY_MARKER),
            "/{path}: the kernel did not run\n{run}"
        );
    }
}

/// Two menu.lst entries booting hello with different arguments, the
/// first the default after `timeout` seconds.
fn two_entry_disk(dir: &Path, timeout: u32) -> PathBuf {
    let menu = format!(
        "default 0\ntimeout {timeout}\ntitle hello A\nkernel /boot/hello first\ntitle hello B\nkernel /boot/hello second\n"
    );
    let img = disk(dir, Fs::Ffs2B16k, &[("boot/hello", read("hello")), ("boot/grub/menu.lst", menu.into_bytes())]);
    cfg(dir, &[format!("file:{},xvda,r", img.display())], "")
}

/// The console menu as a user drives it: a key stops the countdown, the
/// arrows and a number select, `e` edits the selected entry's command
/// line, Enter boots the edited line.
#[test]
fn keys_stop_the_countdown_select_and_edit_an_entry() {
    let dir = scratch("pvboot_keys_menu");
    let mut console = Console::start(&two_entry_disk(&dir, 3));
    console.expect("Booting 'hello A' in 3 s; press any key to stop");
    console.send("\x1b[B");
    let after = console.idle(Duration::from_secs(5)).to_owned();
    assert!(!after.contains("pvboot: booting"), "the countdown went on after a key:\n{after}");
    console.send("\x1b[A").send("\x1b[B").send("1").send("2").send("e");
    console.expect("Command line of 'hello B' (Enter boots it, Esc goes back)").expect("second");
    console.send(" edited\r");
    console.expect("command line: second edited");
    let text = console.stop();
    assert!(text.contains("Booting 'hello B'"), "{text}");
}

/// `xl shutdown` and `xl reboot` (control/shutdown, written here by
/// xenstore-utils) end pvboot's menu while it waits for a choice: the
/// request is acknowledged, the disk closed, and the domain powers off
/// (exit 0) or reboots (exit 3: on_reboot="destroy").
#[test]
fn the_toolstack_powers_off_or_reboots_a_waiting_menu() {
    for (what, line, code) in [("poweroff", "pvboot: powering off, as the toolstack asked", 0), ("reboot", "pvboot: rebooting, as the toolstack asked", 3)] {
        let dir = scratch(&format!("pvboot_toolstack_{what}"));
        let mut cfg_text = std::fs::read_to_string(two_entry_disk(&dir, 30)).unwrap();
        cfg_text.push_str("on_reboot = \"destroy\"\n");
        let cfg = write_cfg(&dir, "pvboot.cfg", &cfg_text);
        let mut console = Console::start(&cfg);
        // A key stops the countdown: the menu then waits for a choice.
        console.expect("Booting 'hello A' in 30 s; press any key to stop").send("\x1b[B");
        console.idle(Duration::from_millis(300));
        request_shutdown(&dir.join("run"), what);
        console.expect(line);
        let status = console.wait_exit();
        let text = console.stop();
        assert_eq!(status.code(), Some(code), "{what}:\n{text}");
        assert!(!text.contains("pvboot: booting"), "{what}:\n{text}");
        assert!(!text.contains("pvboot: closing"), "closing the disk failed ({what}):\n{text}");
    }
}

/// `xl reboot` with on_reboot="restart", as a domU owner reboots into a
/// kernel they just installed: the domain comes back as a new domain (domid
/// 2, as xl gives it), pvboot reads the same disk and shows its menu again,
/// and only domain 2's control/shutdown reaches it.
#[test]
fn a_restarted_domain_comes_back_with_a_new_domid_and_its_disk() {
    let dir = scratch("pvboot_restart_new_domid");
    let mut cfg_text = std::fs::read_to_string(two_entry_disk(&dir, 30)).unwrap();
    cfg_text.push_str("on_reboot = \"restart\"\n");
    let cfg = write_cfg(&dir, "pvboot.cfg", &cfg_text);
    let mut console = Console::start(&cfg);
    console.expect("Booting 'hello A' in 30 s; press any key to stop").send("\x1b[B");
    console.idle(Duration::from_millis(300));
    request_shutdown_of(&dir.join("run"), 1, "reboot");
    console.expect("pvboot: rebooting, as the toolstack asked");
    console.expect("pvboot: disk xvda").expect("Booting 'hello A' in 30 s; press any key to stop").send("\x1b[B");
    console.idle(Duration::from_millis(300));
    request_shutdown_of(&dir.join("run"), 2, "poweroff");
    console.expect("pvboot: powering off, as the toolstack asked");
    let status = console.wait_exit();
    let text = console.stop();
    assert_eq!(status.code(), Some(0), "{text}");
}

/// The `c` prompt: ls and cat on the domain's disk, then a kernel typed by
/// hand (with its arguments) and booted.
#[test]
fn the_prompt_lists_shows_and_boots_a_typed_kernel() {
    let dir = scratch("pvboot_keys_prompt");
    let mut console = Console::start(&two_entry_disk(&dir, 30));
    console.expect("c opens a prompt.").send("c").expect("pvboot> ");
    console.send("ls /boot\r").expect("hello").expect("pvboot> ");
    console.send("cat /boot/grub/menu.lst\r").expect("title hello B").expect("pvboot> ");
    console.send("frobnicate\r").expect("unknown command 'frobnicate'").expect("pvboot> ");
    console.send("kernel /boot/hello typed at the prompt\r").expect("pvboot> ");
    console.send("boot\r").expect("command line: typed at the prompt");
    console.stop();
}

/// A multiboot 1 ELF without a PVH note boots under PVH through
/// pvboot's multiboot entry (the boot-loader bench's GRUB path, here
/// through pvboot).
#[test]
fn boots_a_multiboot_kernel() {
    let dir = scratch("pvboot_multiboot");
    let mut kernel = marker_kernel(16 * 1024, TINY_MARKER);
    xenolith_tests::drop_pvh_note(&mut kernel);
    let img = disk(&dir, Fs::Ffs2B16k, &[("boot/mb", kernel)]);
    let run = boot(&cfg(&dir, &[format!("file:{},xvda,r", img.display())], "kernel=/boot/mb"));
    assert!(run.stdout.contains("pvboot: booting /boot/mb from xvda (ffs2) (ELF32 multiboot"), "{run}");
    assert!(run.stderr.contains(TINY_MARKER), "the kernel did not run\n{run}");
}
