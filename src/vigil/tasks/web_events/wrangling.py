"""ML-PT's wrangling rules (SPECS §3), as one stateless sklearn transformer.

Raw events in, a clean frame out: integers in range, no missing strings, client addresses as
exploded IPv6, a user-agent validity flag, ``MATCHED_VARIABLE_SRC`` normalised to known values
and those source prefixes stripped from ``MATCHED_VARIABLE_NAME``.

    >>> import pandas as pd
    >>> row = {"CLIENT_IP": "188.138.92.55", "CLIENT_USERAGENT": float("nan"), "REQUEST_SIZE": 166,
    ...        "RESPONSE_CODE": 404, "MATCHED_VARIABLE_SRC": "REQUEST_URI", "MATCHED_VARIABLE_NAME": None,
    ...        "MATCHED_VARIABLE_VALUE": "//tmp/20160925122692indo.php.vob", "EVENT_ID": "AVdhXFgVq1Ppo9zF5Fxu"}
    >>> EventWrangler().transform(pd.DataFrame([row])).loc[0, "CLIENT_IP"]
    '2002:0000:0000:0000:0000:0000:bc8a:5c37'
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import operator
import re
from functools import lru_cache

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

COLUMNS = [
    "CLIENT_IP",
    "CLIENT_USERAGENT",
    "REQUEST_SIZE",
    "RESPONSE_CODE",
    "MATCHED_VARIABLE_SRC",
    "MATCHED_VARIABLE_NAME",
    "MATCHED_VARIABLE_VALUE",
    "EVENT_ID",
]
STRING_COLUMNS = [c for c in COLUMNS if c not in ("REQUEST_SIZE", "RESPONSE_CODE")]

# Several matched variables of one event are joined with this literal token in the raw data.
DATA_DELIMITER = r"\';\'"

# The WAF's variable sources; truncated ones in the raw data ("REQUEST_CONTE") map to the closest.
KNOWN_SRC_VALUES = (
    "REQUEST_URI",
    "REQUEST_GET_ARGS",
    "REQUEST_PATH",
    "REQUEST_HEADERS",
    "REQUEST_METHOD",
    "REQUEST_COOKIES",
    "REQUEST_ARGS_KEYS",
    "RESPONSE_HEADERS",
    "REQUEST_POST_ARGS",
    "REQUEST_JSON",
    "REQUEST_XML",
    "REQUEST_ARGS",
    "CLIENT_USERAGENT",
    "RESPONSE_BODY",
    "CLIENT_SESSION_ID",
    "REQUEST_CONTENT_TYPE",
    "REQUEST_QUERY",
    "REQUEST_FILES",
    "CLIENT_IP",
)

# The "_" argument is jQuery's cache buster; ML-PT renamed it so TF-IDF keeps it as a token.
NAME_RENAMES = {"_": "_JQUERY_NO_CHACHE_"}

MAX_INT = 2**53  # beyond what a float64 feature holds exactly: treat as garbage
REQUEST_SIZE_DEFAULT = -1
RESPONSE_CODE_DEFAULT = 418  # "I'm a teapot": outside any real answer, so it stands out

# MDN's "<product>/<version> <comment>" shape (regex101 library 2McsiK, as ML-PT used).
USER_AGENT_PATTERN = re.compile(r"\((?P<info>.*?)\)(\s|$)|(?P<name>.*?)\/(?P<version>.*?)(\s|$)")
_IPV6_CHARS = re.compile(r"^[\d:a-fA-F]{0,39}$")


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def to_text(value) -> str:
    if is_missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def to_bounded_int(value, low: int | None, high: int | None, default: int) -> int:
    """An integer in [low, high], or ``default`` when missing, unparsable or out of range."""
    if is_missing(value) or isinstance(value, bool):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        try:
            as_float = float(value)
        except (TypeError, ValueError, OverflowError):
            return default
        if not math.isfinite(as_float) or not as_float.is_integer():
            return default
        number = int(as_float)
    if abs(number) > MAX_INT:
        return default
    if (low is not None and number < low) or (high is not None and number > high):
        return default
    return number


def request_size(value) -> int:
    return to_bounded_int(value, 0, None, REQUEST_SIZE_DEFAULT)


def response_code(value) -> int:
    return to_bounded_int(value, 100, 599, RESPONSE_CODE_DEFAULT)


@lru_cache(maxsize=200_000)
def client_ip_groups(address: str) -> str:
    """Exploded IPv6 text; IPv4 goes into 2002::/16 (6to4), broken addresses are padded to 8 groups."""
    try:
        parsed = ipaddress.ip_address(address)
        if isinstance(parsed, ipaddress.IPv4Address):
            return ipaddress.IPv6Address("2002::" + address).exploded
        return parsed.exploded.split("%")[0]  # drop a zone index ("fe80::1%eth0")
    except ValueError:
        pass
    groups = address.split(":") if _IPV6_CHARS.match(address) else []
    groups = [g.rjust(4, "0") for g in groups] if len(groups) > 1 else []
    groups += ["0000"] * (8 - len(groups))
    return ":".join(groups[:8])


@lru_cache(maxsize=100_000)
def is_valid_user_agent(user_agent: str) -> bool:
    return bool(USER_AGENT_PATTERN.match(user_agent))


@lru_cache(maxsize=4096)
def normalise_src_token(token: str) -> str:
    """The known source this (possibly truncated) token starts; unknown tokens stay as they are."""
    if not token:
        return ""
    candidates = [known for known in KNOWN_SRC_VALUES if known.startswith(token)]
    # Every candidate starts with the token, so the closest (Levenshtein) is the shortest.
    return min(candidates, key=lambda known: (len(known), known)) if candidates else token


def normalise_src(src: str) -> list[str]:
    return [normalise_src_token(token) for token in src.split(DATA_DELIMITER)] if src else []


def clean_variable_names(name: str, sources: list[str]) -> list[str]:
    for source in sources:
        if source:
            name = name.replace(source + ".", "").replace(source, "")
    if not name:
        return []
    return [NAME_RENAMES.get(part, part) for part in name.split(DATA_DELIMITER)]


@lru_cache(maxsize=100_000)
def clean_src_and_name(src: str, name: str) -> tuple[str, str]:
    """``(MATCHED_VARIABLE_SRC, MATCHED_VARIABLE_NAME)`` wrangled; events repeat these pairs a lot."""
    sources = normalise_src(src)
    return DATA_DELIMITER.join(sources), DATA_DELIMITER.join(clean_variable_names(name, sources))


def _texts(values: list) -> list[str]:
    """:func:`to_text` of every value; the strings (the usual case) are found and kept in C-level
    passes, only the others (NaN for a missing value, numbers) go through ``to_text``."""
    texts = list(values)
    for position in _positions_not_of_type(values, str):
        texts[position] = to_text(values[position])
    return texts


def _positions_not_of_type(values: list, kind: type):
    """The positions of the values whose type is not exactly ``kind``, in order (C-level passes)."""
    return itertools.compress(itertools.count(), map(operator.is_not, map(type, values), itertools.repeat(kind)))


_NUMBER_TYPES = frozenset({int, float})
_first, _second = operator.itemgetter(0), operator.itemgetter(1)


def _bounded_ints(values: list, low: int, high: int, default: int, slow, kinds=None) -> np.ndarray:
    # An int or float within [low, high] gives int(value), as to_bounded_int does for it (int() first,
    # so 166.7 -> 166; NaN fails the comparison); anything else (text, bool, out of range) takes the long way.
    # ``kinds``: the types of ``values`` where the caller knows them already.
    kinds = set(map(type, values)) if kinds is None else kinds
    if kinds == {int}:  # JSON's usual case: one numpy pass
        try:
            numbers = np.array(values, dtype=np.int64)
        except OverflowError:  # beyond int64: value by value below
            pass
        else:  # an int out of range is the default (to_bounded_int's range check)
            return np.where((numbers >= low) & (numbers <= high), numbers, default).astype(np.int64)
    elif kinds <= _NUMBER_TYPES:  # ints and floats (NaN for a missing value): in float64
        try:
            return _numbers_bounded(values, low, high, slow)
        except OverflowError:  # an int beyond the float range: value by value below
            pass
    elif int in kinds:  # ints and a few others (text, bool): the ints in one numpy pass
        try:
            return _mostly_bounded_ints(values, low, high, slow)
        except OverflowError:  # an int beyond int64: value by value below
            pass
    return np.array([_bounded_int(value, low, high, slow) for value in values], dtype=np.int64)


def _bounded_int(value, low: int, high: int, slow) -> int:
    return int(value) if type(value) in _NUMBER_TYPES and low <= value <= high else slow(value)


_EXACT_IN_FLOAT = 2.0**53  # every int of smaller magnitude is exactly a float64


def _numbers_bounded(values: list, low: int, high: int, slow) -> np.ndarray:
    """:func:`_bounded_int` of every value, all ints or floats (``low`` and ``high`` exact as floats):
    those within [low, high] and below 2**53 in magnitude through one float64 array (exact there,
    and ``astype`` truncates toward zero as ``int()`` does), the others (NaN, out of range, larger)
    one by one; a NaN gets the rule's answer for NaN, asked once."""
    numbers = np.array(values, dtype=np.float64)  # OverflowError for an int beyond the float range
    inside = (numbers >= low) & (numbers <= high) & (np.abs(numbers) < _EXACT_IN_FLOAT)
    bounded = np.zeros(len(values), dtype=np.int64)
    bounded[inside] = numbers[inside].astype(np.int64)
    positions = np.flatnonzero(~inside).tolist()
    missing = slow(math.nan)
    bounded[positions] = [
        missing if value != value else _bounded_int(value, low, high, slow)
        for value in map(values.__getitem__, positions)
    ]
    return bounded


def _mostly_bounded_ints(values: list, low: int, high: int, slow) -> np.ndarray:
    """:func:`_bounded_int` of every value: the ints within [low, high] as they are, in numpy, every
    other value (the few) one by one."""
    is_int = np.fromiter(map(operator.is_, map(type, values), itertools.repeat(int)), dtype=bool, count=len(values))
    numbers = np.array(list(itertools.compress(values, is_int)), dtype=np.int64)  # OverflowError past int64
    bounded = np.empty(len(values), dtype=np.int64)
    int_positions = np.flatnonzero(is_int)
    bounded[int_positions] = numbers
    outside = int_positions[(numbers < low) | (numbers > high)]
    positions = outside.tolist() + np.flatnonzero(~is_int).tolist()  # the types looked at once
    bounded[positions] = [_bounded_int(value, low, high, slow) for value in map(values.__getitem__, positions)]
    return bounded


def wrangle_columns(columns) -> dict:
    """ML-PT's rules on column lists (``columns[name]``: the values of that column, any types) ->
    the clean columns (lists of str, int64 / bool arrays). :class:`EventWrangler` and the service's
    scorer (:mod:`vigil.tasks.web_events.scoring`) both go through here, so they cannot differ."""
    texts = {c: _texts(list(columns[c])) for c in STRING_COLUMNS}
    cleaned = [
        clean_src_and_name(src, name)
        for src, name in zip(texts["MATCHED_VARIABLE_SRC"], texts["MATCHED_VARIABLE_NAME"])
    ]
    return {
        "CLIENT_IP": [client_ip_groups(ip) for ip in texts["CLIENT_IP"]],
        "CLIENT_USERAGENT": texts["CLIENT_USERAGENT"],
        "IS_USERAGENT_VALID": np.array([is_valid_user_agent(ua) for ua in texts["CLIENT_USERAGENT"]], dtype=bool),
        "REQUEST_SIZE": _bounded_ints(list(columns["REQUEST_SIZE"]), 0, MAX_INT, REQUEST_SIZE_DEFAULT, request_size),
        "RESPONSE_CODE": _bounded_ints(list(columns["RESPONSE_CODE"]), 100, 599, RESPONSE_CODE_DEFAULT, response_code),
        "MATCHED_VARIABLE_SRC": [src for src, _ in cleaned],
        "MATCHED_VARIABLE_NAME": [name for _, name in cleaned],
        "MATCHED_VARIABLE_VALUE": texts["MATCHED_VARIABLE_VALUE"],
        "EVENT_ID": texts["EVENT_ID"],
    }


class EventWrangler(TransformerMixin, BaseEstimator):
    """Raw event frame (the eight columns, any dtypes) -> clean frame plus ``IS_USERAGENT_VALID``."""

    def fit(self, events: pd.DataFrame, y=None):
        return self

    def transform(self, events: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in COLUMNS if c not in events.columns]
        if missing:
            raise ValueError(f"events lack columns {missing}")
        return pd.DataFrame(wrangle_columns({c: events[c].tolist() for c in COLUMNS}), index=events.index)


def texts_of(values: list, kinds=None) -> list[str]:
    """``values`` as text, by :func:`to_text`; the list itself when it holds only strings (one C-level
    look, none where ``kinds``, the types of ``values``, is given)."""
    return values if (set(map(type, values)) if kinds is None else kinds) <= {str} else _texts(values)


class DistinctWrangled:
    """The columns :func:`wrangle_columns` gives, computed lazily, the per-text rules once per
    distinct text: ``distinct(name)`` -> (the wrangled value of each distinct raw text, the index of
    each row's text among them); ``values(name)`` -> one wrangled value per row. The same functions
    as :func:`wrangle_columns`, so the same values (the ML-PT scorer's tests compare the features).

    ``factorize(texts)`` -> (distinct texts in first-seen order, codes), e.g. pd.factorize's answer;
    ``types``: column name -> the types of its values, where the caller knows them (a parsed request).

    The source and variable-name columns are wrangled together (the name's rule depends on the
    source): once per distinct raw (source, name) pair, so ``distinct`` of either may list a value
    more than once (one per pair), which changes no row's value.
    """

    _PER_TEXT = {
        "CLIENT_IP": client_ip_groups,
        "CLIENT_USERAGENT": None,
        "MATCHED_VARIABLE_VALUE": None,
        "EVENT_ID": None,
    }

    def __init__(self, columns, factorize, types=None):
        self.columns, self.factorize, self.types = columns, factorize, types or {}
        self._distinct: dict = {}
        self._distinct_pairs: tuple[list, list, np.ndarray] | None = None

    def _texts_distinct(self, name: str):
        if name not in self._distinct:
            self._distinct[name] = self.factorize(texts_of(list(self.columns[name]), self.types.get(name)))
        return self._distinct[name]

    def _source_name_pairs(self) -> tuple[list, list, np.ndarray]:
        """(the wrangled source of each distinct raw (source, name) pair, its wrangled name, the
        index of each row's pair among them): the raw texts factorized, and their codes paired."""
        if self._distinct_pairs is None:
            sources, source_codes = self._texts_distinct("MATCHED_VARIABLE_SRC")
            names, name_codes = self._texts_distinct("MATCHED_VARIABLE_NAME")
            codes, pairs = pd.factorize(np.asarray(source_codes, dtype=np.int64) * len(names) + name_codes)
            cleaned = [
                clean_src_and_name(sources[pair // len(names)], names[pair % len(names)]) for pair in pairs.tolist()
            ]
            self._distinct_pairs = (list(map(_first, cleaned)), list(map(_second, cleaned)), codes)
        return self._distinct_pairs

    def distinct(self, name: str):
        if name in self._PER_TEXT:
            texts, codes = self._texts_distinct(name)
            rule = self._PER_TEXT[name]
            return (texts if rule is None else [rule(text) for text in texts]), codes
        if name == "IS_USERAGENT_VALID":
            texts, codes = self._texts_distinct("CLIENT_USERAGENT")
            return np.array([is_valid_user_agent(text) for text in texts], dtype=bool), codes
        if name in ("MATCHED_VARIABLE_SRC", "MATCHED_VARIABLE_NAME"):
            sources, names, codes = self._source_name_pairs()
            return (sources if name == "MATCHED_VARIABLE_SRC" else names), codes
        return self.factorize(list(self.values(name)))

    def values(self, name: str):
        if name in self._PER_TEXT or name in ("IS_USERAGENT_VALID", "MATCHED_VARIABLE_SRC", "MATCHED_VARIABLE_NAME"):
            uniques, codes = self.distinct(name)
            return np.asarray(uniques)[codes] if isinstance(uniques, np.ndarray) else [uniques[i] for i in codes]
        kinds = self.types.get(name)
        if name == "REQUEST_SIZE":
            return _bounded_ints(list(self.columns[name]), 0, MAX_INT, REQUEST_SIZE_DEFAULT, request_size, kinds)
        if name == "RESPONSE_CODE":
            return _bounded_ints(list(self.columns[name]), 100, 599, RESPONSE_CODE_DEFAULT, response_code, kinds)
        raise KeyError(name)
