//! pvboot's TFTP and HTTP clients against real servers on the loopback:
//! Debian's tftpd-hpa and Python's http.server, as a net-booting domain
//! meets them. The sockets here stand in for the guest's network stack;
//! the protocol code is the guest's own.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pvboot::fs::{FileSystem, FsError};
use pvboot::net::http::{self, HttpError};
use pvboot::net::netfs::{self, Datagrams, NetError, NetFs, Network};
use pvboot::net::tftp::{self, Download, Step, TftpError};
use pvboot::net::Url;

/// A server process, killed when the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free port on the loopback (the listener is dropped; the race with
/// other processes is harmless in a test).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Bytes that differ from block to block, so a block delivered twice or
/// out of order shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8).collect()
}

/// tftpd-hpa serving `dir` (chrooted to it, as Debian runs it).
fn tftpd(dir: &Path) -> (Server, u16) {
    let port = free_port();
    let child = Command::new("/usr/sbin/in.tftpd")
        .args(["--foreground", "--secure", "--user", "root", "--address"])
        .arg(format!("127.0.0.1:{port}"))
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("in.tftpd (Debian's tftpd-hpa; `cargo xtask setup` installs it)");
    std::thread::sleep(Duration::from_millis(300));
    (Server(child), port)
}

/// Reads `name` over TFTP the way the guest does: the protocol object
/// decides, the socket only carries datagrams.
fn tftp_get(port: u16, name: &str, options: tftp::Options) -> Result<(Vec<u8>, Download), TftpError> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let (mut d, rrq) = Download::start(name, options)?;
    sock.send_to(&rrq, ("127.0.0.1", port)).unwrap();
    let mut file = Vec::new();
    let mut buf = vec![0u8; 65536];
    while !d.is_done() {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(_) => {
                let again = d.timeout()?.to_vec();
                sock.send_to(&again, ("127.0.0.1", d.server_port().unwrap_or(port))).unwrap();
                continue;
            }
        };
        match d.receive(from.port(), &buf[..n]) {
            Ok(Step::Data { bytes, ack, .. }) => {
                file.extend_from_slice(bytes);
                sock.send_to(&ack, from).unwrap();
            }
            Ok(Step::Send(p)) => drop(sock.send_to(&p, from).unwrap()),
            Ok(Step::Reject { port, packet }) => drop(sock.send_to(&packet, ("127.0.0.1", port)).unwrap()),
            Ok(Step::Ignore) => {}
            Err(e) => {
                sock.send_to(&Download::abort_packet(&e.to_string()), from).unwrap();
                return Err(e);
            }
        }
    }
    Ok((file, d))
}

#[test]
fn tftpd_hpa_serves_a_kernel_with_negotiated_blocks_and_size() {
    let dir = common::scratch("net-tftp");
    let kernel = pattern(3 << 20 | 123);
    std::fs::create_dir_all(dir.join("boot")).unwrap();
    std::fs::write(dir.join("boot/netbsd"), &kernel).unwrap();
    let (_server, port) = tftpd(&dir);

    let (file, d) = tftp_get(port, "boot/netbsd", tftp::Options { blksize: tftp::ETHERNET_BLKSIZE, max_size: 64 << 20 }).unwrap();
    assert!(file == kernel, "the file differs from what the server has");
    assert_eq!((d.blksize(), d.tsize()), (tftp::ETHERNET_BLKSIZE, Some(kernel.len() as u64)));

    // A file that is a whole number of blocks ends with an empty block.
    std::fs::write(dir.join("even"), pattern(4 * 512)).unwrap();
    let (file, _) = tftp_get(port, "even", tftp::Options { blksize: 512, max_size: 1 << 20 }).unwrap();
    assert_eq!(file.len(), 2048);
}

#[test]
fn tftpd_hpa_block_numbers_roll_over_past_65535() {
    let dir = common::scratch("net-tftp-rollover");
    // 70,000 blocks of 512 bytes: block 65535 is followed by block 0.
    let big = pattern(70_000 * 512 + 7);
    std::fs::write(dir.join("big"), &big).unwrap();
    let (_server, port) = tftpd(&dir);
    let started = Instant::now();
    let (file, _) = tftp_get(port, "big", tftp::Options { blksize: 512, max_size: 64 << 20 }).unwrap();
    assert!(file == big, "the file differs after the block number wrapped");
    eprintln!("70,000 TFTP blocks in {:?}", started.elapsed());
}

#[test]
fn tftpd_hpa_errors_and_limits_are_one_clear_line() {
    let dir = common::scratch("net-tftp-errors");
    std::fs::write(dir.join("kernel"), pattern(100_000)).unwrap();
    let (_server, port) = tftpd(&dir);
    match tftp_get(port, "missing", tftp::Options { blksize: 1468, max_size: 1 << 20 }) {
        Err(TftpError::Server { code: 1, message }) => assert_eq!(message, "File not found"),
        other => panic!("{other:?}"),
    }
    let e = tftp_get(port, "kernel", tftp::Options { blksize: 1468, max_size: 4096 }).unwrap_err();
    assert_eq!(e.to_string(), "file of 100000 bytes is larger than the 4096 bytes there is room for");
}

/// Python's http.server serving `dir`.
fn http_server(dir: &Path) -> (Server, u16) {
    let port = free_port();
    let child = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
        .arg(dir)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Server(child), port)
}

fn http_get(port: u16, path: &str, max: u64) -> Result<Vec<u8>, HttpError> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(&http::request(&format!("127.0.0.1:{port}"), path)).unwrap();
    let mut response = http::Response::new(max);
    let mut body = Vec::new();
    let mut buf = vec![0u8; 1460];
    loop {
        let n = conn.read(&mut buf).unwrap();
        if n == 0 {
            response.finish()?;
            return Ok(body);
        }
        let done = response.feed(&buf[..n], &mut |b: &[u8]| -> Result<(), HttpError> {
            body.extend_from_slice(b);
            Ok(())
        })?;
        if done {
            return Ok(body);
        }
    }
}

#[test]
fn python_http_server_serves_a_kernel_and_says_what_is_missing() {
    let dir = common::scratch("net-http");
    let kernel = pattern(5 << 20 | 77);
    std::fs::write(dir.join("vmlinuz"), &kernel).unwrap();
    let (_server, port) = http_server(&dir);
    assert!(http_get(port, "/vmlinuz", 64 << 20).unwrap() == kernel, "the body differs from the file");
    assert_eq!(http_get(port, "/nope", 1 << 20).unwrap_err().to_string(), "HTTP 404 File not found");
    assert_eq!(http_get(port, "/vmlinuz", 1 << 20).unwrap_err(), HttpError::TooLarge { size: kernel.len() as u64, max: 1 << 20 });
}

/// std's sockets as the network a `NetFs` fetches over (the guest's is
/// smoltcp over netfront); counts the transfers it opens.
#[derive(Clone, Default)]
struct StdNet(Arc<AtomicUsize>);
struct StdUdp(UdpSocket);
struct StdTcp(TcpStream);

fn io(e: std::io::Error) -> NetError {
    NetError(e.to_string())
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

impl Network for StdNet {
    type Udp = StdUdp;
    type Tcp = StdTcp;
    fn udp(&mut self) -> Result<StdUdp, NetError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        UdpSocket::bind("127.0.0.1:0").map(StdUdp).map_err(io)
    }
    fn connect(&mut self, to: SocketAddrV4) -> Result<StdTcp, NetError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        TcpStream::connect(to).map(StdTcp).map_err(io)
    }
}

impl Datagrams for StdUdp {
    fn send_to(&mut self, data: &[u8], to: SocketAddrV4) -> Result<(), NetError> {
        self.0.send_to(data, to).map(drop).map_err(io)
    }
    fn recv_from(&mut self, buf: &mut [u8], timeout_ms: u64) -> Result<Option<(usize, SocketAddrV4)>, NetError> {
        self.0.set_read_timeout(Some(Duration::from_millis(timeout_ms.max(1)))).map_err(io)?;
        match self.0.recv_from(buf) {
            Ok((n, SocketAddr::V4(from))) => Ok(Some((n, from))),
            Ok(_) => Ok(None),
            Err(e) if timed_out(&e) => Ok(None),
            Err(e) => Err(io(e)),
        }
    }
}

impl netfs::Stream for StdTcp {
    fn write_all(&mut self, data: &[u8]) -> Result<(), NetError> {
        Write::write_all(&mut self.0, data).map_err(io)
    }
    fn read(&mut self, buf: &mut [u8], timeout_ms: u64) -> Result<Option<usize>, NetError> {
        self.0.set_read_timeout(Some(Duration::from_millis(timeout_ms.max(1)))).map_err(io)?;
        match Read::read(&mut self.0, buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if timed_out(&e) => Ok(None),
            Err(e) => Err(io(e)),
        }
    }
}

/// Reads `file` through `fs` the way loaders do (headers, forward, back to
/// the headers, back into the middle, past the end) and compares; `net`
/// counts the transfers: one for the lookup, one for the read going back
/// past the kept head, one for reading the whole file from the start.
fn read_like_a_loader(fs: &dyn FileSystem, net: &StdNet, path: &str, file: &[u8]) {
    let before = net.0.load(Ordering::Relaxed);
    let node = fs.lookup(path).unwrap();
    assert_eq!(node.meta.size, file.len() as u64);
    let check = |offset: usize, len: usize| {
        let mut buf = vec![0u8; len];
        let n = fs.read_at(&node, offset as u64, &mut buf).unwrap();
        let want = len.min(file.len().saturating_sub(offset));
        assert_eq!(n, want, "read of {len} at {offset}");
        assert!(buf[..n] == file[offset..offset + n], "bytes differ at {offset}");
    };
    check(0, 64);
    check(64, 56 * 4);
    check(4096, 1 << 20);
    check(10, 100); // in the kept head: no new transfer
    check((1 << 20) + 4096, 3000);
    check(2 << 20, 1 << 20);
    check(300_000, 5000); // behind the transfer: it starts again
    check(file.len() - 10, 100);
    assert_eq!(fs.read_file(path, 1 << 30).unwrap(), file);
    assert_eq!(net.0.load(Ordering::Relaxed) - before, 3, "transfers opened");
}

#[test]
fn netfs_reads_files_from_tftpd_hpa_as_a_loader_does() {
    let dir = common::scratch("net-netfs-tftp");
    std::fs::create_dir_all(dir.join("boot/grub")).unwrap();
    let kernel = pattern(3 << 20 | 5);
    std::fs::write(dir.join("boot/kernel"), &kernel).unwrap();
    std::fs::write(dir.join("boot/grub/menu.lst"), "title net\nkernel /boot/kernel\n").unwrap();
    let (_server, port) = tftpd(&dir);
    let net = StdNet::default();
    let fs = NetFs::new(net.clone(), Url::parse(&format!("tftp://127.0.0.1:{port}/")).unwrap(), 1 << 20);
    assert_eq!(fs.read_file("/boot/grub/menu.lst", 4096).unwrap(), b"title net\nkernel /boot/kernel\n");
    assert_eq!(fs.lookup("/boot/grub/grub.cfg").unwrap_err(), FsError::NotFound);
    read_like_a_loader(&fs, &net, "/boot/kernel", &kernel);
}

#[test]
fn netfs_reads_files_from_an_http_server_as_a_loader_does() {
    let dir = common::scratch("net-netfs-http");
    let kernel = pattern(3 << 20 | 9);
    std::fs::write(dir.join("netbsd"), &kernel).unwrap();
    let (_server, port) = http_server(&dir);
    let net = StdNet::default();
    let fs = NetFs::new(net.clone(), Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(), 1 << 20);
    assert_eq!(fs.lookup("/boot.cfg").unwrap_err(), FsError::NotFound);
    read_like_a_loader(&fs, &net, "/netbsd", &kernel);
    let nobody = NetFs::new(StdNet::default(), Url::parse(&format!("http://127.0.0.1:{}/", free_port())).unwrap(), 1 << 20);
    assert!(matches!(nobody.lookup("/netbsd"), Err(FsError::Network(_))));
}

/// A GET whose connection is reset before the answer is asked again once:
/// a server that drops the first connection unread (the kernel answers
/// with a reset) and serves the second.
#[test]
fn an_http_request_reset_before_its_answer_is_asked_again() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (first, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        drop(first); // the request unread: a reset, not a FIN
        let (mut second, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = Read::read(&mut second, &mut buf);
        Write::write_all(&mut second, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello").unwrap();
    });
    let net = StdNet::default();
    let fs = NetFs::new(net.clone(), Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(), 1 << 20);
    assert_eq!(fs.read_file("/kernel", 1 << 20).unwrap(), b"hello");
    assert_eq!(net.0.load(Ordering::Relaxed), 2, "connections");
    server.join().unwrap();
}
