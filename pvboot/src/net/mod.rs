//! Network boot: where files come from when they come from a server.
//!
//! - [`tftp`]: a TFTP client (RFC 1350, 2347, 2348, 2349).
//! - [`http`]: an HTTP/1.1 GET client.
//! - [`netfs`]: a server's files as a [`crate::fs::FileSystem`], streamed
//!   over a [`netfs::Network`].
//!
//! The clients are protocol state machines only: the network stack (the
//! guest's over netfront, or std's in the host tests, which drive the same
//! code against tftpd-hpa and Python's http.server) owns sockets and time.

pub mod http;
pub mod netfs;
pub mod tftp;

use alloc::string::{String, ToString};
use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};

/// How a file is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// TFTP, port 69 unless given.
    Tftp,
    /// HTTP, port 80 unless given.
    Http,
}

/// A file on a server: `tftp://10.0.0.1/boot/menu.lst`,
/// `http://10.0.0.1:8080/netbsd`. Hosts are IPv4 addresses: pvboot has no
/// resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The protocol.
    pub scheme: Scheme,
    /// The server.
    pub host: Ipv4Addr,
    /// The server's port.
    pub port: u16,
    /// The path on the server, starting with `/`.
    pub path: String,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadUrl(pub &'static str);

impl fmt::Display for BadUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Url {
    /// Parses `scheme://a.b.c.d[:port]/path`.
    pub fn parse(text: &str) -> Result<Url, BadUrl> {
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("tftp://") {
            (Scheme::Tftp, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            return Err(BadUrl("only tftp:// and http:// URLs are fetched"));
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok().filter(|&p| p != 0).ok_or(BadUrl("port is not a number from 1 to 65535"))?),
            None => (authority, if scheme == Scheme::Tftp { tftp::PORT } else { 80 }),
        };
        let host = host.parse().map_err(|_| BadUrl("host must be an IPv4 address (pvboot has no DNS resolver)"))?;
        if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(BadUrl("path has a blank or a control character"));
        }
        Ok(Url { scheme, host, port, path: if path.is_empty() { "/".to_string() } else { path.to_string() } })
    }

    /// The same server, another path (a file a config names).
    pub fn with_path(&self, path: &str) -> Url {
        let path = if path.starts_with('/') { path.to_string() } else { alloc::format!("/{path}") };
        Url { path, ..self.clone() }
    }

    /// `path` taken as relative to this URL's directory (the path up to its
    /// last `/`): `tftp://s/pxe/` joined with `/boot/netbsd` is
    /// `tftp://s/pxe/boot/netbsd`, as a disk's paths are relative to its
    /// volume.
    pub fn join(&self, path: &str) -> Url {
        let dir = &self.path[..self.path.rfind('/').map_or(0, |i| i + 1)];
        self.with_path(&alloc::format!("{dir}{}", path.trim_start_matches('/')))
    }

    /// This URL's directory (itself if it ends with `/`).
    pub fn directory(&self) -> Url {
        self.join("")
    }

    /// The HTTP `Host` header's value.
    pub fn authority(&self) -> String {
        match (self.scheme, self.port) {
            (Scheme::Http, 80) | (Scheme::Tftp, tftp::PORT) => self.host.to_string(),
            _ => alloc::format!("{}:{}", self.host, self.port),
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Tftp => "tftp",
            Scheme::Http => "http",
        };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

/// A GRUB network device: `(tftp)` and `(http)` are the boot server,
/// `(tftp,10.0.0.1)` and `(http,10.0.0.1:8080)` (or GRUB's
/// `(http,10.0.0.1,8080)`) another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDevice {
    /// The protocol.
    pub scheme: Scheme,
    /// The server, `None` for the boot server.
    pub server: Option<SocketAddrV4>,
}

impl NetDevice {
    /// Parses a device with or without its parentheses; `None` if it is not
    /// a network device at all.
    pub fn parse(dev: &str) -> Option<Result<NetDevice, BadUrl>> {
        let inner = dev.strip_prefix('(').and_then(|d| d.strip_suffix(')')).unwrap_or(dev);
        let (proto, server) = inner.split_once(',').map_or((inner, None), |(p, s)| (p, Some(s)));
        let scheme = match proto {
            "tftp" => Scheme::Tftp,
            "http" => Scheme::Http,
            _ => return None,
        };
        let Some(server) = server else { return Some(Ok(NetDevice { scheme, server: None })) };
        let prefix = if scheme == Scheme::Tftp { "tftp://" } else { "http://" };
        let url = alloc::format!("{prefix}{}/", server.replacen(',', ":", 1));
        Some(Url::parse(&url).map(|u| NetDevice { scheme, server: Some(SocketAddrV4::new(u.host, u.port)) }))
    }

    /// The URL of `path` on this device, given the boot server's URL.
    pub fn url(&self, boot_server: Option<&Url>, path: &str) -> Result<Url, BadUrl> {
        let (host, port) = match (self.server, boot_server) {
            (Some(s), _) => (*s.ip(), s.port()),
            (None, Some(b)) if b.scheme == self.scheme => (b.host, b.port),
            (None, Some(b)) => (b.host, if self.scheme == Scheme::Tftp { tftp::PORT } else { 80 }),
            (None, None) => return Err(BadUrl("no boot server: pvboot did not boot from the network (netboot)")),
        };
        Ok(Url { scheme: self.scheme, host, port, path: String::new() }.with_path(path))
    }
}

impl fmt::Display for NetDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.scheme {
            Scheme::Tftp => "tftp",
            Scheme::Http => "http",
        };
        match self.server {
            None => write!(f, "({proto})"),
            Some(s) => write!(f, "({proto},{s})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_default_ports_and_print_back() {
        let u = Url::parse("tftp://10.0.0.1/boot/menu.lst").unwrap();
        assert_eq!((u.scheme, u.host, u.port, u.path.as_str()), (Scheme::Tftp, Ipv4Addr::new(10, 0, 0, 1), 69, "/boot/menu.lst"));
        let u = Url::parse("http://192.168.1.2:8080").unwrap();
        assert_eq!((u.port, u.path.as_str(), u.authority().as_str()), (8080, "/", "192.168.1.2:8080"));
        assert_eq!(u.with_path("netbsd").to_string(), "http://192.168.1.2:8080/netbsd");
        let pxe = Url::parse("tftp://10.0.0.1/pxe/menu.lst").unwrap();
        assert_eq!(pxe.join("/boot/netbsd").to_string(), "tftp://10.0.0.1/pxe/boot/netbsd");
        assert_eq!(pxe.directory().to_string(), "tftp://10.0.0.1/pxe/");
        assert_eq!(u.join("netbsd").to_string(), "http://192.168.1.2:8080/netbsd");
        for bad in ["ftp://1.2.3.4/x", "http://example.org/x", "http://1.2.3.4:0/x", "http://1.2.3.4:99999/", "tftp://1.2.3.4/a b"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn network_devices() {
        let d = |s: &str| NetDevice::parse(s).map(|r| r.map(|d| d.to_string()));
        assert_eq!(d("(tftp)"), Some(Ok("(tftp)".into())));
        assert_eq!(d("(http,10.0.0.1)"), Some(Ok("(http,10.0.0.1:80)".into())));
        assert_eq!(d("(http,10.0.0.1,8080)"), Some(Ok("(http,10.0.0.1:8080)".into())));
        assert_eq!(d("tftp,10.0.0.1:6969"), Some(Ok("(tftp,10.0.0.1:6969)".into())));
        assert!(matches!(d("(http,server.example)"), Some(Err(_))));
        assert_eq!(d("(hd0,1)"), None);
        let boot = Url::parse("tftp://10.0.0.1/pxe/").unwrap();
        let dev = NetDevice::parse("(http)").unwrap().unwrap();
        assert_eq!(dev.url(Some(&boot), "/netbsd").unwrap().to_string(), "http://10.0.0.1/netbsd");
        assert!(dev.url(None, "/netbsd").is_err());
    }
}
