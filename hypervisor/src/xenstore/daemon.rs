//! The daemon's state and request dispatch: connections (guest rings,
//! host sockets, the in-process API), their watches, transactions and
//! output queues, the domains xenstored serves, and one function per
//! message type, with C xenstored 4.17's argument checks and errors.
//!
//! Everything here runs under one lock (see `mod.rs` for the threads),
//! mirroring C xenstored's single-threaded design: one request at a time,
//! so every request sees a consistent tree.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use xen_abi::xenstore::*;
use xen_abi::{DomId, DOMID_SELF};

use super::perms::{self, Perms};
use super::quota::Quota;
use super::ring::{Ring, RingError};
use super::store::{Caller, Fired, Op, Tree};
use super::transaction::Transaction;
use super::watch::Watch;
use super::wire::{self, Decoder, Message, Reply, WireError};
use super::{path, XsError};

/// A connection's id.
pub type ConnId = u64;

/// The token prefix of watches set through the in-process API.
const API_TOKEN: &str = "xenolith-api/";

/// A host socket client may queue this much output before its requests
/// are no longer read (back-pressure instead of unbounded memory).
const SOCKET_OUT_LIMIT: usize = 16 << 20;

/// A domain's ring page and how to notify the domain.
pub struct GuestRing {
    pub(super) ring: Ring,
    notify: Box<dyn Fn() + Send + Sync>,
}

impl GuestRing {
    /// The ring page at guest-physical `gpa` in `ram`; `notify` raises the
    /// domain's store event channel (e.g. `move || dom.raise(port)`).
    pub fn new(
        ram: Arc<crate::vstate::memory::GuestRam>,
        gpa: u64,
        notify: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self, RingError> {
        Ok(GuestRing { ring: Ring::new(ram, gpa)?, notify: Box::new(notify) })
    }

    /// Raises the domain's store event channel.
    pub fn notify(&self) {
        (self.notify)()
    }
}

/// How a connection reaches its client.
enum Transport {
    /// The in-process API: watch events go to callbacks.
    Internal,
    /// A host tool on the unix socket.
    Socket(UnixStream),
    /// A guest's ring page.
    Ring(Arc<GuestRing>),
}

/// One queued outgoing message.
struct Out {
    bytes: Vec<u8>,
    sent: usize,
    /// A reply (counts against quota-req-outstanding) rather than an event.
    reply: bool,
}

/// One client of the daemon.
struct Conn {
    caller: Caller,
    transport: Transport,
    watches: Vec<Watch>,
    txs: BTreeMap<u32, Transaction>,
    next_tx: u32,
    q: OutQueue,
    decoder: Decoder,
    /// Stopped being served (bad ring indices, protocol violation).
    broken: bool,
}

impl Conn {
    fn new(caller: Caller, transport: Transport) -> Self {
        Conn {
            caller,
            transport,
            watches: Vec::new(),
            txs: BTreeMap::new(),
            next_tx: 1,
            q: OutQueue::default(),
            decoder: Decoder::new(),
            broken: false,
        }
    }

    /// Drops the connection's state, as C's ignore_connection does.
    fn break_off(&mut self) {
        self.broken = true;
        self.watches.clear();
        self.txs.clear();
        self.q = OutQueue::default();
        self.decoder = Decoder::new();
    }
}

/// A connection's output not yet taken by its client.
#[derive(Default)]
struct OutQueue {
    out: VecDeque<Out>,
    out_bytes: usize,
    /// Replies queued (quota-req-outstanding counts these, not events).
    outstanding: usize,
}

impl OutQueue {
    fn push(&mut self, bytes: Vec<u8>, reply: bool) {
        self.out_bytes += bytes.len();
        if reply {
            self.outstanding += 1;
        }
        self.out.push_back(Out { bytes, sent: 0, reply });
    }

    /// Writes queued output into `sink` until it takes no more. Returns
    /// whether anything moved.
    fn flush(&mut self, mut sink: impl FnMut(&[u8]) -> std::io::Result<usize>) -> std::io::Result<bool> {
        let mut moved = false;
        while let Some(front) = self.out.front_mut() {
            let n = match sink(&front.bytes[front.sent..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            moved = true;
            front.sent += n;
            self.out_bytes -= n;
            if front.sent == front.bytes.len() {
                if front.reply {
                    self.outstanding -= 1;
                }
                self.out.pop_front();
            }
        }
        Ok(moved)
    }
}

/// A domain xenstored knows.
struct DomainEntry {
    ring: Arc<GuestRing>,
    /// Its connection, once introduced.
    conn: Option<ConnId>,
    /// @releaseDomain has fired for its shutdown.
    shutdown: bool,
}

/// The whole daemon state.
pub struct State {
    /// The tree.
    pub tree: Tree,
    /// Limits for unprivileged domains.
    pub quota: Quota,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    domains: BTreeMap<DomId, DomainEntry>,
    /// Permissions of @introduceDomain and @releaseDomain.
    special: HashMap<&'static str, Perms>,
    /// The in-process API's connection.
    internal: ConnId,
    /// API watch events waiting for the daemon thread.
    api_events: Vec<(u64, String)>,
    /// Output was queued for a socket or ring (the daemon should flush).
    pub(super) dirty: bool,
    /// Events to queue after the current reply (WATCH's first firing).
    after_reply: Vec<(ConnId, String, Vec<u8>)>,
}

impl Default for State {
    fn default() -> Self {
        Self::new(Quota::default())
    }
}

/// Message types: (known, domain 0 only, ignores tx_id).
fn flags(ty: u32) -> (bool, bool, bool) {
    match ty {
        XS_INTRODUCE | XS_RELEASE | XS_IS_DOMAIN_INTRODUCED | XS_RESUME => (true, true, false),
        XS_WATCH | XS_UNWATCH => (true, false, true),
        XS_DIRECTORY | XS_READ | XS_GET_PERMS | XS_TRANSACTION_START | XS_TRANSACTION_END | XS_GET_DOMAIN_PATH
        | XS_WRITE | XS_MKDIR | XS_RM | XS_SET_PERMS | XS_RESET_WATCHES | XS_DIRECTORY_PART => (true, false, false),
        // CONTROL, SET_TARGET, WATCH_EVENT, ERROR, the removed RESTRICT and
        // anything newer: ENOSYS, which xenstore.txt allows for optional types.
        _ => (false, false, false),
    }
}

fn ok() -> Vec<u8> {
    b"OK\0".to_vec()
}

impl State {
    /// A daemon with the initial tree and no clients but the API.
    pub fn new(quota: Quota) -> Self {
        let mut st = State {
            tree: Tree::new(),
            quota,
            conns: BTreeMap::new(),
            next_conn: 1,
            domains: BTreeMap::new(),
            special: HashMap::from([(INTRODUCE_DOMAIN, Perms::owned(0, perms::Access::None)), (RELEASE_DOMAIN, Perms::owned(0, perms::Access::None))]),
            internal: 0,
            api_events: Vec::new(),
            dirty: false,
            after_reply: Vec::new(),
        };
        st.internal = st.add_conn(Caller::DOM0, Transport::Internal);
        st
    }

    fn add_conn(&mut self, caller: Caller, transport: Transport) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(id, Conn::new(caller, transport));
        id
    }

    /// The in-process API's connection.
    pub fn internal(&self) -> ConnId {
        self.internal
    }

    /// A new host socket client (domain 0).
    pub fn add_socket(&mut self, stream: UnixStream) -> ConnId {
        self.add_conn(Caller::DOM0, Transport::Socket(stream))
    }

    /// The socket clients, with the poll(2) events each waits for: input
    /// unless its output is backed up, output while some is queued.
    pub fn sockets(&self) -> Vec<(ConnId, std::os::fd::RawFd, i16)> {
        use std::os::fd::AsRawFd;
        self.conns
            .iter()
            .filter_map(|(&id, c)| match &c.transport {
                Transport::Socket(s) => {
                    let input = if c.q.out_bytes > SOCKET_OUT_LIMIT { 0 } else { libc::POLLIN };
                    let output = if c.q.out.is_empty() { 0 } else { libc::POLLOUT };
                    Some((id, s.as_raw_fd(), input | output))
                }
                _ => None,
            })
            .collect()
    }

    /// The guest ring connections.
    pub fn rings(&self) -> Vec<ConnId> {
        self.conns.iter().filter(|(_, c)| matches!(c.transport, Transport::Ring(_)) && !c.broken).map(|(&id, _)| id).collect()
    }

    // --- domains ---

    /// INTRODUCE: starts serving `domid` on `ring` (replacing an earlier
    /// ring) and fires @introduceDomain. Re-introducing a domain resets its
    /// connection, as C xenstored does.
    pub fn introduce(&mut self, domid: DomId, ring: Option<Arc<GuestRing>>) -> Result<(), XsError> {
        if domid == 0 || domid >= DOMID_SELF {
            return Err(XsError::Inval);
        }
        let ring = match (ring, self.domains.get(&domid)) {
            (Some(r), _) => r,
            (None, Some(d)) => d.ring.clone(),
            // A domain this hypervisor does not run has no ring to map.
            (None, None) => return Err(XsError::Inval),
        };
        ring.ring.reset().map_err(|_| XsError::Inval)?;
        let old = self.domains.get(&domid).and_then(|d| d.conn);
        if let Some(id) = old {
            self.conns.remove(&id);
        }
        let id = self.add_conn(Caller::guest(domid), Transport::Ring(ring.clone()));
        self.domains.insert(domid, DomainEntry { ring, conn: Some(id), shutdown: false });
        if old.is_none() {
            self.fire_special(INTRODUCE_DOMAIN);
        }
        log::debug!("xenstored: domain {domid} introduced");
        Ok(())
    }

    /// The domain shut down (or crashed): fire @releaseDomain once, as C
    /// xenstored does when it sees the shutdown.
    pub fn domain_shutdown(&mut self, domid: DomId) {
        if let Some(d) = self.domains.get_mut(&domid) {
            if !d.shutdown {
                d.shutdown = true;
                self.fire_special(RELEASE_DOMAIN);
            }
        }
    }

    /// RELEASE: stops serving the domain, removes the nodes it owns and its
    /// entries in other nodes' permissions, and fires @releaseDomain.
    pub fn release(&mut self, domid: u32) -> Result<(), XsError> {
        if domid == 0 {
            return Err(XsError::Inval);
        }
        let domid = DomId::try_from(domid).map_err(|_| XsError::NoEnt)?;
        let entry = self.domains.get(&domid).ok_or(XsError::NoEnt)?;
        let id = entry.conn.ok_or(XsError::Inval)?;
        self.conns.remove(&id);
        self.domains.remove(&domid);
        let mut op = Op::new(&mut self.tree, None, Caller::DOM0, &self.quota);
        let r = op.forget_domain(domid);
        let fired = std::mem::take(&mut op.fired);
        self.deliver(&fired);
        for p in self.special.values_mut() {
            p.forget(domid);
        }
        self.fire_special(RELEASE_DOMAIN);
        log::debug!("xenstored: domain {domid} released");
        r
    }

    fn is_introduced(&self, domid: u32) -> bool {
        domid == 0 || domid == u32::from(DOMID_SELF) || DomId::try_from(domid).is_ok_and(|d| self.domains.get(&d).is_some_and(|e| e.conn.is_some()))
    }

    // --- watch events ---

    fn fire_special(&mut self, name: &'static str) {
        self.deliver(&[Fired { path: name.to_owned(), exact: true, perms: Vec::new() }]);
    }

    /// Sends the events `fired` causes to every watch that matches and
    /// whose owner may see them.
    fn deliver(&mut self, fired: &[Fired]) {
        let mut queued = Vec::new();
        for f in fired {
            let special = self.special.get(f.path.as_str());
            for (&id, conn) in &self.conns {
                if conn.broken {
                    continue;
                }
                let c = conn.caller;
                let permitted = if f.path.starts_with('@') {
                    special.is_some_and(|p| p.access_for(c.domid, c.privileged) & perms::READ != 0)
                } else {
                    c.privileged || f.perms.iter().any(|p| p.access_for(c.domid, false) & perms::READ != 0)
                };
                if !permitted {
                    continue;
                }
                for w in conn.watches.iter().filter(|w| w.matches(&f.path, f.exact)) {
                    queued.push((id, w.event_path(&f.path).to_owned(), w.token.clone()));
                }
            }
        }
        for (id, p, token) in queued {
            self.queue_event(id, &p, &token);
        }
    }

    fn queue_event(&mut self, id: ConnId, event_path: &str, token: &[u8]) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        if let Transport::Internal = conn.transport {
            let watch_id = std::str::from_utf8(token).ok().and_then(|t| t.strip_prefix(API_TOKEN)).and_then(|n| n.parse().ok());
            if let Some(w) = watch_id {
                self.api_events.push((w, event_path.to_owned()));
                self.dirty = true;
            }
            return;
        }
        let msg = wire::watch_event(event_path, token);
        if msg.len() - HEADER_SIZE > XENSTORE_PAYLOAD_MAX as usize {
            return; // C xenstored does not send over-long events either
        }
        // An identical event still waiting adds nothing (special events excepted).
        if !event_path.starts_with('@') && conn.q.out.iter().any(|o| !o.reply && o.sent == 0 && o.bytes == msg) {
            return;
        }
        if !conn.caller.privileged && conn.q.out_bytes + msg.len() > self.quota.queued_bytes {
            log::debug!("xenstored: domain {}: output quota reached, watch event dropped", conn.caller.domid);
            return;
        }
        conn.q.push(msg, false);
        self.dirty = true;
    }

    // --- requests ---

    /// Handles one request from connection `id` and queues the reply.
    pub fn process(&mut self, id: ConnId, msg: &Message) {
        let reply = self.handle(id, msg);
        let h = msg.header;
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.q.push(wire::encode(reply.ty, h.req_id, h.tx_id, &reply.payload), true);
            self.dirty = true;
        }
        for (cid, p, token) in std::mem::take(&mut self.after_reply) {
            self.queue_event(cid, &p, &token);
        }
    }

    /// Handles one request and returns its reply (the API uses this directly).
    pub fn handle(&mut self, id: ConnId, msg: &Message) -> Reply {
        let h = &msg.header;
        match self.dispatch(id, h, &msg.payload) {
            Ok(payload) if payload.len() > XENSTORE_PAYLOAD_MAX as usize => Reply::error(XsError::TooBig),
            Ok(payload) => Reply { ty: h.ty, payload },
            Err(e) => Reply::error(e),
        }
    }

    /// Runs a node operation for connection `id`, in transaction `tx_id`
    /// if not 0, and sends the watch events it causes.
    fn with_op<T>(&mut self, id: ConnId, tx_id: u32, f: impl FnOnce(&mut Op<'_>) -> Result<T, XsError>) -> Result<T, XsError> {
        let conn = self.conns.get_mut(&id).ok_or(XsError::Io)?;
        let caller = conn.caller;
        let tx = match tx_id {
            0 => None,
            t => Some(conn.txs.get_mut(&t).ok_or(XsError::NoEnt)?),
        };
        let mut op = Op::new(&mut self.tree, tx, caller, &self.quota);
        let r = f(&mut op);
        let fired = std::mem::take(&mut op.fired);
        self.deliver(&fired);
        r
    }

    fn dispatch(&mut self, id: ConnId, h: &xen_abi::xenstore::Header, p: &[u8]) -> Result<Vec<u8>, XsError> {
        let caller = self.conns.get(&id).ok_or(XsError::Io)?.caller;
        let (known, privileged_only, ignores_tx) = flags(h.ty);
        if !known {
            return Err(XsError::NoSys);
        }
        if privileged_only && !caller.privileged {
            return Err(XsError::Acces);
        }
        let tx = if ignores_tx { 0 } else { h.tx_id };
        if tx != 0 && !self.conns.get(&id).is_some_and(|c| c.txs.contains_key(&tx)) {
            return Err(XsError::NoEnt);
        }
        let node = |b: &[u8]| -> Result<String, XsError> { Ok(path::canonicalize(wire::text(b)?, caller.domid)) };
        match h.ty {
            XS_READ => {
                let p = node(wire::onearg(p)?)?;
                self.with_op(id, tx, |op| op.read(&p))
            }
            XS_WRITE => {
                let first = wire::strings(p).first().copied().ok_or(XsError::Inval)?;
                let value = &p[first.len() + 1..];
                let path = node(first)?;
                self.with_op(id, tx, |op| op.write(&path, value)).map(|()| ok())
            }
            XS_MKDIR => {
                let p = node(wire::onearg(p)?)?;
                self.with_op(id, tx, |op| op.mkdir(&p)).map(|()| ok())
            }
            XS_RM => {
                let p = node(wire::onearg(p)?)?;
                self.with_op(id, tx, |op| op.rm(&p)).map(|()| ok())
            }
            XS_DIRECTORY => {
                let p = node(wire::onearg(p)?)?;
                self.with_op(id, tx, |op| op.directory(&p))
            }
            XS_DIRECTORY_PART => {
                let args = wire::strings(p);
                if p.iter().filter(|&&b| b == 0).count() != 2 {
                    return Err(XsError::Inval);
                }
                let path = node(args[0])?;
                let offset = path::atoi(args[1]) as usize;
                self.with_op(id, tx, |op| op.directory_part(&path, offset))
            }
            XS_GET_PERMS => {
                let p = node(wire::onearg(p)?)?;
                self.with_op(id, tx, |op| op.get_perms(&p)).map(|perms| perms.to_wire())
            }
            XS_SET_PERMS => self.set_perms(id, tx, caller, p),
            XS_WATCH => self.watch(id, caller, p),
            XS_UNWATCH => {
                let args = wire::strings(p);
                if args.len() != 2 {
                    return Err(XsError::Inval);
                }
                let wpath = path::canonicalize(wire::text(args[0])?, caller.domid);
                let conn = self.conns.get_mut(&id).ok_or(XsError::Io)?;
                let at = conn.watches.iter().position(|w| w.path == wpath && w.token == args[1]).ok_or(XsError::NoEnt)?;
                conn.watches.remove(at);
                Ok(ok())
            }
            XS_TRANSACTION_START => {
                if tx != 0 {
                    return Err(XsError::Busy); // no nested transactions
                }
                let quota = self.quota.transactions;
                let conn = self.conns.get_mut(&id).ok_or(XsError::Io)?;
                if !caller.privileged && conn.txs.len() >= quota {
                    return Err(XsError::NoSpc);
                }
                let mut t = conn.next_tx;
                while t == 0 || conn.txs.contains_key(&t) {
                    t = t.wrapping_add(1);
                }
                conn.next_tx = t.wrapping_add(1);
                conn.txs.insert(t, Transaction::new(t));
                Ok(format!("{t}\0").into_bytes())
            }
            XS_TRANSACTION_END => {
                let arg = wire::onearg(p)?;
                let commit = match arg {
                    b"T" => true,
                    b"F" => false,
                    _ => return Err(XsError::Inval),
                };
                if tx == 0 {
                    return Err(XsError::NoEnt);
                }
                let t = self.conns.get_mut(&id).and_then(|c| c.txs.remove(&tx)).ok_or(XsError::NoEnt)?;
                if commit {
                    let fired = t.commit(&mut self.tree, &self.quota, caller.privileged)?;
                    self.deliver(&fired);
                }
                Ok(ok())
            }
            XS_GET_DOMAIN_PATH => {
                let d = path::atoi(wire::onearg(p)?);
                Ok(format!("{}\0", path::domain_path(d)).into_bytes())
            }
            XS_IS_DOMAIN_INTRODUCED => {
                let d = path::atoi(wire::onearg(p)?);
                Ok(if self.is_introduced(d) { b"T\0".to_vec() } else { b"F\0".to_vec() })
            }
            XS_INTRODUCE => {
                let args = wire::strings(p);
                if args.len() < 3 {
                    return Err(XsError::Inval);
                }
                let (domid, port) = (path::atoi(args[0]), path::atoi(args[2]));
                if port == 0 {
                    return Err(XsError::Inval);
                }
                let domid = DomId::try_from(domid).map_err(|_| XsError::Inval)?;
                self.introduce(domid, None).map(|()| ok())
            }
            XS_RELEASE => {
                let d = path::atoi(wire::onearg(p)?);
                self.release(d).map(|()| ok())
            }
            XS_RESUME => {
                let d = path::atoi(wire::onearg(p)?);
                let d = DomId::try_from(d).ok().filter(|&d| d != 0).ok_or(XsError::Inval)?;
                let e = self.domains.get_mut(&d).ok_or(XsError::NoEnt)?;
                if e.conn.is_none() {
                    return Err(XsError::Inval);
                }
                e.shutdown = false;
                Ok(ok())
            }
            XS_RESET_WATCHES => {
                let conn = self.conns.get_mut(&id).ok_or(XsError::Io)?;
                conn.watches.clear();
                conn.txs.clear();
                Ok(ok())
            }
            _ => Err(XsError::NoSys),
        }
    }

    fn set_perms(&mut self, id: ConnId, tx: u32, caller: Caller, p: &[u8]) -> Result<Vec<u8>, XsError> {
        let args = wire::strings(p);
        if args.len() < 2 {
            return Err(XsError::Inval);
        }
        if !caller.privileged && args.len() - 1 > self.quota.perms {
            return Err(XsError::NoSpc);
        }
        let new = Perms::parse_strings(args[1..].iter().copied())?;
        let target = wire::text(args[0])?;
        if target.starts_with('@') {
            let sp = self.special.get_mut(target).ok_or(XsError::Inval)?;
            let need = perms::WRITE | perms::OWNER;
            if sp.access_for(caller.domid, caller.privileged) & need != need {
                return Err(XsError::Acces);
            }
            *sp = new;
            return Ok(ok());
        }
        let path = path::canonicalize(target, caller.domid);
        self.with_op(id, tx, |op| op.set_perms(&path, new)).map(|()| ok())
    }

    fn watch(&mut self, id: ConnId, caller: Caller, p: &[u8]) -> Result<Vec<u8>, XsError> {
        let args = wire::strings(p);
        if args.len() != 2 {
            return Err(XsError::Inval);
        }
        let w = Watch::new(wire::text(args[0])?, args[1], caller.domid, self.quota.path_len)?;
        let quota = self.quota.watches;
        let conn = self.conns.get_mut(&id).ok_or(XsError::Io)?;
        if conn.watches.iter().any(|x| x.path == w.path && x.token == w.token) {
            return Err(XsError::Exist);
        }
        if !caller.privileged && conn.watches.len() >= quota {
            return Err(XsError::TooBig);
        }
        // Fires once straight away, after the reply: simplifies clients.
        self.after_reply.push((id, w.event_path(&w.path).to_owned(), w.token.clone()));
        conn.watches.push(w);
        Ok(ok())
    }

    /// Queues the first firing of a watch the API just set (the API has no
    /// reply message to follow).
    pub fn flush_after_reply(&mut self) {
        for (cid, p, token) in std::mem::take(&mut self.after_reply) {
            self.queue_event(cid, &p, &token);
        }
    }

    /// The token of API watch `n`.
    pub fn api_token(n: u64) -> String {
        format!("{API_TOKEN}{n}")
    }

    // --- transports ---

    /// Serves a guest ring: writes queued output, then reads and handles
    /// requests while the domain's outstanding replies stay under quota.
    /// Returns the ring if the guest must be notified.
    pub fn pump_ring(&mut self, id: ConnId) -> Option<Arc<GuestRing>> {
        let mut moved = false;
        let ring = match &self.conns.get(&id)?.transport {
            Transport::Ring(r) => r.clone(),
            _ => return None,
        };
        loop {
            let conn = self.conns.get_mut(&id)?;
            if conn.broken {
                break;
            }
            match conn.q.flush(|b| ring.ring.write(b).map_err(std::io::Error::other)) {
                Ok(m) => moved |= m,
                Err(e) => {
                    self.break_ring(id, &ring, XENSTORE_ERROR_RINGIDX, &e.to_string());
                    break;
                }
            }
            let conn = self.conns.get_mut(&id)?;
            if !conn.caller.privileged && conn.q.outstanding >= self.quota.outstanding {
                break;
            }
            let mut buf = [0u8; XENSTORE_RING_SIZE as usize];
            let want = conn.decoder.needed().min(buf.len());
            let n = match ring.ring.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) => {
                    self.break_ring(id, &ring, XENSTORE_ERROR_RINGIDX, &e.to_string());
                    break;
                }
            };
            if n == 0 {
                break;
            }
            moved = true;
            if let Err(e) = self.feed(id, &buf[..n]) {
                self.break_ring(id, &ring, XENSTORE_ERROR_PROTO, &e.to_string());
                break;
            }
        }
        moved.then_some(ring)
    }

    fn break_ring(&mut self, id: ConnId, ring: &GuestRing, code: u32, why: &str) {
        if let Some(conn) = self.conns.get_mut(&id) {
            log::warn!("xenstored: domain {}: {why}; no longer serving its xenstore ring", conn.caller.domid);
            conn.break_off();
            ring.ring.set_error(code);
        }
    }

    /// Feeds received bytes to a connection's decoder and handles the
    /// messages they complete.
    fn feed(&mut self, id: ConnId, mut data: &[u8]) -> Result<(), WireError> {
        while !data.is_empty() {
            let Some(conn) = self.conns.get_mut(&id) else { return Ok(()) };
            let (n, msg) = conn.decoder.feed(data)?;
            data = &data[n..];
            if let Some(m) = msg {
                log::trace!("xenstored: conn {id}: {} {:?}", type_name(m.header.ty), String::from_utf8_lossy(&m.payload));
                self.process(id, &m);
            }
        }
        Ok(())
    }

    /// Serves a socket client: reads what is there (unless its output is
    /// backed up), handles it, writes what the socket takes. Returns false
    /// once the client is gone (the connection is then removed).
    pub fn pump_socket(&mut self, id: ConnId) -> bool {
        let alive = self.pump_socket_inner(id);
        if !alive {
            self.conns.remove(&id);
        }
        alive
    }

    fn pump_socket_inner(&mut self, id: ConnId) -> bool {
        let mut buf = [0u8; 8192];
        loop {
            let Some(conn) = self.conns.get_mut(&id) else { return false };
            let Transport::Socket(s) = &conn.transport else { return false };
            let mut s = s;
            if let Err(e) = conn.q.flush(|b| s.write(b)) {
                log::debug!("xenstored: socket client {id}: {e}");
                return false;
            }
            if conn.q.out_bytes > SOCKET_OUT_LIMIT {
                return true;
            }
            let n = match s.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("xenstored: socket client {id}: {e}");
                    return false;
                }
            };
            if let Err(e) = self.feed(id, &buf[..n]) {
                log::warn!("xenstored: socket client {id}: {e}; dropping it");
                return false;
            }
        }
    }

    /// Takes what the daemon thread must do outside the lock.
    pub fn take_api_events(&mut self) -> Vec<(u64, String)> {
        std::mem::take(&mut self.api_events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::ring::tests::{guest_recv, guest_send, ram, BASE};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn msg(ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Message {
        Message { header: Header { ty, req_id, tx_id, len: payload.len() as u32 }, payload: payload.to_vec() }
    }

    fn req(st: &mut State, id: ConnId, ty: u32, tx: u32, payload: &[u8]) -> Reply {
        st.handle(id, &msg(ty, 1, tx, payload))
    }

    /// A guest connection whose output stays queued for inspection.
    fn guest_conn(st: &mut State, domid: DomId) -> ConnId {
        st.add_conn(Caller::guest(domid), Transport::Socket(UnixStream::pair().unwrap().0))
    }

    /// Parses a stream of replies.
    fn parse(mut bytes: &[u8]) -> Vec<Message> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (n, m) = d.feed(bytes).unwrap();
            bytes = &bytes[n..];
            out.extend(m);
        }
        out
    }

    #[test]
    fn errors_and_validation() {
        let mut st = State::default();
        let d = st.internal();
        assert_eq!(req(&mut st, d, XS_READ, 0, b"/nope\0").as_error(), Some(XsError::NoEnt));
        assert_eq!(req(&mut st, d, XS_READ, 0, b"/nope").as_error(), Some(XsError::Inval), "no NUL");
        assert_eq!(req(&mut st, d, XS_READ, 0, b"/a\0/b\0").as_error(), Some(XsError::Inval), "two args");
        assert_eq!(req(&mut st, d, XS_READ, 0, b"/\xff\0").as_error(), Some(XsError::Inval));
        assert_eq!(req(&mut st, d, XS_READ, 0, b"/a//b\0").as_error(), Some(XsError::Inval));
        assert_eq!(req(&mut st, d, XS_READ, 77, b"/\0").as_error(), Some(XsError::NoEnt), "unknown tx");
        assert_eq!(req(&mut st, d, 20, 0, b"").as_error(), Some(XsError::NoSys), "removed RESTRICT");
        assert_eq!(req(&mut st, d, XS_WATCH_EVENT, 0, b"").as_error(), Some(XsError::NoSys));
        assert_eq!(req(&mut st, d, 0xffff, 0, b"").as_error(), Some(XsError::NoSys));
        assert_eq!(req(&mut st, d, XS_WRITE, 0, b"/k\0v\0w").payload, b"OK\0");
        assert_eq!(req(&mut st, d, XS_READ, 0, b"/k\0").payload, b"v\0w", "values are binary");
        assert_eq!(req(&mut st, d, XS_WRITE, 0, b"no-nul").as_error(), Some(XsError::Inval));
        assert_eq!(req(&mut st, d, XS_SET_PERMS, 0, b"/k\0").as_error(), Some(XsError::Inval));
        assert_eq!(req(&mut st, d, XS_SET_PERMS, 0, b"/k\0q1\0").as_error(), Some(XsError::Inval));
        assert_eq!(req(&mut st, d, XS_GET_DOMAIN_PATH, 0, b"7\0").payload, b"/local/domain/7\0");
        assert_eq!(req(&mut st, d, XS_TRANSACTION_END, 0, b"T\0").as_error(), Some(XsError::NoEnt));
        for _ in 0..300 {
            let n = st.tree.len();
            req(&mut st, d, XS_MKDIR, 0, format!("/big/{:0>20}\0", n).as_bytes());
        }
        assert_eq!(req(&mut st, d, XS_DIRECTORY, 0, b"/big\0").as_error(), Some(XsError::TooBig));
        // Relative paths of domain 0 (socket clients, the API) resolve to its home.
        assert_eq!(req(&mut st, d, XS_WRITE, 0, b"name\0Domain-0").payload, b"OK\0");
        assert_eq!(req(&mut st, d, XS_READ, 0, b"/local/domain/0/name\0").payload, b"Domain-0");
    }

    #[test]
    fn watch_firing_rules() {
        let mut st = State::default();
        let d = st.internal();
        let w = guest_conn(&mut st, 0);
        let events = |st: &mut State| -> Vec<String> {
            let q = std::mem::take(&mut st.conns.get_mut(&w).unwrap().q);
            q.out.iter().filter(|o| !o.reply).map(|o| String::from_utf8_lossy(&o.bytes[HEADER_SIZE..]).replace('\0', "|")).collect()
        };
        req(&mut st, d, XS_WRITE, 0, b"/a/b/c/d\0");
        for (p, t) in [("/a/b/c", "deep"), ("/a", "top"), ("/a/b/c/missing", "gone")] {
            st.handle(w, &msg(XS_WATCH, 1, 0, format!("{p}\0{t}\0").as_bytes()));
        }
        st.flush_after_reply();
        assert_eq!(events(&mut st), vec!["/a/b/c|deep|", "/a|top|", "/a/b/c/missing|gone|"], "each fires when set");
        // A change below fires the watches above it.
        req(&mut st, d, XS_WRITE, 0, b"/a/b/c/d\0x");
        assert_eq!(events(&mut st), vec!["/a/b/c/d|deep|", "/a/b/c/d|top|"]);
        // Removing an ancestor fires a watch on an existing descendant with
        // its own path, not one on a node that never existed; a watch above
        // the removed node hears of the removed node only.
        req(&mut st, d, XS_RM, 0, b"/a/b\0");
        assert_eq!(events(&mut st), vec!["/a/b/c|deep|", "/a/b|top|"]);
        // Changes in a transaction fire at commit, not before; an abort fires nothing.
        let t: u32 = String::from_utf8(req(&mut st, d, XS_TRANSACTION_START, 0, b"\0").payload).unwrap().trim_end_matches('\0').parse().unwrap();
        req(&mut st, d, XS_WRITE, t, b"/a/tx\0v");
        req(&mut st, d, XS_MKDIR, t, b"/a/tx2\0");
        assert!(events(&mut st).is_empty());
        req(&mut st, d, XS_TRANSACTION_END, t, b"T\0");
        assert_eq!(events(&mut st), vec!["/a/tx|top|", "/a/tx2|top|"]);
        let t: u32 = String::from_utf8(req(&mut st, d, XS_TRANSACTION_START, 0, b"\0").payload).unwrap().trim_end_matches('\0').parse().unwrap();
        req(&mut st, d, XS_WRITE, t, b"/a/tx3\0v");
        req(&mut st, d, XS_TRANSACTION_END, t, b"F\0");
        assert!(events(&mut st).is_empty());
        // Identical pending events are merged.
        req(&mut st, d, XS_WRITE, 0, b"/a\x001");
        req(&mut st, d, XS_WRITE, 0, b"/a\x002");
        assert_eq!(events(&mut st), vec!["/a|top|"]);
        // A guest only hears about nodes it may read.
        let g = guest_conn(&mut st, 3);
        st.handle(g, &msg(XS_WATCH, 1, 0, b"/a\0g\0"));
        st.flush_after_reply();
        std::mem::take(&mut st.conns.get_mut(&g).unwrap().q);
        req(&mut st, d, XS_WRITE, 0, b"/a/secret\0s");
        assert!(st.conns[&g].q.out.is_empty());
        req(&mut st, d, XS_SET_PERMS, 0, b"/a\0n0\0r3\0");
        req(&mut st, d, XS_WRITE, 0, b"/a/open\0o");
        assert_eq!(st.conns[&g].q.out.len(), 2, "the permission change and the new child");
    }

    #[test]
    fn guests_are_confined() {
        let mut st = State::default();
        let d = st.internal();
        req(&mut st, d, XS_WRITE, 0, b"/local/domain/1/secret\0s");
        req(&mut st, d, XS_SET_PERMS, 0, b"/local/domain/1/secret\0n0\0");
        req(&mut st, d, XS_MKDIR, 0, b"/local/domain/1/data\0");
        req(&mut st, d, XS_SET_PERMS, 0, b"/local/domain/1/data\0n1\0");
        req(&mut st, d, XS_SET_PERMS, 0, b"/local/domain/1\0n0\0r1\0");
        let g = guest_conn(&mut st, 1);
        assert_eq!(req(&mut st, g, XS_READ, 0, b"secret\0").as_error(), Some(XsError::Acces));
        assert_eq!(req(&mut st, g, XS_WRITE, 0, b"data/x\0v").payload, b"OK\0");
        assert_eq!(req(&mut st, g, XS_READ, 0, b"/local/domain/1/data/x\0").payload, b"v");
        assert_eq!(req(&mut st, g, XS_INTRODUCE, 0, b"2\x000\x001\0").as_error(), Some(XsError::Acces));
        assert_eq!(req(&mut st, g, XS_IS_DOMAIN_INTRODUCED, 0, b"0\0").as_error(), Some(XsError::Acces));
        assert_eq!(req(&mut st, g, XS_SET_PERMS, 0, b"@releaseDomain\0r1\0").as_error(), Some(XsError::Acces));
        // Domain 0 lets domain 1 see @releaseDomain.
        assert_eq!(req(&mut st, d, XS_SET_PERMS, 0, b"@releaseDomain\0n0\0r1\0").payload, b"OK\0");
        let h = guest_conn(&mut st, 2);
        assert_eq!(req(&mut st, h, XS_READ, 0, b"/local/domain/1/data/x\0").as_error(), Some(XsError::Acces));
        assert_eq!(req(&mut st, h, XS_DIRECTORY, 0, b"/local/domain/1\0").as_error(), Some(XsError::Acces));
    }

    #[test]
    fn transactions_conflict_like_xenstored() {
        let mut st = State::default();
        let a = st.add_conn(Caller::DOM0, Transport::Internal);
        let b = st.add_conn(Caller::DOM0, Transport::Internal);
        req(&mut st, a, XS_WRITE, 0, b"/n\0v0");
        let ta: u32 = String::from_utf8(req(&mut st, a, XS_TRANSACTION_START, 0, b"\0").payload).unwrap().trim_end_matches('\0').parse().unwrap();
        let tb: u32 = String::from_utf8(req(&mut st, b, XS_TRANSACTION_START, 0, b"\0").payload).unwrap().trim_end_matches('\0').parse().unwrap();
        assert_eq!(req(&mut st, a, XS_WRITE, ta, b"/n\0va").payload, b"OK\0");
        assert_eq!(req(&mut st, b, XS_WRITE, tb, b"/n\0vb").payload, b"OK\0");
        // Isolation: outside the transaction the old value stays.
        assert_eq!(req(&mut st, a, XS_READ, 0, b"/n\0").payload, b"v0");
        assert_eq!(req(&mut st, a, XS_READ, ta, b"/n\0").payload, b"va");
        assert_eq!(req(&mut st, a, XS_TRANSACTION_END, ta, b"T\0").payload, b"OK\0");
        assert_eq!(req(&mut st, b, XS_TRANSACTION_END, tb, b"T\0").as_error(), Some(XsError::Again));
        assert_eq!(req(&mut st, a, XS_READ, 0, b"/n\0").payload, b"va");
        // A transaction that only read a node also conflicts with its change.
        let t: u32 = String::from_utf8(req(&mut st, a, XS_TRANSACTION_START, 0, b"\0").payload).unwrap().trim_end_matches('\0').parse().unwrap();
        req(&mut st, a, XS_READ, t, b"/n\0");
        req(&mut st, a, XS_WRITE, t, b"/other\0x");
        req(&mut st, b, XS_WRITE, 0, b"/n\0changed");
        assert_eq!(req(&mut st, a, XS_TRANSACTION_END, t, b"T\0").as_error(), Some(XsError::Again));
        assert_eq!(req(&mut st, a, XS_READ, 0, b"/other\0").as_error(), Some(XsError::NoEnt), "nothing applied");
        // Unrelated transactions both commit; aborting applies nothing.
        let t1: u32 = String::from_utf8(req(&mut st, a, XS_TRANSACTION_START, 0, b"\0").payload).unwrap().trim_end_matches('\0').parse().unwrap();
        let t2: u32 = String::from_utf8(req(&mut st, b, XS_TRANSACTION_START, 0, b"\0").payload).unwrap().trim_end_matches('\0').parse().unwrap();
        req(&mut st, a, XS_WRITE, t1, b"/n/x\0");
        req(&mut st, b, XS_WRITE, t2, b"/p\0");
        assert_eq!(req(&mut st, a, XS_TRANSACTION_END, t1, b"T\0").payload, b"OK\0");
        assert_eq!(req(&mut st, b, XS_TRANSACTION_END, t2, b"F\0").payload, b"OK\0");
        assert_eq!(req(&mut st, a, XS_READ, 0, b"/p\0").as_error(), Some(XsError::NoEnt));
        assert_eq!(req(&mut st, a, XS_TRANSACTION_END, t1, b"T\0").as_error(), Some(XsError::NoEnt), "ended");
        assert_eq!(req(&mut st, a, XS_TRANSACTION_START, t1, b"\0").as_error(), Some(XsError::NoEnt));
    }

    #[test]
    fn transaction_and_watch_quotas() {
        let mut st = State::default();
        let g = guest_conn(&mut st, 1);
        for _ in 0..10 {
            assert_ne!(req(&mut st, g, XS_TRANSACTION_START, 0, b"\0").ty, XS_ERROR);
        }
        assert_eq!(req(&mut st, g, XS_TRANSACTION_START, 0, b"\0").as_error(), Some(XsError::NoSpc));
        assert_eq!(req(&mut st, g, XS_RESET_WATCHES, 0, b"").payload, b"OK\0");
        assert_ne!(req(&mut st, g, XS_TRANSACTION_START, 0, b"\0").ty, XS_ERROR, "reset dropped them");
        for i in 0..128 {
            assert_eq!(req(&mut st, g, XS_WATCH, 0, format!("w{i}\0t\0").as_bytes()).payload, b"OK\0");
        }
        assert_eq!(req(&mut st, g, XS_WATCH, 0, b"w0\0t\0").as_error(), Some(XsError::Exist));
        assert_eq!(req(&mut st, g, XS_WATCH, 0, b"w999\0t\0").as_error(), Some(XsError::TooBig));
        assert_eq!(req(&mut st, g, XS_UNWATCH, 0, b"w5\0t\0").payload, b"OK\0");
        assert_eq!(req(&mut st, g, XS_UNWATCH, 0, b"w5\0t\0").as_error(), Some(XsError::NoEnt));
        assert_eq!(req(&mut st, g, XS_WATCH, 0, b"w999\0t\0").payload, b"OK\0");
        // Domain 0 has no such limits.
        let d = st.internal();
        for _ in 0..20 {
            assert_ne!(req(&mut st, d, XS_TRANSACTION_START, 0, b"\0").ty, XS_ERROR);
        }
    }

    /// A guest ring served end to end: requests split across the wrap and
    /// larger than the ring, watch events, and a corrupt index.
    #[test]
    fn ring_connection() {
        let ram = ram();
        let notified = Arc::new(AtomicUsize::new(0));
        let n2 = notified.clone();
        let gr = Arc::new(GuestRing::new(ram.clone(), BASE, move || {
            n2.fetch_add(1, Ordering::SeqCst);
        }).unwrap());
        let mut st = State::default();
        let d = st.internal();
        req(&mut st, d, XS_MKDIR, 0, b"/local/domain/1/data\0");
        req(&mut st, d, XS_SET_PERMS, 0, b"/local/domain/1/data\0n1\0");
        st.introduce(1, Some(gr.clone())).unwrap();
        let id = st.rings()[0];

        // A 3000-byte write: bigger than the ring, so it goes in pieces.
        let mut stream = wire::encode(XS_WATCH, 1, 0, b"data\0tok\0");
        let mut payload = b"data/big\0".to_vec();
        payload.extend(std::iter::repeat_n(b'x', 1800));
        stream.extend(wire::encode(XS_WRITE, 2, 0, &payload));
        stream.extend(wire::encode(XS_READ, 3, 0, b"data/big\0"));
        let mut replies = Vec::new();
        let mut sent = 0;
        let mut notify = 0;
        while sent < stream.len() {
            sent += guest_send(&ram, &stream[sent..]);
            notify += st.pump_ring(id).is_some() as usize;
            replies.extend(guest_recv(&ram));
        }
        for _ in 0..4 {
            st.pump_ring(id);
            replies.extend(guest_recv(&ram));
        }
        assert!(notify >= 2, "the guest is notified as its requests are taken");
        gr.notify();
        let msgs = parse(&replies);
        let kinds: Vec<(u32, u32)> = msgs.iter().map(|m| (m.header.ty, m.header.req_id)).collect();
        assert_eq!(kinds, vec![(XS_WATCH, 1), (XS_WATCH_EVENT, 0), (XS_WATCH_EVENT, 0), (XS_WRITE, 2), (XS_READ, 3)]);
        assert_eq!(msgs[1].payload, b"data\0tok\0");
        assert_eq!(msgs[2].payload, b"data/big\0tok\0", "relative watch, relative event path");
        assert_eq!(msgs[4].payload.len(), 1800);
        assert!(notified.load(Ordering::SeqCst) > 0);

        // A change by domain 0 fires the guest's watch.
        req(&mut st, d, XS_WRITE, 0, b"/local/domain/1/data/k\0v");
        st.pump_ring(id);
        let ev = parse(&guest_recv(&ram));
        assert_eq!(ev[0].payload, b"data/k\0tok\0");

        // Over its ring, the guest is refused what it may not read.
        guest_send(&ram, &wire::encode(XS_READ, 4, 0, b"/tool/xenstored\0"));
        st.pump_ring(id);
        let r = parse(&guest_recv(&ram));
        assert_eq!((r[0].header.ty, r[0].header.req_id, r[0].payload.as_slice()), (XS_ERROR, 4, &b"EACCES\0"[..]));

        // Hostile indices: the connection is dropped and the error recorded.
        ram.atomic_u32(BASE + REQ_PROD as u64).unwrap().store(0xdead_beef, Ordering::SeqCst);
        assert!(st.pump_ring(id).is_none());
        assert!(st.rings().is_empty());
        assert_eq!(ram.read_obj::<u32>(BASE + ERROR as u64).unwrap(), XENSTORE_ERROR_RINGIDX);
        // Still introduced (as C keeps an ignored connection) until released.
        assert!(st.is_introduced(1));
        st.release(1).unwrap();
        assert!(!st.is_introduced(1));
        assert_eq!(req(&mut st, d, XS_READ, 0, b"/local/domain/1/data\0").as_error(), Some(XsError::NoEnt), "its nodes went");
    }

    #[test]
    fn oversized_ring_message_breaks_the_connection() {
        let ram = ram();
        let gr = Arc::new(GuestRing::new(ram.clone(), BASE, || {}).unwrap());
        let mut st = State::default();
        st.introduce(1, Some(gr)).unwrap();
        let id = st.rings()[0];
        let mut h = wire::encode(XS_READ, 1, 0, b"");
        h[12..16].copy_from_slice(&5000u32.to_le_bytes());
        guest_send(&ram, &h);
        st.pump_ring(id);
        assert_eq!(ram.read_obj::<u32>(BASE + ERROR as u64).unwrap(), XENSTORE_ERROR_PROTO);
    }

    #[test]
    fn outstanding_replies_apply_back_pressure() {
        let ram = ram();
        let gr = Arc::new(GuestRing::new(ram.clone(), BASE, || {}).unwrap());
        let mut st = State::default();
        st.introduce(1, Some(gr)).unwrap();
        let id = st.rings()[0];
        // 200 reads of a missing node (21 bytes each); the guest takes no replies.
        let one = wire::encode(XS_READ, 9, 0, b"nope\0");
        let stream: Vec<u8> = one.iter().copied().cycle().take(one.len() * 200).collect();
        let mut sent = 0;
        for _ in 0..40 {
            sent += guest_send(&ram, &stream[sent..]);
            st.pump_ring(id);
        }
        // The response ring holds 44 replies of 23 bytes; 20 more may wait
        // in the queue, then reading stops.
        let taken = ram.read_obj::<u32>(BASE + REQ_CONS as u64).unwrap() as usize;
        assert_eq!(taken, 64 * one.len());
        let mut replies = Vec::new();
        for _ in 0..100 {
            sent += guest_send(&ram, &stream[sent..]);
            st.pump_ring(id);
            replies.extend(guest_recv(&ram));
        }
        let replies = parse(&replies);
        assert_eq!((sent, replies.len()), (stream.len(), 200));
        assert!(replies.iter().all(|m| m.header.ty == XS_ERROR && m.payload == b"EACCES\0" && m.header.req_id == 9));
    }

    #[test]
    fn special_watches() {
        let ram = ram();
        let gr = Arc::new(GuestRing::new(ram, BASE, || {}).unwrap());
        let mut st = State::default();
        let d = st.internal();
        let tool = st.add_conn(Caller::DOM0, Transport::Socket(UnixStream::pair().unwrap().0));
        let g = guest_conn(&mut st, 5);
        st.handle(tool, &msg(XS_WATCH, 1, 0, b"@introduceDomain\0i\0"));
        st.handle(tool, &msg(XS_WATCH, 1, 0, b"@releaseDomain\0r\0"));
        st.handle(g, &msg(XS_WATCH, 1, 0, b"@releaseDomain\0r\0"));
        st.flush_after_reply();
        let before = st.conns[&tool].q.out.len();
        st.introduce(1, Some(gr)).unwrap();
        st.domain_shutdown(1);
        st.domain_shutdown(1); // once per shutdown
        st.release(1).unwrap();
        let events: Vec<Vec<u8>> = st.conns[&tool].q.out.iter().skip(before).map(|o| o.bytes[HEADER_SIZE..].to_vec()).collect();
        assert_eq!(events, vec![b"@introduceDomain\0i\0".to_vec(), b"@releaseDomain\0r\0".to_vec(), b"@releaseDomain\0r\0".to_vec()]);
        assert_eq!(st.conns[&g].q.out.len(), 1, "only its own first firing: the guest may not see @releaseDomain");
        let _ = d;
    }
}
