"""EMBER malware detection: PE feature blocks, ember's memmap vectorization, LightGBM, scoring.

Stable entry points other code builds on::

    from vigil.tasks.ember import (FeatureExtractor, create_vectorized_features, read_vectorized,
                                   read_metadata, lgbm_params, make_estimator)
"""

from vigil.tasks.ember.features import DIMS, FEATURE_VERSIONS, FeatureExtractor, block_slices, feature_blocks
from vigil.tasks.ember.model import PRESETS, RawRecordVectorizer, build_pipeline, lgbm_params, make_estimator
from vigil.tasks.ember.vectorize import (
    create_vectorized_features,
    raw_feature_paths,
    read_metadata,
    read_vectorized,
    vectorize_subset,
)

__all__ = [
    "DIMS",
    "FEATURE_VERSIONS",
    "FeatureExtractor",
    "block_slices",
    "feature_blocks",
    "PRESETS",
    "RawRecordVectorizer",
    "build_pipeline",
    "lgbm_params",
    "make_estimator",
    "create_vectorized_features",
    "raw_feature_paths",
    "read_metadata",
    "read_vectorized",
    "vectorize_subset",
]
