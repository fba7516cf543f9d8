"""Turn ``/predict/web-sessions`` JSON into session rows, naming the session and field at fault.

Accepted bodies: one session, a list of sessions, or ``{"sessions": [...]}``. A session is either

* ``{"sites": [29, "vk.com", ...], "times": ["2014-10-04 11:19:53", ...]}`` (1..10 visits), or
* Kaggle's flat row ``{"site1": 29, "time1": "2014-10-04 11:19:53", ..., "site10": ..., "time10": ...}``
  (the course API's flat JSON; trailing visits may be missing or null).

Sites are ids (integers or digit strings) or names; names go through the site dictionary, and a
name it does not know stays a distinct, unseen site. Times are ISO-8601 strings, in visit order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from vigil.errors import InvalidInput, too_many_rows
from vigil.tasks.web_sessions.data import N_SITES, SESSION_COLUMNS, SITE_COLUMNS, TIME_COLUMNS

UNKNOWN_PREFIX = "?"  # token prefix for names missing from the site dictionary: never in the vocabulary


def session_list(body: Any) -> list:
    if isinstance(body, dict) and "sessions" in body:
        body = body["sessions"]
        if not isinstance(body, list):
            raise InvalidInput("'sessions' must be a list of sessions", {"field": "sessions"})
    elif isinstance(body, dict):
        body = [body]
    if not isinstance(body, list):
        raise InvalidInput(
            'body must be a session object, a list of sessions, or {"sessions": [...]}',
            {"field": "body", "value": type(body).__name__},
        )
    if not body:
        raise InvalidInput("no sessions given", {"field": "sessions"})
    return body


def _visits(session: Any, index: int) -> tuple[list, list]:
    if not isinstance(session, dict):
        raise InvalidInput(
            f"session {index} must be a JSON object", {"index": index, "field": None, "value": type(session).__name__}
        )
    if "sites" in session or "times" in session:
        sites, times = session.get("sites"), session.get("times")
        for field, value in (("sites", sites), ("times", times)):
            if not isinstance(value, list):
                raise InvalidInput(f"session {index}: '{field}' must be a list", {"index": index, "field": field})
        if len(sites) != len(times):
            raise InvalidInput(
                f"session {index}: {len(sites)} sites but {len(times)} times", {"index": index, "field": "times"}
            )
        return sites, times
    flat_keys = [k for k in session if k in SITE_COLUMNS or k in TIME_COLUMNS or k == "session_id"]
    if not flat_keys:
        raise InvalidInput(
            f"session {index} needs 'sites' and 'times' lists, or site1/time1 ... site10/time10",
            {"index": index, "field": "sites"},
        )
    sites, times = [], []
    for position in range(1, N_SITES + 1):
        site, time = session.get(f"site{position}"), session.get(f"time{position}")
        if site in (None, "", 0) and time in (None, ""):
            continue
        if len(sites) != position - 1:
            raise InvalidInput(
                f"session {index}: site{position} follows a missing visit",
                {"index": index, "field": f"site{position}"},
            )
        sites.append(site)
        times.append(time)
    return sites, times


def site_token(value: Any, site_ids: Mapping[str, int], index: int, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidInput(
            f"session {index}: {field} must be a site id or a site name",
            {"index": index, "field": field, "value": value},
        )
    if isinstance(value, int) or value.strip().isdigit():
        number = int(value)
        if number < 1:
            raise InvalidInput(f"session {index}: {field} is not a valid site id", {"index": index, "field": field})
        return str(number)
    name = value.strip().lower()
    if "://" in name:
        name = urlsplit(name).hostname or name
    if not name:
        raise InvalidInput(f"session {index}: {field} is empty", {"index": index, "field": field})
    known = site_ids.get(name)
    return str(known) if known is not None else UNKNOWN_PREFIX + name


def parse_time(value: Any, index: int, field: str) -> pd.Timestamp:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            f'session {index}: {field} must be an ISO time string like "2014-10-04 11:19:53"',
            {"index": index, "field": field, "value": value},
        )
    try:
        stamp = pd.Timestamp(value.strip())
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"session {index}: {field} is not a valid time", {"index": index, "field": field, "value": value}
        ) from exc
    if pd.isna(stamp):
        raise InvalidInput(f"session {index}: {field} is not a valid time", {"index": index, "field": field})
    # Kaggle's times are local wall-clock times: keep the wall clock, drop the zone
    return stamp.tz_localize(None) if stamp.tzinfo is not None else stamp


def sessions_frame(body: Any, site_ids: Mapping[str, int], max_rows: int) -> pd.DataFrame:
    """Every session of ``body`` as one row in Kaggle's layout, or :class:`InvalidInput` for the first bad one."""
    sessions = session_list(body)
    if len(sessions) > max_rows:
        raise too_many_rows(len(sessions), max_rows, "sessions")  # 413, as every task's row limit
    rows = []
    for index, session in enumerate(sessions):
        sites, times = _visits(session, index)
        if not 1 <= len(sites) <= N_SITES:
            raise InvalidInput(
                f"session {index} has {len(sites)} visits; a session has 1 to {N_SITES}",
                {"index": index, "field": "sites"},
            )
        tokens = [site_token(site, site_ids, index, f"sites[{i}]") for i, site in enumerate(sites)]
        stamps = [parse_time(time, index, f"times[{i}]") for i, time in enumerate(times)]
        for i in range(1, len(stamps)):
            if stamps[i] < stamps[i - 1]:
                raise InvalidInput(
                    f"session {index}: times[{i}] is earlier than times[{i - 1}]; list visits in order",
                    {"index": index, "field": f"times[{i}]"},
                )
        row = []
        for position in range(N_SITES):
            row.extend([tokens[position], stamps[position]] if position < len(tokens) else [None, pd.NaT])
        rows.append(row)
    frame = pd.DataFrame(rows, columns=SESSION_COLUMNS)
    for column in TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column])
    return frame
