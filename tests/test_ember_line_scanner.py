"""The line scanner reads histogram, byteentropy, imports, datadirectories, the strings block's
printabledist, the section and the header blocks straight from the JSON text: every line
gives the vector the general path (orjson, then the blocks' own code) gives it, bit for bit, whether
the scanner takes the line or leaves it; lines it cannot prove it reads right are left."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.utils import murmurhash3_32

from vigil.tasks.ember.features import FeatureExtractor
from vigil.tasks.ember.line_scanner import scan_lines
from vigil.tasks.ember.vectorize import _vectorize_scanned, load_record, vectorize_records

DATA = Path(__file__).resolve().parents[1] / "data" / "ember"
EXTRACTOR = {version: FeatureExtractor(version) for version in (1, 2)}


def shipped_lines() -> list[bytes]:
    lines = []
    for name in ("train_features_0_head.jsonl", "reference_pip_launchers_raw.jsonl", "reference_debian_raw.jsonl"):
        lines += [line for line in (DATA / name).read_bytes().splitlines() if line.strip()]
    return lines


def scanned_vectors(lines: list[bytes], version: int = 2) -> tuple[np.ndarray, list[bool]]:
    scan = scan_lines(lines)
    records = [scan.records[k] if scan.records[k] is not None else load_record(line) for k, line in enumerate(lines)]
    taken = [record is not None for record in scan.records]
    return _vectorize_scanned(EXTRACTOR[version], records, list(range(len(lines))), scan), taken


def general_vectors(lines: list[bytes], version: int = 2) -> np.ndarray:
    """The vectors of the lines read as the vectorizer reads a line it does not scan."""
    return vectorize_records(EXTRACTOR[version], [load_record(line) for line in lines])


def assert_same_outcome(lines: list[bytes]) -> list[bool]:
    """Both paths give the same vectors, or the same error; returns which lines were taken."""
    try:
        expected = general_vectors(lines)
    except ValueError:  # then each line alone, as the vectorizer retries a batch that fails
        for line in lines:
            try:
                expected = general_vectors([line])
            except ValueError as exc:
                with pytest.raises(ValueError) as raised:
                    scanned_vectors([line])
                assert str(raised.value) == str(exc)
            else:
                np.testing.assert_array_equal(scanned_vectors([line])[0], expected)
        return [record is not None for record in scan_lines(lines).records]
    got, taken = scanned_vectors(lines)
    np.testing.assert_array_equal(got, expected)  # NaN (an all-zero histogram) equal to NaN
    return taken


@pytest.mark.parametrize("version", [1, 2])
def test_every_shipped_real_record_is_scanned_and_gives_the_general_paths_vector(version):
    lines = shipped_lines()
    got, taken = scanned_vectors(lines, version)
    assert all(taken)
    np.testing.assert_array_equal(got, general_vectors(lines, version))  # NaN (empty file) equal to NaN


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=80))
def test_the_compiled_murmurhash_is_sklearns(data):
    from vigil.tasks.ember.line_kernels import murmurhash3_32 as compiled

    assert compiled(np.frombuffer(data, dtype=np.uint8), 0, len(data)) == murmurhash3_32(data, seed=0)


def _base() -> dict:
    return json.loads(shipped_lines()[0])


def _directories_record() -> dict:
    """A shipped feature version 2 record (a pip launcher's: it has data directories)."""
    return json.loads(shipped_lines()[10])


def _line(record: dict, compact: bool = False) -> bytes:
    return orjson.dumps(record) if compact else json.dumps(record).encode()


def _with_sections(base: dict, sections: list[dict], entry: str | None = None, **block) -> dict:
    entry = sections[0]["name"] if entry is None and sections else (entry or "")
    return dict(base, section={"entry": entry, "sections": sections, **block})


def _section_variants(base: dict) -> dict[str, tuple[bytes, bool | None]]:
    """Lines whose section block is in ember's form or near it (see line_kernels._section)."""
    first = base["section"]["sections"][0]
    one = [dict(first)]
    out: dict[str, tuple[bytes, bool | None]] = {}

    def varied(variant: str, taken: bool | None, **fields) -> None:
        out[variant] = (_line(_with_sections(base, [dict(first, **fields), *base["section"]["sections"][1:]])), taken)

    varied("a section name with backslash escapes (LIEF's \\x..)", True, name="PS\\xff\\xd5")
    varied("a section name with an escaped quote, slash and tab", True, name='a"b/c\td')
    varied("a section name with a \\u escape", False, name="\u00e9t\u00e9")
    varied("a non-ASCII section name", False, name="Données")
    varied("an empty section name", True, name="")
    varied("an integer entropy", True, entropy=7)
    varied("an entropy with an exponent", True, entropy=1.5e-07)
    varied("a negative entropy and a zero size", True, entropy=-0.5, size=0)
    varied("a boolean entropy", False, entropy=True)
    varied("a string entropy", False, entropy="7.1")
    varied("a float size", False, size=512.0)
    varied("a size of 2**53", False, size=2**53)
    varied("a vsize just below 2**53", True, vsize=2**53 - 1)
    varied("a negative size", False, size=-1)
    varied("no properties", True, props=[])
    varied("unknown and repeated properties", True, props=["MEM_READ", "MEM_READ", "X", "MEM_EXECUTE", "mem_write"])
    varied("a property that is not a string", False, props=["MEM_READ", 4])
    varied("a property with an escape", True, props=["MEM_\\READ", "MEM_WRITE"])
    out["an entropy past float64's range (orjson refuses it, json reads inf)"] = (
        _line(_with_sections(base, [dict(first, entropy=1.0)])).replace(b'"entropy": 1.0', b'"entropy": 1e400'),
        False,
    )
    out["an entropy of 19 digits"] = (
        _line(_with_sections(base, [dict(first, entropy=1.0)])).replace(
            b'"entropy": 1.0', b'"entropy": 1234567890123456789'
        ),
        True,
    )
    out["an entropy of -0"] = (
        _line(_with_sections(base, [dict(first, entropy=1.0)])).replace(b'"entropy": 1.0', b'"entropy": -0'),
        True,
    )
    reordered = [{key: first[key] for key in ("name", "entropy", "size", "vsize", "props")}]
    out["a section's keys in another order"] = (_line(_with_sections(base, reordered)), False)
    out["a section with a sixth key"] = (_line(_with_sections(base, [dict(first, x=1)])), False)
    out["a section block with a third key"] = (_line(_with_sections(base, one, note=1)), False)
    out["sections before entry"] = (
        _line(dict(base, section={"sections": one, "entry": first["name"]})),
        False,
    )
    out["no sections"] = (_line(_with_sections(base, [])), True)
    out["an entry no section is named"] = (_line(_with_sections(base, one, entry=".nothere")), True)
    out["an entry written with escapes a name is written without"] = (
        _line(_with_sections(base, [dict(first, name="a/b")], entry="a/b")).replace(
            b'"entry": "a/b"', b'"entry": "a\\/b"'
        ),
        True,
    )
    many = [dict(first, name=f".s{k}") for k in range(33)]
    out["32 sections"] = (_line(_with_sections(base, many[:32])), True)
    out["33 sections (more than its slots)"] = (_line(_with_sections(base, many)), False)
    out["sections that are not objects"] = (_line(_with_sections(base, [[1, 2]], entry="")), False)
    decoy = dict(base, imports={"section": ["GetProcAddress"], **base["imports"]})
    out["a library named section"] = (_line(decoy), True)
    return out


def _with_header(base: dict, coff: dict | None = None, optional: dict | None = None) -> dict:
    header = base["header"]
    return dict(base, header={"coff": coff or header["coff"], "optional": optional or header["optional"]})


def _header_variants(base: dict) -> dict[str, tuple[bytes, bool | None]]:
    """Lines whose header block is in ember's form or near it (see line_kernels._header)."""
    coff, optional = base["header"]["coff"], base["header"]["optional"]
    out: dict[str, tuple[bytes, bool | None]] = {}
    out["escaped header names, empty lists"] = (
        _line(_with_header(base, dict(coff, machine='I\\386"', characteristics=[]), dict(optional, magic="\t"))),
        True,
    )
    out["a header name with a \\u escape"] = (_line(_with_header(base, dict(coff, machine="é"))), False)
    out["a header name that is not a string"] = (_line(_with_header(base, dict(coff, machine=332))), False)
    out["a characteristic that is not a string"] = (
        _line(_with_header(base, dict(coff, characteristics=["EXECUTABLE_IMAGE", None]))),
        False,
    )
    out["a timestamp of 2**53"] = (_line(_with_header(base, dict(coff, timestamp=2**53))), False)
    out["a timestamp just below 2**53"] = (_line(_with_header(base, dict(coff, timestamp=2**53 - 1))), True)
    out["a negative timestamp"] = (_line(_with_header(base, dict(coff, timestamp=-1))), False)
    out["a float header number"] = (_line(_with_header(base, optional=dict(optional, sizeof_code=1.5))), False)
    out["a header number as a string"] = (_line(_with_header(base, optional=dict(optional, sizeof_code="7"))), False)
    out["a header number missing"] = (
        _line(_with_header(base, optional={k: v for k, v in optional.items() if k != "sizeof_heap_commit"})),
        False,
    )
    out["an optional header with one more key"] = (_line(_with_header(base, optional=dict(optional, x=1))), False)
    out["coff keys in another order"] = (
        _line(_with_header(base, {key: coff[key] for key in ("machine", "timestamp", "characteristics")})),
        False,
    )
    out["optional before coff"] = (_line(dict(base, header={"optional": optional, "coff": coff})), False)
    return out


def _variants() -> dict[str, tuple[bytes, bool | None]]:
    """name -> (line, whether the scanner takes it: True, False, or None where either is right)."""
    base = _base()
    out: dict[str, tuple[bytes, bool]] = {"ember's own form": (_line(base), True)}
    out["compact separators"] = (_line(base, compact=True), True)
    spaced = _line(base).replace(b'"histogram": [', b'"histogram":\n\t [ ').replace(b", ", b" ,\r\n  ")
    out["other JSON whitespace"] = (spaced, True)
    out["a space before a colon (the key is not found)"] = (
        _line(base).replace(b'"histogram":', b'"histogram" :'),
        False,
    )
    cased = dict(base, imports={"KERNEL32.dll": ["A", "B"], "kernel32.DLL": ["A"], "x.dll": [], "": [""]})
    out["one library in two cases, an empty list, empty names"] = (_line(cased), True)
    out["no imports"] = (_line(dict(base, imports={})), True)
    twice = _line(dict(base, imports={"a.dll": ["F"]})).replace(
        b'{"a.dll": ["F"]}', b'{"a.dll": ["F"], "a.dll": ["G", "H"]}'
    )
    out["a library written twice (JSON keeps the last)"] = (twice, False)
    out["a non-ASCII name"] = (_line(dict(base, imports={"k.dll": ["Créer"]})), False)
    out["an escaped quote in a name"] = (_line(dict(base, imports={"k.dll": ['say "hi"']})), False)
    out["a name that is not a string"] = (_line(dict(base, imports={"k.dll": [7]})), False)
    nul = dict(base, general=dict(base["general"], note="\u0000h"))
    out["a string equal to a placeholder"] = (_line(nul), False)
    out["a float count"] = (_line(dict(base, histogram=[1.0] + base["histogram"][1:])), False)
    exponent = "[1e2, " + ", ".join(map(str, base["histogram"][1:])) + "]"
    out["an exponent"] = (_line(dict(base, histogram="@")).replace(b'"@"', exponent.encode()), False)
    out["255 counts"] = (_line(dict(base, histogram=base["histogram"][:255])), False)
    out["a 19-digit count"] = (_line(dict(base, histogram=[10**18] + base["histogram"][1:])), False)
    out["a negative count"] = (_line(dict(base, byteentropy=[-1] + base["byteentropy"][1:])), False)
    decoy = dict(base, imports={"histogram": ["GetProcAddress"], **base["imports"]})
    out["a library named histogram"] = (_line(decoy), True)
    out['a key ending in \\"histogram'] = (_line(dict(base, **{'x"histogram': [1] * 256})), True)
    directories = _directories_record()
    out["ember's directories"] = (_line(directories), True)
    out["no directories key (a v1 record)"] = (
        _line({k: v for k, v in directories.items() if k != "datadirectories"}),
        True,
    )
    out["an empty directories list"] = (_line(dict(directories, datadirectories=[])), True)
    more = directories["datadirectories"] + [{"name": "EXTRA", "size": 7, "virtual_address": 9}] * 3
    out["more directories than slots"] = (_line(dict(directories, datadirectories=more)), True)
    first = directories["datadirectories"][0]
    swapped = [{"size": first["size"], "name": first["name"], "virtual_address": first["virtual_address"]}]
    out["a directory's keys in another order"] = (_line(dict(directories, datadirectories=swapped)), False)
    out["a directory size of 2**53"] = (_line(dict(directories, datadirectories=[dict(first, size=2**53)])), False)
    out["a directory size just below 2**53"] = (
        _line(dict(directories, datadirectories=[dict(first, size=2**53 - 1)])),
        True,
    )
    out["a float directory size"] = (_line(dict(directories, datadirectories=[dict(first, size=4.0)])), False)
    out["a boolean directory address"] = (
        _line(dict(directories, datadirectories=[dict(first, virtual_address=True)])),
        False,
    )
    out["an escaped directory name"] = (_line(dict(directories, datadirectories=[dict(first, name="A\tB")])), False)
    out["a directory with a fourth key"] = (_line(dict(directories, datadirectories=[dict(first, x=1)])), False)
    out["a directory that is not an object"] = (_line(dict(directories, datadirectories=[[1, 2]])), False)
    out["a space before the directories' colon (the key is not found)"] = (
        _line(directories).replace(b'"datadirectories":', b'"datadirectories" :'),
        False,
    )
    directories_twice = _line(directories)[:-1] + b', "datadirectories": []}'
    strings = base["strings"]
    out["95 printable counts"] = (_line(dict(base, strings=dict(strings, printabledist=[1] * 95))), False)
    out["a float printable count"] = (
        _line(dict(base, strings=dict(strings, printabledist=[0.5] + strings["printabledist"][1:]))),
        False,
    )
    moved = dict(base, strings={k: v for k, v in strings.items() if k != "printabledist"})
    out["printabledist outside the strings block"] = (_line(dict(moved, printabledist=strings["printabledist"])), False)
    decoy_first = {"general": dict(base["general"], printabledist=[2] * 96)}
    decoy_first.update((key, value) for key, value in base.items() if key != "general")
    out["a printabledist in a block before strings"] = (_line(decoy_first), False)
    out["a strings scalar as text (the block reads the record by record)"] = (
        _line(dict(base, strings=dict(strings, numstrings="12"))),
        True,
    )
    out["directories written twice (JSON keeps the last)"] = (directories_twice, None)
    out.update(_section_variants(base))
    out.update(_header_variants(base))
    reordered = {key: base[key] for key in reversed(list(base))}
    out["the blocks in another order"] = (_line(reordered), None)
    repeated = _line(base)[:-1] + b', "histogram": ' + json.dumps([0] * 255 + [7]).encode() + b"}"
    out["histogram written twice (JSON keeps the last)"] = (repeated, None)
    return out


VARIANTS = _variants()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_line_gives_the_general_paths_vector_taken_or_left(name):
    line, expected = VARIANTS[name]
    lines = [shipped_lines()[1], line, shipped_lines()[2]]  # in a batch with records it takes
    taken = assert_same_outcome(lines)
    assert taken[0] and taken[2]
    if expected is not None:
        assert taken[1] == expected, "the scanner took a line it cannot read exactly" if taken[1] else "left"


def test_a_repeated_histogram_is_read_as_json_reads_it():
    line, _ = VARIANTS["histogram written twice (JSON keeps the last)"]
    got, _ = scanned_vectors([line])
    assert got[0, 255] == 1.0 and got[0, :255].sum() == 0.0


_ascii = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7F), max_size=12)
_any = st.text(max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    imports=st.dictionaries(st.one_of(_ascii, _any), st.lists(st.one_of(_ascii, _any), max_size=6), max_size=5),
    counts=st.lists(st.integers(0, 2**40), min_size=256, max_size=256),
    printable=st.lists(st.integers(0, 2**62), min_size=96, max_size=96),
    compact=st.booleans(),
)
def test_random_imports_and_counts_give_the_general_paths_vector(imports, counts, printable, compact):
    base = _base()
    record = dict(base, imports=imports, histogram=counts, strings=dict(base["strings"], printabledist=printable))
    assert_same_outcome([_line(record, compact)])


_directory = st.fixed_dictionaries(
    {"name": st.one_of(_ascii, _any), "size": st.integers(0, 2**60), "virtual_address": st.integers(0, 2**54)}
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(directories=st.lists(_directory, max_size=18), compact=st.booleans())
def test_random_directories_give_the_general_paths_vector(directories, compact):
    assert_same_outcome([_line(dict(_directories_record(), datadirectories=directories), compact)])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet='\\u0a"', max_size=24), min_size=1, max_size=6))
def test_lines_with_a_nul_escape_are_found_alike_by_both_searches(texts):
    from vigil.tasks.ember import line_scanner

    lines = [text.encode() for text in texts]
    joined = b"".join(lines)
    ends = np.cumsum([len(line) for line in lines])
    bounds = np.stack([ends - [len(line) for line in lines], ends], axis=1)
    by_find = line_scanner._lines_with_nul_escape(joined, bounds)
    original = line_scanner.BACKSLASHES_LOOKED_AT
    try:
        line_scanner.BACKSLASHES_LOOKED_AT = -1  # every batch searched by numpy
        by_numpy = line_scanner._lines_with_nul_escape(joined, bounds)
    finally:
        line_scanner.BACKSLASHES_LOOKED_AT = original
    np.testing.assert_array_equal(by_find, by_numpy)
    # every line holding the escape whole is among them
    assert {k for k, line in enumerate(lines) if b"\\u0000" in line} <= set(by_find.tolist())


def test_broken_lines_are_left_and_reported_as_before():
    lines = [b"{not json", b"[1, 2]", b'{"histogram": [1]}', shipped_lines()[0]]
    scan = scan_lines(lines)
    assert [record is None for record in scan.records] == [True, True, True, False]


@pytest.mark.parametrize("processes", [1, 2])
def test_the_vectorizer_scans_from_its_threshold_and_writes_the_same_files(tmp_path, monkeypatch, processes):
    from vigil.tasks.ember import vectorize

    lines = shipped_lines() + [
        b"{not json",
        b'{"histogram": [1]}',
        shipped_lines()[0].replace(b'"label": 0', b'"label": "x"'),
    ]
    outputs, calls = {}, []
    real_scan = vectorize.scan_lines
    monkeypatch.setattr(vectorize, "scan_lines", lambda batch: calls.append(len(batch)) or real_scan(batch))
    monkeypatch.setattr(vectorize, "scanner_compiled", lambda: False)  # earlier tests here compiled it
    for threshold in (10**9, 1):  # the general path, then the scanner
        monkeypatch.setattr(vectorize, "SCANNER_MIN_LINES", threshold)
        folder = tmp_path / str(threshold)
        folder.mkdir()
        (folder / "train_features_0.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        (report,) = vectorize.create_vectorized_features(folder, processes=processes, progress=False)
        outputs[threshold] = (
            (folder / "X_train.dat").read_bytes(),
            (folder / "y_train.dat").read_bytes(),
            (folder / "metadata.csv").read_text(),
            [str(bad) for bad in report.bad_lines],
        )
        if processes == 1:
            assert bool(calls) == (threshold == 1)
    general, scanned = outputs[10**9], outputs[1]
    assert scanned[0] == general[0] and scanned[1] == general[1] and scanned[2] == general[2]
    assert [bad.split(":", 1)[1] for bad in scanned[3]] == [bad.split(":", 1)[1] for bad in general[3]]
    assert len(general[3]) == 3


@pytest.mark.parametrize(
    "lines, compiled, cached, scanned",
    [
        (5_000, False, True, False),  # loading it (~0.2 s) would cost more than it saves
        (20_000, False, True, True),
        (20_000, False, False, False),  # compiling it (~5.5 s) would
        (20_000, True, False, True),
        (400_000, False, False, True),
    ],
)
def test_a_run_uses_the_scanner_where_having_it_pays(monkeypatch, lines, compiled, cached, scanned):
    from vigil.tasks.ember import vectorize

    monkeypatch.setattr(vectorize, "scanner_compiled", lambda: compiled)
    monkeypatch.setattr(vectorize, "scanner_cached", lambda: cached)
    assert vectorize.use_scanner(lines) is scanned


_section = st.fixed_dictionaries(
    {
        "name": st.one_of(_ascii, _any, st.sampled_from([".text", ".rsrc", ""])),
        "size": st.one_of(st.integers(0, 2**60), st.sampled_from([0, 512])),
        "entropy": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(0, 10)),
        "vsize": st.integers(0, 2**54),
        "props": st.lists(st.one_of(st.sampled_from(["MEM_READ", "MEM_EXECUTE", "MEM_WRITE", "CNT_CODE"]), _any)),
    }
)


# an entropy near float64's largest overflows float32 in the block (to inf, on both paths alike)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sections=st.lists(_section, max_size=8), entry=st.one_of(st.none(), _ascii), compact=st.booleans())
def test_random_sections_give_the_general_paths_vector(sections, entry, compact):
    assert_same_outcome([_line(_with_sections(_base(), sections, entry), compact)])


_header_number = st.one_of(st.integers(0, 2**60), st.sampled_from([0, 4096]))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(st.one_of(_ascii, _any), min_size=3, max_size=3),
    lists=st.lists(st.lists(st.one_of(_ascii, _any), max_size=5), min_size=2, max_size=2),
    numbers=st.lists(_header_number, min_size=12, max_size=12),
    compact=st.booleans(),
)
def test_random_headers_give_the_general_paths_vector(names, lists, numbers, compact):
    from vigil.tasks.ember.features import HeaderFileInfo

    coff = {"timestamp": numbers[0], "machine": names[0], "characteristics": lists[0]}
    optional = {"subsystem": names[1], "dll_characteristics": lists[1], "magic": names[2]}
    optional.update(zip(HeaderFileInfo._optional_numbers, numbers[1:]))
    assert_same_outcome([_line(_with_header(_base(), coff, optional), compact)])


def test_the_kernels_hash_widths_and_property_names_are_the_blocks():
    from vigil.tasks.ember import line_kernels
    from vigil.tasks.ember.features import HeaderFileInfo, SectionInfo

    assert line_kernels.HEADER_BINS == HeaderFileInfo._hasher.n_features
    assert line_kernels.SECTION_BINS == SectionInfo._strings.n_features
    kernel_bits = {bytes(name).decode(): 1 << bit for bit, name in enumerate(line_kernels._PROPERTIES)}
    assert kernel_bits == SectionInfo._property_bits
