//! Per-domain quotas, with C xenstored 4.17's defaults, so one guest
//! cannot exhaust the daemon. Privileged callers (domain 0, host tools,
//! in-process backends) are not limited, as in C xenstored.

use xen_abi::xenstore::XENSTORE_REL_PATH_MAX;

/// The limits applied to unprivileged domains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Nodes a domain may own (quota-nb-entry-per-domain); ENOSPC beyond.
    pub nodes: usize,
    /// Watches a domain may hold (quota-nb-watch-per-domain); E2BIG beyond.
    pub watches: usize,
    /// Transactions a domain may have open (quota-max-transaction); ENOSPC beyond.
    pub transactions: usize,
    /// Largest stored node record, as C measures it (quota-max-entry-size); ENOSPC at or beyond.
    pub node_size: usize,
    /// Permission entries per node (quota-nb-perms-per-node); ENOSPC beyond.
    pub perms: usize,
    /// Nodes one transaction may touch (quota-trans-nodes); ENOSPC beyond.
    pub trans_nodes: usize,
    /// Path bytes below a domain's home (quota-max-path-len); EINVAL beyond.
    pub path_len: usize,
    /// Replies queued for a domain before its requests are no longer read
    /// (quota-req-outstanding): back-pressure, not an error.
    pub outstanding: usize,
    /// Bytes of replies and events queued for one connection; watch
    /// events beyond it are dropped, as C drops them past its memory quota.
    pub queued_bytes: usize,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            nodes: 1000,
            watches: 128,
            transactions: 10,
            node_size: 2048,
            perms: 5,
            trans_nodes: 1024,
            path_len: XENSTORE_REL_PATH_MAX,
            outstanding: 20,
            queued_bytes: 2 * 1024 * 1024 + 512 * 1024,
        }
    }
}

/// The size C xenstored gives a stored node (struct xs_tdb_record_hdr is
/// 24 bytes, each permission 8), which quota-max-entry-size limits.
pub fn node_record_size(perms: usize, value: usize, children: usize) -> usize {
    24 + 8 * perms + value + children
}
