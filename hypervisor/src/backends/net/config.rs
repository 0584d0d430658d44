//! xl vif specifications (xl-network-configuration(5)): what a
//! `vif = [...]` entry asks for, parsed as xl's parse_nic_config does, with
//! what Xenolith does not do refused by name rather than ignored.

use std::path::PathBuf;

/// The directory libxl resolves a relative `script=` against.
pub const SCRIPT_DIR: &str = "/etc/xen/scripts";
/// The longest Linux interface name (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// One parsed `vif` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VifSpec {
    /// The device number (`devid=`, or the entry's index).
    pub devid: u32,
    /// The guest's MAC address (`mac=`, or a random 00:16:3e one).
    pub mac: [u8; 6],
    /// Whether the MAC was given (or made up).
    pub mac_given: bool,
    /// The Linux bridge to attach the interface to (`bridge=`).
    pub bridge: Option<String>,
    /// The host interface's name (`vifname=`; default `vif<domid>.<devid>`).
    pub vifname: Option<String>,
    /// The hotplug script (`script=`, made absolute against [`SCRIPT_DIR`])
    /// run instead of the built-in vif-bridge behaviour.
    pub script: Option<PathBuf>,
    /// The guest's addresses (`ip=`), as written: for scripts (vif-route,
    /// vif-nat) and the backend's `ip` node.
    pub ip: Option<String>,
    /// The interface's MTU (`mtu=`).
    pub mtu: Option<u16>,
    /// The gateway device scripts use (`gatewaydev=`, or the deprecated `netdev=`).
    pub gatewaydev: Option<String>,
    /// `model=`, only meaningful for emulated NICs: kept for the record.
    pub model: Option<String>,
    /// `trusted` / `untrusted`: passed to the frontend (default trusted).
    pub trusted: bool,
}

impl VifSpec {
    /// The host interface name for domain `domid`.
    pub fn ifname(&self, domid: u16) -> String {
        self.vifname
            .clone()
            .unwrap_or_else(|| format!("vif{domid}.{}", self.devid))
    }

    /// The MAC as xl prints it.
    pub fn mac_string(&self) -> String {
        format_mac(&self.mac)
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// What is wrong with a vif specification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VifSpecError {
    /// A key xl does not know.
    #[error("unknown parameter `{0}` (xl-network-configuration(5) lists the known ones)")]
    UnknownParameter(String),
    /// A key that needs a value has none.
    #[error("{0}= needs a value")]
    MissingValue(&'static str),
    /// A malformed value.
    #[error("invalid {key} `{value}`: {why}")]
    BadValue {
        /// The parameter.
        key: &'static str,
        /// The value.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Valid xl, but not something Xenolith does.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// A network-rate limit as xl parses `rate=` (`10Mb/s`, `1GB/s@20ms`):
/// bytes per interval and the interval in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Bytes allowed per interval.
    pub bytes_per_interval: u64,
    /// The interval (default 50 ms, as xl's).
    pub interval_usecs: u32,
}

/// Parses `rate=` as xl's parse_vif_rate does: `N[GMK]{B,b}/s[@N{s,ms,us}]`.
pub fn parse_rate(s: &str) -> Option<Rate> {
    let (rate, interval) = match s.split_once('@') {
        Some((r, i)) => (r, Some(i)),
        None => (s, None),
    };
    let rate = rate.strip_suffix("/s")?;
    let (num, bits) = if let Some(r) = rate.strip_suffix('B') {
        (r, false)
    } else {
        (rate.strip_suffix('b')?, true)
    };
    let (digits, mult) = match num.char_indices().last()? {
        (i, 'G') => (&num[..i], 1_000_000_000u64),
        (i, 'M') => (&num[..i], 1_000_000),
        (i, 'K') => (&num[..i], 1_000),
        _ => (num, 1),
    };
    let mut bytes_per_sec = digits
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)?
        .checked_mul(mult)?;
    if bits {
        bytes_per_sec /= 8;
    }
    let interval_usecs: u64 = match interval {
        None => 50_000,
        Some(i) => {
            let (n, mult) = if let Some(n) = i.strip_suffix("us") {
                (n, 1)
            } else if let Some(n) = i.strip_suffix("ms") {
                (n, 1_000)
            } else {
                (i.strip_suffix('s')?, 1_000_000)
            };
            n.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)?
                .checked_mul(mult)
                .filter(|&u| u <= u64::from(u32::MAX))?
        }
    };
    let bytes_per_interval = bytes_per_sec.checked_mul(interval_usecs)? / 1_000_000;
    Some(Rate {
        bytes_per_interval,
        interval_usecs: interval_usecs as u32,
    })
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`), refusing a multicast address,
/// which no NIC may own.
pub fn parse_mac(s: &str) -> Result<[u8; 6], &'static str> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err("expected six hexadecimal bytes, e.g. 00:16:3e:12:34:56");
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.is_empty() || p.len() > 2 {
            return Err("expected six hexadecimal bytes, e.g. 00:16:3e:12:34:56");
        }
        *b = u8::from_str_radix(p, 16)
            .map_err(|_| "expected six hexadecimal bytes, e.g. 00:16:3e:12:34:56")?;
    }
    if mac[0] & 1 != 0 {
        return Err("a multicast address cannot be an interface's");
    }
    Ok(mac)
}

/// A Linux interface name: 1 to 15 bytes, no `/`, blank or `:`, not `.` or `..`.
fn check_ifname(key: &'static str, v: &str) -> Result<String, VifSpecError> {
    let bad = |why| {
        Err(VifSpecError::BadValue {
            key,
            value: v.escape_debug().to_string(),
            why,
        })
    };
    if v.is_empty() || v.len() > MAX_IFNAME {
        return bad("an interface name has 1 to 15 characters");
    }
    if v == "."
        || v == ".."
        || v.chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return bad("not a valid interface name");
    }
    Ok(v.to_string())
}

/// A random MAC as libxl makes one: 00:16:3e (Xen's OUI) and three random
/// bytes, the first below 0x80.
pub fn random_mac() -> [u8; 6] {
    let mut r = [0u8; 3];
    let got = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut r));
    if got.is_err() {
        // No /dev/urandom: the clock and the pid still tell domains apart.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let x = t ^ std::process::id().rotate_left(13);
        r = [x as u8, (x >> 8) as u8, (x >> 16) as u8];
    }
    [0x00, 0x16, 0x3e, r[0] & 0x7f, r[1], r[2]]
}

/// Parses the `index`-th `vif` entry.
pub fn parse(spec: &str, index: u32) -> Result<VifSpec, VifSpecError> {
    let mut v = VifSpec {
        devid: index,
        mac: [0; 6],
        mac_given: false,
        bridge: None,
        vifname: None,
        script: None,
        ip: None,
        mtu: None,
        gatewaydev: None,
        model: None,
        trusted: true,
    };
    for token in spec.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (key, value) = match token.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (token, None),
        };
        let need = |k: &'static str| {
            value
                .filter(|v| !v.is_empty())
                .ok_or(VifSpecError::MissingValue(k))
        };
        let bad = |key: &'static str, value: &str, why: &'static str| VifSpecError::BadValue {
            key,
            value: value.escape_debug().to_string(),
            why,
        };
        match key {
            "mac" => {
                let m = need("mac")?;
                v.mac = parse_mac(m).map_err(|why| bad("mac", m, why))?;
                v.mac_given = true;
            }
            "bridge" => v.bridge = Some(check_ifname("bridge", need("bridge")?)?),
            "vifname" => v.vifname = Some(check_ifname("vifname", need("vifname")?)?),
            "gatewaydev" | "netdev" => v.gatewaydev = Some(check_ifname("gatewaydev", need("gatewaydev")?)?),
            "type" => match need("type")? {
                "vif" => {}
                "ioemu" | "vif_ioemu" => return Err(VifSpecError::Unsupported("type=ioemu: Xenolith has no emulated NICs; use type=vif")),
                t => return Err(bad("type", t, "expected vif")),
            },
            "model" => v.model = Some(need("model")?.to_string()),
            "script" => {
                let s = need("script")?;
                if s.contains('\0') {
                    return Err(bad("script", s, "contains a NUL byte"));
                }
                let p = PathBuf::from(s);
                v.script = Some(if p.is_absolute() { p } else { PathBuf::from(SCRIPT_DIR).join(p) });
            }
            "ip" => {
                let ip = need("ip")?;
                for a in ip.split_whitespace() {
                    let addr = a.split_once('/').map_or(a, |(a, _)| a);
                    if addr.parse::<std::net::IpAddr>().is_err() {
                        return Err(bad("ip", ip, "expected IP addresses separated by blanks"));
                    }
                }
                v.ip = Some(ip.to_string());
            }
            "mtu" => {
                let m = need("mtu")?;
                v.mtu = Some(m.parse::<u16>().ok().filter(|&n| n >= 68).ok_or_else(|| bad("mtu", m, "expected 68 to 65535"))?);
            }
            "devid" => {
                let d = need("devid")?;
                v.devid = d.parse::<u32>().ok().filter(|&n| n < 1 << 16).ok_or_else(|| bad("devid", d, "expected 0 to 65535"))?;
            }
            "rate" => {
                let r = need("rate")?;
                parse_rate(r).ok_or_else(|| bad("rate", r, "expected e.g. 10Mb/s or 1MB/s@20ms"))?;
                return Err(VifSpecError::Unsupported("rate= (credit-based rate limiting) is not implemented by Xenolith's network backend"));
            }
            "backend" => {
                return Err(VifSpecError::Unsupported(
                    "backend= (a driver domain) is not supported: Xenolith's hypervisor is the only network backend",
                ))
            }
            "trusted" if value.is_none() => v.trusted = true,
            "untrusted" if value.is_none() => v.trusted = false,
            "accel" => return Err(VifSpecError::Unsupported("accel= is not supported (nor by xl)")),
            k if k == "forwarddev" || k.starts_with("colo_") => {
                return Err(VifSpecError::Unsupported("COLO replication (forwarddev=, colo_*) is not supported"))
            }
            _ => return Err(VifSpecError::UnknownParameter(token.escape_debug().to_string())),
        }
    }
    if !v.mac_given {
        v.mac = random_mac();
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse(s, 0).unwrap_err().to_string()
    }

    #[test]
    fn the_manual_example() {
        let v = parse("mac=00:16:3e:12:34:56,bridge=xenbr0", 0).unwrap();
        assert_eq!(v.mac, [0, 0x16, 0x3e, 0x12, 0x34, 0x56]);
        assert!(v.mac_given);
        assert_eq!(v.bridge.as_deref(), Some("xenbr0"));
        assert_eq!(v.ifname(7), "vif7.0");
        assert_eq!(v.mac_string(), "00:16:3e:12:34:56");
        assert!(v.trusted);
    }

    #[test]
    fn every_key() {
        let v = parse(
            " mac=00-16-3E-00-00-0a , bridge=br0, vifname=guest0, type=vif, ip=10.0.0.2 fd00::2/64, \
             script=vif-route, mtu=9000, devid=3, gatewaydev=eth0, model=e1000, untrusted",
            5,
        )
        .unwrap();
        assert_eq!(v.mac, [0, 0x16, 0x3e, 0, 0, 0x0a]);
        assert_eq!(v.vifname.as_deref(), Some("guest0"));
        assert_eq!(v.ifname(7), "guest0");
        assert_eq!(v.ip.as_deref(), Some("10.0.0.2 fd00::2/64"));
        assert_eq!(v.script, Some(PathBuf::from("/etc/xen/scripts/vif-route")));
        assert_eq!(v.mtu, Some(9000));
        assert_eq!(v.devid, 3);
        assert_eq!(v.gatewaydev.as_deref(), Some("eth0"));
        assert_eq!(v.model.as_deref(), Some("e1000"));
        assert!(!v.trusted);
        assert_eq!(
            parse("script=/usr/local/bin/my-vif", 0).unwrap().script,
            Some(PathBuf::from("/usr/local/bin/my-vif"))
        );
        assert_eq!(
            parse("netdev=eth1", 0).unwrap().gatewaydev.as_deref(),
            Some("eth1")
        );
        assert!(parse("trusted", 0).unwrap().trusted);
        assert_eq!(
            parse("", 2).unwrap().devid,
            2,
            "the index is the default devid"
        );
        assert_eq!(
            parse("bridge=xenbr0", 0).unwrap().bridge.as_deref(),
            Some("xenbr0")
        );
    }

    #[test]
    fn no_mac_means_a_random_xen_one() {
        let a = parse("bridge=xenbr0", 0).unwrap();
        assert!(!a.mac_given);
        assert_eq!(&a.mac[..3], &[0x00, 0x16, 0x3e]);
        assert!(a.mac[3] < 0x80);
        let b = parse("", 0).unwrap();
        let c = parse("", 0).unwrap();
        assert!(
            a.mac != b.mac || b.mac != c.mac,
            "three draws of 23 random bits are not all equal"
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            err("colour=blue"),
            "unknown parameter `colour=blue` (xl-network-configuration(5) lists the known ones)"
        );
        assert_eq!(
            err("bogus"),
            "unknown parameter `bogus` (xl-network-configuration(5) lists the known ones)"
        );
        assert_eq!(
            err("mac=00:16:3e:12:34"),
            "invalid mac `00:16:3e:12:34`: expected six hexadecimal bytes, e.g. 00:16:3e:12:34:56"
        );
        assert_eq!(err("mac=00:16:3e:12:34:zz"), "invalid mac `00:16:3e:12:34:zz`: expected six hexadecimal bytes, e.g. 00:16:3e:12:34:56");
        assert_eq!(
            err("mac=01:16:3e:12:34:56"),
            "invalid mac `01:16:3e:12:34:56`: a multicast address cannot be an interface's"
        );
        assert_eq!(err("mac="), "mac= needs a value");
        assert_eq!(err("bridge"), "bridge= needs a value");
        assert_eq!(
            err("bridge=a-very-long-bridge-name"),
            "invalid bridge `a-very-long-bridge-name`: an interface name has 1 to 15 characters"
        );
        assert_eq!(
            err("vifname=a/b"),
            "invalid vifname `a/b`: not a valid interface name"
        );
        assert_eq!(
            err("type=ioemu"),
            "type=ioemu: Xenolith has no emulated NICs; use type=vif"
        );
        assert_eq!(err("type=tap"), "invalid type `tap`: expected vif");
        assert_eq!(
            err("ip=10.0.0.300"),
            "invalid ip `10.0.0.300`: expected IP addresses separated by blanks"
        );
        assert_eq!(err("mtu=20"), "invalid mtu `20`: expected 68 to 65535");
        assert_eq!(
            err("devid=70000"),
            "invalid devid `70000`: expected 0 to 65535"
        );
        assert_eq!(
            err("rate=10Mb/s"),
            "rate= (credit-based rate limiting) is not implemented by Xenolith's network backend"
        );
        assert_eq!(
            err("rate=fast"),
            "invalid rate `fast`: expected e.g. 10Mb/s or 1MB/s@20ms"
        );
        assert_eq!(err("backend=netdom"), "backend= (a driver domain) is not supported: Xenolith's hypervisor is the only network backend");
        assert_eq!(err("accel=x"), "accel= is not supported (nor by xl)");
        assert_eq!(
            err("forwarddev=eth0"),
            "COLO replication (forwarddev=, colo_*) is not supported"
        );
        assert_eq!(
            err("colo_checkpoint_port=9"),
            "COLO replication (forwarddev=, colo_*) is not supported"
        );
        assert_eq!(
            err("trusted=1"),
            "unknown parameter `trusted=1` (xl-network-configuration(5) lists the known ones)"
        );
    }

    #[test]
    fn rates_as_xl_reads_them() {
        assert_eq!(
            parse_rate("10Mb/s"),
            Some(Rate {
                bytes_per_interval: 62_500,
                interval_usecs: 50_000
            })
        );
        assert_eq!(
            parse_rate("1MB/s@20ms"),
            Some(Rate {
                bytes_per_interval: 20_000,
                interval_usecs: 20_000
            })
        );
        assert_eq!(
            parse_rate("8Kb/s@1s"),
            Some(Rate {
                bytes_per_interval: 1_000,
                interval_usecs: 1_000_000
            })
        );
        assert_eq!(
            parse_rate("100B/s@500us"),
            Some(Rate {
                bytes_per_interval: 0,
                interval_usecs: 500
            })
        );
        assert_eq!(parse_rate("10Mb"), None);
        assert_eq!(parse_rate("0Mb/s"), None);
        assert_eq!(parse_rate("10Xb/s"), None);
        assert_eq!(parse_rate("10Mb/s@"), None);
    }
}
