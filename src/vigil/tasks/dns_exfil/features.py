r"""Per-query lexical features of DNS query names: the CIC-Bell-DNS-EXF-2021 columns, and more.

A query name arrives as text in *presentation form* (what dig, BIND, tcpdump and tshark print): labels
joined by dots, ``\DDD`` (three decimal digits) for any byte, ``\X`` for a literal ``X`` (``\.`` is a
dot inside a label), optionally a root dot at the end. :func:`parse_query_name` turns that into the
labels as bytes, the way the name is on the wire, so nothing legal in DNS is refused:

- ``/``, ``+``, ``=``, ``_`` and every other byte are label content (dns2tcp's base64 uses them); a name
  is never parsed as a URL;
- ``\DDD`` escapes and raw 8-bit bytes (iodine's Base128, any binary label) are bytes; a non-ASCII
  character in the text is taken as its UTF-8 bytes (what mDNS sends); ``bytes`` input is taken byte
  for byte;
- limits are those of the wire: each label 1-63 bytes, the whole name at most 255 bytes in wire form
  (length bytes and the root byte included). Only what cannot be on the wire is refused: an empty
  name, an empty label, a label over 63 bytes, a name over 255 bytes, a bad ``\DDD`` (above 255).

Every count below is over the bytes of the name, dots between labels included (one character per
byte, as the name reads when each byte is printed as one character); case is kept (base64 is mixed
case). For ASCII names this is exactly the string the CIC columns were defined on.

The CIC columns, in the order of the assignment's ``static_dataset.csv`` / ``Kafka_dataset.csv``
(SPECS §4):

==================  ====================================================================================
FQDN_count          number of bytes of the name (dots included; no root dot)
subdomain_length    number of bytes left of the registered domain (dots between them included;
                    the dot that joins it to the registered domain is not), 0 when there is none
upper               count of ``A-Z``
lower               count of ``a-z``
numeric             count of ``0-9``
entropy             Shannon entropy, in bits, of the byte distribution of the name
special             every other byte (dots, ``-``, ``_``, ``/``, 8-bit bytes...):
                    FQDN_count - upper - lower - numeric
labels              number of labels
labels_max          length of the longest label
labels_average      mean label length
longest_word        length of the longest alphabetic token (maximal run of ASCII letters) that is an
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

The suffix lookup sees only the shape of the labels (tldextract parses URLs, so a ``/`` would cut the
name short): each byte outside ``[A-Za-z0-9-]`` is replaced by ``a`` before the lookup, which keeps
every label's length and leaves every public suffix as it is (no suffix holds such a byte).

Checked in tests/test_dns_features.py against the two real rows of ``static_dataset.csv`` printed in a
public notebook: every column but ``entropy`` matches exactly. The published entropy values are not the
Shannon entropy of any multiset of 15 (or 27) characters, so CIC computed that column on some other
string; ours is the documented definition above.

:data:`QUERY_COLUMNS` adds what real tunnels show and the CIC columns miss (the per-query model of
real captures uses them; the CIC static model keeps the 14 columns):

==================  ====================================================================================
wire_length         bytes of the name on the wire (a length byte per label, the root byte)
eight_bit           bytes >= 0x80 (no host name has one; iodine's Base128 and raw binary labels do)
non_hostname        ASCII bytes other than letters, digits, ``-``, ``_`` and dots (``/ + =``, controls)
sub_labels          labels of the subdomain part
sub_entropy         Shannon entropy (bits) of the subdomain's bytes, dots left out
sub_digit_ratio     digits / bytes of the subdomain
sub_upper_ratio     upper-case letters / letters of the subdomain
case_switches       lower/upper alternations inside subdomain labels (base64 switches often)
sub_vowel_ratio     vowels / letters of the subdomain
max_consonant_run   longest run of consonants in the subdomain
==================  ====================================================================================

The extractor is the ordered list of small feature blocks, as in EMBER's ``features.py``::

    >>> extractor = QueryFeatureExtractor()
    >>> extractor.features("_smb._tcp.local")["sld"]
    5.0
    >>> extractor.features(r"a/b+\128x.t.example.com")["subdomain_length"]
    8.0
"""

from __future__ import annotations

import gzip
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache, reduce
from operator import add
from pathlib import Path

import numpy as np

from vigil.config import SAMPLE_DATA

FEATURE_COLUMNS = [
    "FQDN_count",
    "subdomain_length",
    "upper",
    "lower",
    "numeric",
    "entropy",
    "special",
    "labels",
    "labels_max",
    "labels_average",
    "longest_word",
    "sld",
    "len",
    "subdomain",
]
LABEL_COLUMN = "Target Attack"
CSV_COLUMNS = ["timestamp", *FEATURE_COLUMNS, LABEL_COLUMN]
FEATURE_VERSION = "cic-dns-exf-2021-stateless/1"
QUERY_FEATURE_VERSION = "dns-query-wire/1"
DATA_DIR = SAMPLE_DATA / "dns_exfil"
MAX_WIRE_LENGTH = 255
MAX_LABEL_LENGTH = 63
MAX_NAME_LENGTH = 253  # presentation characters of an all-ASCII name of MAX_WIRE_LENGTH wire bytes
MAX_TEXT_LENGTH = 4 * MAX_WIRE_LENGTH + 8  # every byte escaped as \DDD, plus slack: longer is refused unread
_LETTER_RUN = re.compile(r"[A-Za-z]+")
_CONSONANT_RUN = re.compile(r"[b-df-hj-np-tv-zB-DF-HJ-NP-TV-Z]+")
_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_HOSTNAME = _SAFE | frozenset(b"_")
_VOWELS = frozenset(b"aeiouAEIOU")


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


@dataclass(frozen=True)
class QueryName:
    """A query name as its labels' bytes. ``text`` is one character per byte (latin-1), dots between."""

    labels: tuple[bytes, ...]

    @property
    def text(self) -> str:
        return ".".join(label.decode("latin-1") for label in self.labels)

    @property
    def wire_length(self) -> int:
        return sum(len(label) + 1 for label in self.labels) + 1

    @property
    def presentation(self) -> str:
        """RFC 1035 §5.1 form: printable ASCII as is (``.`` and ``\\`` escaped), other bytes as ``\\DDD``."""

        def label_text(label: bytes) -> str:
            out = []
            for byte in label:
                if byte in (0x2E, 0x5C, 0x22, 0x28, 0x29, 0x3B, 0x40, 0x24):
                    out.append("\\" + chr(byte))
                elif 0x21 <= byte <= 0x7E:
                    out.append(chr(byte))
                else:
                    out.append(f"\\{byte:03d}")
            return "".join(out)

        return ".".join(label_text(label) for label in self.labels) + "."

    def __str__(self) -> str:
        return self.text


def parse_query_name(raw) -> QueryName:
    r"""Presentation text (or bytes) -> :class:`QueryName`; ValueError for what cannot be on the wire.

    >>> parse_query_name(r"a\.b\128.example.com.").labels
    (b'a.b\x80', b'example', b'com')
    >>> parse_query_name("x" * 64 + ".com")
    Traceback (most recent call last):
    ...
    ValueError: label 1 is 64 bytes long; DNS labels have at most 63
    """
    if isinstance(raw, QueryName):
        return raw
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("latin-1")
        to_bytes = lambda ch: bytes([ord(ch)])  # noqa: E731 - byte for byte
    elif isinstance(raw, str):
        to_bytes = lambda ch: ch.encode("utf-8", errors="surrogatepass")  # noqa: E731
    else:
        raise ValueError(f"query must be a string, got {type(raw).__name__}")
    if len(raw) > MAX_TEXT_LENGTH:
        raise ValueError(f"query is {len(raw)} characters long; a DNS name has at most {MAX_WIRE_LENGTH} bytes")
    text = raw.strip(" \t\r\n")
    if not text:
        raise ValueError("query is empty")
    if text == ".":
        return QueryName(())
    labels: list[bytes] = []
    current = bytearray()
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            digits = text[i + 1 : i + 4]
            if len(digits) == 3 and digits.isascii() and digits.isdigit():
                value = int(digits)
                if value > 255:
                    raise ValueError(f"escape \\{digits} is not a byte (at most \\255)")
                current.append(value)
                i += 4
                continue
            if i + 1 < n:
                current += to_bytes(text[i + 1])
                i += 2
                continue
            raise ValueError("query ends with a lone backslash")
        if ch == ".":
            if not current:
                raise ValueError("query has an empty label")
            labels.append(bytes(current))
            current = bytearray()
            i += 1
            continue
        current += to_bytes(ch)
        i += 1
    if current:
        labels.append(bytes(current))
    for index, label in enumerate(labels, 1):
        if len(label) > MAX_LABEL_LENGTH:
            raise ValueError(f"label {index} is {len(label)} bytes long; DNS labels have at most {MAX_LABEL_LENGTH}")
    name = QueryName(tuple(labels))
    if name.wire_length > MAX_WIRE_LENGTH:
        raise ValueError(
            f"query is {name.wire_length} bytes long on the wire; DNS names have at most {MAX_WIRE_LENGTH}"
        )
    return name


def normalize_query(raw) -> str:
    """The name in presentation form without the root dot (``\\DDD`` for bytes outside printable ASCII):
    parsing it again gives the same bytes. ValueError as :func:`parse_query_name`."""
    name = parse_query_name(raw)
    return name.presentation[:-1] if name.labels else "."


@lru_cache(maxsize=65536)
def _registered_split(shape: str) -> tuple[int, int]:
    """(labels of the sld, labels of the public suffix) for a name of safe-shaped labels."""
    parts = _suffix_extractor()(shape)
    if not parts.domain:
        return 0, 0
    return 1, len(parts.suffix.split(".")) if parts.suffix else 0


def registered_domain_index(name: QueryName) -> int:
    """Index of the sld label in ``name.labels`` (the label left of the public suffix); -1 for the root."""
    if not name.labels:
        return -1
    shape = ".".join("".join(chr(b) if b in _SAFE else "a" for b in label) for label in name.labels)
    has_sld, suffix_labels = _registered_split(shape)
    if not has_sld:  # the name is itself a public suffix (e.g. "co.uk"): its first label plays the sld
        return 0
    return len(name.labels) - suffix_labels - 1


def registered_domain(raw) -> str:
    """The registered domain (sld label and public suffix) in presentation form, lower-cased.

    >>> registered_domain("A1B2.t.Example.co.uk")
    'example.co.uk'
    """
    name = parse_query_name(raw)
    index = registered_domain_index(name)
    if index < 0:
        return "."
    return QueryName(name.labels[index:]).presentation[:-1].lower()


class FeatureBlock:
    name: str
    columns: tuple[str, ...]

    @property
    def dim(self) -> int:
        return len(self.columns)

    def raw_features(self, query: QueryName) -> dict:
        raise NotImplementedError

    def process_raw_features(self, raw: dict) -> list[float]:
        return [float(raw[column]) for column in self.columns]


_TERMS: dict[int, list[float]] = {}  # n -> [c / n * log2(c / n) for c = 0..n], built on first use


def _terms(n: int) -> list[float]:
    terms = _TERMS.get(n)
    if terms is None:
        terms = [0.0] + [c / n * math.log2(c / n) for c in range(1, n + 1)]
        if n <= 1024:  # names are at most 255 bytes: the table stays small
            _TERMS[n] = terms
    return terms


def _entropy(data: bytes) -> float:
    # The same terms, summed in the same order, as -sum(c / n * log2(c / n) for c in counts): the
    # same float, bit for bit; looked up instead of computed (a third of a name's feature time).
    # Added left to right by reduce, not sum(), which compensates its float sums from Python 3.12 on:
    # the same float on every Python, and the one the window's numpy pass gives (fast_features.py).
    n = len(data)
    if not n:
        return 0.0
    return -reduce(add, map(_terms(n).__getitem__, Counter(data).values()), 0.0) + 0.0


class CharacterClasses(FeatureBlock):
    name = "characters"
    columns = ("FQDN_count", "upper", "lower", "numeric", "special", "entropy")

    def raw_features(self, query: QueryName) -> dict:
        data = b".".join(query.labels)
        upper = sum(65 <= b <= 90 for b in data)
        lower = sum(97 <= b <= 122 for b in data)
        numeric = sum(48 <= b <= 57 for b in data)
        n = len(data)
        return {
            "FQDN_count": n,
            "upper": upper,
            "lower": lower,
            "numeric": numeric,
            "special": n - upper - lower - numeric,
            "entropy": _entropy(data),
        }


class LabelShape(FeatureBlock):
    name = "labels"
    columns = ("labels", "labels_max", "labels_average")

    def raw_features(self, query: QueryName) -> dict:
        lengths = [len(label) for label in query.labels] or [0]
        return {"labels": len(query.labels), "labels_max": max(lengths), "labels_average": sum(lengths) / len(lengths)}


class LongestWord(FeatureBlock):
    name = "longest_word"
    columns = ("longest_word",)

    def __init__(self, words: frozenset[str] | None = None):
        self.words = words if words is not None else english_words()

    def raw_features(self, query: QueryName) -> dict:
        tokens = [t.lower() for t in _LETTER_RUN.findall(query.text)]
        found = [t for t in tokens if t in self.words]
        return {"longest_word": max(found, key=len) if found else ""}

    def process_raw_features(self, raw: dict) -> list[float]:
        return [float(len(raw["longest_word"]))]


class RegisteredDomain(FeatureBlock):
    name = "registered_domain"
    columns = ("subdomain_length", "sld", "len", "subdomain")

    def raw_features(self, query: QueryName) -> dict:
        index = registered_domain_index(query)
        if index < 0:
            return {"sld": "", "subdomain_text": ""}
        return {"sld": query.labels[index].decode("latin-1"), "subdomain_text": QueryName(query.labels[:index]).text}

    def process_raw_features(self, raw: dict) -> list[float]:
        sub = len(raw["subdomain_text"])
        sld = len(raw["sld"])
        return [float(sub), float(sld), float(sub + 1 + sld if sub else sld), float(bool(sub))]


class WireBytes(FeatureBlock):
    """Wire length and the bytes no host name has: 8-bit bytes, and ASCII outside letters-digits-hyphen."""

    name = "wire_bytes"
    columns = ("wire_length", "eight_bit", "non_hostname")

    def raw_features(self, query: QueryName) -> dict:
        data = b"".join(query.labels)
        eight_bit = sum(b >= 0x80 for b in data)
        return {
            "wire_length": query.wire_length,
            "eight_bit": eight_bit,
            "non_hostname": sum(b < 0x80 and b not in _HOSTNAME for b in data),
        }


class SubdomainShape(FeatureBlock):
    """How the part left of the registered domain reads: entropy, digits, case, vowels."""

    name = "subdomain_shape"
    columns = (
        "sub_labels",
        "sub_entropy",
        "sub_digit_ratio",
        "sub_upper_ratio",
        "case_switches",
        "sub_vowel_ratio",
        "max_consonant_run",
    )

    def raw_features(self, query: QueryName) -> dict:
        index = max(registered_domain_index(query), 0)
        labels = query.labels[:index]
        data = b"".join(labels)
        n = len(data)
        letters = sum((65 <= b <= 90) or (97 <= b <= 122) for b in data)
        upper = sum(65 <= b <= 90 for b in data)
        switches = 0
        for label in labels:
            previous = None
            for b in label:
                kind = "u" if 65 <= b <= 90 else "l" if 97 <= b <= 122 else None
                if kind and previous and kind != previous:
                    switches += 1
                if kind:
                    previous = kind
        runs = _CONSONANT_RUN.findall(data.decode("latin-1"))
        return {
            "sub_labels": len(labels),
            "sub_entropy": _entropy(data),
            "sub_digit_ratio": sum(48 <= b <= 57 for b in data) / n if n else 0.0,
            "sub_upper_ratio": upper / letters if letters else 0.0,
            "case_switches": switches,
            "sub_vowel_ratio": sum(b in _VOWELS for b in data) / letters if letters else 0.0,
            "max_consonant_run": max((len(r) for r in runs), default=0),
        }


# the per-query model's columns past the CIC ones: the two real-traffic blocks' own, in their order
EXTRA_COLUMNS = [*WireBytes.columns, *SubdomainShape.columns]
QUERY_COLUMNS = [*FEATURE_COLUMNS, *EXTRA_COLUMNS]


def cic_blocks() -> list[FeatureBlock]:
    return [CharacterClasses(), LabelShape(), LongestWord(), RegisteredDomain()]


def query_blocks() -> list[FeatureBlock]:
    return [*cic_blocks(), WireBytes(), SubdomainShape()]


class QueryFeatureExtractor:
    """The ordered feature blocks; ``transform(names)`` gives rows in ``columns`` order.

    The default is the 14 CIC columns; ``QueryFeatureExtractor.real()`` gives :data:`QUERY_COLUMNS`.
    """

    def __init__(self, blocks: list[FeatureBlock] | None = None, columns: list[str] | None = None):
        self.blocks = blocks or cic_blocks()
        self.columns = list(
            columns or (FEATURE_COLUMNS if blocks is None else [c for b in self.blocks for c in b.columns])
        )
        self._order = self.columns

    @classmethod
    def real(cls) -> "QueryFeatureExtractor":
        return cls(query_blocks(), QUERY_COLUMNS)

    @property
    def dim(self) -> int:
        return sum(block.dim for block in self.blocks)

    def features(self, raw_query) -> dict[str, float]:
        query = parse_query_name(raw_query)
        values: dict[str, float] = {}
        for block in self.blocks:
            values.update(zip(block.columns, block.process_raw_features(block.raw_features(query))))
        return {column: values[column] for column in self._order}

    def transform(self, queries) -> np.ndarray:
        return np.array([[row[c] for c in self._order] for row in map(self.features, queries)], dtype=float).reshape(
            -1, len(self._order)
        )


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
        raise ValueError(f"{column} is not a finite number (or beyond the float32 range of the models): {shown(value)}")
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
