"""The scores histogram takes from an answer's records what a per-record look would take: each
record's first numeric score key, in SCORE_KEYS order (whichever path, C-level or the loop, runs)."""

from __future__ import annotations

import numbers

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.service.metrics import SCORE_KEYS, extract_scores


def first_scores(records: list) -> list[float]:
    scores = []
    for record in records:
        if not isinstance(record, dict):
            continue
        for key in SCORE_KEYS:
            value = record.get(key)
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                scores.append(float(value))
                break
    return scores


values = st.floats(allow_nan=False) | st.integers(-5, 5) | st.booleans() | st.none() | st.text(max_size=2)
records = st.dictionaries(st.sampled_from([*SCORE_KEYS, "index", "label"]), values, max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.lists(records | values, max_size=20))
def test_record_scores_are_each_records_first_numeric_score(answer):
    assert extract_scores(answer) == first_scores(answer)
    assert extract_scores({"results": answer}) == first_scores(answer)


def test_a_thousand_float_probabilities_are_taken_in_order():
    answer = [{"index": i, "probability": i / 1000, "malicious": False} for i in range(1000)]
    assert extract_scores({"results": answer}) == [i / 1000 for i in range(1000)]
    mixed = [*answer[:3], {"index": 3, "score": 0.5, "probability": 0.25}]  # an earlier key wins
    assert extract_scores(mixed) == [0.0, 0.001, 0.002, 0.5]
