"""The task contract, for every registered task and for a sixth one added by CONTRIBUTING's recipe.

Every task trains its default model on the shipped sample into a fresh store, its example request
validates against its schema and gets an answer, the saved artifact answers the same after a fresh
load and is one fitted estimator (no dict bundle), and ``vigil <slug> --help`` exits 0. The sixth
task is a package in a temporary folder with ``task.py`` and ``cli.py`` only, registered with one
line; the CLI mounts it without naming it.
"""

from __future__ import annotations

import json
import textwrap

import jsonschema_rs
import pytest
from sklearn.base import BaseEstimator

from vigil.artifacts import ArtifactStore
from vigil.cli import main
from vigil.config import Settings
from vigil.tasks import TASKS, PredictInput, Task, TaskSpec, all_tasks, get_task

FAST = {"iot_anomaly"}  # trains in under a second; the others take 3-15 s on the 2-core machine


def settings_for(tmp_path, **overrides) -> Settings:
    return Settings.from_env(
        models_dir=tmp_path / "models", work_dir=tmp_path / "runs", bucket_root=tmp_path / "bucket", **overrides
    )


def check_contract(task: Task, settings: Settings) -> None:
    """train_default -> example validates -> predict answers -> the reloaded artifact answers the same."""
    assert TASKS[task.name].slug == task.slug, "the registry line and the class name the same slug"
    store = ArtifactStore.from_settings(settings)
    entry = task.train_default(store, settings)
    assert entry["task"] == task.name and entry["version"]
    example = task.example_request()
    schema = task.request_schema()
    if schema is not None:
        assert jsonschema_rs.validator_for(schema).is_valid(example), "the example request fits the schema"
    body = json.dumps(example).encode()
    request = PredictInput(json=json.loads(body), body=body, content_type="application/json")
    answer = task.predict(store.load(task.name), request)
    assert answer and isinstance(answer, (dict, list))
    json.dumps(answer)  # plain JSON, whatever the model computes in
    fresh = ArtifactStore(store.root, model_key=settings.model_key, state_dir=settings.state_path)
    reloaded = fresh.load(task.name)  # read, verified and unpickled again from the bytes on disk
    assert reloaded.version == entry["version"]
    assert task.predict(reloaded, request) == answer
    for saved in fresh.entries():  # every artifact the task saved (DNS: the CIC and the real-traffic model)
        model = fresh.load(saved["task"], saved["version"]).model
        assert isinstance(model, BaseEstimator) and hasattr(model, "predict"), (
            f"{saved['task']} is saved as one fitted estimator (threshold and metrics in the manifest), "
            f"not a {type(model).__name__}"
        )


@pytest.mark.parametrize(
    "task",
    [pytest.param(task, id=task.slug, marks=() if task.name in FAST else pytest.mark.slow) for task in all_tasks()],
)
def test_every_task_honours_the_contract(task, tmp_path):
    check_contract(task, settings_for(tmp_path))


@pytest.mark.parametrize("slug", [spec.slug for spec in TASKS.values()])
def test_every_task_group_answers_help(slug, capsys):
    assert main([slug, "--help"]) == 0
    assert f"Usage: vigil {slug}" in capsys.readouterr().out


def test_vigil_stream_mounts_the_stream_verb_of_the_tasks_that_have_one(capsys):
    assert main(["stream", "--help"]) == 0
    listed = capsys.readouterr().out.split("Commands:")[1].split()
    assert "dns" in listed and "iot-anomaly" not in listed
    assert main(["stream", "dns", "--help"]) == 0
    assert "--broker-timeout" in capsys.readouterr().out


TOY_TASK = '''
"""A toy task: is a reading above the threshold? (the CONTRIBUTING recipe, followed by a test)."""

from __future__ import annotations

from vigil.artifacts import ArtifactStore, LoadedModel, data_fingerprint
from vigil.config import Settings
from vigil.errors import InvalidInput
from vigil.files import read_csv_checked
from vigil.tasks.base import PredictInput, Task


def train(store: ArtifactStore, settings: Settings) -> dict:
    from sklearn.linear_model import LogisticRegression

    path = settings.data_dir / "toy" / "sample.csv"
    frame = read_csv_checked(path, ["reading", "odd"], what="toy sample")
    model = LogisticRegression().fit(frame[["reading"]].to_numpy(), frame["odd"].to_numpy())
    return store.save("toy", model, metrics={"rows": float(len(frame))}, data_fingerprint=data_fingerprint(path))


class ToyTask(Task):
    name = "toy"
    slug = "toy"
    title = "Toy readings: odd or not?"
    row_cost = 10.0

    def train_default(self, store, settings):
        return train(store, settings)

    def predict(self, loaded: LoadedModel, request: PredictInput):
        readings = (request.json or {}).get("readings")
        if not isinstance(readings, list) or not readings:
            raise InvalidInput("send {\\"readings\\": [numbers]}", {"field": "readings"})
        scores = loaded.model.predict_proba([[float(r)] for r in readings])[:, 1]
        return {"results": [{"index": i, "odd": bool(p >= 0.5), "probability": round(float(p), 6)} for i, p in enumerate(scores)]}

    def request_schema(self):
        return {"type": "object", "required": ["readings"], "properties": {"readings": {"type": "array", "items": {"type": "number"}}}}

    def example_request(self):
        return {"readings": [1.0, 9.0]}
'''

TOY_CLI = '''
"""``vigil toy train``."""

import click

from vigil.context import with_args


@click.group(help="Toy readings: odd or not?", no_args_is_help=True)
def commands():
    pass


@commands.command("train", help="fit the toy model on the sample and save it")
@with_args
def cmd_train(args):
    from toy_task.task import train

    entry = train(args.store, args.settings)
    print(f"saved toy v{entry['version']}")
'''


@pytest.fixture
def sixth_task(tmp_path, monkeypatch):
    """A package toy_task/ with task.py and cli.py in a temporary folder, its sample, one registry line."""
    package = tmp_path / "plugins" / "toy_task"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""The toy task."""\n')
    (package / "task.py").write_text(textwrap.dedent(TOY_TASK))
    (package / "cli.py").write_text(textwrap.dedent(TOY_CLI))
    data = tmp_path / "data" / "toy"
    data.mkdir(parents=True)
    (data / "sample.csv").write_text("reading,odd\n" + "".join(f"{i},{int(i > 5)}\n" for i in range(11)))
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path / "data"))  # where the CLI's settings look
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    monkeypatch.setitem(TASKS, "toy", TaskSpec("toy_task.task:ToyTask", "toy"))  # the one line
    get_task.cache_clear()
    yield settings_for(tmp_path, data_dir=tmp_path / "data")
    get_task.cache_clear()


def test_a_sixth_task_added_by_the_recipe_is_mounted_and_honours_the_contract(sixth_task, tmp_path, capsys):
    assert main(["--help"]) == 0
    assert "toy" in capsys.readouterr().out
    assert main(["toy", "--help"]) == 0
    assert "fit the toy model" in capsys.readouterr().out
    models = str(sixth_task.models_dir)
    assert main(["--models-dir", models, "toy", "train"]) == 0
    assert "saved toy v" in capsys.readouterr().out
    assert main(["toy", "nonsense"]) == 2
    assert [task.name for task in all_tasks()][-1] == "toy"
    check_contract(get_task("toy"), sixth_task)
