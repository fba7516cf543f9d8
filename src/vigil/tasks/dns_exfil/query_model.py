"""The per-query model of real tunnel traffic: trained on the shipped captures of real tools
(``captures.csv.gz``) and real benign names (``benign_names.csv.gz`` + the alice host names), on the
24 columns of :data:`~vigil.tasks.dns_exfil.features.QUERY_COLUMNS`, saved under the artifact key
:data:`QUERY_TASK`. ``POST /predict/dns`` answers query names from it when it exists.

Positives are the *data-bearing* queries of the captures (payload of 16+ bytes left of the tunnel
zone); the polls and acks of a tunnel carry nothing a per-query model can see and are left to the
per-domain view. Evaluation (``vigil dns evaluate-real``, :func:`leave_one_tool_out`): for each tool,
train without any of its queries and with the benign training sources only (the other tools
re-homed under the training zone pool), then score its queries re-homed under the held-out zone pool
(:func:`zone_pool`: no zone name in common with training) and the benign test sources (:data:`~vigil.tasks.dns_exfil.benign.TEST_SOURCES`, which no training set
holds): ROC AUC of its data-bearing queries against the benign test names, detection at the threshold,
FPR per benign source and per infrastructure kind.
"""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from vigil.boosting import bagged_lightgbm
from vigil.metrics import roc_auc
from vigil.tasks.dns_exfil.benign import TEST_SOURCES, TRAIN_SOURCES, load_benign
from vigil.tasks.dns_exfil.capture import load_captures
from vigil.tasks.dns_exfil.features import (
    MAX_WIRE_LENGTH,
    QUERY_COLUMNS,
    QueryFeatureExtractor,
    QueryName,
    parse_query_name,
)
from vigil.tasks.dns_exfil.model import with_feature_columns

QUERY_TASK = "dns_exfil_query"
QUERY_THRESHOLD = 0.5
# The captures ran under one invented zone family (*.tun.vigil-test.net, sld "vigil-test"). A model
# trained on them as captured learns that zone's *shape* (label count, sld length) instead of the
# data-bearing labels, and so would a model trained under a handful of look-alike zones. So every
# query is re-homed, one by one, under a zone drawn from a deterministic pool of realistic zone names
# of varied shape: 0-2 labels left of the registered domain, slds of 2-24 characters (words, word
# pairs, hyphens, digits, random letters), one- and two-label public suffixes. Training draws from
# :func:`zone_pool` ``("train")``; evaluation re-homes a held-out tool under ``("held-out")``, whose
# names never occur in training and whose TLDs are partly unseen there.
TRAIN_TLDS = (
    "com",
    "net",
    "org",
    "io",
    "info",
    "xyz",
    "ru",
    "de",
    "co",
    "top",
    "online",
    "me",
    "biz",
    "cc",
    "eu",
    "pw",
)
HELD_OUT_TLDS = ("co.uk", "com.br", "cloud", "site", "us", "com.au", "fr", "nl", "jp", "com", "net", "org")
ZONE_PREFIXES = (
    "t",
    "d",
    "x",
    "ns",
    "ns1",
    "dns",
    "tun",
    "api",
    "cdn",
    "s3",
    "m",
    "q",
    "r7",
    "data",
    "sync",
    "upd",
    "img",
    "a1",
    "edge",
    "v2",
)


# words a zone name of the shipped pool should not spell (the SCOWL list holds every word)
_UNWANTED = (
    "fuck",
    "shit",
    "cunt",
    "nigg",
    "fag",
    "slut",
    "whore",
    "bitch",
    "rape",
    "nazi",
    "porn",
    "sex",
    "dick",
    "cock",
    "pussy",
    "twat",
    "wank",
    "spic",
    "kike",
    "retard",
)


@lru_cache(maxsize=1)
def _word_pool(words: frozenset) -> list[str]:
    return sorted(w for w in words if 3 <= len(w) <= 9 and not any(u in w for u in _UNWANTED))


def _words(rng, n: int) -> list[str]:
    from vigil.tasks.dns_exfil.features import english_words

    pool = _word_pool(english_words())
    return [rng.choice(pool) for _ in range(n)]


def _sld(rng) -> str:
    kind = rng.random()
    if kind < 0.3:
        return _words(rng, 1)[0]
    if kind < 0.55:
        return "".join(_words(rng, 2))[:24]
    if kind < 0.7:
        return "-".join(_words(rng, 2))[:24].strip("-")
    if kind < 0.85:
        return _words(rng, 1)[0] + str(rng.randint(1, 999))
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    return rng.choice("abcdefghijklmnopqrstuvwxyz") + "".join(rng.choice(letters) for _ in range(rng.randint(1, 11)))


@lru_cache(maxsize=4)
def zone_pool(which: str = "train", size: int = 400) -> tuple[str, ...]:
    """Deterministic zone names for re-homing captures; ``"held-out"`` shares no name with ``"train"``."""
    seed, tlds = {"train": (12, TRAIN_TLDS), "held-out": (1012, HELD_OUT_TLDS)}[which]
    rng = random.Random(seed)
    other = set(zone_pool("train", size)) if which != "train" else set()
    zones: list[str] = []
    while len(zones) < size:
        prefix = rng.choices([0, 1, 2], weights=[3, 5, 2])[0]
        labels = [rng.choice(ZONE_PREFIXES) for _ in range(prefix)] + [_sld(rng), rng.choice(tlds)]
        zone = ".".join(labels)
        if zone not in other and zone not in zones:
            zones.append(zone)
    return tuple(zones)


def _rehomed(qname: str, old_zone: str, zone: str) -> str:
    """``qname`` with its ``old_zone`` labels replaced by ``zone``; payload bytes trimmed from the last
    payload labels when the name would pass 255 wire bytes (as a tool fits its payload to its zone)."""
    labels = list(parse_query_name(qname).labels[: -(old_zone.count(".") + 1)])
    new = tuple(label.encode() for label in zone.split("."))
    while labels and QueryName((*labels, *new)).wire_length > MAX_WIRE_LENGTH:
        excess = QueryName((*labels, *new)).wire_length - MAX_WIRE_LENGTH
        last = labels[-1]
        if len(last) > excess:
            labels[-1] = last[: len(last) - excess]
        else:
            labels.pop()
    return QueryName((*labels, *new)).presentation[:-1]


def rehome(captures: pd.DataFrame, pool: str | tuple[str, ...] = "train", seed: int = 0) -> pd.DataFrame:
    """Every query moved from its capture zone to a zone drawn (seeded, per query) from ``pool``."""
    zones = zone_pool(pool) if isinstance(pool, str) else pool
    rng = random.Random(seed)
    out = captures.copy()
    picked = [rng.choice(zones) for _ in range(len(out))]
    out["qname"] = [_rehomed(q, z, new) for q, z, new in zip(out.qname, out.zone, picked)]
    out["zone"] = picked
    return out


def featurize(names) -> pd.DataFrame:
    extractor = QueryFeatureExtractor.real()
    return pd.DataFrame(extractor.transform(list(names)), columns=QUERY_COLUMNS)


def make_classifier():
    return bagged_lightgbm(300, 0.05, 15, class_weight="balanced")


def training_frames(
    captures: pd.DataFrame | None = None,
    benign: pd.DataFrame | None = None,
    max_alice: int | None = 20_000,
    seed: int = 0,
):
    """(tunnel rows, benign rows) each with a ``features`` frame; alice subsampled to keep training quick."""
    captures = load_captures() if captures is None else captures
    benign = load_benign() if benign is None else benign
    if max_alice:
        alice = benign[benign.source == "alice"]
        keep = alice.sample(min(max_alice, len(alice)), random_state=seed).index
        benign = benign[(benign.source != "alice") | benign.index.isin(keep)]
    return captures.reset_index(drop=True), benign.reset_index(drop=True)


def fit(tunnel_X: pd.DataFrame, benign_X: pd.DataFrame, fit_with=None):
    """The classifier fitted on tunnel (1) and benign (0) rows; ``fit_with(estimator, X, y)`` is a
    :class:`~vigil.dask_training.DaskFitter`'s ``fit`` for training on a Dask cluster."""
    X = pd.concat([tunnel_X, benign_X], ignore_index=True)
    y = np.r_[np.ones(len(tunnel_X), int), np.zeros(len(benign_X), int)]
    if fit_with is not None:
        return fit_with(make_classifier(), X, y)
    return make_classifier().fit(X, y)


def query_pipeline(classifier) -> Pipeline:
    """What the artifact holds: the fitted classifier behind the :data:`QUERY_COLUMNS` it reads."""
    return with_feature_columns(QUERY_COLUMNS, ("model", classifier))


def train_query_model(store, captures=None, benign=None, dask: str | None = None, trainer=None) -> dict:
    """Fit on every tool's data-bearing queries and the benign training sources; save as QUERY_TASK.

    ``dask`` (``local:N`` or ``tcp://host:port``) trains the LightGBM on that Dask cluster; the
    artifact is the same plain ``LGBMClassifier`` pipeline. ``trainer``: an open
    :class:`~vigil.dask_training.DaskFitter` to use instead (one cluster for several steps).
    """
    from vigil.artifacts import data_fingerprint
    from vigil.dask_training import fitter
    from vigil.tasks.dns_exfil.features import QUERY_FEATURE_VERSION

    captures, benign = training_frames(captures, benign)
    captures = rehome(captures, "train")
    tunnel = captures[captures.data_bearing == 1]
    train_benign = benign[benign.source.isin(TRAIN_SOURCES)]
    tunnel_X, benign_X = featurize(tunnel.qname), featurize(train_benign.name)
    if trainer is not None:
        classifier, training = fit(tunnel_X, benign_X, trainer.fit), trainer.summary()
    else:
        with fitter(dask) as own:
            classifier, training = fit(tunnel_X, benign_X, own.fit), own.summary()
    X = pd.concat([tunnel_X, benign_X], ignore_index=True)
    y = np.r_[np.ones(len(tunnel_X), int), np.zeros(len(benign_X), int)]
    test = benign[benign.source.isin(TEST_SOURCES)]
    test = test.sample(min(5_000, len(test)), random_state=0)  # a check, not the evaluation (evaluate-real)
    p_test = classifier.predict_proba(featurize(test.name))[:, 1]
    metrics = {
        "benign_test_fpr": float(np.mean(p_test >= QUERY_THRESHOLD)),
        "benign_test_names": float(len(test)),
        "training_tunnel_queries": float(len(tunnel_X)),
        "training_benign_names": float(len(benign_X)),
    }
    return store.save(
        QUERY_TASK,
        query_pipeline(classifier),
        metrics=metrics,
        threshold=QUERY_THRESHOLD,
        feature_version=QUERY_FEATURE_VERSION,
        data_fingerprint=data_fingerprint(X, y),
        extra={
            "kind": "query-real",
            "selection": "all_features",
            "algorithm": "lightgbm",
            "data": "captures.csv.gz (real tools) + benign_names.csv.gz + alice hosts",
            "tools": sorted(captures.tool.unique()),
            "benign_sources": list(TRAIN_SOURCES),
            **({"training": training} if training else {}),
        },
    )


def leave_one_tool_out(captures=None, benign=None, threshold: float = QUERY_THRESHOLD, fit_with=None) -> dict:
    """Per held-out tool: AUC, detection of data-bearing (and of all) queries; benign FPR per source.
    ``fit_with``: a :class:`~vigil.dask_training.DaskFitter`'s ``fit`` (each fold on the cluster)."""
    captures, benign = training_frames(captures, benign)
    cap_X = featurize(rehome(captures, "train").qname)
    held_X = featurize(rehome(captures, "held-out", seed=1).qname)
    ben_X = featurize(benign.name)
    train_mask = benign.source.isin(TRAIN_SOURCES).to_numpy()
    test_mask = benign.source.isin(TEST_SOURCES).to_numpy()
    report: dict = {"threshold": threshold, "tools": {}, "benign_test": {}}
    worst_fpr: dict[str, float] = {}
    for tool in sorted(captures.tool.unique()):
        held = (captures.tool == tool).to_numpy()
        train_pos = (~held) & (captures.data_bearing == 1).to_numpy()
        model = fit(cap_X[train_pos], ben_X[train_mask], fit_with)
        p_tool = model.predict_proba(held_X[held])[:, 1]
        p_benign = model.predict_proba(ben_X[test_mask])[:, 1]
        bearing = (captures.data_bearing[held] == 1).to_numpy()
        y = np.r_[np.ones(bearing.sum(), int), np.zeros(len(p_benign), int)]
        auc = roc_auc(y, np.r_[p_tool[bearing], p_benign])
        per_encoding = {}
        held_rows = captures[held]
        for encoding in sorted(held_rows.encoding.unique()):
            m = (held_rows.encoding == encoding).to_numpy() & bearing
            if m.any():
                per_encoding[encoding] = {
                    "data_bearing": int(m.sum()),
                    "detected": float(np.mean(p_tool[m] >= threshold)),
                }
        report["tools"][tool] = {
            "queries": int(held.sum()),
            "data_bearing": int(bearing.sum()),
            "roc_auc": float(auc),
            "detected_data_bearing": float(np.mean(p_tool[bearing] >= threshold)) if bearing.any() else None,
            "detected_all": float(np.mean(p_tool >= threshold)),
            "benign_test_fpr": float(np.mean(p_benign >= threshold)),
            "encodings": per_encoding,
        }
        test_rows = benign[test_mask]
        for key, mask in [(s, (test_rows.source == s).to_numpy()) for s in test_rows.source.unique()] + [
            (
                f"infrastructure-test/{k}",
                ((test_rows.source == "infrastructure-test") & (test_rows.kind == k)).to_numpy(),
            )
            for k in sorted(test_rows[test_rows.source == "infrastructure-test"].kind.unique())
        ]:
            fpr = float(np.mean(p_benign[mask] >= threshold))
            worst_fpr[key] = max(worst_fpr.get(key, 0.0), fpr)
    for key in sorted(worst_fpr):
        n = int(
            (
                (benign.source == key)
                | ((benign.source == "infrastructure-test") & (("infrastructure-test/" + benign.kind) == key))
            ).sum()
        )
        report["benign_test"][key] = {"names": n, "worst_fpr_over_folds": worst_fpr[key]}
    return report


def format_report(report: dict) -> str:
    lines = [
        "| held-out tool | queries | data-bearing | ROC AUC (data-bearing vs benign test) | "
        "detected data-bearing | detected all | benign test FPR |",
        "|---|---|---|---|---|---|---|",
    ]
    for tool, r in report["tools"].items():
        lines.append(
            f"| {tool} | {r['queries']} | {r['data_bearing']} | {r['roc_auc']:.4f} | "
            f"{r['detected_data_bearing']:.3f} | {r['detected_all']:.3f} | {r['benign_test_fpr']:.4%} |"
        )
    lines += ["", "| held-out tool / encoding | data-bearing | detected |", "|---|---|---|"]
    for tool, r in report["tools"].items():
        for encoding, e in r["encodings"].items():
            lines.append(f"| {tool} / {encoding} | {e['data_bearing']} | {e['detected']:.3f} |")
    lines += ["", "| benign test source (never trained on) | names | FPR (worst fold) |", "|---|---|---|"]
    for key, r in report["benign_test"].items():
        lines.append(f"| {key} | {r['names']} | {r['worst_fpr_over_folds']:.4%} |")
    return "\n".join(lines)
