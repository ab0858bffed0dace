"""Errors that end a run with one clear line and exit status 2 (see run.py)."""
import errno
import os
import re


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


class StorageError(UserError):
    """A file could not be written: the disk is full, a quota or a permission refused it."""


_STORAGE_FIXES = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space",
                  errno.EROFS: "use a writable --output_dir",
                  errno.EACCES: "fix the permissions"}


def as_storage_error(error: Exception) -> StorageError | None:
    """The StorageError behind an OSError or a TensorFlow error, or None if it is not one.
    (TensorFlow reports a full disk as ResourceExhaustedError '<path>; No space left ...')"""
    text = str(error)
    code = getattr(error, "errno", None) if isinstance(error, OSError) else None
    if code is None and type(error).__module__.startswith("tensorflow"):
        code = next((c for c in _STORAGE_FIXES if os.strerror(c) in text), None)
    if code not in _STORAGE_FIXES:
        return None
    reason = os.strerror(code)
    found = (re.search(rf"(\S+); {re.escape(reason)}", text)  # TensorFlow's file errors
             or re.search(r"filename = '([^']+)'", text))       # h5py's
    path = getattr(error, "filename", None) or (found.group(1) if found else "")
    return StorageError(f"{reason}{': ' + str(path) if path else ''}; "
                        f"{_STORAGE_FIXES[code]} and run the same command again "
                        "(finished search trials and training epochs are kept)")
