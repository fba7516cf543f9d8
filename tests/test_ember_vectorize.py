"""Batch vectorization: the token-table hashing and whole-batch numeric blocks equal scikit-learn's
FeatureHasher and ember's per-record arithmetic exactly; orjson reads lines as json does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction import FeatureHasher

from vigil.tasks.ember.features import (
    ByteEntropyHistogram,
    ByteHistogram,
    FeatureBlock,
    FeatureExtractor,
    GeneralFileInfo,
    ImportsInfo,
    StringExtractor,
    StringHasher,
)
from vigil.tasks.ember.vectorize import load_json_line, parse_record

DATA = Path(__file__).resolve().parents[1] / "data" / "ember"


def records() -> list[dict]:
    from vigil.tasks.ember.demo_data import build_demo_records

    train, test = build_demo_records(n_train=40, n_test=10, seed=3)
    head = [json.loads(line) for line in (DATA / "train_features_0_head.jsonl").read_text().splitlines()]
    return train + test + head


def test_string_hasher_equals_feature_hasher_with_collisions_repeats_and_bytes():
    rng = np.random.default_rng(4)
    vocabulary = [f"tok{i}" for i in range(300)] + ["", "é", "kernel32.dll:GetProcAddress", b"raw-bytes"]
    samples = [[vocabulary[i] for i in rng.integers(0, len(vocabulary), rng.integers(0, 40))] for _ in range(200)]
    for n_features in (3, 10, 1024):
        expected = FeatureHasher(n_features, input_type="string").transform(samples).toarray()
        hasher = StringHasher(n_features)
        assert np.array_equal(hasher.rows(samples), expected)
        assert np.array_equal(hasher.rows(samples), expected)  # second time from the table
        assert np.array_equal(hasher.transform(samples).toarray(), expected)  # the sparse form explain.py reads
        small = StringHasher(n_features)
        small.room = 5  # a full table: the rest hashed each time, the same values
        assert np.array_equal(small.rows(samples), expected)


def test_string_hasher_refuses_what_feature_hasher_refuses():
    with pytest.raises(ValueError, match="single string"):
        StringHasher(8).rows(["abc"])
    with pytest.raises(TypeError):
        StringHasher(8).rows([[1, 2]])


def test_imports_block_equals_the_joined_token_feature_hasher():
    raws = [r["imports"] for r in records()]
    raws.append({"KERNEL32.dll": ["A", "B"], "kernel32.dll": ["A"], "x.dll": []})
    libraries = FeatureHasher(256, input_type="string").transform(
        [list({library.lower() for library in raw}) for raw in raws]
    )
    functions = FeatureHasher(1024, input_type="string").transform(
        [[library.lower() + ":" + name for library, names in raw.items() for name in names] for raw in raws]
    )
    expected = np.hstack([libraries.toarray(), functions.toarray()]).astype(np.float32)
    assert np.array_equal(ImportsInfo().process_raw_features_batch(raws), expected)


def test_count_rows_too_large_for_exact_float32_sums_equal_embers_per_record_division():
    rng = np.random.default_rng(8)
    raws = [rng.integers(0, 2**31, 256).tolist() for _ in range(300)] + [[0] * 256]
    for block in (ByteHistogram(), ByteEntropyHistogram()):
        with np.errstate(invalid="ignore"):
            one_by_one = np.vstack([block.process_raw_features(raw) for raw in raws])
        batch = block.process_raw_features_batch(raws)
        assert np.array_equal(batch, one_by_one, equal_nan=True)
        assert np.isnan(batch[-1]).all()  # 0 / 0, as ember


@pytest.mark.parametrize(
    "block,bad",
    [
        (ByteHistogram(), [None] + [1] * 255),
        (StringExtractor(), "numstrings"),
        (GeneralFileInfo(), "size"),
    ],
)
def test_malformed_numbers_take_the_record_by_record_path(block, bad):
    """A None or a string where a number belongs: what the per-record code gives (NaN or an error)."""
    raws = [r[block.name] for r in records()[:5]]
    if isinstance(bad, list):
        raws[2] = bad
    else:
        raws[2] = {**raws[2], bad: "7"}

    def outcome(run):
        try:
            with np.errstate(invalid="ignore"):
                return run()
        except Exception as exc:
            return type(exc)

    expected = outcome(lambda: FeatureBlock.process_raw_features_batch(block, raws))
    got = outcome(lambda: block.process_raw_features_batch(raws))
    if isinstance(expected, np.ndarray):
        assert np.array_equal(got, expected, equal_nan=True)
    else:
        assert got is expected


def test_whole_batch_equals_one_record_at_a_time_for_every_block():
    extractor, raws = FeatureExtractor(2), records()
    assert np.array_equal(
        extractor.process_raw_features_batch(raws), np.vstack([extractor.process_raw_features(r) for r in raws])
    )


@pytest.mark.parametrize(
    "line",
    [
        b'{"a": NaN, "b": Infinity}',
        b'{"a": "\\ud800"}',
        b'{"a": "caf\xe9"}',
        '{"a": 1.5e300, "b": [1, 2.5, -0.0]}',
        b'{"label": 1, "x": "\xc3\xa9"}\n',
    ],
)
def test_json_lines_read_as_json_reads_the_decoded_line(line):
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    got, expected = load_json_line(line), json.loads(text)
    assert json.dumps(got) == json.dumps(expected)


def test_integers_past_64_bits_come_back_as_the_float_a_vector_would_hold():
    """orjson's one difference kept: such an integer is read as a float (json: an int), the same
    float32 in a vector either way."""
    got, expected = (
        load_json_line(b'{"a": 123456789012345678901234567890}'),
        json.loads('{"a": 123456789012345678901234567890}'),
    )
    assert got["a"] == float(expected["a"])
    assert np.float32(got["a"]) == np.array([expected["a"]], dtype=np.float32)[0]


def test_broken_lines_are_still_named_not_valid_json():
    for line in (b"", b"{", b"\n", b"[1,"):
        with pytest.raises(ValueError, match="not valid JSON"):
            parse_record(line)
