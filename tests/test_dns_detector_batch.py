"""The per-domain detector a window at a time gives what it gives name by name (issue 17, item 5):
the same alerts, the same table and the same Bloom filters, bit for bit; and the suffix lookup keyed
by a name's last two labels finds the sld the full parser finds."""

from __future__ import annotations

import dataclasses

import pytest

from vigil.tasks.dns_exfil.benign import load_benign
from vigil.tasks.dns_exfil.capture import load_captures
from vigil.tasks.dns_exfil.domains import (
    DomainDetector,
    _suffix_extractor,
    benign_day,
    plain_sld_index,
    split_name,
    window_information_bits,
)
from vigil.tasks.dns_exfil.fast_features import plain_labels
from vigil.tasks.dns_exfil.features import parse_query_name, registered_domain_index
from vigil.tasks.dns_exfil.generate import STATIC_PHASE, QueryGenerator


def _streams():
    benign = load_benign()
    day, day_times = benign_day(list(benign.name), [split_name(n)[0] for n in benign.name], seed=1)
    captures = load_captures().sort_values("time", kind="stable")
    generated = QueryGenerator(seed=4).queries(STATIC_PHASE, 12_000)[0]
    return {
        "benign day": (day[:20_000], [float(t) for t in day_times[:20_000]]),
        "captures": (list(captures.qname), [float(t) for t in captures.time]),
        # half a second apart: fast windows roll inside a batch of 1,000
        "generated": (generated, [i * 0.5 for i in range(len(generated))]),
    }


def _batches(names, times, size=1000):
    for start in range(0, len(names), size):
        items = []
        for raw, at in zip(names[start : start + size], times[start : start + size]):
            try:
                domain, sub, eight_bit = split_name(raw)
            except ValueError:
                continue
            items.append((domain, sub, at, eight_bit))
        yield items


@pytest.mark.parametrize("capacity", [4096, 64])  # 64: domains are evicted inside every batch
@pytest.mark.parametrize("stream", ["benign day", "captures", "generated"])
def test_a_window_at_a_time_leaves_the_detector_as_name_by_name_does(stream, capacity):
    names, times = _streams()[stream]
    one_by_one, batched = DomainDetector(capacity=capacity), DomainDetector(capacity=capacity)
    expected = one_by_one.observe(names, times)
    alerts = []
    for items in _batches(names, times):
        alerts += batched.observe_split(items)
        # the checkpoint's rows, partly cached, are what the table holds now
        assert batched.to_state()["entries"] == [dataclasses.astuple(e) for e in batched.entries.values()]
    assert alerts == expected
    assert batched.to_state() == one_by_one.to_state()
    assert batched._fast_seen.array == one_by_one._fast_seen.array
    assert batched._slow_seen.array == one_by_one._slow_seen.array


def test_the_window_information_bits_are_the_name_by_name_floats():
    from vigil.tasks.dns_exfil.domains import information_bits, novel_part

    names, times = _streams()["captures"]
    items = next(_batches(names, times, size=3000))
    items.append(("example.com", "caf\xe9.x", 0.0, True))  # not ASCII: computed by the per-name code
    last: dict[str, str] = {}
    for (domain, sub, *_), guess in zip(items, window_information_bits(items, {})):
        if not sub:
            assert guess is None
            continue
        previous = last.get(domain, "")
        assert guess == (previous, information_bits(novel_part(sub, previous)))
        last[domain] = sub


def _names_around_every_suffix_rule() -> list[str]:
    names = []
    for rule in _suffix_extractor().tlds:
        rule = rule.lstrip("!").replace("*", "zz")
        for left in ("a", "b.a", "c.b.a", "1.2", "xn--abc.q", "A-b.Q", "x_y.z"):
            names += [f"{left}.{rule}", f"{left}.{rule.upper()}"]
    return names + ["1.2.3.4", "9.1.2.3.4", "a.1.2.3.4", "x.y.10.0.0.1", "a.b.c.d.e.f.local", "q.w.in-addr.arpa"]


def test_the_last_two_labels_find_the_sld_the_full_parser_finds():
    names = (
        _names_around_every_suffix_rule()
        + load_benign().name.sample(5000, random_state=3).tolist()
        + load_captures().qname.tolist()
    )
    checked = 0
    for raw in names:
        labels = plain_labels(raw)
        if labels is None:
            continue
        index = plain_sld_index(labels)
        if index >= 0:  # -1: the full parser decides anyway
            assert index == registered_domain_index(parse_query_name(raw)), raw
            checked += 1
    assert checked > 0.9 * len(names)
