"""Session features: one small class per block; :class:`SessionFeaturizer` is the ordered list of blocks.

Every block has a ``name``, a ``dim`` (known after ``fit``), ``feature_names()``,
``raw_features(sessions)`` (plain values per session, readable in a notebook) and
``process_raw_features(raw)`` (the sparse matrix the model sees). Input is a frame in Kaggle's
session layout: site1..site10 (ids, or the ``?name`` tokens the API makes for names the site
dictionary lacks) and time1..time10 (datetimes). Blocks that learn something (a vocabulary, Alice's
favourite sites) have ``fit(sessions, y)``.

The blocks of the linear model (:func:`default_blocks`):

==================  ===========================================================================
site_ngrams         TF-IDF of single sites and runs of 2-3 consecutive sites
site_name_tokens    TF-IDF of the parts of the site names (``mail.google.fr`` -> ``google.fr``,
                    ``mail``, ``google``, ``fr``): a site never seen in training still says
                    something through its domain
top_sites_share     share of the visits, and of the time, spent on Alice's 30 most visited sites
visit_gaps          the 9 gaps between consecutive visits (log seconds)
session_shape       duration, mean and longest gap, visits, distinct sites
start_hour          start hour one-hot, and the time of day on a circle (sin, cos)
start_weekday       weekday one-hot, and the weekday on a circle
weekday_hour        weekday x hour one-hot (168 cells): Alice's week has a timetable
==================  ===========================================================================

The tree model (:func:`tree_blocks`) sees the sites as one number, ``site_score`` (an out-of-fold
logistic regression on ``site_ngrams`` + ``site_name_tokens``), then ``top_sites_share``,
``visit_gaps``, ``session_shape`` and ``start_clock`` (time of day and weekday as plain numbers).

:class:`StartMonth` (month one-hot and cyclic) exists but is **not** a default: in the rebuilt
labelled set the month of one of Alice's sessions is where :func:`~vigil.tasks.web_sessions.data.
shift_into_period` put her week, not when she browsed, so the month would learn the rebuilding, not
Alice (and the held-out months are months the training part never saw).

Example::

    featurizer = SessionFeaturizer().fit(train_sessions, train_labels)
    featurizer.transform(test_sessions).shape, featurizer.feature_dims()
"""

from __future__ import annotations

import copy
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer

from vigil.tasks.web_sessions.api_input import UNKNOWN_PREFIX
from vigil.tasks.web_sessions.data import SITE_COLUMNS, TIME_COLUMNS

FEATURE_VERSION = 2
LOG_HALF_HOUR = float(np.log1p(1800))  # the longest possible gap: log1p(seconds) / this lies in [0, 1]


# -- helpers shared by the blocks -----------------------------------------------------------------
def site_tokens(sessions: pd.DataFrame) -> list[list[str]]:
    """Each session's visited sites as strings, padding dropped (ids as "29"; the API's unknown names as-is)."""
    frame = sessions[SITE_COLUMNS]
    try:
        numbers = frame.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):  # names from the API among the ids: one value at a time
        values = frame.astype(object).to_numpy()
        return [[_token(v) for v in row if v is not None and not pd.isna(v) and _token(v) != "0"] for row in values]
    given = ~np.isnan(numbers)
    ids = np.where(given, numbers, 0).astype(np.int64)
    given &= ids != 0
    strings = ids.astype(str)
    return [row[keep].tolist() for row, keep in zip(strings, given)]


def _token(value) -> str:
    # ids read as floats (a column with gaps) must give the same token as integer ids
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def visit_seconds(sessions: pd.DataFrame) -> np.ndarray:
    """Visit times as float seconds, NaN where a session has fewer than 10 visits."""
    seconds = sessions[TIME_COLUMNS].apply(lambda c: c.astype("datetime64[s]").astype("int64").where(c.notna()))
    return seconds.to_numpy(dtype=float)


def _one_hot(indices: np.ndarray, width: int) -> sparse.csr_matrix:
    rows = np.arange(len(indices))
    return sparse.csr_matrix((np.ones(len(indices)), (rows, indices)), shape=(len(indices), width))


def _circle(values: np.ndarray, period: float) -> np.ndarray:
    angle = 2 * np.pi * np.asarray(values, dtype=float) / period
    return np.column_stack([np.sin(angle), np.cos(angle)])


class _CompactVocabulary:
    """Saves a block's fitted ``vectorizer.vocabulary_`` as one array of terms instead of a dict.

    A dict of tens of thousands of terms becomes tens of thousands of nodes in a skops archive
    (seconds to write and to load); the terms in index order are one array, and the dict is
    rebuilt from it when the block is loaded (or copied).
    """

    vectorizer: TfidfVectorizer

    def __getstate__(self) -> dict:
        state = {key: value for key, value in self.__dict__.items() if not key.startswith("_cache")}
        vectorizer = state.get("vectorizer")
        if vectorizer is not None and hasattr(vectorizer, "vocabulary_"):
            vocabulary = vectorizer.vocabulary_
            terms = np.empty(len(vocabulary), dtype=object)
            for term, index in vocabulary.items():
                terms[index] = term
            vectorizer = copy.copy(vectorizer)
            del vectorizer.vocabulary_
            state["vectorizer"] = vectorizer
            state["vocabulary_terms"] = terms.astype(str) if len(terms) else np.array([], dtype=str)
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        terms = state.pop("vocabulary_terms", None)
        self.__dict__.update(state)
        if terms is not None:
            self.vectorizer.vocabulary_ = {term: index for index, term in enumerate(terms.tolist())}

    @property
    def dim(self) -> int:
        return len(self.vectorizer.vocabulary_)


def split_on_spaces(text: str) -> list[str]:
    # A named function rather than str.split: the saved model refers to its tokenizer by name, and
    # the artifact store trusts module functions by exact name (method descriptors cannot be).
    return text.split()


def token_tfidf(**options) -> TfidfVectorizer:
    """Sublinear TF-IDF (float32) of space-separated tokens taken as they are (no case folding)."""
    return TfidfVectorizer(
        tokenizer=split_on_spaces, token_pattern=None, lowercase=False, sublinear_tf=True, dtype=np.float32, **options
    )


# second-level labels under which a country code registers names (co.uk, com.br, gouv.fr ...)
COUNTRY_SECOND_LEVELS = frozenset({"ac", "co", "com", "edu", "gouv", "gov", "ne", "net", "or", "org"})
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def site_name_parts(name: str) -> list[str]:
    """The parts of a host name: its registered domain, then every label piece (split on dots and
    dashes), "www" and bare numbers dropped; an IPv4 address gives its /24 network.

    The registered domain is the last two labels, or three under a country code's own second level
    (``bbc.co.uk``, ``service-public.gouv.fr``: :data:`COUNTRY_SECOND_LEVELS`).

    >>> site_name_parts("r3---sn-gxo5uxg-jqbe.googlevideo.com")
    ['googlevideo.com', 'r3', 'sn', 'gxo5uxg', 'jqbe', 'googlevideo', 'com']
    >>> site_name_parts("193.164.197.30"), site_name_parts("news.bbc.co.uk")
    (['193.164.197.x'], ['bbc.co.uk', 'news', 'bbc', 'co', 'uk'])
    """
    host = name.strip().lower().rstrip(".")
    if host.startswith(UNKNOWN_PREFIX):
        host = host[len(UNKNOWN_PREFIX) :]
    if not host:
        return []
    if _IPV4.match(host):
        return [host.rsplit(".", 1)[0] + ".x"]
    labels = [label for label in host.split(".") if label]
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in COUNTRY_SECOND_LEVELS:
        domain = ".".join(labels[-3:])
    else:
        domain = ".".join(labels[-2:])
    pieces = [
        piece for label in labels for piece in label.split("-") if piece and piece != "www" and not piece.isdigit()
    ]
    return [domain, *pieces] if len(labels) >= 2 else pieces


# -- the blocks -----------------------------------------------------------------------------------
class SiteNgrams(_CompactVocabulary):
    """TF-IDF over the ordered site sequence: single sites and runs of 2-3 consecutive sites."""

    name = "site_ngrams"

    def __init__(self, ngram_range=(1, 3), min_df: int = 2, max_features: int | None = 100_000):
        self.vectorizer = token_tfidf(ngram_range=ngram_range, min_df=min_df, max_features=max_features)

    def feature_names(self) -> list[str]:
        return [f"sites {term}" for term in self.vectorizer.get_feature_names_out()]

    def raw_features(self, sessions: pd.DataFrame) -> list[str]:
        return [" ".join(tokens) for tokens in site_tokens(sessions)]

    def fit(self, sessions: pd.DataFrame, y=None) -> "SiteNgrams":
        raw = self.raw_features(sessions)
        try:
            self.vectorizer.fit(raw)
        except ValueError:  # tiny samples: no n-gram reaches min_df
            self.vectorizer.set_params(min_df=1).fit(raw)
        return self

    def process_raw_features(self, raw: list[str]) -> sparse.csr_matrix:
        return self.vectorizer.transform(raw)


class SiteNameTokens(_CompactVocabulary):
    """TF-IDF of the name parts (:func:`site_name_parts`) of the session's sites.

    A site never seen in training (a new id, or a name the site dictionary lacks) has no weight of
    its own in ``site_ngrams``; its domain and name pieces (``googlevideo.com``, ``gxo5uxg``) usually
    do. By default every visited site gives its parts; ``only_rare_below=k`` keeps only the sites
    seen in fewer than k training sessions (so the block speaks only for rare and unseen sites).
    ``site_names`` maps site id to site name (the site dictionary, reversed); a ``?name`` token from
    the API is its own name. The names are kept as two arrays (ids, names): a saved model loads
    arrays far faster than a 48,000-entry dict.
    """

    name = "site_name_tokens"

    def __init__(self, site_names: dict | None = None, only_rare_below: int | None = None, min_df: int = 2):
        pairs = sorted((str(k), str(v)) for k, v in (site_names or {}).items())
        self.site_ids = np.array([k for k, _ in pairs], dtype=str)
        self.site_name_list = np.array([v for _, v in pairs], dtype=str)
        self.only_rare_below = only_rare_below
        self.vectorizer = token_tfidf(min_df=min_df)

    def feature_names(self) -> list[str]:
        return [f"name part {term}" for term in self.vectorizer.get_feature_names_out()]

    def _parts(self, token: str) -> list[str]:
        # the id -> name lookup and each site's parts are built on first use and never saved
        if "_cache_names" not in self.__dict__:
            self._cache_names = dict(zip(self.site_ids.tolist(), self.site_name_list.tolist()))
            self._cache_parts: dict[str, list[str]] = {}
        parts = self._cache_parts.get(token)
        if parts is None:
            name = token if token.startswith(UNKNOWN_PREFIX) else self._cache_names.get(token)
            parts = site_name_parts(name) if name else []
            if not token.startswith(UNKNOWN_PREFIX):  # names from requests are not kept
                self._cache_parts[token] = parts
        return parts

    def _speaks_for(self, token: str) -> bool:
        return self.only_rare_below is None or getattr(self, "seen_", {}).get(token, 0) < self.only_rare_below

    def raw_features(self, sessions: pd.DataFrame) -> list[str]:
        return [
            " ".join(part for token in tokens if self._speaks_for(token) for part in self._parts(token))
            for tokens in site_tokens(sessions)
        ]

    def fit(self, sessions: pd.DataFrame, y=None) -> "SiteNameTokens":
        if self.only_rare_below is not None:
            counts = Counter(token for tokens in site_tokens(sessions) for token in set(tokens))
            self.seen_ = {token: count for token, count in counts.items() if count >= self.only_rare_below}
        raw = self.raw_features(sessions)
        try:
            self.vectorizer.fit(raw)
        except ValueError:  # tiny samples: no part reaches min_df, or no site has a known name
            self.vectorizer.set_params(min_df=1).fit([*raw, UNKNOWN_PREFIX])
        return self

    def process_raw_features(self, raw: list[str]) -> sparse.csr_matrix:
        return self.vectorizer.transform(raw)


class TopSitesShare:
    """Share of the session's visits, and of its time, on the ``n_sites`` sites Alice visits most.

    Fitted on the training sessions labelled 1. A visit's time is the gap to the next visit (the
    last visit's is unknown, so 0); when a session's visits take no measurable time at all, its
    time share is its visit share.
    """

    name = "top_sites_share"
    columns = ("top_sites_visit_share", "top_sites_time_share")
    dim = len(columns)

    def __init__(self, n_sites: int = 30):
        self.n_sites = n_sites

    def feature_names(self) -> list[str]:
        return list(self.columns)

    def fit(self, sessions: pd.DataFrame, y=None) -> "TopSitesShare":
        tokens = site_tokens(sessions)
        if y is not None and np.asarray(y).sum() > 0:
            tokens = [t for t, label in zip(tokens, np.asarray(y)) if label == 1]
        counts = Counter(token for session in tokens for token in session)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))  # ties by name: reproducible
        self.top_sites_ = [token for token, _ in ranked[: self.n_sites]]
        return self

    def raw_features(self, sessions: pd.DataFrame) -> pd.DataFrame:
        top = dict.fromkeys(self.top_sites_)
        seconds = visit_seconds(sessions)
        spent = np.nan_to_num(np.diff(seconds, axis=1), nan=0.0)  # time on visit i = gap to visit i+1
        visit_share, time_share = [], []
        for row, tokens in enumerate(site_tokens(sessions)):
            on_top = [token in top for token in tokens]
            share = sum(on_top) / len(tokens) if tokens else 0.0
            times = spent[row, : max(len(tokens) - 1, 0)]
            total = float(times.sum())
            visit_share.append(share)
            time_share.append(
                float(times[np.array(on_top[: len(times)], dtype=bool)].sum()) / total if total > 0 else share
            )
        return pd.DataFrame(
            {"top_sites_visit_share": visit_share, "top_sites_time_share": time_share}, index=sessions.index
        )

    def process_raw_features(self, raw: pd.DataFrame) -> sparse.csr_matrix:
        return sparse.csr_matrix(raw[list(self.columns)].to_numpy(dtype=np.float32))


class VisitGaps:
    """Seconds from each visit to the next (9 gaps; a missing visit's gap is 0), as log1p(s)/log1p(1800)."""

    name = "visit_gaps"
    columns = tuple(f"gap{i}_s" for i in range(1, len(TIME_COLUMNS)))
    dim = len(columns)

    def feature_names(self) -> list[str]:
        return list(self.columns)

    def raw_features(self, sessions: pd.DataFrame) -> pd.DataFrame:
        gaps = np.nan_to_num(np.diff(visit_seconds(sessions), axis=1), nan=0.0)
        return pd.DataFrame(gaps, columns=list(self.columns), index=sessions.index)

    def process_raw_features(self, raw: pd.DataFrame) -> sparse.csr_matrix:
        return sparse.csr_matrix((np.log1p(raw.to_numpy(dtype=float).clip(0)) / LOG_HALF_HOUR).astype(np.float32))


class SessionShape:
    """Length in seconds, gaps between visits, number of visits and of distinct sites."""

    name = "session_shape"
    columns = ("duration_s", "mean_gap_s", "max_gap_s", "n_visits", "n_distinct_sites")
    dim = len(columns)

    def feature_names(self) -> list[str]:
        return list(self.columns)

    def raw_features(self, sessions: pd.DataFrame) -> pd.DataFrame:
        values = visit_seconds(sessions)
        gaps = np.diff(values, axis=1)
        tokens = site_tokens(sessions)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # one-visit sessions have no gaps
            return pd.DataFrame(
                {
                    "duration_s": np.nanmax(values, axis=1) - values[:, 0],
                    "mean_gap_s": np.nan_to_num(np.nanmean(np.where(np.isnan(gaps), np.nan, gaps), axis=1)),
                    "max_gap_s": np.nan_to_num(np.nanmax(np.where(np.isnan(gaps), -np.inf, gaps), axis=1), neginf=0.0),
                    "n_visits": [len(t) for t in tokens],
                    "n_distinct_sites": [len(set(t)) for t in tokens],
                },
                index=sessions.index,
            )

    def process_raw_features(self, raw: pd.DataFrame) -> sparse.csr_matrix:
        # log1p(seconds) / log1p(1800) and counts / 10 put every column on about [0, 1] for the linear model
        scaled = np.column_stack(
            [
                np.log1p(raw[["duration_s", "mean_gap_s", "max_gap_s"]].to_numpy(dtype=float).clip(0)) / LOG_HALF_HOUR,
                raw[["n_visits", "n_distinct_sites"]].to_numpy(dtype=float) / 10.0,
            ]
        )
        return sparse.csr_matrix(scaled.astype(np.float32))


class StartHour:
    """Hour of day the session starts, one-hot (Alice browses at a few fixed hours), then the time of
    day (hour + minute / 60) on a circle as sin, cos, so 23:59 is next to 00:00."""

    name = "start_hour"
    dim = 24 + 2

    def feature_names(self) -> list[str]:
        return [f"hour={h}" for h in range(24)] + ["time_of_day_sin", "time_of_day_cos"]

    def raw_features(self, sessions: pd.DataFrame) -> pd.DataFrame:
        start = sessions["time1"]
        return pd.DataFrame(
            {"hour": start.dt.hour.to_numpy(), "time_of_day_h": (start.dt.hour + start.dt.minute / 60).to_numpy()},
            index=sessions.index,
        )

    def process_raw_features(self, raw: pd.DataFrame) -> sparse.csr_matrix:
        return sparse.hstack(
            [
                _one_hot(raw["hour"].to_numpy(dtype=int), 24),
                sparse.csr_matrix(_circle(raw["time_of_day_h"].to_numpy(), 24)),
            ],
            format="csr",
        )


class StartWeekday:
    """Day of week (Monday = 0), one-hot (Alice rarely browses on Wednesdays and weekends), then on a circle."""

    name = "start_weekday"
    dim = 7 + 2

    def feature_names(self) -> list[str]:
        return [f"weekday={d}" for d in range(7)] + ["weekday_sin", "weekday_cos"]

    def raw_features(self, sessions: pd.DataFrame) -> np.ndarray:
        return sessions["time1"].dt.day_of_week.to_numpy()

    def process_raw_features(self, raw: np.ndarray) -> sparse.csr_matrix:
        return sparse.hstack([_one_hot(raw.astype(int), 7), sparse.csr_matrix(_circle(raw, 7))], format="csr")


class StartMonth:
    """Month the session starts (January = 0 in the one-hot), one-hot and on a circle.

    Not a default block: see the module docstring (in the rebuilt set the month of Alice's sessions
    is an artefact of moving her weeks into the other sessions' period).
    """

    name = "start_month"
    dim = 12 + 2

    def feature_names(self) -> list[str]:
        return [f"month={m}" for m in range(1, 13)] + ["month_sin", "month_cos"]

    def raw_features(self, sessions: pd.DataFrame) -> np.ndarray:
        return sessions["time1"].dt.month.to_numpy()

    def process_raw_features(self, raw: np.ndarray) -> sparse.csr_matrix:
        return sparse.hstack([_one_hot(raw.astype(int) - 1, 12), sparse.csr_matrix(_circle(raw - 1, 12))], format="csr")


class WeekdayHour:
    """Weekday x start hour, one-hot (cell ``24 * weekday + hour``): Alice's Monday 16:00 is not her
    Friday 16:00, which a sum of an hour and a weekday weight cannot say."""

    name = "weekday_hour"
    dim = 7 * 24

    def feature_names(self) -> list[str]:
        return [f"weekday={d} hour={h}" for d in range(7) for h in range(24)]

    def raw_features(self, sessions: pd.DataFrame) -> np.ndarray:
        return (sessions["time1"].dt.day_of_week * 24 + sessions["time1"].dt.hour).to_numpy()

    def process_raw_features(self, raw: np.ndarray) -> sparse.csr_matrix:
        return _one_hot(raw.astype(int), self.dim)


class StartClock:
    """Start time as two plain numbers, time of day in hours (16:30 -> 16.5) and weekday (Monday = 0):
    a tree cuts Alice's timetable out of them directly (for a linear model they say little)."""

    name = "start_clock"
    columns = ("time_of_day_h", "weekday")
    dim = len(columns)

    def feature_names(self) -> list[str]:
        return list(self.columns)

    def raw_features(self, sessions: pd.DataFrame) -> pd.DataFrame:
        start = sessions["time1"]
        return pd.DataFrame(
            {
                "time_of_day_h": (start.dt.hour + start.dt.minute / 60).to_numpy(),
                "weekday": start.dt.day_of_week.to_numpy(),
            },
            index=sessions.index,
        )

    def process_raw_features(self, raw: pd.DataFrame) -> sparse.csr_matrix:
        return sparse.csr_matrix(raw[list(self.columns)].to_numpy(dtype=np.float32))


class SiteScore:
    """The sites as one number for a tree model: a logistic regression's score (log-odds) on
    ``site_ngrams`` + ``site_name_tokens`` (LightGBM on 100,000 sparse TF-IDF columns is slow and
    learns little from them that this score does not carry).

    On its own training sessions the score is out of fold (:meth:`out_of_fold_features`): each
    calendar day is scored by a regression fitted on the other days (``GroupKFold`` by day, so a
    browsing sitting never scores itself), as in stacking; a model downstream then learns how far to
    trust the score on sessions it was not fitted on. Elsewhere the regression fitted on every
    training session scores.
    """

    name = "site_score"
    columns = ("site_score",)
    dim = 1

    def __init__(self, site_names: dict | None = None, C: float = 3.0, n_folds: int = 5):
        self.featurizer = SessionFeaturizer([SiteNgrams(), SiteNameTokens(site_names)])
        self.C = C
        self.n_folds = n_folds

    def feature_names(self) -> list[str]:
        return list(self.columns)

    def _regression(self):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, solver="liblinear", max_iter=1000)

    def fit(self, sessions: pd.DataFrame, y=None) -> "SiteScore":
        self._fit(sessions, y)
        return self

    def _fit(self, sessions: pd.DataFrame, y) -> sparse.csr_matrix:
        if y is None:
            raise ValueError("site_score learns from labels: fit it with y")
        matrix = self.featurizer.fit(sessions, y).transform(sessions)
        self.model_ = self._regression().fit(matrix, y)
        return matrix

    def out_of_fold_features(self, sessions: pd.DataFrame, y) -> sparse.csr_matrix:
        """Fit on ``sessions``; return each session's score from a regression that did not see its day.

        Where a fold's other days hold only one class (or there are fewer than two days), the
        sessions get the regression fitted on everything, the only score there is.
        """
        from sklearn.model_selection import GroupKFold

        y = np.asarray(y)
        matrix = self._fit(sessions, y)
        scores = self.model_.decision_function(matrix)
        days = sessions["time1"].dt.strftime("%Y-%m-%d").to_numpy()
        n_folds = min(self.n_folds, len(np.unique(days)))
        if n_folds >= 2:
            for fit_rows, score_rows in GroupKFold(n_folds).split(matrix, y, days):
                if len(np.unique(y[fit_rows])) == 2:
                    scores[score_rows] = (
                        self._regression().fit(matrix[fit_rows], y[fit_rows]).decision_function(matrix[score_rows])
                    )
        return sparse.csr_matrix(scores.reshape(-1, 1).astype(np.float32))

    def raw_features(self, sessions: pd.DataFrame) -> np.ndarray:
        return self.model_.decision_function(self.featurizer.transform(sessions))

    def process_raw_features(self, raw: np.ndarray) -> sparse.csr_matrix:
        return sparse.csr_matrix(np.asarray(raw, dtype=np.float32).reshape(-1, 1))


def default_blocks(site_names: dict | None = None) -> list:
    """The blocks of the linear model: every block, sparse, on comparable scales."""
    return [
        SiteNgrams(),
        SiteNameTokens(site_names),
        TopSitesShare(),
        VisitGaps(),
        SessionShape(),
        StartHour(),
        StartWeekday(),
        WeekdayHour(),
    ]


def tree_blocks(site_names: dict | None = None) -> list:
    """The blocks of the tree model: the sites as one out-of-fold score, the rest as plain numbers."""
    return [SiteScore(site_names), TopSitesShare(), VisitGaps(), SessionShape(), StartClock()]


class SiteDictionary(Mapping, TransformerMixin, BaseEstimator):
    """The site dictionary (site name -> Kaggle site id) the model was trained with: the first step
    of the saved pipeline, so the artifact is one estimator that carries its own dictionary.

    Sessions in Kaggle's layout already hold site ids, so ``transform`` passes them on unchanged;
    the request parser (:func:`~vigil.tasks.web_sessions.api_input.sessions_frame`) reads this step
    as the mapping it turns the API's site names into ids with. The dictionary is kept as two
    arrays (names, ids), which a saved model loads far faster than a 48,000-entry dict; the lookup
    dict is built on first use and never saved.

    >>> sites = SiteDictionary.from_mapping({"vk.com": 7, "www.google.fr": 21})
    >>> sites["vk.com"], len(sites), "mail.ru" in sites
    (7, 2, False)
    """

    def __init__(self, names=(), ids=()):
        self.names = names
        self.ids = ids

    @classmethod
    def from_mapping(cls, site_dic: Mapping[str, int] | None) -> "SiteDictionary":
        pairs = sorted((str(name), int(site_id)) for name, site_id in (site_dic or {}).items())
        return cls(
            names=np.array([name for name, _ in pairs], dtype=str),
            ids=np.array([site_id for _, site_id in pairs], dtype=np.int64),
        )

    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if not key.startswith("_cache")}

    def _lookup(self) -> dict[str, int]:
        if "_cache_lookup" not in self.__dict__:
            self._cache_lookup = dict(zip(np.asarray(self.names).tolist(), np.asarray(self.ids).tolist()))
        return self._cache_lookup

    def __getitem__(self, name: str) -> int:
        return self._lookup()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup())

    def __len__(self) -> int:
        return len(self.names)

    def fit(self, sessions=None, y=None) -> "SiteDictionary":
        return self  # nothing to learn: the dictionary is given

    def transform(self, sessions: pd.DataFrame) -> pd.DataFrame:
        return sessions

    def __sklearn_is_fitted__(self) -> bool:
        return True


class SessionFeaturizer(BaseEstimator, TransformerMixin):
    """The ordered feature blocks as one scikit-learn transformer (saved inside the model pipeline).

    ``fit_transform`` (what a Pipeline calls while fitting) gives blocks with an
    ``out_of_fold_features`` method (:class:`SiteScore`) their out-of-fold values; ``transform``
    always the fitted ones.
    """

    def __init__(self, blocks: list | None = None):
        self.blocks = blocks

    def fit(self, sessions: pd.DataFrame, y=None) -> "SessionFeaturizer":
        self.blocks_ = self.blocks if self.blocks is not None else default_blocks()
        for block in self.blocks_:
            if hasattr(block, "fit"):
                block.fit(sessions, y)
        return self

    def fit_transform(self, sessions: pd.DataFrame, y=None, **fit_params) -> sparse.csr_matrix:
        self.blocks_ = self.blocks if self.blocks is not None else default_blocks()
        parts = []
        for block in self.blocks_:
            if hasattr(block, "out_of_fold_features") and y is not None:
                parts.append(block.out_of_fold_features(sessions, y))
                continue
            if hasattr(block, "fit"):
                block.fit(sessions, y)
            parts.append(block.process_raw_features(block.raw_features(sessions)))
        return sparse.hstack(parts, format="csr", dtype=np.float32)

    def transform(self, sessions: pd.DataFrame) -> sparse.csr_matrix:
        parts = [block.process_raw_features(block.raw_features(sessions)) for block in self.blocks_]
        return sparse.hstack(parts, format="csr", dtype=np.float32)

    def feature_dims(self) -> dict[str, int]:
        return {block.name: block.dim for block in self.blocks_}

    def feature_names(self) -> list[str]:
        return [name for block in self.blocks_ for name in block.feature_names()]

    def block_of_each_feature(self) -> np.ndarray:
        return np.repeat([block.name for block in self.blocks_], [block.dim for block in self.blocks_])
