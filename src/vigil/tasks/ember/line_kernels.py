"""Compiled (numba) reading of the biggest values of a batch of raw EMBER JSON lines.

``histogram`` and ``byteentropy`` (256 integer counts each), the strings block's ``printabledist``
(96), ``imports`` (an object of library name -> list of function names), ``datadirectories`` (a
list of 15-16 small objects), ``section`` (the entry's name and a small object a section) and
``header`` (two small objects) are ~90 % of a record's text and of its Python objects; orjson makes an int, a str or a dict of each
value, and the blocks then walk them one at a time. Here each value is read from the line's bytes
straight into what its block needs: the counts into an int64 row, the imports into FeatureHasher's
two dense rows (murmurhash3 of each library name and of each ``"library:function"``, as
:class:`vigil.tasks.ember.features.StringHasher` hashes them), the directories' sizes and addresses
into their float32 row, the header's values into its float64 row (before the block's float32
cast), the sections into their float64 row (``line_scanner.SectionRow``: the
counts and the entry's hashed parts whole, each section's name code and numbers in a slot; each
entropy's text is copied out for one orjson call a batch, so its float is parsed as the general
path parses it), and the line is rewritten with a placeholder string in each value's place for
orjson to parse the rest.

Only the plainest form of each value is taken, and anything else leaves the line to the general path
(orjson and the blocks' own code), so a record is never read differently from how that path reads it:

* counts: exactly 256 (96 for printabledist) JSON integers of at most 18 digits, no sign, no
  fraction, no exponent;
* imports: strings of printable ASCII with no escape (``str.lower`` is then ASCII's), each library
  written once (JSON's last-one-wins for a repeated key is left to orjson), lists of strings only;
* data directories: objects of exactly ``"name"`` (a plain string), ``"size"`` and
  ``"virtual_address"`` in that order (ember's form), the two numbers plain integers below 2**53
  (exact as doubles, so float32 rounds them once, as the block's own cast does). The key may be
  absent (feature version 1 records): the row is then zero, as the block reads a missing list;
* section: exactly ``{"entry": s, "sections": [...]}`` with objects of exactly ``"name"``,
  ``"size"``, ``"entropy"``, ``"vsize"`` and ``"props"`` in that order (ember's form), at most
  ``SECTION_SLOTS`` of them; strings of ASCII whose escapes are one letter (LIEF's ``\\xff`` in a
  name is JSON's ``\\\\``; ``\\u....`` is left), sizes plain integers below 2**53, the entropy
  any JSON number (orjson reads it), props a list of strings;
* header: exactly ember's two objects, their keys in ember's order (``coff``: timestamp, machine,
  characteristics; ``optional``: subsystem, dll_characteristics, magic, then the eleven numbers of
  ``HeaderFileInfo._optional_numbers``), strings as in section, numbers integers below 2**53.

Compiled when first called (15-25 s, then kept in the signed kernel cache, :mod:`vigil.kernel_cache`,
for later processes); ``line_scanner`` imports it when the first batch is vectorized.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from vigil.kernel_cache import cached
from vigil.tasks.ember.line_scanner import PLACEHOLDERS, SECTION_SLOTS, SectionRow, quoted_keys

COUNTS = 256  # values in a histogram / byteentropy list
PRINTABLE_COUNTS = 96  # values in the strings block's printabledist list (0x20..0x7f)
LIBRARY_BINS, FUNCTION_BINS = 256, 1024  # ImportsInfo's two FeatureHasher widths
# powers of two, so a column is a mask of the hash, not a 64-bit division (2/3 of the imports' time)
assert not LIBRARY_BINS & (LIBRARY_BINS - 1) and not FUNCTION_BINS & (FUNCTION_BINS - 1)
MAX_DIGITS = 18  # an integer of up to 18 digits fits int64 exactly
MAX_LINE = 1 << 24  # longer lines are left to the general path (see ``hashed`` in scan_lines)
DIRECTORY_SLOTS = 15  # DataDirectories' slots: the i-th listed directory fills slot i, later ones are read, not kept
MAX_EXACT = 1 << 53  # a directory's numbers below this are exact as doubles (the block's own condition)


_DIRECTORY_KEYS = quoted_keys(("name", "size", "virtual_address"))
_SECTION_BLOCK_KEYS = quoted_keys(("entry", "sections"))
_SECTION_KEYS = quoted_keys(("name", "size", "entropy", "vsize", "props"))
# the section properties the counts look at, and their bits (SectionInfo._property_bits)
_PROPERTIES = tuple(np.array(list(name), dtype=np.uint8) for name in (b"MEM_READ", b"MEM_EXECUTE", b"MEM_WRITE"))
_HEADER_KEYS = quoted_keys(("coff", "optional"))
_COFF_KEYS = quoted_keys(("timestamp", "machine", "characteristics"))
_OPTIONAL_KEYS = quoted_keys(("subsystem", "dll_characteristics", "magic"))
HEADER_BINS = 10  # HeaderFileInfo's FeatureHasher width, for each of its five hashed parts
SECTION_BINS = 50  # SectionInfo's FeatureHasher width (not a power of two: its columns are a modulo)
assert SectionRow.ENTRY_PROPERTIES - SectionRow.ENTRY_NAME == SECTION_BINS
# the row's layout as constants the compiled code folds in
_COUNTS, _ENTRY_NAME, _ENTRY_PROPERTIES = SectionRow.COUNTS, SectionRow.ENTRY_NAME, SectionRow.ENTRY_PROPERTIES
_CODES, _SIZES, _ENTROPIES, _VSIZES = SectionRow.CODES, SectionRow.SIZES, SectionRow.ENTROPIES, SectionRow.VSIZES
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


@njit(cache=False, nogil=True)
def _column(h, width):  # pragma: no cover - compiled
    """FeatureHasher's column of a string token of hash ``h`` (StringHasher.code's rule)."""
    if h == -(1 << 31):
        return (2147483647 - (width - 1)) % width
    if width & (width - 1) == 0:  # a power of two: a mask, not a 64-bit division (~40 cycles)
        return abs(h) & (width - 1)
    return abs(h) % width


@njit(cache=False, nogil=True)
def _add_hashed(row, h, width):  # pragma: no cover - compiled
    """FeatureHasher's +1 / -1 of one string token of hash ``h``, added to its column."""
    row[_column(h, width)] += 1.0 if h >= 0 else -1.0


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


@njit(cache=False, nogil=True)
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


@njit(cache=False, nogil=True)
def _same(data, a, b, length, folded):  # pragma: no cover - compiled
    for k in range(length):
        x, y = data[a + k], data[b + k]
        if folded:
            x, y = _lower(x), _lower(y)
        if x != y:
            return False
    return True


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


@njit(cache=False, nogil=True)
def _key_then_colon(data, i, end, key):  # pragma: no cover - compiled
    """The index of the value after ``key`` (its quoted bytes) and a colon at data[i], or -1 (also
    where i is -1, a failed step before)."""
    if i < 0 or i + key.shape[0] > end:
        return -1
    for k in range(key.shape[0]):
        if data[i + k] != key[k]:
            return -1
    i = _skip(data, i + key.shape[0], end)
    if i >= end or data[i] != 0x3A:  # :
        return -1
    return _skip(data, i + 1, end)


@njit(cache=False, nogil=True)
def _after_comma(data, i, end):  # pragma: no cover - compiled
    """The index of what follows the comma at data[i] (blanks before and after it), or -1."""
    if i < 0:
        return -1
    i = _skip(data, i, end)
    if i >= end or data[i] != 0x2C:  # ,
        return -1
    return _skip(data, i + 1, end)


@njit(cache=False, nogil=True)
def _in_object(data, i, end):  # pragma: no cover - compiled
    """The index of the first member of the object at data[i] (blanks after its ``{``), or -1."""
    if i < 0 or i >= end or data[i] != 0x7B:  # {
        return -1
    return _skip(data, i + 1, end)


@njit(cache=False, nogil=True)
def _exact_number(data, i, end, key):  # pragma: no cover - compiled
    """(value, index after it and the blank after it) of ``key: <integer below MAX_EXACT>`` at data[i], or (0, -1)."""
    i = _key_then_colon(data, i, end, key)
    if i < 0:
        return np.int64(0), -1
    value, j = _integer(data, i, end)
    if j < 0 or value >= MAX_EXACT:
        return np.int64(0), -1
    return value, _skip(data, j, end)


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
        i = _key_then_colon(data, _in_object(data, i, end), end, name_key)
        if i < 0:
            return -1
        close = _string_end(data, i, end)
        if close < 0:
            return -1
        size, i = _exact_number(data, _after_comma(data, close + 1, end), end, size_key)
        address, i = _exact_number(data, _after_comma(data, i, end), end, address_key)
        if i < 0 or i >= end or data[i] != 0x7D:  # }
            return -1
        if slot < DIRECTORY_SLOTS:
            row[2 * slot] = np.float32(size)
            row[2 * slot + 1] = np.float32(address)
        slot += 1
        i, closed = _after_member(data, i + 1, end, 0x5D)
        if closed:
            return i


@njit(cache=False, nogil=True, inline="always")
def _digits_end(data, i, end):  # pragma: no cover - compiled
    while i < end and 0x30 <= data[i] <= 0x39:
        i += 1
    return i


@njit(cache=False, nogil=True)
def _number_end(data, i, end):  # pragma: no cover - compiled
    """The index after the JSON number at data[i] (its grammar exactly: ``-? (0 | [1-9][0-9]*)
    (. [0-9]+)? ([eE] [+-]? [0-9]+)?``), or -1; its value is orjson's to read."""
    if i < end and data[i] == 0x2D:  # -
        i += 1
    if i >= end or not 0x30 <= data[i] <= 0x39:
        return -1
    i = i + 1 if data[i] == 0x30 else _digits_end(data, i, end)
    if i < end and data[i] == 0x2E:  # .
        after = _digits_end(data, i + 1, end)
        if after == i + 1:
            return -1
        i = after
    if i < end and (data[i] == 0x65 or data[i] == 0x45):  # e E
        i += 1
        if i < end and (data[i] == 0x2B or data[i] == 0x2D):
            i += 1
        after = _digits_end(data, i, end)
        if after == i:
            return -1
        i = after
    return i


def _escape_table() -> np.ndarray:
    """ESCAPED[c]: the character a JSON escape of the letter c stands for, 0 where c is not a
    one-letter escape (\\u.... is left to the general path: its UTF-8 is orjson's to make)."""
    table = np.zeros(128, dtype=np.uint8)
    for letter, value in zip(b'"\\/bfnrt', b'"\\/\b\f\n\r\t'):
        table[letter] = value
    return table


_ESCAPED = _escape_table()


@njit(cache=False, nogil=True)
def _decoded_string(data, i, end, out):  # pragma: no cover - compiled
    """The string at data[i] (ASCII, one-letter escapes) decoded into ``out``: (the index after its
    closing quote, its length), or (-1, 0)."""
    if i < 0 or i >= end or data[i] != 0x22:
        return -1, 0
    i += 1
    length = 0
    while i < end:
        c = data[i]
        if c == 0x22:
            return i + 1, length
        if c < 0x20 or c > 0x7F:  # control, non-ASCII
            return -1, 0
        if c == 0x5C:  # backslash
            i += 1
            if i >= end or data[i] > 0x7F or _ESCAPED[data[i]] == 0:
                return -1, 0
            c = _ESCAPED[data[i]]
        out[length] = c
        length += 1
        i += 1
    return -1, 0


@njit(cache=False, nogil=True)
def _after_key(data, i, end, key):  # pragma: no cover - compiled
    """The value's index after ``, key:`` at data[i] (blanks first), or -1."""
    return _key_then_colon(data, _after_comma(data, i, end), end, key)


@njit(cache=False, nogil=True)
def _property_bit(name, length):  # pragma: no cover - compiled
    """The bit of a section property the counts look at (READ 1, EXECUTE 2, WRITE 4), else 0."""
    for b in range(len(_PROPERTIES)):
        known = _PROPERTIES[b]
        if length == known.shape[0]:
            same = True
            for k in range(length):
                if name[k] != known[k]:
                    same = False
                    break
            if same:
                return 1 << b
    return 0


@njit(cache=False, nogil=True)
def _code(h, width):  # pragma: no cover - compiled
    """StringHasher's signed code of a token of hash ``h``: column + 1, negated where FeatureHasher adds -1."""
    return _column(h, width) + 1 if h >= 0 else -(_column(h, width) + 1)


@njit(cache=False, nogil=True)
def _section(data, i, end, row, line, entropies, written, targets, count, decoded):  # pragma: no cover - compiled
    """The section block's object at data[i] into ``row`` (the line's float64 row, laid out as
    ``line_scanner.SectionRow``; the caller has zeroed it), each entropy's text appended to
    ``entropies`` after ``written`` bytes (comma separated) and its cell in ``targets[count]``
    (line, column): (the index after its ``}``, written, count), or -1 first where it is not in
    ember's form: ``{"entry": s, "sections": [{"name": s, "size": n, "entropy": x, "vsize": n,
    "props": [s, ...]}, ...]}``, every string ASCII with one-letter escapes at most (decoded in
    ``decoded``'s three rows: entry, name, property), sizes integers below 2**53, at most
    SECTION_SLOTS sections."""
    entry_key, sections_key = _SECTION_BLOCK_KEYS
    name_key, size_key, entropy_key, vsize_key, props_key = _SECTION_KEYS
    entry, name, prop = decoded[0], decoded[1], decoded[2]
    i, entry_length = _decoded_string(data, _key_then_colon(data, _in_object(data, i, end), end, entry_key), end, entry)
    i = _after_key(data, i, end, sections_key)
    if i < 0 or i >= end or data[i] != 0x5B:  # [
        return -1, written, count
    i = _skip(data, i + 1, end)
    slot = 0
    closed = i < end and data[i] == 0x5D
    if closed:
        i += 1
    while not closed:
        if slot == SECTION_SLOTS:
            return -1, written, count
        i, name_length = _decoded_string(
            data, _key_then_colon(data, _in_object(data, i, end), end, name_key), end, name
        )
        size, i = _exact_number(data, _after_comma(data, i, end), end, size_key)
        entropy = _after_key(data, i, end, entropy_key)
        entropy_end = _number_end(data, entropy, end) if entropy >= 0 else -1
        vsize, i = _exact_number(data, _after_comma(data, entropy_end, end), end, vsize_key)
        i = _after_key(data, i, end, props_key)
        if i < 0 or i >= end or data[i] != 0x5B:  # [
            return -1, written, count
        in_entry = name_length == entry_length
        for k in range(name_length if in_entry else 0):
            if name[k] != entry[k]:
                in_entry = False
                break
        bits = 0
        i = _skip(data, i + 1, end)
        listed = i < end and data[i] == 0x5D
        if listed:
            i += 1
        while not listed:
            i, length = _decoded_string(data, i, end, prop)
            if i < 0:
                return -1, written, count
            bits |= _property_bit(prop, length)
            if in_entry:
                h = murmurhash3_32(prop, 0, length)
                _add_hashed(row[_ENTRY_PROPERTIES : _ENTRY_PROPERTIES + SECTION_BINS], h, SECTION_BINS)
            i, listed = _after_member(data, i, end, 0x5D)
            if i < 0:
                return -1, written, count
        i = _skip(data, i, end)
        if i >= end or data[i] != 0x7D:  # }
            return -1, written, count
        row[_COUNTS] += 1
        row[_COUNTS + 1] += size == 0
        row[_COUNTS + 2] += name_length == 0
        row[_COUNTS + 3] += bits & 3 == 3
        row[_COUNTS + 4] += bits & 4 != 0
        row[_CODES + slot] = _code(murmurhash3_32(name, 0, name_length), SECTION_BINS)
        row[_SIZES + slot] = size
        row[_VSIZES + slot] = vsize
        if count:
            entropies[written] = 0x2C  # ,
            written += 1
        entropies[written : written + entropy_end - entropy] = data[entropy:entropy_end]
        written += entropy_end - entropy
        targets[count, 0], targets[count, 1] = line, _ENTROPIES + slot
        count += 1
        slot += 1
        i, closed = _after_member(data, i + 1, end, 0x5D)
        if i < 0:
            return -1, written, count
    i = _skip(data, i, end)
    if i >= end or data[i] != 0x7D:  # }
        return -1, written, count
    for k in range(entry_length):  # the quirk: one token per character of the entry's name
        h = murmurhash3_32(entry, k, 1)
        _add_hashed(row[_ENTRY_NAME : _ENTRY_NAME + SECTION_BINS], h, SECTION_BINS)
    return i + 1, written, count


@njit(cache=False, nogil=True)
def _hashed_string(data, i, end, part, decoded):  # pragma: no cover - compiled
    """The string at data[i] (as ``_decoded_string`` takes it) hashed into ``part`` (a
    FeatureHasher row of string tokens): the index after it, or -1."""
    i, length = _decoded_string(data, i, end, decoded)
    if i >= 0:
        _add_hashed(part, murmurhash3_32(decoded, 0, length), part.shape[0])
    return i


@njit(cache=False, nogil=True)
def _hashed_strings(data, i, end, part, decoded):  # pragma: no cover - compiled
    """The list of strings at data[i] hashed into ``part``: the index after its ``]``, or -1."""
    if i < 0 or i >= end or data[i] != 0x5B:  # [
        return -1
    i = _skip(data, i + 1, end)
    if i < end and data[i] == 0x5D:
        return i + 1
    closed = False
    while not closed:
        i = _hashed_string(data, i, end, part, decoded)
        if i < 0:
            return -1
        i, closed = _after_member(data, i, end, 0x5D)
    return i


@njit(cache=False, nogil=True)
def _header(data, i, end, row, decoded, number_keys):  # pragma: no cover - compiled
    """The header block's object at data[i] into ``row`` (HeaderFileInfo's 62 values in float64,
    before its float32 cast; the caller has zeroed it): the index after its ``}``, or -1 where it
    is not in ember's form: ``{"coff": {"timestamp": n, "machine": s, "characteristics": [s, ...]},
    "optional": {"subsystem": s, "dll_characteristics": [s, ...], "magic": s, "major_image_version":
    n, ... "sizeof_heap_commit": n}}`` (``number_keys``: the quoted keys of those numbers; the
    numbers integers below 2**53, the strings as ``_decoded_string`` takes them)."""
    coff_key, optional_key = _HEADER_KEYS
    timestamp_key, machine_key, characteristics_key = _COFF_KEYS
    subsystem_key, dll_key, magic_key = _OPTIONAL_KEYS
    parts = row[1 : 1 + 5 * HEADER_BINS]
    i = _key_then_colon(data, _in_object(data, i, end), end, coff_key)
    timestamp, i = _exact_number(data, _in_object(data, i, end), end, timestamp_key)
    row[0] = timestamp
    i = _hashed_string(data, _after_key(data, i, end, machine_key), end, parts[:HEADER_BINS], decoded)
    i = _hashed_strings(
        data, _after_key(data, i, end, characteristics_key), end, parts[HEADER_BINS : 2 * HEADER_BINS], decoded
    )
    i = _skip(data, i, end) if i >= 0 else -1
    if i < 0 or i >= end or data[i] != 0x7D:  # }
        return -1
    i = _key_then_colon(data, _in_object(data, _after_key(data, i + 1, end, optional_key), end), end, subsystem_key)
    i = _hashed_string(data, i, end, parts[2 * HEADER_BINS : 3 * HEADER_BINS], decoded)
    i = _hashed_strings(data, _after_key(data, i, end, dll_key), end, parts[3 * HEADER_BINS : 4 * HEADER_BINS], decoded)
    i = _hashed_string(data, _after_key(data, i, end, magic_key), end, parts[4 * HEADER_BINS :], decoded)
    for k in range(len(number_keys)):
        value, i = _exact_number(data, _after_comma(data, i, end), end, number_keys[k])
        row[1 + 5 * HEADER_BINS + k] = value
    for _ in range(2):  # the optional object's }, then the block's
        i = _skip(data, i, end) if i >= 0 else -1
        if i < 0 or i >= end or data[i] != 0x7D:
            return -1
        i += 1
    return i


@cached
@njit(cache=False, nogil=True)
def scan_lines(
    data,
    bounds,
    values,
    histogram,
    byteentropy,
    imports,
    directories,
    printable,
    section,
    entropies,
    targets,
    header,
    header_numbers,
    text,
    text_bounds,
):  # pragma: no cover - compiled
    """Read the seven values of each line and write the line with placeholders in their place
    (the caller has left out, with values -1, every line holding a ``\\u0000`` escape).

    ``bounds[k]``: line k's (start, end) in ``data``; ``values[k]``: where each value starts (after
    its key's colon: histogram, byteentropy, imports, datadirectories, printabledist, section,
    header), -1
    where its key was not found (allowed for datadirectories alone: its row stays zero and no
    placeholder is written). Line k is taken when all its values read: its rows are filled
    (``imports``: the 256 library then the 1,024 function bins; ``section``: see ``_section``, its
    entropies' texts in ``entropies``, which starts with ``[``, their cells in ``targets``;
    ``header``: see ``_header``, with the quoted keys ``header_numbers``) and its
    rewritten text is ``text[text_bounds[k, 0]:text_bounds[k, 1]]``; otherwise its rows stay zero,
    it adds no entropy and its text bounds are (0, 0). Returns (lines taken, bytes of ``entropies``
    written, entropies)."""
    longest = 1
    for k in range(bounds.shape[0]):
        longest = max(longest, bounds[k, 1] - bounds[k, 0])
    scratch = np.empty(longest + 1, dtype=np.uint8)
    decoded = np.empty((3, longest + 1), dtype=np.uint8)  # the section block's entry, name and property
    keys = np.empty((4096, 2), dtype=np.int64)
    spans = np.empty((len(_PLACEHOLDER_TEXT), 2), dtype=np.int64)
    # the line's sums, kept small and hot (a row of the batch's output is cold: a miss an addition)
    # in float32, as the block holds them: exact, since a line of at most MAX_LINE bytes holds fewer
    # than 2**24 names, so every sum is an integer float32 represents
    hashed = np.zeros(LIBRARY_BINS + FUNCTION_BINS, dtype=np.float32)
    out = 0
    taken = 0
    written, count = 1, 0  # entropies[0] is the caller's "["
    for k in range(bounds.shape[0]):
        start, end = bounds[k, 0], bounds[k, 1]
        text_bounds[k, 0], text_bounds[k, 1] = 0, 0
        if (
            values[k, 0] < 0
            or values[k, 1] < 0
            or values[k, 2] < 0
            or values[k, 4] < 0
            or values[k, 5] < 0
            or values[k, 6] < 0
            or end - start > MAX_LINE
        ):
            continue
        line_written, line_count = written, count
        spans[0, 0] = _skip(data, start + values[k, 0], end)
        spans[0, 1] = _counts(data, spans[0, 0], end, histogram[k])
        spans[1, 0] = _skip(data, start + values[k, 1], end)
        spans[1, 1] = _counts(data, spans[1, 0], end, byteentropy[k])
        spans[2, 0] = _skip(data, start + values[k, 2], end)
        spans[2, 1] = _imports(data, spans[2, 0], end, hashed[:LIBRARY_BINS], hashed[LIBRARY_BINS:], scratch, keys)
        spans[4, 0] = _skip(data, start + values[k, 4], end)
        spans[4, 1] = _counts(data, spans[4, 0], end, printable[k])
        spans[5, 0] = _skip(data, start + values[k, 5], end)
        spans[5, 1], written, count = _section(
            data, spans[5, 0], end, section[k], k, entropies, written, targets, count, decoded
        )
        spans[6, 0] = _skip(data, start + values[k, 6], end)
        spans[6, 1] = _header(data, spans[6, 0], end, header[k], decoded[0], header_numbers)
        present = 7
        if values[k, 3] >= 0:
            spans[3, 0] = _skip(data, start + values[k, 3], end)
            spans[3, 1] = _directories(data, spans[3, 0], end, directories[k])
        else:  # no directories: a span past the line's end, sorted last and left out
            present = 6
            spans[3, 0], spans[3, 1] = end + 1, end + 1
        ok = True
        for m in range(spans.shape[0]):
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
            section[k, :] = 0
            header[k, :] = 0
            written, count = line_written, line_count
            hashed[:] = 0
            out = line_start  # the next line's text goes where this one's began
            continue
        imports[k, :] = hashed
        hashed[:] = 0
        text_bounds[k, 0], text_bounds[k, 1] = line_start, out
        taken += 1
    return taken, written, count
