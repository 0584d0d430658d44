#!/bin/sh
# Seeds for the hypervisor's fuzz targets: real configs, real kernels, real
# disk specs. Usage: seeds.sh OUT_DIR (run by `cargo xtask fuzz`).
set -eu
out=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out/xl_cfg" "$out/pvh_elf" "$out/disk_spec" "$out/blkif_request" "$out/xenstore_ring" "$out/xenstore_msgs" "$out/blkif_ring" "$out/console_ring" "$out/hypercall"
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
# xenstore_msgs: each message is sel (bit 0: domain 1 or 2), type index,
# tx (128..250: one of its transactions), length (le16), payload. Domain 1
# writes, reads, watches, and writes and commits in a transaction; domain 2
# tries to read domain 1's node and domain 0's.
printf '\000\013\000\010\000data/x\000v\000\002\000\007\000data/x\000\001\002\000\027\000/local/domain/1/data/x\000\001\002\000\010\000/secret\000\000\004\000\007\000data\000t\000\000\006\000\001\000\000\000\013\200\010\000data/y\000w\000\007\200\002\000T\000\000\016\000\015\000data/x\000n1\000r2\000' > "$out/xenstore_msgs/session"
# blkif_ring: x86_64; a one-segment READ of grant 8 (op 0x80: put it, then serve).
printf '\001\200\000\001\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\010\000\000\000\000\007\000\000' > "$out/blkif_ring/read"
# console_ring: "hello" in the output ring, out_prod 5, an event, typed "ab", an event.
printf '\000\000\000\004\005hello\001\003\005\000\000\000\002\013ab\002' > "$out/console_ring/hello"
# hypercall: xen_version(XENVER_version), then event_channel_op(alloc_unbound)
# with its struct written at 0x100 (dom DOMID_SELF, remote 0).
printf '\001\021\005\000\000\000\000\000\000\000\000\004\000\000\000\000\000\000\000\000' > "$out/hypercall/version"
printf '\000\100\000\010\360\177\000\000\000\000\000\000\001\040\005\006\000\000\000\000\000\000\000\000\000\001\000\000\000\000\000\000' > "$out/hypercall/alloc_unbound"
