//! The control socket's framing, shared by the service and its clients.
//!
//! A client sends one [`Kind::Request`] frame: its working directory and
//! the verb's arguments, NUL-separated. The service answers with output
//! frames and ends with [`Kind::Exit`]; or, for `console` and `create -c`,
//! with [`Kind::Attached`], after which the connection carries the
//! console's raw bytes both ways until either side closes it.
//!
//! A frame is a kind byte, a little-endian u32 length and that many bytes.

use std::io::{self, Read, Write};

/// The largest frame either side accepts: a request is a path and a few
/// arguments, output comes in pieces.
pub const MAX_FRAME: usize = 1 << 20;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Client to service: working directory and arguments.
    Request,
    /// Service to client: bytes for standard output.
    Stdout,
    /// Service to client: bytes for standard error.
    Stderr,
    /// Service to client: the command's exit status (one byte); the last frame.
    Exit,
    /// Service to client: the console is attached; raw bytes follow.
    Attached,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Request => b'Q',
            Kind::Stdout => b'O',
            Kind::Stderr => b'E',
            Kind::Exit => b'X',
            Kind::Attached => b'A',
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        [Kind::Request, Kind::Stdout, Kind::Stderr, Kind::Exit, Kind::Attached].into_iter().find(|k| k.byte() == b)
    }
}

/// Writes one frame.
pub fn send(w: &mut impl Write, kind: Kind, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len()).ok().filter(|&n| n as usize <= MAX_FRAME).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut frame = Vec::with_capacity(5 + payload.len());
    frame.push(kind.byte());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(payload);
    w.write_all(&frame)
}

/// Reads one frame; `None` at a clean end of stream.
pub fn recv(r: &mut impl Read) -> io::Result<Option<(Kind, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read(&mut head[..1])? {
        0 => return Ok(None),
        _ => r.read_exact(&mut head[1..])?,
    }
    let kind = Kind::from_byte(head[0]).ok_or_else(|| bad(format!("unknown frame kind {:#04x}", head[0])))?;
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(bad(format!("frame of {len} bytes")));
    }
    let mut payload = vec![0; len];
    r.read_exact(&mut payload)?;
    Ok(Some((kind, payload)))
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A request: the client's working directory (relative paths in the
/// arguments and in an xl.cfg resolve against it, as they would for xl)
/// and the verb with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The client's working directory.
    pub cwd: String,
    /// The verb and its arguments, as typed.
    pub args: Vec<String>,
}

impl Request {
    /// The frame payload: the fields NUL-separated (none may hold a NUL).
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        for (i, field) in std::iter::once(&self.cwd).chain(&self.args).enumerate() {
            if field.contains('\0') {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "an argument holds a NUL byte"));
            }
            if i > 0 {
                out.push(0);
            }
            out.extend_from_slice(field.as_bytes());
        }
        Ok(out)
    }

    /// Parses a payload made by [`Request::encode`].
    pub fn decode(payload: &[u8]) -> io::Result<Self> {
        let text = std::str::from_utf8(payload).map_err(|_| bad("request is not UTF-8".into()))?;
        let mut fields = text.split('\0').map(str::to_owned);
        let cwd = fields.next().unwrap_or_default();
        let args: Vec<String> = fields.collect();
        if args.is_empty() || args[0].is_empty() {
            return Err(bad("request without a verb".into()));
        }
        Ok(Request { cwd, args })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_requests_round_trip() {
        let req = Request { cwd: "/root".into(), args: vec!["create".into(), "-c".into(), "a b.cfg".into(), "memory=64".into()] };
        let mut buf = Vec::new();
        send(&mut buf, Kind::Request, &req.encode().unwrap()).unwrap();
        send(&mut buf, Kind::Exit, &[3]).unwrap();
        let mut r = &buf[..];
        let (kind, payload) = recv(&mut r).unwrap().unwrap();
        assert_eq!((kind, Request::decode(&payload).unwrap()), (Kind::Request, req));
        assert_eq!(recv(&mut r).unwrap(), Some((Kind::Exit, vec![3])));
        assert_eq!(recv(&mut r).unwrap(), None);
    }

    #[test]
    fn bad_frames_are_errors() {
        assert!(recv(&mut &b"Z\0\0\0\0"[..]).is_err(), "unknown kind");
        assert!(recv(&mut &b"O\xff\xff\xff\xff"[..]).is_err(), "too long");
        assert!(recv(&mut &b"O\x05\0\0\0ab"[..]).is_err(), "truncated");
        assert!(Request::decode(b"/").is_err(), "no verb");
        assert!(Request { cwd: "/".into(), args: vec!["a\0b".into()] }.encode().is_err());
    }
}
