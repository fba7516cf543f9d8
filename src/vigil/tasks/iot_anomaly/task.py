"""The ``iot_anomaly`` task: default training, the comparison table, and ``POST /predict/iot-anomaly``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from vigil.artifacts import ArtifactStore, LoadedModel, data_fingerprint
from vigil.config import Settings
from vigil.errors import InvalidInput, UnprocessableInput, too_many_rows
from vigil.tasks.base import PredictInput, Task

# scikit-learn and pandas are imported on first use (detector.py, plots.py), so `vigil --help` starts fast.
FEATURE_VERSION = "class-onehot+length+width-mm/v1"
MALICIOUS, NON_MALICIOUS = "malicious", "non-malicious"

# The original's published scores on one split of its data (report.tex "Tableau récapitulatif des
# performances des classeurs", the output of main.ipynb), each with the configuration in
# detector.ESTIMATORS[...].published.
PUBLISHED = {
    "adaboost": {"tpr": 0.9354, "fpr": 0.0103, "tnr": 0.9897, "fnr": 0.0646, "ppv": 0.9411, "f1": 0.9382},
    "forest": {"tpr": 0.9172, "fpr": 0.0067, "tnr": 0.9933, "fnr": 0.0828, "ppv": 0.9598, "f1": 0.938},
    "mlp": {"tpr": 0.5677, "fpr": 0.0053, "tnr": 0.9947, "fnr": 0.4323, "ppv": 0.9493, "f1": 0.7105},
    "svc": {"tpr": 0.9657, "fpr": 1.0, "tnr": 0.0, "fnr": 0.0343, "ppv": 0.1446, "f1": 0.2515},
}


class IotAnomalyTask(Task):
    name = "iot_anomaly"
    slug = "iot-anomaly"
    title = "IoT anomalies: is this (class, length, width) reading an odd object?"
    # tasks/iot_anomaly/requests.py, imported on first use (pydantic): the OpenAPI body and the checks
    request_model = "vigil.tasks.iot_anomaly.requests:REQUEST"
    row_cost = 20.0  # µs per reading (checked in Python, scored in one AdaBoost call)
    ui_template, ui_label = "tasks/iot_anomaly.html", "IoT"
    model_facts = ("classes", "odd_point_box", "estimator")

    # -- data -------------------------------------------------------------------------------
    @staticmethod
    def data_folder(settings: Settings, override: str | None = None) -> Path:
        return Path(override) if override else settings.data_dir / "iot_anomaly"

    def detector(self, settings: Settings, data: str | None = None, odd_points: int = 1000, seed: int = 0):
        from vigil.tasks.iot_anomaly.detector import Detector

        return Detector.from_folder(self.data_folder(settings, data), odd_points=odd_points, seed=seed)

    # -- training ---------------------------------------------------------------------------
    def fit_and_save(
        self, store: ArtifactStore, detector, estimator_key: str, params: dict | None = None, seed: int = 0
    ) -> tuple[dict, object]:
        from vigil.metrics import confusion_ratios
        from vigil.tasks.iot_anomaly.detector import estimator_spec, make_estimator

        spec = estimator_spec(estimator_key)
        chosen = spec.best if params is None else params
        estimator = make_estimator(estimator_key, seed=seed, params=chosen)
        matrix, seconds, model = detector.classify(estimator)
        metrics = {
            **confusion_ratios(matrix),
            "fit_predict_seconds": seconds,
            "confusion_matrix": matrix.tolist(),
            "test_rows": int(len(detector.ytest)),
        }
        return self.save_model(store, detector, model, spec, chosen, metrics, seed=seed), model

    def save_model(
        self, store: ArtifactStore, detector, model, spec, params: dict, metrics: dict, seed: int, **extra
    ) -> dict:
        """Save a fitted detector pipeline with its metrics, the 0.5 threshold and how it was made."""
        return store.save(
            self.name,
            model,
            metrics=metrics,
            threshold=0.5,
            feature_version=FEATURE_VERSION,
            data_fingerprint=data_fingerprint(detector.df),
            extra={
                "estimator": spec.class_name,
                "params": {k: repr(v) for k, v in params.items()},
                "classes": detector.classes,
                "odd_point_box": detector.box.as_dict(),
                "odd_points": int(detector.df["odd"].sum()),
                "typical_objects": typical_sizes(detector.df),  # the explanations' background
                "seed": seed,
                "split": "stratified 50/50",
                **extra,
            },
        )

    def train_default(self, store: ArtifactStore, settings: Settings) -> dict:
        entry, _ = self.fit_and_save(store, self.detector(settings), "adaboost")
        return entry

    # -- prediction -------------------------------------------------------------------------
    @staticmethod
    def model_classes(loaded: LoadedModel) -> list[str]:
        classes = loaded.entry.get("extra", {}).get("classes")
        if classes:
            return list(classes)
        encoder = loaded.model.named_steps["features"].named_transformers_["class"]
        return [str(c) for c in encoder.categories_[0]]

    def score_rows(self, model, rows: list[dict]) -> list[dict]:
        import pandas as pd

        from vigil.tasks.iot_anomaly.plots import odd_scores

        frame = pd.DataFrame(rows, columns=["class", "length", "width"])
        probabilities = odd_scores(model, frame)
        labels = model.predict(frame)
        return [
            {
                "class": row["class"],
                "length": row["length"],
                "width": row["width"],
                "label": MALICIOUS if label == 1 else NON_MALICIOUS,
                "malicious": bool(label == 1),
                "probability": round(float(p), 6),
            }
            for row, label, p in zip(rows, labels, probabilities)
        ]

    def predict(self, loaded: LoadedModel, request: PredictInput) -> list:
        payload = request.json
        if isinstance(payload, dict) and "items" in payload:
            payload = payload["items"]
        if isinstance(payload, dict):
            payload = [payload]
        if not isinstance(payload, list):
            raise InvalidInput(
                "body must be a JSON list of {class, length, width} objects", {"example": self.example_request()}
            )
        if len(payload) > request.max_rows:
            raise too_many_rows(len(payload), request.max_rows)
        from vigil.tasks.iot_anomaly.requests import check_items  # pydantic on first use

        classes = self.model_classes(loaded)
        rows, errors = check_items(payload, classes)
        malformed = any(e["kind"] == "malformed" for e in errors)
        answers = self.score_rows(loaded.model, [row for _, row in rows]) if rows else []
        results = [{"index": index, **answer} for (index, _), answer in zip(rows, answers)]
        if errors:
            error_class = InvalidInput if malformed else UnprocessableInput
            first = errors[0]
            raise error_class(
                f"item {first['index']}, field '{first['field']}': {first['message']}",
                {
                    "errors": [{k: v for k, v in e.items() if k != "kind"} for e in errors],
                    "results": results,
                    "model_version": loaded.version,
                },
            )
        return [{k: v for k, v in r.items() if k != "index"} for r in results]

    def explain(self, loaded: LoadedModel, request: PredictInput, result: list, top: int) -> list:
        """Each reading's score split over class, length and width (tasks/iot_anomaly/explain.py)."""
        from vigil.tasks.iot_anomaly.explain import explain_rows
        from vigil.tasks.iot_anomaly.plots import odd_scores

        payload = request.json
        payload = payload.get("items") if isinstance(payload, dict) and "items" in payload else payload
        payload = [payload] if isinstance(payload, dict) else payload
        classes = self.model_classes(loaded)
        rows = [normalise_item(item, classes) for item in payload]
        for answer, explained in zip(result, explain_rows(loaded.model, rows, classes, loaded.entry, top, odd_scores)):
            answer.update(explained)
        return result

    def example_request(self) -> list:
        return [{"class": "moto", "length": 2100, "width": 780}, {"class": "human", "length": 4200, "width": 300}]

    def ui_picture(self, loaded: LoadedModel, args: dict[str, str]) -> tuple[bytes, str]:
        """The decision boundary of ``loaded`` for ``args["class"]``, the reading (length, width) marked."""
        from vigil.tasks.iot_anomaly.data import OddPointBox
        from vigil.tasks.iot_anomaly.plots import boundary_png

        classes = self.model_classes(loaded)
        label = args.get("class") or classes[0]
        if label not in classes:
            raise InvalidInput(f"class must be one of {', '.join(classes)}", {"field": "class", "value": label})
        reading = None
        if args.get("length") or args.get("width"):
            try:
                reading = (float(args.get("length", "")), float(args.get("width", "")))
            except ValueError as exc:
                raise InvalidInput("length and width must be numbers (mm)", {"field": "length/width"}) from exc
            if not all(math.isfinite(v) and 0 <= v <= 1e6 for v in reading):
                raise InvalidInput("length and width must be between 0 and 1,000,000 mm", {"field": "length/width"})
        box = loaded.entry.get("extra", {}).get("odd_point_box") or {}
        odd_box = OddPointBox(int(box.get("length_mm", [0, 6000])[1]), int(box.get("width_mm", [0, 2500])[1]))
        title = f"model v{loaded.version}:"
        return boundary_png(loaded.model, label, odd_box, reading, title=title), "image/png"


def comparison_table(
    task: IotAnomalyTask,
    settings: Settings,
    data: str | None = None,
    odd_points: int = 1000,
    seeds: Sequence[int] = (0,),
    models=("adaboost", "forest", "mlp", "svc"),
) -> str:
    """Markdown: the original's published ratios next to ours on one split (and a mean over seeds).

    The table's split is the first of ``seeds``; with more than one, the F1's mean over all of them.

    Every row carries the published TPR, FPR and F1 of its model. "as published" fits the
    configuration the original's report scored (``EstimatorSpec.published``: its tuned AdaBoost,
    MLP and LinearSVC, and ``RandomForestClassifier()`` with scikit-learn 0.19's 10 trees); "tuned"
    fits the parameters our `vigil iot-anomaly tune` run picked (``EstimatorSpec.best``).
    """
    import numpy as np

    from vigil.metrics import confusion_ratios
    from vigil.tasks.iot_anomaly.detector import ESTIMATORS, make_estimator

    names = {"adaboost": "AdaBoost", "forest": "random forest", "mlp": "MLP", "svc": "LinearSVC"}
    names = {key: names[key] for key in models}
    variants = [("as published", lambda spec: spec.published), ("tuned", lambda spec: spec.best)]
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)  # default MLPs stop at max_iter; the table shows it
    ours: dict[tuple, list[dict]] = {}
    for seed in seeds:
        detector = task.detector(settings, data, odd_points, seed)
        for key in names:
            for variant, params_of in variants:
                matrix, _, _ = detector.classify(make_estimator(key, seed, params_of(ESTIMATORS[key])))
                ours.setdefault((key, variant), []).append(confusion_ratios(matrix))

    def fmt(value):
        return "–" if value is None else f"{value:.4f}"

    def describe(params):
        return ", ".join(f"{k.removeprefix('estimator__')}={v}" for k, v in params.items()) or "defaults"

    header = ["model", "published TPR", "FPR", "F1", "ours: configuration", f"TPR (seed {seeds[0]})", "FPR", "F1"]
    if len(seeds) > 1:
        header.append(f"F1 mean ± sd, {len(seeds)} seeds")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label in names.items():
        published = PUBLISHED[key]
        for variant, params_of in variants:
            first = ours[(key, variant)][0]
            left = [label, fmt(published.get("tpr")), fmt(published.get("fpr")), fmt(published.get("f1"))]
            cells = [
                *left,
                f"{variant}: {describe(params_of(ESTIMATORS[key]))}",
                fmt(first["tpr"]),
                fmt(first["fpr"]),
                fmt(first["f1"]),
            ]
            if len(seeds) > 1:
                f1s = np.array([r["f1"] for r in ours[(key, variant)]])
                cells.append(f"{f1s.mean():.4f} ± {f1s.std(ddof=1):.4f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- item validation (shared by the HTTP endpoint and `classify`): tasks/iot_anomaly/requests.py ----
def validate_item(item, classes: list[str], strings_are_numbers: bool = False) -> list[dict]:
    """Problems of one {class, length, width} item: [{field, message, kind}] (empty when fine)."""
    from vigil.tasks.iot_anomaly import requests  # pydantic on first use: `vigil --help` stays fast

    return requests.validate_item(item, classes, strings_are_numbers)


def normalise_item(item: dict, classes: list[str]) -> dict:
    from vigil.tasks.iot_anomaly import requests

    return requests.normalise_item(item, classes)


def typical_sizes(frame) -> dict[str, dict[str, float]]:
    """Median length and width of each class's normal (not odd) objects: the explanations' background."""
    normal = frame[frame["odd"] == 0]
    medians = normal.groupby("class")[["length", "width"]].median()
    return {str(c): {"length": float(r["length"]), "width": float(r["width"])} for c, r in medians.iterrows()}


__all__ = ["IotAnomalyTask", "comparison_table", "validate_item", "normalise_item"]
