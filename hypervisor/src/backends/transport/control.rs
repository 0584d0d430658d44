//! The per-device control loop every backend runs on its control thread:
//! it waits for a wake-up (the frontend's event channel, a watch on the
//! frontend's `state` node, or the device's own I/O asking to be serviced
//! again), runs the xenbus state machine, and services the connection.
//! The device supplies connect, disconnect and service through [`Driver`].

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use xen_abi::xenbus::XenbusState;

use super::xenbus::{self, Action, ConnectError, Xenbus};
use crate::xen::sink::SinkId;
use crate::xen::Domain;

/// How often an idle control thread checks whether the domain went away.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Why the control thread woke up.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wake {
    /// The ring has work (event channel, or responses freed space).
    pub ring: bool,
    /// The frontend's state node changed.
    pub xenbus: bool,
    /// The device is stopping.
    pub stop: bool,
}

/// Wakes a control thread; cheap enough for the vCPU thread.
#[derive(Default)]
pub struct Waker {
    wake: Mutex<Wake>,
    cv: Condvar,
}

impl Waker {
    /// Sets wake-up reasons and wakes the thread.
    pub fn kick(&self, f: impl FnOnce(&mut Wake)) {
        let mut w = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut w);
        self.cv.notify_all();
    }

    /// Waits (at most [`IDLE_POLL`]) for a reason and takes the reasons.
    fn wait(&self) -> Wake {
        let mut w = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        if !(w.ring || w.xenbus || w.stop) {
            w = self
                .cv
                .wait_timeout(w, IDLE_POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        std::mem::take(&mut *w)
    }
}

/// What a device does for the control loop.
pub trait Driver {
    /// A live connection to the frontend.
    type Conn;
    /// The device's name for logs.
    fn name(&self) -> &str;
    /// The domain, while it exists.
    fn domain(&self) -> Option<Arc<Domain>>;
    /// Reads what the frontend published, maps its rings, binds its event
    /// channels (and starts whatever serves them).
    fn connect(&mut self, dom: &Arc<Domain>, bus: &Xenbus) -> Result<Self::Conn, ConnectError>;
    /// One line describing a new connection, for the log.
    fn describe(&self, conn: &Self::Conn) -> String;
    /// Releases a connection: waits for its requests, unmaps its grants,
    /// unbinds its event channels.
    fn disconnect(&mut self, dom: &Domain, conn: Self::Conn);
    /// Services the connection after a ring wake-up. Errors: the frontend
    /// broke the protocol beyond repair; the device is closed.
    fn service(&mut self, dom: &Arc<Domain>, conn: &Self::Conn) -> Result<(), String>;
}

/// Runs the control loop of a device until it is stopped or its domain is
/// gone: watches the frontend's state, connects and disconnects, services
/// the connection when `waker` says so. Disconnects on the way out.
pub fn run<D: Driver>(d: &mut D, waker: &Arc<Waker>, mut bus: Xenbus) {
    let watch = {
        let weak = Arc::downgrade(waker);
        let path = format!("{}/state", bus.paths().frontend);
        match bus.store().watch(&path, move |_| {
            if let Some(w) = weak.upgrade() {
                w.kick(|w| w.xenbus = true);
            }
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                bus.fatal(&format!("watching {path}: {e}"));
                None
            }
        }
    };
    let mut conn: Option<D::Conn> = None;
    loop {
        let wake = waker.wait();
        let dom = match d.domain() {
            Some(dom) if !wake.stop && !dom.is_stopped() => dom,
            _ => break,
        };
        if wake.xenbus {
            frontend_changed(d, waker, &dom, &mut bus, &mut conn);
        }
        if wake.ring || wake.xenbus {
            if let Some(c) = &conn {
                if let Err(msg) = d.service(&dom, c) {
                    log::error!("{}: {msg}; closing the device", d.name());
                    if let Some(c) = conn.take() {
                        d.disconnect(&dom, c);
                    }
                    let _ = bus
                        .store()
                        .write(&format!("{}/error", bus.paths().backend), &msg);
                    let _ = bus.switch(XenbusState::Closed);
                }
            }
        }
    }
    if let Some(w) = watch {
        let _ = bus.store().unwatch(w);
    }
    if let (Some(dom), Some(c)) = (d.domain(), conn.take()) {
        d.disconnect(&dom, c);
    }
    log::debug!("{}: backend stopped", d.name());
}

/// Reacts to the frontend's `state` node.
fn frontend_changed<D: Driver>(
    d: &mut D,
    waker: &Waker,
    dom: &Arc<Domain>,
    bus: &mut Xenbus,
    conn: &mut Option<D::Conn>,
) {
    let fe = bus.frontend_state();
    let action = xenbus::on_frontend_change(bus.state(), fe);
    log::debug!(
        "{}: frontend {}, backend {}: {action:?}",
        d.name(),
        fe.name(),
        bus.state().name()
    );
    let r = match action {
        Action::None => Ok(()),
        Action::InitWait => bus.switch(XenbusState::InitWait),
        Action::Closing => bus.switch(XenbusState::Closing),
        Action::Fatal => {
            bus.fatal(&format!("saw state {} at frontend", fe.as_str()));
            Ok(())
        }
        Action::Close => {
            if let Some(c) = conn.take() {
                d.disconnect(dom, c);
            }
            bus.switch(XenbusState::Closed)
        }
        Action::Connect => {
            if let Some(c) = conn.take() {
                d.disconnect(dom, c);
            }
            match d.connect(dom, bus) {
                Ok(c) => {
                    log::info!("{}: connected ({})", d.name(), d.describe(&c));
                    *conn = Some(c);
                    waker.kick(|w| w.ring = true); // requests may already be waiting
                    bus.switch(XenbusState::Connected)
                }
                Err(e) => {
                    bus.fatal(&e.to_string());
                    Ok(())
                }
            }
        }
    };
    if let Err(e) = r {
        log::warn!("{}: xenstore: {e}", d.name());
    }
}

/// Binds the frontend's unbound `port` to the device registered as `sink`.
pub fn bind_port(dom: &Domain, sink: SinkId, port: u32) -> Result<(), ConnectError> {
    dom.bind_sink(port, sink)
        .map_err(|errno| ConnectError::EventChannel { port, errno })
}

/// Closes the backend's end of `port`, as a Linux backend's unbind does: the
/// guest's port waits for domain 0 again (or stays closed if the guest
/// closed it first).
pub fn unbind_port(dom: &Domain, sink: SinkId, port: u32) {
    dom.unbind_sink(port, sink);
}
