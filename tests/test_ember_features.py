"""EMBER features: ember's own vectors for the shipped records, hand-checked values, LIEF 1.0 extraction."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils import murmurhash3_32

from vigil.tasks.ember import FeatureExtractor, block_slices
from vigil.tasks.ember.features import ByteEntropyHistogram, SectionInfo

DATA = Path(__file__).resolve().parents[1] / "data" / "ember"
# LIEF 1.0 warns about out-of-range enum values of corrupted headers (the extractor writes "???");
# the module's own filter is reset by pytest between tests.
pytestmark = pytest.mark.filterwarnings("ignore:.*is not a valid:RuntimeWarning")


def ember_head_records() -> list[dict]:
    return [json.loads(line) for line in (DATA / "train_features_0_head.jsonl").read_text().splitlines()]


def launcher_reference() -> tuple[list[dict], np.ndarray]:
    raws = [json.loads(line) for line in (DATA / "reference_pip_launchers_raw.jsonl").read_text().splitlines()]
    return raws, np.load(DATA / "reference_pip_launchers_v2.npy")


def pip_launchers() -> list[Path]:
    import pip

    return sorted((Path(pip.__file__).parent / "_vendor" / "distlib").glob("*.exe"))


def test_dimensions_and_block_order():
    assert FeatureExtractor(1).dim == 2351 and FeatureExtractor(2).dim == 2381
    assert list(block_slices(2)) == [
        "histogram",
        "byteentropy",
        "strings",
        "general",
        "header",
        "section",
        "imports",
        "exports",
        "datadirectories",
    ]
    assert block_slices(2)["section"] == slice(688, 943)
    with pytest.raises(ValueError):
        FeatureExtractor(3)


def test_shipped_ember_records_vectorize_to_embers_own_vectors():
    reference = np.load(DATA / "reference_head_first5_v1.npy")
    extractor = FeatureExtractor(1)
    vectors = np.vstack([extractor.process_raw_features(r) for r in ember_head_records()[:5]])
    assert vectors.dtype == np.float32 and vectors.shape == (5, 2351)
    assert np.array_equal(vectors, reference)  # bit for bit, every block


def test_hand_checked_values_of_the_first_record():
    record = ember_head_records()[0]
    vector = FeatureExtractor(1).process_raw_features(record)
    # histogram: count of byte 0 over all bytes, in float32 (45521 / 3101705)
    assert record["histogram"][0] == 45521 and sum(record["histogram"]) == 3101705
    assert vector[0] == np.float32(45521) / np.float32(3101705)
    # general.size, the first value after histogram (256) + byteentropy (256) + strings (104)
    assert vector[616] == 3101705.0
    # header: the COFF timestamp 1124149349 rounds to the nearest float32, 1124149376
    assert vector[626] == 1124149376.0
    # strings: numstrings, then avlength rounded to float32
    assert vector[512] == 14573.0 and vector[513] == np.float32(5.972071639333013)
    # section counts: 5 sections, 1 of size 0 (.rsro), 0 unnamed, 1 readable+executable (.text),
    # 2 writable (.data, .rsro)
    assert vector[688:693].tolist() == [5.0, 1.0, 0.0, 1.0, 2.0]


def test_entry_name_is_hashed_character_by_character():
    """ember's quirk: FeatureHasher got the bare string '.text', and old scikit-learn iterated it."""
    record = ember_head_records()[0]
    assert record["section"]["entry"] == ".text"
    entry_block = FeatureExtractor(1).process_raw_features(record)[688 + 5 + 150 : 688 + 5 + 200]
    expected = np.zeros(50)
    for character in ".text":  # signed MurmurHash3, seed 0, as FeatureHasher does
        h = murmurhash3_32(character, positive=False)
        expected[abs(h) % 50] += 1 if h >= 0 else -1
    assert {int(i): expected[i] for i in np.flatnonzero(expected)} == {3: -1.0, 9: 1.0, 39: -2.0, 43: 1.0}
    assert np.array_equal(entry_block, expected.astype(np.float32))
    whole = murmurhash3_32(".text", positive=False)  # the modern "one token" reading would differ
    assert entry_block[abs(whole) % 50] == 0


def test_launcher_reference_records_vectorize_exactly():
    raws, reference = launcher_reference()
    extractor = FeatureExtractor(2)
    vectors = np.vstack([extractor.process_raw_features(r) for r in raws])
    assert np.array_equal(vectors, reference)
    # datadirectories of t32.exe: IMPORT_TABLE is (60 bytes, rva 70764), the 2nd pair of the block
    assert raws[0]["sha256"].startswith("6b4195e6")
    assert vectors[0][2351 + 2 : 2351 + 4].tolist() == [60.0, 70764.0]


def test_v1_record_vectorized_as_v2_gets_zero_data_directories():
    vector = FeatureExtractor(2).process_raw_features(ember_head_records()[0])
    assert vector.shape == (2381,) and not vector[2351:].any()


@pytest.mark.parametrize("path", sorted((DATA / "pe").glob("*.exe")), ids=lambda p: p.name)
def test_lief_extraction_matches_lief_0_12_reference_block_by_block(path):
    """Raw features read with LIEF 1.0 give ember's (LIEF 0.12.3) vector in every block."""
    raws, reference = launcher_reference()
    bytez = path.read_bytes()
    row = [r["sha256"] for r in raws].index(hashlib.sha256(bytez).hexdigest())
    extractor = FeatureExtractor(2)
    raw = extractor.raw_features(bytez)
    vector = extractor.process_raw_features(raw)
    mismatched = [name for name, s in block_slices(2).items() if not np.array_equal(vector[s], reference[row][s])]
    assert mismatched == []
    # Raw records agree too, flag lists in the order LIEF 0.12 listed them.
    expected = raws[row]
    for key in (
        "histogram",
        "byteentropy",
        "strings",
        "general",
        "header",
        "section",
        "imports",
        "exports",
        "datadirectories",
    ):
        assert raw[key] == expected[key], key
    assert (
        "CHARA_32BIT_MACHINE" in raw["header"]["coff"]["characteristics"] or "ARM64" == raw["header"]["coff"]["machine"]
    )


def test_pip_installed_launchers_give_2381_floats():
    launchers = pip_launchers()
    assert launchers, "pip ships distlib launchers (pip/_vendor/distlib/*.exe)"
    raws, reference = launcher_reference()
    by_sha = {r["sha256"]: i for i, r in enumerate(raws)}
    extractor = FeatureExtractor(2)
    for path in launchers:
        bytez = path.read_bytes()
        vector = extractor.feature_vector(bytez)
        assert vector.shape == (2381,) and vector.dtype == np.float32 and np.isfinite(vector).all()
        row = by_sha.get(hashlib.sha256(bytez).hexdigest())
        if row is not None:  # the same launcher as in the reference: every block matches
            assert np.array_equal(vector, reference[row]), path.name


@pytest.mark.parametrize(
    "content", [b"", b"MZ", b"hello world, not a PE " * 200, None], ids=["empty", "mz", "text", "truncated"]
)
def test_non_pe_and_truncated_files_get_embers_fallback_record(content):
    if content is None:
        content = (DATA / "pe" / "t32.exe").read_bytes()[:700]  # headers only, sections cut off
    extractor = FeatureExtractor(2)
    raw = extractor.raw_features(content)
    assert set(raw) == {
        "sha256",
        "histogram",
        "byteentropy",
        "strings",
        "general",
        "header",
        "section",
        "imports",
        "exports",
        "datadirectories",
    }
    assert raw["general"]["size"] == len(content)
    assert sum(raw["histogram"]) == len(content)
    if content[:2] != b"MZ" or len(content) < 64:
        assert raw["section"] == {"entry": "", "sections": []} and raw["imports"] == {} and raw["exports"] == []
        assert raw["header"]["coff"]["machine"] == "" and raw["datadirectories"] == []
    if content:
        vector = extractor.process_raw_features(raw)
        assert vector.shape == (2381,) and np.isfinite(vector).all()


def test_path_instead_of_bytes_is_a_clear_error():
    with pytest.raises(TypeError, match="bytes"):
        FeatureExtractor(2).raw_features(str(DATA / "pe" / "t32.exe"))


def test_byte_entropy_fast_windows_equal_the_plain_loop():
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.integers(0, 256, 5000), np.zeros(3000, dtype=int), rng.integers(0, 16, 4100)])
    bytez = data.astype(np.uint8).tobytes()
    block = ByteEntropyHistogram()
    slow = np.zeros((16, 16), dtype=np.int64)
    array = np.frombuffer(bytez, dtype=np.uint8)
    for start in range(0, len(array) - 2048 + 1, 1024):  # ember's windows, one by one
        counts = np.bincount(array[start : start + 2048] >> 4, minlength=16)
        slow[block._entropy_bin(counts)] += counts
    assert block.raw_features(bytez, None) == slow.ravel().tolist()


def test_empty_entry_name_hashes_to_nothing():
    raw = {
        "entry": "",
        "sections": [{"name": ".text", "size": 1, "entropy": 1.0, "vsize": 1, "props": ["MEM_EXECUTE"]}],
    }
    vector = SectionInfo().process_raw_features(raw)
    assert vector.shape == (255,) and vector[0] == 1 and not vector[155:205].any()


@pytest.mark.parametrize("seed", [2, 11, 12, 34])
def test_corrupted_headers_give_string_names_and_finite_vectors(seed):
    """Malformed files: LIEF 1.0 returns bytes for non-UTF-8 names and odd enum values."""
    content = np.frombuffer((DATA / "pe" / "t32.exe").read_bytes(), dtype=np.uint8).copy()
    rng = np.random.default_rng(seed)
    content[rng.integers(0, 1024, 60)] = rng.integers(0, 256, 60)
    extractor = FeatureExtractor(2)
    raw = extractor.raw_features(content.tobytes())
    json.dumps(raw)  # a JSON-lines record, whatever the file holds
    names = [
        raw["section"]["entry"],
        *(s["name"] for s in raw["section"]["sections"]),
        *raw["imports"],
        *(n for names in raw["imports"].values() for n in names),
        *raw["exports"],
        raw["header"]["coff"]["machine"],
        raw["header"]["optional"]["subsystem"],
        raw["header"]["optional"]["magic"],
    ]
    assert all(isinstance(name, str) for name in names)
    assert np.isfinite(extractor.process_raw_features(raw)).all()


def test_batch_vectorization_equals_one_record_at_a_time():
    from vigil.tasks.ember.demo_data import build_demo_records

    train, test = build_demo_records(n_train=60, n_test=20, seed=5)
    records = train + test + ember_head_records() + launcher_reference()[0]
    extractor = FeatureExtractor(2)
    one_by_one = np.vstack([extractor.process_raw_features(r) for r in records])
    assert np.array_equal(extractor.process_raw_features_batch(records), one_by_one)
    reference = np.load(DATA / "reference_head_first5_v1.npy")
    assert np.array_equal(FeatureExtractor(1).process_raw_features_batch(ember_head_records()[:5]), reference)


def _whole_file_strings(bytez: bytes) -> dict:
    """The strings block as ember computes it: one pass over the whole file (the reference)."""
    import re

    allstrings = re.compile(b"[\x20-\x7f]{5,}").findall(bytez)
    if allstrings:
        avlength = sum(len(s) for s in allstrings) / len(allstrings)
        counts = np.bincount(np.frombuffer(b"".join(allstrings), dtype=np.uint8) - 0x20, minlength=96)
        total = counts.sum()
        p = counts.astype(np.float32) / total
        nonzero = np.where(counts)[0]
        entropy = np.sum(-p[nonzero] * np.log2(p[nonzero]))
    else:
        avlength, counts, entropy, total = 0, np.zeros((96,), dtype=np.float32), 0, 0
    return {
        "numstrings": len(allstrings),
        "avlength": avlength,
        "printabledist": counts.tolist(),
        "printables": int(total),
        "entropy": float(entropy),
        "paths": len(re.findall(b"c:\\\\", bytez, re.IGNORECASE)),
        "urls": len(re.findall(b"https?://", bytez, re.IGNORECASE)),
        "registry": len(re.findall(b"HKEY_", bytez)),
        "MZ": len(re.findall(b"MZ", bytez)),
    }


def _whole_file_byte_entropy(bytez: bytes) -> list[int]:
    block, output = ByteEntropyHistogram(), np.zeros((16, 16), dtype=np.int64)
    data = np.frombuffer(bytez, dtype=np.uint8)
    starts = range(0, len(data) - 2048 + 1, 1024) if len(data) >= 2048 else [None]
    for start in starts:
        window = data if start is None else data[start : start + 2048]
        counts = np.bincount(window >> 4, minlength=16)
        output[block._entropy_bin(counts)] += counts
    return output.ravel().tolist()


def _adversarial_files() -> list[bytes]:
    """Printable runs and indicators of every length at every offset, so chunks cut through them."""
    rng = np.random.default_rng(7)
    tokens = [
        b"MZ",
        b"HKEY_",
        b"http://",
        b"HTTPS://",
        b"c:\\",
        b"C:\\x",
        b"abcd",
        b"abcdefgh",
        b"\x00",
        b"\x7f\x7f",
        b"\xff",
        b"hKey_",
        b"httpS:/",
        b"\x1f",
    ]
    files = [b"", b"A" * 4, b"A" * 5, b"A" * 7000, (DATA / "pe" / "t32.exe").read_bytes()[:20000]]
    for _ in range(30):
        n = int(rng.integers(0, 3000))
        files.append(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        files.append(b"".join(tokens[i] for i in rng.integers(0, len(tokens), n // 3)))
        files.append(rng.integers(0x1E, 0x82, n, dtype=np.uint8).tobytes())
    return files


@pytest.mark.parametrize("chunk", [2, 5, 1024, 3072, 1 << 20])
def test_byte_level_blocks_read_in_chunks_equal_one_whole_file_pass(chunk, monkeypatch):
    """The chunked histogram, byte entropy and strings give ember's whole-file values exactly,
    JSON included (ints stay ints), for strings and indicators that straddle chunk boundaries."""
    from vigil.tasks.ember import features
    from vigil.tasks.ember.features import ByteHistogram, StringExtractor

    monkeypatch.setattr(features, "CHUNK_BYTES", chunk)
    for bytez in _adversarial_files():
        assert json.dumps(StringExtractor().raw_features(bytez, None)) == json.dumps(_whole_file_strings(bytez))
        assert ByteEntropyHistogram().raw_features(bytez, None) == _whole_file_byte_entropy(bytez)
        assert (
            ByteHistogram().raw_features(bytez, None)
            == np.bincount(np.frombuffer(bytez, dtype=np.uint8), minlength=256).tolist()
        )


def test_entropy_bins_of_many_windows_at_once_equal_embers_one_window_at_a_time():
    """The vectorised bins (term table + numpy's float32 summation order) against ember's per-window
    arithmetic, for windows with every number of non-zero nibble counts (1..16)."""
    rng = np.random.default_rng(11)
    block, rows = ByteEntropyHistogram(), []
    for nonzero in range(1, 17):
        for _ in range(400):
            counts = np.zeros(16, dtype=np.int64)
            shares = rng.dirichlet(np.ones(nonzero) * rng.choice([0.1, 1.0, 10.0]))
            counts[rng.choice(16, nonzero, replace=False)] = rng.multinomial(2048, shares)
            rows.append(counts)
    windows = np.array(rows)
    assert block._entropy_bins(windows).tolist() == [block._entropy_bin(row) for row in windows]
    data = rng.integers(0, 256, 64 * 1024 + 77, dtype=np.uint8)
    plain = np.array([np.bincount(data[s : s + 1024] >> 4, minlength=16) for s in range(0, 64 * 1024, 1024)])
    assert np.array_equal(block._step_counts(data), plain)
