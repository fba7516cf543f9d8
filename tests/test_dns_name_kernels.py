"""The compiled passes over a window's names (``name_kernels.py``) give the per-name code's values, bit
for bit: the 14 CIC columns of the feature blocks, the detector's information bits of each new part,
and the Bloom filters' answers and bits of ``add_to_both`` called name by name. Adversarial names
(empty and over-long labels, unicode and IDNA, upper case, trailing dots, numeric labels, letter runs
longer than any word) and generated ones."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.tasks.dns_exfil.domains import (
    BloomFilter,
    add_to_both,
    information_bits,
    novel_part,
    window_information_bits,
    window_novelty,
)
from vigil.tasks.dns_exfil.fast_features import cic_matrix, plain_labels
from vigil.tasks.dns_exfil.features import FEATURE_COLUMNS, QueryFeatureExtractor

ADVERSARIAL_NAMES = [
    "",
    ".",
    "..",
    "a..b.example.com",
    ".leading.example.com",
    "trailing.example.com.",
    "trailing.example.com..",
    "  spaced.example.com \t",
    "WWW.GOOGLEMAIL.COM",
    "wWw.ExAmPlE.cO.uK",
    "bücher.de",
    "xn--bcher-kva.de",
    "xn--bcher-kva.xn--p1ai",
    "例え.テスト",
    "1.2.3.4",
    "9.1.2.3.4",
    "123.456.com",
    "0.0.0.0.in-addr.arpa",
    "a" * 63 + ".example.com",
    "a" * 64 + ".example.com",
    ".".join(["a" * 63] * 3) + "." + "b" * 61,  # 253 characters
    ".".join(["a" * 63] * 3) + "." + "b" * 62,  # 254: too long for a plain name
    "x" * 300,
    "thisisaverylongrunofletterswithoutanybreakatallforsure.example.com",
    "hello.world.example.com",
    "HelloWorld123Hello.example.org",
    "a1b2c3.d4.e5.example.net",
    "_ldap._tcp.dc._msdcs.corp.local",
    "-.-.-",
    "a-b--c.x_y.co_uk",
    "localhost",
    "co.uk",
    "com",
    "a\\046b.example.com",
    "a\\.b.example.com",
    "q.w.in-addr.arpa",
    "mzxw6ytboi.0.1f3a.tunnel-relay.net",
]

_LABEL_CHARS = "abcxyzABCXYZ0189-_*~"
_labels = st.lists(st.text(_LABEL_CHARS, min_size=0, max_size=70), min_size=1, max_size=8)
_names = st.builds(
    lambda labels, suffix, dot: ".".join(labels) + suffix + dot,
    _labels,
    st.sampled_from(["", ".com", ".co.uk", ".example.org", ".local", ".arpa", ".1", ".xn--p1ai", ".COM"]),
    st.sampled_from(["", "."]),
)


def _assert_rows_equal(names: list[str]) -> None:
    fast = cic_matrix(names)
    slow = QueryFeatureExtractor().transform(names)
    different = np.flatnonzero((fast != slow).any(axis=1))
    assert different.size == 0, [(names[i], dict(zip(FEATURE_COLUMNS, fast[i] - slow[i]))) for i in different[:3]]


def _featurisable(names: list[str]) -> list[str]:
    """The names the per-name extractor accepts (the others are refused by both paths alike)."""
    extractor, kept = QueryFeatureExtractor(), []
    for name in names:
        try:
            extractor.features(name)
        except ValueError:
            continue
        kept.append(name)
    return kept


def test_the_rows_of_adversarial_names_are_the_feature_blocks_rows():
    names = _featurisable(ADVERSARIAL_NAMES)
    assert sum(plain_labels(n) is not None for n in names) > 20  # most go through the compiled pass
    _assert_rows_equal(names)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_names, min_size=1, max_size=40))
def test_the_rows_of_generated_names_are_the_feature_blocks_rows(names):
    names = _featurisable(names)
    if names:
        _assert_rows_equal(names)


def _name_by_name_bits(items: list[tuple], last_subs: dict[str, str]) -> list:
    last, expected = dict(last_subs), []
    for domain, sub, *_ in items:
        if not sub:
            expected.append(None)
            continue
        previous = last.get(domain, "")
        expected.append((previous, information_bits(novel_part(sub, previous))))
        last[domain] = sub[:255]
    return expected


class _Entry:
    def __init__(self, last_sub: str):
        self.last_sub = last_sub


_SUBDOMAINS = [
    "",
    "a",
    "ab",
    "a.b",
    "a..b",
    ".a",
    "a.",
    "aaaa.aaaa",
    "i1-js-14-3-01-10005-101304103-i.init",
    "i1-js-14-3-01-10005-101990267-i.init",
    "x" * 255,
    "x" * 254 + "y",
    "y" + "x" * 300,  # longer than a name's wire length: the per-name code
    "caf\xe9.x",
    "CAFE.x",
    "cafe.x",
    "0.1.2.3",
    "0.1.2.4",
    "\\046.a",
]


def test_the_information_bits_of_adversarial_subdomains_are_the_name_by_name_floats():
    items = [("example.com", sub, 0.0, False) for sub in _SUBDOMAINS for _ in range(2)]
    items += [("other.org", sub, 0.0, False) for sub in reversed(_SUBDOMAINS)]
    entries = {"other.org": _Entry("aaaa.aaaa")}
    assert window_information_bits(items, entries) == _name_by_name_bits(items, {"other.org": "aaaa.aaaa"})


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a.com", "b.net", "c.org"]), st.text("ab.-9Z\xe9", min_size=0, max_size=40)),
        max_size=60,
    )
)
def test_the_information_bits_of_generated_subdomains_are_the_name_by_name_floats(pairs):
    items = [(domain, sub, 0.0, False) for domain, sub in pairs]
    assert window_information_bits(items, {}) == _name_by_name_bits(items, {})


def test_the_window_novelty_is_add_to_both_name_by_name():
    rng = np.random.default_rng(0)
    keys = [(int(h1), int(h2) | 1) for h1, h2 in rng.integers(0, 2**32, (3000, 2))]
    keys += keys[:200] + keys[100:150]  # repeated names: old to both filters
    for bits in (1 << 12, 1 << 23, 1000):  # small filters: keys share bits within the window
        batched = (BloomFilter(bits), BloomFilter(bits))
        one_by_one = (BloomFilter(bits), BloomFilter(bits))
        for filters in (batched, one_by_one):
            for h1, h2 in keys[:500]:
                filters[1].add_hashed(h1, h2)  # the slow filter knows some names already
        expected = [add_to_both(*one_by_one, h1, h2) for h1, h2 in keys]
        assert window_novelty(*batched, keys) == expected
        assert batched[0].array == one_by_one[0].array and batched[1].array == one_by_one[1].array
