"""Feature blocks for wrangled WAF events, and the featurizer pipeline saved with every model.

Each block is a small class (``name``, ``dim``, ``raw_features()``, ``process_raw_features()``) in
the style of EMBER's feature blocks; :class:`EventFeatures` is just the ordered list of blocks.
:func:`build_featurizer` chains wrangling, the blocks, StandardScaler and PCA (SPECS §3),
fitted the way ML-PT fitted them (see :class:`ScaledPCA`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from vigil.tasks.web_events.wrangling import EventWrangler

FEATURE_VERSION = 1
PCA_VARIANCE = 0.999999


class FeatureBlock:
    """One group of columns of the feature matrix, computed from one wrangled column."""

    name: str
    column: str
    dim: int

    def fit(self, column: pd.Series) -> "FeatureBlock":
        return self

    def raw_features(self, column: pd.Series):
        """The column's values as the block reads them."""
        return column.tolist()

    def process_raw_features(self, raw) -> np.ndarray:
        raise NotImplementedError

    # Events repeat clients, agents, sources and names a lot: featurize each distinct value once.
    distinct_values_once = False

    def transform(self, column: pd.Series) -> np.ndarray:
        if not self.distinct_values_once:
            return self.process_raw_features(self.raw_features(column))
        codes, uniques = pd.factorize(column, use_na_sentinel=False)
        return self.process_raw_features(self.raw_features(pd.Series(uniques, dtype=object)))[codes]

    def feature_names(self) -> list[str]:
        return [self.name] if self.dim == 1 else [f"{self.name}_{i}" for i in range(self.dim)]


class ClientIpGroups(FeatureBlock):
    """The 8 sixteen-bit groups of the (IPv6-mapped) client address."""

    name, column, dim = "client_ip", "CLIENT_IP", 8
    distinct_values_once = True

    def process_raw_features(self, raw) -> np.ndarray:
        return np.array([[int(group, 16) for group in ip.split(":")] for ip in raw], dtype=np.float64).reshape(-1, 8)


class NumberColumn(FeatureBlock):
    dim = 1

    def __init__(self, name: str, column: str):
        self.name, self.column = name, column

    def process_raw_features(self, raw) -> np.ndarray:
        return np.asarray(raw, dtype=np.float64).reshape(-1, 1)


class TextTfidf(FeatureBlock):
    """TF-IDF of the most frequent ``max_features`` terms of one text column."""

    distinct_values_once = True

    def __init__(self, name: str, column: str, max_features: int):
        self.name, self.column, self.max_features = name, column, max_features
        self.vectorizer = TfidfVectorizer(max_features=max_features)
        self.dim = max_features

    def fit(self, column: pd.Series) -> "TextTfidf":
        try:
            self.vectorizer.fit(column.tolist())
            self.dim = len(self.vectorizer.vocabulary_)
        except ValueError:  # only empty strings or stop words: the block contributes nothing
            self.vectorizer = None
            self.dim = 0
        return self

    def process_raw_features(self, raw) -> np.ndarray:
        if self.vectorizer is None:
            return np.zeros((len(raw), 0))
        return self.vectorizer.transform(raw).toarray()

    def feature_names(self) -> list[str]:
        if self.vectorizer is None:
            return []
        return [f"{self.name}:{term}" for term in self.vectorizer.get_feature_names_out()]


def default_blocks() -> list[FeatureBlock]:
    return [
        ClientIpGroups(),
        TextTfidf("user_agent", "CLIENT_USERAGENT", 5),
        NumberColumn("user_agent_valid", "IS_USERAGENT_VALID"),
        NumberColumn("request_size", "REQUEST_SIZE"),
        NumberColumn("response_code", "RESPONSE_CODE"),
        TextTfidf("src", "MATCHED_VARIABLE_SRC", 5),
        TextTfidf("name", "MATCHED_VARIABLE_NAME", 15),
        TextTfidf("value", "MATCHED_VARIABLE_VALUE", 40),
    ]


class EventFeatures(TransformerMixin, BaseEstimator):
    """Wrangled events -> the concatenated blocks (76 columns with enough vocabulary)."""

    def fit(self, events: pd.DataFrame, y=None):
        self.blocks_ = [block.fit(events[block.column]) for block in default_blocks()]
        return self

    def transform(self, events: pd.DataFrame) -> np.ndarray:
        return np.hstack([block.transform(events[block.column]) for block in self.blocks_])

    def get_feature_names_out(self, input_features=None):
        return np.array([name for block in self.blocks_ for name in block.feature_names()], dtype=object)


class ScaledPCA(TransformerMixin, BaseEstimator):
    """StandardScaler, then PCA keeping ``variance`` of the variance, as ML-PT's FeatureExtractor does it.

    ML-PT fits the PCA on the *unscaled* feature matrix and applies it to the *scaled* one. On raw
    features the variance sits in the wide columns (IP groups, request size, response code), so
    0.999999 of it needs only a handful of components (9 on their data) that mostly follow those
    columns; fitted on scaled features the same threshold keeps almost all 76 dimensions, where
    DBSCAN with min_samples = 2 x n_features finds nothing but noise. ``fit_on="raw"`` (default)
    reproduces ML-PT; ``fit_on="scaled"`` is the textbook order.
    """

    def __init__(self, variance: float = PCA_VARIANCE, fit_on: str = "raw"):
        self.variance = variance
        self.fit_on = fit_on

    def fit(self, X, y=None):
        if self.fit_on not in ("raw", "scaled"):
            raise ValueError(f"fit_on must be 'raw' or 'scaled', not {self.fit_on!r}")
        self.scaler_ = StandardScaler().fit(X)
        basis = X if self.fit_on == "raw" else self.scaler_.transform(X)
        self.pca_ = PCA(n_components=self.variance, svd_solver="full").fit(basis)
        return self

    def transform(self, X):
        return self.pca_.transform(self.scaler_.transform(X))

    @property
    def n_components_(self) -> int:
        return int(self.pca_.n_components_)


def build_featurizer(pca_variance: float = PCA_VARIANCE, pca_fit_on: str = "raw") -> Pipeline:
    return Pipeline(
        [
            ("wrangle", EventWrangler()),
            ("features", EventFeatures()),
            ("project", ScaledPCA(pca_variance, pca_fit_on)),
        ]
    )
