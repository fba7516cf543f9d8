"""Kafka streaming for any task: the embedded Tansu broker, the producer, the windowed consumer with
manual commits, the per-window results (SQLite, CSV, plot, summary) and the stream verbs.

What a message means and how a window is scored is the task's: its ``Task.window_processor`` returns
a :class:`vigil.windows.WindowProcessor`. Streaming code reaches tasks only through that interface,
the registry and the artifact store, and names none; tasks never import this package.
"""
