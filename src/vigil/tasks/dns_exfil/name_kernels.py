"""Compiled (numba) passes over the bytes of a window's plain query names and subdomains.

Featurising a window of names took a dozen whole-array numpy steps (lookup tables, ``bincount``,
``minimum.at``, a rank-by-rank sum) and Python still walked each name's labels, letter runs and new
part; here each name is one loop over its bytes. The values are the per-name code's, bit for bit:
a byte entropy adds the terms of ``_terms(n)`` (the same floats, :func:`term_table`) in the order the
bytes first appear, left to right from 0.0, as ``features._entropy`` and ``domains._entropy_bits``
do (no fast-math: the additions are not reordered); counts are integers; a letter run is looked up
in a hash table of the English word list, compared byte by byte (``tests/test_dns_name_kernels.py``
checks every value against the per-name code).

Compiled when first called (about 2 s, then kept in the signed kernel cache, :mod:`vigil.kernel_cache`,
for later processes): ``fast_features.py`` and ``domains.py`` import this module when the first window of
names comes, so the CLI and the service start without numba.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from vigil.kernel_cache import cached
from vigil.tasks.dns_exfil.features import MAX_WIRE_LENGTH, _terms, english_words

# the columns of name_columns' result, in order
UPPER, LOWER, DIGIT, DOTS, ENTROPY, LABELS_MAX, SUBDOMAIN, SLD, LONGEST_WORD = range(9)
_N_COLUMNS = 9
_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


@lru_cache(maxsize=1)
def term_table() -> np.ndarray:
    """``term_table()[n, c]`` is ``_terms(n)[c]`` for every text length up to a name's wire length."""
    table = np.zeros((MAX_WIRE_LENGTH + 1, MAX_WIRE_LENGTH + 1))
    for n in range(1, MAX_WIRE_LENGTH + 1):
        table[n, : n + 1] = _terms(n)
    return table


def ascii_bytes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """ASCII texts as (their bytes one after another, where each starts, then where the last ends)."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    return np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8), starts


@cached
@njit(cache=False, nogil=True)
def _hash(data, start, end):  # pragma: no cover - compiled
    """FNV-1a of ``data[start:end]`` lower-cased (ASCII letters only reach it)."""
    h = _FNV_OFFSET
    for i in range(start, end):
        h = (h ^ np.uint64(data[i] | 0x20)) * _FNV_PRIME
    return h


@cached
@njit(cache=False, nogil=True)
def _build_word_table(words, starts, slots):  # pragma: no cover - compiled
    """Open addressing: ``table[slot]`` is a word's index, -1 for an empty slot."""
    table = np.full(slots, -1, dtype=np.int64)
    mask = np.uint64(slots - 1)
    for w in range(len(starts) - 1):
        slot = _hash(words, starts[w], starts[w + 1]) & mask
        while table[slot] >= 0:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = w
    return table


@cached
@njit(cache=False, nogil=True)
def _is_word(data, start, end, table, words, starts):  # pragma: no cover - compiled
    """Whether ``data[start:end]`` lower-cased (letters) is one of the words."""
    mask = np.uint64(len(table) - 1)
    slot = _hash(data, start, end) & mask
    length = end - start
    while True:
        w = table[slot]
        if w < 0:
            return False
        if starts[w + 1] - starts[w] == length:
            same = True
            for k in range(length):
                if (data[start + k] | 0x20) != words[starts[w] + k]:
                    same = False
                    break
            if same:
                return True
        slot = (slot + np.uint64(1)) & mask


class WordTable:
    """The English words the letter runs of a name can match (lower-case ASCII letters), as flat bytes
    and a hash table of their indexes; the shortest and longest such word bound the runs looked up."""

    def __init__(self, words: frozenset[str]):
        letters = sorted(w for w in words if w.isascii() and w.isalpha() and w.islower())
        lengths = np.fromiter(map(len, letters), dtype=np.int64, count=len(letters))
        self.bytes = np.frombuffer("".join(letters).encode("ascii"), dtype=np.uint8)
        self.starts = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        self.shortest = int(lengths.min(initial=1))
        self.longest = int(lengths.max(initial=0))
        slots = 1 << max(4, (2 * len(letters)).bit_length())  # at most half full
        self.table = _build_word_table(self.bytes, self.starts, slots)


@lru_cache(maxsize=1)
def word_table() -> WordTable:
    return WordTable(english_words())


@cached
@njit(cache=False, nogil=True)
def _entropy_of(data, start, end, terms, counts, order):  # pragma: no cover - compiled
    """The byte entropy of ``data[start:end]`` as ``features._entropy`` computes it (``counts`` all
    zero on entry and on return; ``order`` scratch of 256)."""
    n = end - start
    distinct = 0
    for i in range(start, end):
        byte = data[i]
        if counts[byte] == 0:
            order[distinct] = byte
            distinct += 1
        counts[byte] += 1
    total = 0.0
    for j in range(distinct):
        byte = order[j]
        total += terms[n, counts[byte]]
        counts[byte] = 0
    return -total + 0.0


@cached
@njit(cache=False, nogil=True)
def _name_columns(
    data, starts, sld_labels, terms, table, words, word_starts, shortest, longest
):  # pragma: no cover - compiled
    n_names = len(starts) - 1
    out = np.zeros((n_names, _N_COLUMNS))
    counts = np.zeros(256, dtype=np.int64)
    order = np.zeros(256, dtype=np.int64)
    for t in range(n_names):
        start, end = starts[t], starts[t + 1]
        upper = lower = digit = dots = 0
        label, label_start, labels_max, sld_start, sld_end = 0, start, 0, start, end
        run_start, word = -1, 0
        for i in range(start, end + 1):
            byte = data[i] if i < end else 0x2E  # a dot after the last label closes it
            letter = 0x61 <= (byte | 0x20) <= 0x7A  # a-z and A-Z
            if letter:
                if run_start < 0:
                    run_start = i
            elif run_start >= 0:
                length = i - run_start
                if word < length and shortest <= length <= longest:
                    if _is_word(data, run_start, i, table, words, word_starts):
                        word = length
                run_start = -1
            if byte == 0x2E:
                if i < end:
                    dots += 1
                labels_max = max(labels_max, i - label_start)
                if label == sld_labels[t]:
                    sld_start, sld_end = label_start, i
                label += 1
                label_start = i + 1
            elif i < end:
                if 0x41 <= byte <= 0x5A:
                    upper += 1
                elif 0x61 <= byte <= 0x7A:
                    lower += 1
                elif 0x30 <= byte <= 0x39:
                    digit += 1
        out[t, UPPER] = upper
        out[t, LOWER] = lower
        out[t, DIGIT] = digit
        out[t, DOTS] = dots
        out[t, ENTROPY] = _entropy_of(data, start, end, terms, counts, order)
        out[t, LABELS_MAX] = labels_max
        out[t, SUBDOMAIN] = sld_start - 1 - start if sld_labels[t] > 0 else 0
        out[t, SLD] = sld_end - sld_start
        out[t, LONGEST_WORD] = word
    return out


def name_columns(data: np.ndarray, starts: np.ndarray, sld_labels: np.ndarray) -> np.ndarray:
    """Per plain name (``data[starts[t]:starts[t + 1]]``, ASCII, labels joined by dots, none empty),
    the columns :data:`UPPER` .. :data:`LONGEST_WORD`: its character counts, dots, byte entropy, longest
    label, the bytes of its subdomain (left of label ``sld_labels[t]``) and of its sld label, and the
    length of its longest letter run that is an English word (0 if none)."""
    words = word_table()
    return _name_columns(
        data,
        starts,
        sld_labels,
        term_table(),
        words.table,
        words.bytes,
        words.starts,
        words.shortest,
        words.longest,
    )


@cached
@njit(cache=False, nogil=True)
def _novel_bits(subs, sub_starts, previous, previous_starts, terms):  # pragma: no cover - compiled
    n_items = len(sub_starts) - 1
    out = np.zeros(n_items)
    counts = np.zeros(256, dtype=np.int64)
    order = np.zeros(256, dtype=np.int64)
    for t in range(n_items):
        start, end = sub_starts[t], sub_starts[t + 1]
        p_start, p_end = previous_starts[t], previous_starts[t + 1]
        if p_end > p_start:  # novel_part: the prefix and suffix shared with the previous subdomain
            limit = min(end - start, p_end - p_start)
            head = 0
            while head < limit and subs[start + head] == previous[p_start + head]:
                head += 1
            tail = 0
            while tail < limit - head and subs[end - 1 - tail] == previous[p_end - 1 - tail]:
                tail += 1
            start, end = start + head, end - tail
        total, piece_start = 0.0, start
        for i in range(start, end + 1):
            if i == end or subs[i] == 0x2E:  # information_bits: each dot-separated piece
                length = i - piece_start
                total += length * _entropy_of(subs, piece_start, i, terms, counts, order)
                piece_start = i + 1
        out[t] = total
    return out


def novel_bits(subs: np.ndarray, sub_starts: np.ndarray, previous: np.ndarray, previous_starts: np.ndarray):
    """Per ASCII subdomain ``subs[sub_starts[t]:sub_starts[t + 1]]``, against the previous one of its
    domain (the same layout), ``information_bits(novel_part(sub, previous))``."""
    return _novel_bits(subs, sub_starts, previous, previous_starts, term_table())


@cached
@njit(cache=False, nogil=True)
def _add_to_both(first, second, bits, hashes, h1s, h2s):  # pragma: no cover - compiled
    news = np.zeros((len(h1s), 2), dtype=np.bool_)
    for k in range(len(h1s)):
        h1, h2 = h1s[k], h2s[k]
        for i in range(hashes):
            position = (h1 + i * h2) % bits
            byte, bit = position >> 3, np.uint8(1 << (position & 7))
            if not first[byte] & bit:
                first[byte] |= bit
                news[k, 0] = True
            if not second[byte] & bit:
                second[byte] |= bit
                news[k, 1] = True
    return news


def add_to_both(first: bytearray, second: bytearray, bits: int, hashes: int, h1s: np.ndarray, h2s: np.ndarray):
    """``domains.add_to_both`` of each (h1, h2) in turn, on two Bloom filters' arrays of one size
    (updated in place): per key, whether it was new to the first and to the second."""
    return _add_to_both(
        np.frombuffer(first, dtype=np.uint8), np.frombuffer(second, dtype=np.uint8), bits, hashes, h1s, h2s
    )
