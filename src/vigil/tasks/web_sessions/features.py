"""Session features: one small class per block; :class:`SessionFeaturizer` is the ordered list of blocks.

Every block has a ``name``, a ``dim`` (known after ``fit``), ``raw_features(sessions)`` (plain values
per session, readable in a notebook) and ``process_raw_features(raw)`` (the sparse matrix the model
sees). Input is a frame in Kaggle's session layout: site1..site10 (ids, or the tokens the API makes
for names) and time1..time10 (datetimes).

Deliberately absent: anything that names the calendar period (date, month, year, session id), since
the labelled set mixes Alice's shifted log with another period's sessions (see data.py).

Example::

    >>> featurizer = SessionFeaturizer().fit(train_sessions)      # doctest: +SKIP
    >>> featurizer.transform(test_sessions).shape, featurizer.feature_dims()
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer

from vigil.tasks.web_sessions.data import SITE_COLUMNS, TIME_COLUMNS

FEATURE_VERSION = 1


def site_tokens(sessions: pd.DataFrame) -> list[list[str]]:
    """Each session's visited sites as strings, padding dropped (ids as "29"; the API's unknown names as-is)."""
    values = sessions[SITE_COLUMNS].astype(object).to_numpy()
    return [[_token(v) for v in row if v is not None and not pd.isna(v) and _token(v) != "0"] for row in values]


def _token(value) -> str:
    # ids read as floats (a column with gaps) must give the same token as integer ids
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _one_hot(indices: np.ndarray, width: int) -> sparse.csr_matrix:
    rows = np.arange(len(indices))
    return sparse.csr_matrix((np.ones(len(indices)), (rows, indices)), shape=(len(indices), width))


def split_on_spaces(text: str) -> list[str]:
    # A named function rather than str.split: the saved model refers to its tokenizer by name, and
    # the artifact store trusts module functions by exact name (method descriptors cannot be).
    return text.split()


class SiteNgrams:
    """TF-IDF over the ordered site sequence: single sites and runs of 2-3 consecutive sites."""

    name = "site_ngrams"

    def __init__(self, ngram_range=(1, 3), min_df: int = 2, max_features: int | None = 100_000):
        self.vectorizer = TfidfVectorizer(tokenizer=split_on_spaces, token_pattern=None, lowercase=False,
                                          ngram_range=ngram_range, min_df=min_df, max_features=max_features,
                                          sublinear_tf=True, dtype=np.float32)

    @property
    def dim(self) -> int:
        return len(self.vectorizer.vocabulary_)

    def raw_features(self, sessions: pd.DataFrame) -> list[str]:
        return [" ".join(tokens) for tokens in site_tokens(sessions)]

    def fit(self, sessions: pd.DataFrame) -> "SiteNgrams":
        raw = self.raw_features(sessions)
        try:
            self.vectorizer.fit(raw)
        except ValueError:  # tiny samples: no n-gram reaches min_df
            self.vectorizer.set_params(min_df=1).fit(raw)
        return self

    def process_raw_features(self, raw: list[str]) -> sparse.csr_matrix:
        return self.vectorizer.transform(raw)


class StartHour:
    """Hour of day the session starts, one-hot: Alice browses at a few fixed hours."""

    name = "start_hour"
    dim = 24

    def raw_features(self, sessions: pd.DataFrame) -> np.ndarray:
        return sessions["time1"].dt.hour.to_numpy()

    def process_raw_features(self, raw: np.ndarray) -> sparse.csr_matrix:
        return _one_hot(raw.astype(int), self.dim)


class StartWeekday:
    """Day of week (Monday = 0), one-hot: Alice rarely browses on Wednesdays and weekends."""

    name = "start_weekday"
    dim = 7

    def raw_features(self, sessions: pd.DataFrame) -> np.ndarray:
        return sessions["time1"].dt.day_of_week.to_numpy()

    def process_raw_features(self, raw: np.ndarray) -> sparse.csr_matrix:
        return _one_hot(raw.astype(int), self.dim)


class SessionShape:
    """Length in seconds, gaps between visits, number of visits and of distinct sites."""

    name = "session_shape"
    columns = ("duration_s", "mean_gap_s", "max_gap_s", "n_visits", "n_distinct_sites")
    dim = len(columns)

    def raw_features(self, sessions: pd.DataFrame) -> pd.DataFrame:
        seconds = sessions[TIME_COLUMNS].apply(lambda c: c.astype("datetime64[s]").astype("int64").where(c.notna()))
        values = seconds.to_numpy(dtype=float)
        gaps = np.diff(values, axis=1)
        tokens = site_tokens(sessions)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # one-visit sessions have no gaps
            return pd.DataFrame({
                "duration_s": np.nanmax(values, axis=1) - values[:, 0],
                "mean_gap_s": np.nan_to_num(np.nanmean(np.where(np.isnan(gaps), np.nan, gaps), axis=1)),
                "max_gap_s": np.nan_to_num(np.nanmax(np.where(np.isnan(gaps), -np.inf, gaps), axis=1), neginf=0.0),
                "n_visits": [len(t) for t in tokens],
                "n_distinct_sites": [len(set(t)) for t in tokens],
            }, index=sessions.index)

    def process_raw_features(self, raw: pd.DataFrame) -> sparse.csr_matrix:
        # log1p(seconds) / log1p(1800) and counts / 10 put every column on about [0, 1] for the linear model
        scaled = np.column_stack([
            np.log1p(raw[["duration_s", "mean_gap_s", "max_gap_s"]].to_numpy(dtype=float).clip(0)) / np.log1p(1800),
            raw[["n_visits", "n_distinct_sites"]].to_numpy(dtype=float) / 10.0,
        ])
        return sparse.csr_matrix(scaled.astype(np.float32))


def default_blocks() -> list:
    return [SiteNgrams(), StartHour(), StartWeekday(), SessionShape()]


class SessionFeaturizer(BaseEstimator, TransformerMixin):
    """The ordered feature blocks as one scikit-learn transformer (saved inside the model pipeline)."""

    def __init__(self, blocks: list | None = None):
        self.blocks = blocks

    def fit(self, sessions: pd.DataFrame, y=None) -> "SessionFeaturizer":
        self.blocks_ = self.blocks if self.blocks is not None else default_blocks()
        for block in self.blocks_:
            if hasattr(block, "fit"):
                block.fit(sessions)
        return self

    def transform(self, sessions: pd.DataFrame) -> sparse.csr_matrix:
        parts = [block.process_raw_features(block.raw_features(sessions)) for block in self.blocks_]
        return sparse.hstack(parts, format="csr", dtype=np.float32)

    def feature_dims(self) -> dict[str, int]:
        return {block.name: block.dim for block in self.blocks_}
