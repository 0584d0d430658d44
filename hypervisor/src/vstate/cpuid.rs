//! The CPUID the guest sees: what KVM supports, minus what the backend
//! cannot execute, plus Xen's leaves at 0x40000000.
//!
//! A software KVM backend advertises instructions it cannot emulate
//! (popcnt, movbe, BMI, AVX, xsave, rdtscp, SSE beyond the baseline). Guests
//! that test CPUID at run time must stay on the safe path, so those bits are
//! hidden on every backend: the guests this VMM runs do not need them.

use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};
use xen_abi::cpuid as xc;

/// What the Xen leaves report.
pub struct XenLeaves {
    /// Xen version reported in leaf 1 (major, minor).
    pub version: (u16, u16),
    /// TSC frequency in kHz, for the time leaf.
    pub tsc_khz: u32,
    /// The domain id, reported in the HVM leaf.
    pub domid: u16,
    /// The vCPU id, reported in the HVM leaf.
    pub vcpu_id: u32,
}

// Leaf 1 ECX bits that are hidden.
const ECX_HIDDEN: u32 = (1 << 0) // sse3
    | (1 << 1)  // pclmulqdq
    | (1 << 3)  // monitor/mwait
    | (1 << 5)  // vmx
    | (1 << 9)  // ssse3
    | (1 << 12) // fma
    | (1 << 19) // sse4.1
    | (1 << 20) // sse4.2
    | (1 << 21) // x2apic: there is no in-kernel LAPIC
    | (1 << 22) // movbe
    | (1 << 23) // popcnt
    | (1 << 24) // tsc-deadline
    | (1 << 25) // aes
    | (1 << 26) // xsave
    | (1 << 27) // osxsave
    | (1 << 28) // avx
    | (1 << 29); // f16c
// Leaf 1 EDX: no APIC is emulated.
const EDX_HIDDEN: u32 = 1 << 9;
// Leaf 7 EBX bits kept: fsgsbase, smep, erms, smap.
const LEAF7_EBX_KEPT: u32 = (1 << 0) | (1 << 7) | (1 << 9) | (1 << 20);
// Leaf 0x80000001 ECX hidden: abm/lzcnt, sse4a, misalignsse, xop, fma4, tbm, svm.
const EXT_ECX_HIDDEN: u32 = (1 << 2) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 11) | (1 << 16) | (1 << 21);
// Leaf 0x80000001 EDX hidden: rdtscp.
const EXT_EDX_HIDDEN: u32 = 1 << 27;

/// Filters KVM's supported CPUID and installs the Xen leaves.
pub fn build(supported: &CpuId, xen: &XenLeaves) -> CpuId {
    let mut entries: Vec<kvm_cpuid_entry2> = supported
        .as_slice()
        .iter()
        .filter(|e| !(0x4000_0000..0x5000_0000).contains(&e.function))
        .filter(|e| e.function != 0xd) // xsave state enumeration
        .copied()
        .collect();
    for e in &mut entries {
        match e.function {
            1 => {
                // The initial APIC ID, as Xen numbers HVM vCPUs (2 x id).
                e.ebx = (e.ebx & 0x00ff_ffff) | ((xen.vcpu_id * 2) << 24);
                e.ecx &= !ECX_HIDDEN;
                e.ecx |= 1 << 31; // running under a hypervisor
                e.edx &= !EDX_HIDDEN;
            }
            7 => {
                if e.index == 0 {
                    e.eax = 0;
                    e.ebx &= LEAF7_EBX_KEPT;
                }
                e.ecx = 0;
                e.edx = 0;
            }
            0x8000_0001 => {
                e.ecx &= !EXT_ECX_HIDDEN;
                e.edx &= !EXT_EDX_HIDDEN;
            }
            _ => {}
        }
    }
    entries.extend(xen_leaves(xen));
    CpuId::from_entries(&entries).expect("CPUID table fits KVM_MAX_CPUID_ENTRIES")
}

fn leaf(function: u32, index: u32, regs: [u32; 4]) -> kvm_cpuid_entry2 {
    kvm_cpuid_entry2 {
        function,
        index,
        flags: if function == xc::FIRST_LEAF + 3 { KVM_CPUID_FLAG_SIGNIFCANT_INDEX } else { 0 },
        eax: regs[0],
        ebx: regs[1],
        ecx: regs[2],
        edx: regs[3],
        ..Default::default()
    }
}

fn xen_leaves(x: &XenLeaves) -> Vec<kvm_cpuid_entry2> {
    let base = xc::FIRST_LEAF;
    vec![
        leaf(base, 0, [base + xc::MAX_NUM_LEAVES, xc::SIGNATURE_EBX, xc::SIGNATURE_ECX, xc::SIGNATURE_EDX]),
        leaf(base + 1, 0, [(u32::from(x.version.0) << 16) | u32::from(x.version.1), 0, 0, 0]),
        // One hypercall page, installed through the hypercall MSR.
        leaf(base + 2, 0, [1, xc::HYPERCALL_MSR, 0, 0]),
        // Time: reliable TSC, never emulated, its frequency.
        leaf(base + 3, 0, [xc::HOST_TSC_RELIABLE, xc::TSC_MODE_NEVER_EMULATE, x.tsc_khz, 0]),
        leaf(base + 3, 1, [0, 0, 0, 0]),
        leaf(base + 3, 2, [0, 0, x.tsc_khz, 0]),
        leaf(base + 4, 0, [xc::HVM_VCPU_ID_PRESENT | xc::HVM_DOMID_PRESENT, x.vcpu_id, x.domid.into(), 0]),
        leaf(base + 5, 0, [0, 0, 0, 0]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_unsafe_features_and_installs_xen() {
        let supported = CpuId::from_entries(&[
            leaf(1, 0, [0, 0, u32::MAX, u32::MAX]),
            leaf(0x4000_0000, 0, [0x4000_0001, 0x4b4d564b, 0x564b4d56, 0x4d]),
        ])
        .unwrap();
        let x = XenLeaves { version: (4, 17), tsc_khz: 2_600_000, domid: 1, vcpu_id: 0 };
        let out = build(&supported, &x);
        let e = |f: u32| *out.as_slice().iter().find(|e| e.function == f).unwrap();
        assert_eq!(e(1).ecx & (1 << 23), 0, "popcnt hidden");
        assert_eq!(e(1).ecx & (1 << 31), 1 << 31, "hypervisor bit set");
        assert_eq!(e(1).ebx >> 24, 0, "vCPU 0's APIC ID");
        let v3 = build(&supported, &XenLeaves { vcpu_id: 3, ..x });
        let v3_leaf1 = v3.as_slice().iter().find(|e| e.function == 1).unwrap();
        assert_eq!(v3_leaf1.ebx >> 24, 6, "APIC IDs are 2 x the vCPU id, as Xen's");
        let sig = e(0x4000_0000);
        assert_eq!([sig.ebx, sig.ecx, sig.edx], [xc::SIGNATURE_EBX, xc::SIGNATURE_ECX, xc::SIGNATURE_EDX]);
        assert_eq!(e(0x4000_0001).eax, 0x0004_0011);
        assert_eq!(e(0x4000_0002).ebx, 0x4000_0000);
        assert_eq!(out.as_slice().iter().filter(|e| e.function == 0x4000_0000).count(), 1, "KVM leaf replaced");
    }
}
