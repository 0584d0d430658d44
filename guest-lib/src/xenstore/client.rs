//! The xenstore client proper: request ids, reply matching, watches and
//! transactions, over any [`Transport`] (the live ring in the guest, a fake
//! xenstored in host tests).
//!
//! Requests are synchronous: one is outstanding at a time, so a reply whose
//! id is not the awaited one is a late reply to a request that timed out,
//! and is dropped. Watch events (XS_WATCH_EVENT, which xenstored may send
//! at any moment, even between a request and its reply) are queued on their
//! watch; callbacks are not run here but handed out by
//! [`Client::take_callback_job`], so the caller can run them without
//! holding the client.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xen_abi::xenstore::{self as xs};

use super::wire::{self, Decoder};
use super::{Tx, XsError};

/// How the client reaches xenstored.
pub trait Transport {
    /// Copies as much of `bytes` as fits into the request ring; the count.
    fn write(&mut self, bytes: &[u8]) -> Result<usize, XsError>;
    /// Copies available response bytes into `buf`; the count.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError>;
    /// Tells xenstored the rings moved.
    fn notify(&mut self);
    /// Blocks until the rings may have moved, or system time `deadline_ns`;
    /// false on timeout.
    fn wait(&mut self, deadline_ns: u64) -> bool;
    /// The current system time in ns.
    fn now_ns(&self) -> u64;
}

/// A watch callback: called with the event's path and the watch's token.
pub type Callback = Box<dyn FnMut(&str, &str) + Send>;

/// Events kept per watch before the oldest are dropped (a watch whose owner
/// never looks must not grow without bound).
pub const MAX_QUEUED_EVENTS: usize = 256;

struct WatchEntry {
    token: String,
    path: String,
    events: VecDeque<String>,
    /// Events dropped because the queue was full.
    dropped: u64,
    /// Taken out while the callback runs.
    callback: Option<Callback>,
    /// Whether this watch was registered with a callback.
    wants_callback: bool,
}

/// The xenstore client state.
pub struct Client<T: Transport> {
    t: T,
    dec: Decoder,
    next_req: u32,
    next_token: u64,
    /// The request id whose reply is awaited (0: none).
    awaited: u32,
    reply: Option<wire::Message>,
    watches: Vec<WatchEntry>,
    /// Set once the stream is unusable (corrupt ring, half-sent request,
    /// oversized reply); every later call fails with it.
    broken: Option<XsError>,
    timeout_ns: u64,
}

/// How long one request may take before it fails with [`XsError::Timeout`].
pub const REQUEST_TIMEOUT_NS: u64 = 20_000_000_000;

impl<T: Transport> Client<T> {
    /// A client over `t`.
    pub fn new(t: T) -> Self {
        Client {
            t,
            dec: Decoder::new(),
            next_req: 1,
            next_token: 1,
            awaited: 0,
            reply: None,
            watches: Vec::new(),
            broken: None,
            timeout_ns: REQUEST_TIMEOUT_NS,
        }
    }

    /// Changes the per-request timeout.
    pub fn set_timeout_ns(&mut self, ns: u64) {
        self.timeout_ns = ns;
    }

    /// The transport (tests drive their fake server through it).
    pub fn transport(&mut self) -> &mut T {
        &mut self.t
    }

    fn fail(&mut self, e: XsError) -> XsError {
        self.broken = Some(e);
        e
    }

    /// Reads whatever xenstored has sent and sorts it: watch events onto
    /// their watches, the awaited reply aside. Returns whether anything
    /// arrived.
    pub fn pump(&mut self) -> Result<bool, XsError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        let mut any = false;
        let mut buf = [0u8; 256];
        loop {
            let n = match self.t.read(&mut buf) {
                Ok(n) => n,
                Err(e) => return Err(self.fail(e)),
            };
            if n == 0 {
                break;
            }
            any = true;
            self.dec.feed(&buf[..n]);
        }
        if any {
            // We consumed: xenstored may be waiting for room to write.
            self.t.notify();
        }
        loop {
            let msg = match self.dec.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => return Err(self.fail(e)),
            };
            if msg.header.ty == xs::XS_WATCH_EVENT {
                self.route_event(&msg.payload);
            } else if msg.header.req_id == self.awaited && self.awaited != 0 {
                self.reply = Some(msg);
            } else {
                log::debug!(
                    "xenstore: dropping a late {} reply (id {})",
                    xs::type_name(msg.header.ty),
                    msg.header.req_id
                );
            }
        }
        Ok(any)
    }

    fn route_event(&mut self, payload: &[u8]) {
        let Ok((path, token)) = wire::watch_event(payload) else {
            log::debug!("xenstore: malformed watch event ignored");
            return;
        };
        // Events for a token we no longer watch (unwatched, or queued
        // before the unwatch reply) are dropped.
        if let Some(w) = self.watches.iter_mut().find(|w| w.token == token) {
            if w.events.len() >= MAX_QUEUED_EVENTS {
                w.events.pop_front();
                w.dropped += 1;
            }
            w.events.push_back(path);
        }
    }

    /// Waits until something arrives from xenstored or `deadline_ns`;
    /// returns whether something did.
    pub fn wait_incoming(&mut self, deadline_ns: u64) -> Result<bool, XsError> {
        loop {
            if self.pump()? {
                return Ok(true);
            }
            if !self.t.wait(deadline_ns) {
                return self.pump();
            }
        }
    }

    /// Sends one request and returns the payload of its reply, or the
    /// error xenstored answered with.
    pub fn request(&mut self, ty: u32, tx: Tx, parts: &[&[u8]]) -> Result<Vec<u8>, XsError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        let id = self.next_req;
        // 0 is left out: it would match "no request awaited".
        self.next_req = self.next_req.wrapping_add(1).max(1);
        let bytes = wire::encode(ty, id, tx.0, parts)?;
        let deadline = self.t.now_ns().saturating_add(self.timeout_ns);
        self.awaited = id;
        self.reply = None;
        let result = self.send_and_wait(&bytes, deadline);
        self.awaited = 0;
        let msg = result?;
        if msg.header.ty == xs::XS_ERROR {
            return Err(wire::error_from_payload(&msg.payload));
        }
        if msg.header.ty != ty {
            return Err(XsError::Protocol("reply of another type than the request"));
        }
        Ok(msg.payload)
    }

    fn send_and_wait(&mut self, bytes: &[u8], deadline: u64) -> Result<wire::Message, XsError> {
        let mut off = 0;
        while off < bytes.len() {
            let n = match self.t.write(&bytes[off..]) {
                Ok(n) => n,
                Err(e) => return Err(self.fail(e)),
            };
            off += n;
            if n == 0 {
                // The ring is full: let xenstored drain it. It may itself
                // be blocked writing events to us, so keep reading too.
                self.t.notify();
                self.pump()?;
                if !self.t.wait(deadline) {
                    // Half a request is in the ring: the stream is lost.
                    return Err(self.fail(XsError::Timeout));
                }
            }
        }
        self.t.notify();
        loop {
            self.pump()?;
            if let Some(m) = self.reply.take() {
                return Ok(m);
            }
            if !self.t.wait(deadline) {
                self.pump()?;
                return self.reply.take().ok_or(XsError::Timeout);
            }
        }
    }

    /// XS_READ: a node's value.
    pub fn read(&mut self, tx: Tx, path: &str) -> Result<Vec<u8>, XsError> {
        self.request(xs::XS_READ, tx, &[&wire::cstr(path)?])
    }

    /// XS_WRITE: sets a node's value (creating it and missing parents).
    pub fn write(&mut self, tx: Tx, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.request(xs::XS_WRITE, tx, &[&wire::cstr(path)?, value])
            .map(drop)
    }

    /// XS_DIRECTORY: the names of a node's children.
    pub fn directory(&mut self, tx: Tx, path: &str) -> Result<Vec<String>, XsError> {
        let p = self.request(xs::XS_DIRECTORY, tx, &[&wire::cstr(path)?])?;
        wire::split_strings(&p)
    }

    /// XS_MKDIR: creates a node if absent.
    pub fn mkdir(&mut self, tx: Tx, path: &str) -> Result<(), XsError> {
        self.request(xs::XS_MKDIR, tx, &[&wire::cstr(path)?])
            .map(drop)
    }

    /// XS_RM: removes a node and its children.
    pub fn rm(&mut self, tx: Tx, path: &str) -> Result<(), XsError> {
        self.request(xs::XS_RM, tx, &[&wire::cstr(path)?]).map(drop)
    }

    /// XS_GET_DOMAIN_PATH: `/local/domain/<domid>`.
    pub fn domain_path(&mut self, domid: u32) -> Result<String, XsError> {
        let p = self.request(
            xs::XS_GET_DOMAIN_PATH,
            Tx::NONE,
            &[&wire::cstr(&format!("{domid}"))?],
        )?;
        wire::split_strings(&p)?
            .into_iter()
            .next()
            .ok_or(XsError::Protocol("empty GET_DOMAIN_PATH reply"))
    }

    /// XS_TRANSACTION_START.
    pub fn transaction_start(&mut self) -> Result<Tx, XsError> {
        let p = self.request(xs::XS_TRANSACTION_START, Tx::NONE, &[b"\0"])?;
        let id = parse_u64(&p)?;
        match u32::try_from(id) {
            Ok(id) if id != 0 => Ok(Tx(id)),
            _ => Err(XsError::Protocol("bad transaction id")),
        }
    }

    /// XS_TRANSACTION_END: commits (`commit`) or aborts. A conflicting
    /// commit fails with EAGAIN ([`XsError::is_again`]).
    pub fn transaction_end(&mut self, tx: Tx, commit: bool) -> Result<(), XsError> {
        let arg: &[u8] = if commit { b"T\0" } else { b"F\0" };
        self.request(xs::XS_TRANSACTION_END, tx, &[arg]).map(drop)
    }

    /// Runs `body` in a transaction, retrying it from the start while the
    /// commit conflicts (see [`transaction`]).
    pub fn transaction<R>(
        &mut self,
        body: impl FnMut(&mut Self, Tx) -> Result<R, XsError>,
    ) -> Result<R, XsError> {
        transaction(
            self,
            |c| c.transaction_start(),
            |c, tx, commit| c.transaction_end(tx, commit),
            body,
        )
    }

    /// XS_WATCH on `path` with a fresh token; events queue on the watch
    /// (and, with `callback`, are handed out as callback jobs). xenstored
    /// fires every new watch once straight away.
    pub fn watch(&mut self, path: &str, callback: Option<Callback>) -> Result<String, XsError> {
        let token = format!("xenolith-{}", self.next_token);
        self.next_token += 1;
        // Registered first: the initial event may arrive before the reply.
        self.watches.push(WatchEntry {
            token: token.clone(),
            path: path.into(),
            events: VecDeque::new(),
            dropped: 0,
            wants_callback: callback.is_some(),
            callback,
        });
        let r = self.request(
            xs::XS_WATCH,
            Tx::NONE,
            &[&wire::cstr(path)?, &wire::cstr(&token)?],
        );
        match r {
            Ok(_) => Ok(token),
            Err(e) => {
                self.watches.retain(|w| w.token != token);
                Err(e)
            }
        }
    }

    /// XS_UNWATCH for a token from [`Client::watch`]; queued events go.
    pub fn unwatch(&mut self, token: &str) -> Result<(), XsError> {
        let Some(i) = self.watches.iter().position(|w| w.token == token) else {
            return Ok(());
        };
        let w = self.watches.remove(i);
        self.request(
            xs::XS_UNWATCH,
            Tx::NONE,
            &[&wire::cstr(&w.path)?, &wire::cstr(token)?],
        )
        .map(drop)
    }

    /// Takes the oldest queued event (its path) of the watch `token`.
    pub fn take_event(&mut self, token: &str) -> Option<String> {
        self.watches
            .iter_mut()
            .find(|w| w.token == token)?
            .events
            .pop_front()
    }

    /// Events dropped on the watch `token` because its queue was full.
    pub fn dropped_events(&self, token: &str) -> u64 {
        self.watches
            .iter()
            .find(|w| w.token == token)
            .map_or(0, |w| w.dropped)
    }

    /// The next event of a callback watch, with the callback taken out of
    /// the watch: (token, path, callback). Give it back with
    /// [`Client::restore_callback`] after running it.
    pub fn take_callback_job(&mut self) -> Option<(String, String, Callback)> {
        let w = self
            .watches
            .iter_mut()
            .find(|w| w.wants_callback && w.callback.is_some() && !w.events.is_empty())?;
        let path = w.events.pop_front()?;
        let cb = w.callback.take()?;
        Some((w.token.clone(), path, cb))
    }

    /// Puts a callback back after it ran (dropped if the watch is gone).
    pub fn restore_callback(&mut self, token: &str, cb: Callback) {
        if let Some(w) = self.watches.iter_mut().find(|w| w.token == token) {
            w.callback = Some(cb);
        }
    }
}

/// Runs `body` in a transaction on `ctx`: starts one, runs the body, and
/// commits. The whole body runs again in a fresh transaction when the
/// commit (or an operation inside) fails with EAGAIN, as xenstored asks
/// when another client changed what the transaction read; after
/// [`MAX_TRANSACTION_RETRIES`] it gives up with that error. A body error
/// aborts the transaction and is returned.
pub fn transaction<C, R>(
    ctx: &mut C,
    mut start: impl FnMut(&mut C) -> Result<Tx, XsError>,
    mut end: impl FnMut(&mut C, Tx, bool) -> Result<(), XsError>,
    mut body: impl FnMut(&mut C, Tx) -> Result<R, XsError>,
) -> Result<R, XsError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let tx = start(ctx)?;
        let r = match body(ctx, tx) {
            Ok(r) => r,
            Err(e) => {
                let _ = end(ctx, tx, false);
                if e.is_again() && attempt < MAX_TRANSACTION_RETRIES {
                    continue;
                }
                return Err(e);
            }
        };
        match end(ctx, tx, true) {
            Ok(()) => return Ok(r),
            Err(e) if e.is_again() && attempt < MAX_TRANSACTION_RETRIES => continue,
            Err(e) => return Err(e),
        }
    }
}

/// How often a conflicting transaction is retried.
pub const MAX_TRANSACTION_RETRIES: u32 = 32;

/// Parses a decimal value as xenstore nodes hold them ("768", "4\0",
/// surrounding blanks tolerated).
pub fn parse_u64(raw: &[u8]) -> Result<u64, XsError> {
    let s = core::str::from_utf8(raw).map_err(|_| XsError::BadValue)?;
    s.trim_matches(|c: char| c == '\0' || c.is_ascii_whitespace())
        .parse()
        .map_err(|_| XsError::BadValue)
}

#[cfg(test)]
pub(crate) mod tests {
    //! A fake xenstored that serves the ring page in small, wrapping
    //! pieces, so the client's framing, matching and watches are exercised
    //! the way a real daemon would.
    use super::*;
    use crate::xenstore::ring::tests::{get, set, Page};
    use crate::xenstore::ring::StoreRing;
    use alloc::collections::BTreeMap;
    use alloc::vec;
    use std::sync::{Arc, Mutex};
    use xen_abi::xenstore::{Header, XENSTORE_RING_SIZE};

    pub struct Fake {
        page: Box<Page>,
        ring: StoreRing,
        pub store: BTreeMap<String, Vec<u8>>,
        watches: Vec<(String, String)>,
        inbuf: Vec<u8>,
        outbuf: VecDeque<u8>,
        /// Bytes of response written per wait() call.
        pub chunk: usize,
        /// Commits to refuse with EAGAIN before accepting one.
        pub conflicts: u32,
        pub commits: u32,
        pub now: u64,
        /// Never answer (to test timeouts).
        pub silent: bool,
        next_tx: u32,
    }

    impl Fake {
        pub fn new(start_index: u32) -> Self {
            let mut page = Box::new(Page([0; 4096]));
            for off in [xs::REQ_CONS, xs::REQ_PROD, xs::RSP_CONS, xs::RSP_PROD] {
                set(&mut page, off, start_index);
            }
            // SAFETY: the page is boxed (stable address) and owned by the
            // Fake, which outlives its ring.
            let ring = unsafe { StoreRing::new(page.0.as_mut_ptr()) };
            Fake {
                page,
                ring,
                store: BTreeMap::new(),
                watches: Vec::new(),
                inbuf: Vec::new(),
                outbuf: VecDeque::new(),
                chunk: 100,
                conflicts: 0,
                commits: 0,
                now: 0,
                silent: false,
                next_tx: 5,
            }
        }

        fn reply(&mut self, h: &Header, ty: u32, payload: &[u8]) {
            let out = wire::encode(ty, h.req_id, h.tx_id, &[payload]).unwrap();
            self.outbuf.extend(out);
        }

        fn fire(&mut self, path: &str) {
            let hits: Vec<_> = self
                .watches
                .iter()
                .filter(|(p, _)| path.starts_with(p.as_str()))
                .cloned()
                .collect();
            for (_, tok) in hits {
                let ev = wire::encode(
                    xs::XS_WATCH_EVENT,
                    0,
                    0,
                    &[&wire::cstr(path).unwrap(), &wire::cstr(&tok).unwrap()],
                )
                .unwrap();
                self.outbuf.extend(ev);
            }
        }

        fn serve(&mut self, h: Header, p: Vec<u8>) {
            let strs: Vec<String> = wire::split_strings(&p).unwrap_or_default();
            match h.ty {
                xs::XS_READ => match self.store.get(&strs[0]).cloned() {
                    Some(v) => self.reply(&h, xs::XS_READ, &v),
                    None => self.reply(&h, xs::XS_ERROR, b"ENOENT\0"),
                },
                xs::XS_WRITE => {
                    let nul = p.iter().position(|&b| b == 0).unwrap();
                    let path = String::from_utf8(p[..nul].to_vec()).unwrap();
                    self.store.insert(path.clone(), p[nul + 1..].to_vec());
                    self.reply(&h, xs::XS_WRITE, b"OK\0");
                    self.fire(&path);
                }
                xs::XS_DIRECTORY => {
                    let prefix = format!("{}/", strs[0]);
                    let mut names: Vec<String> = self
                        .store
                        .keys()
                        .filter_map(|k| k.strip_prefix(&prefix))
                        .map(|rest| rest.split('/').next().unwrap().into())
                        .collect();
                    names.dedup();
                    let mut out = Vec::new();
                    for n in names {
                        out.extend_from_slice(n.as_bytes());
                        out.push(0);
                    }
                    self.reply(&h, xs::XS_DIRECTORY, &out);
                }
                xs::XS_RM => {
                    self.store.retain(|k, _| !k.starts_with(&strs[0]));
                    self.reply(&h, xs::XS_RM, b"OK\0");
                    let p = strs[0].clone();
                    self.fire(&p);
                }
                xs::XS_MKDIR => {
                    self.store.entry(strs[0].clone()).or_default();
                    self.reply(&h, xs::XS_MKDIR, b"OK\0");
                }
                xs::XS_WATCH => {
                    self.watches.push((strs[0].clone(), strs[1].clone()));
                    self.reply(&h, xs::XS_WATCH, b"OK\0");
                    let path = strs[0].clone();
                    self.fire(&path);
                }
                xs::XS_UNWATCH => {
                    self.watches.retain(|(_, t)| *t != strs[1]);
                    self.reply(&h, xs::XS_UNWATCH, b"OK\0");
                }
                xs::XS_TRANSACTION_START => {
                    let id = format!("{}\0", self.next_tx);
                    self.next_tx += 1;
                    self.reply(&h, xs::XS_TRANSACTION_START, id.as_bytes());
                }
                xs::XS_TRANSACTION_END => {
                    if strs[0] == "T" && self.conflicts > 0 {
                        self.conflicts -= 1;
                        self.reply(&h, xs::XS_ERROR, b"EAGAIN\0");
                    } else {
                        if strs[0] == "T" {
                            self.commits += 1;
                        }
                        self.reply(&h, xs::XS_TRANSACTION_END, b"OK\0");
                    }
                }
                _ => self.reply(&h, xs::XS_ERROR, b"ENOSYS\0"),
            }
        }

        /// One step of the daemon: consume requests, produce some output.
        fn step(&mut self) {
            let cons = get(&self.page, xs::REQ_CONS);
            let prod = get(&self.page, xs::REQ_PROD);
            let mut i = cons;
            while i != prod {
                self.inbuf
                    .push(self.page.0[xs::REQ + (i % XENSTORE_RING_SIZE) as usize]);
                i = i.wrapping_add(1);
            }
            set(&mut self.page, xs::REQ_CONS, prod);
            while self.inbuf.len() >= 16 {
                let h = Header::from_bytes(self.inbuf[..16].try_into().unwrap());
                let total = 16 + h.len as usize;
                if self.inbuf.len() < total {
                    break;
                }
                let p = self.inbuf[16..total].to_vec();
                self.inbuf.drain(..total);
                if !self.silent {
                    self.serve(h, p);
                }
            }
            let rcons = get(&self.page, xs::RSP_CONS);
            let mut rprod = get(&self.page, xs::RSP_PROD);
            let mut n = 0;
            while n < self.chunk && rprod.wrapping_sub(rcons) < XENSTORE_RING_SIZE {
                let Some(b) = self.outbuf.pop_front() else {
                    break;
                };
                self.page.0[xs::RSP + (rprod % XENSTORE_RING_SIZE) as usize] = b;
                rprod = rprod.wrapping_add(1);
                n += 1;
            }
            set(&mut self.page, xs::RSP_PROD, rprod);
        }
    }

    impl Transport for Fake {
        fn write(&mut self, bytes: &[u8]) -> Result<usize, XsError> {
            self.ring
                .write(bytes)
                .map_err(|_| XsError::Protocol("corrupt"))
        }
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
            self.ring
                .read(buf)
                .map_err(|_| XsError::Protocol("corrupt"))
        }
        fn notify(&mut self) {}
        fn wait(&mut self, deadline_ns: u64) -> bool {
            self.now += 1_000_000;
            self.step();
            self.now < deadline_ns
        }
        fn now_ns(&self) -> u64 {
            self.now
        }
    }

    fn client(start: u32) -> Client<Fake> {
        Client::new(Fake::new(start))
    }

    #[test]
    fn read_write_directory_rm() {
        let mut c = client(0);
        c.write(Tx::NONE, "device/vbd/768/state", b"1").unwrap();
        c.write(Tx::NONE, "device/vbd/832/state", b"1").unwrap();
        assert_eq!(c.read(Tx::NONE, "device/vbd/768/state").unwrap(), b"1");
        assert_eq!(c.directory(Tx::NONE, "device/vbd").unwrap(), ["768", "832"]);
        assert_eq!(c.read(Tx::NONE, "nope"), Err(XsError::Store(2)));
        c.rm(Tx::NONE, "device/vbd/832").unwrap();
        assert_eq!(c.directory(Tx::NONE, "device/vbd").unwrap(), ["768"]);
        c.mkdir(Tx::NONE, "data").unwrap();
        assert_eq!(c.request(99, Tx::NONE, &[b"\0"]), Err(XsError::Store(38)));
    }

    #[test]
    fn replies_spanning_the_wrap_and_larger_than_the_ring() {
        // Indices start just before 2^32 and the reply is 3 KiB, written
        // 100 bytes at a time: the client must stitch it across many reads
        // and both index and position wraps.
        let mut c = client(u32::MAX - 40);
        let mut names = Vec::new();
        for i in 0..300 {
            let path = format!("big/n{i:05}");
            c.transport().store.insert(path, b"x".to_vec());
            names.push(format!("n{i:05}"));
        }
        let got = c.directory(Tx::NONE, "big").unwrap();
        assert_eq!(got, names);
        // A 4000-byte value both ways: the request also spans several ring fills.
        let v = vec![b'v'; 4000];
        c.write(Tx::NONE, "big/value", &v).unwrap();
        assert_eq!(c.read(Tx::NONE, "big/value").unwrap(), v);
    }

    #[test]
    fn watch_events_are_queued_and_callbacks_handed_out() {
        let mut c = client(1000);
        let tok = c.watch("backend/state", None).unwrap();
        // The initial event fired by XS_WATCH itself (sent with the reply).
        let soon = c.transport().now + 10_000_000;
        let _ = c.wait_incoming(soon);
        assert_eq!(c.take_event(&tok).as_deref(), Some("backend/state"));
        assert_eq!(c.take_event(&tok), None);
        c.write(Tx::NONE, "backend/state", b"4").unwrap();
        let soon = c.transport().now + 10_000_000;
        let _ = c.wait_incoming(soon);
        assert_eq!(c.take_event(&tok).as_deref(), Some("backend/state"));

        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let cb_tok = c
            .watch(
                "control",
                Some(Box::new(move |p: &str, _t: &str| {
                    s2.lock().unwrap().push(p.to_string())
                })),
            )
            .unwrap();
        c.write(Tx::NONE, "control/shutdown", b"poweroff").unwrap();
        let soon = c.transport().now + 10_000_000;
        let _ = c.wait_incoming(soon);
        let mut ran = 0;
        while let Some((t, path, mut cb)) = c.take_callback_job() {
            cb(&path, &t);
            c.restore_callback(&t, cb);
            ran += 1;
        }
        // The initial event of the watch, then the write.
        assert_eq!(ran, 2);
        assert!(seen
            .lock()
            .unwrap()
            .contains(&"control/shutdown".to_string()));
        c.unwatch(&cb_tok).unwrap();
        c.write(Tx::NONE, "control/x", b"1").unwrap();
        assert!(c.take_callback_job().is_none());
    }

    #[test]
    fn transactions_retry_on_eagain() {
        let mut c = client(0);
        c.transport().conflicts = 2;
        let mut runs = 0;
        let r = c.transaction(|c, tx| {
            runs += 1;
            assert_ne!(tx, Tx::NONE);
            c.write(tx, "device/vbd/768/ring-ref", b"8")?;
            Ok(42)
        });
        assert_eq!(r, Ok(42));
        assert_eq!(runs, 3);
        assert_eq!(c.transport().commits, 1);

        c.transport().conflicts = 1000;
        let r: Result<(), _> = c.transaction(|_, _| Ok(()));
        assert!(r.unwrap_err().is_again());

        // A body error aborts without retrying.
        let mut runs = 0;
        let r: Result<(), _> = c.transaction(|_, _| {
            runs += 1;
            Err(XsError::BadValue)
        });
        assert_eq!((r, runs), (Err(XsError::BadValue), 1));
    }

    #[test]
    fn timeouts_and_late_replies() {
        let mut c = client(0);
        c.set_timeout_ns(5_000_000);
        c.transport().silent = true;
        assert_eq!(c.read(Tx::NONE, "a"), Err(XsError::Timeout));
        // The stream is still in step (the request was fully sent): a
        // later request works once the daemon answers again.
        c.transport().silent = false;
        c.transport().store.insert("a".into(), b"1".to_vec());
        assert_eq!(c.read(Tx::NONE, "a").unwrap(), b"1");
    }

    #[test]
    fn numbers_parse_like_xenstore_values() {
        assert_eq!(parse_u64(b"768"), Ok(768));
        assert_eq!(parse_u64(b"4\0"), Ok(4));
        assert_eq!(parse_u64(b" 12\n"), Ok(12));
        assert_eq!(parse_u64(b"x"), Err(XsError::BadValue));
        assert_eq!(parse_u64(b""), Err(XsError::BadValue));
    }
}
