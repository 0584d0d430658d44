//! The TCP/IP stack: smoltcp over [`crate::netfront`], with its address
//! from the command line ([`config`]: static `ip=`/`gw=`, or DHCP through
//! smoltcp's client), and a poll loop that halts when idle.
//!
//! [`Stack::wait`] halts the vCPU until the backend answers (its event
//! channel upcall ends the halt), smoltcp's next timer is due (the
//! pvclock one-shot timer), or the caller's limit passes; nothing spins,
//! which matters where every guest instruction is emulated.

pub mod config;
pub mod device;
pub mod dhcp;

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

pub use self::config::{parse_cmdline, AddrConfig, ConfigError};
pub use self::dhcp::DhcpBoot;
pub use self::device::NetDevice;
use crate::netfront::NetFront;
use crate::time;

/// smoltcp's clock: pvclock system time.
pub fn now() -> Instant {
    Instant::from_micros((time::now_ns() / 1000) as i64)
}

/// An interface, its sockets and the device under them.
pub struct Stack {
    /// The smoltcp interface.
    pub iface: Interface,
    /// The sockets the application adds.
    pub sockets: SocketSet<'static>,
    dev: NetDevice,
    dhcp: Option<SocketHandle>,
    addr: Option<Ipv4Cidr>,
    gateway: Option<Ipv4Address>,
    boot: Option<DhcpBoot>,
}

impl Stack {
    /// Brings the interface up on `nf` with the addresses of `cfg`.
    pub fn new(nf: NetFront, cfg: AddrConfig) -> Stack {
        let mac = nf.mac();
        let mut dev = NetDevice::new(nf);
        let mut c = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        // Different on every boot and every MAC: TCP initial sequence
        // numbers and DHCP transaction ids come from it.
        let m = mac.iter().fold(0u64, |a, &b| (a << 8) | b as u64);
        c.random_seed = time::now_ns() ^ m.rotate_left(17) ^ crate::arch::cpu::rdtsc();
        let mut iface = Interface::new(c, &mut dev, now());
        let mut sockets = SocketSet::new(alloc::vec::Vec::new());
        let (mut dhcp, mut addr, mut gateway) = (None, None, None);
        match cfg {
            AddrConfig::Dhcp => dhcp = Some(sockets.add(dhcp::client())),
            AddrConfig::Static { cidr, gateway: gw } => {
                iface.update_ip_addrs(|a| {
                    let _ = a.push(IpCidr::Ipv4(cidr));
                });
                if let Some(g) = gw {
                    let _ = iface.routes_mut().add_default_ipv4_route(g);
                }
                addr = Some(cidr);
                gateway = gw;
            }
        }
        Stack {
            iface,
            sockets,
            dev,
            dhcp,
            addr,
            gateway,
            boot: None,
        }
    }

    /// The interface's address, once it has one.
    pub fn address(&self) -> Option<Ipv4Cidr> {
        self.addr
    }

    /// The default router, if any.
    pub fn gateway(&self) -> Option<Ipv4Address> {
        self.gateway
    }

    /// What the DHCP server said about booting, once it gave an address.
    pub fn dhcp_boot(&self) -> Option<&DhcpBoot> {
        self.boot.as_ref()
    }

    /// The netfront underneath (statistics, close).
    pub fn netfront(&mut self) -> &mut NetFront {
        self.dev.netfront()
    }

    /// Moves packets both ways and runs the sockets' timers and the DHCP
    /// client; true if some socket's state may have changed.
    pub fn poll(&mut self) -> bool {
        self.dev.netfront().reap_tx();
        let changed = self.iface.poll(now(), &mut self.dev, &mut self.sockets)
            == PollResult::SocketStateChanged;
        if let Some(h) = self.dhcp {
            match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
                Some(dhcpv4::Event::Configured(c)) => {
                    self.iface.update_ip_addrs(|a| {
                        a.clear();
                        let _ = a.push(IpCidr::Ipv4(c.address));
                    });
                    self.iface.routes_mut().remove_default_ipv4_route();
                    if let Some(r) = c.router {
                        let _ = self.iface.routes_mut().add_default_ipv4_route(r);
                    }
                    log::info!("net: DHCP gave {} (router {:?})", c.address, c.router);
                    self.addr = Some(c.address);
                    self.gateway = c.router;
                    self.boot = Some(DhcpBoot::from_lease(c.server.identifier, c.packet.as_ref()));
                }
                Some(dhcpv4::Event::Deconfigured) => {
                    self.iface.update_ip_addrs(|a| a.clear());
                    self.iface.routes_mut().remove_default_ipv4_route();
                    self.addr = None;
                    self.gateway = None;
                    self.boot = None;
                }
                None => {}
            }
        }
        changed
    }

    /// Halts until the backend has answered something, smoltcp's next
    /// timer is due, or `max_ns` has passed.
    pub fn wait(&mut self, max_ns: u64) {
        let now_ns = time::now_ns();
        let mut deadline = now_ns.saturating_add(max_ns);
        if let Some(d) = self.iface.poll_delay(now(), &self.sockets) {
            deadline = deadline.min(now_ns.saturating_add(d.total_micros().saturating_mul(1000)));
        }
        let dev = &self.dev;
        crate::xenstore::wait_until(deadline, || dev.has_work());
    }
}
