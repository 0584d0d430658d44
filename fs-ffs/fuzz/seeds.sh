#!/bin/sh
# Seeds for the fs-ffs fuzz targets: small FFS images made by NetBSD's
# makefs, every version, byte order and a spread of block sizes.
# Usage: seeds.sh OUT_DIR   (run by `cargo xtask fuzz` before fuzzing)
set -eu
out=$1
mkdir -p "$out"
if ! command -v makefs >/dev/null 2>&1; then
    echo "seeds.sh: makefs not found (apt-get install makefs); fuzzing without seeds" >&2
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tree=$tmp/tree
mkdir -p "$tree/dir/sub" "$tree/empty"
printf 'hello\n' > "$tree/dir/sub/file"
# 60000 bytes: past the 12 direct blocks of 4K, so it has an indirect block.
head -c 60000 /dev/zero | tr '\0' 'f' > "$tree/indirect"
ln -s dir/sub/file "$tree/fast"
ln -s "dir/$(printf '%0150d' 0)/../sub/file" "$tree/slow"
ln "$tree/dir/sub/file" "$tree/hard"
: > "$tree/dir/zero"

for version in 1 2; do
    for order in le be; do
        for sizes in 4096,512 16384,2048 65536,8192; do
            bsize=${sizes%,*}
            fsize=${sizes#*,}
            img=$out/v$version-$order-$bsize.img
            makefs -t ffs -B "$order" -o "version=$version,bsize=$bsize,fsize=$fsize" \
                -M 1m "$img" "$tree" >/dev/null
            # The fuzz target reads past the end of its input as zeros, so
            # the free tail of each image is dropped to keep inputs small
            # (makefs leaves one stray byte in the last 4K: dropped too).
            if command -v python3 >/dev/null 2>&1; then
                python3 -c 'import sys; p=sys.argv[1]; d=open(p,"rb").read()[:-4096].rstrip(b"\0"); open(p,"wb").write(d)' "$img"
            fi
        done
    done
done
