"""A batch of raw EMBER JSON lines parsed with its biggest values read by a compiled pass.

``histogram``, ``byteentropy``, ``imports``, ``datadirectories`` and the strings block's
``printabledist`` are read from each line's bytes into the rows their blocks need
(:mod:`vigil.tasks.ember.line_kernels`); orjson parses the rest of the line, in which each of these
values is a placeholder string. orjson then has a quarter of the text to read and the blocks no
Python objects to walk for these: ``bench.ember_vectorize``'s whole batch time fell from ~2.9x to
1.84-1.95x the time of parsing the lines with orjson alone with the first three, then by 1-8 % of its
CPU time with the directories (their 15 small objects a line were a third of the Python objects
orjson still made) and by 3-9 % with printabledist (in-process A/Bs, least of 11 rounds). Its kernels
compile in 10-15 s, once a machine: the signed kernel cache (:mod:`vigil.kernel_cache`) keeps them,
and a later process loads them in 0.2-0.5 s. ``vectorize`` uses it for runs long enough to pay back
what it costs to have it (``vectorize.use_scanner``).

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

from dataclasses import dataclass
from itertools import accumulate, repeat

import numpy as np
import orjson

# The keys whose values are read, and the block each value is for: top-level keys but printabledist,
# which is the strings block's (the one value of it read: the block takes its other values from the record)
SCANNED_KEYS = ("histogram", "byteentropy", "imports", "datadirectories", "printabledist")
SCANNED_BLOCKS = ("histogram", "byteentropy", "imports", "datadirectories", "strings")
# key -> the top-level key whose object holds it, for a key read inside its block's object
NESTED = {key: block for key, block in zip(SCANNED_KEYS, SCANNED_BLOCKS) if key != block}
OPTIONAL = "datadirectories"  # absent from feature version 1 records: its row is then zero
# What each value is replaced by (JSON text; line_kernels writes it) and what orjson reads of it. A line
# is scanned only if it holds no \u0000 escape, so a string equal to one of these is its placeholder.
PLACEHOLDERS = (b'"\\u0000h"', b'"\\u0000b"', b'"\\u0000i"', b'"\\u0000d"', b'"\\u0000p"')
_PLACEHOLDER_VALUES = tuple(orjson.loads(text) for text in PLACEHOLDERS)
_KEYS = tuple(f'"{name}":'.encode() for name in SCANNED_KEYS)


@dataclass
class ScannedLines:
    """``records[k]``: line k's record with placeholders in the scanned blocks, or None where line k
    was not scanned (the caller parses it as it is); ``rows[name]``: that block's rows for every
    line, valid where ``records[k]`` is not None (counts as int64, imports as FeatureHasher's sums
    of the 256 library and 1,024 function bins side by side, directories as (size, address) of each
    slot, both in float32 as the blocks hold them)."""

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


# ember writes histogram, byteentropy and strings first, imports near the end (after the general
# block's own "imports" count) and datadirectories last: histogram, byteentropy and printabledist are
# looked for from the start, the others from the end (a key found elsewhere only leaves the line to
# the general path)
_SEARCHES = (bytes.find, bytes.find, bytes.rfind, bytes.rfind, bytes.find)


def _value_offsets(lines: list[bytes]) -> np.ndarray:
    """(len(lines), len(SCANNED_KEYS)) int64: where each scanned key's value starts in each line (after the colon),
    -1 where the key is not there; each key looked for in every line by one C-level map."""
    values = np.empty((len(lines), len(_KEYS)), dtype=np.int64)
    for column, (search, key) in enumerate(zip(_SEARCHES, _KEYS)):
        found = np.fromiter(map(search, lines, repeat(key)), dtype=np.int64, count=len(lines))
        values[:, column] = np.where(found >= 0, found + len(key), -1)
    return values


_compiled = False


def compile_kernels() -> None:
    """Compile the scanner now (10-15 s on the reference machine): a parent that forks workers
    calls it first, so each worker inherits the compiled code instead of compiling it again."""
    scan_lines([b"{}"])


def scanner_compiled() -> bool:
    """Whether this process has compiled the scanner (using it is then free of that cost)."""
    return _compiled


def scanner_cached() -> bool:
    """Whether the signed kernel cache holds the scanner (:mod:`vigil.kernel_cache`): a process
    then has it in 0.2-0.5 s instead of 10-15 s."""
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
    # a placeholder can be longer than the value it replaces ("{}", "[]"): room for all of them a line
    text = np.empty(len(data) + n * len(PLACEHOLDERS) * len(PLACEHOLDERS[0]), dtype=np.uint8)
    text_bounds = np.empty((n, 2), dtype=np.int64)
    line_kernels.scan_lines(
        data,
        bounds,
        values,
        histogram,
        byteentropy,
        imports,
        directories,
        printable,
        text,
        text_bounds,
    )
    _compiled = True
    view = memoryview(text.data)  # orjson reads a memoryview without a copy
    records: list[dict | None] = []
    without_directories = (values[:, SCANNED_KEYS.index(OPTIONAL)] < 0).tolist()
    for (start, end), absent in zip(text_bounds.tolist(), without_directories):
        records.append(_placeheld_record(view[start:end], absent) if end > start else None)
    rows: dict[str, np.ndarray] = dict(zip(SCANNED_BLOCKS, (histogram, byteentropy, imports, directories, printable)))
    return ScannedLines(records, rows)


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
