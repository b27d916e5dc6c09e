"""Errors a user can cause. The CLI prints their message on one line and exits with `exit_code`."""


class DigitkitError(Exception):
    """Bad usage or bad data: exit code 2."""

    exit_code = 2


class DataError(DigitkitError):
    """A dataset is missing, incomplete or unreadable."""


class CheckpointError(DigitkitError):
    """A checkpoint is missing, corrupt, foreign, or does not match its architecture."""


class InputError(DigitkitError):
    """One input file (an image to predict) could not be used; other files go on."""

    exit_code = 1
