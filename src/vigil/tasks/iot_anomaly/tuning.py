"""Score files of a tuning run, in the original's format, written row by row, and their plots.

``params-<timestamp>.scores.csv``: ``;``-separated, header ``id;tpr;fpr;tnr;fnr;ppv;f1;t``.
``params-<timestamp>.params.<Estimator>.csv``: ``;``-separated, ``id`` then one column per grid
parameter. ``id`` is shared: row ``id`` of the scores file was scored with row ``id`` of one
estimator's params file. Rows are flushed as soon as they are scored, so an interrupted run keeps
every row already scored.

Example::

    >>> writer = ScoreFiles(Path("runs/iot_anomaly"))            # doctest: +SKIP
    >>> detector.tune_parameters(clf, grid, on_row=writer.write)
    >>> writer.close(); plot_scores(writer.scores_path, writer.params_paths.values(), Path("runs/iot_anomaly"))
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pandas as pd

from vigil.tasks.iot_anomaly.detector import RATIO_NAMES, TuningRow

SCORE_HEADER = ["id", *RATIO_NAMES, "t"]


def _cell(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"  # the original wrote layer sizes as lists
    return str(value)


class ScoreFiles:
    def __init__(self, folder: Path, timestamp: str | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.timestamp = timestamp or time.strftime("%Y-%m-%d-%H-%M-%S")
        self.stem = f"params-{self.timestamp}"
        self.scores_path = self.folder / f"{self.stem}.scores.csv"
        self.params_paths: dict[str, Path] = {}
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
        row_id = self._next_id
        self._next_id += 1
        if row.estimator not in self._handles:
            path = self.folder / f"{self.stem}.params.{row.estimator}.csv"
            self.params_paths[row.estimator] = path
            self._handles[row.estimator] = self._open(path, ["id", *sorted(row.params)])
        handle, writer, header = self._handles[row.estimator]
        writer.writerow([row_id, *(_cell(row.params.get(name, "")) for name in header[1:])])
        handle.flush()
        handle, writer, _ = self._scores
        writer.writerow([row_id, *(_cell(float(row.scores[name])) for name in SCORE_HEADER[1:])])
        handle.flush()
        return row_id

    def close(self) -> None:
        for handle, _, _ in [self._scores, *self._handles.values()]:
            handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_scores(scores_path: Path, params_path: Path) -> pd.DataFrame:
    """Join one estimator's params file with the scores file on ``id``."""
    scores = pd.read_csv(scores_path, sep=";")
    params = pd.read_csv(params_path, sep=";", dtype=str, keep_default_na=False)
    params["id"] = params["id"].astype(int)
    return params.merge(scores, on="id")


def plot_scores(scores_path: Path, params_paths, folder: Path, metric: str = "f1") -> list[Path]:
    """One PNG per (estimator, parameter): the score of every combination against that parameter,
    with the best score reached at each value drawn as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for params_path in params_paths:
        estimator = Path(params_path).name.split(".params.")[1].removesuffix(".csv")
        table = read_scores(Path(scores_path), Path(params_path))
        if table.empty:
            continue
        for parameter in [c for c in pd.read_csv(params_path, sep=";", nrows=0).columns if c != "id"]:
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
                ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 6 else 0, ha="right"
                              if len(labels) > 6 else "center", fontsize=8)
            ax.set_xlabel(parameter)
            ax.set_ylabel(f"{metric} (cross-validated, {len(table)} combinations)")
            ax.set_title(f"{estimator}: {metric} against {parameter}")
            ax.grid(alpha=0.3)
            ax.legend(loc="lower right", fontsize=8)
            fig.tight_layout()
            path = Path(folder) / f"{Path(scores_path).name.removesuffix('.scores.csv')}.{estimator}.{parameter}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
    return written
