"""The CIC-Bell-DNS-EXF-2021 features against the two real rows of static_dataset.csv (SPECS §4)."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from vigil.tasks.dns_exfil.features import FEATURE_COLUMNS, QueryFeatureExtractor, coerce_csv_value, normalize_query

# Published rows; the query names are reconstructions consistent with every count in them.
REVERSE_DNS_ROW = {"FQDN_count": 27, "subdomain_length": 10, "upper": 0, "lower": 10, "numeric": 11, "special": 6,
                   "labels": 6, "labels_max": 7, "labels_average": 3.666667, "longest_word": "2", "sld": "192",
                   "len": 14, "subdomain": 1}
MDNS_ROW = {"FQDN_count": 15, "subdomain_length": 9, "upper": 0, "lower": 11, "numeric": 0, "special": 4,
            "labels": 3, "labels_max": 5, "labels_average": 4.333333, "longest_word": "local", "sld": "local",
            "len": 15, "subdomain": 1}


@pytest.fixture(scope="module")
def extractor():
    return QueryFeatureExtractor()


@pytest.mark.parametrize("query, published", [
    ("10.123.168.192.in-addr.arpa", REVERSE_DNS_ROW),
    ("_smb._tcp.local.", MDNS_ROW),
])
def test_features_match_published_rows(extractor, query, published):
    ours = extractor.features(query)
    assert list(ours) == FEATURE_COLUMNS
    for column, value in published.items():
        expected = coerce_csv_value(column, value)
        assert ours[column] == pytest.approx(expected, abs=1e-6), column


def _shannon(counts, n):
    return -sum(c / n * math.log2(c / n) for c in counts)


def _partitions(n, largest=None):
    largest = n if largest is None else largest
    if n == 0:
        yield []
        return
    for k in range(min(n, largest), 0, -1):
        for rest in _partitions(n - k, k):
            yield [k, *rest]


@pytest.mark.parametrize("length, published_entropy", [(15, 2.929439), (27, 2.570417)])
def test_published_entropy_is_not_the_entropy_of_any_name_of_that_length(length, published_entropy):
    # Why the entropy column cannot be checked exactly: no multiset of `length` characters has it.
    assert not any(abs(_shannon(p, length) - published_entropy) < 1e-5 for p in _partitions(length))


def test_entropy_is_shannon_bits_of_the_whole_name(extractor):
    name = "_smb._tcp.local"
    assert extractor.features(name)["entropy"] == pytest.approx(_shannon(Counter(name).values(), len(name)))


def test_tunnel_name_and_registered_domain(extractor):
    row = extractor.features("MZXW6YTBOI.mzxw6ytboi.0.1f3a.tunnel-relay.co.uk")
    assert row["upper"] == 9 and row["numeric"] == 1 + 1 + 1 + 2 and row["sld"] == len("tunnel-relay")
    assert row["subdomain_length"] == len("MZXW6YTBOI.mzxw6ytboi.0.1f3a")
    assert row["len"] == row["subdomain_length"] + 1 + row["sld"]
    bare = extractor.features("example.com")
    assert bare["subdomain"] == 0 and bare["subdomain_length"] == 0 and bare["len"] == len("example")


@pytest.mark.parametrize("bad", ["", "   ", "a..b.com", "a b.com", "x" * 254, "caf\u00e9.fr", 42])
def test_bad_names_are_refused(bad):
    with pytest.raises(ValueError):
        normalize_query(bad)


def test_csv_cells_of_the_cic_files():
    assert coerce_csv_value("longest_word", "local") == 5
    assert coerce_csv_value("longest_word", "2") == 2
    assert coerce_csv_value("longest_word", float("nan")) == 0  # 8 rows of static_dataset.csv
    assert coerce_csv_value("sld", "192") == 3
    with pytest.raises(ValueError):
        coerce_csv_value("entropy", "inf")


@pytest.mark.parametrize("column, value", [
    ("longest_word", "inf"), ("longest_word", "-inf"), ("longest_word", "NaN"), ("longest_word", "1e400"),
    ("longest_word", 10**400), ("longest_word", [1]), ("sld", 10**400), ("sld", {"a": 1}),
    ("entropy", "-Infinity"), ("entropy", float("nan")), ("entropy", 10**400), ("entropy", 1e39),
    ("entropy", [1]), ("entropy", None), ("entropy", "abc"),
])
def test_non_finite_and_non_scalar_cells_are_refused(column, value):
    with pytest.raises(ValueError, match=column):
        coerce_csv_value(column, value)


def test_the_words_nan_and_infinity_are_words():
    # Both are in the shipped English list, so the generator can write them as a query's longest word.
    assert coerce_csv_value("longest_word", "nan") == 3
    assert coerce_csv_value("longest_word", "infinity") == 8
    assert coerce_csv_value("longest_word", 7) == 7 and coerce_csv_value("sld", 163) == 3
