#!/bin/sh
# Seeds for the fs-ffs fuzz targets: small FFS images made by NetBSD's
# makefs, every version, byte order and a spread of block sizes.
# Usage: seeds.sh OUT_DIR   (run by `cargo xtask fuzz` before fuzzing)
# The output is committed as fuzz/seeds/ffs/; rerun `sh seeds.sh seeds/ffs`
# after changing this.
set -eu
out=$(mkdir -p "$1" && cd "$1" && pwd)
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
for t in makefs python3; do
    if ! command -v $t >/dev/null 2>&1; then
        echo "seeds.sh: $t not found (apt-get install makefs python3); fuzzing without seeds" >&2
        exit 0
    fi
done
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
            # The fuzz target reads its input as a sparse image
            # (pvboot/fuzz/fuzz_targets/common/sparse.rs): only the
            # non-zero sectors are kept, so mutations land on metadata.
            python3 "$here/../../pvboot/fuzz/sparse-image.py" "$img"
        done
    done
done
