"""The 14 CIC columns of many plain query names at once, equal to :class:`QueryFeatureExtractor`'s.

Most names in a DNS stream are plain ASCII host names with no ``\\DDD`` escape. For those the
per-byte Python loops of the feature blocks (parsing the presentation form, counting character
classes, the entropy, the letter runs looked up in the word list) are replaced by one compiled pass
over each name's bytes (:mod:`~vigil.tasks.dns_exfil.name_kernels`), ``split`` for the labels, and
the suffix lookup on the last labels only (cached: a stream repeats its zones). Every value is
computed by the same formula as the blocks, from the same floats added in the same order, so rows
are *equal*, not close (tests/test_dns_stream_speed.py checks it on the shipped captures and benign
names, tests/test_dns_name_kernels.py on adversarial and generated ones). A name that is not plain
(an escape, a non-ASCII character, an empty or over-long label) goes through the extractor as before.

    >>> import numpy as np
    >>> from vigil.tasks.dns_exfil.features import QueryFeatureExtractor
    >>> names = ["www.Example.co.uk", r"a\\128b.t.example.com", "_smb._tcp.local"]
    >>> bool((cic_matrix(names) == QueryFeatureExtractor().transform(names)).all())
    True
"""

from __future__ import annotations

import numpy as np

from vigil.tasks.dns_exfil.domains import compiled_name_passes, plain_sld_index
from vigil.tasks.dns_exfil.features import (
    FEATURE_COLUMNS,
    QueryFeatureExtractor,
    parse_query_name,
    registered_domain_index,
)


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


def _plain_block(labels_of: list[list[str]], indexes: list[int]) -> np.ndarray:
    """The rows of plain names (their labels and sld indexes), from one compiled pass over each
    name's bytes (``name_kernels.py``)."""
    kernels = compiled_name_passes()
    texts = [".".join(labels) for labels in labels_of]
    data, starts = kernels.ascii_bytes(texts)
    counted = kernels.name_columns(data, starts, np.array(indexes, dtype=np.int64))
    upper, lower, numeric, dots = (counted[:, k] for k in (kernels.UPPER, kernels.LOWER, kernels.DIGIT, kernels.DOTS))
    sub, sld = counted[:, kernels.SUBDOMAIN], counted[:, kernels.SLD]
    n = np.diff(starts).astype(float)
    columns = {
        "FQDN_count": n,
        "subdomain_length": sub,
        "upper": upper,
        "lower": lower,
        "numeric": numeric,
        "entropy": counted[:, kernels.ENTROPY],
        "special": n - upper - lower - numeric,
        "labels": dots + 1.0,  # a plain name has no empty label
        "labels_max": counted[:, kernels.LABELS_MAX],
        "labels_average": (n - dots) / (dots + 1.0),  # the labels' bytes / their number
        "longest_word": counted[:, kernels.LONGEST_WORD],
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
        matrix[plain] = _plain_block(labels_of, indexes)
    return matrix, splits
