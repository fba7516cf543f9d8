"""``ember.features`` as elastic/ember's scripts call it, on Vigil's feature blocks.

``PEFeatureExtractor(feature_version=2, print_feature_warning=True, features_file='')`` with
``raw_features(bytez)``, ``process_raw_features(raw_obj)``, ``feature_vector(bytez)``, ``dim`` and
``features`` (the ordered block objects). The blocks are Vigil's (``vigil.tasks.ember.features``),
which give ember's vectors bit for bit; the class names below are ember's, and each block also has
ember's ``feature_vector(bytez, lief_binary)``.

``features_file`` is ember's optional JSON file ``{"features": ["ByteHistogram", ...]}`` that picks
some of the eight PE blocks, in the file's order; feature version 2 always appends
``DataDirectories``, as ember does.

Example::

    >>> from vigil.ember_compat.features import PEFeatureExtractor
    >>> extractor = PEFeatureExtractor(2, print_feature_warning=False)
    >>> extractor.dim, [fe.name for fe in extractor.features][-1]
    (2381, 'datadirectories')
"""

from __future__ import annotations

import json
import os

import lief

from vigil.tasks.ember import features as _vigil

# The LIEF versions ember's two feature versions were computed with (ember's warning names them).
_REFERENCE_LIEF = {1: "0.8.3-18d5b75", 2: "0.9.0-"}


class FeatureType(_vigil.FeatureBlock):
    """ember's base class name and argument names; adds ember's ``feature_vector(bytez, lief_binary)``.

    Each block below puts this class before Vigil's block, so these methods hand over to Vigil's.
    """

    def raw_features(self, bytez, lief_binary):
        return super().raw_features(bytez, lief_binary)

    def process_raw_features(self, raw_obj):
        return super().process_raw_features(raw_obj)

    def feature_vector(self, bytez, lief_binary):
        return self.process_raw_features(self.raw_features(bytez, lief_binary))


class ByteHistogram(FeatureType, _vigil.ByteHistogram):
    pass


class ByteEntropyHistogram(FeatureType, _vigil.ByteEntropyHistogram):
    pass


class StringExtractor(FeatureType, _vigil.StringExtractor):
    pass


class GeneralFileInfo(FeatureType, _vigil.GeneralFileInfo):
    pass


class HeaderFileInfo(FeatureType, _vigil.HeaderFileInfo):
    pass


class SectionInfo(FeatureType, _vigil.SectionInfo):
    pass


class ImportsInfo(FeatureType, _vigil.ImportsInfo):
    pass


class ExportsInfo(FeatureType, _vigil.ExportsInfo):
    pass


class DataDirectories(FeatureType, _vigil.DataDirectories):
    pass


# ember's block names (the keys a features_file lists), in ember's order; DataDirectories is not
# among them: feature version 2 appends it.
_SELECTABLE = (
    "ByteHistogram",
    "ByteEntropyHistogram",
    "StringExtractor",
    "GeneralFileInfo",
    "HeaderFileInfo",
    "SectionInfo",
    "ImportsInfo",
    "ExportsInfo",
)
__all__ = ["PEFeatureExtractor", "FeatureType", *_SELECTABLE, "DataDirectories"]

_COMPAT_CLASSES = {
    cls.__name__: cls
    for cls in (
        ByteHistogram,
        ByteEntropyHistogram,
        StringExtractor,
        GeneralFileInfo,
        HeaderFileInfo,
        SectionInfo,
        ImportsInfo,
        ExportsInfo,
        DataDirectories,
    )
}


def _compat_block(block: _vigil.FeatureBlock) -> FeatureType:
    """The ember-named block with the same settings as Vigil's block of that feature version."""
    compat = object.__new__(_COMPAT_CLASSES[type(block).__name__])
    compat.__dict__.update(vars(block))  # e.g. ImportsInfo.ordinal_names, ByteEntropyHistogram.window
    return compat


class PEFeatureExtractor(_vigil.FeatureExtractor):
    """ember's extractor: the blocks of a feature version (1: 2351 floats, 2: 2381)."""

    def __init__(self, feature_version=2, print_feature_warning=True, features_file=""):
        super().__init__(feature_version)  # ValueError for a version other than 1 or 2
        blocks = [_compat_block(block) for block in self.blocks]
        if features_file and os.path.exists(features_file):
            with open(features_file, encoding="utf8") as handle:
                wanted = json.load(handle)["features"]
            by_name = {type(block).__name__: block for block in blocks}
            selected = [by_name[name] for name in wanted if name in _SELECTABLE]
            if self.feature_version == 2:
                selected.append(by_name["DataDirectories"])
            blocks = selected
        self.blocks = blocks
        self.features = blocks  # ember's attribute name
        self.dim = sum(block.dim for block in blocks)
        if print_feature_warning and not lief.__version__.startswith(_REFERENCE_LIEF[self.feature_version]):
            print(
                f"WARNING: EMBER feature version {self.feature_version} were computed using lief version "
                f"{_REFERENCE_LIEF[self.feature_version]}"
            )
            print(f"WARNING:   lief version {lief.__version__} found instead. There may be slight inconsistencies")
            print("WARNING:   in the feature calculations.")

    def raw_features(self, bytez):
        return super().raw_features(bytez)

    def process_raw_features(self, raw_obj):
        return super().process_raw_features(raw_obj)

    def feature_vector(self, bytez):
        return self.process_raw_features(self.raw_features(bytez))

    @property
    def is_standard(self) -> bool:
        """True when the blocks are the whole feature version (no ``features_file`` selection)."""
        return [b.name for b in self.blocks] == [b.name for b in _vigil.feature_blocks(self.feature_version)]

    def __repr__(self) -> str:
        return f"PEFeatureExtractor(feature_version={self.feature_version}, dim={self.dim})"
