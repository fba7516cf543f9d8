"""The web-events task (ML-PT): ``POST /predict`` (also ``/predict/web-events``) and the default model.

Events carry no labels. ``vigil web-events cluster`` labels them with DBSCAN (eps at the knee of the
k-distance curve); ``vigil web-events train`` teaches a classifier those labels (:mod:`.train`); the
service answers ML-PT's ``POST /predict`` with ``[{"EVENT_ID", "LABEL_PRED"}]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vigil.artifacts import ArtifactStore, LoadedModel
from vigil.config import Settings
from vigil.errors import InvalidInput
from vigil.tasks.base import PredictInput, Task
from vigil.tasks.web_events.data import SAMPLE_CSV, event_to_request_record, load_events_csv, parse_request
from vigil.tasks.web_events.wrangling import texts_of

EXAMPLE_EVENTS = [  # the two events of ML-PT's README curl example
    {
        "CLIENT_IP": "188.138.92.55",
        "CLIENT_USERAGENT": float("nan"),
        "REQUEST_SIZE": 166,
        "RESPONSE_CODE": 404,
        "MATCHED_VARIABLE_SRC": "REQUEST_URI",
        "MATCHED_VARIABLE_NAME": float("nan"),
        "MATCHED_VARIABLE_VALUE": "//tmp/20160925122692indo.php.vob",
        "EVENT_ID": "AVdhXFgVq1Ppo9zF5Fxu",
    },
    {
        "CLIENT_IP": "93.158.215.131",
        "CLIENT_USERAGENT": "Mozilla/5.0 (Windows NT 6.3; WOW64; rv:45.0) Gecko/20100101 Firefox/45.0",
        "REQUEST_SIZE": 431,
        "RESPONSE_CODE": 302,
        "MATCHED_VARIABLE_SRC": "REQUEST_GET_ARGS",
        "MATCHED_VARIABLE_NAME": "url",
        "MATCHED_VARIABLE_VALUE": "http://www.galitsios.gr/?option=com_k2%5C%5C",
        "EVENT_ID": "AVdcJmIIq1Ppo9zF2YIp",
    },
]


# -- serving ----------------------------------------------------------------------------------------
def label_response(pipeline, events) -> list[dict]:
    """ML-PT's answer: [{"EVENT_ID": str, "LABEL_PRED": int}] in input order (``events``: a frame or
    a ParsedRequest, whose columns are scored without a frame: pipeline.predict's labels, less overhead)."""
    from vigil.tasks.web_events.scoring import event_columns, scorer_for

    columns = event_columns(events)
    if not columns["EVENT_ID"]:
        return []
    labels = np.asarray(scorer_for(pipeline).predict(events)).astype(np.int64).tolist()  # Python ints
    kinds = (getattr(events, "column_types", None) or {}).get("EVENT_ID")  # known to a parsed request
    ids = texts_of(columns["EVENT_ID"], kinds)  # as they are when all strings (the usual case)
    return [{"EVENT_ID": event_id, "LABEL_PRED": label} for event_id, label in zip(ids, labels)]


def _safe_label_response(
    pipeline, events: pd.DataFrame, indices: list[int]
) -> tuple[list[dict], list[int], list[dict]]:
    """Label the batch; if the batch fails, label record by record so one odd event cannot sink the rest."""
    try:
        return label_response(pipeline, events), indices, []
    except Exception:  # noqa: BLE001 - anything the pipeline raises becomes a per-record 4xx below
        answers, kept, errors = [], [], []
        for position, index in enumerate(indices):
            try:
                answers.extend(label_response(pipeline, getattr(events, "events", events).iloc[[position]]))
                kept.append(index)
            except Exception as exc:  # noqa: BLE001
                errors.append({"index": index, "field": "data", "message": f"cannot featurize this event: {exc}"})
        return answers, kept, errors


def predict_mlpt(loaded: LoadedModel, request: PredictInput):
    if request.json is None:
        raise InvalidInput(
            'expected a JSON array of {"data": "<event as a JSON string>"}',
            {"field": "body", "content_type": request.content_type},
        )
    parsed = parse_request(request.json, request.max_rows)
    partial = str(request.args.get("partial", "")).lower() in ("1", "true", "yes")
    if parsed.errors and not partial:
        raise InvalidInput(
            f"{len(parsed.errors)} of {len(request.json)} records are invalid; nothing was labelled "
            "(send ?partial=1 to label the good records and list the bad ones)",
            {"invalid_count": len(parsed.errors), "records": parsed.errors[:100]},
        )
    answers, kept, failures = _safe_label_response(loaded.model, parsed, parsed.indices)
    if not partial:
        if failures:
            raise InvalidInput(
                f"{len(failures)} records could not be featurized; nothing was labelled",
                {"invalid_count": len(failures), "records": failures[:100]},
                status=422,
            )
        return answers
    for answer, index in zip(answers, kept):
        answer["index"] = index
    return {"predictions": answers, "errors": sorted(parsed.errors + failures, key=lambda e: e["index"])}


class WebEventsTask(Task):
    name = "web_events"
    slug = "web-events"
    title = "Web-attack events (ML-PT): DBSCAN labels, tuned forest, ML-PT's /predict"
    row_cost = 20.0  # µs per event
    ui_template, ui_label = "tasks/web_events.html", "Web events"
    model_facts = ("attack_clusters", "good_clusters", "clustering")
    request_model = "vigil.tasks.web_events.requests:REQUEST"  # ML-PT's request, for OpenAPI (pydantic on first use)

    def train_default(self, store: ArtifactStore, settings: Settings) -> dict:
        from vigil.tasks.web_events.train import save_trained, train_model

        path = settings.data_dir / SAMPLE_CSV
        frame = load_events_csv(path)
        pipeline, info, _ = train_model(frame, folds=0, tune=False, progress=False)
        return save_trained(store, pipeline, info, path, data_label=SAMPLE_CSV)

    def predict(self, loaded: LoadedModel, request: PredictInput):
        return predict_mlpt(loaded, request)

    def explain(self, loaded: LoadedModel, request: PredictInput, result, top: int):
        """Per event: attack cluster or not, and the top reasons (tasks/web_events/explain.py)."""
        from vigil.tasks.web_events.explain import explain_answers

        parsed = parse_request(request.json, request.max_rows)
        if isinstance(result, dict):  # ?partial=1: the answered events carry their index
            rows = {index: row for row, index in enumerate(parsed.indices)}
            answered = [rows[answer["index"]] for answer in result["predictions"]]
            explain_answers(loaded.model, parsed.events.iloc[answered], result["predictions"], top, loaded.entry)
            return result
        return explain_answers(loaded.model, parsed.events, result, top, loaded.entry)

    def example_request(self):
        return [event_to_request_record(event) for event in EXAMPLE_EVENTS]


__all__ = ["WebEventsTask", "EXAMPLE_EVENTS", "label_response", "predict_mlpt"]
