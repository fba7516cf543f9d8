"""Byte entropies of many texts in one numpy pass, the very floats the per-text code computes.

The per-text code (:func:`~vigil.tasks.dns_exfil.features._entropy` for the CIC ``entropy`` column,
the per-domain detector's information bits) sums, per text, the terms ``c / n * log2(c / n)`` of its
byte counts in the order the bytes first appear (a ``Counter``'s order), left to right. Here the
counts of every (text, byte) come from one ``bincount``, the first appearances from one
``minimum.at``, and the sums are taken rank by rank over all the texts at once, in that same order,
from the same table of terms: equal values, not close ones (tests/test_dns_stream_speed.py).

    >>> from vigil.tasks.dns_exfil.features import _entropy
    >>> texts = ["www.example.com", "aaaa", "x"]
    >>> [float(e) for e in text_entropies(texts)] == [_entropy(t.encode()) for t in texts]
    True
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from vigil.tasks.dns_exfil.features import MAX_WIRE_LENGTH, _terms


@lru_cache(maxsize=1)
def _term_table() -> np.ndarray:
    """``_term_table()[n, c]`` is ``_terms(n)[c]`` for every text length up to a name's wire length."""
    table = np.zeros((MAX_WIRE_LENGTH + 1, MAX_WIRE_LENGTH + 1))
    for n in range(1, MAX_WIRE_LENGTH + 1):
        table[n, : n + 1] = _terms(n)
    return table


def ordered_sums(values: np.ndarray, owner: np.ndarray, groups: int) -> np.ndarray:
    """Per group, its values added left to right from 0.0, as a Python loop (or ``sum`` on 3.11) adds
    them; ``owner`` (the group of each value) ascending, so that a group's values are contiguous."""
    sizes = np.bincount(owner, minlength=groups)
    rank = np.arange(len(owner)) - (np.cumsum(sizes) - sizes)[owner]
    by_rank = np.zeros((int(sizes.max(initial=0)), groups))  # a group's values down its column, then zeros
    by_rank[rank, owner] = values
    total = np.zeros(groups)
    for values_of_rank in by_rank:
        total += values_of_rank
    return total


def texts_bytes(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ASCII texts as (their bytes one after another, the text of each byte, each text's length)."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    data = np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8)
    return data, np.repeat(np.arange(len(texts), dtype=np.int32), lengths), lengths


def byte_entropies(data: np.ndarray, text_of: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The Shannon entropy (bits) of each text's bytes (:func:`texts_bytes` gives the arguments)."""
    n_texts, positions = len(lengths), np.arange(len(data), dtype=np.int32)
    if not len(data):
        return np.zeros(n_texts)
    # (text, byte) as one key, the bytes renumbered to those present: tables of a few hundred kB, not
    # texts x 256 (fresh megabytes each window cost more in page faults than the counting itself)
    present = np.bincount(data, minlength=256) > 0
    width = int(present.sum())
    keys = text_of * width + (np.cumsum(present, dtype=np.int32) - 1)[data]
    first = np.full(n_texts * width, len(data), dtype=np.int32)
    np.minimum.at(first, keys, positions)
    counts = np.bincount(keys, minlength=n_texts * width)
    at_first = first[keys] == positions  # each distinct byte of a text, where it first appears
    owner = text_of[at_first]
    terms = _term_table()[lengths[owner], counts[keys[at_first]]]
    return -ordered_sums(terms, owner, n_texts) + 0.0


def text_entropies(texts: list[str]) -> np.ndarray:
    """:func:`byte_entropies` of ASCII texts."""
    return byte_entropies(*texts_bytes(texts))
