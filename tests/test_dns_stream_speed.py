"""The stream's fast paths give the numbers of the slow ones (issue 17, item 5): batch features of
plain names equal the feature blocks', the cached selection equals the pipeline, numpy window scores
equal scikit-learn's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil.artifacts import ArtifactStore
from vigil.tasks.dns_exfil.benign import load_benign
from vigil.tasks.dns_exfil.capture import load_captures
from vigil.tasks.dns_exfil.fast_features import cic_matrix, plain_labels
from vigil.tasks.dns_exfil.features import CSV_COLUMNS, FEATURE_COLUMNS, QueryFeatureExtractor
from vigil.tasks.dns_exfil.generate import STATIC_PHASE, QueryGenerator
from vigil.tasks.dns_exfil.model import predict_proba, scores, window_scores


def test_batch_features_of_real_and_generated_names_equal_the_feature_blocks():
    names = (
        load_benign().name.sample(6000, random_state=2).tolist()
        + load_captures().qname.tolist()
        + QueryGenerator(seed=2).queries(STATIC_PHASE, 2000)[0]
        + ["_smb._tcp.local", "co.uk", "a.b.c.d.e.f.g.h.example.com.", " www.example.com ", "localhost"]
    )
    assert sum(plain_labels(n) is not None for n in names) > 0.9 * len(names)
    fast = cic_matrix(names)
    slow = QueryFeatureExtractor().transform(names)
    different = np.flatnonzero((fast != slow).any(axis=1))
    assert different.size == 0, [(names[i], dict(zip(FEATURE_COLUMNS, fast[i] - slow[i]))) for i in different[:3]]


@pytest.fixture(scope="module")
def static(dns_default_store):
    return dns_default_store.load("dns_exfil").model


def test_the_cached_feature_selection_scores_as_the_pipeline(static):
    names, _ = QueryGenerator(seed=8).queries(STATIC_PHASE, 1500)
    X = pd.DataFrame(cic_matrix(names), columns=FEATURE_COLUMNS)
    expected = static.predict_proba(X)[:, 1]
    assert np.array_equal(predict_proba(static, X), expected)
    assert np.array_equal(predict_proba(static, X), expected)  # cached the second time
    assert np.array_equal(predict_proba(static, X, compiled=True), expected)  # the stream's: compiled trees


def test_window_scores_equal_scikit_learns():
    rng = np.random.default_rng(0)
    for _ in range(30):
        y = rng.integers(0, 2, 1000)
        p = np.round(np.clip(y * 0.3 + rng.random(1000) * 0.8, 0, 1), 2)  # ties on purpose
        ours, theirs = window_scores(y, p, 0.5), scores(y, p, 0.5)
        for key in ("f1", "accuracy", "roc_auc"):
            assert ours[key] == pytest.approx(theirs[key], abs=1e-12)
    one_class = window_scores(np.zeros(10), np.linspace(0, 1, 10))
    assert np.isnan(one_class["roc_auc"]) and one_class["f1"] == 0.0


def test_a_mutual_information_pipeline_saves_and_loads(tmp_path):
    """vigil dns train / demo save whichever candidate wins; the mutual-information one names our
    seeded score function, which the artifact store must accept."""
    from vigil.tasks.dns_exfil.model import make_pipeline

    names, labels = QueryGenerator(seed=6).queries(STATIC_PHASE, 600)
    X = pd.DataFrame(cic_matrix(names), columns=FEATURE_COLUMNS)
    bundle = make_pipeline("mutual_info_k8", "lightgbm").fit(X, labels)
    store = ArtifactStore(tmp_path)
    entry = store.save("dns_exfil", bundle, threshold=0.5)
    loaded = store.load("dns_exfil", entry["version"]).model
    assert np.array_equal(predict_proba(loaded, X), predict_proba(bundle, X))


def test_batch_features_of_names_with_odd_bytes_in_their_last_labels_equal_the_feature_blocks():
    """The suffix lookup sees each odd byte as ``a`` (a label ``a0*`` is ``a0a``, not the TLD ``aaa``)."""
    names = ["7qzR-.a0*", "~kA.0B-tAb--zLC.a.0!2", "x_y.co_uk", "a.b=c.com", "h.x/y.example.org", "p+q.local"]
    assert np.array_equal(cic_matrix(names), QueryFeatureExtractor().transform(names))


def test_orjson_messages_read_as_the_standard_parser_reads_them():
    import json

    from vigil.messages import json_message

    values = [
        b'{"a": 1, "b": -0, "c": 1.5, "d": "x"}',
        b'{"a": 9223372036854775807, "b": -9223372036854775808}',
        b'{"a": 9223372036854775808, "b": -9223372036854775809, "c": 18446744073709551616}',
        b'{"a": 1e19, "b": [1, 184467440737095516160]}',
        b'\xef\xbb\xbf{"a": "\\ud800"}',
        b'"0.1,2,x"',
    ]
    for value in values:
        parsed, expected = json_message(value), json.loads(value.decode("utf-8-sig"))
        assert parsed == expected and repr(parsed) == repr(expected), value


def test_a_row_of_plain_fields_is_the_checking_loops_row(monkeypatch, dns_default_store):
    """parse's fast path for a row gives the row the field-by-field checks give, or leaves the message
    to them (which then reject it with the reason naming the field)."""
    import json

    from vigil.tasks.dns_exfil import stream
    from vigil.windows import RejectedMessage

    processor = stream.DnsWindowProcessor(dns_default_store, dns_default_store.load("dns_exfil"), "t")
    odd = ["1", " 2.5 ", "-0", "3.5e38", "nan", "-Infinity", "", "abc", True, None, 7, 10**40, [1], "1_0"]
    words = ["pdf", "", " local ", "nan", "inf", "2", 3, None]

    def parse(message):
        try:
            return processor.parse(json.dumps(message).encode())
        except RejectedMessage as exc:
            return str(exc)

    rng = np.random.default_rng(0)
    messages = []
    for _ in range(400):
        message = {c: str(rng.integers(0, 60)) for c in FEATURE_COLUMNS}
        column = FEATURE_COLUMNS[rng.integers(len(FEATURE_COLUMNS))]
        message[column] = odd[rng.integers(len(odd))]
        message["longest_word"] = words[rng.integers(len(words))]
        message["Target Attack"] = "1"
        messages.append(message)
    fast = [parse(m) for m in messages]
    monkeypatch.setattr(stream, "_plain_row", lambda obj: None)
    assert fast == [parse(m) for m in messages]
    assert any(isinstance(f, str) for f in fast) and any(isinstance(f, tuple) for f in fast)


def _outcomes(processor, values):
    """parse of each value one at a time: its row (repr, so -0.0 and 0.0 differ) or its exception."""
    outcomes = []
    for value in values:
        try:
            outcomes.append(repr(processor.parse(value)))
        except Exception as exc:
            outcomes.append((type(exc).__name__, str(exc)))
    return outcomes


def test_a_window_parsed_at_once_is_each_message_parsed_alone(dns_default_store):
    """parse_batch, which converts the CIC rows' number texts of a poll together, gives each message
    what parse gives it alone: the same row to the bit, or the same rejection with its reason. The
    odd texts are those one joined JSON parse could misread or read differently (commas, brackets, quotes, the integer
    -0, numbers beyond float64 or float32) next to plain ones, JSON numbers, and the other formats."""
    import json

    from vigil.tasks.dns_exfil import stream

    processor = stream.DnsWindowProcessor(dns_default_store, dns_default_store.load("dns_exfil"), "t")
    # texts one JSON parse reads as numbers (or values that are not texts), then texts it cannot read
    joinable = [
        " 3 ", "\t4\n", "-0", "-0.0", "-0e0", "1e-0", "1e-400", "18446744073709551616", "1" * 30, "3.5e38",
        1, 1.5, -0.0, True, None, [1], 10**40,
    ]  # fmt: skip
    breaking = ["1,2", "[1]", '"a', 'b"', "{}", "1e400", "-1e400", "0x10", "01", ".5", "+1", "nan", "Infinity", "١", "true", "null", "", "1_0"]  # fmt: skip
    rng = np.random.default_rng(1)

    def message(odd_fields: int, odd: list) -> bytes:
        record = {c: str(rng.integers(0, 60)) for c in FEATURE_COLUMNS}
        record["entropy"] = f"{rng.uniform(0, 4):.6f}"
        record["longest_word"], record["sld"] = "www", "example"
        for column in rng.choice(FEATURE_COLUMNS, size=odd_fields):
            record[column] = odd[rng.integers(len(odd))]
        record["Target Attack"] = ["0", "1", 1, "", "2"][rng.integers(5)]
        return json.dumps(record).encode()

    others = [
        b'{"query": "a.example.com", "Target Attack": 1, "time": 5}',
        json.dumps(",".join(["1"] * len(CSV_COLUMNS))).encode(),  # a raw CSV line, JSON-encoded
        b"{'FQDN_count': '3'}",
        b"[1, 2]",
        b"not json",
        None,
    ]
    clean = [message(0, []) for _ in range(300)]
    assert len(stream._window_of_number_texts([json.loads(v) for v in clean])[1]) == 300  # all taken together
    assert _batch_outcomes(processor, clean) == _outcomes(processor, clean)
    for window in range(60):
        odd = joinable if window % 2 else joinable + breaking  # the odd windows' joined parse succeeds
        values = [message(int(rng.integers(1, 3)) if rng.random() < 0.2 else 0, odd) for _ in range(50)]
        values[int(rng.integers(50))] = others[window % len(others)]
        assert _batch_outcomes(processor, values) == _outcomes(processor, values), window


def _batch_outcomes(processor, values):
    return [(type(o).__name__, str(o)) if isinstance(o, Exception) else repr(o) for o in processor.parse_batch(values)]
