"""Classification metrics from labels and predictions: confusion matrix, per-class precision/recall/F1."""

from __future__ import annotations

from typing import Any

import torch


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows are true classes, columns predicted ones."""
    flat = y_true.long() * num_classes + y_pred.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class(confusion: torch.Tensor, classes: list[str]) -> list[dict[str, Any]]:
    tp = confusion.diag().double()
    predicted = confusion.sum(0).double()
    support = confusion.sum(1).double()
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp))
    return [
        {"class": name, "precision": precision[i].item(), "recall": recall[i].item(), "f1": f1[i].item(), "support": int(support[i])}
        for i, name in enumerate(classes)
    ]
