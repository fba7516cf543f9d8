"""ychalier/anomaly's scripts against Vigil: the files `process_output.py` reads, the production `classify`.

What their scripts read and write is replayed here, not their code: `beautify.py`'s layout of
`params-<timestamp>.scores.csv` (one row per scored fold, `;`, `id;tpr;fpr;tnr;fnr;ppv;f1;t`) and
`params-<timestamp>.params.<Estimator>.csv` (`id`, every `get_params(deep=True)` key, `estimator`);
the columns `process_output.py` parses for its `mlp` and `ada` plots, paired row by row with the
scores; the README's production `classify(class_, length, width)` and its answers in `main.ipynb`;
and the report's table of scores with the configurations it states.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from vigil.cli import main as vigil_main

matplotlib.use("Agg")
# tiny grids on purpose: MLPs that stop at max_iter are expected
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SCORES_HEADER = "id;tpr;fpr;tnr;fnr;ppv;f1;t"
# process_output.py's colour tables: every value in the params file must be one of their keys
ACTIVATIONS = {"identity", "logistic", "tanh", "relu"}
SOLVERS = {"lbfgs", "sgd", "adam"}
LEARNING_RATES = {"constant", "invscaling", "adaptive"}


def tune(tmp_path: Path, estimator: str, grid: dict, cv: int) -> tuple[Path, Path]:
    """`vigil iot-anomaly tune --per-fold` for one estimator; (scores file, params file)."""
    out = tmp_path / estimator
    assert (
        vigil_main(
            [
                "--models-dir",
                str(tmp_path / "models"),
                "iot-anomaly",
                "tune",
                "--estimators",
                estimator,
                "--grid",
                json.dumps({estimator: grid}),
                "--cv",
                str(cv),
                "--per-fold",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    (scores,) = out.glob("params-*.scores.csv")
    (params,) = out.glob(f"{scores.name.removesuffix('.scores.csv')}.params.*.csv")
    return scores, params


def count_layers(cell: str) -> int:  # what process_output.py computes from hidden_layer_sizes
    return 0 if len(cell) == 2 else len([int(x) for x in cell[1:-1].split(",")])


def layer_size(cell: str) -> int:
    return 0 if len(cell) == 2 else int(cell[1:-1].split(",")[0])


def assert_beautify_layout(scores_path: Path, params_path: Path, rows: int, cv: int, estimator: str):
    scores_lines = scores_path.read_text().splitlines()
    params_lines = params_path.read_text().splitlines()
    assert scores_lines[0] == SCORES_HEADER
    header = params_lines[0].split(";")
    assert header[0] == "id" and "estimator" in header
    assert len(scores_lines) == len(params_lines) == 1 + rows
    scores = pd.read_csv(scores_path, sep=";")
    params = pd.read_csv(params_path, sep=";")
    # one row per fold, each with its own id, paired by position as process_output.py pairs them
    assert scores["id"].tolist() == params["id"].tolist() == list(range(rows))
    assert (params["estimator"] == estimator).all()
    assert scores[["tpr", "fpr", "tnr", "fnr", "ppv", "f1"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (scores["t"] >= 0).all()
    # the cv rows of one combination repeat its parameters
    grid_columns = [c for c in params.columns if c != "id"]
    combos = params[grid_columns].map(str).agg(";".join, axis=1)
    assert (combos.groupby(combos).size() == cv).all() and combos.nunique() == rows // cv
    return scores, params


def scatter3d(path: Path, x, y, z, colours) -> None:
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(4, 4))
    axis = figure.add_subplot(111, projection="3d")
    axis.scatter(x, y, z, c=colours)  # raises when the params and scores columns do not pair up
    figure.savefig(path)
    plt.close(figure)
    assert path.stat().st_size > 1000


def test_mlp_files_are_what_process_output_plots(tmp_path):
    grid = {
        "hidden_layer_sizes": [[5], [5, 5]],
        "activation": ["tanh", "relu"],
        "solver": ["lbfgs"],
        "alpha": [1e-4],
        "max_iter": [60],
    }
    scores_path, params_path = tune(tmp_path, "mlp", grid, cv=2)
    scores, params = assert_beautify_layout(scores_path, params_path, rows=4 * 2, cv=2, estimator="MLPClassifier")
    assert {
        "hidden_layer_sizes",
        "activation",
        "solver",
        "alpha",
        "learning_rate",
        "max_iter",
        "batch_size",
        "momentum",
        "random_state",
    } <= set(params.columns)  # every MLPClassifier parameter
    # process_output.py mlp: layers from the "[5, 5]" cells, alpha as float, colours by name
    params["hidden_layer_count"] = params["hidden_layer_sizes"].map(count_layers)
    params["hidden_layer_size"] = params["hidden_layer_sizes"].map(layer_size)
    assert sorted(set(zip(params["hidden_layer_count"], params["hidden_layer_size"]))) == [(1, 5), (2, 5)]
    assert set(params["alpha"].map(float)) == {1e-4}
    assert set(params["activation"]) <= ACTIVATIONS and set(params["solver"]) <= SOLVERS
    assert set(params["learning_rate"]) <= LEARNING_RATES
    colours = {"tanh": "blue", "relu": "black"}
    scatter3d(
        tmp_path / "mlp_activation.png",
        params["hidden_layer_size"],
        params["hidden_layer_count"],
        scores["f1"],
        [colours[a] for a in params["activation"]],
    )


def test_adaboost_files_are_what_process_output_plots_with_the_max_depth_key(tmp_path):
    # `max_depth`, as one says it of AdaBoost's trees (scikit-learn names it estimator__max_depth)
    grid = {"max_depth": [2, 3], "n_estimators": [5, 10], "learning_rate": [0.3]}
    scores_path, params_path = tune(tmp_path, "adaboost", grid, cv=2)
    scores, params = assert_beautify_layout(scores_path, params_path, rows=4 * 2, cv=2, estimator="AdaBoostClassifier")
    # process_output.py ada reads the trees' depth under scikit-learn 0.19's name
    depth = params["base_estimator__max_depth"].map(int)
    assert depth.tolist() == params["estimator__max_depth"].tolist() and set(depth) == {2, 3}
    assert set(params["learning_rate"].map(float)) == {0.3}
    assert set(params["n_estimators"].map(int)) == {5, 10}
    palette = {k: (k / 10, 0.2, 0.5) for k in range(min(depth), max(depth) + 1)}
    scatter3d(
        tmp_path / "adaboost_depth.png",
        params["learning_rate"].map(float),
        params["n_estimators"].map(int),
        scores["f1"],
        [palette[d] for d in depth],
    )


def test_production_classify_answers_the_originals_strings(tmp_path, monkeypatch):
    models = tmp_path / "models"
    assert vigil_main(["--models-dir", str(models), "iot-anomaly", "train", "--no-plots"]) == 0
    monkeypatch.setenv("VIGIL_MODELS_DIR", str(models))  # where their script's model lives
    from vigil.tasks.iot_anomaly import classify

    # main.ipynb's two examples and the answers it printed (its spelling: "non-malicous")
    assert classify("moto", 6000, 1000) == "malicious"
    assert classify("car", 5000, 2000) == "non-malicous"
    assert classify("human", 930.0, 1080.0, models_dir=models) == "non-malicous"
    with pytest.raises(ValueError, match="unknown class 'plane'"):
        classify("plane", 4000, 1000)
    with pytest.raises(ValueError, match="width"):
        classify("car", 4000, "wide")


def test_compare_states_the_reports_configurations_and_scores():
    from vigil.tasks.iot_anomaly.detector import ESTIMATORS
    from vigil.tasks.iot_anomaly.task import PUBLISHED

    # report.tex: "Tableau récapitulatif des performances des classeurs" (TPR FPR TNR FNR PPV f1)
    report = {
        "mlp": (0.5677, 0.0053, 0.9947, 0.4323, 0.9493, 0.7105),
        "adaboost": (0.9354, 0.0103, 0.9897, 0.0646, 0.9411, 0.9382),
        "svc": (0.9657, 1.0, 0.0, 0.0343, 0.1446, 0.2515),
        "forest": (0.9172, 0.0067, 0.9933, 0.0828, 0.9598, 0.938),
    }
    for key, values in report.items():
        assert tuple(PUBLISHED[key][r] for r in ("tpr", "fpr", "tnr", "fnr", "ppv", "f1")) == values
    # the classifiers main.ipynb scored, "tuned thanks to parameters.py"
    assert ESTIMATORS["mlp"].published == {
        "hidden_layer_sizes": (28, 28, 28),
        "activation": "tanh",
        "solver": "lbfgs",
        "alpha": 1e-6,
        "learning_rate": "constant",
        "max_iter": 200,
    }
    assert ESTIMATORS["svc"].published == {
        "penalty": "l1",
        "dual": False,
        "multi_class": "crammer_singer",
        "C": 100.0,
        "tol": 1e-5,
    }
    assert ESTIMATORS["adaboost"].published == {"estimator__max_depth": 3, "n_estimators": 46, "learning_rate": 0.3}
    assert ESTIMATORS["forest"].published == {"n_estimators": 10}  # RandomForestClassifier() of sklearn 0.19.1
