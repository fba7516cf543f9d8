"""Score files of a tuning run, in the original's format, written row by row, and their plots.

``params-<timestamp>.scores.csv``: ``;``-separated, header ``id;tpr;fpr;tnr;fnr;ppv;f1;t``.
``params-<timestamp>.params.<Estimator>.csv``: ``;``-separated, ``id`` then every parameter of the
estimator (``get_params(deep=True)``) and an ``estimator`` column with its class name, as the
original's ``beautify.py`` wrote them; AdaBoost's tree parameters ``estimator__X`` are also written
under their scikit-learn < 1.2 names ``base_estimator__X``, which the original's
``process_output.py`` reads. ``id`` is shared: row ``id`` of the scores file was scored with row
``id`` of one estimator's params file.

One row per parameter combination (ratios of the confusion matrix pooled over the folds, ``t`` the
prediction seconds summed over them), or with ``per_fold=True`` one row per fold, as the original's
scorer logged them (each fold its own ``id``, its combination's parameters repeated). Rows are
flushed as soon as they are scored, so an interrupted run keeps every row already scored.

Example::

    writer = ScoreFiles(Path("runs/iot_anomaly"), per_fold=True)
    detector.tune_parameters(clf, grid, on_row=writer.write)
    writer.close(); plot_scores(writer.scores_path, writer.params_paths.values(), Path("runs/iot_anomaly"))
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pandas as pd

from vigil.files import read_csv_checked
from vigil.metrics import RATIO_NAMES
from vigil.tasks.iot_anomaly.detector import TuningRow

SCORE_HEADER = ["id", *RATIO_NAMES, "t"]


def _cell(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"  # the original wrote layer sizes as lists
    return str(value)


def params_record(row: TuningRow) -> dict:
    """The original's params row: every estimator parameter, ``estimator`` = the class name (for
    AdaBoost it stands where its tree parameter was), and ``base_estimator__X`` aliases."""
    record = dict(row.all_params or row.params)
    record["estimator"] = row.estimator
    for key, value in list(record.items()):
        if key.startswith("estimator__"):
            record.setdefault("base_estimator__" + key.removeprefix("estimator__"), value)
    return record


class ScoreFiles:
    def __init__(self, folder: Path, timestamp: str | None = None, per_fold: bool = False):
        self.folder = Path(folder)
        self.per_fold = per_fold
        self.folder.mkdir(parents=True, exist_ok=True)
        self.timestamp = timestamp or time.strftime("%Y-%m-%d-%H-%M-%S")
        self.stem = f"params-{self.timestamp}"
        self.scores_path = self.folder / f"{self.stem}.scores.csv"
        self.params_paths: dict[str, Path] = {}
        self.grid_params: dict[str, list[str]] = {}  # estimator -> the parameters its grid varied
        self._handles: dict[str, tuple] = {}
        self._next_id = 0
        self._scores = self._open(self.scores_path, SCORE_HEADER)

    def _open(self, path: Path, header: list[str]):
        handle = open(path, "w", newline="", encoding="utf-8")
        writer = csv.writer(handle, delimiter=";", lineterminator="\n")
        writer.writerow(header)
        handle.flush()
        return handle, writer, header

    def write(self, row: TuningRow) -> int:
        """Write a scored combination (one row, or one per fold); returns its first ``id``."""
        record = params_record(row)
        if row.estimator not in self._handles:
            path = self.folder / f"{self.stem}.params.{row.estimator}.csv"
            self.params_paths[row.estimator] = path
            self.grid_params[row.estimator] = list(row.params)
            self._handles[row.estimator] = self._open(path, ["id", *record])
        params_handle, params_writer, header = self._handles[row.estimator]
        scores_handle, scores_writer, _ = self._scores
        first = self._next_id
        for scores in row.folds if self.per_fold and row.folds else [row.scores]:
            row_id = self._next_id
            self._next_id += 1
            params_writer.writerow([row_id, *(_cell(record.get(name, "")) for name in header[1:])])
            scores_writer.writerow([row_id, *(_cell(float(scores[name])) for name in SCORE_HEADER[1:])])
        params_handle.flush()
        scores_handle.flush()
        return first

    def close(self) -> None:
        for handle, _, _ in [self._scores, *self._handles.values()]:
            handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_scores(scores_path: Path, params_path: Path) -> pd.DataFrame:
    """Join one estimator's params file with the scores file on ``id``."""
    scores = read_csv_checked(scores_path, ["id"], what="scores file", sep=";")
    params = read_csv_checked(params_path, ["id"], what="params file", sep=";", dtype=str, keep_default_na=False)
    params["id"] = params["id"].astype(int)
    return params.merge(scores, on="id")


def plot_scores(
    scores_path: Path, params_paths, folder: Path, metric: str = "f1", parameters: dict[str, list[str]] | None = None
) -> list[Path]:
    """One PNG per (estimator, parameter): the score of every row against that parameter, with the
    best score reached at each value drawn as a line.

    ``parameters`` maps an estimator's class name to the parameters to plot (``ScoreFiles.grid_params``);
    without it, every parameter that takes more than one value in the file is plotted.
    """
    from vigil.plotting import pyplot, save_figure

    plt = pyplot()

    written = []
    for params_path in params_paths:
        estimator = Path(params_path).name.split(".params.")[1].removesuffix(".csv")
        table = read_scores(Path(scores_path), Path(params_path))
        if table.empty:
            continue
        if parameters and estimator in parameters:
            plotted = [p for p in parameters[estimator] if p in table.columns]
        else:
            plotted = [
                c
                for c in pd.read_csv(params_path, sep=";", nrows=0).columns
                if c not in ("id", "estimator") and not c.startswith("base_estimator__") and table[c].nunique() > 1
            ]
        for parameter in plotted:
            values = table[parameter]
            numeric = pd.to_numeric(values.replace({"None": None}), errors="coerce")
            is_numeric = numeric.notna().all()
            if is_numeric:
                positions, labels = numeric, None
            else:
                labels = sorted(values.unique(), key=lambda v: (len(v), v))
                positions = values.map({label: i for i, label in enumerate(labels)})
            fig, ax = plt.subplots(figsize=(7, 4.5))
            ax.scatter(positions, table[metric], alpha=0.4, s=14, label="each combination")
            best = table.assign(_x=positions).groupby("_x")[metric].max().sort_index()
            ax.plot(best.index, best.to_numpy(), color="C3", marker="o", label="best at this value")
            if labels is not None:
                ax.set_xticks(
                    range(len(labels)),
                    labels,
                    rotation=45 if len(labels) > 6 else 0,
                    ha="right" if len(labels) > 6 else "center",
                    fontsize=8,
                )
            ax.set_xlabel(parameter)
            ax.set_ylabel(f"{metric} (cross-validated, {len(table)} rows)")
            ax.set_title(f"{estimator}: {metric} against {parameter}")
            ax.grid(alpha=0.3)
            ax.legend(loc="lower right", fontsize=8)
            path = Path(folder) / f"{Path(scores_path).name.removesuffix('.scores.csv')}.{estimator}.{parameter}.png"
            written.append(save_figure(fig, path, dpi=100))
    return written
