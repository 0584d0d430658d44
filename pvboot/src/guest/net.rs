//! Network boot's plumbing: the domain's first vif through netfront and
//! smoltcp ([`guest_lib::net::Stack`], with its DHCP client) as
//! [`pvboot::net::netfs::Network`], and the boot server it names, whose
//! files are then read like a disk's.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec;
use core::cell::RefCell;
use core::net::SocketAddrV4;

use guest_lib::net::{self, Stack};
use guest_lib::netfront::{self, NetFront};
use guest_lib::{println, time};
use pvboot::config::cmdline::NetBoot;
use pvboot::config::CONFIG_PATHS;
use pvboot::net::netfs::{Datagrams, NetError, NetFs, Network, Stream};
use pvboot::net::{NetDevice, Url};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::IpEndpoint;

/// How long pvboot waits for a DHCP lease.
const DHCP_WAIT_NS: u64 = 30_000_000_000;
/// How long a TCP connection may take to open.
const CONNECT_WAIT_NS: u64 = 10_000_000_000;
/// Files whose size the server does not announce are read whole, up to this.
const UNSIZED_MAX: u64 = 64 << 20;
/// TCP receive window: 64 KiB, so one round trip moves a useful amount
/// (smoltcp scales the window past 64 KiB only with a bigger buffer).
const TCP_RX: usize = 64 << 10;
/// A UDP socket holds this many datagrams each way.
const UDP_SLOTS: usize = 16;

/// The stack, shared by the sockets and the server's file system.
type Shared = Rc<RefCell<Stack>>;

/// smoltcp behind [`Network`].
pub struct GuestNet {
    stack: Shared,
    next_port: u16,
}

impl GuestNet {
    /// The next ephemeral port (49152-65535), starting somewhere random so
    /// that a reboot does not reuse the last boot's ports.
    fn port(&mut self) -> u16 {
        let p = self.next_port;
        self.next_port = if p == u16::MAX { 49152 } else { p + 1 };
        p
    }
}

fn error(what: impl core::fmt::Display) -> NetError {
    NetError(what.to_string())
}

/// Polls `stack` until `ready` says something, or `deadline` (pvclock ns)
/// passes (`None`).
fn poll_until<T>(stack: &Shared, deadline: u64, mut ready: impl FnMut(&mut Stack) -> Option<T>) -> Option<T> {
    loop {
        let mut st = stack.borrow_mut();
        st.poll();
        if let Some(v) = ready(&mut st) {
            // Whatever `ready` queued goes out now, not at the next wait.
            st.poll();
            return Some(v);
        }
        let now = time::now_ns();
        if now >= deadline {
            return None;
        }
        st.wait(deadline - now);
    }
}

fn deadline_ms(ms: u64) -> u64 {
    time::now_ns().saturating_add(ms.saturating_mul(1_000_000))
}

/// A UDP socket of the stack.
pub struct Udp {
    stack: Shared,
    handle: SocketHandle,
}

impl Datagrams for Udp {
    fn send_to(&mut self, data: &[u8], to: SocketAddrV4) -> Result<(), NetError> {
        let h = self.handle;
        let end: IpEndpoint = (*to.ip(), to.port()).into();
        poll_until(&self.stack, deadline_ms(1000), |st| {
            let s = st.sockets.get_mut::<udp::Socket>(h);
            s.can_send().then(|| s.send_slice(data, end).map_err(error))
        })
        .ok_or_else(|| error("the UDP send queue stayed full"))?
    }

    fn recv_from(&mut self, buf: &mut [u8], timeout_ms: u64) -> Result<Option<(usize, SocketAddrV4)>, NetError> {
        let h = self.handle;
        Ok(poll_until(&self.stack, deadline_ms(timeout_ms), |st| {
            let s = st.sockets.get_mut::<udp::Socket>(h);
            match s.recv_slice(buf) {
                Ok((n, meta)) => match meta.endpoint.addr {
                    smoltcp::wire::IpAddress::Ipv4(a) => Some(Some((n, SocketAddrV4::new(a, meta.endpoint.port)))),
                    #[allow(unreachable_patterns)] // with proto-ipv6 enabled elsewhere
                    _ => Some(None),
                },
                // Truncated datagrams are not TFTP's: drop them.
                Err(udp::RecvError::Truncated) => Some(None),
                Err(udp::RecvError::Exhausted) => None,
            }
        })
        .flatten())
    }
}

impl Drop for Udp {
    fn drop(&mut self) {
        self.stack.borrow_mut().sockets.remove(self.handle);
    }
}

/// A TCP connection of the stack.
pub struct Tcp {
    stack: Shared,
    handle: SocketHandle,
}

impl Stream for Tcp {
    fn write_all(&mut self, mut data: &[u8]) -> Result<(), NetError> {
        let h = self.handle;
        while !data.is_empty() {
            let sent = poll_until(&self.stack, deadline_ms(10_000), |st| {
                let s = st.sockets.get_mut::<tcp::Socket>(h);
                if !s.may_send() {
                    return Some(Err(error("the server closed the connection")));
                }
                match s.send_slice(data) {
                    Ok(0) => None,
                    Ok(n) => Some(Ok(n)),
                    Err(e) => Some(Err(error(e))),
                }
            })
            .ok_or_else(|| error("the server took nothing for 10 s"))??;
            data = &data[sent..];
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8], timeout_ms: u64) -> Result<Option<usize>, NetError> {
        let h = self.handle;
        Ok(poll_until(&self.stack, deadline_ms(timeout_ms), |st| {
            let s = st.sockets.get_mut::<tcp::Socket>(h);
            if s.can_recv() {
                return Some(s.recv_slice(buf).unwrap_or(0));
            }
            // The server's FIN (or a reset): the end of the stream.
            (!s.may_recv()).then_some(0)
        }))
    }
}

impl Drop for Tcp {
    fn drop(&mut self) {
        let mut st = self.stack.borrow_mut();
        // Our FIN, sent by the poll; the socket is gone after it (a boot
        // loader does not linger in TIME-WAIT), so the stack answers the
        // server's own FIN, or any data still coming, with a reset.
        st.sockets.get_mut::<tcp::Socket>(self.handle).close();
        st.poll();
        st.sockets.remove(self.handle);
    }
}

impl Network for GuestNet {
    type Udp = Udp;
    type Tcp = Tcp;

    fn udp(&mut self) -> Result<Udp, NetError> {
        let slots = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; UDP_SLOTS], vec![0; UDP_SLOTS * 1600]);
        let mut sock = udp::Socket::new(slots(), slots());
        sock.bind(self.port()).map_err(error)?;
        let handle = self.stack.borrow_mut().sockets.add(sock);
        Ok(Udp { stack: self.stack.clone(), handle })
    }

    fn connect(&mut self, to: SocketAddrV4) -> Result<Tcp, NetError> {
        let mut sock = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; TCP_RX]), tcp::SocketBuffer::new(vec![0; 4096]));
        let port = self.port();
        let handle = {
            let mut st = self.stack.borrow_mut();
            let st = &mut *st;
            sock.connect(st.iface.context(), (*to.ip(), to.port()), port).map_err(error)?;
            st.sockets.add(sock)
        };
        // Owned from here, so that every way out removes the socket.
        let conn = Tcp { stack: self.stack.clone(), handle };
        let state = poll_until(&self.stack, time::now_ns() + CONNECT_WAIT_NS, |st| {
            let s = st.sockets.get_mut::<tcp::Socket>(handle);
            match s.state() {
                tcp::State::Established => Some(true),
                tcp::State::Closed => Some(false),
                _ => None,
            }
        });
        match state {
            Some(true) => Ok(conn),
            Some(false) => Err(error("connection refused")),
            None => Err(error("no answer in 10 s")),
        }
    }
}

/// The boot server: where a net-booting domain's config and files come from.
pub struct BootServer {
    /// Its files (the URL's directory is their `/`).
    pub fs: Rc<NetFs<GuestNet>>,
    /// The device name configs and messages use: `(tftp,10.0.0.1:69)`.
    pub device: String,
    /// The config file, if the URL or the DHCP lease named one; else
    /// [`CONFIG_PATHS`] are looked for.
    pub config: Option<String>,
    base: Url,
    stack: Shared,
}

impl BootServer {
    /// Brings the domain's first vif up (its address from `ip=`/`gw=` in
    /// `net_words`, else DHCP) and finds the server `spec` names.
    pub fn start(spec: &NetBoot, net_words: &str) -> Result<BootServer, String> {
        let addr = net::parse_cmdline(net_words).map_err(|e| e.to_string())?;
        let nf = NetFront::open_first(netfront::Config::from_cmdline_reporting(net_words)).map_err(|e| format!("no network: {e}"))?;
        let m = nf.mac();
        println!(
            "pvboot: network {} (mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}); {}",
            nf.nodename(),
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5],
            if addr == net::AddrConfig::Dhcp { "asking DHCP for an address" } else { "static address" }
        );
        let stack: Shared = Rc::new(RefCell::new(Stack::new(nf, addr)));
        let started = time::now_ns();
        let cidr = poll_until(&stack, started + DHCP_WAIT_NS, |st| st.address())
            .ok_or_else(|| format!("no DHCP lease in {} s", DHCP_WAIT_NS / 1_000_000_000))?;
        let (base, config) = {
            let st = stack.borrow();
            match (spec, st.dhcp_boot()) {
                (NetBoot::Url(u), _) if u.path.ends_with('/') => (u.clone(), None),
                (NetBoot::Url(u), _) => (u.with_path("/"), Some(u.path.clone())),
                (NetBoot::Dhcp, Some(lease)) => match lease.boot_file.as_deref().map(Url::parse) {
                    // A whole URL as the boot file, as UEFI HTTP boot gives it.
                    Some(Ok(u)) if !u.path.ends_with('/') => (u.with_path("/"), Some(u.path)),
                    Some(Ok(u)) => (u, None),
                    _ => {
                        let server = Url::parse(&format!("tftp://{}/", lease.server())).map_err(|e| e.to_string())?;
                        (server, lease.boot_file.as_deref().map(|f| format!("/{}", f.trim_start_matches('/'))))
                    }
                },
                (NetBoot::Dhcp, None) => {
                    return Err(String::from("netboot without a URL needs DHCP to name the server: give netboot=tftp://SERVER/ with ip="))
                }
            }
        };
        println!(
            "pvboot: address {cidr}{} after {} ms; boot server {base}{}",
            stack.borrow().gateway().map(|g| format!(" gateway {g}")).unwrap_or_default(),
            (time::now_ns() - started) / 1_000_000,
            config.as_deref().map(|c| format!(", config {c}")).unwrap_or_default()
        );
        let device = NetDevice { scheme: base.scheme, server: Some(SocketAddrV4::new(base.host, base.port)) }.to_string();
        Ok(BootServer { fs: Rc::new(Self::files(&stack, base.clone())), device, config, base, stack })
    }

    fn files(stack: &Shared, base: Url) -> NetFs<GuestNet> {
        let next_port = 49152 + (time::now_ns() % 16384) as u16;
        NetFs::new(GuestNet { stack: stack.clone(), next_port }, base, UNSIZED_MAX)
    }

    /// The config paths to try, in order.
    pub fn config_paths(&self) -> alloc::vec::Vec<String> {
        match &self.config {
            Some(c) => vec![c.clone()],
            None => CONFIG_PATHS.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// The files of the network device `dev` names, and where they are:
    /// this server's for `(tftp)`, `(http)` on the same server, or its own
    /// address's.
    pub fn open(&self, dev: &NetDevice) -> Result<(Rc<dyn pvboot::fs::FileSystem>, Url), String> {
        let url = dev.url(Some(&self.base), "/").map_err(|e| e.to_string())?;
        if url.scheme == self.base.scheme && url.host == self.base.host && url.port == self.base.port {
            return Ok((self.fs.clone(), self.base.clone()));
        }
        Ok((Rc::new(Self::files(&self.stack, url.clone())), url))
    }

    /// Closes the vif (Closing -> Closed), as the next kernel expects to
    /// find it.
    pub fn close(&self) -> Result<(), guest_lib::xenbus::XenbusError> {
        self.stack.borrow_mut().netfront().close()
    }
}
