"""EMBER batch scoring through the service against the bare model, measured in the same run.

    python -m bench.ember_batch [--rows 1000] [--repeats 7]

One demo model (``train_default``), one matrix of --rows feature vectors (the demo records
vectorized, repeated), and the time to score it:

* ``bare Booster.predict``: ``lightgbm.Booster.predict`` on the float32 matrix (the baseline; it runs
  on OpenMP's default pool, all the cores), the ``compiled trees`` the service serves
  (``vigil.boosting.CompiledTrees``, chosen by ``vigil.tasks.ember.runtime``) and the model's checked
  ``ONNX Runtime`` session (the service's second choice), both given the same threads
  (``vigil.boosting.process_threads``); all three again on 1 thread, a gunicorn worker's budget
  (``OMP_NUM_THREADS=1``);
* ``json.loads alone`` / ``orjson.loads alone``: parsing the JSON body (the floor of any JSON
  transport; the JSON target is 1.5x the orjson time);
* ``POST /predict/ember`` with a JSON list of vectors, with an ``application/x-npy`` body (also with
  the same model saved without its ONNX sidecars, so the Booster serves);
* ``POST /v2/models/ember/infer`` (Open Inference Protocol) with the JSON tensor form and with the
  binary-data extension (``Inference-Header-Content-Length``, the tensor appended raw);
* the two ``/predict/ember`` bodies again through an app on Flask's own request class (werkzeug's
  body read, 64 KiB at a time: what the service did before ``vigil.service.request``).

The service paths go through the Flask test client (no sockets): middleware, validation, the task,
the model, the JSON answer. Median of --repeats interleaved rounds; ratio = bare time / path time (1.00x = as fast as
the bare model). Answers are checked within 1e-6 of the bare model's probabilities. A second table
times the compiled trees and ONNX Runtime against ``Booster.predict`` at batch 1, 10, 100 and --rows
(busy, see below).

Two regimes, both printed, the binary targets checked in each:

* **from idle** (the tables): each run starts from a quiet process, --settle-ms after the previous
  one, as a request reaching an idle worker does;
* **busy**: the binary rows again, each timed after --settle-ms of nothing but itself back to back,
  as on a worker kept busy with such requests.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from bench.common import check_target, quiet_request_log

SETTLE_S = 0.05  # past the spin of LightGBM's OpenMP threads after a parallel region (5-30 ms seen here)


def _interleaved_medians(runs: dict, repeats: int, settle_s: float = SETTLE_S, busy: bool = False) -> dict[str, float]:
    """Median seconds of each run, the runs taken in turn (one round = each once), so a busy moment
    of the shared machine falls on all of them alike.

    Each timed run starts from a state of its own, never from what the run before it left: the
    OpenMP threads a ``Booster.predict`` leaves spinning (GNU libgomp's default wait policy) hold a
    core for 5-30 ms here, and whatever ran next on the two cores was slowed by it (the compiled
    trees took 5.3 ms instead of 2.2; with ``GOMP_SPINCOUNT=0``, 2.8). By default that state is a
    quiet process, as a request reaching an idle worker finds it: the heap collected and
    ``settle_s`` of sleep. With ``busy``, it is a worker that has served nothing but this run for
    ``settle_s``: the run repeated untimed for that long, then timed once."""
    for run in runs.values():
        run()  # warm up
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            gc.collect()  # the JSON runs leave millions of floats behind: collect them outside the timing
            if busy:
                until = time.perf_counter() + settle_s
                while time.perf_counter() < until:
                    run()
            else:
                time.sleep(settle_s)
            started = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def matrix(rows: int) -> np.ndarray:
    from vigil.tasks.ember.demo_data import build_demo_records
    from vigil.tasks.ember.features import FeatureExtractor

    train, test = build_demo_records(n_train=200, n_test=50, seed=3)
    X = FeatureExtractor(2).process_raw_features_batch(train + test)
    return np.ascontiguousarray(np.resize(X, (rows, X.shape[1])), dtype=np.float32)


def v2_binary_body(X: np.ndarray) -> tuple[bytes, dict]:
    """A V2 request as tritonclient's ``InferInput.set_data_from_numpy(binary_data=True)`` sends it."""
    raw = X.astype("<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(X.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "probability", "parameters": {"binary_data": False}}],
        }
    ).encode()
    return header + raw, {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ember_batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--settle-ms", type=float, default=SETTLE_S * 1000, help="pause before each run of the from-idle tables"
    )
    args = parser.parse_args(argv)
    quiet_request_log()

    import flask

    from vigil import boosting
    from vigil.artifacts import ArtifactStore
    from vigil.boosting import CompiledTrees, process_threads
    from vigil.config import Settings
    from vigil.heap import freeze_startup_heap
    from vigil.service import create_app
    from vigil.tasks import get_task
    from vigil.tasks.ember import runtime
    from vigil.tasks.ember.model import booster_of

    X = matrix(args.rows)
    with tempfile.TemporaryDirectory() as folder:
        models = Path(folder) / "models"
        store = ArtifactStore(models)
        settings = Settings.from_env(models_dir=models)
        get_task("ember").train_default(store, settings)
        loaded = store.load("ember", long_lived=True)  # as the service's registry loads it
        booster = booster_of(loaded.model)
        expected = booster.predict(X)
        client = create_app(settings, store).test_client()
        scorer = runtime.scorer_for(loaded, booster)
        onnx = runtime.onnx_scorer(loaded, booster)
        if not isinstance(scorer, CompiledTrees) or onnx is None:
            print(f"this model is served by {type(scorer).__name__}; ONNX Runtime checked: {onnx is not None}")
        one_thread = runtime.OnnxScorer(loaded.sidecars[runtime.SIDECAR_MODEL], 1) if onnx is not None else None
        # the same pipeline without its ONNX sidecars, and its checked scorer set to none: the Booster serves
        plain = ArtifactStore(Path(folder) / "plain")
        plain.save("ember", loaded.model, threshold=loaded.threshold, feature_version=2)
        plain_app = create_app(Settings.from_env(models_dir=plain.root), plain)
        plain_app.extensions["vigil.registry"].get("ember").cache["scorer"] = None  # runtime.scorer_for's cache
        plain_client = plain_app.test_client()
        chunked_app = create_app(settings, store)
        chunked_app.request_class = flask.Request  # werkzeug's get_data, for the same-run comparison
        chunked_client = chunked_app.test_client()

        json_body = json.dumps(X.tolist()).encode()
        npy = io.BytesIO()
        np.save(npy, X, allow_pickle=False)
        npy_body = npy.getvalue()
        v2_json = json.dumps(
            {"inputs": [{"name": "input-0", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}]}
        ).encode()
        v2_binary, v2_headers = v2_binary_body(X)

        def post(path, body, headers, through=client):
            def run():  # the answer is parsed only when checked, not in the timings: that is the client's work
                response = through.post(path, data=body, headers=headers)
                assert response.status_code == 200, response.get_data(as_text=True)[:300]
                return response

            return run

        def probabilities(response) -> np.ndarray:
            answer = response.get_json()
            if "results" in answer:
                return np.array([r["probability"] for r in answer["results"]])
            return np.asarray(answer["outputs"][0]["data"], dtype=np.float64)

        paths = {
            "POST /predict/ember, JSON": post("/predict/ember", json_body, {"Content-Type": "application/json"}),
            "POST /predict/ember, x-npy": post("/predict/ember", npy_body, {"Content-Type": "application/x-npy"}),
            "x-npy, Booster serving": post(
                "/predict/ember", npy_body, {"Content-Type": "application/x-npy"}, through=plain_client
            ),
            "JSON, werkzeug body read": post(
                "/predict/ember", json_body, {"Content-Type": "application/json"}, through=chunked_client
            ),
            "x-npy, werkzeug body read": post(
                "/predict/ember", npy_body, {"Content-Type": "application/x-npy"}, through=chunked_client
            ),
            "V2 infer, JSON tensor": post("/v2/models/ember/infer", v2_json, {"Content-Type": "application/json"}),
            "V2 infer, binary tensor": post("/v2/models/ember/infer", v2_binary, v2_headers),
        }
        available = {}
        for name, run in paths.items():
            try:
                got = probabilities(run())
            except AssertionError as exc:
                print(f"{name}: not answered ({str(exc)[:120]})")
                continue
            assert np.allclose(got, expected, rtol=0, atol=1e-6), name
            available[name] = run
        freeze_startup_heap()  # the apps are built and their models loaded: what gunicorn's post_worker_init does

        threads = process_threads()
        compiled = isinstance(scorer, CompiledTrees)

        def one_thread_trees(rows):  # the kernel on the calling thread alone
            saved, runtime_threads = boosting.process_threads, 1
            boosting.process_threads = lambda: runtime_threads
            try:
                return scorer.predict(rows)
            finally:
                boosting.process_threads = saved

        runs = {
            # OpenMP's default pool, all the cores: the service's scorers get the same pool
            # (vigil.boosting.process_threads), so the bare rows and the service rows share one thread budget
            f"bare Booster.predict, {threads} thr": lambda: booster.predict(X),
            **({f"compiled trees, {threads} thr": lambda: scorer.predict(X)} if compiled else {}),
            **({f"ONNX Runtime, {threads} thr": lambda: onnx.predict(X)} if onnx is not None else {}),
            # a gunicorn worker's budget (OMP_NUM_THREADS=1, set by gunicorn_conf), like for like
            "Booster.predict, 1 thread": lambda: booster.predict(X, num_threads=1),
            **({"compiled trees, 1 thread": lambda: one_thread_trees(X)} if compiled else {}),
            **({"ONNX Runtime, 1 thread": lambda: one_thread.predict(X)} if one_thread is not None else {}),
            "json.loads alone": lambda: json.loads(json_body),
            "orjson.loads alone": lambda: orjson.loads(json_body),
            **available,
        }
        settle_s = args.settle_ms / 1000
        timings = _interleaved_medians(runs, args.repeats, settle_s)
        binary_rows = (f"bare Booster.predict, {threads} thr", f"compiled trees, {threads} thr")
        binary_rows += ("POST /predict/ember, x-npy", "x-npy, Booster serving", "V2 infer, binary tensor")
        binary_runs = {name: runs[name] for name in binary_rows if name in runs}
        busy_timings = _interleaved_medians(binary_runs, args.repeats, settle_s, busy=True)
        bare, parse = timings[f"bare Booster.predict, {threads} thr"], timings["orjson.loads alone"]
        batches = {}
        scorers = {"compiled": scorer if compiled else None, "ONNX": onnx}
        scorers = {name: model for name, model in scorers.items() if model is not None}
        for size in sorted({1, 10, 100, args.rows}) if scorers else ():
            part = np.ascontiguousarray(X[:size])
            batches[size] = _interleaved_medians(
                {"Booster": lambda p=part: booster.predict(p)}
                | {name: lambda p=part, m=model: m.predict(p) for name, model in scorers.items()},
                max(args.repeats, 15),
                settle_s,
                busy=True,  # the scorers' steady state: at batch 1 a Booster from idle pays its OpenMP wake-up
            )
            for name, model in scorers.items():
                batches[size][f"{name} diff"] = float(np.abs(model.predict(part) - booster.predict(part)).max())
    print(
        f"bench.ember_batch: {args.rows} vectors x {X.shape[1]} floats; JSON body {len(json_body) / 1e6:.1f} MB, "
        f"npy {len(npy_body) / 1e6:.1f} MB; median of {args.repeats}; ratio = bare / path; "
        f"from idle: each run {args.settle_ms:g} ms after the one before"
    )
    for name, seconds in timings.items():
        over_parse = f"   {seconds / parse:5.2f}x orjson.loads" if "JSON" in name else ""
        print(f"{name:<30} {seconds * 1000:9.1f} ms {bare / seconds:8.3f}x{over_parse}")
    for name in ("POST /predict/ember, JSON", "V2 infer, JSON tensor"):
        if name in timings:
            over_parse = timings[name] / parse
            check_target(
                f"{name} (1,000 vectors) vs orjson's parse",
                f"{over_parse:.2f}x its time",
                "within 1.5x",
                over_parse <= 1.5,
            )
    print(f"busy (each run timed after {args.settle_ms:g} ms of itself back to back), the same paths:")
    for name, seconds in busy_timings.items():
        print(f"{name:<30} {seconds * 1000:9.1f} ms {busy_timings[binary_rows[0]] / seconds:8.3f}x")
    for regime, measured in (("from idle", timings), ("busy", busy_timings)):
        for name in ("POST /predict/ember, x-npy", "V2 infer, binary tensor"):
            if name in measured:
                rate = measured[binary_rows[0]] / measured[name]
                check_target(
                    f"{name} (1,000 vectors) vs bare Booster, {regime}",
                    f"{rate:.2f}x its rate",
                    ">= 0.75x",
                    rate >= 0.75,
                )
                if scorer is not None and name.endswith("x-npy"):  # the compiled runtime's own target
                    served = "compiled trees" if compiled else "ONNX Runtime"
                    check_target(
                        f"{name}, {served} serving, vs bare Booster, {regime}", f"{rate:.2f}x", "faster: > 1x", rate > 1
                    )
    if batches:
        names = [name for name in ("compiled", "ONNX") if name in scorers]
        print(
            "Scorers vs Booster.predict (same process, median, busy): batch, Booster ms, then per scorer: ms, speed-up, max |diff|"
        )
        for size, t in batches.items():
            cells = "".join(
                f" | {name} {t[name] * 1000:8.3f} {t['Booster'] / t[name]:6.2f}x {t[f'{name} diff']:.1e}"
                for name in names
            )
            print(f"  {size:>6} {t['Booster'] * 1000:9.3f}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
