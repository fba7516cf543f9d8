"""``vigil iot-anomaly tune | train | classify | plot | compare`` (a click group, mounted by the root)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vigil.context import with_args
from vigil.errors import InvalidInput

ESTIMATOR_KEYS = ("mlp", "adaboost", "forest", "svc")  # the detector's estimators (detector.ESTIMATORS)


@click.group(help="IoT anomalies: is this (class, length, width) reading an odd object?", no_args_is_help=True)
def commands() -> None:
    pass


def data_options(function):
    """The data flags every fitting verb takes."""
    options = [
        click.option("--data", help="folder with body.csv, db_moto.csv, cars93.csv (default: data/iot_anomaly)"),
        click.option("--odd-points", type=int, default=1000, help="random odd points to add (default 1000)"),
        click.option("--seed", type=int, default=0, help="seed of the odd points and the split"),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _json_arg(text: str | None, what: str) -> dict | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{what} is not valid JSON", str(exc)) from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object", text)
    return value


def _normalise_params(params: dict) -> dict:
    # JSON has no tuples; MLP layer sizes come in as lists.
    return {k: tuple(v) if isinstance(v, list) and k == "hidden_layer_sizes" else v for k, v in params.items()}


def _normalise_grid(grid: dict) -> dict:
    out = {}
    for key, values in grid.items():
        if not isinstance(values, list):
            values = [values]
        out[key] = [tuple(v) if isinstance(v, list) else v for v in values]
    return out


@commands.command("tune", help="cross-validated grid search; writes params-<timestamp> score files and plots")
@data_options
@click.option(
    "--estimators", default="mlp,adaboost,forest,svc", help=f"comma-separated, among {','.join(ESTIMATOR_KEYS)}"
)
@click.option("--n-jobs", type=int, default=1, help="parallel parameter combinations (default 1)")
@click.option("--cv", type=int, default=5, help="cross-validation folds (default 5)")
@click.option("--grid", help='JSON replacing default grids, e.g. \'{"svc": {"C": [0.1, 1]}}\'')
@click.option("--out", help="output folder (default: runs/iot_anomaly)")
@click.option("--save", is_flag=True, help="save the best model found to the model store")
@click.option("--per-fold", is_flag=True, help="one scores row per fold, as the original's beautify.py wrote them")
@with_args
def cmd_tune(args) -> int:
    from vigil.tasks.iot_anomaly.task import IotAnomalyTask

    task = IotAnomalyTask()
    from sklearn.model_selection import ParameterGrid
    from tqdm import tqdm

    from vigil.tasks.iot_anomaly.detector import estimator_spec, resolve_grid
    from vigil.tasks.iot_anomaly.tuning import ScoreFiles, plot_scores

    settings, store = args.settings, args.store
    keys = [k.strip() for k in args.estimators.split(",") if k.strip()]
    specs = [estimator_spec(k) for k in keys]
    overrides = _json_arg(args.grid, "--grid") or {}
    unknown = set(overrides) - set(keys)
    if unknown:
        raise InvalidInput("--grid names estimators not in --estimators", sorted(unknown))
    for key, grid in overrides.items():
        if not isinstance(grid, dict):
            raise InvalidInput(f"--grid: the grid of '{key}' must be a JSON object of parameter lists", grid)
    # Resolved (and checked) before any fitting, so a wrong key fails at once, naming ittask.
    grids = {
        spec.key: resolve_grid(spec.factory(args.seed), _normalise_grid(overrides.get(spec.key, spec.grid)))
        for spec in specs
    }
    detector = task.detector(settings, args.data, args.odd_points, args.seed)
    out = Path(args.out) if args.out else settings.work_dir / "iot_anomaly"
    files = ScoreFiles(out, per_fold=args.per_fold)
    total = sum(len(ParameterGrid(g)) for g in grids.values())
    print(
        f"{len(detector.xtrain)} training rows, {total} combinations x {args.cv} folds -> {files.scores_path}",
        flush=True,
    )
    best: tuple = (-1.0, None, None, None)
    interrupted = False
    try:
        with tqdm(total=total, unit="combo", file=sys.stderr) as bar:
            for spec in specs:
                bar.set_description(spec.key)

                def on_row(row, bar=bar, best_so_far=[-1.0]):  # noqa: B006 - the list is this closure's running best
                    files.write(row)
                    best_so_far[0] = max(best_so_far[0], row.scores["f1"])
                    bar.update(1)
                    bar.set_postfix(best_f1=f"{best_so_far[0]:.4f}")

                result = detector.tune_parameters(
                    spec.factory(args.seed), grids[spec.key], cv=args.cv, n_jobs=args.n_jobs, on_row=on_row
                )
                tqdm.write(
                    f"{spec.class_name}: best cross-validated F1 {result.best_f1:.4f} with {result.best_params}",
                    file=sys.stderr,
                )
                if result.best_model is not None and result.best_f1 > best[0]:
                    best = (result.best_f1, spec, result.best_params, result.best_model)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        files.close()
    plots = plot_scores(files.scores_path, files.params_paths.values(), out, parameters=files.grid_params)
    rows = sum(1 for _ in open(files.scores_path)) - 1
    print(f"scores: {files.scores_path} ({rows} rows)")
    for path in files.params_paths.values():
        print(f"params: {path}")
    print(f"plots:  {len(plots)} PNG in {out}")
    if interrupted:
        print(f"interrupted: the {rows} rows scored so far are kept", file=sys.stderr)
        return 130
    if args.save and best[1] is not None:
        _, spec, params, model = best
        evaluation = detector.evaluate(model)
        entry = task.save_model(store, detector, model, spec, params, dict(evaluation), args.seed, tuned_by=files.stem)
        print(f"saved {spec.class_name} as {task.name} v{entry['version']}: test F1 {evaluation['f1']:.4f}")
    return 0


@commands.command("train", help="fit the detector and save it (default: the tuned AdaBoost)")
@data_options
@click.option("--estimator", default="adaboost", type=click.Choice(ESTIMATOR_KEYS))
@click.option("--params", help="JSON estimator parameters, e.g. '{\"n_estimators\": 46}'")
@click.option("--plots", help="folder for the decision-boundary PNGs (default: runs/iot_anomaly)")
@click.option("--no-plots", is_flag=True)
@with_args
def cmd_train(args) -> int:
    from vigil.tasks.iot_anomaly.task import IotAnomalyTask

    task = IotAnomalyTask()
    settings, store = args.settings, args.store
    params = _json_arg(args.params, "--params")
    params = None if params is None else _normalise_params(params)
    detector = task.detector(settings, args.data, args.odd_points, args.seed)
    entry, model = task.fit_and_save(store, detector, args.estimator, params, seed=args.seed)
    m = entry["metrics"]
    print(
        f"saved {task.name} v{entry['version']} ({entry['extra']['estimator']}): "
        f"TPR {m['tpr']:.4f} FPR {m['fpr']:.4f} F1 {m['f1']:.4f} on {m['test_rows']} test rows"
    )
    if not args.no_plots:
        folder = Path(args.plots) if args.plots else settings.work_dir / "iot_anomaly"
        paths = [
            detector.plot(folder / "dataset.png"),
            *detector.plot_decision_boundaries(model, folder, title=entry["extra"]["estimator"]),
        ]
        print("plots: " + ", ".join(str(p) for p in paths))
    return 0


@commands.command(
    "classify",
    help="malicious / non-malicious for one reading (LENGTH and WIDTH in mm), with the probability",
    context_settings={"ignore_unknown_options": True},  # a negative LENGTH is a value to refuse, not an option
)
@click.argument("object_class", metavar="CLASS")
@click.argument("length", metavar="LENGTH")
@click.argument("width", metavar="WIDTH")
@click.option("--json", "json_output", is_flag=True, help="print the answer as JSON")
@with_args
def cmd_classify(args) -> int:
    from vigil.tasks.iot_anomaly.task import IotAnomalyTask, normalise_item, validate_item

    task = IotAnomalyTask()
    store = args.store
    loaded = store.load(task.name)
    classes = task.model_classes(loaded)
    item = {"class": args.object_class, "length": args.length, "width": args.width}
    problems = validate_item(item, classes, strings_are_numbers=True)
    if problems:
        raise InvalidInput(f"{problems[0]['field']}: {problems[0]['message']}")
    answer = task.score_rows(loaded.model, [normalise_item(item, classes)])[0]
    if args.json_output:
        print(json.dumps({**answer, "model_version": loaded.version}))
    else:
        print(f"{answer['label']} (probability of odd {answer['probability']:.4f}; model v{loaded.version})")
    return 0


@commands.command("plot", help="decision-boundary PNG per class for the saved model")
@data_options
@click.option("--out", help="folder (default: runs/iot_anomaly)")
@with_args
def cmd_plot(args) -> int:
    from vigil.tasks.iot_anomaly.task import IotAnomalyTask

    task = IotAnomalyTask()
    settings, store = args.settings, args.store
    from vigil.tasks.iot_anomaly.data import OddPointBox
    from vigil.tasks.iot_anomaly.plots import plot_decision_boundaries

    loaded = store.load(task.name)
    detector = task.detector(settings, args.data, args.odd_points, args.seed)
    box_dict = loaded.entry.get("extra", {}).get("odd_point_box")
    box = OddPointBox(box_dict["length_mm"][1], box_dict["width_mm"][1]) if box_dict else detector.box
    folder = Path(args.out) if args.out else settings.work_dir / "iot_anomaly"
    paths = plot_decision_boundaries(
        loaded.model,
        task.model_classes(loaded),
        box,
        folder,
        points=detector.df,
        title=f"{loaded.entry.get('extra', {}).get('estimator', '')} v{loaded.version}",
    )
    for path in paths:
        print(path)
    return 0


@commands.command("compare", help="the original's published table next to ours (one split)")
@data_options
@click.option("--seeds", type=int, default=1, help="also average over this many seeds")
@with_args
def cmd_compare(args) -> int:
    from vigil.tasks.iot_anomaly.task import IotAnomalyTask, comparison_table

    task = IotAnomalyTask()
    settings = args.settings
    seeds = range(args.seed, args.seed + max(args.seeds, 1))
    print(comparison_table(task, settings, args.data, args.odd_points, seeds))
    return 0
