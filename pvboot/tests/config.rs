//! Boot-config parsing: menu.lst, boot.cfg, grub.cfg and the command line,
//! on realistic files (pv-grub's menu.lst, NetBSD's HOWTO boot.cfg lines,
//! the grub.cfg Debian bookworm's grub-mkconfig writes).

use std::time::{Duration, Instant};

use pvboot::config::cmdline::{self, EntryChoice};
use pvboot::config::{
    FileRef, Menu, ModuleRef, RootSpec, SearchBy, Syntax, CONFIG_PATHS, MAX_CONFIG_BYTES, MAX_DIAGNOSTICS,
    MAX_ENTRIES, MAX_MODULES, MAX_NESTING,
};
use pvboot::partition::Selector;

/// The time a 1 MiB / 100k-line parse may take: "well under a second" in a
/// release build (they take 30-90 ms), with room for an unoptimized build on
/// a loaded machine (0.1-0.5 s there). A quadratic parser takes minutes.
fn time_limit() -> Duration {
    Duration::from_millis(if cfg!(debug_assertions) { 4000 } else { 1000 })
}

fn file(device: Option<&str>, path: &str) -> FileRef {
    FileRef { device: device.map(str::to_string), path: path.to_string() }
}

fn module(path: &str, args: &str, decompress: bool) -> ModuleRef {
    ModuleRef { file: file(None, path), args: args.to_string(), decompress }
}

fn dev(d: &str) -> Option<RootSpec> {
    Some(RootSpec::Device(d.to_string()))
}

/// The diagnostics as `file:line: message` lines.
fn diags(m: &Menu) -> Vec<String> {
    m.diagnostics.iter().map(|d| d.to_string()).collect()
}

fn has_diag(m: &Menu, want: &str) -> bool {
    diags(m).iter().any(|d| d == want)
}

#[track_caller]
fn assert_diag(m: &Menu, want: &str) {
    assert!(has_diag(m, want), "missing diagnostic {want:?}; got {:#?}", diags(m));
}

/// Every device a parser produced must be one the partition selector reads.
fn assert_selectors(m: &Menu) {
    for e in &m.entries {
        if let Some(RootSpec::Device(d)) = &e.root {
            Selector::parse(d).unwrap_or_else(|err| panic!("{}: root {d}: {err}", e.title));
        }
        let files = e.kernel.iter().chain(e.modules.iter().map(|m| &m.file));
        for f in files {
            if let Some(d) = &f.device {
                Selector::parse(d).unwrap_or_else(|err| panic!("{}: {d}: {err}", e.title));
            }
        }
    }
}

// ---------------------------------------------------------------- menu.lst

const PVGRUB_MENU_LST: &str = "\
# menu.lst as Debian's update-grub wrote it for pv-grub
default\t\t1
timeout\t\t5
fallback 0 2
color cyan/blue white/blue
hiddenmenu

title\t\tDebian GNU/Linux, kernel 2.6.32-5-xen-amd64
root\t\t(hd0,0)
kernel\t\t/boot/vmlinuz-2.6.32-5-xen-amd64 root=/dev/xvda1 ro console=hvc0
initrd\t\t/boot/initrd.img-2.6.32-5-xen-amd64

title\t\tDebian GNU/Linux, kernel 2.6.32-5-xen-amd64 (single-user mode)
root\t\t(hd0,0)
kernel\t\t/boot/vmlinuz-2.6.32-5-xen-amd64 root=/dev/xvda1 ro single
initrd\t\t/boot/initrd.img-2.6.32-5-xen-amd64
boot

title Xen 4.17 / Debian
rootnoverify (hd0,1)
kernel --type=multiboot (hd0,0)/boot/xen.gz dom0_mem=1024M
module /boot/vmlinuz-6.1 root=/dev/sda2 ro
modulenounzip /boot/initrd.img-6.1
";

#[test]
fn menu_lst_pvgrub_example() {
    let m = Menu::parse("/boot/grub/menu.lst", PVGRUB_MENU_LST.as_bytes());
    assert_eq!(m.entries.len(), 3, "{:#?}", diags(&m));
    assert_eq!(m.default, 1);
    assert_eq!(m.timeout, Some(5));
    assert_eq!(m.fallback, [0, 2]);
    let e = &m.entries[0];
    assert_eq!(e.title, "Debian GNU/Linux, kernel 2.6.32-5-xen-amd64");
    assert_eq!(e.line, 8);
    // GRUB legacy counts partitions from 0: (hd0,0) is the first.
    assert_eq!(e.root, dev("(hd0,1)"));
    assert_eq!(e.kernel, Some(file(None, "/boot/vmlinuz-2.6.32-5-xen-amd64")));
    assert_eq!(e.args, "root=/dev/xvda1 ro console=hvc0");
    assert_eq!(e.modules, [module("/boot/initrd.img-2.6.32-5-xen-amd64", "", true)]);
    assert!(!e.multiboot);
    assert_eq!(m.entries[1].args, "root=/dev/xvda1 ro single");
    let x = &m.entries[2];
    assert_eq!(x.root, dev("(hd0,2)"));
    assert_eq!(x.kernel, Some(file(Some("(hd0,1)"), "/boot/xen.gz")));
    assert_eq!(x.args, "dom0_mem=1024M");
    assert!(x.multiboot);
    assert_eq!(
        x.modules,
        [module("/boot/vmlinuz-6.1", "root=/dev/sda2 ro", true), module("/boot/initrd.img-6.1", "", false)]
    );
    assert_diag(&m, "/boot/grub/menu.lst:5: 'color' ignored: pvboot's menu has its own colours");
    assert_diag(&m, "/boot/grub/menu.lst:6: 'hiddenmenu' ignored: pvboot always shows the menu");
    assert_eq!(m.diagnostics.len(), 2, "{:#?}", diags(&m));
    assert_eq!(m.boot_order(), [1, 0, 2]);
    assert_selectors(&m);
}

#[test]
fn menu_lst_equals_forms_saved_default_and_errors() {
    let text = "default=saved\ntimeout=10\nfallback=1,7\nsplashimage=(hd0,0)/grub/splash.xpm.gz\npassword --md5 x\n\
                serial --unit=0\nterminal serial\nkernel /early\nfrobnicate 1\ntitle A\nroot (fd0)\nkernel /a\n\
                title B\ninitrd /b.img\ntitle C\nkernel (hd0,0/c\ntimeout x\ndefault y\nchainloader +1\n";
    let m = Menu::parse("menu.lst", text.as_bytes());
    assert_eq!(m.entries.len(), 3);
    assert_eq!(m.default, 0);
    assert_eq!(m.timeout, Some(10));
    assert_eq!(m.fallback, [1]);
    for want in [
        "menu.lst:1: default saved: pvboot keeps no saved entry, using entry 0",
        "menu.lst:3: fallback entry 7 does not exist, ignored",
        "menu.lst:4: 'splashimage' ignored: the Xen console is text only",
        "menu.lst:5: 'password' ignored: pvboot has no menu password",
        "menu.lst:6: 'serial' ignored: pvboot uses the Xen console",
        "menu.lst:7: 'terminal' ignored: pvboot uses the Xen console",
        "menu.lst:8: 'kernel' outside a title entry, skipped",
        "menu.lst:9: unknown directive 'frobnicate', skipped",
        "menu.lst:11: root: device '(fd0)' is not a hard disk (hdN) pvboot can read, ignored",
        "menu.lst:14: 'initrd' before 'kernel'; GRUB would refuse it, pvboot keeps it",
        "menu.lst:13: entry 'B' has no kernel; it cannot boot",
        "menu.lst:16: kernel: '(hd0,0/c': missing ')', skipped",
        "menu.lst:15: entry 'C' has no kernel; it cannot boot",
        "menu.lst:17: timeout 'x' is not a number, ignored",
        "menu.lst:18: default 'y' is not an entry number, ignored",
        "menu.lst:19: chainloader is not supported by pvboot, skipped",
    ] {
        assert_diag(&m, want);
    }
    assert!(!m.entries[1].is_bootable() && !m.entries[2].is_bootable());
    // Only A can boot, whatever the default and fallbacks say.
    assert_eq!(m.boot_order(), [0]);
}

#[test]
fn menu_lst_default_out_of_range_global_root_and_whole_disk() {
    let text = "default 5\nroot (hd0,1)\ntitle one\nkernel /k\ntitle two\nroot (hd0)\nkernel /k2\ntitle three\nroot (hd1,0,a)\nkernel /k3\n";
    let m = Menu::parse("/grub/menu.lst", text.as_bytes());
    assert_eq!(m.default, 0);
    assert_diag(&m, "/grub/menu.lst:1: default entry 5 does not exist; using the first");
    assert_eq!(m.entries[0].root, dev("(hd0,2)"), "the global root applies");
    assert_diag(&m, "/grub/menu.lst:6: root (hd0): the whole disk; pvboot picks its volume itself");
    // (hd0) leaves the entry without root, so the global root applies.
    assert_eq!(m.entries[1].root, dev("(hd0,2)"));
    assert_eq!(m.entries[2].root, dev("(hd1,1,a)"));
    assert_eq!(m.timeout, None, "no timeout line: wait");
    assert_selectors(&m);
}

#[test]
fn menu_lst_kernel_replaces_and_module_limit() {
    let mut text = String::from("title t\nkernel /xen.gz\nmodule /a\nkernel /xen2.gz x\n");
    for i in 0..MAX_MODULES + 3 {
        text.push_str(&format!("module /m{i}\n"));
    }
    let m = Menu::parse("menu.lst", text.as_bytes());
    let e = &m.entries[0];
    assert_eq!(e.kernel, Some(file(None, "/xen2.gz")));
    assert_eq!(e.args, "x");
    assert_eq!(e.modules.len(), MAX_MODULES);
    assert_eq!(e.modules[0].file.path, "/m0");
    assert_diag(&m, "menu.lst:4: a second kernel replaces the first (and its modules)");
    assert_diag(&m, &format!("menu.lst:{}: more than {MAX_MODULES} modules, '/m{MAX_MODULES}' skipped", 5 + MAX_MODULES));
}

// ---------------------------------------------------------------- boot.cfg

/// NetBSD 10's default boot.cfg plus the Xen HOWTO's lines.
const NETBSD_BOOT_CFG: &str = "\
banner=Welcome to NetBSD
banner================================================================================
banner=
menu=Boot normally:rndseed /var/db/entropy-file;boot netbsd
menu=Boot single user:rndseed /var/db/entropy-file;boot netbsd -s
menu=Disable ACPI:rndseed /var/db/entropy-file;modules off;boot netbsd -2
menu=Drop to boot prompt:prompt
menu=Xen:load /netbsd-XEN3_DOM0.gz console=pc;multiboot /xen.gz dom0_mem=512M
menu=Xen on hd0e:dev hd0e:;load netbsd-XEN3_DOM0 root=xbd0a;multiboot hd0a:/xen.gz dom0_mem=256M;boot netbsd
menu=:boot xbd1a:/onetbsd
default=5
timeout=-1
clear=1
consdev=pc
";

#[test]
fn boot_cfg_netbsd_examples() {
    let m = Menu::parse("/boot.cfg", NETBSD_BOOT_CFG.as_bytes());
    assert_eq!(m.banner, ["Welcome to NetBSD", "=".repeat(79).as_str(), ""]);
    assert_eq!(m.entries.len(), 7, "{:#?}", diags(&m));
    assert_eq!(m.default, 4, "default=5 is 1-based");
    assert_eq!(m.timeout, None, "timeout=-1 waits");
    let normal = &m.entries[0];
    assert_eq!(normal.title, "Boot normally");
    assert_eq!(normal.line, 4);
    assert_eq!(normal.root, None, "the boot.cfg's own partition");
    assert_eq!(normal.kernel, Some(file(None, "/netbsd")));
    assert_eq!(normal.args, "");
    assert_diag(&m, "/boot.cfg:4: 'rndseed' ignored: pvboot passes no entropy file");
    assert_eq!(m.entries[1].args, "-s");
    assert_eq!(m.entries[2].args, "-2");
    assert_diag(&m, "/boot.cfg:6: 'modules' ignored: pvboot loads the modules an entry names");
    assert!(!m.entries[3].is_bootable());
    assert_diag(&m, "/boot.cfg:7: 'prompt' drops to NetBSD's boot prompt; pvboot's prompt is 'c' in the menu");
    assert_diag(&m, "/boot.cfg:7: menu 'Drop to boot prompt' has no boot or multiboot command; it cannot boot");
    assert!(!has_diag(&m, "/boot.cfg:7: entry 'Drop to boot prompt' has no kernel; it cannot boot"), "reported once");
    let xen = &m.entries[4];
    assert_eq!(xen.title, "Xen");
    assert!(xen.multiboot);
    assert_eq!(xen.kernel, Some(file(None, "/xen.gz")));
    assert_eq!(xen.args, "dom0_mem=512M");
    assert_eq!(xen.modules, [module("/netbsd-XEN3_DOM0.gz", "console=pc", false)]);
    let hd0e = &m.entries[5];
    assert_eq!(hd0e.modules[0].file, file(Some("hd0e"), "/netbsd-XEN3_DOM0"));
    assert_eq!(hd0e.modules[0].args, "root=xbd0a");
    assert_eq!(hd0e.kernel, Some(file(Some("hd0a"), "/xen.gz")));
    assert_diag(&m, "/boot.cfg:9: 'boot netbsd' after the kernel starts never runs, ignored");
    let bare = &m.entries[6];
    assert_eq!(bare.title, "boot xbd1a:/onetbsd", "an empty label shows the commands");
    assert_eq!(bare.kernel, Some(file(Some("xbd1a"), "/onetbsd")));
    assert_diag(&m, "/boot.cfg:14: consdev ignored: pvboot uses the Xen console");
    assert_selectors(&m);
}

#[test]
fn boot_cfg_errors_and_global_load() {
    let text = "menu=nolabel\nload=/stand/solaris.kmod\nfoo=bar\njunk line\ndefault=0\ntimeout=abc\n\
                menu=Wedge:boot NAME=root:netbsd\nmenu=Dev only:boot hd0:\nmenu=Userconf:userconf disable ath*;boot\n\
                userconf=disable ath*\nmenu=Bad dev:dev zz:;boot netbsd\nmenu=Unknown:frob;boot\n";
    let m = Menu::parse("boot.cfg", text.as_bytes());
    for want in [
        "boot.cfg:1: menu without ':' between label and commands, skipped",
        "boot.cfg:3: unknown directive 'foo', skipped",
        "boot.cfg:4: 'junk line' is not keyword=value, skipped",
        "boot.cfg:5: default '0' is not a menu number (1, 2, ...); using the first",
        "boot.cfg:6: timeout 'abc' is not a number; waiting for a choice, as NetBSD's boot does",
        "boot.cfg:7: device 'NAME=root': wedge names are not supported, use hd0a-style names",
        "boot.cfg:7: entry 'Wedge' has no kernel; it cannot boot",
        "boot.cfg:9: 'userconf' ignored: pvboot passes no userconf commands",
        "boot.cfg:10: userconf ignored: pvboot passes no userconf commands",
        "boot.cfg:12: unknown command 'frob' in menu 'Unknown', skipped",
    ] {
        assert_diag(&m, want);
    }
    assert!(diags(&m).iter().any(|d| d.starts_with("boot.cfg:11: device 'zz': bad partition name")), "{:#?}", diags(&m));
    assert_eq!(m.entries.len(), 5);
    // `hd0:` is partition a; `boot` alone is netbsd; global loads come first.
    assert_eq!(m.entries[1].kernel, Some(file(Some("hd0a"), "/netbsd")));
    assert_eq!(m.entries[2].kernel, Some(file(None, "/netbsd")));
    for e in &m.entries {
        assert_eq!(e.modules.first(), Some(&module("/stand/solaris.kmod", "", false)), "{}", e.title);
    }
    assert_eq!(m.timeout, None);
    assert_selectors(&m);
}

#[test]
fn boot_cfg_without_menu_boots_netbsd() {
    let m = Menu::parse("/boot.cfg", b"banner=Hi # a comment\ntimeout=3\n");
    assert_eq!(m.entries.len(), 1);
    assert_eq!(m.banner, ["Hi "]);
    assert_eq!(m.entries[0].kernel, Some(file(None, "/netbsd")));
    assert_eq!(m.timeout, Some(3));
    assert_diag(&m, "/boot.cfg:0: no menu= lines: the menu has one entry booting /netbsd");
    // No timeout line: NetBSD's default of 10 seconds.
    let m = Menu::parse("/boot.cfg", b"menu=A:boot\nmenu=B:boot netbsd.old # old kernel\ndefault=7\n");
    assert_eq!(m.timeout, Some(10));
    assert_eq!(m.entries[1].kernel, Some(file(None, "/netbsd.old")));
    assert_eq!(m.entries[1].args, "");
    assert_eq!(m.default, 1, "clamped to the last, as bootcfg.c does");
    assert_diag(&m, "/boot.cfg:3: default entry 7 does not exist; using the last (2)");
}

// ---------------------------------------------------------------- grub.cfg

const UUID: &str = "8a1b6c4e-2f3d-4e5a-9b7c-0d1e2f3a4b5c";

/// What Debian bookworm's grub-mkconfig writes (00_header, 05_debian_theme,
/// 10_linux with its Advanced submenu, 20_linux_xen, 30_uefi-firmware,
/// 40_custom, 41_custom), for a single ext4 root on (hd0,msdos1).
fn debian_grub_cfg() -> String {
    r#"#
# DO NOT EDIT THIS FILE
#
# It is automatically generated by grub-mkconfig using templates
# from /etc/grub.d and settings from /etc/default/grub
#

### BEGIN /etc/grub.d/00_header ###
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi

if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi

export menuentry_id_option

if [ "${prev_saved_entry}" ]; then
  set saved_entry="${prev_saved_entry}"
  save_env saved_entry
  set prev_saved_entry=
  save_env prev_saved_entry
  set boot_once=true
fi

function savedefault {
  if [ -z "${boot_once}" ]; then
    saved_entry="${chosen}"
    save_env saved_entry
  fi
}
function load_video {
  if [ x$feature_all_video_module = xy ]; then
    insmod all_video
  else
    insmod efi_gop
    insmod efi_uga
    insmod ieee1275_fb
    insmod vbe
    insmod vga
    insmod video_bochs
    insmod video_cirrus
  fi
}

if [ x$feature_default_font_path = xy ] ; then
   font=unicode
else
insmod part_msdos
insmod ext2
set root='hd0,msdos1'
if [ x$feature_platform_search_hint = xy ]; then
  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,msdos1 --hint-efi=hd0,msdos1 --hint-baremetal=ahci0,msdos1  UUID
else
  search --no-floppy --fs-uuid --set=root UUID
fi
    font="/usr/share/grub/unicode.pf2"
fi

if loadfont $font ; then
  set gfxmode=auto
  load_video
  insmod gfxterm
  set locale_dir=$prefix/locale
  set lang=en_US
  insmod gettext
fi
terminal_output gfxterm
if [ "${recordfail}" = 1 ] ; then
  set timeout=30
else
  if [ x$feature_timeout_style = xy ] ; then
    set timeout_style=menu
    set timeout=5
  # Fallback normal timeout code in case the timeout_style feature is
  # unavailable.
  else
    set timeout=5
  fi
fi
### END /etc/grub.d/00_header ###

### BEGIN /etc/grub.d/05_debian_theme ###
insmod part_msdos
insmod ext2
set root='hd0,msdos1'
if [ x$feature_platform_search_hint = xy ]; then
  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,msdos1 --hint-efi=hd0,msdos1 --hint-baremetal=ahci0,msdos1  UUID
else
  search --no-floppy --fs-uuid --set=root UUID
fi
insmod png
if background_image /usr/share/desktop-base/emerald-theme/grub/grub-4x3.png; then
  set color_normal=white/black
  set color_highlight=black/white
else
  set menu_color_normal=cyan/blue
  set menu_color_highlight=white/blue
fi
### END /etc/grub.d/05_debian_theme ###

### BEGIN /etc/grub.d/10_linux ###
function gfxmode {
	set gfxpayload="${1}"
}
set linux_gfx_mode=
export linux_gfx_mode
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-UUID' {
	load_video
	insmod gzio
	if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
	insmod part_msdos
	insmod ext2
	set root='hd0,msdos1'
	if [ x$feature_platform_search_hint = xy ]; then
	  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,msdos1 --hint-efi=hd0,msdos1 --hint-baremetal=ahci0,msdos1  UUID
	else
	  search --no-floppy --fs-uuid --set=root UUID
	fi
	echo	'Loading Linux 6.1.0-13-amd64 ...'
	linux	/boot/vmlinuz-6.1.0-13-amd64 root=UUID=UUID ro  quiet
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-6.1.0-13-amd64
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-UUID' {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-13-amd64' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-6.1.0-13-amd64-advanced-UUID' {
		load_video
		insmod gzio
		if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
		insmod part_msdos
		insmod ext2
		set root='hd0,msdos1'
		if [ x$feature_platform_search_hint = xy ]; then
		  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,msdos1 --hint-efi=hd0,msdos1 --hint-baremetal=ahci0,msdos1  UUID
		else
		  search --no-floppy --fs-uuid --set=root UUID
		fi
		echo	'Loading Linux 6.1.0-13-amd64 ...'
		linux	/boot/vmlinuz-6.1.0-13-amd64 root=UUID=UUID ro  quiet
		echo	'Loading initial ramdisk ...'
		initrd	/boot/initrd.img-6.1.0-13-amd64
	}
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-13-amd64 (recovery mode)' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-6.1.0-13-amd64-recovery-UUID' {
		load_video
		insmod gzio
		if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
		insmod part_msdos
		insmod ext2
		set root='hd0,msdos1'
		if [ x$feature_platform_search_hint = xy ]; then
		  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,msdos1 --hint-efi=hd0,msdos1 --hint-baremetal=ahci0,msdos1  UUID
		else
		  search --no-floppy --fs-uuid --set=root UUID
		fi
		echo	'Loading Linux 6.1.0-13-amd64 ...'
		linux	/boot/vmlinuz-6.1.0-13-amd64 root=UUID=UUID ro single 
		echo	'Loading initial ramdisk ...'
		initrd	/boot/initrd.img-6.1.0-13-amd64
	}
}

### END /etc/grub.d/10_linux ###

### BEGIN /etc/grub.d/20_linux_xen ###

submenu 'Debian GNU/Linux, with Xen hypervisor' $menuentry_id_option 'gnulinux-xen-UUID' {
	menuentry 'Debian GNU/Linux, with Xen 4.17-amd64.efi and Linux 6.1.0-13-amd64' --class debian --class gnu-linux --class gnu --class os --class xen $menuentry_id_option 'xen-gnulinux-simple-UUID' {
		insmod part_msdos
		insmod ext2
		set root='hd0,msdos1'
		search --no-floppy --fs-uuid --set=root UUID
		echo	'Loading Xen 4.17-amd64.efi ...'
	if [ "$grub_platform" = "pc" -o "$grub_platform" = "" ]; then
	    xen_rm_opts=
	else
	    xen_rm_opts="no-real-mode edd=off"
	fi
		multiboot2	/boot/xen-4.17-amd64.gz placeholder   ${xen_rm_opts}
		echo	'Loading Linux 6.1.0-13-amd64 ...'
		module2	/boot/vmlinuz-6.1.0-13-amd64 placeholder root=UUID=UUID ro  quiet
		echo	'Loading initial ramdisk ...'
		module2	--nounzip   /boot/initrd.img-6.1.0-13-amd64
	}
}

### END /etc/grub.d/20_linux_xen ###

### BEGIN /etc/grub.d/30_os-prober ###
### END /etc/grub.d/30_os-prober ###

### BEGIN /etc/grub.d/30_uefi-firmware ###
if [ "$grub_platform" = "efi" ]; then
	fwsetup --is-supported
	if [ "$?" = 0 ]; then
		menuentry 'UEFI Firmware Settings' $menuentry_id_option 'uefi-firmware' {
			fwsetup
		}
	fi
fi
### END /etc/grub.d/30_uefi-firmware ###

### BEGIN /etc/grub.d/40_custom ###
# This file provides an easy way to add custom menu entries.  Simply type the
# menu entries you want to add after this comment.  Be careful not to change
# the 'exec tail' line above.
### END /etc/grub.d/40_custom ###

### BEGIN /etc/grub.d/41_custom ###
if [ -f  ${config_directory}/custom.cfg ]; then
  source ${config_directory}/custom.cfg
elif [ -z "${config_directory}" -a -f  $prefix/custom.cfg ]; then
  source $prefix/custom.cfg
fi
### END /etc/grub.d/41_custom ###
"#
    .replace("UUID=UUID", &format!("UUID={UUID}"))
    .replace("-UUID'", &format!("-{UUID}'"))
    .replace("  UUID\n", &format!("  {UUID}\n"))
    .replace("root UUID\n", &format!("root {UUID}\n"))
}

#[test]
fn grub_cfg_debian_bookworm() {
    let text = debian_grub_cfg();
    let m = Menu::parse("/boot/grub/grub.cfg", text.as_bytes());
    let titles: Vec<&str> = m.entries.iter().map(|e| e.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Debian GNU/Linux",
            "Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1.0-13-amd64",
            "Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1.0-13-amd64 (recovery mode)",
            "Debian GNU/Linux, with Xen hypervisor>Debian GNU/Linux, with Xen 4.17-amd64.efi and Linux 6.1.0-13-amd64",
        ],
        "{:#?}",
        diags(&m)
    );
    assert_eq!(m.default, 0);
    assert_eq!(m.timeout, Some(5));
    let search = Some(RootSpec::Search { by: SearchBy::FsUuid, value: UUID.to_string() });
    let e = &m.entries[0];
    assert_eq!(e.id.as_deref(), Some(format!("gnulinux-simple-{UUID}").as_str()));
    assert_eq!(e.root, search);
    assert_eq!(e.kernel, Some(file(None, "/boot/vmlinuz-6.1.0-13-amd64")));
    assert_eq!(e.args, format!("root=UUID={UUID} ro quiet"));
    assert_eq!(e.modules, [module("/boot/initrd.img-6.1.0-13-amd64", "", false)]);
    assert!(!e.multiboot);
    assert_eq!(m.entries[2].args, format!("root=UUID={UUID} ro single"));
    assert_eq!(m.entries[2].id.as_deref(), Some(format!("gnulinux-6.1.0-13-amd64-recovery-{UUID}").as_str()));
    let xen = &m.entries[3];
    assert!(xen.multiboot);
    assert_eq!(xen.kernel, Some(file(None, "/boot/xen-4.17-amd64.gz")));
    // grub_platform is xen: the else branch sets the options.
    assert_eq!(xen.args, "placeholder no-real-mode edd=off");
    assert_eq!(
        xen.modules,
        [
            module("/boot/vmlinuz-6.1.0-13-amd64", &format!("placeholder root=UUID={UUID} ro quiet"), true),
            module("/boot/initrd.img-6.1.0-13-amd64", "", false),
        ]
    );
    // The ifs pvboot cannot evaluate are named, with their lines; nothing else.
    let f = "/boot/grub/grub.cfg";
    let want = [
        format!("{f}:9: cannot evaluate 'if [ -s /grubenv ]', the whole if is skipped"),
        format!("{f}:72: cannot evaluate 'if loadfont /usr/share/grub/unicode.pf2', the whole if is skipped"),
        format!("{f}:105: cannot evaluate 'if background_image /usr/share/desktop-base/emerald-theme/grub/grub-4x3.png', the whole if is skipped"),
        format!("{f}:221: cannot evaluate 'if [ -f /custom.cfg ]', the whole if is skipped"),
    ];
    assert_eq!(diags(&m), want, "{:#?}", diags(&m));
}

#[test]
fn grub_cfg_default_by_title_id_and_path() {
    let base = debian_grub_cfg();
    for (set, want) in [
        ("set default=2", 2),
        ("set default='Debian GNU/Linux'", 0),
        (
            "set default='Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1.0-13-amd64 (recovery mode)'",
            2,
        ),
        (&*format!("set default=gnulinux-6.1.0-13-amd64-advanced-{UUID}"), 1),
        (&*format!("set default='gnulinux-advanced-{UUID}>gnulinux-6.1.0-13-amd64-recovery-{UUID}'"), 2),
    ] {
        let text = format!("{base}{set}\n");
        let m = Menu::parse("grub.cfg", text.as_bytes());
        assert_eq!(m.default, want, "{set}");
    }
    let m = Menu::parse("grub.cfg", format!("{base}set default=nosuch\n").as_bytes());
    assert_eq!(m.default, 0);
    assert!(has_diag(&m, "grub.cfg:227: default entry 'nosuch' not found; using the first"), "{:#?}", diags(&m));
    let m = Menu::parse("grub.cfg", format!("{base}set default=9\n").as_bytes());
    assert_diag(&m, "grub.cfg:227: default entry 9 does not exist; using the first");
}

#[test]
fn grub_cfg_variables_devices_and_searches() {
    let text = r#"set timeout=-1
set kver=6.1.0-13
set dir="/boot"
set opts='console=hvc0  earlyprintk=xen'
set root=(hd0,gpt2)
menuentry "Vars $kver" {
  linux ${dir}/vmlinuz-$kver root=/dev/xvda2 $opts "quoted  arg" it\'s
  initrd $dir/initrd.img-${kver} /boot/microcode.img
}
menuentry 'Device paths' {
  linux (hd0,msdos1)/vmlinuz
  initrd ($root)/initrd
}
menuentry 'Search by label' --id lbl {
  search --label --set my-root
  linux ($root)/vmlinuz
}
menuentry 'search.file' {
  search.file /boot/marker root hd0,gpt2
  linux /vmlinuz
}
menuentry 'search.fs_label' {
  search.fs_label ROOT
  linux /vmlinuz
}
menuentry 'search.fs_uuid and set root' {
  search.fs_uuid 1234-ABCD
  set root=hd0,msdos3
  linux /vmlinuz
}
menuentry 'search default kind' {
  search -s --no-floppy /etc/hostname
  linux16 /vmlinuz
  initrd16 /a /b
}
menuentry 'after the entries' {
  linuxefi /vmlinuz
}
"#;
    let m = Menu::parse("grub.cfg", text.as_bytes());
    assert_eq!(m.timeout, None);
    assert!(m.diagnostics.is_empty(), "{:#?}", diags(&m));
    let e = &m.entries[0];
    assert_eq!(e.title, "Vars 6.1.0-13");
    assert_eq!(e.root, dev("(hd0,gpt2)"));
    assert_eq!(e.kernel, Some(file(None, "/boot/vmlinuz-6.1.0-13")));
    assert_eq!(e.args, "root=/dev/xvda2 console=hvc0 earlyprintk=xen quoted  arg it's");
    assert_eq!(e.modules, [module("/boot/initrd.img-6.1.0-13", "", false), module("/boot/microcode.img", "", false)]);
    let d = &m.entries[1];
    assert_eq!(d.kernel, Some(file(Some("(hd0,msdos1)"), "/vmlinuz")));
    assert_eq!(d.modules[0].file, file(Some("(hd0,gpt2)"), "/initrd"));
    let l = &m.entries[2];
    assert_eq!(l.id.as_deref(), Some("lbl"));
    assert_eq!(l.root, Some(RootSpec::Search { by: SearchBy::Label, value: "my-root".into() }));
    assert_eq!(l.kernel, Some(file(None, "/vmlinuz")), "($root) after a search is the entry's root");
    assert_eq!(m.entries[3].root, Some(RootSpec::Search { by: SearchBy::File, value: "/boot/marker".into() }));
    assert_eq!(m.entries[4].root, Some(RootSpec::Search { by: SearchBy::Label, value: "ROOT".into() }));
    assert_eq!(m.entries[5].root, dev("(hd0,msdos3)"), "the later set root wins");
    assert_eq!(m.entries[6].root, Some(RootSpec::Search { by: SearchBy::File, value: "/etc/hostname".into() }));
    assert_eq!(m.entries[6].modules.len(), 2);
    // Searches inside entries do not leak: the global root is back.
    assert_eq!(m.entries[7].root, dev("(hd0,gpt2)"));
    assert_selectors(&m);
}

#[test]
fn grub_cfg_errors_are_reported_with_lines() {
    let text = r#"frobnicate now
linux /outside
menuentry 'No kernel' {
  initrd /i
}
menuentry 'Bad device' {
  linux (lvm/vg-root)/vmlinuz
  set root=(md/0)
}
menuentry 'Chain' {
  chainloader +1
  configfile /other.cfg
}
while true; do
  menuentry 'in loop' { linux /x; }
done
if [ a = b ] ; then
  fi
fi
}
search --file
search -u 1234 --set=other
search -u 1234
menuentry 'Opts' --users bob --hotkey=x --weird {
  multiboot --quirk-bad-kludge /xen.gz
  module --nounzip /m1 a b
  module /m2 c
  module2 --frob /m3
}
menuentry {
  linux /v
}
menuentry 'no brace'
set timeout=soon
set 9x=1
"#;
    let m = Menu::parse("g.cfg", text.as_bytes());
    for want in [
        "g.cfg:0: not a known config file name; read as grub.cfg",
        "g.cfg:1: unknown directive 'frobnicate', skipped",
        "g.cfg:2: 'linux' outside a menuentry, skipped",
        "g.cfg:4: 'initrd' before the kernel; GRUB would refuse it, pvboot keeps it",
        "g.cfg:3: entry 'No kernel' has no kernel; it cannot boot",
        "g.cfg:7: linux: device '(lvm/vg-root)' is not a hard disk (hdN) pvboot can read, skipped",
        "g.cfg:8: root: device 'md/0' is not a hard disk (hdN) pvboot can read, ignored",
        "g.cfg:6: entry 'Bad device' has no kernel; it cannot boot",
        "g.cfg:11: chainloader is not supported by pvboot, skipped",
        "g.cfg:12: 'configfile' is not followed; name the file with config= on the command line",
        "g.cfg:14: loops are not supported, skipped",
        "g.cfg:19: 'fi' without an open block, skipped",
        "g.cfg:20: '}' without an open block, skipped",
        "g.cfg:21: search without a key, skipped",
        "g.cfg:22: search --set=other: only root is used, skipped",
        "g.cfg:23: search without --set does nothing, skipped",
        "g.cfg:24: menuentry option '--hotkey=x' ignored",
        "g.cfg:24: menuentry option '--weird' ignored",
        "g.cfg:28: module2 option '--frob' ignored",
        "g.cfg:30: menuentry without a title",
        "g.cfg:33: 'menuentry' without '{' at the end of its line, skipped",
        "g.cfg:34: timeout 'soon' is not a number, ignored",
        "g.cfg:35: bad variable name '9x', skipped",
    ] {
        assert_diag(&m, want);
    }
    let titles: Vec<&str> = m.entries.iter().map(|e| e.title.as_str()).collect();
    assert_eq!(titles, ["No kernel", "Bad device", "Chain", "Opts", "(untitled)"]);
    let o = &m.entries[3];
    assert!(o.multiboot);
    assert_eq!(o.kernel, Some(file(None, "/xen.gz")));
    assert_eq!(o.modules, [module("/m1", "a b", false), module("/m2", "c", true), module("/m3", "", true)]);
    assert_eq!(m.boot_order(), Vec::<usize>::new(), "default 0 has no kernel and there is no fallback");
}

#[test]
fn grub_cfg_unclosed_blocks_and_quotes() {
    let m = Menu::parse("grub.cfg", b"menuentry 'A' {\n  linux /a\n  if [ a = a ]; then\n    initrd '/unterminated\n");
    assert_diag(&m, "grub.cfg:4: quote not closed before the end of the file");
    assert_diag(&m, "grub.cfg:3: block not closed before the end of the file");
    assert_diag(&m, "grub.cfg:1: block not closed before the end of the file");
    assert_eq!(m.entries.len(), 1);
    assert_eq!(m.entries[0].kernel, Some(file(None, "/a")));
    assert_eq!(m.entries[0].modules[0].file.path, "/unterminated\n");
    let m = Menu::parse("grub.cfg", b"menuentry 'A' {\n  if true; then\n}\nmenuentry B { linux /b; }\n");
    assert_diag(&m, "grub.cfg:2: cannot evaluate 'if true', the whole if is skipped");
    assert_diag(&m, "grub.cfg:2: block not closed before '}'");
    assert_eq!(m.entries.len(), 2);
    assert_eq!(m.entries[1].kernel, Some(file(None, "/b")));
}

#[test]
fn grub_cfg_scopes_submenus_and_functions() {
    let text = r#"set k=/outer
function setup {
  set timeout=99
  menuentry 'never' { linux /never; }
}
setup
submenu 'A' {
  set k=/in-a
  set root=hd0,gpt3
  submenu "B" --id b {
    menuentry 'C' --id c { linux $k; }
  }
  menuentry 'D' { linux $k; set k=/changed; initrd $k; }
  menuentry 'E' { linux $k; }
}
menuentry 'F' { linux $k; }
set default=b>c
"#;
    let m = Menu::parse("grub.cfg", text.as_bytes());
    assert!(m.diagnostics.is_empty(), "{:#?}", diags(&m));
    assert_eq!(m.timeout, None, "function bodies do not run");
    let got: Vec<(&str, &str, Option<RootSpec>)> = m
        .entries
        .iter()
        .map(|e| (e.title.as_str(), e.kernel.as_ref().unwrap().path.as_str(), e.root.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("A>B>C", "/in-a", dev("(hd0,gpt3)")),
            ("A>D", "/in-a", dev("(hd0,gpt3)")),
            ("A>E", "/in-a", dev("(hd0,gpt3)")),
            ("F", "/outer", None),
        ]
    );
    assert_eq!(m.entries[1].modules[0].file.path, "/changed", "a set inside an entry applies to its later lines");
    assert_eq!(m.default, 0, "default by id path");
}

#[test]
fn grub_cfg_variables_are_bounded() {
    let mut text = String::new();
    for i in 0..pvboot::config::MAX_VARIABLES + 10 {
        text.push_str(&format!("set v{i}=x\n"));
    }
    text.push_str("menuentry t { linux /k; }\n");
    let m = Menu::parse("grub.cfg", text.as_bytes());
    // The preset variables count too.
    let first_refused = diags(&m).into_iter().next().expect("a diagnostic");
    assert!(first_refused.ends_with("' not set"), "{first_refused}");
    assert!(first_refused.contains(&format!("more than {} variables", pvboot::config::MAX_VARIABLES)));
    assert_eq!(m.entries.len(), 1);
}

#[test]
fn grub_cfg_if_elif_else() {
    let text = "set a=2\nif [ $a = 1 ]; then\n set timeout=1\nelif [ \"$a\" == 2 ]; then\n set timeout=2\nelse\n set timeout=3\nfi\n\
                if ! [ -n \"$a\" ]; then set default=1; elif test -z \"\"; then set default=2; fi\n\
                if [ $a != 2 ]; then set timeout=9; fi\n\
                menuentry a { linux /a; }\nmenuentry b { linux /b; }\nmenuentry c { linux /c; }\n";
    let m = Menu::parse("grub.cfg", text.as_bytes());
    assert!(m.diagnostics.is_empty(), "{:#?}", diags(&m));
    assert_eq!(m.timeout, Some(2));
    assert_eq!(m.default, 2);
}

#[test]
fn grub_cfg_nesting_is_bounded() {
    let mut text = String::new();
    for _ in 0..MAX_NESTING + 10 {
        text.push_str("if [ a = a ]; then\n");
    }
    text.push_str("set timeout=7\n");
    for _ in 0..MAX_NESTING + 10 {
        text.push_str("fi\n");
    }
    text.push_str("menuentry after { linux /after; }\n");
    let m = Menu::parse("grub.cfg", text.as_bytes());
    assert_diag(&m, &format!("grub.cfg:{}: blocks nested deeper than {MAX_NESTING}, skipped", MAX_NESTING + 1));
    assert_eq!(m.timeout, None, "the too-deep body is skipped");
    assert_eq!(m.entries.len(), 1, "parsing goes on after the deep blocks close");
    assert_eq!(m.diagnostics.len(), 1);
}

#[test]
fn grub_cfg_expansion_is_bounded() {
    // Each line doubles $a: without limits it would need 2^40 bytes.
    let mut text = String::from("set a=0123456789abcdef\n");
    for _ in 0..40 {
        text.push_str("set a=$a$a\n");
    }
    text.push_str("menuentry x { linux /x $a; }\n");
    for _ in 0..2000 {
        text.push_str("set b=$a\n");
    }
    let start = Instant::now();
    let m = Menu::parse("grub.cfg", text.as_bytes());
    assert!(start.elapsed() < time_limit(), "{:?}", start.elapsed());
    assert!(m.entries[0].args.len() <= pvboot::config::MAX_VALUE_BYTES);
    assert_diag(&m, "grub.cfg:13: variable expansion too large; expanded as empty");
}

/// Inputs that would make a naive lexer rescan: unclosed `${`, quotes, braces.
#[test]
fn grub_cfg_pathological_lines_are_linear() {
    for unit in ["${", "$", "'", "\"", "{ ", "} ", "if [ a = a ]; then ", "\\"] {
        let text = unit.repeat(MAX_CONFIG_BYTES / unit.len());
        let start = Instant::now();
        let m = Menu::parse("grub.cfg", text.as_bytes());
        let took = start.elapsed();
        eprintln!("{unit:?} x {}: {took:?}", text.len() / unit.len());
        assert!(took < time_limit(), "{unit:?}: {took:?}");
        assert!(m.entries.is_empty());
    }
}

// ---------------------------------------------------------------- all parsers

#[test]
fn file_names_choose_the_parser() {
    assert_eq!(Syntax::from_path("/boot/grub/menu.lst"), Some(Syntax::MenuLst));
    assert_eq!(Syntax::from_path("/boot/grub/grub.conf"), Some(Syntax::MenuLst));
    assert_eq!(Syntax::from_path("/boot.cfg"), Some(Syntax::BootCfg));
    assert_eq!(Syntax::from_path("/grub/grub.cfg"), Some(Syntax::GrubCfg));
    assert_eq!(Syntax::from_path("/etc/other"), None);
    assert_eq!(
        CONFIG_PATHS,
        ["/boot/grub/menu.lst", "/grub/menu.lst", "/boot.cfg", "/boot/grub/grub.cfg", "/grub/grub.cfg"]
    );
    for p in CONFIG_PATHS {
        assert!(Syntax::from_path(p).is_some(), "{p}");
    }
    // Other names: guessed from the contents, with a note.
    let m = Menu::parse("/x/custom", b"menu=A:boot netbsd\n");
    assert_eq!(m.entries[0].kernel, Some(file(None, "/netbsd")));
    assert_diag(&m, "/x/custom:0: not a known config file name; read as boot.cfg");
    let m = Menu::parse("/x/custom", b"title t\nkernel /k\n");
    assert_diag(&m, "/x/custom:0: not a known config file name; read as menu.lst");
    assert_eq!(m.entries[0].kernel, Some(file(None, "/k")));
}

#[test]
fn oversized_and_non_utf8_files() {
    let big = vec![b'#'; MAX_CONFIG_BYTES + 1];
    for name in CONFIG_PATHS {
        let m = Menu::parse(name, &big);
        assert!(m.entries.is_empty());
        assert_eq!(
            diags(&m),
            [format!("{name}:0: file is {} bytes, over the {MAX_CONFIG_BYTES}-byte limit; not read", MAX_CONFIG_BYTES + 1)]
        );
    }
    // A Latin-1 title and raw bytes: read as U+FFFD, never a panic.
    let m = Menu::parse("menu.lst", b"title Caf\xe9 \xff\xfe\ncolor \x80\x81\nkernel /vmlinuz\n");
    assert_eq!(m.entries[0].title, "Caf\u{fffd} \u{fffd}\u{fffd}");
    let m = Menu::parse("grub.cfg", b"menuentry '\xc3' { linux /\xff\xfe; }\n");
    assert_eq!(m.entries[0].kernel, Some(file(None, "/\u{fffd}\u{fffd}")));
    let m = Menu::parse("boot.cfg", b"menu=\xf0\x9f:boot \xf0\n");
    assert_eq!(m.entries.len(), 1);
    // A byte-order mark and CRLF line ends.
    let m = Menu::parse("menu.lst", b"\xef\xbb\xbftimeout 3\r\ntitle T\r\nkernel /k a\r\n");
    assert!(m.diagnostics.is_empty(), "{:?}", diags(&m));
    assert_eq!((m.timeout, m.entries[0].title.as_str(), m.entries[0].args.as_str()), (Some(3), "T", "a"));
    let m = Menu::parse("grub.cfg", b"\xef\xbb\xbfset timeout=4\r\nmenuentry 'T' {\r\n linux /k a\r\n}\r\n");
    assert!(m.diagnostics.is_empty(), "{:?}", diags(&m));
    assert_eq!((m.timeout, m.entries[0].args.as_str()), (Some(4), "a"));
    let m = Menu::parse("boot.cfg", b"\xef\xbb\xbftimeout=4\r\nmenu=T:boot netbsd -s\r\n");
    assert!(m.diagnostics.is_empty(), "{:?}", diags(&m));
    assert_eq!((m.timeout, m.entries[0].args.as_str()), (Some(4), "-s"));
}

#[test]
fn entries_and_diagnostics_are_bounded() {
    let mut text = String::new();
    for i in 0..MAX_ENTRIES + 5 {
        text.push_str(&format!("title t{i}\nbogus\n"));
    }
    let m = Menu::parse("menu.lst", text.as_bytes());
    assert_eq!(m.entries.len(), MAX_ENTRIES);
    assert_eq!(m.diagnostics.len(), MAX_DIAGNOSTICS + 1);
    assert_eq!(m.diagnostics[MAX_DIAGNOSTICS].message, "too many problems; the rest are not reported");
}

/// 100k-line files in each syntax parse in well under a second.
#[test]
fn parsing_is_linear() {
    let mut lst = String::new();
    let mut cfg = String::new();
    let mut grub = String::from("set v=abcdefghijklmnopqrstuvwxyz0123456789\n");
    for i in 0..25_000 {
        lst.push_str(&format!("title e{i}\nroot (hd0,0)\nkernel /vmlinuz-{i} ro quiet\ninitrd /initrd-{i}\n"));
        cfg.push_str(&format!("menu=Entry {i}:load /m{i};boot hd0a:/netbsd-{i} -s\n#c\nbanner=x\nfoo=bar\n"));
        grub.push_str(&format!("menuentry 'e{i} $v' {{\n  linux /vmlinuz-$v root=x ${{v}} \"$v\"\n  initrd /i\n}}\n"));
    }
    for (name, text) in [("menu.lst", &lst), ("boot.cfg", &cfg), ("grub.cfg", &grub)] {
        assert!(text.lines().count() >= 100_000);
        assert!(text.len() <= MAX_CONFIG_BYTES * 4);
        let start = Instant::now();
        // Straight to the parser: the size limit is Menu::parse's, not this test's.
        let syntax = Syntax::from_path(name).unwrap();
        let m = Menu::parse_as(syntax, name, text);
        let took = start.elapsed();
        eprintln!("{name}: {} lines, {} bytes in {took:?}", text.lines().count(), text.len());
        assert_eq!(m.entries.len(), MAX_ENTRIES, "{name}");
        assert!(took < time_limit(), "{name}: {took:?}");
    }
}

// ---------------------------------------------------------------- command line

#[test]
fn cmdline_overrides() {
    let o = cmdline::parse("root=xvda2 timeout=0 entry=3 config=/boot/grub/grub.cfg -- console=hvc0  init=/bin/sh 'x y'");
    assert!(o.diagnostics.is_empty(), "{:?}", o.diagnostics);
    assert_eq!(o.root, dev("(hd0,2)"));
    assert_eq!(o.timeout, Some(Some(0)));
    assert_eq!(o.entry, Some(EntryChoice::Index(2)), "entry=3 is the third, as the menu numbers them");
    assert_eq!(o.config, Some(file(None, "/boot/grub/grub.cfg")));
    assert_eq!(o.extra_args, "console=hvc0  init=/bin/sh 'x y'", "verbatim after --");
    assert!(o.kernel_menu().is_none());

    let mut m = Menu::parse("/boot/grub/menu.lst", PVGRUB_MENU_LST.as_bytes());
    o.apply(&mut m);
    assert_eq!(m.default, 2);
    assert_eq!(m.timeout, Some(0));
    assert_eq!(m.entries[0].args, "root=/dev/xvda1 ro console=hvc0 console=hvc0  init=/bin/sh 'x y'");
    assert_eq!(m.entries[2].args, "dom0_mem=1024M console=hvc0  init=/bin/sh 'x y'");
}

#[test]
fn cmdline_pvgrub_word_and_device_forms() {
    // What xl.cfg's extra= gives pv-grub: a bare legacy path.
    let o = cmdline::parse("(hd0,0)/boot/grub/menu.lst");
    assert_eq!(o.config, Some(file(Some("(hd0,1)"), "/boot/grub/menu.lst")));
    assert!(o.diagnostics.is_empty());
    let o = cmdline::parse("config=(hd0,msdos2)/boot.cfg root=xbd0a kernel=xbd0e:/netbsd timeout=-1");
    assert_eq!(o.config, Some(file(Some("(hd0,msdos2)"), "/boot.cfg")));
    assert_eq!(o.root, dev("xbd0a"));
    assert_eq!(o.kernel, Some(file(Some("xbd0e"), "/netbsd")));
    assert_eq!(o.timeout, Some(None));
    for (root, want) in [
        ("root=(hd0,1)", dev("(hd0,1)")),
        ("root=hd0a", dev("hd0a")),
        ("root=UUID=abcd-1234", Some(RootSpec::Search { by: SearchBy::FsUuid, value: "abcd-1234".into() })),
        ("root=LABEL=root", Some(RootSpec::Search { by: SearchBy::Label, value: "root".into() })),
    ] {
        let o = cmdline::parse(root);
        assert_eq!(o.root, want, "{root}");
        assert!(o.diagnostics.is_empty(), "{root}: {:?}", o.diagnostics);
    }
}

#[test]
fn cmdline_kernel_menu() {
    let o = cmdline::parse("kernel=(hd0,gpt2)/vmlinuz root=xvda1 -- root=/dev/xvda2 ro");
    let m = o.kernel_menu().unwrap();
    assert_eq!(m.entries.len(), 1);
    let e = &m.entries[0];
    assert_eq!(e.kernel, Some(file(Some("(hd0,gpt2)"), "/vmlinuz")));
    assert_eq!(e.root, dev("(hd0,1)"));
    assert_eq!(e.args, "root=/dev/xvda2 ro");
    assert_eq!(e.title, "kernel=(hd0,gpt2)/vmlinuz");
    assert_eq!(m.timeout, Some(0), "a named kernel boots at once");
    assert_eq!(m.boot_order(), [0]);
    let m = cmdline::parse("kernel=/k timeout=5").kernel_menu().unwrap();
    assert_eq!(m.timeout, Some(5));
}

#[test]
fn cmdline_errors() {
    let o = cmdline::parse("quiet root=xvda root=sda1 timeout=x config=(hd0,0/x kernel=(cd)/k (fd0)/menu.lst entry= entry=0");
    let got: Vec<String> = o.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        got,
        [
            "command line:1: unknown word 'quiet' (kernel arguments go after --); ignored",
            "command line:1: 'xvda' is a whole disk; name a partition (xvda1); ignored",
            "command line:1: bad partition name 'sda1' (try xbd0a, a, msdos1, gpt2, (hd0,msdos1), 1); ignored",
            "command line:1: timeout 'x' is not a number; ignored",
            "command line:1: '(hd0,0/x': missing ')'; ignored",
            "command line:1: device '(cd)' is not a hard disk (hdN) pvboot can read; ignored",
            "command line:1: device '(fd0)' is not a hard disk (hdN) pvboot can read; ignored",
            "command line:1: unknown word 'entry=' (kernel arguments go after --); ignored",
            "command line:1: entry=0: entries are numbered from 1, as the menu shows them; ignored",
        ]
    );
    assert_eq!(o, cmdline::Overrides { diagnostics: o.diagnostics.clone(), ..Default::default() });
    // entry= naming nothing keeps the default, with a note in the menu.
    let mut m = Menu::parse("/boot.cfg", NETBSD_BOOT_CFG.as_bytes());
    cmdline::parse("entry=Nope").apply(&mut m);
    assert_eq!(m.default, 4);
    assert!(has_diag(&m, "command line:1: entry=Nope: no such entry; keeping the default"));
    cmdline::parse("entry=1").apply(&mut m);
    assert_eq!(m.default, 0);
    cmdline::parse("entry=Xen").apply(&mut m);
    assert_eq!(m.default, 4);
    cmdline::parse("'entry=Boot single user'").apply(&mut m);
    assert_eq!(m.default, 1, "quoted titles");
    cmdline::parse("entry=\"Boot normally\"").apply(&mut m);
    assert_eq!(m.default, 0);
    cmdline::parse("entry=99").apply(&mut m);
    assert!(has_diag(&m, "command line:1: entry=99: no such entry; keeping the default"));
    cmdline::parse("bogus").apply(&mut m);
    assert!(has_diag(&m, "command line:1: unknown word 'bogus' (kernel arguments go after --); ignored"));
    // entry= by grub.cfg id.
    let mut g = Menu::parse("grub.cfg", debian_grub_cfg().as_bytes());
    cmdline::parse(&format!("entry=gnulinux-6.1.0-13-amd64-recovery-{UUID}")).apply(&mut g);
    assert_eq!(g.default, 2);
}
