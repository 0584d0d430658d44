//! TAP devices and Linux bridges, through ioctls on /dev/net/tun and an
//! AF_INET socket (what Xen's vif-bridge script does with `ip` and
//! `brctl`, without running them).
//!
//! This is the one unsafe module of the network backend: each `ioctl` is
//! given an `ifreq` (or integer) that lives across the call and whose name
//! is NUL-terminated within IFNAMSIZ; `read`/`writev` get buffers that
//! outlive the call with their true lengths.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::{PacketIo, VNET_HDR_LEN};

/// The kernel's ioctl number for adding an interface to a bridge.
const SIOCBRADDIF: libc::c_ulong = 0x89a2;

/// Why a TAP device could not be set up; one line naming the interface.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// /dev/net/tun cannot be opened.
    #[error("opening /dev/net/tun: {0}")]
    Open(#[source] io::Error),
    /// An ioctl failed.
    #[error("{what} {name}: {err}{}", if err.raw_os_error() == Some(libc::EPERM) { " (creating network interfaces needs CAP_NET_ADMIN)" } else { "" })]
    Ioctl {
        /// What was being done.
        what: &'static str,
        /// The interface.
        name: String,
        /// The error.
        #[source]
        err: io::Error,
    },
    /// The bridge does not exist or is not a bridge.
    #[error("bridge {0} does not exist (create it first, e.g. `ip link add {0} type bridge`)")]
    NoBridge(String),
    /// The name is not a valid interface name.
    #[error("invalid interface name `{0}`")]
    BadName(String),
}

fn ifreq(name: &str) -> Result<libc::ifreq, TapError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(TapError::BadName(name.to_string()));
    }
    // SAFETY: ifreq is plain old data (a name array and a union of
    // integers, sockaddrs and a pointer); all zeros is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, &s) in r.ifr_name.iter_mut().zip(bytes) {
        *d = s as libc::c_char;
    }
    Ok(r)
}

/// `ioctl(fd, req, ifr)`.
fn ioctl_ifreq(fd: RawFd, req: libc::c_ulong, ifr: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: `ifr` is a valid, exclusively borrowed ifreq for the whole
    // call, the size every request used here reads or writes.
    let r = unsafe { libc::ioctl(fd, req as _, ifr as *mut libc::ifreq) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An AF_INET datagram socket for interface ioctls.
fn ctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `name` is an existing Linux bridge.
pub fn is_bridge(name: &str) -> bool {
    !name.contains('/')
        && std::path::Path::new("/sys/class/net")
            .join(name)
            .join("bridge")
            .is_dir()
}

/// Whether this process has CAP_NET_ADMIN in its effective set.
pub fn has_net_admin() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("CapEff:")
                    .map(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
        })
        .flatten()
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

/// A TAP device with a virtio-net header on every packet, non-blocking.
/// It is not persistent: the interface goes away when this is dropped.
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Creates the TAP `name` (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR).
    pub fn create(name: &str) -> Result<Tap, TapError> {
        Tap::open(name, 0)
    }

    /// Creates the TAP `name` with `n` queues (IFF_MULTI_QUEUE when n > 1):
    /// one descriptor per queue; the interface goes away with the last.
    pub fn create_queues(name: &str, n: usize) -> Result<Vec<Tap>, TapError> {
        let flags = if n > 1 { libc::IFF_MULTI_QUEUE } else { 0 };
        (0..n.max(1)).map(|_| Tap::open(name, flags)).collect()
    }

    fn open(name: &str, extra_flags: libc::c_int) -> Result<Tap, TapError> {
        let mut ifr = ifreq(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(TapError::Open)?;
        ifr.ifr_ifru.ifru_flags =
            (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR | extra_flags) as libc::c_short;
        let err = |what, err| TapError::Ioctl {
            what,
            name: name.to_string(),
            err,
        };
        ioctl_ifreq(file.as_raw_fd(), libc::TUNSETIFF as libc::c_ulong, &mut ifr)
            .map_err(|e| err("creating TAP", e))?;
        let hdr_len: libc::c_int = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one c_int from the pointer, which
        // lives across the call.
        if unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                libc::TUNSETVNETHDRSZ as _,
                &hdr_len as *const libc::c_int,
            )
        } < 0
        {
            return Err(err(
                "setting the vnet header size of",
                io::Error::last_os_error(),
            ));
        }
        Ok(Tap {
            file,
            name: name.to_string(),
        })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The descriptor, for poll(2).
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    fn err(&self, what: &'static str) -> impl Fn(io::Error) -> TapError + '_ {
        move |err| TapError::Ioctl {
            what,
            name: self.name.clone(),
            err,
        }
    }

    /// Sets the host side's MAC (vif-bridge gives fe:ff:ff:ff:ff:ff, so
    /// that a bridge never takes the vif's address as its own).
    pub fn set_mac(&self, mac: [u8; 6]) -> Result<(), TapError> {
        let s = ctl_socket().map_err(self.err("opening a socket for"))?;
        let mut ifr = ifreq(&self.name)?;
        // SAFETY: writing plain data into the hwaddr member of the union.
        unsafe {
            ifr.ifr_ifru.ifru_hwaddr.sa_family = libc::ARPHRD_ETHER;
            for (d, &b) in ifr.ifr_ifru.ifru_hwaddr.sa_data.iter_mut().zip(&mac) {
                *d = b as libc::c_char;
            }
        }
        ioctl_ifreq(s.as_raw_fd(), libc::SIOCSIFHWADDR, &mut ifr)
            .map_err(self.err("setting the MAC of"))
    }

    /// Sets the MTU.
    pub fn set_mtu(&self, mtu: u16) -> Result<(), TapError> {
        let s = ctl_socket().map_err(self.err("opening a socket for"))?;
        let mut ifr = ifreq(&self.name)?;
        ifr.ifr_ifru.ifru_mtu = mtu.into();
        ioctl_ifreq(s.as_raw_fd(), libc::SIOCSIFMTU, &mut ifr)
            .map_err(self.err("setting the MTU of"))
    }

    /// Sets the transmit queue length: how many frames the host may queue
    /// for the guest (tun sizes its ring of frames not yet read from it).
    pub fn set_txqueuelen(&self, len: u32) -> Result<(), TapError> {
        let s = ctl_socket().map_err(self.err("opening a socket for"))?;
        let mut ifr = ifreq(&self.name)?;
        // ifr_qlen is the int member the MTU also uses.
        ifr.ifr_ifru.ifru_mtu = len.min(i32::MAX as u32) as libc::c_int;
        ioctl_ifreq(s.as_raw_fd(), libc::SIOCSIFTXQLEN, &mut ifr)
            .map_err(self.err("setting the queue length of"))
    }

    /// Attaches the interface to `bridge` (SIOCBRADDIF).
    pub fn attach(&self, bridge: &str) -> Result<(), TapError> {
        if !is_bridge(bridge) {
            return Err(TapError::NoBridge(bridge.to_string()));
        }
        let s = ctl_socket().map_err(self.err("opening a socket for"))?;
        let mut ifr = ifreq(&self.name)?;
        ioctl_ifreq(s.as_raw_fd(), libc::SIOCGIFINDEX, &mut ifr).map_err(self.err("finding"))?;
        // SAFETY: SIOCGIFINDEX filled the ifindex member.
        let index = unsafe { ifr.ifr_ifru.ifru_ifindex };
        let mut br = ifreq(bridge)?;
        br.ifr_ifru.ifru_ifindex = index;
        ioctl_ifreq(s.as_raw_fd(), SIOCBRADDIF, &mut br).map_err(|err| TapError::Ioctl {
            what: "attaching",
            name: format!("{} to bridge {bridge}", self.name),
            err,
        })
    }

    /// Brings the interface up.
    pub fn up(&self) -> Result<(), TapError> {
        let s = ctl_socket().map_err(self.err("opening a socket for"))?;
        let mut ifr = ifreq(&self.name)?;
        ioctl_ifreq(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr)
            .map_err(self.err("reading the flags of"))?;
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        ioctl_ifreq(s.as_raw_fd(), libc::SIOCSIFFLAGS, &mut ifr).map_err(self.err("bringing up"))
    }
}

impl super::PacketPort for Tap {
    fn name(&self) -> &str {
        &self.name
    }

    fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// One end of a non-blocking AF_UNIX SOCK_SEQPACKET pair used as a vif's
/// packet side: each `send` is one packet, as on a TAP, and the other end
/// sees (and injects) vnet header + frame. For tests of the whole device
/// where no TAP can be made.
pub struct SocketIo {
    fd: OwnedFd,
    name: String,
}

impl SocketIo {
    /// A connected pair: the vif's end and the peer's.
    pub fn pair(name: &str) -> io::Result<(SocketIo, OwnedFd)> {
        let mut fds = [0; 2];
        // SAFETY: socketpair(2) writes two descriptors into `fds`, which
        // lives across the call; the result is checked.
        let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((SocketIo { fd: a, name: name.to_string() }, b))
    }
}

impl PacketIo for SocketIo {
    fn send(&mut self, hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) -> io::Result<()> {
        writev2(self.fd.as_raw_fd(), hdr, frame)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        read_nonblocking(self.fd.as_raw_fd(), buf)
    }
}

impl super::PacketPort for SocketIo {
    fn name(&self) -> &str {
        &self.name
    }

    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// writev(2) of two buffers as one packet.
fn writev2(fd: RawFd, a: &[u8], b: &[u8]) -> io::Result<()> {
    let iov = [
        libc::iovec { iov_base: a.as_ptr() as *mut libc::c_void, iov_len: a.len() },
        libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() },
    ];
    // SAFETY: both iovecs describe live buffers with their true lengths,
    // only read by writev.
    let r = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// read(2) on a non-blocking descriptor: `None` when nothing waits.
fn read_nonblocking(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is a live, exclusively borrowed buffer of buf.len() bytes.
    let r = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock { Ok(None) } else { Err(e) };
    }
    Ok(Some(r as usize))
}

impl PacketIo for Tap {
    fn send(&mut self, hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) -> io::Result<()> {
        writev2(self.file.as_raw_fd(), hdr, frame)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        read_nonblocking(self.file.as_raw_fd(), buf)
    }

    fn set_offload(&mut self, tun_flags: u32) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        if unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                libc::TUNSETOFFLOAD as _,
                tun_flags as libc::c_ulong,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queue length asked for is what the kernel keeps, for every
    /// queue of a multi-queue TAP. Runs in a network namespace of its own
    /// (unshared by the test's thread), so the host's interfaces are not
    /// touched; needs CAP_NET_ADMIN, as the network tests do (without it,
    /// it says so and checks nothing).
    #[test]
    fn a_taps_queue_length_is_set() {
        if !has_net_admin() {
            eprintln!("a_taps_queue_length_is_set: skipped, no CAP_NET_ADMIN");
            return;
        }
        std::thread::spawn(|| {
            // SAFETY: unshare(2) with a flag; it changes only this thread's
            // network namespace, which ends with the thread.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "{}", io::Error::last_os_error());
            let queues = Tap::create_queues("xltq0", 2).unwrap();
            let read = || {
                let s = ctl_socket().unwrap();
                let mut ifr = ifreq("xltq0").unwrap();
                ioctl_ifreq(s.as_raw_fd(), libc::SIOCGIFTXQLEN, &mut ifr).unwrap();
                // SAFETY: SIOCGIFTXQLEN filled the int member.
                unsafe { ifr.ifr_ifru.ifru_mtu }
            };
            assert_eq!(read(), 1000, "tun's default");
            queues[0].set_txqueuelen(crate::backends::net::TX_QUEUE_LEN).unwrap();
            assert_eq!(read(), 32);
        })
        .join()
        .unwrap();
    }
}
