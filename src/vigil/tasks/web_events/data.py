"""Reading WAF events: ML-PT's raw CSV (part_10.csv) or Vigil's sample, and ML-PT's /predict body."""

from __future__ import annotations

import itertools
import json
import math
import operator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from vigil.errors import InvalidInput
from vigil.files import read_csv_checked
from vigil.tasks.web_events.wrangling import COLUMNS

SAMPLE_CSV = "web_events/events_sample.csv"


def load_events_csv(path: Path | str, drop_duplicates: bool = True) -> pd.DataFrame:
    """The eight columns as text (missing = NaN, as pandas reads ML-PT's bare NaN tokens), duplicates dropped."""
    frame = read_csv_checked(path, COLUMNS, what="events file", dtype=str)
    frame = frame[COLUMNS].astype(object).where(frame[COLUMNS].notna(), np.nan)
    if drop_duplicates:
        frame = frame.drop_duplicates(ignore_index=True)
    return frame


def describe_events(frame: pd.DataFrame) -> pd.DataFrame:
    """ML-PT's first look at the data: non-missing count, distinct values, top value, missing count."""
    rows = {}
    for column in COLUMNS:
        values = frame[column].dropna().astype(str)
        counts = values.value_counts()
        rows[column] = {
            "count": int(values.size),
            "unique": int(counts.size),
            "top": (counts.index[0][:40] if counts.size else ""),
            "freq": int(counts.iloc[0]) if counts.size else 0,
            "missing": int(frame[column].isna().sum()),
        }
    return pd.DataFrame(rows)


def event_to_request_record(event: dict) -> dict:
    """One event as ML-PT's client sends it: {"data": json.dumps(event)}, NaN for missing values."""
    clean = {}
    for column in COLUMNS:
        value = event.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            clean[column] = float("nan")
        elif column in ("REQUEST_SIZE", "RESPONSE_CODE"):
            try:
                clean[column] = int(value)
            except (TypeError, ValueError):
                clean[column] = value
        else:
            clean[column] = value
    return {"data": json.dumps(clean)}


def frame_to_request(frame: pd.DataFrame) -> list[dict]:
    return [event_to_request_record(event) for event in frame[COLUMNS].to_dict("records")]


@dataclass
class ParsedRequest:
    # column name -> the good records' values in input order, as JSON gave them (no pandas dtypes)
    columns: dict[str, list]
    indices: list[int]  # their positions in the request
    errors: list[dict] = field(default_factory=list)  # {"index", "field", "message"} per bad record
    # column name -> the types of its values, where the parse already looked (the scorer's text and
    # integer rules then need not look again); None: not known
    column_types: dict[str, frozenset] | None = None

    @cached_property
    def rows(self) -> list[tuple]:
        """The good records' eight values (COLUMNS order), one tuple a record."""
        return list(zip(*(self.columns[column] for column in COLUMNS)))

    @cached_property
    def events(self) -> pd.DataFrame:
        """The good records as a frame (built on first use: the service scores :attr:`columns`)."""
        return pd.DataFrame.from_records(self.rows, columns=COLUMNS) if self.rows else pd.DataFrame(columns=COLUMNS)

    @classmethod
    def of_rows(cls, rows: list[tuple], indices: list[int], errors: list[dict]) -> "ParsedRequest":
        return cls(columns=columns_of_rows(rows), indices=indices, errors=errors)


def columns_of_rows(rows: list[tuple]) -> dict[str, list]:
    """Column name -> its values, from the events' eight values (COLUMNS order) one tuple a record."""
    return dict(zip(COLUMNS, map(list, zip(*rows)))) if rows else {column: [] for column in COLUMNS}


def _record_error(index: int, field_name: str, message: str) -> dict:
    return {"index": index, "field": field_name, "message": message}


_COLUMN_SET = frozenset(COLUMNS)
_column_values = operator.itemgetter(*COLUMNS)  # the eight values of an event as a tuple, in C
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})  # what JSON gives besides objects and arrays
_scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # the C scanner behind json.loads (NaN accepted the same)


def _loads(text: str):
    """``json.loads(text)`` for one event string, without its per-call overhead where the text is
    one JSON value and nothing else (the usual case); anything else goes to json.loads itself, so
    the answer and the error messages are its own."""
    try:
        value, end = _scan_once(text, 0)
    except (StopIteration, ValueError):
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


_INT64_RANGE = 2.0**63


class _NotOneValue(Exception):
    """A record's text holds more than one JSON value: the record-by-record path names it."""


def _event(text: str):
    """``json.loads(text)`` of one record's text, through orjson (about twice as fast) where orjson
    reads it: it refuses ML-PT's bare ``NaN``, ``1e400`` and lone surrogates, and those go to json's
    scanner. (orjson reads an integer past 64 bits as a float where json gives an int:
    :func:`_plain_columns` sends such requests to json.)"""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        value, end = _scan_once(text, 0)  # TypeError for a non-string
        if end != len(text):
            raise _NotOneValue from None
        return value


def _no_huge_float(column: list) -> bool:
    """No float beyond int64 (which may be an integer literal orjson turned into a float, where
    json keeps an int) in ``column``; C-level passes: the floats picked by type, then |v| >= 2**63
    (False for NaN, the usual float here)."""
    floats = itertools.compress(column, map(operator.is_, map(type, column), itertools.repeat(float)))
    return not any(map(operator.ge, map(abs, floats), itertools.repeat(_INT64_RANGE)))


_record_data = operator.itemgetter("data")


def _plain_columns(body: list) -> tuple[dict[str, list], dict[str, frozenset]] | None:
    """The events' columns, and the types of each column's values, when every record is
    ``{"data": "<one JSON object>"}`` whose eight fields are all there and none an object or array,
    in a few C-level passes over the records; None where any record needs the record-by-record
    look (which names the fault).

    Each event's eight values are taken as soon as it is parsed, so its dict is read and freed
    while still in the CPU's cache (10,000 events: ~30 % faster than parsing them all, then
    walking them once per column), and go straight into one flat list, every event's values one
    after another, which strided slices cut into the columns: the per-event tuples are freed as
    soon as they are made, so the garbage collector never walks 10,000 of them (~5 ms of ~30)."""
    try:
        # TypeError: a record not {"data": ...}, or an event that is not an object; KeyError: a field missing
        values = list(itertools.chain.from_iterable(map(_column_values, map(_event, map(_record_data, body)))))
    except (TypeError, KeyError, IndexError, ValueError, StopIteration, RuntimeError, _NotOneValue):
        return None
    width = len(COLUMNS)
    columns = {column: values[position::width] for position, column in enumerate(COLUMNS)}
    types = {}
    for name, column in columns.items():  # type by column: only a column holding floats needs a closer look
        kinds = frozenset(map(type, column))
        if not kinds <= _SCALAR_TYPES or (float in kinds and not _no_huge_float(column)):
            return None
        types[name] = kinds
    return columns, types


def parse_request(body, max_rows: int = 100_000) -> ParsedRequest:
    """ML-PT's request: a JSON array of {"data": "<JSON object of one event, NaN allowed>"}.

    Well-formed requests are read in a few C-level passes (:func:`_plain_columns`); any other is read
    record by record, naming each bad one. 10,000 events: ~10 ms instead of ~55 ms.
    """
    if not isinstance(body, list):
        raise InvalidInput(
            'expected a JSON array of {"data": "<event as a JSON string>"}',
            {"field": "body", "got": type(body).__name__},
        )
    if len(body) > max_rows:
        raise InvalidInput(
            f"too many events in one request: {len(body)} > {max_rows}",
            {"field": "body", "max_rows": max_rows},
            status=413,
        )
    plain = _plain_columns(body)
    if plain is not None:  # every record well formed: all at once
        columns, types = plain
        return ParsedRequest(columns=columns, indices=list(range(len(body))), errors=[], column_types=types)
    good, indices, errors = [], [], []
    for index, record in enumerate(body):
        if not isinstance(record, dict) or "data" not in record:
            errors.append(_record_error(index, "data", 'record must be an object with a "data" field'))
            continue
        data = record["data"]
        if isinstance(data, dict):
            event = data  # already an object: accept it rather than make clients double-encode
        elif isinstance(data, str):
            try:
                event = _loads(data)  # Python's json accepts the bare NaN that json.dumps writes
            except ValueError as exc:
                errors.append(_record_error(index, "data", f"not valid JSON: {exc}"))
                continue
            if not isinstance(event, dict):
                errors.append(_record_error(index, "data", "must hold a JSON object of one event"))
                continue
        else:
            errors.append(_record_error(index, "data", "must be a string holding a JSON object"))
            continue
        if not _COLUMN_SET <= event.keys():
            absent = [c for c in COLUMNS if c not in event]
            errors.append(_record_error(index, ",".join(absent), f"missing field(s) {absent}"))
            continue
        values = _column_values(event)
        nested = (
            []
            if set(map(type, values)) <= _SCALAR_TYPES
            else [c for c, v in zip(COLUMNS, values) if isinstance(v, (dict, list))]
        )
        if nested:
            errors.append(_record_error(index, nested[0], "must be a string, a number or NaN, not an object or array"))
            continue
        good.append(values)
        indices.append(index)
    return ParsedRequest.of_rows(good, indices, errors)
