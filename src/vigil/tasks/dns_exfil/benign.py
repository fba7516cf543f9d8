"""Benign query names from several independent real sources, and the LAN infrastructure names a network
really sends (``data/dns_exfil/benign_names.csv.gz``, rebuilt by ``python -m vigil.tasks.dns_exfil.benign``).

Sources (each row of the file says which; see data/dns_exfil/SOURCE.md for versions and licences):

=================  ==========================================================================================
``alice``          web host names of the "Catch Me If You Can" site dictionary (``benign_hosts.txt.gz``)
``psl-private``    the PRIVATE section of the Public Suffix List (Debian package ``publicsuffix``): cloud,
                   CDN, hosting and dynamic-DNS endpoints (``s3.dualstack.eu-west-1.amazonaws.com``...)
``hsts``           host names of Chromium's HSTS preload list (PyPI ``hstspreload``), a sample
``disposable``     mail domains of PyPI ``disposable-email-domains`` (MX lookups of a mail server)
``infrastructure`` names built from the formats LAN traffic really has, filled with real ingredients:
                   PTR of private and public IPv4 addresses and of IPv6 addresses (ip6.arpa nibbles),
                   DNS-SD under ``.local`` (service names from the IANA registry as shipped in Debian's
                   ``/etc/services``; instance names such as ``Office Printer`` or ``Bob's iPhone``), SRV
                   of Active Directory, SIP, XMPP, LDAP, Kerberos; DKIM selectors, DMARC, MTA-STS, BIMI,
                   ACME challenges; cloud endpoint names (EC2, S3, Azure, GCP) and CDN edge names
                   (CloudFront, Akamai, Google video) in their documented formats. The addresses, ids and
                   instance names in them are drawn at random: the *formats* are real, the values made
=================  ==========================================================================================

Honest split for evaluation: :data:`TRAIN_SOURCES` (alice, psl-private, infrastructure with seed 1)
train; :data:`TEST_SOURCES` (hsts, disposable: sources the training set never saw) and infrastructure
drawn with another seed test.
"""

from __future__ import annotations

import csv
import gzip
import ipaddress
import random
import re
from pathlib import Path

from vigil.tasks.dns_exfil.features import DATA_DIR

TRAIN_SOURCES = ("alice", "psl-private", "infrastructure")
TEST_SOURCES = ("hsts", "disposable", "infrastructure-test")
BENIGN_FILE = "benign_names.csv.gz"
BENIGN_COLUMNS = ["name", "source", "kind"]

INSTANCE_NAMES = (
    "Office Printer",
    "HP LaserJet 400",
    "Brother MFC-L2710DW",
    "Living Room",
    "Kitchen",
    "Bob's iPhone",
    "Alice\u2019s MacBook Pro",
    "NAS",
    "Synology DS920",
    "Chromecast-Ultra",
    "Sonos-Move",
    "EPSON ET-2750 Series",
    "Apple TV",
    "raspberrypi",
    "Canon MG3600 series",
    "Philips hue - 1A2B3C",
    "Meeting Room 2",
    "samsung-tv",
    "ubuntu-desktop",
    "DESKTOP-7K2L9QF",
)
DKIM_SELECTORS = (
    "google",
    "selector1",
    "selector2",
    "k1",
    "k2",
    "s1",
    "s2",
    "default",
    "mail",
    "dkim",
    "mandrill",
    "smtpapi",
    "mxvault",
    "20230601",
    "zoho",
    "protonmail",
    "fm1",
    "sig1",
    "m1",
)
SRV_NAMES = (
    "_ldap._tcp.dc._msdcs",
    "_kerberos._udp",
    "_kerberos._tcp",
    "_kpasswd._udp",
    "_gc._tcp",
    "_ldap._tcp.default-first-site-name._sites.dc._msdcs",
    "_sip._tls",
    "_sipfederationtls._tcp",
    "_xmpp-client._tcp",
    "_xmpp-server._tcp",
    "_caldavs._tcp",
    "_carddavs._tcp",
    "_imaps._tcp",
    "_submission._tcp",
    "_autodiscover._tcp",
    "_minecraft._tcp",
    "_vlmcs._tcp",
    "_ntp._udp",
)
AWS_REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-1",
    "ap-northeast-1",
    "sa-east-1",
    "ca-central-1",
    "eu-north-1",
)


def _services() -> list[str]:
    names = set()
    path = Path("/etc/services")
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            m = re.match(r"^([a-z][a-z0-9-]{0,14})\s+\d+/(tcp|udp)", line)
            if m:
                names.add(f"_{m.group(1)}._{m.group(2)}")
    return sorted(names) or ["_ipp._tcp", "_smb._tcp", "_http._tcp", "_ssh._tcp"]


def _psl_private(path: Path = Path("/usr/share/publicsuffix/public_suffix_list.dat")) -> list[str]:
    names, private = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if "===BEGIN PRIVATE DOMAINS===" in line:
            private = True
        if not private or not line.strip() or line.startswith("//"):
            continue
        name = line.strip().lstrip("!").replace("*.", "")
        if name.isascii():
            names.append(name)
    return sorted(set(names))


def infrastructure_names(domains: list[str], n: int, seed: int) -> list[tuple[str, str]]:
    """(name, kind) of LAN / mail / cloud infrastructure traffic in real formats (see the module doc)."""
    rng = random.Random(seed)
    services = _services()
    out = []
    hexdigits = "0123456789abcdef"
    b32 = "abcdefghijklmnopqrstuvwxyz234567"
    for _ in range(n):
        kind = rng.choice(
            (
                "ptr4-private",
                "ptr4-public",
                "ptr6",
                "dns-sd",
                "dns-sd-instance",
                "srv",
                "dkim",
                "dmarc",
                "mail-misc",
                "cloud",
                "cdn",
            )
        )
        domain = rng.choice(domains)
        if kind == "ptr4-private":
            net = rng.choice(("192.168", "10", "172.16"))
            addr = ipaddress.ip_address(
                f"{net}.{'.'.join(str(rng.randrange(256)) for _ in range(4 - net.count('.') - 1))}"
            )
            name = addr.reverse_pointer
        elif kind == "ptr4-public":
            name = ipaddress.ip_address(rng.getrandbits(32) | 0x01000000).reverse_pointer
        elif kind == "ptr6":
            prefix = rng.choice((0x2001_0DB8, 0x2A00_1450, 0x2606_4700, 0xFE80_0000, 0xFD00_0000))
            name = ipaddress.ip_address((prefix << 96) | rng.getrandbits(64)).reverse_pointer
        elif kind == "dns-sd":
            name = rng.choice(
                (
                    f"{rng.choice(services)}.local",
                    "_services._dns-sd._udp.local",
                    f"lb._dns-sd._udp.{rng.randrange(256)}.1.168.192.in-addr.arpa",
                    f"_universal._sub.{rng.choice(services)}.local",
                )
            )
        elif kind == "dns-sd-instance":
            name = f"{rng.choice(INSTANCE_NAMES)}.{rng.choice(services)}.local"
        elif kind == "srv":
            name = f"{rng.choice(SRV_NAMES)}.{rng.choice(('corp.', 'ad.', ''))}{domain}"
        elif kind == "dkim":
            name = f"{rng.choice(DKIM_SELECTORS)}._domainkey.{domain}"
        elif kind == "dmarc":
            name = f"_dmarc.{domain}"
        elif kind == "mail-misc":
            name = rng.choice(
                (
                    f"_mta-sts.{domain}",
                    f"mta-sts.{domain}",
                    f"default._bimi.{domain}",
                    f"_acme-challenge.{domain}",
                    f"_smtp._tls.{domain}",
                    f"autodiscover.{domain}",
                    f"mail.{domain}",
                    f"{rng.choice(domain.split('.')[:1])}-com.mail.protection.outlook.com",
                )
            )
        elif kind == "cloud":
            region = rng.choice(AWS_REGIONS)
            a, b, c, d = (rng.randrange(1, 255) for _ in range(4))
            name = rng.choice(
                (
                    f"ec2-{a}-{b}-{c}-{d}.{region}.compute.amazonaws.com",
                    f"ip-10-{b}-{c}-{d}.{region}.compute.internal",
                    f"{domain.split('.')[0]}-assets.s3.{region}.amazonaws.com",
                    f"{domain.split('.')[0]}{rng.randrange(100)}.blob.core.windows.net",
                    f"{domain.split('.')[0]}-{rng.randrange(10**6):06d}.{region}.elb.amazonaws.com",
                    "storage.googleapis.com",
                    f"{region}-docker.pkg.dev",
                    f"{''.join(rng.choice(hexdigits) for _ in range(12))}.execute-api.{region}.amazonaws.com",
                )
            )
        else:
            name = rng.choice(
                (
                    f"d{''.join(rng.choice(b32[:26] + '0123456789') for _ in range(13))}.cloudfront.net",
                    f"e{rng.randrange(1, 99999)}.{rng.choice(('a', 'b', 'dscb', 'dsca', 'x'))}.akamaiedge.net",
                    f"rr{rng.randrange(1, 6)}---sn-{''.join(rng.choice(b32[:26] + '0123456789') for _ in range(8))}.googlevideo.com",
                    f"{domain.split('.')[0]}.edgekey.net",
                    f"{domain.split('.')[0]}.cdn.cloudflare.net",
                    f"scontent-{rng.choice(('ams', 'fra', 'lhr', 'cdg'))}{rng.randrange(1, 4)}-1.xx.fbcdn.net",
                )
            )
        out.append((name, kind))
    return out


def build(
    out: Path = DATA_DIR / BENIGN_FILE,
    hsts_names: Path | None = None,
    disposable: bool = True,
    n_hsts: int = 12_000,
    n_infra: int = 6_000,
    seed: int = 1,
) -> dict:
    """Write the benign file from the installed sources (the build machine's packages; see SOURCE.md)."""
    rows: list[tuple[str, str, str]] = []
    with gzip.open(DATA_DIR / "benign_hosts.txt.gz", "rt", encoding="utf-8") as handle:
        alice = [line.strip() for line in handle if line.strip()]
    # alice is not repeated in the file: load_benign reads it from benign_hosts.txt.gz
    rows += [(name, "psl-private", "cloud-suffix") for name in _psl_private()]
    rng = random.Random(seed)
    hsts: list[str] = []
    if hsts_names and Path(hsts_names).is_file():
        hsts = [n for n in Path(hsts_names).read_text().split() if n.isascii()]
        hsts = rng.sample(hsts, min(n_hsts, len(hsts)))
        rows += [(name, "hsts", "web") for name in sorted(hsts)]
    if disposable:
        try:
            from disposable_email_domains import blocklist

            rows += [(name, "disposable", "mail-domain") for name in sorted(blocklist) if name.isascii()]
        except ImportError:
            pass
    from vigil.tasks.dns_exfil.features import registered_domain

    train_domains = sorted({registered_domain(h) for h in rng.sample(alice, 3000)} - {"."})
    rows += [(name, "infrastructure", kind) for name, kind in infrastructure_names(train_domains, n_infra, seed)]
    test_domains = sorted({registered_domain(h) for h in rng.sample(hsts or alice, 3000)} - {"."})
    rows += [
        (name, "infrastructure-test", kind) for name, kind in infrastructure_names(test_domains, n_infra, seed + 1000)
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(BENIGN_COLUMNS)
        writer.writerows(rows)
    counts: dict[str, int] = {}
    for _, source, _ in rows:
        counts[source] = counts.get(source, 0) + 1
    return counts


def load_benign(path: Path | str | None = None):
    """All benign names: the file's rows plus the alice host names, as (name, source, kind)."""
    import pandas as pd

    from vigil.files import read_csv_checked

    frame = read_csv_checked(
        path or DATA_DIR / BENIGN_FILE, BENIGN_COLUMNS, what="benign names CSV", dtype=str, keep_default_na=False
    )
    with gzip.open(DATA_DIR / "benign_hosts.txt.gz", "rt", encoding="utf-8") as handle:
        alice = [line.strip() for line in handle if line.strip()]
    return pd.concat([pd.DataFrame({"name": alice, "source": "alice", "kind": "web"}), frame], ignore_index=True)


if __name__ == "__main__":
    import sys

    print(build(hsts_names=Path(sys.argv[1]) if len(sys.argv) > 1 else None))
