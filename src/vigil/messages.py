"""A Kafka message value as JSON, refusing what would hurt the consumer: any task's parse can use it.

:func:`json_message` raises :class:`~vigil.windows.RejectedMessage` (recorded with the
message's offset, never fatal) for an empty value, bytes that are not UTF-8 JSON, nesting deeper than
``max_depth`` (checked on the bytes before parsing, so 100,000 nested brackets cost one scan, not a
RecursionError), and a NaN, an infinity or a number beyond the float range (``NaN``, ``Infinity``,
``1e400``) as the value of an object's field, naming the field::

    >>> json_message(b'{"entropy": 2.5}')
    {'entropy': 2.5}
    >>> json_message(b'[' * 100_000 + b']' * 100_000)
    Traceback (most recent call last):
    ...
    vigil.windows.RejectedMessage: JSON nested deeper than 32 levels
    >>> json_message(b'{"entropy": NaN}')
    Traceback (most recent call last):
    ...
    vigil.windows.RejectedMessage: field 'entropy': nan is not a finite number (NaN, Infinity or beyond the float range)
"""

from __future__ import annotations

import json
import math
import re

import orjson

from vigil.windows import RejectedMessage

MAX_JSON_DEPTH = 32

_SPECIAL = re.compile(rb'[\[\]{}"\\]')


def json_depth_exceeds(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """True when ``data`` opens more than ``max_depth`` arrays/objects inside one another.

    One pass over the brackets, quotes and backslashes (linear, whatever the bytes); brackets inside
    strings do not count.
    """
    if data.count(b"[") + data.count(b"{") <= max_depth:  # the common case: one cheap count
        return False
    depth, in_string, skip_to = 0, False, -1
    for match in _SPECIAL.finditer(data):
        at = match.start()
        if at < skip_to:  # the character after a backslash
            continue
        char = data[at]
        if in_string:
            if char == 0x5C:  # backslash: the next character is escaped
                skip_to = at + 2
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > max_depth:
                return True
        elif char in (0x5D, 0x7D):
            depth -= 1
    return False


def _finite_fields(pairs: list) -> dict:
    for key, value in pairs:
        if isinstance(value, float) and not math.isfinite(value):
            raise RejectedMessage(
                f"field {key[:60]!r}: {value} is not a finite number (NaN, Infinity or beyond the float range)"
            )
    return dict(pairs)


# one decoder for every message: json.loads with a hook builds a new JSONDecoder per call
_DECODER = json.JSONDecoder(object_pairs_hook=_finite_fields)


_PLAIN_SCALARS = frozenset({str, int, bool, type(None)})
_BEYOND_64_BITS = float(2**63)


def _as_standard_parser_reads(parsed) -> bool:
    """Whether orjson's value is the standard parser's. They differ only on integers beyond 64 bits,
    which orjson gives as floats (of magnitude 2**63 or more); a nested value is left to the standard
    parser. Checked on the parsed values, by type first (a message of texts is one set of types)."""
    values = parsed.values() if isinstance(parsed, dict) else parsed if isinstance(parsed, list) else (parsed,)
    kinds = set(map(type, values))
    if kinds <= _PLAIN_SCALARS:
        return True
    if kinds - _PLAIN_SCALARS != {float}:
        return False
    return max(abs(v) for v in values if type(v) is float) < _BEYOND_64_BITS


def json_message(value: bytes | None, max_depth: int = MAX_JSON_DEPTH):
    """The parsed JSON of a message value; RejectedMessage with the reason when it cannot be used."""
    if value is None or not value.strip():
        raise RejectedMessage("empty message")
    try:
        # never NaN or an infinity: those are errors to orjson; nor deeper than its own limit (1,024,
        # without recursion), so the depth check can wait until the value is known not to be flat
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        pass  # the standard parser says why, or reads what orjson refuses (a BOM, a lone surrogate)
    else:
        if max_depth >= 1 and _as_standard_parser_reads(parsed):
            return parsed  # flat (scalars in one object or array): one level deep at most
    if json_depth_exceeds(value, max_depth):
        raise RejectedMessage(f"JSON nested deeper than {max_depth} levels")
    try:
        text = value.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RejectedMessage(f"not JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return _DECODER.decode(text)
    except RecursionError:  # not reached after the depth check; kept so that it can never be fatal
        raise RejectedMessage(f"JSON nested deeper than {max_depth} levels") from None
    except RejectedMessage:
        raise
    except ValueError as exc:
        raise RejectedMessage(f"not JSON: {str(exc)[:200]}") from None


# -- what producers send instead of JSON ------------------------------------------------------------
MAX_LITERAL_BYTES = 16_384  # a str(dict) of one record is far smaller; longer is not parsed at all


def python_literal_record(text: str) -> dict:
    """A Python ``str(dict)`` of one flat record (``{'query': 'a.example', 'label': 1}``) as a dict.

    Never evaluated: the text is parsed by :func:`ast.parse` (bounded by :data:`MAX_LITERAL_BYTES`) and
    only a dict whose keys are strings and whose values are strings, numbers, booleans or None (a
    leading minus allowed) is accepted; anything else (a call, a name, a nested container, a set) is a
    :class:`RejectedMessage` naming what was found.

        >>> python_literal_record("{'query': 'a.example.com', 'Target Attack': 1, 'x': -2.5}")
        {'query': 'a.example.com', 'Target Attack': 1, 'x': -2.5}
        >>> python_literal_record("{'query': __import__('os').getcwd()}")
        Traceback (most recent call last):
        ...
        vigil.windows.RejectedMessage: Python literal: field 'query' is a Call, not a string or number
    """
    import ast

    if len(text) > MAX_LITERAL_BYTES:
        raise RejectedMessage(f"Python literal of {len(text)} characters; at most {MAX_LITERAL_BYTES} are read")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise RejectedMessage(f"not JSON, nor a Python literal record: {str(exc)[:120]}") from None
    node = tree.body
    if not isinstance(node, ast.Dict):
        raise RejectedMessage(f"Python literal: expected a dict, got {type(node).__name__}")
    record: dict = {}
    for key, value in zip(node.keys, node.values):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            raise RejectedMessage("Python literal: every key must be a string")
        record[key.value] = _literal_value(key.value, value)
    return record


def _literal_value(field: str, node):
    import ast

    negative = isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
    if negative:
        node = node.operand
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, int, float, bool))):
        value = node.value
        if negative:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise RejectedMessage(f"Python literal: field {field[:60]!r} negates a non-number")
            value = -value
        if isinstance(value, float) and not math.isfinite(value):
            raise RejectedMessage(f"field {field[:60]!r}: {value} is not a finite number")
        return value
    raise RejectedMessage(f"Python literal: field {field[:60]!r} is a {type(node).__name__}, not a string or number")


def lenient_message(value: bytes | None, max_depth: int = MAX_JSON_DEPTH):
    """:func:`json_message`, and when the value is not JSON: a Python ``str(dict)`` of one record (as a
    dict, :func:`python_literal_record`) or one raw CSV line (returned as the string, as if it had
    been JSON-encoded). Anything else is rejected with the JSON parser's reason."""
    try:
        return json_message(value, max_depth)
    except RejectedMessage as exc:
        if not str(exc).startswith("not JSON") or value is None:
            raise
        error = exc
    try:
        text = value.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise error from None
    if text.startswith("{") and text.endswith("}"):
        return python_literal_record(text)
    if "," in text and "\n" not in text and "\r" not in text:
        return text
    raise error
