#!/usr/bin/env python3
"""Rewrites an .mbm file with its declared length and every CRC-32 recomputed (header, section
table, sections), as the .mbm fuzz target does before its second try, so that a fuzz crash input
can be stored as a regression file that the reader accepts up to the damage that matters.

    Scripts/mbm-fix-crcs.py IN OUT
"""
import struct, sys, zlib

data = bytearray(open(sys.argv[1], "rb").read())
assert len(data) >= 64 and data[:8] == b"\x89MBM\r\n\x1a\n", "not an .mbm file"
struct.pack_into("<Q", data, 16, len(data))
table, count = struct.unpack_from("<QI", data, 24)
assert count <= 1024 and table + 32 * count <= len(data), "section table out of range"
for i in range(count):
    e = table + 32 * i
    offset, length = struct.unpack_from("<QQ", data, e + 8)
    if offset <= len(data) and length <= len(data) - offset:
        struct.pack_into("<I", data, e + 24, zlib.crc32(data[offset:offset + length]))
struct.pack_into("<I", data, 36, zlib.crc32(data[table:table + 32 * count]))
struct.pack_into("<I", data, 60, zlib.crc32(data[:60]))
open(sys.argv[2], "wb").write(data)
