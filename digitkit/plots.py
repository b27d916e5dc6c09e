"""PNG pictures drawn by the tool itself: a confusion matrix, training curves, and a transcription's words on its
waveform (matplotlib, imported lazily)."""

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
    losses = [r.get(k) for r in history for k in ("train_loss", "val_loss")]
    positive = [v for v in losses if isinstance(v, (int, float)) and v > 0]
    spans_decades = bool(positive) and max(positive) / min(positive) > 30  # CTC's loss falls from ~100 to ~0.1
    if spans_decades:
        loss_ax.set_yscale("log")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss (log scale)" if spans_decades else "loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    from matplotlib.ticker import MaxNLocator

    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path, "curves.png")


def transcript_png(wave: Any, sample_rate: int, words: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """The waveform with each recognised word's span shaded and labelled (the times `transcribe --json` gives)."""
    import numpy as np

    plt = _pyplot()
    samples = np.asarray(wave, dtype=np.float32)
    seconds = np.arange(len(samples)) / sample_rate
    fig, ax = plt.subplots(figsize=(min(16.0, 3.0 + 2.0 * len(samples) / sample_rate), 2.8))
    ax.plot(seconds, samples, linewidth=0.5, color="0.35")
    peak = float(np.abs(samples).max()) if len(samples) else 1.0
    for i, w in enumerate(words):
        ax.axvspan(w["start"], w["end"], color=f"C{i % 10}", alpha=0.25)
        ax.text((w["start"] + w["end"]) / 2, peak * 1.05, f"{w['word']}\n{w['confidence']:.2f}", ha="center",
                va="bottom", fontsize=9)
    ax.set_ylim(-peak * 1.1, peak * 1.6)
    ax.set_xlim(0, max(len(samples) / sample_rate, 1e-3))
    ax.set_xlabel("seconds")
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    return _save(fig, path, "transcript.png")
