"""The small interface every task implements, so training, saving, serving and the CLI
stay task-agnostic.

A task knows its data formats, featurizer, default estimator, metrics, and what its
``/predict/<slug>`` request and response look like. It never imports ``vigil.service``
or ``vigil.streaming``: the service hands it a :class:`PredictInput` and gets JSON back.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vigil.artifacts import ArtifactStore, LoadedModel
from vigil.config import Settings


@dataclass
class PredictInput:
    """What the service received, already size-checked, in transport-neutral form."""

    json: Any = None  # parsed JSON body, or None when the body is not JSON
    body: bytes = b""  # raw body (e.g. a PE file posted as application/octet-stream)
    content_type: str = ""
    files: dict[str, bytes] = field(default_factory=dict)  # multipart uploads, name -> bytes
    args: dict[str, str] = field(default_factory=dict)  # query-string parameters
    max_rows: int = 100_000


class Task:
    """Base class: subclasses set the ClassVars and override what they support."""

    name: ClassVar[str]  # artifact key, snake_case ("web_events")
    slug: ClassVar[str]  # CLI verb and URL segment ("web-events")
    title: ClassVar[str]  # one line for humans
    primary_metric: ClassVar[str] = "roc_auc"

    def add_cli(self, parser: argparse.ArgumentParser) -> None:
        """Add this task's verbs (``vigil <slug> <verb>``) to ``parser``."""

    def train_default(self, store: ArtifactStore, settings: Settings) -> dict:
        """Train the default model on the sample data shipped in the repo; return the manifest entry."""
        raise NotImplementedError

    def predict(self, loaded: LoadedModel, request: PredictInput) -> dict | list:
        """Answer one ``/predict/<slug>`` request; raise :class:`vigil.errors.InvalidInput` for bad input."""
        raise NotImplementedError

    def request_schema(self) -> dict | None:
        """JSON schema of the JSON body ``/predict/<slug>`` accepts (for validation and OpenAPI)."""
        return None

    def example_request(self) -> Any:
        """A request body that works, for docs and the browser UI."""
        return None

    def describe(self) -> dict:
        return {"task": self.name, "slug": self.slug, "title": self.title}
