"""The compiled byte passes (byte_kernels.py) against ember's own regex / per-window arithmetic, on
files large enough to cross many windows and long printable runs, and on the numpy fallback path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from vigil.tasks.ember import byte_kernels
from vigil.tasks.ember.features import ByteEntropyHistogram, ByteHistogram, StringExtractor

DATA = Path(__file__).resolve().parents[1] / "data" / "ember"


def embers_strings(bytez: bytes) -> dict:
    """ember 2018's StringExtractor.raw_features, written out (the reference)."""
    allstrings = re.compile(b"[\x20-\x7f]{5,}").findall(bytez)
    if allstrings:
        avlength = sum(len(s) for s in allstrings) / len(allstrings)
        counts = np.bincount(np.frombuffer(b"".join(allstrings), dtype=np.uint8) - 0x20, minlength=96)
        total = counts.sum()
        p = counts.astype(np.float32) / total
        nonzero = np.where(counts)[0]
        entropy = np.sum(-p[nonzero] * np.log2(p[nonzero]))
    else:
        avlength, counts, entropy, total = 0, np.zeros((96,), dtype=np.float32), 0, 0
    return {
        "numstrings": len(allstrings),
        "avlength": avlength,
        "printabledist": counts.tolist(),
        "printables": int(total),
        "entropy": float(entropy),
        "paths": len(re.findall(b"c:\\\\", bytez, re.IGNORECASE)),
        "urls": len(re.findall(b"https?://", bytez, re.IGNORECASE)),
        "registry": len(re.findall(b"HKEY_", bytez)),
        "MZ": len(re.findall(b"MZ", bytez)),
    }


def embers_byte_entropy(bytez: bytes, step: int = 1024, window: int = 2048) -> list[int]:
    block, output = ByteEntropyHistogram(step, window), np.zeros((16, 16), dtype=np.int64)
    data = np.frombuffer(bytez, dtype=np.uint8)
    starts = range(0, len(data) - window + 1, step) if len(data) >= window else [None]
    for start in starts:
        part = data if start is None else data[start : start + window]
        counts = np.bincount(part >> 4, minlength=16)
        output[block._entropy_bin(counts)] += counts
    return output.ravel().tolist()


def mixed_file(seed: int, size: int) -> bytes:
    """Random, zero, printable-text and indicator-laden stretches, as a PE's sections are."""
    rng = np.random.default_rng(seed)
    words = [b"MZ", b"HKEY_LOCAL", b"http://x.y/", b"HtTpS://", b"C:\\Windows", b"c:\\", b"abc", b"\x00\x01"]
    parts, total = [], 0
    while total < size:
        kind = int(rng.integers(0, 4))
        n = int(rng.integers(1, 6000))
        if kind == 0:
            part = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        elif kind == 1:
            part = bytes(n)
        elif kind == 2:
            part = rng.integers(0x20, 0x80, n, dtype=np.uint8).tobytes()
        else:
            part = b"".join(words[i] for i in rng.integers(0, len(words), n // 4))
        parts.append(part)
        total += len(part)
    return b"".join(parts)[:size]


@pytest.mark.parametrize("seed,size", [(1, 300_000), (2, 2_500_000), (3, 2049), (4, 2047), (5, 1024 * 7)])
def test_compiled_passes_equal_embers_values_on_large_mixed_files(seed, size):
    bytez = mixed_file(seed, size)
    assert json.dumps(StringExtractor().raw_features(bytez, None)) == json.dumps(embers_strings(bytez))
    assert ByteEntropyHistogram().raw_features(bytez, None) == embers_byte_entropy(bytez)
    expected = np.bincount(np.frombuffer(bytez, dtype=np.uint8), minlength=256).tolist()
    assert ByteHistogram().raw_features(bytez, None) == expected


def test_real_pe_files_and_their_concatenation():
    files = [path.read_bytes() for path in sorted((DATA / "pe").glob("*.exe"))]
    for bytez in [*files, b"".join(files) * 3]:
        assert json.dumps(StringExtractor().raw_features(bytez, None)) == json.dumps(embers_strings(bytez))
        assert ByteEntropyHistogram().raw_features(bytez, None) == embers_byte_entropy(bytez)


@pytest.mark.parametrize("step,window", [(1000, 2500), (512, 2048), (1024, 1024)])
def test_other_window_shapes_equal_the_plain_loop(step, window):
    """Windows that are not whole steps take the numpy path; whole-step ones the compiled pass."""
    bytez = mixed_file(9, 50_000)
    assert ByteEntropyHistogram(step, window).raw_features(bytez, None) == embers_byte_entropy(bytez, step, window)


def test_indicators_at_the_very_end_of_the_file_and_split_spellings():
    for bytez in [b"MZ", b"xM", b"HKEY_", b"HKEY", b"c:\\", b"c:", b"http://", b"https:/", b"https://", b"hTTps://"]:
        assert json.dumps(StringExtractor().raw_features(bytez, None)) == json.dumps(embers_strings(bytez))


def assert_strings_equal_embers(bytez: bytes) -> None:
    assert json.dumps(StringExtractor().raw_features(bytez, None)) == json.dumps(embers_strings(bytez)), bytez


def test_strings_on_random_bytes_of_every_length_around_the_64_byte_chunks():
    """The scan reads 64-byte chunks and looks 4 bytes ahead: every length up to 3 chunks + 1, random
    bytes and bytes drawn from a few printable / non-printable / indicator letters."""
    rng = np.random.default_rng(17)
    letters = np.frombuffer(b"\x00\x1f\x20\x7f\x80\xffaMZc:\\hHtTpPsS:/KEY_", dtype=np.uint8)
    for n in range(0, 3 * 64 + 2):
        assert_strings_equal_embers(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        assert_strings_equal_embers(rng.choice(letters, n).tobytes())
    for _ in range(300):
        n = int(rng.integers(0, 2000))
        assert_strings_equal_embers(rng.choice(letters[: int(rng.integers(2, len(letters)))], n).tobytes())


def test_strings_all_printable_and_runs_of_4_and_5_at_every_position():
    for n in (0, 1, 4, 5, 63, 64, 65, 68, 69, 128, 1000):
        assert_strings_equal_embers(b"A" * n)
        assert_strings_equal_embers(bytes(range(0x20, 0x80)) * (n // 96 + 1))
    for length in (3, 4, 5, 6):
        for size in (64, 65, 128, 133):
            for at in range(size - length + 1):
                run = bytearray(size)
                run[at : at + length] = b"x" * length
                assert_strings_equal_embers(bytes(run))  # a run alone, at the start, end, across a chunk
                printable_rest = bytearray(b"\x80" * size)
                printable_rest[at : at + length] = b"y" * length
                assert_strings_equal_embers(bytes(printable_rest))


def test_strings_runs_and_indicators_across_chunk_boundaries():
    indicators = [b"MZ", b"c:\\", b"C:\\", b"HKEY_", b"http://", b"HTTPS://", b"hTtPs://", b"https:/", b"HKEY"]
    for word in indicators:
        for at in range(50, 80):
            for filler in (b"\x00", b"a", b"\x80"):
                bytez = bytearray(filler * 140)
                bytez[at : at + len(word)] = word
                assert_strings_equal_embers(bytes(bytez))
                assert_strings_equal_embers(bytes(bytez[: at + len(word)]))  # the indicator ends the file
                assert_strings_equal_embers(bytes(bytez[: at + len(word) - 1]))  # cut one byte short


def test_strings_on_an_unaligned_view_and_a_long_run_across_many_chunks():
    rng = np.random.default_rng(5)
    data = mixed_file(11, 20_000)
    for offset in range(1, 9):
        view = memoryview(data)[offset:]
        assert json.dumps(StringExtractor().raw_features(bytes(view), None)) == json.dumps(embers_strings(bytes(view)))
        # the kernel itself on a numpy view off an 8-byte boundary: the same as on an aligned copy
        unaligned, aligned = np.frombuffer(data, dtype=np.uint8)[offset:], np.frombuffer(bytes(view), dtype=np.uint8)
        got, expected = byte_kernels.strings_scan(unaligned), byte_kernels.strings_scan(aligned)
        assert got[0] == expected[0] and got[1].tolist() == expected[1].tolist() and got[2:] == expected[2:]
    text = rng.integers(0x20, 0x80, 64 * 40 + 3, dtype=np.uint8).tobytes()
    for cut in (b"", b"\x00", b"\x00" * 64):
        assert_strings_equal_embers(cut + text + cut + text[:4] + cut + text[:5])
