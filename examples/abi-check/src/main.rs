//! abi-check: makes hypercalls with bad arguments (invalid ports, unmapped
//! buffers, unknown operations, out-of-range indices) and checks that each
//! returns the errno Xen 4.17 returns. Prints `ok NAME` or `FAIL NAME: ...`
//! per check and `abi-check: N passed, M failed`, then powers off (or
//! crashes when a check failed). Run on Xenolith and on real Xen, it shows
//! that both behave alike and that a hostile guest only hurts itself.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![cfg_attr(not(target_os = "none"), allow(dead_code, unused_imports))]

use guest_lib::hypercall::{self, hypercall2, hypercall3};
use guest_lib::xen_abi::{errno::*, event_channel as ev, hvm, hypercall as nr, memory, sched, vcpu, version};
use guest_lib::{println, BootInfo};

#[cfg(target_os = "none")]
guest_lib::main!(abi_check);

/// An address no guest maps: hypercall buffers there must give -EFAULT.
const UNMAPPED: u64 = 0x0000_7fff_dead_0000;

struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn expect(&mut self, name: &str, got: i64, want: i64) {
        if got == want {
            self.passed += 1;
            println!("ok {name}");
        } else {
            self.failed += 1;
            println!("FAIL {name}: got {got}, want {want}");
        }
    }
}

fn raw2(op: u32, a: u64, b: u64) -> i64 {
    // SAFETY: the arguments are either plain integers or deliberately
    // invalid guest addresses that the hypervisor must refuse.
    unsafe { hypercall2(op, a, b) }
}

fn raw3(op: u32, a: u64, b: u64, c: u64) -> i64 {
    // SAFETY: as for raw2.
    unsafe { hypercall3(op, a, b, c) }
}

fn evtchn_op<T>(cmd: u32, arg: &mut T) -> i64 {
    raw2(nr::EVENT_CHANNEL_OP, cmd.into(), arg as *mut T as u64)
}

fn abi_check(_boot: &BootInfo) {
    let mut t = Tally { passed: 0, failed: 0 };
    let (major, minor) = hypercall::version().unwrap_or((0, 0));
    println!("abi-check on Xen {major}.{minor}");

    t.expect("unknown hypercall is ENOSYS", raw2(60, 0, 0), -ENOSYS);
    t.expect("unknown xen_version op is ENOSYS", raw2(nr::XEN_VERSION, 99, 0), -ENOSYS);
    t.expect("xen_version to an unmapped buffer is EFAULT", raw2(nr::XEN_VERSION, version::XENVER_EXTRAVERSION.into(), UNMAPPED), -EFAULT);
    t.expect("unknown sched_op is ENOSYS", raw2(nr::SCHED_OP, 99, 0), -ENOSYS);
    t.expect("sched_op shutdown with an unmapped argument is EFAULT", raw2(nr::SCHED_OP, sched::SCHEDOP_SHUTDOWN.into(), UNMAPPED), -EFAULT);

    let mut port = 0u32;
    t.expect("send on port 0 is EINVAL", evtchn_op(ev::EVTCHNOP_SEND, &mut port), -EINVAL);
    let mut port = 4000u32;
    t.expect("send on a port never allocated is EINVAL", evtchn_op(ev::EVTCHNOP_SEND, &mut port), -EINVAL);
    let mut port = 1_000_000u32;
    t.expect("close of an out-of-range port is EINVAL", evtchn_op(ev::EVTCHNOP_CLOSE, &mut port), -EINVAL);
    let mut virq = ev::BindVirq { virq: ev::NR_VIRQS + 7, vcpu: 0, port: 0 };
    t.expect("bind_virq of an unknown VIRQ is EINVAL", evtchn_op(ev::EVTCHNOP_BIND_VIRQ, &mut virq), -EINVAL);
    let mut virq = ev::BindVirq { virq: ev::VIRQ_TIMER, vcpu: 0, port: 0 };
    t.expect("binding VIRQ_TIMER twice is EEXIST", evtchn_op(ev::EVTCHNOP_BIND_VIRQ, &mut virq), -EEXIST);
    let mut virq = ev::BindVirq { virq: ev::VIRQ_DEBUG, vcpu: 5, port: 0 };
    t.expect("bind_virq on a vCPU that does not exist is ENOENT", evtchn_op(ev::EVTCHNOP_BIND_VIRQ, &mut virq), -ENOENT);
    t.expect("event_channel_op with an unmapped argument is EFAULT", raw2(nr::EVENT_CHANNEL_OP, ev::EVTCHNOP_SEND.into(), UNMAPPED), -EFAULT);
    t.expect("unknown event_channel_op is ENOSYS", raw2(nr::EVENT_CHANNEL_OP, 99, 0), -ENOSYS);

    // Allocate and close a port: status follows it.
    let mut unbound = ev::AllocUnbound { dom: xen_abi_domid_self(), remote_dom: 0, port: 0 };
    t.expect("alloc_unbound for domain 0 succeeds", evtchn_op(ev::EVTCHNOP_ALLOC_UNBOUND, &mut unbound), 0);
    let mut st = ev::Status { dom: xen_abi_domid_self(), port: unbound.port, ..Default::default() };
    evtchn_op(ev::EVTCHNOP_STATUS, &mut st);
    t.expect("status of an unbound port is EVTCHNSTAT_unbound", st.status.into(), ev::EVTCHNSTAT_UNBOUND.into());
    let mut close = unbound.port;
    t.expect("close of the unbound port succeeds", evtchn_op(ev::EVTCHNOP_CLOSE, &mut close), 0);
    let mut close = unbound.port;
    t.expect("closing it again is EINVAL", evtchn_op(ev::EVTCHNOP_CLOSE, &mut close), -EINVAL);

    // bind_interdomain: to a domain that does not exist, to a domain-0 port
    // not offered to us, and (loopback) to our own unbound port.
    let mut bind = ev::BindInterdomain { remote_dom: 0x7000, remote_port: 1, ..Default::default() };
    t.expect("bind_interdomain to a domain that does not exist is ESRCH", evtchn_op(ev::EVTCHNOP_BIND_INTERDOMAIN, &mut bind), -ESRCH);
    let mut bind = ev::BindInterdomain { remote_dom: 0, remote_port: 1, ..Default::default() };
    t.expect("bind_interdomain to a domain-0 port not unbound for us is EINVAL", evtchn_op(ev::EVTCHNOP_BIND_INTERDOMAIN, &mut bind), -EINVAL);
    let mut own = ev::AllocUnbound { dom: xen_abi_domid_self(), remote_dom: xen_abi_domid_self(), port: 0 };
    evtchn_op(ev::EVTCHNOP_ALLOC_UNBOUND, &mut own);
    let mut bind = ev::BindInterdomain { remote_dom: xen_abi_domid_self(), remote_port: own.port, ..Default::default() };
    t.expect("bind_interdomain to our own unbound port succeeds", evtchn_op(ev::EVTCHNOP_BIND_INTERDOMAIN, &mut bind), 0);
    let mut st = ev::Status { dom: xen_abi_domid_self(), port: own.port, ..Default::default() };
    evtchn_op(ev::EVTCHNOP_STATUS, &mut st);
    t.expect("both ends are then interdomain", st.status.into(), ev::EVTCHNSTAT_INTERDOMAIN.into());
    t.expect("and the status names the other end", st.u1.into(), bind.local_port.into());
    let mut close = bind.local_port;
    evtchn_op(ev::EVTCHNOP_CLOSE, &mut close);
    let mut st = ev::Status { dom: xen_abi_domid_self(), port: own.port, ..Default::default() };
    evtchn_op(ev::EVTCHNOP_STATUS, &mut st);
    t.expect("closing one end leaves the other unbound", st.status.into(), ev::EVTCHNSTAT_UNBOUND.into());
    let mut close = own.port;
    evtchn_op(ev::EVTCHNOP_CLOSE, &mut close);

    // Xen answers for ports in buckets it set up (64 ports each): port 0
    // (reserved) reads closed, a port far past the ones in use is invalid.
    let mut st = ev::Status { dom: xen_abi_domid_self(), port: 0, ..Default::default() };
    let rc = evtchn_op(ev::EVTCHNOP_STATUS, &mut st);
    t.expect("status of port 0 (reserved) is closed", if rc == 0 { st.status.into() } else { rc }, ev::EVTCHNSTAT_CLOSED.into());
    let mut st = ev::Status { dom: xen_abi_domid_self(), port: 200, ..Default::default() };
    t.expect("status of a port past the allocated buckets is EINVAL", evtchn_op(ev::EVTCHNOP_STATUS, &mut st), -EINVAL);

    // EVTCHNOP_reset of another domain: Xen's XSM refuses domain 0, and a
    // domain that does not exist is not found. (Resetting our own channels
    // would close the console's and xenstore's ports: not done here.)
    let mut reset_dom: u16 = 0;
    t.expect("EVTCHNOP_reset of domain 0 is EPERM", evtchn_op(ev::EVTCHNOP_RESET, &mut reset_dom), -EPERM);
    let mut reset_dom: u16 = 0x7000;
    t.expect("EVTCHNOP_reset of a domain that does not exist is ESRCH", evtchn_op(ev::EVTCHNOP_RESET, &mut reset_dom), -ESRCH);

    let mut param = hvm::HvmParam { domid: xen_abi_domid_self(), index: 1000, ..Default::default() };
    t.expect("get_param of an out-of-range index is EINVAL", raw2(nr::HVM_OP, hvm::HVMOP_GET_PARAM.into(), &mut param as *mut _ as u64), -EINVAL);
    t.expect("hvm_op with an unmapped argument is EFAULT", raw2(nr::HVM_OP, hvm::HVMOP_GET_PARAM.into(), UNMAPPED), -EFAULT);

    let mut xatp = memory::AddToPhysmap { domid: xen_abi_domid_self(), space: 77, ..Default::default() };
    let ret = raw2(nr::MEMORY_OP, memory::XENMEM_ADD_TO_PHYSMAP.into(), &mut xatp as *mut _ as u64);
    // HVM: an unknown space is refused; a PV guest may not use add_to_physmap at all.
    let refused = match guest_lib::arch::mode() {
        guest_lib::arch::Mode::Pv => ret == -EACCES,
        guest_lib::arch::Mode::Pvh => ret == -EINVAL || ret == -ENOSYS,
    };
    t.expect("add_to_physmap of an unknown space is refused", if refused { 0 } else { ret }, 0);
    t.expect("memory_op with an unmapped argument is EFAULT", raw2(nr::MEMORY_OP, memory::XENMEM_ADD_TO_PHYSMAP.into(), UNMAPPED), -EFAULT);

    if guest_lib::arch::mode() == guest_lib::arch::Mode::Pvh {
        reservation_checks(&mut t);
    }

    t.expect("vcpu_op is_up on a vCPU that does not exist is ENOENT", raw3(nr::VCPU_OP, vcpu::VCPUOP_IS_UP.into(), 5, 0), -ENOENT);
    // Xen 4.17 ignores VCPU_SSHOTTMR_future: a past deadline fires at once.
    let mut past = vcpu::SetSingleshotTimer { timeout_abs_ns: 1, flags: vcpu::SSHOTTMR_FUTURE, pad: 0 };
    t.expect("a singleshot timer in the past is accepted (SSHOTTMR_future ignored)", raw3(nr::VCPU_OP, vcpu::VCPUOP_SET_SINGLESHOT_TIMER.into(), 0, &mut past as *mut _ as u64), 0);

    println!("abi-check: {} passed, {} failed", t.passed, t.failed);
    if t.failed != 0 {
        panic!("{} ABI checks failed", t.failed);
    }
    println!("last: EVTCHNOP_reset of our own channels (poweroff if it behaves as Xen's, crash if not)");
    if !reset_own_channels() {
        guest_lib::shutdown::crash();
    }
}

/// EVTCHNOP_reset of this domain closes every port, the console's and
/// xenstore's too: nothing can be printed afterwards, so the outcome is the
/// shutdown reason. Checks: every port reads closed, VIRQ_TIMER binds again
/// on port 1 (the lowest free), and the timer reaches it (masked, seen by
/// SCHEDOP_poll).
fn reset_own_channels() -> bool {
    let failed = reset_steps();
    if let Some(step) = failed {
        // The console is gone; PVH guests can still leave a line in Xen's
        // log (guest_loglvl=all) or ours through port 0xE9.
        if guest_lib::arch::mode() == guest_lib::arch::Mode::Pvh {
            for b in b"abi-check: EVTCHNOP_reset step failed: ".iter().chain(step.as_bytes()).chain(b"\n") {
                // SAFETY: port 0xE9 is a debug sink with no other effect.
                unsafe { guest_lib::arch::cpu::outb(0xe9, *b) };
            }
        }
    }
    failed.is_none()
}

/// The steps of [`reset_own_channels`]; the first that fails, by name.
fn reset_steps() -> Option<&'static str> {
    use guest_lib::{evtchn, sched, shared_info, time};
    // The console backend must have taken everything: its port is about to close.
    guest_lib::console::flush(core::time::Duration::from_secs(5));
    let mut me = xen_abi_domid_self();
    if evtchn_op(ev::EVTCHNOP_RESET, &mut me) != 0 {
        return Some("EVTCHNOP_reset");
    }
    // Ports 1..63: the first bucket of ports, which every domain has.
    let all_closed = (1..64u32).all(|port| {
        let mut st = ev::Status { dom: xen_abi_domid_self(), port, ..Default::default() };
        evtchn_op(ev::EVTCHNOP_STATUS, &mut st) == 0 && st.status == ev::EVTCHNSTAT_CLOSED
    });
    if !all_closed {
        return Some("every port closed");
    }
    let mut virq = ev::BindVirq { virq: ev::VIRQ_TIMER, vcpu: 0, port: 0 };
    if evtchn_op(ev::EVTCHNOP_BIND_VIRQ, &mut virq) != 0 || virq.port != 1 {
        return Some("VIRQ_TIMER bound again on port 1");
    }
    // Masked: the runtime's upcall handler has no business with it.
    evtchn::mask(virq.port);
    let start = time::now_ns();
    if time::set_timer(start + 5_000_000).is_err() || sched::poll(&[virq.port], start + 2_000_000_000).is_err() {
        return Some("set_timer and SCHEDOP_poll");
    }
    let fired = shared_info::pending(0).load(core::sync::atomic::Ordering::SeqCst) & (1 << virq.port) != 0;
    if !fired || time::now_ns() - start >= 1_000_000_000 {
        return Some("the timer reaches the new port");
    }
    None
}

/// XENMEM_populate_physmap and decrease_reservation count the extents they
/// did and never return an errno, whatever is wrong with the request.
fn reservation_checks(t: &mut Tally) {
    let mut dom = xen_abi_domid_self();
    let held = raw2(nr::MEMORY_OP, memory::XENMEM_CURRENT_RESERVATION.into(), &mut dom as *mut u16 as u64);
    let mut dom = xen_abi_domid_self();
    let max = raw2(nr::MEMORY_OP, memory::XENMEM_MAXIMUM_RESERVATION.into(), &mut dom as *mut u16 as u64);
    t.expect("the domain holds no more pages than its maximum", i64::from(held > 0 && held <= max), 1);
    // A frame far above RAM: a hole on Xen and here.
    let mut gfn: u64 = 0x3_0000;
    let mut r = memory::MemoryReservation {
        extent_start: &mut gfn as *mut u64 as u64,
        nr_extents: 1,
        extent_order: 0,
        mem_flags: 0,
        domid: 0,
        pad: [0; 3],
    };
    let op = |cmd: u32, r: &mut memory::MemoryReservation| raw2(nr::MEMORY_OP, cmd.into(), r as *mut _ as u64);
    t.expect("populate_physmap for domain 0 does nothing", op(memory::XENMEM_POPULATE_PHYSMAP, &mut r), 0);
    r.domid = xen_abi_domid_self();
    r.extent_order = 10;
    t.expect("populate_physmap above a domU's largest order does nothing", op(memory::XENMEM_POPULATE_PHYSMAP, &mut r), 0);
    r.extent_order = 0;
    t.expect("decrease_reservation of a hole does nothing", op(memory::XENMEM_DECREASE_RESERVATION, &mut r), 0);
    r.extent_start = UNMAPPED;
    t.expect("populate_physmap with an unmapped frame list does nothing", op(memory::XENMEM_POPULATE_PHYSMAP, &mut r), 0);
    t.expect("populate_physmap with an unmapped argument does nothing", raw2(nr::MEMORY_OP, memory::XENMEM_POPULATE_PHYSMAP.into(), UNMAPPED), 0);
    let mut dom = xen_abi_domid_self();
    let after = raw2(nr::MEMORY_OP, memory::XENMEM_CURRENT_RESERVATION.into(), &mut dom as *mut u16 as u64);
    t.expect("and the domain holds what it held", after, held);
}

fn xen_abi_domid_self() -> u16 {
    guest_lib::xen_abi::DOMID_SELF
}

/// On the host there is nothing to run: abi-check is a Xen guest.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("abi-check is a Xen PVH guest: build it with --target x86_64-unknown-none");
}
