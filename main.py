"""Alectio-style entry point: ``gunicorn --bind 0.0.0.0:5000 --timeout 2500000 main:app``."""

from vigil.service import create_app

app = create_app()
