"""The anomaly ``Detector``: real objects plus random odd points, a split, fit and tune.

Fixed against the original (ychalier/anomaly ``detector.py``):

- the train/test split is a stratified ``train_test_split`` (by class and odd flag); the original
  sliced ``.loc[:rows]`` and ``.loc[rows:]`` and so put row ``rows`` in both halves;
- the class is one-hot encoded and the sizes standardised *inside* the pipeline that is fitted and
  saved, so what is served featurizes exactly as what was scored (the original fitted a scaler in a
  notebook and lost it);
- the confusion matrix always has both labels, and 0/0 ratios are 0.0 instead of NaN;
- odd points that coincide with a real object of the same class are dropped, so no row carries
  both labels.

Features are ``[class, length, width]`` (class one-hot over the classes seen, sizes in mm, scaled);
the target is ``odd`` (1 = malicious / odd, 0 = a real object).

Example::

    >>> from vigil.metrics import confusion_ratios
    >>> detector = Detector.from_folder(Path("data/iot_anomaly"), odd_points=1000, seed=0)
    >>> matrix, seconds, model = detector.classify(make_estimator("adaboost"))
    >>> round(confusion_ratios(matrix)["f1"], 2)
    0.99
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
from sklearn.model_selection import ParameterGrid, StratifiedKFold, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from vigil.errors import InvalidInput
from vigil.metrics import binary_confusion, confusion_ratios
from vigil.tasks.iot_anomaly.data import COLUMNS, OddPointBox, load_objects


# -- estimators and their default grids -------------------------------------------------------
@dataclass(frozen=True)
class EstimatorSpec:
    key: str  # CLI name
    factory: Callable[[int], Any]  # seed -> unfitted estimator
    grid: dict  # default tuning grid, estimator parameter names
    # Parameters `vigil iot-anomaly train` uses: the best cross-validated F1 of our tuning run
    # (`vigil iot-anomaly tune --estimators mlp,adaboost,forest,svc`, seed 0; see the README).
    best: dict = field(default_factory=dict)
    # The configuration the original's report scored (report.tex tables of optimal parameters, the
    # classifiers of main.ipynb), in today's parameter names.
    published: dict = field(default_factory=dict)

    @property
    def class_name(self) -> str:
        return type(self.factory(0)).__name__


ESTIMATORS: dict[str, EstimatorSpec] = {
    "adaboost": EstimatorSpec(
        "adaboost",
        lambda seed: AdaBoostClassifier(estimator=DecisionTreeClassifier(max_depth=3), random_state=seed),
        {
            "estimator__max_depth": [2, 3, 4, 6, 8],
            "n_estimators": [10, 25, 46, 75, 100],
            "learning_rate": [0.1, 0.3, 0.6, 1.0],
        },
        best={"estimator__max_depth": 4, "n_estimators": 46, "learning_rate": 0.6},
        published={"estimator__max_depth": 3, "n_estimators": 46, "learning_rate": 0.3},
    ),
    "forest": EstimatorSpec(
        "forest",
        lambda seed: RandomForestClassifier(random_state=seed, n_jobs=1),
        {"n_estimators": [10, 50, 100, 200], "max_depth": [None, 5, 10, 20], "min_samples_leaf": [1, 2, 5]},
        best={"n_estimators": 200, "max_depth": None, "min_samples_leaf": 1},
        # RandomForestClassifier() with the defaults of the scikit-learn 0.19.1 the original pinned
        published={"n_estimators": 10},
    ),
    "mlp": EstimatorSpec(
        "mlp",
        lambda seed: MLPClassifier(max_iter=500, random_state=seed),
        {
            "hidden_layer_sizes": [(p,) * k for k in (1, 2, 3) for p in (5, 10, 25, 50)],
            "activation": ["identity", "logistic", "tanh", "relu"],
            "solver": ["lbfgs", "adam"],
            "alpha": [1e-4, 1e-5],
        },
        best={"hidden_layer_sizes": (50, 50), "activation": "tanh", "solver": "adam", "alpha": 1e-4},
        published={
            "hidden_layer_sizes": (28, 28, 28),
            "activation": "tanh",
            "solver": "lbfgs",
            "alpha": 1e-6,
            "learning_rate": "constant",
            "max_iter": 200,
        },
    ),
    "svc": EstimatorSpec(
        "svc",
        lambda seed: LinearSVC(random_state=seed),
        {"C": [0.01, 0.1, 1.0, 10.0, 100.0]},
        best={"C": 0.01},
        published={"penalty": "l1", "dual": False, "multi_class": "crammer_singer", "C": 100.0, "tol": 1e-5},
    ),
}


def estimator_spec(key: str) -> EstimatorSpec:
    try:
        return ESTIMATORS[key]
    except KeyError:
        raise InvalidInput(f"unknown estimator '{key}'", {"known": list(ESTIMATORS)}) from None


def make_estimator(key: str, seed: int = 0, params: dict | None = None):
    spec = estimator_spec(key)
    estimator = spec.factory(seed)
    return estimator.set_params(**resolve_params(estimator, spec.best if params is None else params))


def resolve_param_name(estimator, key: str) -> str:
    """The parameter of ``estimator`` that ``key`` names, accepting the original's spellings.

    ``max_depth`` for AdaBoost is its trees' ``estimator__max_depth``, and ``base_estimator__X``
    (scikit-learn < 1.2, the original's name) is ``estimator__X``. Any other key the estimator
    does not have is an ``InvalidInput`` naming it and the parameters it does have.
    """
    known = estimator.get_params(deep=True)
    if key in known:
        return key
    candidates = [f"estimator__{key}"]
    if key.startswith("base_estimator__"):
        candidates.insert(0, "estimator__" + key.removeprefix("base_estimator__"))
    for candidate in candidates:
        if candidate in known:
            return candidate
    name = type(estimator).__name__
    own = sorted(k for k in known if "__" not in k and k != "estimator")
    nested = sorted(k.removeprefix("estimator__") for k in known if k.startswith("estimator__"))
    hint = f"; its trees': {', '.join(nested)}" if nested else ""
    raise InvalidInput(f"unknown parameter '{key}' for {name}; its parameters: {', '.join(own)}{hint}")


def resolve_params(estimator, params: dict) -> dict:
    """``params`` with every key resolved by ``resolve_param_name`` (unknown keys are an error)."""
    resolved: dict = {}
    for key, value in params.items():
        name = resolve_param_name(estimator, key)
        if name in resolved:
            raise InvalidInput(f"parameter '{key}' of {type(estimator).__name__} is given twice (as '{name}')")
        resolved[name] = value
    return resolved


def resolve_grid(estimator, grid: dict) -> dict:
    """A tuning grid with resolved parameter names; each value must be a list of candidates."""
    for key, values in grid.items():
        if not isinstance(values, (list, tuple)) or not len(values):
            raise InvalidInput(
                f"grid parameter '{key}' of {type(estimator).__name__} needs a non-empty list of values, not {values!r}"
            )
    return {name: list(values) for name, values in resolve_params(estimator, grid).items()}


# -- the detector -----------------------------------------------------------------------------
@dataclass
class TuningRow:
    """One scored parameter combination: ratios of the pooled cross-validation confusion matrix."""

    estimator: str  # estimator class name
    params: dict  # the grid's parameters of this combination
    scores: dict  # tpr fpr tnr fnr ppv f1 t (t: prediction seconds, summed over the folds)
    folds: list[dict] = field(default_factory=list)  # the same ratios (and t) of each fold, in fold order
    all_params: dict = field(default_factory=dict)  # estimator.get_params(deep=True) of this combination


@dataclass
class TuningResult:
    best_model: Pipeline | None
    best_params: dict | None
    best_f1: float
    rows: list[TuningRow]


class Detector:
    def __init__(self, objects: pd.DataFrame):
        """``objects``: DataFrame with columns class, length, width (mm) of real objects."""
        missing = [c for c in COLUMNS if c not in objects.columns]
        if missing:
            raise InvalidInput("objects table lacks columns", {"missing": missing})
        frame = objects[COLUMNS].copy()
        frame["class"] = frame["class"].astype(str)
        frame = frame.dropna()
        frame["duplicate"] = frame.duplicated(keep=False)  # kept for plots (original drew them apart)
        frame = frame.drop_duplicates(subset=COLUMNS).reset_index(drop=True)
        frame["odd"] = 0
        self.df = frame
        self.classes: list[str] = list(dict.fromkeys(frame["class"]))
        self.box = OddPointBox.around(frame)
        self.seed: int | None = None
        self.xtrain = self.xtest = self.ytrain = self.ytest = None

    @classmethod
    def from_folder(cls, folder: Path | str, odd_points: int = 1000, seed: int = 0, test_size: float = 0.5):
        detector = cls(load_objects(folder))
        detector.add_random_odd_points(odd_points, seed=seed)
        detector.format(seed=seed, test_size=test_size)
        return detector

    # -- data ---------------------------------------------------------------------------------
    def append_odd_points(self, points: Iterable) -> int:
        """Add odd points (rows of class, length, width, or a DataFrame); returns how many were kept."""
        odd = points.copy() if isinstance(points, pd.DataFrame) else pd.DataFrame(list(points), columns=COLUMNS)
        odd = odd[COLUMNS].dropna()
        odd["class"] = odd["class"].astype(str)
        odd["length"] = odd["length"].astype(float)
        odd["width"] = odd["width"].astype(float)
        real_keys = set(map(tuple, self.df.loc[self.df["odd"] == 0, COLUMNS].itertuples(index=False)))
        odd = odd[[tuple(row) not in real_keys for row in odd.itertuples(index=False)]]
        odd = odd.drop_duplicates().assign(duplicate=False, odd=1)
        self.df = pd.concat([self.df, odd], ignore_index=True).drop_duplicates(subset=[*COLUMNS, "odd"])
        self.df = self.df.reset_index(drop=True)
        return len(odd)

    def add_random_odd_points(self, count: int = 1000, seed: int | None = 0) -> int:
        return self.append_odd_points(self.box.sample(self.classes, count, seed=seed))

    def format(self, seed: int = 0, test_size: float = 0.5) -> None:
        """Stratified split (by class and odd flag) into disjoint training and test halves."""
        self.seed = seed
        strata = self.df["class"] + "/" + self.df["odd"].astype(str)
        train, test = train_test_split(self.df, test_size=test_size, random_state=seed, stratify=strata)
        self.xtrain, self.ytrain = train[COLUMNS].reset_index(drop=True), train["odd"].to_numpy()
        self.xtest, self.ytest = test[COLUMNS].reset_index(drop=True), test["odd"].to_numpy()

    def _require_split(self):
        if self.xtrain is None:
            raise RuntimeError("call format() (or use Detector.from_folder) before fitting")

    # -- models -------------------------------------------------------------------------------
    def pipeline(self, estimator) -> Pipeline:
        features = ColumnTransformer(
            [
                ("class", OneHotEncoder(categories=[self.classes], handle_unknown="error"), ["class"]),
                ("size", StandardScaler(), ["length", "width"]),
            ]
        )
        return Pipeline([("features", features), ("clf", estimator)])

    def classify(self, clf, verbose: bool = False):
        """Fit ``clf`` (in the pipeline) on the training half; returns (confusion matrix, seconds, model)."""
        self._require_split()
        start = time.perf_counter()
        model = self.pipeline(clone(clf)).fit(self.xtrain, self.ytrain)
        predicted = model.predict(self.xtest)
        matrix = binary_confusion(self.ytest, predicted)
        seconds = time.perf_counter() - start
        if verbose:
            print(f"computation time: {seconds:.2f}s")
        return matrix, seconds, model

    def tune_parameters(
        self, clf, grid: dict, cv: int = 5, n_jobs: int = 1, on_row: Callable[[TuningRow], None] | None = None
    ) -> TuningResult:
        """Cross-validated grid search on the training half, scored by F1; refits the best.

        Each combination is scored on the confusion matrix pooled over ``cv`` stratified folds
        (each fold's own ratios are in ``TuningRow.folds``). Grid keys are resolved by
        ``resolve_param_name`` (AdaBoost's ``max_depth`` is its trees'; unknown keys are an error).
        ``on_row`` is called in this process as soon as a combination is scored (in completion
        order), so a caller can write rows while the search runs and keep them if it is stopped.
        """
        self._require_split()
        combos = list(ParameterGrid(resolve_grid(clf, grid)))
        folds = list(
            StratifiedKFold(n_splits=cv, shuffle=True, random_state=self.seed or 0).split(self.xtrain, self.ytrain)
        )
        base = self.pipeline(clone(clf))
        name = type(clf).__name__
        rows: list[TuningRow] = []
        best_f1, best_params = -1.0, None
        results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(_score_combination)(base, params, self.xtrain, self.ytrain, folds) for params in combos
        )
        for params, scores, fold_scores in results:
            row = TuningRow(name, params, scores, fold_scores, clone(clf).set_params(**params).get_params(deep=True))
            rows.append(row)
            if on_row is not None:
                on_row(row)
            if scores["f1"] > best_f1:
                best_f1, best_params = scores["f1"], params
        best_model = None
        if best_params is not None:
            best_model = clone(base).set_params(**_prefixed(best_params)).fit(self.xtrain, self.ytrain)
        return TuningResult(best_model, best_params, best_f1, rows)

    def evaluate(self, model) -> dict:
        """Ratios of ``model`` on the test half, plus the confusion matrix and prediction seconds."""
        self._require_split()
        start = time.perf_counter()
        predicted = model.predict(self.xtest)
        seconds = time.perf_counter() - start
        matrix = binary_confusion(self.ytest, predicted)
        return {**confusion_ratios(matrix), "t": seconds, "confusion_matrix": matrix.tolist()}

    # -- pictures -----------------------------------------------------------------------------
    def plot(self, path: Path | str) -> Path:
        """The data set as a PNG (real objects and odd points, per class)."""
        from vigil.tasks.iot_anomaly.plots import plot_dataset

        return plot_dataset(self.df, Path(path))

    def plot_decision_boundaries(self, model, folder: Path | str, title: str = "") -> list[Path]:
        """One PNG per class: ``model``'s probability of odd over the odd-point box, with the points."""
        from vigil.tasks.iot_anomaly.plots import plot_decision_boundaries

        return plot_decision_boundaries(model, self.classes, self.box, Path(folder), points=self.df, title=title)


def _prefixed(params: dict) -> dict:
    return {f"clf__{key}": value for key, value in params.items()}


def _score_combination(
    base: Pipeline, params: dict, x: pd.DataFrame, y: np.ndarray, folds
) -> tuple[dict, dict, list[dict]]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    matrix = np.zeros((2, 2), dtype=int)
    predict_seconds = 0.0
    fold_scores = []
    with warnings.catch_warnings():
        # Grids deliberately include settings that do not converge; their score says so.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for train_index, test_index in folds:
            model = clone(base).set_params(**_prefixed(params)).fit(x.iloc[train_index], y[train_index])
            start = time.perf_counter()
            predicted = model.predict(x.iloc[test_index])
            seconds = time.perf_counter() - start
            predict_seconds += seconds
            fold_matrix = binary_confusion(y[test_index], predicted)
            matrix += fold_matrix
            fold_scores.append({**confusion_ratios(fold_matrix), "t": seconds})
    return params, {**confusion_ratios(matrix), "t": predict_seconds}, fold_scores
