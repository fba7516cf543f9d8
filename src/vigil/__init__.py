"""Vigil: security machine learning, from telemetry to decisions."""

__version__ = "0.1.0"
