"""Decision-boundary pictures: one PNG per class, the model's odd-probability over the odd-point box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vigil.tasks.iot_anomaly.data import OddPointBox


def odd_scores(model, frame: pd.DataFrame) -> np.ndarray:
    """Probability of "odd" where the model has one, else the 0/1 decision."""
    if hasattr(model, "predict_proba"):
        try:
            return model.predict_proba(frame)[:, 1]
        except AttributeError:  # e.g. a pipeline ending in LinearSVC
            pass
    return model.predict(frame).astype(float)


def boundary_figure(plt, model, label, grid_w: np.ndarray, grid_l: np.ndarray, title: str, figsize: tuple):
    """(figure, axis): ``model``'s odd probability for class ``label`` over the (width, length) grid,
    the 0.5 boundary as a black line, axes named and titled."""
    frame = pd.DataFrame({"class": label, "length": grid_l.ravel(), "width": grid_w.ravel()})
    z = odd_scores(model, frame).reshape(grid_w.shape)
    fig, ax = plt.subplots(figsize=figsize)
    filled = ax.contourf(grid_w, grid_l, z, levels=np.linspace(0, 1, 11), cmap="RdYlGn_r", alpha=0.6)
    ax.contour(grid_w, grid_l, z, levels=[0.5], colors="black", linewidths=1.2)
    fig.colorbar(filled, ax=ax, label="P(odd)  (black line: decision boundary)")
    ax.set_xlabel("width (mm)")
    ax.set_ylabel("length (mm)")
    ax.set_title(f"{title} class = {label}".strip())
    return fig, ax


def plot_decision_boundaries(
    model,
    classes,
    box: OddPointBox,
    folder: Path,
    points: pd.DataFrame | None = None,
    title: str = "",
    steps: int = 200,
    prefix: str = "boundary",
) -> list[Path]:
    """Write ``<prefix>-<class>.png`` for each class; ``points`` (class, length, width, odd) are overlaid."""
    from vigil.plotting import pyplot, save_figure

    plt = pyplot()

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    widths = np.linspace(0, box.max_width, steps)
    lengths = np.linspace(0, box.max_length, steps)
    grid_w, grid_l = np.meshgrid(widths, lengths)
    written = []
    for label in classes:
        fig, ax = boundary_figure(plt, model, label, grid_w, grid_l, title, figsize=(7, 7))
        if points is not None:
            mine = points[points["class"] == label]
            real, odd = mine[mine["odd"] == 0], mine[mine["odd"] == 1]
            ax.scatter(real["width"], real["length"], s=10, c="navy", marker="^", label=f"real {label} ({len(real)})")
            ax.scatter(
                odd["width"], odd["length"], s=8, c="darkred", marker="s", alpha=0.5, label=f"odd points ({len(odd)})"
            )
            ax.legend(loc="upper left", fontsize=8)
        written.append(save_figure(fig, folder / f"{prefix}-{label}.png", dpi=90))
    return written


def plot_dataset(frame: pd.DataFrame, path: Path, title: str = "Input data set") -> Path:
    """Every row, one colour per class: real unique (triangles), real duplicates (circles), odd (squares)."""
    from vigil.plotting import pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 8))
    for number, (label, rows) in enumerate(frame.groupby("class", sort=False)):
        color = f"C{number}"
        real, odd = rows[rows["odd"] == 0], rows[rows["odd"] == 1]
        duplicate = real["duplicate"].astype(bool) if "duplicate" in real else pd.Series(False, index=real.index)
        ax.scatter(
            real.loc[~duplicate, "width"],
            real.loc[~duplicate, "length"],
            marker="^",
            s=14,
            color=color,
            label=f"{label} unique",
        )
        ax.scatter(
            real.loc[duplicate, "width"],
            real.loc[duplicate, "length"],
            marker="o",
            s=14,
            color=color,
            label=f"{label} duplicate",
        )
        ax.scatter(odd["width"], odd["length"], marker="s", s=8, color=color, alpha=0.35, label=f"{label} odd")
    ax.set_xlabel("width (mm)")
    ax.set_ylabel("length (mm)")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8, ncol=3)
    return save_figure(fig, path, dpi=90)


def boundary_png(
    model,
    label: str,
    box: OddPointBox,
    reading: tuple[float, float] | None = None,
    title: str = "",
    steps: int = 120,
) -> bytes:
    """One class's decision-boundary picture as PNG bytes, with ``reading`` (length, width) marked."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    max_length = max(box.max_length, reading[0] * 1.1 if reading else 0)
    max_width = max(box.max_width, reading[1] * 1.1 if reading else 0)
    grid_w, grid_l = np.meshgrid(np.linspace(0, max_width, steps), np.linspace(0, max_length, steps))
    fig, ax = boundary_figure(plt, model, label, grid_w, grid_l, title, figsize=(5.6, 5))
    if reading is not None:
        length, width = reading
        ax.scatter([width], [length], s=140, c="white", edgecolors="black", marker="*", zorder=5, label="this reading")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()
