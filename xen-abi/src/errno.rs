//! Error numbers hypercalls return, negated (errno.h). Xen's values match
//! Linux's for every code a guest sees.

/// EPERM: Operation not permitted.
pub const EPERM: i64 = 1;
/// ENOENT: No such file or directory.
pub const ENOENT: i64 = 2;
/// ESRCH: No such process.
pub const ESRCH: i64 = 3;
/// EIO: I/O error.
pub const EIO: i64 = 5;
/// ENXIO: No such device or address.
pub const ENXIO: i64 = 6;
/// E2BIG: Arg list too long.
pub const E2BIG: i64 = 7;
/// ENOEXEC: Exec format error.
pub const ENOEXEC: i64 = 8;
/// EBADF: Bad file number.
pub const EBADF: i64 = 9;
/// EAGAIN: Try again.
pub const EAGAIN: i64 = 11;
/// ENOMEM: Out of memory.
pub const ENOMEM: i64 = 12;
/// EACCES: Permission denied.
pub const EACCES: i64 = 13;
/// EFAULT: Bad address.
pub const EFAULT: i64 = 14;
/// EBUSY: Device or resource busy.
pub const EBUSY: i64 = 16;
/// EEXIST: File exists.
pub const EEXIST: i64 = 17;
/// ENODEV: No such device.
pub const ENODEV: i64 = 19;
/// ENOTDIR: Not a directory.
pub const ENOTDIR: i64 = 20;
/// EISDIR: Is a directory.
pub const EISDIR: i64 = 21;
/// EINVAL: Invalid argument.
pub const EINVAL: i64 = 22;
/// ENOSPC: No space left on device.
pub const ENOSPC: i64 = 28;
/// EROFS: Read-only file system.
pub const EROFS: i64 = 30;
/// ERANGE: Math result not representable.
pub const ERANGE: i64 = 34;
/// ENAMETOOLONG: File name too long.
pub const ENAMETOOLONG: i64 = 36;
/// ENOSYS: Function not implemented.
pub const ENOSYS: i64 = 38;
/// ENOTEMPTY: Directory not empty.
pub const ENOTEMPTY: i64 = 39;
/// ENODATA: No data available.
pub const ENODATA: i64 = 61;
/// ETIME: Timer expired.
pub const ETIME: i64 = 62;
/// EOVERFLOW: Value too large for defined data type.
pub const EOVERFLOW: i64 = 75;
/// EMSGSIZE: Message too large.
pub const EMSGSIZE: i64 = 90;
/// EOPNOTSUPP: Operation not supported.
pub const EOPNOTSUPP: i64 = 95;
/// EISCONN: Transport endpoint is already connected.
pub const EISCONN: i64 = 106;
/// ENOTCONN: Transport endpoint is not connected.
pub const ENOTCONN: i64 = 107;
/// ETIMEDOUT: Connection timed out.
pub const ETIMEDOUT: i64 = 110;
