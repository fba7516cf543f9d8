"""EMBER's LightGBM served by its compiled trees, else ONNX Runtime, where exact enough; else the Booster.

First choice: :class:`vigil.boosting.CompiledTrees`, the Booster's own trees walked by a numba kernel,
checked at load against ``Booster.predict`` on rows made from the model's thresholds and on the
validation rows stored with the model (below). They give the Booster's own bits on every model
Vigil trains, and score batch 1,000 3.2-5.3x faster than the Booster, batch 1 7-13x
(``python -m bench.ember_batch``, busy), checking a request's values in the same pass. Importing
numba and compiling them for float32 rows takes ~1.4 s (a few tenths of a second where the signed
kernel cache, :mod:`vigil.kernel_cache`, already holds them), so they serve long-lived models only
(``LoadedModel.long_lived``: the service's registry); a one-shot command gets the ONNX session.

Second choice, for a model the compiled trees refuse (categorical or linear trees, say): at training
time the fitted Booster is converted to ONNX (``onnxmltools.convert_lightgbm``: a
``TreeEnsembleClassifier``, i.e. data for ONNX Runtime's tree kernel, not code) and scored against
``Booster.predict`` on the validation rows; within :data:`TOLERANCE` (max |difference| of the
malicious probability) the ONNX bytes and those rows (``.npy``) are saved next to the artifact as
sidecars (``ArtifactStore.save(sidecars=...)``: hashed in the manifest). At load the store hands
over their verified bytes; the session is built from them and checked again against the loaded
Booster on the same rows. A model that fails either check, or cannot be converted or loaded, is
refused with a log line and the Booster serves, so answers never move by more than the tolerance.

Why not tl2cgen: it would compile a shared library (code to dlopen, which would need its own hash
check) and needs a C compiler at training time; the compiled trees are data for a kernel that ships
with Vigil.

Example::

    >>> sidecars, report = convert_checked(booster, X_validation)     # doctest: +SKIP
    >>> scorer_for(loaded, booster).predict(X)                         # doctest: +SKIP
"""

from __future__ import annotations

import io
import logging
import threading
from typing import Any

import numpy as np

from vigil.boosting import agrees, max_difference, process_threads
from vigil.tensors import require_finite

log = logging.getLogger(__name__)

TOLERANCE = 1e-6  # max |ONNX - Booster| probability on the validation rows, else Booster serves
CHECK_ROWS = 128  # validation rows kept with the model for the check at load (~1.2 MB at 2381 floats)
SIDECAR_MODEL, SIDECAR_ROWS = "onnx", "check_npy"
_lock = threading.Lock()


class OnnxScorer:
    """P(class 1) of float32 rows from ONNX bytes of a converted LightGBM binary classifier."""

    def __init__(self, onnx_bytes: bytes, threads: int = 1):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        # Idle pool threads sleep rather than spin: a spinning thread takes a core from the other
        # workers and sessions between requests (the bench's shared 2 cores: 2-3x slower with spinning)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # the converter declares the label output 1-long: a warning per call
        self.session = onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        self.output_name = "probabilities" if "probabilities" in outputs else outputs[-1]

    def predict(self, X: np.ndarray, check_finite: bool = False) -> np.ndarray:
        """P(class 1) per float32 row; ``check_finite`` as :meth:`vigil.boosting.CompiledTrees.predict`."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if check_finite:
            require_finite(X, threads=process_threads())
        (probabilities,) = self.session.run([self.output_name], {self.input_name: X})
        return np.asarray(probabilities[:, 1], dtype=np.float64)


def convert_checked(booster: Any, validation: np.ndarray) -> tuple[dict[str, bytes] | None, dict]:
    """(sidecars, report): the Booster as ONNX plus up to CHECK_ROWS validation rows, if ONNX Runtime
    matches ``Booster.predict`` on all the validation rows within TOLERANCE; else (None, report)
    saying why. Never raises: the Booster is always there to serve."""
    report: dict[str, Any] = {"kind": "onnxruntime", "tolerance": TOLERANCE, "validation_rows": int(len(validation))}
    try:
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType

        model = onnxmltools.convert_lightgbm(
            booster, initial_types=[("input", FloatTensorType([None, booster.num_feature()]))], zipmap=False
        )
        onnx_bytes = model.SerializeToString()
        validation = np.ascontiguousarray(validation, dtype=np.float32)
        difference = max_difference(OnnxScorer(onnx_bytes, process_threads()), booster, validation)
    except Exception as exc:  # a converter or runtime limitation: Booster serves
        report.update(used=False, refused=f"{type(exc).__name__}: {exc}"[:300])
        log.warning("EMBER model not converted for ONNX Runtime, Booster serves: %s", report["refused"])
        return None, report
    report["max_abs_diff"] = difference
    if not difference <= TOLERANCE:
        report.update(used=False, refused=f"max |ONNX - Booster| {difference:.3g} > {TOLERANCE:g}")
        log.warning("EMBER ONNX model refused at training, Booster serves: %s", report["refused"])
        return None, report
    buffer = io.BytesIO()
    np.save(buffer, validation[:CHECK_ROWS], allow_pickle=False)
    report.update(used=True, onnx_bytes=len(onnx_bytes), check_rows=int(min(len(validation), CHECK_ROWS)))
    return {SIDECAR_MODEL: onnx_bytes, SIDECAR_ROWS: buffer.getvalue()}, report


def scorer_for(loaded: Any, booster: Any) -> Any:
    """The checked scorer of a loaded EMBER model (built once per load, then cached on it): its
    compiled trees where the model is long-lived (compiling takes ~1.4 s, loading them from the
    kernel cache a few tenths: the service's models, not a one-shot command's), else its ONNX
    session, else None (the Booster serves); each refusal is logged."""
    if "scorer" in loaded.cache:
        return loaded.cache["scorer"]
    with _lock:
        if "scorer" not in loaded.cache:
            loaded.cache["scorer"] = _compiled_trees(loaded, booster) or onnx_scorer(loaded, booster)
    return loaded.cache["scorer"]


def _compiled_trees(loaded: Any, booster: Any) -> Any:
    from vigil.boosting import checked_trees

    if booster is None or not loaded.long_lived:
        return None
    # the service's vectors are float32 (vigil.tensors.check_matrix): only that row type is compiled
    where = f"EMBER model v{loaded.version}"
    return checked_trees(booster, rows=_stored_rows(loaded), where=where, dtype=np.float32)


def _stored_rows(loaded: Any) -> np.ndarray | None:
    """The validation rows kept with the model (float32), or None (none kept, or unreadable)."""
    from vigil.tensors import read_npy

    if SIDECAR_ROWS not in loaded.sidecars:
        return None
    try:
        return read_npy(loaded.sidecars[SIDECAR_ROWS], max_rows=CHECK_ROWS)  # no pickle: dtype and shape checked
    except Exception as exc:
        log.warning("EMBER model v%s: stored check rows unreadable (%s)", loaded.version, exc)
        return None


def onnx_scorer(loaded: Any, booster: Any) -> OnnxScorer | None:
    """The loaded model's ONNX session if it matches the Booster on the stored rows, else None (logged)."""
    rows = _stored_rows(loaded)
    if booster is None or SIDECAR_MODEL not in loaded.sidecars or rows is None:
        return None
    where = f"EMBER model v{loaded.version}"
    try:
        scorer = OnnxScorer(loaded.sidecars[SIDECAR_MODEL], process_threads())
        difference = max_difference(scorer, booster, rows)
    except Exception as exc:
        log.warning("%s: ONNX Runtime refused (%s: %s); Booster serves", where, type(exc).__name__, exc)
        return None
    if not agrees(difference, where, "ONNX Runtime", len(rows), TOLERANCE):
        return None
    log.info("%s: ONNX Runtime serves (max |ONNX - Booster| %.3g on %d rows)", where, difference, len(rows))
    return scorer
