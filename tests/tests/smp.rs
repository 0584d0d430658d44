//! The smp example under the Xenolith hypervisor: secondary vCPUs brought
//! up by the guest (VCPUOP_initialise with a 64-bit context, VCPUOP_up),
//! each a KVM vCPU on its own thread, running at the same time. test-xen
//! runs the same guest on real Xen.

use std::time::Duration;

use xenolith_tests::*;

fn smp_run(test: &str, vcpu_lines: &str) -> Run {
    let dir = scratch(test);
    let text = format!(
        "# written by the smp test\nname = \"smp-test\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 64\n{vcpu_lines}\n",
        guest("smp").display()
    );
    let cfg = write_cfg(&dir, "smp.cfg", &text);
    xenolith_run(&["run", "-c", cfg.to_str().unwrap()], Duration::from_secs(120))
}

#[test]
fn two_vcpus_run_their_jobs_at_once() {
    let run = smp_run("smp_two_vcpus", "vcpus = 2");
    assert_eq!(run.code(), 0, "{run}");
    let out = &run.stdout;
    assert!(out.contains("smp: 2 vCPU(s) online"), "{run}");
    // Xen's APIC IDs: 2 x the vCPU id.
    assert!(out.contains("smp: vcpu 0 (APIC ID 0) ran job 0") && out.contains("smp: vcpu 1 (APIC ID 2) ran job 1"), "{run}");
    assert!(!out.contains("WRONG"), "{run}");
    let at_once: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("smp: all 2 jobs ran at once for ")?.strip_suffix(" us")?.parse().ok())
        .unwrap_or_else(|| panic!("no overlap line\n{run}"));
    assert!(at_once > 0, "the two vCPUs never ran together\n{run}");
    assert!(out.contains("smp: done: 2 jobs on 2 vCPUs"), "{run}");
}

/// maxvcpus above vcpus: the extra vCPUs exist, down until the guest
/// brings them up (as on Xen; xenstore says "offline" for them).
#[test]
fn vcpus_up_to_maxvcpus_can_be_brought_up() {
    let run = smp_run("smp_maxvcpus", "vcpus = 1\nmaxvcpus = 3");
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("smp: 3 vCPU(s) online"), "{run}");
    assert!(run.stdout.contains("smp: vcpu 2 (APIC ID 4) ran job 2"), "{run}");
    assert!(run.stdout.contains("smp: done: 3 jobs on 3 vCPUs"), "{run}");
}
