"""Why a query name was scored as it was, in words a defender reads, from the model's own contributions.

LightGBM gives, for each row, one additive contribution per feature (TreeSHAP, ``pred_contrib=True``)
and the expected value of the raw score: ``sum(contributions) + expected_value == raw score`` (the
log-odds; ``probability = 1 / (1 + exp(-raw))``). Each contribution becomes a reason::

    {"feature": "longest label", "value": 57.0, "contribution": 1.83, "text": "a label of 57 characters"}

The sentence says what the feature measured on this name; the contribution says how much it pushed
the score towards exfiltration (positive) or benign (negative). Nothing here is a second rule set:
the reasons are the model's contributions, ordered, with the feature's value put in words.

For a saved pipeline (its feature columns, a feature selection, then the classifier), the
contributions are those of the columns the classifier saw; the others took no part and contribute 0. A classifier without TreeSHAP (the
random forest alternative of ``vigil dns train``) gives no reasons (``explain`` returns None).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _n(v) -> str:
    return f"{v:.0f}"


def _plural(v, one: str, many: str) -> str:
    return f"{_n(v)} {one if round(v) == 1 else many}"


# column -> (human name, sentence from the value)
DESCRIPTIONS = {
    "FQDN_count": ("name length", lambda v: f"a name of {_n(v)} characters"),
    "subdomain_length": ("subdomain length", lambda v: f"{_n(v)} characters left of the registered domain"),
    "upper": ("upper-case letters", lambda v: _plural(v, "upper-case letter", "upper-case letters")),
    "lower": ("lower-case letters", lambda v: _plural(v, "lower-case letter", "lower-case letters")),
    "numeric": ("digits", lambda v: _plural(v, "digit", "digits")),
    "entropy": ("name entropy", lambda v: f"{v:.1f} bits/char over the whole name"),
    "special": (
        "special characters",
        lambda v: _plural(v, "dot, hyphen or other symbol", "dots, hyphens or other symbols"),
    ),
    "labels": ("labels", lambda v: _plural(v, "label", "labels")),
    "labels_max": ("longest label", lambda v: f"a label of {_n(v)} characters"),
    "labels_average": ("mean label length", lambda v: f"labels of {v:.1f} characters on average"),
    "longest_word": (
        "longest English word",
        lambda v: "no English word of 2+ letters" if v == 0 else f"longest English word of {_n(v)} letters",
    ),
    "sld": ("registered label length", lambda v: f"a registered-domain label of {_n(v)} characters"),
    "len": ("subdomain and sld length", lambda v: f"{_n(v)} characters of subdomain and registered label"),
    "subdomain": ("has a subdomain", lambda v: "a subdomain left of the registered domain" if v else "no subdomain"),
    "wire_length": ("wire length", lambda v: f"{_n(v)} bytes on the wire"),
    "eight_bit": (
        "8-bit bytes",
        lambda v: "no 8-bit byte" if v == 0 else f"{_plural(v, '8-bit byte', '8-bit bytes')} in a label",
    ),
    "non_hostname": (
        "non-hostname characters",
        lambda v: "only host-name characters"
        if v == 0
        else f"{_plural(v, 'character', 'characters')} no host name uses (/ + = ...)",
    ),
    "sub_labels": ("subdomain labels", lambda v: _plural(v, "label in the subdomain", "labels in the subdomain")),
    "sub_entropy": ("subdomain entropy", lambda v: f"{v:.1f} bits/char in the subdomain"),
    "sub_digit_ratio": ("subdomain digit share", lambda v: f"{v:.0%} of the subdomain is digits"),
    "sub_upper_ratio": ("subdomain upper-case share", lambda v: f"{v:.0%} of the subdomain's letters are upper case"),
    "case_switches": (
        "case switches",
        lambda v: "no switch between upper and lower case"
        if v == 0
        else f"{_plural(v, 'switch', 'switches')} between upper and lower case (base64 mixes case)",
    ),
    "sub_vowel_ratio": ("subdomain vowel share", lambda v: f"{v:.0%} of the subdomain's letters are vowels"),
    "max_consonant_run": ("consonant run", lambda v: _plural(v, "consonant in a row", "consonants in a row")),
}


def _booster_and_matrix(pipeline, frame: pd.DataFrame):
    """(the LightGBM estimator, the matrix it sees, the frame columns it sees) or None."""
    steps = getattr(pipeline, "steps", None)
    model, X, columns = pipeline, frame, list(frame.columns)
    if steps:
        model = steps[-1][1]
        for _, step in steps[:-1]:
            names = list(step.get_feature_names_out(columns)) if hasattr(step, "get_feature_names_out") else None
            X = step.transform(X)
            columns = names if names is not None else columns
    if not hasattr(model, "booster_"):
        return None
    return model, X, [str(c) for c in columns]


def contributions(pipeline, frame: pd.DataFrame):
    """(contributions: n x len(frame.columns), expected values: n, raw scores: n) or None.

    The model's own TreeSHAP values, expanded to every column of ``frame`` (0 for the columns a
    feature selection left out)."""
    found = _booster_and_matrix(pipeline, frame)
    if found is None:
        return None
    model, X, seen = found
    values = np.asarray(model.predict(X, pred_contrib=True), dtype=float)
    raw = np.asarray(model.predict(X, raw_score=True), dtype=float)
    full = np.zeros((len(frame), len(frame.columns)))
    index = {c: i for i, c in enumerate(frame.columns)}
    for j, column in enumerate(seen):
        full[:, index[column]] = values[:, j]
    return full, values[:, -1], raw


def reasons(frame: pd.DataFrame, contrib: np.ndarray, row: int, top: int, positive_only: bool) -> list[dict]:
    """The ``top`` reasons of one row, largest contribution first (towards exfiltration when
    ``positive_only``, else by absolute size)."""
    values = contrib[row]
    order = np.argsort(-values if positive_only else -np.abs(values), kind="stable")
    out = []
    for j in order[:top]:
        if positive_only and values[j] <= 0:
            break
        column = frame.columns[j]
        value = float(frame.iat[row, j])
        name, sentence = DESCRIPTIONS.get(column, (column, lambda v, c=column: f"{c} = {v:g}"))
        out.append(
            {
                "feature": name,
                "value": round(value, 4),
                "contribution": round(float(values[j]), 4),
                "text": sentence(value),
            }
        )
    return out


def explain(pipeline, frame: pd.DataFrame, flagged: list[bool], top: int | None) -> list[list[dict]] | None:
    """Per row: its reasons (``top`` by absolute contribution for every row when ``top`` is given;
    else the 3 strongest towards exfiltration for flagged rows, none for the others); None when the
    model gives no contributions."""
    found = contributions(pipeline, frame)
    if found is None:
        return None
    contrib = found[0]
    return [
        reasons(frame, contrib, i, top, positive_only=False)
        if top
        else (reasons(frame, contrib, i, 3, positive_only=True) if is_flagged else [])
        for i, is_flagged in enumerate(flagged)
    ]


MAX_EXPLAIN = 20  # as the service's ?explain=N (vigil.service.predict.explain_count)


def explain_top(args: dict) -> int | None:
    """``?explain=N`` read as the service reads it for every task: absent or 0, None; alone (or
    ``true``), 3; a whole number up to 20, that number; anything else a 400 naming the parameter
    (the service refuses it first; this is the same rule for a caller without the service)."""
    import re

    from vigil.errors import InvalidInput

    raw = (args or {}).get("explain")
    if raw is None:
        return None
    text = str(raw).strip().lower()
    if text in ("", "true", "yes"):
        return 3
    if re.fullmatch(r"[0-9]{1,3}", text) and int(text) <= MAX_EXPLAIN:
        return int(text) or None
    raise InvalidInput(
        f"explain must be a whole number from 0 to {MAX_EXPLAIN}, got {text[:20]!r}",
        {"field": "explain", "message": f"a whole number from 0 to {MAX_EXPLAIN}"},
    )


def explain_rows(pipeline, frame: pd.DataFrame, flagged, top: int | None) -> list:
    """:func:`explain`, or one ``None`` per row when the model gives no contributions."""
    found = explain(pipeline, frame, [bool(f) for f in flagged], top) if len(frame) else []
    return found if found is not None else [None] * len(frame)
