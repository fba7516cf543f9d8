"""Compiled (numba) reading of the biggest values of a batch of raw EMBER JSON lines.

``histogram`` and ``byteentropy`` (256 integer counts each), the strings block's ``printabledist``
(96), ``imports`` (an object of library name -> list of function names) and ``datadirectories`` (a
list of 15-16 small objects) are ~75 % of a record's text and of its Python objects; orjson makes an
int, a str or a dict of each value, and the blocks then walk them one at a time. Here each value is
read from the line's bytes straight into what its block needs: the counts into an int64 row, the
imports into FeatureHasher's two dense rows (murmurhash3 of each library name and of each
``"library:function"``, as :class:`vigil.tasks.ember.features.StringHasher` hashes them), the
directories' sizes and addresses into their float32 row, and the line is rewritten with a
placeholder string in each value's place for orjson to parse the rest.

Only the plainest form of each value is taken, and anything else leaves the line to the general path
(orjson and the blocks' own code), so a record is never read differently from how that path reads it:

* counts: exactly 256 (96 for printabledist) JSON integers of at most 18 digits, no sign, no
  fraction, no exponent;
* imports: strings of printable ASCII with no escape (``str.lower`` is then ASCII's), each library
  written once (JSON's last-one-wins for a repeated key is left to orjson), lists of strings only;
* data directories: objects of exactly ``"name"`` (a plain string), ``"size"`` and
  ``"virtual_address"`` in that order (ember's form), the two numbers plain integers below 2**53
  (exact as doubles, so float32 rounds them once, as the block's own cast does). The key may be
  absent (feature version 1 records): the row is then zero, as the block reads a missing list.

Compiled when first called (10-15 s, then kept in the signed kernel cache, :mod:`vigil.kernel_cache`,
for later processes); ``line_scanner`` imports it when the first batch is vectorized.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from vigil.kernel_cache import cached
from vigil.tasks.ember.line_scanner import PLACEHOLDERS

COUNTS = 256  # values in a histogram / byteentropy list
PRINTABLE_COUNTS = 96  # values in the strings block's printabledist list (0x20..0x7f)
LIBRARY_BINS, FUNCTION_BINS = 256, 1024  # ImportsInfo's two FeatureHasher widths
# powers of two, so a column is a mask of the hash, not a 64-bit division (~40 cycles, 2/3 of the time)
assert not LIBRARY_BINS & (LIBRARY_BINS - 1) and not FUNCTION_BINS & (FUNCTION_BINS - 1)
MAX_DIGITS = 18  # an integer of up to 18 digits fits int64 exactly
MAX_LINE = 1 << 24  # longer lines are left to the general path (see ``hashed`` in scan_lines)
DIRECTORY_SLOTS = 15  # DataDirectories' slots: the i-th listed directory fills slot i, later ones are read, not kept
MAX_EXACT = 1 << 53  # a directory's numbers below this are exact as doubles (the block's own condition)
_DIRECTORY_KEYS = tuple(np.array(list(key), dtype=np.uint8) for key in (b'"name"', b'"size"', b'"virtual_address"'))
_PLACEHOLDER_TEXT = np.array([list(text) for text in PLACEHOLDERS], dtype=np.uint8)
_MASK = np.uint64(0xFFFFFFFF)


@njit(cache=False, nogil=True, inline="always")
def _rotl(x, r):  # pragma: no cover - compiled
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & _MASK


@njit(cache=False, nogil=True, inline="always")
def _mix(h, k):  # pragma: no cover - compiled
    """MurmurHash3 x86_32's step for one 4-byte block ``k`` (as a little-endian word)."""
    k = (k * np.uint64(0xCC9E2D51)) & _MASK
    k = _rotl(k, 15)
    k = (k * np.uint64(0x1B873593)) & _MASK
    h ^= k
    h = _rotl(h, 13)
    return (h * np.uint64(5) + np.uint64(0xE6546B64)) & _MASK


@njit(cache=False, nogil=True, inline="always")
def _finish(h, tail, tail_length, length):  # pragma: no cover - compiled
    """The last 0-3 bytes and the finalisation, as a signed int (sklearn's ``positive=False``)."""
    if tail_length:
        k = (tail * np.uint64(0xCC9E2D51)) & _MASK
        k = _rotl(k, 15)
        k = (k * np.uint64(0x1B873593)) & _MASK
        h ^= k
    h ^= np.uint64(length) & _MASK
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & _MASK
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & _MASK
    h ^= h >> np.uint64(16)
    signed = np.int64(h)
    return signed - np.int64(1 << 32) if signed >= np.int64(1 << 31) else signed


@cached
@njit(cache=False, nogil=True)
def _continue(h, carry, carried, data, start, length):  # pragma: no cover - compiled
    """(state, carry, carried) after hashing data[start:start+length] on from a state that holds
    ``carried`` (0-3) bytes not yet mixed, little-endian in ``carry``."""
    i, end = start, start + length
    while carried and i < end:  # complete the carried block
        carry |= np.uint64(data[i]) << np.uint64(8 * carried)
        carried += 1
        i += 1
        if carried == 4:
            h = _mix(h, carry)
            carry, carried = np.uint64(0), 0
    if carried == 0:
        while i + 4 <= end:
            word = (
                np.uint64(data[i])
                | (np.uint64(data[i + 1]) << np.uint64(8))
                | (np.uint64(data[i + 2]) << np.uint64(16))
                | (np.uint64(data[i + 3]) << np.uint64(24))
            )
            h = _mix(h, word)
            i += 4
        while i < end:
            carry |= np.uint64(data[i]) << np.uint64(8 * carried)
            carried += 1
            i += 1
    return h, carry, carried


@cached
@njit(cache=False, nogil=True)
def murmurhash3_32(data, start, length):  # pragma: no cover - compiled
    """sklearn's ``murmurhash3_32(bytes, seed=0)`` (MurmurHash3 x86_32), signed, of data[start:start+length]."""
    h, tail, tail_length = _continue(np.uint64(0), np.uint64(0), 0, data, start, length)
    return _finish(h, tail, tail_length, length)


@njit(cache=False, nogil=True, inline="always")
def _add_hashed(row, h, width):  # pragma: no cover - compiled
    """FeatureHasher's +1 / -1 of one string token of hash ``h``, added to its column
    (StringHasher.code's rule)."""
    if h == -(1 << 31):
        column = (2147483647 - (width - 1)) % width
    else:
        column = abs(h) & (width - 1)  # abs(h) % width, width a power of two
    row[column] += 1.0 if h >= 0 else -1.0


@njit(cache=False, nogil=True, inline="always")
def _skip(data, i, end):  # pragma: no cover - compiled
    while i < end and (data[i] == 0x20 or data[i] == 0x0A or data[i] == 0x0D or data[i] == 0x09):
        i += 1
    return i


@njit(cache=False, nogil=True, inline="always")
def _integer(data, i, end):  # pragma: no cover - compiled
    """(value, index after it) of the plain JSON integer at data[i] (no sign, at most MAX_DIGITS
    digits; what follows is the caller's to check), or (0, -1)."""
    if i >= end:
        return np.int64(0), -1
    c = data[i]
    if c < 0x30 or c > 0x39:
        return np.int64(0), -1
    value = np.int64(c - 0x30)
    j = i + 1
    if c != 0x30:  # a leading 0 is the whole number in JSON ("01" is refused by the caller)
        while j < end and 0x30 <= data[j] <= 0x39:
            if j - i >= MAX_DIGITS:
                return np.int64(0), -1
            value = value * 10 + (data[j] - 0x30)
            j += 1
    return value, j


@njit(cache=False, nogil=True, inline="always")
def _after_member(data, i, end, closer):  # pragma: no cover - compiled
    """After a member of a list or an object at data[i] (blanks first): (the next member's index,
    False) at a comma, (the index after ``closer``, True) at it, (-1, True) at anything else."""
    i = _skip(data, i, end)
    if i < end:
        if data[i] == 0x2C:  # ,
            return _skip(data, i + 1, end), False
        if data[i] == closer:
            return i + 1, True
    return -1, True


@cached
@njit(cache=False, nogil=True)
def _counts(data, i, end, row):  # pragma: no cover - compiled
    """A JSON list of ``len(row)`` plain integers at data[i] into ``row``: the index after its ``]``, or -1."""
    if i >= end or data[i] != 0x5B:  # [
        return -1
    i = _skip(data, i + 1, end)
    n = 0
    while True:
        if n == row.shape[0]:
            return -1
        value, j = _integer(data, i, end)
        if j < 0:
            return -1
        row[n] = value
        n += 1
        # after the number: a comma, or the list's end; a fraction, an exponent, a second zero are refused
        i, closed = _after_member(data, j, end, 0x5D)
        if closed:
            return i if n == row.shape[0] else -1


@cached
@njit(cache=False, nogil=True)
def _string_end(data, i, end):  # pragma: no cover - compiled
    """Index of the closing quote of the plain string at data[i] (printable ASCII, no escape), or -1."""
    if i >= end or data[i] != 0x22:
        return -1
    i += 1
    while i < end:
        c = data[i]
        if c == 0x22:
            return i
        if c < 0x20 or c > 0x7F or c == 0x5C:  # control, non-ASCII, backslash
            return -1
        i += 1
    return -1


@njit(cache=False, nogil=True, inline="always")
def _lower(c):  # pragma: no cover - compiled
    return c + 32 if 0x41 <= c <= 0x5A else c


@cached
@njit(cache=False, nogil=True)
def _same(data, a, b, length, folded):  # pragma: no cover - compiled
    for k in range(length):
        x, y = data[a + k], data[b + k]
        if folded:
            x, y = _lower(x), _lower(y)
        if x != y:
            return False
    return True


@cached
@njit(cache=False, nogil=True)
def _imports(data, i, end, libraries, functions, scratch, keys):  # pragma: no cover - compiled
    """The imports object at data[i] hashed into the two rows: the index after its ``}``, or -1.

    ``scratch`` holds ``lower(library) + ":"`` while its names are hashed; ``keys`` the (start,
    length) of the libraries read so far, to find one written twice."""
    if i >= end or data[i] != 0x7B:  # {
        return -1
    i = _skip(data, i + 1, end)
    if i < end and data[i] == 0x7D:
        return i + 1
    count = 0
    while True:
        close = _string_end(data, i, end)
        if close < 0 or count == keys.shape[0]:
            return -1
        start, length = i + 1, close - i - 1
        new_library = True
        for k in range(count):
            if keys[k, 1] == length:
                if _same(data, keys[k, 0], start, length, False):
                    return -1  # a repeated key: orjson keeps the last list only
                if new_library and _same(data, keys[k, 0], start, length, True):
                    new_library = False  # the same library in other case: one entry of the set
        keys[count, 0], keys[count, 1] = start, length
        count += 1
        for k in range(length):
            scratch[k] = _lower(data[start + k])
        scratch[length] = 0x3A  # :
        if new_library:
            _add_hashed(libraries, murmurhash3_32(scratch, 0, length), LIBRARY_BINS)
        # "library:" hashed once; each function's hash goes on from there (no joined copy a name)
        prefix = _continue(np.uint64(0), np.uint64(0), 0, scratch, 0, length + 1)
        i = _skip(data, close + 1, end)
        if i >= end or data[i] != 0x3A:
            return -1
        i = _skip(data, i + 1, end)
        if i >= end or data[i] != 0x5B:  # [
            return -1
        i = _skip(data, i + 1, end)
        if i < end and data[i] == 0x5D:
            i += 1
        else:
            while True:
                close = _string_end(data, i, end)
                if close < 0:
                    return -1
                name = close - i - 1
                h, tail, tail_length = _continue(prefix[0], prefix[1], prefix[2], data, i + 1, name)
                _add_hashed(functions, _finish(h, tail, tail_length, length + 1 + name), FUNCTION_BINS)
                i, closed = _after_member(data, close + 1, end, 0x5D)
                if i < 0:
                    return -1
                if closed:
                    break
        i, closed = _after_member(data, i, end, 0x7D)
        if closed:
            return i


@njit(cache=False, nogil=True, inline="always")
def _key_then_colon(data, i, end, key):  # pragma: no cover - compiled
    """The index of the value after ``key`` (its quoted bytes) and a colon at data[i], or -1."""
    if i + key.shape[0] > end:
        return -1
    for k in range(key.shape[0]):
        if data[i + k] != key[k]:
            return -1
    i = _skip(data, i + key.shape[0], end)
    if i >= end or data[i] != 0x3A:  # :
        return -1
    return _skip(data, i + 1, end)


@njit(cache=False, nogil=True, inline="always")
def _exact_number(data, i, end, key):  # pragma: no cover - compiled
    """(value, index after it and the blank after it) of ``key: <integer below MAX_EXACT>`` at data[i], or (0, -1)."""
    i = _key_then_colon(data, i, end, key)
    if i < 0:
        return np.int64(0), -1
    value, j = _integer(data, i, end)
    if j < 0 or value >= MAX_EXACT:
        return np.int64(0), -1
    return value, _skip(data, j, end)


@cached
@njit(cache=False, nogil=True)
def _directories(data, i, end, row):  # pragma: no cover - compiled
    """The data directories list at data[i] into ``row`` (size, address of slot 0, then slot 1, ...;
    the caller has zeroed it): the index after its ``]``, or -1."""
    if i >= end or data[i] != 0x5B:  # [
        return -1
    i = _skip(data, i + 1, end)
    if i < end and data[i] == 0x5D:
        return i + 1
    name_key, size_key, address_key = _DIRECTORY_KEYS
    slot = 0
    while True:
        if i >= end or data[i] != 0x7B:  # {
            return -1
        i = _key_then_colon(data, _skip(data, i + 1, end), end, name_key)
        if i < 0:
            return -1
        close = _string_end(data, i, end)
        if close < 0:
            return -1
        i = _skip(data, close + 1, end)
        if i >= end or data[i] != 0x2C:
            return -1
        size, i = _exact_number(data, _skip(data, i + 1, end), end, size_key)
        if i < 0 or i >= end or data[i] != 0x2C:
            return -1
        address, i = _exact_number(data, _skip(data, i + 1, end), end, address_key)
        if i < 0 or i >= end or data[i] != 0x7D:  # }
            return -1
        if slot < DIRECTORY_SLOTS:
            row[2 * slot] = np.float32(size)
            row[2 * slot + 1] = np.float32(address)
        slot += 1
        i, closed = _after_member(data, i + 1, end, 0x5D)
        if closed:
            return i


@cached
@njit(cache=False, nogil=True)
def scan_lines(
    data, bounds, values, histogram, byteentropy, imports, directories, printable, text, text_bounds
):  # pragma: no cover - compiled
    """Read the five values of each line and write the line with placeholders in their place
    (the caller has left out, with values -1, every line holding a ``\\u0000`` escape).

    ``bounds[k]``: line k's (start, end) in ``data``; ``values[k]``: where each value starts (after
    its key's colon: histogram, byteentropy, imports, datadirectories, printabledist), -1 where its
    key was not found (allowed for datadirectories alone: its row stays zero and no placeholder is
    written). Line
    k is taken when all its values read: its rows are filled (``imports``: the 256 library then the
    1,024 function bins) and its rewritten text is ``text[text_bounds[k, 0]:text_bounds[k, 1]]``;
    otherwise its rows stay zero and its text bounds are (0, 0). Returns how many lines were taken."""
    longest = 1
    for k in range(bounds.shape[0]):
        longest = max(longest, bounds[k, 1] - bounds[k, 0])
    scratch = np.empty(longest + 1, dtype=np.uint8)
    keys = np.empty((4096, 2), dtype=np.int64)
    spans = np.empty((5, 2), dtype=np.int64)
    # the line's sums, kept small and hot (a row of the batch's output is cold: a miss an addition)
    # in float32, as the block holds them: exact, since a line of at most MAX_LINE bytes holds fewer
    # than 2**24 names, so every sum is an integer float32 represents
    hashed = np.zeros(LIBRARY_BINS + FUNCTION_BINS, dtype=np.float32)
    out = 0
    taken = 0
    for k in range(bounds.shape[0]):
        start, end = bounds[k, 0], bounds[k, 1]
        text_bounds[k, 0], text_bounds[k, 1] = 0, 0
        if values[k, 0] < 0 or values[k, 1] < 0 or values[k, 2] < 0 or values[k, 4] < 0 or end - start > MAX_LINE:
            continue
        spans[0, 0] = _skip(data, start + values[k, 0], end)
        spans[0, 1] = _counts(data, spans[0, 0], end, histogram[k])
        spans[1, 0] = _skip(data, start + values[k, 1], end)
        spans[1, 1] = _counts(data, spans[1, 0], end, byteentropy[k])
        spans[2, 0] = _skip(data, start + values[k, 2], end)
        spans[2, 1] = _imports(data, spans[2, 0], end, hashed[:LIBRARY_BINS], hashed[LIBRARY_BINS:], scratch, keys)
        spans[4, 0] = _skip(data, start + values[k, 4], end)
        spans[4, 1] = _counts(data, spans[4, 0], end, printable[k])
        present = 5
        if values[k, 3] >= 0:
            spans[3, 0] = _skip(data, start + values[k, 3], end)
            spans[3, 1] = _directories(data, spans[3, 0], end, directories[k])
        else:  # no directories: a span past the line's end, sorted last and left out
            present = 4
            spans[3, 0], spans[3, 1] = end + 1, end + 1
        ok = True
        for m in range(5):
            if spans[m, 1] < 0:
                ok = False
        order = np.argsort(spans[:, 0])
        for m in range(present - 1):  # the values must not overlap (a key found inside another value)
            if spans[order[m], 1] > spans[order[m + 1], 0]:
                ok = False
        at, line_start = start, out
        if ok:
            for m in range(present):
                v = order[m]
                gap = spans[v, 0] - at
                text[out : out + gap] = data[at : spans[v, 0]]  # a memmove; a byte loop is 3x slower
                out += gap
                text[out : out + _PLACEHOLDER_TEXT.shape[1]] = _PLACEHOLDER_TEXT[v]
                out += _PLACEHOLDER_TEXT.shape[1]
                at = spans[v, 1]
            text[out : out + end - at] = data[at:end]
            out += end - at
        if not ok:
            histogram[k, :] = 0
            byteentropy[k, :] = 0
            imports[k, :] = 0
            directories[k, :] = 0
            printable[k, :] = 0
            hashed[:] = 0
            out = line_start  # the next line's text goes where this one's began
            continue
        imports[k, :] = hashed
        hashed[:] = 0
        text_bounds[k, 0], text_bounds[k, 1] = line_start, out
        taken += 1
    return taken
