"""Raw records of real Debian PE files equal ember's (elastic/ember + LIEF 0.12.3), block by block.

The seven files in data/ember/debian/ are ones whose records differed before Vigil wrote them as old
LIEF did (data/ember/SOURCE.md says where each comes from and what it exercises). Their references
were made by ember's own code with LIEF 0.12.3 (scripts/ember_reference.py); the whole 1,624-file
corpus is compared by ``python -m bench.ember_parity``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vigil.tasks.ember import FeatureExtractor, block_slices

DATA = Path(__file__).resolve().parents[1] / "data" / "ember"
REFERENCES = [json.loads(line) for line in (DATA / "reference_debian_raw.jsonl").read_text().splitlines()]
BLOCKS = list(block_slices(2))
pytestmark = pytest.mark.filterwarnings("ignore:.*is not a valid:RuntimeWarning")

# The one difference left on the corpus: LIEF 0.12 read a COFF symbol table at offset 0 (the DOS
# header) as one symbol; LIEF 1.0 reads none there (a parsing difference, see README).
KNOWN = {"syslinux-efi64.efi": {("general", "symbols")}}


def _known(name: str, block: str, key: str) -> bool:
    return (block, key) in KNOWN.get(name, set())


@pytest.fixture(scope="module")
def extracted() -> dict[str, dict]:
    extractor = FeatureExtractor(2)
    return {
        ref["file"]: json.loads(json.dumps(extractor.raw_features((DATA / "debian" / ref["file"]).read_bytes())))
        for ref in REFERENCES
    }


@pytest.mark.parametrize("reference", REFERENCES, ids=lambda r: r["file"])
def test_raw_record_equals_embers_with_lief_0_12(reference, extracted):
    raw = extracted[reference["file"]]
    assert raw["sha256"] == reference["sha256"]
    for block in BLOCKS:
        if isinstance(reference[block], dict):
            for key in reference[block]:
                if not _known(reference["file"], block, key):
                    assert raw[block][key] == reference[block][key], f"{block}.{key}"
            assert set(raw[block]) == set(reference[block]), block
        else:
            assert raw[block] == reference[block], block


def test_vectors_equal_embers_except_the_documented_symbol_count(extracted):
    reference_vectors = np.load(DATA / "reference_debian_v2.npy")
    extractor = FeatureExtractor(2)
    general = block_slices(2)["general"]
    for reference, expected in zip(REFERENCES, reference_vectors):
        vector = extractor.process_raw_features(extracted[reference["file"]])
        if reference["file"] in KNOWN:
            symbols = general.start + 9  # general's last value
            assert vector[symbols] == 0 and expected[symbols] == 1
            vector[symbols] = expected[symbols]
        assert np.array_equal(vector, expected), reference["file"]


def test_what_the_subset_exercises(extracted):
    """Each file stands for one way LIEF 1.0's view differs from the record ember's LIEF wrote."""
    from vigil.tasks.ember.features import parse_pe

    refs = {r["file"]: r for r in REFERENCES}
    lief_view = {
        name: parse_pe((DATA / "debian" / name).read_bytes())
        for name in ("icmp-x86_64.dll", "fbx64.efi", "memtest86+x64.efi")
    }
    assert [f.name for f in lief_view["icmp-x86_64.dll"].exported_functions][:1] == ["IcmpCloseHandle"]
    assert not lief_view["fbx64.efi"].has_relocations
    assert len(lief_view["memtest86+x64.efi"].data_directories) == 6
    # forwarded exports are named by their forwarder string, in export-address order
    assert refs["icmp-x86_64.dll"]["exports"][:2] == ["iphlpapi.IcmpCloseHandle", "iphlpapi.IcmpCreateFile"]
    assert extracted["icmp-i386.dll"]["exports"] == refs["icmp-i386.dll"]["exports"]
    # an empty base-relocation block (PageRVA 0) still counts as has_relocations
    assert refs["fbx64.efi"]["general"]["has_relocations"] == 1
    # fewer than 16 data directories declared: 16 are read anyway, the rest from the section table
    assert len(refs["memtest86+x64.efi"]["datadirectories"]) == 16
    assert extracted["memtest86+x64.efi"]["datadirectories"] == refs["memtest86+x64.efi"]["datadirectories"]
    # section names that are not ASCII: bytes decoded as ASCII with backslash escapes
    names = [s["name"] for s in refs["clam-upack.exe"]["section"]["sections"]]
    assert any("\\x" in name for name in names)
    assert [s["name"] for s in extracted["clam-upack.exe"]["section"]["sections"]] == names
