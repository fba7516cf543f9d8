"""ML-PT's client check (06_run_test_client.ipynb): send a whole events file to the service in batches
and compare its labels with the same model's offline predictions. They must agree 100%."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import requests

from vigil.artifacts import ArtifactStore
from vigil.errors import InvalidInput
from vigil.tasks.web_events.data import frame_to_request, load_events_csv


def predict_url(url: str) -> str:
    url = url.rstrip("/")
    if url.endswith("/predict") or url.endswith("/predict/web-events"):
        return url
    return url + "/predict"


def replay(
    csv: Path,
    url: str,
    store: ArtifactStore,
    batch_size: int = 2000,
    timeout: float = 300.0,
    limit: int | None = None,
    progress: bool = True,
) -> dict:
    from tqdm import tqdm

    from vigil.metrics import weighted_f1

    frame = load_events_csv(csv)
    if limit:
        frame = frame.iloc[:limit].reset_index(drop=True)
    if frame.empty:
        raise InvalidInput(f"{csv} holds no events", str(csv))
    loaded = store.load("web_events")
    offline = np.asarray(loaded.model.predict(frame), dtype=np.int64)  # straight from the CSV frame
    records = frame_to_request(frame)
    endpoint = predict_url(url)
    labels: list[int] = []
    event_ids: list[str] = []
    started = time.perf_counter()
    with (
        requests.Session() as session,
        tqdm(total=len(records), unit="event", desc="replay", disable=not progress) as bar,
    ):
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            response = session.post(endpoint, json=batch, timeout=timeout)
            if response.status_code != 200:
                raise InvalidInput(
                    f"service answered {response.status_code} for events {start}..{start + len(batch) - 1}",
                    response.text[:500],
                    status=502,
                )
            answer = response.json()
            if not isinstance(answer, list) or len(answer) != len(batch):
                raise InvalidInput("service answer is not a list of one label per event", str(answer)[:300], status=502)
            labels.extend(int(item["LABEL_PRED"]) for item in answer)
            event_ids.extend(item["EVENT_ID"] for item in answer)
            bar.update(len(batch))
    seconds = time.perf_counter() - started
    online = np.asarray(labels, dtype=np.int64)
    expected_ids = frame["EVENT_ID"].fillna("").astype(str).tolist()
    return {
        "events": int(len(frame)),
        "url": endpoint,
        "model_version": loaded.version,
        "batches": int(-(-len(records) // batch_size)),
        "agreement": float((online == offline).mean()),
        "disagreements": int((online != offline).sum()),
        "f1_weighted": weighted_f1(offline, online),
        "event_ids_in_order": expected_ids == event_ids,
        "events_per_second": round(len(records) / seconds, 1),
    }
