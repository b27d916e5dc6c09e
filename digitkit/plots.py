"""PNG pictures drawn by the tool itself: a confusion matrix and training curves (matplotlib, imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from digitkit.errors import DigitkitError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, name: str) -> Path:
    """Write `fig` as PNG to `path`; a folder gets `name` inside it, and a path without a suffix gets `.png` (as
    matplotlib would add it) -> the file written."""
    path = Path(path)
    if path.is_dir():
        path = path / name
    elif not path.suffix:
        path = path.with_suffix(".png")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    except (OSError, ValueError) as exc:
        raise DigitkitError(f"cannot write {path}: {exc}") from None
    finally:
        fig.clf()
        _pyplot().close(fig)
    return path


def confusion_png(confusion: list[list[int]], classes: list[str], path: Path, title: str = "") -> Path:
    plt = _pyplot()
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
    ax.imshow(confusion, cmap="Blues")
    peak = max(max(row) for row in confusion) or 1
    for i in range(n):
        for j in range(n):
            value = confusion[i][j]
            if value:
                ax.text(j, i, str(value), ha="center", va="center", fontsize=8, color="white" if value > peak / 2 else "black")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    return _save(fig, path, "confusion.png")


def curves_png(history: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    if not history:
        raise DigitkitError("this checkpoint has no training history to plot")
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        values = [r.get(key) for r in history]
        if any(v is not None for v in values):
            loss_ax.plot(epochs, values, marker="o", label=label)
    for key, label in (("train_accuracy", "train"), ("val_accuracy", "val")):
        values = [r.get(key) for r in history]
        if any(v is not None for v in values):
            acc_ax.plot(epochs, values, marker="o", label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    from matplotlib.ticker import MaxNLocator

    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path, "curves.png")
