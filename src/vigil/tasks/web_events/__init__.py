"""Web-attack events (ML-PT): wrangling, features, DBSCAN labels, a tuned forest, ML-PT's /predict.

Events carry no labels. ``vigil web-events cluster`` labels them with DBSCAN (eps at the knee of the
k-distance curve); ``vigil web-events train`` teaches a classifier those labels; the service answers
ML-PT's ``POST /predict`` (also ``/predict/web-events``) with ``[{"EVENT_ID", "LABEL_PRED"}]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.artifacts import ArtifactStore, LoadedModel, data_fingerprint
from vigil.config import Settings
from vigil.errors import InvalidInput
from vigil.tasks.base import PredictInput, Task
from vigil.tasks.web_events.data import (
    SAMPLE_CSV,
    describe_events,
    event_to_request_record,
    load_events_csv,
    parse_request,
)
from vigil.tasks.web_events.features import FEATURE_VERSION, build_featurizer
from vigil.tasks.web_events.wrangling import COLUMNS, to_text

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


# -- shared by training, serving and the replay check -----------------------------------------------------
def label_events(
    frame: pd.DataFrame,
    min_samples: int | None = None,
    eps: float | None = None,
    sensitivity: float | None = None,
    attack_clusters: int | None = None,
    n_jobs: int = 1,
):
    """Fit the featurizer on ``frame`` and cluster its features: (featurizer, X, Clustering)."""
    from vigil.tasks.web_events.clustering import KNEE_SENSITIVITY, cluster_events

    featurizer = build_featurizer()
    X = featurizer.fit_transform(frame)
    clustering = cluster_events(
        X,
        min_samples=min_samples,
        eps=eps,
        sensitivity=KNEE_SENSITIVITY if sensitivity is None else sensitivity,
        attack_clusters=attack_clusters,
        n_jobs=n_jobs,
    )
    return featurizer, X, clustering


def model_pipeline(featurizer, classifier):
    """One Pipeline: wrangling, features, scaling, PCA and the classifier, all fitted already."""
    from sklearn.pipeline import Pipeline

    return Pipeline([*featurizer.steps, ("classifier", classifier)])


def label_response(pipeline, events: pd.DataFrame) -> list[dict]:
    """ML-PT's answer: [{"EVENT_ID": str, "LABEL_PRED": int}] in input order."""
    if events.empty:
        return []
    labels = np.asarray(pipeline.predict(events)).astype(np.int64).tolist()  # Python ints, in C
    ids = [event_id if type(event_id) is str else to_text(event_id) for event_id in events["EVENT_ID"].tolist()]
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
                answers.extend(label_response(pipeline, events.iloc[[position]]))
                kept.append(index)
            except Exception as exc:  # noqa: BLE001
                errors.append({"index": index, "field": "data", "error": f"cannot featurize this event: {exc}"})
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
    answers, kept, failures = _safe_label_response(loaded.model, parsed.events, parsed.indices)
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


# -- CLI ----------------------------------------------------------------------------------------------
def _settings_store(args) -> tuple[Settings, ArtifactStore]:
    overrides = {"models_dir": Path(args.models_dir)} if getattr(args, "models_dir", None) else {}
    settings = Settings.from_env(**overrides)
    return settings, ArtifactStore.from_settings(settings)


def _out_dir(args, settings: Settings) -> Path:
    folder = Path(args.out_dir) if getattr(args, "out_dir", None) else settings.work_dir / "web_events"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _events_path(args, settings: Settings) -> Path:
    return Path(args.csv) if getattr(args, "csv", None) else settings.data_dir / SAMPLE_CSV


def cmd_generate(args) -> int:
    from vigil.tasks.web_events.generator import PUBLISHED, generate_events, write_events_csv

    frame = generate_events(args.rows, seed=args.seed, duplicates=args.duplicates)
    path = write_events_csv(frame, args.out)
    print(f"wrote {len(frame):,} rows to {path}")
    table = describe_events(load_events_csv(path))
    print(table.T.to_string())
    if args.rows == PUBLISHED["rows"]:
        print("\nML-PT published (part_10.csv): distinct", PUBLISHED["distinct"], "missing", PUBLISHED["missing"])
    return 0


def cmd_describe(args) -> int:
    frame = load_events_csv(args.csv, drop_duplicates=False)
    unique = frame.drop_duplicates()
    print(f"{len(frame):,} rows, {len(unique):,} after dropping duplicates")
    print(describe_events(unique).T.to_string())
    return 0


def cmd_cluster(args) -> int:
    from vigil.tasks.web_events.clustering import cluster_events, plot_k_distance

    settings, _ = _settings_store(args)
    out = _out_dir(args, settings)
    if args.features:
        with np.load(args.features) as archive:
            if "X" not in archive:
                raise InvalidInput(f"{args.features} has no array named X", {"arrays": list(archive.keys())})
            X = archive["X"]
        source = str(args.features)
        clustering = cluster_events(
            X,
            min_samples=args.min_samples,
            eps=args.eps,
            sensitivity=args.sensitivity,
            attack_clusters=args.attack_clusters,
            n_jobs=args.jobs,
        )
    else:
        path = _events_path(args, settings)
        frame = load_events_csv(path)
        source = str(path)
        _, X, clustering = label_events(
            frame, args.min_samples, args.eps, args.sensitivity, args.attack_clusters, n_jobs=args.jobs
        )
    summary = clustering.summary()
    summary["features"] = int(X.shape[1])
    summary["source"] = source
    knee = clustering.knee
    summary["knee"] = {"index": knee.knee_index, "distance": None if knee.eps is None else round(knee.eps, 6)}
    if args.compare_labels:
        from sklearn.metrics import adjusted_rand_score

        with np.load(args.compare_labels) as archive:
            reference = archive["y"] if "y" in archive else archive[list(archive.keys())[0]]
        if len(reference) != len(clustering.labels):
            raise InvalidInput(
                "reference labels and features differ in length",
                {"labels": len(reference), "features": len(clustering.labels)},
            )
        summary["compare"] = {
            "reference_labels": int(len(np.unique(reference))),
            "reference_noise": int((reference == -1).sum()),
            "same_label_share": round(float((reference == clustering.labels).mean()), 6),
            "adjusted_rand_index": round(float(adjusted_rand_score(reference, clustering.labels)), 6),
        }
    png = plot_k_distance(clustering, out / "k_distance.png", title=f"k-distance curve of {Path(source).name}")
    np.savez_compressed(out / "dbscan_labels.npz", y=clustering.labels)
    summary["plot"], summary["labels_file"] = str(png), str(out / "dbscan_labels.npz")
    sizes = sorted(((c, s) for c, s in clustering.sizes.items() if c != -1), key=lambda cs: -cs[1])
    print(json.dumps(summary, indent=2))
    print("largest clusters:", ", ".join(f"{c}:{s}" for c, s in sizes[:12]))
    print("attack clusters:", clustering.attack_clusters)
    return 0


def train_model(
    frame: pd.DataFrame,
    *,
    min_samples=None,
    eps=None,
    sensitivity=None,
    attack_clusters=None,
    folds=5,
    repeats=2,
    n_iter=12,
    tune_folds=3,
    full=False,
    tune=True,
    jobs=1,
    seed=0,
    progress: bool = True,
) -> tuple[object, dict, pd.DataFrame | None]:
    """Cluster, compare classifiers, tune the forest; returns (pipeline, manifest metrics+extra, table)."""
    from tqdm import tqdm

    from vigil.tasks.web_events.training import (
        MLPT_FOREST,
        candidate_classifiers,
        compare_classifiers,
        forest,
        tune_random_forest,
    )

    steps = tqdm(total=3, desc="web-events train", disable=not progress)
    steps.set_postfix_str("features + DBSCAN")
    featurizer, X, clustering = label_events(frame, min_samples, eps, sensitivity, attack_clusters, n_jobs=jobs)
    y = clustering.labels
    steps.update(1)
    table = None
    if folds > 1:
        models = candidate_classifiers(n_jobs=jobs, seed=seed, full=full)
        steps.set_postfix_str(f"comparing {len(models)} classifiers")
        with tqdm(total=len(models), desc="classifiers", leave=False, disable=not progress) as bar:
            table = compare_classifiers(X, y, models, folds=folds, repeats=repeats, seed=seed, progress=bar)
    steps.update(1)
    steps.set_postfix_str("tuning the forest" if tune else "fitting the forest")
    if tune:
        tuned = tune_random_forest(X, y, n_iter=n_iter, folds=tune_folds, seed=seed, n_jobs=jobs)
        params, cv_f1 = tuned.params, tuned.cv_f1
        tuning = {
            "randomized_params": tuned.random_params,
            "randomized_f1": tuned.random_f1,
            "candidates_searched": tuned.searched,
        }
    else:
        from sklearn.model_selection import cross_val_score

        from vigil.tasks.web_events.training import SCORING, make_cv

        params, tuning = dict(MLPT_FOREST), {"params_from": "ML-PT 05_tune_classifier"}
        cv_f1 = float(
            cross_val_score(
                forest(params, X.shape[1], seed=seed, n_jobs=jobs),
                X,
                y,
                cv=make_cv(y, tune_folds, 1, seed),
                scoring=SCORING["f1"],
            ).mean()
        )
    classifier = forest(params, X.shape[1], seed=seed, n_jobs=jobs).fit(X, y)
    steps.update(1)
    steps.close()
    summary = clustering.summary()
    metrics = {
        "train_f1_weighted": float(_weighted_f1(y, classifier.predict(X))),
        "noise_share": summary["noise_share"],
        "clusters": summary["clusters"],
    }
    if cv_f1 is not None:
        metrics["cv_f1_weighted"] = cv_f1
    extra = {
        "clustering": summary,
        "attack_clusters": clustering.attack_clusters,
        "good_clusters": clustering.good_clusters,
        "forest_params": params,
        "tuning": tuning,
        "pca_components": int(X.shape[1]),
        "events": int(len(frame)),
    }
    if table is not None:
        extra["comparison"] = table.round(4).to_dict("records")
    return model_pipeline(featurizer, classifier), {"metrics": metrics, "extra": extra}, table


def _weighted_f1(y_true, y_pred) -> float:
    from sklearn.metrics import f1_score

    return f1_score(y_true, y_pred, average="weighted", zero_division=0)


def _load_npz_array(path, name: str) -> np.ndarray:
    with np.load(path) as archive:
        if name not in archive:
            raise InvalidInput(f"{path} has no array named {name}", {"arrays": list(archive.keys())})
        return archive[name]


def train_on_features(args) -> int:
    """Compare and tune on an already featurized matrix (e.g. ML-PT's X.npz / y.npz); saves no model,
    because a model without its featurizer cannot label raw events."""
    from tqdm import tqdm

    from vigil.tasks.web_events.clustering import cluster_events
    from vigil.tasks.web_events.training import candidate_classifiers, compare_classifiers, tune_random_forest

    X = _load_npz_array(args.features, "X")
    if args.labels:
        y = _load_npz_array(args.labels, "y")
    else:
        y = cluster_events(X, args.min_samples, args.eps, args.sensitivity or 20.0, n_jobs=args.jobs).labels
    if len(y) != len(X):
        raise InvalidInput("features and labels differ in length", {"X": len(X), "y": len(y)})
    print(f"{len(X):,} events x {X.shape[1]} features, {len(np.unique(y))} labels")
    if args.folds > 1:
        models = candidate_classifiers(n_jobs=args.jobs, seed=args.seed, full=args.full)
        with tqdm(total=len(models), desc="classifiers") as bar:
            table = compare_classifiers(
                X, y, models, folds=args.folds, repeats=args.repeats, seed=args.seed, progress=bar
            )
        print(f"\nRepeated {args.folds}-fold x {args.repeats}:")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if not args.no_tune:
        tuned = tune_random_forest(X, y, n_iter=args.n_iter, folds=args.tune_folds, seed=args.seed, n_jobs=args.jobs)
        print(f"\nrandomized search best: {json.dumps(tuned.random_params)} F1 {tuned.random_f1:.4f}")
        print(f"after the grid: {json.dumps(tuned.params)} CV F1 {tuned.cv_f1:.4f} ({tuned.searched} candidates)")
    print("(features only: no model saved; train on a raw events CSV to get a servable model)")
    return 0


def cmd_train(args) -> int:
    if args.full:
        args.folds, args.repeats, args.n_iter, args.tune_folds = 10, 3, 50, 5
    if args.features:
        return train_on_features(args)
    settings, store = _settings_store(args)
    path = _events_path(args, settings)
    frame = load_events_csv(path)
    pipeline, info, table = train_model(
        frame,
        min_samples=args.min_samples,
        eps=args.eps,
        sensitivity=args.sensitivity,
        attack_clusters=args.attack_clusters,
        folds=args.folds,
        repeats=args.repeats,
        n_iter=args.n_iter,
        tune_folds=args.tune_folds,
        full=args.full,
        tune=not args.no_tune,
        jobs=args.jobs,
        seed=args.seed,
    )
    entry = store.save(
        "web_events",
        pipeline,
        metrics=info["metrics"],
        feature_version=FEATURE_VERSION,
        data_fingerprint=data_fingerprint(path),
        extra={**info["extra"], "data": str(path)},
    )
    out = _out_dir(args, settings)
    if table is not None:
        print(
            f"\nRepeated {args.folds}-fold x {args.repeats} comparison on {len(frame):,} events "
            f"({info['extra']['clustering']['labels']} DBSCAN labels):"
        )
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        (out / "comparison.md").write_text(
            table.to_markdown(index=False, floatfmt=".4f") if _has_tabulate() else table.to_string(index=False)
        )
    print("\nforest:", json.dumps(info["extra"]["forest_params"]), "tuning:", json.dumps(info["extra"]["tuning"]))
    print("metrics:", json.dumps(info["metrics"]))
    print(f"saved web_events v{entry['version']} to {store.root}")
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def cmd_replay(args) -> int:
    from vigil.tasks.web_events.replay import replay

    settings, store = _settings_store(args)
    report = replay(Path(args.csv), args.url, store, batch_size=args.batch_size, timeout=args.timeout, limit=args.limit)
    print(json.dumps(report, indent=2))
    return 0 if report["agreement"] == 1.0 else 1


class WebEventsTask(Task):
    name = "web_events"
    slug = "web-events"
    title = "Web-attack events (ML-PT): DBSCAN labels, tuned forest, ML-PT's /predict"
    primary_metric = "cv_f1_weighted"
    row_cost = 20.0  # µs per event
    ui_template, ui_label = "tasks/web_events.html", "Web events"
    model_facts = ("attack_clusters", "good_clusters", "clustering")

    def add_cli(self, parser: argparse.ArgumentParser) -> None:
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

        def clustering_flags(p):
            p.add_argument("--min-samples", type=int, help="DBSCAN min_samples (default 2 x n_features)")
            p.add_argument("--eps", type=float, help="DBSCAN eps (default: the knee of the k-distance curve)")
            p.add_argument(
                "--sensitivity",
                type=float,
                default=None,
                help="Kneedle sensitivity S for the knee (default 20, as ML-PT)",
            )
            p.add_argument(
                "--attack-clusters",
                type=int,
                help="the N smallest clusters are attacks (default: all but the 11 largest, as ML-PT)",
            )
            p.add_argument("--jobs", type=int, default=1, help="parallel jobs (default 1)")
            p.add_argument("--out-dir", help="where plots and reports go (default runs/web_events)")

        generate = verbs.add_parser("generate", help="write realistic synthetic events (ML-PT's part_10.csv shape)")
        generate.add_argument("--rows", type=int, default=57_833, help="distinct events (default 57,833 as ML-PT)")
        generate.add_argument("--duplicates", type=int, help="extra duplicate rows (default 12 per 57,833)")
        generate.add_argument("--seed", type=int, default=0)
        generate.add_argument("--out", default="runs/web_events/events.csv")
        generate.set_defaults(handler=cmd_generate)

        describe = verbs.add_parser("describe", help="ML-PT's summary of an events CSV (counts, distinct, missing)")
        describe.add_argument("csv")
        describe.set_defaults(handler=cmd_describe)

        cluster = verbs.add_parser("cluster", help="DBSCAN labels with eps at the k-distance knee (PNG)")
        cluster.add_argument("--csv", help="raw events CSV (default: the shipped sample)")
        cluster.add_argument("--features", help="an already featurized matrix: .npz with array X")
        cluster.add_argument("--compare-labels", help=".npz with array y to compare the labels with")
        clustering_flags(cluster)
        cluster.set_defaults(handler=cmd_cluster, sensitivity=20.0)

        train = verbs.add_parser("train", help="compare classifiers, tune a random forest, save the model")
        train.add_argument("--csv", help="raw events CSV (default: the shipped sample); part_10.csv works")
        train.add_argument("--features", help="compare and tune on a featurized .npz (array X) instead; saves no model")
        train.add_argument("--labels", help="with --features: .npz with array y (default: DBSCAN labels of X)")
        train.add_argument("--folds", type=int, default=5, help="k of the repeated k-fold comparison (0 skips it)")
        train.add_argument("--repeats", type=int, default=2)
        train.add_argument("--n-iter", type=int, default=12, help="randomized-search candidates")
        train.add_argument("--tune-folds", type=int, default=3)
        train.add_argument("--no-tune", action="store_true", help="use ML-PT's tuned forest parameters as they are")
        train.add_argument(
            "--full",
            action="store_true",
            help="ML-PT-sized run: 13 candidates, 10-fold x 3, 50 random candidates, 5-fold tuning",
        )
        train.add_argument("--seed", type=int, default=0)
        clustering_flags(train)
        train.set_defaults(handler=cmd_train)

        replay = verbs.add_parser("replay", help="send a CSV to a running service and compare with offline labels")
        replay.add_argument("csv")
        replay.add_argument(
            "--url",
            default="http://127.0.0.1:8080/predict",
            help="service URL: /predict or /predict/web-events, or the base URL",
        )
        replay.add_argument("--batch-size", type=int, default=2000)
        replay.add_argument("--timeout", type=float, default=300.0)
        replay.add_argument("--limit", type=int, help="send only the first N events")
        replay.set_defaults(handler=cmd_replay)

    def train_default(self, store: ArtifactStore, settings: Settings) -> dict:
        path = settings.data_dir / SAMPLE_CSV
        frame = load_events_csv(path)
        pipeline, info, _ = train_model(frame, folds=0, tune=False, progress=False)
        return store.save(
            "web_events",
            pipeline,
            metrics=info["metrics"],
            feature_version=FEATURE_VERSION,
            data_fingerprint=data_fingerprint(path),
            extra={**info["extra"], "data": SAMPLE_CSV},
        )

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

    def request_schema(self) -> dict:
        return {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": {
                        "type": "string",
                        "description": f"one event as a JSON object string; NaN allowed; fields {', '.join(COLUMNS)}",
                    }
                },
            },
        }

    def example_request(self):
        return [event_to_request_record(event) for event in EXAMPLE_EVENTS]


__all__ = ["WebEventsTask", "label_events", "model_pipeline", "label_response", "train_model"]
