"""LightGBM as the tasks configure it when they bag: one place for the settings they share.

:func:`bagged_lightgbm` is an ``LGBMClassifier`` that draws 80% of the rows (every iteration) and
80% of the columns for each tree, seeded and silent; a task gives the size of the model (trees,
learning rate, leaves) and anything of its own (``class_weight``, ``reg_lambda``). LightGBM is
imported on first use (never at ``vigil --help``).

>>> bagged_lightgbm(300, 0.05, 15, class_weight="balanced").get_params()["subsample_freq"]
1
"""

from __future__ import annotations

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


__all__ = ["bagged_lightgbm"]
