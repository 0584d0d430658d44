//! The smp example under the Xenolith hypervisor. With one vCPU it finds
//! no second one (VCPUOP_is_up answers ENOENT) and runs its job on vCPU 0;
//! test-xen runs it with vcpus=2 on real Xen.

use std::time::Duration;

use xenolith_tests::*;

#[test]
fn smp_with_one_vcpu_runs_its_job_on_vcpu_0() {
    let dir = scratch("smp_one_vcpu");
    let text = format!(
        "# written by the smp test\nname = \"smp-test\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\nvcpus = 1\n",
        guest("smp").display()
    );
    let cfg = write_cfg(&dir, "smp.cfg", &text);
    let run = xenolith_run(&["create", "-c", cfg.to_str().unwrap()], Duration::from_secs(120));
    assert_eq!(run.code(), 0, "{run}");
    let out = &run.stdout;
    assert!(out.contains("smp: 1 vCPU(s) online"), "{run}");
    assert!(out.contains("smp: vcpu 0 (APIC ID "), "{run}");
    assert!(!out.contains("WRONG") && !out.contains("vcpu 1"), "{run}");
    assert!(out.contains("smp: done: 1 jobs on 1 vCPUs"), "{run}");
}
