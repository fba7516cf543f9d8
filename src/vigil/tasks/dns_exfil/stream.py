"""The DNS windows: parse messages, score the static and the dynamic model, retrain by the policy.

A :class:`vigil.windows.WindowProcessor`, handed to the streaming layer by
``DnsExfilTask.window_processor``; this module never imports :mod:`vigil.streaming`.

Accepted message values (JSON):

- an object with the CIC columns (what ``vigil dns produce`` sends by default; the label is
  ``Target Attack``);
- a string holding one raw CSV line (the assignment's producer); a line naming the columns is the
  header and sets the column order for the lines after it (default: the CIC order);
- an object with ``query`` (a real DNS log event), featurised here; ``Target Attack`` or ``label``
  gives the label when known, ``time`` or ``timestamp`` (seconds since the epoch) the event time
  that the per-domain detector's windows use (else the time the message was read);
- raw CSV bytes (a line not JSON-encoded) and a Python ``str(dict)`` of one record: read by
  :func:`vigil.messages.lenient_message` (strict small parsers, never eval).

Query names also feed the per-domain detector (:mod:`vigil.tasks.dns_exfil.domains`): the domains it
flags in a window are the window's ``alerts`` (recorded in the results store's ``alerts`` table) and
the newest are listed in the stream's heartbeat (``GET /dns/domains``).

Rows without a label are scored but not used for metrics or retraining.

A message that cannot be used is rejected (see :mod:`vigil.messages`), the reason naming the
field: a label other than 0/1 (``"abc"``, ``[1]``, a 401-digit integer), a feature that is not a
finite number (NaN, infinity, beyond float32, a list), JSON that is not an object or nested too deep.
A retrain that fails keeps the current dynamic model; the window's reason says why (``retrain failed``).

Several consumers of one group (``stream_info`` names the group and topic): only the holder of the
group's retrain lease (:mod:`vigil.lease`) saves dynamic models; the others never
retrain and, at the start of each window, take up the newest dynamic model the group published in the
artifact store. So N consumers publish one line of dynamic versions, not N competing ones.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import time
from operator import itemgetter

import numpy as np
import orjson
import pandas as pd
from sklearn.pipeline import Pipeline

from vigil.artifacts import ArtifactStore, LoadedModel
from vigil.drift import RetrainPolicy
from vigil.lease import RetrainLease
from vigil.messages import lenient_message
from vigil.plain import InvalidState, checked
from vigil.tasks.dns_exfil import DYNAMIC_TASK, STREAMS_FOLDER, write_stream_status
from vigil.tasks.dns_exfil.domains import DomainDetector, split_name
from vigil.tasks.dns_exfil.fast_features import cic_matrix_and_split, plain_labels
from vigil.tasks.dns_exfil.features import (
    CSV_COLUMNS,
    FEATURE_COLUMNS,
    FEATURE_VERSION,
    FLOAT32_MAX,
    LABEL_COLUMN,
    QueryFeatureExtractor,
    coerce_csv_value,
    shown,
)
from vigil.tasks.dns_exfil.model import predict_proba, refit
from vigil.tasks.dns_exfil.model import window_scores as scores
from vigil.windows import RETRAIN_FAILED, RejectedMessage, safe_name

log = logging.getLogger(__name__)


def _label(obj: dict) -> float:
    field = LABEL_COLUMN if LABEL_COLUMN in obj else "label"
    value = obj.get(field)
    if value is None or value == "":
        return math.nan
    label = math.nan
    if isinstance(value, (int, float, str)):  # not a list, an object, ...
        try:
            label = float(value)
        except (ValueError, OverflowError):
            pass
    if label not in (0.0, 1.0):
        raise RejectedMessage(f"field '{field}' must be 0 or 1, got {shown(value)}")
    return label


_TEXT_COLUMNS = frozenset({"longest_word", "sld"})  # may hold the word or label itself (coerce_csv_value)
_NUMBER_FIELDS = itemgetter(*(c for c in FEATURE_COLUMNS if c not in _TEXT_COLUMNS))
_WORD_AT, _SLD_AT = sorted(FEATURE_COLUMNS.index(c) for c in ("longest_word", "sld"))
_FLOAT_WORDS = frozenset({"nan", "inf", "infinity"})  # the letters-only texts float() reads as a number


def _plain_row(obj: dict) -> list[float] | None:
    """The row of a message whose fields are all plain (numbers or number texts, a word and a label
    text), as the checking loop of ``parse`` builds it; None for anything else, which that loop then
    reads or rejects with the reason. The checks are over the whole row at once: within the float32
    range both ways, and no NaN."""
    try:
        row = list(map(float, _NUMBER_FIELDS(obj)))
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    # one pass for the common row: a NaN fails the comparison, and the sum of the magnitudes bounds each
    if not sum(map(abs, row)) <= FLOAT32_MAX:
        total = sum(row)
        if not (max(row) <= FLOAT32_MAX and min(row) >= -FLOAT32_MAX and total == total):
            return None
    lengths = _text_lengths(obj)
    if lengths is None:
        return None
    row.insert(_WORD_AT, lengths[0])
    row.insert(_SLD_AT, lengths[1])
    return row


def _text_lengths(obj: dict) -> tuple[float, float] | None:
    """The row's ``longest_word`` and ``sld`` values when both are plain texts (the word letters only,
    not a text float() reads as a number); None leaves the message to coerce_csv_value."""
    word, sld = obj.get("longest_word"), obj.get("sld")
    if type(word) is not str or type(sld) is not str:
        return None
    word = word.strip()
    if word and not (word.isalpha() and word.lower() not in _FLOAT_WORDS):
        return None  # a number, or a text float() could read: coerce_csv_value decides
    return float(len(word)), float(len(sld.strip()))


_INTEGER_MINUS_ZERO = re.compile(r"-0(?![\d.eE])")  # (or an exponent's -0: left out too, harmlessly)
_NUMBER_AT = [i for i in range(len(FEATURE_COLUMNS)) if i not in (_WORD_AT, _SLD_AT)]  # _NUMBER_FIELDS' places


def _window_of_number_texts(objects: list[dict]) -> tuple[list, list[int]]:
    """The rows of the messages whose number fields are all texts (the CIC producers' form), converted
    together, and the indexes of the messages they are; the others are left to ``_parse_object``.

    float() on a dozen texts a message was a third of the stream's parse; one orjson call on the
    window's texts joined by commas reads them all, correctly rounded as float() does. The parse
    proves each text was one JSON number: with no string, list or object among the results, every
    comma of the joined text separates two numbers, so as many numbers as texts means no text held a
    comma, or anything but a number and blanks (which float() also ignores). A message with the integer
    ``-0`` is left out (orjson reads it as 0, float() as -0.0). When the texts do not parse so, the
    window's messages all take the one-at-a-time path."""
    texts, taken, lengths = [], [], []
    for i, obj in enumerate(objects):
        try:
            joined = ",".join(_NUMBER_FIELDS(obj))  # a TypeError for a field that is not a text
        except (KeyError, TypeError):
            continue
        integer_minus_zero = "-0" in joined and _INTEGER_MINUS_ZERO.search(joined)
        text_lengths = None if integer_minus_zero else _text_lengths(obj)
        if text_lengths is not None:
            texts.append(joined)
            taken.append(i)
            lengths.append(text_lengths)
    if not taken:
        return [], []
    try:
        numbers = orjson.loads(f"[{','.join(texts)}]")
    except orjson.JSONDecodeError:  # a text that is not a JSON number, or one beyond float64
        return [], []
    if len(numbers) != len(taken) * len(_NUMBER_AT) or not set(map(type, numbers)) <= {int, float}:
        return [], []
    matrix = np.empty((len(taken), len(FEATURE_COLUMNS)))
    matrix[:, _NUMBER_AT] = np.array(numbers, dtype=float).reshape(len(taken), -1)
    matrix[:, [_WORD_AT, _SLD_AT]] = lengths
    within = np.abs(matrix[:, _NUMBER_AT]).max(axis=1) <= FLOAT32_MAX  # else rejected by the checking loop
    rows = matrix.tolist()
    return [rows[k] for k in np.flatnonzero(within)], [taken[k] for k in np.flatnonzero(within)]


FLAGGED_IN_HEARTBEAT = 50  # the newest flagged domains a stream's heartbeat lists for GET /dns/domains


def _event_time(obj: dict) -> float:
    """The event's time in seconds: its ``time`` / ``timestamp`` when a finite number, else now (a
    log shipper that sends events as they happen makes the two agree)."""
    for field in ("time", "timestamp"):
        value = obj.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                continue
            if math.isfinite(number):
                return number
    return time.time()


class DnsWindowProcessor:
    alert_noun = "domain"  # a window's alerts are flagged domains (summary.json: ``domain_alerts``)

    def __init__(
        self,
        store: ArtifactStore,
        static: LoadedModel,
        consumer_id: str,
        policy: RetrainPolicy | None = None,
        stream_info: dict | None = None,
    ):
        self.store = store
        self.static = static
        self.consumer_id = consumer_id
        self.policy = policy or RetrainPolicy()
        self.stream_info = stream_info or {}
        self.extractor = QueryFeatureExtractor()
        self.header = list(CSV_COLUMNS)
        self.recent: list[tuple[pd.DataFrame, np.ndarray]] = []
        self.dynamic: Pipeline | None = None  # the dynamic model; its threshold is the manifest's
        self.dynamic_threshold = static.decision_threshold()
        self.dynamic_version: str | None = None
        self.domains = DomainDetector()
        # One retrain lease per group and topic; a processor outside a group (tests, benchmarks) owns
        # its own model.
        group = self.stream_info.get("group")
        self.lease = (
            RetrainLease(
                store.root / STREAMS_FOLDER, safe_name(f"{group}@{self.stream_info.get('topic')}"), consumer_id
            )
            if group
            else None
        )

    # -- messages ----------------------------------------------------------------------------------
    def parse(self, value: bytes | None):
        """One message as (feature row, label, query name or None, event time), None for a CSV header;
        RejectedMessage naming the field. A plain query name's row is None, its features computed with
        the window's in :meth:`process`, and its labels follow the event time."""
        return self._parse_object(lenient_message(value))

    def parse_batch(self, values: list) -> list:
        """:meth:`parse` of each value, in order: its result, or the exception it raised. The number
        texts of the CIC rows are converted together (:func:`_window_of_number_texts`); the rows equal
        parse's (tests/test_dns_stream_speed.py)."""
        results: list = [None] * len(values)
        objects: list = [None] * len(values)
        for i, value in enumerate(values):
            try:
                objects[i] = lenient_message(value)
            except Exception as exc:  # the consumer records it as the message's rejection
                results[i] = exc
        candidates = [i for i, obj in enumerate(objects) if type(obj) is dict and "query" not in obj]
        rows, taken = _window_of_number_texts([objects[i] for i in candidates])
        converted = dict(zip((candidates[k] for k in taken), rows))
        for i, obj in enumerate(objects):
            if results[i] is not None:  # not read at all
                continue
            try:
                row = converted.get(i)
                results[i] = self._parse_object(obj) if row is None else (row, _label(obj), None, None)
            except Exception as exc:
                results[i] = exc
        return results

    def _parse_object(self, obj):
        """:meth:`parse` of a message once read (JSON, a CSV line's text, a Python literal)."""
        if isinstance(obj, str):
            try:
                cells = next(csv.reader(io.StringIO(obj)), [])
            except csv.Error as exc:
                raise RejectedMessage(f"CSV line: {exc}") from None
            if "FQDN_count" in cells and LABEL_COLUMN in cells:
                self.header = cells
                return None
            if len(cells) != len(self.header):
                raise RejectedMessage(f"CSV line has {len(cells)} cells, the header {len(self.header)}")
            obj = dict(zip(self.header, cells))
        if not isinstance(obj, dict):
            raise RejectedMessage(f"expected a JSON object or a CSV line, got {type(obj).__name__}")
        label = _label(obj)
        if "query" in obj:
            labels = plain_labels(obj["query"])
            if labels is not None:
                # a plain name cannot be refused: its features are computed with the window's (process)
                return None, label, obj["query"], _event_time(obj), labels
            try:
                features = self.extractor.features(obj["query"])
            except ValueError as exc:
                raise RejectedMessage(f"query: {exc}") from exc
            return [features[c] for c in FEATURE_COLUMNS], label, obj["query"], _event_time(obj)
        plain = _plain_row(obj)
        if plain is not None:
            return plain, label, None, None
        row = []
        for column in FEATURE_COLUMNS:
            if column not in obj:
                raise RejectedMessage(f"missing field '{column}'")
            value = obj[column]
            if column not in _TEXT_COLUMNS and type(value) in (str, int, float):
                # the common case, a plain number: what coerce_csv_value returns for it, without its
                # checks of every other shape; anything unusual goes through it for the reason
                try:
                    number = float(value)
                except (ValueError, OverflowError):
                    number = math.nan
                if math.isfinite(number) and abs(number) <= FLOAT32_MAX:
                    row.append(number)
                    continue
            try:
                row.append(coerce_csv_value(column, value))
            except (TypeError, ValueError) as exc:
                detail = str(exc)  # "entropy is not a number: 'abc'" -> "field 'entropy' is not a number: 'abc'"
                detail = f" {detail[len(column) + 1 :]}" if detail.startswith(f"{column} ") else f": {detail}"
                raise RejectedMessage(f"field '{column}'{detail}") from exc
        return row, label, None, None

    def describe_alert(self, alert: dict) -> str:
        """The line ``vigil dns stream`` prints for a flagged domain (--quiet or not)."""
        reasons = "; ".join(r["text"] for r in alert["detail"]["reasons"])
        return f"DOMAIN {alert['key']} ({alert['kind']}): {reasons}"

    # -- state -------------------------------------------------------------------------------------
    def restore(self, checkpoint) -> None:
        """Resume from ``checkpoint`` (what :meth:`checkpoint` returned, read back as plain data), or
        start a new stream. A checkpoint that is not one (altered, or of another layout) is logged and
        the stream starts afresh from the offsets the results file recorded: no window is counted twice
        or lost, only the model state (policy, recent windows, domain counters) starts over."""
        resumed = None
        if checkpoint:
            try:
                resumed = self._read_checkpoint(checkpoint)
            except InvalidState as exc:
                log.warning(
                    "consumer %s: checkpoint refused (%s); its model state starts afresh", self.consumer_id, exc
                )
        if resumed is not None:
            self.policy, self.recent, self.domains, dynamic_version = resumed
            if dynamic_version is not None:
                self._take_up(self.store.load(DYNAMIC_TASK, dynamic_version))
            else:
                self.dynamic, self.dynamic_version = self.static.model, None
            self.pick_up_published()
            return
        # A new stream: the dynamic model starts as a copy of the static one, saved by the lease
        # holder only; the others take the group's published model, or the same copy unsaved.
        self.dynamic = self.static.model  # retraining fits a clone, never this object
        if self.owns_retrain():
            self.dynamic_version = self._save_dynamic(f"copy of static v{self.static.version}", rows=0)
        else:
            self.dynamic_version = None
            self.pick_up_published()

    @staticmethod
    def _read_checkpoint(checkpoint) -> tuple[RetrainPolicy, list, DomainDetector, str | None]:
        """The parts of a checkpoint, each checked; InvalidState for anything :meth:`checkpoint` does not write."""
        checked(checkpoint, dict, "checkpoint")
        if checkpoint.get("feature_columns") != list(FEATURE_COLUMNS):
            raise InvalidState("the recent windows hold other feature columns than this version's")
        recent = []
        for window in checked(checkpoint.get("recent"), list, "recent"):
            if len(checked(window, tuple, "recent")) != 2:
                raise InvalidState("a recent window is not (features, labels)")
            X, y = (checked(part, np.ndarray, "recent") for part in window)
            if X.ndim != 2 or X.shape[1] != len(FEATURE_COLUMNS) or y.shape != (len(X),) or X.dtype.kind != "f":
                raise InvalidState(f"recent window of shape {X.shape} with labels {y.shape}")
            if y.dtype.kind not in "iu" or not np.isin(y, (0, 1)).all():
                raise InvalidState("recent window labels must be 0 or 1")
            recent.append((pd.DataFrame(X, columns=FEATURE_COLUMNS), y.astype(int)))
        version = checkpoint.get("dynamic_version")
        if version is not None and not (isinstance(version, str) and version.isdigit()):
            raise InvalidState(f"dynamic_version must be a version number, got {version!r}")
        domains = checkpoint.get("domains")
        return (
            RetrainPolicy.from_state(checkpoint.get("policy")),
            recent,
            DomainDetector() if domains is None else DomainDetector.from_state(domains),
            version,
        )

    # -- several consumers -----------------------------------------------------------------------------
    def owns_retrain(self) -> bool:
        return self.lease is None or self.lease.acquire()

    def published_entry(self) -> dict | None:
        """The newest dynamic model saved by this processor's group and topic."""
        group, topic = self.stream_info.get("group"), self.stream_info.get("topic")
        mine = [
            e
            for e in self.store.entries(DYNAMIC_TASK)
            if e.get("extra", {}).get("group") == group and e.get("extra", {}).get("topic") == topic
        ]
        return max(mine, key=lambda e: int(e["version"])) if mine else None

    def pick_up_published(self) -> str | None:
        """Load the group's newest published dynamic model when it is newer than ours; its version."""
        if self.lease is None:
            return None
        entry = self.published_entry()
        if entry is None or (self.dynamic_version is not None and int(entry["version"]) <= int(self.dynamic_version)):
            return None
        loaded = self.store.load(DYNAMIC_TASK, entry["version"])
        self._take_up(loaded)
        self.policy.retrained()  # the error stream from here on is the new model's, as after a retrain
        return loaded.version

    def _take_up(self, loaded: LoadedModel) -> None:
        """Score with a saved dynamic model from here on."""
        self.dynamic, self.dynamic_version = loaded.model, loaded.version
        self.dynamic_threshold = loaded.decision_threshold()

    def _save_dynamic(self, origin: str, rows: int, metrics: dict | None = None, model: Pipeline | None = None) -> str:
        static_extra = self.static.entry.get("extra", {})
        entry = self.store.save(
            DYNAMIC_TASK,
            self.dynamic if model is None else model,
            metrics=metrics or {},
            threshold=self.dynamic_threshold,
            feature_version=FEATURE_VERSION,
            extra={
                "kind": "dynamic",
                **{key: static_extra[key] for key in ("selection", "algorithm") if key in static_extra},
                "origin": origin,
                "training_rows": rows,
                "static_version": self.static.version,
                "consumer": self.consumer_id,
                **self.stream_info,
            },
        )
        return entry["version"]

    def checkpoint(self) -> dict:
        """The state a restart resumes from, as plain data (numbers, strings, lists, numpy arrays):
        the results store keeps it in a format that runs no code when read back."""
        return {
            "policy": self.policy.to_state(),
            "feature_columns": list(FEATURE_COLUMNS),
            "recent": [(X.to_numpy(dtype=float), y) for X, y in self.recent],
            "dynamic_version": self.dynamic_version,
            "domains": self.domains.to_state(),
        }

    def heartbeat(self, state: str, **fields) -> None:
        if self.lease is not None:
            # renewed while running (every few seconds), handed back on the way out
            if state == "running":
                self.lease.acquire()
            else:
                self.lease.release()
        write_stream_status(
            self.store,
            self.consumer_id,
            state,
            dynamic_version=self.dynamic_version,
            static_version=self.static.version,
            flagged_domains=self.domains.flagged()[-FLAGGED_IN_HEARTBEAT:],
            **self.stream_info,
            **fields,
        )

    # -- one window --------------------------------------------------------------------------------
    def process(self, rows: list) -> tuple[dict, dict]:
        picked_up = self.pick_up_published()
        deferred = [i for i, r in enumerate(rows) if r[0] is None]
        split: dict[int, tuple[str, str]] = {}
        if deferred:  # the plain names of the window, featurised together (fast_features.py)
            matrix, splits = cic_matrix_and_split([rows[i][2] for i in deferred], None, [rows[i][4] for i in deferred])
            split = {i: parts for i, parts in zip(deferred, splits) if parts is not None}
            if len(deferred) < len(rows):
                built = [i for i, r in enumerate(rows) if r[0] is not None]
                window = np.empty((len(rows), len(FEATURE_COLUMNS)))
                window[deferred] = matrix
                window[built] = [rows[i][0] for i in built]
                matrix = window
        else:
            matrix = np.array([r[0] for r in rows], dtype=float).reshape(-1, len(FEATURE_COLUMNS))
        X = pd.DataFrame(matrix, columns=FEATURE_COLUMNS, copy=False)
        y = np.array([r[1] for r in rows], dtype=float)
        labelled = ~np.isnan(y)
        named = []  # the per-domain detector's (domain, subdomain, time, 8-bit), in message order
        for i, row in enumerate(rows):
            if row[2] is None:
                continue
            parts = split.get(i)
            if parts is not None:
                named.append((parts[0], parts[1], row[3], False))
                continue
            try:
                domain, sub, eight_bit = split_name(row[2])
            except ValueError:
                continue  # the per-query path reports a name that cannot be on the wire
            named.append((domain, sub, float(row[3]), eight_bit))
        alerts = self.domains.observe_split(named)
        p_static = predict_proba(self.static.model, X, compiled=True)
        # until its first retrain the dynamic model is the static one: the same scores, computed once
        p_dynamic = p_static if self.dynamic is self.static.model else predict_proba(self.dynamic, X, compiled=True)
        record = {
            "n_attacks": int(np.nansum(y)),
            "dynamic_version": self.dynamic_version,
            "retrained": 0,
            "reason": "",
            "alerts": [{"key": a["domain"], "kind": f"domain/{a['rule']}", "at": a["at"], "detail": a} for a in alerts],
        }
        if picked_up:
            record["reason"] = f"took up dynamic v{picked_up} published by the group's retrain lease holder"
        if not labelled.any():
            for prefix in ("static", "dynamic"):
                record.update({f"{prefix}_f1": math.nan, f"{prefix}_accuracy": math.nan, f"{prefix}_roc_auc": math.nan})
            record["reason"] = "no labels in this window"
            return record, self.checkpoint()
        y_known = y[labelled].astype(int)
        static_scores = scores(y_known, p_static[labelled], self.static.decision_threshold())
        dynamic_threshold = self.dynamic_threshold
        dynamic_scores = scores(y_known, p_dynamic[labelled], dynamic_threshold)
        for prefix, values in (("static", static_scores), ("dynamic", dynamic_scores)):
            record.update(
                {
                    f"{prefix}_f1": values["f1"],
                    f"{prefix}_accuracy": values["accuracy"],
                    f"{prefix}_roc_auc": values["roc_auc"],
                }
            )
        errors = ((p_dynamic[labelled] >= dynamic_threshold).astype(int) != y_known).astype(int)
        decision = self.policy.observe(errors, dynamic_scores["f1"])
        self.recent.append((X[labelled].reset_index(drop=True), y_known))
        self.recent = self.recent[-self.policy.retrain_windows :]
        reason = "; ".join(filter(None, [str(record["reason"]), decision.reason]))
        record["reason"] = reason
        if decision.retrain and not self.owns_retrain():
            holder = self.lease.holder() if self.lease else None
            record["reason"] = f"{reason}; retrain left to the group's lease holder {holder or '(none now)'}"
        elif decision.retrain:
            X_train = pd.concat([x for x, _ in self.recent], ignore_index=True)
            y_train = np.concatenate([t for _, t in self.recent])
            if len(np.unique(y_train)) < 2:
                record["reason"] = decision.reason + "; not retrained: recent windows hold one class"
            else:
                self._retrain(record, decision.reason, X_train, y_train, dynamic_scores["f1"])
        return record, self.checkpoint()

    def _retrain(self, record: dict, why: str, X_train: pd.DataFrame, y_train: np.ndarray, trigger_f1: float) -> None:
        """Refit and save a new dynamic model; when either fails, the current one stays and the window says why.

        The policy is not told of a failed retrain, so the next window that calls for one tries again.
        """
        try:
            model = refit(self.dynamic, X_train, y_train)
            version = self._save_dynamic(
                f"retrained on {len(self.recent)} windows: {why}",
                rows=len(y_train),
                metrics={"trigger_window_f1": trigger_f1},
                model=model,
            )
        except Exception as exc:  # any failure: scoring goes on with the model that has been working
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
            record["retrain_error"] = error
            record["reason"] = f"{why}; {RETRAIN_FAILED}, kept dynamic v{self.dynamic_version}: {error}"
            return
        self.dynamic, self.dynamic_version = model, version
        self.policy.retrained()
        record["retrained"] = 1
