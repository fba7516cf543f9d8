"""Compiled (numba) passes over a file's bytes for EMBER's three byte-level blocks.

The byte histogram, the byte-entropy histogram and the strings block each read every byte of the
file; in numpy each takes several whole-array passes (masks, shifted copies, bincounts), and together
they were ~80 % of the extraction time of a large file. Here each is one loop over the bytes, with
the same integer counts and the same float32 arithmetic in the same order as ember, so the raw
records are bit-identical (``tests/test_ember_features.py`` checks them against ember's own
regex / per-window code and against the numpy versions kept in ``features.py``).

Memory does not grow with the file: the loops keep a few hundred counters (the entropy pass holds the
nibble counts of the last ``window / step`` steps), never a copy of the data.

Compiled when this module is first imported (about a second, once a process; no on-disk cache,
which numba would read back with pickle); ``features.py`` imports it only when a file is extracted,
so the CLI and the service start without numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# printable = 0x20..0x7f, ember's b"[\x20-\x7f]{5,}"
_MIN_STRING = 5
_PRINTABLE = np.zeros(256, dtype=np.int64)
_PRINTABLE[0x20:0x80] = 1
# first bytes of the indicators: 1 = M (MZ), 2 = c/C (c:\\), 3 = h/H (http(s)://, and HKEY_ for H)
_INDICATOR_START = np.zeros(256, dtype=np.int64)
_INDICATOR_START[ord("M")] = 1
_INDICATOR_START[[ord("c"), ord("C")]] = 2
_INDICATOR_START[[ord("h"), ord("H")]] = 3


@njit(cache=False, nogil=True)
def byte_histogram(data: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``np.bincount(data, minlength=256)`` (int64). Four tables, so consecutive equal bytes do not
    wait on each other's increment; added at the end (integers: the same counts)."""
    tables = np.zeros((4, 256), dtype=np.int64)
    n = data.shape[0]
    quads = n - n % 4
    for i in range(0, quads, 4):
        tables[0, data[i]] += 1
        tables[1, data[i + 1]] += 1
        tables[2, data[i + 2]] += 1
        tables[3, data[i + 3]] += 1
    for i in range(quads, n):
        tables[0, data[i]] += 1
    out = np.zeros(256, dtype=np.int64)
    for t in range(4):
        for v in range(256):
            out[v] += tables[t, v]
    return out


@njit(cache=False, nogil=True)
def _entropy_bin(counts: np.ndarray, terms: np.ndarray) -> int:  # pragma: no cover - compiled
    """ember's bin of one window's 16 nibble counts, with ember's float32 arithmetic in its order.

    ember: ``H = np.sum(-p[nz] * np.log2(p[nz])) * 2``, bin ``min(int(H * 2), 15)``. ``terms[c]`` is
    ``-p * log2(p)`` for ``p = c / window`` computed by numpy (the same values); the non-zero terms are
    added in the order numpy's pairwise ``np.sum`` adds a float32 array of that many values (as
    ``features._numpy_float32_sum16``): under 8 one after the other; 8..15 as 8 partial sums of the
    first 8, combined in a tree, then the rest one by one; 16 as 8 partial sums of pairs (j, j + 8).
    """
    picked = np.zeros(16, dtype=np.float32)
    k = 0
    for j in range(16):
        if counts[j] != 0:
            picked[k] = terms[counts[j]]
            k += 1
    if k < 8:
        total = np.float32(0.0)
        for j in range(k):
            total = np.float32(total + picked[j])
    else:
        r = np.zeros(8, dtype=np.float32)
        for j in range(8):
            r[j] = picked[j]
        if k == 16:
            for j in range(8):
                r[j] = np.float32(r[j] + picked[j + 8])
        total = np.float32(
            np.float32(np.float32(r[0] + r[1]) + np.float32(r[2] + r[3]))
            + np.float32(np.float32(r[4] + r[5]) + np.float32(r[6] + r[7]))
        )
        if k < 16:
            for j in range(8, k):
                total = np.float32(total + picked[j])
    entropy = np.float32(total * np.float32(2.0))
    value = int(np.float32(entropy * np.float32(2.0)))
    return value if value < 15 else 15


@njit(cache=False, nogil=True)
def byte_entropy_histogram(
    data: np.ndarray, terms: np.ndarray, step: int, window: int
) -> np.ndarray:  # pragma: no cover - compiled
    """ember's (entropy bin, nibble) histogram of the windows ``data[s : s + window]``, s a multiple
    of ``step`` (``window`` a multiple of ``step``, ``len(data) >= window``), (16, 16) int64.

    Each step's 16 nibble counts are counted once; a window's counts are the sum of its steps',
    kept as a running sum over a ring of the last ``window / step`` steps."""
    per_window = window // step
    n_windows = (data.shape[0] - window) // step + 1
    ring = np.zeros((per_window, 16), dtype=np.int64)
    current = np.zeros(16, dtype=np.int64)
    output = np.zeros((16, 16), dtype=np.int64)
    lanes = np.zeros((4, 16), dtype=np.int64)
    n_steps = n_windows - 1 + per_window
    for s in range(n_steps):
        lanes[:] = 0
        base = s * step
        end = base + step - step % 4
        for i in range(base, end, 4):
            lanes[0, data[i] >> 4] += 1
            lanes[1, data[i + 1] >> 4] += 1
            lanes[2, data[i + 2] >> 4] += 1
            lanes[3, data[i + 3] >> 4] += 1
        for i in range(end, base + step):
            lanes[0, data[i] >> 4] += 1
        slot = s % per_window
        for j in range(16):
            counted = lanes[0, j] + lanes[1, j] + lanes[2, j] + lanes[3, j]
            current[j] += counted - ring[slot, j]
            ring[slot, j] = counted
        if s >= per_window - 1:  # window s - per_window + 1 is complete
            b = _entropy_bin(current, terms)
            for j in range(16):
                output[b, j] += current[j]
    return output


@njit(cache=False, nogil=True)
def strings_scan(data: np.ndarray) -> tuple:  # pragma: no cover - compiled
    """ember's strings statistics in one pass: (numstrings, counts of each byte value inside the
    strings (256, int64; only 0x20..0x7f can be non-zero), paths, urls, registry, MZ).

    A string is a maximal run of >= 5 printable bytes (``re.findall(b"[\\x20-\\x7f]{5,}")`` takes
    maximal runs, as the class is greedy and a match cannot start inside a run it skipped). The run
    length is tracked per byte; when it reaches 5 one string starts and its first 4 bytes are counted,
    every further byte of the run is counted as it comes. The indicators (``c:\\`` and ``https?://``
    case-insensitive, ``HKEY_``, ``MZ``) are counted where they start: none can overlap itself, so
    that is the number of non-overlapping regex matches.
    """
    n = data.shape[0]
    counts = np.zeros(256, dtype=np.int64)
    numstrings = 0
    run = 0
    paths = urls = registry = mz = 0
    for i in range(n):
        b = data[i]
        # branch-free on printability (random-looking data mispredicts a branch on it every few bytes)
        run = (run + 1) * _PRINTABLE[b]
        counts[b] += run >= _MIN_STRING
        if run == _MIN_STRING:  # a string starts: its first 4 bytes were not counted yet
            numstrings += 1
            for back in range(1, _MIN_STRING):
                counts[data[i - back]] += 1
        first = _INDICATOR_START[b]
        if first == 0:
            continue
        if first == 1:  # M
            if i + 1 < n and data[i + 1] == 0x5A:
                mz += 1
        elif first == 2:  # c or C
            if i + 2 < n and data[i + 1] == 0x3A and data[i + 2] == 0x5C:
                paths += 1
        else:  # h or H: http:// or https://, and H: HKEY_
            if (
                b == 0x48
                and i + 4 < n
                and data[i + 1] == 0x4B
                and data[i + 2] == 0x45
                and data[i + 3] == 0x59
                and data[i + 4] == 0x5F
            ):
                registry += 1
            elif (
                i + 6 < n
                and (data[i + 1] | 0x20) == 0x74
                and (data[i + 2] | 0x20) == 0x74
                and (data[i + 3] | 0x20) == 0x70
            ):
                at = i + 4
                if (data[at] | 0x20) == 0x73:
                    at += 1
                if at + 2 < n and data[at] == 0x3A and data[at + 1] == 0x2F and data[at + 2] == 0x2F:
                    urls += 1
    return numstrings, counts, paths, urls, registry, mz


def _compile() -> None:
    """Compile every pass for the argument types the blocks give them (read-only uint8 views of
    ``bytes``, the float32 term table), at import: a process that imports this module (the
    extraction workers' fork server preloads it, see workers.PRELOAD) has the machine code before
    any address-space limit, which LLVM could not load under, and its forked children inherit it."""
    data = np.frombuffer(bytes(4096), dtype=np.uint8)
    terms = np.zeros(2049, dtype=np.float32)
    byte_histogram(data)
    byte_entropy_histogram(data, terms, 1024, 2048)
    strings_scan(data)


_compile()
