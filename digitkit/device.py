"""The one place that picks the compute device, and says where a model already is."""

from __future__ import annotations

from digitkit.errors import DigitkitError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _known(name: str) -> str:
    """A device name as given (any case, empty for auto) -> lower case, or one line naming the choices."""
    name = (name or "auto").lower()
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise DigitkitError(f"unknown device {name!r}; choose one of: {', '.join(DEVICE_CHOICES)}")
    return name


def pick_device(name: str = "auto"):
    import torch

    name = _known(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DigitkitError("--device cuda was asked for, but no CUDA GPU is available to torch here")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DigitkitError("--device mps was asked for, but Apple's MPS backend is not available here")
    return torch.device(name)


def device_type(name: str = "auto") -> str:
    """The kind of device a run named `name` trains on, without requiring it to be here: `--print-config --device
    cuda` shows a GPU run's settings on a machine without one. `auto` is what `pick_device` finds."""
    name = _known(name)
    if name == "auto":
        return pick_device(name).type
    return "cuda" if name.startswith("cuda") else name


def model_device(model):
    """Where a model's weights live (the CPU for a model without any): helpers that run a model put their inputs
    there, so callers never pass a device that could disagree with it."""
    import torch

    return next(model.parameters(), torch.empty(0)).device
