"""Kafka streaming: the embedded Tansu broker, the producer, the windowed consumer with manual commits,
the retrain policy, and the per-window results (SQLite, CSV, plot, summary).

Streaming code reaches tasks only through their public modules and the artifact store; tasks never
import this package.
"""
