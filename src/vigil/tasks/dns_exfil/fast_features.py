"""The 14 CIC columns of many plain query names at once, equal to :class:`QueryFeatureExtractor`'s.

Most names in a DNS stream are plain ASCII host names with no ``\\DDD`` escape. For those the
per-byte Python loops of the feature blocks (parsing the presentation form, counting character
classes, shaping labels for the suffix lookup) are replaced by C-level string methods: ``split``,
``bytes.translate`` to count classes, one ``Counter`` for the entropy, the suffix lookup on the last
labels only (cached: a stream repeats its zones). Every value is computed by the same formula as the
blocks, in the same order of operations, so rows are *equal*, not close (tests/test_dns_stream_speed.py
checks it on the shipped captures and benign names). A name that is not plain (an escape, a
non-ASCII character, an empty or over-long label) goes through the extractor as before.

    >>> import numpy as np
    >>> from vigil.tasks.dns_exfil.features import QueryFeatureExtractor
    >>> names = ["www.Example.co.uk", r"a\\128b.t.example.com", "_smb._tcp.local"]
    >>> bool((cic_matrix(names) == QueryFeatureExtractor().transform(names)).all())
    True
"""

from __future__ import annotations

import numpy as np

from vigil.tasks.dns_exfil.domains import _SAFE_CHARS, _SUFFIX_TAIL, _tail_index
from vigil.tasks.dns_exfil.features import (
    _LETTER_RUN,
    FEATURE_COLUMNS,
    QueryFeatureExtractor,
    _entropy,
    english_words,
    parse_query_name,
    registered_domain_index,
)

_UPPER = bytes(range(65, 91))
_LOWER = bytes(range(97, 123))
_DIGITS = bytes(range(48, 58))


def plain_labels(raw) -> list[str] | None:
    """The labels of a plain ASCII name (no escape, 1-63 characters each, at most 253 in all), else None."""
    if not isinstance(raw, str) or "\\" in raw or not raw.isascii():
        return None
    text = raw.strip(" \t\r\n")
    if text.endswith("."):
        text = text[:-1]
    if not text or len(text) > 253:
        return None
    labels = text.split(".")
    for label in labels:
        if not label or len(label) > 63:
            return None
    return labels


def _sld_index(labels: list[str]) -> int:
    tail = labels[-_SUFFIX_TAIL:]
    shape = ".".join(label if _SAFE_CHARS.issuperset(label) else "a" * len(label) for label in tail)
    index = _tail_index(shape, len(tail))
    if index < 0:  # the tail is all public suffix: the full lookup decides
        return registered_domain_index(parse_query_name(".".join(labels)))
    return len(labels) - len(tail) + index


def cic_row(labels: list[str], words: frozenset[str], index: int | None = None) -> list[float]:
    text = ".".join(labels)
    data = text.encode("ascii")
    n = len(data)
    upper = n - len(data.translate(None, _UPPER))
    lower = n - len(data.translate(None, _LOWER))
    numeric = n - len(data.translate(None, _DIGITS))
    lengths = [len(label) for label in labels]
    found = [t for t in (t.lower() for t in _LETTER_RUN.findall(text)) if t in words]
    longest = max(found, key=len) if found else ""
    index = _sld_index(labels) if index is None else index
    sub = len(".".join(labels[:index])) if index > 0 else 0
    sld = len(labels[index]) if index >= 0 else 0
    return [
        float(n),
        float(sub),
        float(upper),
        float(lower),
        float(numeric),
        float(_entropy(data)),
        float(n - upper - lower - numeric),
        float(len(labels)),
        float(max(lengths)),
        float(sum(lengths) / len(lengths)),
        float(len(longest)),
        float(sld),
        float(sub + 1 + sld if sub else sld),
        float(bool(sub)),
    ]


def cic_matrix(names, extractor: QueryFeatureExtractor | None = None) -> np.ndarray:
    """Rows of :data:`FEATURE_COLUMNS` for ``names`` (plain ones fast, the others by ``extractor``)."""
    return cic_matrix_and_split(names, extractor)[0]


def cic_matrix_and_split(names, extractor: QueryFeatureExtractor | None = None):
    """:func:`cic_matrix`, and per name its (registered domain, subdomain) from the same split
    (None for a name that is not plain): what the per-domain detector needs, not computed twice."""
    words = english_words()
    rows, splits = [], []
    for raw in names:
        labels = plain_labels(raw)
        if labels is not None:
            index = _sld_index(labels)
            rows.append(cic_row(labels, words, index))
            splits.append((".".join(labels[index:]).lower(), ".".join(labels[:index])))
        else:
            extractor = extractor or QueryFeatureExtractor()
            features = extractor.features(raw)
            rows.append([features[c] for c in FEATURE_COLUMNS])
            splits.append(None)
    return np.asarray(rows, dtype=float).reshape(-1, len(FEATURE_COLUMNS)), splits
