"""EMBER malware detection: PE feature blocks, ember's memmap vectorization, LightGBM, scoring.

Modules: ``task`` (the Task, ``POST /predict/ember``, PE extraction), ``cli`` (``vigil ember ...``),
``features`` (the feature blocks), ``vectorize``, ``model`` (training), ``workers``, ``demo_data``.
Stable entry points other code builds on (re-exported here on first use, so importing the package
loads no scikit-learn)::

    from vigil.tasks.ember import (FeatureExtractor, create_vectorized_features, read_vectorized,
                                   read_metadata, lgbm_params, make_estimator)
"""

from __future__ import annotations

from vigil.lazy import lazy_exports

_EXPORTS = {
    "DIMS": "features",
    "FEATURE_VERSIONS": "features",
    "FeatureExtractor": "features",
    "block_slices": "features",
    "feature_blocks": "features",
    "PRESETS": "model",
    "RawRecordVectorizer": "model",
    "build_pipeline": "model",
    "lgbm_params": "model",
    "make_estimator": "model",
    "create_vectorized_features": "vectorize",
    "raw_feature_paths": "vectorize",
    "read_metadata": "vectorize",
    "read_vectorized": "vectorize",
    "vectorize_subset": "vectorize",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
