"""The 14 CIC columns of many plain query names at once, equal to :class:`QueryFeatureExtractor`'s.

Most names in a DNS stream are plain ASCII host names with no ``\\DDD`` escape. For those the
per-byte Python loops of the feature blocks (parsing the presentation form, counting character
classes, shaping labels for the suffix lookup) are replaced by one numpy pass over the bytes of all
the plain names of a window (character classes by a lookup table and one ``bincount``, the entropy
from per-name byte histograms), ``split`` for the labels, and the suffix lookup on the last labels only
(cached: a stream repeats its zones). Every value is computed by the same formula as the blocks, from
the same floats added in the same order, so rows are *equal*, not close (tests/test_dns_stream_speed.py
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

from vigil.tasks.dns_exfil.domains import plain_sld_index
from vigil.tasks.dns_exfil.features import (
    FEATURE_COLUMNS,
    QueryFeatureExtractor,
    english_words,
    parse_query_name,
    registered_domain_index,
)
from vigil.tasks.dns_exfil.histograms import byte_entropies, texts_bytes

# byte classes of the CIC counts, in one lookup table: upper, lower, digit, dot, anything else
_OTHER, _UPPER, _LOWER, _DIGIT, _DOT = range(5)
_N_CLASSES = 5
_CLASS_OF_BYTE = np.full(256, _OTHER, dtype=np.int64)
_CLASS_OF_BYTE[ord("A") : ord("Z") + 1] = _UPPER
_CLASS_OF_BYTE[ord("a") : ord("z") + 1] = _LOWER
_CLASS_OF_BYTE[ord("0") : ord("9") + 1] = _DIGIT
_CLASS_OF_BYTE[ord(".")] = _DOT
# every ASCII character but a letter as a space: str.split() then gives the letter runs (_LETTER_RUN's)
_NON_LETTER_TO_SPACE = str.maketrans({chr(code): " " for code in range(128) if not chr(code).isalpha()})


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
    index = plain_sld_index(labels)
    if index < 0:  # the tail is all public suffix: the full lookup decides
        return registered_domain_index(parse_query_name(".".join(labels)))
    return index


def _longest_words(texts: list[str], data: np.ndarray, name_of: np.ndarray, words: frozenset[str]) -> np.ndarray:
    """Per name, the length of its longest letter run that is an English word (0 if none): the runs of
    all the names by one split, looked up in one ``map``, the longest per name by numpy."""
    runs = ".".join(texts).lower().translate(_NON_LETTER_TO_SPACE).split()  # the dots part two names' runs
    letter = (data | 0x20) - ord("a") < 26  # uint8 arithmetic: ``a-z`` and ``A-Z`` only
    starts = letter.copy()
    starts[1:] &= ~letter[:-1] | (name_of[1:] != name_of[:-1])  # a run starts after a non-letter or a name
    owner = name_of[starts]  # the name of each run, in the order findall gives them
    found = np.fromiter(map(words.__contains__, runs), dtype=bool, count=len(runs))
    lengths = np.fromiter(map(len, runs), dtype=np.int64, count=len(runs))
    longest = np.zeros(len(texts), dtype=np.int64)
    np.maximum.at(longest, owner, np.where(found, lengths, 0))
    return longest.astype(float)


def _plain_block(labels_of: list[list[str]], indexes: list[int], words: frozenset[str]) -> np.ndarray:
    """The rows of plain names (their labels and sld indexes): the counts and the entropy in one numpy
    pass over the window's bytes, the words and label lengths per name."""
    texts = [".".join(labels) for labels in labels_of]
    data, name_of, lengths = texts_bytes(texts)
    classes = np.bincount(name_of * _N_CLASSES + _CLASS_OF_BYTE[data], minlength=_N_CLASSES * len(texts))
    classes = classes.reshape(-1, _N_CLASSES).astype(float)
    upper, lower, numeric, dots = classes[:, _UPPER], classes[:, _LOWER], classes[:, _DIGIT], classes[:, _DOT]
    per_name = np.array(
        [
            (
                max(map(len, labels)),
                sum(map(len, labels[:index])) + index - 1 if index > 0 else 0,  # the subdomain's bytes
                len(labels[index]),
            )
            for labels, index in zip(labels_of, indexes)
        ],
        dtype=float,
    ).reshape(-1, 3)
    labels_max, sub, sld = per_name.T
    n = lengths.astype(float)
    columns = {
        "FQDN_count": n,
        "subdomain_length": sub,
        "upper": upper,
        "lower": lower,
        "numeric": numeric,
        "entropy": byte_entropies(data, name_of, lengths),
        "special": n - upper - lower - numeric,
        "labels": dots + 1.0,  # a plain name has no empty label
        "labels_max": labels_max,
        "labels_average": (n - dots) / (dots + 1.0),  # the labels' bytes / their number
        "longest_word": _longest_words(texts, data, name_of, words),
        "sld": sld,
        "len": np.where(sub > 0, sub + 1 + sld, sld),
        "subdomain": (sub > 0).astype(float),
    }
    return np.column_stack([columns[c] for c in FEATURE_COLUMNS])


def cic_matrix(names, extractor: QueryFeatureExtractor | None = None) -> np.ndarray:
    """Rows of :data:`FEATURE_COLUMNS` for ``names`` (plain ones fast, the others by ``extractor``)."""
    return cic_matrix_and_split(names, extractor)[0]


def cic_matrix_and_split(names, extractor: QueryFeatureExtractor | None = None, labels_of_names=None):
    """:func:`cic_matrix`, and per name its (registered domain, subdomain) from the same split
    (None for a name that is not plain): what the per-domain detector needs, not computed twice.
    ``labels_of_names``: :func:`plain_labels` of each name when the caller has them already."""
    names = list(names)
    if labels_of_names is None:
        labels_of_names = [plain_labels(raw) for raw in names]
    matrix = np.empty((len(names), len(FEATURE_COLUMNS)))
    splits: list[tuple[str, str] | None] = [None] * len(names)
    plain, labels_of, indexes = [], [], []
    for i, (raw, labels) in enumerate(zip(names, labels_of_names)):
        if labels is None:
            extractor = extractor or QueryFeatureExtractor()
            features = extractor.features(raw)
            matrix[i] = [features[c] for c in FEATURE_COLUMNS]
            continue
        index = _sld_index(labels)
        plain.append(i)
        labels_of.append(labels)
        indexes.append(index)
        splits[i] = (".".join(labels[index:]).lower(), ".".join(labels[:index]))
    if plain:
        matrix[plain] = _plain_block(labels_of, indexes, english_words())
    return matrix, splits
