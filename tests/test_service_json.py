"""The JSON provider writes every answer byte for byte as the stdlib encoder does, whether orjson
(plain documents) or the stdlib (everything else) writes it."""

from __future__ import annotations

import json

import numpy as np
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.service.jsonprovider import COMPACT_SEPARATORS, VigilJSONProvider, only_plain_values

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
