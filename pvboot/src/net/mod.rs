//! Network boot: where files come from when they come from a server.
//!
//! - [`tftp`]: a TFTP client (RFC 1350, 2347, 2348, 2349).
//! - [`http`]: an HTTP/1.1 GET client.
//!
//! Both are protocol state machines only: the guest's network stack owns
//! the sockets and timers, and the host tests drive the same code against
//! real servers (tftpd-hpa, Python's http.server).

pub mod http;
pub mod tftp;

use alloc::string::{String, ToString};
use core::fmt;
use core::net::Ipv4Addr;

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
        for bad in ["ftp://1.2.3.4/x", "http://example.org/x", "http://1.2.3.4:0/x", "http://1.2.3.4:99999/", "tftp://1.2.3.4/a b"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
