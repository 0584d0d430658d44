//! Framing of the xs_wire stream: an incremental decoder that survives
//! messages split anywhere (ring wrap, short socket reads), payload
//! argument parsing as C xenstored does it, and reply encoding.

use xen_abi::xenstore::{Header, HEADER_SIZE, XENSTORE_PAYLOAD_MAX, XS_ERROR, XS_WATCH_EVENT};

use super::XsError;

/// A stream that can no longer be followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A header announced a payload over XENSTORE_PAYLOAD_MAX; C xenstored
    /// drops such a connection (XENSTORE_ERROR_PROTO).
    #[error("payload of {0} bytes exceeds the xenstore maximum of 4096")]
    TooLong(u32),
}

/// One complete message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its header.
    pub header: Header,
    /// Its payload (`header.len` bytes).
    pub payload: Vec<u8>,
}

/// Reassembles messages from a byte stream fed in pieces of any size.
#[derive(Debug, Default)]
pub struct Decoder {
    hdr: [u8; HEADER_SIZE],
    have: usize,
    header: Option<Header>,
    body: Vec<u8>,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes the current message still needs (never 0).
    pub fn needed(&self) -> usize {
        match self.header {
            None => HEADER_SIZE - self.have,
            Some(h) => h.len as usize - self.body.len(),
        }
    }

    /// Whether part of a message has arrived.
    pub fn in_progress(&self) -> bool {
        self.have > 0 || self.header.is_some()
    }

    /// Consumes up to [`Self::needed`] bytes of `data`. Returns how many
    /// were used and the message they completed, if any.
    pub fn feed(&mut self, data: &[u8]) -> Result<(usize, Option<Message>), WireError> {
        let n = data.len().min(self.needed());
        match self.header {
            None => {
                self.hdr[self.have..self.have + n].copy_from_slice(&data[..n]);
                self.have += n;
                if self.have == HEADER_SIZE {
                    let h = Header::from_bytes(&self.hdr);
                    if h.len > XENSTORE_PAYLOAD_MAX {
                        return Err(WireError::TooLong(h.len));
                    }
                    self.have = 0;
                    self.header = Some(h);
                    self.body = Vec::with_capacity(h.len as usize);
                }
            }
            Some(_) => self.body.extend_from_slice(&data[..n]),
        }
        match self.header {
            Some(h) if self.body.len() == h.len as usize => {
                self.header = None;
                Ok((n, Some(Message { header: h, payload: std::mem::take(&mut self.body) })))
            }
            _ => Ok((n, None)),
        }
    }
}

/// Encodes a message.
pub fn encode(ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let header = Header { ty, req_id, tx_id, len: payload.len() as u32 };
    let mut out = Vec::with_capacity(HEADER_SIZE + payload.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(payload);
    out
}

/// An XS_ERROR payload: the errno name and a NUL.
pub fn error_payload(e: XsError) -> Vec<u8> {
    let mut v = e.name().as_bytes().to_vec();
    v.push(0);
    v
}

/// A WATCH_EVENT message: `<path>|<token>|`, req_id and tx_id 0.
pub fn watch_event(path: &str, token: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(path.len() + token.len() + 2);
    payload.extend_from_slice(path.as_bytes());
    payload.push(0);
    payload.extend_from_slice(token);
    payload.push(0);
    encode(XS_WATCH_EVENT, 0, 0, &payload)
}

/// The reply to a request: its type (the request's, or XS_ERROR) and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// XS_* of the request, or XS_ERROR.
    pub ty: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Reply {
    /// An error reply.
    pub fn error(e: XsError) -> Self {
        Reply { ty: XS_ERROR, payload: error_payload(e) }
    }

    /// The error it carries, if it is one.
    pub fn as_error(&self) -> Option<XsError> {
        (self.ty == XS_ERROR).then(|| XsError::from_name(self.payload.strip_suffix(b"\0").unwrap_or(&self.payload)).unwrap_or(XsError::Inval))
    }
}

/// The single argument of a request: the payload must hold exactly one
/// NUL, at its end (C's onearg).
pub fn onearg(payload: &[u8]) -> Result<&[u8], XsError> {
    match payload.split_last() {
        Some((0, body)) if !body.contains(&0) => Ok(body),
        _ => Err(XsError::Inval),
    }
}

/// The NUL-terminated strings at the start of a payload; bytes after the
/// last NUL are not a string (C's get_strings).
pub fn strings(payload: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = payload.split(|&b| b == 0).collect();
    out.pop(); // the part after the last NUL (empty if the payload ends in NUL)
    out
}

/// A path argument as text; paths are ASCII, so other bytes are EINVAL.
pub fn text(b: &[u8]) -> Result<&str, XsError> {
    std::str::from_utf8(b).map_err(|_| XsError::Inval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_abi::xenstore::XS_READ;

    #[test]
    fn decoder_reassembles_any_split() {
        let mut stream = encode(XS_READ, 1, 0, b"device/vbd\0");
        stream.extend(encode(XS_READ, 2, 5, b""));
        stream.extend(encode(XS_READ, 3, 0, &[b'x'; 4096]));
        for chunk in [1, 3, 7, 16, 1000, 5000] {
            let mut d = Decoder::new();
            let mut msgs = Vec::new();
            for piece in stream.chunks(chunk) {
                let mut rest = piece;
                while !rest.is_empty() {
                    let (n, m) = d.feed(rest).unwrap();
                    rest = &rest[n..];
                    msgs.extend(m);
                }
            }
            assert_eq!(msgs.len(), 3, "chunk {chunk}");
            assert_eq!(msgs[0].payload, b"device/vbd\0");
            assert_eq!((msgs[1].header.req_id, msgs[1].header.tx_id, msgs[1].payload.len()), (2, 5, 0));
            assert_eq!(msgs[2].payload.len(), 4096);
            assert!(!d.in_progress());
        }
    }

    #[test]
    fn decoder_refuses_oversized_payloads() {
        let mut h = encode(XS_READ, 1, 0, b"");
        h[12..16].copy_from_slice(&4097u32.to_le_bytes());
        assert_eq!(Decoder::new().feed(&h), Err(WireError::TooLong(4097)));
        h[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Decoder::new().feed(&h), Err(WireError::TooLong(u32::MAX)));
    }

    #[test]
    fn argument_parsing() {
        assert_eq!(onearg(b"abc\0").unwrap(), b"abc");
        for bad in [&b""[..], b"abc", b"a\0b\0", b"\0\0"] {
            assert!(onearg(bad).is_err(), "{bad:?}");
        }
        assert_eq!(onearg(b"\0").unwrap(), b"");
        assert_eq!(strings(b"a\0bc\0tail"), vec![&b"a"[..], b"bc"]);
        assert_eq!(strings(b"a\0\0"), vec![&b"a"[..], b""]);
        assert!(strings(b"no nul").is_empty());
        assert_eq!(Reply::error(XsError::Again).as_error(), Some(XsError::Again));
    }
}
