"""Why an event lands in its cluster, and whether that cluster is an attack cluster.

``/predict/web-events?explain=N`` (and ML-PT's ``/predict?explain=N``) adds to every answer:

* ``attack``: whether the predicted cluster is one of the model's attack clusters (the manifest's
  ``attack_clusters``; ``good_clusters`` are the rest, ``-1`` is DBSCAN's noise, not an attack);
* ``probability``: the forest's probability of that cluster, ``expected_value`` its mean over the
  training data (the forest's root nodes), and ``reasons``: the ``N`` inputs that moved it most.

The forest sees principal components of the scaled event features (ML-PT's PCA), so its
decision-path contributions (:func:`vigil.explain.forest_contributions`, additive:
``expected_value + sum of the contributions == probability``) are per component. Each reason names
its component by the inputs that make up most of its value for this event (a component is linear in
the inputs, ``z_k = sum_j C_kj (xs_j - mean_j)``; the two largest terms are named): "component 2:
client IP group 1 0x0000, request size 166". Sharing a component's contribution out among its inputs
would also add up, but the shares of one component can be large and of opposite signs (its terms
cancel), which reads as nonsense; the component is what the forest split on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vigil.explain import forest_contributions, top_reasons

_TERM_BLOCKS = {
    "user_agent": "user agent",
    "src": "matched variable source",
    "name": "matched variable name",
    "value": "matched value",
}
_NUMBER_NAMES = {
    "request_size": "request size",
    "response_code": "response code",
    "user_agent_valid": "valid user agent",
}


def human_name(column: str) -> str:
    block, _, term = column.partition(":")
    if term:
        return f"{_TERM_BLOCKS.get(block, block)}: term {term!r}"
    if column.startswith("client_ip_"):
        return f"client IP group {column.rsplit('_', 1)[1]}"
    return _NUMBER_NAMES.get(column, column.replace("_", " "))


def _text(column: str, name: str, value: float) -> str:
    if ":" in column:
        return f"{name} (tf-idf {value:.2f})" if value else f"{name} absent"
    if column.startswith("client_ip_"):
        return f"{name} 0x{int(value):04x}"
    return f"{name} {value:g}"


def component_contributions(pipeline, events) -> dict[str, Any]:
    """Per event: the predicted cluster, its probability, the forest's base value, the additive
    contribution of every principal component, and each input's term in each component."""
    steps = pipeline.named_steps
    inputs = pipeline[:2].transform(events)  # wrangling and feature blocks: (n, 76)
    project, forest = steps["project"], steps["classifier"]
    components = project.transform(inputs)  # what the forest reads: (n, k)
    probabilities = forest.predict_proba(components)
    predicted = np.argmax(probabilities, axis=1)
    base, contributions = forest_contributions(forest, components, classes=predicted)
    centred = project.scaler_.transform(inputs) - project.pca_.mean_
    terms = centred[:, None, :] * project.pca_.components_[None, :, :]  # (n, k, inputs): sums to z
    return {
        "inputs": inputs,
        "components": components,
        "terms": terms,
        "names": list(steps["features"].get_feature_names_out()),
        "clusters": forest.classes_[predicted],
        "probability": probabilities[np.arange(len(predicted)), predicted],
        "base": base,
        "contributions": contributions,
    }


def explain_answers(pipeline, events, answers: list[dict], top: int, entry: dict) -> list[dict]:
    """``answers`` (one per row of ``events``, in order) with ``attack``, ``probability``,
    ``expected_value`` and ``reasons`` added."""
    extra = entry.get("extra") or {}
    attack_clusters = {int(c) for c in extra.get("attack_clusters") or []}
    if len(events) == 0:
        return answers
    explained = component_contributions(pipeline, events)
    names = explained["names"]
    for row, answer in enumerate(answers):
        inputs, terms, components = explained["inputs"][row], explained["terms"][row], explained["components"][row]

        def describe(k: int, inputs=inputs, terms=terms, components=components) -> tuple[str, Any, str]:
            leading = [int(j) for j in np.argsort(-np.abs(terms[k]), kind="stable")[:2] if terms[k][j] != 0]
            parts = [_text(names[j], human_name(names[j]), float(inputs[j])) for j in leading]
            feature = f"component {k}: " + ", ".join(human_name(names[j]) for j in leading)
            return feature, float(components[k]), f"component {k} = {components[k]:.3g} ({', '.join(parts)})"

        cluster = int(explained["clusters"][row])
        answer["attack"] = cluster in attack_clusters
        answer["probability"] = float(explained["probability"][row])
        answer["expected_value"] = float(explained["base"][row])
        answer["reasons"] = top_reasons(explained["contributions"][row], top, describe)
    return answers


__all__ = ["component_contributions", "explain_answers", "human_name"]
