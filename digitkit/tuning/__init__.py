"""Hyperparameter search on Optuna: `digitkit tune`."""

from digitkit.tuning.study import TuneResult, tune

__all__ = ["tune", "TuneResult"]
