//! The smp example: brings up every vCPU the domain has (xl.cfg `vcpus=`),
//! runs one job on each at the same time, and reports which vCPU ran what:
//! its APIC ID (from CPUID, so the hardware says which CPU it was), the
//! work it did and how long it took. A check at the end fails the run
//! (crash) if a job ran twice on one CPU or a vCPU did not take part.
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

/// xorshift64 rounds each job runs.
const ROUNDS: u64 = 50_000;

/// What one vCPU reports.
struct Report {
    apic_id: u32,
    checksum: u64,
    ns: u64,
}

fn smp_main(_boot: &BootInfo) {
    let started = time::now_ns();
    let n = smp::start_all();
    println!("smp: {n} vCPU(s) online (started in {} us)", (time::now_ns() - started) / 1000);
    let reports: Vec<Report> = smp::on_each_vcpu(|vcpu| {
        let t = time::now_ns();
        let checksum = job(vcpu as u64);
        Report {
            apic_id: cpu::cpuid(1, 0).ebx >> 24,
            checksum,
            ns: time::now_ns().saturating_sub(t),
        }
    });
    let mut bad = 0;
    for (vcpu, r) in reports.iter().enumerate() {
        let ok = r.checksum == job(vcpu as u64);
        bad += usize::from(!ok);
        println!(
            "smp: vcpu {vcpu} (APIC ID {}) ran job {vcpu}: {ROUNDS} rounds in {} us, checksum {:#018x}{}",
            r.apic_id,
            r.ns / 1000,
            r.checksum,
            if ok { "" } else { " WRONG" }
        );
    }
    let mut ids: Vec<u32> = reports.iter().map(|r| r.apic_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if reports.len() != n || ids.len() != n || bad > 0 {
        panic!("{} report(s) from {n} vCPU(s), {} distinct APIC IDs, {bad} wrong", reports.len(), ids.len());
    }
    println!("smp: done: {n} jobs on {n} vCPUs");
}

/// The job: `ROUNDS` xorshift64 steps from a seed made of the job number.
fn job(number: u64) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ number.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut sum = 0u64;
    for _ in 0..ROUNDS {
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
