//! The xenstore byte stream: framing requests, cutting replies out of the
//! response stream, and reading payloads. Pure code, tested on the host.
//!
//! A message is a 16-byte [`Header`] and `len` payload bytes. The ring
//! carries a stream: one message may arrive in several pieces (the ring is
//! 1 KiB, a payload up to 4 KiB) and a piece may end in the middle of a
//! header, so the [`Decoder`] keeps what it has until a message is whole.

use alloc::string::String;
use alloc::vec::Vec;

use xen_abi::xenstore::{self as xs, Header, HEADER_SIZE, XENSTORE_PAYLOAD_MAX};

use super::XsError;

/// One whole message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its header (`len` equals `payload.len()`).
    pub header: Header,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Frames a request: the header, then `parts` concatenated. Every part
/// that is a path or token must already carry its NUL terminator.
pub fn encode(ty: u32, req_id: u32, tx_id: u32, parts: &[&[u8]]) -> Result<Vec<u8>, XsError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > XENSTORE_PAYLOAD_MAX as usize {
        return Err(XsError::TooBig);
    }
    let header = Header {
        ty,
        req_id,
        tx_id,
        len: len as u32,
    };
    let mut out = Vec::with_capacity(HEADER_SIZE + len);
    out.extend_from_slice(&header.to_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}

/// Cuts whole messages out of the response stream.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Decoder { buf: Vec::new() }
    }

    /// Appends bytes read from the ring.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet form a whole message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, `Ok(None)` if more bytes are needed, or an
    /// error if the stream announces a payload larger than the protocol
    /// allows (the stream cannot be resynchronised after that).
    pub fn next_message(&mut self) -> Result<Option<Message>, XsError> {
        if self.buf.len() < HEADER_SIZE {
            return Ok(None);
        }
        let mut raw = [0u8; HEADER_SIZE];
        raw.copy_from_slice(&self.buf[..HEADER_SIZE]);
        let header = Header::from_bytes(&raw);
        if header.len > XENSTORE_PAYLOAD_MAX {
            return Err(XsError::Protocol("reply longer than XENSTORE_PAYLOAD_MAX"));
        }
        let total = HEADER_SIZE + header.len as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        let payload = self.buf[HEADER_SIZE..total].to_vec();
        self.buf.drain(..total);
        Ok(Some(Message { header, payload }))
    }
}

/// The error an XS_ERROR payload names ("ENOENT\0").
pub fn error_from_payload(payload: &[u8]) -> XsError {
    let name = payload.strip_suffix(b"\0").unwrap_or(payload);
    match xs::errno_from_name(name) {
        Some(e) => XsError::Store(e),
        None => XsError::Protocol("XS_ERROR with an unknown error name"),
    }
}

/// Splits a payload of NUL-terminated strings (XS_DIRECTORY replies, watch
/// events). A missing final NUL is tolerated; empty trailing pieces are not
/// returned. Non-UTF-8 names are an error.
pub fn split_strings(payload: &[u8]) -> Result<Vec<String>, XsError> {
    let body = payload.strip_suffix(b"\0").unwrap_or(payload);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    body.split(|&b| b == 0)
        .map(|s| {
            core::str::from_utf8(s)
                .map(String::from)
                .map_err(|_| XsError::BadValue)
        })
        .collect()
}

/// The (path, token) of an XS_WATCH_EVENT payload.
pub fn watch_event(payload: &[u8]) -> Result<(String, String), XsError> {
    let mut parts = split_strings(payload)?.into_iter();
    match (parts.next(), parts.next()) {
        (Some(path), Some(token)) => Ok((path, token)),
        _ => Err(XsError::Protocol("malformed XS_WATCH_EVENT")),
    }
}

/// A path or token with its NUL terminator, refusing embedded NULs (they
/// would change the meaning of the message).
pub fn cstr(s: &str) -> Result<Vec<u8>, XsError> {
    if s.as_bytes().contains(&0) {
        return Err(XsError::BadValue);
    }
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_abi::xenstore::{XS_DIRECTORY, XS_ERROR, XS_READ, XS_WATCH_EVENT};

    #[test]
    fn encode_frames_header_and_parts() {
        let m = encode(XS_READ, 7, 3, &[b"device\0"]).unwrap();
        assert_eq!(m.len(), 16 + 7);
        let mut h = [0u8; 16];
        h.copy_from_slice(&m[..16]);
        assert_eq!(
            Header::from_bytes(&h),
            Header {
                ty: XS_READ,
                req_id: 7,
                tx_id: 3,
                len: 7
            }
        );
        assert_eq!(&m[16..], b"device\0");
        let big = alloc::vec![b'x'; 4097];
        assert_eq!(encode(XS_READ, 1, 0, &[&big]), Err(XsError::TooBig));
        assert!(encode(XS_READ, 1, 0, &[&big[..4096]]).is_ok());
    }

    #[test]
    fn decoder_waits_for_whole_messages_fed_byte_by_byte() {
        let a = encode(XS_READ, 1, 0, &[b"value"]).unwrap();
        let b = encode(XS_WATCH_EVENT, 0, 0, &[b"p\0", b"t\0"]).unwrap();
        let mut stream = a.clone();
        stream.extend_from_slice(&b);
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for byte in &stream {
            d.feed(core::slice::from_ref(byte));
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].payload, b"value");
        assert_eq!(got[1].header.ty, XS_WATCH_EVENT);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn decoder_rejects_oversized_payloads() {
        let mut d = Decoder::new();
        let h = Header {
            ty: XS_READ,
            req_id: 1,
            tx_id: 0,
            len: 5000,
        };
        d.feed(&h.to_bytes());
        assert!(matches!(d.next_message(), Err(XsError::Protocol(_))));
    }

    #[test]
    fn payload_helpers() {
        assert_eq!(error_from_payload(b"ENOENT\0"), XsError::Store(2));
        assert_eq!(error_from_payload(b"EAGAIN"), XsError::Store(11));
        assert!(matches!(
            error_from_payload(b"EWHAT\0"),
            XsError::Protocol(_)
        ));
        assert_eq!(split_strings(b"0\x00768\x00").unwrap(), ["0", "768"]);
        assert_eq!(split_strings(b"a\0b").unwrap(), ["a", "b"]);
        assert!(split_strings(b"").unwrap().is_empty());
        assert!(split_strings(b"\0").unwrap().is_empty());
        assert_eq!(split_strings(b"\xff\0"), Err(XsError::BadValue));
        assert_eq!(
            watch_event(b"backend/vbd/1/768/state\0tok\0").unwrap(),
            ("backend/vbd/1/768/state".into(), "tok".into())
        );
        assert!(watch_event(b"only-path\0").is_err());
        assert_eq!(cstr("a/b").unwrap(), b"a/b\0");
        assert_eq!(cstr("a\0b"), Err(XsError::BadValue));
        let _ = (XS_DIRECTORY, XS_ERROR);
    }
}
