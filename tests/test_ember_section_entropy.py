"""features.lief_section_entropies against LIEF's own ``section.entropy`` (the oracle), bit for bit,
on every section of the shipped PE files and of copies with random section contents, cut short."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from vigil.tasks.ember.features import lief_section_entropies, parse_pe

DATA = Path(__file__).resolve().parents[1] / "data"


def shipped_pe_files() -> list[bytes]:
    files = (path.read_bytes() for path in sorted(DATA.rglob("*")) if path.is_file())
    return [bytez for bytez in files if bytez[:2] == b"MZ" and parse_pe(bytez) is not None]


def assert_entropies_are_liefs(bytez: bytes) -> int:
    binary = parse_pe(bytez)
    if binary is None:
        return 0
    ours = lief_section_entropies(binary)
    theirs = [section.entropy for section in binary.sections]
    assert [struct.pack("<d", x) for x in ours] == [struct.pack("<d", x) for x in theirs]  # -0.0 too
    return len(theirs)


def test_every_section_of_the_shipped_pe_files():
    assert sum(map(assert_entropies_are_liefs, shipped_pe_files())) > 20


def test_random_contents_few_values_one_value_and_sections_past_the_end():
    rng = np.random.default_rng(3)
    files = shipped_pe_files()
    for trial in range(120):
        bytez = bytearray(files[trial % len(files)])
        binary = parse_pe(bytes(bytez))  # held: LIEF's sections live only as long as their binary
        for section in binary.sections:
            offset, size = section.pointerto_raw_data, section.sizeof_raw_data
            if not size or offset + size > len(bytez):
                continue
            kind = trial % 4
            if kind == 0:
                values = rng.integers(0, 256, size, dtype=np.uint8)
            elif kind == 1:
                values = rng.choice(np.arange(int(rng.integers(1, 4)), dtype=np.uint8), size)
            elif kind == 2:
                values = np.minimum(rng.geometric(rng.uniform(0.01, 0.9), size), 255).astype(np.uint8)
            else:
                values = np.full(size, int(rng.integers(0, 256)), dtype=np.uint8)
                values[: int(rng.integers(0, 3))] = 7
            bytez[offset : offset + size] = values.tobytes()
        if trial % 3 == 0:
            bytez = bytez[: int(rng.integers(len(bytez) // 4, len(bytez)))]
        assert_entropies_are_liefs(bytes(bytez))
