"""Labels for unlabelled events: DBSCAN with eps at the knee of the sorted k-distance curve (ML-PT).

min_samples defaults to 2 x n_features. The curve is ML-PT's: for every point the distance to its
nearest other point (the neighbour query asks for min_samples neighbours, the point itself first),
sorted ascending; Kneedle (``kneed``, sensitivity S=20 as ML-PT tuned it) finds the knee, whose
height is eps. On ML-PT's published features this gives eps 0.0678 and their 62 labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

KNEE_SENSITIVITY = 20.0
GOOD_CLUSTERS = 11  # ML-PT called the 11 largest of their 61 clusters good, the other 50 attacks


@dataclass
class KDistance:
    distances: np.ndarray  # sorted ascending
    knee_index: int | None
    eps: float | None


def k_distance_curve(X: np.ndarray, min_samples: int, sensitivity: float = KNEE_SENSITIVITY) -> KDistance:
    import kneed
    from sklearn.neighbors import NearestNeighbors

    n_neighbors = max(2, min(min_samples, len(X)))
    distances, _ = NearestNeighbors(n_neighbors=n_neighbors).fit(X).kneighbors(X)
    curve = np.sort(distances, axis=0)[:, 1]
    knee = kneed.KneeLocator(np.arange(len(curve)), curve, S=sensitivity, curve="convex", direction="increasing").elbow
    if knee is None:
        return KDistance(curve, None, None)
    return KDistance(curve, int(knee), float(curve[int(knee)]))


@dataclass
class Clustering:
    labels: np.ndarray
    eps: float
    min_samples: int
    sizes: dict[int, int]  # cluster id -> size, noise (-1) included
    attack_clusters: list[int] = field(default_factory=list)
    good_clusters: list[int] = field(default_factory=list)
    knee: KDistance | None = None

    @property
    def n_labels(self) -> int:
        return len(self.sizes)

    @property
    def n_clusters(self) -> int:
        return len([c for c in self.sizes if c != -1])

    @property
    def noise(self) -> int:
        return self.sizes.get(-1, 0)

    @property
    def noise_share(self) -> float:
        return self.noise / max(1, len(self.labels))

    def summary(self) -> dict:
        attack_events = int(sum(self.sizes[c] for c in self.attack_clusters))
        good_events = int(sum(self.sizes[c] for c in self.good_clusters))
        return {
            "events": int(len(self.labels)),
            "eps": round(self.eps, 6),
            "min_samples": self.min_samples,
            "labels": self.n_labels,
            "clusters": self.n_clusters,
            "noise": self.noise,
            "noise_share": round(self.noise_share, 4),
            "attack_clusters": len(self.attack_clusters),
            "good_clusters": len(self.good_clusters),
            "attack_events": attack_events,
            "good_events": good_events,
        }


def split_attack_good(sizes: dict[int, int], attack_clusters: int | None = None) -> tuple[list[int], list[int]]:
    """The ``attack_clusters`` smallest clusters are attacks (default: all but the 11 largest)."""
    clusters = sorted((c for c in sizes if c != -1), key=lambda c: (sizes[c], c))
    if attack_clusters is None:
        attack_clusters = max(0, len(clusters) - GOOD_CLUSTERS)
    attack_clusters = max(0, min(attack_clusters, len(clusters)))
    return sorted(clusters[:attack_clusters]), sorted(clusters[attack_clusters:])


def cluster_events(
    X: np.ndarray,
    min_samples: int | None = None,
    eps: float | None = None,
    sensitivity: float = KNEE_SENSITIVITY,
    attack_clusters: int | None = None,
    n_jobs: int = 1,
) -> Clustering:
    from sklearn.cluster import DBSCAN

    X = np.asarray(X, dtype=np.float64)
    min_samples = min_samples or 2 * X.shape[1]
    knee = k_distance_curve(X, min_samples, sensitivity)
    if eps is None:
        if knee.eps is None or knee.eps <= 0:
            raise ValueError("no knee found in the k-distance curve; pass eps explicitly")
        eps = knee.eps
    labels = DBSCAN(eps=eps, min_samples=min_samples, n_jobs=n_jobs).fit_predict(X)
    ids, counts = np.unique(labels, return_counts=True)
    sizes = {int(i): int(c) for i, c in zip(ids, counts)}
    attack, good = split_attack_good(sizes, attack_clusters)
    return Clustering(
        labels=labels,
        eps=float(eps),
        min_samples=min_samples,
        sizes=sizes,
        attack_clusters=attack,
        good_clusters=good,
        knee=knee,
    )


def plot_k_distance(clustering: Clustering, path: Path | str, title: str = "") -> Path:
    """The sorted k-distance curve (log scale) with the knee and the chosen eps marked."""
    from vigil.plotting import pyplot, save_figure

    plt = pyplot()

    knee = clustering.knee
    fig, (curve_ax, sizes_ax) = plt.subplots(2, 1, figsize=(10, 7))
    positive = np.where(knee.distances > 0, knee.distances, np.nan)
    curve_ax.plot(positive, lw=1.2, label="distance to nearest other event, sorted")
    curve_ax.set_yscale("log")
    if knee.knee_index is not None:
        curve_ax.axvline(knee.knee_index, color="k", ls="--", lw=0.8)
        curve_ax.plot(
            [knee.knee_index], [knee.eps], "ro", label=f"knee: index {knee.knee_index}, distance {knee.eps:.4f}"
        )
    curve_ax.axhline(clustering.eps, color="tab:red", ls=":", lw=0.8, label=f"eps used {clustering.eps:.4f}")
    curve_ax.set_xlabel("events, sorted by distance")
    curve_ax.set_ylabel("distance (log)")
    curve_ax.set_title(title or f"k-distance curve, min_samples={clustering.min_samples}")
    curve_ax.legend(loc="upper left")
    order = sorted((c for c in clustering.sizes if c != -1), key=lambda c: -clustering.sizes[c])
    colors = ["tab:red" if c in clustering.attack_clusters else "tab:green" for c in order]
    sizes_ax.bar(range(len(order)), [clustering.sizes[c] for c in order], color=colors)
    sizes_ax.set_yscale("log")
    sizes_ax.set_xlabel("clusters, largest first (green: good, red: attack)")
    sizes_ax.set_ylabel("events (log)")
    summary = clustering.summary()
    sizes_ax.set_title(
        f"{summary['clusters']} clusters + noise {summary['noise']} "
        f"({100 * summary['noise_share']:.1f}%), eps {clustering.eps:.4f}"
    )
    return save_figure(fig, path, dpi=110)
