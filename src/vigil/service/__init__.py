"""The Flask app, built by a factory with one blueprint per concern.

``gunicorn vigil.service:app`` imports the module-level ``app`` (created on first access);
tests call :func:`create_app` with their own settings.

This package's import is kept free of Flask, numpy and joblib on purpose: gunicorn's master
imports ``vigil.service.gunicorn_conf`` (and so this file) before it forks the workers, and a
numeric library loaded there would fix its thread pool size before the config limits it.
"""

from __future__ import annotations

import importlib
import logging

# Blueprint modules, in registration order; each exposes ``bp``.
BLUEPRINTS = [
    "vigil.service.health",
    "vigil.service.models",
    "vigil.service.predict",
    "vigil.service.v2",
    "vigil.service.admin",
    "vigil.service.metrics",
    "vigil.service.openapi",
    "vigil.service.compat.alectio",
    "vigil.service.compat.mlpt",
    "vigil.service.compat.dns",
    "vigil.service.compat.web_sessions",
    "vigil.service.ui",
    "vigil.service.favicon",
]


def create_app(settings=None, store=None):
    """Build the app: ``create_app(Settings, ArtifactStore) -> flask.Flask``."""
    from flask import Flask

    from vigil import jsonlog
    from vigil.artifacts import ArtifactStore
    from vigil.config import Settings
    from vigil.service.errors import register_error_handlers
    from vigil.service.jsonprovider import VigilJSONProvider
    from vigil.service.middleware import register_middleware
    from vigil.service.registry import ModelRegistry
    from vigil.service.request import VigilRequest

    jsonlog.configure("vigil", logging.INFO)
    settings = settings or Settings.from_env()
    store = store or ArtifactStore.from_settings(settings)
    # relative to the package folder (src/vigil), so the UI files are src/vigil/web/{templates,static}
    app = Flask("vigil", template_folder="web/templates", static_folder="web/static")
    app.config["VIGIL_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.request_class = VigilRequest  # bodies of declared length read in one call (service/request.py)
    app.json = VigilJSONProvider(app)  # numpy values anywhere in an answer become JSON here, once
    generation_file = settings.runtime_dir / "reload-generation" if settings.runtime_dir else None
    registry = ModelRegistry(store, generation_file=generation_file, max_rows=settings.max_rows)
    registry.reload()
    app.extensions["vigil.registry"] = registry
    app.extensions["vigil.store"] = store
    register_error_handlers(app)
    register_middleware(app)  # auth, limits, schemas, metrics and logs for every blueprint's routes
    for module_name in BLUEPRINTS:
        app.register_blueprint(importlib.import_module(module_name).bp)
    return app


def __getattr__(name: str):
    # PEP 562: build the gunicorn app lazily, so importing this package has no side effects.
    if name == "app":
        globals()["app"] = application = create_app()
        return application
    raise AttributeError(name)
