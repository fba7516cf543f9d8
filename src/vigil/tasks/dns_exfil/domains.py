r"""Per-domain detection of DNS tunnels over a stream of query names, in bounded memory.

A per-query model sees one name at a time: a tunnel's polls and acks (about a third of its queries)
carry no data, and low-and-slow exfiltration hides in short labels that look like any host name.
What no tunnel can hide is the *rate of new information* under the one registered domain whose
authoritative server it talks to. :class:`DomainDetector` keeps, per registered domain, how much new
information its query names carried, over two tumbling windows of event time:

- a **fast window** (60 s): a tunnel moving data sends tens to thousands of never-seen names a minute,
  each carrying tens to hundreds of bits;
- a **slow window** (1 h): a low-and-slow tunnel (one short label a minute) carries few bits per name
  but never stops: new names in most minutes of every hour.

**Information of a name.** The subdomain part (the labels left of the registered domain) is first
compared with the previous subdomain seen for the same domain: the common prefix and suffix are
dropped, since a structured benign name repeats them (``i1-js-14-3-01-10005-101304103-i.init`` then
``i1-js-14-3-01-10005-101990267-i.init`` on cedexis-radar.net differ in 7 digits, not in 36
characters). What remains is cut at the dots, and each piece counts ``length x Shannon entropy`` bits
(its empirical entropy per character): the information a label of that length and alphabet can
hold, at most. Single-character labels count 0 (``ip6.arpa`` reverse names are nibbles, one per
label), a repeated name counts nothing (see *novelty*).

**Novelty.** A name counts only the first time it is seen in a window: two Bloom filters of fixed
size (one per window kind, cleared when the window rolls over) remember the names seen, lower-cased
(resolvers that randomise case, "0x20", must not make a name new). A false positive of the filter
makes a new name look old: it can only lower a domain's counts, never raise them.

**Rules** (every threshold is a constructor argument, the defaults are the documented policy):

- *fast*: in one fast window, at least 30 new names, at least 3,000 bits of new information, and on
  average at least 40 bits per new name. The per-name floor is what spares the benign high-cardinality
  zones: reverse lookups (``in-addr.arpa``, ``ip6.arpa``), CDN and cloud names (``amazonaws.com``,
  ``cloudfront.net``, ``akamaiedge.net``) and beacon zones (``cedexis-radar.net``) produce many unique
  names, but each is either short, or mostly shared with the previous one, or rare within a minute; a
  raw count of unique subdomains would flag them all, which is why the unique count is never a rule
  alone;
- *slow*: in one slow window, new names carrying at least 8 bits in at least 50 distinct minutes,
  at least 40 such names and 800 bits in all. Persistence is what separates a tunnel that must keep
  sending from a benign zone whose names come in bursts (a page load, a probe run) and then stop.
  In a day of the shipped benign names replayed as visits (:func:`benign_day`, seed 1), the largest
  counters are 32 active minutes in an hour (cedexis-radar.net, 6,213 unique names) and 2,073 bits in
  a minute (amazonaws.com); the tunnels of the shipped captures pass 3 kbit by their 30th query.

There is no allow-list: the rules decide from the counters alone. An operator who knows a zone that
is continuously busy with fresh high-entropy names (some telemetry services are) can pass
``trusted=`` suffixes; they are then counted but never flagged, and the evidence says so.

**Bounded memory.** Domains are tracked in a table of at most ``capacity`` entries (heavy hitters by
information, in the manner of Misra-Gries / Space-Saving): when a new domain arrives in a full table,
the half of the entries with the least information in the current windows is dropped at once (so
eviction costs O(log capacity) per insertion, amortised), flagged domains last. A tunnel's domain
gains information faster than any benign one and is never the one dropped; what a dropped domain had
counted is lost, which can delay, never cause, a flag. The two Bloom filters have a fixed number of
bits. Nothing grows with the number of distinct names or domains: ``len(detector)`` <= ``capacity``.

    >>> detector = DomainDetector()
    >>> names = [f"{i:04d}{'ab9x' * 12}q{i}.t.evil-zone.com" for i in range(200)]
    >>> alerts = detector.observe(names, [i * 0.1 for i in range(200)])
    >>> [(a["domain"], a["rule"], a["queries"]) for a in alerts]
    [('evil-zone.com', 'fast', 30)]
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter

import numpy as np

from vigil.plain import InvalidState, checked
from vigil.tasks.dns_exfil.features import (
    MAX_WIRE_LENGTH,
    QueryName,
    _registered_split,
    _suffix_extractor,
    _terms,
    parse_query_name,
    registered_domain_index,
)

FAST_WINDOW_S = 60.0
SLOW_WINDOW_S = 3600.0
DEFAULT_CAPACITY = 4096
DEFAULT_BLOOM_BITS = 1 << 23  # 1 MiB per filter: 1 M names a window at ~2 % false positives (k = 4)
BLOOM_HASHES = 4
MAX_FLAGGED_KEPT = 256  # alerts remembered for ``flagged()``: the newest, however many domains flag


@dataclass
class Thresholds:
    fast_min_names: int = 30
    fast_min_bits: float = 3000.0
    fast_min_bits_per_name: float = 40.0
    slow_min_minutes: int = 50
    slow_min_names: int = 40
    slow_min_bits: float = 800.0
    slow_name_min_bits: float = 8.0  # a new name counts towards persistence when it carries this much


def _entropy_bits(piece: str) -> float:
    """length x empirical Shannon entropy per character: the bits a piece of this alphabet can hold."""
    n = len(piece)
    if n < 2:
        return 0.0
    return -n * sum(map(_terms(n).__getitem__, Counter(piece).values())) + 0.0


def novel_part(sub: str, previous: str) -> str:
    """``sub`` without the prefix and suffix it shares with ``previous`` (what is new in it).

    >>> novel_part("i1-js-101990267-i.init", "i1-js-101304103-i.init")
    '990267'
    """
    if not previous:
        return sub
    limit = min(len(sub), len(previous))
    start = 0
    while start < limit and sub[start] == previous[start]:
        start += 1
    end = 0
    while end < limit - start and sub[-1 - end] == previous[-1 - end]:
        end += 1
    return sub[start : len(sub) - end]


def information_bits(novel: str) -> float:
    """Bits of the new part of a subdomain: each dot-separated piece counts length x entropy."""
    return sum(_entropy_bits(piece) for piece in novel.split("."))


def compiled_name_passes():
    """:mod:`~vigil.tasks.dns_exfil.name_kernels`, imported (and so numba) when the first window of
    names is featurised or scored, not when the task is."""
    from vigil.tasks.dns_exfil import name_kernels

    return name_kernels


def window_information_bits(items: Sequence[tuple], entries: dict) -> list[tuple[str, float] | None]:
    """Per (domain, subdomain, ...) of ``items``: (the previous subdomain assumed, the information bits
    of the subdomain after it), the previous one being the domain's ``last_sub`` in ``entries`` or the
    domain's last subdomain before it in ``items``; None for an empty subdomain. The bits are
    :func:`information_bits` of :func:`novel_part`'s floats, for ASCII subdomains by one compiled pass
    (:func:`~vigil.tasks.dns_exfil.name_kernels.novel_bits`: the same terms added in the same order);
    any other subdomain is computed by those two functions themselves."""
    last: dict[str, str] = {}
    guesses: list[tuple[str, float] | None] = [None] * len(items)
    batched, subs, previous_subs = [], [], []
    for i, (domain, sub, *_) in enumerate(items):
        if not sub:
            continue
        previous = last.get(domain)
        if previous is None:
            entry = entries.get(domain)
            previous = entry.last_sub if entry is not None else ""
        last[domain] = sub[:255]
        if len(sub) > MAX_WIRE_LENGTH or not (sub.isascii() and previous.isascii()):
            guesses[i] = (previous, information_bits(novel_part(sub, previous)))
            continue
        batched.append(i)
        subs.append(sub)
        previous_subs.append(previous)
    if batched:
        name_kernels = compiled_name_passes()
        bits = name_kernels.novel_bits(*name_kernels.ascii_bytes(subs), *name_kernels.ascii_bytes(previous_subs))
        for i, previous, value in zip(batched, previous_subs, bits.tolist()):
            guesses[i] = (previous, value)
    return guesses


# -- fast splitting of names into (registered domain, subdomain) ----------------------------------
_SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_SUFFIX_TAIL = 5  # labels of a name's end that decide its public suffix (no ICANN rule is longer)


def split_name(raw) -> tuple[str, str, bool]:
    """(registered domain lower-cased, subdomain text, has an 8-bit byte) of a query name.

    Plain ASCII names (nearly all) are split on their dots without the full parser; others (``\\DDD``
    escapes, bytes) go through :func:`~vigil.tasks.dns_exfil.features.parse_query_name`. ValueError
    for a name that cannot be on the wire.
    """
    if isinstance(raw, str) and "\\" not in raw and raw.isascii() and 0 < len(raw) <= 253:
        text = raw.strip().rstrip(".")
        labels = text.split(".")
        if all(labels) and all(len(label) <= 63 for label in labels):
            index = plain_sld_index(labels)
            if index >= 0:
                return ".".join(labels[index:]).lower(), ".".join(labels[:index]), False
    name = parse_query_name(raw)
    index = registered_domain_index(name)
    if index < 0:
        return ".", "", False
    domain = QueryName(name.labels[index:]).presentation[:-1].lower()
    sub = QueryName(name.labels[:index]).text
    return domain, sub, any(b >= 0x80 for label in name.labels for b in label)


_UNSAFE_TO_A = str.maketrans({chr(code): "a" for code in range(128) if chr(code) not in _SAFE_CHARS | {"."}})


def suffix_shape(labels: list[str]) -> str:
    """The shape the suffix lookup sees of ASCII labels: each character outside ``[A-Za-z0-9-]`` as
    ``a``, as :func:`~vigil.tasks.dns_exfil.features.registered_domain_index` shapes them.

    >>> suffix_shape(["x_y", "a0*"])
    'xay.a0a'
    """
    return ".".join(labels).translate(_UNSAFE_TO_A)  # the labels of a plain name hold no dot


@lru_cache(maxsize=1)
def _suffix_rule_tails() -> frozenset[str]:
    """Every right-hand part of every public suffix rule the lookup uses, lower-case (``*.kawasaki.jp``
    gives ``jp``, ``kawasaki.jp`` and ``*.kawasaki.jp``)."""
    tails: set[str] = set()
    for rule in _suffix_extractor().tlds:
        labels = rule.lower().split(".")
        tails.update(".".join(labels[-k:]) for k in range(1, len(labels) + 1))
    return frozenset(tails)


@lru_cache(maxsize=65536)
def _last_two_suffix_labels(shape: str) -> int | None:
    """For the shape of the last two labels of a name of three or more: how many of the two are public
    suffix (0 or 1) when they alone decide the lookup, else None. They decide when no rule goes on
    from them (``x.y`` and ``*.y`` are no rule's right-hand part, so the lookup stops at ``x`` whatever
    lies left of it) and neither is punycode nor the last all digits (an IPv4 address is read as a
    whole). A stream's names then share one cached lookup per zone (``mzxw6y.0.1f3a.tunnel-relay.net``
    and every other name under it: ``tunnel-relay.net``) instead of one per name."""
    x, y = shape.lower().split(".")
    tails = _suffix_rule_tails()
    if y.isdigit() or x.startswith("xn--") or y.startswith("xn--") or "*" in tails:
        return None
    if f"{x}.{y}" in tails or f"*.{y}" in tails:
        return None
    return _registered_split(shape)[1]


def plain_sld_index(labels: list[str]) -> int:
    """Index of the sld label among a plain name's labels; -1 when its last labels are all public
    suffix (the full parser decides)."""
    if len(labels) >= 3:
        suffix_labels = _last_two_suffix_labels(suffix_shape(labels[-2:]))
        if suffix_labels is not None:
            return len(labels) - suffix_labels - 1
    tail = labels[-_SUFFIX_TAIL:]
    index = _tail_index(suffix_shape(tail), len(tail))
    return index if index < 0 else len(labels) - len(tail) + index


def _tail_index(shape: str, n: int) -> int:
    """Index of the sld label within the tail, -1 when the tail is all public suffix (use the parser)."""
    has_sld, suffix_labels = _registered_split(shape)
    if not has_sld:
        return 0 if n < _SUFFIX_TAIL else -1
    return n - suffix_labels - 1


# -- the filters and the table ------------------------------------------------------------------
def key_hashes(key: bytes) -> tuple[int, int]:
    """Two stable 32-bit hashes for double hashing (crc32 and adler32: the same in every process,
    unlike hash(), so a checkpoint means the same thing after a restart)."""
    return zlib.crc32(key), zlib.adler32(key) | 1


def name_hashes(domain: str, sub: str) -> tuple[int, int]:
    """:func:`key_hashes` of a name as the filters remember it: domain and subdomain, lower-cased."""
    return key_hashes(f"{domain}|{sub.lower()}".encode("latin-1", errors="replace"))


class BloomFilter:
    """A fixed-size set of names with false positives only (``add`` says whether the name was new)."""

    def __init__(self, bits: int = DEFAULT_BLOOM_BITS, hashes: int = BLOOM_HASHES):
        self.bits, self.hashes = int(bits), int(hashes)
        # a bytearray, not numpy: one bit at a time, Python indexing of bytes is several times faster
        self.array = bytearray((self.bits + 7) // 8)

    def clear(self) -> None:
        # in place (a memset through a numpy view, ~12 us): copying in a fresh 1 MiB of zeros took
        # ~0.8 ms, about half the time of a day's names replayed at speed (its fast window rolls 1,440 times)
        np.frombuffer(self.array, dtype=np.uint8).fill(0)

    def add(self, key: bytes) -> bool:
        return self.add_hashed(*key_hashes(key))

    def add_hashed(self, h1: int, h2: int) -> bool:
        """``add`` for a key already hashed by :func:`key_hashes` (one key, several filters)."""
        new = False
        array = self.array
        for i in range(self.hashes):
            position = (h1 + i * h2) % self.bits
            byte, bit = position >> 3, 1 << (position & 7)
            if not array[byte] & bit:
                array[byte] |= bit
                new = True
        return new

    @property
    def nbytes(self) -> int:
        return len(self.array)


def add_to_both(first: BloomFilter, second: BloomFilter, h1: int, h2: int) -> tuple[bool, bool]:
    """``(first.add_hashed(h1, h2), second.add_hashed(h1, h2))``: for two filters of one size, the
    positions are computed once (the fast and the slow window's filters are checked for every name)."""
    if first.bits != second.bits or first.hashes != second.hashes:
        return first.add_hashed(h1, h2), second.add_hashed(h1, h2)
    one, two, bits = first.array, second.array, first.bits
    new_one = new_two = False
    for i in range(first.hashes):
        position = (h1 + i * h2) % bits
        byte, bit = position >> 3, 1 << (position & 7)
        if not one[byte] & bit:
            one[byte] |= bit
            new_one = True
        if not two[byte] & bit:
            two[byte] |= bit
            new_two = True
    return new_one, new_two


def window_novelty(first: BloomFilter, second: BloomFilter, hashes: list[tuple[int, int]]) -> list[tuple[bool, bool]]:
    """What :func:`add_to_both` returns for each (h1, h2) of ``hashes`` in turn, the filters left as
    those calls leave them: for two filters of one size, the same loop compiled
    (:func:`~vigil.tasks.dns_exfil.name_kernels.add_to_both`)."""
    if first.bits != second.bits or first.hashes != second.hashes:
        return [add_to_both(first, second, h1, h2) for h1, h2 in hashes]
    if not hashes:
        return []
    name_kernels = compiled_name_passes()
    pairs = np.array(hashes, dtype=np.int64).reshape(-1, 2)
    news = name_kernels.add_to_both(first.array, second.array, first.bits, first.hashes, pairs[:, 0], pairs[:, 1])
    return list(map(tuple, news.tolist()))


@dataclass(slots=True)  # slots: each name reads and writes a dozen of these counters
class DomainState:
    """The counters of one tracked registered domain (a few hundred bytes, whatever it received)."""

    domain: str
    queries: int = 0  # since tracked
    fast_window: int = -1
    fast_queries: int = 0
    fast_names: int = 0
    fast_bits: float = 0.0
    fast_started: float = 0.0
    slow_window: int = -1
    slow_names: int = 0
    slow_bits: float = 0.0
    slow_minutes: int = 0
    last_minute: int = -1
    max_label: int = 0
    eight_bit: int = 0
    last_sub: str = ""
    first_seen: float = 0.0
    last_seen: float = 0.0
    alert: dict | None = None

    def score(self) -> float:
        return self.fast_bits + self.slow_bits


ENTRY_FIELDS = tuple(f.name for f in dataclasses.fields(DomainState))
_ENTRY_ROW = attrgetter(*ENTRY_FIELDS)  # an entry's values, in field order, as one tuple
# what each field of a checkpointed row may hold (the annotations are strings: postponed evaluation)
_KINDS_OF = {"str": (str,), "int": (int,), "float": (float, int), "dict | None": (dict, type(None))}
ENTRY_KINDS = tuple((f.name, _KINDS_OF[str(f.type)]) for f in dataclasses.fields(DomainState))
ALERT_KEYS = frozenset({"domain", "rule", "at", "queries", "trusted", "evidence", "reasons"})
MAX_BLOOM_BITS = 1 << 33  # 1 GiB per filter: a checkpoint asking for more is not one this code wrote


def _check_alert(alert) -> dict:
    """A checkpointed alert: a dict with the keys :meth:`DomainDetector._raise` writes."""
    if not isinstance(alert, dict) or not ALERT_KEYS <= alert.keys():
        raise InvalidState("domains: an alert without the fields the detector writes")
    checked(alert["evidence"], dict, "domains.alert.evidence")
    for reason in checked(alert["reasons"], list, "domains.alert.reasons"):
        checked(checked(reason, dict, "domains.alert.reasons").get("text"), str, "domains.alert.reasons.text")
    return alert


def _in_range(value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidState(f"state value {value} outside [{low}, {high}]")
    return value


@dataclass
class DomainDetector:
    capacity: int = DEFAULT_CAPACITY
    fast_window_s: float = FAST_WINDOW_S
    slow_window_s: float = SLOW_WINDOW_S
    bloom_bits: int = DEFAULT_BLOOM_BITS
    thresholds: Thresholds = field(default_factory=Thresholds)
    trusted: tuple[str, ...] = ()
    entries: dict[str, DomainState] = field(default_factory=dict)
    flagged_log: list[dict] = field(default_factory=list)
    seen: int = 0
    evicted: int = 0

    def __post_init__(self) -> None:
        self._fast_seen = BloomFilter(self.bloom_bits)
        self._slow_seen = BloomFilter(self.bloom_bits)
        self._fast_window = -1
        self._slow_window = -1
        # to_state's row of each entry, dropped when observe_one changes that entry (a window touches
        # a few hundred of the 4,096 rows, and every window's checkpoint holds all of them); it holds
        # the entries of the last to_state, so it is bounded as the table is
        self._rows: dict[str, tuple] = {}

    # The filters are not checkpointed (2 MiB per window would dominate the results file): after a
    # restart every name is new once more, which can only make a flag come sooner.
    # The table goes as rows of plain values: pickling 4,096 dataclass objects at every window cost
    # 19 ms, a fifth of a window's time.
    def to_state(self) -> dict:
        """Settings, counters and the table as plain data (numbers, strings, lists, the alerts' dicts)."""
        return {
            "capacity": self.capacity,
            "fast_window_s": self.fast_window_s,
            "slow_window_s": self.slow_window_s,
            "bloom_bits": self.bloom_bits,
            "thresholds": dataclasses.asdict(self.thresholds),
            "trusted": list(self.trusted),
            "entry_fields": list(ENTRY_FIELDS),
            "entries": self._entry_rows(),
            "flagged_log": list(self.flagged_log),
            "seen": self.seen,
            "evicted": self.evicted,
            "fast_window": self._fast_window,
            "slow_window": self._slow_window,
        }

    def _entry_rows(self) -> list[tuple]:
        """One tuple of field values per entry, in table order; built anew for the entries changed
        since the last call only."""
        cached, rows = self._rows, {}
        for domain, entry in self.entries.items():
            row = cached.get(domain)
            rows[domain] = _ENTRY_ROW(entry) if row is None else row
        self._rows = rows
        return list(rows.values())

    @classmethod
    def from_state(cls, state: dict) -> DomainDetector:
        """The detector :meth:`to_state` described (empty filters); :class:`~vigil.plain.InvalidState`
        for anything else: another table layout, a field of the wrong type, more rows than capacity.

        >>> detector = DomainDetector()
        >>> _ = detector.observe(["a1b2c3.example.com"], [5.0])
        >>> DomainDetector.from_state(detector.to_state()).verdict("example.com")["queries"]
        1
        """
        checked(state, dict, "domains")
        numbers = (int, float)
        thresholds = checked(state.get("thresholds"), dict, "domains.thresholds")
        if set(thresholds) != {f.name for f in dataclasses.fields(Thresholds)}:
            raise InvalidState(f"domains.thresholds: unexpected fields {sorted(thresholds)}")
        detector = cls(
            capacity=checked(state.get("capacity"), int, "domains.capacity"),
            fast_window_s=float(checked(state.get("fast_window_s"), numbers, "domains.fast_window_s")),
            slow_window_s=float(checked(state.get("slow_window_s"), numbers, "domains.slow_window_s")),
            bloom_bits=_in_range(checked(state.get("bloom_bits"), int, "domains.bloom_bits"), 8, MAX_BLOOM_BITS),
            thresholds=Thresholds(**{k: checked(v, numbers, f"domains.thresholds.{k}") for k, v in thresholds.items()}),
            trusted=tuple(
                checked(s, str, "domains.trusted") for s in checked(state.get("trusted"), list, "domains.trusted")
            ),
        )
        if detector.capacity < 2 or detector.fast_window_s <= 0 or detector.slow_window_s <= 0:
            raise InvalidState("domains: capacity and windows must be positive")
        if checked(state.get("entry_fields"), list, "domains.entry_fields") != list(ENTRY_FIELDS):
            raise InvalidState(f"domains.entries: another table layout ({state['entry_fields']})")
        rows = checked(state.get("entries"), list, "domains.entries")
        if len(rows) > detector.capacity:
            raise InvalidState(f"domains.entries: {len(rows)} rows in a table of capacity {detector.capacity}")
        for row in rows:
            if not isinstance(row, tuple) or len(row) != len(ENTRY_FIELDS):
                raise InvalidState("domains.entries: a row is not one value per field")
            entry = DomainState(
                *(checked(v, kinds, f"domains.entries.{name}") for v, (name, kinds) in zip(row, ENTRY_KINDS))
            )
            if entry.alert is not None:
                _check_alert(entry.alert)
            detector.entries[entry.domain] = entry
        flagged = checked(state.get("flagged_log"), list, "domains.flagged_log")
        detector.flagged_log = [_check_alert(alert) for alert in flagged[-MAX_FLAGGED_KEPT:]]
        detector.seen = checked(state.get("seen"), int, "domains.seen")
        detector.evicted = checked(state.get("evicted"), int, "domains.evicted")
        detector._fast_window = checked(state.get("fast_window"), int, "domains.fast_window")
        detector._slow_window = checked(state.get("slow_window"), int, "domains.slow_window")
        return detector

    # pickle (a detector copied between processes) goes through the same plain form
    def __getstate__(self):
        return self.to_state()

    def __setstate__(self, state):
        self.__dict__.update(vars(DomainDetector.from_state(state)))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def nbytes(self) -> int:
        """Bytes of the fixed parts (the filters); the table adds at most ``capacity`` small entries."""
        return self._fast_seen.nbytes + self._slow_seen.nbytes

    # -- feeding -------------------------------------------------------------------------------------
    def observe(self, names: Sequence, times: Iterable[float] | None = None) -> list[dict]:
        """Count each name at its event time (seconds; default: all at 0, one window); return the
        alerts raised by these names (a domain alerts once, at the query that crossed a rule)."""
        if times is None:
            times = [0.0] * len(names)
        alerts = []
        for raw, at in zip(names, times):
            try:
                domain, sub, eight_bit = split_name(raw)
            except ValueError:
                continue  # the per-query path reports a name that cannot be on the wire
            alert = self.observe_one(domain, sub, float(at), eight_bit)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def observe_split(self, items: Sequence[tuple[str, str, float, bool]]) -> list[dict]:
        """:meth:`observe_one` of each (domain, subdomain, time, has an 8-bit byte), in order; the alerts.

        The information bits of every name are computed first, in one numpy pass
        (:func:`window_information_bits`), against the previous subdomain of its domain as the window
        would leave it if every name were new; a name whose domain's previous subdomain turns out
        otherwise (a repeated name in between, an evicted domain) is computed on its own as before."""
        guesses = window_information_bits(items, self.entries)
        alerts = []
        start = 0
        while start < len(items):
            # a run of names in one fast and one slow window: their filters' answers in one pass
            at = items[start][2]
            fast, slow = int(at // self.fast_window_s), int(at // self.slow_window_s)
            end = start + 1
            while (
                end < len(items)
                and int(items[end][2] // self.fast_window_s) == fast
                and int(items[end][2] // self.slow_window_s) == slow
            ):
                end += 1
            self._roll(at)
            run = items[start:end]
            novelties = iter(
                window_novelty(self._fast_seen, self._slow_seen, [name_hashes(d, s) for d, s, *_ in run if s])
            )
            for (domain, sub, at, eight_bit), guess in zip(run, guesses[start:end]):
                alert = self.observe_one(domain, sub, at, eight_bit, guess, next(novelties) if sub else None)
                if alert is not None:
                    alerts.append(alert)
            start = end
        return alerts

    def _roll(self, at: float) -> None:
        fast, slow = int(at // self.fast_window_s), int(at // self.slow_window_s)
        if fast != self._fast_window:
            self._fast_seen.clear()
            self._fast_window = fast
        if slow != self._slow_window:
            self._slow_seen.clear()
            self._slow_window = slow

    def observe_one(
        self,
        domain: str,
        sub: str,
        at: float,
        eight_bit: bool = False,
        guess: tuple[str, float] | None = None,
        novelty: tuple[bool, bool] | None = None,
    ) -> dict | None:
        """Count one name (split by :func:`split_name`); its alert when it made its domain cross a rule.
        :meth:`observe_split` computes two things a window at a time: ``guess``, (a previous subdomain,
        the information bits of ``sub`` after it), used when that previous subdomain is the domain's;
        ``novelty``, whether the name was new to the fast and the slow filter (already added to both)."""
        self.seen += 1
        self._roll(at)
        self._rows.pop(domain, None)  # its checkpoint row changes
        entry = self.entries.get(domain)
        if entry is None:
            if len(self.entries) >= self.capacity:
                self._evict()
            entry = self.entries[domain] = DomainState(domain, first_seen=at)
        fast, slow = self._fast_window, self._slow_window
        if entry.fast_window != fast:
            entry.fast_window, entry.fast_started = fast, fast * self.fast_window_s
            entry.fast_queries = entry.fast_names = 0
            entry.fast_bits = 0.0
        if entry.slow_window != slow:
            entry.slow_window = slow
            entry.slow_names = entry.slow_minutes = 0
            entry.slow_bits = 0.0
        entry.queries += 1
        entry.fast_queries += 1
        entry.last_seen = at
        if not sub:
            return None
        if novelty is None:
            new_fast, new_slow = add_to_both(self._fast_seen, self._slow_seen, *name_hashes(domain, sub))
        else:
            new_fast, new_slow = novelty
        if not (new_fast or new_slow):
            return None
        if guess is not None and guess[0] == entry.last_sub:
            bits = guess[1]  # the previous subdomain is the one the window's batch assumed
        else:
            bits = information_bits(novel_part(sub, entry.last_sub))
        entry.last_sub = sub[:255]
        entry.max_label = max(entry.max_label, *map(len, sub.split(".")))
        entry.eight_bit += int(eight_bit)
        if new_fast:
            entry.fast_names += 1
            entry.fast_bits += bits
        if new_slow and bits >= self.thresholds.slow_name_min_bits:
            entry.slow_names += 1
            entry.slow_bits += bits
            minute = int(at // 60)
            if minute != entry.last_minute:
                entry.slow_minutes += 1
                entry.last_minute = minute
        if entry.alert is None:
            rule = self._rule(entry)
            if rule is not None:
                return self._raise(entry, rule, at)
        return None

    def _rule(self, e: DomainState) -> str | None:
        t = self.thresholds
        if (
            e.fast_names >= t.fast_min_names
            and e.fast_bits >= t.fast_min_bits
            and e.fast_bits / e.fast_names >= t.fast_min_bits_per_name
        ):
            return "fast"
        if e.slow_minutes >= t.slow_min_minutes and e.slow_names >= t.slow_min_names and e.slow_bits >= t.slow_min_bits:
            return "slow"
        return None

    def _raise(self, e: DomainState, rule: str, at: float) -> dict | None:
        trusted = any(e.domain == s or e.domain.endswith("." + s) for s in self.trusted)
        alert = {
            "domain": e.domain,
            "rule": rule,
            "at": at,
            "queries": e.queries,
            "trusted": trusted,
            "evidence": self.evidence(e, rule),
        }
        alert["reasons"] = domain_reasons(alert)
        e.alert = alert
        if trusted:
            return None
        self.flagged_log.append(alert)
        del self.flagged_log[:-MAX_FLAGGED_KEPT]
        return alert

    def evidence(self, e: DomainState, rule: str | None = None) -> dict:
        if rule == "slow":
            return {
                "window_s": self.slow_window_s,
                "window_start": e.slow_window * self.slow_window_s,
                "new_names": e.slow_names,
                "information_bits": round(e.slow_bits, 1),
                "active_minutes": e.slow_minutes,
                "max_label": e.max_label,
                "eight_bit_names": e.eight_bit,
            }
        return {
            "window_s": self.fast_window_s,
            "window_start": e.fast_started,
            "queries": e.fast_queries,
            "new_names": e.fast_names,
            "information_bits": round(e.fast_bits, 1),
            "bits_per_new_name": round(e.fast_bits / e.fast_names, 1) if e.fast_names else 0.0,
            "max_label": e.max_label,
            "eight_bit_names": e.eight_bit,
        }

    def _evict(self) -> None:
        """Drop the half of the table with the least information now (flagged domains last)."""
        keep = self.capacity // 2
        ranked = sorted(self.entries.values(), key=lambda e: (e.alert is not None, e.score(), e.last_seen))
        for e in ranked[: len(ranked) - keep]:
            del self.entries[e.domain]
            self.evicted += 1

    # -- reading -----------------------------------------------------------------------------------
    def flagged(self) -> list[dict]:
        """The domains flagged so far (newest last), each with the rule, evidence and reasons."""
        return list(self.flagged_log)

    def verdict(self, domain: str) -> dict:
        """A domain's state as a verdict: flagged or not, its counters and reasons."""
        e = self.entries.get(domain)
        if e is None:
            return {"domain": domain, "flagged": False, "tracked": False}
        alert = e.alert
        flagged = alert is not None and not alert["trusted"]
        verdict = {
            "domain": domain,
            "flagged": flagged,
            "queries": e.queries,
            "rule": alert["rule"] if alert else None,
            "evidence": alert["evidence"] if alert else self.evidence(e),
        }
        if alert and alert["trusted"]:
            verdict["trusted"] = True
        verdict["reasons"] = alert["reasons"] if flagged and alert else []
        return verdict


def domain_reasons(alert: dict) -> list[dict]:
    """Sentences for a defender, each from one counter of the detector: ``{"text", "counter", "value"}``."""
    ev = alert["evidence"]
    window = f"{ev['window_s']:.0f} s" if ev["window_s"] < 120 else f"{ev['window_s'] / 3600:.0f} h"
    bits = ev["information_bits"]
    amount = f"{bits / 1000:.1f} kbit" if bits >= 1000 else f"{bits:.0f} bits"
    reasons = [
        {
            "text": f"{ev['new_names']} unique subdomains in {window}",
            "counter": "new_names",
            "value": ev["new_names"],
        },
        {
            "text": f"{amount} of new label information in {window}",
            "counter": "information_bits",
            "value": bits,
        },
    ]
    if "bits_per_new_name" in ev:
        reasons.append(
            {
                "text": f"{ev['bits_per_new_name']:.0f} bits of new information per name",
                "counter": "bits_per_new_name",
                "value": ev["bits_per_new_name"],
            }
        )
    if "active_minutes" in ev:
        reasons.append(
            {
                "text": f"new information in {ev['active_minutes']} distinct minutes of one hour",
                "counter": "active_minutes",
                "value": ev["active_minutes"],
            }
        )
    if ev.get("max_label", 0) >= 40:
        reasons.append(
            {"text": f"labels up to {ev['max_label']} characters", "counter": "max_label", "value": ev["max_label"]}
        )
    if ev.get("eight_bit_names"):
        reasons.append(
            {
                "text": f"{ev['eight_bit_names']} names with 8-bit bytes in a label",
                "counter": "eight_bit_names",
                "value": ev["eight_bit_names"],
            }
        )
    return reasons


def benign_day(names: Sequence[str], domains: Sequence[str], seed: int = 0, day_s: float = 86_400.0):
    """Timestamps for replaying benign names as a day of traffic: each registered domain's names come
    in visits (a page load, a probe run: 1-20 names within 30 s), each visit at a random time of the
    day. Returns the names and times sorted by time."""
    rng = np.random.default_rng(seed)
    by_domain: dict[str, list[int]] = {}
    for i, domain in enumerate(domains):
        by_domain.setdefault(domain, []).append(i)
    times = np.empty(len(names))
    for indexes in by_domain.values():
        order = rng.permutation(indexes)
        start = 0
        while start < len(order):
            size = int(rng.integers(1, 21))
            visit = order[start : start + size]
            times[visit] = rng.uniform(0, day_s - 30) + np.sort(rng.uniform(0, 30, len(visit)))
            start += size
    order = np.argsort(times, kind="stable")
    return [names[i] for i in order], times[order]


DOMAIN_MIN_NAMES = 20  # a request holding this many names gets per-domain verdicts next to per-query ones
MAX_DOMAIN_VERDICTS = 200


def request_domains(items: list, args: dict | None = None) -> list[dict] | None:
    """Per-domain verdicts for the query names of one request (None when it holds fewer than
    :data:`DOMAIN_MIN_NAMES` names, unless ``?domains=1``), from a detector that sees only this
    request: each item's ``time`` (seconds) when given, else every name in one fast window. Flagged
    domains first, then by new information; at most :data:`MAX_DOMAIN_VERDICTS`."""
    names, times = [], []
    for item in items:
        if isinstance(item, str):
            names.append(item)
            times.append(0.0)
        elif isinstance(item, dict) and isinstance(item.get("query"), (str, bytes)):
            at = item.get("time", 0.0)
            names.append(item["query"])
            times.append(
                float(at) if isinstance(at, (int, float)) and not isinstance(at, bool) and math.isfinite(at) else 0.0
            )
    forced = str((args or {}).get("domains", "")).lower() in ("1", "true", "yes")
    if len(names) < DOMAIN_MIN_NAMES and not forced:
        return None
    if not names:
        return []
    order = sorted(range(len(names)), key=times.__getitem__)
    detector = DomainDetector()
    detector.observe([names[i] for i in order], [times[i] for i in order])
    verdicts = [detector.verdict(domain) for domain in detector.entries]
    verdicts.sort(key=lambda v: (not v["flagged"], -v["evidence"].get("information_bits", 0.0)))
    return verdicts[:MAX_DOMAIN_VERDICTS]
