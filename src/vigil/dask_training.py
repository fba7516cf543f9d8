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

import numpy as np

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


def fit_dask_lightgbm(estimator, X, y, client, feature_names: list[str] | None = None) -> tuple[Any, dict]:
    """Fit a copy of ``estimator``'s parameters with ``DaskLGBMClassifier`` on dask arrays ``X``, ``y``.

    Returns ``(LGBMClassifier, info)``: the fitted model made local, and what ran where.
    ``feature_names`` (a DataFrame's columns on one machine) are given to LightGBM, so the local
    model knows them (``feature_names_in_``) as single-machine training on that DataFrame does.
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
    fit_options: dict[str, Any] = {}
    if params.get("class_weight") is not None:
        # Each worker would derive "balanced" weights from its own share of the labels; weights
        # from all the labels are the ones single-machine training uses.
        fit_options["sample_weight"] = _global_class_weights(params.pop("class_weight"), y)
    if feature_names is not None:
        fit_options["feature_name"] = [str(name) for name in feature_names]
    model = lightgbm.DaskLGBMClassifier(client=client, **params)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        model.fit(X, y, **fit_options)
    local = model.to_local()
    if "sample_weight" in fit_options:
        local.set_params(class_weight=estimator.get_params()["class_weight"])  # as the estimator was given
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


def _global_class_weights(class_weight, y):
    """Per-row weights for ``class_weight`` computed over every label, chunked like ``y``."""
    import dask.array as da
    from sklearn.utils.class_weight import compute_sample_weight

    labels = np.asarray(y.compute())
    return da.from_array(compute_sample_weight(class_weight, labels), chunks=y.chunks)


def in_memory_dask_arrays(X, y, partitions: int):
    """Rows this process already holds (a featurized matrix: numpy, scipy sparse or a DataFrame) as
    dask arrays of ``partitions`` row blocks; returns ``(X, y, feature_names or None)``.

    The blocks travel to the workers through the scheduler, which is fine for the featurized
    matrices of the web-sessions and DNS tasks (tens of MB); data that does not fit one machine's
    memory is read on the workers instead (ember's memmaps: ``tasks/ember/distributed.py``).
    """
    import dask
    import dask.array as da
    from scipy import sparse

    feature_names = None
    if hasattr(X, "columns"):  # a DataFrame: LightGBM's Dask interface needs dask.dataframe for those
        from pandas.api.types import is_numeric_dtype  # bool included, as LightGBM takes it

        categorical = [str(c) for c, dtype in X.dtypes.items() if not is_numeric_dtype(dtype)]
        if categorical:  # LightGBM would treat them as categorical features on one machine
            raise ValueError(f"--dask takes numeric feature columns only, not {categorical[:5]}")
        feature_names = [str(column) for column in X.columns]
        X = X.to_numpy(dtype=np.float64)
    labels = np.asarray(y)
    n_rows = len(labels)
    partitions = max(1, min(int(partitions), n_rows))
    bounds = np.linspace(0, n_rows, partitions + 1).astype(int)
    chunks = tuple(int(b - a) for a, b in zip(bounds[:-1], bounds[1:]))
    if sparse.issparse(X):
        X = sparse.csr_matrix(X)
        meta = sparse.csr_matrix((0, X.shape[1]), dtype=X.dtype)
        blocks = [
            da.from_delayed(dask.delayed(X[a:b]), shape=(int(b - a), X.shape[1]), dtype=X.dtype, meta=meta)
            for a, b in zip(bounds[:-1], bounds[1:])
        ]
        X_dask = da.concatenate(blocks, axis=0)
    else:
        X = np.asarray(X)
        X_dask = da.from_array(X, chunks=(chunks, X.shape[1]))
    return X_dask, da.from_array(labels, chunks=(chunks,)), feature_names


def is_lightgbm(estimator) -> bool:
    """Whether ``estimator`` (or a Pipeline's last step) is a LightGBM classifier: what --dask trains."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return type(final).__name__ == "LGBMClassifier"


class DaskFitter:
    """Fits estimators on one Dask cluster, the client kept open across fits (cross-validation fits
    many models; a LocalCluster takes seconds to start).

    ``fit(estimator, X, y)`` returns what ``clone(estimator).fit(X, y)`` returns on one machine: for a
    Pipeline ending in ``LGBMClassifier``, the steps before it (featurizers, selectors) are fitted
    here on the whole of X, and the boosting runs on the cluster over one partition of the
    featurized rows per worker; other estimators (logistic regression, random forests: cheap next to
    the boosting, and without a Dask interface in LightGBM) are fitted here as usual. ``runs`` says
    what ran where, one dict per Dask fit.

    >>> with DaskFitter("local:2") as fitter:                                    # doctest: +SKIP
    ...     fitted = fitter.fit(pipeline, X, y)
    """

    def __init__(self, address: str, threads_per_worker: int = 1):
        self.kind, self.target = parse_dask_address(address)  # a bad address fails before any work
        self.address = address
        self.threads_per_worker = threads_per_worker
        self.runs: list[dict] = []
        self._context: contextlib.AbstractContextManager | None = None
        self.client: Any = None

    def __enter__(self) -> "DaskFitter":
        self._context = dask_client(self.address, threads_per_worker=self.threads_per_worker)
        self.client = self._context.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        context, self._context, self.client = self._context, None, None
        if context is not None:
            context.__exit__(*exc)

    def fit(self, estimator, X, y):
        from sklearn.base import clone

        estimator = clone(estimator)
        if not is_lightgbm(estimator):
            return estimator.fit(X, y)
        if self.client is None:
            raise RuntimeError("DaskFitter.fit needs the cluster: use it as `with DaskFitter(address) as fitter:`")
        steps = estimator.steps if hasattr(estimator, "steps") else None
        features = X
        if steps and len(steps) > 1:
            head = estimator[:-1]
            features = head.fit_transform(X, y)
            steps[:-1] = head.steps  # the fitted transformers, whether Pipeline refitted in place or not
        X_dask, y_dask, names = in_memory_dask_arrays(features, y, worker_count(self.client))
        booster, info = fit_dask_lightgbm(steps[-1][1] if steps else estimator, X_dask, y_dask, self.client, names)
        info["address"] = self.address if self.kind == "scheduler" else f"local:{self.target} (127.0.0.1)"
        self.runs.append(info)
        if steps:
            steps[-1] = (steps[-1][0], booster)
            return estimator
        return booster

    def summary(self) -> dict:
        """What the manifest records: the cluster and how many fits ran on it."""
        last = self.runs[-1] if self.runs else {}
        return {
            "mode": "dask",
            "address": last.get("address", self.address),
            "workers": last.get("workers"),
            "tree_learner": last.get("tree_learner", "data"),
            "dask_fits": len(self.runs),
        }


class LocalFitter:
    """The one-machine counterpart of :class:`DaskFitter`: ``fit`` is ``clone(estimator).fit(X, y)``."""

    def __init__(self) -> None:
        self.runs: list[dict] = []

    def __enter__(self) -> "LocalFitter":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def fit(self, estimator, X, y):
        from sklearn.base import clone

        return clone(estimator).fit(X, y)

    def summary(self) -> dict | None:
        return None


def fitter(address: str | None, threads_per_worker: int = 1) -> DaskFitter | LocalFitter:
    """:class:`DaskFitter` on ``address`` (``--dask``), or :class:`LocalFitter` when it is None; a
    trainer written against ``fitter(args.dask)`` trains either way with the same code."""
    return DaskFitter(address, threads_per_worker) if address else LocalFitter()
