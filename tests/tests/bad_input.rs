//! Bad configurations and bad kernels get one clear line and exit 1, before
//! any guest runs.

use std::time::Duration;

use xenolith_tests::*;

const LIMIT: Duration = Duration::from_secs(30);

fn create(cfg: &std::path::Path) -> Run {
    xenolith_run(&["create", "-c", cfg.to_str().unwrap()], LIMIT)
}

fn assert_one_line_error(run: &Run, needles: &[&str]) {
    assert_eq!(run.code(), 1, "{run}");
    let err = run.stderr.trim_end();
    assert_eq!(err.lines().filter(|l| l.starts_with("xenolith:")).count(), 1, "one error line\n{run}");
    for n in needles {
        assert!(err.to_lowercase().contains(&n.to_lowercase()), "error should mention {n:?}\n{run}");
    }
    assert!(!err.contains("panicked"), "{run}");
}

#[test]
fn missing_config_file() {
    let dir = scratch("bad_missing_cfg");
    let run = create(&dir.join("nope.cfg"));
    assert_one_line_error(&run, &["nope.cfg"]);
}

#[test]
fn syntax_error_names_file_and_line() {
    let dir = scratch("bad_syntax");
    let cfg = write_cfg(&dir, "bad.cfg", "name = \"x\"\ntype = \"pvh\"\nkernel = \"unterminated\n");
    let run = create(&cfg);
    assert_one_line_error(&run, &["bad.cfg:3"]);
}

#[test]
fn wrong_value_names_file_line_and_key() {
    let dir = scratch("bad_value");
    let cfg = write_cfg(&dir, "bad.cfg", &format!("name = \"x\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = \"lots\"\n", guest("hello").display()));
    let run = create(&cfg);
    assert_one_line_error(&run, &["bad.cfg:4", "memory"]);
}

#[test]
fn pv_and_hvm_types_are_refused() {
    let dir = scratch("bad_type");
    for ty in ["pv", "hvm"] {
        let cfg = write_cfg(&dir, "bad.cfg", &format!("name = \"x\"\ntype = \"{ty}\"\nkernel = \"{}\"\n", guest("hello").display()));
        let run = create(&cfg);
        assert_one_line_error(&run, &["type", ty]);
    }
}

fn kernel_cfg(dir: &std::path::Path, kernel: &std::path::Path, memory: u32) -> std::path::PathBuf {
    write_cfg(dir, "k.cfg", &format!("name = \"k\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = {memory}\n", kernel.display()))
}

#[test]
fn a_file_that_is_not_elf_is_refused() {
    let dir = scratch("bad_not_elf");
    let k = dir.join("kernel");
    std::fs::write(&k, b"#!/bin/sh\necho not a kernel\n").unwrap();
    let run = create(&kernel_cfg(&dir, &k, 64));
    assert_one_line_error(&run, &["ELF"]);
}

#[test]
fn an_elf_without_a_pvh_note_is_refused() {
    let dir = scratch("bad_no_note");
    // A host executable is a fine ELF64 with no Xen notes.
    let run = create(&kernel_cfg(&dir, &xenolith(), 64));
    assert_one_line_error(&run, &["PHYS32_ENTRY"]);
}

#[test]
fn a_truncated_kernel_is_refused() {
    let dir = scratch("bad_truncated");
    let bytes = std::fs::read(guest("hello")).unwrap();
    let k = dir.join("kernel");
    std::fs::write(&k, &bytes[..bytes.len().min(200)]).unwrap();
    let run = create(&kernel_cfg(&dir, &k, 64));
    assert_eq!(run.code(), 1, "{run}");
    assert!(!run.stderr.contains("panicked"), "{run}");
}

#[test]
fn a_kernel_that_does_not_fit_in_ram_is_refused() {
    let dir = scratch("bad_too_small");
    let run = create(&kernel_cfg(&dir, &guest("hello"), 1));
    assert_one_line_error(&run, &["RAM"]);
}
