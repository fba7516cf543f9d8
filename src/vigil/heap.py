"""The cyclic garbage collector kept out of the way: off the objects a long-running process loads once at
start-up, and paused while work builds many objects that cannot form cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


def freeze_startup_heap() -> None:
    """Collect, then move every object alive now (modules, the loaded models, the app) into the
    garbage collector's permanent generation (``gc.freeze``), so the collections that later work
    triggers scan only what it allocates, not the whole process (a POST /predict of 10,000 events
    spent a fifth of its time in such collections, a stream's window of query names a quarter).
    Gunicorn's ``post_worker_init`` calls it once the worker has built the app, the windowed
    consumer once its processor has restored its state; objects that later become garbage are
    still freed by reference counting."""
    gc.collect()
    gc.freeze()


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for the block (and on again after it, if it was on): for work that
    builds many objects with no reference cycles (parsed JSON cannot make one), which reference
    counting frees and which the collector would otherwise walk again and again as they grow."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
