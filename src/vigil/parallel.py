"""Numeric work split over the process's thread budget, for kernels that let go of the GIL (numba's
``nogil``, numpy's ufunc loops): :func:`in_parts` runs ``function(start, stop)`` over contiguous
ranges of rows, one part per worker thread, and the caller waits.

Each worker is kept to one core of the process's own (``os.sched_getaffinity``), in turn. On the
2-vCPU reference VM a thread woken while its core sat idle was often queued on the waker's busy
core instead, so the two halves of a batch ran one after the other (the batch took the one-thread
time) in about half the requests that followed a one-thread phase. With each worker kept to its own
core, and the caller waiting rather than computing a part itself, they ran side by side in every
request measured (docs/performance.md, stop 30). A worker never asks for a core the process may not
use; where the system refuses, it runs unpinned.

>>> import numpy as np
>>> rows = np.arange(10.0)
>>> in_parts(lambda start, stop: float(rows[start:stop].sum()), len(rows), threads=2, minimum=4)
[10.0, 35.0]
"""

from __future__ import annotations

import functools
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import numpy as np

T = TypeVar("T")


def in_parts(function: Callable[[int, int], T], count: int, threads: int, minimum: int) -> list[T]:
    """``function(start, stop)`` over ``[0, count)`` in at most ``threads`` contiguous parts of at
    least ``minimum`` rows each, in the order of the parts; on the calling thread alone where that
    makes one part (no hand-over for a small batch)."""
    parts = min(threads, count // max(1, minimum))
    if parts <= 1:
        return [function(0, count)]
    bounds = np.linspace(0, count, parts + 1).astype(int).tolist()
    pool = _pool(threads, os.getpid())  # a forked child makes its own: its parent's threads are not in it
    futures = [pool.submit(function, start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]
    return [future.result() for future in futures]


@functools.cache
def _pool(threads: int, pid: int) -> ThreadPoolExecutor:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    turn = itertools.count()

    def keep_to_one_core() -> None:
        if cores:
            try:
                os.sched_setaffinity(0, {cores[next(turn) % len(cores)]})  # 0: this thread, on Linux
            except OSError:
                pass

    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vigil-parts", initializer=keep_to_one_core)
