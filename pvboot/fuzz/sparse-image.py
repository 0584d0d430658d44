#!/usr/bin/env python3
"""Rewrites disk images in place as sparse fuzz inputs (the layout read by
fuzz_targets/common/sparse.rs): u32 LE device size in KiB, then one extent
(u32 LE first sector, u16 LE sector count, the sectors) per run of non-zero
512-byte sectors. Usage: sparse-image.py IMAGE..."""
import struct
import sys

SECTOR = 512

for path in sys.argv[1:]:
    img = open(path, 'rb').read()
    out = bytearray(struct.pack('<I', (len(img) + 1023) // 1024))
    sectors = [img[i:i + SECTOR].ljust(SECTOR, b'\0') for i in range(0, len(img), SECTOR)]
    i = 0
    while i < len(sectors):
        if not any(sectors[i]):
            i += 1
            continue
        start = i
        while i < len(sectors) and i - start < 0xFFFF and any(sectors[i]):
            i += 1
        out += struct.pack('<IH', start, i - start)
        out += b''.join(sectors[start:i])
    open(path, 'wb').write(bytes(out))
