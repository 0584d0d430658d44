//! The DHCP client's set-up and what a lease says about booting: BOOTP's
//! `siaddr` (next server) and `file` fields and options 66 (TFTP server
//! name) and 67 (boot file name), as a PXE ROM or GRUB's `net_bootp`
//! reads them. Pure apart from [`client`]; tested on the host.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use smoltcp::socket::dhcpv4;
use smoltcp::wire::{DhcpPacket, Ipv4Address};

/// Option 66: the TFTP server's name (here: an address).
pub const OPT_TFTP_SERVER_NAME: u8 = 66;
/// Option 67: the boot file's name.
pub const OPT_BOOTFILE_NAME: u8 = 67;

/// What the client asks for: smoltcp's default list (subnet mask, router,
/// DNS) and the two boot options.
const PARAMETER_REQUEST_LIST: &[u8] = &[1, 3, 6, OPT_TFTP_SERVER_NAME, OPT_BOOTFILE_NAME];

/// BOOTP's fixed fields: `file` is 128 bytes at offset 108.
const FILE_FIELD: core::ops::Range<usize> = 108..236;

/// A DHCP client socket that asks for the boot options and keeps the
/// lease's packet to read them from. The packet buffer lives as long as
/// the socket set (`'static`), so it is allocated once per stack and never
/// freed: 1.5 KiB.
pub fn client() -> dhcpv4::Socket<'static> {
    let mut s = dhcpv4::Socket::new();
    s.set_parameter_request_list(PARAMETER_REQUEST_LIST);
    s.set_receive_packet_buffer(Box::leak(vec![0u8; 1500].into_boxed_slice()));
    s
}

/// What a DHCP server said about booting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpBoot {
    /// The server that gave the lease (its server identifier).
    pub dhcp_server: Ipv4Address,
    /// BOOTP's `siaddr`, the next server, when not 0.0.0.0.
    pub next_server: Option<Ipv4Address>,
    /// Option 66.
    pub tftp_server: Option<String>,
    /// Option 67, else BOOTP's `file` field.
    pub boot_file: Option<String>,
}

/// A string option or field: up to the first NUL, printable ASCII only
/// (anything else is a server's garbage and is left out).
fn text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let t = &bytes[..end];
    (!t.is_empty() && t.iter().all(|b| b.is_ascii_graphic())).then(|| String::from_utf8_lossy(t).into_owned())
}

impl DhcpBoot {
    /// Reads the boot fields of the lease's packet (if smoltcp kept it).
    pub fn from_lease(dhcp_server: Ipv4Address, packet: Option<&DhcpPacket<&[u8]>>) -> DhcpBoot {
        let mut boot = DhcpBoot { dhcp_server, next_server: None, tftp_server: None, boot_file: None };
        let Some(p) = packet else { return boot };
        boot.next_server = Some(p.server_ip()).filter(|a| !a.is_unspecified());
        for o in p.options() {
            match o.kind {
                OPT_TFTP_SERVER_NAME => boot.tftp_server = text(o.data),
                OPT_BOOTFILE_NAME => boot.boot_file = text(o.data),
                _ => {}
            }
        }
        if boot.boot_file.is_none() {
            boot.boot_file = p.into_inner().get(FILE_FIELD).and_then(text);
        }
        boot
    }

    /// The server to fetch boot files from: option 66 if it is an address,
    /// else the next server, else the DHCP server itself (as GRUB and most
    /// PXE ROMs fall back).
    pub fn server(&self) -> Ipv4Address {
        self.tftp_server
            .as_deref()
            .and_then(super::config::parse_ipv4)
            .or(self.next_server)
            .unwrap_or(self.dhcp_server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A DHCPACK as dnsmasq sends it for `dhcp-boot=/menu.lst,,10.0.0.9`.
    fn ack(siaddr: [u8; 4], file: &[u8], options: &[(u8, &[u8])]) -> Vec<u8> {
        let mut p = vec![0u8; 240];
        p[0] = 2; // BOOTREPLY
        p[1] = 1;
        p[2] = 6;
        p[16..20].copy_from_slice(&[10, 0, 0, 2]); // yiaddr
        p[20..24].copy_from_slice(&siaddr);
        p[108..108 + file.len()].copy_from_slice(file);
        p[236..240].copy_from_slice(&[99, 130, 83, 99]);
        p.extend_from_slice(&[53, 1, 5]);
        for (kind, data) in options {
            p.push(*kind);
            p.push(data.len() as u8);
            p.extend_from_slice(data);
        }
        p.push(255);
        p
    }

    #[test]
    fn boot_fields_and_options_are_read() {
        let dhcp = Ipv4Address::new(10, 0, 0, 1);
        let bytes = ack([10, 0, 0, 9], b"/menu.lst", &[]);
        let p = DhcpPacket::new_checked(&bytes[..]).unwrap();
        let b = DhcpBoot::from_lease(dhcp, Some(&p));
        assert_eq!(b.next_server, Some(Ipv4Address::new(10, 0, 0, 9)));
        assert_eq!(b.boot_file.as_deref(), Some("/menu.lst"));
        assert_eq!(b.server(), Ipv4Address::new(10, 0, 0, 9));

        // Options win over the fixed fields.
        let bytes = ack([10, 0, 0, 9], b"old", &[(66, b"10.0.0.7"), (67, b"boot/grub/grub.cfg\0")]);
        let b = DhcpBoot::from_lease(dhcp, Some(&DhcpPacket::new_checked(&bytes[..]).unwrap()));
        assert_eq!(b.boot_file.as_deref(), Some("boot/grub/grub.cfg"));
        assert_eq!(b.server(), Ipv4Address::new(10, 0, 0, 7));

        // Nothing said: the DHCP server; garbage is left out.
        let bytes = ack([0; 4], b"", &[(66, b"tftp.example.org"), (67, b"bad\x07name")]);
        let b = DhcpBoot::from_lease(dhcp, Some(&DhcpPacket::new_checked(&bytes[..]).unwrap()));
        assert_eq!((b.next_server, b.boot_file.as_deref()), (None, None));
        assert_eq!(b.server(), dhcp);
        assert_eq!(DhcpBoot::from_lease(dhcp, None).server(), dhcp);
    }
}
