"""vigil.json_matrix: JSON rows of numbers read straight into float64, against Python's ``float``
(correctly rounded, as ``json`` and orjson read numbers) and against the orjson path for the
bodies it must leave alone."""

from __future__ import annotations

import random
import struct
from decimal import Decimal, getcontext

import numpy as np
import orjson
import pytest

from vigil.json_matrix import read_number_list, read_number_rows
from vigil.tensors import json_number_rows


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _numbers(seed: int = 17) -> list[str]:
    """Number spellings of every kind the parser takes: reprs of random doubles (all exponents,
    subnormals), of float32 values (what ``ndarray.tolist()`` of a float32 matrix gives), random
    digit strings of 1-19 digits with exponents from -360 to 310, leading-zero fractions, exact
    half-way points between neighbouring doubles, and the classic edge cases."""
    rng = random.Random(seed)
    numbers = []
    while len(numbers) < 20_000:
        value = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if np.isfinite(value):
            numbers.append(repr(value))
    singles = np.frombuffer(np.random.default_rng(seed).bytes(4 * 20_000), dtype=np.float32)
    numbers += [repr(float(v)) for v in singles[np.isfinite(singles)]]
    for _ in range(20_000):
        digits = str(rng.randint(1, 10 ** rng.randint(1, 19) - 1))
        exponent = rng.randint(-360, 300)
        numbers += [f"{digits}e{exponent}", f"{digits[0]}.{digits[1:] or '0'}E{exponent:+d}"]
        numbers.append(f"0.{'0' * rng.randint(0, 5)}{digits}")
    getcontext().prec = 800
    for _ in range(3_000):
        low = rng.getrandbits(62)
        below, above = (struct.unpack("<d", struct.pack("<Q", low + k))[0] for k in (0, 1))
        middle = format((Decimal(below) + Decimal(above)) / 2, "e")
        mantissa, exponent = middle.split("e")
        numbers.append(f"{mantissa[:20]}e{exponent}")  # 19 digits: just below or at the half-way point
    numbers += [
        "0", "0.0", "1", "9007199254740992", "9007199254740993", "9999999999999999999", "4.9e-324",
        "2.4703282292062328e-324", "2.4703282292062327e-324", "2.2250738585072011e-308",
        "2.2250738585072014e-308", "1.7976931348623157e308", "1e22", "1e23", "1e-400", "0.1",
        "3.4028234663852886e38", "123456789012345678e-5", "-1.5", "-2.5e-310",
    ]  # fmt: skip
    return numbers


def test_every_number_is_the_double_float_reads():
    numbers = _numbers()
    width = 97
    numbers = [n for n in numbers if np.isfinite(float(n))]  # past the largest double: refused, below
    numbers += ["0"] * (-len(numbers) % width)
    rows = [numbers[i : i + width] for i in range(0, len(numbers), width)]
    body = ("[" + ",\n".join("[" + ", ".join(row) + "]" for row in rows) + "]").encode()
    got = read_number_rows(body, width)
    assert got is not None and got.shape == (len(rows), width)
    expected = np.array([[float(n) for n in row] for row in rows], dtype=np.float64)
    mismatches = [(n, g) for n, g, e in zip(numbers, got.ravel(), expected.ravel()) if _bits(g) != _bits(e)]
    assert mismatches == []


@pytest.mark.parametrize(
    "body",
    [
        b"[[01]]", b"[[1.]]", b"[[.5]]", b"[[-]]", b"[[+1]]", b"[[1e]]", b"[[1e+]]", b"[[--1]]", b"[[00]]",
        b"[[1e400]]", b"[[-1e309]]", b"[[-0]]", b"[[-0.0]]", b"[[12345678901234567890]]",
        b"[[1.00000000000000000000]]", b"[[true]]", b"[[null]]", b'[["1"]]', b"[[[1]]]", b"[{}]", b"[[1,]]",
        b"[[,1]]", b"[[1] [2]]", b"[[1],]", b"[[1]]x", b"[[1]]]", b"[[1]", b"[[1\x0b]]", b"\x0c[[1]]",
        b"\xef\xbb\xbf[[1]]", b"[]", b"[[]]", b"", b"[[1],[2,3]]", b"[[NaN]]", b"[[Infinity]]", b"[[0x10]]",
        b"[" * 1000 + b"]" * 1000,
    ],
)  # fmt: skip
def test_anything_but_the_plain_form_is_left_to_the_usual_path(body):
    assert read_number_rows(body, 1) is None


def test_json_number_rows_answers_as_the_orjson_path(monkeypatch):
    """With and without the compiled reader, the same matrices and the same Nones."""
    bodies = [
        b"[[1,2],[3,4]]", b'{"vectors": [[1,2],[3,4]]}', b' {"vectors":[[1,2]]} \n', b'\x0c{"vectors":[[1,2]]}',
        b'{"vectors":[[1,2]]}\x0c', b'{"vectors":[[1,2]], "x": 1}', b'{"vectors":[[1,2]]}}', b'{"vector":[[1,2]]}',
        b'{"vectors":[[1,2]],"vectors":[[3,4]]}', b'{"\\u0076ectors":[[1,2]]}', b"[[1,2],[3]]", b"[[1,true]]",
        b"[[1e400,2]]", b"[[-0,1]]", b"[[-0.0,1]]", b"[]", b'{"vectors": []}', b"[[1,2]]garbage", b"\t[[1,2]] ",
        b"[[12345678901234567890123,1]]", b"[[1,2],[3,4],]", b"[[1, 2]\n,\n[3, 4]]", b'{"vectors": [[1,2]] ]}',
        b"[[[1,2]]]", b"[[0.1,0.2]]", b"[[1.5e-320, 2.2250738585072011e-308]]", b"",
    ]  # fmt: skip
    fast = {(body, key): json_number_rows(body, 2, key=key) for body in bodies for key in (None, "vectors")}
    monkeypatch.setattr("vigil.json_matrix.read_number_rows", lambda *args: None)
    for (body, key), matrix in fast.items():
        usual = json_number_rows(body, 2, key=key)
        assert (matrix is None) == (usual is None), (body, key)
        if matrix is not None:
            assert matrix.tobytes() == usual.tobytes() and matrix.shape == usual.shape, (body, key)


def test_a_real_vector_body_is_read_in_place():
    rows = np.random.default_rng(3).random((20, 2381)).astype(np.float32)
    body = orjson.dumps({"vectors": rows.astype(np.float64).tolist()})
    matrix = json_number_rows(body, 2381, key="vectors")
    assert matrix is not None and matrix.tobytes() == np.array(orjson.loads(body)["vectors"]).tobytes()


def test_one_flat_list_is_read_as_float_reads_it_and_only_in_the_plain_form():
    numbers = [n for n in _numbers(5)[:3000] if np.isfinite(float(n))]
    body = ('{"data": [' + ",".join(numbers) + "], 1]").encode()
    start = body.index(b"[")
    values, end = read_number_list(body, len(numbers), start)
    assert [_bits(v) for v in values] == [_bits(float(n)) for n in numbers]
    assert body[end:] == b", 1]"
    for text in (b"[1, 2", b"[1, 2,]", b"[1, [2]]", b"[1 2]", b"[1, true]", b"[-0, 1]", b" [1, 2]", b"[1, 2, 3]"):
        assert read_number_list(text, 2, 0) is None, text
    assert read_number_list(b"[]", 0, 0)[1] == 2
