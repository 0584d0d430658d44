//! The domain's disks: every `device/vbd` through blkfront (xvda first),
//! each behind pvboot's metadata cache, their volumes by name, and the
//! search for a volume that holds a given file.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use guest_lib::blkdev::{self, BlkError};
use guest_lib::blkfront::{self, BlkFront, Config};
use pvboot::disk::{BlockDevice, Cache, DiskError};
use pvboot::fs::{self, FileSystem, FsError};
use pvboot::partition::{self, Entry, Kind};
use pvboot::ui::disks::resolve_device;
use pvboot::volume::{self, Volume};

/// A blkfront device as pvboot's [`BlockDevice`]: reads go straight into
/// the caller's buffer (blkfront grants its pages when sector-aligned).
pub struct XenDisk(pub BlkFront);

impl BlockDevice for XenDisk {
    fn sector_size(&self) -> u32 {
        blkdev::BlockDevice::sector_size(&self.0)
    }

    fn sector_count(&self) -> u64 {
        blkdev::BlockDevice::sector_count(&self.0)
    }

    fn read_sectors(&self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        blkdev::BlockDevice::read_sectors(&self.0, lba, buf).map_err(|e| {
            let ss = u64::from(self.sector_size());
            match e {
                BlkError::OutOfRange { lba, count, sectors } => DiskError::OutOfRange {
                    offset: lba.saturating_mul(ss),
                    len: count.saturating_mul(ss),
                    size: sectors.saturating_mul(ss),
                },
                BlkError::Unaligned => DiskError::Unaligned,
                e => DiskError::Io { lba: e.lba().unwrap_or(lba), errno: e.errno() },
            }
        })
    }
}

/// The shared handle every partition and file system of a disk reads through.
pub type DiskHandle = Rc<Cache<XenDisk>>;

/// One connected disk.
pub struct Disk {
    /// Its Xen name (`xvda`), or its vbd number when it has none.
    pub name: String,
    /// The cached device.
    pub cache: DiskHandle,
}

impl Disk {
    /// Closes the frontend (xenbus Closing -> Closed, grants ended).
    pub fn close(&self) -> Result<(), guest_lib::xenbus::XenbusError> {
        self.cache.device().0.close()
    }
}

/// `xvda` for 51712 (Xen's vdev numbering: 202 << 8 | disk << 4 | partition,
/// or 1 << 28 | disk << 8 | partition for disks past xvdp).
pub fn vbd_name(id: &str) -> String {
    let Ok(n) = id.parse::<u32>() else { return id.to_string() };
    let disk = if n >> 8 == 202 {
        (n >> 4) & 0xF
    } else if n >> 28 == 1 {
        (n >> 8) & 0xF_FFFF
    } else {
        return id.to_string();
    };
    // Spreadsheet-column letters: a..z, aa...
    let mut letters = Vec::new();
    let mut i = disk + 1;
    while i > 0 {
        i -= 1;
        letters.push(b'a' + (i % 26) as u8);
        i /= 26;
    }
    letters.reverse();
    format!("xvd{}", String::from_utf8_lossy(&letters))
}

/// Connects every disk of the domain, xvda first, then in vbd order.
/// Disks that fail to connect are reported as one line each and skipped.
pub fn discover() -> Vec<Disk> {
    let mut ids = match blkfront::list() {
        Ok(ids) => ids,
        Err(e) => {
            guest_lib::println!("pvboot: cannot list the domain's disks (device/vbd): {e}");
            return Vec::new();
        }
    };
    ids.sort_by_key(|id| (id != "51712", id.parse::<u64>().unwrap_or(u64::MAX)));
    let mut disks = Vec::new();
    for id in ids {
        let name = vbd_name(&id);
        let front = match BlkFront::open_id(&id, Config::default()) {
            Ok(f) => f,
            Err(e) => {
                guest_lib::println!("pvboot: {name}: cannot connect: {e}");
                continue;
            }
        };
        match Cache::new(XenDisk(front)) {
            Ok(cache) => disks.push(Disk { name, cache: Rc::new(cache) }),
            Err(e) => guest_lib::println!("pvboot: {name}: {e}"),
        }
    }
    disks
}

use super::sources::Found;

/// The name of a volume on `disk`.
pub fn volume_name(disk: &str, v: &Volume) -> String {
    match &v.entry {
        None => disk.to_string(),
        Some(e) => match (e.kind.clone(), e.netbsd_letter) {
            (Kind::Bsd(_), Some(l)) => format!("{disk}:{}", (b'a' + l) as char),
            _ => format!("{disk}{}", e.number),
        },
    }
}

fn found(disks: &[Disk], i: usize, v: Volume) -> Found {
    let name = format!("{} ({})", volume_name(&disks[i].name, &v), v.fs.kind());
    let device = match &v.entry {
        Some(e) => e.grub_name(&format!("hd{i}")),
        None => format!("(hd{i})"),
    };
    Found { fs: Rc::from(v.fs), name, device }
}

/// Opens the volume `dev` names (`(hd0,1)`, `xvda1`, `xbd0a`, `(hd1)`...;
/// a whole disk means its first file system).
pub fn open_device(disks: &[Disk], dev: &str) -> Result<Found, String> {
    let (i, part) = resolve_device(dev, disks.len())?;
    let d = &disks[i];
    let v = volume::open(d.cache.clone(), d.cache.sector_size(), part.as_deref()).map_err(|e| format!("{dev}: {e}"))?;
    Ok(found(disks, i, v))
}

/// The first volume (each disk's partitions in pvboot's order, then the
/// whole disk) whose file system `wanted` accepts (else it says why not,
/// in `looked`): GRUB's `search` by file, label or UUID.
pub fn find(disks: &[Disk], wanted: &dyn Fn(&dyn FileSystem) -> Result<(), String>, looked: &mut Vec<String>) -> Option<Found> {
    for (i, d) in disks.iter().enumerate() {
        let table = match partition::read_table(&*d.cache, d.cache.sector_size()) {
            Ok(t) => t,
            Err(e) => {
                looked.push(format!("{}: {e}", d.name));
                continue;
            }
        };
        let mut volumes: Vec<Option<Entry>> = volume::candidates(&table).into_iter().cloned().map(Some).collect();
        volumes.push(None);
        for entry in volumes {
            let mounted = match &entry {
                Some(e) => volume::window(d.cache.clone(), &table, e).map_err(FsError::from).and_then(fs::mount),
                None => fs::mount(d.cache.clone()),
            };
            let Ok(fs) = mounted else { continue };
            let f = found(disks, i, Volume { table: table.clone(), entry, fs });
            match wanted(&*f.fs) {
                Ok(()) => return Some(f),
                Err(why) => looked.push(format!("{}: {why}", f.name)),
            }
        }
    }
    None
}
