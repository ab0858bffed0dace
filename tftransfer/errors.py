"""Errors that end a run with one clear line and exit status 2 (see run.py)."""


def first_line(error: Exception) -> str:
    """The first line of an exception's message (TF and hub errors run to pages)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


class UserError(Exception):
    """A problem the user can fix (input, handle, environment); never a bug."""


class DataError(UserError):
    """The dataset cannot be used as given."""


class BackboneError(UserError):
    """The hub handle cannot be loaded or is not a feature-vector model."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the weights are unusable."""
