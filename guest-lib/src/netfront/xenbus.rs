//! netfront's xenbus negotiation, in the order Linux's xen-netfront does
//! it (drivers/net/xen-netfront.c, `talk_to_netback`; keys from
//! xen/include/public/io/netif.h).
//!
//! Read from the backend once it is in InitWait ([`parse_offer`]):
//! `feature-rx-copy` (required: we never take page flips),
//! `feature-sg`, `feature-gso-tcpv4`, `feature-split-event-channels`,
//! `multi-queue-max-queues`, `feature-ipv6-csum-offload`, `feature-rx-flip`
//! (ignored). The MAC: our own `mac` node (the toolstack writes it on both
//! sides; Linux reads the frontend's), else the backend's.
//!
//! Written by us in one transaction, which also switches us straight to
//! Connected as Linux's netfront does (it never stops at Initialised):
//! `tx-ring-ref`, `rx-ring-ref`, `event-channel` (or `event-channel-tx` and
//! `event-channel-rx` with split channels), `request-rx-copy` = 1,
//! `feature-rx-notify` = 1, and `feature-sg`, `feature-gso-tcpv4` as we
//! want them. With one queue the ring and channel keys are in our
//! directory itself and `multi-queue-num-queues` is not written (what a
//! backend without multi-queue reads); with several, `multi-queue-num-queues`
//! = N and each queue's keys under `queue-0/` ... `queue-<N-1>/`.

use alloc::string::String;
use core::fmt::Write;

use xen_abi::event_channel::Port;
use xen_abi::grant_table::GrantRef;

use crate::time;
use crate::xenbus::{connect_step, ConnectStep, Device, XenbusError, XenbusState};
use crate::xenstore::{self, Tx, XsError};

/// What the backend offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offer {
    /// `feature-rx-copy`: the backend copies into our posted pages.
    pub rx_copy: bool,
    /// `feature-sg`: packets over several slots.
    pub sg: bool,
    /// `feature-gso-tcpv4`.
    pub gso_tcpv4: bool,
    /// `feature-split-event-channels`: one channel per direction.
    pub split_event_channels: bool,
    /// `multi-queue-max-queues` (1 when absent).
    pub max_queues: u32,
    /// `feature-ipv6-csum-offload`.
    pub ipv6_csum_offload: bool,
}

/// Parses the backend's feature keys (pure, tested on the host). `get`
/// reads one backend key; a malformed number counts as absent.
pub fn parse_offer(mut get: impl FnMut(&str) -> Option<String>) -> Offer {
    let mut num = |k: &str| get(k).and_then(|s| xenstore::parse_u64(s.as_bytes()).ok());
    let mut flag = |k: &str| num(k).unwrap_or(0) != 0;
    let rx_copy = flag("feature-rx-copy");
    let sg = flag("feature-sg");
    let gso_tcpv4 = flag("feature-gso-tcpv4");
    let split_event_channels = flag("feature-split-event-channels");
    let ipv6_csum_offload = flag("feature-ipv6-csum-offload");
    let max_queues = num("multi-queue-max-queues").unwrap_or(1).clamp(1, 64) as u32;
    Offer {
        rx_copy,
        sg,
        gso_tcpv4,
        split_event_channels,
        max_queues,
        ipv6_csum_offload,
    }
}

/// Parses a MAC address as xenstore holds it (`00:16:3e:12:34:56`).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim_end_matches('\0').trim().split(':');
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// One queue's rings and channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueKeys {
    /// `tx-ring-ref`.
    pub tx_ring_ref: GrantRef,
    /// `rx-ring-ref`.
    pub rx_ring_ref: GrantRef,
    /// The tx channel (the only one unless split).
    pub tx_port: Port,
    /// The rx channel when split (`event-channel-rx`).
    pub rx_port: Option<Port>,
}

/// What we publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// The queues, at least one.
    pub queues: alloc::vec::Vec<QueueKeys>,
    /// `feature-sg`.
    pub sg: bool,
    /// `feature-gso-tcpv4`.
    pub gso_tcpv4: bool,
}

/// The keys (relative to our directory) and values [`publish`] writes, in
/// order (pure, for tests).
pub fn keys(p: &Publish) -> alloc::vec::Vec<(String, String)> {
    let mut v = alloc::vec::Vec::new();
    let several = p.queues.len() > 1;
    if several {
        v.push(("multi-queue-num-queues".into(), num(p.queues.len() as u64)));
    }
    for (i, q) in p.queues.iter().enumerate() {
        let dir = if several { alloc::format!("queue-{i}/") } else { String::new() };
        v.push((alloc::format!("{dir}tx-ring-ref"), num(q.tx_ring_ref as u64)));
        v.push((alloc::format!("{dir}rx-ring-ref"), num(q.rx_ring_ref as u64)));
        match q.rx_port {
            Some(rx) => {
                v.push((alloc::format!("{dir}event-channel-tx"), num(q.tx_port as u64)));
                v.push((alloc::format!("{dir}event-channel-rx"), num(rx as u64)));
            }
            None => v.push((alloc::format!("{dir}event-channel"), num(q.tx_port as u64))),
        }
    }
    v.push(("request-rx-copy".into(), "1".into()));
    v.push(("feature-rx-notify".into(), "1".into()));
    v.push(("feature-sg".into(), bit(p.sg)));
    v.push(("feature-gso-tcpv4".into(), bit(p.gso_tcpv4)));
    v
}

/// Keys a previous kernel in this domain may have left that contradict
/// what we write (the other event-channel form, queue directories), and
/// what [`unpublish`] removes.
fn stale() -> impl Iterator<Item = String> {
    ["tx-ring-ref", "rx-ring-ref", "event-channel", "event-channel-tx", "event-channel-rx", "multi-queue-num-queues"]
        .into_iter()
        .map(String::from)
        .chain((0..super::MAX_QUEUES).map(|i| alloc::format!("queue-{i}")))
}

/// Writes our keys and switches to Connected, in one transaction.
pub fn publish(dev: &Device, p: &Publish) -> Result<(), XsError> {
    let keys = keys(p);
    xenstore::transaction(|tx| {
        for k in stale() {
            match xenstore::rm(tx, &dev.front_path(&k)) {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        for (k, v) in &keys {
            xenstore::write(tx, &dev.front_path(k), v)?;
        }
        dev.switch_state(tx, XenbusState::Connected)
    })
}

/// Removes what [`publish`] wrote for `queues` queues (after the backend
/// closed) so the next frontend starts clean.
pub fn unpublish(dev: &Device, queues: usize) {
    let mut keys: alloc::vec::Vec<String> = stale().take(6).collect();
    keys.push("request-rx-copy".into());
    if queues > 1 {
        keys.extend((0..queues).map(|i| alloc::format!("queue-{i}")));
    }
    for k in keys {
        let _ = xenstore::rm(Tx::NONE, &dev.front_path(&k));
    }
}

/// Drives the connection: resets a left-over backend, calls `publish`
/// with the offer once the backend is in InitWait, then waits for the
/// backend's Connected. Waiting halts on a watch of the backend's state.
pub fn connect<E: From<XenbusError> + From<XsError>>(
    dev: &Device,
    timeout_ns: u64,
    mut publish: impl FnMut(&Offer) -> Result<(), E>,
) -> Result<Offer, E> {
    let deadline = time::now_ns().saturating_add(timeout_ns);
    if dev.state()? != XenbusState::Initialising {
        dev.switch_state(Tx::NONE, XenbusState::Initialising)?;
    }
    let watch = xenstore::watch(&dev.back_path("state"))?;
    let (mut published, mut reset_done) = (None, false);
    loop {
        let s = dev.backend_state()?;
        match connect_step(s, published.is_some(), reset_done) {
            ConnectStep::Wait => {
                if watch.wait(deadline)?.is_none() {
                    let s = dev.backend_state()?;
                    if connect_step(s, published.is_some(), reset_done) == ConnectStep::Wait {
                        let waiting_for = if published.is_some() {
                            "Connected"
                        } else {
                            "InitWait"
                        };
                        return Err(XenbusError::Timeout {
                            waiting_for,
                            backend: s,
                        }
                        .into());
                    }
                }
            }
            ConnectStep::Publish => {
                let offer = parse_offer(|k| dev.backend_read(k).ok().flatten());
                publish(&offer)?;
                published = Some(offer);
            }
            ConnectStep::Connect => return Ok(published.unwrap_or_default()),
            ConnectStep::Reset => {
                dev.reset(deadline.saturating_sub(time::now_ns()))?;
                reset_done = true;
            }
            ConnectStep::Fail => return Err(XenbusError::BackendFailed(s).into()),
        }
    }
}

fn bit(b: bool) -> String {
    String::from(if b { "1" } else { "0" })
}

fn num(v: u64) -> String {
    let mut s = String::new();
    let _ = write!(s, "{v}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::string::ToString;

    fn offer(keys: &[(&str, &str)]) -> Offer {
        let m: BTreeMap<String, String> = keys
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_offer(|k| m.get(k).cloned())
    }

    #[test]
    fn linux_netback_offers() {
        // What Debian 12's netback writes under backend/vif/D/0.
        let o = offer(&[
            ("feature-sg", "1"),
            ("feature-gso-tcpv4", "1"),
            ("feature-gso-tcpv6", "1"),
            ("feature-ipv6-csum-offload", "1"),
            ("feature-rx-copy", "1"),
            ("feature-rx-flip", "0"),
            ("feature-multicast-control", "1"),
            ("feature-dynamic-multicast-control", "1"),
            ("feature-split-event-channels", "1"),
            ("multi-queue-max-queues", "2"),
            ("feature-ctrl-ring", "1"),
        ]);
        assert_eq!(
            o,
            Offer {
                rx_copy: true,
                sg: true,
                gso_tcpv4: true,
                split_event_channels: true,
                max_queues: 2,
                ipv6_csum_offload: true
            }
        );
        assert_eq!(
            offer(&[]),
            Offer {
                max_queues: 1,
                ..Offer::default()
            }
        );
        assert_eq!(
            offer(&[("feature-rx-copy", "yes"), ("multi-queue-max-queues", "0")]),
            Offer {
                max_queues: 1,
                ..Offer::default()
            }
        );
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("00:16:3e:12:34:5f"),
            Some([0, 0x16, 0x3e, 0x12, 0x34, 0x5f])
        );
        assert_eq!(
            parse_mac("00:16:3e:12:34:5f\0"),
            Some([0, 0x16, 0x3e, 0x12, 0x34, 0x5f])
        );
        assert_eq!(parse_mac("00:16:3e:12:34"), None);
        assert_eq!(parse_mac("00:16:3e:12:34:56:78"), None);
        assert_eq!(parse_mac("00:16:3e:12:34:zz"), None);
        assert_eq!(parse_mac("00:16:3e:12:34:100"), None);
    }

    #[test]
    fn published_keys_follow_the_event_channel_form() {
        let q = QueueKeys { tx_ring_ref: 8, rx_ring_ref: 9, tx_port: 5, rx_port: None };
        let mut p = Publish { queues: alloc::vec![q], sg: true, gso_tcpv4: false };
        let k = keys(&p);
        let get =
            |k: &[(String, String)], n: &str| k.iter().find(|(x, _)| *x == n).map(|(_, v)| v.clone());
        assert_eq!(get(&k, "multi-queue-num-queues"), None);
        assert_eq!(get(&k, "event-channel").as_deref(), Some("5"));
        assert_eq!(get(&k, "event-channel-rx"), None);
        assert_eq!(get(&k, "request-rx-copy").as_deref(), Some("1"));
        assert_eq!(get(&k, "feature-rx-notify").as_deref(), Some("1"));
        assert_eq!(get(&k, "feature-sg").as_deref(), Some("1"));
        assert_eq!(get(&k, "feature-gso-tcpv4").as_deref(), Some("0"));
        assert_eq!(get(&k, "tx-ring-ref").as_deref(), Some("8"));
        p.queues[0].rx_port = Some(6);
        let k = keys(&p);
        assert_eq!(get(&k, "event-channel"), None);
        assert_eq!(get(&k, "event-channel-tx").as_deref(), Some("5"));
        assert_eq!(get(&k, "event-channel-rx").as_deref(), Some("6"));
        // Two queues: each under its directory, as Linux's netfront writes them.
        p.queues.push(QueueKeys { tx_ring_ref: 10, rx_ring_ref: 11, tx_port: 7, rx_port: Some(8) });
        let k = keys(&p);
        assert_eq!(get(&k, "multi-queue-num-queues").as_deref(), Some("2"));
        assert_eq!(get(&k, "tx-ring-ref"), None);
        assert_eq!(get(&k, "queue-0/tx-ring-ref").as_deref(), Some("8"));
        assert_eq!(get(&k, "queue-1/rx-ring-ref").as_deref(), Some("11"));
        assert_eq!(get(&k, "queue-1/event-channel-rx").as_deref(), Some("8"));
        assert_eq!(get(&k, "feature-sg").as_deref(), Some("1"));
    }
}
