//! Opening the files a user names (config, kernel, ramdisk, disk images)
//! without trusting what they are.
//!
//! A path may name a FIFO (whose `open` blocks until a writer comes), a
//! character device such as /dev/zero (endless), a directory or a huge
//! file. Every user-given path is opened here: with `O_NONBLOCK`, so that
//! opening a FIFO returns at once, then checked with `fstat` on the open
//! descriptor (no race with a rename), and read only up to a limit.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a user-given file cannot be used. Displays as one line naming the
/// file, what it was for, and why.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// It could not be opened.
    #[error("cannot open {what} {path}: {err}")]
    Open {
        /// What the file is for: "kernel", "ramdisk", "config file", "disk".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        err: std::io::Error,
    },
    /// It could not be read (or its size found).
    #[error("cannot read {what} {path}: {err}")]
    Io {
        /// What the file is for: "kernel", "ramdisk", "config file", "disk".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        err: std::io::Error,
    },
    /// It is a FIFO, a device, a directory or a socket, not a file.
    #[error("{what} {path} is {kind}, not a regular file{or_block}")]
    NotAFile {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What it is instead ("a FIFO", "a character device"...).
        kind: &'static str,
        /// ", or a block device" where one would do.
        or_block: &'static str,
    },
    /// It is larger than anything that use of it can take.
    #[error("{what} {path} is too large: {size} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its size (at least; it may be growing).
        size: u64,
        /// The limit.
        max: u64,
    },
}

/// How a file type reads in a message: "a FIFO", "a directory"...
fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a file"
    }
}

/// Opens `path` without blocking on a FIFO, then makes the descriptor
/// blocking again, so that later reads of a disk wait for their data.
fn open_nonblocking(path: &Path, writable: bool) -> std::io::Result<File> {
    let file = OpenOptions::new().read(true).write(writable).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(path)?;
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own; no memory is involved.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

/// Reads the whole regular file at `path`, refusing anything else (before
/// reading a byte) and anything larger than `max_bytes`. `what` names the
/// file's use in messages ("kernel", "ramdisk", "config file").
pub fn read_regular_file(path: &Path, what: &'static str, max_bytes: u64) -> Result<Vec<u8>, InputError> {
    let io = |err| InputError::Io { what, path: path.to_owned(), err };
    let open = |err| InputError::Open { what, path: path.to_owned(), err };
    let mut file = open_nonblocking(path, false).map_err(open)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(InputError::NotAFile { what, path: path.to_owned(), kind: kind_of(&meta), or_block: "" });
    }
    let too_large = |size| InputError::TooLarge { what, path: path.to_owned(), size, max: max_bytes };
    if meta.len() > max_bytes {
        return Err(too_large(meta.len()));
    }
    // The file may grow while it is read: read one byte past the limit to see it.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut file).take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// A disk image opened by [`open_disk`].
#[derive(Debug)]
pub struct OpenDisk {
    /// The open image (blocking I/O).
    pub file: File,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it is a block device rather than a regular file.
    pub block_device: bool,
}

/// Opens a disk image: a regular file or a block device, refusing anything
/// else before any I/O. `what` names its use in messages ("disk").
pub fn open_disk(path: &Path, what: &'static str, writable: bool) -> Result<OpenDisk, InputError> {
    let io = |err| InputError::Io { what, path: path.to_owned(), err };
    let open = |err| InputError::Open { what, path: path.to_owned(), err };
    let mut file = open_nonblocking(path, writable).map_err(open)?;
    let meta = file.metadata().map_err(io)?;
    let block_device = meta.file_type().is_block_device();
    if !block_device && !meta.is_file() {
        return Err(InputError::NotAFile { what, path: path.to_owned(), kind: kind_of(&meta), or_block: " or a block device" });
    }
    // Seeking to the end gives the size of block devices too (their
    // metadata says 0).
    let size = file.seek(SeekFrom::End(0)).map_err(io)?;
    Ok(OpenDisk { file, size, block_device })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xenolith-input-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path, which outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }

    #[test]
    fn regular_files_are_read_up_to_the_limit() {
        let dir = scratch("regular");
        let p = dir.join("k");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_regular_file(&p, "kernel", 10).unwrap(), b"0123456789");
        let e = read_regular_file(&p, "kernel", 9).unwrap_err().to_string();
        assert_eq!(e, format!("kernel {} is too large: 10 bytes, more than the limit of 9 bytes", p.display()));
        let e = read_regular_file(&dir.join("missing"), "ramdisk", 9).unwrap_err().to_string();
        assert!(e.starts_with("cannot open ramdisk ") && e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_at_once() {
        let dir = scratch("special");
        let fifo = dir.join("fifo");
        mkfifo(&fifo);
        let start = Instant::now();
        let e = read_regular_file(&fifo, "kernel", 1 << 20).unwrap_err().to_string();
        assert_eq!(e, format!("kernel {} is a FIFO, not a regular file", fifo.display()));
        let e = open_disk(&fifo, "disk", false).unwrap_err().to_string();
        assert_eq!(e, format!("disk {} is a FIFO, not a regular file or a block device", fifo.display()));
        assert!(start.elapsed() < Duration::from_secs(5), "opening a FIFO must not wait for a writer");
        let e = read_regular_file(Path::new("/dev/zero"), "ramdisk", 1 << 20).unwrap_err().to_string();
        assert_eq!(e, "ramdisk /dev/zero is a character device, not a regular file");
        let e = open_disk(Path::new("/dev/zero"), "disk", false).unwrap_err().to_string();
        assert!(e.contains("is a character device"), "{e}");
        let e = read_regular_file(&dir, "config file", 1 << 20).unwrap_err().to_string();
        assert!(e.ends_with("is a directory, not a regular file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn disks_report_their_size_and_stay_blocking() {
        let dir = scratch("disk");
        let p = dir.join("d.img");
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        let d = open_disk(&p, "disk", true).unwrap();
        assert_eq!((d.size, d.block_device), (4096, false));
        // SAFETY: F_GETFL on a descriptor the test owns.
        let flags = unsafe { libc::fcntl(d.file.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_NONBLOCK, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
