//! A guest that makes hypercalls with bad arguments gets Xen's errno values
//! back, and the hypervisor survives it.

use std::time::Duration;

use xenolith_tests::*;

#[test]
fn bad_hypercall_arguments_get_xens_errno_values() {
    let dir = scratch("abi_check");
    let cfg = write_cfg(
        &dir,
        "abi.cfg",
        &format!("name = \"abi-check\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 32\n", guest("abi-check").display()),
    );
    let run = xenolith_run(&["run", "-c", cfg.to_str().unwrap()], Duration::from_secs(60));
    assert_eq!(run.code(), 0, "{run}");
    assert!(!run.stdout.contains("FAIL"), "{run}");
    let summary = run.stdout.lines().find(|l| l.starts_with("abi-check: ")).unwrap_or_else(|| panic!("no summary\n{run}"));
    assert!(summary.ends_with(" 0 failed"), "{run}");
    let passed: u32 = summary.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(passed >= 20, "{run}");
}
