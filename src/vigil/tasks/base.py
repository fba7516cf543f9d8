"""The small interface every task implements, so training, saving and serving stay task-agnostic.

A task knows its data formats, featurizer, default estimator, metrics, and what its
``/predict/<slug>`` request and response look like. It never imports ``vigil.service``
or ``vigil.streaming``: the service hands it a :class:`PredictInput` and gets JSON back, and a stream
takes its :meth:`Task.window_processor` (written against :mod:`vigil.windows`).
Nor does it know any CLI: a task's verbs are the click group in its package's ``cli.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Sequence

from vigil.artifacts import ArtifactStore, LoadedModel
from vigil.config import Settings
from vigil.errors import PredictionTimeout

CHUNK_ROWS = 1024  # rows scored between two deadline checks, unless a task asks for another size


@dataclass
class PredictInput:
    """What the service received, already size-checked, in transport-neutral form."""

    json: Any = None  # parsed JSON body, or None when the body is not JSON
    body: bytes = b""  # raw body (e.g. a PE file posted as application/octet-stream)
    content_type: str = ""
    files: dict[str, bytes] = field(default_factory=dict)  # multipart uploads, form field -> bytes
    # the uploaded files' own names (what the client's disk called them), form field -> file name
    filenames: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)  # query-string parameters
    max_rows: int = 100_000
    # time.monotonic() past which the work must stop (set by the service from VIGIL_PREDICT_TIMEOUT_S)
    deadline: float | None = None
    time_limit_s: float | None = None  # the limit the deadline came from, for the error message
    # a numeric matrix the service decoded from a binary body (application/x-npy), for tasks with
    # ``tensor_input``; unchecked: the task checks shape and values (vigil.tensors.check_matrix)
    tensor: Any = None
    # what predict computed that explain may reuse (e.g. the feature vectors), so asking for
    # reasons does not featurize twice; tasks choose their keys
    computed: dict[str, Any] = field(default_factory=dict)

    def check_deadline(self) -> None:
        """Raise :class:`~vigil.errors.PredictionTimeout` once the deadline has passed."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise PredictionTimeout(
                f"prediction took longer than {self.time_limit_s or 0:g} s; stopped",
                {
                    "predict_timeout_s": self.time_limit_s,
                    "hint": "send fewer rows per request, or raise VIGIL_PREDICT_TIMEOUT_S",
                },
            )

    def chunks(self, rows: Sequence, size: int = CHUNK_ROWS) -> Iterator[tuple[int, Sequence]]:
        """``(start, rows[start:start + size])`` in order, checking the deadline before each chunk,
        so a prediction past its time limit stops instead of running on unseen::

            >>> [start for start, _ in PredictInput().chunks(range(5), size=2)]
            [0, 2, 4]
        """
        for start in range(0, len(rows), size):
            self.check_deadline()
            yield start, rows[start : start + size]

    def each(self, rows: Sequence, every: int = CHUNK_ROWS) -> Iterator[tuple[int, Any]]:
        """``enumerate(rows)``, checking the deadline before every ``every`` rows."""
        for start, chunk in self.chunks(rows, size=every):
            yield from enumerate(chunk, start)


class Task:
    """Base class: subclasses set the ClassVars and override what they support."""

    name: ClassVar[str]  # artifact key, snake_case ("web_events")
    slug: ClassVar[str]  # CLI verb and URL segment ("web-events")
    title: ClassVar[str]  # one line for humans
    # Estimated CPU microseconds one record of a /predict request costs (measured on the 2-core
    # reference machine, rounded up). rows x row_cost is held against VIGIL_PREDICT_COST_BUDGET_S.
    row_cost: ClassVar[float] = 100.0
    # True for a task whose model scores a numeric matrix (rows x features): the service then takes
    # application/x-npy bodies on /predict/<slug> (as PredictInput.tensor) and serves the Open
    # Inference Protocol's POST /v2/models/<slug>/infer through tensor_features / predict_tensor.
    tensor_input: ClassVar[bool] = False
    # The browser page for a person (/ui/<slug>): a template under web/templates/tasks/ and its short
    # name in the menu; None keeps the task on the generic "try the API" page only.
    ui_template: ClassVar[str | None] = None
    ui_label: ClassVar[str | None] = None
    # Keys of the model manifest's ``extra`` that GET /models shows (as ``facts``), e.g. which
    # clusters are attacks: facts a page needs to explain a verdict, nothing else of the manifest.
    model_facts: ClassVar[tuple[str, ...]] = ()
    # The JSON body ``/predict/<slug>`` takes, as a pydantic model or a type of them (e.g.
    # ``list[Reading] | Reading``), declared in ``tasks/<task>/requests.py``: its JSON schema is the
    # OpenAPI body (:meth:`request_schema`) and the task validates its records with it
    # (:func:`vigil.records.validate_records`), naming each fault ``{"index", "field", "message"}``.
    # A "module:attribute" string is imported on first use, so importing a task (the CLI's start)
    # does not import pydantic.
    request_model: ClassVar[Any] = None
    # (tasks with a stream) what ``vigil <slug> produce | stream | broker`` default to: ``topic``
    # (default ``vigil-<slug>``), ``group`` (the consumer group, default ``vigil-<slug>``), ``help``
    # (the ``stream`` verb's help line); the windows are :meth:`window_processor`'s.
    stream_defaults: ClassVar[dict[str, str]] = {}

    def train_default(self, store: ArtifactStore, settings: Settings) -> dict:
        """Train the default model on the sample data shipped in the repo; return the manifest entry."""
        raise NotImplementedError

    def window_processor(
        self,
        store: ArtifactStore,
        consumer_id: str,
        policy: Any = None,
        stream_info: dict | None = None,
    ) -> Any:
        """(optional) the :class:`vigil.windows.WindowProcessor` that scores this task's Kafka stream
        in windows (parses each message, scores a window, retrains by ``policy``, a
        :class:`vigil.drift.RetrainPolicy`), or None: a task without a stream. ``consumer_id`` names
        the consumer's heartbeat; ``stream_info`` holds the ``topic``, ``group`` and
        ``bootstrap_servers``. The registry mounts the stream verbs (:mod:`vigil.streaming.cli`) for
        a task that has one."""
        return None

    def message_key(self, value: bytes) -> bytes | None:
        """(optional, tasks with a stream) the Kafka key ``vigil <slug> produce`` gives one message of
        this task's stream, or None. Messages of one key go to one partition, so one consumer of a
        group sees them all: what a processor that keeps state per key (a DNS domain's evidence)
        needs when several consumers share the topic."""
        return None

    def predict(self, loaded: LoadedModel, request: PredictInput) -> dict | list:
        """Answer one ``/predict/<slug>`` request; raise :class:`vigil.errors.InvalidInput` for bad input."""
        raise NotImplementedError

    def tensor_features(self, loaded: LoadedModel) -> tuple[int, ...]:
        """(tensor_input tasks) the feature counts (matrix columns) ``loaded`` accepts."""
        raise NotImplementedError

    def predict_tensor(self, loaded: LoadedModel, matrix: Any, request: PredictInput) -> dict:
        """(tensor_input tasks) named output arrays, first axis the rows, for a numeric matrix
        (unchecked; see :func:`vigil.tensors.check_matrix`), e.g. ``{"probability": (n,) float64}``."""
        raise NotImplementedError

    def ui_picture(self, loaded: LoadedModel, args: dict[str, str]) -> tuple[bytes, str]:
        """(optional) a picture of ``loaded`` for the task's browser page, e.g. a decision boundary with
        the reading in ``args`` marked: ``(bytes, mimetype)``; raise InvalidInput for bad ``args``."""
        raise NotImplementedError

    def json_tensor(self, body: bytes) -> Any:
        """(tensor_input tasks) the numeric matrix of a JSON ``/predict/<slug>`` body that is nothing
        but feature vectors in the shape the task's schema accepts, read fast (orjson, numpy; see
        :func:`vigil.tensors.json_number_rows`), or None: the body then takes the general path.
        Such a body is answered as ``PredictInput.tensor``, exactly as the JSON path answers it."""
        return None

    def request_schema(self) -> dict | None:
        """JSON schema of the JSON body ``/predict/<slug>`` accepts (OpenAPI), from :attr:`request_model`."""
        model = self.request_type()
        if model is None:
            return None
        from vigil.records import json_schema

        return json_schema(model)

    def request_type(self) -> Any:
        """:attr:`request_model`, imported if it is given as "module:attribute"."""
        model = self.request_model
        if isinstance(model, str):
            import importlib

            module, _, attribute = model.partition(":")
            model = getattr(importlib.import_module(module), attribute)
        return model

    def explain(self, loaded: LoadedModel, request: PredictInput, result: Any, top: int) -> Any:
        """(optional) ``result`` (what :meth:`predict` answered for ``request``) with the ``top``
        reasons of each verdict added: every result item gets ``"reasons": [{"feature", "value",
        "contribution", "text"}, ...]``, the largest ``|contribution|`` first (see ``vigil.explain``).
        The service calls it for ``/predict/<slug>?explain=N``; a task without explanations answers
        as it is, and the service says so (``"explained": false``)."""
        raise NotImplementedError

    def sample_request(self, rng: Any) -> Any:
        """A request body that works, drawn with ``rng`` (a ``random.Random``) from the task's sample
        data where it has some (the UI's "try a real one" button); by default the example."""
        return self.example_request()

    def example_request(self) -> Any:
        """A request body that works, for docs and the browser UI."""
        return None
