//! The event_channel_op hypercall (event_channel.h).

/// An event channel port number.
pub type Port = u32;

/// `EVTCHNOP_BIND_INTERDOMAIN`.
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// `EVTCHNOP_BIND_VIRQ`.
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// `EVTCHNOP_BIND_PIRQ`.
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
/// `EVTCHNOP_CLOSE`.
pub const EVTCHNOP_CLOSE: u32 = 3;
/// `EVTCHNOP_SEND`.
pub const EVTCHNOP_SEND: u32 = 4;
/// `EVTCHNOP_STATUS`.
pub const EVTCHNOP_STATUS: u32 = 5;
/// `EVTCHNOP_ALLOC_UNBOUND`.
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// `EVTCHNOP_BIND_IPI`.
pub const EVTCHNOP_BIND_IPI: u32 = 7;
/// `EVTCHNOP_BIND_VCPU`.
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// `EVTCHNOP_UNMASK`.
pub const EVTCHNOP_UNMASK: u32 = 9;
/// `EVTCHNOP_RESET`.
pub const EVTCHNOP_RESET: u32 = 10;
/// `EVTCHNOP_INIT_CONTROL`.
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
/// `EVTCHNOP_EXPAND_ARRAY`.
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
/// `EVTCHNOP_SET_PRIORITY`.
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;

/// The per-vCPU timer.
pub const VIRQ_TIMER: u32 = 0;
/// Debug request.
pub const VIRQ_DEBUG: u32 = 1;
/// Xen console input (dom0).
pub const VIRQ_CONSOLE: u32 = 2;
/// A domain shut down (dom0).
pub const VIRQ_DOM_EXC: u32 = 3;
/// Profiling (per vCPU).
pub const VIRQ_XENOPROF: u32 = 7;
/// Number of VIRQs.
pub const NR_VIRQS: u32 = 24;

/// struct evtchn_alloc_unbound.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct AllocUnbound {
    /// The domain to allocate in (DOMID_SELF).
    pub dom: u16,
    /// The domain that may bind to it.
    pub remote_dom: u16,
    /// Out: the new port.
    pub port: Port,
}
crate::assert_size!(AllocUnbound, 8);

/// struct evtchn_bind_interdomain.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BindInterdomain {
    /// The remote domain.
    pub remote_dom: u16,
    /// Padding.
    pub pad: u16,
    /// Its unbound port.
    pub remote_port: Port,
    /// Out: the local port.
    pub local_port: Port,
}
crate::assert_size!(BindInterdomain, 12);

/// struct evtchn_bind_virq.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BindVirq {
    /// VIRQ_*.
    pub virq: u32,
    /// The vCPU to deliver to.
    pub vcpu: u32,
    /// Out: the port.
    pub port: Port,
}
crate::assert_size!(BindVirq, 12);

/// struct evtchn_bind_ipi.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BindIpi {
    /// The vCPU to deliver to.
    pub vcpu: u32,
    /// Out: the port.
    pub port: Port,
}
crate::assert_size!(BindIpi, 8);

/// struct evtchn_status.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Status {
    /// The domain owning `port` (DOMID_SELF).
    pub dom: u16,
    /// Padding.
    pub pad: u16,
    /// The port asked about.
    pub port: Port,
    /// Out: EVTCHNSTAT_*.
    pub status: u32,
    /// Out: the vCPU it notifies.
    pub vcpu: u32,
    /// Out: unbound: remote domid; interdomain: domid then port; virq: the VIRQ.
    pub u0: u32,
    /// Out: interdomain: the remote port.
    pub u1: u32,
}
crate::assert_size!(Status, 24);

/// `EVTCHNSTAT_CLOSED`.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// `EVTCHNSTAT_UNBOUND`.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// `EVTCHNSTAT_INTERDOMAIN`.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// `EVTCHNSTAT_PIRQ`.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// `EVTCHNSTAT_VIRQ`.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// `EVTCHNSTAT_IPI`.
pub const EVTCHNSTAT_IPI: u32 = 5;
