//! Hypercall dispatch: one function per hypercall, each returning what Xen
//! returns (>= 0, or a negated errno). Anything not implemented returns
//! -ENOSYS and is logged once.

use xen_abi::errno::*;
use xen_abi::{event_channel as ev, hvm, hypercall as hc, memory, sched, vcpu, version, DOMID_SELF};

use super::domain::{Domain, ShutdownReason};
use super::evtchn::PortState;
use super::guest_access::GuestView;
use super::physmap::XenPage;

/// The hypercall's arguments, from the registers of the calling ABI.
struct Args([u64; 5]);

/// Runs hypercall `nr` for the calling vCPU and returns RAX.
pub fn dispatch(dom: &Domain, g: &GuestView<'_, '_>, nr: u32) -> i64 {
    let r = g.cpu.regs();
    let a = if g.compat() {
        Args([r.rbx, r.rcx, r.rdx, r.rsi, r.rdi].map(|v| v & 0xffff_ffff))
    } else {
        Args([r.rdi, r.rsi, r.rdx, r.r10, r.r8])
    };
    let result = match nr {
        hc::XEN_VERSION => xen_version(dom, g, &a),
        hc::CONSOLE_IO => console_io(dom, g, &a),
        hc::HVM_OP => hvm_op(dom, g, &a),
        hc::MEMORY_OP => memory_op(dom, g, &a),
        hc::EVENT_CHANNEL_OP => event_channel_op(dom, g, &a),
        hc::SCHED_OP => sched_op(dom, g, &a),
        hc::VCPU_OP => vcpu_op(dom, g, &a),
        hc::SET_TIMER_OP => set_timer_op(dom, g, &a),
        hc::GRANT_TABLE_OP => super::gnttab::grant_table_op(dom, g, a.0[0] as u32, a.0[1], a.0[2] as u32),
        _ => Err(ENOSYS),
    };
    log::trace!("hypercall {}({:#x}, {:#x}, {:#x}) -> {result:?}", hc::name(nr), a.0[0], a.0[1], a.0[2]);
    match result {
        Ok(v) => v,
        Err(e) => {
            if e == ENOSYS {
                let sub = a.0[0] as u32;
                dom.log_once(
                    (2 << 62) | (u64::from(nr) << 32) | u64::from(sub),
                    format_args!("hypercall {} ({nr}) sub-op {sub} is not implemented: -ENOSYS", hc::name(nr)),
                );
            }
            -e
        }
    }
}

type HcResult = Result<i64, i64>;

fn copy_string(g: &GuestView<'_, '_>, addr: u64, s: &str, len: usize) -> HcResult {
    let mut buf = vec![0u8; len];
    let n = s.len().min(len - 1);
    buf[..n].copy_from_slice(&s.as_bytes()[..n]);
    g.write(addr, &buf)?;
    Ok(0)
}

fn xen_version(_dom: &Domain, g: &GuestView<'_, '_>, a: &Args) -> HcResult {
    let (cmd, arg) = (a.0[0] as u32, a.0[1]);
    let (major, minor) = super::XEN_VERSION;
    match cmd {
        version::XENVER_VERSION => Ok((i64::from(major) << 16) | i64::from(minor)),
        version::XENVER_EXTRAVERSION => copy_string(g, arg, ".0-xenolith", version::EXTRAVERSION_LEN),
        version::XENVER_CAPABILITIES => {
            // What Xen 4.17 reports on x86 to an HVM guest of either width.
            copy_string(g, arg, "hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64", version::CAPABILITIES_LEN)
        }
        version::XENVER_CHANGESET => copy_string(g, arg, "xenolith", version::CHANGESET_LEN),
        version::XENVER_COMPILE_INFO => {
            let mut buf = vec![0u8; version::COMPILE_INFO_LEN];
            for (i, s) in ["rustc", "xenolith", "", env!("CARGO_PKG_VERSION")].iter().enumerate() {
                buf[i * 64..i * 64 + s.len()].copy_from_slice(s.as_bytes());
            }
            g.write(arg, &buf)?;
            Ok(0)
        }
        version::XENVER_COMMANDLINE => copy_string(g, arg, "", version::COMMANDLINE_LEN),
        version::XENVER_PAGESIZE => Ok(4096),
        version::XENVER_PLATFORM_PARAMETERS => {
            // HVM guests have no hypervisor hole; Xen reports its virt_start anyway.
            let virt_start: u64 = if g.compat() { 0xf580_0000 } else { 0xffff_8000_0000_0000 };
            let bytes = if g.compat() { (virt_start as u32).to_le_bytes().to_vec() } else { virt_start.to_le_bytes().to_vec() };
            g.write(arg, &bytes)?;
            Ok(0)
        }
        version::XENVER_GET_FEATURES => {
            let mut fi: version::FeatureInfo = g.read_obj(arg)?;
            fi.submap = if fi.submap_idx == 0 { features() } else { 0 };
            g.write_obj(arg, &fi)?;
            Ok(0)
        }
        version::XENVER_GUEST_HANDLE => {
            g.write(arg, &[0u8; 16])?;
            Ok(0)
        }
        _ => Err(ENOSYS),
    }
}

/// The XENFEAT_* bits an HVM guest of Xen 4.17 sees.
fn features() -> u32 {
    use xen_abi::features::*;
    [
        WRITABLE_PAGE_TABLES,
        WRITABLE_DESCRIPTOR_TABLES,
        AUTO_TRANSLATED_PHYSMAP,
        SUPERVISOR_MODE_KERNEL,
        HVM_CALLBACK_VECTOR,
        HVM_SAFE_PVCLOCK,
    ]
    .iter()
    .fold(0, |acc, bit| acc | (1 << bit))
}

fn console_io(dom: &Domain, g: &GuestView<'_, '_>, a: &Args) -> HcResult {
    match a.0[0] as u32 {
        xen_abi::console::CONSOLEIO_WRITE => {
            // Xen lets a domU print to its own log at guest_loglvl; keep it bounded.
            let count = (a.0[1] as usize).min(16 * 1024);
            let mut buf = vec![0u8; count];
            g.read(a.0[2], &mut buf)?;
            dom.debug.write(&buf);
            Ok(0)
        }
        xen_abi::console::CONSOLEIO_READ => Err(EPERM),
        _ => Err(EINVAL),
    }
}

fn hvm_op(dom: &Domain, g: &GuestView<'_, '_>, a: &Args) -> HcResult {
    let (op, arg) = (a.0[0] as u32, a.0[1]);
    match op {
        hvm::HVMOP_GET_PARAM | hvm::HVMOP_SET_PARAM => {
            let mut p: hvm::HvmParam = g.read_obj(arg)?;
            if p.domid != DOMID_SELF && p.domid != dom.info.domid {
                return Err(ESRCH);
            }
            if p.index >= hvm::NR_PARAMS {
                return Err(EINVAL);
            }
            let mut st = dom.state();
            if op == hvm::HVMOP_GET_PARAM {
                p.value = st.params[p.index as usize];
                drop(st);
                g.write_obj(arg, &p)?;
                return Ok(0);
            }
            match p.index {
                hvm::PARAM_CALLBACK_IRQ => {
                    let kind = p.value >> hvm::CALLBACK_TYPE_SHIFT;
                    st.callback_vector = match (kind, p.value) {
                        (_, 0) => None,
                        (hvm::CALLBACK_TYPE_VECTOR, v) if (0x10..=0xff).contains(&(v & 0xff)) => Some(v as u8),
                        (hvm::CALLBACK_TYPE_VECTOR, _) => return Err(EINVAL),
                        // GSI and PCI INTx callbacks need an emulated IOAPIC: not offered.
                        _ => return Err(EINVAL),
                    };
                    dom.wake_pending_vcpus(&st);
                }
                // The toolstack owns these; a guest may not move its rings.
                hvm::PARAM_STORE_PFN | hvm::PARAM_STORE_EVTCHN | hvm::PARAM_CONSOLE_PFN | hvm::PARAM_CONSOLE_EVTCHN => {
                    return Err(EPERM)
                }
                _ => {}
            }
            st.params[p.index as usize] = p.value;
            Ok(0)
        }
        hvm::HVMOP_PAGETABLE_DYING => Ok(0),
        _ => Err(ENOSYS),
    }
}

fn memory_op(dom: &Domain, g: &GuestView<'_, '_>, a: &Args) -> HcResult {
    let (cmd, arg) = (a.0[0] as u32, a.0[1]);
    match cmd {
        memory::XENMEM_CURRENT_RESERVATION | memory::XENMEM_MAXIMUM_RESERVATION => {
            let domid: u16 = g.read_obj(arg)?;
            if domid != DOMID_SELF && domid != dom.info.domid {
                return Err(ESRCH);
            }
            let pages = if cmd == memory::XENMEM_CURRENT_RESERVATION { dom.physmap.tot_pages() } else { dom.physmap.max_pages() };
            Ok(pages as i64)
        }
        memory::XENMEM_MAXIMUM_GPFN => Ok(dom.physmap.max_gfn() as i64),
        memory::XENMEM_POPULATE_PHYSMAP | memory::XENMEM_DECREASE_RESERVATION | memory::XENMEM_INCREASE_RESERVATION => {
            reservation(dom, g, cmd, arg)
        }
        memory::XENMEM_MEMORY_MAP => {
            // compat: { u32 nr_entries; u32 buffer; }, native: { u32; pad; u64 buffer }.
            let (nr, buffer) = if g.compat() {
                let raw: [u32; 2] = [g.read_obj(arg)?, g.read_obj_at(arg, 4)?];
                (raw[0], u64::from(raw[1]))
            } else {
                let m: memory::MemoryMap = g.read_obj(arg)?;
                (m.nr_entries, m.buffer)
            };
            // Xen copies as many entries as fit and says how many it copied.
            let entries = &dom.info.memmap[..dom.info.memmap.len().min(nr as usize)];
            let mut buf = Vec::with_capacity(entries.len() * memory::E820_ENTRY_SIZE);
            for e in entries {
                buf.extend_from_slice(&e.addr.to_le_bytes());
                buf.extend_from_slice(&e.size.to_le_bytes());
                buf.extend_from_slice(&e.kind.to_le_bytes());
            }
            g.write(buffer, &buf)?;
            g.write_obj(arg, &(entries.len() as u32))?;
            Ok(0)
        }
        memory::XENMEM_SET_MEMORY_MAP => Err(EPERM), // dom0 / toolstack only
        memory::XENMEM_ADD_TO_PHYSMAP => {
            let x = if g.compat() {
                // compat: domid u16, size u16, space u32, idx u32, gpfn u32.
                let mut raw = [0u8; 16];
                g.read(arg, &mut raw)?;
                memory::AddToPhysmap {
                    domid: u16::from_le_bytes([raw[0], raw[1]]),
                    size: u16::from_le_bytes([raw[2], raw[3]]),
                    space: u32::from_le_bytes(raw[4..8].try_into().unwrap()),
                    idx: u32::from_le_bytes(raw[8..12].try_into().unwrap()).into(),
                    gpfn: u32::from_le_bytes(raw[12..16].try_into().unwrap()).into(),
                }
            } else {
                g.read_obj::<memory::AddToPhysmap>(arg)?
            };
            add_to_physmap(dom, &x)
        }
        _ => Err(ENOSYS),
    }
}

fn add_to_physmap(dom: &Domain, x: &memory::AddToPhysmap) -> HcResult {
    if x.domid != DOMID_SELF && x.domid != dom.info.domid {
        return Err(ESRCH);
    }
    let gpa = x.gpfn.checked_mul(4096).ok_or(EINVAL)?;
    let page = match x.space {
        memory::XENMAPSPACE_SHARED_INFO if x.idx == 0 => XenPage::SharedInfo,
        memory::XENMAPSPACE_SHARED_INFO => return Err(EINVAL),
        memory::XENMAPSPACE_GRANT_TABLE => XenPage::GrantFrame(dom.gnttab.frame_index(x.idx)?),
        // gmfn and gmfn_range (moving the guest's own frames): not offered.
        memory::XENMAPSPACE_GMFN | memory::XENMAPSPACE_GMFN_RANGE => return Err(ENOSYS),
        // Xen finds no frame for any other space: -EINVAL.
        _ => return Err(EINVAL),
    };
    // Whatever was at gpfn goes (RAM freed, a Xen page unhooked), and the
    // page leaves where it was, as xenmem_add_to_physmap_one does.
    let evicted = dom.physmap.place(page, gpa)?;
    relocated(dom, page, Some(gpa));
    if let Some(e) = evicted {
        relocated(dom, e, None);
    }
    Ok(0)
}

/// Tells the owner of a Xen page where it is now (None: not mapped).
fn relocated(dom: &Domain, page: XenPage, gpa: Option<u64>) {
    match page {
        XenPage::GrantFrame(i) => dom.gnttab.set_frame(i, gpa),
        XenPage::SharedInfo => {
            let mut st = dom.state();
            st.shared_info = gpa;
            dom.publish_time(&st);
            dom.wake_pending_vcpus(&st);
        }
    }
}

/// XENMEM_populate_physmap, XENMEM_decrease_reservation and
/// XENMEM_increase_reservation, as common/memory.c does them: extent by
/// extent, stopping at the first that fails; the result is the number of
/// extents done (never an errno, even for a bad argument).
fn reservation(dom: &Domain, g: &GuestView<'_, '_>, cmd: u32, arg: u64) -> HcResult {
    let r = if g.compat() {
        let mut raw = [0u8; memory::COMPAT_MEMORY_RESERVATION_SIZE];
        if g.read(arg, &mut raw).is_err() {
            return Ok(0);
        }
        let u32_at = |o: usize| u32::from_le_bytes([raw[o], raw[o + 1], raw[o + 2], raw[o + 3]]);
        memory::MemoryReservation {
            extent_start: u32_at(0).into(),
            nr_extents: u32_at(4).into(),
            extent_order: u32_at(8),
            mem_flags: u32_at(12),
            domid: u16::from_le_bytes([raw[16], raw[17]]),
            pad: [0; 3],
        }
    } else {
        match g.read_obj::<memory::MemoryReservation>(arg) {
            Ok(r) => r,
            Err(_) => return Ok(0),
        }
    };
    // A domain that is not us: Xen's lookup or XSM check fails, and the
    // operation returns the extents done so far, none.
    if r.domid != DOMID_SELF && r.domid != dom.info.domid {
        return Ok(0);
    }
    // The count must fit a continuation (Xen: UINT_MAX >> MEMOP_EXTENT_SHIFT).
    if r.nr_extents > u64::from(u32::MAX >> 6) {
        return Ok(0);
    }
    // increase_reservation hands out machine frames: for a translated guest
    // it allocates nothing it could map (Xen returns 0 extents there too).
    if cmd == memory::XENMEM_INCREASE_RESERVATION || r.mem_flags & memory::XENMEMF_POPULATE_ON_DEMAND != 0 {
        return Ok(0);
    }
    let entry = if g.compat() { 4 } else { 8 };
    let mut done = 0u64;
    while done < r.nr_extents {
        let at = r.extent_start.wrapping_add(done * entry);
        let gfn = if g.compat() { g.read_obj::<u32>(at).map(u64::from) } else { g.read_obj::<u64>(at) };
        let Ok(gfn) = gfn else { break };
        let Some(gpa) = gfn.checked_mul(4096) else { break };
        let result = if cmd == memory::XENMEM_POPULATE_PHYSMAP {
            dom.physmap.populate(gpa, r.extent_order)
        } else {
            dom.physmap.decrease(gpa, r.extent_order)
        };
        match result {
            Ok(evicted) => {
                for e in evicted {
                    relocated(dom, e, None);
                }
            }
            Err(stop) => {
                log::debug!("domain {}: memory_op {cmd} at gfn {gfn:#x} stopped: {stop:?}", dom.info.domid);
                break;
            }
        }
        done += 1;
    }
    Ok(done as i64)
}

fn event_channel_op(dom: &Domain, g: &GuestView<'_, '_>, a: &Args) -> HcResult {
    let (cmd, arg) = (a.0[0] as u32, a.0[1]);
    match cmd {
        ev::EVTCHNOP_SEND => {
            let port: u32 = g.read_obj(arg)?;
            send(dom, port)
        }
        ev::EVTCHNOP_ALLOC_UNBOUND => {
            let mut x: ev::AllocUnbound = g.read_obj(arg)?;
            if x.dom != DOMID_SELF && x.dom != dom.info.domid {
                return Err(EPERM);
            }
            let remote = if x.remote_dom == DOMID_SELF { dom.info.domid } else { x.remote_dom };
            x.port = dom.state().evtchn.alloc_unbound(remote)?;
            g.write_obj(arg, &x)?;
            Ok(0)
        }
        ev::EVTCHNOP_BIND_INTERDOMAIN => {
            let mut x: ev::BindInterdomain = g.read_obj(arg)?;
            let me = dom.info.domid;
            x.local_port = match x.remote_dom {
                DOMID_SELF => dom.state().evtchn.bind_loopback(me, x.remote_port)?,
                d if d == me => dom.state().evtchn.bind_loopback(me, x.remote_port)?,
                // Domain 0's backends bind to the guest's ports, never the
                // other way round, so it has no port unbound for a guest:
                // Xen's answer for that is -EINVAL.
                0 => return Err(EINVAL),
                _ => return Err(ESRCH),
            };
            g.write_obj(arg, &x)?;
            Ok(0)
        }
        ev::EVTCHNOP_BIND_VIRQ => {
            let mut x: ev::BindVirq = g.read_obj(arg)?;
            x.port = dom.state().evtchn.bind_virq(x.virq, x.vcpu)?;
            g.write_obj(arg, &x)?;
            Ok(0)
        }
        ev::EVTCHNOP_BIND_IPI => {
            let mut x: ev::BindIpi = g.read_obj(arg)?;
            x.port = dom.state().evtchn.bind_ipi(x.vcpu)?;
            g.write_obj(arg, &x)?;
            Ok(0)
        }
        ev::EVTCHNOP_CLOSE => {
            let port: u32 = g.read_obj(arg)?;
            let mut st = dom.state();
            st.evtchn.close(port)?;
            // The pending bitmap is in shared info: any vCPU's view has it.
            if let Some(events) = st.events(0) {
                events.clear_pending(&dom.ram, port);
            }
            Ok(0)
        }
        ev::EVTCHNOP_RESET => {
            // struct evtchn_reset { domid_t dom; }
            let domid: u16 = g.read_obj(arg)?;
            match domid {
                DOMID_SELF => {}
                d if d == dom.info.domid => {}
                0 => return Err(EPERM), // XSM: a domU may not reset domain 0
                _ => return Err(ESRCH),
            }
            let mut st = dom.state();
            let closed = st.evtchn.reset();
            if let Some(events) = st.events(0) {
                for &port in &closed {
                    events.clear_pending(&dom.ram, port);
                }
            }
            log::debug!("domain {}: EVTCHNOP_reset closed {} ports", dom.info.domid, closed.len());
            Ok(0)
        }
        ev::EVTCHNOP_STATUS => {
            let x: ev::Status = g.read_obj(arg)?;
            if x.dom != DOMID_SELF && x.dom != dom.info.domid {
                return Err(ESRCH);
            }
            let st = dom.state().evtchn.status(x.port)?;
            g.write_obj(arg, &ev::Status { dom: x.dom, ..st })?;
            Ok(0)
        }
        ev::EVTCHNOP_UNMASK => {
            let port: u32 = g.read_obj(arg)?;
            let st = dom.state();
            st.evtchn.state(port).ok_or(EINVAL)?;
            let vcpu = st.evtchn.notify_vcpu(port);
            if let Some(events) = st.events(vcpu) {
                if events.unmask(&dom.ram, port) {
                    dom.wake_vcpu(&st, vcpu);
                }
            }
            Ok(0)
        }
        ev::EVTCHNOP_BIND_VCPU => {
            // struct evtchn_bind_vcpu { port; vcpu; }
            let x: [u32; 2] = [g.read_obj(arg)?, g.read_obj_at(arg, 4)?];
            dom.state().evtchn.bind_vcpu(x[0], x[1])?;
            Ok(0)
        }
        _ => Err(ENOSYS),
    }
}

/// EVTCHNOP_send: notify the other end of `port`.
fn send(dom: &Domain, port: u32) -> HcResult {
    let state = dom.state().evtchn.state(port).ok_or(EINVAL)?;
    match state {
        PortState::Interdomain { .. } => {
            dom.notify_sink(port);
            Ok(0)
        }
        PortState::Ipi => {
            dom.raise(port);
            Ok(0)
        }
        PortState::Loopback { peer } => {
            dom.raise(peer);
            Ok(0)
        }
        // Xen silently drops sends on unbound ports and rejects VIRQ ports.
        PortState::Unbound { .. } => Ok(0),
        PortState::Virq { .. } | PortState::Free => Err(EINVAL),
    }
}

fn sched_op(dom: &Domain, g: &GuestView<'_, '_>, a: &Args) -> HcResult {
    let (cmd, arg) = (a.0[0] as u32, a.0[1]);
    let me = g.cpu.vcpu_id() as usize;
    match cmd {
        sched::SCHEDOP_YIELD => {
            std::thread::yield_now();
            Ok(0)
        }
        sched::SCHEDOP_BLOCK => {
            dom.block(me, None, |st| dom.upcall_pending(st, me));
            Ok(0)
        }
        sched::SCHEDOP_SHUTDOWN => {
            let s: sched::Shutdown = g.read_obj(arg)?;
            let reason = ShutdownReason::from_code(s.reason).ok_or(EINVAL)?;
            dom.shutdown(reason);
            Ok(0)
        }
        sched::SCHEDOP_POLL => {
            let (ports_addr, nr, timeout) = if g.compat() {
                let raw: [u32; 2] = [g.read_obj(arg)?, g.read_obj_at(arg, 4)?];
                (u64::from(raw[0]), raw[1], g.read_obj_at::<u64>(arg, 8)?)
            } else {
                let p: sched::Poll = g.read_obj(arg)?;
                (p.ports, p.nr_ports, p.timeout)
            };
            if nr > 128 {
                return Err(EINVAL);
            }
            let mut ports = vec![0u32; nr as usize];
            for (i, p) in ports.iter_mut().enumerate() {
                *p = g.read_obj_at(ports_addr, 4 * i as u64)?;
            }
            let until = (timeout != 0).then(|| dom.clock.instant_at(timeout));
            dom.block(me, until, |st| st.events(me).is_some_and(|e| ports.iter().any(|&p| e.is_pending(&dom.ram, p))));
            Ok(0)
        }
        sched::SCHEDOP_SHUTDOWN_CODE | sched::SCHEDOP_WATCHDOG => Ok(0),
        _ => Err(ENOSYS),
    }
}

fn vcpu_op(dom: &Domain, g: &GuestView<'_, '_>, a: &Args) -> HcResult {
    let (cmd, vcpu_id, arg) = (a.0[0] as u32, a.0[1], a.0[2]);
    if vcpu_id >= dom.nr_vcpus() as u64 {
        return Err(ENOENT);
    }
    let vcpu = vcpu_id as usize;
    match cmd {
        vcpu::VCPUOP_IS_UP => Ok(i64::from(dom.vcpu_is_up(vcpu))),
        vcpu::VCPUOP_INITIALISE => {
            let ctx: vcpu::VcpuHvmContext = g.read_obj(arg)?;
            dom.initialise_vcpu(vcpu, long_mode_start(&ctx)?)?;
            Ok(0)
        }
        vcpu::VCPUOP_UP => {
            dom.vcpu_up(vcpu)?;
            Ok(0)
        }
        vcpu::VCPUOP_DOWN => {
            // As Xen's do_vcpu_op: the last vCPU going down powers off.
            if dom.vcpu_down(vcpu) == 0 {
                dom.shutdown(ShutdownReason::Poweroff);
            }
            Ok(0)
        }
        vcpu::VCPUOP_SET_SINGLESHOT_TIMER => {
            let t: vcpu::SetSingleshotTimer = g.read_obj(arg)?;
            // Xen ignores VCPU_SSHOTTMR_future (xen commit 19c6cbd909): a
            // deadline in the past fires at once, which the timer thread does.
            let mut st = dom.state();
            dom.set_timer(&mut st, vcpu, Some(t.timeout_abs_ns));
            Ok(0)
        }
        vcpu::VCPUOP_STOP_SINGLESHOT_TIMER => {
            let mut st = dom.state();
            dom.set_timer(&mut st, vcpu, None);
            Ok(0)
        }
        vcpu::VCPUOP_STOP_PERIODIC_TIMER => Ok(0),
        vcpu::VCPUOP_REGISTER_VCPU_INFO => {
            let r: vcpu::RegisterVcpuInfo = g.read_obj(arg)?;
            let size = std::mem::size_of::<xen_abi::shared_info::VcpuInfo>() as u64;
            if u64::from(r.offset) + size > 4096 {
                return Err(EINVAL);
            }
            let gpa = r.mfn.checked_mul(4096).and_then(|b| b.checked_add(r.offset.into())).ok_or(EINVAL)?;
            // map_vcpu_info: the page must be the domain's RAM.
            if !dom.ram.is_ram(gpa, size as usize) || gpa % 8 != 0 {
                return Err(EINVAL);
            }
            let mut st = dom.state();
            if st.vcpus[vcpu].registered_vcpu_info.is_some() {
                return Err(EINVAL); // once only, as in Xen 4.17: no way back
            }
            // Carry the pending state over, as Xen does.
            if let Some(events) = st.events(vcpu) {
                let mut info = [0u8; 64];
                dom.ram.read(events.vcpu_info, &mut info).map_err(|_| EFAULT)?;
                dom.ram.write(gpa, &info).map_err(|_| EFAULT)?;
            }
            st.vcpus[vcpu].registered_vcpu_info = Some(gpa);
            dom.publish_time(&st);
            Ok(0)
        }
        _ => Err(ENOSYS),
    }
}

/// A VCPUOP_initialise context's 64-bit registers, checked as Xen's
/// `arch_set_info_hvm_guest` checks VCPU_HVM_MODE_64B: paging and PAE on,
/// EFER.LME set, a canonical RIP. The 32-bit mode is not offered (EINVAL).
fn long_mode_start(ctx: &vcpu::VcpuHvmContext) -> Result<vcpu::VcpuHvmX86_64, i64> {
    const CR0_PE_PG: u64 = 1 | (1 << 31);
    const CR4_PAE: u64 = 1 << 5;
    const EFER_LME: u64 = 1 << 8;
    let r = ctx.x86_64;
    let canonical = (r.rip as i64) >> 47 == 0 || (r.rip as i64) >> 47 == -1;
    if ctx.mode != vcpu::VCPU_HVM_MODE_64B || r.cr0 & CR0_PE_PG != CR0_PE_PG || r.cr4 & CR4_PAE == 0 || r.efer & EFER_LME == 0 || !canonical {
        return Err(EINVAL);
    }
    Ok(r)
}

fn set_timer_op(dom: &Domain, g: &GuestView<'_, '_>, a: &Args) -> HcResult {
    // The 32-bit ABI passes the 64-bit deadline in EBX (low) and ECX (high).
    let deadline = if g.compat() { a.0[0] | (a.0[1] << 32) } else { a.0[0] };
    let mut st = dom.state();
    dom.set_timer(&mut st, g.cpu.vcpu_id() as usize, (deadline != 0).then_some(deadline));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use xen_abi::hvm::{HvmMemmapEntry, MEMMAP_TYPE_RAM};

    use super::*;
    use crate::vstate::memory::GuestRam;
    use crate::xen::domain::DomainInfo;
    use crate::xen::guest_access::FlatCpu;
    use crate::xen::time::Clock;

    const RAM: u64 = 0x10000;

    fn domain() -> (Arc<GuestRam>, Domain) {
        let ram = Arc::new(GuestRam::new(&[(0, RAM as usize)]).unwrap());
        let info = DomainInfo {
            domid: 1,
            name: "test".into(),
            memmap: vec![HvmMemmapEntry { addr: 0, size: RAM, kind: MEMMAP_TYPE_RAM, reserved: 0 }],
            pages: RAM >> 12,
            max_pages: RAM >> 12,
        };
        let dom = Domain::new(info, ram.clone(), Clock::new(1_000_000, 0));
        (ram, dom)
    }

    #[test]
    fn secondary_vcpus_are_initialised_then_brought_up_as_on_xen() {
        let (ram, one) = domain();
        let dom = Domain::with_vcpus(DomainInfo { name: "smp".into(), ..one.info }, ram.clone(), Clock::new(1_000_000, 0), 2);
        let op = |cmd: u32, vcpu: u64, arg: u64| call(&dom, &ram, true, hc::VCPU_OP, [cmd.into(), vcpu, arg, 0, 0]);
        let good = vcpu::VcpuHvmContext {
            mode: vcpu::VCPU_HVM_MODE_64B,
            x86_64: vcpu::VcpuHvmX86_64 { rip: 0x10_0000, rsp: 0x8000, cr0: 0x8000_0011, cr3: 0x1000, cr4: 0x20, efer: 0x100, ..Default::default() },
            ..Default::default()
        };
        assert_eq!((op(vcpu::VCPUOP_IS_UP, 0, 0), op(vcpu::VCPUOP_IS_UP, 1, 0)), (1, 0));
        assert_eq!(op(vcpu::VCPUOP_UP, 1, 0), -EINVAL, "no context yet");
        assert_eq!(op(vcpu::VCPUOP_IS_UP, 2, 0), -ENOENT);
        // Contexts Xen refuses: paging off, no PAE, no LME, a non-canonical
        // RIP, the 32-bit mode (not offered here), an unreadable argument.
        for bad in [
            vcpu::VcpuHvmX86_64 { cr0: 0x11, ..good.x86_64 },
            vcpu::VcpuHvmX86_64 { cr4: 0, ..good.x86_64 },
            vcpu::VcpuHvmX86_64 { efer: 0, ..good.x86_64 },
            vcpu::VcpuHvmX86_64 { rip: 0x8000_0000_0000, ..good.x86_64 },
        ] {
            ram.write_obj(0x100, &vcpu::VcpuHvmContext { x86_64: bad, ..good }).unwrap();
            assert_eq!(op(vcpu::VCPUOP_INITIALISE, 1, 0x100), -EINVAL, "{bad:?}");
        }
        ram.write_obj(0x100, &vcpu::VcpuHvmContext { mode: 0, ..good }).unwrap();
        assert_eq!(op(vcpu::VCPUOP_INITIALISE, 1, 0x100), -EINVAL);
        assert_eq!(op(vcpu::VCPUOP_INITIALISE, 1, RAM - 8), -EFAULT);
        ram.write_obj(0x100, &good).unwrap();
        assert_eq!(op(vcpu::VCPUOP_INITIALISE, 0, 0x100), -EEXIST, "vCPU 0 was built");
        assert_eq!(op(vcpu::VCPUOP_INITIALISE, 1, 0x100), 0);
        assert_eq!(op(vcpu::VCPUOP_INITIALISE, 1, 0x100), -EEXIST);
        assert_eq!(op(vcpu::VCPUOP_UP, 1, 0), 0);
        assert_eq!(op(vcpu::VCPUOP_IS_UP, 1, 0), 1);
        let start = dom.wait_until_up(1).expect("running").expect("a context to load");
        assert_eq!((start.rip, start.rsp, start.cr3), (0x10_0000, 0x8000, 0x1000));
        assert_eq!(dom.wait_until_up(1), Some(None), "loaded once");
        // Down and up again: the same registers, nothing to load.
        assert_eq!(op(vcpu::VCPUOP_DOWN, 1, 0), 0);
        assert!(!dom.is_stopped());
        assert_eq!(op(vcpu::VCPUOP_UP, 1, 0), 0);
        assert_eq!(dom.wait_until_up(1), Some(None));
        // The last vCPU going down powers the domain off.
        assert_eq!(op(vcpu::VCPUOP_DOWN, 1, 0), 0);
        assert_eq!(op(vcpu::VCPUOP_DOWN, 0, 0), 0);
        assert_eq!(dom.shutdown_reason(), Some(ShutdownReason::Poweroff));
        assert_eq!(dom.wait_until_up(0), None);
    }

    fn call(dom: &Domain, ram: &GuestRam, long_mode: bool, nr: u32, args: [u64; 5]) -> i64 {
        let mut cpu = FlatCpu { long_mode, mapped: RAM, top_page: Some(0x3000), ..Default::default() };
        let r = &mut cpu.regs;
        if long_mode {
            (r.rdi, r.rsi, r.rdx, r.r10, r.r8) = (args[0], args[1], args[2], args[3], args[4]);
        } else {
            (r.rbx, r.rcx, r.rdx, r.rsi, r.rdi) = (args[0], args[1], args[2], args[3], args[4]);
        }
        dispatch(dom, &GuestView { ram, cpu: &cpu }, nr)
    }

    /// An argument at the very top of the address space (a page a kernel
    /// may map there): its first field reads, the next would wrap past
    /// 2^64. -EFAULT, never an overflow (a panic with overflow checks).
    #[test]
    fn argument_offsets_do_not_wrap_at_the_top_of_the_address_space() {
        let (ram, dom) = domain();
        let top = u64::MAX - 3;
        assert_eq!(call(&dom, &ram, true, hc::EVENT_CHANNEL_OP, [ev::EVTCHNOP_BIND_VCPU.into(), top, 0, 0, 0]), -EFAULT);
        assert_eq!(call(&dom, &ram, true, hc::SCHED_OP, [sched::SCHEDOP_POLL.into(), u64::MAX - 15, 0, 0, 0]), -EFAULT);
        // A poll whose port list ends at 2^64: the last port would wrap.
        let list = u64::MAX - 7;
        ram.write_obj(0x100, &sched::Poll { ports: list, nr_ports: 4, pad: 0, timeout: 1 }).unwrap();
        assert_eq!(call(&dom, &ram, true, hc::SCHED_OP, [sched::SCHEDOP_POLL.into(), 0x100, 0, 0, 0]), -EFAULT);
        // A copy batch running past the top.
        assert_eq!(call(&dom, &ram, true, hc::GRANT_TABLE_OP, [xen_abi::grant_table::GNTTABOP_COPY.into(), u64::MAX - 79, 3, 0, 0]), -EFAULT);
        // setup_table's status field past the top.
        assert_eq!(call(&dom, &ram, true, hc::GRANT_TABLE_OP, [xen_abi::grant_table::GNTTABOP_SETUP_TABLE.into(), u64::MAX - 11, 1, 0, 0]), -EFAULT);
    }

    #[test]
    fn numbers_past_the_page_are_enosys() {
        let (ram, dom) = domain();
        for nr in [64, 127, 128, 1000, u32::MAX] {
            assert_eq!(call(&dom, &ram, true, nr, [0; 5]), -ENOSYS);
        }
    }
}
