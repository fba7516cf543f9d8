"""Feature extraction in child processes with an address-space limit, one file at a time, recycled.

LIEF holds whatever a file's headers make it allocate, and gives little of it back (issue 11). So
raw features of files from outside (uploads, ``vigil ember extract``, ``classify``) are read in a
child process, and a bad file costs its own answer, never the server worker or the batch:

* the child's soft ``RLIMIT_AS`` is its size at start plus ``memory_bytes``, so it cannot take the
  machine's memory; a job that runs out (a ``MemoryError``, or LIEF turning a failed allocation into
  "not a PE file", which the child sees from its peak size reaching the limit) fails with
  :class:`WorkerFailure` naming the limit, and the child is replaced;
* a child that dies (a signal, ``os._exit``) fails only the job it was running, with a
  :class:`WorkerFailure` that says how it died (``died=True``); the next job gets a fresh child;
* a child is replaced after ``max_jobs`` jobs, and when it kept more than half its budget after a
  job (memory LIEF or malloc did not give back);
* the parent can wait with a time limit, and kills the child when it runs past it.

Children are forked from multiprocessing's fork server with the feature modules already imported: a
new child costs milliseconds, and the fork happens in a single-threaded process (the fork server),
not in a threaded parent such as a gunicorn worker.

Example::

    >>> pool = WorkerPool(extract_bytes)                              # doctest: +SKIP
    >>> raw, note = pool.run((open("t32.exe", "rb").read(), 2))
"""

from __future__ import annotations

import datetime as _dt
import logging
import multiprocessing
import os
import signal
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 64 << 20  # per file, uploads and `extract` (the service's default body limit)
MEMORY_BYTES = 1 << 30  # per child, above its size at start (~0.45 GB of mostly shared mappings)
MAX_JOBS = 200  # jobs per child before it is replaced
PEAK_SLACK_BYTES = 32 << 20  # a job whose peak came this close to the limit (at most 1/8 of it) ran out
EXIT_OUT_OF_MEMORY = 86  # a child that ran out of memory outside a job (receiving one) exits with this
# byte_kernels: numba and the compiled byte passes are loaded in the fork server, before any child
# sets its address-space limit (LLVM's library cannot be mapped under it), and inherited by the children
PRELOAD = ["vigil.tasks.ember.features", "vigil.tasks.ember.workers", "vigil.tasks.ember.byte_kernels", "lief"]


class WorkerFailure(Exception):
    """A job gave no answer: it raised, ran out of memory, ran too long, or its process died."""

    def __init__(self, reason: str, died: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.died = died


# -- the child ----------------------------------------------------------------------------------
def _vm_bytes(field: str) -> int | None:
    """VmSize / VmPeak of this process in bytes from /proc (None where there is no /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _limit_address_space(memory_bytes: int) -> int | None:
    """Soft RLIMIT_AS = current size + ``memory_bytes``; returns the limit (None if not set)."""
    import resource

    size = _vm_bytes("VmSize")
    if size is None:
        return None
    limit = size + memory_bytes
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


def _child_main(conn, function: Callable[[Any], Any], memory_bytes: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        _serve(conn, function, memory_bytes)
    except MemoryError:  # e.g. receiving a payload bigger than the budget: no answer can be sent
        os._exit(EXIT_OUT_OF_MEMORY)


def _serve(conn, function: Callable[[Any], Any], memory_bytes: int) -> None:
    start = _vm_bytes("VmSize") or 0
    limit = _limit_address_space(memory_bytes)
    slack = min(PEAK_SLACK_BYTES, memory_bytes // 8)
    while True:
        try:
            payload = conn.recv()
        except (EOFError, OSError):  # the parent is gone or closed the pipe
            return
        recycle = False
        try:
            answer = ("ok", function(payload))
        except MemoryError:
            answer, recycle = ("memory", None), True
        except Exception as exc:  # the job's own failure: reported, the child goes on
            answer = ("error", f"{type(exc).__name__}: {exc}"[:500])
        peak = _vm_bytes("VmPeak")
        if limit is not None and peak is not None and peak >= limit - slack:
            answer, recycle = ("memory", None), True
        size = _vm_bytes("VmSize")
        if size is not None and size - start > memory_bytes // 2:
            recycle = True  # kept too much: a fresh child for the next job
        try:
            conn.send(answer + (recycle,))
        except (OSError, ValueError):  # the parent is gone
            return
        except Exception as exc:  # an answer that cannot be pickled: say so instead
            conn.send(("error", f"the answer cannot be sent back ({type(exc).__name__}: {exc})"[:500], recycle))
        if recycle:
            return


# -- the parent ---------------------------------------------------------------------------------
def _context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)  # only takes effect when the fork server starts
    return context


def _death(exitcode: int | None) -> str:
    if exitcode is None:
        return "the extraction process stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the extraction process was killed by {name}"
    return f"the extraction process exited with status {exitcode}"


class ExtractionWorker:
    """One child process that runs ``function(payload)`` for one job at a time (not thread-safe)."""

    def __init__(self, function: Callable[[Any], Any], memory_bytes: int = MEMORY_BYTES, max_jobs: int = MAX_JOBS):
        self.function = function
        self.memory_bytes = int(memory_bytes)
        self.max_jobs = int(max_jobs)
        self._process: Any = None  # a multiprocessing Process of the fork-server context
        self._conn: Any = None  # our end of its Pipe
        self._jobs = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _start(self) -> None:
        context = _context()
        parent_conn, child_conn = context.Pipe()
        process = context.Process(
            target=_child_main,
            args=(child_conn, self.function, self.memory_bytes),
            name="vigil-ember-extract",
            daemon=True,
        )
        process.start()
        child_conn.close()
        self._process, self._conn, self._jobs = process, parent_conn, 0

    def run(self, payload: Any, timeout: float | None = None) -> Any:
        """``function(payload)`` in the child; raises :class:`WorkerFailure` when there is no answer."""
        if self._process is None or self._jobs >= self.max_jobs or not self._process.is_alive():
            self.close()
            self._start()
        self._jobs += 1
        try:
            self._conn.send(payload)
            if not self._conn.poll(timeout):
                self.close(kill=True)
                raise WorkerFailure(f"feature extraction took longer than {timeout:g} s", died=False)
            kind, value, recycle = self._conn.recv()
        except (EOFError, OSError):
            self._process.join(5)
            exitcode = self._process.exitcode
            self.close(kill=True)
            if exitcode == EXIT_OUT_OF_MEMORY:
                raise self._out_of_memory() from None
            log.warning("%s (it was extracting a file)", _death(exitcode))
            raise WorkerFailure(_death(exitcode), died=True) from None
        if recycle:
            self.close()
        if kind == "memory":
            raise self._out_of_memory()
        if kind == "error":
            raise WorkerFailure(f"feature extraction failed ({value})")
        return value

    def _out_of_memory(self) -> WorkerFailure:
        return WorkerFailure(f"feature extraction needed more than its memory limit of {self.memory_bytes >> 20} MiB")

    def close(self, kill: bool = False) -> None:
        """Stop the child (it exits when its pipe closes; ``kill``: at once)."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None:
            if kill and process.is_alive():
                process.kill()
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()


class WorkerPool:
    """Child processes shared by threads: each job takes an idle worker, or starts one.

    At most ``max_idle`` idle workers are kept between jobs; the pool is per process (a fork of the
    process, e.g. a gunicorn worker forked from a preloaded master, gets workers of its own).
    """

    def __init__(
        self,
        function: Callable[[Any], Any],
        memory_bytes: int = MEMORY_BYTES,
        max_jobs: int = MAX_JOBS,
        max_idle: int = 2,
    ):
        self.function, self.memory_bytes, self.max_jobs, self.max_idle = function, memory_bytes, max_jobs, max_idle
        self._idle: list[ExtractionWorker] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def run(self, payload: Any, timeout: float | None = None) -> Any:
        worker = self._checkout()
        try:
            return worker.run(payload, timeout)
        finally:
            self._checkin(worker)

    def _checkout(self) -> ExtractionWorker:
        with self._lock:
            if self._pid != os.getpid():  # inherited through fork: those children are not ours
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        return ExtractionWorker(self.function, self.memory_bytes, self.max_jobs)

    def _checkin(self, worker: ExtractionWorker) -> None:
        with self._lock:
            if worker.pid is not None and len(self._idle) < self.max_idle and self._pid == os.getpid():
                self._idle.append(worker)
                return
        worker.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


# -- the jobs: file content (the service, `classify`) or a path (`extract`) ----------------------
def extract_bytes(job: tuple[bytes, int]) -> tuple[dict, str | None]:
    """(raw record, note) of one file's content; runs in the child."""
    content, feature_version = job
    from vigil.tasks.ember.features import FeatureExtractor  # preloaded in the children (PRELOAD)

    return FeatureExtractor(feature_version).raw_features_and_note(content)


def oversized(size: int, max_file_bytes: int) -> str | None:
    """Why a file of ``size`` bytes is refused, or None."""
    if size > max_file_bytes:
        return f"{size} bytes, over the limit of {max_file_bytes} bytes per file"
    return None


def extract_file(job: tuple[str, int, int, int]) -> tuple[str, Any, str | None]:
    """("record", raw record, note) or ("skip", None, reason) for one file; runs in a child process."""
    path, label, feature_version, max_file_bytes = job
    try:
        with open(path, "rb") as handle:
            status = os.fstat(handle.fileno())
            too_large = oversized(status.st_size, max_file_bytes)
            if too_large:
                return "skip", None, too_large
            bytez = handle.read(status.st_size + 1)  # never more than the limit, even if the file grows
    except OSError as exc:
        return "skip", None, f"cannot read: {exc.strerror or exc}"
    if len(bytez) > status.st_size:
        return "skip", None, "the file grew while it was read"
    mtime = _dt.datetime.fromtimestamp(status.st_mtime, _dt.timezone.utc)
    from vigil.tasks.ember.features import FeatureExtractor

    raw, note = FeatureExtractor(feature_version).raw_features_and_note(bytez)
    record = {"sha256": raw.pop("sha256"), "appeared": mtime.strftime("%Y-%m"), "label": label}
    if feature_version >= 2:
        record["avclass"] = ""
    record.update(raw)
    return "record", record, note
