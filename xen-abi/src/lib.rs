//! The Xen guest ABI (hypercalls, shared structures, rings, xenstore wire format), defined once for guests and backends.
#![no_std]
