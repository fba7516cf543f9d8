"""A cheap look at a PE file's section table (``struct``/numpy, no LIEF), before LIEF sees the file.

LIEF keeps a copy of every section's raw data. Section headers may overlap, so a 1 MB file whose
1,000 section headers each cover the whole file made LIEF hold ~1 GB (issue 11), and a 2 MB one 2 GB.
:func:`section_table_refusal` adds up the raw sizes of the file's section headers, each clipped to
the file, and refuses the file when the total exceeds ``SECTION_BYTES_RATIO`` x the file size (and
``SECTION_BYTES_FLOOR``, so small odd files are never refused for a few overlapping sections). A
refused file gets ember's fallback record, as a file LIEF cannot parse does: byte-level blocks
filled, PE blocks empty (``"pe": false``), and the reason as a note.

The bound: sections of a well-formed file do not overlap, so their raw sizes add up to at most the
file size; 4 x leaves room for the overlapping sections some packers write, and bounds what LIEF
holds for sections at 4 x the file (256 MB for a 64 MB upload) instead of 65,535 x.

Example::

    >>> section_table_refusal(b"not a PE file") is None
    True
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

SECTION_BYTES_RATIO = 4
SECTION_BYTES_FLOOR = 16 << 20  # 16 MiB: below this total, no file is refused
SECTION_HEADER_BYTES = 40
FILE_ALIGNMENT_MIN = 512  # loaders (and LIEF) round PointerToRawData down to this


@dataclass(frozen=True)
class SectionTable:
    """What the section table of a PE file asks a parser to read."""

    declared: int  # NumberOfSections in the COFF header
    present: int  # section headers that lie inside the file
    raw_bytes: int  # sum of the present sections' SizeOfRawData, each clipped to the file


def read_section_table(bytez: bytes) -> SectionTable | None:
    """The section table's totals, or None where the bytes do not start like a PE file."""
    size = len(bytez)
    if size < 64 or bytez[:2] != b"MZ":
        return None
    (e_lfanew,) = struct.unpack_from("<I", bytez, 0x3C)
    if e_lfanew + 24 > size or bytez[e_lfanew : e_lfanew + 4] != b"PE\0\0":
        return None
    (declared,) = struct.unpack_from("<H", bytez, e_lfanew + 6)
    (optional_header_size,) = struct.unpack_from("<H", bytez, e_lfanew + 20)
    table = e_lfanew + 24 + optional_header_size
    present = max(0, min(declared, (size - table) // SECTION_HEADER_BYTES))
    if not present:
        return SectionTable(declared, 0, 0)
    # A section header is ten little-endian uint32: name (2), VirtualSize, VirtualAddress,
    # SizeOfRawData, PointerToRawData, ...
    headers = np.frombuffer(bytez, dtype="<u4", count=present * 10, offset=table).reshape(present, 10)
    raw_size = headers[:, 4].astype(np.int64)
    start = headers[:, 5].astype(np.int64) & ~(FILE_ALIGNMENT_MIN - 1)
    clipped = np.clip(np.minimum(raw_size, size - start), 0, None)
    return SectionTable(declared, present, int(clipped.sum()))


def section_bytes_limit(file_size: int) -> int:
    """The most raw section bytes a file of ``file_size`` bytes may ask LIEF to hold."""
    return max(SECTION_BYTES_RATIO * file_size, SECTION_BYTES_FLOOR)


def section_table_refusal(bytez: bytes) -> str | None:
    """Why LIEF must not parse these bytes (their sections would cost a multiple of the file), or None."""
    table = read_section_table(bytez)
    if table is None or table.raw_bytes <= section_bytes_limit(len(bytez)):
        return None
    return (
        f"not parsed as PE: its {table.present} section headers cover {table.raw_bytes} bytes, "
        f"{table.raw_bytes / len(bytez):.0f} x the file's {len(bytez)} (the limit is "
        f"{section_bytes_limit(len(bytez))}: {SECTION_BYTES_RATIO} x the file, at least "
        f"{SECTION_BYTES_FLOOR >> 20} MiB); byte-level features only"
    )
