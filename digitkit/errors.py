"""Errors a user can cause. The CLI prints their message on one line and exits with `exit_code`."""

from dataclasses import dataclass


class DigitkitError(Exception):
    """Bad usage or bad data: exit code 2."""

    exit_code = 2


class DataError(DigitkitError):
    """A dataset is missing, incomplete or unreadable."""


class CheckpointError(DigitkitError):
    """A checkpoint is missing, corrupt, foreign, or does not match its architecture."""


class TrainingInterrupted(DigitkitError):
    """Ctrl-C (or SIGTERM, SIGHUP) during training: the last completed epoch is safe on disk."""

    exit_code = 130


class InputError(DigitkitError):
    """One input file (an image to predict) could not be used; other files go on."""

    exit_code = 1


@dataclass
class Failure:
    """One input in a stream of results that could not be used: its path and the one-line reason."""

    path: str
    error: str
