//! Hostile guests talking to xenstored: a sequence of arbitrary xs_wire
//! messages (any type, any transaction id, malformed payloads, lying and
//! huge lengths) from two unprivileged domains, fed through the entry point
//! the ring and socket transports use (`State::feed`). Checked after every
//! message: no panic; replies well-formed and one per request; quotas hold
//! (nodes per domain, watches, transactions, node sizes, path lengths); a
//! domain never reads, lists or gets the permissions of a node its
//! permissions deny, nor writes one; domain 0's private nodes stay as set.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use xen_abi::xenstore::*;
use xenolith::vstate::memory::GuestRam;
use xenolith::xenstore::daemon::{ConnId, State};
use xenolith::xenstore::perms::{READ, WRITE};
use xenolith::xenstore::{path, wire, GuestRing, Quota, XsError};

/// The types a guest sends: every known one, and some that are not.
const TYPES: [u32; 30] = [
    XS_CONTROL, XS_DIRECTORY, XS_READ, XS_GET_PERMS, XS_WATCH, XS_UNWATCH, XS_TRANSACTION_START, XS_TRANSACTION_END,
    XS_INTRODUCE, XS_RELEASE, XS_GET_DOMAIN_PATH, XS_WRITE, XS_MKDIR, XS_RM, XS_SET_PERMS, XS_WATCH_EVENT, XS_ERROR,
    XS_IS_DOMAIN_INTRODUCED, XS_RESUME, XS_SET_TARGET, XS_RESET_WATCHES, XS_DIRECTORY_PART, XS_GET_FEATURE,
    XS_SET_FEATURE, XS_GET_QUOTA, XS_SET_QUOTA, XS_TYPE_COUNT, XS_INVALID, 20, u32::MAX,
];

/// One guest as the harness sees it.
struct Guest {
    domid: u16,
    conn: ConnId,
    /// Its transaction ids, from TRANSACTION_START replies.
    txs: Vec<u32>,
    /// Its byte stream is still at a message boundary (it has not lied
    /// about a length), so every request gets exactly one reply.
    in_sync: bool,
    /// Its transport would have dropped it (a framing error).
    gone: bool,
}

/// A request as domain 0 sends it (setup only).
fn dom0(st: &mut State, ty: u32, payload: &[u8]) {
    let id = st.internal();
    let msg = wire::Message { header: Header { ty, req_id: 0, tx_id: 0, len: payload.len() as u32 }, payload: payload.to_vec() };
    let r = st.handle(id, &msg);
    assert_ne!(r.ty, XS_ERROR, "setup {ty} {:?}", String::from_utf8_lossy(payload));
    st.flush_after_reply();
}

/// libxl's layout for domain `d`, and nodes only domain 0 may touch.
fn setup(st: &mut State, ram: &Arc<GuestRam>) -> Vec<Guest> {
    dom0(st, XS_WRITE, b"/secret\0dom0 only");
    dom0(st, XS_WRITE, b"/shared\0for 1");
    dom0(st, XS_SET_PERMS, b"/shared\0n0\0r1\0");
    let mut guests = Vec::new();
    for d in [1u16, 2] {
        let home = path::domain_path(d.into());
        dom0(st, XS_MKDIR, format!("{home}\0").as_bytes());
        dom0(st, XS_SET_PERMS, format!("{home}\0n0\0r{d}\0").as_bytes());
        dom0(st, XS_MKDIR, format!("{home}/data\0").as_bytes());
        dom0(st, XS_SET_PERMS, format!("{home}/data\0n{d}\0").as_bytes());
        dom0(st, XS_WRITE, format!("{home}/private\0dom0's").as_bytes());
        dom0(st, XS_SET_PERMS, format!("{home}/private\0n0\0").as_bytes());
        let before = st.rings();
        let ring = GuestRing::new(ram.clone(), u64::from(d) << 12, || {}).unwrap();
        st.introduce(d, Some(Arc::new(ring))).unwrap();
        let conn = st.rings().into_iter().find(|c| !before.contains(c)).unwrap();
        guests.push(Guest { domid: d, conn, txs: Vec::new(), in_sync: true, gone: false });
    }
    guests
}

/// Checks one message xenstored queued for `g`; returns whether it is a
/// reply (not a watch event).
fn check_message(g: &Guest, bytes: &[u8]) -> bool {
    assert!(bytes.len() >= HEADER_SIZE, "short message");
    let h = Header::from_bytes(bytes[..HEADER_SIZE].try_into().unwrap());
    let payload = &bytes[HEADER_SIZE..];
    assert_eq!(h.len as usize, payload.len(), "length field");
    assert!(h.len <= XENSTORE_PAYLOAD_MAX, "payload over the limit");
    match h.ty {
        XS_WATCH_EVENT => {
            assert_eq!((h.req_id, h.tx_id), (0, 0));
            assert_eq!(payload.iter().filter(|&&b| b == 0).count(), 2, "event: path and token");
            assert_eq!(payload.last(), Some(&0));
            let _ = g;
            false
        }
        XS_ERROR => {
            let name = payload.strip_suffix(b"\0").expect("error name ends in NUL");
            assert!(XsError::from_name(name).is_some(), "unknown error {:?}", String::from_utf8_lossy(name));
            true
        }
        _ => true,
    }
}

/// Quotas that must hold after every message.
fn check_quotas(st: &State, guests: &[Guest]) {
    let q = Quota::default();
    for g in guests {
        assert!(st.tree.owned(g.domid) <= q.nodes, "domain {} owns {} nodes", g.domid, st.tree.owned(g.domid));
        if let Some((watches, txs)) = st.held(g.conn) {
            assert!(watches <= q.watches, "{watches} watches");
            assert!(txs <= q.transactions, "{txs} transactions");
        }
    }
}

/// What must hold of the whole tree at the end.
fn check_tree(st: &State) {
    let q = Quota::default();
    for p in st.tree.paths() {
        assert!(p.len() <= XENSTORE_ABS_PATH_MAX && path::is_valid(p, q.path_len), "path {p:?}");
        let node = st.tree.get(p).unwrap();
        assert!(node.record_size() < q.node_size, "node {p} is {} bytes", node.record_size());
        if p != "/" {
            let parent = st.tree.get(path::parent(p)).expect("parent exists");
            assert!(parent.children.iter().any(|c| c == path::basename(p)), "{p} not listed in its parent");
        }
        for c in &node.children {
            assert!(st.tree.get(&path::join(p, c)).is_some(), "{p} lists a missing child {c}");
        }
    }
    for (p, v) in [("/secret", &b"dom0 only"[..]), ("/local/domain/1/private", b"dom0's"), ("/local/domain/2/private", b"dom0's")] {
        let node = st.tree.get(p).expect("domain 0's node survives");
        assert_eq!((node.value.as_slice(), node.perms.owner(), node.perms.entries().len()), (v, 0, 1), "{p} changed");
    }
}

/// A successful request `ty` on path argument `arg` by `g` outside a
/// transaction: the node's permissions must have allowed it.
fn check_access(st: &State, g: &Guest, ty: u32, payload: &[u8]) {
    let need = match ty {
        XS_READ | XS_DIRECTORY | XS_GET_PERMS | XS_DIRECTORY_PART => READ,
        XS_WRITE => WRITE,
        _ => return,
    };
    let Some(arg) = wire::strings(payload).first().copied() else { return };
    let Ok(text) = std::str::from_utf8(arg) else { return };
    let p = path::canonicalize(text, g.domid);
    if p.starts_with('@') {
        return; // @introduceDomain and @releaseDomain are not in the tree
    }
    let node = st.tree.get(&p).unwrap_or_else(|| panic!("{p} read by {} but missing", g.domid));
    assert_ne!(node.perms.access_for(g.domid, false) & need, 0, "domain {} got {ty} on {p} with perms {}", g.domid, node.perms);
}

fuzz_target!(|data: &[u8]| {
    let ram = Arc::new(GuestRam::new(&[(0, 0x3000)]).unwrap());
    let mut st = State::new(Quota::default());
    let mut guests = setup(&mut st, &ram);
    let mut req_id = 0u32;
    // Each message: sel, type, tx, two length bytes, then the payload.
    let mut rest = data;
    while rest.len() >= 5 {
        let (head, tail) = rest.split_at(5);
        let (sel, ty, txb) = (head[0], TYPES[usize::from(head[1]) % TYPES.len()], head[2]);
        let n = (usize::from(u16::from_le_bytes([head[3], head[4]])) % 4200).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        let g = &mut guests[usize::from(sel & 1)];
        if g.gone {
            continue;
        }
        // Transaction: none, one of its own, or any number.
        let tx_id = match txb {
            0..=127 => 0,
            128..=250 => g.txs.get(usize::from(txb - 128) % g.txs.len().max(1)).copied().unwrap_or(0),
            _ => u32::from(txb) - 250,
        };
        req_id = req_id.wrapping_add(1);
        let mut bytes = wire::encode(ty, req_id, tx_id, payload);
        let framed = g.in_sync && n <= XENSTORE_PAYLOAD_MAX as usize;
        if sel & 2 != 0 {
            // A lying length: short, long, or huge.
            let len = match sel >> 2 {
                0 => u32::MAX,
                1 => XENSTORE_PAYLOAD_MAX + 1,
                k => (payload.len() as u32).wrapping_add(u32::from(k)) % (XENSTORE_PAYLOAD_MAX + 1),
            };
            bytes[12..16].copy_from_slice(&len.to_le_bytes());
            g.in_sync = false;
        }
        // Fed in one piece or split, as a ring delivers it.
        let cut = if sel & 0x40 != 0 { usize::from(head[3]) % (bytes.len() + 1) } else { bytes.len() };
        let fed = st.feed(g.conn, &bytes[..cut]).and_then(|()| st.feed(g.conn, &bytes[cut..]));
        let out = st.take_output(g.conn);
        if fed.is_err() {
            // The transport drops the connection on a framing error.
            assert!(!framed || sel & 2 != 0, "a well-framed message refused");
            g.gone = true;
            continue;
        }
        let mut replies = Vec::new();
        for m in &out {
            if check_message(g, m) {
                replies.push(m);
            }
        }
        // The other guest may get watch events; they must be well-formed.
        let other = usize::from(sel & 1 == 0);
        for m in st.take_output(guests[other].conn) {
            assert!(!check_message(&guests[other], &m), "a reply to a request never sent");
        }
        let g = &mut guests[usize::from(sel & 1)];
        if g.in_sync {
            assert_eq!(replies.len(), 1, "one reply per request");
            let r = replies[0];
            let h = Header::from_bytes(r[..HEADER_SIZE].try_into().unwrap());
            assert_eq!((h.req_id, h.tx_id), (req_id, tx_id), "ids echoed");
            assert!(h.ty == ty || h.ty == XS_ERROR, "reply type {} to {ty}", h.ty);
            if h.ty == ty {
                assert!(![XS_INTRODUCE, XS_RELEASE, XS_RESUME, XS_IS_DOMAIN_INTRODUCED].contains(&ty), "privileged {ty} allowed");
                if ty == XS_TRANSACTION_START {
                    let id = std::str::from_utf8(&r[HEADER_SIZE..]).ok().and_then(|s| s.trim_end_matches('\0').parse().ok());
                    g.txs.push(id.expect("a transaction id"));
                }
                if tx_id == 0 {
                    check_access(&st, g, ty, payload);
                }
            }
            if ty == XS_RESET_WATCHES {
                g.txs.clear();
            }
        }
        check_quotas(&st, &guests);
    }
    check_tree(&st);
});
