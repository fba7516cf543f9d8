"""EMBER's PE feature blocks: raw features from PE bytes (LIEF), vectors from raw features.

Every block is a small class with a ``name`` (its key in the raw JSON record), a ``dim``,
``raw_features(bytez, binary)`` and ``process_raw_features(raw)``; the extractor is the ordered
list of blocks. The vectors reproduce elastic/ember's ``features.py`` exactly for the same raw
record (float32, same hashing, same arithmetic order), including one quirk: ember hands the entry
section name to ``FeatureHasher`` as a bare string, which the scikit-learn of its time iterated
character by character, so each character of the entry name is one hashed token.

Raw features are read with LIEF 1.0, whose API and enum names differ from the LIEF 0.9-0.12 ember
was written for. Where LIEF 1.0 renamed something, the old name is written, so raw records stay
comparable with the published EMBER data:

* header ``characteristics``: LIEF 1.0 says ``NEED_32BIT_MACHINE``, LIEF <= 0.12 said
  ``CHARA_32BIT_MACHINE`` (the name is hashed, so the vector depends on it);
* datadirectories ``name``: LIEF 1.0 says ``DEBUG_DIR``, LIEF <= 0.12 said ``DEBUG`` (not part of
  the vector, only of the raw record);
* parse errors: LIEF 1.0 returns ``None`` instead of raising ``lief.bad_format`` & co.; either way
  the file gets ember's fallback record (byte-level blocks filled, PE blocks empty);
* enum values outside LIEF's enums (malformed headers) are written ``???`` as old LIEF printed them;
* names (sections, imports, exports): the bytes decoded as ASCII with backslash escapes, as LIEF
  0.9-0.12's bindings did (LIEF 1.0 returns ``str`` for UTF-8 names, ``bytes`` for the others);
* flag lists in the order old LIEF's Python ``set`` listed them (:func:`_legacy_flag_order`);
* forwarded exports named by their forwarder string; ``has_relocations``, ``has_debug`` and the 16
  data directories as LIEF 0.9-0.12 derived them from the directories (see each block).

``python -m bench.ember_parity`` compares records with ember + LIEF 0.12.3's on a Debian PE corpus.

Example::

    >>> extractor = FeatureExtractor(feature_version=2)          # doctest: +SKIP
    >>> raw = extractor.raw_features(open("t64.exe", "rb").read())
    >>> vector = extractor.process_raw_features(raw)            # float32, shape (2381,)
"""

from __future__ import annotations

import hashlib
import logging
import struct
import warnings
from itertools import chain, compress, repeat
from operator import eq, itemgetter, not_
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import numpy as np
from sklearn.feature_extraction import FeatureHasher

from vigil.tasks.ember.pe_header import section_table_refusal

log = logging.getLogger(__name__)
# LIEF 1.0 warns once per out-of-range enum value of a malformed header; such values become "???".
warnings.filterwarnings("ignore", message=r"-?\d+ is not a valid ", category=RuntimeWarning)

FEATURE_VERSIONS = (1, 2)
DIMS = {1: 2351, 2: 2381}

# LIEF 1.0 name -> the name LIEF <= 0.12 (and so the published EMBER data) used.
_LEGACY_HEADER_CHARACTERISTICS = {"NEED_32BIT_MACHINE": "CHARA_32BIT_MACHINE"}


# The byte-level blocks are compiled loops over the bytes (byte_kernels.py) that hold a few counters,
# not copies of the data; what is still numpy (windows that are not whole steps) reads this many
# bytes at a time, so no block's memory grows with the file.
CHUNK_BYTES = 1 << 20


def _byte_kernels():
    """The compiled passes, imported (and so numba) only once a file is extracted: the CLI and the
    service start without paying numba's import."""
    from vigil.tasks.ember import byte_kernels

    return byte_kernels


def _hasher(n_features: int, input_type: str) -> FeatureHasher:
    return FeatureHasher(n_features, input_type=input_type)


def _hash_rows(hasher: FeatureHasher, samples: list) -> np.ndarray:
    """FeatureHasher on many samples at once: float64, shape (len(samples), n_features).

    Each row is hashed on its own (one CSR row, duplicates summed within it), so row i equals
    hashing sample i alone; one call per batch saves FeatureHasher's per-call overhead.
    """
    return hasher.transform(samples).toarray()


# Distinct tokens whose column a StringHasher remembers (EMBER's import names repeat across files;
# past this many the others are hashed each time, so the memory stays bounded on any corpus).
TOKEN_TABLE_LIMIT = 1 << 19


class _TokenCodes(dict):
    """token -> signed column code (column + 1 where FeatureHasher adds +1, -(column + 1) for -1);
    a missing token is hashed as FeatureHasher hashes it (murmurhash3 of its UTF-8, seed 0)."""

    def __init__(self, owner: StringHasher, prefix: str = ""):
        super().__init__()
        self.owner, self.prefix = owner, prefix

    def __missing__(self, token):
        code = self.owner.code(self.prefix + token if self.prefix else token)
        if self.owner.room > 0:
            self.owner.room -= 1
            self[token] = code
        return code


def _signs(codes: np.ndarray) -> np.ndarray:
    """+1.0 / -1.0, the value FeatureHasher gives each token of these signed codes (never 0); np.sign
    then a cast is ~2x faster than np.where with two float scalars."""
    return np.sign(codes).astype(np.float64)


class StringHasher:
    """``FeatureHasher(n_features, input_type="string")`` over a batch, each distinct token hashed once.

    FeatureHasher's values for string tokens are +1 / -1 (its alternate sign), summed per row: integer
    sums, the same in any order, so the dense rows here (one ``bincount`` for the whole batch) equal
    ``FeatureHasher.transform(samples).toarray()`` exactly. The columns come from a table of the
    tokens seen before: a dict lookup (run by ``map`` in C) instead of encoding and hashing each
    token again, which is most of the time for EMBER's ~160 import names a record.
    """

    def __init__(self, n_features: int):
        self.n_features = n_features
        self.room = TOKEN_TABLE_LIMIT
        self.codes = _TokenCodes(self)
        self._prefixed: dict[str, _TokenCodes] = {}

    def code(self, token) -> int:
        """FeatureHasher's column and sign of one token, as a signed code."""
        from sklearn.utils import murmurhash3_32

        if isinstance(token, str):
            data = token.encode("utf-8")
        elif isinstance(token, bytes):
            data = token
        else:
            raise TypeError("feature names must be strings")
        h = murmurhash3_32(data, seed=0)
        # FeatureHasher's column: abs(h) % n, with abs(-2**31) taken as 2**31 - 1 - (n - 1) (its rule)
        column = (2147483647 - (self.n_features - 1)) % self.n_features if h == -(2**31) else abs(h) % self.n_features
        return column + 1 if h >= 0 else -(column + 1)

    def prefixed(self, prefix: str) -> _TokenCodes:
        """The table of ``prefix + token`` keyed by ``token`` (imports: ``"kernel32.dll:" + name``),
        so the joined strings are built only for tokens not seen before."""
        table = self._prefixed.get(prefix)
        if table is None:
            if self.room <= 0:
                return _TokenCodes(self, prefix)
            table = self._prefixed[prefix] = _TokenCodes(self, prefix)
        return table

    def rows(self, samples: list) -> np.ndarray:
        """float64 (len(samples), n_features): row i = FeatureHasher on ``samples[i]`` alone."""
        if samples and isinstance(samples[0], str):
            raise ValueError(
                "Samples can not be a single string. The input must be an iterable over iterables of strings."
            )
        return self.from_parts([self.listed_part(samples)], len(samples))

    def transform(self, samples: list):
        """FeatureHasher's sparse answer (CSR, float64) for code that asks which bin a token lands
        in (``explain.py``); the same values, without the explicit zeros of cancelled tokens."""
        from scipy import sparse

        return sparse.csr_array(self.rows(samples))

    def codes_of(self, tokens: Iterable, count: int) -> np.ndarray:
        """The signed codes of ``count`` tokens from the table; a token that is not a string raises
        TypeError, as in FeatureHasher."""
        return np.fromiter(map(self.codes.__getitem__, tokens), dtype=np.int64, count=count)

    def single_part(self, tokens: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """A :meth:`from_parts` part of one token a row."""
        return np.arange(len(tokens)), self.codes_of(tokens, len(tokens))

    def listed_part(self, samples: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """A :meth:`from_parts` part of a list of tokens a row."""
        counts = np.fromiter(map(len, samples), dtype=np.intp, count=len(samples))
        return np.repeat(np.arange(len(samples)), counts), self.codes_of(
            chain.from_iterable(samples), int(counts.sum())
        )

    def from_parts(self, parts: list[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
        """float64 (n, len(parts) * n_features): several hashed blocks side by side in one bincount.

        Part k is (row of each token, its signed code); its columns are row i of FeatureHasher on
        the tokens of row i alone (the +1 / -1 values are summed exactly in any order)."""
        width = len(parts) * self.n_features
        flat = np.concatenate(
            [rows * width + (k * self.n_features - 1) + np.abs(codes) for k, (rows, codes) in enumerate(parts)]
        )
        weights = _signs(np.concatenate([codes for _, codes in parts]))
        return np.bincount(flat, weights=weights, minlength=n * width).reshape(n, width)

    def from_codes(self, codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Dense rows from signed codes, ``lengths[i]`` of them for row i, in order."""
        return self.from_parts([(np.repeat(np.arange(len(lengths)), lengths), codes)], len(lengths))


def _integer_rows(rows: list, width: int) -> np.ndarray | None:
    """An int64 (n, width) matrix of ``rows`` when every row is a list or tuple of ``width`` Python
    ints (JSON integers, the usual counts), else None.

    ``np.array`` of such rows first looks at every value to choose the dtype, then converts it;
    ``np.fromiter`` into int64 converts once (~1.5x faster on 256 x 256 counts). It would also take
    a float (truncated) or a numeric string, so the types are made sure of first: ``sum`` of ints is
    an int, one float makes it a float, and anything but a number raises.
    """
    if not rows or not set(map(type, rows)) <= {list, tuple} or set(map(len, rows)) != {width}:
        return None
    try:
        if type(sum(map(sum, rows))) is not int:
            return None
        return np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=len(rows) * width).reshape(len(rows), width)
    except (TypeError, OverflowError):  # not numbers; an int past int64 (np.array: uint64 or object)
        return None


def _number_rows(rows: list, dtype: type = np.float64, width: int | None = None) -> np.ndarray | None:
    """A (n, width) matrix of the JSON numbers of ``rows`` (lists or tuples), or None where one is
    not a plain number (None, a string, a nested list, a ragged row): the block then takes its
    record-by-record path, so a malformed record gives exactly what it gave before."""
    integers = _integer_rows(rows, width) if width is not None else None
    if integers is not None:  # what np.array makes of them (int64), read faster
        return integers.astype(dtype)
    try:
        matrix = np.array(rows)
    except (TypeError, ValueError, OverflowError):
        return None
    if matrix.ndim != 2 or matrix.dtype.kind not in "biuf" or (width is not None and matrix.shape[1] != width):
        return None
    return matrix.astype(dtype, copy=False)


def _enum_name(value: Any) -> str:
    """``MACHINE_TYPES.I386`` -> ``I386``, for LIEF enums and flags of any version.

    A value outside the enum (malformed headers) becomes ``???``, which is what str() of such a
    value gave in the pybind11-based LIEF ember used (``SUBSYSTEM.???``).
    """
    name = getattr(value, "name", None)
    if isinstance(name, str) and name:
        return name
    text = str(value)
    return text.split(".")[-1] if "." in text and not text.split(".")[-1].isdigit() else "???"


def _text(value: Any) -> str:
    """A name as LIEF 0.9-0.12's Python bindings gave it to ember: its bytes decoded as ASCII with
    backslash escapes (``safe_string_converter``: ``name_bytes.decode('ascii', 'backslashreplace')``),
    so ``b".t\\xe9xt"`` is written ``.t\\xe9xt`` whether or not the bytes are valid UTF-8. LIEF 1.0
    returns ``str`` for UTF-8 names and ``bytes`` for the others; both go back to the file's bytes."""
    if isinstance(value, str):
        if value.isascii():  # nearly every name: it is its own ASCII decoding (the round trip was ~5 % of extraction)
            return value
        value = value.encode("utf-8", "surrogateescape")
    elif not isinstance(value, (bytes, bytearray)):
        value = str(value).encode("utf-8", "surrogateescape")
    return bytes(value).decode("ascii", "backslashreplace")


def _flag_value(flag: Any) -> int:
    return int(getattr(flag, "value", flag))


def _legacy_flag_order(flags: Any) -> list:
    """Flags in the order ember's LIEF (0.9-0.12) listed them.

    Its bindings returned a ``std::set`` (ascending values) as a Python ``set`` of enum members,
    whose hash is the member's value, so the list ember wrote is that set's iteration order: a
    set built from the ascending values. LIEF 1.0 returns a list in its own order.
    """
    by_value = {_flag_value(flag): flag for flag in flags}
    return [by_value[value] for value in set(sorted(by_value))]


def _align(value: int, alignment: int) -> int:
    return value + alignment - value % alignment if alignment > 0 and value % alignment else value


def _legacy_rva_to_offset(binary: Any, rva: int) -> int:
    """LIEF 0.12's ``Binary::rva_to_offset``: the first section whose [VA, VA + max(vsize, raw size))
    holds the RVA, section VA and raw offset aligned up (section alignment below 0x1000 taken as
    the file alignment); an RVA in no section is taken as the offset itself."""
    for section in binary.sections:
        start = section.virtual_address
        if start <= rva < start + max(section.virtual_size, section.sizeof_raw_data):
            section_alignment = binary.optional_header.section_alignment
            file_alignment = binary.optional_header.file_alignment
            if section_alignment < 0x1000:
                section_alignment = file_alignment
            return (rva - _align(start, section_alignment)) + _align(section.pointerto_raw_data, file_alignment)
    return rva


def _legacy_data_directories(bytez: bytes, binary: Any) -> list[tuple[int, int]]:
    """(rva, size) of the 16 data directories as LIEF 0.9-0.12 read them: always 16 entries right
    after the optional header, whatever ``NumberOfRvaAndSizes`` says (LIEF 1.0 reads only that
    many); the slots past the declared ones are whatever bytes follow (the section table)."""
    directories = [(d.rva, d.size) for d in binary.data_directories][:16]
    if len(directories) < 16 and len(bytez) >= 0x40:
        (e_lfanew,) = struct.unpack_from("<I", bytez, 0x3C)
        if e_lfanew + 26 > len(bytez):  # LIEF parsed the headers, so this is not expected
            return directories
        (magic,) = struct.unpack_from("<H", bytez, e_lfanew + 24)
        start = e_lfanew + 24 + (112 if magic == 0x20B else 96)  # sizeof PE32+ / PE32 optional header
        for i in range(len(directories), 16):
            offset = start + 8 * i
            if offset + 8 > len(bytez):
                break
            directories.append(struct.unpack_from("<II", bytez, offset))
    return directories


def _normalised_counts(block: FeatureBlock, raws: list) -> np.ndarray:
    """``counts / counts.sum()`` in float32 for every record at once (histogram, byteentropy).

    A row sum of a C-ordered (n, 256) float32 matrix is numpy's pairwise sum of that row, the same
    additions as ``np.sum`` of the record's own array, so the rows are ember's values bit for bit
    (``tests/test_ember_vectorize.py`` checks it on counts too large for float32 to add exactly)."""
    counts = _number_rows(raws, np.float32, block.dim)
    if counts is None:
        return FeatureBlock.process_raw_features_batch(block, raws)
    return _normalised(counts)


def _normalised(counts: np.ndarray) -> np.ndarray:
    """Each row of a float32 count matrix over its sum (see :func:`_normalised_counts`)."""
    with np.errstate(invalid="ignore", divide="ignore"):  # an all-zero record: NaN, as in ember
        return counts / counts.sum(axis=1, keepdims=True)


def _pair_rows(n: int, n_features: int, row_of_pair: np.ndarray, codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``FeatureHasher(n_features, input_type="pair")`` of (name, number) pairs, float64 (n, n_features):
    the names' signed codes from a StringHasher, the pairs of row i in order.

    FeatureHasher's own steps on the same arrays: a pair whose value is 0 left out, the value
    negated where the name's sign is -1, then ``csr_array((values, columns, indptr))``, ``sum_duplicates``
    and ``toarray``, so float values that share a column are added in the same order (scipy's sort
    of a row's columns decides it) and the sums are FeatureHasher's bit for bit."""
    from scipy import sparse

    kept = values != 0
    data = np.where(codes[kept] > 0, values[kept], -values[kept])  # a negated NaN too, as FeatureHasher's
    indptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(row_of_pair[kept], minlength=n), out=indptr[1:])
    matrix = sparse.csr_array((data, (np.abs(codes[kept]) - 1).astype(np.int32), indptr), shape=(n, n_features))
    matrix.sum_duplicates()
    return matrix.toarray()


class FeatureBlock:
    """One block of the EMBER vector."""

    name: ClassVar[str] = ""
    dim: ClassVar[int] = 0

    def raw_features(self, bytez: bytes, binary: Any) -> Any:
        """JSON-able raw features; ``binary`` is a parsed ``lief.PE.Binary`` or ``None``."""
        raise NotImplementedError

    def process_raw_features(self, raw: Any) -> np.ndarray:
        """float32 vector of length ``dim`` from this block's raw features."""
        raise NotImplementedError

    def process_raw_features_batch(self, raws: list) -> np.ndarray:
        """float32 matrix (len(raws), dim); row i equals ``process_raw_features(raws[i])`` exactly."""
        return np.vstack([self.process_raw_features(raw) for raw in raws]).reshape(len(raws), self.dim)

    def process_scanned_batch(self, rows: np.ndarray, raws: list) -> np.ndarray:
        """The same matrix from the rows :mod:`vigil.tasks.ember.line_scanner` read for this block
        straight from the JSON text, and the block's values in the records (where the scanner read
        a value, its placeholder); only the blocks it reads have this."""
        raise NotImplementedError(f"{type(self).__name__} is not read by the line scanner")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, {self.dim})"


class _NormalisedCounts(FeatureBlock):
    """A block of counts normalised to sum 1 (ember: ``counts / counts.sum()`` in float32)."""

    def process_raw_features(self, raw):
        counts = np.array(raw, dtype=np.float32)
        return counts / counts.sum()

    def process_raw_features_batch(self, raws):
        return _normalised_counts(self, raws)

    def process_scanned_batch(self, rows, raws):
        return _normalised(rows.astype(np.float32))  # int64 counts, cast as _number_rows casts them


class ByteHistogram(_NormalisedCounts):
    """Byte value counts over the whole file, normalised to sum 1."""

    name = "histogram"
    dim = 256

    def raw_features(self, bytez, binary):
        return _byte_kernels().byte_histogram(np.frombuffer(bytez, dtype=np.uint8)).tolist()


class ByteEntropyHistogram(_NormalisedCounts):
    """Joint histogram of (local entropy bin, byte >> 4) over sliding windows (Saxe & Berlin 2015).

    ember computes one window at a time: the 16 nibble counts ``c``, ``p = c / window`` in float32,
    ``H = 2 * np.sum(-p * log2(p))`` over the non-zero counts, bin ``min(int(2 * H), 15)``. Here with
    the same float32 values: each term ``-p * log2(p)`` depends only on its count, so it is looked up
    in a table computed with the same numpy operations, and the sum is done in the order ``np.sum``
    adds a float32 array of that many terms (see :func:`_numpy_float32_sum16`), so every window lands
    in ember's bin. When a window is whole steps (ember's 2048 / 1024), one compiled pass counts each
    step's nibbles once and slides the window over them (``byte_kernels.byte_entropy_histogram``);
    otherwise each window is counted with numpy and all of a chunk's windows binned at once.
    """

    name = "byteentropy"
    dim = 256

    def __init__(self, step: int = 1024, window: int = 2048):
        self.step = step
        self.window = window
        self._terms: np.ndarray | None = None

    def _entropy_bin(self, nibble_counts: np.ndarray) -> int:
        # ember's arithmetic for one window (float32, over the non-zero bins only); the reference
        p = nibble_counts.astype(np.float32) / self.window
        nonzero = np.where(nibble_counts)[0]
        entropy = np.sum(-p[nonzero] * np.log2(p[nonzero])) * 2  # x2: 16 bins carry 4 of 8 bits
        return min(int(entropy * 2), 15)  # 16 bins; entropy 8.0 goes to the last one

    def _term_table(self) -> np.ndarray:
        """``-p * log2(p)`` in float32 for ``p = count / window``, count 0..window (ember's numpy ops)."""
        if self._terms is None:
            p = np.arange(self.window + 1, dtype=np.float32) / self.window
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = -p * np.log2(p)
            terms[0] = 0  # never summed: ember leaves zero counts out
            self._terms = terms
        return self._terms

    def _entropy_bins(self, windows: np.ndarray) -> np.ndarray:
        """``_entropy_bin`` of every row of ``windows`` (n, 16) of counts in 0..window, at once."""
        terms = self._term_table()[windows]
        nonzero = windows != 0
        # ember sums the non-zero terms only, in bin order: move them to the front of each row
        order = np.argsort(~nonzero, axis=1, kind="stable")
        terms = np.take_along_axis(terms, order, axis=1)
        entropy = _numpy_float32_sum16(terms, np.count_nonzero(nonzero, axis=1)) * np.float32(2)
        return np.minimum((entropy * np.float32(2)).astype(np.int64), 15)

    def _step_counts(self, data: np.ndarray) -> np.ndarray:
        """Nibble counts of each whole step of ``data`` (at most ~CHUNK_BYTES), (n_steps, 16), int64.

        numpy's way to the step counts the compiled pass makes byte by byte; kept as the tests'
        second opinion on them.

        For each nibble value, the 0/1 bytes of ``nibble == value`` are read as uint64 words and the
        words of a step added: each of a word's 8 byte lanes counts at most step / 8 (<= 255, so no
        lane carries into the next), and the 8 lanes added give the step's count. Integer counts,
        equal to counting each byte; ~4x faster than a bincount over (step, nibble).
        """
        n_steps = len(data) // self.step
        nibbles = data[: n_steps * self.step] >> 4
        if self.step % 8 == 0 and self.step // 8 <= 255:
            counts = np.empty((n_steps, 16), dtype=np.int64)
            for value in range(16):
                lanes = (nibbles == value).view(np.uint64).reshape(n_steps, self.step // 8).sum(axis=1, dtype=np.uint64)
                counts[:, value] = lanes.view(np.uint8).reshape(n_steps, 8).sum(axis=1)
            return counts
        ids = nibbles.reshape(n_steps, self.step) + (np.arange(n_steps, dtype=np.intp) * 16)[:, None]
        return np.bincount(ids.ravel(), minlength=n_steps * 16).reshape(n_steps, 16)

    def raw_features(self, bytez, binary):
        output = np.zeros((16, 16), dtype=np.int64)
        data = np.frombuffer(bytez, dtype=np.uint8)
        if data.shape[0] < self.window:
            counts = np.bincount(data >> 4, minlength=16)
            output[self._entropy_bin(counts), :] += counts
            return output.flatten().tolist()
        if self.window % self.step == 0:
            kernels = _byte_kernels()
            return kernels.byte_entropy_histogram(data, self._term_table(), self.step, self.window).ravel().tolist()
        # windows that are not whole steps (not ember's): counted one by one, CHUNK_BYTES of them at a time
        n_windows = (data.shape[0] - self.window) // self.step + 1
        per_chunk = max(1, CHUNK_BYTES // self.step)
        for first in range(0, n_windows, per_chunk):
            windows = np.array(
                [
                    np.bincount(data[s : s + self.window] >> 4, minlength=16)
                    for s in range(first * self.step, min(n_windows, first + per_chunk) * self.step, self.step)
                ]
            )
            np.add.at(output, self._entropy_bins(windows), windows)
        return output.flatten().tolist()


def _numpy_float32_sum16(terms: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Row sums of ``terms`` (m, 16) float32, row i adding its first ``n[i]`` values (the rest are 0)
    in the order ``np.sum`` adds a contiguous float32 array of ``n[i]`` values, so each equals
    ``np.sum(terms[i, :n[i]])`` bit for bit.

    numpy's pairwise summation: under 8 values one after the other from 0; 8 to 16 values in 8
    partial sums (value j + value j+8 when a second full block of 8 exists, i.e. n == 16), combined
    as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)), then the values past the last full block one by one.
    Adding the zero padding leaves a float32 sum unchanged, so whole columns are added.
    """
    sequential = terms[:, 0].copy()
    for j in range(1, 16):
        sequential += terms[:, j]

    def tree(r: np.ndarray) -> np.ndarray:
        return ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + ((r[:, 4] + r[:, 5]) + (r[:, 6] + r[:, 7]))

    partial = tree(terms[:, :8])
    for j in range(8, 16):
        partial += terms[:, j]
    full = tree(terms[:, :8] + terms[:, 8:])
    return np.where(n < 8, sequential, np.where(n == 16, full, partial))


class StringExtractor(FeatureBlock):
    """Statistics of printable strings (runs of >= 5 bytes in 0x20..0x7f) and a few indicators.

    ember finds the strings with ``re.findall(b"[\\x20-\\x7f]{5,}")`` and the indicators with four
    more regular expressions. Here one compiled pass over the bytes gives the same values
    (``byte_kernels.strings_scan``): the printable run length is tracked per byte, a string is counted
    when its run reaches 5 bytes and its bytes as they come, and an indicator is counted where it
    starts (none can overlap itself, nor the two spellings of ``urls`` each other, so counting start
    positions is counting regex matches).
    """

    name = "strings"
    dim = 1 + 1 + 1 + 96 + 1 + 1 + 1 + 1 + 1

    def raw_features(self, bytez, binary):
        data = np.frombuffer(bytez, dtype=np.uint8)
        numstrings, byte_counts, paths, urls, registry, mz = _byte_kernels().strings_scan(data)
        counts = byte_counts[0x20:0x80]
        length = int(counts.sum())  # every byte of every string is printable, and counted once
        indicators = {"paths": paths, "urls": urls, "registry": registry, "MZ": mz}
        if numstrings:
            avlength = length / numstrings
            total = counts.sum()
            p = counts.astype(np.float32) / total
            nonzero = np.where(counts)[0]
            entropy = np.sum(-p[nonzero] * np.log2(p[nonzero]))
        else:
            avlength, counts, entropy, total = 0, np.zeros((96,), dtype=np.float32), 0, 0
        return {
            "numstrings": numstrings,
            "avlength": avlength,
            "printabledist": counts.tolist(),  # raw counts; normalised when vectorizing
            "printables": int(total),
            "entropy": float(entropy),
            **indicators,
        }

    _scalars_before = ("numstrings", "avlength", "printables")
    _scalars_after = ("entropy", "paths", "urls", "registry", "MZ")

    def process_raw_features_batch(self, raws):
        dist = _number_rows(list(map(itemgetter("printabledist"), raws)), np.float64, 96)
        values = self._plain_batch(raws, dist)
        return values if values is not None else super().process_raw_features_batch(raws)

    def process_scanned_batch(self, rows, raws):
        """``rows``: the 96 counts of each record's printabledist (int64), which the records hold as
        a placeholder; the other values are the records'."""
        values = self._plain_batch(raws, rows.astype(np.float64))  # rounded as JSON's integers to float64
        if values is not None:
            return values
        # an odd scalar: record by record, with the counts as JSON gave them
        return super().process_raw_features_batch(
            [dict(raw, printabledist=counts) for raw, counts in zip(raws, rows.tolist())]
        )

    def _plain_batch(self, raws, dist: np.ndarray | None) -> np.ndarray | None:
        """The block from ``dist`` (float64 printabledist rows) and the records' scalars, or None
        where a value is not a plain number."""
        # float64 matrices, then float32 once, as np.hstack(...).astype(np.float32) of each record
        before = _number_rows(list(map(itemgetter(*self._scalars_before), raws)), np.float64, 3)
        after = _number_rows(list(map(itemgetter(*self._scalars_after), raws)), np.float64, 5)
        if before is None or after is None or dist is None:
            return None
        printables = before[:, 2:3]
        divisor = np.where(printables > 0, printables, 1.0)
        return np.hstack([before, dist / divisor, after]).astype(np.float32)

    def process_raw_features(self, raw):
        divisor = float(raw["printables"]) if raw["printables"] > 0 else 1.0
        return np.hstack(
            [
                raw["numstrings"],
                raw["avlength"],
                raw["printables"],
                np.asarray(raw["printabledist"]) / divisor,
                raw["entropy"],
                raw["paths"],
                raw["urls"],
                raw["registry"],
                raw["MZ"],
            ]
        ).astype(np.float32)


class GeneralFileInfo(FeatureBlock):
    """File size, virtual size and a few presence flags and counts."""

    name = "general"
    dim = 10
    _order = (
        "size",
        "vsize",
        "has_debug",
        "exports",
        "imports",
        "has_relocations",
        "has_resources",
        "has_signature",
        "has_tls",
        "symbols",
    )

    def raw_features(self, bytez, binary):
        if binary is None:
            return {key: len(bytez) if key == "size" else 0 for key in self._order}
        return {
            "size": len(bytez),
            "vsize": binary.virtual_size,
            "has_debug": int(self._legacy_has_debug(bytez, binary)),
            "exports": len(binary.exported_functions),
            "imports": len(binary.imported_functions),
            "has_relocations": int(self._legacy_has_relocations(bytez, binary)),
            "has_resources": int(binary.has_resources),
            "has_signature": int(binary.has_signatures),
            "has_tls": int(binary.has_tls),
            "symbols": len(binary.symbols),
        }

    @staticmethod
    def _legacy_has_debug(bytez: bytes, binary: Any) -> bool:
        """LIEF 0.9-0.12 set ``has_debug`` as soon as the DEBUG directory's RVA is not 0 (before
        reading any entry); LIEF 1.0 says whether a debug entry was parsed."""
        directories = _legacy_data_directories(bytez, binary)
        return len(directories) > 6 and directories[6][0] != 0

    @staticmethod
    def _legacy_has_relocations(bytez: bytes, binary: Any) -> bool:
        """LIEF 0.9-0.12 set ``has_relocations`` once the first base-relocation block header (8
        bytes) could be read where the directory points, even an empty one (``PageRVA`` 0) that
        gives no relocation; LIEF 1.0 says whether any block was parsed."""
        directories = _legacy_data_directories(bytez, binary)
        if len(directories) <= 5 or directories[5][0] == 0:
            return False
        return _legacy_rva_to_offset(binary, directories[5][0]) + 8 <= len(bytez)

    def process_raw_features(self, raw):
        return np.asarray([raw[key] for key in self._order], dtype=np.float32)

    def process_raw_features_batch(self, raws):
        values = _number_rows(list(map(itemgetter(*self._order), raws)), np.float32, len(self._order))
        return values if values is not None else super().process_raw_features_batch(raws)


class HeaderFileInfo(FeatureBlock):
    """COFF and optional header: timestamp, hashed enums, 11 version and size numbers."""

    name = "header"
    dim = 62
    _optional_numbers = (
        "major_image_version",
        "minor_image_version",
        "major_linker_version",
        "minor_linker_version",
        "major_operating_system_version",
        "minor_operating_system_version",
        "major_subsystem_version",
        "minor_subsystem_version",
        "sizeof_code",
        "sizeof_headers",
        "sizeof_heap_commit",
    )
    _hasher = StringHasher(10)

    def raw_features(self, bytez, binary):
        raw = {
            "coff": {"timestamp": 0, "machine": "", "characteristics": []},
            "optional": {
                "subsystem": "",
                "dll_characteristics": [],
                "magic": "",
                **{key: 0 for key in self._optional_numbers},
            },
        }
        if binary is None:
            return raw
        header, optional = binary.header, binary.optional_header
        raw["coff"]["timestamp"] = header.time_date_stamps
        raw["coff"]["machine"] = _enum_name(header.machine)
        raw["coff"]["characteristics"] = [
            _LEGACY_HEADER_CHARACTERISTICS.get(name, name)
            for name in map(_enum_name, _legacy_flag_order(header.characteristics_list))
        ]
        raw["optional"]["subsystem"] = _enum_name(optional.subsystem)
        raw["optional"]["dll_characteristics"] = [
            _enum_name(c) for c in _legacy_flag_order(optional.dll_characteristics_lists)
        ]
        raw["optional"]["magic"] = _enum_name(optional.magic)
        for key in self._optional_numbers:
            raw["optional"][key] = getattr(optional, key)
        return raw

    def process_raw_features(self, raw):
        return self.process_raw_features_batch([raw])[0]

    def process_raw_features_batch(self, raws):
        values = self._well_formed_batch(raws)
        return values if values is not None else self._any_batch(raws)

    def _well_formed_batch(self, raws: list) -> np.ndarray | None:
        """The batch where every field has its type (numbers, names, lists of names), else None.

        The five hashed enums in one bincount and every value written once into the float32 block:
        the float64 values of ember's np.hstack(...), each rounded to float32 once, as its astype."""
        n = len(raws)
        try:
            coffs, optionals = list(map(itemgetter("coff"), raws)), list(map(itemgetter("optional"), raws))
            if not n or not set(map(type, coffs)) | set(map(type, optionals)) <= {dict}:
                return None
            timestamps, machines, characteristics = zip(
                *map(itemgetter("timestamp", "machine", "characteristics"), coffs)
            )
            subsystems, dll_characteristics, magics = zip(
                *map(itemgetter("subsystem", "dll_characteristics", "magic"), optionals)
            )
            numbers = list(map(itemgetter(*self._optional_numbers), optionals))
        except (KeyError, TypeError):  # the general path raises what it raised before
            return None
        if (
            not set(map(type, chain(timestamps, chain.from_iterable(numbers)))) <= {int, float}
            or not set(map(type, chain(machines, subsystems, magics))) <= {str}
            or not set(map(type, chain(characteristics, dll_characteristics))) <= {list}
        ):
            return None
        hasher = self._hasher
        try:
            timestamps_array, numbers_array = (
                np.array(timestamps, dtype=np.float64),
                np.array(numbers, dtype=np.float64),
            )
            hashed = hasher.from_parts(
                [
                    hasher.single_part(machines),
                    hasher.listed_part(characteristics),
                    hasher.single_part(subsystems),
                    hasher.listed_part(dll_characteristics),
                    hasher.single_part(magics),
                ],
                n,
            )
        except (TypeError, OverflowError):  # a name that is not a string, a number past float64
            return None
        out = np.empty((n, self.dim), dtype=np.float32)
        out[:, 0] = timestamps_array
        out[:, 1:51] = hashed
        out[:, 51:] = numbers_array
        return out

    def process_scanned_batch(self, rows, raws):
        """``rows``: the scanner's float64 row of each record, the block's values before its float32 cast."""
        return rows.astype(np.float32)

    def _any_batch(self, raws: list) -> np.ndarray:
        # float64 throughout, then float32 once, as ember's np.hstack(...).astype(np.float32)
        coffs, optionals = [r["coff"] for r in raws], [r["optional"] for r in raws]
        return np.hstack(
            [
                np.array([[c["timestamp"]] for c in coffs], dtype=np.float64).reshape(len(raws), 1),
                self._hasher.rows([[c["machine"]] for c in coffs]),
                self._hasher.rows([c["characteristics"] for c in coffs]),
                self._hasher.rows([[o["subsystem"]] for o in optionals]),
                self._hasher.rows([o["dll_characteristics"] for o in optionals]),
                self._hasher.rows([[o["magic"]] for o in optionals]),
                np.array([[o[key] for key in self._optional_numbers] for o in optionals], dtype=np.float64).reshape(
                    len(raws), len(self._optional_numbers)
                ),
            ]
        ).astype(np.float32)


class SectionInfo(FeatureBlock):
    """Section counts, then (name, size/entropy/vsize) pairs, entry name and entry properties, hashed."""

    name = "section"
    dim = 5 + 50 + 50 + 50 + 50 + 50
    _pairs = _hasher(50, "pair")
    _strings = StringHasher(50)

    def raw_features(self, bytez, binary):
        if binary is None:
            return {"entry": "", "sections": []}
        section = binary.section_from_rva(binary.entrypoint - binary.imagebase)
        if section is not None:
            entry = _text(section.name)
        else:  # bad entry point: ember takes the first executable section
            entry = next(
                (_text(s.name) for s in binary.sections if "MEM_EXECUTE" in map(_enum_name, s.characteristics_lists)),
                "",
            )
        return {
            "entry": entry,
            "sections": [
                {
                    "name": _text(s.name),
                    "size": s.size,
                    "entropy": s.entropy,
                    "vsize": s.virtual_size,
                    "props": [_enum_name(c) for c in _legacy_flag_order(s.characteristics_lists)],
                }
                for s in binary.sections
            ],
        }

    @staticmethod
    def _counts(sections: list[dict]) -> list[int]:
        return [
            len(sections),
            sum(1 for s in sections if s["size"] == 0),
            sum(1 for s in sections if s["name"] == ""),
            sum(1 for s in sections if "MEM_READ" in s["props"] and "MEM_EXECUTE" in s["props"]),
            sum(1 for s in sections if "MEM_WRITE" in s["props"]),
        ]

    def process_raw_features(self, raw):
        return self.process_raw_features_batch([raw])[0]

    _section_fields = itemgetter("name", "size", "entropy", "vsize", "props")
    _property_bits: ClassVar[dict[str, int]] = {"MEM_READ": 1, "MEM_EXECUTE": 2, "MEM_WRITE": 4}

    def process_raw_features_batch(self, raws):
        values = self._well_formed_batch(raws)
        return values if values is not None else self._any_batch(raws)

    def _well_formed_batch(self, raws: list) -> np.ndarray | None:
        """The batch where every section has its five fields with their types, else None.

        The sections of all records in flat lists, each field read once; the counts, the entry's
        properties and the entry's characters from numpy arrays, the names' columns from the
        string table (a pair's column and sign are its name's, see :func:`_pair_rows`)."""
        n = len(raws)
        try:
            sections, entries = list(map(itemgetter("sections"), raws)), list(map(itemgetter("entry"), raws))
            if not n or not set(map(type, sections)) <= {list} or not set(map(type, entries)) <= {str}:
                return None
            flat = list(chain.from_iterable(sections))
            names, sizes, entropies, vsizes, props = list(zip(*map(self._section_fields, flat))) or [()] * 5
        except (KeyError, TypeError):  # the general path raises what it raised before
            return None
        numbers = chain(sizes, entropies, vsizes)
        if (
            not set(map(type, names)) <= {str}
            or not set(map(type, numbers)) <= {int, float}
            or not set(map(type, props)) <= {list}
        ):
            return None
        strings = self._strings
        per_record = np.fromiter(map(len, sections), dtype=np.intp, count=n)
        record_of_section = np.repeat(np.arange(n), per_record)
        property_names = list(chain.from_iterable(props))
        if not set(map(type, property_names)) <= {str}:
            return None
        try:
            name_codes = strings.codes_of(names, len(names))
            # a JSON number is a float64 as FeatureHasher reads it (one past float64's range: the general path)
            sizes_array, entropies_array, vsizes_array = (
                np.fromiter(values, dtype=np.float64, count=len(names)) for values in (sizes, entropies, vsizes)
            )
        except (TypeError, OverflowError):
            return None
        properties_per_section = np.fromiter(map(len, props), dtype=np.intp, count=len(props))
        section_of_property = np.repeat(np.arange(len(props)), properties_per_section)
        bits = np.zeros(len(names), dtype=np.int64)
        np.bitwise_or.at(
            bits,
            section_of_property,
            np.fromiter(map(self._property_bits.get, property_names, repeat(0)), np.int64, len(property_names)),
        )
        entry_of_section = list(chain.from_iterable(map(repeat, entries, per_record.tolist())))
        in_entry = np.fromiter(map(eq, names, entry_of_section), dtype=bool, count=len(names))
        entry_properties = in_entry[section_of_property]
        out = np.empty((n, self.dim), dtype=np.float32)
        out[:, 0] = per_record
        for column, flags in enumerate(
            (
                sizes_array == 0,
                np.fromiter(map(not_, names), dtype=bool, count=len(names)),
                bits & 3 == 3,
                bits & 4 != 0,
            ),
            start=1,
        ):
            out[:, column] = np.bincount(record_of_section, weights=flags, minlength=n)
        for start, values in ((5, sizes_array), (55, entropies_array), (105, vsizes_array)):
            out[:, start : start + 50] = _pair_rows(n, 50, record_of_section, name_codes, values)
        out[:, 155:] = strings.from_parts(
            [
                strings.listed_part(entries),  # the quirk: one token per character of the entry name
                (
                    record_of_section[section_of_property[entry_properties]],
                    strings.codes_of(compress(property_names, entry_properties.tolist()), int(entry_properties.sum())),
                ),
            ],
            n,
        )
        return out

    def process_scanned_batch(self, rows, raws):
        """``rows``: the scanner's float64 row of each record (``line_scanner.SectionRow``): the
        counts and the entry's two hashed parts as they are, the sections' (name, number) pairs in
        slots, hashed here as in :meth:`_well_formed_batch`."""
        from vigil.tasks.ember.line_scanner import SectionRow

        n = len(rows)
        codes = rows[:, SectionRow.CODES : SectionRow.SIZES]
        filled = codes != 0  # the slots in order, so each record's sections in order (row-major)
        record_of_section = np.nonzero(filled)[0]
        name_codes = codes[filled].astype(np.int64)
        out = np.empty((n, self.dim), dtype=np.float32)
        out[:, :5] = rows[:, SectionRow.COUNTS : SectionRow.ENTRY_NAME]
        for start, column in ((5, SectionRow.SIZES), (55, SectionRow.ENTROPIES), (105, SectionRow.VSIZES)):
            values = rows[:, column : column + codes.shape[1]][filled]
            out[:, start : start + 50] = _pair_rows(n, 50, record_of_section, name_codes, values)
        out[:, 155:] = rows[:, SectionRow.ENTRY_NAME : SectionRow.CODES]
        return out

    def _any_batch(self, raws: list) -> np.ndarray:
        sections = [r["sections"] for r in raws]
        entries = [r["entry"] for r in raws]
        return np.hstack(
            [
                np.array([self._counts(s) for s in sections], dtype=np.float64).reshape(len(raws), 5),
                _hash_rows(self._pairs, [[(s["name"], s["size"]) for s in secs] for secs in sections]),
                _hash_rows(self._pairs, [[(s["name"], s["entropy"]) for s in secs] for secs in sections]),
                _hash_rows(self._pairs, [[(s["name"], s["vsize"]) for s in secs] for secs in sections]),
                # The quirk: one token per character of the entry name (what old scikit-learn did).
                self._strings.rows([list(entry) for entry in entries]),
                self._strings.rows(
                    [
                        [p for s in secs for p in s["props"] if s["name"] == entry]
                        for secs, entry in zip(sections, entries)
                    ],
                ),
            ]
        ).astype(np.float32)


class ImportsInfo(FeatureBlock):
    """Imported libraries (hashed to 256) and library:function names (hashed to 1024)."""

    name = "imports"
    dim = 256 + 1024
    _libraries = StringHasher(256)
    _functions = StringHasher(1024)

    def __init__(self, ordinal_names: bool = True):
        # Feature version 2 names ordinal imports "ordinal<N>"; version 1 kept LIEF's empty name.
        self.ordinal_names = ordinal_names

    def raw_features(self, bytez, binary):
        imports: dict[str, list[str]] = {}
        if binary is None:
            return imports
        for library in binary.imports:
            names = imports.setdefault(_text(library.name), [])  # a library can be listed twice: extend
            for entry in library.entries:
                if entry.is_ordinal and self.ordinal_names:
                    names.append(f"ordinal{entry.ordinal}")
                else:
                    names.append(_text(entry.name)[:10000])  # clipped, as ember does
        return imports

    def process_raw_features(self, raw):
        return self.process_raw_features_batch([raw])[0]

    def process_raw_features_batch(self, raws):
        libraries = [list({library.lower() for library in raw}) for raw in raws]
        # "library:function" tokens, lower-case library: one table per library name as written, keyed
        # by the function name, so a joined string is built only the first time it is seen
        functions = self._functions
        codes: list[int] = []
        lengths = np.zeros(len(raws), dtype=np.intp)
        for i, raw in enumerate(raws):
            start = len(codes)
            for library, names in raw.items():
                codes.extend(map(functions.prefixed(library.lower() + ":").__getitem__, names))
            lengths[i] = len(codes) - start
        # float64 sums written into the float32 block: the same rounding as ember's .astype(np.float32)
        out = np.empty((len(raws), self.dim), dtype=np.float32)
        out[:, :256] = self._libraries.rows(libraries)
        out[:, 256:] = functions.from_codes(np.array(codes, dtype=np.int64), lengths)
        return out

    def process_scanned_batch(self, rows, raws):
        return rows  # the scanner's sums, already float32 (exact: they are integers)


class ExportsInfo(FeatureBlock):
    """Exported function names, hashed to 128."""

    name = "exports"
    dim = 128
    _hasher = StringHasher(128)

    def raw_features(self, bytez, binary):
        if binary is None:
            return []
        export = binary.get_export() if binary.has_exports else None
        names = []
        for entry in export.entries if export is not None else []:
            name = entry.name
            if entry.is_forwarded and entry.forward_information.library:
                # LIEF 0.9-0.12 named a forwarded export by its forwarder string (the export's own
                # name was never read); LIEF 1.0 reads the own name and splits the string at its
                # first dot into forward_information, which gives the string back.
                info = entry.forward_information
                name = f"{_text(info.library)}.{_text(info.function)}"
            if name:  # as exported_functions: entries without a name (ordinal only) are left out
                names.append(_text(name)[:10000])
        return names

    def process_raw_features(self, raw):
        return self.process_raw_features_batch([raw])[0]

    def process_raw_features_batch(self, raws):
        return self._hasher.rows([list(raw) for raw in raws]).astype(np.float32)


class DataDirectories(FeatureBlock):
    """(size, virtual address) of the first 15 data directories (feature version 2 only)."""

    name = "datadirectories"
    dim = 15 * 2
    names = (
        "EXPORT_TABLE",
        "IMPORT_TABLE",
        "RESOURCE_TABLE",
        "EXCEPTION_TABLE",
        "CERTIFICATE_TABLE",
        "BASE_RELOCATION_TABLE",
        "DEBUG",
        "ARCHITECTURE",
        "GLOBAL_PTR",
        "TLS_TABLE",
        "LOAD_CONFIG_TABLE",
        "BOUND_IMPORT",
        "IAT",
        "DELAY_IMPORT_DESCRIPTOR",
        "CLR_RUNTIME_HEADER",
    )
    _legacy_names = (*names, "RESERVED")  # LIEF 0.12's DATA_DIRECTORY names, index 0..15

    def raw_features(self, bytez, binary):
        if binary is None:
            return []
        # 16 entries, as LIEF 0.9-0.12 read them (see _legacy_data_directories)
        return [
            {"name": self._legacy_names[i], "size": size, "virtual_address": rva}
            for i, (rva, size) in enumerate(_legacy_data_directories(bytez, binary))
        ]

    def process_raw_features(self, raw):
        # Positional, as in ember: the i-th listed directory fills slot i.
        features = np.zeros(2 * len(self.names), dtype=np.float32)
        for i, directory in enumerate(raw[: len(self.names)]):
            features[2 * i] = directory["size"]
            features[2 * i + 1] = directory["virtual_address"]
        return features

    def process_raw_features_batch(self, raws):
        """The batch at once where every record is a list of directories whose size and address are
        JSON integers below 2**53 (exact as doubles, so the float32 cast rounds them once, as the
        record-by-record assignment does); anything else record by record."""
        slots = len(self.names)
        try:
            if not all(type(raw) is list for raw in raws):
                raise TypeError("not a list")
            listed = [raw[:slots] for raw in raws]
            pairs = np.array([(d["size"], d["virtual_address"]) for raw in listed for d in raw])
        except (TypeError, KeyError, IndexError, ValueError, OverflowError):
            return super().process_raw_features_batch(raws)
        # ints (bools among them: 1 and 0, as assigned one by one) give int64; anything else does not
        if pairs.size and (
            pairs.dtype != np.int64 or pairs.ndim != 2 or np.any((pairs >= 2**53) | (pairs <= -(2**53)))
        ):
            return super().process_raw_features_batch(raws)
        lengths = np.fromiter(map(len, listed), dtype=np.intp, count=len(raws))
        rows = np.repeat(np.arange(len(raws)), lengths)
        slot = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out = np.zeros((len(raws), self.dim), dtype=np.float32)
        if pairs.size:
            out[rows, 2 * slot] = pairs[:, 0]
            out[rows, 2 * slot + 1] = pairs[:, 1]
        return out

    def process_scanned_batch(self, rows, raws):
        return rows  # the scanner's float32 row of each record: its integers below 2**53, rounded once


def feature_blocks(feature_version: int = 2) -> list[FeatureBlock]:
    """The ordered blocks of one feature version."""
    if feature_version not in FEATURE_VERSIONS:
        raise ValueError(f"EMBER feature version must be 1 or 2, not {feature_version!r}")
    blocks: list[FeatureBlock] = [
        ByteHistogram(),
        ByteEntropyHistogram(),
        StringExtractor(),
        GeneralFileInfo(),
        HeaderFileInfo(),
        SectionInfo(),
        ImportsInfo(ordinal_names=feature_version >= 2),
        ExportsInfo(),
    ]
    if feature_version >= 2:
        blocks.append(DataDirectories())
    return blocks


def block_slices(feature_version: int = 2) -> dict[str, slice]:
    """Where each block lives in the vector: ``{"histogram": slice(0, 256), ...}``."""
    slices, start = {}, 0
    for block in feature_blocks(feature_version):
        slices[block.name] = slice(start, start + block.dim)
        start += block.dim
    return slices


def parse_pe(bytez: bytes):
    """A ``lief.PE.Binary``, or ``None`` where LIEF cannot read the bytes as PE."""
    import lief

    lief.logging.disable()  # LIEF logs every oddity of malformed files to stderr
    if not bytez:
        return None
    try:
        binary = lief.PE.parse(bytez)
    except Exception as exc:  # LIEF < 0.16 raised lief.bad_format & co.; treat all as "not PE"
        log.debug("LIEF could not parse the file: %s", exc)
        return None
    return binary if isinstance(binary, lief.PE.Binary) else None


class FeatureExtractor:
    """The ordered feature blocks of one EMBER feature version (1: 2351 floats, 2: 2381)."""

    def __init__(self, feature_version: int = 2):
        self.feature_version = int(feature_version)
        self.blocks = feature_blocks(self.feature_version)
        self.dim = sum(block.dim for block in self.blocks)

    def raw_features(self, bytez: bytes) -> dict:
        """ember's raw record for the file content (``bytes``, not a path)."""
        return self.raw_features_and_note(bytez)[0]

    def raw_features_and_note(self, bytez: bytes) -> tuple[dict, str | None]:
        """(raw record, note): the note says why a file that looks like PE was not parsed as one.

        A file whose section table would make LIEF hold a multiple of its size (see
        :mod:`vigil.tasks.ember.pe_header`) is not given to LIEF: it gets the fallback record.
        """
        if not isinstance(bytez, (bytes, bytearray, memoryview)):
            raise TypeError(f"raw_features needs the file content as bytes, not {type(bytez).__name__}")
        bytez = bytes(bytez)
        note = section_table_refusal(bytez)
        if note:
            log.info("%s", note)
        binary = None if note else parse_pe(bytez)
        record: dict[str, Any] = {"sha256": hashlib.sha256(bytez).hexdigest()}
        for block in self.blocks:
            try:
                record[block.name] = block.raw_features(bytez, binary)
            except Exception as exc:  # a half-parsed binary: this block gets ember's fallback
                log.debug("block %s failed on %s: %s", block.name, record["sha256"], exc)
                record[block.name] = block.raw_features(bytez, None)
        return record, note

    def process_raw_features(self, raw: dict) -> np.ndarray:
        """float32 vector of length ``dim``. A v1 record vectorized as v2 gets zero data directories."""
        return self.process_raw_features_batch([raw])[0]

    def process_raw_features_batch(
        self, raws: list[dict], scanned: Mapping[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """float32 matrix (len(raws), dim), row i = ``process_raw_features(raws[i])``, faster in bulk.

        ``scanned``: rows that :mod:`vigil.tasks.ember.line_scanner` read for some blocks (by name),
        one a record; those blocks take them instead of the records' values."""
        if not raws:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.empty((len(raws), self.dim), dtype=np.float32)
        start = 0
        for block in self.blocks:
            if block.name == "datadirectories":  # a v1 record has none: an empty list
                values = [raw.get(block.name, []) for raw in raws]
            else:
                values = list(map(itemgetter(block.name), raws))
            if scanned is not None and block.name in scanned:
                part = block.process_scanned_batch(scanned[block.name], values)
            else:
                part = block.process_raw_features_batch(values)
            out[:, start : start + block.dim] = part  # the blocks are float32 already
            start += block.dim
        return out

    def feature_vector(self, bytez: bytes) -> np.ndarray:
        return self.process_raw_features(self.raw_features(bytez))

    def __repr__(self) -> str:
        return f"FeatureExtractor(feature_version={self.feature_version}, dim={self.dim})"
