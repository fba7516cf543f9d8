"""The per-query model of real tunnel traffic: trained on the shipped captures of real tools
(``captures.csv.gz``) and real benign names (``benign_names.csv.gz`` + the alice host names), on the
24 columns of :data:`~vigil.tasks.dns_exfil.features.QUERY_COLUMNS`, saved under the artifact key
:data:`QUERY_TASK`. ``POST /predict/dns`` answers query names from it when it exists.

Positives are the *data-bearing* queries of the captures (payload of 16+ bytes left of the tunnel
zone); the polls and acks of a tunnel carry nothing a per-query model can see and are left to the
per-domain view. Evaluation (``vigil dns evaluate-real``, :func:`leave_one_tool_out`): for each tool,
train without any of its queries and with the benign training sources only, then score its queries
and the benign test sources (:data:`~vigil.tasks.dns_exfil.benign.TEST_SOURCES`, which no training set
holds): ROC AUC of its data-bearing queries against the benign test names, detection at the threshold,
FPR per benign source and per infrastructure kind.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from vigil.tasks.dns_exfil.benign import TEST_SOURCES, TRAIN_SOURCES, load_benign
from vigil.tasks.dns_exfil.capture import load_captures
from vigil.tasks.dns_exfil.features import QUERY_COLUMNS, QueryFeatureExtractor

QUERY_TASK = "dns_exfil_query"
QUERY_THRESHOLD = 0.5
# The captures ran under one invented zone family (*.tun.vigil-test.net); so that no model can learn
# "this registered domain is a tunnel", each tool's queries are moved under a zone of its own for
# training, and a held-out tool under a zone no training row has.
# (All 20 characters long, like the capture zones, so no name grows past 255 wire bytes.)
TRAINING_ZONES = ("t.cdnedgesyncsvc.com", "q.apimetricshubs.net", "x.staticfilecdnx.org", "a.telemetryhubio.com",
                  "u.mailsvcrelayer.net", "r.updatecheckers.com", "z.cloudassetsdev.org")
HELD_OUT_ZONE = "d.imgcacheprodxy.com"


def rezone(captures: pd.DataFrame, zones: dict[str, str]) -> pd.DataFrame:
    """Move each tool's queries from its capture zone to ``zones[tool]`` (payload labels unchanged)."""
    out = captures.copy()
    for tool, zone in zones.items():
        m = out.tool == tool
        out.loc[m, "qname"] = [q[:len(q) - len(z)] + zone for q, z in zip(out.qname[m], out.zone[m])]
        out.loc[m, "zone"] = zone
    return out


def _training_zones(tools) -> dict[str, str]:
    return {tool: TRAINING_ZONES[i % len(TRAINING_ZONES)] for i, tool in enumerate(sorted(tools))}


def featurize(names) -> pd.DataFrame:
    extractor = QueryFeatureExtractor.real()
    return pd.DataFrame(extractor.transform(list(names)), columns=QUERY_COLUMNS)


def make_classifier():
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=15, min_child_samples=20,
                          subsample=0.8, subsample_freq=1, colsample_bytree=0.8, class_weight="balanced",
                          random_state=0, n_jobs=1, verbose=-1)


def training_frames(captures: pd.DataFrame | None = None, benign: pd.DataFrame | None = None,
                    max_alice: int | None = 20_000, seed: int = 0):
    """(tunnel rows, benign rows) each with a ``features`` frame; alice subsampled to keep training quick."""
    captures = load_captures() if captures is None else captures
    benign = load_benign() if benign is None else benign
    if max_alice:
        alice = benign[benign.source == "alice"]
        keep = alice.sample(min(max_alice, len(alice)), random_state=seed).index
        benign = benign[(benign.source != "alice") | benign.index.isin(keep)]
    return captures.reset_index(drop=True), benign.reset_index(drop=True)


def fit(tunnel_X: pd.DataFrame, benign_X: pd.DataFrame):
    X = pd.concat([tunnel_X, benign_X], ignore_index=True)
    y = np.r_[np.ones(len(tunnel_X), int), np.zeros(len(benign_X), int)]
    return make_classifier().fit(X, y)


def make_bundle(classifier, metrics: dict | None = None) -> dict:
    return {"pipeline": classifier, "feature_columns": list(QUERY_COLUMNS), "threshold": QUERY_THRESHOLD,
            "selection": "all_features", "algorithm": "lightgbm", "kind": "query-real",
            "data": "captures.csv.gz (real tools) + benign_names.csv.gz + alice hosts"}


def train_query_model(store, captures=None, benign=None) -> dict:
    """Fit on every tool's data-bearing queries and the benign training sources; save as QUERY_TASK."""
    from vigil.artifacts import data_fingerprint
    from vigil.tasks.dns_exfil.features import QUERY_FEATURE_VERSION

    captures, benign = training_frames(captures, benign)
    captures = rezone(captures, _training_zones(captures.tool.unique()))
    tunnel = captures[captures.data_bearing == 1]
    train_benign = benign[benign.source.isin(TRAIN_SOURCES)]
    tunnel_X, benign_X = featurize(tunnel.qname), featurize(train_benign.name)
    classifier = fit(tunnel_X, benign_X)
    X = pd.concat([tunnel_X, benign_X], ignore_index=True)
    y = np.r_[np.ones(len(tunnel_X), int), np.zeros(len(benign_X), int)]
    test = benign[benign.source.isin(TEST_SOURCES)]
    p_test = classifier.predict_proba(featurize(test.name))[:, 1]
    metrics = {"benign_test_fpr": float(np.mean(p_test >= QUERY_THRESHOLD)),
               "training_tunnel_queries": float(len(tunnel_X)), "training_benign_names": float(len(benign_X))}
    return store.save(QUERY_TASK, make_bundle(classifier), metrics=metrics, threshold=QUERY_THRESHOLD,
                      feature_version=QUERY_FEATURE_VERSION, data_fingerprint=data_fingerprint(X, y),
                      extra={"kind": "query-real", "tools": sorted(captures.tool.unique()),
                             "benign_sources": list(TRAIN_SOURCES)})


def leave_one_tool_out(captures=None, benign=None, threshold: float = QUERY_THRESHOLD) -> dict:
    """Per held-out tool: AUC, detection of data-bearing (and of all) queries; benign FPR per source."""
    captures, benign = training_frames(captures, benign)
    tools = sorted(captures.tool.unique())
    zones = _training_zones(tools)
    cap_X = featurize(rezone(captures, zones).qname)
    held_X = featurize(rezone(captures, {t: HELD_OUT_ZONE for t in tools}).qname)
    ben_X = featurize(benign.name)
    train_mask = benign.source.isin(TRAIN_SOURCES).to_numpy()
    test_mask = benign.source.isin(TEST_SOURCES).to_numpy()
    report = {"threshold": threshold, "tools": {}, "benign_test": {}}
    worst_fpr: dict[str, float] = {}
    for tool in sorted(captures.tool.unique()):
        held = (captures.tool == tool).to_numpy()
        train_pos = (~held) & (captures.data_bearing == 1).to_numpy()
        model = fit(cap_X[train_pos], ben_X[train_mask])
        p_tool = model.predict_proba(held_X[held])[:, 1]
        p_benign = model.predict_proba(ben_X[test_mask])[:, 1]
        bearing = (captures.data_bearing[held] == 1).to_numpy()
        y = np.r_[np.ones(bearing.sum(), int), np.zeros(len(p_benign), int)]
        auc = roc_auc_score(y, np.r_[p_tool[bearing], p_benign]) if bearing.any() else float("nan")
        per_encoding = {}
        held_rows = captures[held]
        for encoding in sorted(held_rows.encoding.unique()):
            m = (held_rows.encoding == encoding).to_numpy() & bearing
            if m.any():
                per_encoding[encoding] = {"data_bearing": int(m.sum()),
                                          "detected": float(np.mean(p_tool[m] >= threshold))}
        report["tools"][tool] = {
            "queries": int(held.sum()), "data_bearing": int(bearing.sum()), "roc_auc": float(auc),
            "detected_data_bearing": float(np.mean(p_tool[bearing] >= threshold)) if bearing.any() else None,
            "detected_all": float(np.mean(p_tool >= threshold)),
            "benign_test_fpr": float(np.mean(p_benign >= threshold)), "encodings": per_encoding}
        test_rows = benign[test_mask]
        for key, mask in [(s, (test_rows.source == s).to_numpy()) for s in test_rows.source.unique()] + \
                         [(f"infrastructure-test/{k}", ((test_rows.source == "infrastructure-test") &
                                                         (test_rows.kind == k)).to_numpy())
                          for k in sorted(test_rows[test_rows.source == "infrastructure-test"].kind.unique())]:
            fpr = float(np.mean(p_benign[mask] >= threshold))
            worst_fpr[key] = max(worst_fpr.get(key, 0.0), fpr)
    for key in sorted(worst_fpr):
        n = int(((benign.source == key) | ((benign.source == "infrastructure-test")
                                          & (("infrastructure-test/" + benign.kind) == key))).sum())
        report["benign_test"][key] = {"names": n, "worst_fpr_over_folds": worst_fpr[key]}
    return report


def format_report(report: dict) -> str:
    lines = ["| held-out tool | queries | data-bearing | ROC AUC (data-bearing vs benign test) | "
             "detected data-bearing | detected all | benign test FPR |", "|---|---|---|---|---|---|---|"]
    for tool, r in report["tools"].items():
        lines.append(f"| {tool} | {r['queries']} | {r['data_bearing']} | {r['roc_auc']:.4f} | "
                     f"{r['detected_data_bearing']:.3f} | {r['detected_all']:.3f} | {r['benign_test_fpr']:.4%} |")
    lines += ["", "| held-out tool / encoding | data-bearing | detected |", "|---|---|---|"]
    for tool, r in report["tools"].items():
        for encoding, e in r["encodings"].items():
            lines.append(f"| {tool} / {encoding} | {e['data_bearing']} | {e['detected']:.3f} |")
    lines += ["", "| benign test source (never trained on) | names | FPR (worst fold) |", "|---|---|---|"]
    for key, r in report["benign_test"].items():
        lines.append(f"| {key} | {r['names']} | {r['worst_fpr_over_folds']:.4%} |")
    return "\n".join(lines)
