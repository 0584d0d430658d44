//! Where a boot's files come from: the domain's disks and, when it boots
//! from the network, a server; both are file systems behind a device name
//! (`(hd0,1)`, `xbd0a`, `(tftp)`, `(http,10.0.0.1:8080)`), so configs,
//! `root=` and the menu name either the same way.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use pvboot::fs::FileSystem;
use pvboot::net::NetDevice;

use super::disks::{self, Disk};
use super::net::BootServer;

/// A file system, its name for messages and a device string the rest of
/// pvboot (the prompt, `root` of config entries) resolves back to it.
pub struct Found {
    /// The mounted file system.
    pub fs: Rc<dyn FileSystem>,
    /// `xvda1 (ffs2)`, `xvda (fat32)`, `xvda:a (ffs2)`, `tftp://10.0.0.1/`.
    pub name: String,
    /// `(hd0,msdos1)`, `(hd0,gpt2)`, `(hd0)` for a whole disk, `(tftp,10.0.0.1:69)`.
    pub device: String,
}

/// The domain's disks and, once started, its boot server.
pub struct Sources {
    /// The connected disks, xvda first.
    pub disks: Vec<Disk>,
    /// The boot server, when booting from the network.
    pub net: Option<BootServer>,
}

impl Sources {
    /// The boot server's files.
    pub fn server(&self) -> Option<Found> {
        self.net.as_ref().map(|n| Found { fs: n.fs.clone(), name: format!("{}", n.fs.base()), device: n.device.clone() })
    }

    /// Opens the volume `dev` names (`(hd0,1)`, `xvda1`, `xbd0a`, `(hd1)`,
    /// `(tftp)`...; a whole disk means its first file system).
    pub fn open_device(&self, dev: &str) -> Result<Found, String> {
        let Some(net) = NetDevice::parse(dev) else { return disks::open_device(&self.disks, dev) };
        let net = net.map_err(|e| format!("{dev}: {e}"))?;
        let server = self.net.as_ref().ok_or_else(|| format!("{dev}: pvboot did not boot from the network (netboot on the command line)"))?;
        let (fs, url) = server.open(&net).map_err(|e| format!("{dev}: {e}"))?;
        Ok(Found { fs, name: format!("{url}"), device: format!("{net}") })
    }

    /// The first volume whose file system `wanted` accepts: the disks',
    /// then the boot server's. The error names every place looked at.
    pub fn find(&self, wanted: impl Fn(&dyn FileSystem) -> Result<(), String>) -> Result<Found, String> {
        let mut looked = Vec::new();
        if let Some(f) = disks::find(&self.disks, &wanted, &mut looked) {
            return Ok(f);
        }
        if let Some(f) = self.server() {
            match wanted(&*f.fs) {
                Ok(()) => return Ok(f),
                Err(why) => looked.push(format!("{}: {why}", f.name)),
            }
        }
        if looked.is_empty() {
            return Err(String::from("the domain has no usable disk"));
        }
        Err(looked.join("; "))
    }

    /// Closes every frontend before the hand-off: the next kernel finds
    /// them Closed (Initialising again, once the backend resets) and
    /// connects them itself.
    pub fn close(&self) {
        for d in &self.disks {
            if let Err(e) = d.close() {
                guest_lib::println!("pvboot: closing {}: {e}", d.name);
            }
        }
        if let Some(n) = &self.net {
            if let Err(e) = n.close() {
                guest_lib::println!("pvboot: closing the network: {e}");
            }
        }
    }
}
