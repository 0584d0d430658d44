//! The domain command line: overrides parsed, applied to a real menu, and
//! the `kernel=` menu built.
//! Runs under pvboot's 64 MiB heap (common/heap.rs).
#![no_main]

#[path = "common/heap.rs"]
mod heap;

use libfuzzer_sys::fuzz_target;
use pvboot::config::{cmdline, Menu, RootSpec};
use pvboot::partition::Selector;

const MENU: &str = "default 1\ntimeout 5\nfallback 0\ntitle a\nroot (hd0,0)\nkernel /a ro\ntitle b\nkernel /b\ninitrd /i\n";

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let o = cmdline::parse(&line);
    if let Some(RootSpec::Device(d)) = &o.root {
        assert!(Selector::parse(d).is_ok(), "root {d}");
    }
    for f in o.config.iter().chain(o.kernel.iter()) {
        if let Some(d) = &f.device {
            assert!(Selector::parse(d).is_ok(), "device {d}");
        }
    }
    let mut m = Menu::parse("/boot/grub/menu.lst", MENU.as_bytes());
    o.apply(&mut m);
    assert!(m.default < m.entries.len());
    if let Some(k) = o.kernel_menu() {
        assert_eq!(k.entries.len(), 1);
        assert!(k.entries[0].is_bootable());
    }
});
