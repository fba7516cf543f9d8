"""LightGBM as the tasks configure it when they bag: one place for the settings they share.

:func:`bagged_lightgbm` is an ``LGBMClassifier`` that draws 80% of the rows (every iteration) and
80% of the columns for each tree, seeded and silent; a task gives the size of the model (trees,
learning rate, leaves) and anything of its own (``class_weight``, ``reg_lambda``). LightGBM is
imported on first use (never at ``vigil --help``). :func:`positive_probability` scores a fitted
classifier on the threads of the deployment (:func:`process_threads`), not those of its training run.

>>> bagged_lightgbm(300, 0.05, 15, class_weight="balanced").get_params()["subsample_freq"]
1
"""

from __future__ import annotations

import functools
from typing import Any


def bagged_lightgbm(n_estimators: int, learning_rate: float, num_leaves: int, n_jobs: int = 1, **options: Any) -> Any:
    """An unfitted ``LGBMClassifier``: rows and columns subsampled at 0.8, ``random_state=0``,
    ``min_child_samples=20``, no log output; ``options`` add to (or override) these."""
    from lightgbm import LGBMClassifier

    settings: dict[str, Any] = {
        "min_child_samples": 20,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "random_state": 0,
        "verbose": -1,
        **options,
    }
    return LGBMClassifier(
        n_estimators=n_estimators, learning_rate=learning_rate, num_leaves=num_leaves, n_jobs=n_jobs, **settings
    )


@functools.cache
def process_threads() -> int:
    """The threads a bare ``Booster.predict`` runs on in this process: the size of LightGBM's OpenMP
    pool, i.e. the cores unless OMP_NUM_THREADS says fewer (gunicorn_conf and ``vigil serve`` give
    each worker 1, so the workers share the cores). LightGBM's scorers run on exactly that many
    (ONNX Runtime and the classifier alike), whatever ``n_jobs`` the model was trained with: the
    deployment sets the thread budget, not the training run. Asked once per process (threadpoolctl, ~10 ms)."""
    import lightgbm  # noqa: F401  (loads the OpenMP runtime whose pool is asked about)
    from threadpoolctl import threadpool_info

    sizes = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "openmp"]
    return max(1, min(sizes)) if sizes else 1


def positive_probability(classifier: Any, X: Any) -> Any:
    """P(class 1) per row of ``X`` by a fitted binary classifier: ``predict_proba``'s second column.
    A binary ``LGBMClassifier``'s is its Booster's own output, so the Booster is asked directly, on
    :func:`process_threads` threads: the scikit-learn wrapper's checks cost ~1 ms a call, and a model
    trained with ``n_jobs=1`` would score on one core of two (a DNS window of 1,000 rows: 2.1 ms
    this way, 3.9 ms through ``predict_proba``). Prediction parameters set on the classifier itself
    (``pred_early_stop`` and the like), which ``predict_proba`` would pass on, are not: none of
    Vigil's models sets any."""
    if (
        type(classifier).__module__.startswith("lightgbm.")
        and len(getattr(classifier, "classes_", ())) == 2
        and not callable(classifier.objective)
    ):
        return classifier.booster_.predict(X, num_threads=process_threads())
    return classifier.predict_proba(X)[:, 1]


__all__ = ["bagged_lightgbm", "positive_probability", "process_threads"]
