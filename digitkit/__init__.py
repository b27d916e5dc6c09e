"""digitkit: small perception models (digits, clothing, small photos) trained and run from the command line.

The public functions live in :mod:`digitkit.api`; they are re-exported here lazily so that
``import digitkit`` (and ``digitkit --help``) never pays for importing torch.
"""

__version__ = "0.1.0"

__all__ = ["train", "evaluate", "predict", "transcribe", "export", "tune", "__version__"]


def __getattr__(name: str):
    if name in ("train", "evaluate", "predict", "transcribe", "export"):
        from digitkit import api

        return getattr(api, name)
    if name == "tune":
        from digitkit.tuning import tune

        return tune
    raise AttributeError(f"module 'digitkit' has no attribute {name!r}")
