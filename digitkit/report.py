"""Everything the user sees on stderr while work runs: Rich progress and epoch rows on a terminal,
plain one-line-per-epoch output otherwise. `Reporter` itself is silent, for scripts and tests."""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

from digitkit.training.callbacks import Callback

_COLUMNS = (("epoch", 7), ("train acc", 10), ("train loss", 11), ("val acc", 9), ("val loss", 10), ("lr", 9), ("seconds", 8))


class Reporter(Callback):
    """The silent reporter: messages from the tasks, and the training loop's hooks, doing nothing."""

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def close(self) -> None: ...


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def epoch_cells(row: dict[str, Any]) -> list[str]:
    return [
        f"{row['epoch']}",
        _fmt(row["train_accuracy"]),
        _fmt(row["train_loss"]),
        _fmt(row["val_accuracy"]),
        _fmt(row["val_loss"]),
        f"{row['lr']:.2e}",
        f"{row['seconds']:.1f}",
    ]


class ConsoleReporter(Reporter):
    """Rich on a terminal, plain lines in a pipe or a log file; always on stderr."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False):
        from rich.console import Console

        self.console = Console(file=stream or sys.stderr, highlight=False)
        self.live = self.console.is_terminal
        self.quiet = quiet
        self._progress = None
        self._task = None
        self._header_done = False
        self._last_plain = 0.0

    def info(self, message: str) -> None:
        if not self.quiet and message:
            self.console.print(message, style="dim" if self.live else None, markup=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        self.console.print(f"warning: {message}", style="yellow" if self.live else None, markup=False, soft_wrap=True)

    def on_epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        if self.quiet:
            return
        if not self._header_done:
            self._header_done = True
            if self.live:
                self.console.print(" ".join(f"{name:>{w}}" for name, w in _COLUMNS), style="bold")
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn(f"epoch {epoch}/{epochs}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=steps, loss="-")

    def on_batch_end(self, step: int, loss: float) -> None:
        if self._progress is not None:
            fields = {} if math.isnan(loss) else {"loss": f"{loss:.4f}"}
            self._progress.update(self._task, completed=step, **fields)

    def on_epoch_end(self, row: dict[str, Any], state: Any = None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self.quiet:
            return
        cells = epoch_cells(row)
        if self.live:
            self.console.print(" ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, _COLUMNS)), markup=False)
        else:
            names = ("epoch", "train_acc", "train_loss", "val_acc", "val_loss", "lr", "seconds")
            self.console.print(" ".join(f"{n}={c}" for n, c in zip(names, cells)), markup=False, soft_wrap=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def print_evaluation(result: Any, stream: TextIO | None = None) -> None:
    """The evaluation as Rich tables on stdout (it is the command's data, not a log)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream or sys.stdout, highlight=False)
    console.print(
        f"{result.dataset} test set: accuracy [bold]{result.accuracy:.2%}[/bold], loss {result.loss:.4f} "
        f"({result.samples:,} {'recordings' if result.sequence_wer is not None else 'images'})"
    )
    if result.sequence_wer is not None:
        console.print(f"connected strings of 3-7 words joined from test recordings: word error rate "
                      f"[bold]{result.sequence_wer:.2%}[/bold] ({result.sequences} strings)")
    if result.recorded_wer is not None:
        console.print(f"strings recorded as spoken by test speakers: word error rate "
                      f"[bold]{result.recorded_wer:.2%}[/bold] ({result.recorded} strings)")
    if result.calibration_error is not None:
        console.print(f"calibration error (expected, 15 bins) of the confidences: {result.calibration_error:.2%}")
    if result.note:
        console.print(f"note: {result.note}", markup=False)
    classes = Table(title="per class", title_justify="left")
    for name in ("class", "precision", "recall", "f1", "support"):
        classes.add_column(name, justify="left" if name == "class" else "right")
    for row in result.per_class:
        classes.add_row(row["class"], f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}", str(row["support"]))
    console.print(classes)
    matrix = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
    matrix.add_column("")
    for name in result.classes:
        matrix.add_column(name[:8], justify="right")
    for i, (name, counts) in enumerate(zip(result.classes, result.confusion)):
        cells = [f"[bold]{c}[/bold]" if i == j else (str(c) if c else "·") for j, c in enumerate(counts)]
        matrix.add_row(name[:12], *cells)
    console.print(matrix)


def print_trials(result: Any, stream: TextIO | None = None) -> None:
    """A study's trials and its best config as a Rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream or sys.stdout, highlight=False)
    table = Table(title=f"study {result.study_name} ({result.storage})", title_justify="left")
    for name in ("trial", "state", "val acc", "epochs", "seconds", "parameters"):
        table.add_column(name, justify="left" if name in ("state", "parameters") else "right")
    for row in result.trials:
        params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(row["params"].items()))
        seconds = row["seconds"]
        table.add_row(str(row["number"]), row["state"], _fmt(row["value"]), str(row["epochs"]),
                      f"{seconds:.0f}" if seconds is not None else "-", params)
    console.print(table)
    if result.best is None:
        console.print("no trial finished yet")
    else:
        best = result.best
        console.print(f"best: trial {best['number']}, val accuracy [bold]{best['value']:.4f}[/bold]; "
                      f"config in {best['config']} (digitkit train --config {best['config']})")
