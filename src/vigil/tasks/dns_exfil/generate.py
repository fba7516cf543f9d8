"""``vigil dns generate``: a static set and a stream set with the CIC-Bell-DNS-EXF-2021 columns,
made from real ingredients because the assignment's CSVs cannot be obtained here.

Ingredients (all shipped in ``data/dns_exfil``, see its SOURCE.md):

- benign query names: the 48,371 real host names of the "Catch Me If You Can" site dictionary.
  Machine-generated ones (a label left of the registered domain with 4+ digits, or 12+ characters
  mixing letters and digits: CDN, beacon and storage names such as ``dqcn7lwn9t9h6.cloudfront.net``)
  are held out of the static set and of the first stream phases; they appear only in drift phase C.
- exfiltrated content: the bytes of three files that ship with CPython 3.11.7 (``LICENSE.txt``,
  ``Lib/csv.py``, ``Lib/idlelib/Icons/idle_48.png``), zlib-compressed as real tools compress what
  they send (iodine: zlib, dnsm: lzma, dns2tcp: optional), cut into chunks and encoded into subdomain
  labels (base32, hex, base64-url) under invented attacker domains;
- the shape of each attack query is a real one: the payload-label lengths of a data-bearing query
  of the shipped real captures (``captures.csv.gz``) of the same encoding family, drawn at random
  (tools fill their labels to 57-63 characters and their names to the 255-byte limit, which
  hand-picked ranges missed). ``tests/test_dns_generator.py`` compares the attack rows' feature
  distributions with the captures' (two-sample KS per feature). The low-and-slow phases B and C keep
  their short single labels on purpose: no captured tool is low-and-slow;
- LAN background: an infected host also sends ordinary infrastructure queries (PTR names of private
  addresses, DNS-SD service names under ``.local``); CIC labelled them attacks because they were in
  the attack capture. Here they are benign (a printer is no attacker): 12 % of the benign rows.
  Their sld is digits only for PTR names ("192", as in the published CIC row), which the
  assignment's consumer reads; no sld without a letter other than all digits is ever written (IP
  strings such as ``88.159.162.66``, ``0-02``: hosts that have them are left out).

Stream phases (window = 1,000 rows, positions in rows; written to ``<out>/drift_schedule.json``):

======  =================  ===========================================================================
phase   windows (default)  what changes
======  =================  ===========================================================================
base    0-9                same mix as the static set: base32 and hex tunnels shaped like captured queries
A       10-19              encoding change: base64-url and base64 (mixed case, ``-_`` or ``+/``), captured shapes
B       20-29              low and slow: one 6-12 character hex/base32 label per query, few queries
                           (30 % attacks), under benign-looking domains
C       30-39              new benign names: half of the benign queries are the held-out
                           machine-generated CDN / beacon names; attacks stay low and slow
======  =================  ===========================================================================

Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same files.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.tasks.dns_exfil.features import (
    CSV_COLUMNS,
    DATA_DIR,
    LABEL_COLUMN,
    CharacterClasses,
    LabelShape,
    LongestWord,
    RegisteredDomain,
    normalize_query,
    parse_query_name,
)

PAYLOAD_FILES = ("python-3.11.7-LICENSE.txt", "python-3.11.7-csv.py", "python-3.11.7-idle_48.png")
# Invented attacker domains (any resemblance to a registered domain is chance).
BASE_DOMAINS = ("tunnel-relay.net", "dnsq.io", "cachesync-update.com")
DRIFT_A_DOMAINS = ("telemetry-push.org", "t1.statsbeacon.info")
DRIFT_B_DOMAINS = ("static-img.net", "fonts-cache.com", "weather-now.co.uk")
WINDOW = 1000
# CIC labels every query of the attack capture as an attack, including the infected host's ordinary
# local traffic (both published attack rows are such names: a reverse-DNS PTR query and an mDNS
# service name). Such names are benign whoever sends them: they make a share of the *benign* rows
# here (PTR names of private addresses, real DNS-SD service types of the IANA registry under .local).
MDNS_SERVICES = (
    "_smb._tcp",
    "_ipp._tcp",
    "_http._tcp",
    "_airplay._tcp",
    "_raop._tcp",
    "_googlecast._tcp",
    "_spotify-connect._tcp",
    "_companion-link._tcp",
    "_device-info._tcp",
    "_workstation._tcp",
    "_afpovertcp._tcp",
    "_printer._tcp",
    "_ssh._tcp",
    "_sftp-ssh._tcp",
    "_hap._tcp",
    "_sleep-proxy._udp",
    "_pdl-datastream._tcp",
    "_scanner._tcp",
)
CAPTURE_BACKGROUND_SHARE = 0.12
# Share of tunnel sessions that send compressed data, per encoding, as in the captures: iodine
# compresses (zlib) whatever encoding it uses, dnsm compresses (lzma); the dig loop's hex carries a
# PNG (compressed image data between headers and runs of zero bytes: 0.8 gives its digit share);
# dns2tcp sends the bytes as they are and makes 60 % of the base64 queries.
COMPRESSED_SHARE = {"base32": 1.0, "hex": 0.8, "base64url": 1.0, "base64": 0.4}


@dataclass(frozen=True)
class Phase:
    name: str
    windows: int
    encodings: tuple[str, ...]
    label_length: tuple[int, int]
    labels_per_query: tuple[int, int]
    domains: tuple[str, ...]
    attack_share: float
    cdn_share: float  # share of benign queries drawn from the held-out machine-generated names
    description: str
    captured_shapes: bool = False  # payload-label lengths of real captured queries, not label_length


def stream_phases(windows_per_phase: int = 10) -> list[Phase]:
    low_and_slow = Phase(
        "B",
        windows_per_phase,
        ("hex", "base32"),
        (6, 12),
        (1, 1),
        DRIFT_B_DOMAINS,
        0.3,
        0.0,
        "low and slow: one short label per query, 30% attacks, benign-looking domains",
    )
    return [
        Phase(
            "base",
            windows_per_phase,
            ("base32", "hex"),
            (40, 63),
            (1, 3),
            BASE_DOMAINS,
            0.5,
            0.0,
            "same mix as the static set: base32 and hex tunnels shaped like the captured tools' queries",
            captured_shapes=True,
        ),
        Phase(
            "A",
            windows_per_phase,
            ("base64url", "base64"),
            (20, 40),
            (1, 2),
            DRIFT_A_DOMAINS,
            0.5,
            0.0,
            "encoding change: base64-url and base64 (mixed case, -_ or +/) under new domains, captured shapes",
            captured_shapes=True,
        ),
        low_and_slow,
        replace(  # the same attacks as B; what changes is the benign side
            low_and_slow,
            name="C",
            cdn_share=0.5,
            description="new benign CDN/beacon names (held out until now) make half of the benign queries",
        ),
    ]


STATIC_PHASE = Phase(
    "static",
    0,
    ("base32", "hex"),
    (40, 63),
    (1, 3),
    BASE_DOMAINS,
    0.55,
    0.0,
    "static training set: 55% attacks as in static_dataset.csv",
    captured_shapes=True,
)

# Captured encodings of each encoding family the generator writes (captures.csv.gz ``encoding``).
ENCODING_FAMILIES = {
    "base32": ("base32", "Base32", "base32-lzma"),
    "hex": ("hex",),
    "base64url": ("Base64u",),
    "base64": ("Base64", "base64-plain", "base64-compressed"),
}


@lru_cache(maxsize=4)
def captured_shapes(data_dir: Path = DATA_DIR) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Per encoding family, the payload-label lengths (bytes, left of the tunnel zone) of every
    data-bearing query of the shipped captures; empty when the captures are not there."""
    path = Path(data_dir) / "captures.csv.gz"
    if not path.is_file():
        return {}
    frame = pd.read_csv(path, usecols=["encoding", "zone", "qname", "data_bearing"], keep_default_na=False)
    frame = frame[frame.data_bearing == 1]
    shapes: dict[str, list[tuple[int, ...]]] = {family: [] for family in ENCODING_FAMILIES}
    for encoding, zone, qname in zip(frame.encoding, frame.zone, frame.qname):
        for family, members in ENCODING_FAMILIES.items():
            if encoding in members:
                labels = parse_query_name(qname).labels[: -(zone.count(".") + 1)]
                shapes[family].append(tuple(len(label) for label in labels))
    return {family: tuple(found) for family, found in shapes.items() if found}


def load_benign_hosts(data_dir: Path = DATA_DIR) -> list[str]:
    with gzip.open(data_dir / "benign_hosts.txt.gz", "rt", encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


_MIXED = re.compile(r"(?=.*[a-z])(?=.*[0-9])")


def is_machine_generated(host: str) -> bool:
    """A label left of the registered domain with 4+ digits, or 12+ characters mixing letters and digits."""
    for label in host.split(".")[:-2]:
        if sum(ch.isdigit() for ch in label) >= 4 or (len(label) >= 12 and _MIXED.match(label)):
            return True
    return False


def load_payload(data_dir: Path = DATA_DIR) -> bytes:
    return b"".join((data_dir / "payloads" / name).read_bytes() for name in PAYLOAD_FILES)


def encode(chunk: bytes, encoding: str) -> str:
    if encoding == "base32":
        return base64.b32encode(chunk).decode().rstrip("=").lower()
    if encoding == "base64url":
        return base64.urlsafe_b64encode(chunk).decode().rstrip("=")
    if encoding == "base64":  # dns2tcp's: "/" and "+" are legal label bytes
        return base64.b64encode(chunk).decode().rstrip("=")
    if encoding == "hex":
        return chunk.hex()
    raise ValueError(f"unknown encoding {encoding}")


_BYTES_PER_CHAR = {"base32": 5 / 8, "base64url": 6 / 8, "base64": 6 / 8, "hex": 1 / 2}


class TunnelSession:
    """One exfiltration session: walks through the payload, one chunk per query."""

    def __init__(
        self,
        payload: bytes,
        rng: np.random.Generator,
        phase: Phase,
        shapes: dict | None = None,
        plain_payload: bytes | None = None,
    ):
        """``payload`` compressed; ``plain_payload`` (optional) the same bytes as they are, sent by
        the sessions that do not compress (:data:`COMPRESSED_SHARE`)."""
        self.payload, self.rng, self.phase = payload, rng, phase
        self.shapes = shapes or {}
        self.position = int(rng.integers(0, len(payload)))
        self.sequence = 0
        self.encoding = str(rng.choice(phase.encodings))
        if plain_payload is not None and rng.random() >= COMPRESSED_SHARE.get(self.encoding, 1.0):
            self.payload = plain_payload
        self.domain = str(rng.choice(phase.domains))
        self.session_id = f"{int(rng.integers(0, 16**4)):04x}"

    def next_query(self) -> str:
        shapes = self.shapes.get(self.encoding) if self.phase.captured_shapes else None
        if shapes:
            return self._captured_shape_query(shapes[int(self.rng.integers(0, len(shapes)))])
        low, high = self.phase.label_length
        label_length = int(self.rng.integers(low, high + 1))
        n_labels = int(self.rng.integers(self.phase.labels_per_query[0], self.phase.labels_per_query[1] + 1))
        suffix = f".{self.sequence:x}.{self.session_id}.{self.domain}" if n_labels > 1 else f".{self.domain}"
        budget = 253 - len(suffix)
        n_labels = max(1, min(n_labels, (budget + 1) // (label_length + 1)))
        n_chars = label_length * n_labels
        n_bytes = max(1, int(n_chars * _BYTES_PER_CHAR[self.encoding]))
        chunk = self._take(n_bytes)
        text = encode(chunk, self.encoding)[:n_chars]
        labels = [text[i : i + label_length] for i in range(0, len(text), label_length)]
        self.sequence += 1
        return normalize_query(".".join(labels) + suffix)

    def _captured_shape_query(self, shape: tuple[int, ...]) -> str:
        """Payload labels of the lengths of one captured query (trimmed to fit under this domain)."""
        budget = 253 - len(self.domain) - 1
        lengths: list[int] = []
        for length in shape:
            room = budget - sum(lengths) - len(lengths)
            if room <= 0:
                break
            lengths.append(min(length, room))
        n_chars = sum(lengths)
        text = ""
        while len(text) < n_chars:
            text += encode(self._take(int(n_chars * _BYTES_PER_CHAR[self.encoding]) + 2), self.encoding)
        labels, at = [], 0
        for length in lengths:
            labels.append(text[at : at + length])
            at += length
        self.sequence += 1
        return normalize_query(".".join(labels) + "." + self.domain)

    def _take(self, n: int) -> bytes:
        if self.position + n > len(self.payload):
            self.position = 0
        chunk = self.payload[self.position : self.position + n]
        self.position += n
        return chunk


def sld_is_readable(host: str) -> bool:
    """The assignment's consumer turns every sld holding a letter into 192 and casts the column to int:
    an sld of digits only ("192", as in the published CIC row) reads, one of digits and dots or hyphens
    ("88.159.162.66" from an IP host, "0-02") crashes it. Such hosts are left out of the generated data."""
    raw = RegisteredDomain().raw_features(parse_query_name(host))["sld"]
    return any(ch.isalpha() for ch in raw) or raw.isdigit()


class QueryGenerator:
    def __init__(self, seed: int = 7, data_dir: Path = DATA_DIR):
        self.rng = np.random.default_rng(seed)
        hosts = [h for h in load_benign_hosts(data_dir) if sld_is_readable(h)]
        self.machine_hosts = [h for h in hosts if is_machine_generated(h)]
        self.human_hosts = [h for h in hosts if not is_machine_generated(h)]
        # Some tools compress what they send (iodine: zlib, dnsm: lzma), others send the bytes as they
        # are (dns2tcp, dig loops): a session picks one of the two, see TunnelSession.
        self.plain_payload = load_payload(data_dir)
        self.payload = zlib.compress(self.plain_payload, 9)
        self.shapes = captured_shapes(Path(data_dir))
        self.sessions: dict[str, list[TunnelSession]] = {}

    def _session(self, phase: Phase) -> TunnelSession:
        pool = self.sessions.setdefault(phase.name, [])
        if len(pool) < 4 or self.rng.random() < 0.01:  # a few concurrent sessions, occasionally a new one
            pool.append(TunnelSession(self.payload, self.rng, phase, self.shapes, self.plain_payload))
            if len(pool) > 4:
                pool.pop(0)
        return pool[int(self.rng.integers(0, len(pool)))]

    def capture_background(self) -> str:
        draw = self.rng.random()
        if draw < 1 / 3:  # the infected host browses too: the same names as benign traffic
            return self.human_hosts[int(self.rng.integers(0, len(self.human_hosts)))]
        if draw < 2 / 3:
            return f"{MDNS_SERVICES[int(self.rng.integers(0, len(MDNS_SERVICES)))]}.local"
        a, b = (int(v) for v in self.rng.integers(0, 256, size=2))
        prefix = "168.192" if self.rng.random() < 0.7 else f"{int(self.rng.integers(0, 256))}.10"
        return f"{b}.{a}.{prefix}.in-addr.arpa"

    def queries(self, phase: Phase, n: int) -> tuple[list[str], np.ndarray]:
        attack = self.rng.random(n) < phase.attack_share
        names = []
        for is_attack in attack:
            if is_attack:
                names.append(self._session(phase).next_query())
            elif self.rng.random() < CAPTURE_BACKGROUND_SHARE:  # the LAN's own infrastructure queries
                names.append(self.capture_background())
            elif phase.cdn_share and self.rng.random() < phase.cdn_share:
                names.append(self.machine_hosts[int(self.rng.integers(0, len(self.machine_hosts)))])
            else:
                names.append(self.human_hosts[int(self.rng.integers(0, len(self.human_hosts)))])
        return names, attack.astype(int)


def cic_rows(names: list[str], labels: np.ndarray, start_seconds: float = 0.0, step: float = 0.1) -> pd.DataFrame:
    """Rows in the CIC CSV layout: longest_word and sld as text, the other features as numbers."""
    blocks = [CharacterClasses(), LabelShape(), RegisteredDomain()]
    longest = LongestWord()
    records = []
    for i, text in enumerate(names):
        name = parse_query_name(text)
        record: dict = {}
        for block in blocks:
            raw = block.raw_features(name)
            record.update(zip(block.columns, block.process_raw_features(raw)))
            if isinstance(block, RegisteredDomain):
                record["sld"] = raw["sld"]
        record["longest_word"] = longest.raw_features(name)["longest_word"]
        seconds = start_seconds + i * step
        record["timestamp"] = f"{int(seconds // 60) % 60:02d}:{seconds % 60:04.1f}"
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    frame[LABEL_COLUMN] = labels
    for column in (
        "FQDN_count",
        "subdomain_length",
        "upper",
        "lower",
        "numeric",
        "special",
        "labels",
        "labels_max",
        "len",
        "subdomain",
    ):
        frame[column] = frame[column].astype(int)
    frame["entropy"] = frame["entropy"].round(6)
    frame["labels_average"] = frame["labels_average"].round(6)
    return frame[CSV_COLUMNS]


def generate(
    out_dir: Path,
    static_rows: int = 30_000,
    windows_per_phase: int = 10,
    seed: int = 7,
    with_query: bool = False,
    data_dir: Path = DATA_DIR,
    progress: bool = False,
) -> dict:
    """Write ``static_dataset.csv``, ``stream_dataset.csv`` and ``drift_schedule.json`` to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    generator = QueryGenerator(seed, data_dir)
    names, labels = generator.queries(STATIC_PHASE, static_rows)
    static = cic_rows(names, labels)
    if with_query:
        static["query"] = names
    static.to_csv(out_dir / "static_dataset.csv", index=False)

    frames, schedule, row = [], [], 0
    phases = stream_phases(windows_per_phase)
    iterator = phases
    if progress:
        from tqdm import tqdm

        iterator = tqdm(phases, desc="stream phases", unit="phase")
    for phase in iterator:
        n = phase.windows * WINDOW
        names, labels = generator.queries(phase, n)
        frame = cic_rows(names, labels, start_seconds=row * 0.1)
        if with_query:
            frame["query"] = names
        frames.append(frame)
        schedule.append(
            {
                "phase": phase.name,
                "first_row": row,
                "last_row": row + n - 1,
                "first_window": row // WINDOW,
                "last_window": (row + n) // WINDOW - 1,
                "attack_share": phase.attack_share,
                "description": phase.description,
            }
        )
        row += n
    stream = pd.concat(frames, ignore_index=True)
    stream.to_csv(out_dir / "stream_dataset.csv", index=False)
    card = {
        "seed": seed,
        "static_rows": len(static),
        "static_attacks": int(static[LABEL_COLUMN].sum()),
        "stream_rows": len(stream),
        "stream_attacks": int(stream[LABEL_COLUMN].sum()),
        "window": WINDOW,
        "phases": schedule,
    }
    (out_dir / "drift_schedule.json").write_text(json.dumps(card, indent=2))
    return card
