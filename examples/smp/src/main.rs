//! The smp example: brings up every vCPU the domain has (xl.cfg `vcpus=`),
//! runs one job on each at the same time, and reports which vCPU ran what:
//! its APIC ID (from CPUID, so under PVH the hardware says which CPU it
//! was), the work it did, how long it took, and how long all jobs ran at
//! once. A check at the end fails the run (crash) if a job's result is
//! wrong, a vCPU did not take part or (PVH) two jobs ran on one CPU.
//!
//! The job is a fixed amount of integer work per vCPU (xorshift rounds
//! folded into a checksum), so its result is known in advance and a
//! vCPU that ran someone else's job, or none, shows.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

extern crate alloc;

use alloc::vec::Vec;

use guest_lib::arch::cpu;
use guest_lib::{println, smp, time, BootInfo};

#[cfg(target_os = "none")]
guest_lib::main!(smp_main);

/// xorshift64 rounds each job runs (`rounds=N` on the command line).
const DEFAULT_ROUNDS: u64 = 50_000;

/// What one vCPU reports.
struct Report {
    apic_id: u32,
    checksum: u64,
    /// When the job started and ended (pvclock ns).
    span: (u64, u64),
}

fn smp_main(boot: &BootInfo) {
    let rounds = boot.cmdline_value("rounds=").and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_ROUNDS);
    let started = time::now_ns();
    let n = smp::start_all();
    println!("smp: {n} vCPU(s) online (started in {} us)", (time::now_ns() - started) / 1000);
    let reports: Vec<Report> = smp::on_each_vcpu(|vcpu| {
        let t = time::now_ns();
        let checksum = job(vcpu as u64, rounds);
        Report {
            apic_id: cpu::cpuid(1, 0).ebx >> 24,
            checksum,
            span: (t, time::now_ns()),
        }
    });
    let mut bad = 0;
    for (vcpu, r) in reports.iter().enumerate() {
        let ok = r.checksum == job(vcpu as u64, rounds);
        bad += usize::from(!ok);
        println!(
            "smp: vcpu {vcpu} (APIC ID {}) ran job {vcpu}: {rounds} rounds in {} us, checksum {:#018x}{}",
            r.apic_id,
            (r.span.1 - r.span.0) / 1000,
            r.checksum,
            if ok { "" } else { " WRONG" }
        );
    }
    // Time during which every job was running at once: more than zero only
    // if as many CPUs ran them in parallel.
    let latest_start = reports.iter().map(|r| r.span.0).max().unwrap_or(0);
    let earliest_end = reports.iter().map(|r| r.span.1).min().unwrap_or(0);
    println!("smp: all {n} jobs ran at once for {} us", earliest_end.saturating_sub(latest_start) / 1000);
    // Under PVH the APIC IDs are the hardware's, one per vCPU; a classic PV
    // guest's CPUID shows Xen's made-up value instead.
    let mut ids: Vec<u32> = reports.iter().map(|r| r.apic_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let distinct_ok = guest_lib::arch::mode() == guest_lib::arch::Mode::Pv || ids.len() == n;
    if reports.len() != n || !distinct_ok || bad > 0 {
        panic!("{} report(s) from {n} vCPU(s), {} distinct APIC IDs, {bad} wrong", reports.len(), ids.len());
    }
    println!("smp: done: {n} jobs on {n} vCPUs");
}

/// The job: `rounds` xorshift64 steps from a seed made of the job number.
fn job(number: u64, rounds: u64) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ number.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut sum = 0u64;
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sum = sum.wrapping_add(x);
    }
    sum
}

/// On the host there is nothing to run: smp is a Xen guest.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("smp is a Xen PVH guest: build it with --target x86_64-unknown-none");
}
