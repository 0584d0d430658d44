//! A TFTP client (RFC 1350) with option negotiation (RFC 2347), `blksize`
//! (RFC 2348) and `tsize` (RFC 2349), without I/O of its own.
//!
//! The caller owns the UDP socket: it sends [`Download::start`]'s read
//! request to the server's port 69, hands every datagram that comes back to
//! [`Download::receive`] with its source port, sends what that returns, and
//! calls [`Download::timeout`] when nothing came for a while. The server's
//! first answer fixes its transfer port (its "TID"); a datagram from any
//! other port is refused with ERROR 5, as RFC 1350 says, and does not
//! disturb the transfer.
//!
//! Block numbers wrap from 65535 to 0, as tftpd-hpa and atftpd do, so a
//! file may be larger than 65535 blocks (32 MiB at the default 512 bytes).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// The server port read requests go to.
pub const PORT: u16 = 69;
/// The block size when the server does not take the `blksize` option.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// The block size asked for: a 1500-byte Ethernet MTU minus IPv4 (20),
/// UDP (8) and TFTP (4) headers, the value PXE firmware uses.
pub const ETHERNET_BLKSIZE: u16 = 1468;
/// Retransmissions of one packet before the transfer is given up.
pub const MAX_RETRIES: u32 = 5;

const OP_RRQ: u16 = 1;
const OP_DATA: u16 = 3;
const OP_ACK: u16 = 4;
const OP_ERROR: u16 = 5;
const OP_OACK: u16 = 6;

/// RFC 1350's "unknown transfer ID".
const ERR_UNKNOWN_TID: u16 = 5;
/// RFC 2347's "option negotiation refused": the client ends the transfer.
const ERR_OPTION_REFUSED: u16 = 8;

/// Why a transfer failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TftpError {
    /// The server answered with an ERROR packet.
    Server {
        /// Its error code (1 is "file not found", 2 "access violation").
        code: u16,
        /// Its message.
        message: String,
    },
    /// The file is larger than the caller can hold.
    TooLarge {
        /// The size the server announced (`tsize`), or the bytes received
        /// when the limit was crossed.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The server broke the protocol; says how.
    Protocol(&'static str),
    /// [`MAX_RETRIES`] retransmissions went unanswered.
    TimedOut,
    /// The file name cannot be sent (empty, too long, or has a NUL).
    BadName,
}

impl fmt::Display for TftpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TftpError::Server { code, message } => write!(f, "TFTP server error {code}: {message}"),
            TftpError::TooLarge { size, max } => write!(f, "file of {size} bytes is larger than the {max} bytes there is room for"),
            TftpError::Protocol(why) => write!(f, "TFTP protocol error: {why}"),
            TftpError::TimedOut => write!(f, "TFTP server stopped answering ({MAX_RETRIES} retransmissions)"),
            TftpError::BadName => f.write_str("file name cannot be sent by TFTP (empty, over 255 bytes, or with a NUL)"),
        }
    }
}

/// What the caller asks of a transfer.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The block size to ask for (8 to 65464); [`ETHERNET_BLKSIZE`] fits
    /// one Ethernet frame.
    pub blksize: u16,
    /// The largest file accepted, in bytes.
    pub max_size: u64,
}

/// What to do after a datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'p> {
    /// New bytes of the file, in order and each once; send `ack` to the
    /// server. After the `last` block the transfer is complete.
    Data {
        /// The block's bytes.
        bytes: &'p [u8],
        /// The acknowledgement to send.
        ack: [u8; 4],
        /// This was the final block.
        last: bool,
    },
    /// Send this packet to the server (an acknowledgement of options or a
    /// repeated acknowledgement of a duplicate block).
    Send([u8; 4]),
    /// A datagram from a stranger: send `packet` to its `port`, nothing else.
    Reject {
        /// The stranger's port.
        port: u16,
        /// ERROR 5, unknown transfer ID.
        packet: Vec<u8>,
    },
    /// Nothing to do (a stale duplicate).
    Ignore,
}

/// One file being read.
#[derive(Debug)]
pub struct Download {
    options: Options,
    /// The server's transfer port, once it answered.
    server_port: Option<u16>,
    blksize: u16,
    tsize: Option<u64>,
    /// The last block received (0 before the first).
    block: u16,
    received: u64,
    done: bool,
    /// What [`Download::timeout`] sends again.
    last_sent: Vec<u8>,
    retries: u32,
}

impl Download {
    /// Starts reading `name`; returns the transfer and the read request to
    /// send to the server's [`PORT`].
    pub fn start(name: &str, options: Options) -> Result<(Download, Vec<u8>), TftpError> {
        if name.is_empty() || name.len() > 255 || name.contains('\0') {
            return Err(TftpError::BadName);
        }
        let blksize = options.blksize.clamp(8, 65464);
        let mut rrq = Vec::with_capacity(name.len() + 40);
        rrq.extend_from_slice(&OP_RRQ.to_be_bytes());
        for field in [name, "octet", "blksize", &blksize.to_string(), "tsize", "0"] {
            rrq.extend_from_slice(field.as_bytes());
            rrq.push(0);
        }
        let download = Download {
            options: Options { blksize, ..options },
            server_port: None,
            blksize: DEFAULT_BLKSIZE,
            tsize: None,
            block: 0,
            received: 0,
            done: false,
            last_sent: rrq.clone(),
            retries: 0,
        };
        Ok((download, rrq))
    }

    /// Takes one datagram from `port`.
    pub fn receive<'p>(&mut self, port: u16, packet: &'p [u8]) -> Result<Step<'p>, TftpError> {
        if *self.server_port.get_or_insert(port) != port {
            return Ok(Step::Reject { port, packet: error_packet(ERR_UNKNOWN_TID, "unknown transfer ID") });
        }
        if packet.len() < 4 {
            return Err(TftpError::Protocol("datagram shorter than 4 bytes"));
        }
        let opcode = u16::from_be_bytes([packet[0], packet[1]]);
        let number = u16::from_be_bytes([packet[2], packet[3]]);
        match opcode {
            OP_ERROR => {
                let text = &packet[4..];
                let text = &text[..text.iter().position(|&b| b == 0).unwrap_or(text.len())];
                Err(TftpError::Server { code: number, message: String::from_utf8_lossy(text).into_owned() })
            }
            OP_OACK if self.block == 0 && self.received == 0 => self.options_acknowledged(&packet[2..]),
            OP_OACK => Ok(Step::Ignore),
            OP_DATA => self.data(number, &packet[4..]),
            _ => Err(TftpError::Protocol("unexpected opcode")),
        }
    }

    fn options_acknowledged<'p>(&mut self, mut fields: &[u8]) -> Result<Step<'p>, TftpError> {
        while !fields.is_empty() {
            let (name, rest) = cstr(fields).ok_or(TftpError::Protocol("OACK option without a value"))?;
            let (value, rest) = cstr(rest).ok_or(TftpError::Protocol("OACK option without a value"))?;
            fields = rest;
            let number = || value.parse::<u64>().map_err(|_| TftpError::Protocol("OACK value is not a number"));
            if name.eq_ignore_ascii_case("blksize") {
                match number()? {
                    n @ 8..=65464 if n <= u64::from(self.options.blksize) => self.blksize = n as u16,
                    _ => return Err(TftpError::Protocol("OACK blksize larger than asked or below 8")),
                }
            } else if name.eq_ignore_ascii_case("tsize") {
                let size = number()?;
                if size > self.options.max_size {
                    return Err(TftpError::TooLarge { size, max: self.options.max_size });
                }
                self.tsize = Some(size);
            } else {
                return Err(TftpError::Protocol("OACK names an option that was not asked for"));
            }
        }
        Ok(Step::Send(self.remember(ack(0))))
    }

    fn data<'p>(&mut self, number: u16, bytes: &'p [u8]) -> Result<Step<'p>, TftpError> {
        if self.done || number != self.block.wrapping_add(1) {
            // Our acknowledgement was lost: the server sends the block again.
            return Ok(if !self.done && number == self.block && self.received > 0 { Step::Send(ack(number)) } else { Step::Ignore });
        }
        if bytes.len() > usize::from(self.blksize) {
            return Err(TftpError::Protocol("DATA block larger than the block size"));
        }
        let received = self.received + bytes.len() as u64;
        if received > self.options.max_size {
            return Err(TftpError::TooLarge { size: received, max: self.options.max_size });
        }
        let last = bytes.len() < usize::from(self.blksize);
        if self.tsize.is_some_and(|t| received > t || (last && received != t)) {
            return Err(TftpError::Protocol("file size differs from the tsize announced"));
        }
        self.block = number;
        self.received = received;
        self.done = last;
        Ok(Step::Data { bytes, ack: self.remember(ack(number)), last })
    }

    fn remember(&mut self, packet: [u8; 4]) -> [u8; 4] {
        self.last_sent.clear();
        self.last_sent.extend_from_slice(&packet);
        self.retries = 0;
        packet
    }

    /// Nothing came in time: the packet to send again, or
    /// [`TftpError::TimedOut`] after [`MAX_RETRIES`].
    pub fn timeout(&mut self) -> Result<&[u8], TftpError> {
        self.retries += 1;
        if self.retries > MAX_RETRIES {
            return Err(TftpError::TimedOut);
        }
        Ok(&self.last_sent)
    }

    /// The packet that tells the server the transfer is abandoned, for an
    /// error found on this side (too large, a protocol error).
    pub fn abort_packet(error: &TftpError) -> Vec<u8> {
        error_packet(ERR_OPTION_REFUSED, &error.to_string())
    }

    /// The server's transfer port, once it answered.
    pub fn server_port(&self) -> Option<u16> {
        self.server_port
    }

    /// The file's size as the server announced it, if it did.
    pub fn tsize(&self) -> Option<u64> {
        self.tsize
    }

    /// The block size in use.
    pub fn blksize(&self) -> u16 {
        self.blksize
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Whether the last block came.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

fn ack(block: u16) -> [u8; 4] {
    let [a, b] = OP_ACK.to_be_bytes();
    let [c, d] = block.to_be_bytes();
    [a, b, c, d]
}

fn error_packet(code: u16, message: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(5 + message.len());
    p.extend_from_slice(&OP_ERROR.to_be_bytes());
    p.extend_from_slice(&code.to_be_bytes());
    p.extend(message.bytes().filter(|&b| b != 0));
    p.push(0);
    p
}

/// Splits a NUL-terminated ASCII string off the front of `b`.
fn cstr(b: &[u8]) -> Option<(&str, &[u8])> {
    let end = b.iter().position(|&c| c == 0)?;
    Some((core::str::from_utf8(&b[..end]).ok()?, &b[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: Options = Options { blksize: 512, max_size: 1 << 20 };

    fn data(block: u16, bytes: &[u8]) -> Vec<u8> {
        let mut p = Vec::from(OP_DATA.to_be_bytes());
        p.extend_from_slice(&block.to_be_bytes());
        p.extend_from_slice(bytes);
        p
    }

    #[test]
    fn the_read_request_asks_for_octet_blksize_and_tsize() {
        let (_, rrq) = Download::start("boot/menu.lst", Options { blksize: 1468, max_size: 9 }).unwrap();
        assert_eq!(rrq, b"\0\x01boot/menu.lst\0octet\0blksize\x001468\0tsize\x000\0");
        assert_eq!(Download::start("a\0b", OPTS).unwrap_err(), TftpError::BadName);
    }

    #[test]
    fn a_server_without_options_sends_512_byte_blocks() {
        let (mut d, _) = Download::start("f", OPTS).unwrap();
        let full = data(1, &[7; 512]);
        assert_eq!(d.receive(1000, &full).unwrap(), Step::Data { bytes: &[7; 512], ack: ack(1), last: false });
        // The acknowledgement was lost: the block comes again and is acknowledged, not delivered.
        assert_eq!(d.receive(1000, &full).unwrap(), Step::Send(ack(1)));
        let end = data(2, &[8; 3]);
        assert_eq!(d.receive(1000, &end).unwrap(), Step::Data { bytes: &[8; 3], ack: ack(2), last: true });
        assert!(d.is_done() && d.received() == 515);
        assert_eq!(d.receive(1000, &end).unwrap(), Step::Ignore);
    }

    #[test]
    fn a_stranger_is_refused_without_disturbing_the_transfer() {
        let (mut d, _) = Download::start("f", OPTS).unwrap();
        d.receive(1000, &data(1, &[1; 512])).unwrap();
        match d.receive(2000, &data(2, &[2; 4])).unwrap() {
            Step::Reject { port: 2000, packet } => assert_eq!(&packet[..4], &[0, 5, 0, 5]),
            other => panic!("{other:?}"),
        }
        assert_eq!(d.received(), 512);
    }

    #[test]
    fn options_are_checked_against_what_was_asked() {
        let (mut d, _) = Download::start("f", OPTS).unwrap();
        assert_eq!(d.receive(9, b"\0\x06blksize\x00512\0tsize\x00700\0").unwrap(), Step::Send(ack(0)));
        assert_eq!((d.blksize(), d.tsize()), (512, Some(700)));
        // A file longer than its tsize is refused.
        d.receive(9, &data(1, &[0; 512])).unwrap();
        assert!(matches!(d.receive(9, &data(2, &[0; 300])), Err(TftpError::Protocol(_))));

        let (mut d, _) = Download::start("f", OPTS).unwrap();
        assert!(matches!(d.receive(9, b"\0\x06blksize\x009000\0"), Err(TftpError::Protocol(_))));
        let (mut d, _) = Download::start("f", OPTS).unwrap();
        assert_eq!(d.receive(9, b"\0\x06tsize\x0099999999\0").unwrap_err(), TftpError::TooLarge { size: 99_999_999, max: 1 << 20 });
    }

    #[test]
    fn server_errors_carry_code_and_message() {
        let (mut d, _) = Download::start("f", OPTS).unwrap();
        assert_eq!(d.receive(9, b"\0\x05\0\x01File not found\0").unwrap_err(), TftpError::Server { code: 1, message: "File not found".into() });
    }

    #[test]
    fn block_numbers_wrap_after_65535() {
        let (mut d, _) = Download::start("f", Options { blksize: 8, max_size: u64::MAX }).unwrap();
        d.receive(9, b"\0\x06blksize\x008\0").unwrap();
        for n in 1..=70_000u32 {
            let p = data(n as u16, &[0; 8]);
            assert!(matches!(d.receive(9, &p).unwrap(), Step::Data { last: false, .. }), "block {n}");
        }
        assert_eq!(d.received(), 560_000);
    }

    #[test]
    fn retransmissions_repeat_the_last_packet_then_give_up() {
        let (mut d, rrq) = Download::start("f", OPTS).unwrap();
        for _ in 0..MAX_RETRIES {
            assert_eq!(d.timeout().unwrap(), &rrq[..]);
        }
        assert_eq!(d.timeout().unwrap_err(), TftpError::TimedOut);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for p in [&b""[..], b"\0", b"\0\x03\0", b"\0\x09\0\0", b"\0\x06blksize", b"\0\x06blksize\0x\0", b"\0\x06foo\x001\0"] {
            let (mut d, _) = Download::start("f", OPTS).unwrap();
            let _ = d.receive(9, p);
        }
    }
}
