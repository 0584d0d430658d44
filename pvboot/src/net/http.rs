//! An HTTP/1.1 GET client (RFC 9112) without I/O of its own.
//!
//! [`request`] makes the bytes to write on a fresh TCP connection; every
//! byte read back goes through [`Response::feed`], which hands the body to a
//! sink as it arrives, so a kernel is never held twice. The body ends by
//! `Content-Length`, by the chunked coding, or, with neither, when the
//! server closes ([`Response::finish`]). The head is parsed by `httparse`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// The largest response head read (status line and headers).
pub const MAX_HEAD: usize = 16 << 10;
/// The largest chunk-size line read.
const MAX_CHUNK_LINE: usize = 1024;

/// Why a download failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The server answered with a status other than 200.
    Status {
        /// The status code.
        code: u16,
        /// The reason phrase.
        reason: String,
        /// `Location`, for a redirect (which pvboot does not follow).
        location: Option<String>,
    },
    /// The response is not HTTP/1.x as RFC 9112 writes it; says how.
    Malformed(&'static str),
    /// The body is larger than the caller can hold.
    TooLarge {
        /// `Content-Length`, or the bytes received when the limit was crossed.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The connection closed before the body's end.
    Truncated {
        /// Body bytes received.
        received: u64,
    },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Status { code, reason, location: Some(to) } => write!(f, "HTTP {code} {reason} (to {to}): pvboot does not follow redirects"),
            HttpError::Status { code, reason, location: None } => write!(f, "HTTP {code} {reason}"),
            HttpError::Malformed(why) => write!(f, "malformed HTTP response: {why}"),
            HttpError::TooLarge { size, max } => write!(f, "file of {size} bytes is larger than the {max} bytes there is room for"),
            HttpError::Truncated { received } => write!(f, "connection closed after {received} bytes of the body"),
        }
    }
}

/// The request for `path` on `host` (the `Host` header: an address, with
/// `:port` when it is not 80). The connection is closed after the one
/// response, so an old server that sends neither length nor chunks still
/// ends the body.
pub fn request(host: &str, path: &str) -> Vec<u8> {
    let mut r = String::with_capacity(path.len() + host.len() + 96);
    for part in ["GET ", path, " HTTP/1.1\r\nHost: ", host, "\r\nUser-Agent: pvboot\r\nAccept: */*\r\nConnection: close\r\n\r\n"] {
        r.push_str(part);
    }
    r.into_bytes()
}

#[derive(Debug)]
enum Body {
    /// `remaining` bytes to come.
    Length { remaining: u64 },
    /// Inside chunked coding.
    Chunked(Chunked),
    /// Until the connection closes.
    UntilClose,
    /// Complete.
    Done,
}

#[derive(Debug)]
enum Chunked {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk's data.
    Data { remaining: u64 },
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, until an empty one.
    Trailer,
}

/// One response being read.
#[derive(Debug)]
pub struct Response {
    max: u64,
    /// Bytes not yet used: the head until it is complete, then partial
    /// chunk-size lines.
    pending: Vec<u8>,
    body: Option<Body>,
    length: Option<u64>,
    received: u64,
}

impl Response {
    /// A response whose body may be at most `max` bytes.
    pub fn new(max: u64) -> Self {
        Response { max, pending: Vec::new(), body: None, length: None, received: 0 }
    }

    /// Takes bytes read from the connection, passing body bytes to `sink`.
    /// Returns whether the body is complete.
    pub fn feed<E: From<HttpError>>(&mut self, bytes: &[u8], sink: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<bool, E> {
        if self.body.is_none() {
            self.pending.extend_from_slice(bytes);
            let Some(head_len) = self.parse_head()? else {
                return Ok(false);
            };
            let rest = self.pending.split_off(head_len);
            self.pending.clear();
            return self.feed_body(&rest, sink);
        }
        if self.pending.is_empty() {
            return self.feed_body(bytes, sink);
        }
        // A chunk line split across reads: join it with the rest.
        let mut joined = core::mem::take(&mut self.pending);
        joined.extend_from_slice(bytes);
        self.feed_body(&joined, sink)
    }

    /// The connection closed: fine only where the body ends by closing.
    pub fn finish(&mut self) -> Result<(), HttpError> {
        match self.body {
            Some(Body::UntilClose) => {
                self.body = Some(Body::Done);
                Ok(())
            }
            Some(Body::Done) => Ok(()),
            _ => Err(HttpError::Truncated { received: self.received }),
        }
    }

    /// `Content-Length`, when the server sent one.
    pub fn content_length(&self) -> Option<u64> {
        self.length
    }

    /// Body bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Parses the head once it is complete; its length.
    fn parse_head(&mut self) -> Result<Option<usize>, HttpError> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        let head_len = match parsed.parse(&self.pending) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if self.pending.len() > MAX_HEAD => return Err(HttpError::Malformed("head longer than 16 KiB")),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HttpError::Malformed("more than 64 headers")),
            Err(_) => return Err(HttpError::Malformed("bad status line or header")),
        };
        let code = parsed.code.unwrap_or(0);
        let header = |name: &str| parsed.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| String::from_utf8_lossy(h.value).trim().to_string());
        if code != 200 {
            return Err(HttpError::Status { code, reason: parsed.reason.unwrap_or("").to_string(), location: header("location") });
        }
        let chunked = header("transfer-encoding").is_some_and(|v| v.rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked")));
        self.body = Some(if chunked {
            Body::Chunked(Chunked::Size)
        } else if let Some(v) = header("content-length") {
            let n: u64 = v.parse().map_err(|_| HttpError::Malformed("Content-Length is not a number"))?;
            if n > self.max {
                return Err(HttpError::TooLarge { size: n, max: self.max });
            }
            self.length = Some(n);
            if n == 0 {
                Body::Done
            } else {
                Body::Length { remaining: n }
            }
        } else {
            Body::UntilClose
        });
        Ok(Some(head_len))
    }

    fn deliver<E: From<HttpError>>(&mut self, bytes: &[u8], sink: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        self.received += bytes.len() as u64;
        if self.received > self.max {
            return Err(HttpError::TooLarge { size: self.received, max: self.max }.into());
        }
        if bytes.is_empty() {
            return Ok(());
        }
        sink(bytes)
    }

    fn feed_body<E: From<HttpError>>(&mut self, mut bytes: &[u8], sink: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<bool, E> {
        loop {
            match self.body.as_mut() {
                None | Some(Body::Done) => return Ok(true),
                Some(Body::UntilClose) => {
                    self.deliver(bytes, sink)?;
                    return Ok(false);
                }
                Some(Body::Length { remaining }) => {
                    let n = bytes.len().min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.body = Some(Body::Done);
                    }
                    self.deliver(&bytes[..n], sink)?;
                    return Ok(matches!(self.body, Some(Body::Done)));
                }
                Some(Body::Chunked(state)) => {
                    if bytes.is_empty() {
                        return Ok(false);
                    }
                    match state {
                        Chunked::Data { remaining } => {
                            let n = bytes.len().min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                            *remaining -= n as u64;
                            if *remaining == 0 {
                                *state = Chunked::DataEnd;
                            }
                            let (now, rest) = bytes.split_at(n);
                            bytes = rest;
                            self.deliver(now, sink)?;
                        }
                        Chunked::Size | Chunked::DataEnd | Chunked::Trailer => {
                            let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
                                if bytes.len() > MAX_CHUNK_LINE {
                                    return Err(HttpError::Malformed("chunk line longer than 1 KiB").into());
                                }
                                self.pending.extend_from_slice(bytes);
                                return Ok(false);
                            };
                            let line = &bytes[..end + 1];
                            bytes = &bytes[end + 1..];
                            *state = match state {
                                Chunked::DataEnd if line == b"\r\n" => Chunked::Size,
                                Chunked::DataEnd => return Err(HttpError::Malformed("chunk data longer than its size").into()),
                                Chunked::Trailer if line == b"\r\n" => {
                                    self.body = Some(Body::Done);
                                    continue;
                                }
                                Chunked::Trailer => Chunked::Trailer,
                                _ => match httparse::parse_chunk_size(line) {
                                    Ok(httparse::Status::Complete((_, 0))) => Chunked::Trailer,
                                    Ok(httparse::Status::Complete((_, size))) => Chunked::Data { remaining: size },
                                    _ => return Err(HttpError::Malformed("bad chunk size line").into()),
                                },
                            };
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(max: u64, pieces: &[&[u8]]) -> Result<(Vec<u8>, bool), HttpError> {
        let mut r = Response::new(max);
        let mut body = Vec::new();
        let mut done = false;
        for p in pieces {
            done = r.feed(p, &mut |b: &[u8]| -> Result<(), HttpError> {
                body.extend_from_slice(b);
                Ok(())
            })?;
        }
        Ok((body, done))
    }

    #[test]
    fn the_request_names_host_and_closes() {
        assert_eq!(request("10.0.0.1:8080", "/boot/menu.lst"), b"GET /boot/menu.lst HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUser-Agent: pvboot\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    }

    #[test]
    fn content_length_ends_the_body_across_split_reads() {
        let (body, done) = read_all(100, &[b"HTTP/1.1 200 OK\r\nContent-Le", b"ngth: 5\r\n\r\nhe", b"llo"]).unwrap();
        assert_eq!((body.as_slice(), done), (&b"hello"[..], true));
    }

    #[test]
    fn chunked_bodies_are_decoded_whatever_the_read_boundaries() {
        let wire: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-Trailer: y\r\n\r\n";
        for step in 1..wire.len() {
            let pieces: Vec<&[u8]> = wire.chunks(step).collect();
            let (body, done) = read_all(100, &pieces).unwrap();
            assert_eq!(body, b"Wikipedia in \r\n\r\nchunks.", "reads of {step} bytes");
            assert!(done);
        }
    }

    #[test]
    fn a_body_without_length_ends_at_close() {
        let mut r = Response::new(100);
        let mut n = 0;
        let done = r.feed(b"HTTP/1.0 200 OK\r\n\r\nabc", &mut |b: &[u8]| -> Result<(), HttpError> {
            n += b.len();
            Ok(())
        });
        assert_eq!((done, n), (Ok(false), 3));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn errors_say_what_the_server_said() {
        let e = read_all(100, &[b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"]).unwrap_err();
        assert_eq!(e.to_string(), "HTTP 404 Not Found");
        let e = read_all(100, &[b"HTTP/1.1 302 Found\r\nLocation: http://x/y\r\n\r\n"]).unwrap_err();
        assert_eq!(e.to_string(), "HTTP 302 Found (to http://x/y): pvboot does not follow redirects");
        assert_eq!(read_all(10, &[b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"]).unwrap_err(), HttpError::TooLarge { size: 11, max: 10 });
        assert_eq!(read_all(3, &[b"HTTP/1.1 200 OK\r\n\r\nabcd"]).unwrap_err(), HttpError::TooLarge { size: 4, max: 3 });
        let mut r = Response::new(100);
        r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab", &mut |_: &[u8]| -> Result<(), HttpError> { Ok(()) }).unwrap();
        assert_eq!(r.finish(), Err(HttpError::Truncated { received: 2 }));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for wire in [&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..], b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n"] {
            assert!(read_all(100, &[wire]).is_err(), "{:?}", core::str::from_utf8(wire));
        }
    }
}
