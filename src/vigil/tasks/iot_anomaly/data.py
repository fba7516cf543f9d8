"""Readers for the object-size tables of ychalier/anomaly, and the random "odd" points.

Every reader returns a DataFrame with the columns ``class`` (str), ``length`` and ``width``
(float, millimetres). Files are accepted in the formats the original loader read:

- humans: ``body.csv`` (``;``, decimal comma, ``shoulder.girth`` / ``chest.girth`` in cm) or the
  openintro ``bdims`` table (``,``, ``sho_gi`` / ``che_gi``); shoulder girth is the width and chest
  girth the length, as in the original loader;
- motorbikes: motocicliste.net (``LARGHEZZA (mm)`` / ``LUNGHEZZA (mm)``) or Teoalida
  (``Overall length (mm)`` / ``Overall width (mm)``, thousands separated by spaces); lengths of
  10 m and more are dropped (one 20,026 mm entry in the shipped table is a typo);
- cars: Teoalida ``CQA_Premium.csv`` (``model_length_mm`` / ``model_width_mm``, widths of 3 m and
  more dropped as in the original) or MASS ``Cars93`` (``Length`` / ``Width`` in inches).

Example::

    >>> objects = load_objects(Path("data/iot_anomaly"))
    >>> odd = OddPointBox.around(objects).sample(objects["class"].unique(), 1000, seed=0)
    >>> len(objects), len(odd)
    (699, 1000)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.errors import InvalidInput
from vigil.files import read_csv_checked

COLUMNS = ["class", "length", "width"]
HUMAN, MOTO, CAR = "human", "moto", "car"

MOTO_MAX_LENGTH_MM = 10_000
CAR_MAX_WIDTH_MM = 3_000
INCH_MM = 25.4

# Shipped file names, in class order; any that is missing is skipped.
DEFAULT_FILES = {HUMAN: "body.csv", MOTO: "db_moto.csv", CAR: "cars93.csv"}


def parse_number(value) -> float:
    """``"1 990"``, ``"106,2"``, ``106.2`` -> float; empty or unparsable -> NaN."""
    if value is None:
        return float("nan")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    text = re.sub(r"[\s\u00a0]", "", str(value)).replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return float("nan")


def read_table(path: Path | str) -> pd.DataFrame:
    """Read a CSV as strings, guessing ``;`` or ``,`` from the header line."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"table not found: {path}")
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        header = handle.readline()
    separator = ";" if header.count(";") >= header.count(",") and ";" in header else ","
    return read_csv_checked(path, what="table", sep=separator, dtype=str, keep_default_na=False)


def _pick(frame: pd.DataFrame, path: Path, *alternatives: tuple[str, str]) -> tuple[str, str]:
    for pair in alternatives:
        if all(name in frame.columns for name in pair):
            return pair
    raise InvalidInput(
        f"{path.name}: none of the expected column pairs found",
        {"expected": alternatives, "found": list(frame.columns)},
    )


def _sizes(frame: pd.DataFrame, length_col: str, width_col: str, label: str, scale: float = 1.0) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "class": label,
            "length": frame[length_col].map(parse_number) * scale,
            "width": frame[width_col].map(parse_number) * scale,
        }
    )
    return out.dropna().reset_index(drop=True)


def read_humans(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    frame = read_table(path)
    width_col, length_col = _pick(frame, path, ("shoulder.girth", "chest.girth"), ("sho_gi", "che_gi"))
    return _sizes(frame, length_col, width_col, HUMAN, scale=10.0)  # cm -> mm


def read_motorbikes(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    frame = read_table(path)
    width_col, length_col = _pick(
        frame, path, ("LARGHEZZA (mm)", "LUNGHEZZA (mm)"), ("Overall width (mm)", "Overall length (mm)")
    )
    sizes = _sizes(frame, length_col, width_col, MOTO)
    return sizes[sizes["length"] < MOTO_MAX_LENGTH_MM].reset_index(drop=True)


def read_cars(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    frame = read_table(path)
    width_col, length_col = _pick(frame, path, ("model_width_mm", "model_length_mm"), ("Width", "Length"))
    scale = INCH_MM if width_col == "Width" else 1.0
    sizes = _sizes(frame, length_col, width_col, CAR, scale=scale)
    return sizes[sizes["width"] < CAR_MAX_WIDTH_MM].reset_index(drop=True)


READERS = {HUMAN: read_humans, MOTO: read_motorbikes, CAR: read_cars}


def load_objects(folder: Path | str, files: dict[str, str] | None = None) -> pd.DataFrame:
    """All real objects found in ``folder`` (class, length, width in mm), classes in file order."""
    folder = Path(folder)
    frames = []
    for label, name in (files or DEFAULT_FILES).items():
        path = folder / name
        if path.is_file():
            frames.append(READERS[label](path))
    if not frames:
        raise InvalidInput(f"no object tables found in {folder}", {"expected": list((files or DEFAULT_FILES).values())})
    return pd.concat(frames, ignore_index=True)[COLUMNS]


@dataclass(frozen=True)
class OddPointBox:
    """Where odd points are drawn: integers, uniform on [0, max_length] x [0, max_width] (mm).

    As in the original, the box starts at 0 and ends 1 mm past the largest real object, and the
    class of each odd point is drawn uniformly among the real classes. Odd points therefore also
    land inside the real clusters now and then (label noise the detector cannot undo).
    """

    max_length: int
    max_width: int

    @classmethod
    def around(cls, objects: pd.DataFrame) -> "OddPointBox":
        return cls(
            max_length=int(np.ceil(objects["length"].max())) + 1, max_width=int(np.ceil(objects["width"].max())) + 1
        )

    def sample(self, classes, count: int, seed: int | None = 0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        classes = list(classes)
        return pd.DataFrame(
            {
                "class": rng.choice(classes, size=count) if classes else [],
                "length": rng.integers(0, self.max_length, size=count, endpoint=True).astype(float),
                "width": rng.integers(0, self.max_width, size=count, endpoint=True).astype(float),
            }
        )

    def as_dict(self) -> dict:
        return {"length_mm": [0, self.max_length], "width_mm": [0, self.max_width]}
