"""The generator's attack rows look like the real captures (issue 12, items 2 and 6).

For each encoding family the generator writes, the payload part of its attack queries (the labels
left of the attacker's domain) is compared with the payload part of the captured data-bearing queries
of the same family (left of the tunnel zone), both featurised under one neutral zone so that only the
payload is compared: the two-sample Kolmogorov-Smirnov statistic of every per-query feature must stay
below :data:`KS_BOUND`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from vigil.tasks.dns_exfil.capture import load_captures
from vigil.tasks.dns_exfil.features import RegisteredDomain, parse_query_name
from vigil.tasks.dns_exfil.generate import (
    ENCODING_FAMILIES,
    STATIC_PHASE,
    QueryGenerator,
    TunnelSession,
    generate,
    stream_phases,
)
from vigil.tasks.dns_exfil.query_model import featurize

KS_BOUND = 0.3  # the captured samples are small (133 to 1,400 rows per family): KS of 0.1-0.25 is noise
FEATURES = (
    "subdomain_length",
    "labels_max",
    "labels_average",
    "sub_labels",
    "sub_entropy",
    "sub_digit_ratio",
    "sub_upper_ratio",
    "sub_vowel_ratio",
    "max_consonant_run",
    "case_switches",
    "non_hostname",
    "numeric",
)
NEUTRAL_ZONE = "zone.example"


def _payload_features(payloads: list[str]) -> pd.DataFrame:
    return featurize([f"{p}.{NEUTRAL_ZONE}" for p in payloads])


@pytest.fixture(scope="module")
def captured():
    frame = load_captures()
    frame = frame[frame.data_bearing == 1]
    return {
        family: _payload_features(
            [q[: -len(z) - 1] for q, z, e in zip(frame.qname, frame.zone, frame.encoding) if e in members]
        )
        for family, members in ENCODING_FAMILIES.items()
    }


def _generated(family: str, n: int = 1500) -> pd.DataFrame:
    generator = QueryGenerator(seed=3)
    phase = STATIC_PHASE if family in STATIC_PHASE.encodings else stream_phases(1)[1]
    payloads: list[str] = []
    while len(payloads) < n:
        session = TunnelSession(generator.payload, generator.rng, phase, generator.shapes, generator.plain_payload)
        if session.encoding != family:
            continue
        payloads += [session.next_query()[: -len(session.domain) - 1] for _ in range(10)]
    return _payload_features(payloads)


@pytest.mark.parametrize("family", sorted(ENCODING_FAMILIES))
def test_generated_attack_rows_have_the_feature_distributions_of_the_captures(captured, family):
    generated, real = _generated(family), captured[family]
    assert len(real) >= 100
    statistics = {f: float(ks_2samp(generated[f], real[f]).statistic) for f in FEATURES}
    too_far = {f: round(v, 3) for f, v in statistics.items() if v > KS_BOUND}
    assert not too_far, f"{family}: KS above {KS_BOUND}: {too_far}"


def test_no_generated_sld_is_without_letters_unless_all_digits(tmp_path):
    """IP strings and ``0-02`` crash the assignment's consumer; digits only ("192") it reads."""
    generate(tmp_path, static_rows=3000, windows_per_phase=1, seed=9)
    for name in ("static_dataset.csv", "stream_dataset.csv"):
        sld = pd.read_csv(tmp_path / name, dtype=str, keep_default_na=False)["sld"]
        bad = sld[~sld.str.contains("[A-Za-z]") & ~sld.str.fullmatch("[0-9]+")]
        assert bad.empty, bad.value_counts().head().to_dict()


def test_lan_background_names_are_benign_rows():
    generator = QueryGenerator(seed=3)
    names, labels = generator.queries(STATIC_PHASE, 4000)
    local = np.array([n.endswith(".local") or n.endswith(".in-addr.arpa") for n in names])
    assert local.any() and not labels[local].any()
    slds = {RegisteredDomain().raw_features(parse_query_name(n))["sld"] for n, y in zip(names, labels) if y}
    assert all(any(ch.isalpha() for ch in s) for s in slds)
