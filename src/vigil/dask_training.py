"""LightGBM on a Dask cluster, for any task whose estimator is an ``LGBMClassifier``.

``--dask ADDRESS`` on a train verb names the cluster:

* ``tcp://host:8786``: an existing scheduler (``dask scheduler`` / ``dask worker tcp://host:8786``,
  or the compose file's ``dask-scheduler`` and ``dask-worker`` services);
* ``local:N``: a ``LocalCluster`` of N worker processes on this machine, listening on 127.0.0.1 only
  (for trying it out, and for the tests).

Training goes through LightGBM's own Dask interface (``lightgbm.DaskLGBMClassifier``, data-parallel
tree learner): each worker holds its partitions of X, LightGBM's workers talk to each other over
their own sockets, and the result is turned back into a plain ``LGBMClassifier`` (``to_local()``),
so the saved artifact is the one single-machine training saves.

LightGBM documents that distributed training does not reproduce single-machine training bit for bit
(bins are found on each worker's share of the rows, and floating-point sums are taken in another
order); compare the scores' AUC or rank correlation, not the bytes.

Example::

    >>> with dask_client("local:2") as client:                                   # doctest: +SKIP
    ...     classifier, info = fit_dask_lightgbm(make_estimator("ember"), X, y, client)
"""

from __future__ import annotations

import contextlib
import re
import warnings
from typing import Any, Iterator

LOCAL = re.compile(r"local:(\d+)")


def parse_dask_address(address: str) -> tuple[str, Any]:
    """``("local", N)`` for ``local:N``, ``("scheduler", address)`` for ``tcp://host:port`` (and tls://)."""
    match = LOCAL.fullmatch(address.strip())
    if match:
        workers = int(match.group(1))
        if not 1 <= workers <= 256:
            raise ValueError(f"--dask local:N needs 1 <= N <= 256, not {workers}")
        return "local", workers
    if re.fullmatch(r"(tcp|tls|ucx)://[^\s/:]+:\d+", address.strip()):
        return "scheduler", address.strip()
    raise ValueError(f"--dask must be tcp://HOST:PORT (a running dask scheduler) or local:N, not {address!r}")


def _dask_modules():
    try:
        import dask.array  # noqa: F401
        import distributed
    except ImportError as exc:  # an optional dependency: say how to get it
        raise ValueError(
            "--dask needs dask and distributed (pip install 'dask[array]' distributed; "
            f"pinned in requirements.txt): {exc}"
        ) from None
    return distributed


@contextlib.contextmanager
def dask_client(address: str, threads_per_worker: int = 1, memory_limit: str | int = "auto") -> Iterator[Any]:
    """A ``distributed.Client`` on ``address``; for ``local:N`` the LocalCluster is closed afterwards."""
    distributed = _dask_modules()
    kind, target = parse_dask_address(address)
    if kind == "local":
        cluster = distributed.LocalCluster(
            n_workers=target,
            threads_per_worker=max(1, int(threads_per_worker or 1)),
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit=memory_limit,
            silence_logs=40,
        )
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
    else:
        try:
            client = distributed.Client(target, timeout=30)
        except OSError as exc:
            raise ValueError(f"cannot reach the dask scheduler at {target}: {exc}") from None
        with client:
            yield client


def fit_dask_lightgbm(estimator, X, y, client) -> tuple[Any, dict]:
    """Fit a copy of ``estimator``'s parameters with ``DaskLGBMClassifier`` on dask arrays ``X``, ``y``.

    Returns ``(LGBMClassifier, info)``: the fitted model made local, and what ran where.
    """
    import lightgbm
    from distributed import futures_of, wait

    # Read the partitions first: LightGBM 4.7 hides a failed partition behind an AttributeError
    # ('Future' object has no attribute 'get_params'); say what went wrong instead.
    X, y = client.persist([X, y])
    wait([X, y])
    for future in futures_of(X) + futures_of(y):
        if future.status == "error":
            raise ValueError(
                "reading the training rows on the Dask cluster failed (do the scheduler and "
                "the workers have vigil installed and see the data at the same path?): "
                f"{type(future.exception()).__name__}: {future.exception()}"[:600]
            )
    params = estimator.get_params()
    params.pop("n_jobs", None)  # LightGBM's Dask interface sets the threads from each worker's nthreads
    model = lightgbm.DaskLGBMClassifier(client=client, **params)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        model.fit(X, y)
    local = model.to_local()
    info = {
        "mode": "dask",
        "workers": worker_count(client),
        "tree_learner": params.get("tree_learner", "data"),
        "partitions": int(X.numblocks[0]),
    }
    return local, info


def worker_count(client) -> int:
    """Workers connected to the scheduler (all of them: newer ``scheduler_info`` lists 5 by default)."""
    import inspect

    try:
        every = "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        every = False
    return len((client.scheduler_info(n_workers=-1) if every else client.scheduler_info())["workers"])
