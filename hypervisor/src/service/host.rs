//! The host's domains in the service: what xl, libxl and xenstored hold
//! together on a Xen dom0. Each domain runs [`domain::run`] on its own
//! supervising thread (restarts included) with the one shared xenstored;
//! the verbs act on them from the control connections' threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::toolstack::config::DomainConfig;
use crate::toolstack::describe;
use crate::toolstack::domain::{self, ConsoleTarget, DomainError, Keeper, Outcome, RunOptions};
use crate::toolstack::registry::{Lease, Registry};
use crate::toolstack::stop::{Running, StopCause, Stopper};
use crate::xen::ShutdownReason;
use crate::xenstore::Xenstored;

use super::console::ConsoleLog;

/// How long `create` waits for a domain to be built.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(60);

/// A domain the service runs, across its restarts.
pub struct Managed {
    /// Its configuration (its name may since have changed: see the registry).
    pub cfg: DomainConfig,
    /// The running incarnation, and how to destroy it.
    pub stopper: Stopper,
    /// Its console.
    pub console: Arc<ConsoleLog>,
    /// How the supervising thread ended, once it has.
    end: Mutex<Option<Result<Outcome, String>>>,
    ended: Condvar,
}

impl Managed {
    fn end(&self) -> MutexGuard<'_, Option<Result<Outcome, String>>> {
        self.end.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether its supervising thread has ended (the domain is gone).
    pub fn is_gone(&self) -> bool {
        self.end().is_some()
    }

    /// Waits until the domain is gone (at most `timeout`); returns how it ended.
    pub fn wait_gone(&self, timeout: Option<Duration>) -> Option<Result<Outcome, String>> {
        let end = timeout.map(|t| Instant::now() + t);
        let mut guard = self.end();
        loop {
            if let Some(result) = guard.as_ref() {
                return Some(result.clone());
            }
            guard = match end {
                Some(end) => {
                    let now = Instant::now();
                    if now >= end {
                        return None;
                    }
                    self.ended.wait_timeout(guard, end - now).unwrap_or_else(|e| e.into_inner()).0
                }
                None => self.ended.wait(guard).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

/// A domain on_* kept after it stopped (preserve, rename-restart): listed
/// as shut down, holding its domid and (renamed) name until destroyed. Its
/// memory is released: Xenolith writes no core dumps, so there is nothing
/// in it to examine.
pub struct Preserved {
    /// Its domid and name.
    pub lease: Lease,
    /// Why it stopped.
    pub reason: ShutdownReason,
    /// Its memory and vCPUs as configured, for `list`.
    pub memory_mib: u64,
    /// Its vCPUs, for `list`.
    pub vcpus: u32,
}

/// A domain a verb names, as found.
pub enum Found {
    /// A running domain (or one between restarts: then without `Running`).
    Live(Arc<Managed>, Option<Running>),
    /// A preserved one, by domid.
    Preserved(u16),
}

/// Why a verb could not act on a domain.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// No domain has the name or id.
    #[error("{0} is an invalid domain identifier (rc=-6)")]
    NoSuchDomain(String),
    /// The configuration or the domain's build failed.
    #[error("{0}")]
    Failed(String),
}

/// Every domain on the host.
pub struct Host {
    /// Domids and names.
    pub registry: Arc<Registry>,
    /// The one xenstored.
    pub xs: Arc<Xenstored>,
    /// Where console logs go (guest-NAME.log).
    pub log_dir: PathBuf,
    /// When the service started.
    pub started: Instant,
    domains: Mutex<Vec<Arc<Managed>>>,
    preserved: Mutex<Vec<Preserved>>,
}

impl Host {
    /// A host with no domains yet.
    pub fn new(xs: Arc<Xenstored>, log_dir: PathBuf) -> Arc<Self> {
        Arc::new(Host {
            registry: Arc::new(Registry::default()),
            xs,
            log_dir,
            started: Instant::now(),
            domains: Mutex::new(Vec::new()),
            preserved: Mutex::new(Vec::new()),
        })
    }

    fn domains(&self) -> MutexGuard<'_, Vec<Arc<Managed>>> {
        self.domains.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn preserved(&self) -> MutexGuard<'_, Vec<Preserved>> {
        self.preserved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// xl create: reads `config` (relative to `cwd`) with `overrides`,
    /// takes a domid and starts the domain's supervising thread, whose
    /// relative paths (kernel, disks) also resolve against `cwd`; returns
    /// once the domain runs, or the error that stopped it.
    pub fn create(self: &Arc<Self>, cwd: &Path, config: &Path, overrides: &[String], paused: bool) -> Result<(Arc<Managed>, Running), HostError> {
        let failed = |e: &dyn std::error::Error| HostError::Failed(describe(e));
        let cfg = DomainConfig::load(cwd.join(config), overrides).map_err(|e| failed(&e))?;
        for warning in &cfg.warnings {
            log::warn!("{warning}");
        }
        let lease = self.registry.allocate(&cfg.name).map_err(|e| failed(&e))?;
        let _ = std::fs::create_dir_all(&self.log_dir);
        let log_path = self.log_dir.join(format!("guest-{}.log", cfg.name));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(|err| failed(&DomainError::ConsoleLog { path: log_path.clone(), err }))?;
        let managed = Arc::new(Managed {
            cfg,
            stopper: Stopper::default(),
            console: Arc::new(ConsoleLog::new(Some(file))),
            end: Mutex::new(None),
            ended: Condvar::new(),
        });
        self.domains().push(managed.clone());
        let opts = RunOptions {
            lease,
            console: ConsoleTarget::Shared(managed.console.clone()),
            stopper: managed.stopper.clone(),
            store: Some(self.xs.clone()),
            keeper: Some(self.clone()),
            start_paused: paused,
        };
        let (host, m, cwd) = (self.clone(), managed.clone(), cwd.to_owned());
        let spawned = std::thread::Builder::new().name(format!("dom:{}", managed.cfg.name)).spawn(move || host.supervise(&m, opts, &cwd));
        if let Err(e) = spawned {
            self.forget(&managed);
            return Err(failed(&e));
        }
        match managed.stopper.wait_running(BUILD_TIMEOUT, || managed.is_gone()) {
            Some(running) => Ok((managed, running)),
            None => Err(match managed.wait_gone(Some(Duration::ZERO)) {
                Some(Err(e)) => HostError::Failed(e),
                Some(Ok(outcome)) => HostError::Failed(format!("domain {} stopped while being built: {outcome:?}", managed.cfg.name)),
                None => {
                    managed.stopper.request(StopCause::Destroy);
                    HostError::Failed(format!("domain {} was not built within {} s; destroyed", managed.cfg.name, BUILD_TIMEOUT.as_secs()))
                }
            }),
        }
    }

    /// The domain's supervising thread: runs it (restarts included) in the
    /// client's working directory, then records how it ended.
    fn supervise(self: Arc<Self>, managed: &Arc<Managed>, mut opts: RunOptions, cwd: &Path) {
        let result = in_directory(cwd).map_err(|e| format!("cannot use the working directory {}: {e}", cwd.display())).and_then(|()| domain::run(&managed.cfg, &mut opts).map_err(|e| describe(&e)));
        let name = opts.lease.name();
        match &result {
            Ok(Outcome::Preserved(reason)) => {
                let RunOptions { lease, .. } = opts;
                self.keep(lease, &managed.cfg, reason.clone());
            }
            Ok(Outcome::Shutdown(reason)) => log::info!("domain {name} ended: {}", reason.name()),
            Ok(Outcome::Stopped(cause)) => log::info!("domain {name} destroyed: {}", cause.describe()),
            Err(e) => log::error!("domain {name}: {e}"),
        }
        managed.console.close();
        self.forget(managed);
        *managed.end() = Some(result);
        managed.ended.notify_all();
    }

    fn forget(&self, managed: &Arc<Managed>) {
        self.domains().retain(|m| !Arc::ptr_eq(m, managed));
    }

    /// The domain a verb names: a domid or a name, as xl's find_domain.
    pub fn find(&self, spec: &str) -> Result<Found, HostError> {
        let domid = match spec.parse::<u16>() {
            Ok(id) => Some(id),
            Err(_) => self.registry.domid(spec),
        };
        let missing = || HostError::NoSuchDomain(spec.to_owned());
        let domid = domid.filter(|&d| self.registry.name(d).is_some()).ok_or_else(missing)?;
        if self.preserved().iter().any(|p| p.lease.domid() == domid) {
            return Ok(Found::Preserved(domid));
        }
        // Between a domain's incarnations it has no `Running`, but still its domid.
        self.domains()
            .iter()
            .find(|m| m.stopper.domid() == Some(domid))
            .map(|m| Found::Live(m.clone(), m.stopper.current().filter(|r| r.dom.info.domid == domid)))
            .ok_or_else(missing)
    }

    /// The running domains, with their incarnations (none between restarts).
    pub fn live(&self) -> Vec<(Arc<Managed>, Option<Running>)> {
        self.domains().iter().map(|m| (m.clone(), m.stopper.current())).collect()
    }

    /// Applies `f` to each preserved domain.
    pub fn with_preserved<T>(&self, f: impl FnOnce(&[Preserved]) -> T) -> T {
        f(&self.preserved())
    }

    /// xl destroy: stops a running domain at once (no restart follows) and
    /// waits until it is gone, or forgets a preserved one.
    pub fn destroy(&self, found: Found) {
        match found {
            Found::Live(m, _) => {
                m.stopper.request(StopCause::Destroy);
                m.wait_gone(None);
            }
            Found::Preserved(domid) => {
                self.preserved().retain(|p| p.lease.domid() != domid);
                log::info!("domain {domid}: preserved domain destroyed");
            }
        }
    }

    /// Destroys every domain (the service is stopping), waiting at most
    /// `timeout` for them to go.
    pub fn destroy_all(&self, timeout: Duration) {
        let all: Vec<_> = self.domains().clone();
        for m in &all {
            m.stopper.request(StopCause::Destroy);
        }
        let end = Instant::now() + timeout;
        for m in &all {
            m.wait_gone(Some(end.saturating_duration_since(Instant::now())));
        }
        self.preserved().clear();
    }
}

impl Keeper for Host {
    fn keep(&self, lease: Lease, cfg: &DomainConfig, reason: ShutdownReason) {
        log::info!("domain {} ({}) kept after {}: destroy it with `xenolith destroy {}`", lease.domid(), lease.name(), reason.name(), lease.domid());
        self.preserved().push(Preserved { lease, reason, memory_mib: cfg.memory_mib, vcpus: cfg.vcpus.max(1) });
    }
}

/// Gives the calling thread its own working directory (unshare CLONE_FS)
/// and moves it to `dir`: the domain's relative paths then resolve as they
/// would for the client, without touching the service's other threads.
fn in_directory(dir: &Path) -> std::io::Result<()> {
    // SAFETY: unshare with a flag only; it affects the calling thread.
    if unsafe { libc::unshare(libc::CLONE_FS) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    std::env::set_current_dir(dir)
}
