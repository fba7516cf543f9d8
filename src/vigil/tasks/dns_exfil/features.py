"""Per-query lexical features of CIC-Bell-DNS-EXF-2021, computed from a raw query name.

The columns are those of the assignment's ``static_dataset.csv`` / ``Kafka_dataset.csv`` (SPECS §4),
in that order. For a query name ``q`` (trailing dot and surrounding blanks removed, otherwise as seen
on the wire; case is kept because it is a signal):

==================  ====================================================================================
FQDN_count          number of characters of ``q`` (dots included)
subdomain_length    number of characters left of the registered domain (dots between them included;
                    the dot that joins it to the registered domain is not), 0 when there is none
upper               count of ``A-Z`` in ``q``
lower               count of ``a-z`` in ``q``
numeric             count of ``0-9`` in ``q``
entropy             Shannon entropy, in bits, of the character distribution of ``q``
special             every other character of ``q`` (dots, ``-``, ``_``, ...): FQDN_count - upper - lower - numeric
labels              number of dot-separated labels
labels_max          length of the longest label
labels_average      mean label length
longest_word        length of the longest alphabetic token of ``q`` (maximal run of letters) that is an
                    English word of at least two letters (SCOWL list shipped in data/dns_exfil); 0 if none.
                    In the CIC CSVs this column holds the word itself or a number: a number is taken as
                    it is, a word as its length (so "local" -> 5 and "2" -> 2, as in the published rows)
sld                 length of the second-level domain label, the label just left of the public suffix
                    (Public Suffix List via tldextract's bundled snapshot; for an unknown TLD such as
                    ``.local`` the last label itself). The CSVs hold the label text: its length is used
len                 subdomain_length + 1 + length of the sld label when there is a subdomain, else the
                    length of the sld label (consistent with every published row, see SPECS §4)
subdomain           1 if there is a subdomain left of the registered domain, else 0
==================  ====================================================================================

Checked in tests/test_dns_features.py against the two real rows of ``static_dataset.csv`` printed in a
public notebook: every column but ``entropy`` matches exactly. The published entropy values are not the
Shannon entropy of any multiset of 15 (or 27) characters, so CIC computed that column on some other
string; ours is the documented definition above.

The extractor is the ordered list of small feature blocks, as in EMBER's ``features.py``::

    >>> extractor = QueryFeatureExtractor()
    >>> extractor.features("_smb._tcp.local")["sld"]
    5.0
"""

from __future__ import annotations

import gzip
import math
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np

from vigil.config import PROJECT_ROOT

FEATURE_COLUMNS = [
    "FQDN_count", "subdomain_length", "upper", "lower", "numeric", "entropy", "special", "labels",
    "labels_max", "labels_average", "longest_word", "sld", "len", "subdomain",
]
LABEL_COLUMN = "Target Attack"
CSV_COLUMNS = ["timestamp", *FEATURE_COLUMNS, LABEL_COLUMN]
FEATURE_VERSION = "cic-dns-exf-2021-stateless/1"
DATA_DIR = PROJECT_ROOT / "data" / "dns_exfil"
MAX_NAME_LENGTH = 253
_LETTER_RUN = re.compile(r"[A-Za-z]+")


@lru_cache(maxsize=1)
def english_words(path: Path | None = None) -> frozenset[str]:
    with gzip.open(path or DATA_DIR / "english_words.txt.gz", "rt", encoding="utf-8") as handle:
        return frozenset(line.strip() for line in handle if len(line.strip()) >= 2)


@lru_cache(maxsize=1)
def _suffix_extractor():
    import tldextract

    # suffix_list_urls=() and cache_dir=None: use the Public Suffix List snapshot bundled with
    # tldextract, never fetch a fresh one and never write a cache (no network at run time).
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def normalize_query(raw) -> str:
    """Strip blanks and the root dot; raise ValueError for what cannot be a DNS name."""
    if not isinstance(raw, str):
        raise ValueError(f"query must be a string, got {type(raw).__name__}")
    name = raw.strip()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise ValueError("query is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"query is {len(name)} characters long; DNS names have at most {MAX_NAME_LENGTH}")
    if any(ch.isspace() or ord(ch) < 33 or ord(ch) > 126 for ch in name):
        raise ValueError("query has blanks or non-ASCII / control characters")
    if ".." in name:
        raise ValueError("query has an empty label")
    return name


class FeatureBlock:
    name: str
    columns: tuple[str, ...]

    @property
    def dim(self) -> int:
        return len(self.columns)

    def raw_features(self, query: str) -> dict:
        raise NotImplementedError

    def process_raw_features(self, raw: dict) -> list[float]:
        return [float(raw[column]) for column in self.columns]


class CharacterClasses(FeatureBlock):
    name = "characters"
    columns = ("FQDN_count", "upper", "lower", "numeric", "special", "entropy")

    def raw_features(self, query: str) -> dict:
        upper = sum(ch.isascii() and ch.isupper() for ch in query)
        lower = sum(ch.isascii() and ch.islower() for ch in query)
        numeric = sum(ch.isascii() and ch.isdigit() for ch in query)
        n = len(query)
        entropy = -sum(c / n * math.log2(c / n) for c in Counter(query).values())
        return {"FQDN_count": n, "upper": upper, "lower": lower, "numeric": numeric,
                "special": n - upper - lower - numeric, "entropy": entropy + 0.0}


class LabelShape(FeatureBlock):
    name = "labels"
    columns = ("labels", "labels_max", "labels_average")

    def raw_features(self, query: str) -> dict:
        lengths = [len(label) for label in query.split(".")]
        return {"labels": len(lengths), "labels_max": max(lengths), "labels_average": sum(lengths) / len(lengths)}


class LongestWord(FeatureBlock):
    name = "longest_word"
    columns = ("longest_word",)

    def __init__(self, words: frozenset[str] | None = None):
        self.words = words if words is not None else english_words()

    def raw_features(self, query: str) -> dict:
        tokens = [t.lower() for t in _LETTER_RUN.findall(query)]
        found = [t for t in tokens if t in self.words]
        return {"longest_word": max(found, key=len) if found else ""}

    def process_raw_features(self, raw: dict) -> list[float]:
        return [float(len(raw["longest_word"]))]


class RegisteredDomain(FeatureBlock):
    name = "registered_domain"
    columns = ("subdomain_length", "sld", "len", "subdomain")

    def raw_features(self, query: str) -> dict:
        parts = _suffix_extractor()(query)
        sld = parts.domain
        subdomain = parts.subdomain
        if not sld:  # the name is itself a public suffix (e.g. "co.uk"): its first label plays the sld
            sld, subdomain = query.split(".")[0], ""
        return {"sld": sld, "subdomain_text": subdomain}

    def process_raw_features(self, raw: dict) -> list[float]:
        sub = len(raw["subdomain_text"])
        sld = len(raw["sld"])
        return [float(sub), float(sld), float(sub + 1 + sld if sub else sld), float(bool(sub))]


class QueryFeatureExtractor:
    """The ordered feature blocks; ``transform(names)`` gives rows in :data:`FEATURE_COLUMNS` order."""

    def __init__(self, blocks: list[FeatureBlock] | None = None):
        self.blocks = blocks or [CharacterClasses(), LabelShape(), LongestWord(), RegisteredDomain()]
        self._order = list(FEATURE_COLUMNS)

    @property
    def dim(self) -> int:
        return sum(block.dim for block in self.blocks)

    def features(self, raw_query: str) -> dict[str, float]:
        query = normalize_query(raw_query)
        values: dict[str, float] = {}
        for block in self.blocks:
            values.update(zip(block.columns, block.process_raw_features(block.raw_features(query))))
        return {column: values[column] for column in self._order}

    def transform(self, queries) -> np.ndarray:
        return np.array([[row[c] for c in self._order] for row in map(self.features, queries)], dtype=float)


# The trees compute in float32: a value beyond its range is as unusable as infinity.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def shown(value, limit: int = 40) -> str:
    """``repr(value)``, cut to about ``limit`` characters: error messages stay short whatever came in."""
    if isinstance(value, int) and value.bit_length() > 3 * limit:  # no str() of a huge integer
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _finite(column: str, value) -> float:
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{column} is {shown(value)}, beyond the float range") from None
    except (TypeError, ValueError):
        raise ValueError(f"{column} is not a number: {shown(value)}") from None
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
        raise ValueError(f"{column} is not a finite number (or beyond the float32 range of the models): "
                         f"{shown(value)}")
    return number


def coerce_csv_value(column: str, value) -> float:
    """One CIC CSV cell as the number the model uses (see the table in the module docstring).

    Refused with ValueError: anything but a number or a text (lists, objects), and NaN, infinity or a
    number beyond float32, whatever its spelling (``inf``, ``"-Infinity"``, ``1e400``, a 401-digit
    integer). A ``longest_word`` that Python would read as NaN or infinity counts as a word only when it
    is one of the shipped English words (``nan``, ``infinity``); ``inf``, ``NaN`` or ``-inf`` are refused.
    An empty ``longest_word`` or ``sld`` (None, NaN, "") is no word: 0.

        >>> coerce_csv_value("longest_word", "local"), coerce_csv_value("longest_word", "2")
        (5.0, 2.0)
        >>> coerce_csv_value("longest_word", "inf")
        Traceback (most recent call last):
        ...
        ValueError: longest_word 'inf' reads as a non-finite number
    """
    if isinstance(value, (list, tuple, dict, set)):
        raise ValueError(f"{column} must be a number or a text, got {type(value).__name__}")
    if column in ("longest_word", "sld"):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return 0.0
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            number = _finite(column, value)
            if column == "longest_word":
                return number
        text = str(value).strip()
        if column == "longest_word":
            try:
                number = float(text)
            except ValueError:
                return float(len(text))  # the word itself
            if math.isfinite(number):
                return _finite(column, number)
            if text in english_words():
                return float(len(text))
            raise ValueError(f"longest_word {shown(text)} reads as a non-finite number")
        return float(len(text))
    return _finite(column, value)
