"""A V2 JSON tensor's flat ``data`` read by the compiled reader (``v2._with_number_data``) gives
exactly what the orjson path gives: the same tensor values, the same refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vigil.errors import VigilError
from vigil.service import v2


def request_body(data, shape=(2, 3), **extra) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "x", "shape": list(shape), "datatype": "FP32", "data": data}], **extra}
    ).encode()


def parsed(body: bytes):
    """(tensor as float64, id, outputs) or (error class, message) of parse_v2_request."""
    try:
        request = v2.parse_v2_request(body, None, 10_000)
    except VigilError as exc:
        return type(exc).__name__, str(exc)
    # repr: a NaN (the stdlib reads NaN) equals itself
    return repr(request.tensor.astype(np.float64).tolist()), request.id, request.outputs, request.input_name


BODIES = [
    request_body([1.5, -2.25e-7, 3, 0, 1e18, 5e-324]),
    request_body([1.5, -2.25e-7, 3, 0, 1e300, 5e-324]),  # past int64's range: left to the orjson path
    request_body([1, 2, 3, 4, 5, 6]),  # ints: an int64 array on the orjson path, the same values
    request_body([9007199254740993, 2, 3, 4, 5, 6]),  # past 2**53: rounded alike
    request_body([-9999999999999999999, 2, 3, 4, 5, 6]),  # below int64: numpy's reading refuses it
    request_body([9999999999999999999, 2, 3, 4, 5, 6]),
    request_body([1.0, 2, 3, 4, 5]),  # too few
    request_body([1.0, 2, 3, 4, 5, 6, 7]),  # too many
    request_body([[1, 2, 3], [4, 5, 6]]),  # nested rows
    request_body([True, 2, 3, 4, 5, 6]),
    request_body([None, 2, 3, 4, 5, 6]),
    request_body(["1", 2, 3, 4, 5, 6]),
    request_body([]),
    request_body([1, 2, 3, 4, 5, 6], id="a", outputs=[{"name": "probability"}]),
    request_body([1, 2, 3, 4, 5, 6], parameters={"data": [7]}),  # a second "data"
    request_body([1, 2, 3, 4, 5, 6], id="\u0000"),  # the stand-in's own text elsewhere
    request_body([1, 2, 3, 4, 5, 6], id='"data": [1, 2]'),
    b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [-0, 1, 2, 3, 4, 5]}]}',
    b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [01, 1, 2, 3, 4, 5]}]}',
    b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [NaN, 1, 2, 3, 4, 5]}]}',
    b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1e999, 1, 2, 3, 4, 5]}]}',
    b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data" :\n[ 1 ,2,3,4,5,6 ] }]}',
    b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}], "inputs": []}',
    b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32"}], "data": [1, 2, 3, 4, 5, 6]}',
    b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}, {"data": 1}]}',
    b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "d\\u0061ta": [0], "data": [1, 2, 3, 4, 5, 6]}]}',
    b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6], "d\\u0061ta": [0]}]}',
    b'{"inputs": [{"name": "x\\", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}',
    b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]',
]


@pytest.mark.parametrize("body", BODIES)
def test_the_compiled_reader_answers_as_the_orjson_path(body, monkeypatch):
    fast = parsed(body)
    monkeypatch.setattr(v2, "_with_number_data", lambda body: None)
    assert fast == parsed(body)


def test_the_plain_form_is_read_by_the_compiled_reader():
    values = np.random.default_rng(7).standard_normal(2 * 2381).astype(np.float32)
    body = request_body(values.tolist(), shape=(2, 2381))
    document, text = v2._with_number_data(body)
    data = document["inputs"][0]["data"]
    assert isinstance(data, np.ndarray) and np.array_equal(data.astype(np.float32), values)
    assert len(text) < 200  # the numbers are not in the text orjson parsed
    assert v2._with_number_data(request_body(values.reshape(2, -1).tolist(), shape=(2, 2381))) is None
