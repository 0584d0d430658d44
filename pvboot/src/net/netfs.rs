//! A server's files as a read-only [`FileSystem`], so that a net-booting
//! domain reads its config and kernel through the same code as from a disk.
//!
//! Files are streamed, not held: looking a file up starts its transfer
//! (TFTP with `tsize`, or an HTTP GET) and learns its size; reads move
//! forward through the transfer, so a 30 MiB initrd goes straight into
//! place. The first [`HEAD_KEEP`] bytes of the current file are kept, since
//! loaders read a kernel's headers before its contents; a read further
//! back restarts the transfer. A server that does not say how large a file
//! is (no `tsize`, no `Content-Length`) has it read whole, up to
//! [`NetFs::new`]'s `unsized_max`.
//!
//! Paths are the server's: `/boot/netbsd` is `boot/netbsd` in the TFTP
//! server's directory (the form every TFTP server takes) and
//! `http://server/boot/netbsd` over HTTP. A server lists no directories.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::net::SocketAddrV4;

use super::http::{self, HttpError};
use super::tftp::{self, Download, Step, TftpError};
use super::{Scheme, Url};
use crate::fs::{check_path, DirEntry, FileSystem, FileType, FsError, FsKind, Metadata, Node};

/// Bytes kept from the start of the file being read.
pub const HEAD_KEEP: usize = 64 << 10;
/// How long one wait for a datagram or segment lasts.
pub const WAIT_MS: u64 = 1000;
/// Waits without a byte on a TCP connection before it is given up.
const TCP_WAITS: u32 = 10;

/// A network failure, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetError(pub String);

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The network stack files are fetched over: the guest's over netfront,
/// std's in the host tests.
pub trait Network {
    /// A UDP socket.
    type Udp: Datagrams;
    /// A TCP connection.
    type Tcp: Stream;
    /// A UDP socket on a fresh local port.
    fn udp(&mut self) -> Result<Self::Udp, NetError>;
    /// Connects to `to`.
    fn connect(&mut self, to: SocketAddrV4) -> Result<Self::Tcp, NetError>;
}

/// A UDP socket.
pub trait Datagrams {
    /// Sends one datagram.
    fn send_to(&mut self, data: &[u8], to: SocketAddrV4) -> Result<(), NetError>;
    /// Waits up to `timeout_ms` for a datagram: its length and sender, or
    /// `None` if none came.
    fn recv_from(&mut self, buf: &mut [u8], timeout_ms: u64) -> Result<Option<(usize, SocketAddrV4)>, NetError>;
}

/// A TCP connection.
pub trait Stream {
    /// Sends all of `data`.
    fn write_all(&mut self, data: &[u8]) -> Result<(), NetError>;
    /// Waits up to `timeout_ms` for bytes: how many (`Some(0)` once the peer
    /// closed), or `None` if none came.
    fn read(&mut self, buf: &mut [u8], timeout_ms: u64) -> Result<Option<usize>, NetError>;
}

enum Source<N: Network> {
    Tftp { sock: N::Udp, server: SocketAddrV4, download: Download },
    Http { conn: N::Tcp, response: http::Response },
}

/// The file being read.
struct Transfer<N: Network> {
    path: String,
    source: Source<N>,
    /// The file's size, once known.
    size: Option<u64>,
    /// File offset of `pending[0]`.
    position: u64,
    /// Bytes received and not yet read past.
    pending: Vec<u8>,
    /// The file's first bytes, for reads that go back.
    head: Vec<u8>,
    done: bool,
}

/// A server's files.
pub struct NetFs<N: Network> {
    base: Url,
    unsized_max: u64,
    state: RefCell<State<N>>,
}

struct State<N: Network> {
    net: N,
    current: Option<Transfer<N>>,
}

fn net_error(e: impl fmt::Display) -> FsError {
    FsError::Network(e.to_string())
}

impl<N: Network> NetFs<N> {
    /// The files under `base`'s directory, over `net` (`/boot/netbsd` is
    /// `base`'s directory joined with `boot/netbsd`). Files whose size the
    /// server does not announce are read whole, up to `unsized_max` bytes.
    pub fn new(net: N, base: Url, unsized_max: u64) -> Self {
        NetFs { base, unsized_max, state: RefCell::new(State { net, current: None }) }
    }

    /// The directory files are read from.
    pub fn base(&self) -> Url {
        self.base.directory()
    }

    fn node(&self, path: &str, size: u64) -> Node {
        let meta = Metadata { kind: FileType::File, perm: 0o444, size, mtime: 0, mtime_nsec: 0, uid: 0, gid: 0, nlink: None, ino: None };
        Node { path: path.to_string(), meta, handle: 0 }
    }

    /// Starts reading `path`, learning its size.
    fn start(&self, state: &mut State<N>, path: &str) -> Result<(), FsError> {
        if let Some(mut old) = state.current.take() {
            old.abandon();
        }
        let url = self.base.join(path);
        // A GET is asked again once if its connection fails before the
        // answer (a reset under load, a server that dropped it), as HTTP
        // clients retry idempotent requests; TFTP retransmits by itself.
        let mut t = match self.open(state, path, &url) {
            Err(FsError::Network(_)) if url.scheme == Scheme::Http => self.open(state, path, &url)?,
            r => r?,
        };
        if t.size.is_none() {
            while !t.done {
                if t.pending.len() as u64 > self.unsized_max {
                    return Err(FsError::Unsupported(format!("the server gave no size for {path}, and it is larger than {} bytes", self.unsized_max)));
                }
                t.pull()?;
            }
            t.size = Some(t.pending.len() as u64);
        }
        state.current = Some(t);
        Ok(())
    }

    /// Asks for `url` and waits for the first answer, which says whether
    /// the file is there and, usually, how big it is.
    fn open(&self, state: &mut State<N>, path: &str, url: &Url) -> Result<Transfer<N>, FsError> {
        let to = SocketAddrV4::new(url.host, url.port);
        let source = match url.scheme {
            Scheme::Tftp => {
                let name = url.path.trim_start_matches('/');
                let (download, rrq) = Download::start(name, tftp::Options { blksize: tftp::ETHERNET_BLKSIZE, max_size: u64::MAX }).map_err(net_error)?;
                let mut sock = state.net.udp().map_err(net_error)?;
                sock.send_to(&rrq, to).map_err(net_error)?;
                Source::Tftp { sock, server: to, download }
            }
            Scheme::Http => {
                let mut conn = state.net.connect(to).map_err(|e| FsError::Network(format!("{url}: {e}")))?;
                conn.write_all(&http::request(&url.authority(), &url.path)).map_err(net_error)?;
                Source::Http { conn, response: http::Response::new(u64::MAX) }
            }
        };
        let mut t = Transfer { path: path.to_string(), source, size: None, position: 0, pending: Vec::new(), head: Vec::new(), done: false };
        while t.size.is_none() && !t.done && t.pending.is_empty() {
            t.pull()?;
        }
        Ok(t)
    }
}

impl<N: Network> Transfer<N> {
    /// Waits for the next bytes of the file into `pending`.
    fn pull(&mut self) -> Result<(), FsError> {
        let before = self.pending.len();
        let pulled = self.receive();
        self.keep_head(before);
        pulled
    }

    fn receive(&mut self) -> Result<(), FsError> {
        let mut buf = [0u8; 2048];
        let before = self.pending.len();
        match &mut self.source {
            Source::Tftp { sock, server, download } => loop {
                let Some((n, from)) = sock.recv_from(&mut buf, WAIT_MS).map_err(net_error)? else {
                    let to = SocketAddrV4::new(*server.ip(), download.server_port().unwrap_or(server.port()));
                    sock.send_to(download.timeout().map_err(net_error)?, to).map_err(net_error)?;
                    continue;
                };
                if from.ip() != server.ip() {
                    continue;
                }
                match download.receive(from.port(), &buf[..n]) {
                    Ok(Step::Data { bytes, ack, last }) => {
                        self.pending.extend_from_slice(bytes);
                        self.done = last;
                        sock.send_to(&ack, from).map_err(net_error)?;
                    }
                    Ok(Step::Send(packet)) => sock.send_to(&packet, from).map_err(net_error)?,
                    Ok(Step::Reject { port, packet }) => sock.send_to(&packet, SocketAddrV4::new(*from.ip(), port)).map_err(net_error)?,
                    Ok(Step::Ignore) => {}
                    Err(TftpError::Server { code: 1, .. }) => return Err(FsError::NotFound),
                    Err(e) => {
                        let _ = sock.send_to(&Download::abort_packet(&e.to_string()), from);
                        return Err(net_error(e));
                    }
                }
                self.size = self.size.or(download.tsize());
                if self.pending.len() > before || self.done || self.size.is_some() {
                    return Ok(());
                }
            },
            Source::Http { conn, response } => {
                let mut waits = 0;
                loop {
                    let n = match conn.read(&mut buf, WAIT_MS).map_err(net_error)? {
                        Some(n) => n,
                        None if waits < TCP_WAITS => {
                            waits += 1;
                            continue;
                        }
                        None => return Err(FsError::Network(String::from("the HTTP server stopped sending"))),
                    };
                    if n == 0 {
                        response.finish().map_err(net_error)?;
                        self.done = true;
                        return Ok(());
                    }
                    let pending = &mut self.pending;
                    let done = response
                        .feed(&buf[..n], &mut |b: &[u8]| -> Result<(), HttpError> {
                            pending.extend_from_slice(b);
                            Ok(())
                        })
                        .map_err(|e| match e {
                            HttpError::Status { code: 404, .. } => FsError::NotFound,
                            e => net_error(e),
                        })?;
                    self.done = done;
                    self.size = self.size.or(response.content_length());
                    if self.pending.len() > before || self.done || self.size.is_some() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Drops the pending bytes before `offset`, pulling as needed.
    fn advance_to(&mut self, offset: u64) -> Result<(), FsError> {
        loop {
            let end = self.position + self.pending.len() as u64;
            if offset < end || self.done {
                let skip = (offset.min(end) - self.position) as usize;
                self.pending.drain(..skip);
                self.position += skip as u64;
                return Ok(());
            }
            self.position = end;
            self.pending.clear();
            self.pull()?;
        }
    }

    /// Keeps the file's first bytes from what `pull` just added at
    /// `pending[from..]`.
    fn keep_head(&mut self, from: usize) {
        let offset = self.position + from as u64;
        if offset == self.head.len() as u64 && self.head.len() < HEAD_KEEP {
            let n = (HEAD_KEEP - self.head.len()).min(self.pending.len() - from);
            self.head.extend_from_slice(&self.pending[from..from + n]);
        }
    }

    /// Tells a TFTP server that is still sending to stop.
    fn abandon(&mut self) {
        if let (Source::Tftp { sock, server, download }, false) = (&mut self.source, self.done) {
            if let Some(port) = download.server_port() {
                let _ = sock.send_to(&Download::abort_packet("transfer abandoned"), SocketAddrV4::new(*server.ip(), port));
            }
        }
    }
}

impl<N: Network> FileSystem for NetFs<N> {
    fn kind(&self) -> FsKind {
        match self.base.scheme {
            Scheme::Tftp => FsKind::Tftp,
            Scheme::Http => FsKind::Http,
        }
    }

    fn lookup(&self, path: &str) -> Result<Node, FsError> {
        check_path(path)?;
        if path.is_empty() || path.ends_with('/') {
            return Err(FsError::Unsupported(String::from("a server lists no directories")));
        }
        let mut state = self.state.borrow_mut();
        if let Some(t) = state.current.as_ref().filter(|t| t.path == path) {
            return Ok(self.node(path, t.size.unwrap_or(0)));
        }
        self.start(&mut state, path)?;
        let size = state.current.as_ref().and_then(|t| t.size).unwrap_or(0);
        Ok(self.node(path, size))
    }

    fn lookup_nofollow(&self, path: &str) -> Result<Node, FsError> {
        self.lookup(path)
    }

    fn read_at(&self, node: &Node, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        let size = node.meta.size;
        let want = buf.len().min(usize::try_from(size.saturating_sub(offset)).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let mut state = self.state.borrow_mut();
        let reusable = state.current.as_ref().is_some_and(|t| {
            t.path == node.path && (offset >= t.position || offset + want as u64 <= t.head.len() as u64 || (t.position == 0 && t.head.is_empty()))
        });
        if !reusable {
            self.start(&mut state, &node.path)?;
        }
        let Some(t) = state.current.as_mut() else { return Err(FsError::NotFound) };
        if offset + want as u64 <= t.head.len() as u64 {
            let at = offset as usize;
            buf[..want].copy_from_slice(&t.head[at..at + want]);
            return Ok(want);
        }
        t.advance_to(offset)?;
        let mut filled = 0;
        while filled < want {
            if t.pending.is_empty() {
                if t.done {
                    break;
                }
                t.pull()?;
                continue;
            }
            let n = t.pending.len().min(want - filled);
            buf[filled..filled + n].copy_from_slice(&t.pending[..n]);
            filled += n;
            t.advance_to(t.position + n as u64)?;
        }
        Ok(filled)
    }

    fn read_dir(&self, _node: &Node) -> Result<Vec<DirEntry>, FsError> {
        Err(FsError::Unsupported(String::from("a server lists no directories")))
    }

    fn read_link(&self, _node: &Node) -> Result<String, FsError> {
        Err(FsError::NotASymlink)
    }

    fn label(&self) -> Option<String> {
        None
    }

    fn uuid(&self) -> Option<String> {
        None
    }
}
