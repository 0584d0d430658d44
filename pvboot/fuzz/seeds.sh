#!/bin/sh
# Seeds for the pvboot fuzz targets, made by the real tools: compressed files
# (gzip, xz, zstd, bzip2, lz4 -l, lzop, lzma, with the options Linux uses), small FAT
# (mkfs.fat + mcopy), ext2/3/4 (mke2fs -d), MBR (sfdisk) and GPT (sgdisk)
# images, and disklabels (written by python3, as makefs writes none).
# Usage: seeds.sh OUT_DIR   (run by `cargo xtask fuzz` before fuzzing)
# The file-system targets (fat, ext, probe) read their input as a sparse
# image (fuzz_targets/common/sparse.rs): sparse-image.py keeps only the
# non-zero sectors, so mutations land on metadata. The partition targets
# take plain images. The output is committed as fuzz/seeds/ (see
# fuzz/seeds/README); rerun `sh seeds.sh seeds` after changing this.
set -eu
out=$(mkdir -p "$1" && cd "$1" && pwd)
mkdir -p "$out"

# Config files (pvboot_config: the first line is the file name) and domain
# command lines (pvboot_cmdline): text, no tools needed.
mkdir -p "$out/pvboot_config" "$out/pvboot_cmdline"
cat > "$out/pvboot_config/menu.lst" <<'CFG'
/boot/grub/menu.lst
default=1
timeout 5
fallback 0 2
hiddenmenu
color cyan/blue white/blue
title Debian GNU/Linux, kernel 2.6.32-5-xen-amd64
root (hd0,0)
kernel /boot/vmlinuz-2.6.32-5-xen-amd64 root=/dev/xvda1 ro console=hvc0
initrd /boot/initrd.img-2.6.32-5-xen-amd64
title Xen
rootnoverify (hd0,1,a)
kernel --type=multiboot (hd0,0)/boot/xen.gz dom0_mem=1024M
module /boot/vmlinuz root=/dev/sda2 ro
modulenounzip /boot/initrd.img
boot
CFG
cat > "$out/pvboot_config/boot.cfg" <<'CFG'
/boot.cfg
banner=Welcome to NetBSD
banner=
menu=Boot normally:rndseed /var/db/entropy-file;boot netbsd
menu=Boot single user:rndseed /var/db/entropy-file;boot netbsd -s
menu=Xen:load /netbsd-XEN3_DOM0.gz console=pc;multiboot /xen.gz dom0_mem=512M
menu=Other disk:dev hd1e:;load /m root=xbd0a;boot xbd1a:/onetbsd
menu=:userconf disable ath*;boot hd0:
load=/stand/solaris.kmod
default=3
timeout=-1
consdev=pc
CFG
cat > "$out/pvboot_config/grub.cfg" <<'CFG'
/boot/grub/grub.cfg
if [ -s $prefix/grubenv ]; then
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
else
   set default="0"
fi
if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi
function load_video {
  insmod all_video
}
set root='hd0,msdos1'
if [ x$feature_platform_search_hint = xy ]; then
  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,msdos1  8a1b6c4e-2f3d-4e5a-9b7c-0d1e2f3a4b5c
else
  search --no-floppy --fs-uuid --set=root 8a1b6c4e-2f3d-4e5a-9b7c-0d1e2f3a4b5c
fi
set timeout=5
menuentry 'Debian GNU/Linux' --class debian --class os $menuentry_id_option 'gnulinux-simple' {
	load_video
	insmod gzio
	if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
	search.fs_label ROOT root
	echo	'Loading Linux 6.1.0-13-amd64 ...'
	linux	/boot/vmlinuz-6.1.0-13-amd64 root=UUID=8a1b6c4e ro  quiet "$x" \
	   'a b'
	initrd	/boot/initrd.img-6.1.0-13-amd64 (hd0,gpt2)/mc.img
}
submenu 'Advanced options' $menuentry_id_option 'adv' {
	menuentry 'Xen' {
		multiboot2 ($root)/boot/xen.gz ${opts}
		module2 --nounzip /boot/vmlinuz root=/dev/xvda1
	}
}
set default='Advanced options>Xen'
CFG
printf '/etc/custom\ntitle t\nkernel /k\n' > "$out/pvboot_config/custom"
printf 'root=xvda1 timeout=0 entry=2 config=/boot/grub/grub.cfg -- console=hvc0 init=/bin/sh' > "$out/pvboot_cmdline/full"
printf '(hd0,0)/boot/grub/menu.lst' > "$out/pvboot_cmdline/pvgrub"
printf "kernel=xbd0a:/netbsd root=UUID=1234-ABCD entry='Boot normally' timeout=-1 -- -s" > "$out/pvboot_cmdline/kernel"

# Network boot (pvboot_net): the first byte picks TFTP (even) or HTTP (odd,
# and the read size); TFTP datagrams are [port][length, 2 bytes LE][bytes].
mkdir -p "$out/pvboot_net"
printf '\000\000\026\000\000\006blksize\000512\000tsize\0005\000\000\011\000\000\003\000\001hello' > "$out/pvboot_net/tftp-oack-data"
printf '\000\000\023\000\000\005\000\001File not found\000' > "$out/pvboot_net/tftp-error"
printf '\011HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello' > "$out/pvboot_net/http-length"
printf '\007HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nT: v\r\n\r\n' > "$out/pvboot_net/http-chunked"
printf '\001HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/x\r\n\r\n' > "$out/pvboot_net/http-redirect"
# Compressed files: a piece of a real ELF and a short text, by each tool.
compress_seeds() { # compress_seeds TARGET PACKAGE TOOL [ARGS...]
    target=$1 package=$2 tool=$3
    shift 3
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "seeds.sh: $tool not found (apt-get install $package); $target fuzzes without seeds" >&2
        return 0
    fi
    mkdir -p "$out/$target"
    n=0
    for input in "$plain_elf" "$plain_text"; do
        n=$((n + 1))
        "$tool" "$@" < "$input" > "$out/$target/seed-$n-$(echo "$*" | tr -c 'a-zA-Z0-9=\n' _)"
    done
}
plain_elf=$(mktemp)
plain_text=$(mktemp)
head -c 12000 /bin/sh > "$plain_elf"
printf 'pvboot seed text: abcabcabcabc aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 0123456789\n' > "$plain_text"
compress_seeds pvboot_gzip gzip gzip -9 -n -c
compress_seeds pvboot_xz xz-utils xz --check=crc32 --x86 --lzma2=dict=32MiB -c
compress_seeds pvboot_xz xz-utils xz -0 -c
compress_seeds pvboot_zstd zstd zstd --ultra -22 -c
compress_seeds pvboot_zstd zstd zstd -1 -c
compress_seeds pvboot_bzip2 bzip2 bzip2 -9 -c
compress_seeds pvboot_lz4 lz4 lz4 -l -9 -c
compress_seeds pvboot_lzo lzop lzop -9 -c
compress_seeds pvboot_lzma xz-utils lzma -9 -c
rm -f "$plain_elf" "$plain_text"
for t in mkfs.fat mcopy mke2fs sfdisk sgdisk python3; do
    if ! command -v $t >/dev/null 2>&1; then
        echo "seeds.sh: $t not found (apt-get install dosfstools mtools e2fsprogs fdisk gdisk python3); fuzzing without seeds" >&2
        exit 0
    fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tree=$tmp/tree
mkdir -p "$tree/dir/sub dir" "$tree/empty"
printf 'hello\n' > "$tree/dir/sub dir/A long file name.txt"
printf 'x\n' > "$tree/SHORT.TXT"
head -c 9000 /dev/zero | tr '\0' 'f' > "$tree/multi"
: > "$tree/dir/zero"
ln -s "dir/sub dir" "$tree/link"

here=$(cd "$(dirname "$0")" && pwd)
sparse() { # sparse FILE...: rewrite as sparse fuzz inputs
    python3 "$here/sparse-image.py" "$@"
}

mkdir -p "$out/pvboot_fat" "$out/pvboot_ext" "$out/pvboot_mbr" "$out/pvboot_gpt" "$out/pvboot_disklabel" "$out/pvboot_probe"

for spec in 12:1024 16:4096 32:34000; do
    bits=${spec%:*}
    kib=${spec#*:}
    img=$out/pvboot_fat/fat$bits.img
    rm -f "$img"
    mkfs.fat -C -F "$bits" -s 1 "$img" "$kib" >/dev/null 2>&1
    (cd "$tree" && mcopy -s -i "$img" dir SHORT.TXT multi empty ::/)
    sparse "$img"
    cp "$img" "$out/pvboot_probe/"
done

for spec in ext2:-O^has_journal:256 ext3::2048 ext4:-O^has_journal:256 ext4:-O64bit,metadata_csum,^has_journal:512; do
    kind=${spec%%:*}
    rest=${spec#*:}
    opt=${rest%:*}
    kib=${rest#*:}
    img=$out/pvboot_ext/$kind-$kib${opt:+-x}.img
    mke2fs -q -F -t "$kind" ${opt:+"$opt"} -d "$tree" "$img" "${kib}k" >/dev/null
    sparse "$img"
    cp "$img" "$out/pvboot_probe/"
done

# MBR with an extended chain; a tiny FAT12 in the first partition for probe.
mbr=$out/pvboot_mbr/mbr.img
truncate -s 256k "$mbr"
printf 'label: dos\nstart=1, size=130, type=1\nstart=131, size=300, type=5\nstart=132, size=60, type=83\nstart=193, size=60, type=a9\n' | sfdisk -q "$mbr" >/dev/null 2>&1
cp "$mbr" "$out/pvboot_probe/mbr.img"
mkfs.fat -C -F 12 "$tmp/p1.img" 65 >/dev/null 2>&1
mcopy -i "$tmp/p1.img" "$tree/SHORT.TXT" ::/
dd if="$tmp/p1.img" of="$out/pvboot_probe/mbr.img" bs=512 seek=1 conv=notrunc status=none

gpt=$out/pvboot_gpt/gpt.img
truncate -s 64k "$gpt"
sgdisk -a 1 -n 1:34:60 -c 1:one -n 2:61:90 -t 2:a902 "$gpt" >/dev/null 2>&1
cp "$gpt" "$out/pvboot_probe/gpt.img"
cp "$gpt" "$out/pvboot_mbr/gpt.img"
sparse "$out/pvboot_probe/gpt.img"

# Disklabels: little- and big-endian at sector 1 of a bare disk (the first
# input byte of pvboot_disklabel picks the container), and inside the MBR's
# 0xA9 partition (starting at sector 193).
python3 - "$out" "$mbr" <<'PY'
import struct, sys
out, mbr = sys.argv[1], sys.argv[2]
def label(parts, order, secperunit):
    b = bytearray(148 + 16 * len(parts))
    struct.pack_into(order + 'IHH', b, 0, 0x82564557, 6, 0)
    b[8:19] = b'pvboot-seed'
    struct.pack_into(order + 'IIIIII', b, 40, 512, 63, 16, 1, 1008, secperunit)
    struct.pack_into(order + 'I', b, 132, 0x82564557)
    struct.pack_into(order + 'HII', b, 138, len(parts), 8192, 8192)
    for i, (size, off, fstype) in enumerate(parts):
        struct.pack_into(order + 'IIIBBH', b, 148 + 16 * i, size, off, 4096, fstype, 8, 16)
    s = 0
    for i in range(0, len(b), 2):
        s ^= b[i] | b[i + 1] << 8
    b[136:138] = struct.pack('<H', s)
    return bytes(b)
for order, name in (('<', 'le'), ('>', 'be')):
    disk = bytearray(64 * 1024)
    disk[512:512 + 212] = label([(100, 16, 7), (20, 116, 1), (128, 0, 0), (128, 0, 0)], order, 128)
    for target, prefix in (('pvboot_disklabel', b'\0'), ('pvboot_probe', b'')):
        open(f'{out}/{target}/bare-{name}.img', 'wb').write(prefix + bytes(disk))
d = bytearray(open(mbr, 'rb').read())
d[194 * 512:194 * 512 + 212] = label([(40, 200, 7), (10, 240, 1), (60, 193, 0), (512, 0, 0)], '<', 512)
open(mbr, 'wb').write(bytes(d))
PY

cp "$mbr" "$out/pvboot_probe/mbr-disklabel.img"
sparse "$out/pvboot_probe/mbr.img" "$out/pvboot_probe/mbr-disklabel.img" "$out"/pvboot_probe/bare-*.img

# FFS for the probe pipeline (fs-ffs/fuzz has the full makefs spread).
if command -v makefs >/dev/null 2>&1; then
    makefs -t ffs -o version=2,bsize=4096,fsize=512 -M 1m "$out/pvboot_probe/ffs2.img" "$tree" >/dev/null
    makefs -t ffs -B be -o version=1,bsize=4096,fsize=512 -M 1m "$out/pvboot_probe/ffs1-be.img" "$tree" >/dev/null
    sparse "$out/pvboot_probe/ffs2.img" "$out/pvboot_probe/ffs1-be.img"
fi

# The console UI: a header (entries, default, timeout, fallback, script
# length), a script of keys and clock steps (0xFE k), and the (sparse) FAT12
# seed as the prompt's disk.
mkdir -p "$out/pvboot_ui"
python3 - "$out" <<'PY'
import struct, sys
out = sys.argv[1]
fat = open(f'{out}/pvboot_fat/fat12.img', 'rb').read()
scripts = {
    'countdown': b'\xfe\xff\xfe\xff',
    'select-edit': b'\xfe\x05\x1b[B\x1b[A\x1bOB2e\x05 single\x01\x1b[C\x1b[3~\x0b\r',
    'edit-cancel': b'e\x15x\x1b\xfe\x03\x1b[6~\x1b[5~\r',
    'prompt': b'cls\rls /\rls /dir\rls (hd0)\rcat /SHORT.TXT\rcat /multi\rroot (hd0)\rroot xbd0a\r'
              b'kernel /multi a b\rinitrd /SHORT.TXT\rmodule /dir/zero x\rset\rset timeout=1\r'
              b'set default=2\rhelp\r\x1b[A\x1b[A\x01\x0b\x15bogus\r\x03boot\rmenu\r\xfe\x30\xfe\x30c\x1b\xfe\x02',
    'complete': b'cca\t/S\t\rls /d\t\t\x15m\t\tls (hd0)\t\x15ls /dir/sub\t\t\r',
}
for name, script in scripts.items():
    head = bytes([3, 1, 2, 0x21]) + struct.pack('<H', len(script))
    open(f'{out}/pvboot_ui/{name}', 'wb').write(head + script + fat)
PY
cp "$mbr" "$out/pvboot_probe/mbr-disklabel.img"
sparse "$out/pvboot_probe/mbr.img" "$out/pvboot_probe/mbr-disklabel.img" "$out"/pvboot_probe/bare-*.img

# FFS for the probe pipeline (fs-ffs/fuzz has the full makefs spread).
if command -v makefs >/dev/null 2>&1; then
    makefs -t ffs -o version=2,bsize=4096,fsize=512 -M 1m "$out/pvboot_probe/ffs2.img" "$tree" >/dev/null
    makefs -t ffs -B be -o version=1,bsize=4096,fsize=512 -M 1m "$out/pvboot_probe/ffs1-be.img" "$tree" >/dev/null
    sparse "$out/pvboot_probe/ffs2.img" "$out/pvboot_probe/ffs1-be.img"
fi

# Kernel images for pvboot_kernel: the first byte picks PVH (even) or PV
# (odd) and, with bit 1, the streaming router. The project's hello guest
# (PVH and PV notes; stripped) as is, compressed by each tool, and in a
# bzImage; a hand-made multiboot ELF32 and an a.out-kludge image; GRUB's
# PVH image when grub-mkimage is there.
k=$out/pvboot_kernel
mkdir -p "$k"
hello=$(dirname "$0")/../../target/guests/hello
if [ -f "$hello" ]; then
    objcopy --strip-all "$hello" "$tmp/hello"
    for c in 0 1 2 3; do
        python3 -c 'import sys; sys.stdout.buffer.write(bytes([int(sys.argv[1])]))' $c > "$k/hello-$c"
        cat "$tmp/hello" >> "$k/hello-$c"
    done
    for z in "gzip -9" "xz --check=crc32" "zstd -19 -q" "bzip2 -9" "lz4 -l -9" "lzop -9" "lzma -9"; do
        tool=${z%% *}
        command -v "$tool" >/dev/null 2>&1 || continue
        printf '\001' > "$k/hello.$tool"
        $z -c "$tmp/hello" >> "$k/hello.$tool"
    done
    python3 - "$tmp/hello" "$k/bzimage-hello" <<'PY'
import gzip, struct, sys
payload = gzip.compress(open(sys.argv[1], 'rb').read(), 9, mtime=0)
v = bytearray(5 * 512)
v[0x1f1] = 4
v[0x1fe:0x200] = b'\x55\xaa'
v[0x202:0x206] = b'HdrS'
struct.pack_into('<HII', v, 0x206, 0x20f, 0, 0)
struct.pack_into('<II', v, 0x248, 0x40, len(payload))
v += b'\xf4' * 0x40 + payload
open(sys.argv[2], 'wb').write(b'\0' + bytes(v))
PY
else
    echo "seeds.sh: target/guests/hello not built (cargo xtask build); kernel seeds without it" >&2
fi
python3 - "$k" <<'PY'
import struct, sys
k = sys.argv[1]
def mb_header(flags, fields=()):
    return struct.pack('<III', 0x1badb002, flags, (-(0x1badb002 + flags)) & 0xffffffff) + b''.join(struct.pack('<I', f) for f in fields)
# ELF32, one PT_LOAD at 1 MiB from file offset 0x80, a multiboot header in it, entry inside.
text = b'\x90' * 16 + mb_header(3) + b'\xf4' * 0x40
ehdr = b'\x7fELF\x01\x01\x01' + b'\0' * 9 + struct.pack('<HHIIIIIHHHHHH', 2, 3, 1, 0x100010, 52, 0, 0, 52, 32, 1, 40, 0, 0)
phdr = struct.pack('<IIIIIIII', 1, 0x80, 0x100000, 0x100000, len(text), 0x2000, 5, 0x1000)
elf = ehdr + phdr
elf += b'\0' * (0x80 - len(elf)) + text
open(f'{k}/multiboot-elf', 'wb').write(b'\0' + elf)
# A flat binary with the a.out kludge: loaded at 1 MiB, header at +0x20.
flat = b'\x90' * 0x20 + mb_header(1 << 16 | 2, (0x100020, 0x100000, 0x100100, 0x101000, 0x100040))
flat += b'\xcc' * (0x100 - len(flat))
open(f'{k}/multiboot-aout', 'wb').write(b'\0' + flat)
PY
if command -v grub-mkimage >/dev/null 2>&1 && [ -d /usr/lib/grub/i386-xen_pvh ]; then
    printf 'echo seed\n' > "$tmp/grub.cfg"
    printf '\000' > "$k/grub-pvh"
    grub-mkimage -O i386-xen_pvh -o "$tmp/grub.elf" -p / -c "$tmp/grub.cfg" echo >/dev/null 2>&1 && cat "$tmp/grub.elf" >> "$k/grub-pvh"
fi
