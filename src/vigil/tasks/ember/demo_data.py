"""A labelled demo set built from the real raw records shipped in data/ember/.

The full EMBER corpus (~1 M files, several GB) cannot ship with the repository, and the 16 real
records that do ship are all benign or unlabelled. So the demo set is built, openly, like this:

* base records: the 10 real EMBER 2017 records (benign) and the 6 raw records of pip's distlib
  launchers (benign, unlabelled in the file);
* label 0 ("benign-like"): a base record with mild jitter (byte counts scaled by +-10 %, sizes and
  timestamp moved a little);
* label 1 ("packed-looking"): a base record with the same jitter plus a random subset (each with
  probability 0.7) of four perturbations that imitate what packers and droppers do to a PE, at a random strength s in
  [0.3, 1]: (entropy) byte and byte-entropy histograms pushed toward high entropy; (sections) the
  first sections renamed UPX0/UPX1 with write+execute rights and entropy near 8; (imports) the import
  table cut toward a loader stub (LoadLibraryA, GetProcAddress, VirtualAlloc, VirtualProtect), no
  debug info; (strings) fewer strings, occasional URL/registry strings;
* a quarter of the label-0 records also get the high-entropy perturbation (benign installers and
  archives are high-entropy too), so the classes overlap.

Test records come from base records the training set never saw. A model trained on this learns
"looks packed", nothing more: it is a demo of the pipeline, not a malware detector.

Example::

    train, test = build_demo_records(seed=0)
    write_demo_data("runs/ember-demo")  # train_features_0.jsonl + test_features.jsonl
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np

from vigil.config import SAMPLE_DATA

SAMPLE_DIR = SAMPLE_DATA / "ember"
EMBER_SAMPLE = "train_features_0_head.jsonl"
LAUNCHER_SAMPLE = "reference_pip_launchers_raw.jsonl"
STUB_IMPORTS = {"KERNEL32.DLL": ["LoadLibraryA", "GetProcAddress", "VirtualAlloc", "VirtualProtect", "ExitProcess"]}


def load_base_records(sample_dir: Path = SAMPLE_DIR) -> list[dict]:
    records: list[dict] = []
    for name in (EMBER_SAMPLE, LAUNCHER_SAMPLE):
        with open(sample_dir / name, encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle if line.strip())
    for record in records:
        record.setdefault("datadirectories", [])  # the 2017 records predate this block
        record.setdefault("avclass", "")
    return records


def _jitter(record: dict, rng: np.random.Generator) -> None:
    for key in ("histogram", "byteentropy"):
        counts = np.asarray(record[key], dtype=np.float64)
        record[key] = np.maximum(0, np.round(counts * rng.uniform(0.9, 1.1, counts.shape))).astype(int).tolist()
    general = record["general"]
    general["size"] = int(general["size"] * rng.uniform(0.9, 1.1))
    general["vsize"] = int(general["vsize"] * rng.uniform(0.9, 1.1))
    record["header"]["coff"]["timestamp"] = int(record["header"]["coff"]["timestamp"] + rng.integers(-(2**24), 2**24))
    for section in record["section"]["sections"]:
        section["size"] = int(section["size"] * rng.uniform(0.95, 1.05))
        section["entropy"] = float(min(8.0, max(0.0, section["entropy"] + rng.normal(0, 0.1))))


PERTURBATIONS = ("entropy", "sections", "imports", "strings")


def _pack(record: dict, rng: np.random.Generator, strength: float, groups: set[str]) -> None:
    if "entropy" in groups:
        _pack_entropy(record, strength)
    if "sections" in groups:
        _pack_sections(record, rng, strength)
    if "imports" in groups:
        _pack_imports(record, rng, strength)
    if "strings" in groups:
        _pack_strings(record, rng, strength)


def _pack_entropy(record: dict, strength: float) -> None:
    histogram = np.asarray(record["histogram"], dtype=np.float64)
    uniform = np.full(256, histogram.sum() / 256)
    record["histogram"] = np.round((1 - strength) * histogram + strength * uniform).astype(int).tolist()

    entropy = np.asarray(record["byteentropy"], dtype=np.float64).reshape(16, 16)
    moved = entropy * strength
    entropy -= moved
    entropy[14:16, :] += moved.sum(axis=0) / 2  # the moved windows now sit in the top entropy bins
    record["byteentropy"] = np.round(entropy).astype(int).ravel().tolist()


def _pack_sections(record: dict, rng: np.random.Generator, strength: float) -> None:
    sections = record["section"]["sections"]
    if sections:
        for index, section in enumerate(sections[:2]):
            section["name"] = f"UPX{index}"
            section["props"] = sorted(set(section["props"]) | {"MEM_EXECUTE", "MEM_WRITE", "MEM_READ"})
            section["entropy"] = float(min(8.0, 7.2 + 0.8 * strength * rng.random()))
        sections[0]["size"], sections[0]["vsize"] = 0, int(sections[0]["vsize"] * (1 + 3 * strength))
        record["section"]["entry"] = sections[min(1, len(sections) - 1)]["name"]


def _pack_imports(record: dict, rng: np.random.Generator, strength: float) -> None:
    keep = 1 - strength
    imports = {
        library: names[: int(len(names) * keep)] for library, names in record["imports"].items() if rng.random() < keep
    }
    for library, names in STUB_IMPORTS.items():
        imports.setdefault(library, []).extend(names)
    record["imports"] = imports
    record["general"]["imports"] = sum(len(names) for names in imports.values())
    record["general"]["has_debug"] = 0


def _pack_strings(record: dict, rng: np.random.Generator, strength: float) -> None:
    strings = record["strings"]
    strings["numstrings"] = int(strings["numstrings"] * (1 - 0.8 * strength))
    strings["entropy"] = float(strings["entropy"] + strength * rng.uniform(0, 0.8))
    strings["urls"] = int(strings["urls"] + rng.poisson(2 * strength))
    strings["registry"] = int(strings["registry"] + rng.poisson(2 * strength))


def _synthetic(base: dict, label: int, rng: np.random.Generator) -> dict:
    record = copy.deepcopy(base)
    _jitter(record, rng)
    if label == 1:  # a random subset of the packer traits, at a random strength
        groups = {g for g in PERTURBATIONS if rng.random() < 0.7} or {str(rng.choice(PERTURBATIONS))}
        _pack(record, rng, float(rng.uniform(0.3, 1.0)), groups)
    elif rng.random() < 0.25:  # benign installers and archives are high-entropy too
        _pack(record, rng, float(rng.uniform(0.1, 0.8)), {"entropy"})
    record["label"] = label
    record["avclass"] = "demo-packed" if label == 1 else ""
    body = json.dumps(record, sort_keys=True).encode()
    record["sha256"] = hashlib.sha256(body).hexdigest()  # an id for the synthetic record, not a file hash
    return record


def build_demo_records(
    n_train: int = 400, n_test: int = 200, seed: int = 0, sample_dir: Path = SAMPLE_DIR
) -> tuple[list[dict], list[dict]]:
    """(train, test) raw records, balanced classes; test built from base records train never saw."""
    rng = np.random.default_rng(seed)
    bases = load_base_records(sample_dir)
    order = rng.permutation(len(bases))
    test_bases = [bases[i] for i in order[:4]]
    train_bases = [bases[i] for i in order[4:]]
    train = [_synthetic(train_bases[i % len(train_bases)], i % 2, rng) for i in range(n_train)]
    test = [_synthetic(test_bases[i % len(test_bases)], i % 2, rng) for i in range(n_test)]
    # The unmodified real records ride along in train with their real labels (0, or -1 = unlabelled).
    train.extend(copy.deepcopy(base) for base in train_bases)
    rng.shuffle(train)
    return train, test


def write_demo_data(out_dir: Path | str, **kwargs) -> tuple[Path, Path]:
    """Write ember's file names: train_features_0.jsonl and test_features.jsonl."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, test = build_demo_records(**kwargs)
    paths = out_dir / "train_features_0.jsonl", out_dir / "test_features.jsonl"
    for path, records in zip(paths, (train, test)):
        with open(path, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
    return paths
