"""Why the EMBER model calls a file malicious: LightGBM's per-feature contributions, named.

``/predict/ember?explain=N`` adds to every result ``"reasons"``: the ``N`` features whose
contribution to the log-odds (LightGBM ``predict(..., pred_contrib=True)``, TreeSHAP inside
LightGBM) is largest in absolute value, each named after its feature block and entry
(:func:`feature_names`: "byte histogram 0x00", "header: timestamp", "data directory IMPORT_TABLE:
size"). Hashed entries (section, import, export, header-enum hashes) name what the file put in
that bin when the raw record is known (an upload, a raw record): "section .upx0: entropy 7.9",
"imports: kernel32.dll:virtualalloc"; for a bare vector, the bin ("imports: function hash bin 17").
The result also gets ``"raw_score"`` and ``"expected_value"``: ``expected_value + sum of all
contributions == raw_score`` (the log-odds whose sigmoid is ``probability``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from vigil.explain import format_value, top_reasons
from vigil.tasks.ember.features import DataDirectories, FeatureExtractor, block_slices

_STRING_STATS_HEAD = ("number of strings", "average string length", "printable characters")
_STRING_STATS_TAIL = ("string entropy", "paths (C:\\)", "URLs", "registry keys (HKEY_)", "'MZ' markers")
_SECTION_COUNTS = (
    "number of sections",
    "sections of size 0",
    "sections without a name",
    "readable and executable sections",
    "writable sections",
)


def _printable(code: int) -> str:
    character = chr(code + 0x20)
    return f"0x{code + 0x20:02x} {character!r}"


def _block_names(block) -> list[str]:
    """Human names of one block's columns, in order (hashed bins by their bin number)."""
    name = block.name
    if name == "histogram":
        return [f"byte histogram 0x{i:02x}" for i in range(256)]
    if name == "byteentropy":
        return [f"byte-entropy histogram: entropy bin {i // 16}, byte bin {i % 16}" for i in range(256)]
    if name == "strings":
        return [
            *(f"strings: {s}" for s in _STRING_STATS_HEAD),
            *(f"strings: share of {_printable(i)}" for i in range(96)),
            *(f"strings: {s}" for s in _STRING_STATS_TAIL),
        ]
    if name == "general":
        return [f"general: {key.replace('_', ' ')}" for key in block._order]
    if name == "header":
        hashed = [
            (f"header: {part} hash bin {i}")
            for part in ("machine", "characteristics", "subsystem", "DLL characteristics", "magic")
            for i in range(10)
        ]
        numbers = [f"header: {key.replace('_', ' ')}" for key in block._optional_numbers]
        return ["header: timestamp", *hashed, *numbers]
    if name == "section":
        return [
            *(f"sections: {s}" for s in _SECTION_COUNTS),
            *(f"section {what} hash bin {i}" for what in ("size", "entropy", "virtual size") for i in range(50)),
            *(f"entry section name hash bin {i}" for i in range(50)),
            *(f"entry section properties hash bin {i}" for i in range(50)),
        ]
    if name == "imports":
        return [f"imports: library hash bin {i}" for i in range(256)] + [
            f"imports: function hash bin {i}" for i in range(1024)
        ]
    if name == "exports":
        return [f"exports: function hash bin {i}" for i in range(128)]
    if name == "datadirectories":
        return [f"data directory {d}: {part}" for d in DataDirectories.names for part in ("size", "virtual address")]
    return [f"{name} [{i}]" for i in range(block.dim)]


def feature_names(feature_version: int = 2) -> list[str]:
    """One human name per column of a feature vector (2,381 for version 2, 2,351 for version 1).

    >>> names = feature_names(2)
    >>> len(names), names[0], names[616], names[-1]
    (2381, 'byte histogram 0x00', 'general: size', 'data directory CLR_RUNTIME_HEADER: virtual address')
    """
    names = [n for block in FeatureExtractor(feature_version).blocks for n in _block_names(block)]
    return names


# -- hashed bins back to what the file put in them -----------------------------------------------
def _bin_of(hasher, token) -> int | None:
    """The bin ``hasher`` puts ``token`` in (a string, or a (name, value) pair), or None."""
    indices = hasher.transform([[token]]).indices
    return int(indices[0]) if len(indices) else None


def _hashed_entries(extractor: FeatureExtractor, raw: dict) -> dict[int, str]:
    """{column: what the file put there} for the hashed bins this raw record fills."""
    slices = block_slices(extractor.feature_version)
    blocks: dict[str, Any] = {block.name: block for block in extractor.blocks}
    entries: dict[int, list[str]] = {}

    def put(block: str, offset: int, hasher, token, label: str) -> None:
        found = _bin_of(hasher, token)
        if found is not None:
            entries.setdefault(slices[block].start + offset + found, []).append(label)

    header = raw.get("header") or {}
    coff, optional = header.get("coff") or {}, header.get("optional") or {}
    hasher = blocks["header"]._hasher
    put("header", 1, hasher, coff.get("machine", ""), f"header: machine {coff.get('machine', '')}")
    for flag in coff.get("characteristics", []):
        put("header", 11, hasher, flag, f"header: characteristic {flag}")
    put("header", 21, hasher, optional.get("subsystem", ""), f"header: subsystem {optional.get('subsystem', '')}")
    for flag in optional.get("dll_characteristics", []):
        put("header", 31, hasher, flag, f"header: DLL characteristic {flag}")
    put("header", 41, hasher, optional.get("magic", ""), f"header: magic {optional.get('magic', '')}")

    section = raw.get("section") or {}
    pairs = blocks["section"]._pairs
    for s in section.get("sections", []):
        name = s.get("name", "")
        put("section", 5, pairs, (name, s.get("size", 0)), f"section {name}: size {s.get('size', 0)}")
        put("section", 55, pairs, (name, s.get("entropy", 0)), f"section {name}: entropy {s.get('entropy', 0):.1f}")
        put("section", 105, pairs, (name, s.get("vsize", 0)), f"section {name}: virtual size {s.get('vsize', 0)}")
    entry = section.get("entry", "")
    strings = blocks["section"]._strings
    for character in set(entry):
        put("section", 155, strings, character, f"entry section name {entry!r} (letter {character!r})")
    for s in section.get("sections", []):
        if s.get("name") == entry:
            for prop in s.get("props", []):
                put("section", 205, strings, prop, f"entry section {entry}: {prop}")

    imports = raw.get("imports") or {}
    block = blocks["imports"]
    for library, functions in imports.items():
        put("imports", 0, block._libraries, library.lower(), f"imports: {library.lower()}")
        for function in functions:
            token = library.lower() + ":" + function
            put("imports", 256, block._functions, token, f"imports: {token}")
    for function in raw.get("exports") or []:
        put("exports", 0, blocks["exports"]._hasher, function, f"exports: {function}")
    return {column: " / ".join(sorted(set(labels))[:3]) for column, labels in entries.items()}


def reasons_of(
    contributions: np.ndarray, vector: np.ndarray, names: list[str], top: int, raw: dict | None, extractor
) -> list[dict]:
    """The ``top`` reasons of one file: ``contributions`` its LightGBM contributions (no bias)."""
    hashed = _hashed_entries(extractor, raw) if raw is not None and _is_parsed(raw) else {}

    def describe(column: int) -> tuple[str, Any, str | None]:
        value = float(vector[column])
        name = hashed.get(column, names[column])
        if column in hashed:
            return name, value, name
        if value == 0 and "hash bin" in name:  # the file has nothing that hashes there
            return name, value, f"nothing in {name}"
        return name, value, f"{name} {format_value(value)}"

    return top_reasons(contributions, top, describe)


def _is_parsed(raw: dict) -> bool:
    return bool((raw.get("header") or {}).get("coff", {}).get("machine"))


def explain_results(
    classifier, vectors: np.ndarray, raws: list[dict | None], results: list[dict], top: int, feature_version: int
) -> None:
    """Add ``reasons``, ``raw_score`` and ``expected_value`` to each of ``results`` (in place)."""
    contributions = np.asarray(classifier.predict(vectors, pred_contrib=True), dtype=np.float64)
    names = feature_names(feature_version)
    extractor = FeatureExtractor(feature_version)
    for row, result in enumerate(results):
        result["raw_score"] = float(contributions[row].sum())
        result["expected_value"] = float(contributions[row, -1])
        result["reasons"] = reasons_of(contributions[row, :-1], vectors[row], names, top, raws[row], extractor)


Describe = Callable[[int], tuple[str, Any, str | None]]
__all__ = ["explain_results", "feature_names", "reasons_of"]
