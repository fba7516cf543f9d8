"""Answers written and bodies read byte for byte as before: the JSON provider as the stdlib encoder
writes them, whether orjson (plain documents) or the stdlib (everything else) does; request bodies
as werkzeug reads them, in one read or many."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from flask import Flask, request
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.service.jsonprovider import (
    COMPACT_SEPARATORS,
    RECORDS_MIN,
    VigilJSONProvider,
    only_plain_values,
    records_text,
)
from vigil.service.request import VigilRequest, read_declared_body

app = Flask("json-test")
app.json = VigilJSONProvider(app)

scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.text() | st.floats()
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=30,
)


def stdlib(document) -> str:
    return json.dumps(document, separators=COMPACT_SEPARATORS, ensure_ascii=True, sort_keys=False)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_compact_answers_are_the_stdlibs_bytes(document):
    assert app.json.dumps(document, separators=COMPACT_SEPARATORS) == stdlib(document)


column_values = {
    "float": st.floats(),  # NaN, the infinities, subnormals, -0.0, every exponent
    "small float": st.floats(min_value=-1e-3, max_value=1e-3),  # around orjson's switch at 1e-4
    "probability": st.floats(min_value=0, max_value=1),
    "int": st.integers(min_value=-(2**70), max_value=2**70),
    "bool": st.booleans(),
    "text": st.text(max_size=6),
    "none": st.none(),
}


@st.composite
def record_lists(draw):
    """A list of records the column writer takes: one key order, one type per key (or, one time in
    five, a record out of line: another type, a key missing or moved, a numpy float)."""
    keys = draw(st.lists(st.text(max_size=4), min_size=1, max_size=4, unique=True))
    kinds = [draw(st.sampled_from(sorted(column_values))) for _ in keys]
    count = draw(st.integers(min_value=RECORDS_MIN, max_value=RECORDS_MIN + 40))
    records = [{key: draw(column_values[kind]) for key, kind in zip(keys, kinds)} for _ in range(count)]
    if draw(st.integers(0, 4)) == 0:
        odd = records[draw(st.integers(0, count - 1))]
        change = draw(st.sampled_from(["type", "missing", "moved", "numpy"]))
        key = keys[0]
        if change == "type":
            odd[key] = [odd[key]]
        elif change == "missing":
            del odd[key]
        elif change == "moved":
            odd[key] = odd.pop(key)
        else:
            odd[key] = np.float64(0.25)
    return records


@settings(max_examples=200, deadline=None)
@given(record_lists(), st.booleans())
def test_records_written_by_column_are_the_stdlibs_bytes(records, wrapped):
    document = {"task": "t", "threshold": 0.5, "results": records, "n": len(records)} if wrapped else records
    assert app.json.dumps(document, separators=COMPACT_SEPARATORS) == stdlib(_plain(document))


@pytest.mark.parametrize("power", [1, 8, 40])  # a third, then nearly all, of the scores below 1e-4
def test_ember_shaped_answers_go_by_column(power):
    scores = np.random.default_rng(0).random(500) ** power
    records = [{"index": i, "probability": p, "malicious": p > 0.5} for i, p in enumerate(scores.tolist())]
    records[7]["probability"] = float("nan")
    assert records_text(records) == stdlib(records)
    assert records_text(records[: RECORDS_MIN - 1]) is None  # short lists: the stdlib writes them


def test_the_characters_orjson_writes_differently_are_the_stdlibs():
    every_ascii = "".join(map(chr, range(128)))
    for text in (every_ascii, "\x7f", "é", "\u2028", "\U0001f600", "\ud800", "<script>&'"):
        document = [{"EVENT_ID": text, "LABEL_PRED": 1}, {text: [text, None, True]}]
        assert app.json.dumps(document, separators=COMPACT_SEPARATORS) == stdlib(document)


def test_documents_orjson_refuses_or_writes_otherwise_go_to_the_stdlib():
    for document in (
        [{"n": 2**64}, {"n": -(2**63) - 1}],  # past 64 bits
        {1: "int key"},
        [{"p": 1e16, "q": float("nan")}],  # exponent and NaN spelled differently
        [{"label": np.int64(3)}],  # numpy scalars go through ``default``
        [[[[[[]]]]]] * 2,
    ):
        assert app.json.dumps(document, separators=COMPACT_SEPARATORS) == stdlib(_plain(document))
    deep: list = []
    for _ in range(300):
        deep = [deep]
    assert not only_plain_values(deep)
    assert app.json.dumps(deep, separators=COMPACT_SEPARATORS) == stdlib(deep)
    cyclic: list = []
    cyclic.append(cyclic)
    assert not only_plain_values(cyclic)


def _plain(document):
    """``document`` as the stdlib reads it back: numpy values as Python numbers, keys as strings."""
    return json.loads(json.dumps(document, default=lambda value: value.tolist()))


class Trickle(io.RawIOBase):
    """A socket-like stream: at most ``step`` bytes a read."""

    def __init__(self, data: bytes, step: int):
        self.data, self.step, self.position = data, step, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.data[self.position : self.position + min(self.step, len(buffer))]
        buffer[: len(chunk)] = chunk
        self.position += len(chunk)
        return len(chunk)


def test_a_body_is_read_whole_however_the_stream_hands_it_out():
    data = bytes(range(256)) * 1000

    def environ(stream, terminated=False):
        return {"wsgi.input": stream, **({"wsgi.input_terminated": True} if terminated else {})}

    assert read_declared_body(environ(io.BytesIO(data)), len(data)) == data
    assert read_declared_body(environ(Trickle(data, 999)), len(data)) == data
    assert read_declared_body(environ(Trickle(data, 999)), 1000) == data[:1000]  # never past the length
    # a stream that ends early: kept only where the server ends the stream itself
    assert read_declared_body(environ(Trickle(data[:500], 64), terminated=True), 1000) == data[:500]


def test_the_request_caches_the_body_where_werkzeug_does():
    body_app = Flask("body-test")
    body_app.request_class = VigilRequest
    data = json.dumps([{"data": "x" * 100_000}]).encode()
    with body_app.test_request_context("/", method="POST", data=data, content_type="application/json"):
        assert request.get_data() == data and request.get_data() is request.get_data()
        assert request.get_json() == json.loads(data)
    with body_app.test_request_context("/", method="POST", data={"field": "value"}):
        assert request.get_data()  # read before the form, as the middleware does
        assert request.form["field"] == "value"
