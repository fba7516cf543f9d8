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
    HeaderFileInfo,
    ImportsInfo,
    SectionInfo,
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


def _bits(matrix: np.ndarray) -> bytes:
    """The float32 bytes, so NaNs compare by their sign and payload too."""
    assert matrix.dtype == np.float32
    return matrix.tobytes()


def _outcome(run):
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            return _bits(run())
    except Exception as exc:
        return type(exc), str(exc)


def _embers_section_vector(raw: dict) -> np.ndarray:
    """ember's SectionInfo.process_raw_features, one FeatureHasher call per part."""
    sections = raw["sections"]
    general = [
        len(sections),
        sum(1 for s in sections if s["size"] == 0),
        sum(1 for s in sections if s["name"] == ""),
        sum(1 for s in sections if "MEM_READ" in s["props"] and "MEM_EXECUTE" in s["props"]),
        sum(1 for s in sections if "MEM_WRITE" in s["props"]),
    ]
    pairs = [
        FeatureHasher(50, input_type="pair").transform([[(s["name"], s[key]) for s in sections]]).toarray()[0]
        for key in ("size", "entropy", "vsize")
    ]
    entry = FeatureHasher(50, input_type="string").transform([list(raw["entry"])]).toarray()[0]
    properties = [p for s in sections for p in s["props"] if s["name"] == raw["entry"]]
    hashed = FeatureHasher(50, input_type="string").transform([properties]).toarray()[0]
    return np.hstack([general, *pairs, entry, hashed]).astype(np.float32)


def test_section_block_equals_embers_feature_hasher_on_float_pairs_sharing_columns():
    """Up to 60 sections over 6 names: floats added three and more to a column, in the order scipy's
    sort of a row leaves them (past 16 entries std::sort is not stable), zeros, NaN, huge numbers."""
    rng = np.random.default_rng(11)
    names = [".text", ".data", ".rsrc", "", "UPX0", ".t\\xe9xt"]
    odd = [0, 0.0, -0.0, float("nan"), 1e300, 2**60 + 1, -7]
    raws = [r["section"] for r in records()]
    for _ in range(80):
        sections = []
        for _ in range(int(rng.integers(0, 60))):
            sections.append(
                {
                    "name": names[rng.integers(len(names))],
                    "size": int(rng.integers(0, 3)) * int(rng.integers(1, 2**20)),
                    "entropy": float(rng.random() * 8) if rng.random() < 0.9 else odd[rng.integers(len(odd))],
                    "vsize": odd[rng.integers(len(odd))] if rng.random() < 0.1 else int(rng.integers(0, 2**32)),
                    "props": [
                        str(p)
                        for p in rng.choice(["MEM_READ", "MEM_WRITE", "MEM_EXECUTE", "CNT_CODE"], rng.integers(0, 4))
                    ],
                }
            )
        raws.append({"entry": names[rng.integers(len(names))], "sections": sections})
    with np.errstate(over="ignore"):  # 1e300 is inf in float32, in ember too
        expected = np.vstack([_embers_section_vector(raw) for raw in raws])
    block = SectionInfo()
    with np.errstate(over="ignore"):
        assert block._well_formed_batch(raws) is not None  # the fast path is the one tested
        assert _bits(block.process_raw_features_batch(raws)) == _bits(expected)
        assert _bits(block._any_batch(raws)) == _bits(expected)


@pytest.mark.parametrize(
    "block,change",
    [
        # a string where FeatureHasher wanted a list, past the first record: read as its characters
        (HeaderFileInfo(), lambda raw: raw["coff"].update(characteristics="EXECUTABLE_IMAGE")),
        (HeaderFileInfo(), lambda raw: raw["optional"].update(sizeof_code="12")),
        (HeaderFileInfo(), lambda raw: raw["coff"].update(machine=None)),
        (HeaderFileInfo(), lambda raw: raw["optional"].pop("magic")),
        (
            SectionInfo(),
            lambda raw: raw["sections"].append({"name": 3, "size": 0, "entropy": 0, "vsize": 0, "props": []}),
        ),
        (
            SectionInfo(),
            lambda raw: raw["sections"].append({"name": ".x", "size": "7", "entropy": 1, "vsize": 1, "props": []}),
        ),
        (
            SectionInfo(),
            lambda raw: raw["sections"].append(
                {"name": ".x", "size": 1, "entropy": 1, "vsize": 1, "props": "MEM_READ"}
            ),
        ),
        (
            SectionInfo(),
            lambda raw: raw["sections"].append({"name": ".x", "size": True, "entropy": None, "vsize": 1, "props": []}),
        ),
        (SectionInfo(), lambda raw: raw.update(entry=["."])),
        (SectionInfo(), lambda raw: raw["sections"][0].pop("vsize")),
        (SectionInfo(), lambda raw: raw["sections"][0].update(name=None, size=5)),
        (HeaderFileInfo(), lambda raw: raw["coff"].update(timestamp=10**400)),
    ],
)
def test_records_that_are_not_well_formed_get_what_the_general_path_gives(block, change):
    """The fast batch paths take only well-formed records; anything else gives the general path's
    values or error, exactly as before."""
    raws = [json.loads(json.dumps(r[block.name])) for r in records() if r.get(block.name)][:6]
    change(raws[3])
    general = block._any_batch
    assert _outcome(lambda: block.process_raw_features_batch(raws)) == _outcome(lambda: general(raws))
    assert _outcome(lambda: block.process_raw_features_batch(raws[3:4])) == _outcome(lambda: general(raws[3:4]))


def test_fast_and_general_paths_agree_on_every_shipped_record():
    raws = records() + [json.loads(line) for line in (DATA / "reference_debian_raw.jsonl").read_text().splitlines()]
    for block in (HeaderFileInfo(), SectionInfo()):
        part = [raw[block.name] for raw in raws]
        assert block._well_formed_batch(part) is not None
        assert _bits(block.process_raw_features_batch(part)) == _bits(block._any_batch(part))


@pytest.mark.parametrize(
    "raws",
    [
        [[], [{"name": "EXPORT_TABLE", "size": 5, "virtual_address": 4096}]],
        [[{"size": True, "virtual_address": False}], [{"size": 2**31, "virtual_address": 2**32 + 1}]],
        [[{"size": 2**53 + 1, "virtual_address": 0}]],  # past a double's integers: one by one
        [[{"size": 1.5, "virtual_address": 2}], [{"size": 3, "virtual_address": -7}]],
        [[{"size": i, "virtual_address": 3 * i} for i in range(20)]],  # only the first 15 count
        [[{"size": 16777217, "virtual_address": 123456789}]],  # float32 rounds them
    ],
)
def test_data_directories_in_a_batch_equal_one_by_one(raws):
    from vigil.tasks.ember.features import DataDirectories

    block = DataDirectories()
    expected = np.vstack([block.process_raw_features(raw) for raw in raws])
    np.testing.assert_array_equal(block.process_raw_features_batch(raws), expected)


@pytest.mark.parametrize("raws", [[[{"size": 1}]], [["a"]], [{"size": 1}], [[None]]])
def test_malformed_data_directories_fail_in_a_batch_as_one_by_one(raws):
    from vigil.tasks.ember.features import DataDirectories

    block = DataDirectories()
    with pytest.raises(Exception) as one:
        block.process_raw_features(raws[0])
    with pytest.raises(type(one.value)):
        block.process_raw_features_batch(raws)
