//! The standard xenstore layout of a domain, as xl/libxl 4.17 writes it
//! (libxl__domain_make, libxl__build_post, libxl__device_console_add for
//! the primary console) and removes it (devices_destroy_cb), plus domain
//! 0's own entries (xen-init-dom0).
//!
//! Permissions, as libxl names them, for domain N:
//! `roperm` = `n0 rN` (domain 0 owns, N may read): `/local/domain/N`,
//! `/vm/<uuid>`, `cpu`, `memory`, `device`, `control`, `console`;
//! `rwperm` = `nN` (N owns): `control/shutdown`, `control/feature-*`,
//! `control/sysrq`, `device/suspend/event-channel`, `data`, `drivers`,
//! `feature`, `attr`, `error`; `noperm` = `n0`: `/libxl/N`.
//! Device backends live under `/local/domain/0/backend/<kind>/N/<devid>`.

use xen_abi::DomId;

use super::perms::{Access, Perm};
use super::{Tx, XsError, Xenstored};

/// What the layout records about a domain.
#[derive(Clone, Debug)]
pub struct DomainInfo {
    /// The domain id.
    pub domid: DomId,
    /// Its name.
    pub name: String,
    /// Its UUID, hyphenated.
    pub uuid: String,
    /// libxl's domain type ("pvh").
    pub domain_type: &'static str,
    /// memory/target, in KiB.
    pub target_kib: u64,
    /// memory/static-max, in KiB.
    pub max_kib: u64,
    /// vCPUs online at boot (cpu/N/availability "online").
    pub vcpus: u32,
    /// vCPUs in all (the rest are "offline").
    pub max_vcpus: u32,
    /// The guest's xenstore event channel.
    pub store_port: u32,
    /// The xenstore ring's frame number.
    pub store_pfn: u64,
    /// The guest's console event channel.
    pub console_port: u32,
    /// The console ring's frame number.
    pub console_pfn: u64,
}

/// Domain 0's own entries (what xen-init-dom0 writes).
pub fn init_dom0(xs: &Xenstored) {
    let r = xs.transact(|t| {
        t.write("/local/domain/0/domid", "0")?;
        t.write("/local/domain/0/name", "Domain-0")
    });
    if let Err(e) = r {
        log::warn!("xenstored: cannot write domain 0's entries: {e}");
    }
}

/// `/local/domain/<domid>`.
pub fn dom_path(domid: DomId) -> String {
    super::path::domain_path(domid.into())
}

/// Writes a new domain's entries, in transactions as libxl does.
pub fn create(xs: &Xenstored, d: &DomainInfo) -> Result<(), XsError> {
    let n = d.domid;
    let dom = dom_path(n);
    let vm = format!("/vm/{}", d.uuid);
    let libxl = format!("/libxl/{n}");
    let noperm = [Perm::new(0, Access::None)];
    let roperm = [Perm::new(0, Access::None), Perm::new(n, Access::Read)];
    let rwperm = [Perm::new(n, Access::None)];

    // libxl__domain_make.
    xs.transact(|t| {
        rm(t, &dom)?;
        t.mknod(&dom, &roperm)?;
        rm(t, &vm)?;
        t.mknod(&vm, &roperm)?;
        rm(t, &libxl)?;
        t.mknod(&libxl, &noperm)?;
        t.mknod(&format!("{libxl}/device"), &noperm)?;
        t.write(&format!("{dom}/vm"), &vm)?;
        t.write(&format!("{dom}/name"), &d.name)?;
        for sub in ["cpu", "memory", "device"] {
            t.mknod(&format!("{dom}/{sub}"), &roperm)?;
        }
        t.mknod(&format!("{dom}/device/suspend/event-channel"), &rwperm)?;
        t.mknod(&format!("{dom}/control"), &roperm)?;
        for sub in ["shutdown", "feature-poweroff", "feature-reboot", "feature-suspend", "sysrq"] {
            t.mknod(&format!("{dom}/control/{sub}"), &rwperm)?;
        }
        for sub in ["data", "drivers", "feature", "attr", "error"] {
            t.mknod(&format!("{dom}/{sub}"), &rwperm)?;
        }
        t.write(&format!("{vm}/uuid"), &d.uuid)?;
        t.write(&format!("{vm}/name"), &d.name)?;
        t.write(&format!("{dom}/control/platform-feature-multiprocessor-suspend"), "1")?;
        t.write(&format!("{dom}/control/platform-feature-xs_reset_watches"), "1")?;
        t.write(&format!("{libxl}/type"), d.domain_type)
    })?;

    // The primary console (libxl__device_console_add, xenconsoled backend).
    xs.transact(|t| console(t, d))?;

    // libxl__build_post, just before it introduces the domain.
    xs.transact(|t| {
        t.write(&format!("{dom}/memory/static-max"), d.max_kib.to_string())?;
        t.write(&format!("{dom}/memory/target"), d.target_kib.to_string())?;
        t.write(&format!("{dom}/memory/videoram"), "0")?;
        t.write(&format!("{dom}/domid"), n.to_string())?;
        t.write(&format!("{dom}/store/port"), d.store_port.to_string())?;
        t.write(&format!("{dom}/store/ring-ref"), d.store_pfn.to_string())?;
        for cpu in 0..d.max_vcpus.max(d.vcpus) {
            t.write(&format!("{dom}/cpu/{cpu}/availability"), if cpu < d.vcpus { "online" } else { "offline" })?;
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        t.write(&format!("{vm}/start_time"), format!("{}.{:02}", now.as_secs(), now.subsec_millis() / 10))
    })
}

/// xs_rm as libxl uses it: a path whose parent is missing is no error.
fn rm(t: &Tx<'_>, path: &str) -> Result<(), XsError> {
    match t.rm(path) {
        Err(XsError::NoEnt) => Ok(()),
        r => r,
    }
}

fn console(t: &Tx<'_>, d: &DomainInfo) -> Result<(), XsError> {
    let n = d.domid;
    let front = format!("{}/console", dom_path(n));
    let back = format!("/local/domain/0/backend/console/{n}/0");
    let libxl = format!("/libxl/{n}/device/console/0");
    let front_perms = [Perm::new(n, Access::None), Perm::new(0, Access::Read)];
    let ro_front_perms = [Perm::new(0, Access::None), Perm::new(n, Access::Read)];
    let back_perms = ro_front_perms;

    rm(t, &libxl)?;
    t.write(&format!("{libxl}/frontend"), &front)?;
    t.write(&format!("{libxl}/backend"), &back)?;
    rm(t, &front)?;
    t.mknod(&front, &ro_front_perms)?; // console 0: the guest may not change it
    t.write(&format!("{front}/backend"), &back)?;
    t.write_perms(&format!("{front}/backend-id"), "0", &front_perms)?;
    let ro = [
        ("limit", "1048576".to_owned()),
        ("type", "xenconsoled".to_owned()),
        ("output", "pty".to_owned()),
        ("tty", String::new()),
        ("port", d.console_port.to_string()),
        ("ring-ref", d.console_pfn.to_string()),
    ];
    for (k, v) in &ro {
        t.write_perms(&format!("{front}/{k}"), v, &ro_front_perms)?;
    }
    rm(t, &back)?;
    t.mknod(&back, &back_perms)?;
    t.write(&format!("{back}/frontend"), &front)?;
    let bents = [("frontend-id", n.to_string()), ("online", "1".into()), ("state", "1".into()), ("protocol", "vt100".into())];
    for (k, v) in &bents {
        t.write(&format!("{back}/{k}"), v)?;
        t.write(&format!("{libxl}/{k}"), v)?;
    }
    Ok(())
}

/// Removes a domain's entries once it is gone (libxl's devices_destroy_cb
/// and the backend directories libxl__devices_destroy removes).
pub fn destroy(xs: &Xenstored, domid: DomId) {
    let dom = dom_path(domid);
    let vm = xs.read_string(&format!("{dom}/vm")).ok();
    let mut paths: Vec<String> = vm.into_iter().filter(|v| v.starts_with("/vm/")).collect();
    paths.push(dom);
    paths.push(format!("/libxl/{domid}"));
    if let Ok(kinds) = xs.directory("/local/domain/0/backend") {
        paths.extend(kinds.iter().map(|k| format!("/local/domain/0/backend/{k}/{domid}")));
    }
    for p in paths {
        if let Err(e) = xs.rm(&p) {
            log::debug!("xenstored: removing {p}: {e}");
        }
        prune_empty_parents(xs, &p);
    }
}

/// The directories that stay even when empty: the domain list and dom0's own.
const KEPT_DIRS: [&str; 3] = ["/local", "/local/domain", "/local/domain/0"];

/// Removes `path`'s parents that the removal left empty (/vm, /libxl,
/// dom0's backend/vif, ...), so a host whose domains are all gone has the
/// store it started with. A writer racing this re-creates them: xenstore
/// writes make missing parents.
fn prune_empty_parents(xs: &Xenstored, path: &str) {
    let mut dir = path;
    while let Some((parent, _)) = dir.rsplit_once('/') {
        if parent.is_empty() || KEPT_DIRS.contains(&parent) {
            return;
        }
        let empty = xs.directory(parent).is_ok_and(|c| c.is_empty()) && xs.read(parent).is_ok_and(|v| v.is_empty());
        if !empty || xs.rm(parent).is_err() {
            return;
        }
        dir = parent;
    }
}

/// A fresh random (version 4) UUID, for a domain whose configuration
/// gives none (libxl generates one too).
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    // SAFETY: getrandom writes at most b.len() bytes into the local array.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // Unique enough for a name if the kernel has no entropy call.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        b = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::{Options, Quota, SocketChoice};

    #[test]
    fn layout_has_libxl_entries_and_permissions() {
        let xs = Xenstored::start(Options { socket: SocketChoice::None, quota: Quota::default() }).unwrap();
        let d = DomainInfo {
            domid: 1,
            name: "guest".into(),
            uuid: random_uuid(),
            domain_type: "pvh",
            target_kib: 65536,
            max_kib: 65536,
            vcpus: 1,
            max_vcpus: 1,
            store_port: 2,
            store_pfn: 0xfeff4,
            console_port: 1,
            console_pfn: 0xfeff7,
        };
        create(&xs, &d).unwrap();
        let r = |p: &str| xs.read_string(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(r("/local/domain/1/name"), "guest");
        assert_eq!(r("/local/domain/1/domid"), "1");
        assert_eq!(r("/local/domain/1/vm"), format!("/vm/{}", d.uuid));
        assert_eq!(r(&format!("/vm/{}/name", d.uuid)), "guest");
        assert_eq!(r("/local/domain/1/memory/target"), "65536");
        assert_eq!(r("/local/domain/1/console/ring-ref"), (0xfeff7).to_string());
        assert_eq!(r("/local/domain/1/console/type"), "xenconsoled");
        assert_eq!(r("/local/domain/1/store/port"), "2");
        let perms = |p: &str| xs.get_perms(p).unwrap().iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ");
        assert_eq!(perms("/local/domain/1"), "n0 r1");
        assert_eq!(perms("/local/domain/1/data"), "n1");
        assert_eq!(perms("/local/domain/1/control/shutdown"), "n1");
        assert_eq!(perms("/local/domain/1/device"), "n0 r1");
        assert_eq!(perms("/local/domain/1/memory/target"), "n0 r1");
        assert_eq!(perms("/local/domain/1/console/backend-id"), "n1 r0");
        assert_eq!(perms("/libxl/1"), "n0");
        destroy(&xs, 1);
        assert!(!xs.exists("/local/domain/1").unwrap());
        assert!(!xs.exists(&format!("/vm/{}", d.uuid)).unwrap());
        assert!(!xs.exists("/vm").unwrap(), "emptied parents go too");
        assert!(xs.exists("/local/domain").unwrap(), "the domain list stays");
        assert!(!xs.exists("/local/domain/0/backend/console/1").unwrap());
        assert!(!xs.exists("/local/domain/0/backend").unwrap(), "dom0's emptied backend directories go");
        assert!(xs.exists("/local/domain/0").unwrap(), "dom0 stays");
    }
}
