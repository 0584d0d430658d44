//! The console UI on random key bytes and time steps, with the prompt's
//! shell over a disk made of the rest of the input.
//!
//! Input: 6 header bytes (entries, default, timeout, fallback, script length
//! as u16 LE), the script, then the disk as a sparse image
//! (common/sparse.rs; the seeds put a FAT image there). In the script,
//! 0xFE k advances the clock by k * 53 ms; every other byte is a key byte.
//! Each boot the UI asks for fails (as a missing kernel would), so the UI
//! must come back every time. Runs under pvboot's 64 MiB heap
//! (common/heap.rs).
//!
//! Checked: no panic, the output of each event is bounded, the selection
//! stays on an entry, and a deadline that has passed is always cleared by
//! `on_time` within a few calls.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use pvboot::disk::Cache;
use pvboot::ui::disks::{DiskShell, ShellDisk};
use pvboot::ui::prompt::CAT_LIMIT;
use pvboot::ui::{MenuEntry, Settings, Ui};

#[derive(Clone)]
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

/// Most output one byte or one tick may produce: a `cat` at its limit (each
/// byte at most two on screen) plus a screenful.
const MAX_EVENT_OUTPUT: usize = 2 * CAT_LIMIT as usize + (64 << 10);

fn check(ui: &Ui<Item>, out: &mut Vec<u8>) {
    assert!(out.len() <= MAX_EVENT_OUTPUT, "one event wrote {} bytes", out.len());
    assert!(ui.entries().is_empty() || ui.selected() < ui.entries().len());
    out.clear();
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let (head, rest) = data.split_at(6);
    let script_len = usize::from(u16::from_le_bytes([head[4], head[5]])).min(rest.len());
    let (script, disk) = rest.split_at(script_len);

    let n = usize::from(head[0] % 24);
    let entries: Vec<Item> = (0..n)
        .map(|i| Item {
            // Some titles are long or carry escape codes.
            title: match (i + usize::from(head[0])) % 4 {
                0 => format!("Entry {i}"),
                1 => "x".repeat(300),
                2 => format!("evil\x1b[2J\r\n{i}"),
                _ => format!("Grüße ☃ {i}"),
            },
            args: format!("console=hvc0 root=/dev/xvda{i}"),
        })
        .collect();
    let settings = Settings {
        default: usize::from(head[1]) % 26,
        timeout: (head[2] != 0xff).then(|| u32::from(head[2] % 5) * if head[2] & 0x80 != 0 { 1_000_000 } else { 1 }),
        fallback: vec![usize::from(head[3]) % 26, 0, usize::from(head[3] >> 4)],
        banner: vec!["pvboot \x07banner".into()],
        notes: vec!["menu.lst:1: note".into()],
    };
    let Ok(cache) = Cache::new(common::SparseDisk::new(disk)) else { return };
    let mut shell = DiskShell::new(vec![ShellDisk { disk: Rc::new(cache), sector_size: 512 }], None);

    let mut ui = Ui::new(entries, settings);
    let mut out = Vec::new();
    let mut now = 1_000u64;
    let mut failures = 0u32;
    // Some runs feed input before `start`: the first byte or tick starts it.
    let mut boot = if head[0] & 0x80 == 0 { ui.start(now, &mut out) } else { None };
    check(&ui, &mut out);
    let mut i = 0;
    loop {
        if boot.take().is_some() {
            failures += 1;
            ui.boot_failed(&format!("/vmlinuz: not found \x1b[31m({failures})"), now, &mut out);
            check(&ui, &mut out);
        }
        // Settle every deadline that has passed, as `Ui::run` does.
        let mut settles = 0;
        while ui.deadline().is_some_and(|d| d <= now) {
            settles += 1;
            assert!(settles < 64, "a passed deadline is never cleared");
            if let Some(b) = ui.on_time(now, &mut shell, &mut out) {
                failures += 1;
                ui.boot_failed(&format!("boot {failures} failed"), now, &mut out);
                drop(b);
            }
            check(&ui, &mut out);
        }
        let Some(&b) = script.get(i) else { break };
        i += 1;
        if b == 0xfe {
            let k = script.get(i).copied().unwrap_or(0);
            i += 1;
            now += u64::from(k) * 53;
            continue;
        }
        boot = ui.on_byte(b, now, &mut shell, &mut out);
        check(&ui, &mut out);
    }
});
