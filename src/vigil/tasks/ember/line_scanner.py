"""A batch of raw EMBER JSON lines parsed with its biggest values read by a compiled pass.

``histogram``, ``byteentropy``, ``imports``, ``datadirectories``, ``section``, ``header`` and
the strings block's ``printabledist`` are read from each line's bytes into the rows their blocks
need (:mod:`vigil.tasks.ember.line_kernels`); orjson parses the rest of the line, in which each of
these values is a placeholder string. orjson then has a tenth of the text to read and the blocks no
Python objects to walk for these: ``bench.ember_vectorize``'s whole batch time fell from ~2.9x to
1.84-1.95x the time of parsing the lines with orjson alone with the first three, then by 1-8 % of
its CPU time with the directories (their 15 small objects a line were a third of the Python objects
orjson still made), by 3-9 % with printabledist, by 13-22 % with the section block and by another
~10 % with the header block (in-process A/Bs, least of 11 rounds). Its kernels compile in 15-25 s,
once a machine: the signed kernel cache (:mod:`vigil.kernel_cache`) keeps them, and a later process
loads them in 0.2-0.5 s. ``vectorize`` uses it for runs long enough to pay back what it costs to
have it (``vectorize.use_scanner``).

Why the rows belong to the record: a line is scanned only if it holds no ``\\u0000`` escape, so a
string equal to a placeholder can only be the one written in place of its value. If orjson finds
each placeholder under its own key (printabledist's in the strings object, the others at the top
level; and no ``datadirectories`` key where none was found and replaced: a v1 record, read as an
empty list), each value replaced was that key's value in the
original line (the text before it is the same, so the parser was at the same place, and each was read
in full as a plain JSON value), and the original line parses to the same record with the values the
kernel read. Where anything differs (a key not found, or found inside another value, a value in
another form, a placeholder elsewhere, text orjson refuses) the line is left to the general path,
which reads and reports it exactly as before.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from itertools import accumulate, repeat

import numpy as np
import orjson

# The keys whose values are read, and the block each value is for: top-level keys but printabledist,
# which is the strings block's (the one value of it read: the block takes its other values from the record)
SCANNED_KEYS = ("histogram", "byteentropy", "imports", "datadirectories", "printabledist", "section", "header")
SCANNED_BLOCKS = ("histogram", "byteentropy", "imports", "datadirectories", "strings", "section", "header")
# key -> the top-level key whose object holds it, for a key read inside its block's object
NESTED = {key: block for key, block in zip(SCANNED_KEYS, SCANNED_BLOCKS) if key != block}
OPTIONAL = "datadirectories"  # absent from feature version 1 records: its row is then zero
# What each value is replaced by (JSON text; line_kernels writes it) and what orjson reads of it. A line
# is scanned only if it holds no \u0000 escape, so a string equal to one of these is its placeholder.
PLACEHOLDERS = (b'"\\u0000h"', b'"\\u0000b"', b'"\\u0000i"', b'"\\u0000d"', b'"\\u0000p"', b'"\\u0000s"', b'"\\u0000r"')
_PLACEHOLDER_VALUES = tuple(orjson.loads(text) for text in PLACEHOLDERS)
_KEYS = tuple(f'"{name}":'.encode() for name in SCANNED_KEYS)
SECTION_SLOTS = 32  # sections read a line (ember's files have 1-10); a line with more is left to the general path


class SectionRow:
    """The columns of a line's float64 row for the section block, as the scanner fills it: the
    block's five counts, its two hashed parts over the entry (exact sums of +1 / -1), then each
    section's name (its StringHasher code, 0 in a slot past the last section), size, entropy and
    vsize in slots, for the block to hash the (name, number) pairs as FeatureHasher adds them."""

    COUNTS = 0  # sections, of size 0, unnamed, readable and executable, writable
    ENTRY_NAME = 5  # 50: one token per character of the entry's name
    ENTRY_PROPERTIES = 55  # 50: the properties of the sections named as the entry
    CODES = 105
    SIZES = CODES + SECTION_SLOTS
    ENTROPIES = SIZES + SECTION_SLOTS
    VSIZES = ENTROPIES + SECTION_SLOTS
    WIDTH = VSIZES + SECTION_SLOTS


@dataclass
class ScannedLines:
    """``records[k]``: line k's record with placeholders in the scanned blocks, or None where line k
    was not scanned (the caller parses it as it is); ``rows[name]``: that block's rows for every
    line, valid where ``records[k]`` is not None (counts as int64, imports as FeatureHasher's sums
    of the 256 library and 1,024 function bins side by side, directories as (size, address) of each
    slot, both in float32 as the blocks hold them; the header's 62 values and the section block's
    ``SectionRow`` in float64, as the blocks have them before their float32 cast)."""

    records: list[dict | None]
    rows: dict[str, np.ndarray]

    @classmethod
    def unscanned(cls, n: int) -> ScannedLines:
        """n lines left to the general path."""
        return cls([None] * n, {})

    def rows_of(self, lines: list[int]) -> dict[str, np.ndarray]:
        """The blocks' rows of these lines, in this order (the rows themselves where it is all of them)."""
        if lines == list(range(len(self.records))):
            return self.rows
        return {name: rows[lines] for name, rows in self.rows.items()}


# ember writes histogram, byteentropy and strings first, then general, header and section, imports
# near the end (after the general block's own "imports" count) and datadirectories last: imports and
# datadirectories are looked for from the end, histogram, byteentropy and printabledist from the
# start, header and section from printabledist's value on (past the ~4 KB of counts before it;
# section from the end would meet a library named so first). A key found elsewhere only leaves the
# line to the general path.
_SEARCHES = (bytes.find, bytes.find, bytes.rfind, bytes.rfind, bytes.find, bytes.find, bytes.find)
_SEARCHED_AFTER = {SCANNED_KEYS.index(key): SCANNED_KEYS.index("printabledist") for key in ("section", "header")}


def _value_offsets(lines: list[bytes]) -> np.ndarray:
    """(len(lines), len(SCANNED_KEYS)) int64: where each scanned key's value starts in each line (after the colon),
    -1 where the key is not there; each key looked for in every line by one C-level map."""
    values = np.empty((len(lines), len(_KEYS)), dtype=np.int64)
    for column, (search, key) in enumerate(zip(_SEARCHES, _KEYS)):
        if column in _SEARCHED_AFTER:
            starts = np.maximum(values[:, _SEARCHED_AFTER[column]], 0).tolist()
            found = np.fromiter(map(search, lines, repeat(key), starts), dtype=np.int64, count=len(lines))
        else:
            found = np.fromiter(map(search, lines, repeat(key)), dtype=np.int64, count=len(lines))
        values[:, column] = np.where(found >= 0, found + len(key), -1)
    return values


_compiled = False


def compile_kernels() -> None:
    """Compile the scanner now (15-25 s on the reference machine): a parent that forks workers
    calls it first, so each worker inherits the compiled code instead of compiling it again."""
    scan_lines([b"{}"])


def scanner_compiled() -> bool:
    """Whether this process has compiled the scanner (using it is then free of that cost)."""
    return _compiled


def scanner_cached() -> bool:
    """Whether the signed kernel cache holds the scanner (:mod:`vigil.kernel_cache`): a process
    then has it in 0.2-0.5 s instead of 15-25 s."""
    from vigil.kernel_cache import holds
    from vigil.tasks.ember import line_kernels

    return holds(line_kernels.scan_lines)


BACKSLASHES_LOOKED_AT = 4096  # a batch with more backslashes than this is searched by numpy


def _lines_with_nul_escape(joined: bytes, bounds: np.ndarray) -> np.ndarray:
    """Indices of the lines of ``joined`` holding a ``\\u0000`` escape. ember's
    records hold few backslashes (~1 line in 20, tens a line), so each is found by ``bytes.find``
    (memchr) and the 5 bytes after it compared: ~30x less than numpy's compare of every byte.
    (``bytes.find`` of the whole needle is slow: JSON numbers are full of its zeros.) A batch of
    many backslashes is searched with numpy over the whole batch."""
    found, at, looked = [], joined.find(b"\\"), 0
    while at >= 0 and looked <= BACKSLASHES_LOOKED_AT:
        if joined.startswith(b"u0000", at + 1):
            found.append(at)
        at, looked = joined.find(b"\\", at + 1), looked + 1
    starts = np.array(found, dtype=np.int64)
    if at >= 0:  # more than BACKSLASHES_LOOKED_AT: all of them by numpy
        data = np.frombuffer(joined, dtype=np.uint8)
        starts = np.flatnonzero(data[: max(len(data) - 5, 0)] == 0x5C)
        for offset, byte in enumerate(b"u0000", start=1):
            starts = starts[data[starts + offset] == byte]
    return np.searchsorted(bounds[:, 1], starts, side="right")


def scan_lines(lines: list[bytes]) -> ScannedLines:
    """Scan a batch of raw JSON lines (bytes): see the module's docstring."""
    global _compiled
    from vigil.tasks.ember import line_kernels
    from vigil.tasks.ember.features import HeaderFileInfo  # loaded already where records are vectorized

    n = len(lines)
    lengths = np.fromiter(map(len, lines), dtype=np.int64, count=n)
    bounds = np.empty((n, 2), dtype=np.int64)
    bounds[:, 1] = np.fromiter(accumulate(lengths), dtype=np.int64, count=n)
    bounds[:, 0] = bounds[:, 1] - lengths
    values = _value_offsets(lines)
    joined = b"".join(lines)
    data = np.frombuffer(joined, dtype=np.uint8)
    values[_lines_with_nul_escape(joined, bounds)] = -1
    histogram = np.zeros((n, line_kernels.COUNTS), dtype=np.int64)
    byteentropy = np.zeros((n, line_kernels.COUNTS), dtype=np.int64)
    imports = np.empty((n, line_kernels.LIBRARY_BINS + line_kernels.FUNCTION_BINS), dtype=np.float32)
    directories = np.zeros((n, 2 * line_kernels.DIRECTORY_SLOTS), dtype=np.float32)
    printable = np.zeros((n, line_kernels.PRINTABLE_COUNTS), dtype=np.int64)
    section = np.zeros((n, SectionRow.WIDTH), dtype=np.float64)
    # every entropy's text, comma separated, for one orjson call (exact float parsing is orjson's):
    # at most the batch's bytes, a comma and a cell each
    entropies = np.empty(len(data) + n * SECTION_SLOTS + 2, dtype=np.uint8)
    entropies[0] = ord("[")
    targets = np.empty((n * SECTION_SLOTS, 2), dtype=np.int64)
    header = np.zeros((n, HeaderFileInfo.dim), dtype=np.float64)
    # a placeholder can be longer than the value it replaces ("{}", "[]"): room for all of them a line
    text = np.empty(len(data) + n * len(PLACEHOLDERS) * len(PLACEHOLDERS[0]), dtype=np.uint8)
    text_bounds = np.empty((n, 2), dtype=np.int64)
    _, written, count = line_kernels.scan_lines(
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
        quoted_keys(HeaderFileInfo._optional_numbers),
        text,
        text_bounds,
    )
    _compiled = True
    if count:
        entropies[written] = ord("]")
        _place_entropies(memoryview(entropies.data)[: written + 1], targets[:count], section, text_bounds)
    view = memoryview(text.data)  # orjson reads a memoryview without a copy
    records: list[dict | None] = []
    without_directories = (values[:, SCANNED_KEYS.index(OPTIONAL)] < 0).tolist()
    for (start, end), absent in zip(text_bounds.tolist(), without_directories):
        records.append(_placeheld_record(view[start:end], absent) if end > start else None)
    rows: dict[str, np.ndarray] = dict(
        zip(SCANNED_BLOCKS, (histogram, byteentropy, imports, directories, printable, section, header))
    )
    return ScannedLines(records, rows)


@functools.cache
def quoted_keys(keys: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """Each key's quoted bytes as the kernels compare them."""
    return tuple(np.frombuffer(f'"{key}"'.encode(), dtype=np.uint8) for key in keys)


def _place_entropies(text: memoryview, targets: np.ndarray, section: np.ndarray, text_bounds: np.ndarray) -> None:
    """The sections' entropies (a JSON list of the numbers as written) parsed by orjson, as the
    general path parses them, into their cells. Where orjson refuses the list (a number past
    float64's range, which the general path reads with ``json``), each number is parsed alone and the
    lines of those it refuses are left to the general path."""
    try:
        numbers = np.fromiter(orjson.loads(text), dtype=np.float64, count=len(targets))
    except orjson.JSONDecodeError:
        parsed: list[float | None] = []
        for number in bytes(text[1:-1]).split(b","):
            try:
                parsed.append(float(orjson.loads(number)))
            except orjson.JSONDecodeError:
                parsed.append(None)
        refused = np.array([value is None for value in parsed])
        text_bounds[np.unique(targets[refused, 0])] = 0
        numbers = np.array([0.0 if value is None else value for value in parsed])
    section[targets[:, 0], targets[:, 1]] = numbers


def _placeheld_record(text: memoryview, without_directories: bool) -> dict | None:
    """The record of a rewritten line if orjson reads it and finds each placeholder under its key
    (and no directories key where the line had none to replace)."""
    try:
        record = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if type(record) is not dict:
        return None
    for name, placeholder in zip(SCANNED_KEYS, _PLACEHOLDER_VALUES):
        holder = record.get(NESTED[name]) if name in NESTED else record
        if type(holder) is not dict:
            return None
        if name == OPTIONAL and without_directories:
            if name in holder:
                return None
        elif holder.get(name) != placeholder:
            return None
    return record
