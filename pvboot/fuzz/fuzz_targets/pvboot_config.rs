//! The three config parsers and `Menu::parse`, with the file name taken from
//! the input: its first line (up to 64 bytes) is the path, the rest the file.
//! Checks what the runtime relies on: a valid default, valid fallbacks, bounded
//! entries/modules/diagnostics, and devices the partition selector reads.
//! Runs under pvboot's 64 MiB heap (common/heap.rs).
#![no_main]

#[path = "common/heap.rs"]
mod heap;

use libfuzzer_sys::fuzz_target;
use pvboot::config::{Menu, RootSpec, Syntax, MAX_DIAGNOSTICS, MAX_ENTRIES, MAX_MODULES};
use pvboot::partition::Selector;

fn check(m: &Menu) {
    assert!(m.entries.len() <= MAX_ENTRIES);
    assert!(m.diagnostics.len() <= MAX_DIAGNOSTICS + 1);
    assert!(m.entries.is_empty() || m.default < m.entries.len(), "default {} of {}", m.default, m.entries.len());
    assert!(m.fallback.iter().all(|&f| f < m.entries.len()));
    for e in &m.entries {
        assert!(e.modules.len() <= MAX_MODULES);
        if let Some(RootSpec::Device(d)) = &e.root {
            assert!(Selector::parse(d).is_ok(), "root {d}");
        }
        for f in e.kernel.iter().chain(e.modules.iter().map(|m| &m.file)) {
            if let Some(d) = &f.device {
                assert!(Selector::parse(d).is_ok(), "device {d}");
            }
            assert!(f.path.starts_with('/'), "path {}", f.path);
        }
    }
    for i in m.boot_order() {
        assert!(m.entries[i].is_bootable());
    }
    for d in &m.diagnostics {
        let _ = d.to_string();
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().take(64).position(|&b| b == b'\n');
    let (name, text) = match split {
        Some(i) => (String::from_utf8_lossy(&data[..i]).into_owned(), &data[i + 1..]),
        None => (String::from("/boot/grub/menu.lst"), data),
    };
    check(&Menu::parse(&name, text));
    let text = String::from_utf8_lossy(text);
    for syntax in [Syntax::MenuLst, Syntax::BootCfg, Syntax::GrubCfg] {
        let m = Menu::parse_as(syntax, &name, &text);
        check(&m);
        let _ = m.find(&name);
    }
});
