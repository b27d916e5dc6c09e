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


def calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """Expected calibration error: the gap between confidence and accuracy, averaged over `bins` equal-width
    confidence bins weighted by how many predictions fall in each (Guo et al., 2017)."""
    confidence, predicted = probs.max(1)
    right = (predicted == labels.to(probs.device)).float()
    which = torch.clamp((confidence * bins).long(), max=bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.float().sum().item() * abs(confidence[inside].mean().item() - right[inside].mean().item())
    return total / max(len(labels), 1)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature T minimising the cross-entropy of softmax(logits / T) on held-out data (temperature scaling,
    Guo et al., 2017): a golden-section search over log T in [1/20, 20]; the loss is unimodal there."""
    import math

    import torch.nn.functional as F

    logits, labels = logits.float(), labels.to(logits.device)

    def loss(log_t: float) -> float:
        return F.cross_entropy(logits / math.exp(log_t), labels).item()

    lo, hi = math.log(0.05), math.log(20.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(40):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    return math.exp((lo + hi) / 2)
