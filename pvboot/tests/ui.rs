//! The console UI driven by a script of timed key bytes on a virtual clock:
//! the countdown, selection, editing, the prompt on real FAT and FFS images
//! (mkfs.fat + mcopy, makefs), history, split escape sequences, timeouts and
//! boot failures, with the exact screen output where it matters.

mod common;

use std::collections::VecDeque;
use std::path::Path;
use std::process::{Command, Stdio};
use std::rc::Rc;

use common::*;
use pvboot::disk::{Cache, FileDisk};
use pvboot::ui::disks::{DiskShell, ShellDisk};
use pvboot::ui::keys::ESC_TIMEOUT_MS;
use pvboot::config::{Entry, FileRef, Menu, ModuleRef, RootSpec};
use pvboot::ui::{Boot, MenuEntry, Output, Reason, Settings, Stop, Terminal, Ui};

/// A menu entry as the tests need it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    title: String,
    args: String,
}

impl MenuEntry for Item {
    fn title(&self) -> &str {
        &self.title
    }
    fn command_line(&self) -> &str {
        &self.args
    }
    fn set_command_line(&mut self, line: String) {
        self.args = line;
    }
}

fn items(titles: &[&str]) -> Vec<Item> {
    titles.iter().map(|t| Item { title: t.to_string(), args: format!("console=hvc0 {}", t.to_lowercase()) }).collect()
}

/// A terminal whose input is a script of (time in ms, bytes) and whose clock
/// only moves by waiting: a read with a timeout that no scripted byte beats
/// advances the clock by exactly that timeout.
struct Script {
    now: u64,
    input: VecDeque<(u64, u8)>,
    out: Vec<u8>,
    /// The timeouts the UI waited with.
    waits: Vec<Option<u64>>,
    /// When the toolstack asks the domain to stop, and for what.
    stop: Option<(u64, Stop)>,
}

impl Script {
    fn new(start: u64, events: &[(u64, &[u8])]) -> Self {
        let input = events.iter().flat_map(|&(t, bytes)| bytes.iter().map(move |&b| (t, b))).collect();
        Script { now: start, input, out: Vec::new(), waits: Vec::new(), stop: None }
    }

    fn screen(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.out)).unwrap()
    }
}

impl Output for Script {
    fn write(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
}

impl Terminal for Script {
    fn read_byte(&mut self, timeout: Option<u64>) -> Option<u8> {
        self.waits.push(timeout);
        match self.input.front() {
            Some(&(t, b)) if timeout.is_none_or(|w| t <= self.now + w) => {
                self.input.pop_front();
                self.now = self.now.max(t);
                Some(b)
            }
            _ => match (timeout, self.stop) {
                // The request ends the wait, as a watch event does.
                (_, Some((t, _))) if timeout.is_none_or(|w| t <= self.now + w) => {
                    self.now = self.now.max(t);
                    None
                }
                (Some(w), _) => {
                    self.now += w;
                    None
                }
                (None, _) => panic!("the script ended while the UI waits for input at {} ms", self.now),
            },
        }
    }

    fn now_ms(&mut self) -> u64 {
        self.now
    }

    fn stop_requested(&mut self) -> Option<Stop> {
        match self.stop {
            Some((t, stop)) if self.now >= t => {
                self.stop = None;
                Some(stop)
            }
            _ => None,
        }
    }
}

/// Feeds timed bytes to the state machine as [`Ui::run`] would, settling each
/// deadline that passes between them, but returns when the input ends (or
/// something is to be booted) instead of waiting.
fn drive<E: MenuEntry>(ui: &mut Ui<E>, shell: &mut dyn pvboot::ui::Shell, events: &[(u64, &[u8])], out: &mut Vec<u8>) -> Option<Boot<E>> {
    for &(t, bytes) in events {
        let mut ticks = 0;
        while let Some(d) = ui.deadline().filter(|&d| d <= t) {
            ticks += 1;
            assert!(ticks < 100_000, "the deadline {d} does not move");
            if let Some(b) = ui.on_time(d, shell, out) {
                return Some(b);
            }
        }
        for &b in bytes {
            if let Some(boot) = ui.on_byte(b, t, shell, out) {
                return Some(boot);
            }
        }
    }
    None
}

type Disk = Rc<Cache<FileDisk>>;

fn no_disks() -> DiskShell<Disk> {
    DiskShell::new(Vec::new(), None)
}

fn settings(default: usize, timeout: Option<u32>) -> Settings {
    Settings { default, timeout, ..Settings::default() }
}

const HELP: &str = "Up/Down or a number selects, Enter boots, e edits the command line, c opens a prompt.\r\n";

/// The menu of Alpha, Beta, Gamma with Beta the default and selected.
const MENU_ABG: &str = "\r\n  1. Alpha\r\n\x1b[7m> 2. Beta (default)\x1b[0m\r\n  3. Gamma\r\n";

#[test]
fn countdown_without_input_boots_the_default_exactly_at_the_timeout() {
    let mut ui = Ui::new(items(&["Alpha", "Beta", "Gamma"]), settings(1, Some(3)));
    let mut term = Script::new(5_000, &[]);
    let boot = ui.run(&mut term, &mut no_disks());
    assert_eq!(boot, Boot::Entry { index: 1, entry: items(&["Beta"])[0].clone(), reason: Reason::Timeout });
    assert_eq!(term.now, 8_000, "booted exactly 3 s after the menu appeared");
    assert_eq!(term.waits, [Some(1000), Some(1000), Some(1000)], "one wait per countdown second, nothing more");
    assert_eq!(
        term.screen(),
        format!(
            "{MENU_ABG}{HELP}Booting 'Beta' in 3 s; press any key to stop\
             \rBooting 'Beta' in 2 s; press any key to stop\
             \rBooting 'Beta' in 1 s; press any key to stop\
             \rBooting 'Beta'\x1b[K\r\n"
        )
    );
}

#[test]
fn a_toolstack_request_ends_a_menu_that_waits_for_a_choice() {
    // No timeout: only a choice, or `xl reboot`, ends the wait.
    let mut ui = Ui::new(items(&["Alpha", "Beta", "Gamma"]), settings(1, None));
    let mut term = Script::new(0, &[(10, b"\x1b[B")]);
    term.stop = Some((60_000, Stop::Reboot));
    assert_eq!(ui.run(&mut term, &mut no_disks()), Boot::Stop(Stop::Reboot));
    assert_eq!(term.now, 60_000);
    assert!(term.screen().ends_with("Rebooting (asked by the toolstack)\r\n"));
}

#[test]
fn a_toolstack_request_comes_before_the_countdown_ends() {
    let mut ui = Ui::new(items(&["Alpha", "Beta", "Gamma"]), settings(1, Some(3)));
    let mut term = Script::new(0, &[]);
    term.stop = Some((1_500, Stop::Poweroff));
    assert_eq!(ui.run(&mut term, &mut no_disks()), Boot::Stop(Stop::Poweroff));
    assert_eq!(term.now, 1_500, "not booted at 3 s");
    assert!(term.screen().ends_with("\rPowering off (asked by the toolstack)\x1b[K\r\n"));
}

#[test]
fn any_key_stops_the_countdown() {
    let mut ui = Ui::new(items(&["Alpha", "Beta", "Gamma"]), settings(1, Some(3)));
    // A key that does nothing else (Esc, then settled by its timeout), long
    // after which Enter boots the default by choice.
    let mut term = Script::new(0, &[(1_500, b"\x1b"), (100_000, b"\r")]);
    let boot = ui.run(&mut term, &mut no_disks());
    assert_eq!(boot, Boot::Entry { index: 1, entry: items(&["Beta"])[0].clone(), reason: Reason::Chosen });
    assert_eq!(term.now, 100_000);
    assert_eq!(
        term.screen(),
        format!(
            "{MENU_ABG}{HELP}Booting 'Beta' in 3 s; press any key to stop\
             \rBooting 'Beta' in 2 s; press any key to stop\
             \r\x1b[K\
             Booting 'Beta'\r\n"
        )
    );
    // A tick per second until the key, one wait for the lone ESC to settle,
    // then waiting for input only.
    assert_eq!(term.waits, [Some(1000), Some(1000), Some(ESC_TIMEOUT_MS), None]);
}

#[test]
fn arrows_and_enter_choose() {
    let mut ui = Ui::new(items(&["Alpha", "Beta", "Gamma"]), settings(1, None));
    // Down (CSI), Down again at the bottom (no change), Up twice (SS3 form).
    let mut term = Script::new(0, &[(10, b"\x1b[B"), (20, b"\x1b[B"), (30, b"\x1bOA\x1bOA"), (40, b"\r")]);
    let boot = ui.run(&mut term, &mut no_disks());
    assert_eq!(boot, Boot::Entry { index: 0, entry: items(&["Alpha"])[0].clone(), reason: Reason::Chosen });
    // No timeout: nothing on the status line; the UI waits for input, or
    // for the rest of an escape sequence.
    assert!(term.waits.iter().all(|w| w.is_none_or(|w| w == ESC_TIMEOUT_MS)), "{:?}", term.waits);
    let beta = "\x1b[3A\r  2. Beta (default)\x1b[K\x1b[3B\r";
    assert_eq!(
        term.screen(),
        format!(
            "{MENU_ABG}{HELP}\
             {beta}\x1b[2A\r\x1b[7m> 3. Gamma\x1b[0m\x1b[K\x1b[2B\r\
             \x1b[2A\r  3. Gamma\x1b[K\x1b[2B\r\x1b[3A\r\x1b[7m> 2. Beta (default)\x1b[0m\x1b[K\x1b[3B\r\
             {beta}\x1b[4A\r\x1b[7m> 1. Alpha\x1b[0m\x1b[K\x1b[4B\r\
             Booting 'Alpha'\r\n"
        )
    );
}

#[test]
fn digits_select() {
    let titles: Vec<String> = (1..=12).map(|i| format!("Entry {i}")).collect();
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    let mut ui = Ui::new(items(&titles), settings(0, Some(10)));
    let mut shell = no_disks();
    let mut out = Vec::new();
    assert!(ui.start(0, &mut out).is_none());
    let mut press = |ui: &mut Ui<Item>, keys: &[u8]| {
        for &k in keys {
            assert!(ui.on_byte(k, 100, &mut shell, &mut out).is_none());
        }
        ui.selected()
    };
    assert_eq!(press(&mut ui, b"3"), 2);
    assert!(!ui.counting_down());
    assert_eq!(press(&mut ui, b"12"), 11, "1 then 2 is entry 12");
    assert_eq!(press(&mut ui, b"5"), 4, "125 is no entry: 5 starts again");
    assert_eq!(press(&mut ui, b"0"), 4, "0 is no entry");
    assert_eq!(press(&mut ui, b"\x1b[B9"), 8);
    let boot = ui.on_byte(b'\n', 200, &mut shell, &mut out).unwrap();
    assert!(matches!(boot, Boot::Entry { index: 8, reason: Reason::Chosen, .. }));
}

#[test]
fn long_menus_scroll() {
    let titles: Vec<String> = (1..=20).map(|i| format!("E{i}")).collect();
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    let mut ui = Ui::new(items(&titles), settings(19, None));
    let mut out = Vec::new();
    ui.start(0, &mut out);
    let screen = String::from_utf8(out).unwrap();
    // The default is the last entry: the window shows 5-20.
    assert!(screen.starts_with("\r\n   5. E5\r\n"), "{screen:?}");
    assert!(screen.contains("\x1b[7m> 20. E20 (default)\x1b[0m\r\n  (entries 5-20 of 20; PageUp/PageDown scroll)\r\n"));
    assert!(!screen.contains("E4\r"));
    let mut out = Vec::new();
    let mut shell = no_disks();
    for b in b"\x1b[5~" {
        ui.on_byte(*b, 10, &mut shell, &mut out);
    }
    assert_eq!(ui.selected(), 3);
    let redraw = String::from_utf8(out).unwrap();
    assert!(redraw.contains("\x1b[18A\r\x1b[7m>  4. E4\x1b[0m\x1b[K\x1b[18B\r"), "{redraw:?}");
    assert!(redraw.ends_with("\x1b[1A\r  (entries 4-19 of 20; PageUp/PageDown scroll)\x1b[K\x1b[1B\r"));
}

#[test]
fn edit_then_boot_with_the_edited_command_line() {
    let mut ui = Ui::new(items(&["Alpha", "Beta", "Gamma"]), settings(1, Some(5)));
    // e, then Esc back to the menu; e again, Ctrl-E, type " single", Enter.
    let mut term = Script::new(0, &[(2_000, b"e"), (3_000, b"\x1b"), (4_000, b"e\x05 single\r")]);
    let boot = ui.run(&mut term, &mut no_disks());
    let mut want = items(&["Beta"])[0].clone();
    want.args = "console=hvc0 beta single".into();
    assert_eq!(boot, Boot::Entry { index: 1, entry: want, reason: Reason::Edited });
    assert_eq!(ui.entries()[1].args, "console=hvc0 beta", "the menu's entry is unchanged");
    let edit = "Command line of 'Beta' (Enter boots it, Esc goes back):\r\n> console=hvc0 beta";
    assert_eq!(
        term.screen(),
        format!(
            "{MENU_ABG}{HELP}Booting 'Beta' in 5 s; press any key to stop\
             \rBooting 'Beta' in 4 s; press any key to stop\
             \r\x1b[K{edit}\r\n\
             {MENU_ABG}{HELP}\
             {edit} single\r\n\
             Booting 'Beta'\r\n"
        )
    );
}

#[test]
fn timeout_zero_boots_at_once_and_none_waits_forever() {
    let mut ui = Ui::new(items(&["Alpha", "Beta"]), settings(0, Some(0)));
    let mut term = Script::new(777, &[]);
    let boot = ui.run(&mut term, &mut no_disks());
    assert!(matches!(boot, Boot::Entry { index: 0, reason: Reason::Timeout, .. }));
    assert_eq!(term.now, 777);
    assert!(term.waits.is_empty());
    assert_eq!(term.screen(), format!("\r\n\x1b[7m> 1. Alpha (default)\x1b[0m\r\n  2. Beta\r\n{HELP}Booting 'Alpha'\r\n"));

    let mut ui = Ui::new(items(&["Alpha"]), settings(0, None));
    let mut out = Vec::new();
    assert!(ui.start(0, &mut out).is_none());
    assert_eq!(ui.deadline(), None);
    assert!(!ui.counting_down());
}

#[test]
fn tiny_and_huge_timeouts() {
    // One second: shown once, booted at exactly 1000 ms.
    let mut ui = Ui::new(items(&["Alpha"]), settings(0, Some(1)));
    let mut term = Script::new(0, &[]);
    ui.run(&mut term, &mut no_disks());
    assert_eq!(term.now, 1_000);
    assert_eq!(term.waits, [Some(1000)]);

    // The largest timeout: the countdown ticks each second and boots at the end.
    let mut ui = Ui::new(items(&["Alpha"]), settings(0, Some(u32::MAX)));
    let mut shell = no_disks();
    let mut out = Vec::new();
    ui.start(0, &mut out);
    assert_eq!(ui.deadline(), Some(1_000));
    let end = u64::from(u32::MAX) * 1000;
    assert!(ui.on_time(end - 1, &mut shell, &mut out).is_none());
    assert_eq!(ui.deadline(), Some(end));
    assert!(String::from_utf8_lossy(&out).ends_with("\rBooting 'Alpha' in 1 s; press any key to stop\x1b[K"));
    assert!(ui.on_time(end, &mut shell, &mut out).is_some());

    // Near the end of the clock: no overflow, the deadline saturates.
    let mut ui = Ui::new(items(&["Alpha"]), settings(0, Some(u32::MAX)));
    ui.start(u64::MAX - 10, &mut Vec::new());
    assert!(ui.deadline().is_some());
    assert!(ui.on_time(u64::MAX, &mut shell, &mut Vec::new()).is_some());
}

#[test]
fn escape_sequences_split_across_reads() {
    let mut ui = Ui::new(items(&["Alpha", "Beta", "Gamma"]), settings(0, None));
    // ESC | [ | B arriving 40 ms apart is still Down; a lone ESC settles after
    // its timeout and does nothing in the menu.
    let mut term = Script::new(0, &[(0, b"\x1b"), (40, b"["), (80, b"B"), (1_000, b"\x1b"), (5_000, b"\r")]);
    let boot = ui.run(&mut term, &mut no_disks());
    assert!(matches!(boot, Boot::Entry { index: 1, .. }));
    // ESC waits for what follows; after "[" the sequence waits for its final byte.
    assert_eq!(term.waits, [None, Some(ESC_TIMEOUT_MS), None, None, Some(ESC_TIMEOUT_MS), None]);
}

#[test]
fn empty_menu_goes_straight_to_the_prompt() {
    let mut ui: Ui<Item> = Ui::new(Vec::new(), Settings { notes: vec!["/boot/grub/menu.lst:3: unknown directive 'foo'".into()], ..settings(0, Some(5)) });
    let mut out = Vec::new();
    assert!(ui.start(0, &mut out).is_none());
    assert_eq!(ui.deadline(), None, "no countdown without entries");
    let boot = drive(&mut ui, &mut no_disks(), &[(10, b"menu\r"), (20, b"\x1b"), (1_000, b"boot\r"), (2_000, b"bogus x\r")], &mut out);
    assert!(boot.is_none());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "/boot/grub/menu.lst:3: unknown directive 'foo'\r\n\
         pvboot: no boot entries; the prompt can find and boot a kernel ('help' lists the commands).\r\n\
         pvboot> menu\r\n\
         menu: there are no menu entries\r\n\
         pvboot> \r\n\
         There is no menu to go back to.\r\n\
         pvboot> boot\r\n\
         boot: no kernel chosen (use 'kernel PATH [ARGS]' first)\r\n\
         pvboot> bogus x\r\n\
         unknown command 'bogus' ('help' lists the commands)\r\n\
         pvboot> "
    );
}

#[test]
fn failed_boots_fall_back_then_wait() {
    let mut ui = Ui::new(
        items(&["Alpha", "Beta", "Gamma"]),
        Settings { fallback: vec![7, 0, 2], ..settings(0, Some(2)) },
    );
    let mut term = Script::new(0, &[]);
    let mut shell = no_disks();
    assert!(matches!(ui.run(&mut term, &mut shell), Boot::Entry { index: 0, reason: Reason::Timeout, .. }));
    term.screen();
    ui.boot_failed("/vmlinuz: no such file or directory", term.now, &mut term);
    // 7 is no entry and 0 just failed: Gamma boots at once, as a fallback.
    let boot = ui.run(&mut term, &mut shell);
    assert!(matches!(boot, Boot::Entry { index: 2, reason: Reason::Fallback, .. }));
    assert_eq!(term.now, 2_000);
    assert_eq!(
        term.screen(),
        format!(
            "\r\nError booting 'Alpha': /vmlinuz: no such file or directory\r\n\
             \r\n  1. Alpha\r\n  2. Beta\r\n\x1b[7m> 3. Gamma (default)\x1b[0m\r\n{HELP}Booting 'Gamma'\r\n"
        )
    );
    // The fallbacks are used up: the menu waits for a choice.
    ui.boot_failed("/netbsd: not an ELF file\nsecond line", term.now, &mut term);
    assert_eq!(ui.deadline(), None);
    assert!(term.screen().starts_with("\r\nError booting 'Gamma': /netbsd: not an ELF file?second line\r\n"));
    // A chosen entry that fails does not fall back either.
    term.input.extend([(3_000, b'1'), (3_000, b'\r')]);
    assert!(matches!(ui.run(&mut term, &mut shell), Boot::Entry { index: 0, reason: Reason::Chosen, .. }));
    ui.boot_failed("x", term.now, &mut term);
    assert_eq!(ui.deadline(), None);
    // A failure reported twice (or with no boot asked for) names no entry.
    term.screen();
    ui.boot_failed("no kernel found", term.now, &mut term);
    assert!(term.screen().starts_with("\r\nError booting: no kernel found\r\n\r\n"));
}

/// Disk 0: an MBR disk with a FAT16 partition; disk 1: a whole-disk FFSv2 (makefs).
fn prompt_disks(name: &str) -> DiskShell<Disk> {
    let dir = scratch(name);
    let tree = dir.join("fat");
    std::fs::create_dir_all(tree.join("boot/grub")).unwrap();
    std::fs::write(tree.join("hello.txt"), "hello, pvboot\nsecond line\x1b[31m red?").unwrap();
    std::fs::write(tree.join("boot/vmlinuz"), noise(54_321, 7)).unwrap();
    std::fs::write(tree.join("boot/initrd.img"), noise(1_000, 8)).unwrap();
    std::fs::write(tree.join("boot/grub/menu.lst"), "timeout 5\ntitle Linux\nkernel /boot/vmlinuz").unwrap();
    let fat = dir.join("fat.img");
    run("mkfs.fat", &["-C", "-F", "16", fat.to_str().unwrap(), "16384"]);
    run_in(Some(&tree), "mcopy", &["-s", "-i", fat.to_str().unwrap(), "hello.txt", "boot", "::/"]);
    let disk0 = dir.join("disk0.img");
    blank(&disk0, 24 << 20);
    let mut c = Command::new("sfdisk").args(["-q", disk0.to_str().unwrap()]).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), b"label: dos\nstart=2048, size=32768, type=6\n").unwrap();
    assert!(c.wait().unwrap().success());
    dd(&fat, &disk0, 2048 * 512);

    let ffs_tree = dir.join("ffs");
    std::fs::create_dir_all(&ffs_tree).unwrap();
    std::fs::write(ffs_tree.join("netbsd"), noise(100_000, 9)).unwrap();
    std::fs::write(ffs_tree.join("boot.cfg"), "menu=NetBSD:boot /netbsd\n").unwrap();
    std::os::unix::fs::symlink("netbsd", ffs_tree.join("netbsd.link")).unwrap();
    std::fs::create_dir(ffs_tree.join("many")).unwrap();
    for i in 0..pvboot::ui::prompt::LS_LINES + 4 {
        std::fs::write(ffs_tree.join(format!("many/f{i:05}")), b"").unwrap();
    }
    let disk1 = dir.join("disk1.img");
    run("makefs", &["-t", "ffs", "-o", "version=2,bsize=16384,fsize=2048", "-s", "8m", disk1.to_str().unwrap(), ffs_tree.to_str().unwrap()]);

    let open = |p: &Path| ShellDisk { disk: open_disk(p), sector_size: 512 };
    DiskShell::new(vec![open(&disk0), open(&disk1)], None)
}

/// Runs prompt lines (each sent as typed, then Enter) and returns the screen.
fn session(ui: &mut Ui<Item>, shell: &mut DiskShell<Disk>, keys: &[u8]) -> (Option<Boot<Item>>, String) {
    let mut out = Vec::new();
    let mut boot = None;
    for &b in keys {
        if let Some(x) = ui.on_byte(b, 0, shell, &mut out) {
            boot = Some(x);
        }
    }
    (boot, String::from_utf8(out).unwrap())
}

#[test]
fn prompt_lists_and_reads_real_fat_and_ffs_images() {
    let mut shell = prompt_disks("ui-prompt");
    let mut ui = Ui::new(items(&["Alpha"]), settings(0, Some(5)));
    let mut out = Vec::new();
    ui.start(0, &mut out);
    let (_, s) = session(&mut ui, &mut shell, b"c");
    assert_eq!(
        s,
        "\r\x1b[KCommand prompt: 'help' lists the commands, 'menu' or Esc returns to the menu.\r\npvboot> "
    );
    let (_, s) = session(&mut ui, &mut shell, b"ls\r");
    assert_eq!(
        s,
        "ls\r\n\
         (hd0) xbd0: 24 MiB, msdos partition table\r\n  \
         (hd0,msdos1) xbd0e: fat16, 16 MiB\r\n\
         (hd1) xbd1: 8 MiB, no partition table, ffs2\r\n\
         pvboot> "
    );
    let (_, s) = session(&mut ui, &mut shell, b"ls /\r");
    assert_eq!(s, "ls /\r\n       <dir>  boot/\r\n          35  hello.txt\r\npvboot> ");
    let (_, s) = session(&mut ui, &mut shell, b"ls (hd0,1)/boot\r");
    assert_eq!(s, "ls (hd0,1)/boot\r\n       <dir>  grub/\r\n        1000  initrd.img\r\n       54321  vmlinuz\r\npvboot> ");
    let (_, s) = session(&mut ui, &mut shell, b"ls (hd1)/\r");
    assert_eq!(s, "ls (hd1)/\r\n          25  boot.cfg\r\n       <dir>  many/\r\n      100000  netbsd\r\n      <link>  netbsd.link -> netbsd\r\npvboot> ");
    // A huge directory: bounded output.
    let (_, s) = session(&mut ui, &mut shell, b"ls (hd1)/many\r");
    assert_eq!(s.lines().count(), 1 + pvboot::ui::prompt::LS_LINES + 1 + 1);
    assert!(s.ends_with("           0  f00999\r\n(4 more lines not shown)\r\npvboot> "), "{}", &s[s.len() - 100..]);
    let (_, s) = session(&mut ui, &mut shell, b"help\r");
    assert!(s.starts_with("help\r\nls [(dev)][path]       list the disks") && s.lines().count() == 13, "{s}");
    let (_, s) = session(&mut ui, &mut shell, b"ls xbd1:/nothing\r");
    assert_eq!(s, "ls xbd1:/nothing\r\nls: /nothing: no such file or directory\r\npvboot> ");
    // cat: lines end in CR LF, the escape byte is shown as '.', and the file's
    // missing last newline is supplied.
    let (_, s) = session(&mut ui, &mut shell, b"cat /hello.txt\r");
    assert_eq!(s, "cat /hello.txt\r\nhello, pvboot\r\nsecond line.[31m red?\r\npvboot> ");
    let (_, s) = session(&mut ui, &mut shell, b"cat (hd1)/boot.cfg\r");
    assert_eq!(s, "cat (hd1)/boot.cfg\r\nmenu=NetBSD:boot /netbsd\r\npvboot> ");
    let (_, s) = session(&mut ui, &mut shell, b"cat /boot\r");
    assert_eq!(s, "cat /boot\r\ncat: /boot: is a directory\r\npvboot> ");
    let (_, s) = session(&mut ui, &mut shell, b"cat /boot/vmlinuz\r");
    // A binary file comes out as valid UTF-8 (session() checks) with no
    // control character but line ends and tabs: it cannot send escape codes.
    assert!(s.starts_with("cat /boot/vmlinuz\r\n") && s.ends_with("\r\npvboot> "));
    assert!(!s.chars().any(|c| c.is_control() && !matches!(c, '\r' | '\n' | '\t')), "{s:?}");
    // root, kernel, initrd, module, set, boot.
    let (_, s) = session(&mut ui, &mut shell, b"root xbd1\r");
    assert_eq!(s, "root xbd1\r\nroot is xbd1: ffs2\r\npvboot> ");
    let (_, s) = session(&mut ui, &mut shell, b"root (hd0,msdos2)\r");
    assert_eq!(s, "root (hd0,msdos2)\r\nroot: (hd0,msdos2): no partition '(hd0,msdos2)' on this disk\r\npvboot> ");
    // Every way of naming the FAT partition reaches it.
    for dev in ["xbd0e", "xvda1", "(hd0,msdos1)", "msdos1", "hd0"] {
        let (_, s) = session(&mut ui, &mut shell, format!("ls {dev}:/boot/grub\r").as_bytes());
        assert!(s.ends_with("\r\n          42  menu.lst\r\npvboot> "), "{dev}: {s:?}");
    }
    let (_, s) = session(&mut ui, &mut shell, b"ls (hd2)\rls (fd0)/\r");
    assert_eq!(s, "ls (hd2)\r\nls: no disk 2 (there are 2)\r\npvboot> ls (fd0)/\r\nls: unknown disk 'fd0'\r\npvboot> ");
    let (_, s) = session(&mut ui, &mut shell, b"root (hd0,0)\r");
    assert_eq!(s, "root (hd0,0)\r\nroot: (hd0,0): partitions count from 1 here, as in GRUB 2: menu.lst's (hd0,0) is (hd0,1)\r\npvboot> ");
    let (_, s) = session(&mut ui, &mut shell, b"root (hd0,1)\r");
    assert_eq!(s, "root (hd0,1)\r\nroot is (hd0,1): fat16 on (hd0,msdos1) (xbd0e)\r\npvboot> ");
    let (_, s) = session(&mut ui, &mut shell, b"kernel /boot/vmlinuz console=hvc0 root=/dev/xvda1\r");
    assert_eq!(s, "kernel /boot/vmlinuz console=hvc0 root=/dev/xvda1\r\nkernel /boot/vmlinuz: 54321 bytes\r\npvboot> ");
    let (_, s) = session(&mut ui, &mut shell, b"initrd /boot/initrd.img\rmodule (hd1)/netbsd -v\rmodule /missing\r");
    assert_eq!(
        s,
        "initrd /boot/initrd.img\r\ninitrd /boot/initrd.img: 1000 bytes\r\npvboot> \
         module (hd1)/netbsd -v\r\nmodule (hd1)/netbsd: 100000 bytes\r\npvboot> \
         module /missing\r\nmodule: /missing: no such file or directory\r\npvboot> "
    );
    let (_, s) = session(&mut ui, &mut shell, b"set\rset timeout=9\rset default=4\rset color=red\r");
    assert_eq!(
        s,
        "set\r\nroot=(hd0,1)\r\ndefault=1\r\ntimeout=5\r\npvboot> \
         set timeout=9\r\npvboot> \
         set default=4\r\nset: default must be an entry number from 1 to 1\r\npvboot> \
         set color=red\r\nset: unknown variable 'color' (root, default, timeout)\r\npvboot> "
    );
    let (boot, s) = session(&mut ui, &mut shell, b"boot\r");
    assert_eq!(s, "boot\r\nBooting /boot/vmlinuz\r\n");
    let want = Entry {
        title: "/boot/vmlinuz".into(),
        root: Some(RootSpec::Device("(hd0,1)".into())),
        kernel: Some(FileRef { device: None, path: "/boot/vmlinuz".into() }),
        args: "console=hvc0 root=/dev/xvda1".into(),
        modules: vec![
            ModuleRef { file: FileRef { device: None, path: "/boot/initrd.img".into() }, args: String::new(), decompress: true },
            ModuleRef { file: FileRef { device: Some("(hd1)".into()), path: "/netbsd".into() }, args: "-v".into(), decompress: true },
        ],
        ..Entry::default()
    };
    assert_eq!(boot, Some(Boot::Custom(want)));
    // The prompt's boot failed: back at the prompt; `menu` shows the menu and
    // the armed 9 s countdown.
    let mut out = Vec::new();
    ui.boot_failed("/boot/vmlinuz: not a kernel pvboot knows", 50_000, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\r\nError booting the prompt's kernel: /boot/vmlinuz: not a kernel pvboot knows\r\npvboot> "
    );
    let mut out = Vec::new();
    for &b in b"menu\r" {
        ui.on_byte(b, 60_000, &mut shell, &mut out);
    }
    assert!(String::from_utf8(out).unwrap().ends_with(&format!("{HELP}Booting 'Alpha' in 9 s; press any key to stop")));
    assert_eq!(ui.deadline(), Some(61_000));
}

#[test]
fn prompt_history_and_line_editing() {
    let mut shell = prompt_disks("ui-history");
    let mut ui = Ui::new(items(&["Alpha"]), settings(0, None));
    ui.start(0, &mut Vec::new());
    session(&mut ui, &mut shell, b"c");
    session(&mut ui, &mut shell, b"cat /hello.txt\r");
    session(&mut ui, &mut shell, b"ls /boot\r");
    // Up twice is "cat /hello.txt"; edit it to "cat /boot/grub/menu.lst".
    let (_, s) = session(&mut ui, &mut shell, b"\x1b[A\x1b[A\x15cat /boot/grub/menu.lst\r");
    assert_eq!(
        s,
        "ls /boot\x1b[8Dcat /hello.txt\x1b[14D\x1b[Kcat /boot/grub/menu.lst\r\n\
         timeout 5\r\ntitle Linux\r\nkernel /boot/vmlinuz\r\npvboot> "
    );
    // Ctrl-A, Ctrl-K on a recalled line, then a typo fixed in the middle.
    let (_, s) = session(&mut ui, &mut shell, b"\x1b[A\x01\x0bls /bot\x1b[D\x1b[Do\r");
    assert_eq!(
        s,
        "cat /boot/grub/menu.lst\x1b[23D\x1b[Kls /bot\x08\x08oot\x1b[2D\r\n\
         \x20      <dir>  grub/\r\n        1000  initrd.img\r\n       54321  vmlinuz\r\npvboot> "
    );
    // Tab completes commands and paths, or lists what matches.
    let (_, s) = session(&mut ui, &mut shell, b"ca\t/he\t\r");
    assert_eq!(s, "cat /hello.txt \r\nhello, pvboot\r\nsecond line.[31m red?\r\npvboot> ");
    let (_, s) = session(&mut ui, &mut shell, b"ls /bo\t\t");
    assert_eq!(s, "ls /boot/\r\ngrub/  initrd.img  vmlinuz  \r\n\rpvboot> ls /boot/\x1b[K");
    let (_, s) = session(&mut ui, &mut shell, b"\x15m\t");
    assert_eq!(s, "\x1b[9D\x1b[Km\r\nmenu  module  multiboot  \r\n\rpvboot> m\x1b[K");
    let (_, s) = session(&mut ui, &mut shell, b"u\t(hd1)/n\t\t");
    // u, then Tab adds "ltiboot "; (hd1)/n, then Tab adds the shared "etbsd"; Tab lists.
    assert_eq!(s, "ultiboot (hd1)/netbsd\r\nnetbsd  netbsd.link  \r\n\rpvboot> multiboot (hd1)/netbsd\x1b[K");
    let (_, s) = session(&mut ui, &mut shell, b"\x15ls (hd0,1)\t\x03");
    assert!(s.ends_with("ls (hd0,1)/^C\r\npvboot> "), "{s:?}");
    // Ctrl-C drops the line; Esc goes back to the menu.
    let (_, s) = session(&mut ui, &mut shell, b"cat /x\x03");
    assert_eq!(s, "cat /x^C\r\npvboot> ");
    let mut out = Vec::new();
    ui.on_byte(0x1b, 100, &mut shell, &mut out);
    ui.on_time(100 + ESC_TIMEOUT_MS, &mut shell, &mut out);
    assert_eq!(String::from_utf8(out).unwrap(), format!("\r\n\r\n\x1b[7m> 1. Alpha (default)\x1b[0m\r\n{HELP}"));
}

#[test]
fn a_real_menu_lst_drives_the_menu() {
    let text = b"# pv-grub menu\ndefault 1\ntimeout 2\nfallback 0\ncolor cyan/blue\n\n\
title Debian GNU/Linux, kernel 6.1.0-13-amd64\nroot (hd0,0)\nkernel /boot/vmlinuz-6.1.0-13-amd64 root=/dev/xvda1 ro quiet\ninitrd /boot/initrd.img-6.1.0-13-amd64\n\n\
title Debian GNU/Linux, kernel 6.1.0-13-amd64 (single-user mode)\nroot (hd0,0)\nkernel /boot/vmlinuz-6.1.0-13-amd64 root=/dev/xvda1 ro single\ninitrd /boot/initrd.img-6.1.0-13-amd64\n";
    let menu = Menu::parse("/boot/grub/menu.lst", text);
    let notes: Vec<String> = menu.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(notes.len() == 1 && notes[0].starts_with("/boot/grub/menu.lst:5: "), "{notes:?}");
    let mut ui = Ui::from_menu(menu.clone());
    // One key stops the countdown; e, Ctrl-U, new args, Enter.
    let mut term = Script::new(0, &[(1_200, b"e\x15root=/dev/xvda2 init=/bin/sh\r")]);
    let boot = ui.run(&mut term, &mut no_disks());
    let mut want = menu.entries[1].clone();
    want.args = "root=/dev/xvda2 init=/bin/sh".into();
    assert_eq!(boot, Boot::Entry { index: 1, entry: want, reason: Reason::Edited });
    let screen = term.screen();
    let mut expect = String::new();
    for n in &notes {
        expect.push_str(&format!("{n}\r\n"));
    }
    expect.push_str(
        "\r\n  1. Debian GNU/Linux, kernel 6.1.0-13-amd64\r\n\
         \x1b[7m> 2. Debian GNU/Linux, kernel 6.1.0-13-amd64 (single-user mode) (default)\x1b[0m\r\n",
    );
    assert!(screen.starts_with(&expect), "{screen:?}");
    assert!(screen.contains("Command line of 'Debian GNU/Linux, kernel 6.1.0-13-amd64 (single-user mode)' (Enter boots it, Esc goes back):\r\n> root=/dev/xvda1 ro single"));

    // Left alone, the default fails and the fallback (entry 1) boots at once.
    let mut ui = Ui::from_menu(menu.clone());
    let mut term = Script::new(0, &[]);
    assert!(matches!(ui.run(&mut term, &mut no_disks()), Boot::Entry { index: 1, reason: Reason::Timeout, .. }));
    assert_eq!(term.now, 2_000);
    ui.boot_failed("/boot/vmlinuz-6.1.0-13-amd64: no such file or directory", term.now, &mut term);
    let boot = ui.run(&mut term, &mut no_disks());
    assert_eq!(boot, Boot::Entry { index: 0, entry: menu.entries[0].clone(), reason: Reason::Fallback });
    assert_eq!(term.now, 2_000);
}

#[test]
fn input_before_start_draws_the_screen_first() {
    let mut shell = no_disks();
    let mut ui = Ui::new(items(&["Alpha", "Beta"]), settings(0, Some(5)));
    let mut out = Vec::new();
    assert!(matches!(ui.on_byte(b'\r', 10, &mut shell, &mut out), Some(Boot::Entry { index: 0, reason: Reason::Chosen, .. })));
    let screen = String::from_utf8(out).unwrap();
    assert!(screen.starts_with("\r\n\x1b[7m> 1. Alpha (default)"), "{screen:?}");
    assert!(screen.ends_with("Booting 'Alpha' in 5 s; press any key to stop\r\x1b[KBooting 'Alpha'\r\n"), "{screen:?}");
    // Without entries every key goes to the prompt.
    let mut ui: Ui<Item> = Ui::new(Vec::new(), settings(0, None));
    let mut out = Vec::new();
    for b in *b"e\r\x1b[A1\r" {
        assert!(ui.on_byte(b, 0, &mut shell, &mut out).is_none());
    }
    ui.on_time(1_000, &mut shell, &mut out);
    let screen = String::from_utf8(out).unwrap();
    assert!(screen.ends_with("pvboot> e\r\nunknown command 'e' ('help' lists the commands)\r\npvboot> e1\r\nunknown command 'e1' ('help' lists the commands)\r\npvboot> "), "{screen:?}");
}

#[test]
fn banner_and_notes_are_bounded() {
    let lines = |n: usize, what: &str| (0..n).map(|i| format!("{what} {i}\x1b[2J")).collect::<Vec<_>>();
    let settings = Settings { banner: lines(100, "banner"), notes: lines(100, "note"), ..settings(0, None) };
    let mut ui = Ui::new(items(&["Alpha"]), settings);
    let mut out = Vec::new();
    ui.start(0, &mut out);
    let screen = String::from_utf8(out).unwrap();
    assert!(screen.contains("note 63?[2J\r\n(36 more notes not shown)\r\nbanner 0?[2J\r\n"), "{screen:?}");
    assert!(screen.contains("banner 15?[2J\r\n\r\n\x1b[7m> 1. Alpha"), "{screen:?}");
    assert!(!screen.contains("banner 16") && !screen.contains("note 64"));
}
