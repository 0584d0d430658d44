#!/bin/sh
# Seeds for the pvboot fuzz targets, made by the real tools: small FAT
# (mkfs.fat + mcopy), ext2/3/4 (mke2fs -d), MBR (sfdisk) and GPT (sgdisk)
# images, and disklabels (written by python3, as makefs writes none).
# Usage: seeds.sh OUT_DIR   (run by `cargo xtask fuzz` before fuzzing)
# File-system seeds lose their all-zero tails: the targets read past the
# end of an input as zeros, so mutations land on metadata.
set -eu
out=$1
mkdir -p "$out"
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

trim() { # trim FILE: drop the all-zero tail
    python3 - "$1" <<'PY'
import sys
p = sys.argv[1]
d = open(p, 'rb').read().rstrip(b'\0')
open(p, 'wb').write(d + b'\0' * (-len(d) % 512))
PY
}

mkdir -p "$out/pvboot_fat" "$out/pvboot_ext" "$out/pvboot_mbr" "$out/pvboot_gpt" "$out/pvboot_disklabel" "$out/pvboot_probe"

for spec in 12:1024 16:4096 32:34000; do
    bits=${spec%:*}
    kib=${spec#*:}
    img=$out/pvboot_fat/fat$bits.img
    mkfs.fat -C -F "$bits" -s 1 "$img" "$kib" >/dev/null 2>&1
    (cd "$tree" && mcopy -s -i "$img" dir SHORT.TXT multi empty ::/)
    trim "$img"
    cp "$img" "$out/pvboot_probe/"
done

for spec in ext2:-O^has_journal:256 ext3::2048 ext4:-O^has_journal:256 ext4:-O64bit,metadata_csum,^has_journal:512; do
    kind=${spec%%:*}
    rest=${spec#*:}
    opt=${rest%:*}
    kib=${rest#*:}
    img=$out/pvboot_ext/$kind-$kib${opt:+-x}.img
    mke2fs -q -F -t "$kind" ${opt:+"$opt"} -d "$tree" "$img" "${kib}k" >/dev/null
    trim "$img"
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

# The console UI: a header (entries, default, timeout, fallback, script
# length), a script of keys and clock steps (0xFE k), and the FAT12 seed
# as the prompt's disk.
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
}
for name, script in scripts.items():
    head = bytes([3, 1, 2, 0x21]) + struct.pack('<H', len(script))
    open(f'{out}/pvboot_ui/{name}', 'wb').write(head + script + fat)
PY
