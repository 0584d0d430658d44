//! The xenstore wire protocol (io/xs_wire.h, docs/misc/xenstore.txt) and
//! the shared ring page a domain talks to xenstored through.
//!
//! Both ends use these definitions: guest-lib's xenstore client and the
//! hypervisor's xenstored. A message is a [`Header`] followed by `len`
//! payload bytes, over the ring or, for host tools, over a unix socket
//! (libxenstore's socket protocol is the same raw stream).

/// XS_CONTROL (XS_DEBUG): implementation-specific commands.
pub const XS_CONTROL: u32 = 0;
/// XS_DIRECTORY: the child names of a node.
pub const XS_DIRECTORY: u32 = 1;
/// XS_READ: a node's value.
pub const XS_READ: u32 = 2;
/// XS_GET_PERMS: a node's permissions.
pub const XS_GET_PERMS: u32 = 3;
/// XS_WATCH: add a watch.
pub const XS_WATCH: u32 = 4;
/// XS_UNWATCH: remove a watch.
pub const XS_UNWATCH: u32 = 5;
/// XS_TRANSACTION_START.
pub const XS_TRANSACTION_START: u32 = 6;
/// XS_TRANSACTION_END ("T" commit, "F" abort).
pub const XS_TRANSACTION_END: u32 = 7;
/// XS_INTRODUCE: the toolstack introduces a domain (dom0 only).
pub const XS_INTRODUCE: u32 = 8;
/// XS_RELEASE: the toolstack releases a domain (dom0 only).
pub const XS_RELEASE: u32 = 9;
/// XS_GET_DOMAIN_PATH: `/local/domain/<domid>`.
pub const XS_GET_DOMAIN_PATH: u32 = 10;
/// XS_WRITE: set a node's value, creating it and missing parents.
pub const XS_WRITE: u32 = 11;
/// XS_MKDIR: create a node (and missing parents) if absent.
pub const XS_MKDIR: u32 = 12;
/// XS_RM: remove a node and its children.
pub const XS_RM: u32 = 13;
/// XS_SET_PERMS: replace a node's permissions.
pub const XS_SET_PERMS: u32 = 14;
/// XS_WATCH_EVENT: an unsolicited watch firing (daemon to client only).
pub const XS_WATCH_EVENT: u32 = 15;
/// XS_ERROR: an error reply carrying an errno name (daemon to client only).
pub const XS_ERROR: u32 = 16;
/// XS_IS_DOMAIN_INTRODUCED.
pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
/// XS_RESUME.
pub const XS_RESUME: u32 = 18;
/// XS_SET_TARGET.
pub const XS_SET_TARGET: u32 = 19;
/// XS_RESET_WATCHES: drop all of the caller's watches and transactions.
pub const XS_RESET_WATCHES: u32 = 21;
/// XS_DIRECTORY_PART: a window of a long child list.
pub const XS_DIRECTORY_PART: u32 = 22;
/// XS_GET_FEATURE.
pub const XS_GET_FEATURE: u32 = 23;
/// XS_SET_FEATURE.
pub const XS_SET_FEATURE: u32 = 24;
/// XS_GET_QUOTA.
pub const XS_GET_QUOTA: u32 = 25;
/// XS_SET_QUOTA.
pub const XS_SET_QUOTA: u32 = 26;
/// Number of message types (one past the last).
pub const XS_TYPE_COUNT: u32 = 27;
/// Guaranteed to stay invalid.
pub const XS_INVALID: u32 = 0xffff;

/// The name xenstored's logs use for a message type.
pub fn type_name(ty: u32) -> &'static str {
    match ty {
        XS_CONTROL => "CONTROL",
        XS_DIRECTORY => "DIRECTORY",
        XS_READ => "READ",
        XS_GET_PERMS => "GET_PERMS",
        XS_WATCH => "WATCH",
        XS_UNWATCH => "UNWATCH",
        XS_TRANSACTION_START => "TRANSACTION_START",
        XS_TRANSACTION_END => "TRANSACTION_END",
        XS_INTRODUCE => "INTRODUCE",
        XS_RELEASE => "RELEASE",
        XS_GET_DOMAIN_PATH => "GET_DOMAIN_PATH",
        XS_WRITE => "WRITE",
        XS_MKDIR => "MKDIR",
        XS_RM => "RM",
        XS_SET_PERMS => "SET_PERMS",
        XS_WATCH_EVENT => "WATCH_EVENT",
        XS_ERROR => "ERROR",
        XS_IS_DOMAIN_INTRODUCED => "IS_DOMAIN_INTRODUCED",
        XS_RESUME => "RESUME",
        XS_SET_TARGET => "SET_TARGET",
        XS_RESET_WATCHES => "RESET_WATCHES",
        XS_DIRECTORY_PART => "DIRECTORY_PART",
        XS_GET_FEATURE => "GET_FEATURE",
        XS_SET_FEATURE => "SET_FEATURE",
        XS_GET_QUOTA => "GET_QUOTA",
        XS_SET_QUOTA => "SET_QUOTA",
        _ => "**UNKNOWN**",
    }
}

/// The errors xenstored sends, as `(errno, name)`, in xs_wire.h's order.
/// The name (not the number) travels in an XS_ERROR payload.
pub const XSD_ERRORS: [(i32, &str); 16] = [
    (22, "EINVAL"),
    (13, "EACCES"),
    (17, "EEXIST"),
    (21, "EISDIR"),
    (2, "ENOENT"),
    (12, "ENOMEM"),
    (28, "ENOSPC"),
    (5, "EIO"),
    (39, "ENOTEMPTY"),
    (38, "ENOSYS"),
    (30, "EROFS"),
    (16, "EBUSY"),
    (11, "EAGAIN"),
    (106, "EISCONN"),
    (7, "E2BIG"),
    (1, "EPERM"),
];

/// The errno for an XS_ERROR name (without its NUL), if xs_wire.h lists it.
pub fn errno_from_name(name: &[u8]) -> Option<i32> {
    XSD_ERRORS.iter().find(|(_, n)| n.as_bytes() == name).map(|&(e, _)| e)
}

/// The XS_ERROR name for an errno; xenstored sends EINVAL for any other.
pub fn error_name(errno: i32) -> &'static str {
    XSD_ERRORS.iter().find(|&&(e, _)| e == errno).map_or("EINVAL", |&(_, n)| n)
}

/// struct xsd_sockmsg: the header before every message's payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// The message type (XS_*).
    pub ty: u32,
    /// Echoed in the reply so the client can match it.
    pub req_id: u32,
    /// The transaction (0 for none).
    pub tx_id: u32,
    /// Payload bytes that follow.
    pub len: u32,
}
crate::assert_size!(Header, 16);

/// Bytes in an encoded [`Header`].
pub const HEADER_SIZE: usize = 16;

impl Header {
    /// Decodes a header from its little-endian wire bytes.
    pub fn from_bytes(b: &[u8; HEADER_SIZE]) -> Self {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Header { ty: word(0), req_id: word(4), tx_id: word(8), len: word(12) }
    }

    /// Encodes the header as wire bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..4].copy_from_slice(&self.ty.to_le_bytes());
        b[4..8].copy_from_slice(&self.req_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.tx_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b
    }
}

/// enum xs_watch_type: the fields of a WATCH_EVENT payload.
pub const XS_WATCH_PATH: usize = 0;
/// The token field of a WATCH_EVENT payload.
pub const XS_WATCH_TOKEN: usize = 1;

/// The largest payload either side may send; a longer one gets the
/// connection dropped.
pub const XENSTORE_PAYLOAD_MAX: u32 = 4096;
/// Longest absolute path (longer ones get EINVAL).
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// Longest path relative to a domain's home (`/local/domain/<domid>/`).
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// Size of each of the two rings in the page.
pub const XENSTORE_RING_SIZE: u32 = 1024;
/// A free-running ring index; the position is `idx % XENSTORE_RING_SIZE`.
pub type RingIdx = u32;

/// The position in a ring of a free-running index.
pub const fn mask_idx(idx: RingIdx) -> usize {
    (idx & (XENSTORE_RING_SIZE - 1)) as usize
}

/// struct xenstore_domain_interface: the shared xenstore page.
#[repr(C)]
pub struct XenstoreDomainInterface {
    /// Requests to xenstored.
    pub req: [u8; XENSTORE_RING_SIZE as usize],
    /// Replies and watch events.
    pub rsp: [u8; XENSTORE_RING_SIZE as usize],
    /// Next request byte xenstored will consume.
    pub req_cons: RingIdx,
    /// Next request byte the guest will produce.
    pub req_prod: RingIdx,
    /// Next response byte the guest will consume.
    pub rsp_cons: RingIdx,
    /// Next response byte xenstored will produce.
    pub rsp_prod: RingIdx,
    /// XENSTORE_SERVER_FEATURE_* bits the server supports.
    pub server_features: u32,
    /// XENSTORE_CONNECTED or XENSTORE_RECONNECT.
    pub connection: u32,
    /// XENSTORE_ERROR_*: why the server stopped serving the ring.
    pub error: u32,
    /// The event channel (only for dom0less domains; 0 otherwise).
    pub evtchn_port: u32,
}
crate::assert_size!(XenstoreDomainInterface, 2080);

/// Byte offset of the request ring.
pub const REQ: usize = core::mem::offset_of!(XenstoreDomainInterface, req);
/// Byte offset of the response ring.
pub const RSP: usize = core::mem::offset_of!(XenstoreDomainInterface, rsp);
/// Byte offset of `req_cons`.
pub const REQ_CONS: usize = core::mem::offset_of!(XenstoreDomainInterface, req_cons);
/// Byte offset of `req_prod`.
pub const REQ_PROD: usize = core::mem::offset_of!(XenstoreDomainInterface, req_prod);
/// Byte offset of `rsp_cons`.
pub const RSP_CONS: usize = core::mem::offset_of!(XenstoreDomainInterface, rsp_cons);
/// Byte offset of `rsp_prod`.
pub const RSP_PROD: usize = core::mem::offset_of!(XenstoreDomainInterface, rsp_prod);
/// Byte offset of `server_features`.
pub const SERVER_FEATURES: usize = core::mem::offset_of!(XenstoreDomainInterface, server_features);
/// Byte offset of `connection`.
pub const CONNECTION: usize = core::mem::offset_of!(XenstoreDomainInterface, connection);
/// Byte offset of `error`.
pub const ERROR: usize = core::mem::offset_of!(XenstoreDomainInterface, error);
/// Byte offset of `evtchn_port`.
pub const EVTCHN_PORT: usize = core::mem::offset_of!(XenstoreDomainInterface, evtchn_port);

/// The server can reconnect a ring (XENSTORE_RECONNECT).
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// The server fills the `error` field.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// XS_WATCH takes a depth argument.
pub const XENSTORE_SERVER_FEATURE_WATCHDEPTH: u32 = 4;
/// Permissions may name DOMID_ANY.
pub const XENSTORE_SERVER_FEATURE_DOMID_ANY: u32 = 8;

/// `connection`: the steady state.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `connection`: a reconnect is in progress.
pub const XENSTORE_RECONNECT: u32 = 1;

/// `error`: none.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `error`: a communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `error`: the guest's ring indices were invalid.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `error`: a protocol violation (a payload longer than the maximum).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// The special watch path fired when a domain is introduced.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// The special watch path fired when a domain shuts down or is released.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_xs_wire_h() {
        assert_eq!((REQ, RSP), (0, 1024));
        assert_eq!((REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD), (2048, 2052, 2056, 2060));
        assert_eq!((SERVER_FEATURES, CONNECTION, ERROR, EVTCHN_PORT), (2064, 2068, 2072, 2076));
    }

    #[test]
    fn header_round_trip_and_errors() {
        let h = Header { ty: XS_READ, req_id: 7, tx_id: 3, len: 9 };
        assert_eq!(Header::from_bytes(&h.to_bytes()), h);
        assert_eq!(error_name(2), "ENOENT");
        assert_eq!(error_name(9999), "EINVAL");
        assert_eq!(errno_from_name(b"EAGAIN"), Some(11));
        assert_eq!(type_name(XS_DIRECTORY_PART), "DIRECTORY_PART");
    }
}
