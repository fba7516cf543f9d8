"""The Open Inference Protocol (KServe V2) for tasks that score a numeric matrix.

Routes, for every task with :attr:`~vigil.tasks.base.Task.tensor_input` (others are 404):

* ``POST /v2/models/<task>/infer`` (and ``.../versions/<version>/infer``): one input tensor
  (rows, features) in the JSON tensor form ``{"inputs": [{"name", "shape", "datatype": "FP32",
  "data": [...]}]}`` or with the binary-data extension (the JSON is the first
  ``Inference-Header-Content-Length`` bytes, the tensor's raw little-endian bytes follow, sized by
  ``parameters.binary_data_size``) -> ``{"model_name", "model_version", "outputs": [{"name", "shape",
  "datatype", "data"}]}``; outputs asked for with ``parameters.binary_data`` (or the request's
  ``binary_data_output``) come back raw after the JSON, with the same header;
* ``GET /v2/models/<task>``: model metadata (versions, input and output tensors). Liveness,
  readiness and server metadata (``/v2/health/*``, ``/v2``) are in :mod:`vigil.service.health`.

Scoring goes through :func:`vigil.service.predict.run_prediction` (token, row limit, cost budget,
time limit, model version, metrics) and the task's ``predict_tensor``; values are checked with
numpy (:func:`vigil.tensors.check_matrix`). Errors are JSON with an ``error`` string, as V2 says.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import Blueprint, Response, current_app, g, jsonify, request

from vigil.errors import InvalidInput, UnprocessableInput, VigilError
from vigil.service.api import spec
from vigil.service.predict import run_prediction
from vigil.service.validation import check_json_limits, parse_json
from vigil.tasks import PredictInput, all_tasks, get_task
from vigil.tensors import too_many_rows

bp = Blueprint("v2", __name__)

HEADER_LENGTH = "Inference-Header-Content-Length"
# V2 datatypes of numeric tensors -> numpy little-endian dtypes (BYTES and BOOL are not numbers)
V2_DTYPES = {
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
}
OUTPUT_DATATYPES = {"f8": "FP64", "f4": "FP32", "b1": "BOOL", "i8": "INT64", "i4": "INT32", "u1": "UINT8"}


def _tensor_tasks() -> list[str]:
    return [task.slug for task in all_tasks() if task.tensor_input]


def _tensor_task(task_slug: str):
    task = get_task(task_slug)
    if not task.tensor_input:
        raise VigilError(
            f"task '{task.name}' does not take a numeric matrix", {"tensor_tasks": _tensor_tasks()}, status=404
        )
    return task


def _served(task, version: str | None = None):
    loaded = current_app.extensions["vigil.registry"].get(task.name)
    if version is not None and version != loaded.version:
        raise VigilError(
            f"version {version} of '{task.name}' is not the one served", {"served": loaded.version}, status=404
        )
    return loaded


# -- the request --------------------------------------------------------------------------------
@dataclass
class V2Request:
    """The parts of a V2 ``infer`` request a tensor task needs."""

    id: str | None
    input_name: str
    tensor: np.ndarray
    outputs: list[str] | None  # names asked for, or None for all
    binary_outputs: set[str]  # names to send as raw bytes (binary-data extension)
    binary_default: bool  # the request's parameters.binary_data_output


def _parameters(node: dict) -> dict:
    parameters = node.get("parameters")
    return parameters if isinstance(parameters, dict) else {}


def _parse_json(data: bytes) -> Any:
    """``parse_json``'s document, read with orjson (3-4x faster on a JSON tensor's numbers) where
    orjson can: what it refuses (NaN, overflowing numbers, lone surrogates, bad UTF-8, empty bodies)
    goes to ``parse_json``, so the same bodies are accepted and refused with the same answers."""
    import orjson

    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return parse_json(data)
    check_json_limits(document)  # nesting depth, integers beyond the float range
    return document


_DATA_KEY = b'"data"'
_TO_LIST = re.compile(rb"[ \t\r\n]*:[ \t\r\n]*\[")  # JSON's whitespace, the colon, the list
_STAND_IN = b'"\\u0000"'  # a JSON string; parsed, "\x00"
_INT64_LIMIT = 2.0**63


def _with_number_data(body: bytes) -> tuple[dict, bytes] | None:
    """(document, its text with the list replaced) of a JSON V2 body whose ``inputs[0].data`` is a
    flat list of plain JSON numbers, the list read by the compiled reader
    (:func:`vigil.json_matrix.read_number_list`) into a float64 array that stands in the document
    for it: no Python float per number, ~3x faster. None for any other body, which takes the orjson
    path and gets the answers it always got.

    Made sure of thus: ``"data"`` occurs once in the text; the list is replaced by the string
    ``"\\u0000"``, which the rest of the text may not hold, and orjson must then find that string at
    ``inputs[0].data`` (a list found anywhere else, or inside a string, gives another document or no
    JSON at all: None). The numbers are the doubles orjson reads; a list with a value outside
    +-2**63 is left to the general path, whose numpy reading refuses some integers there."""
    import orjson

    from vigil.json_matrix import read_number_list

    at = body.find(_DATA_KEY)
    found = _TO_LIST.match(body, at + len(_DATA_KEY)) if at >= 0 else None
    if found is None:
        return None
    start = found.end() - 1
    end = body.find(b"]", start)
    if end < 0 or body.find(b"[", start + 1, end) >= 0:  # nested rows: the general path reads them
        return None
    read = read_number_list(body, body.count(b",", start, end) + 1, start)
    if read is None:
        return None
    values, past = read
    if (
        body.find(_DATA_KEY, past) >= 0
        or len(values)
        and not -_INT64_LIMIT <= values.min() <= values.max() < _INT64_LIMIT
    ):
        return None
    text = body[:start] + _STAND_IN + body[past:]
    if text.count(_STAND_IN[1:-1]) != 1:
        return None
    try:
        document = orjson.loads(text)
        check_json_limits(document)
    except (orjson.JSONDecodeError, VigilError):
        return None
    inputs = document.get("inputs") if type(document) is dict else None
    first = inputs[0] if type(inputs) is list and inputs else None
    if type(first) is not dict or first.get("data") != "\x00":
        return None
    first["data"] = values
    return document, text


def parse_v2_request(body: bytes, header_length: str | None, max_rows: int) -> V2Request:
    """One numeric input tensor of a V2 ``infer`` body (JSON, or JSON + binary tensor data)."""
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise InvalidInput(f"{HEADER_LENGTH} is not an integer", {"value": header_length[:40]}) from None
        if not 0 < length <= len(body):
            raise InvalidInput(
                f"{HEADER_LENGTH} {length} is outside the body of {len(body)} bytes",
                {"header_length": length, "body_bytes": len(body)},
            )
        header = body[:length]
        document, binary = _parse_json(header), memoryview(body)[length:]
    else:
        read = _with_number_data(body)
        header, document = (read[1], read[0]) if read is not None else (body, _parse_json(body))
        binary = memoryview(b"")
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list) or not document["inputs"]:
        raise InvalidInput("a V2 infer request needs a non-empty 'inputs' list", {"field": "inputs"})
    if len(document["inputs"]) != 1:
        raise InvalidInput(f"this model takes one input tensor, not {len(document['inputs'])}", {"field": "inputs"})
    tensor_spec = document["inputs"][0]
    if not isinstance(tensor_spec, dict):
        raise InvalidInput("inputs[0] is not an object", {"field": "inputs[0]"})
    name, shape, datatype = tensor_spec.get("name"), tensor_spec.get("shape"), tensor_spec.get("datatype")
    if (
        not isinstance(name, str)
        or not isinstance(datatype, str)
        or not isinstance(shape, list)
        or not all(type(n) is int and n >= 0 for n in shape)
    ):
        raise InvalidInput(
            "inputs[0] needs 'name' (a string), 'shape' (a list of sizes) and 'datatype'", {"field": "inputs[0]"}
        )
    if datatype not in V2_DTYPES:
        raise UnprocessableInput(f"datatype {datatype[:20]} is not numeric", {"accepted": list(V2_DTYPES)})
    if len(shape) != 2:
        raise UnprocessableInput(f"input shape {shape[:8]} is not (rows, features)", {"shape": shape[:8]})
    if shape[0] > max_rows:
        raise too_many_rows(shape[0], max_rows)
    count, dtype = math.prod(shape), np.dtype(V2_DTYPES[datatype])
    size = _parameters(tensor_spec).get("binary_data_size")
    if size is not None:
        if type(size) is not int or size != count * dtype.itemsize or size != len(binary):
            raise InvalidInput(
                f"binary_data_size {str(size)[:20]} does not fit shape {shape} of {datatype} "
                f"({count * dtype.itemsize} bytes) and the {len(binary)} bytes after the JSON",
                {"binary_data_size": str(size)[:20], "expected": count * dtype.itemsize, "binary_bytes": len(binary)},
            )
        tensor = np.frombuffer(binary, dtype=dtype, count=count).reshape(shape)
        if not tensor.flags.aligned:  # the JSON's length decides the offset: numpy and LightGBM want aligned
            tensor = tensor.copy()
    else:
        if len(binary):
            raise InvalidInput(
                "binary data after the JSON but no input has parameters.binary_data_size", {"binary_bytes": len(binary)}
            )
        # a JSON bool can only be there if the text says true or false somewhere
        tensor = _json_tensor(tensor_spec.get("data"), shape, count, b"true" in header or b"false" in header)
    default = bool(_parameters(document).get("binary_data_output", False))
    outputs, binary_outputs = None, set()
    if isinstance(document.get("outputs"), list):
        outputs = []
        for wanted in document["outputs"]:
            if not isinstance(wanted, dict) or not isinstance(wanted.get("name"), str):
                raise InvalidInput("every entry of 'outputs' needs a 'name'", {"field": "outputs"})
            outputs.append(wanted["name"])
            if _parameters(wanted).get("binary_data", default):
                binary_outputs.add(wanted["name"])
    request_id = document.get("id")
    return V2Request(
        id=None if request_id is None else str(request_id)[:256],
        input_name=name,
        tensor=tensor,
        outputs=outputs,
        binary_outputs=binary_outputs,
        binary_default=default,
    )


def _json_tensor(data: Any, shape: list[int], count: int, may_hold_bools: bool = True) -> np.ndarray:
    """The 'data' of a JSON tensor (flat or nested, row-major) as a numeric array of ``shape``,
    converted by numpy in C; true/false are refused (numpy would read them as 1 and 0)."""
    if isinstance(data, np.ndarray):  # read by the compiled reader: numbers only, flat
        if data.size != count:
            raise _not_the_numbers(shape, count)
        return data.reshape(shape)
    if not isinstance(data, list):
        raise InvalidInput(
            "inputs[0] needs 'data' (a list of numbers) or parameters.binary_data_size", {"field": "inputs[0].data"}
        )
    try:
        array = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        array = None  # ragged nesting, a huge integer
    if array is None or array.dtype.kind not in "fiu" or array.size != count:
        raise _not_the_numbers(shape, count)
    if may_hold_bools and _has_bools(data):
        raise InvalidInput("inputs[0].data holds true/false, not numbers", {"field": "inputs[0].data"})
    return array.reshape(shape)


def _not_the_numbers(shape: list[int], count: int) -> InvalidInput:
    return InvalidInput(
        f"inputs[0].data is not {count} numbers (shape {shape})",
        {"field": "inputs[0].data", "expected_values": count},
    )


def _has_bools(data: list) -> bool:
    """Whether a (nested) list of numbers holds a bool; C-level (``set(map(type, ...))``) per list."""
    stack = [data]
    while stack:
        values = stack.pop()
        kinds = set(map(type, values))
        if bool in kinds:
            return True
        if list in kinds:
            stack.extend(v for v in values if type(v) is list)
    return False


# -- the answer ---------------------------------------------------------------------------------
def v2_response(model_name: str, model_version: str, outputs: dict[str, Any], v2: V2Request) -> Response:
    """The V2 answer: JSON outputs; those asked for as binary appended raw after the JSON."""
    names = list(outputs) if v2.outputs is None else v2.outputs
    unknown = [name for name in names if name not in outputs]
    if unknown:
        raise InvalidInput(f"unknown output '{unknown[0][:60]}'", {"outputs": list(outputs)})
    described, raw_parts = [], []
    for name in names:
        array = np.asarray(outputs[name])
        if array.dtype.kind == "f" and array.dtype.itemsize < 4:
            array = array.astype(np.float32)
        key = f"{array.dtype.kind}{array.dtype.itemsize}"
        entry: dict[str, Any] = {
            "name": name,
            "shape": list(array.shape),
            "datatype": OUTPUT_DATATYPES.get(key, "FP64"),
        }
        if key not in OUTPUT_DATATYPES:
            array = array.astype(np.float64)
        if name in v2.binary_outputs or (v2.outputs is None and v2.binary_default):
            raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            raw_parts.append(raw)
        else:
            entry["data"] = array.ravel()  # written by the app's JSON provider, like every answer
        described.append(entry)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": described}
    if v2.id is not None:
        document["id"] = v2.id
    header = current_app.json.dumps(document, separators=(",", ":")).encode()
    if not raw_parts:
        return Response(header, mimetype="application/json")
    buffer = io.BytesIO()
    buffer.write(header)
    for raw in raw_parts:
        buffer.write(raw)
    return Response(buffer.getvalue(), mimetype="application/octet-stream", headers={HEADER_LENGTH: str(len(header))})


# -- the routes ---------------------------------------------------------------------------------
INFER_BODY = {
    "description": "Open Inference Protocol (KServe V2) infer request: one (rows, features) input tensor, "
    "JSON data or the binary-data extension (Inference-Header-Content-Length).",
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "inputs": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype"],
                "properties": {
                    "name": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer"}},
                    "datatype": {"type": "string", "enum": list(V2_DTYPES)},
                    "parameters": {"type": "object"},
                    "data": {"type": "array"},
                },
            },
        },
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        "parameters": {"type": "object"},
    },
}


def _infer_example(task_slug: str):
    """The task's own example request as a V2 tensor, where it is a list of numeric rows."""
    rows = get_task(task_slug).example_request()
    if not (isinstance(rows, list) and rows and all(isinstance(row, list) and row for row in rows)):
        return None
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), len(rows[0])],
                "datatype": "FP32",
                "data": [value for row in rows for value in row],
            }
        ]
    }


def _infer(task_slug: str, version: str | None = None):
    task = _tensor_task(task_slug)
    loaded = _served(task, version)
    settings = current_app.config["VIGIL_SETTINGS"]
    v2 = parse_v2_request(request.get_data(cache=True), request.headers.get(HEADER_LENGTH), settings.max_rows)
    g.vigil_rows = int(v2.tensor.shape[0])
    predict_input = PredictInput(
        tensor=v2.tensor, content_type=request.mimetype or "", args=request.args.to_dict(), max_rows=settings.max_rows
    )

    def answer(task, loaded, predict_input):
        return {"outputs": task.predict_tensor(loaded, predict_input.tensor, predict_input)}

    result = run_prediction(task.name, loaded=loaded, answer=answer, predict_input=predict_input)
    return v2_response(task.name, loaded.version, result["outputs"], v2)


_INFER_SPEC = dict(
    summary="Score a numeric matrix (KServe V2 infer: JSON tensor or binary data)",
    body=INFER_BODY,
    example=_infer_example,
    content_types=("application/json", "application/octet-stream"),
    validate=False,
    raw_body=True,
    counts_rows=False,
    auth="predict",
    tags=["v2"],
    expand={"task_slug": _tensor_tasks},
)


@bp.post("/v2/models/<task_slug>/infer")
@spec(**_INFER_SPEC)
def infer(task_slug: str):
    return _infer(task_slug)


@bp.post("/v2/models/<task_slug>/versions/<version>/infer")
@spec(**_INFER_SPEC)
def infer_version(task_slug: str, version: str):
    return _infer(task_slug, version)


@bp.get("/v2/models/<task_slug>")
@spec(summary="A model's versions, inputs and outputs (KServe V2)", tags=["v2"], expand={"task_slug": _tensor_tasks})
def model_metadata(task_slug: str):
    task = _tensor_task(task_slug)
    loaded = _served(task)
    features = task.tensor_features(loaded)
    probe = task.predict_tensor(loaded, np.zeros((1, features[0]), dtype=np.float32), PredictInput())
    outputs = []
    for name, values in probe.items():
        array = np.asarray(values)
        outputs.append(
            {
                "name": name,
                "datatype": OUTPUT_DATATYPES.get(f"{array.dtype.kind}{array.dtype.itemsize}", "FP64"),
                "shape": [-1, *array.shape[1:]],
            }
        )
    return jsonify(
        {
            "name": task.name,
            "versions": [loaded.version],
            "platform": "vigil",
            "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, f]} for f in features[:1]],
            "outputs": outputs,
        }
    )
