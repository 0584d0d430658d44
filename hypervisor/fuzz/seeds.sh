#!/bin/sh
# Seeds for the hypervisor's fuzz targets: real configs, real kernels, real
# disk specs. Usage: seeds.sh OUT_DIR (run by `cargo xtask fuzz`).
set -eu
out=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out/xl_cfg" "$out/pvh_elf" "$out/disk_spec" "$out/blkif_request" "$out/xenstore_ring"
cp "$root/examples/hello/hello.cfg" "$out/xl_cfg/hello.cfg"
printf 'name = "d"\ntype = "pvh"\nkernel = "k"\nmemory = 64\nextra = "x"\ndisk = [ "file:/tmp/a.img,xvda,w", "format=raw, vdev=xvdb, access=ro, target=/tmp/b" ]\non_crash = "preserve"\n' > "$out/xl_cfg/disks.cfg"
for g in hello abi-check; do
    [ -f "$root/target/guests/$g" ] && cp "$root/target/guests/$g" "$out/pvh_elf/$g"
done
printf 'file:/path/disk.img,xvda,w' > "$out/disk_spec/positional"
printf 'format=raw, vdev=xvda, access=ro, target=/path' > "$out/disk_spec/keyvalue"
printf 'phy:/dev/loop0,0x1,w' > "$out/disk_spec/phy"
# A READ of one segment (x86_64 ABI), with all features on.
printf '\077\000\001\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\010\000\000\000\000\000\000\000\007\000\000\000' > "$out/blkif_request/read"
# XS_READ "name" as one chunk.
printf '\024\002\000\000\000\001\000\000\000\000\000\000\000\005\000\000\000name\000' > "$out/xenstore_ring/read"
