//! The address configuration a guest takes from its command line:
//! `ip=10.0.0.2/24 gw=10.0.0.1` (static), `ip=dhcp` or no `ip=` at all
//! (smoltcp's DHCP client). Pure, tested on the host.

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

/// How the interface gets its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrConfig {
    /// Ask a DHCP server.
    Dhcp,
    /// Fixed.
    Static {
        /// Address and prefix length.
        cidr: Ipv4Cidr,
        /// The default router, if any.
        gateway: Option<Ipv4Address>,
    },
}

/// Why a command line's network words are wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `ip=` is neither `dhcp` nor `A.B.C.D/N`.
    BadIp(alloc::string::String),
    /// `gw=` is not `A.B.C.D`.
    BadGateway(alloc::string::String),
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::BadIp(v) => write!(f, "ip={v}: want dhcp or A.B.C.D/N"),
            ConfigError::BadGateway(v) => write!(f, "gw={v}: want A.B.C.D"),
        }
    }
}

/// Parses `A.B.C.D`.
pub fn parse_ipv4(s: &str) -> Option<Ipv4Address> {
    let mut o = [0u8; 4];
    let mut parts = s.split('.');
    for b in o.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *b = p.parse().ok()?;
    }
    parts
        .next()
        .is_none()
        .then(|| Ipv4Address::new(o[0], o[1], o[2], o[3]))
}

/// Reads `ip=` and `gw=` from a whitespace-separated command line (the
/// last of each wins, as with kernel parameters). A bare address without
/// `/N` is a /24.
pub fn parse_cmdline(cmdline: &str) -> Result<AddrConfig, ConfigError> {
    let (mut ip, mut gw) = (None, None);
    for w in cmdline.split_ascii_whitespace() {
        if let Some(v) = w.strip_prefix("ip=") {
            ip = Some(v);
        } else if let Some(v) = w.strip_prefix("gw=") {
            gw = Some(v);
        }
    }
    let gateway = match gw {
        None => None,
        Some(g) => Some(parse_ipv4(g).ok_or_else(|| ConfigError::BadGateway(g.into()))?),
    };
    match ip {
        None | Some("dhcp") => Ok(AddrConfig::Dhcp),
        Some(v) => {
            let bad = || ConfigError::BadIp(v.into());
            let (a, len) = match v.split_once('/') {
                Some((a, n)) => (
                    a,
                    n.parse::<u8>().ok().filter(|&n| n <= 32).ok_or_else(bad)?,
                ),
                None => (v, 24),
            };
            let addr = parse_ipv4(a).ok_or_else(bad)?;
            Ok(AddrConfig::Static {
                cidr: Ipv4Cidr::new(addr, len),
                gateway,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dhcp() {
        assert_eq!(
            parse_cmdline("console=hvc0 ip=10.0.0.2/24 gw=10.0.0.1 port=7"),
            Ok(AddrConfig::Static {
                cidr: Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, 2), 24),
                gateway: Some(Ipv4Address::new(10, 0, 0, 1))
            })
        );
        assert_eq!(
            parse_cmdline("ip=192.168.1.9"),
            Ok(AddrConfig::Static {
                cidr: Ipv4Cidr::new(Ipv4Address::new(192, 168, 1, 9), 24),
                gateway: None
            })
        );
        assert_eq!(parse_cmdline(""), Ok(AddrConfig::Dhcp));
        assert_eq!(parse_cmdline("ip=dhcp gw=1.2.3.4"), Ok(AddrConfig::Dhcp));
        assert_eq!(parse_cmdline("ip=1.2.3.4/16 ip=dhcp"), Ok(AddrConfig::Dhcp));
    }

    #[test]
    fn bad_words_are_named() {
        assert_eq!(
            parse_cmdline("ip=10.0.0/24"),
            Err(ConfigError::BadIp("10.0.0/24".into()))
        );
        assert_eq!(
            parse_cmdline("ip=10.0.0.1/33"),
            Err(ConfigError::BadIp("10.0.0.1/33".into()))
        );
        assert_eq!(
            parse_cmdline("ip=10.0.0.256/8"),
            Err(ConfigError::BadIp("10.0.0.256/8".into()))
        );
        assert_eq!(
            parse_cmdline("ip=10.0.0.1 gw=x"),
            Err(ConfigError::BadGateway("x".into()))
        );
        assert_eq!(parse_ipv4("1.2.3.4.5"), None);
        assert_eq!(parse_ipv4("+1.2.3.4"), None);
    }
}
