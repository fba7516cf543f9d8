"""Compiled (numba) passes over a file's bytes for EMBER's three byte-level blocks.

The byte histogram, the byte-entropy histogram and the strings block each read every byte of the
file; in numpy each takes several whole-array passes (masks, shifted copies, bincounts), and together
they were ~80 % of the extraction time of a large file. Here each is one loop over the bytes, with
the same integer counts and the same float32 arithmetic in the same order as ember, so the raw
records are bit-identical (``tests/test_ember_features.py`` checks them against ember's own
regex / per-window code and against the numpy versions kept in ``features.py``).

Memory does not grow with the file: the loops keep a few hundred counters (the entropy pass holds the
nibble counts of the last ``window / step`` steps), never a copy of the data.

Compiled when first called (about a second, then kept in the signed kernel cache,
:mod:`vigil.kernel_cache`, for later processes); ``features.py`` imports it only when a file is extracted,
so the CLI and the service start without numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from vigil.kernel_cache import cached

# printable = 0x20..0x7f, ember's b"[\x20-\x7f]{5,}"
_MIN_STRING = 5


@cached
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


@cached
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


@cached
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


@intrinsic
def _popcount(typingctx, x):  # pragma: no cover - compiled
    """The number of set bits of a uint64 (LLVM's ctpop: one instruction)."""

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.int64(types.uint64), codegen


@intrinsic
def _lowest_bit(typingctx, x):  # pragma: no cover - compiled
    """The index of the lowest set bit of a non-zero uint64 (LLVM's cttz: one instruction)."""

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], context.get_constant(types.boolean, True))

    return types.int64(types.uint64), codegen


# SWAR constants (uint64 throughout: numba turns uint64 mixed with int64 into float64)
_U = np.uint64
_EACH = 0x0101010101010101  # times a byte value: that byte in all 8 lanes
_LOW_BITS = _U(_EACH)
_HIGH_BITS = _U(0x80 * _EACH)
_BITS_5_6 = _U(0x60 * _EACH)
_GATHER = _U(0x0102040810204080)  # moves bit 8k to bit 56 + k
_ALL = _U(0xFFFFFFFFFFFFFFFF)
_CASE = _U(0x20 * _EACH)
_M, _Z, _C, _COLON = _U(0x4D * _EACH), _U(0x5A * _EACH), _U(0x63 * _EACH), _U(0x3A * _EACH)
_H, _T, _UPPER_H, _K = _U(0x68 * _EACH), _U(0x74 * _EACH), _U(0x48 * _EACH), _U(0x4B * _EACH)
# TRAILING_RUN[t]: printable bytes ending a chunk, from its top 5 mask bits t (bit 4 = last byte), capped at 5
_TRAILING_RUN = np.array(
    [next((k for k in range(5) if not (t >> (4 - k)) & 1), _MIN_STRING) for t in range(32)], dtype=np.int64
)
# LONG_ENOUGH[run] & lead: bit (4 - run) of the chunk's leading printable bits, set when the run carried
# in (run bytes, 0..4; 5 = already a string) and the lead together reach 5 bytes
_LONG_ENOUGH = np.array([0, 1 << 3, 1 << 2, 1 << 1, 1, (1 << 64) - 1], dtype=np.uint64)


@njit(inline="always")
def _zero_byte_in(v):  # pragma: no cover - compiled
    """Non-zero iff one of the 8 bytes of v is 0 (exact as a whole, not per byte)."""
    return (v - _LOW_BITS) & ~v & _HIGH_BITS


@njit(inline="always")
def _printable_bits(word):  # pragma: no cover - compiled
    """8 bits, bit k set iff byte k of the word is in 0x20..0x7f (bit 7 clear, bit 5 or 6 set)."""
    flags = ((word & _BITS_5_6) + _BITS_5_6) & ~word & _HIGH_BITS
    return ((flags >> _U(7)) * _GATHER) >> _U(56)


@njit(inline="always")
def _chunk_mask(words, first):  # pragma: no cover - compiled
    """64 bits, bit k set iff byte k of the 64-byte chunk ``words[first : first + 8]`` is printable."""
    mask = _U(0)
    for j in range(8):
        mask |= _printable_bits(words[first + j]) << _U(8 * j)
    return mask


@njit(inline="always")
def _may_start_indicator(word, following):  # pragma: no cover - compiled
    """Non-zero where some byte k of ``word`` and byte k of ``following`` (the next byte of the
    file) are the first two letters of an indicator: MZ, c:/C:, h or H + t or T, HK (no false
    negatives; the letters are then checked one by one)."""
    folded, folded_following = word | _CASE, following | _CASE
    found = _zero_byte_in((word ^ _M) | (following ^ _Z))
    found |= _zero_byte_in((folded ^ _C) | (following ^ _COLON))
    found |= _zero_byte_in((folded ^ _H) | (folded_following ^ _T))
    return found | _zero_byte_in((word ^ _UPPER_H) | (following ^ _K))


@njit(inline="always")
def _count_indicator_at(data, i, found):  # pragma: no cover - compiled
    """Adds to ``found`` (paths, urls, registry, MZ) the indicator that starts at byte i, if any."""
    n = data.shape[0]
    b = data[i]
    if b == 0x4D:  # MZ
        if i + 1 < n and data[i + 1] == 0x5A:
            found[3] += 1
    elif b | 0x20 == 0x63:  # c:\ or C:\
        if i + 2 < n and data[i + 1] == 0x3A and data[i + 2] == 0x5C:
            found[0] += 1
    elif b | 0x20 == 0x68:  # h or H: HKEY_ for H, and http:// or https://
        if (
            b == 0x48
            and i + 4 < n
            and data[i + 1] == 0x4B
            and data[i + 2] == 0x45
            and data[i + 3] == 0x59
            and data[i + 4] == 0x5F
        ):
            found[2] += 1
        elif (
            i + 6 < n and (data[i + 1] | 0x20) == 0x74 and (data[i + 2] | 0x20) == 0x74 and (data[i + 3] | 0x20) == 0x70
        ):
            at = i + 4
            if (data[at] | 0x20) == 0x73:
                at += 1
            if at + 2 < n and data[at] == 0x3A and data[at + 1] == 0x2F and data[at + 2] == 0x2F:
                found[1] += 1


@njit(inline="always")
def _scan_chunk(data, base, words, first, mask, next_mask, next_word, run, counts, found):  # pragma: no cover
    """One 64-byte chunk (``data[base:]``, its words ``words[first : first + 8]``, printable ``mask``;
    the next chunk's mask and first word, 0 past the end): adds its indicators to ``found`` and the
    bytes of its strings to ``counts``; returns (strings starting in it, printable run it ends with)."""
    maybe = _U(0)
    for j in range(7):
        word = words[first + j]
        maybe |= _may_start_indicator(word, (word >> _U(8)) | (words[first + j + 1] << _U(56)))
    word = words[first + 7]
    maybe |= _may_start_indicator(word, (word >> _U(8)) | (next_word << _U(56)))
    if maybe:  # rare: one chunk in ~100 of a PE file
        for i in range(base, min(base + 64, data.shape[0])):
            _count_indicator_at(data, i, found)
    if mask == 0 and run == 0:
        return 0, 0
    # bit k: bytes k..k+4 printable (looking 4 bytes into the next chunk), so byte k starts a 5-byte window
    window = mask
    for shift in range(1, _MIN_STRING):
        window &= (mask >> _U(shift)) | (next_mask << _U(64 - shift))
    in_string = window
    for shift in range(1, _MIN_STRING):
        in_string |= window << _U(shift)
    # the chunk's leading printable bytes continue the run carried in: a string if together >= 5
    lead = (~mask & (mask + _U(1))) - _U(1)
    if lead & _LONG_ENOUGH[run]:
        in_string |= lead
    # a string starts where a string byte follows a non-string byte (the carried run's string started before)
    started = _popcount(in_string & ~((in_string << _U(1)) | _U(run > 0)))
    run = _MIN_STRING if mask == _ALL else _TRAILING_RUN[mask >> _U(59)]
    if in_string == _ALL:  # a chunk of text: four count tables, so repeated letters do not wait on each other
        for k in range(base, base + 64, 4):
            counts[0, data[k]] += 1
            counts[1, data[k + 1]] += 1
            counts[2, data[k + 2]] += 1
            counts[3, data[k + 3]] += 1
    else:
        while in_string:
            counts[0, data[base + _lowest_bit(in_string)]] += 1
            in_string &= in_string - _U(1)
    return started, run


@cached
@njit(cache=False, nogil=True)
def _strings_scan_words(data: np.ndarray, body: np.ndarray, tail: np.ndarray) -> tuple:  # pragma: no cover
    """``strings_scan`` of ``data``, given its whole 64-byte chunks as uint64 words (``body``) and the
    rest zero-padded to 9 words (``tail``; zero bytes are neither printable nor an indicator's letter,
    so the padding changes nothing)."""
    n = data.shape[0]
    whole = body.shape[0] // 8
    counts = np.zeros((4, 256), dtype=np.int64)
    found = np.zeros(4, dtype=np.int64)
    numstrings = 0
    run = 0
    tail_mask = _chunk_mask(tail, 0)
    next_mask = _chunk_mask(body, 0) if whole else tail_mask
    for c in range(whole):
        first = c * 8
        mask = next_mask
        if c + 1 < whole:
            next_mask, next_word = _chunk_mask(body, first + 8), body[first + 8]
        else:
            next_mask, next_word = tail_mask, tail[0]
        started, run = _scan_chunk(data, c * 64, body, first, mask, next_mask, next_word, run, counts, found)
        numstrings += started
    if n > whole * 64:
        started, run = _scan_chunk(data, whole * 64, tail, 0, tail_mask, _U(0), tail[8], run, counts, found)
        numstrings += started
    out = np.zeros(256, dtype=np.int64)
    for t in range(4):
        for v in range(256):
            out[v] += counts[t, v]
    return numstrings, out, found[0], found[1], found[2], found[3]


def strings_scan(data: np.ndarray) -> tuple:
    """ember's strings statistics in one pass: (numstrings, counts of each byte value inside the
    strings (256, int64; only 0x20..0x7f can be non-zero), paths, urls, registry, MZ).

    A string is a maximal run of >= 5 printable bytes (``re.findall(b"[\\x20-\\x7f]{5,}")`` takes
    maximal runs, as the class is greedy and a match cannot start inside a run it skipped). The
    bytes are read 64 at a time: a word trick gives the chunk's printable bytes as a 64-bit mask,
    and shifts of it the bytes that lie in some 5-byte printable window (looking 4 bytes into the
    next chunk, and at the run carried in), i.e. the string bytes; a string starts at each string
    byte that follows a non-string byte. Only those bytes are counted, so a chunk of zeros or of
    random bytes (no 5-byte run) writes nothing. The indicators (``c:\\`` and ``https?://``
    case-insensitive, ``HKEY_``, ``MZ``) are counted where they start, none can overlap itself, so
    that is the number of non-overlapping regex matches; their letters are checked one by one only
    in chunks where a word trick finds one of their first two letters in place.
    """
    whole = data.shape[0] // 64
    tail = np.zeros(72, dtype=np.uint8)
    tail[: data.shape[0] - whole * 64] = data[whole * 64 :]
    body = data[: whole * 64].view(np.uint64)
    if not body.flags.aligned:  # a view into a buffer off an 8-byte boundary (``bytes`` never are): the
        # words are copied, so the pass compiled at import (aligned, read-only) is the one that runs
        body = np.frombuffer(body.tobytes(), dtype=np.uint64)
    return _strings_scan_words(data, body, tail.view(np.uint64))


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
