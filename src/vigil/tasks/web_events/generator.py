"""A realistic WAF-event generator, because ML-PT's raw part_10.csv cannot be obtained here.

Every string comes from real, permissively licensed ingredients shipped in ``data/web_events/ingredients``
(see its SOURCE.md): browser and crawler user agents (fake-useragent, crawler-user-agents), scanner
paths (OWASP Nettacker's wordlists), attack strings (wafw00f's probes, ML-PT's published example
rows, textbook SQLi/XSS/LFI/RCE shapes) and site names (the Kaggle "Catch Me If You Can" site
dictionary). Events are drawn from a few dozen behaviours (jQuery cache busters, redirects, header
and cookie matches, scanners, injections ...), each with its own sources, names, values, sizes,
codes, clients and user agents.

At full size (57,833 events plus 12 duplicate rows) the column statistics are fitted *exactly* to
ML-PT's published summary: missing values per column, distinct client IPs (24,940), user agents
(6,992), request sizes (5,758), response codes (60), SRC values (21), NAME values (3,209), event ids
(54,410), the top client (217.175.140.69, 11,286 events), the top NAME ("REQUEST_GET_ARGS._", 11,165),
the top SRC (REQUEST_GET_ARGS, 20,812) and code 200 (25,771). Smaller runs scale the counts.

    >>> frame = generate_events(500, seed=1)
    >>> sorted(frame.columns) == sorted(COLUMNS)
    True
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from vigil.config import SAMPLE_DATA
from vigil.tasks.web_events.wrangling import COLUMNS, DATA_DELIMITER

INGREDIENTS = SAMPLE_DATA / "web_events" / "ingredients"
FULL_ROWS = 57_833

# ML-PT's summary of part_10.csv after drop_duplicates (01_data_exploration.ipynb).
PUBLISHED: dict[str, Any] = {
    "rows": 57_833,
    "duplicates": 12,
    "distinct": {
        "CLIENT_IP": 24_940,
        "CLIENT_USERAGENT": 6_992,
        "REQUEST_SIZE": 5_758,
        "RESPONSE_CODE": 60,
        "MATCHED_VARIABLE_SRC": 21,
        "MATCHED_VARIABLE_NAME": 3_209,
        "EVENT_ID": 54_410,
    },
    "missing": {
        "CLIENT_IP": 1,
        "CLIENT_USERAGENT": 316,
        "REQUEST_SIZE": 39,
        "RESPONSE_CODE": 63,
        "MATCHED_VARIABLE_SRC": 103,
        "MATCHED_VARIABLE_NAME": 4_666,
        "MATCHED_VARIABLE_VALUE": 150,
        "EVENT_ID": 167,
    },
    "distinct_values": 57_611,
    "top": {
        "CLIENT_IP": ("217.175.140.69", 11_286),
        "RESPONSE_CODE": ("200", 25_771),
        "MATCHED_VARIABLE_SRC": ("REQUEST_GET_ARGS", 20_812),
        "MATCHED_VARIABLE_NAME": ("REQUEST_GET_ARGS._", 11_165),
    },
}
# Counts that do not grow with the number of events.
FIXED_DISTINCT = ("RESPONSE_CODE", "MATCHED_VARIABLE_SRC")

RESPONSE_CODES = (
    200,
    201,
    202,
    203,
    204,
    205,
    206,
    207,
    208,
    226,
    300,
    301,
    302,
    303,
    304,
    305,
    307,
    308,
    400,
    401,
    402,
    403,
    404,
    405,
    406,
    407,
    408,
    409,
    410,
    411,
    412,
    413,
    414,
    415,
    416,
    417,
    420,
    421,
    422,
    423,
    424,
    426,
    428,
    429,
    431,
    444,
    450,
    451,
    460,
    463,
    494,
    495,
    496,
    497,
    499,
    500,
    501,
    502,
    503,
    504,
)
TOP_CLIENT = "217.175.140.69"
IPV6_SHARE = 0.04  # some clients come over IPv6 (ML-PT's wrangling maps IPv4 into IPv6 for that reason)
IE11 = "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko"
TOP_AGENT_SHARE = 2_117 / 11_286  # ML-PT's top user agent (IE11 on Windows 7) on the busiest client
# Busy clients of ML-PT's data (01_data_exploration.ipynb, value_counts of CLIENT_IP).
KNOWN_ATTACKERS = (
    "37.46.129.136",
    "188.43.52.163",
    "5.143.231.38",
    "192.168.100.63",
    "185.26.112.50",
    "62.168.244.229",
    "103.208.220.130",
    "185.70.104.11",
    "178.236.141.227",
)

COMMON_PARAMS = """id page q s url search query lang p cat category sort order limit offset start type view
action do mode module option task item itemid Itemid format callback jsonp ref referrer redirect return next
token key session sid uid user username email name city region country code date from to year month day time
ts v ver version rnd random r t cb utm_source utm_medium utm_campaign utm_content utm_term gclid yclid fbclid
product product_id pid cid tag tags filter filters price brand color size count per_page pagesize route path
file filename dir folder img image src width height w h lat lon zoom tab section step share text title
message comment subject body ajax json xml output style theme template layout tmpl debug test preview print""".split()
COOKIE_NAMES = """PHPSESSID JSESSIONID ASP.NET_SessionId _ga _gid _gat _ym_uid _ym_d _ym_isad __utma __utmb
__utmc __utmz _fbp csrftoken sessionid language lang currency cart_id BITRIX_SM_GUEST_ID BITRIX_SM_LAST_VISIT
BITRIX_SM_SALE_UID wordpress_test_cookie has_js tmr_detect""".split()
HEADER_NAMES = """Referer X-Forwarded-For Cookie Accept-Language Host X-Requested-With Accept Origin
Content-Type X-Real-IP Accept-Encoding Via Forwarded X-Originating-IP""".split()
POST_FIELDS = """login password pass username email name phone message comment text subject captcha
form_id form_build_id op submit action redirect_to log pwd rememberme token csrf amount sum qty""".split()


@dataclass(frozen=True)
class Behaviour:
    name: str
    share: float  # of all events at full size
    src: str
    attack: bool
    nameless: bool = False


# Shares add up to 1 with get_args taking the rest; nameless ones add up to ML-PT's 4,666 missing names.
BEHAVIOURS = [
    Behaviour("jquery_nocache", 11_165 / FULL_ROWS, "REQUEST_GET_ARGS", False),
    Behaviour("redirect_url", 2_600 / FULL_ROWS, "REQUEST_GET_ARGS", False),
    Behaviour("sqli_get", 1_500 / FULL_ROWS, "REQUEST_GET_ARGS", True),
    Behaviour("xss_get", 700 / FULL_ROWS, "REQUEST_GET_ARGS", True),
    Behaviour("scanner_uri", 2_300 / FULL_ROWS, "REQUEST_URI", True, nameless=True),
    Behaviour("path_attack", 1_200 / FULL_ROWS, "REQUEST_PATH", True, nameless=True),
    Behaviour(
        "multipart_method", 700 / FULL_ROWS, "REQUEST_METHOD" + DATA_DELIMITER + "REQUEST_CONTE", False, nameless=True
    ),
    Behaviour("query_attack", 466 / FULL_ROWS, "REQUEST_QUERY", True, nameless=True),
    Behaviour("header_user_agent", 3_000 / FULL_ROWS, "REQUEST_HEADERS", False),
    Behaviour("header_other", 12_000 / FULL_ROWS, "REQUEST_HEADERS", False),
    Behaviour("header_shellshock", 600 / FULL_ROWS, "REQUEST_HEADERS", True),
    Behaviour("cookies", 6_500 / FULL_ROWS, "REQUEST_COOKIES", False),
    Behaviour("post_args", 4_500 / FULL_ROWS, "REQUEST_POST_ARGS", False),
    Behaviour("sqli_post", 500 / FULL_ROWS, "REQUEST_POST_ARGS", True),
    Behaviour("json_body", 2_515 / FULL_ROWS, "REQUEST_JSON", False),
    Behaviour("args_keys", 300 / FULL_ROWS, "REQUEST_ARGS_KEYS", True),
    Behaviour("response_headers", 1_500 / FULL_ROWS, "RESPONSE_HEADERS", False),
    Behaviour("response_body", 200 / FULL_ROWS, "RESPONSE_BODY", True),
    Behaviour("xxe", 120 / FULL_ROWS, "REQUEST_XML", True),
    Behaviour("args", 150 / FULL_ROWS, "REQUEST_ARGS", True),
    Behaviour("client_user_agent", 100 / FULL_ROWS, "CLIENT_USERAGENT", True),
    Behaviour("session_id", 80 / FULL_ROWS, "CLIENT_SESSION_ID", True),
    Behaviour("content_type", 80 / FULL_ROWS, "REQUEST_CONTENT_TYPE", True),
    Behaviour("files", 60 / FULL_ROWS, "REQUEST_FILES", True),
    Behaviour("client_ip", 40 / FULL_ROWS, "CLIENT_IP", True),
    Behaviour("method", 60 / FULL_ROWS, "REQUEST_METHOD", True),
    Behaviour("get_and_keys", 50 / FULL_ROWS, "REQUEST_GET_ARGS" + DATA_DELIMITER + "REQUEST_ARGS_K", True),
    Behaviour("get_args", 0.0, "REQUEST_GET_ARGS", False),  # the rest: 4,847 at full size
]


def read_lines(name: str) -> list[str]:
    lines = (INGREDIENTS / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


class Ingredients:
    def __init__(self):
        self.browsers = read_lines("browser_user_agents.txt")
        self.crawlers = read_lines("crawler_user_agents.txt")
        self.paths = [p.strip().lstrip("/") for p in read_lines("scanner_paths.txt")]
        self.sites = read_lines("sites.txt")
        self.payloads: dict[str, list[str]] = {}
        for line in read_lines("attack_payloads.tsv"):
            kind, payload = line.split("\t", 1)
            self.payloads.setdefault(kind, []).append(payload)


def largest_remainder(total: int, shares: list[float], minimum: int = 0) -> list[int]:
    raw = np.array(shares, dtype=float) / sum(shares) * total
    counts = np.maximum(np.floor(raw).astype(int), minimum)
    order = np.argsort(-(raw - np.floor(raw)))
    i = 0
    while counts.sum() < total:
        counts[order[i % len(order)]] += 1
        i += 1
    return counts.tolist()


def fit_cardinality(
    values: list, target: int, eligible: np.ndarray, fresh: Callable[[int], object], rng: np.random.Generator
) -> None:
    """Make ``values`` hold exactly ``target`` distinct non-missing values, editing only eligible rows.

    Too few: duplicated values of eligible rows are replaced by fresh ones. Too many: the rarest
    values (held by eligible rows only) are replaced by the value of another eligible row.
    """
    counts = Counter(v for v in values if v is not None)
    eligible = rng.permutation(eligible)
    if len(counts) < target:
        for i in eligible:
            if len(counts) >= target:
                break
            old = values[i]
            if old is None or counts[old] <= 1:
                continue
            for _ in range(50):
                new = fresh(int(i))
                if new not in counts:
                    break
            else:
                continue
            counts[old] -= 1
            values[i] = new
            counts[new] = 1
    elif len(counts) > target:
        positions: dict = {}
        for i in eligible:
            if values[i] is not None:
                positions.setdefault(values[i], []).append(i)
        donors = [i for i in eligible if values[i] is not None]
        for old in sorted(positions, key=lambda v: counts[v]):
            if len(counts) <= target:
                break
            if counts[old] != len(positions[old]):
                continue  # rows we may not edit hold it too
            for _ in range(100):
                donor = values[donors[rng.integers(len(donors))]]
                if donor != old and donor in counts:
                    break
            else:
                continue
            for i in positions.pop(old):
                values[i] = donor
                positions.setdefault(donor, []).append(i)
            counts[donor] += counts.pop(old)


def zipf_choice(rng: np.random.Generator, pool: list, size: int, exponent: float = 1.1) -> list:
    picks = rng.choice(len(pool), size=size, p=zipf_weights(len(pool), exponent))
    return [pool[i] for i in picks]


@lru_cache(maxsize=64)
def zipf_weights(size: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    return weights / weights.sum()


class EventGenerator:
    def __init__(self, rows: int, seed: int = 0):
        self.rows = rows
        self.scale = rows / FULL_ROWS
        self.rng = np.random.default_rng(seed)
        self.ing = Ingredients()

    # -- small value makers ---------------------------------------------------------------------
    def number(self, low=1, high=10**9) -> str:
        return str(int(self.rng.integers(low, high)))

    def word(self) -> str:
        site = self.ing.sites[self.rng.integers(len(self.ing.sites))]
        parts = [p for p in re.split(r"[.\-]", site) if p not in ("www", "com", "ru", "org", "net", "fr") and p]
        return parts[0] if parts else "site"

    def site(self) -> str:
        return self.ing.sites[self.rng.integers(len(self.ing.sites))]

    def path(self) -> str:
        return self.ing.paths[self.rng.integers(len(self.ing.paths))]

    def token(self, n: int, alphabet: str = string.hexdigits[:16]) -> str:
        return "".join(alphabet[i] for i in self.rng.integers(len(alphabet), size=n))

    def payload(self, *kinds: str) -> str:
        kind = kinds[self.rng.integers(len(kinds))]
        options = self.ing.payloads[kind]
        text = options[self.rng.integers(len(options))]
        text = text.replace("{n}", self.number(1, 99999)).replace("{site}", self.site()).replace("{path}", self.path())
        if self.rng.random() < 0.25:  # scanners often send them URL-encoded
            text = (
                text.replace(" ", "%20").replace("'", "%27").replace('"', "%22").replace("<", "%3C").replace(">", "%3E")
            )
        return text

    def event_id(self) -> str:
        alphabet = string.ascii_letters + string.digits + "-_"
        head = "AV" if self.rng.random() < 0.45 else ""
        return head + self.token(20 - len(head), alphabet)

    def browser_variant(self, base: str) -> str:
        """A real browser string with its version numbers re-drawn: new but plausible."""

        def bump(match: re.Match) -> str:
            major = int(match.group(1))
            return f"{max(1, major + int(self.rng.integers(-3, 4)))}.{match.group(2)}.{int(self.rng.integers(0, 5000))}"

        variant = re.sub(r"(\d+)\.(\d+)\.(\d+)", bump, base, count=1)
        return variant if variant != base else base.replace(")", f"; rv:{int(self.rng.integers(30, 70))}.0)", 1)

    def public_ip(self) -> str:
        if self.rng.random() < IPV6_SHARE:
            prefix = ["2a02:6b8", "2a00:1450", "2001:67c", "2a03:2880", "2604:a880"][self.rng.integers(5)]
            return (
                prefix
                + ":"
                + ":".join(f"{int(g):x}" for g in self.rng.integers(0, 65536, size=int(self.rng.integers(2, 7))))
            )
        while True:
            a = int(self.rng.integers(1, 224))
            if a not in (10, 127, 172, 192, 100, 169):
                return f"{a}.{int(self.rng.integers(0, 256))}.{int(self.rng.integers(0, 256))}.{int(self.rng.integers(1, 255))}"

    # -- per behaviour ----------------------------------------------------------------------------
    def name_and_value(self, behaviour: str, user_agent: str | None) -> tuple[str | None, str]:
        r = self.rng.random()
        if behaviour == "jquery_nocache":
            return "REQUEST_GET_ARGS._", str(
                int(self.rng.integers(1_451_606_400_000, 1_546_300_800_000))
            ) if r < 0.8 else self.number(10**6, 10**10)
        if behaviour == "redirect_url":
            scheme = "https" if r < 0.3 else "http"
            tail = self.path() if self.rng.random() < 0.6 else ""
            return "url", f"{scheme}://{'www.' if self.rng.random() < 0.5 else ''}{self.site()}/{tail}"
        if behaviour in ("sqli_get", "xss_get"):
            param = COMMON_PARAMS[self.rng.integers(len(COMMON_PARAMS))]
            kind = ("sqli",) if behaviour == "sqli_get" else ("xss",)
            return f"REQUEST_GET_ARGS.{param}", self.payload(*kind)
        if behaviour == "scanner_uri":
            if r < 0.15:
                return None, f"//tmp/{self.number(10**13, 10**14)}indo.php.vob"
            return None, "/" + self.path() + ("" if self.rng.random() < 0.7 else "?" + self.payload("scan", "lfi"))
        if behaviour == "path_attack":
            return None, "/" + self.path() + self.payload("sqli", "lfi", "xss", "rce")
        if behaviour == "multipart_method":
            return None, "POST" + DATA_DELIMITER + "multipart/form-data; boundary=----WebKitFormBoundary" + self.token(
                16, string.ascii_letters + string.digits
            )
        if behaviour == "query_attack":
            return (
                None,
                f"{COMMON_PARAMS[self.rng.integers(len(COMMON_PARAMS))]}={self.payload('sqli', 'xss', 'lfi', 'rce', 'ssrf')}",
            )
        if behaviour == "header_user_agent":
            return "REQUEST_HEADERS.User-Agent", user_agent or self.ing.browsers[
                self.rng.integers(len(self.ing.browsers))
            ]
        if behaviour == "header_other":
            header = HEADER_NAMES[min(int(self.rng.exponential(3)), len(HEADER_NAMES) - 1)]
            if header in ("Referer", "Origin"):
                value = f"http://{self.site()}/{self.path() if self.rng.random() < 0.5 else ''}"
            elif header in ("X-Forwarded-For", "X-Real-IP", "X-Originating-IP", "Forwarded", "Via"):
                value = ", ".join(self.public_ip() for _ in range(int(self.rng.integers(1, 4))))
            elif header == "Accept-Language":
                value = [
                    "ru-RU,ru;q=0.8,en-US;q=0.6,en;q=0.4",
                    "en-US,en;q=0.9",
                    "ru,en;q=0.9",
                    "de-DE,de;q=0.9,en;q=0.8",
                ][self.rng.integers(4)]
            else:
                value = f"{self.word()}={self.token(int(self.rng.integers(8, 33)))}"
            return f"REQUEST_HEADERS.{header}", value
        if behaviour == "header_shellshock":
            return "REQUEST_HEADERS.User-Agent", self.payload("rce")
        if behaviour == "cookies":
            name = COOKIE_NAMES[min(int(self.rng.exponential(6)), len(COOKIE_NAMES) - 1)]
            if r < 0.15:
                name = "SESS" + self.token(32)
            value = (
                f"GA1.2.{self.number()}.{self.number(1_450_000_000, 1_546_000_000)}"
                if name.startswith("_g")
                else self.token(int(self.rng.integers(16, 41)))
            )
            return f"REQUEST_COOKIES.{name}", value
        if behaviour in ("post_args", "sqli_post"):
            field = POST_FIELDS[self.rng.integers(len(POST_FIELDS))]
            if behaviour == "sqli_post":
                return f"REQUEST_POST_ARGS.{field}", self.payload("sqli", "rce")
            value = self.word() if r < 0.5 else f"{self.word()} {self.word()} {self.number(1, 1000)}"
            return f"REQUEST_POST_ARGS.{field}", value
        if behaviour == "json_body":
            width, height = [(728, 90), (300, 250), (240, 400), (160, 600)][self.rng.integers(4)]
            value = json.dumps(
                {
                    "tags": [
                        {
                            "sizes": [{"width": width, "height": height}],
                            "id": self.number(1, 10**6),
                            "site": self.site(),
                        }
                    ]
                }
            ).replace('"', '\\"')
            return f"REQUEST_JSON.tags.{self.rng.integers(0, 4)}.sizes", value
        if behaviour == "args_keys":
            return "REQUEST_ARGS_KEYS." + COMMON_PARAMS[self.rng.integers(len(COMMON_PARAMS))], self.payload(
                "sqli", "xss"
            )
        if behaviour == "response_headers":
            header = ["Server", "X-Powered-By", "Location", "Set-Cookie"][self.rng.integers(4)]
            value = {
                "Server": f"Apache/2.{self.rng.integers(2, 5)}.{self.rng.integers(0, 30)} (CentOS)",
                "X-Powered-By": f"PHP/5.{self.rng.integers(3, 7)}.{self.rng.integers(0, 40)}",
                "Location": f"http://{self.site()}/",
                "Set-Cookie": f"PHPSESSID={self.token(26)}; path=/",
            }[header]
            return f"RESPONSE_HEADERS.{header}", value
        if behaviour == "response_body":
            return "RESPONSE_BODY", (
                "You have an error in your SQL syntax; check the manual that corresponds to your "
                f"MySQL server version for the right syntax to use near '{self.number(1, 99999)}' at line 1"
            )
        if behaviour == "xxe":
            return "REQUEST_XML", '<?xml version="1.0"?><!DOCTYPE r [' + self.payload("xxe")
        if behaviour == "args":
            return "REQUEST_ARGS." + COMMON_PARAMS[self.rng.integers(len(COMMON_PARAMS))], self.payload(
                "sqli", "lfi", "rce"
            )
        if behaviour == "client_user_agent":
            return "CLIENT_USERAGENT", user_agent or self.payload("rce")
        if behaviour == "session_id":
            return "CLIENT_SESSION_ID", self.token(26) + self.payload("sqli")
        if behaviour == "content_type":
            return "REQUEST_CONTENT_TYPE", "%{(#_='multipart/form-data')." + self.payload("rce")
        if behaviour == "files":
            return "REQUEST_FILES." + ["file", "upload", "image", "files[]"][self.rng.integers(4)], f"{self.word()}.php"
        if behaviour == "client_ip":
            return "CLIENT_IP", self.public_ip()
        if behaviour == "method":
            return "REQUEST_METHOD", ["PROPFIND", "TRACE", "OPTIONS", "PUT", "DELETE", "DEBUG"][self.rng.integers(6)]
        if behaviour == "get_and_keys":
            param = COMMON_PARAMS[self.rng.integers(len(COMMON_PARAMS))]
            return (
                f"REQUEST_GET_ARGS.{param}{DATA_DELIMITER}REQUEST_ARGS_KEYS.{param}",
                self.payload("sqli") + DATA_DELIMITER + param,
            )
        # get_args: everyday parameters
        param = zipf_choice(self.rng, COMMON_PARAMS, 1, 0.9)[0]
        name = param if r < 0.12 else f"REQUEST_GET_ARGS.{param}"
        roll = self.rng.random()
        if roll < 0.4:
            value = self.number(1, 10**7)
        elif roll < 0.7:
            value = self.word()
        elif roll < 0.85:
            value = f"http://{self.site()}/"
        else:
            value = self.token(int(self.rng.integers(8, 40)))
        return name, value

    def fresh_name(self, src: str) -> str:
        """A new variable name for a row whose source is ``src``."""
        if src == "REQUEST_COOKIES":
            return "REQUEST_COOKIES." + (
                f"SESS{self.token(32)}" if self.rng.random() < 0.5 else f"{self.word()}_{self.token(6)}"
            )
        if src == "REQUEST_POST_ARGS":
            return f"REQUEST_POST_ARGS.{self.word()}[{POST_FIELDS[self.rng.integers(len(POST_FIELDS))]}]"
        prefix = "" if self.rng.random() < 0.12 else "REQUEST_GET_ARGS."
        form = self.rng.random()
        word = self.word().replace(" ", "_")
        if form < 0.4:
            return f"{prefix}{word}"
        if form < 0.7:
            return f"{prefix}{word}_{COMMON_PARAMS[self.rng.integers(len(COMMON_PARAMS))]}"
        return f"{prefix}{COMMON_PARAMS[self.rng.integers(len(COMMON_PARAMS))]}[{word}]"

    # -- the whole table -----------------------------------------------------------------------------
    def scaled(self, count: int) -> int:
        return int(round(count * self.scale))

    def target_distinct(self, column: str) -> int:
        full = PUBLISHED["distinct"][column]
        return full if column in FIXED_DISTINCT else max(1, self.scaled(full))

    def generate(self) -> pd.DataFrame:
        n, rng, ing = self.rows, self.rng, self.ing
        shares = [b.share for b in BEHAVIOURS]
        shares[-1] = 1.0 - sum(shares)
        nameless_target = self.scaled(PUBLISHED["missing"]["MATCHED_VARIABLE_NAME"])
        counts = largest_remainder(n, shares, minimum=1 if n >= 1000 else 0)
        nameless = [i for i, b in enumerate(BEHAVIOURS) if b.nameless]
        nameless_counts = largest_remainder(nameless_target, [BEHAVIOURS[i].share for i in nameless], 0)
        for i, c in zip(nameless, nameless_counts):
            counts[i] = c
        counts[-1] = n - sum(counts[:-1])
        kinds = np.repeat(np.arange(len(BEHAVIOURS)), counts)
        rng.shuffle(kinds)
        attack = np.array([BEHAVIOURS[k].attack for k in kinds])

        # Clients: the busiest one on benign traffic, a few hundred attackers, a long benign tail.
        ips: list[Any] = [None] * n
        top_rows = rng.choice(
            np.flatnonzero(~attack),
            size=min(self.scaled(PUBLISHED["top"]["CLIENT_IP"][1]), int((~attack).sum())),
            replace=False,
        )
        attackers = list(KNOWN_ATTACKERS) + [self.public_ip() for _ in range(max(5, self.scaled(400)))]
        for i, ip in zip(np.flatnonzero(attack).tolist(), zipf_choice(rng, attackers, int(attack.sum()), 0.9)):
            ips[i] = ip
        benign_pool = [self.public_ip() for _ in range(max(10, self.scaled(30_000)))]
        benign_rows = np.setdiff1d(np.flatnonzero(~attack), top_rows)
        for i, ip in zip(benign_rows, zipf_choice(rng, benign_pool, benign_rows.size, 0.6)):
            ips[i] = ip
        for i in top_rows:
            ips[i] = TOP_CLIENT

        # User agents: browsers for people, IE11 on the busy client, crawlers and junk for attackers.
        browsers = list(ing.browsers)
        rng.shuffle(browsers)
        agents: list[Any] = [None] * n
        for i in range(n):
            if attack[i]:
                r = rng.random()
                agents[i] = (
                    ing.crawlers[rng.integers(len(ing.crawlers))]
                    if r < 0.55
                    else browsers[rng.integers(len(browsers))]
                    if r < 0.85
                    else ["-", "Mozilla", "Mozilla/4.0", "() { :; }; echo; /bin/id", "python-requests", "curl"][
                        rng.integers(6)
                    ]
                )
            elif ips[i] == TOP_CLIENT and rng.random() < TOP_AGENT_SHARE:
                agents[i] = IE11
            else:
                agents[i] = (
                    zipf_choice(rng, browsers[:400], 1, 0.6)[0]
                    if rng.random() < 0.8
                    else browsers[rng.integers(len(browsers))]
                )

        names: list[Any] = [None] * n
        values: list[Any] = [None] * n
        for i in range(n):
            names[i], values[i] = self.name_and_value(BEHAVIOURS[kinds[i]].name, agents[i])
        srcs = [BEHAVIOURS[k].src for k in kinds]

        # Response codes: exactly the published share of 200, the rest by behaviour.
        codes: list[Any] = [None] * n
        ok_weight = np.where(attack, 0.08, 1.0)
        ok_rows = rng.choice(
            n,
            size=min(n, self.scaled(PUBLISHED["top"]["RESPONSE_CODE"][1])),
            replace=False,
            p=ok_weight / ok_weight.sum(),
        )
        for i in ok_rows:
            codes[i] = 200
        for i in range(n):
            if codes[i] is None:
                name = BEHAVIOURS[kinds[i]].name
                if name == "redirect_url":
                    codes[i] = 302 if rng.random() < 0.95 else 301
                elif attack[i]:
                    codes[i] = [403, 404, 400, 500, 302][min(int(rng.exponential(0.9)), 4)]
                else:
                    codes[i] = [404, 302, 304, 301, 403, 206, 500, 502][min(int(rng.exponential(1.2)), 7)]
        sizes = [int(np.clip(rng.lognormal(6.6 if not attack[i] else 6.2, 0.7), 40, 10_529_650)) for i in range(n)]
        for i in np.flatnonzero(kinds == [b.name for b in BEHAVIOURS].index("multipart_method")).tolist():
            sizes[i] = int(np.clip(rng.lognormal(8.5, 1.6), 500, 10_529_650))
        event_ids = [self.event_id() for _ in range(n)]

        # Missing values, where ML-PT's data had them (names are missing by behaviour already).
        not_get_args = np.flatnonzero(np.array([s != "REQUEST_GET_ARGS" for s in srcs]))
        for column, series, eligible in (
            ("CLIENT_IP", ips, benign_rows),
            ("CLIENT_USERAGENT", agents, np.arange(n)),
            ("REQUEST_SIZE", sizes, np.arange(n)),
            ("RESPONSE_CODE", codes, np.setdiff1d(np.arange(n), ok_rows)),
            ("MATCHED_VARIABLE_SRC", srcs, not_get_args),
            ("MATCHED_VARIABLE_VALUE", values, np.arange(n)),
            ("EVENT_ID", event_ids, np.arange(n)),
        ):
            for i in rng.choice(
                eligible, size=min(eligible.size, self.scaled(PUBLISHED["missing"][column])), replace=False
            ):
                series[i] = None
        for i in range(n):
            if agents[i] == "":
                agents[i] = None

        # Distinct counts, fitted where the behaviours leave slack.
        everyday = np.flatnonzero(
            np.isin(kinds, [i for i, b in enumerate(BEHAVIOURS) if b.name in ("get_args", "cookies", "post_args")])
        )
        names_src = {int(i): srcs[i] or BEHAVIOURS[kinds[i]].src for i in everyday}
        people = np.setdiff1d(benign_rows, top_rows)
        variants = iter(self.browser_variant(browsers[j % len(browsers)]) for j in range(10**7))
        unused = iter(browsers[400:])

        def fresh_agent(_):
            return next(unused, None) or next(variants)

        fit_cardinality(ips, self.target_distinct("CLIENT_IP"), people, lambda _: self.public_ip(), rng)
        fit_cardinality(agents, self.target_distinct("CLIENT_USERAGENT"), people, fresh_agent, rng)
        spare_codes = iter([c for c in RESPONSE_CODES if c != 200])
        fit_cardinality(
            codes,
            self.target_distinct("RESPONSE_CODE"),
            np.setdiff1d(np.arange(n), ok_rows),
            lambda _: next(spare_codes, int(rng.integers(201, 505))),
            rng,
        )
        fit_cardinality(
            names, self.target_distinct("MATCHED_VARIABLE_NAME"), everyday, lambda i: self.fresh_name(names_src[i]), rng
        )
        fit_cardinality(
            sizes, self.target_distinct("REQUEST_SIZE"), np.arange(n), lambda _: int(rng.integers(40, 200_000)), rng
        )
        # Values: a behaviour redraws its value until it is new, up to ML-PT's near-unique count.
        value_rows = np.flatnonzero(
            ~np.isin(
                kinds, [i for i, b in enumerate(BEHAVIOURS) if b.name in ("header_user_agent", "client_user_agent")]
            )
        )
        fit_cardinality(
            values,
            max(1, self.scaled(PUBLISHED["distinct_values"])),
            value_rows,
            lambda i: self.name_and_value(BEHAVIOURS[kinds[i]].name, agents[i])[1],
            rng,
        )
        fit_cardinality(event_ids, self.target_distinct("EVENT_ID"), np.arange(n), lambda _: self.event_id(), rng)

        frame = pd.DataFrame(
            {
                "CLIENT_IP": ips,
                "CLIENT_USERAGENT": agents,
                "REQUEST_SIZE": sizes,
                "RESPONSE_CODE": codes,
                "MATCHED_VARIABLE_SRC": srcs,
                "MATCHED_VARIABLE_NAME": names,
                "MATCHED_VARIABLE_VALUE": values,
                "EVENT_ID": event_ids,
            },
            columns=COLUMNS,
        )
        frame["REQUEST_SIZE"] = frame["REQUEST_SIZE"].astype("Int64")
        frame["RESPONSE_CODE"] = frame["RESPONSE_CODE"].astype("Int64")
        frame = frame.astype(object).where(frame.notna(), np.nan)
        frame["BEHAVIOUR"] = [BEHAVIOURS[k].name for k in kinds]
        return frame


def generate_events(
    rows: int = FULL_ROWS, seed: int = 0, duplicates: int | None = None, keep_behaviour: bool = False
) -> pd.DataFrame:
    """``rows`` distinct events plus ``duplicates`` repeated rows (ML-PT's raw file had 12 per 57,833)."""
    generator = EventGenerator(rows, seed)
    frame = generator.generate()
    if duplicates is None:
        duplicates = generator.scaled(PUBLISHED["duplicates"])
    if duplicates:
        repeated = frame.iloc[generator.rng.choice(len(frame), size=duplicates, replace=False)]
        frame = pd.concat([frame, repeated], ignore_index=True)
        frame = frame.iloc[generator.rng.permutation(len(frame))].reset_index(drop=True)
    return frame if keep_behaviour else frame.drop(columns="BEHAVIOUR")


def write_events_csv(frame: pd.DataFrame, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
