r"""Real tunnel traffic: read the DNS queries of a pcap, label them, and the two helpers the capture
script (``scripts/dns_capture.sh``) runs inside its network namespaces.

- :func:`read_pcap_queries` reads a libpcap file (Ethernet, Linux cooked or raw IPv4; UDP to port 53)
  and yields each query's time, query type and name as wire bytes, with no dependency beyond the
  standard library (no tshark needed to rebuild the set);
- :func:`label_captures` turns the capture folder (one pcap per run, ``<tool>__<encoding>__<qtype>.pcap``)
  into rows: ``time, tool, encoding, qtype, zone, qname`` (presentation form, ``\DDD`` for any byte
  outside printable ASCII, so it round-trips through :func:`~vigil.tasks.dns_exfil.features.parse_query_name`),
  ``payload_bytes`` (bytes left of the tunnel zone) and ``data_bearing`` (payload of at least
  :data:`DATA_BEARING_MIN` bytes: polls, pings and acks of a tunnel carry little or nothing);
- ``python -m vigil.tasks.dns_exfil.capture relay``: a UDP relay that forwards queries to the tunnel
  server after rewriting their name the way some resolvers do (``lower``: case folded; ``no8bit``:
  8-bit bytes replaced; ``no8bit-noplus``: and ``+`` replaced). iodine probes the path and picks its
  upstream encoding from what survives, so the relay is how the script makes iodine use Base32, Base64
  and Base64u as well as Base128, as it would behind such resolvers;
- ``python -m vigil.tasks.dns_exfil.capture sink``: answers every query with NXDOMAIN (for clients that
  need no real server, e.g. ``dig`` loops and dnsm).

    >>> from vigil.tasks.dns_exfil.features import parse_query_name
    >>> _qname(b"\x03a\xffb\x07example\x03com\x00", 0)[0]
    (b'a\xffb', b'example', b'com')
"""

from __future__ import annotations

import argparse
import csv
import gzip
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

from vigil.tasks.dns_exfil.features import QueryName

QTYPES = {
    1: "A",
    2: "NS",
    5: "CNAME",
    10: "NULL",
    12: "PTR",
    15: "MX",
    16: "TXT",
    25: "KEY",
    28: "AAAA",
    33: "SRV",
    65: "HTTPS",
    65399: "PRIVATE",
}
DATA_BEARING_MIN = 16
CAPTURE_COLUMNS = ["time", "tool", "encoding", "qtype", "zone", "qname", "payload_bytes", "data_bearing"]


def _qname(packet: bytes, offset: int) -> tuple[tuple[bytes, ...], int]:
    """Labels of the name at ``offset`` and the offset after it (compression pointers followed)."""
    labels: list[bytes] = []
    end, jumps = None, 0
    while True:
        if offset >= len(packet):
            raise ValueError("name runs past the packet")
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            if jumps > 20:
                raise ValueError("compression loop")
            end = end if end is not None else offset + 2
            offset = ((length & 0x3F) << 8) | packet[offset + 1]
            jumps += 1
            continue
        if length == 0:
            return tuple(labels), (end if end is not None else offset + 1)
        labels.append(packet[offset + 1 : offset + 1 + length])
        offset += 1 + length


def parse_query(payload: bytes) -> tuple[int, QueryName, int] | None:
    """(id, name, qtype) of a DNS query message, None for a response or what is not DNS."""
    if len(payload) < 12:
        return None
    ident, flags, qdcount = struct.unpack(">HHH", payload[:6])
    if flags & 0x8000 or qdcount < 1:
        return None
    try:
        labels, offset = _qname(payload, 12)
    except (ValueError, IndexError):
        return None
    if offset + 4 > len(payload):
        return None
    qtype = struct.unpack(">H", payload[offset : offset + 2])[0]
    return ident, QueryName(labels), qtype


def read_pcap_queries(path: Path | str, port: int = 53) -> Iterator[tuple[float, QueryName, int]]:
    """(time, name, qtype) of every DNS query over UDP to ``port`` in a libpcap file."""
    with open(path, "rb") as handle:
        header = handle.read(24)
        if len(header) < 24:
            return
        magic = header[:4]
        endian = {
            b"\xd4\xc3\xb2\xa1": "<",
            b"\xa1\xb2\xc3\xd4": ">",
            b"\x4d\x3c\xb2\xa1": "<",
            b"\xa1\xb2\x3c\x4d": ">",
        }.get(magic)
        if endian is None:
            raise ValueError(f"{path} is not a libpcap file (pcapng is not read: use tcpdump -w)")
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        linktype = struct.unpack(endian + "I", header[20:24])[0]
        while True:
            record = handle.read(16)
            if len(record) < 16:
                return
            seconds, fraction, captured, _ = struct.unpack(endian + "IIII", record)
            frame = handle.read(captured)
            stamp = seconds + fraction / (1e9 if nano else 1e6)
            ip = _ip_payload(frame, linktype)
            if ip is None or len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            ihl = (ip[0] & 0x0F) * 4
            udp = ip[ihl:]
            if len(udp) < 8 or struct.unpack(">H", udp[2:4])[0] != port:
                continue
            parsed = parse_query(udp[8:])
            if parsed is not None:
                yield stamp, parsed[1], parsed[2]


def _ip_payload(frame: bytes, linktype: int) -> bytes | None:
    if linktype == 1:  # Ethernet
        ethertype, offset = struct.unpack(">H", frame[12:14])[0], 14
        if ethertype == 0x8100:
            ethertype, offset = struct.unpack(">H", frame[16:18])[0], 18
        return frame[offset:] if ethertype == 0x0800 else None
    if linktype == 113:  # Linux cooked
        return frame[16:] if struct.unpack(">H", frame[14:16])[0] == 0x0800 else None
    if linktype in (101, 228):  # raw IPv4
        return frame
    if linktype == 0:  # BSD loopback
        return frame[4:]
    return None


def label_run(pcap: Path, zone: str, tool: str, encoding: str) -> list[dict]:
    """Rows of one capture run: every query under ``zone`` (the tunnel's), in time order."""
    zone_labels = tuple(label.lower() for label in zone.strip(".").encode().split(b"."))
    rows, first = [], None
    for stamp, name, qtype in read_pcap_queries(pcap):
        lowered = tuple(label.lower() for label in name.labels)
        if lowered[-len(zone_labels) :] != zone_labels:
            continue
        first = stamp if first is None else first
        payload = name.labels[: -len(zone_labels)]
        payload_bytes = sum(len(label) for label in payload)
        rows.append(
            {
                "time": round(stamp - first, 6),
                "tool": tool,
                "encoding": encoding,
                "qtype": QTYPES.get(qtype, str(qtype)),
                "zone": zone.strip("."),
                "qname": name.presentation[:-1],
                "payload_bytes": payload_bytes,
                "data_bearing": int(payload_bytes >= DATA_BEARING_MIN),
            }
        )
    return rows


def label_captures(folder: Path, out: Path) -> dict:
    """All runs of a capture folder (``runs.tsv``: pcap, zone, tool, encoding) into one gzip CSV."""
    rows = []
    for line in (folder / "runs.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        pcap, zone, tool, encoding = line.split("\t")
        rows.extend(label_run(folder / pcap, zone, tool, encoding))
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", newline="", encoding="ascii") as handle:
        writer = csv.DictWriter(handle, CAPTURE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    counts: dict[str, int] = {}
    for row in rows:
        key = f"{row['tool']}/{row['encoding']}/{row['qtype']}"
        counts[key] = counts.get(key, 0) + 1
    return {"rows": len(rows), "runs": counts}


def load_captures(path: Path | str | None = None):
    """The shipped (or given) capture CSV as a DataFrame."""
    from vigil.files import read_csv_checked
    from vigil.tasks.dns_exfil.features import DATA_DIR

    return read_csv_checked(
        path or DATA_DIR / "captures.csv.gz",
        CAPTURE_COLUMNS,
        what="capture CSV",
        dtype={"qname": str, "encoding": str, "qtype": str},
        keep_default_na=False,
    )


# -- helpers run inside the namespaces -----------------------------------------------------------
def _rewrite(packet: bytes, mode: str) -> bytes:
    try:
        labels, end = _qname(packet, 12)
    except (ValueError, IndexError):
        return packet
    out = bytearray(packet)
    for i in range(12, end - 1):
        byte = out[i]
        if mode == "lower" and 65 <= byte <= 90:
            out[i] = byte + 32
        elif mode.startswith("no8bit") and byte >= 0x80:
            out[i] = ord("x")
        if mode == "no8bit-noplus" and out[i] == ord("+"):
            out[i] = ord("x")
    # The label length bytes must stay: restore them.
    offset = 12
    while offset < end - 1:
        length = packet[offset]
        out[offset] = length
        if length & 0xC0:
            break
        offset += 1 + length
    return bytes(out)


def relay(listen: str, upstream: str, mode: str) -> None:
    host, port = listen.rsplit(":", 1)
    up_host, up_port = upstream.rsplit(":", 1)
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((host, int(port)))
    pending: dict[int, tuple[str, int]] = {}
    upstream_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    import select

    while True:
        ready, _, _ = select.select([server, upstream_sock], [], [], 1.0)
        for sock in ready:
            data, address = sock.recvfrom(65535)
            if sock is server:
                if len(data) >= 2:
                    pending[struct.unpack(">H", data[:2])[0]] = address
                upstream_sock.sendto(_rewrite(data, mode), (up_host, int(up_port)))
            elif len(data) >= 2:
                client = pending.pop(struct.unpack(">H", data[:2])[0], None)
                if client:
                    server.sendto(data, client)


def sink(listen: str) -> None:
    host, port = listen.rsplit(":", 1)
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((host, int(port)))
    while True:
        data, address = server.recvfrom(65535)
        if len(data) < 12:
            continue
        flags = struct.unpack(">H", data[2:4])[0]
        answer = bytearray(data)
        answer[2:4] = struct.pack(">H", 0x8000 | (flags & 0x7900) | 0x0400 | 3)  # QR, AA, NXDOMAIN
        answer[6:12] = b"\x00" * 6
        try:
            _, end = _qname(data, 12)
            server.sendto(bytes(answer[: end + 4]), address)
        except (ValueError, IndexError):
            continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vigil.tasks.dns_exfil.capture")
    verbs = parser.add_subparsers(dest="verb", required=True)
    r = verbs.add_parser("relay")
    r.add_argument("--listen", required=True)
    r.add_argument("--upstream", required=True)
    r.add_argument("--mode", choices=("none", "lower", "no8bit", "no8bit-noplus"), default="none")
    s = verbs.add_parser("sink")
    s.add_argument("--listen", required=True)
    lab = verbs.add_parser("label")
    lab.add_argument("folder", type=Path)
    lab.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.verb == "relay":
        relay(args.listen, args.upstream, args.mode)
    elif args.verb == "sink":
        sink(args.listen)
    else:
        summary = label_captures(args.folder, args.out)
        print(f"{summary['rows']} queries -> {args.out}")
        for key, count in sorted(summary["runs"].items()):
            print(f"  {key:<40} {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
