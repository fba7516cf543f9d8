"""vigil.parallel: numeric work in parts on workers kept to one core each, and the matrix check that
uses it (vigil.tensors.check_matrix with threads): same answers, same refusals, whichever part the
bad value falls in."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from vigil import tensors
from vigil.errors import UnprocessableInput
from vigil.parallel import in_parts
from vigil.tensors import check_matrix


@pytest.fixture
def small_parts(monkeypatch):
    """Parts of 200,000 values: these test matrices (1.2-2.1M values) are looked at in 2-3 parts,
    where the service's threshold would look at them on the calling thread alone."""
    monkeypatch.setattr(tensors, "_PART_VALUES", 200_000)


def test_parts_cover_the_rows_in_order_on_worker_threads():
    seen: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def part(start: int, stop: int) -> tuple[int, int]:
        with lock:
            seen.append((start, stop, threading.current_thread().name))
        return start, stop

    assert in_parts(part, 1000, threads=3, minimum=100) == [(0, 333), (333, 666), (666, 1000)]
    assert all(name.startswith("vigil-parts") for _, _, name in seen)  # the caller only waits


def test_a_small_batch_stays_on_the_calling_thread():
    names = in_parts(lambda start, stop: threading.current_thread().name, 150, threads=4, minimum=100)
    assert names == [threading.current_thread().name]
    assert in_parts(lambda start, stop: (start, stop), 0, threads=2, minimum=1) == [(0, 0)]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this system")
def test_each_worker_is_kept_to_one_core_of_the_process():
    own = os.sched_getaffinity(0)
    cores = in_parts(lambda start, stop: os.sched_getaffinity(0), 4, threads=2, minimum=1)
    assert all(len(allowed) == 1 and allowed <= own for allowed in cores)
    assert os.sched_getaffinity(0) == own  # the caller's own affinity is left as it was


def test_an_exception_in_a_part_reaches_the_caller():
    def part(start: int, stop: int) -> None:
        if start:
            raise ValueError(f"part at {start}")

    with pytest.raises(ValueError, match="part at 50"):
        in_parts(part, 100, threads=2, minimum=10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("row", [0, 499, 500, 999])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])
def test_split_check_names_the_first_bad_value_in_any_part(dtype, row, bad, small_parts):
    matrix = np.ones((1000, 1200), dtype=dtype)
    if dtype == np.float32 and bad == 1e39:
        bad = np.inf  # past float32's range is inf once in float32
    matrix[row, 7] = bad
    matrix[999, 11] = np.nan  # a later bad value: the first one is named
    first = (row, 7) if row < 999 else (999, 7)
    for threads in (1, 2, 3):
        with pytest.raises(UnprocessableInput, match=f"vector {first[0]}, value {first[1]} is not a finite float32"):
            check_matrix(matrix, (1200,), threads=threads)


def test_split_check_passes_what_the_one_thread_check_passes(small_parts, monkeypatch):
    rng = np.random.default_rng(0)
    matrix = (rng.standard_normal((900, 2381)) * 1e30).astype(np.float32)
    matrix[5, :] = np.finfo(np.float32).max  # the largest finite values pass
    parts: list[tuple[int, int]] = []
    look = tensors._within_float32
    monkeypatch.setattr(
        tensors, "_within_float32", lambda m, start, stop: parts.append((start, stop)) or look(m, start, stop)
    )
    one, split = check_matrix(matrix, (2381,)), check_matrix(matrix, (2381,), threads=2)
    assert parts == [(0, 900), (0, 450), (450, 900)]  # one part on one thread, then two
    assert np.array_equal(one, split) and split.dtype == np.float32 and split.flags.c_contiguous


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this system")
def test_a_forked_child_scores_in_parts_on_threads_of_its_own():
    in_parts(lambda start, stop: None, 4, threads=2, minimum=1)  # the parent's pool exists
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's outcome is its exit status
        code = 1
        try:
            code = 0 if in_parts(lambda start, stop: stop - start, 4, threads=2, minimum=1) == [2, 2] else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60  # with the parent's dead pool the child would wait for ever
    while (done := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        pytest.fail("the forked child never got its parts scored")
    assert os.waitstatus_to_exitcode(done[1]) == 0
