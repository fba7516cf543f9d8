"""Kaggle "Catch Me If You Can" files, Alice's raw log, and the labelled set built from them.

Kaggle's session format (train_sessions.csv / test_sessions.csv)::

    session_id, site1, time1, ..., site10, time10[, target]

Up to 10 visits per session, the missing ones empty; a session never spans more than 30 minutes
from its first visit (the real test file's longest span is exactly 1800 s), target 1 = Alice.

The labelled train file is not obtainable here, so :func:`build_labelled_set` rebuilds one:
Alice's raw log cut into sessions with Kaggle's rule (positives) and the real Kaggle test sessions
(negatives; about 1% of those are Alice herself, so a few "negatives" are mislabelled).
Alice's log (2013-02 .. 2014-04) predates the test sessions (2014-05 .. 2014-12); to keep the
calendar period from giving the label away, :func:`shift_into_period` moves each of Alice's weeks
by a whole number of weeks into the negatives' period, keeping weekday and time of day, in order.

Example::

    >>> alice = read_alice_log("data/web_sessions/Alice_log.csv")
    >>> others = read_sessions("data/web_sessions/test_sessions.csv.gz")
    >>> labelled = build_labelled_set(alice, others, read_site_dic("data/web_sessions/site_dic.csv.gz"))
    >>> labelled["target"].value_counts().sort_index().to_dict()  # the shipped slices: 452 sessions of Alice's
    {0: 4000, 1: 452}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vigil.errors import InvalidInput
from vigil.files import read_csv_checked
from vigil.safe_pickle import loads_data

N_SITES = 10
MAX_SESSION_SECONDS = 30 * 60
SITE_COLUMNS = [f"site{i}" for i in range(1, N_SITES + 1)]
TIME_COLUMNS = [f"time{i}" for i in range(1, N_SITES + 1)]
SESSION_COLUMNS = [column for pair in zip(SITE_COLUMNS, TIME_COLUMNS) for column in pair]
WEEK = pd.Timedelta(weeks=1)
MAX_SITES = 10_000_000  # Kaggle's site_dic.pkl holds 48,371 sites

# File names in a source folder: the full Kaggle/Cheppyk files, or the slices shipped in data/.
ALICE_LOG_NAMES = ("Alice_log.csv", "Alice_log.csv.gz")
TEST_SESSIONS_NAMES = ("test_sessions.csv", "test_sessions.csv.gz")
SITE_DIC_NAMES = ("site_dic.pkl", "site_dic.csv.gz", "site_dic.csv")


def find_file(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise InvalidInput(f"none of {', '.join(names)} found in {folder}", str(folder))


# -- readers --------------------------------------------------------------------------------------
def read_sessions(path: Path | str) -> pd.DataFrame:
    """Read a Kaggle session file; sites stay nullable integers, times become datetimes."""
    frame = read_csv_checked(path, ["session_id", *SESSION_COLUMNS], what="session file")
    for column in SESSION_COLUMNS:
        given = frame[column].notna() & (frame[column].astype(str).str.strip() != "")
        if column.startswith("site"):
            converted = pd.to_numeric(frame[column], errors="coerce")
        else:
            converted = pd.to_datetime(frame[column], errors="coerce", format="mixed")
        bad = frame.index[given & converted.isna()]
        if len(bad):
            kind = "a site id" if column.startswith("site") else "a time"
            raise InvalidInput(
                f"{path}: row {int(bad[0])} {column} is not {kind}",
                {"index": int(bad[0]), "field": column, "value": str(frame.at[bad[0], column])},
            )
        frame[column] = converted.astype("Int64") if column.startswith("site") else converted
    bad = frame.index[frame["site1"].isna() | frame["time1"].isna()]
    if len(bad):
        raise InvalidInput(
            f"{path}: session without a first site or time", {"index": int(bad[0]), "field": "site1/time1"}
        )
    if "target" in frame.columns:
        frame["target"] = pd.to_numeric(frame["target"], errors="raise").astype(int)
    return frame


def read_alice_log(path: Path | str) -> pd.DataFrame:
    """Alice's raw log: one visit a row, columns timestamp, site (a site name)."""
    log = read_csv_checked(path, ["timestamp", "site"], what="log file")
    log["timestamp"] = pd.to_datetime(log["timestamp"])
    return log.sort_values("timestamp", kind="stable").reset_index(drop=True)


def read_site_dic(path: Path | str) -> dict[str, int]:
    """Site name -> id, from Kaggle's site_dic.pkl or the compact CSV (site,id) shipped in data/."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no such site dictionary: {path}", {"path": str(path)})
    if path.suffix == ".pkl":
        # Kaggle's file is a plain dict of str -> int: nothing in it may name a global.
        mapping = loads_data(path.read_bytes(), max_items=MAX_SITES, numpy=False)
        if not isinstance(mapping, dict):
            raise InvalidInput(f"{path} is not a dict of site name -> id", type(mapping).__name__)
        return {str(k): int(v) for k, v in mapping.items()}
    frame = read_csv_checked(path, ["site", "id"], what="site dictionary", keep_default_na=False)
    return dict(zip(frame["site"].astype(str), frame["id"].astype(int)))


def write_site_dic(mapping: dict[str, int], path: Path | str) -> None:
    frame = pd.DataFrame(sorted(mapping.items(), key=lambda kv: kv[1]), columns=["site", "id"])
    frame.to_csv(path, index=False)


# -- sessions from a raw log ----------------------------------------------------------------------
def sessionize(times: pd.Series, sites: pd.Series) -> pd.DataFrame:
    """Cut one user's time-ordered visits into Kaggle sessions: at most 10 visits, at most 30 minutes
    from the session's first visit (the rule the real Kaggle files follow)."""
    seconds = times.to_numpy(dtype="datetime64[s]").astype(np.int64)
    rows: list = []
    current: list = []
    start_second = None
    for site, time, second in zip(sites, times, seconds):
        if current and (len(current) == 2 * N_SITES or second - start_second > MAX_SESSION_SECONDS):
            rows.append(current)
            current = []
        if not current:
            start_second = second
        current.extend([site, time])
    if current:
        rows.append(current)
    frame = pd.DataFrame([row + [pd.NA, pd.NaT] * (N_SITES - len(row) // 2) for row in rows], columns=SESSION_COLUMNS)
    for column in SITE_COLUMNS:
        frame[column] = frame[column].astype("Int64")
    for column in TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column])
    return frame


def log_to_sessions(log: pd.DataFrame, site_dic: dict[str, int]) -> pd.DataFrame:
    ids = log["site"].map(site_dic)
    if ids.isna().any():
        unknown = log.loc[ids.isna(), "site"].iloc[0]
        raise InvalidInput("site in the log is missing from the site dictionary", {"site": unknown})
    return sessionize(log["timestamp"], ids.astype(int))


# -- removing the calendar-period leak ------------------------------------------------------------
def _week_start(times: pd.Series) -> pd.Series:
    return times.dt.normalize() - pd.to_timedelta(times.dt.day_of_week, unit="D")


def shift_into_period(sessions: pd.DataFrame, period_start: pd.Timestamp, period_end: pd.Timestamp) -> pd.DataFrame:
    """Move each calendar week of ``sessions`` by whole weeks into [period_start, period_end].

    The k-th of the N weeks that hold sessions goes to the round(k (M-1)/(N-1))-th of the M weeks
    of the target period: order is kept, weekday and time of day too, and with N <= M no two
    weeks land on the same week. A session moves with the week it starts in, so none is split.
    """
    sessions = sessions.copy()
    week = _week_start(sessions["time1"])
    source_weeks = np.sort(week.unique())
    # only whole weeks inside the period, so no moved session lands before or after every other one
    first_target = _week_start(pd.Series([pd.Timestamp(period_start) - pd.Timedelta(microseconds=1)])).iloc[0] + WEEK
    last_target = _week_start(pd.Series([pd.Timestamp(period_end) + pd.Timedelta(days=1)])).iloc[0] - WEEK
    if last_target < first_target:
        raise InvalidInput(
            "the other sessions span less than one whole week; cannot place Alice's weeks in it",
            {"period": [str(period_start), str(period_end)]},
        )
    n_target = int((last_target - first_target) / WEEK) + 1
    n_source = len(source_weeks)
    positions = (
        np.zeros(n_source, dtype=int)
        if n_source == 1
        else np.round(np.arange(n_source) * (n_target - 1) / (n_source - 1)).astype(int)
    )
    target_of = {pd.Timestamp(w): first_target + int(p) * WEEK for w, p in zip(source_weeks, positions)}
    offset = week.map(lambda w: target_of[pd.Timestamp(w)] - pd.Timestamp(w))
    for column in TIME_COLUMNS:
        sessions[column] = sessions[column] + offset
    sessions["weeks_shifted"] = (offset / WEEK).astype(int)
    return sessions


def build_labelled_set(alice_log: pd.DataFrame, other_sessions: pd.DataFrame, site_dic: dict[str, int]) -> pd.DataFrame:
    """Alice's sessions (target 1), moved into the others' period, plus the others (target 0),
    in Kaggle's train format, sorted by start time, session_id renumbered in that order.

    Column ``source`` says where a row came from ("alice_log" / "kaggle_test" with its original id).
    """
    alice = log_to_sessions(alice_log, site_dic)
    alice = shift_into_period(alice, other_sessions["time1"].min(), other_sessions["time1"].max())
    alice["target"] = 1
    alice["source"] = "alice_log"
    others = other_sessions[SESSION_COLUMNS].copy()
    others["weeks_shifted"] = 0
    others["target"] = 0
    others["source"] = "kaggle_test:" + other_sessions["session_id"].astype(str)
    labelled = pd.concat([alice, others], ignore_index=True)
    labelled = labelled.sort_values(["time1", "source"], kind="stable").reset_index(drop=True)
    labelled.insert(0, "session_id", np.arange(1, len(labelled) + 1))
    return labelled[["session_id", *SESSION_COLUMNS, "target", "source", "weeks_shifted"]]


def time_split(frame: pd.DataFrame, test_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earlier sessions for training, the last ``test_fraction`` (by start time) held out."""
    if not 0 < test_fraction < 1:
        raise InvalidInput("test fraction must be between 0 and 1", {"test_fraction": test_fraction})
    ordered = frame.sort_values("time1", kind="stable").reset_index(drop=True)
    cut = int(round(len(ordered) * (1 - test_fraction)))
    return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)
