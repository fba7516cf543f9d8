"""The saved web-events pipeline's labels, computed without its per-call overhead.

``pipeline.predict(events)`` on one event spends most of its ~12 ms outside the arithmetic: pandas
Series and factorize per feature block, scikit-learn's input validation in each of the four TF-IDF
transforms, and a joblib dispatch plus validation for each of the forest's trees. At 10,000 events
the pandas frames of the wrangled columns and the per-block validation still cost a third.

:class:`EventScorer` runs the same steps of the same fitted objects on plain column lists:

* wrangling: the rules of :func:`~vigil.tasks.web_events.wrangling.wrangle_columns` (the code
  ``EventWrangler`` runs), without its DataFrame, and for text columns once per distinct text
  (:class:`~vigil.tasks.web_events.wrangling.DistinctWrangled`);
* feature blocks: each distinct value featurized once (as the blocks do); each TF-IDF block with
  its vectorizer's own tokenizer (or analyzer), vocabulary and idf, every term of every distinct
  text looked up at once and counted by one ``bincount``, without sklearn's per-call checks; the
  l2 norm summed term by term in column order as scikit-learn's ``normalize`` does, so the values
  are bit for bit the same;
* scaling and PCA: StandardScaler's ``(X - mean_) / scale_`` and PCA's ``X @ components_.T -
  mean_ @ components_.T``, the same numpy operations on the same arrays as their ``transform``,
  without the input checks (three ``validate_data`` calls: a third of a single event's time);
  a matrix that is not all finite goes through the fitted steps themselves, which refuse it;
* a random forest: every tree's ``tree_.predict`` on the one float32 copy of X, summed in tree
  order, which is what ``predict_proba`` computes with ``n_jobs=1`` (threads would only reorder a
  sum of 33 small arrays, and starting them costs more than the trees at small batches).

The labels are ``pipeline.predict``'s (tests/test_web_events.py compares them on every path);
a pipeline of another shape (another classifier, extra steps) falls back to ``pipeline.predict``.

    >>> scorer_for(pipeline).predict_columns(columns)                             # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import weakref

import numpy as np
import pandas as pd

from vigil.tasks.web_events.features import ClientIpGroups, EventFeatures, FeatureBlock, ScaledPCA, TextTfidf
from vigil.tasks.web_events.wrangling import COLUMNS, DistinctWrangled, EventWrangler


def _distinct(values: list) -> tuple[list, np.ndarray]:
    """(distinct values in first-seen order, the index of each value among them): pd.factorize's answer,
    which the blocks use; a dict is quicker for a few values, pandas' hash table for many."""
    if len(values) > 32:
        array = np.array(values, dtype=object)
        # With its sentinel for nulls pandas skips the null mask it builds otherwise (one more pass
        # over the values): the answer is the same where there is no null (the texts scored here
        # hold none), and a -1 shows one, when it is done as before.
        codes, uniques = pd.factorize(array)
        if codes.size and codes.min() < 0:
            codes, uniques = pd.factorize(array, use_na_sentinel=False)
        return list(uniques), codes
    positions: dict = {}
    codes = [positions.setdefault(value, len(positions)) for value in values]
    return list(positions), np.fromiter(codes, dtype=np.intp, count=len(codes))


# scikit-learn's default token_pattern. On ASCII text its tokens are exactly the runs of two or more
# of [0-9A-Za-z_] (what ``\w`` matches there), so they are cut in C by bytes.translate (every other
# byte to a space) and bytes.split, ~5x quicker than the regex; a run of one character is cut too,
# and found in no vocabulary (whose terms are tokens of the same pattern), so it counts nowhere.
DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_WORD_BYTES = bytes(
    code if chr(code).isascii() and (chr(code).isalnum() or chr(code) == "_") else 32 for code in range(256)
)


# An exploded IPv6 address, as client_ip_groups writes every address it can read: 8 groups of 4 hex
# digits, colons between. ClientIpGroups' int(group, 16) of each group is then read off the bytes.
_EXPLODED_LENGTH = 39
_HEX_VALUES = np.full(256, 16, dtype=np.int64)
for _digit in "0123456789abcdefABCDEF":
    _HEX_VALUES[ord(_digit)] = int(_digit, 16)
_GROUP_DIGITS = [position for position in range(_EXPLODED_LENGTH) if position % 5 != 4]


def _ip_group_rows(addresses: list[str]) -> np.ndarray | None:
    """ClientIpGroups' rows of ``addresses`` (the same float64 values) when every one is an exploded
    address, its 32 hex digits turned into numbers at once; else None (the block's own loop then)."""
    if not addresses or set(map(len, addresses)) != {_EXPLODED_LENGTH}:
        return None
    joined = "".join(addresses)
    if not joined.isascii():
        return None
    chars = np.frombuffer(joined.encode(), dtype=np.uint8).reshape(len(addresses), _EXPLODED_LENGTH)
    digits = _HEX_VALUES[chars[:, _GROUP_DIGITS]].reshape(len(addresses), 8, 4)
    if not (chars[:, 4::5] == ord(":")).all() or (digits > 15).any():
        return None
    groups = ((digits[:, :, 0] * 16 + digits[:, :, 1]) * 16 + digits[:, :, 2]) * 16 + digits[:, :, 3]
    return groups.astype(np.float64)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


class _Tfidf:
    """One fitted ``TextTfidf`` block's vectorizer, applied to distinct texts without sklearn's checks."""

    def __init__(self, block: TextTfidf):
        vectorizer = block.vectorizer
        self.analyze = vectorizer.build_analyzer()
        # The default word analyzer is lowercase + token_pattern.findall (no accents stripped, no stop
        # words, unigrams): call sklearn's own tokenizer on lowercased text, without the wrappers.
        plain = (
            vectorizer.analyzer == "word"
            and vectorizer.input == "content"
            and vectorizer.preprocessor is None
            and vectorizer.tokenizer is None
            and vectorizer.lowercase
            and vectorizer.strip_accents is None
            and vectorizer.stop_words is None
            and tuple(vectorizer.ngram_range) == (1, 1)
        )
        self.tokenize = vectorizer.build_tokenizer() if plain else None
        self.vocabulary = vectorizer.vocabulary_
        # the terms as UTF-8, for the tokens cut from ASCII texts as bytes (the encoding is one to one)
        self.utf8_vocabulary = (
            {_utf8(term): column for term, column in self.vocabulary.items()}
            if plain and vectorizer.token_pattern == DEFAULT_TOKEN_PATTERN
            else None
        )
        self.idf = vectorizer.idf_
        self.norm = vectorizer.norm
        self.exact = (
            vectorizer.norm in ("l2", None)
            and not vectorizer.binary
            and not vectorizer.sublinear_tf
            and vectorizer.use_idf
            and vectorizer.dtype in (np.float64, float)
        )

    def rows(self, texts: list[str]) -> np.ndarray:
        n_rows, width = len(texts), len(self.vocabulary)
        vocabulary = self.vocabulary
        if self.utf8_vocabulary is not None:
            tokenize, vocabulary = self.tokenize, self.utf8_vocabulary
            token_lists = [
                text.encode().lower().translate(_WORD_BYTES).split()
                if text.isascii()
                else list(map(_utf8, tokenize(text.lower())))
                for text in texts
            ]
        elif self.tokenize is not None:
            tokenize = self.tokenize
            token_lists = [tokenize(text.lower()) for text in texts]
        else:
            token_lists = [self.analyze(text) for text in texts]
        # Every term of every text looked up at once; the counts per (text, term) by one bincount.
        lengths = np.fromiter(map(len, token_lists), dtype=np.intp, count=n_rows)
        terms = list(itertools.chain.from_iterable(token_lists))
        columns = np.fromiter(map(vocabulary.get, terms, itertools.repeat(-1)), dtype=np.intp, count=len(terms))
        rows = np.repeat(np.arange(n_rows, dtype=np.intp), lengths)
        known = columns >= 0
        counts = np.bincount(rows[known] * width + columns[known], minlength=n_rows * width)
        counts = counts.reshape(n_rows, width).astype(np.float64)
        weighted = counts * self.idf  # count x idf, as TfidfTransformer's X.data *= idf_[indices]
        if self.norm is None:
            return weighted
        # sklearn's inplace_csr_row_normalize_l2: sum of squares term by term in column order (adding
        # the zeros of absent terms changes no bit), then the square root and one division.
        squares = np.zeros(len(texts), dtype=np.float64)
        for column in range(width):
            squares += weighted[:, column] * weighted[:, column]
        norms = np.sqrt(squares)
        norms[squares == 0.0] = 1.0  # a row without known terms stays zeros
        return weighted / norms[:, None]


class EventScorer:
    """``pipeline.predict`` of a fitted [EventWrangler, EventFeatures, ScaledPCA, classifier] pipeline."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        steps = [step for _, step in pipeline.steps] if hasattr(pipeline, "steps") else []
        self.fast = (
            len(steps) == 4
            and type(steps[0]) is EventWrangler
            and type(steps[1]) is EventFeatures
            and type(steps[2]) is ScaledPCA
        )
        if not self.fast:
            return
        self.blocks: list[FeatureBlock] = steps[1].blocks_
        self.tfidf = {
            id(block): _Tfidf(block)
            for block in self.blocks
            if type(block) is TextTfidf and block.vectorizer is not None
        }
        if not all(t.exact for t in self.tfidf.values()):
            self.tfidf = {}  # a vectorizer configured otherwise: its own transform (still exact)
        self.project: ScaledPCA = steps[2]
        self.linear = self._linear_projection(steps[2])
        self.classifier = steps[3]
        self.trees = self._forest_trees(self.classifier)

    @staticmethod
    def _linear_projection(project: ScaledPCA):
        """(mean, scale, components.T, offset) when the fitted ScaledPCA is the plain kind, else None."""
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import StandardScaler

        scaler, pca = getattr(project, "scaler_", None), getattr(project, "pca_", None)
        if type(scaler) is not StandardScaler or type(pca) is not PCA:
            return None
        if not (scaler.with_mean and scaler.with_std and scaler.scale_ is not None) or pca.whiten:
            return None
        components_t = pca.components_.T
        return scaler.mean_, scaler.scale_, components_t, pca.mean_.reshape(1, -1) @ components_t

    @staticmethod
    def _forest_trees(classifier):
        from sklearn.ensemble import RandomForestClassifier

        if type(classifier) is not RandomForestClassifier or classifier.n_outputs_ != 1:
            return None
        return [tree for tree in classifier.estimators_]

    # -- the steps ---------------------------------------------------------------------------------
    def _block_rows(self, block: FeatureBlock, wrangled: DistinctWrangled, n_rows: int):
        """(the block's feature rows, the index of each event's row among them): one row per
        distinct value for the blocks that featurize distinct values, else one per event (None)."""
        if type(block) is TextTfidf and block.vectorizer is None:
            return np.zeros((n_rows, 0)), None
        if not block.distinct_values_once:
            return block.process_raw_features(wrangled.values(block.column)), None
        uniques, codes = wrangled.distinct(block.column)
        uniques = list(uniques)
        tfidf = self.tfidf.get(id(block))
        rows = tfidf.rows(uniques) if tfidf is not None else None
        if rows is None and type(block) is ClientIpGroups:
            rows = _ip_group_rows(uniques)
        return (block.process_raw_features(uniques) if rows is None else rows), codes

    def _block(self, block: FeatureBlock, wrangled: DistinctWrangled, n_rows: int) -> np.ndarray:
        rows, codes = self._block_rows(block, wrangled, n_rows)
        return rows if codes is None else rows[codes]

    def features(self, columns, types=None) -> np.ndarray:
        """EventFeatures.transform of the wrangled events: the blocks side by side. Text columns are
        wrangled and featurized once per distinct raw text (the blocks featurize distinct values)."""
        wrangled = DistinctWrangled(columns, _distinct, types)
        n_rows = len(columns[COLUMNS[0]])
        return np.hstack([self._block(block, wrangled, n_rows) for block in self.blocks])

    def _scaled_features(self, columns, types=None) -> np.ndarray | None:
        """StandardScaler's output on :meth:`features`, bit for bit, without the unscaled matrix:
        each block's rows scaled where they are distinct (``(x - mean_) / scale_`` is elementwise,
        so the same numbers wherever it runs), then gathered into the one matrix. None where a
        feature is not finite or the widths disagree: the fitted steps then judge the raw matrix."""
        mean, scale, _, _ = self.linear
        wrangled = DistinctWrangled(columns, _distinct, types)
        n_rows = len(columns[COLUMNS[0]])
        scaled = np.empty((n_rows, len(mean)), dtype=np.float64)
        start = 0
        for block in self.blocks:
            rows, codes = self._block_rows(block, wrangled, n_rows)
            stop = start + rows.shape[1]
            if stop > len(mean) or not np.isfinite(rows).all():
                return None
            rows = rows - mean[start:stop]
            rows /= scale[start:stop]
            scaled[:, start:stop] = rows if codes is None else rows[codes]
            start = stop
        return scaled if start == len(mean) else None

    def _projected(self, features: np.ndarray) -> np.ndarray:
        if self.linear is None or not np.isfinite(features).all():
            return self.project.transform(features)  # its own checks (and errors)
        mean, scale, _, _ = self.linear
        X = features - mean  # StandardScaler: X -= mean_; X /= scale_ (on its copy of X)
        X /= scale
        return self._pca(X)

    def _pca(self, scaled: np.ndarray) -> np.ndarray:
        _, _, components_t, offset = self.linear
        projected = scaled @ components_t  # PCA._transform: X @ components_.T, then the centring
        projected -= offset
        return projected

    def _projected_columns(self, columns, types=None) -> np.ndarray:
        """:meth:`_projected` of :meth:`features`, the same numbers, the scaling done per block."""
        scaled = self._scaled_features(columns, types) if self.linear is not None else None
        if scaled is None:
            return self._projected(self.features(columns, types))
        return self._pca(scaled)

    def _forest_predict(self, X: np.ndarray) -> np.ndarray:
        forest = self.classifier
        if not np.isfinite(X).all():
            X32 = forest._validate_X_predict(X)  # its own checks: NaN where the trees take it, errors
        else:
            X32 = np.asarray(X, dtype=np.float32)  # the float32 copy predict_proba hands every tree
        proba = np.zeros((X32.shape[0], forest.n_classes_), dtype=np.float64)
        for tree in self.trees:
            proba += tree.tree_.predict(X32)[:, : tree.n_classes_]
        proba /= len(self.trees)
        return forest.classes_.take(np.argmax(proba, axis=1), axis=0)

    # -- entry points ------------------------------------------------------------------------------
    def predict_columns(self, columns, types=None) -> np.ndarray:
        """Labels of the events given column-wise: ``columns[name]`` lists that column's values
        (``types[name]``, where given: the types of those values)."""
        n_rows = len(columns[COLUMNS[0]])
        if not self.fast:
            return np.asarray(self.pipeline.predict(pd.DataFrame({c: list(columns[c]) for c in COLUMNS})))
        if n_rows == 0:
            return np.zeros(0, dtype=np.int64)
        X = self._projected_columns(columns, types)
        if self.trees is None:
            return np.asarray(self.classifier.predict(X))
        return self._forest_predict(X)

    def predict(self, events) -> np.ndarray:
        """``pipeline.predict(events)``, the same labels; ``events``: a frame or a ParsedRequest."""
        if not self.fast:
            return np.asarray(self.pipeline.predict(getattr(events, "events", events)))
        return self.predict_columns(event_columns(events), getattr(events, "column_types", None))


def event_columns(events) -> dict:
    """Column name -> values of a frame of events, or of a ParsedRequest (its ``columns``)."""
    if isinstance(events, pd.DataFrame):
        missing = [c for c in COLUMNS if c not in events.columns]
        if missing:
            raise ValueError(f"events lack columns {missing}")
        return {c: events[c].tolist() for c in COLUMNS}
    return events.columns


_SCORERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def scorer_for(pipeline) -> EventScorer:
    """The :class:`EventScorer` of a loaded pipeline, built once per pipeline object (a reload is a
    new object, so a new scorer)."""
    try:
        return _SCORERS[pipeline]
    except (KeyError, TypeError):
        scorer = EventScorer(pipeline)
        try:
            _SCORERS[pipeline] = scorer
        except TypeError:  # not weak-referenceable: build each time
            pass
        return scorer


__all__ = ["EventScorer", "event_columns", "scorer_for"]
