"""The CIC-Bell-DNS-EXF-2021 features against the two real rows of static_dataset.csv (SPECS §4)."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from vigil.tasks.dns_exfil.features import (
    FEATURE_COLUMNS,
    QueryFeatureExtractor,
    coerce_csv_value,
    normalize_query,
    parse_query_name,
    registered_domain,
)

# Published rows; the query names are reconstructions consistent with every count in them.
REVERSE_DNS_ROW = {
    "FQDN_count": 27,
    "subdomain_length": 10,
    "upper": 0,
    "lower": 10,
    "numeric": 11,
    "special": 6,
    "labels": 6,
    "labels_max": 7,
    "labels_average": 3.666667,
    "longest_word": "2",
    "sld": "192",
    "len": 14,
    "subdomain": 1,
}
MDNS_ROW = {
    "FQDN_count": 15,
    "subdomain_length": 9,
    "upper": 0,
    "lower": 11,
    "numeric": 0,
    "special": 4,
    "labels": 3,
    "labels_max": 5,
    "labels_average": 4.333333,
    "longest_word": "local",
    "sld": "local",
    "len": 15,
    "subdomain": 1,
}


@pytest.fixture(scope="module")
def extractor():
    return QueryFeatureExtractor()


@pytest.mark.parametrize(
    "query, published",
    [
        ("10.123.168.192.in-addr.arpa", REVERSE_DNS_ROW),
        ("_smb._tcp.local.", MDNS_ROW),
    ],
)
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


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "a..b.com", ".a.com", "x" * 64 + ".com", ".".join(["x" * 63] * 4), r"a\256.com", "a.com\\", 42, None],
)
def test_what_cannot_be_on_the_wire_is_refused(bad):
    with pytest.raises(ValueError):
        normalize_query(bad)


def test_longest_legal_name_is_255_wire_bytes():
    name = ".".join(["x" * 63, "x" * 63, "x" * 63, "x" * 61])  # 253 characters, 255 wire bytes
    assert parse_query_name(name).wire_length == 255
    assert parse_query_name(r"\255" * 63 + "." + "x" * 63 + "." + "x" * 63 + "." + "x" * 61).wire_length == 255
    with pytest.raises(ValueError, match="255"):
        parse_query_name(name + "x")


@pytest.mark.parametrize(
    "name, sub",
    [
        ("aGVsbG8/d29y+bGQ=.t.example.com", len("aGVsbG8/d29y+bGQ=.t")),  # dns2tcp-style base64
        ("a:b@c?d#e.t.example.com", len("a:b@c?d#e.t")),  # URL delimiters are bytes too
        ("_dmarc.example.com", len("_dmarc")),
    ],
)
def test_names_are_not_parsed_as_urls(extractor, name, sub):
    row = extractor.features(name)
    assert row["subdomain_length"] == sub and row["sld"] == len("example") and row["subdomain"] == 1
    assert registered_domain(name) == "example.com"


def test_escapes_and_8bit_bytes_are_scored_by_their_bytes():
    real = QueryFeatureExtractor.real()
    escaped = real.features(r"\200\201x\.y.t.example.com.")
    assert escaped["FQDN_count"] == len("..x.y.t.example.com") and escaped["eight_bit"] == 2
    assert escaped["labels"] == 4 and escaped["subdomain_length"] == 7  # "\.": a dot inside a label
    assert escaped["wire_length"] == 1 + 5 + 1 + 1 + 1 + 7 + 1 + 3 + 1
    raw = real.features(b"\x80\x81x.t.example.com")  # bytes input: byte for byte
    assert raw["eight_bit"] == 2 and raw["FQDN_count"] == len("..x.t.example.com")
    text = real.features("caf\u00e9.t.example.com")  # a non-ASCII character: its UTF-8 bytes
    assert text["eight_bit"] == 2 and text["FQDN_count"] == len("cafxx.t.example.com")
    assert real.features("www.example.com")["eight_bit"] == 0


def test_presentation_form_round_trips():
    for name in [r"\200a\.b\\c.t.example.com", "A/B+C=.d_e.example.com", "Bob\u2019s iPhone._rdlink._tcp.local"]:
        once = normalize_query(name)
        assert parse_query_name(once) == parse_query_name(name) and normalize_query(once) == once


def test_upper_case_is_kept_and_counted():
    real = QueryFeatureExtractor.real()
    row = real.features("aGVsbG8gd29ybGQhIFRoaXMgaXM.t.example.com")
    assert row["upper"] == sum(c.isupper() for c in "aGVsbG8gd29ybGQhIFRoaXMgaXM")
    assert row["case_switches"] > 5 and 0 < row["sub_upper_ratio"] < 1
    assert real.features("www.example.com")["case_switches"] == 0


def test_root_and_cic_columns_stay_first(extractor):
    assert list(QueryFeatureExtractor.real().features("a.example.com"))[:14] == FEATURE_COLUMNS
    assert extractor.features(".")["labels"] == 0


def test_csv_cells_of_the_cic_files():
    assert coerce_csv_value("longest_word", "local") == 5
    assert coerce_csv_value("longest_word", "2") == 2
    assert coerce_csv_value("longest_word", float("nan")) == 0  # 8 rows of static_dataset.csv
    assert coerce_csv_value("sld", "192") == 3
    with pytest.raises(ValueError):
        coerce_csv_value("entropy", "inf")


@pytest.mark.parametrize(
    "column, value",
    [
        ("longest_word", "inf"),
        ("longest_word", "-inf"),
        ("longest_word", "NaN"),
        ("longest_word", "1e400"),
        ("longest_word", 10**400),
        ("longest_word", [1]),
        ("sld", 10**400),
        ("sld", {"a": 1}),
        ("entropy", "-Infinity"),
        ("entropy", float("nan")),
        ("entropy", 10**400),
        ("entropy", 1e39),
        ("entropy", [1]),
        ("entropy", None),
        ("entropy", "abc"),
    ],
)
def test_non_finite_and_non_scalar_cells_are_refused(column, value):
    with pytest.raises(ValueError, match=column):
        coerce_csv_value(column, value)


def test_the_words_nan_and_infinity_are_words():
    # Both are in the shipped English list, so the generator can write them as a query's longest word.
    assert coerce_csv_value("longest_word", "nan") == 3
    assert coerce_csv_value("longest_word", "infinity") == 8
    assert coerce_csv_value("longest_word", 7) == 7 and coerce_csv_value("sld", 163) == 3
